#!/usr/bin/env python3
"""A stand-in for the CSI snapshot machinery of a cluster, for tests on a
machine where neither the external snapshot controller, nor a CSI driver with
its csi-snapshotter and csi-provisioner sidecars, can run. It talks only to a
real kube-apiserver (REST over HTTPS with a bearer token), like they do.

    python3 snapshot_controller_standin.py --server URL --ca FILE
        --token-file FILE --log FILE [--slow-seconds S] [--driver NAME=MODE ...]

or in-process: SnapshotControllerStandin(api, log_path).start() / .stop().

It plays four parts, each as the real component does for the
snapshot.storage.k8s.io/v1 API (external-snapshotter v8):

1. the snapshot controller (common controller), for every VolumeSnapshot:
   - adds the finalizer snapshot.storage.kubernetes.io/volumesnapshot-as-source-protection;
   - dynamic (spec.source.persistentVolumeClaimName): resolves the class
     (spec.volumeSnapshotClassName, else the one class annotated
     snapshot.storage.kubernetes.io/is-default-class "true" whose driver is the
     PV's, written back into spec); failures go to status.error
     ("Failed to get snapshot class with error ...", "Failed to set default
     snapshot class with error cannot find default snapshot class", ...);
     requires the PVC to exist and be Bound to a CSI PV; adds the PVC finalizer
     snapshot.storage.kubernetes.io/pvc-as-source-protection while the snapshot
     is not ready; creates VolumeSnapshotContent snapcontent-<snapshot uid>
     (source.volumeHandle from the PV, driver and deletionPolicy from the class,
     volumeSnapshotRef with uid, volumeSnapshotClassName, sourceVolumeMode);
   - pre-provisioned (spec.source.volumeSnapshotContentName): binds to that
     content if its volumeSnapshotRef names this snapshot (fills the ref uid);
   - copies the content's status into the snapshot's: boundVolumeSnapshotContentName,
     creationTime (RFC 3339), readyToUse, restoreSize (a quantity), error;
     adds snapshot.storage.kubernetes.io/volumesnapshot-bound-protection once
     bound to a content whose policy is Delete;
   - a bound snapshot whose content is gone (or points elsewhere) gets
     "VolumeSnapshotContent is missing" (or "... is not bound to the
     VolumeSnapshot correctly") and readyToUse false; no new content is made;
   - on deletion: waits while a Pending PVC restores from the snapshot; marks the
     content snapshot.storage.kubernetes.io/volumesnapshot-being-deleted "yes";
     deletes the content when its policy is Delete and drops the bound finalizer
     only once the content is gone; Retain keeps the content.
   - adds snapshot.storage.kubernetes.io/volumesnapshotcontent-bound-protection to
     every bound content.
2. the csi-snapshotter sidecar + driver CreateSnapshot, for contents whose driver
   is one of ours; the mode is the VolumeSnapshot's annotation MODE_ANNOTATION,
   else the class parameter MODE_ANNOTATION, else the driver's mode:
   - ready: status {snapshotHandle, creationTime (Unix ns), restoreSize (the PV's
     capacity in bytes), readyToUse: true} at once;
   - slow: the same with readyToUse false, then true SLOW seconds after the
     creationTime (annotation SLOW_ANNOTATION, else --slow-seconds);
   - error: status {readyToUse: false, error {message, time}}, never ready.
   On content deletion (being-deleted annotation set) it forgets the snapshot and
   removes the content finalizer.
3. the csi-provisioner + PV controller for restores: a Pending PVC whose
   dataSource is a VolumeSnapshot (apiGroup snapshot.storage.k8s.io) and whose
   StorageClass's provisioner is one of our drivers gets a PV pvc-<pvc uid>
   (csi volume, claimRef, capacity = the request) and is bound (spec.volumeName,
   the pv.kubernetes.io/* annotations, status.phase Bound). While the snapshot
   is missing, being deleted, not ready, of another driver or larger than the
   request, the PVC
   stays Pending with a ProvisioningFailed Event, as with the real provisioner.
4. make_bound_pvc(): a PVC bound to a CSI PV without a kubelet or provisioner.
5. volume data, when started with data_root (the tests of the volume mover):
   each CSI volume of our drivers is a directory DATA_ROOT/volumes/<volumeHandle>
   (volume_dir()); CreateSnapshot copies it (contents, modes, mtimes, links) to
   DATA_ROOT/snapshots/<snapshotHandle>; provisioning from a snapshot copies that
   back into the new volume's directory; and a Pending PVC without a data source
   whose StorageClass is ours is provisioned empty (dynamic provisioning), as
   the mover's restore needs.

It never prints; every action is one line in the log:
`<UTC ISO time> <event> key=value ...`. It is level-triggered: each pass lists
everything and converges; watches on the resources only wake it early.
"""

import argparse
import datetime
import http.client
import json
import re
import shlex
import shutil
import signal
import socket
import sys
import threading
import time
import traceback
import uuid

GROUP = "snapshot.storage.k8s.io"
V1 = f"/apis/{GROUP}/v1"
VS_PATH, VSC_PATH, VSCLASS_PATH = (f"{V1}/volumesnapshots", f"{V1}/volumesnapshotcontents",
                                   f"{V1}/volumesnapshotclasses")

DRIVER = "standin.csi.kontinuity.test"
SLOW_DRIVER = "slow.standin.csi.kontinuity.test"
ERROR_DRIVER = "error.standin.csi.kontinuity.test"
DEFAULT_DRIVERS = {DRIVER: "ready", SLOW_DRIVER: "slow", ERROR_DRIVER: "error"}
MODES = ("ready", "slow", "error")

MODE_ANNOTATION = "standin.kontinuity.test/mode"
SLOW_ANNOTATION = "standin.kontinuity.test/slow-seconds"
ERROR_ANNOTATION = "standin.kontinuity.test/error-message"

# Names of the real controller (external-snapshotter pkg/utils).
FIN_CONTENT = "snapshot.storage.kubernetes.io/volumesnapshotcontent-bound-protection"
FIN_BOUND = "snapshot.storage.kubernetes.io/volumesnapshot-bound-protection"
FIN_SOURCE = "snapshot.storage.kubernetes.io/volumesnapshot-as-source-protection"
FIN_PVC = "snapshot.storage.kubernetes.io/pvc-as-source-protection"
ANN_DEFAULT_CLASS = "snapshot.storage.kubernetes.io/is-default-class"
ANN_BEING_DELETED = "snapshot.storage.kubernetes.io/volumesnapshot-being-deleted"
ANN_DEFAULT_SC = "storageclass.kubernetes.io/is-default-class"


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def rfc3339(t=None):
    """metav1.Time as the API server writes it (second precision, Z)."""
    return (t or _now()).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------
# quantities

_SUFFIX = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
           "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|[kMGTPE]|[eE][0-9]+)?$")


def parse_quantity(q):
    """Bytes in a Kubernetes quantity ("1Gi", "500M", "1e3", 1024), rounded up."""
    if isinstance(q, int):
        return q
    m = _QUANTITY.match(str(q).strip())
    if not m:
        raise ValueError(f"not a storage quantity: {q!r}")
    num, suf = m.group(1), m.group(2) or ""
    mult = 10 ** int(suf[1:]) if suf[:1] in ("e", "E") else _SUFFIX[suf]
    whole, _, frac = num.partition(".")
    value = int(whole or "0") * mult + -(-int(frac or "0") * mult // 10 ** len(frac or ""))
    return value


def format_quantity(n):
    """n bytes as resource.NewQuantity(n, BinarySI).String(): the largest
    binary suffix that divides n exactly, else the plain number."""
    for suf in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
        if n and n % _SUFFIX[suf] == 0:
            return f"{n // _SUFFIX[suf]}{suf}"
    return str(n)


# ---------------------------------------------------------------------------
# REST (kube_rest.py)

from kube_rest import Api, ApiError  # noqa: E402,F401 (re-exported: sc.Api)


def ns_path(kind_path, namespace, name=None):
    """/api/v1/namespaces/NS/persistentvolumeclaims[/NAME] from /api/v1/persistentvolumeclaims."""
    base, _, plural = kind_path.rpartition("/")
    return f"{base}/namespaces/{namespace}/{plural}" + (f"/{name}" if name else "")


PVC_PATH, PV_PATH, SC_PATH = ("/api/v1/persistentvolumeclaims", "/api/v1/persistentvolumes",
                              "/apis/storage.k8s.io/v1/storageclasses")


def _meta(o):
    return o.get("metadata") or {}


def _key(o):
    m = _meta(o)
    return f"{m.get('namespace')}/{m.get('name')}" if m.get("namespace") else m.get("name")


# ---------------------------------------------------------------------------
# PVC/PV helpers (no kubelet, no provisioner)


def make_bound_pvc(api, namespace, name, size="1Gi", driver=DRIVER, storage_class="",
                   access_modes=("ReadWriteOnce",), volume_mode="Filesystem"):
    """Create a PV with a CSI source and a PVC pre-bound to it (volumeName), then
    complete the binding as the PV controller would (claimRef uid, both statuses
    Bound, bind-completed annotation). Returns (pvc, pv) as the API server has
    them afterwards."""
    pv_name = f"standin-pv-{uuid.uuid4().hex[:12]}"
    modes = list(access_modes)
    pv = api.create(PV_PATH, {
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": pv_name},
        "spec": {"capacity": {"storage": size}, "accessModes": modes,
                 "persistentVolumeReclaimPolicy": "Retain", "storageClassName": storage_class,
                 "volumeMode": volume_mode,
                 "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                              "namespace": namespace, "name": name},
                 "csi": {"driver": driver, "volumeHandle": f"standin-vol-{uuid.uuid4()}"}}})
    pvc = api.create(ns_path(PVC_PATH, namespace), {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"accessModes": modes, "resources": {"requests": {"storage": size}},
                 "storageClassName": storage_class, "volumeMode": volume_mode,
                 "volumeName": pv_name}})
    return _bind(api, pvc, pv, by_controller=False)


def _bind(api, pvc, pv, by_controller):
    """The PV controller's half of a binding: claimRef.uid and PV phase Bound,
    then the PVC's annotations, volumeName and status Bound."""
    m = _meta(pvc)
    ns, name, pv_name = m["namespace"], m["name"], _meta(pv)["name"]
    claim_ref = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": ns,
                 "name": name, "uid": m["uid"], "resourceVersion": m["resourceVersion"]}
    api.merge_patch(f"{PV_PATH}/{pv_name}", {"spec": {"claimRef": claim_ref}})
    pv = api.merge_patch(f"{PV_PATH}/{pv_name}/status", {"status": {"phase": "Bound"}})
    ann = {"pv.kubernetes.io/bind-completed": "yes"}
    if by_controller:
        ann["pv.kubernetes.io/bound-by-controller"] = "yes"
    path = ns_path(PVC_PATH, ns, name)
    api.merge_patch(path, {"metadata": {"annotations": ann}, "spec": {"volumeName": pv_name}})
    pvc = api.merge_patch(f"{path}/status", {"status": {
        "phase": "Bound", "accessModes": pv["spec"]["accessModes"],
        "capacity": {"storage": pv["spec"]["capacity"]["storage"]}}})
    return pvc, pv


# ---------------------------------------------------------------------------
# the stand-in


class Log:
    def __init__(self, path):
        self.f = open(path, "a", buffering=1) if path else None
        self.lock = threading.Lock()

    def __call__(self, event, **kv):
        if self.f is None:
            return
        parts = [_now().isoformat(timespec="milliseconds").replace("+00:00", "Z"), event]
        parts += [f"{k}={shlex.quote(str(v))}" for k, v in kv.items()]
        with self.lock:
            self.f.write(" ".join(parts) + "\n")

    def close(self):
        if self.f:
            self.f.close()


class _State:
    """One pass's view of the cluster: every object we look at, listed once."""

    def __init__(self, api):
        self.snapshots = api.list(VS_PATH)
        self.contents = {_meta(c)["name"]: c for c in api.list(VSC_PATH)}
        self.classes = {_meta(c)["name"]: c for c in api.list(VSCLASS_PATH)}
        # items of a core list carry no apiVersion/kind (Events need them)
        self.pvcs = {_key(p): dict(p, apiVersion="v1", kind="PersistentVolumeClaim")
                     for p in api.list(PVC_PATH)}
        self.pvs = {_meta(p)["name"]: p for p in api.list(PV_PATH)}
        self.storage_classes = {_meta(s)["name"]: s for s in api.list(SC_PATH)}
        self.snapshots_by_key = {_key(s): s for s in self.snapshots}


class SnapshotControllerStandin:
    """Runs the reconcile loop in a thread; see the module docstring."""

    WATCHED = (VS_PATH, VSC_PATH, VSCLASS_PATH, PVC_PATH)

    def __init__(self, api, log_path=None, drivers=None, slow_seconds=2.0, resync=1.0,
                 data_root=None):
        self.api = api
        self.data_root = data_root
        self.log = Log(log_path)
        self.drivers = dict(DEFAULT_DRIVERS if drivers is None else drivers)
        for d, mode in self.drivers.items():
            if mode not in MODES:
                raise ValueError(f"driver {d}: mode {mode!r} is not one of {', '.join(MODES)}")
        self.slow_seconds = float(slow_seconds)
        self.resync = resync
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads = []
        self._watch_lock = threading.Lock()
        self._watch_conns = set()
        self._events_sent = set()
        self.passes = 0
        self.errors = 0          # API refusals and exceptions: a stand-in bug, not a race

    # -- lifecycle -----------------------------------------------------------

    def start(self):
        self.log("standin-start", drivers=",".join(f"{d}={m}" for d, m in self.drivers.items()),
                 slow_seconds=self.slow_seconds)
        t = threading.Thread(target=self._run, name="snapshot-standin", daemon=True)
        self._threads.append(t)
        for path in self.WATCHED:
            w = threading.Thread(target=self._watch, args=(path,), daemon=True,
                                 name=f"snapshot-standin-watch{path}")
            self._threads.append(w)
        for t in self._threads:
            t.start()
        return self

    def stop(self):
        self._stop.set()
        self._wake.set()
        with self._watch_lock:
            for conn in self._watch_conns:
                try:         # unblock the reader now, not when the watch times out
                    conn.sock.shutdown(socket.SHUT_RDWR)
                except (AttributeError, OSError):
                    pass
        for t in self._threads:
            t.join(timeout=30)
        self.log("standin-stop", passes=self.passes, errors=self.errors)
        self.log.close()

    def wake(self):
        self._wake.set()

    def _watch(self, path):
        """Wake the loop on any change of PATH; reconnect until stopped."""
        while not self._stop.is_set():
            conn = None
            try:
                conn = http.client.HTTPSConnection(self.api.host, self.api.port, timeout=15,
                                                   context=self.api.ctx)
                conn.connect()
                with self._watch_lock:
                    if self._stop.is_set():
                        break
                    self._watch_conns.add(conn)
                conn.request("GET", f"{path}?watch=1&timeoutSeconds=10",
                             headers={"Authorization": f"Bearer {self.api.token}"})
                r = conn.getresponse()
                if r.status != 200:
                    r.read()
                    self._stop.wait(1)
                    continue
                while not self._stop.is_set():
                    line = r.readline()
                    if not line:
                        break
                    self._wake.set()
            except (OSError, http.client.HTTPException):
                self._stop.wait(0.5)
            finally:
                if conn is not None:
                    with self._watch_lock:
                        self._watch_conns.discard(conn)
                    conn.close()

    def _run(self):
        while not self._stop.is_set():
            self._wake.clear()
            delay = self.resync
            try:
                delay = min(delay, self.reconcile())
            except Exception as e:  # keep running whatever one pass hit
                self.errors += 1
                self.log("pass-error", error=f"{type(e).__name__}: {e}",
                         trace=traceback.format_exc(limit=4).replace("\n", " | "))
                delay = 0.5
            self.passes += 1
            self._wake.wait(max(delay, 0.02))

    # -- one pass ------------------------------------------------------------

    def reconcile(self):
        """One level-triggered pass over everything. Returns the seconds until
        a timed change is due (a slow snapshot turning ready)."""
        st = _State(self.api)
        due = self.resync
        for vs in st.snapshots:
            self._guard("snapshot", _key(vs), self._sync_snapshot, st, vs)
        for content in st.contents.values():
            d = self._guard("content", _meta(content)["name"], self._sync_content, st, content)
            if d is not None:
                due = min(due, d)
        self._guard("pvc-finalizers", "-", self._sync_pvc_finalizers, st)
        for pvc in st.pvcs.values():
            self._guard("restore", _key(pvc), self._sync_restore, st, pvc)
        return due

    def _guard(self, what, key, fn, *args):
        try:
            return fn(*args)
        except ApiError as e:
            if e.status in (404, 409):  # changed or gone since listed: the next pass sees it
                self.log("retry", what=what, object=key, status=e.status)
            else:
                self.errors += 1
                self.log("error", what=what, object=key, error=str(e))
        except Exception as e:
            self.errors += 1
            self.log("error", what=what, object=key, error=f"{type(e).__name__}: {e}",
                     trace=traceback.format_exc(limit=4).replace("\n", " | "))
        return None

    # -- the snapshot controller --------------------------------------------

    def _vs_path(self, vs, sub=""):
        m = _meta(vs)
        return ns_path(VS_PATH, m["namespace"], m["name"]) + sub

    def _set_finalizers(self, path, obj, finalizers, what):
        m = _meta(obj)
        self.api.merge_patch(path, {"metadata": {"finalizers": finalizers or None,
                                                 "resourceVersion": m["resourceVersion"]}})
        self.log("finalizers", object=what, finalizers=",".join(finalizers) or "-")

    def _snapshot_error(self, vs, message, ready_false, reason):
        """updateSnapshotErrorStatusWithEvent: status.error (+ readyToUse false)."""
        status = vs.get("status") or {}
        if (status.get("error") or {}).get("message") == message:
            return
        patch = {"error": {"message": message, "time": rfc3339()}}
        if ready_false:
            patch["readyToUse"] = False
        self.api.merge_patch(self._vs_path(vs, "/status"), {"status": patch})
        self.log("snapshot-error", snapshot=_key(vs), reason=reason, message=message)
        self._event(vs, "Warning", reason, message)

    def _sync_snapshot(self, st, vs):
        m, spec = _meta(vs), vs.get("spec") or {}
        source = spec.get("source") or {}
        if m.get("deletionTimestamp"):
            return self._delete_snapshot(st, vs)
        if ("persistentVolumeClaimName" in source) == ("volumeSnapshotContentName" in source):
            return self._snapshot_error(vs, "Exactly one of PersistentVolumeClaimName and "
                                        "VolumeSnapshotContentName should be specified", True,
                                        "SnapshotValidationError")
        fins = list(m.get("finalizers") or [])
        content = self._bound_content(st, vs)
        want = fins + [f for f in (FIN_SOURCE,) if f not in fins]
        if (content is not None and FIN_BOUND not in fins
                and (vs.get("status") or {}).get("boundVolumeSnapshotContentName")
                and content["spec"].get("deletionPolicy") == "Delete"):
            want.append(FIN_BOUND)
        if want != fins:
            return self._set_finalizers(self._vs_path(vs), vs, want, _key(vs))
        if "volumeSnapshotContentName" in source:
            return self._sync_preprovisioned(st, vs, source["volumeSnapshotContentName"])
        bound = (vs.get("status") or {}).get("boundVolumeSnapshotContentName")
        if content is None and bound:
            # syncReadySnapshot: the bound content went away or points elsewhere
            if bound in st.contents:
                return self._snapshot_error(vs, "VolumeSnapshotContent is not bound to the "
                                            "VolumeSnapshot correctly", True, "SnapshotMisbound")
            return self._snapshot_error(vs, "VolumeSnapshotContent is missing", True,
                                        "SnapshotContentMissing")
        if content is None:
            return self._create_content(st, vs)
        return self._update_snapshot_status(vs, content)

    def _bound_content(self, st, vs):
        """The content bound (or being bound) to VS, if it points back to it."""
        status, source = vs.get("status") or {}, (vs.get("spec") or {}).get("source") or {}
        name = (status.get("boundVolumeSnapshotContentName")
                or source.get("volumeSnapshotContentName")
                or f"snapcontent-{_meta(vs)['uid']}")
        c = st.contents.get(name)
        if c is None:
            return None
        ref, m = c["spec"].get("volumeSnapshotRef") or {}, _meta(vs)
        if ref.get("name") != m["name"] or ref.get("namespace") != m["namespace"]:
            return None
        if ref.get("uid") and ref["uid"] != m["uid"]:
            return None
        return c

    def _resolve_class(self, st, vs, pv):
        """The class for a dynamic snapshot; patches a default into spec. Sets
        the snapshot's error and returns None when there is none."""
        name = (vs.get("spec") or {}).get("volumeSnapshotClassName")
        if name:
            cls = st.classes.get(name)
            if cls is None:
                self._snapshot_error(
                    vs, f"Failed to get snapshot class with error failed to retrieve snapshot "
                    f"class {name} from the informer: \"volumesnapshotclass.{GROUP} "
                    f"\\\"{name}\\\" not found\"", False, "GetSnapshotClassFailed")
            return cls
        driver = ((pv or {}).get("spec") or {}).get("csi", {}).get("driver")
        if driver is None:
            self._snapshot_error(
                vs, "Failed to set default snapshot class with error snapshotting non-CSI "
                f"volumes is not supported, snapshot:{_key(vs)}", False,
                "SetDefaultSnapshotClassFailed")
            return None
        defaults = [c for c in st.classes.values()
                    if (_meta(c).get("annotations") or {}).get(ANN_DEFAULT_CLASS) == "true"
                    and c.get("driver") == driver]
        if len(defaults) != 1:
            why = ("cannot find default snapshot class" if not defaults
                   else f"{len(defaults)} default snapshot classes were found")
            self._snapshot_error(vs, f"Failed to set default snapshot class with error {why}",
                                 False, "SetDefaultSnapshotClassFailed")
            return None
        cname = _meta(defaults[0])["name"]
        self.api.merge_patch(self._vs_path(vs), {"spec": {"volumeSnapshotClassName": cname}})
        self.log("default-class", snapshot=_key(vs), vsclass=cname)
        return defaults[0]

    def _source_volume(self, st, vs):
        """(pvc, pv, error message) for a dynamic snapshot's source."""
        m = _meta(vs)
        claim = vs["spec"]["source"]["persistentVolumeClaimName"]
        pvc = st.pvcs.get(f"{m['namespace']}/{claim}")
        if pvc is None:
            return None, None, (f"failed to retrieve PVC {claim} from the lister: "
                                f"\"persistentvolumeclaim \\\"{claim}\\\" not found\"")
        if (pvc.get("status") or {}).get("phase") != "Bound":
            return pvc, None, (f"the PVC {claim} is not yet bound to a PV, will not attempt "
                               "to take a snapshot")
        pv_name = pvc["spec"].get("volumeName")
        pv = st.pvs.get(pv_name)
        if pv is None:
            return pvc, None, (f"failed to retrieve PV {pv_name} from the API server: "
                               f"\"persistentvolumes \\\"{pv_name}\\\" not found\"")
        ref = pv["spec"].get("claimRef") or {}
        if (ref.get("name"), ref.get("namespace")) != (claim, m["namespace"]) or \
                (ref.get("uid") and ref["uid"] != _meta(pvc)["uid"]):
            return pvc, None, "claim in dataSource not bound or invalid"
        return pvc, pv, None

    def _create_content(self, st, vs):
        """syncUnreadySnapshot for a dynamic snapshot with no content yet: the
        checks in the real controller's order, each failure its message."""
        m = _meta(vs)
        pvc, pv, err = self._source_volume(st, vs)
        if not (vs.get("spec") or {}).get("volumeSnapshotClassName") and err:
            return self._snapshot_error(vs, f"Failed to set default snapshot class with error "
                                        f"{err}", False, "SetDefaultSnapshotClassFailed")
        cls = self._resolve_class(st, vs, pv)
        if cls is None:
            return None
        prefix = "Failed to create snapshot content with error "
        # ensurePVCFinalizer comes first: a missing or deleted claim fails here
        update_failed = "snapshot controller failed to update {} on API server: {}"
        if pvc is None:
            return self._snapshot_error(vs, prefix + update_failed.format(
                m["name"], "cannot get claim from snapshot"), True,
                "SnapshotContentCreationFailed")
        pm = _meta(pvc)
        if FIN_PVC not in (pm.get("finalizers") or []):
            if pm.get("deletionTimestamp"):
                return self._snapshot_error(vs, prefix + update_failed.format(
                    pm["name"], "cannot add finalizer on claim because it is being deleted"),
                    True, "SnapshotContentCreationFailed")
            return self._set_finalizers(ns_path(PVC_PATH, pm["namespace"], pm["name"]), pvc,
                                        list(pm.get("finalizers") or []) + [FIN_PVC], _key(pvc))
        if err is not None:
            return self._snapshot_error(
                vs, f"{prefix}failed to get input parameters to create snapshot {m['name']}: "
                f"{json.dumps(err)}", True, "SnapshotContentCreationFailed")
        if "csi" not in pv["spec"]:
            return self._snapshot_error(
                vs, f"{prefix}cannot find CSI PersistentVolumeSource for volume "
                f"{_meta(pv)['name']}", True, "SnapshotContentCreationFailed")
        name = f"snapcontent-{m['uid']}"
        spec = {"volumeSnapshotRef": {"apiVersion": f"{GROUP}/v1", "kind": "VolumeSnapshot",
                                      "namespace": m["namespace"], "name": m["name"],
                                      "uid": m["uid"], "resourceVersion": m["resourceVersion"]},
                "source": {"volumeHandle": pv["spec"]["csi"]["volumeHandle"]},
                "volumeSnapshotClassName": _meta(cls)["name"],
                "deletionPolicy": cls["deletionPolicy"], "driver": cls["driver"]}
        if pv["spec"].get("volumeMode"):
            spec["sourceVolumeMode"] = pv["spec"]["volumeMode"]
        status, out = self.api.request("POST", VSC_PATH, {
            "apiVersion": f"{GROUP}/v1", "kind": "VolumeSnapshotContent",
            "metadata": {"name": name}, "spec": spec})
        if status == 409:
            content = self.api.get(f"{VSC_PATH}/{name}")
        elif status in (200, 201):
            content = out
            self.log("content-create", snapshot=_key(vs), content=name,
                     volume_handle=spec["source"]["volumeHandle"], driver=cls["driver"],
                     policy=cls["deletionPolicy"])
            self._event(vs, "Normal", "CreatingSnapshot", f"Waiting for a snapshot {_key(vs)} "
                        "to be created by the CSI driver.")
        else:
            raise ApiError("POST", VSC_PATH, status, out)
        return self._update_snapshot_status(vs, content) if content else None

    def _sync_preprovisioned(self, st, vs, name):
        content = st.contents.get(name)
        m = _meta(vs)
        if content is None:
            return self._snapshot_error(vs, "VolumeSnapshotContent is missing", True,
                                        "SnapshotContentMissing")
        ref = content["spec"].get("volumeSnapshotRef") or {}
        if (ref.get("name"), ref.get("namespace")) != (m["name"], m["namespace"]) or \
                (ref.get("uid") and ref["uid"] != m["uid"]):
            return self._snapshot_error(vs, f"VolumeSnapshotContent [{name}] is bound to a "
                                        "different snapshot", True, "SnapshotContentMisbound")
        if not ref.get("uid"):
            patch = {"spec": {"volumeSnapshotRef": dict(ref, uid=m["uid"],
                                                        resourceVersion=m["resourceVersion"])}}
            cls = (vs.get("spec") or {}).get("volumeSnapshotClassName")
            if cls and not content["spec"].get("volumeSnapshotClassName"):
                patch["spec"]["volumeSnapshotClassName"] = cls
            content = self.api.merge_patch(f"{VSC_PATH}/{name}", patch)
            self.log("content-bind", snapshot=_key(vs), content=name)
        return self._update_snapshot_status(vs, content)

    def _update_snapshot_status(self, vs, content):
        """updateSnapshotStatus: the snapshot's status follows its content's."""
        cs, old = content.get("status") or {}, vs.get("status") or {}
        new = dict(old)
        new["boundVolumeSnapshotContentName"] = _meta(content)["name"]
        new["readyToUse"] = bool(cs.get("readyToUse"))
        if cs.get("creationTime") is not None and not old.get("creationTime"):
            t = datetime.datetime.fromtimestamp(cs["creationTime"] / 1e9, datetime.timezone.utc)
            new["creationTime"] = rfc3339(t)
        if cs.get("restoreSize") is not None and (
                old.get("restoreSize") is None or parse_quantity(old["restoreSize"]) == 0):
            new["restoreSize"] = format_quantity(cs["restoreSize"])
        if cs.get("error"):
            new["error"] = cs["error"]
        else:                    # bound to a content without error: any older error goes
            new.pop("error", None)
        if new == old:
            return None
        patch = dict(new)
        if "error" in old and "error" not in new:
            patch["error"] = None
        self.api.merge_patch(self._vs_path(vs, "/status"), {"status": patch})
        self.log("snapshot-status", snapshot=_key(vs),
                 content=new["boundVolumeSnapshotContentName"],
                 ready=new["readyToUse"], restore_size=new.get("restoreSize", "-"),
                 error=(new.get("error") or {}).get("message", "-"))
        if new["readyToUse"] and not old.get("readyToUse"):
            self._event(vs, "Normal", "SnapshotReady", f"Snapshot {_key(vs)} is ready to use.")
        return None

    def _delete_snapshot(self, st, vs):
        m = _meta(vs)
        fins = list(m.get("finalizers") or [])
        if FIN_SOURCE not in fins and FIN_BOUND not in fins:
            return None
        content = self._bound_content(st, vs)
        delete_content = content is not None and content["spec"].get("deletionPolicy") == "Delete"
        if content is not None:
            for pvc in st.pvcs.values():
                pm, ds = _meta(pvc), pvc["spec"].get("dataSource") or {}
                if (pm["namespace"] == m["namespace"] and ds.get("kind") == "VolumeSnapshot"
                        and ds.get("apiGroup") == GROUP and ds.get("name") == m["name"]
                        and (pvc.get("status") or {}).get("phase", "Pending") == "Pending"):
                    self._event(vs, "Warning", "SnapshotDeletePending",
                                "Snapshot is being used to restore a PVC")
                    return None
            cm = _meta(content)
            if (cm.get("annotations") or {}).get(ANN_BEING_DELETED) != "yes":
                self.api.merge_patch(f"{VSC_PATH}/{cm['name']}", {"metadata": {
                    "annotations": {ANN_BEING_DELETED: "yes"}}})
                self.log("content-being-deleted", content=cm["name"])
            if delete_content and not cm.get("deletionTimestamp"):
                self.api.delete(f"{VSC_PATH}/{cm['name']}")
                self.log("content-delete", snapshot=_key(vs), content=cm["name"])
        keep = [f for f in fins if f != FIN_SOURCE and (f != FIN_BOUND or delete_content)]
        if keep != fins:
            self._set_finalizers(self._vs_path(vs), vs, keep, _key(vs))
        return None

    def _sync_pvc_finalizers(self, st):
        """checkandRemovePVCFinalizer: a PVC keeps pvc-as-source-protection while a
        snapshot of it is not ready."""
        for pvc in st.pvcs.values():
            pm = _meta(pvc)
            fins = list(pm.get("finalizers") or [])
            if FIN_PVC not in fins:
                continue
            busy = any(
                _meta(s)["namespace"] == pm["namespace"]
                and ((s.get("spec") or {}).get("source") or {}).get(
                    "persistentVolumeClaimName") == pm["name"]
                and not (s.get("status") or {}).get("readyToUse")
                for s in st.snapshots)
            if not busy:
                self._set_finalizers(ns_path(PVC_PATH, pm["namespace"], pm["name"]), pvc,
                                     [f for f in fins if f != FIN_PVC], _key(pvc))

    # -- csi-snapshotter sidecar + driver ------------------------------------

    def _mode(self, st, content):
        """(mode, slow seconds, error text) for a content of one of our drivers."""
        spec = content["spec"]
        ref = spec.get("volumeSnapshotRef") or {}
        vs = st.snapshots_by_key.get(f"{ref.get('namespace')}/{ref.get('name')}")
        ann = (_meta(vs).get("annotations") or {}) if vs else {}
        params = (st.classes.get(spec.get("volumeSnapshotClassName") or "") or {}).get(
            "parameters") or {}
        mode = ann.get(MODE_ANNOTATION) or params.get(MODE_ANNOTATION) or \
            self.drivers[spec["driver"]]
        slow = ann.get(SLOW_ANNOTATION) or params.get(SLOW_ANNOTATION) or self.slow_seconds
        text = ann.get(ERROR_ANNOTATION) or params.get(ERROR_ANNOTATION) or \
            "stand-in driver: snapshot failed (error mode)"
        return (mode if mode in MODES else "error"), float(slow), text

    def _sync_content(self, st, content):
        """Returns seconds until this content needs another look, or None."""
        cm, spec = _meta(content), content["spec"]
        path = f"{VSC_PATH}/{cm['name']}"
        fins = list(cm.get("finalizers") or [])
        ref = spec.get("volumeSnapshotRef") or {}
        if cm.get("deletionTimestamp"):
            ours = spec.get("driver") in self.drivers
            being_deleted = (cm.get("annotations") or {}).get(ANN_BEING_DELETED) == "yes"
            unbound_static = "snapshotHandle" in (spec.get("source") or {}) and not ref.get("uid")
            if ours and FIN_CONTENT in fins and (being_deleted or unbound_static):
                handle = (content.get("status") or {}).get("snapshotHandle")
                if spec.get("deletionPolicy") == "Delete" and handle:
                    self.log("driver-delete-snapshot", content=cm["name"], handle=handle)
                self._set_finalizers(path, content, [f for f in fins if f != FIN_CONTENT],
                                     cm["name"])
            return None
        if ref.get("uid") and FIN_CONTENT not in fins:
            self._set_finalizers(path, content, fins + [FIN_CONTENT], cm["name"])
            return None
        if spec.get("driver") not in self.drivers:
            return None          # no sidecar for that driver runs here
        status = content.get("status")
        source = spec.get("source") or {}
        if "snapshotHandle" in source:
            if status is None:   # ListSnapshots on a pre-provisioned snapshot
                self._content_status(content, {"snapshotHandle": source["snapshotHandle"],
                                               "readyToUse": True,
                                               "creationTime": time.time_ns()})
            return None
        if "volumeHandle" not in source:
            return None
        mode, slow, text = self._mode(st, content)
        if status is None:
            return self._create_snapshot(st, content, mode, slow, text)
        if mode == "slow" and not status.get("readyToUse") and not status.get("error"):
            left = status.get("creationTime", 0) / 1e9 + slow - time.time()
            if left > 0:
                return left
            self._content_status(content, {"readyToUse": True})
        return None

    def _create_snapshot(self, st, content, mode, slow, text):
        spec = content["spec"]
        handle = spec["source"]["volumeHandle"]
        if mode == "error":
            msg = (f"Failed to create snapshot: failed to take snapshot of the volume {handle}: "
                   f"\"rpc error: code = Internal desc = {text}\"")
            self._content_status(content, {"readyToUse": False,
                                           "error": {"message": msg, "time": rfc3339()}})
            return None
        size = None
        for pv in st.pvs.values():
            csi = pv["spec"].get("csi") or {}
            if csi.get("driver") == spec["driver"] and csi.get("volumeHandle") == handle:
                size = parse_quantity(pv["spec"]["capacity"]["storage"])
        status = {"snapshotHandle": f"standin-snap-{uuid.uuid4()}",
                  "creationTime": time.time_ns(), "readyToUse": mode == "ready"}
        if self.data_root is not None:   # the point-in-time copy, before it is reported
            self._copy_data(self.volume_dir(handle),
                            self.data_root / "snapshots" / status["snapshotHandle"],
                            "data-snapshot")
        if size is not None:
            status["restoreSize"] = size
        self._content_status(content, status)
        return slow if mode == "slow" else None

    # -- volume data (part 5) -------------------------------------------------

    def volume_dir(self, handle):
        """The directory holding CSI volume HANDLE's files (made on first use)."""
        d = self.data_root / "volumes" / handle
        d.mkdir(parents=True, exist_ok=True)
        return d

    def _copy_data(self, src, dst, what, **kv):
        if self.data_root is None:
            return
        if dst.exists():
            shutil.rmtree(dst)
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.exists():
            shutil.copytree(src, dst, symlinks=True)
        else:
            dst.mkdir()
        self.log(what, src=src.name, dst=dst.name, **kv)

    def _content_status(self, content, status):
        name = _meta(content)["name"]
        self.api.merge_patch(f"{VSC_PATH}/{name}/status", {"status": status})
        self.log("content-status", content=name,
                 **{k: (v["message"] if k == "error" else v) for k, v in status.items()})

    # -- csi-provisioner + PV controller (restores) -------------------------

    def _restore_source(self, st, pvc, ds, driver, requested):
        """(bound content, None) for a PVC's snapshot dataSource, or (None, why
        the provisioner cannot use it yet)."""
        name = ds.get("name")
        vs = st.snapshots_by_key.get(f"{ds.get('namespace') or _meta(pvc)['namespace']}/{name}")
        content = self._bound_content(st, vs) if vs else None
        cstatus = (content or {}).get("status") or {}
        why = None
        if vs is None:
            why = (f"error getting snapshot {name} from api server: volumesnapshots.{GROUP} "
                   f"\"{name}\" not found")
        elif _meta(vs).get("deletionTimestamp"):
            why = f"snapshot {name} is currently being deleted"
        elif not (vs.get("status") or {}).get("readyToUse") or not cstatus.get("snapshotHandle"):
            why = f"snapshot {name} is not Ready"
        elif content["spec"]["driver"] != driver:
            why = (f"snapshot {name} driver {content['spec']['driver']} does not match storage "
                   f"class provisioner {driver}")
        if why is not None:
            return None, ("error getting handle for DataSource Type VolumeSnapshot by Name "
                          f"{name}: {why}")
        if cstatus.get("restoreSize") is not None and requested < cstatus["restoreSize"]:
            return None, (f"requested volume size {requested} is less than the size "
                          f"{cstatus['restoreSize']} for the source snapshot {name}")
        return content, None

    def _sync_restore(self, st, pvc):
        pm, spec = _meta(pvc), pvc.get("spec") or {}
        ds = spec.get("dataSourceRef") or spec.get("dataSource") or {}
        empty = not ds and self.data_root is not None   # dynamic provisioning (part 5)
        if (ds.get("kind") != "VolumeSnapshot" or ds.get("apiGroup") != GROUP) and not empty:
            return None
        if spec.get("volumeName") or pm.get("deletionTimestamp") or \
                (pvc.get("status") or {}).get("phase") not in (None, "Pending"):
            return None
        sc_name = spec.get("storageClassName")
        if sc_name is None:
            defaults = [s for s in st.storage_classes.values()
                        if (_meta(s).get("annotations") or {}).get(ANN_DEFAULT_SC) == "true"]
            sc_name = _meta(defaults[0])["name"] if len(defaults) == 1 else None
        sc = st.storage_classes.get(sc_name or "")
        if sc is None or sc.get("provisioner") not in self.drivers:
            return None          # not ours to provision (as with another provisioner)
        driver = sc["provisioner"]
        requested = parse_quantity(((spec.get("resources") or {}).get("requests") or {})
                                   .get("storage", "0"))
        content, err = (None, None) if empty else \
            self._restore_source(st, pvc, ds, driver, requested)
        if err is not None:
            self._event(pvc, "Warning", "ProvisioningFailed",
                        f"failed to provision volume with StorageClass \"{sc_name}\": {err}")
            return None
        ns = ds.get("namespace") or pm["namespace"]
        pv_name = f"pvc-{pm['uid']}"
        handle = content["status"]["snapshotHandle"] if content else ""
        vol_handle = f"standin-vol-{uuid.uuid4()}"
        pv = {"apiVersion": "v1", "kind": "PersistentVolume",
              "metadata": {"name": pv_name,
                           "annotations": {"pv.kubernetes.io/provisioned-by": driver}},
              "spec": {"capacity": {"storage": format_quantity(requested)},
                       "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
                       "persistentVolumeReclaimPolicy": sc.get("reclaimPolicy") or "Delete",
                       "storageClassName": sc_name,
                       "volumeMode": spec.get("volumeMode") or "Filesystem",
                       "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                                    "namespace": pm["namespace"], "name": pm["name"],
                                    "uid": pm["uid"], "resourceVersion": pm["resourceVersion"]},
                       "csi": {"driver": driver, "volumeHandle": vol_handle,
                               "volumeAttributes": {
                                   "standin.kontinuity.test/restored-from": handle}}}}
        status, out = self.api.request("POST", PV_PATH, pv)
        if status == 409:
            out = self.api.get(f"{PV_PATH}/{pv_name}")
        elif status not in (200, 201):
            raise ApiError("POST", PV_PATH, status, out)
        elif self.data_root is not None:
            self._copy_data(self.data_root / "snapshots" / (handle or "-none-"),
                            self.volume_dir(vol_handle), "data-provision", pvc=_key(pvc))
        self.log("provision", pvc=_key(pvc), pv=pv_name, snapshot=f"{ns}/{ds.get('name')}",
                 snapshot_handle=handle, size=format_quantity(requested))
        path = ns_path(PVC_PATH, pm["namespace"], pm["name"])
        self.api.merge_patch(path, {"metadata": {"annotations": {
            "volume.kubernetes.io/storage-provisioner": driver,
            "volume.beta.kubernetes.io/storage-provisioner": driver}}})
        _bind(self.api, self.api.get(path), out, by_controller=True)
        self.log("bind", pvc=_key(pvc), pv=pv_name)
        self._event(pvc, "Normal", "ProvisioningSucceeded",
                    f"Successfully provisioned volume {pv_name}")
        return None

    # -- events ----------------------------------------------------------------

    def _event(self, obj, type_, reason, message):
        """A core/v1 Event about OBJ, once per (object, reason, message)."""
        m = _meta(obj)
        key = (m.get("uid"), reason, message)
        if key in self._events_sent or not m.get("namespace"):
            return
        self._events_sent.add(key)
        now = rfc3339()
        status, out = self.api.request("POST", f"/api/v1/namespaces/{m['namespace']}/events", {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{m['name']}.", "namespace": m["namespace"]},
            "involvedObject": {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"),
                               "namespace": m["namespace"], "name": m["name"], "uid": m["uid"],
                               "resourceVersion": m.get("resourceVersion")},
            "type": type_, "reason": reason, "message": message,
            "source": {"component": "snapshot-controller-standin"},
            "firstTimestamp": now, "lastTimestamp": now, "count": 1})
        if status not in (200, 201):
            self.log("event-error", object=_key(obj), status=status)


# ---------------------------------------------------------------------------


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--server", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--token-file", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--slow-seconds", type=float, default=2.0)
    ap.add_argument("--driver", action="append", default=[], metavar="NAME=MODE",
                    help="handle NAME in MODE (ready, slow, error); default: the three "
                         "stand-in drivers")
    a = ap.parse_args(argv)
    drivers = dict(d.split("=", 1) for d in a.driver) if a.driver else None
    with open(a.token_file) as f:
        token = f.read().strip()
    s = SnapshotControllerStandin(Api(a.server, token, a.ca), a.log, drivers, a.slow_seconds)
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    s.start()
    while not done.wait(0.5):
        pass
    s.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
