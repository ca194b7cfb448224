"""Fixtures for CSI volume snapshot tests on the real kube-apiserver, with the
snapshot controller stood in (snapshot_controller_standin.py):

- snapshot_crds (session): the shared kube_apiserver with the
  snapshot.storage.k8s.io/v1 CRDs of deploy/crds/ installed (created through the
  REST API, waited for until Established and served), one default
  VolumeSnapshotClass and one StorageClass per stand-in driver.
- snapshot_standin (module): the stand-in running as a thread against it,
  stopped at the end of the module; a SnapshotCluster with REST helpers.

Stand-in drivers (see snapshot_controller_standin.py): DRIVER (ready at once),
SLOW_DRIVER (ready after SLOW_SECONDS), ERROR_DRIVER (status.error, never ready),
NO_DEFAULT_DRIVER (ready, but no default VolumeSnapshotClass).
"""

import pathlib
import time
import uuid

import pytest

import snapshot_controller_standin as sc
from snapshot_controller_standin import (  # noqa: F401 (re-exported for tests)
    DRIVER, ERROR_DRIVER, SLOW_DRIVER, VS_PATH, VSC_PATH, VSCLASS_PATH, PVC_PATH, PV_PATH,
    SC_PATH, ns_path)

ROOT = pathlib.Path(__file__).resolve().parents[2]
CRD_DIR = ROOT / "deploy" / "crds" / "snapshot.storage.k8s.io"
CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
NO_DEFAULT_DRIVER = "nodefault.standin.csi.kontinuity.test"
SLOW_SECONDS = 2.0
# default VolumeSnapshotClass and StorageClass name for each driver
CLASSES = {DRIVER: "standin", SLOW_DRIVER: "standin-slow", ERROR_DRIVER: "standin-error"}
STORAGE_CLASSES = dict(CLASSES, **{NO_DEFAULT_DRIVER: "standin-nodefault"})


def wait_for(pred, timeout=20, what="condition", interval=0.05):
    """Poll PRED until it returns something true; that value, or AssertionError."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def crd_manifests():
    import yaml              # python3-yaml (scripts/deps.sh test); only needed here
    return [yaml.safe_load(p.read_text()) for p in sorted(CRD_DIR.glob("*.yaml"))]


def install_crds(api, timeout=60):
    """Create (or replace) the CRDs; wait until each is Established and its
    resource lists. Returns the CRD objects as the API server has them."""
    names = []
    for crd in crd_manifests():
        name = crd["metadata"]["name"]
        status, out = api.request("POST", f"{CRD_PATH}?fieldValidation=Strict", crd)
        if status == 409:        # already there from an earlier module: replace it
            old = api.call("GET", f"{CRD_PATH}/{name}")
            crd["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
            api.call("PUT", f"{CRD_PATH}/{name}?fieldValidation=Strict", crd)
        elif status not in (200, 201):
            raise AssertionError(f"creating CRD {name}: {status} {out}")
        names.append(name)

    def established(name):
        c = api.call("GET", f"{CRD_PATH}/{name}")
        conds = {x["type"]: x["status"] for x in (c.get("status") or {}).get("conditions") or []}
        return c if conds.get("Established") == "True" and conds.get("NamesAccepted") == "True" \
            else None

    crds = [wait_for(lambda n=n: established(n), timeout, f"CRD {n} Established") for n in names]
    for path in (VS_PATH, VSC_PATH, VSCLASS_PATH):
        wait_for(lambda p=path: api.request("GET", p)[0] == 200, timeout, f"GET {path} served")
    return crds


def ensure(api, path, obj):
    """Create OBJ at PATH unless an object of that name exists."""
    status, out = api.request("POST", path, obj)
    if status not in (200, 201, 409):
        raise AssertionError(f"POST {path}: {status} {out}")


class Recorder:
    """Every version of the objects at a list PATH, as a watch delivers them
    (so a test sees a state that lasted only a moment). .versions(name) ->
    [object, ...] in order; .close() ends the watch."""

    def __init__(self, api, path):
        import http.client
        import threading
        self.events, self._lock = [], threading.Lock()
        self._conn = http.client.HTTPSConnection(api.host, api.port, timeout=60,
                                                 context=api.ctx)
        self._conn.request("GET", f"{path}?watch=1&timeoutSeconds=60",
                           headers={"Authorization": f"Bearer {api.token}"})
        self._resp = self._conn.getresponse()
        assert self._resp.status == 200, self._resp.read()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        import json
        try:
            for line in self._resp:
                ev = json.loads(line)
                with self._lock:
                    self.events.append((ev["type"], ev["object"]))
        except (OSError, ValueError):
            pass

    def versions(self, name):
        with self._lock:
            return [o for _, o in self.events if o.get("metadata", {}).get("name") == name]

    def close(self):
        try:
            self._conn.sock.shutdown(2)
        except (AttributeError, OSError):
            pass
        self._thread.join(timeout=10)
        self._conn.close()


class SnapshotCluster:
    """The kube-apiserver with the CRDs, and REST helpers for tests."""

    def __init__(self, kube, api, crds):
        self.kube, self.api, self.crds = kube, api, crds
        self.standin = None

    def namespace(self, prefix="snap"):
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        self.api.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                               "metadata": {"name": name}})
        return name

    def bound_pvc(self, namespace, name, size="1Gi", driver=DRIVER, storage_class=None):
        """A PVC Bound to a CSI PV of DRIVER; storage_class defaults to the
        driver's StorageClass (so a restore can reuse it)."""
        if storage_class is None:
            storage_class = STORAGE_CLASSES.get(driver, "")
        return sc.make_bound_pvc(self.api, namespace, name, size=size, driver=driver,
                                 storage_class=storage_class)

    def create_snapshot(self, namespace, name, pvc=None, content=None, vsclass=None,
                        annotations=None):
        spec = {"source": {}}
        if pvc is not None:
            spec["source"]["persistentVolumeClaimName"] = pvc
        if content is not None:
            spec["source"]["volumeSnapshotContentName"] = content
        if vsclass is not None:
            spec["volumeSnapshotClassName"] = vsclass
        meta = {"name": name, "namespace": namespace}
        if annotations:
            meta["annotations"] = annotations
        return self.api.request("POST", ns_path(VS_PATH, namespace), {
            "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
            "metadata": meta, "spec": spec})

    def restore_pvc(self, namespace, name, snapshot, size="1Gi", storage_class=CLASSES[DRIVER]):
        """Create a PVC whose dataSource is VolumeSnapshot SNAPSHOT (the stand-in
        provisions and binds it once the snapshot is ready)."""
        return self.api.create(ns_path(PVC_PATH, namespace), {
            "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": storage_class,
                     "resources": {"requests": {"storage": size}},
                     "dataSource": {"apiGroup": "snapshot.storage.k8s.io",
                                    "kind": "VolumeSnapshot", "name": snapshot}}})

    def wait_pvc_bound(self, namespace, name, timeout=20):
        def check():
            p = self.pvc(namespace, name)
            return p if ((p or {}).get("status") or {}).get("phase") == "Bound" else None
        return wait_for(check, timeout, f"PVC {namespace}/{name} Bound")

    def record_snapshots(self, namespace):
        """A Recorder of the VolumeSnapshots of NAMESPACE (close it)."""
        return Recorder(self.api, ns_path(VS_PATH, namespace))

    def snapshot(self, namespace, name):
        return self.api.get(ns_path(VS_PATH, namespace, name))

    def content(self, name):
        return self.api.get(f"{VSC_PATH}/{name}")

    def pvc(self, namespace, name):
        return self.api.get(ns_path(PVC_PATH, namespace, name))

    def wait_snapshot(self, namespace, name, pred, timeout=20, what="snapshot state"):
        def check():
            vs = self.snapshot(namespace, name)
            return vs if vs is not None and pred(vs) else None
        return wait_for(check, timeout, f"{namespace}/{name}: {what}")

    def wait_ready(self, namespace, name, timeout=20):
        return self.wait_snapshot(namespace, name,
                                  lambda v: (v.get("status") or {}).get("readyToUse") is True,
                                  timeout, "readyToUse true")

    def events(self, namespace, name=None):
        items = self.api.list(f"/api/v1/namespaces/{namespace}/events")
        return [e for e in items if name is None or e["involvedObject"]["name"] == name]


@pytest.fixture(scope="session")
def snapshot_crds(kube_apiserver):
    """kube_apiserver + the snapshot CRDs, default classes and StorageClasses."""
    k = kube_apiserver
    api = sc.Api(k.url, k.token, k.ca_file)
    crds = install_crds(api)
    for driver, name in CLASSES.items():
        ensure(api, VSCLASS_PATH, {
            "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotClass",
            "metadata": {"name": name, "annotations": {sc.ANN_DEFAULT_CLASS: "true"}},
            "driver": driver, "deletionPolicy": "Delete"})
    for driver, name in STORAGE_CLASSES.items():
        ensure(api, SC_PATH, {
            "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": name}, "provisioner": driver,
            "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate"})
    return SnapshotCluster(k, api, crds)


@pytest.fixture(scope="module")
def snapshot_standin(snapshot_crds, tmp_path_factory):
    """The stand-in running (a thread) for one test module; its log is
    standin.log in a module temp dir (cluster.standin_log)."""
    log = tmp_path_factory.mktemp("snapshot-standin") / "standin.log"
    drivers = dict(sc.DEFAULT_DRIVERS, **{NO_DEFAULT_DRIVER: "ready"})
    s = sc.SnapshotControllerStandin(snapshot_crds.api, log, drivers=drivers,
                                     slow_seconds=SLOW_SECONDS).start()
    snapshot_crds.standin, snapshot_crds.standin_log = s, log
    yield snapshot_crds
    s.stop()
    snapshot_crds.standin = None
    if s.errors:                 # the stand-in met something it does not handle
        bad = [line for line in log.read_text().splitlines()
               if line.split(" ")[1:2] in (["error"], ["pass-error"])]
        pytest.fail(f"snapshot stand-in: {s.errors} errors (see {log}):\n" + "\n".join(bad[-10:]),
                    pytrace=False)
