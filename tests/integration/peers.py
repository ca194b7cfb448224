"""Real peers for the integration tests: etcd (3.6, 3.5, 3.4), MinIO and
kube-apiserver started on 127.0.0.1 with free ports and their own temp dirs,
stopped by PID. Owns: binary lookup (KT_*_BIN env vars, else the cache that
scripts/peers.sh fills), free ports, test certificates (openssl command line),
and a process registry that kills every peer still running at exit, on
SIGTERM/SIGINT, and (through PR_SET_PDEATHSIG) when the test runner dies.
A peer made with workdir=None gets a temp dir that is removed at exit unless
KT_KEEP_PEER_DIRS is set.

Standard library only, so it runs wherever python3 and pytest do.
"""

import atexit
import base64
import ctypes
import hashlib
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PEERS_SH = REPO / "scripts" / "peers.sh"

# ---------------------------------------------------------------------------
# binaries


class PeerMissing(RuntimeError):
    """A peer binary is not built; the message says how to build it."""


# env var -> peers.sh peer name that provides it
_BIN_PEER = {
    "KT_ETCD_BIN": "etcd",
    "KT_ETCDCTL_BIN": "etcd",
    "KT_ETCDUTL_BIN": "etcd",
    "KT_ETCD35_BIN": "etcd35",
    "KT_ETCDCTL35_BIN": "etcd35",
    "KT_ETCD34_BIN": "etcd34",
    "KT_MINIO_BIN": "minio",
    "KT_KUBE_APISERVER_BIN": "kube-apiserver",
    "KT_HELM_BIN": "helm",
}
_default_bins = None


def need(make):
    """make() a peer; a missing peer fails the test with the peers.sh hint."""
    import pytest
    try:
        return make()
    except PeerMissing as e:
        pytest.fail(str(e), pytrace=False)


def wait_for(pred, timeout=30, what="condition", interval=0.05):
    """Poll pred() until it returns something true (returned) or time runs out."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def _cache_paths():
    """The cached paths, as `scripts/peers.sh --print-env` names them."""
    global _default_bins
    if _default_bins is None:
        out = subprocess.run(["bash", str(PEERS_SH), "--print-env"], check=True,
                             capture_output=True, text=True).stdout
        _default_bins = {}
        for line in out.splitlines():
            if line.startswith("export ") and "=" in line:
                name, _, value = line[len("export "):].partition("=")
                _default_bins[name] = value
    return _default_bins


# short names accepted by binary()
BINARIES = {
    "etcd": "KT_ETCD_BIN", "etcdctl": "KT_ETCDCTL_BIN", "etcdutl": "KT_ETCDUTL_BIN",
    "etcd35": "KT_ETCD35_BIN", "etcdctl35": "KT_ETCDCTL35_BIN", "etcd34": "KT_ETCD34_BIN",
    "minio": "KT_MINIO_BIN", "kube-apiserver": "KT_KUBE_APISERVER_BIN", "helm": "KT_HELM_BIN",
}


def binary(var):
    """Path of a peer binary, by env var name ("KT_ETCDUTL_BIN") or short
    name ("etcdutl"): $VAR if set, else the peers.sh cache path.
    Raises PeerMissing when it is not an executable file."""
    var = BINARIES.get(var, var)
    path = os.environ.get(var) or _cache_paths().get(var)
    if not path or not os.path.isfile(path) or not os.access(path, os.X_OK):
        peer = _BIN_PEER.get(var, "")
        raise PeerMissing(
            f"{var}: peer binary {path or '(unset)'} is missing; "
            f"run `scripts/peers.sh {peer}` (or set {var})")
    return path


def etcd_binary(version="3.6"):
    var = {"3.6": "KT_ETCD_BIN", "3.5": "KT_ETCD35_BIN", "3.4": "KT_ETCD34_BIN"}.get(version)
    if var is None:
        raise ValueError(f"unknown etcd version {version!r} (3.6, 3.5 or 3.4)")
    return binary(var)


# ---------------------------------------------------------------------------
# ports, files

_handed_out = set()
_port_lock = threading.Lock()


def free_port():
    """A TCP port free on 127.0.0.1, never the same one twice in this process."""
    with _port_lock:
        for _ in range(100):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            if port not in _handed_out:
                _handed_out.add(port)
                return port
    raise RuntimeError("no free port found")


def log_tail(path, lines=40):
    try:
        with open(path, "rb") as f:
            data = f.read()[-64 * 1024:]
    except OSError:
        return "(no log)"
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


_temp_dirs = []          # dirs made here for workdir=None; removed at exit


def _workdir(workdir, prefix):
    if workdir is None:
        d = Path(tempfile.mkdtemp(prefix=f"kt-{prefix}-"))
        _install_handlers()
        _temp_dirs.append(d)
        return d
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    return workdir


# ---------------------------------------------------------------------------
# certificates (openssl command line)


def _openssl(*args, cwd):
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed:\n{r.stderr}")


class CA:
    """A test CA in DIR (ca.crt, ca.key) that issues EC P-256 certificates."""

    def __init__(self, directory, cn="kontinuity-test-ca"):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.cert = self.dir / "ca.crt"
        self.key = self.dir / "ca.key"
        if not self.cert.exists():
            _openssl("req", "-x509", "-new", "-nodes", "-newkey", "ec",
                     "-pkeyopt", "ec_paramgen_curve:prime256v1",
                     "-keyout", "ca.key", "-out", "ca.crt", "-days", "3650",
                     "-subj", f"/CN={cn}",
                     "-addext", "basicConstraints=critical,CA:TRUE",
                     "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=self.dir)

    def issue(self, name, cn, org=None, server=True, client=True,
              sans=("IP:127.0.0.1", "DNS:localhost")):
        """Issue NAME.crt/NAME.key; returns (cert_path, key_path)."""
        subj = f"/CN={cn}" + (f"/O={org}" if org else "")
        eku = ",".join(u for u, on in (("serverAuth", server), ("clientAuth", client)) if on)
        ext = self.dir / f"{name}.ext"
        ext.write_text(
            "basicConstraints=CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
            f"extendedKeyUsage={eku}\n"
            + (f"subjectAltName={','.join(sans)}\n" if server and sans else ""))
        _openssl("req", "-new", "-nodes", "-newkey", "ec",
                 "-pkeyopt", "ec_paramgen_curve:prime256v1",
                 "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subj, cwd=self.dir)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{name}.crt", "-days", "3650",
                 "-extfile", f"{name}.ext", cwd=self.dir)
        return self.dir / f"{name}.crt", self.dir / f"{name}.key"


# ---------------------------------------------------------------------------
# process registry

_running = {}            # pid -> Popen of every peer process not yet stopped
_registry_lock = threading.Lock()
_handlers_installed = False
_PR_SET_PDEATHSIG = 1


def _die_with_parent():
    # Runs in the child between fork and exec: SIGKILL it if the runner dies.
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except Exception:
        pass


def _kill_all():
    with _registry_lock:
        procs = list(_running.values())
    for p in procs:
        stop_process(p, timeout=5)


def _at_exit():
    _kill_all()
    if not os.environ.get("KT_KEEP_PEER_DIRS"):
        for d in _temp_dirs:
            shutil.rmtree(d, ignore_errors=True)


def _on_signal(signum, frame, previous):
    _kill_all()
    if callable(previous):
        previous(signum, frame)          # e.g. SIGINT -> KeyboardInterrupt
    else:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def _install_handlers():
    global _handlers_installed
    if _handlers_installed:
        return
    _handlers_installed = True
    atexit.register(_at_exit)
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGINT):
        prev = signal.getsignal(sig)
        if prev == signal.SIG_IGN:
            continue
        signal.signal(sig, lambda s, f, prev=prev: _on_signal(s, f, prev))


def start_process(argv, log_path, env=None, cwd=None):
    """Start ARGV in its own session/process group, output to LOG_PATH,
    registered for cleanup. Returns the Popen."""
    _install_handlers()
    with open(log_path, "ab") as log:
        p = subprocess.Popen([str(a) for a in argv], stdin=subprocess.DEVNULL,
                             stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                             start_new_session=True, preexec_fn=_die_with_parent)
    with _registry_lock:
        _running[p.pid] = p
    return p


def stop_process(p, timeout=10):
    """SIGTERM the PID, wait up to TIMEOUT s, then SIGKILL its whole group."""
    if p.poll() is None:
        try:
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(p.pid, signal.SIGKILL)   # the leader if still there, and any child
    except (ProcessLookupError, PermissionError):
        pass
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
    with _registry_lock:
        _running.pop(p.pid, None)
    return p.returncode


def pid_alive(pid):
    """True while PID exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def _clean_env(drop_prefixes=()):
    return {k: v for k, v in os.environ.items() if not k.startswith(tuple(drop_prefixes))}


# ---------------------------------------------------------------------------
# HTTP


def https_context(ca_file=None, cert=None, key=None):
    ctx = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    if cert:
        ctx.load_cert_chain(str(cert), str(key))
    return ctx


def _connection(url, ssl_context=None, timeout=10):
    scheme, _, rest = url.partition("://")
    hostport = rest.split("/", 1)[0]
    host, _, port = hostport.rpartition(":")
    if scheme == "https":
        return http.client.HTTPSConnection(host, int(port), timeout=timeout, context=ssl_context)
    return http.client.HTTPConnection(host, int(port), timeout=timeout)


def http_request(url, path, method="GET", body=None, headers=None, ssl_context=None, timeout=10):
    """One request; returns (status, body bytes)."""
    conn = _connection(url, ssl_context, timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


class _Peer:
    """Common start/stop/readiness plumbing; subclasses define _argv/_ready."""

    name = "peer"
    start_timeout = 30.0

    def __init__(self, workdir=None):
        self.dir = _workdir(workdir, self.name)
        self.log_path = self.dir / f"{self.name}.log"
        self.proc = None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        last = "never polled"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with status {self.proc.returncode} before it was "
                    f"ready; last lines of {self.log_path}:\n{log_tail(self.log_path)}")
            try:
                ok, last = self._ready()
                if ok:
                    return
            except (OSError, http.client.HTTPException, ssl.SSLError) as e:
                last = f"{type(e).__name__}: {e}"
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(
            f"{self.name} not ready after {timeout:.0f}s (last check: {last}); "
            f"last lines of {self.log_path}:\n{log_tail(self.log_path)}")

    def _launch(self, argv, env=None, timeout=None):
        self.proc = start_process(argv, self.log_path, env=env, cwd=self.dir)
        self._wait_ready(timeout or self.start_timeout)
        return self

    def stop(self):
        if self.proc is not None:
            stop_process(self.proc)
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


# ---------------------------------------------------------------------------
# etcd

# Kubernetes-like key shapes for put_many: core, another namespace, a CRD.
K8S_KEY_TEMPLATES = (
    "{prefix}/pods/default/pod-{i}",
    "{prefix}/configmaps/kube-system/cm-{i}",
    "{prefix}/apps.example.com/widgets/ns-{ns}/w-{i}",
)


def _b64(b):
    if isinstance(b, str):
        b = b.encode()
    return base64.b64encode(b).decode()


def sample_value(i, size):
    """Deterministic value of SIZE bytes for key number I (JSON-ish header,
    then hex digits: compressible about as much as real objects)."""
    head = f'{{"kind":"Object","n":{i},"data":"'.encode()
    out = bytearray(head)
    block = hashlib.sha256(str(i).encode()).hexdigest().encode()
    while len(out) < size:
        out += block
        block = hashlib.sha256(block).hexdigest().encode()
    return bytes(out[:size])


class Etcd(_Peer):
    """One etcd member on 127.0.0.1.

    Etcd(workdir=None, version="3.6"|"3.5"|"3.4", tls=False, extra_args=())
    After start(): endpoint, client_port, peer_port, data_dir, log_path, pid;
    with tls: ca_file, client_cert, client_key (the client cert is required).
    """

    name = "etcd"

    def __init__(self, workdir=None, version="3.6", tls=False, extra_args=(), member_name="kt"):
        super().__init__(workdir)
        self.version = version
        self.bin = etcd_binary(version)
        self.tls = tls
        self.extra_args = list(extra_args)
        self.member_name = member_name
        self.data_dir = self.dir / "data"
        self.client_port = free_port()
        self.peer_port = free_port()
        scheme = "https" if tls else "http"
        self.endpoint = f"{scheme}://127.0.0.1:{self.client_port}"
        self.peer_url = f"http://127.0.0.1:{self.peer_port}"
        self.ca_file = self.client_cert = self.client_key = None
        self.server_cert = self.server_key = None
        self.user = self.password = None
        self._token = None
        self._conn = None
        if tls:
            ca = CA(self.dir / "pki")
            self.ca_file = ca.cert
            self.server_cert, self.server_key = ca.issue("server", "etcd-server")
            self.client_cert, self.client_key = ca.issue("client", "etcd-client", server=False)

    def _argv(self):
        argv = [self.bin, "--name", self.member_name, "--data-dir", self.data_dir,
                "--listen-client-urls", self.endpoint,
                "--advertise-client-urls", self.endpoint,
                "--listen-peer-urls", self.peer_url,
                "--initial-advertise-peer-urls", self.peer_url,
                "--initial-cluster", f"{self.member_name}={self.peer_url}",
                "--initial-cluster-state", "new",
                "--initial-cluster-token", f"kt-{secrets.token_hex(4)}"]
        if self.version == "3.4":
            argv += ["--logger", "zap"]
        if self.tls:
            argv += ["--client-cert-auth", "--trusted-ca-file", self.ca_file,
                     "--cert-file", self.server_cert, "--key-file", self.server_key]
        return argv + self.extra_args

    def start(self, timeout=None):
        """Start (or restart on the same data dir and ports); returns self."""
        self._close_conn()
        return self._launch(self._argv(), env=_clean_env(("ETCD",)), timeout=timeout)

    def stop(self):
        self._close_conn()
        return super().stop()

    def ssl_context(self):
        return https_context(self.ca_file, self.client_cert, self.client_key) if self.tls else None

    def _ready(self):
        status, body = http_request(self.endpoint, "/health", ssl_context=self.ssl_context(),
                                    timeout=2)
        ok = status == 200 and json.loads(body).get("health") == "true"
        return ok, f"GET /health -> {status} {body[:200]!r}"

    # -- etcdctl ------------------------------------------------------------

    def etcdctl_args(self):
        """The connection flags for any etcdctl against this member."""
        args = ["--endpoints", self.endpoint]
        if self.tls:
            args += ["--cacert", str(self.ca_file), "--cert", str(self.client_cert),
                     "--key", str(self.client_key)]
        if self.user:
            args += ["--user", f"{self.user}:{self.password}"]
        return args

    def etcdctl(self, *args, check=True, input=None, timeout=60, binary_var="KT_ETCDCTL_BIN"):
        """Run etcdctl (3.6 by default) with this member's endpoint, certs and
        credentials; returns CompletedProcess (text). check=True raises with
        stdout/stderr on a non-zero exit."""
        argv = [binary(binary_var), *self.etcdctl_args(), *[str(a) for a in args]]
        r = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout,
                           env=_clean_env(("ETCDCTL",)))
        if check and r.returncode != 0:
            raise RuntimeError(f"etcdctl {' '.join(map(str, args))} exited {r.returncode}:\n"
                               f"stdout: {r.stdout}\nstderr: {r.stderr}")
        return r

    # -- JSON gateway (fast, keep-alive) ------------------------------------

    def _close_conn(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def api(self, path, body):
        """POST BODY (dict) to the gRPC JSON gateway (e.g. /v3/kv/put) on a
        kept-alive connection; returns the decoded JSON answer."""
        data = json.dumps(body).encode()
        for attempt in (0, 1):
            if self._conn is None:
                self._conn = _connection(self.endpoint, self.ssl_context(), timeout=30)
            headers = {"Content-Type": "application/json"}
            if self.user and path != "/v3/auth/authenticate":
                headers["Authorization"] = self._auth_token()
            try:
                self._conn.request("POST", path, body=data, headers=headers)
                r = self._conn.getresponse()
                answer = r.read()
            except (http.client.HTTPException, ConnectionError):
                self._close_conn()
                if attempt:
                    raise
                continue
            if r.status != 200:
                raise RuntimeError(f"etcd {path} -> {r.status}: {answer[:500]!r}")
            return json.loads(answer)

    def _auth_token(self):
        if self._token is None:
            self._token = self.api("/v3/auth/authenticate",
                                   {"name": self.user, "password": self.password})["token"]
        return self._token

    def put(self, key, value):
        """Put one key; returns the revision of the write."""
        r = self.api("/v3/kv/put", {"key": _b64(key), "value": _b64(value)})
        return int(r["header"]["revision"])

    def get(self, key):
        """Value of KEY as bytes, or None."""
        r = self.api("/v3/kv/range", {"key": _b64(key)})
        kvs = r.get("kvs") or []
        return base64.b64decode(kvs[0].get("value", "")) if kvs else None

    def count(self, prefix):
        """Number of keys under PREFIX."""
        p = prefix.encode() if isinstance(prefix, str) else prefix
        end = p[:-1] + bytes([p[-1] + 1])
        r = self.api("/v3/kv/range", {"key": _b64(p), "range_end": _b64(end),
                                      "count_only": True})
        return int(r.get("count", 0))

    def revision(self):
        return int(self.api("/v3/kv/range", {"key": _b64("\0")})["header"]["revision"])

    def put_many(self, n, prefix="/registry", size=256, batch=None, value=sample_value):
        """Load N Kubernetes-like keys (see K8S_KEY_TEMPLATES) with values of
        SIZE bytes, BATCH puts per transaction (default: as many as fit in
        ~1 MiB, at most 100; batch=1 gives one revision per key). Returns the
        list of keys written, in order."""
        if batch is None:
            batch = max(1, min(100, (1 << 20) // max(size + 200, 1)))
        keys = [K8S_KEY_TEMPLATES[i % len(K8S_KEY_TEMPLATES)].format(
                    prefix=prefix, i=i, ns=i % 7) for i in range(n)]
        for start in range(0, n, batch):
            chunk = range(start, min(n, start + batch))
            if len(chunk) == 1:
                i = chunk[0]
                self.put(keys[i], value(i, size))
                continue
            ops = [{"request_put": {"key": _b64(keys[i]), "value": _b64(value(i, size))}}
                   for i in chunk]
            r = self.api("/v3/kv/txn", {"success": ops})
            if not r.get("succeeded"):
                raise RuntimeError(f"put_many txn failed: {r}")
        return keys

    # -- auth -----------------------------------------------------------------

    def enable_auth(self, user="root", password="kt-root-password"):
        """Create USER (and root, which etcd requires) with PASSWORD, grant the
        root role, enable auth. Later etcdctl()/api() calls authenticate as USER."""
        def ignore_exists(*args):
            r = self.etcdctl(*args, check=False)
            if r.returncode != 0 and "already exists" not in r.stderr:
                raise RuntimeError(f"etcdctl {' '.join(args)}: {r.stderr}")
        ignore_exists("role", "add", "root")
        for u in dict.fromkeys(("root", user)):
            ignore_exists("user", "add", u, "--new-user-password", password)
            self.etcdctl("user", "grant-role", u, "root")
        self.etcdctl("auth", "enable")
        self.user, self.password, self._token = user, password, None
        self._close_conn()
        return self


# ---------------------------------------------------------------------------
# MinIO


class Minio(_Peer):
    """MinIO (single drive, versioning and Object Lock capable) on 127.0.0.1.

    Minio(workdir=None, user=None, password=None, tls=False, region="us-east-1")
    user/password default to $MINIO_ROOT_USER/$MINIO_ROOT_PASSWORD, else
    fixed test values. After start(): endpoint, port, access_key, secret_key,
    region, data_dir; with tls: ca_file.
    """

    name = "minio"
    start_timeout = 60.0

    def __init__(self, workdir=None, user=None, password=None, tls=False, region="us-east-1"):
        super().__init__(workdir)
        self.bin = binary("KT_MINIO_BIN")
        self.access_key = user or os.environ.get("MINIO_ROOT_USER") or "kontinuity"
        self.secret_key = (password or os.environ.get("MINIO_ROOT_PASSWORD")
                           or "kontinuity-secret-key")
        self.region = region
        self.tls = tls
        self.port = free_port()
        self.console_port = free_port()
        self.data_dir = self.dir / "data"
        self.certs_dir = self.dir / "certs"
        self.endpoint = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.ca_file = None
        if tls:
            ca = CA(self.dir / "pki")
            self.ca_file = ca.cert
            cert, key = ca.issue("minio", "minio", client=False)
            self.certs_dir.mkdir(exist_ok=True)
            shutil.copy(cert, self.certs_dir / "public.crt")
            shutil.copy(key, self.certs_dir / "private.key")

    def start(self, timeout=None):
        self.data_dir.mkdir(exist_ok=True)
        env = _clean_env(("MINIO_",))
        env.update(MINIO_ROOT_USER=self.access_key, MINIO_ROOT_PASSWORD=self.secret_key,
                   MINIO_REGION=self.region, MINIO_BROWSER="off", MINIO_UPDATE="off",
                   MINIO_CALLHOME_ENABLE="off", HOME=str(self.dir))
        argv = [self.bin, "server", self.data_dir, "--quiet",
                "--address", f"127.0.0.1:{self.port}",
                "--console-address", f"127.0.0.1:{self.console_port}",
                "--certs-dir", self.certs_dir]
        return self._launch(argv, env=env, timeout=timeout)

    def ssl_context(self):
        return https_context(self.ca_file) if self.tls else None

    def _ready(self):
        status, _ = http_request(self.endpoint, "/minio/health/live",
                                 ssl_context=self.ssl_context(), timeout=2)
        if status != 200:
            return False, f"live -> {status}"
        status, _ = http_request(self.endpoint, "/minio/health/ready",
                                 ssl_context=self.ssl_context(), timeout=2)
        if status != 200:
            return False, f"ready -> {status}"
        # "ready" can answer before the object layer is up (an S3 request then
        # gets 503 XMinioServerNotInitialized); ready means S3 answers too: an
        # anonymous request is refused with 403, not 503.
        status, _ = http_request(self.endpoint, "/", ssl_context=self.ssl_context(), timeout=2)
        return status == 403, f"anonymous GET / -> {status}"


# ---------------------------------------------------------------------------
# kube-apiserver


class KubeApiserver(_Peer):
    """kube-apiserver on 127.0.0.1 with its own etcd (3.6) unless one is given.

    KubeApiserver(workdir=None, etcd=None, extra_args=())
    After start(): url, port, token (group system:masters), ca_file,
    kubeconfig (token + CA data), kubeconfig_cert (client certificate of
    O=system:masters + CA data), client_cert/client_key, sa_key/sa_pub,
    etcd; request(method, path, body) -> (status, decoded JSON or bytes).
    No controller-manager runs: e.g. ServiceAccount "default" is not created.
    """

    name = "kube-apiserver"
    start_timeout = 180.0

    def __init__(self, workdir=None, etcd=None, extra_args=()):
        super().__init__(workdir)
        self.bin = binary("KT_KUBE_APISERVER_BIN")
        self.extra_args = list(extra_args)
        self._own_etcd = etcd is None
        self.etcd = etcd or Etcd(self.dir / "etcd")
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.token = secrets.token_hex(16)
        pki = self.dir / "pki"
        ca = CA(pki, cn="kontinuity-test-kube-ca")
        self.ca_file = ca.cert
        self.serving_cert, self.serving_key = ca.issue(
            "apiserver", "kube-apiserver", client=False,
            sans=("IP:127.0.0.1", "DNS:localhost", "DNS:kubernetes",
                  "DNS:kubernetes.default.svc"))
        self.client_cert, self.client_key = ca.issue("admin", "kt-admin", org="system:masters",
                                                     server=False)
        self.sa_key, self.sa_pub = pki / "sa.key", pki / "sa.pub"
        _openssl("genrsa", "-out", "sa.key", "2048", cwd=pki)
        _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)
        self.token_file = pki / "tokens.csv"
        self.token_file.write_text(f'{self.token},kt-admin,kt-admin-uid,"system:masters"\n')
        self.kubeconfig = self.dir / "kubeconfig"
        self.kubeconfig_cert = self.dir / "kubeconfig-cert"

    def _argv(self):
        return [self.bin,
                "--etcd-servers", self.etcd.endpoint,
                *(["--etcd-cafile", self.etcd.ca_file, "--etcd-certfile", self.etcd.client_cert,
                   "--etcd-keyfile", self.etcd.client_key] if self.etcd.tls else []),
                "--bind-address", "127.0.0.1",
                "--advertise-address", "127.0.0.1",
                "--secure-port", str(self.port),
                "--cert-dir", self.dir / "cert-dir",
                "--tls-cert-file", self.serving_cert,
                "--tls-private-key-file", self.serving_key,
                "--client-ca-file", self.ca_file,
                "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
                "--service-account-key-file", self.sa_pub,
                "--service-account-signing-key-file", self.sa_key,
                "--token-auth-file", self.token_file,
                "--authorization-mode", "RBAC",
                "--service-cluster-ip-range", "10.96.0.0/16",
                "--endpoint-reconciler-type", "none",
                "--profiling=false",
                *self.extra_args]

    def start(self, timeout=None):
        if self._own_etcd and not self.etcd.running():
            self.etcd.start()
        self._write_kubeconfigs()
        try:
            return self._launch(self._argv(), timeout=timeout)
        except Exception:
            if self._own_etcd:
                self.etcd.stop()
            raise

    def stop(self):
        super().stop()
        if self._own_etcd:
            self.etcd.stop()
        return self

    def ssl_context(self):
        return https_context(self.ca_file)

    def _ready(self):
        status, body = http_request(self.url, "/readyz", ssl_context=self.ssl_context(),
                                    headers={"Authorization": f"Bearer {self.token}"}, timeout=5)
        return status == 200, f"GET /readyz -> {status} {body[-300:]!r}"

    def request(self, method, path, body=None, content_type="application/json"):
        """One authenticated (token) request; returns (status, JSON or bytes)."""
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        if body is not None:
            headers["Content-Type"] = content_type
        status, data = http_request(self.url, path, method=method, body=body, headers=headers,
                                    ssl_context=self.ssl_context(), timeout=30)
        try:
            return status, json.loads(data)
        except ValueError:
            return status, data

    def _write_kubeconfigs(self):
        ca_data = _b64(self.ca_file.read_bytes())

        def config(user_lines):
            return (
                "apiVersion: v1\nkind: Config\n"
                "clusters:\n- name: kt\n  cluster:\n"
                f"    server: {self.url}\n"
                f"    certificate-authority-data: {ca_data}\n"
                "users:\n- name: kt-admin\n  user:\n" + user_lines +
                "contexts:\n- name: kt\n  context:\n    cluster: kt\n    user: kt-admin\n"
                "    namespace: default\n"
                "current-context: kt\n")

        self.kubeconfig.write_text(config(f"    token: {self.token}\n"))
        self.kubeconfig_cert.write_text(config(
            f"    client-certificate-data: {_b64(self.client_cert.read_bytes())}\n"
            f"    client-key-data: {_b64(self.client_key.read_bytes())}\n"))
        for p in (self.kubeconfig, self.kubeconfig_cert):
            p.chmod(0o600)
