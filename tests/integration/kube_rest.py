"""A minimal kube-apiserver REST client for the test stand-ins (the snapshot
controller's, the job runner's): one keep-alive HTTPS connection per thread,
a bearer token, JSON in and out. Moved out of snapshot_controller_standin.py
so each stand-in can use it without importing the others."""

import http.client
import json
import ssl
import threading


class ApiError(Exception):
    def __init__(self, method, path, status, body):
        msg = body.get("message") if isinstance(body, dict) else body[:300]
        super().__init__(f"{method} {path}: {status}: {msg}")
        self.status, self.body = status, body


class Api:
    """A minimal kube-apiserver client: one keep-alive HTTPS connection per
    thread, bearer token, JSON in and out."""

    def __init__(self, server, token, ca_file, timeout=30):
        scheme, _, rest = server.partition("://")
        if scheme != "https":
            raise ValueError(f"server {server!r}: only https is supported")
        hostport = rest.split("/", 1)[0]
        self.host, _, port = hostport.rpartition(":")
        self.port = int(port or 443)
        self.server, self.token, self.timeout = server, token, timeout
        self.ctx = ssl.create_default_context(cafile=str(ca_file))
        self._local = threading.local()

    def _conn(self, fresh=False):
        c = getattr(self._local, "conn", None)
        if c is None or fresh:
            if c is not None:
                c.close()
            c = http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout,
                                            context=self.ctx)
            self._local.conn = c
        return c

    def request(self, method, path, body=None, content_type="application/json"):
        """(status, decoded JSON or text). Retries once on a dropped keep-alive."""
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        for attempt in (0, 1):
            conn = self._conn(fresh=attempt > 0)
            try:
                conn.request(method, path, body=data, headers=headers)
                r = conn.getresponse()
                raw = r.read()
                break
            except (http.client.HTTPException, OSError):
                conn.close()
                self._local.conn = None
                if attempt:
                    raise
        try:
            return r.status, json.loads(raw)
        except ValueError:
            return r.status, raw.decode(errors="replace")

    def call(self, method, path, body=None, ok=(200, 201), content_type="application/json"):
        status, out = self.request(method, path, body, content_type)
        if status not in ok:
            raise ApiError(method, path, status, out)
        return out

    def get(self, path):
        """The object, or None on 404."""
        status, out = self.request("GET", path)
        if status == 404:
            return None
        if status != 200:
            raise ApiError("GET", path, status, out)
        return out

    def list(self, path):
        return self.call("GET", path).get("items") or []

    def create(self, path, obj):
        return self.call("POST", path, obj)

    def merge_patch(self, path, patch):
        return self.call("PATCH", path, patch, content_type="application/merge-patch+json")

    def delete(self, path):
        """True if deleted (or being deleted), False if it was not there."""
        status, out = self.request("DELETE", path)
        if status == 404:
            return False
        if status not in (200, 202):
            raise ApiError("DELETE", path, status, out)
        return True
