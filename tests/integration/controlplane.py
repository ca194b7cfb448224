"""A kubeadm-style control plane on loopback for the etcd disaster-recovery
tests: a 3-member etcd 3.6 cluster (plain HTTP, random free ports) whose
member m1 runs as a static pod under the kubelet stand-in
(kubelet_standin.py) from a manifest in a temp manifests dir, m2 and m3 as
plain processes; a kube-apiserver on the three endpoints; a small
Kubernetes REST client with a recording watch.

    cp = EtcdCluster(tmp_path / "cp").start()
    api = start_apiserver(cp, tmp_path / "api")
    kube = Kube(api)
    kube.create_namespace("demo"); kube.create_configmap("demo", "c1", {"k": "v"})
    w = kube.watch("configmaps", "demo", resource_version=rv)   # records events
    cp.kill("m2"); cp.kill("m3")
    ...
    cp.stop(); api.stop()

Start everything from the test's (main) thread: children get
PR_SET_PDEATHSIG, which fires when the *thread* that forked them ends.
No test functions here; see test_controlplane_standin.py.
"""

import base64
import fcntl
import http.client
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

import peers

STANDIN = Path(__file__).resolve().with_name("kubelet_standin.py")


# ---------------------------------------------------------------------------
# kubelet stand-in


class KubeletStandin:
    """kubelet_standin.py run as a peer process over MANIFESTS.

    KubeletStandin(workdir, manifests, bins={"etcd": path}, grace=30.0)
    log_path: the stand-in's event log; pod_log(pod): a pod's output."""

    def __init__(self, workdir, manifests, bins=None, grace=30.0, backoff=0.5):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.manifests = Path(manifests)
        self.manifests.mkdir(parents=True, exist_ok=True)
        self.log_path = self.dir / "standin.log"
        self.out_path = self.dir / "standin.out"
        self.pod_logs = self.dir / "pods"
        self.pod_logs.mkdir(exist_ok=True)
        self.bins = dict(bins or {})
        self.grace = grace
        self.backoff = backoff
        self.proc = None

    def start(self):
        argv = [sys.executable, STANDIN, "--manifests", self.manifests, "--log", self.log_path,
                "--pod-logs", self.pod_logs, "--grace", self.grace, "--backoff", self.backoff]
        for word, path in self.bins.items():
            argv += ["--bin", f"{word}={path}"]
        self.proc = peers.start_process(argv, self.out_path, cwd=self.dir)
        deadline = time.monotonic() + 10
        while not self.events("standin-start"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"kubelet stand-in did not start:\n"
                                   f"{peers.log_tail(self.out_path)}")
            time.sleep(0.05)
        return self

    def stop(self):
        if self.proc is not None:
            peers.stop_process(self.proc, timeout=self.grace + 10)
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def pod_log(self, pod="kube-system/etcd"):
        return self.pod_logs / (pod.replace("/", "_") + ".log")

    def events(self, *kinds, pod=None):
        """The event log as dicts (time, event, and the key=value fields),
        only the KINDS given (all if none), only POD's if given."""
        out = []
        try:
            lines = self.log_path.read_text().splitlines()
        except FileNotFoundError:
            return out
        for line in lines:
            try:
                words = shlex.split(line)
            except ValueError:           # a line being written
                continue
            if len(words) < 2:
                continue
            ev = {"time": words[0], "event": words[1]}
            for w in words[2:]:
                k, _, v = w.partition("=")
                ev[k] = v
            if kinds and ev["event"] not in kinds:
                continue
            if pod is not None and ev.get("pod") != pod:
                continue
            out.append(ev)
        return out

    def pid(self, pod="kube-system/etcd"):
        """PID of POD's process now, per the log, or None."""
        pid = None
        for ev in self.events("start", "stop", "exit", pod=pod):
            pid = int(ev["pid"]) if ev["event"] == "start" else None
        return pid

    def wait_event(self, event, pod="kube-system/etcd", after=0, timeout=30, **match):
        """Wait for the first EVENT of POD past the first AFTER such events
        (count them with len(events(...)) before acting) whose fields equal
        MATCH; returns it."""
        deadline = time.monotonic() + timeout
        while True:
            evs = [e for e in self.events(event, pod=pod)[after:]
                   if all(e.get(k) == str(v) for k, v in match.items())]
            if evs:
                return evs[0]
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {event} {match} for {pod} in {timeout}s; stand-in log:\n"
                                   f"{peers.log_tail(self.log_path)}")
            time.sleep(0.05)


# ---------------------------------------------------------------------------
# etcd cluster


class Member:
    """One etcd member's name, ports, URLs and dirs."""

    def __init__(self, name, workdir):
        self.name = name
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.dir / "data"
        self.client_port = peers.free_port()
        self.peer_port = peers.free_port()
        self.metrics_port = peers.free_port()
        self.endpoint = f"http://127.0.0.1:{self.client_port}"
        self.peer_url = f"http://127.0.0.1:{self.peer_port}"
        self.metrics_url = f"http://127.0.0.1:{self.metrics_port}"
        self.log_path = self.dir / "etcd.log"
        self.proc = None          # for members run directly

    def __repr__(self):
        return f"Member({self.name} {self.endpoint} peer {self.peer_url})"


class EtcdCluster:
    """Three etcd 3.6 members on 127.0.0.1: STATIC ("m1") as a kubeadm-style
    static pod under the kubelet stand-in, the others as direct processes.

    Attributes: members (name -> Member), endpoints (list), manifests_dir,
    manifest_path (manifests_dir/etcd.yaml), token, initial_cluster,
    standin (KubeletStandin), dir."""

    POD = "kube-system/etcd"

    def __init__(self, workdir, names=("m1", "m2", "m3"), static="m1",
                 token="kt-dr-cluster", grace=30.0, backoff=0.5):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.bin = peers.binary("etcd")
        self.etcdctl_bin = peers.binary("etcdctl")
        self.etcdutl_bin = peers.binary("etcdutl")
        self.members = {n: Member(n, self.dir / n) for n in names}
        self.static = static
        self.token = token
        self.manifests_dir = self.dir / "manifests"
        self.manifests_dir.mkdir(exist_ok=True)
        self.manifest_path = self.manifests_dir / "etcd.yaml"
        self.standin = KubeletStandin(self.dir / "kubelet", self.manifests_dir,
                                      bins={"etcd": self.bin}, grace=grace,
                                      backoff=backoff)

    # -- shapes ---------------------------------------------------------------

    def __getitem__(self, name):
        return self.members[name]

    @property
    def endpoints(self):
        return [m.endpoint for m in self.members.values()]

    @property
    def initial_cluster(self):
        return ",".join(f"{m.name}={m.peer_url}" for m in self.members.values())

    def flags(self, name, state="new", initial_cluster=None):
        """etcd flags (--flag=value) for member NAME, kubeadm's set minus TLS."""
        m = self.members[name]
        return [
            f"--advertise-client-urls={m.endpoint}",
            f"--data-dir={m.data_dir}",
            "--feature-gates=InitialCorruptCheck=true",
            f"--initial-advertise-peer-urls={m.peer_url}",
            f"--initial-cluster={initial_cluster or self.initial_cluster}",
            f"--initial-cluster-state={state}",
            f"--initial-cluster-token={self.token}",
            f"--listen-client-urls={m.endpoint}",
            f"--listen-metrics-urls={m.metrics_url}",
            f"--listen-peer-urls={m.peer_url}",
            f"--name={m.name}",
            "--snapshot-count=10000",
            "--watch-progress-notify-interval=5s",
        ]

    def manifest(self, extra_flags=()):
        """The static pod (a dict) for the static member, shaped like
        kubeadm's /etc/kubernetes/manifests/etcd.yaml (without TLS)."""
        m = self.members[self.static]
        probe = lambda path, **kw: {  # noqa: E731
            "failureThreshold": kw.get("failure", 8),
            "httpGet": {"host": "127.0.0.1", "path": path, "port": m.metrics_port,
                        "scheme": "HTTP"},
            "initialDelaySeconds": 10, "periodSeconds": 10, "timeoutSeconds": 15}
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "annotations": {
                    "kubeadm.kubernetes.io/etcd.advertise-client-urls": m.endpoint},
                "creationTimestamp": None,
                "labels": {"component": "etcd", "tier": "control-plane"},
                "name": "etcd",
                "namespace": "kube-system",
            },
            "spec": {
                "containers": [{
                    "command": ["etcd", *self.flags(self.static), *extra_flags],
                    "image": "registry.k8s.io/etcd:3.6.16-0",
                    "imagePullPolicy": "IfNotPresent",
                    "livenessProbe": probe("/livez"),
                    "name": "etcd",
                    "readinessProbe": probe("/readyz", failure=3),
                    "resources": {"requests": {"cpu": "100m", "memory": "100Mi"}},
                    "startupProbe": probe("/readyz", failure=24),
                    "volumeMounts": [{"mountPath": str(m.data_dir), "name": "etcd-data"}],
                }],
                "hostNetwork": True,
                "priority": 2000001000,
                "priorityClassName": "system-node-critical",
                "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                "volumes": [{"hostPath": {"path": str(m.data_dir), "type": "DirectoryOrCreate"},
                             "name": "etcd-data"}],
            },
            "status": {},
        }

    def write_manifest(self, path=None, extra_flags=(), text=None):
        """Write the manifest (or TEXT) to PATH (default manifest_path)
        atomically: a dot-file the stand-in ignores, then a rename."""
        path = Path(path or self.manifest_path)
        if text is None:
            text = yaml.safe_dump(self.manifest(extra_flags), default_flow_style=False)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
        return path

    # -- lifecycle ------------------------------------------------------------

    def start(self, timeout=60):
        """Write m1's manifest, start the stand-in and the other members
        (all from this thread), wait until every member is healthy."""
        self.write_manifest()
        self.standin.start()
        for name in self.members:
            if name != self.static:
                self.start_member(name)
        self.wait_healthy(timeout=timeout)
        return self

    def start_member(self, name, state="new", initial_cluster=None):
        """Run a non-static member directly (from the calling thread)."""
        m = self.members[name]
        assert name != self.static, "the static member runs under the stand-in"
        if m.proc is not None and m.proc.poll() is None:
            raise RuntimeError(f"{name} already runs (pid {m.proc.pid})")
        argv = [self.bin, *self.flags(name, state=state, initial_cluster=initial_cluster)]
        m.proc = peers.start_process(argv, m.log_path, env=peers._clean_env(("ETCD",)),
                                     cwd=m.dir)
        return m

    def start_joining(self, name, initial_cluster, wipe=True, timeout=60, wait=True):
        """Start NAME as a new member of the running cluster: empty data dir
        (wiped unless wipe=False), --initial-cluster-state=existing and
        INITIAL_CLUSTER as `etcdctl member add` printed it (member_add()
        returns it as ["ETCD_INITIAL_CLUSTER"]). Waits for its /health."""
        m = self.members[name]
        if wipe and m.data_dir.exists():
            shutil.rmtree(m.data_dir)
        self.start_member(name, state="existing", initial_cluster=initial_cluster)
        if wait:
            self.wait_healthy([name], timeout=timeout)
        return m

    def pid(self, name):
        if name == self.static:
            return self.standin.pid(self.POD)
        m = self.members[name]
        return m.proc.pid if m.proc is not None and m.proc.poll() is None else None

    def kill(self, name):
        """SIGKILL member NAME (the stand-in restarts the static member after
        its back-off, as a kubelet would). Returns the PID killed."""
        m = self.members[name]
        if name == self.static:
            pid = self.pid(name)
            if pid is None:
                raise RuntimeError(f"{name} is not running under the stand-in")
            os.kill(pid, signal.SIGKILL)
            return pid
        if m.proc is None:
            raise RuntimeError(f"{name} was never started")
        pid = m.proc.pid
        m.proc.kill()
        peers.stop_process(m.proc, timeout=1)
        return pid

    def stop_member(self, name):
        m = self.members[name]
        if m.proc is not None:
            peers.stop_process(m.proc)

    def stop(self):
        self.standin.stop()
        for name, m in self.members.items():
            if name != self.static and m.proc is not None:
                peers.stop_process(m.proc)
        return self

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- health and membership --------------------------------------------------

    def health(self, name, timeout=2):
        """(ok, detail) of GET /health on member NAME."""
        try:
            status, body = peers.http_request(self.members[name].endpoint, "/health",
                                              timeout=timeout)
        except (OSError, http.client.HTTPException) as e:
            return False, f"{type(e).__name__}: {e}"
        try:
            ok = status == 200 and json.loads(body).get("health") == "true"
        except ValueError:
            ok = False
        return ok, f"{status} {body[:200]!r}"

    def wait_healthy(self, names=None, timeout=60):
        """Wait until every member in NAMES (default all) answers /health
        true (which needs a leader). Returns the seconds it took."""
        names = list(names or self.members)
        t0 = time.monotonic()
        deadline = t0 + timeout
        while True:
            states = {n: self.health(n) for n in names}
            if all(ok for ok, _ in states.values()):
                return time.monotonic() - t0
            if time.monotonic() > deadline:
                bad = {n: d for n, (ok, d) in states.items() if not ok}
                logs = "\n".join(f"--- {n}:\n{peers.log_tail(self._log(n), 15)}" for n in bad)
                raise TimeoutError(f"not healthy after {timeout}s: {bad}\n{logs}")
            time.sleep(0.1)

    def _log(self, name):
        return self.standin.pod_log(self.POD) if name == self.static else \
            self.members[name].log_path

    def etcdctl(self, *args, endpoints=None, check=True, timeout=60):
        """etcdctl 3.6 against ENDPOINTS (a member name, a list of names or
        URLs; default all members). Returns CompletedProcess (text)."""
        if endpoints is None:
            eps = self.endpoints
        else:
            if isinstance(endpoints, str):
                endpoints = [endpoints]
            eps = [self.members[e].endpoint if e in self.members else e for e in endpoints]
        argv = [self.etcdctl_bin, "--endpoints", ",".join(eps), *[str(a) for a in args]]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                           env=peers._clean_env(("ETCDCTL",)))
        if check and r.returncode != 0:
            raise RuntimeError(f"etcdctl {' '.join(map(str, args))} exited {r.returncode}:\n"
                               f"stdout: {r.stdout}\nstderr: {r.stderr}")
        return r

    def member_list(self, endpoints=None):
        """`etcdctl member list -w json` members, each with "id" (hex string)
        added and "isLearner" always present."""
        out = json.loads(self.etcdctl("member", "list", "-w", "json",
                                      endpoints=endpoints).stdout)
        members = out.get("members", [])
        for mem in members:
            mem["id"] = f"{mem['ID']:x}"
            mem.setdefault("isLearner", False)
            mem.setdefault("name", "")
        return members

    def member_add(self, name, learner=False, endpoints=None, retry=30):
        """`etcdctl member add NAME --peer-urls=<its peer URL> [--learner]`;
        returns the ETCD_* values it printed plus "id" (hex) and "attempts".
        etcd refuses a voting member with "etcdserver: unhealthy cluster"
        until the leader has been connected to a quorum of the new
        configuration for 5 s (so right after a previous member joined):
        that is retried every 0.5 s for up to RETRY seconds."""
        args = ["member", "add", name, f"--peer-urls={self.members[name].peer_url}"]
        if learner:
            args.append("--learner")
        deadline = time.monotonic() + retry
        attempts = 0
        while True:
            attempts += 1
            r = self.etcdctl(*args, endpoints=endpoints, check=False)
            if r.returncode == 0 or "unhealthy cluster" not in r.stderr \
                    or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        if r.returncode != 0:
            raise RuntimeError(f"etcdctl {' '.join(args)} exited {r.returncode} after "
                               f"{attempts} attempts:\nstdout: {r.stdout}\nstderr: {r.stderr}")
        out = {}
        for line in r.stdout.splitlines():
            if line.startswith("ETCD_") and "=" in line:
                k, _, v = line.partition("=")
                out[k] = v.strip().strip('"')
            elif line.startswith("Member ") and " added " in line:
                out["id"] = line.split()[1]
        out["attempts"] = attempts
        return out

    def member_remove(self, member_id, endpoints=None):
        return self.etcdctl("member", "remove", member_id, endpoints=endpoints)

    def restore(self, snapshot, data_dir, name=None, initial_cluster=None,
                bump_revision=1_000_000_000):
        """`etcdutl snapshot restore SNAPSHOT` into DATA_DIR for member NAME
        (default the static one) with the cluster's token and that member's
        peer URL; INITIAL_CLUSTER defaults to all members (as the manifest
        says). bump_revision=0 leaves out --bump-revision/--mark-compacted.
        Returns the CompletedProcess; raises on failure."""
        m = self.members[name or self.static]
        argv = [self.etcdutl_bin, "snapshot", "restore", str(snapshot), "--data-dir",
                str(data_dir), "--name", m.name,
                "--initial-cluster", initial_cluster or self.initial_cluster,
                "--initial-advertise-peer-urls", m.peer_url,
                "--initial-cluster-token", self.token]
        if bump_revision:
            argv += ["--bump-revision", str(bump_revision), "--mark-compacted"]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} exited {r.returncode}:\n{r.stderr}")
        return r

    def data_dir_in_use(self, name=None):
        """True while a process holds the bbolt lock (flock) on NAME's
        member/snap/db: the way to know etcd is really gone."""
        db = self.members[name or self.static].data_dir / "member" / "snap" / "db"
        try:
            f = open(db, "rb")
        except FileNotFoundError:
            return False
        with f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(f, fcntl.LOCK_UN)
            return False

    def endpoint_status(self, endpoints=None):
        """`etcdctl endpoint status -w json` as a list."""
        return json.loads(self.etcdctl("endpoint", "status", "-w", "json",
                                       endpoints=endpoints).stdout)


# ---------------------------------------------------------------------------
# kube-apiserver on the cluster


class _EtcdEndpoints:
    """What peers.KubeApiserver needs of an etcd: endpoint (here the list,
    comma-separated, for --etcd-servers) and tls."""

    tls = False
    ca_file = client_cert = client_key = None

    def __init__(self, endpoints):
        self.endpoint = ",".join(endpoints)

    def running(self):
        return True


def start_apiserver(cluster, workdir, extra_args=(), timeout=None):
    """A peers.KubeApiserver with --etcd-servers on every member of CLUSTER
    (an EtcdCluster or a list of endpoint URLs), started from this thread.
    It never stops the etcd members."""
    endpoints = cluster.endpoints if isinstance(cluster, EtcdCluster) else list(cluster)
    api = peers.KubeApiserver(workdir, etcd=_EtcdEndpoints(endpoints), extra_args=extra_args)
    return api.start(timeout=timeout)


# ---------------------------------------------------------------------------
# Kubernetes REST


_PATHS = {
    "namespaces": ("/api/v1", False),
    "secrets": ("/api/v1", True),
    "configmaps": ("/api/v1", True),
    "deployments": ("/apis/apps/v1", True),
}


def resource_path(resource, namespace=None, name=None):
    prefix, namespaced = _PATHS[resource]
    path = prefix
    if namespaced and namespace:
        path += f"/namespaces/{namespace}"
    path += f"/{resource}"
    if name:
        path += f"/{name}"
    return path


class Kube:
    """Token-authenticated (system:masters) REST calls on a KubeApiserver."""

    def __init__(self, api):
        self.api = api
        self.url = api.url
        self.token = api.token
        self.ssl = api.ssl_context()

    def _conn(self, timeout):
        host, _, port = self.url.split("://", 1)[1].rpartition(":")
        return http.client.HTTPSConnection(host, int(port), timeout=timeout, context=self.ssl)

    def request(self, method, path, body=None, timeout=30):
        """(status, decoded JSON or bytes). Connection errors and timeouts
        raise (OSError, http.client.HTTPException)."""
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
            headers["Content-Type"] = "application/json"
        conn = self._conn(timeout)
        try:
            conn.request(method, path, body=body, headers=headers)
            r = conn.getresponse()
            data = r.read()
        finally:
            conn.close()
        try:
            return r.status, json.loads(data)
        except ValueError:
            return r.status, data

    def create(self, resource, obj, namespace=None, timeout=30):
        return self.request("POST", resource_path(resource, namespace), obj, timeout=timeout)

    def get(self, resource, name, namespace=None, timeout=30):
        return self.request("GET", resource_path(resource, namespace, name), timeout=timeout)

    def list(self, resource, namespace=None, timeout=30, **params):
        """(status, list object); params go to the query (e.g. resourceVersion)."""
        q = "&".join(f"{k}={v}" for k, v in params.items())
        return self.request("GET", resource_path(resource, namespace) + (f"?{q}" if q else ""),
                            timeout=timeout)

    def list_ok(self, resource, namespace=None, retry=30, **params):
        """The list object; 429 ("storage is (re)initializing": the watch
        cache relists after etcd was lost or restored) and 5xx answers are
        retried for up to RETRY seconds, anything else raises."""
        deadline = time.monotonic() + retry
        while True:
            status, body = self.list(resource, namespace, **params)
            if status == 200:
                return body
            if (status != 429 and status < 500) or time.monotonic() > deadline:
                raise RuntimeError(f"list {resource} -> {status}: {body}")
            time.sleep(0.2)

    def names(self, resource, namespace=None, retry=30, **params):
        """Sorted names of list_ok()'s items."""
        body = self.list_ok(resource, namespace, retry=retry, **params)
        return sorted(i["metadata"]["name"] for i in body.get("items", []))

    # -- object shapes --------------------------------------------------------

    def create_namespace(self, name, **kw):
        return self.create("namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                          "metadata": {"name": name}}, **kw)

    def create_secret(self, namespace, name, data, **kw):
        enc = {k: base64.b64encode(v.encode() if isinstance(v, str) else v).decode()
               for k, v in data.items()}
        return self.create("secrets", {"apiVersion": "v1", "kind": "Secret",
                                       "metadata": {"name": name}, "type": "Opaque",
                                       "data": enc}, namespace, **kw)

    def create_configmap(self, namespace, name, data, **kw):
        return self.create("configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                          "metadata": {"name": name}, "data": data},
                           namespace, **kw)

    def create_deployment(self, namespace, name, replicas=1,
                          image="registry.k8s.io/pause:3.10", **kw):
        labels = {"app": name}
        return self.create("deployments", {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "labels": labels},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "main", "image": image}]}}},
        }, namespace, **kw)

    def watch(self, resource, namespace=None, resource_version=None, timeout_seconds=3600):
        """Open a watch now; returns a started Watch recording its events."""
        return Watch(self, resource, namespace, resource_version, timeout_seconds)


class Watch:
    """A watch (?watch=1&resourceVersion=RV) read by a background thread.

    events: list of dicts with t (seconds since open), type (ADDED,
    MODIFIED, DELETED, BOOKMARK, ERROR), name, rv (metadata.resourceVersion
    as int, None if absent), and for ERROR code/reason/message. status: the
    HTTP status; ended: None while the stream is open, else (t, why)."""

    def __init__(self, kube, resource, namespace=None, resource_version=None,
                 timeout_seconds=3600):
        self.kube = kube
        q = f"watch=1&timeoutSeconds={timeout_seconds}"
        if resource_version is not None:
            q += f"&resourceVersion={resource_version}"
        self.path = resource_path(resource, namespace) + "?" + q
        self.events = []
        self.status = None
        self.ended = None
        self._lock = threading.Lock()
        self._t0 = time.monotonic()
        self._conn = None
        self._closed = False
        self._opened = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"watch {self.path}")
        self._thread.start()
        if not self._opened.wait(30):
            raise TimeoutError(f"watch {self.path}: no response in 30 s")
        if self.status != 200:
            raise RuntimeError(f"watch {self.path} -> {self.status}: {self.ended}")

    def _run(self):
        why = "end of stream"
        try:
            self._conn = self.kube._conn(timeout=None)
            self._conn.request("GET", self.path, headers={
                "Authorization": f"Bearer {self.kube.token}", "Accept": "application/json"})
            r = self._conn.getresponse()
            self.status = r.status
            self._opened.set()
            if r.status != 200:
                why = r.read()[:500].decode("utf-8", "replace")
                return
            while True:
                line = r.readline()
                if not line:
                    break
                if line.strip():
                    self._record(json.loads(line))
        except Exception as e:                          # noqa: BLE001 - recorded
            why = "closed" if self._closed else f"{type(e).__name__}: {e}"
        finally:
            self.ended = (time.monotonic() - self._t0, why)
            self._opened.set()

    def _record(self, ev):
        obj = ev.get("object") or {}
        meta = obj.get("metadata") or {}
        rv = meta.get("resourceVersion")
        rec = {"t": round(time.monotonic() - self._t0, 3), "type": ev.get("type"),
               "name": meta.get("name"), "rv": int(rv) if rv and rv.isdigit() else None}
        if ev.get("type") == "ERROR":
            rec.update(code=obj.get("code"), reason=obj.get("reason"),
                       message=obj.get("message"))
        with self._lock:
            self.events.append(rec)

    def snapshot(self):
        with self._lock:
            return list(self.events)

    def wait(self, pred, timeout=30):
        """Wait until PRED(events) is true or the stream ended; returns events."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            evs = self.snapshot()
            if pred(evs) or self.ended:
                return evs
            time.sleep(0.05)
        return self.snapshot()

    def close(self):
        self._closed = True
        conn = self._conn
        if conn is not None and conn.sock is not None:
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(10)
        if conn is not None:
            conn.close()
