"""The snapshot.storage.k8s.io/v1 CRDs (deploy/crds/) on the real
kube-apiserver, and the snapshot-controller stand-in
(snapshot_controller_standin.py) behaving as the external snapshot controller,
a CSI driver and its provisioner would, seen through the REST API only."""

import json
import time

import pytest

import peers

from snapshots import (CLASSES, DRIVER, ERROR_DRIVER, NO_DEFAULT_DRIVER, SLOW_DRIVER,
                       SLOW_SECONDS, VSC_PATH, VSCLASS_PATH, PVC_PATH, PV_PATH, ns_path,
                       wait_for)
import snapshot_controller_standin as sc

pytestmark = pytest.mark.usefixtures("snapshot_standin")

GROUP = "snapshot.storage.k8s.io"


@pytest.fixture
def cluster(snapshot_standin):
    return snapshot_standin


@pytest.fixture
def ns(cluster):
    return cluster.namespace()


def status(obj):
    return (obj or {}).get("status") or {}


# ---------------------------------------------------------------------------
# the CRDs


def test_crds_established_and_served(cluster):
    by_kind = {c["spec"]["names"]["kind"]: c for c in cluster.crds}
    assert set(by_kind) == {"VolumeSnapshot", "VolumeSnapshotContent", "VolumeSnapshotClass"}
    assert by_kind["VolumeSnapshot"]["spec"]["scope"] == "Namespaced"
    assert by_kind["VolumeSnapshotContent"]["spec"]["scope"] == "Cluster"
    assert by_kind["VolumeSnapshotClass"]["spec"]["scope"] == "Cluster"
    for c in cluster.crds:
        # the api-approved annotation is accepted for this protected group (the
        # condition is set by a controller of the API server, shortly after)
        path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{c['metadata']['name']}"
        wait_for(lambda: any(x["type"] == "KubernetesAPIApprovalPolicyConformant"
                             and x["status"] == "True"
                             for x in cluster.api.get(path)["status"]["conditions"]),
                 what="KubernetesAPIApprovalPolicyConformant")
        assert [(v["name"], v["served"], v["storage"]) for v in c["spec"]["versions"]] == \
            [("v1", True, True)]
    disc = cluster.api.call("GET", f"/apis/{GROUP}/v1")
    res = {r["name"]: r for r in disc["resources"]}
    assert res["volumesnapshots"]["namespaced"] is True
    assert res["volumesnapshots"]["shortNames"] == ["vs"]
    assert res["volumesnapshotcontents"]["namespaced"] is False
    assert set(res["volumesnapshotcontents"]["shortNames"]) == {"vsc", "vscs"}
    assert set(res["volumesnapshotclasses"]["shortNames"]) == {"vsclass", "vsclasses"}
    assert "volumesnapshots/status" in res and "volumesnapshotcontents/status" in res
    assert "volumesnapshotclasses/status" not in res


def test_printer_columns_in_table_output(cluster, ns):
    """kubectl get vs shows the published columns (Table output from the server)."""
    cluster.bound_pvc(ns, "data")
    assert cluster.create_snapshot(ns, "s1", pvc="data")[0] == 201
    cluster.wait_ready(ns, "s1")
    st, body = peers.http_request(cluster.kube.url, ns_path(sc.VS_PATH, ns), headers={
        "Authorization": f"Bearer {cluster.kube.token}",
        "Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
        ssl_context=cluster.kube.ssl_context())
    assert st == 200, body
    table = json.loads(body)
    cols = [c["name"] for c in table["columnDefinitions"]]
    assert cols == ["Name", "ReadyToUse", "SourcePVC", "SourceSnapshotContent", "RestoreSize",
                    "SnapshotClass", "SnapshotContent", "CreationTime", "Age"]
    row = table["rows"][0]["cells"]
    assert row[:3] == ["s1", True, "data"] and row[4:6] == ["1Gi", CLASSES[DRIVER]]


@pytest.mark.parametrize("source", [{"pvc": "data", "content": "c"}, {}],
                         ids=["both", "neither"])
def test_schema_rejects_both_or_neither_source(cluster, ns, source):
    st, out = cluster.create_snapshot(ns, "bad", **source)
    assert st == 422, out
    assert out["reason"] == "Invalid"
    assert "exactly one of volumeSnapshotContentName and persistentVolumeClaimName must be " \
        "set" in out["message"]
    assert cluster.snapshot(ns, "bad") is None


def test_schema_rejects_bad_fields(cluster, ns):
    # deletionPolicy is an enum
    st, out = cluster.api.request("POST", VSCLASS_PATH, {
        "apiVersion": f"{GROUP}/v1", "kind": "VolumeSnapshotClass",
        "metadata": {"name": f"bad-{ns}"}, "driver": DRIVER, "deletionPolicy": "Keep"})
    assert st == 422 and "deletionPolicy" in out["message"] and "Keep" in out["message"], out
    # driver and deletionPolicy are required
    st, out = cluster.api.request("POST", VSCLASS_PATH, {
        "apiVersion": f"{GROUP}/v1", "kind": "VolumeSnapshotClass",
        "metadata": {"name": f"bad2-{ns}"}})
    assert st == 422 and "driver" in out["message"] and "deletionPolicy" in out["message"]
    # an empty class name is refused
    st, out = cluster.create_snapshot(ns, "empty-class", pvc="x", vsclass="")
    assert st == 422 and "volumeSnapshotClassName must not be the empty string" in out["message"]
    # status.restoreSize is a quantity, as an integer or a string
    assert cluster.create_snapshot(ns, "sized", pvc="x")[0] == 201
    path = ns_path(sc.VS_PATH, ns, "sized") + "/status"
    for value, want in ((1024, 200), ("1Gi", 200), ("1 GB", 422), (True, 422)):
        st, out = cluster.api.request("PATCH", path, {"status": {"restoreSize": value}},
                                      content_type="application/merge-patch+json")
        assert st == want, (value, out)
    # a content needs exactly one source and a full volumeSnapshotRef
    st, out = cluster.api.request("POST", VSC_PATH, {
        "apiVersion": f"{GROUP}/v1", "kind": "VolumeSnapshotContent",
        "metadata": {"name": f"bad-{ns}"},
        "spec": {"driver": DRIVER, "deletionPolicy": "Retain",
                 "source": {"volumeHandle": "v", "snapshotHandle": "s"},
                 "volumeSnapshotRef": {"name": "x"}}})
    assert st == 422
    assert "exactly one of volumeHandle and snapshotHandle must be set" in out["message"]
    assert "both spec.volumeSnapshotRef.name and spec.volumeSnapshotRef.namespace must be set" \
        in out["message"]


def test_source_is_immutable(cluster, ns):
    cluster.bound_pvc(ns, "data")
    cluster.bound_pvc(ns, "other")
    assert cluster.create_snapshot(ns, "s1", pvc="data")[0] == 201
    path = ns_path(sc.VS_PATH, ns, "s1")
    st, out = cluster.api.request("PATCH", path, {"spec": {"source": {
        "persistentVolumeClaimName": "other"}}}, content_type="application/merge-patch+json")
    assert st == 422 and "persistentVolumeClaimName is immutable" in out["message"], out
    st, out = cluster.api.request("PATCH", path, {"spec": {"source": {
        "persistentVolumeClaimName": None, "volumeSnapshotContentName": "c"}}},
        content_type="application/merge-patch+json")
    assert st == 422 and "persistentVolumeClaimName is required once set" in out["message"]


# ---------------------------------------------------------------------------
# the stand-in: dynamic snapshots


def test_ready_snapshot_binds_a_content(cluster, ns):
    pvc, pv = cluster.bound_pvc(ns, "data", size="2Gi")
    assert status(pvc)["phase"] == "Bound" and pvc["spec"]["volumeName"] == pv["metadata"]["name"]
    st, vs = cluster.create_snapshot(ns, "s1", pvc="data")
    assert st == 201, vs
    vs = cluster.wait_ready(ns, "s1")
    uid = vs["metadata"]["uid"]
    s = status(vs)
    assert s["boundVolumeSnapshotContentName"] == f"snapcontent-{uid}"
    assert s["restoreSize"] == "2Gi" and s["creationTime"].endswith("Z")
    assert "error" not in s
    # the default class of the PV's driver was written into the spec
    assert vs["spec"]["volumeSnapshotClassName"] == CLASSES[DRIVER]
    assert set(vs["metadata"]["finalizers"]) == {sc.FIN_SOURCE, sc.FIN_BOUND}

    c = cluster.content(f"snapcontent-{uid}")
    spec, cs = c["spec"], status(c)
    assert spec["source"] == {"volumeHandle": pv["spec"]["csi"]["volumeHandle"]}
    assert spec["driver"] == DRIVER and spec["deletionPolicy"] == "Delete"
    assert spec["volumeSnapshotClassName"] == CLASSES[DRIVER]
    assert spec["sourceVolumeMode"] == "Filesystem"
    ref = spec["volumeSnapshotRef"]
    assert (ref["kind"], ref["namespace"], ref["name"], ref["uid"]) == \
        ("VolumeSnapshot", ns, "s1", uid)
    assert cs["readyToUse"] is True and cs["snapshotHandle"].startswith("standin-snap-")
    assert cs["restoreSize"] == 2 * 2**30
    assert abs(cs["creationTime"] / 1e9 - time.time()) < 120
    assert c["metadata"]["finalizers"] == [sc.FIN_CONTENT]
    # the source PVC is protected only while a snapshot of it is being taken
    wait_for(lambda: sc.FIN_PVC not in (cluster.pvc(ns, "data")["metadata"].get("finalizers")
                                        or []), what="PVC finalizer removed")
    reasons = [e["reason"] for e in cluster.events(ns, "s1")]
    assert "CreatingSnapshot" in reasons and "SnapshotReady" in reasons


def not_ready_then_ready(versions):
    """The readyToUse values a snapshot went through, once bound and cut."""
    seen = [status(v).get("readyToUse") for v in versions if status(v).get("creationTime")]
    return [x for i, x in enumerate(seen) if i == 0 or seen[i - 1] != x]


def test_slow_snapshot_is_not_ready_first(cluster, ns):
    cluster.bound_pvc(ns, "data", driver=SLOW_DRIVER)
    rec = cluster.record_snapshots(ns)
    try:
        assert cluster.create_snapshot(ns, "s1", pvc="data")[0] == 201
        vs = cluster.wait_ready(ns, "s1", timeout=SLOW_SECONDS + 15)
        wait_for(lambda: not_ready_then_ready(rec.versions("s1"))[-1:] == [True],
                 what="the watch to deliver the ready version")
        versions = rec.versions("s1")
    finally:
        rec.close()
    # bound and cut (creationTime, restoreSize) but not ready, then ready
    assert not_ready_then_ready(versions) == [False, True]
    cut = [v for v in versions if status(v).get("creationTime")][0]
    s = status(cut)
    assert s["restoreSize"] == "1Gi" and s["boundVolumeSnapshotContentName"]
    assert status(vs)["creationTime"] == s["creationTime"]
    assert vs["spec"]["volumeSnapshotClassName"] == CLASSES[SLOW_DRIVER]
    c = cluster.content(s["boundVolumeSnapshotContentName"])
    assert status(c)["readyToUse"] is True and status(c)["snapshotHandle"]
    # the source PVC was protected while the snapshot was not ready, and is no more
    wait_for(lambda: sc.FIN_PVC not in (cluster.pvc(ns, "data")["metadata"].get("finalizers")
                                        or []), what="PVC finalizer removed")


def test_slow_by_annotation(cluster, ns):
    """The mode can be picked per snapshot, whatever the driver's."""
    cluster.bound_pvc(ns, "data")
    rec = cluster.record_snapshots(ns)
    try:
        assert cluster.create_snapshot(ns, "s1", pvc="data", annotations={
            sc.MODE_ANNOTATION: "slow", sc.SLOW_ANNOTATION: "1"})[0] == 201
        cluster.wait_ready(ns, "s1", timeout=15)
        wait_for(lambda: not_ready_then_ready(rec.versions("s1"))[-1:] == [True],
                 what="the watch to deliver the ready version")
        assert not_ready_then_ready(rec.versions("s1")) == [False, True]
    finally:
        rec.close()


def test_error_mode_sets_status_error(cluster, ns):
    pvc, pv = cluster.bound_pvc(ns, "data", driver=ERROR_DRIVER)
    assert cluster.create_snapshot(ns, "s1", pvc="data")[0] == 201
    vs = cluster.wait_snapshot(ns, "s1", lambda v: status(v).get("error"), what="error")
    s = status(vs)
    handle = pv["spec"]["csi"]["volumeHandle"]
    assert s["readyToUse"] is False
    assert s["error"]["message"].startswith(
        f"Failed to create snapshot: failed to take snapshot of the volume {handle}: ")
    assert s["error"]["time"].endswith("Z")
    c = cluster.content(s["boundVolumeSnapshotContentName"])
    assert status(c)["error"] == s["error"] and "snapshotHandle" not in status(c)
    time.sleep(1.5)          # never becomes ready
    assert status(cluster.snapshot(ns, "s1"))["readyToUse"] is False
    # the PVC stays protected, as with the real controller
    assert sc.FIN_PVC in cluster.pvc(ns, "data")["metadata"]["finalizers"]


def test_error_message_by_annotation(cluster, ns):
    cluster.bound_pvc(ns, "data")
    assert cluster.create_snapshot(ns, "s1", pvc="data", annotations={
        sc.MODE_ANNOTATION: "error", sc.ERROR_ANNOTATION: "quota exceeded"})[0] == 201
    vs = cluster.wait_snapshot(ns, "s1", lambda v: status(v).get("error"), what="error")
    assert status(vs)["error"]["message"].endswith("desc = quota exceeded\"")


def test_no_class_and_no_default_is_an_error(cluster, ns):
    cluster.bound_pvc(ns, "data", driver=NO_DEFAULT_DRIVER)
    assert cluster.create_snapshot(ns, "s1", pvc="data")[0] == 201
    vs = cluster.wait_snapshot(ns, "s1", lambda v: status(v).get("error"), what="error")
    assert status(vs)["error"]["message"] == \
        "Failed to set default snapshot class with error cannot find default snapshot class"
    assert "boundVolumeSnapshotContentName" not in status(vs)
    assert "volumeSnapshotClassName" not in vs["spec"]
    assert not [c for c in cluster.api.list(VSC_PATH)
                if c["spec"]["volumeSnapshotRef"]["uid"] == vs["metadata"]["uid"]]
    # creating a default class for that driver lets it proceed; the error goes
    cls = f"nodefault-{ns}"
    cluster.api.create(VSCLASS_PATH, {
        "apiVersion": f"{GROUP}/v1", "kind": "VolumeSnapshotClass",
        "metadata": {"name": cls, "annotations": {sc.ANN_DEFAULT_CLASS: "true"}},
        "driver": NO_DEFAULT_DRIVER, "deletionPolicy": "Retain"})
    try:
        vs = cluster.wait_ready(ns, "s1")
        assert "error" not in status(vs) and vs["spec"]["volumeSnapshotClassName"] == cls
        # Retain: no bound finalizer on the snapshot
        assert vs["metadata"]["finalizers"] == [sc.FIN_SOURCE]
    finally:
        cluster.api.delete(f"{VSCLASS_PATH}/{cls}")


def test_missing_class_and_unbound_pvc(cluster, ns):
    cluster.bound_pvc(ns, "data")
    assert cluster.create_snapshot(ns, "s1", pvc="data", vsclass="nope")[0] == 201
    vs = cluster.wait_snapshot(ns, "s1", lambda v: status(v).get("error"), what="error")
    assert status(vs)["error"]["message"].startswith(
        "Failed to get snapshot class with error failed to retrieve snapshot class nope")
    # a PVC that does not exist: with a class, and with the default class
    assert cluster.create_snapshot(ns, "s2", pvc="ghost", vsclass=CLASSES[DRIVER])[0] == 201
    vs = cluster.wait_snapshot(ns, "s2", lambda v: status(v).get("error"), what="error")
    assert status(vs)["error"]["message"] == (
        "Failed to create snapshot content with error snapshot controller failed to update s2 "
        "on API server: cannot get claim from snapshot")
    assert status(vs)["readyToUse"] is False
    assert cluster.create_snapshot(ns, "s4", pvc="ghost")[0] == 201
    vs = cluster.wait_snapshot(ns, "s4", lambda v: status(v).get("error"), what="error")
    assert status(vs)["error"]["message"] == (
        "Failed to set default snapshot class with error failed to retrieve PVC ghost from the "
        r'lister: "persistentvolumeclaim \"ghost\" not found"')
    # a PVC that is not bound (it gets the protection finalizer first, as in the real one)
    cluster.api.create(ns_path(PVC_PATH, ns), {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "pending"},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "",
                 "resources": {"requests": {"storage": "1Gi"}}}})
    assert cluster.create_snapshot(ns, "s3", pvc="pending", vsclass=CLASSES[DRIVER])[0] == 201
    vs = cluster.wait_snapshot(ns, "s3", lambda v: status(v).get("error"), what="error")
    assert status(vs)["error"]["message"] == (
        "Failed to create snapshot content with error failed to get input parameters to create "
        r'snapshot s3: "the PVC pending is not yet bound to a PV, will not attempt to take a '
        r'snapshot"')
    assert sc.FIN_PVC in cluster.pvc(ns, "pending")["metadata"]["finalizers"]


# ---------------------------------------------------------------------------
# deletion


def test_delete_with_policy_delete_removes_content(cluster, ns):
    cluster.bound_pvc(ns, "data")
    assert cluster.create_snapshot(ns, "s1", pvc="data")[0] == 201
    vs = cluster.wait_ready(ns, "s1")
    content = status(vs)["boundVolumeSnapshotContentName"]
    assert cluster.api.delete(ns_path(sc.VS_PATH, ns, "s1"))
    wait_for(lambda: cluster.snapshot(ns, "s1") is None, what="snapshot gone")
    wait_for(lambda: cluster.content(content) is None, what="content gone")


def test_delete_with_policy_retain_keeps_content(cluster, ns):
    cls = f"retain-{ns}"
    cluster.api.create(VSCLASS_PATH, {
        "apiVersion": f"{GROUP}/v1", "kind": "VolumeSnapshotClass", "metadata": {"name": cls},
        "driver": DRIVER, "deletionPolicy": "Retain"})
    try:
        cluster.bound_pvc(ns, "data")
        assert cluster.create_snapshot(ns, "s1", pvc="data", vsclass=cls)[0] == 201
        vs = cluster.wait_ready(ns, "s1")
        content = status(vs)["boundVolumeSnapshotContentName"]
        assert cluster.api.delete(ns_path(sc.VS_PATH, ns, "s1"))
        wait_for(lambda: cluster.snapshot(ns, "s1") is None, what="snapshot gone")
        time.sleep(1)
        c = cluster.content(content)
        assert c is not None and status(c)["readyToUse"] is True
        assert c["metadata"]["annotations"][sc.ANN_BEING_DELETED] == "yes"
    finally:
        cluster.api.delete(f"{VSCLASS_PATH}/{cls}")


def test_lost_content_is_reported(cluster, ns):
    """A bound snapshot whose content disappears gets an error, and no new
    content is made for it."""
    cluster.bound_pvc(ns, "data")
    assert cluster.create_snapshot(ns, "s1", pvc="data")[0] == 201
    vs = cluster.wait_ready(ns, "s1")
    name = status(vs)["boundVolumeSnapshotContentName"]
    # deleted by hand, finalizer dropped (after the delete, or it would be re-added)
    assert cluster.api.delete(f"{VSC_PATH}/{name}")
    cluster.api.merge_patch(f"{VSC_PATH}/{name}", {"metadata": {"finalizers": None}})
    vs = cluster.wait_snapshot(ns, "s1", lambda v: status(v).get("error"), what="error")
    assert status(vs)["error"]["message"] == "VolumeSnapshotContent is missing"
    assert status(vs)["readyToUse"] is False
    time.sleep(0.5)
    assert cluster.content(name) is None


def test_preprovisioned_snapshot_binds(cluster, ns):
    """An existing snapshot (e.g. imported from another cluster) is claimed
    through a content with source.snapshotHandle."""
    name = f"imported-{ns}"
    cluster.api.create(VSC_PATH, {
        "apiVersion": f"{GROUP}/v1", "kind": "VolumeSnapshotContent",
        "metadata": {"name": name},
        "spec": {"driver": DRIVER, "deletionPolicy": "Delete",
                 "source": {"snapshotHandle": "standin-snap-imported"},
                 "volumeSnapshotRef": {"name": "s1", "namespace": ns}}})
    assert cluster.create_snapshot(ns, "s1", content=name)[0] == 201
    vs = cluster.wait_ready(ns, "s1")
    assert status(vs)["boundVolumeSnapshotContentName"] == name
    c = cluster.content(name)
    assert c["spec"]["volumeSnapshotRef"]["uid"] == vs["metadata"]["uid"]
    assert status(c)["snapshotHandle"] == "standin-snap-imported"
    # a snapshot naming a content bound elsewhere gets an error
    assert cluster.create_snapshot(ns, "s2", content=name)[0] == 201
    vs = cluster.wait_snapshot(ns, "s2", lambda v: status(v).get("error"), what="error")
    assert "is bound to a different snapshot" in status(vs)["error"]["message"]
    assert cluster.api.delete(ns_path(sc.VS_PATH, ns, "s1"))
    wait_for(lambda: cluster.content(name) is None, what="content gone")


# ---------------------------------------------------------------------------
# restore


def test_restore_pvc_from_snapshot_gets_bound(cluster, ns):
    cluster.bound_pvc(ns, "data", size="1Gi")
    assert cluster.create_snapshot(ns, "s1", pvc="data")[0] == 201
    vs = cluster.wait_ready(ns, "s1")
    handle = status(cluster.content(status(vs)["boundVolumeSnapshotContentName"]))[
        "snapshotHandle"]
    cluster.restore_pvc(ns, "restored", "s1", size="2Gi")
    pvc = cluster.wait_pvc_bound(ns, "restored")
    pv = cluster.api.get(f"{PV_PATH}/{pvc['spec']['volumeName']}")
    assert pv["metadata"]["name"] == f"pvc-{pvc['metadata']['uid']}"
    assert pv["spec"]["claimRef"]["uid"] == pvc["metadata"]["uid"]
    assert pv["spec"]["csi"]["driver"] == DRIVER
    assert pv["spec"]["csi"]["volumeAttributes"]["standin.kontinuity.test/restored-from"] == handle
    assert pv["spec"]["capacity"]["storage"] == "2Gi" and status(pv)["phase"] == "Bound"
    assert status(pvc)["capacity"]["storage"] == "2Gi"
    assert pvc["metadata"]["annotations"]["pv.kubernetes.io/bind-completed"] == "yes"
    assert pvc["metadata"]["annotations"]["volume.kubernetes.io/storage-provisioner"] == DRIVER


def test_restore_waits_for_a_ready_snapshot(cluster, ns):
    cluster.bound_pvc(ns, "data", driver=SLOW_DRIVER)
    assert cluster.create_snapshot(ns, "s1", pvc="data")[0] == 201
    cluster.restore_pvc(ns, "restored", "s1", storage_class=CLASSES[SLOW_DRIVER])
    wait_for(lambda: any(e["reason"] == "ProvisioningFailed" and "is not Ready" in e["message"]
                         for e in cluster.events(ns, "restored")), what="ProvisioningFailed")
    # (the PVC was Pending then: that is when the provisioner reports this)
    cluster.wait_pvc_bound(ns, "restored", timeout=SLOW_SECONDS + 15)


def test_snapshot_deletion_waits_for_a_restoring_pvc(cluster, ns):
    cluster.bound_pvc(ns, "data", size="2Gi")
    assert cluster.create_snapshot(ns, "s1", pvc="data")[0] == 201
    vs = cluster.wait_ready(ns, "s1")
    content = status(vs)["boundVolumeSnapshotContentName"]
    cluster.restore_pvc(ns, "small", "s1", size="1Gi")        # stays Pending: too small
    wait_for(lambda: cluster.events(ns, "small"), what="ProvisioningFailed")
    assert cluster.api.delete(ns_path(sc.VS_PATH, ns, "s1"))
    wait_for(lambda: any(e["reason"] == "SnapshotDeletePending" for e in cluster.events(ns, "s1")),
             what="SnapshotDeletePending")
    assert cluster.snapshot(ns, "s1") is not None and cluster.content(content) is not None
    # remove the PVC (dropping kubernetes.io/pvc-protection ourselves: no
    # controller-manager runs here to do it); then the deletion completes
    path = ns_path(PVC_PATH, ns, "small")
    cluster.api.merge_patch(path, {"metadata": {"finalizers": None}})
    assert cluster.api.delete(path)
    wait_for(lambda: cluster.snapshot(ns, "s1") is None, what="snapshot gone")
    wait_for(lambda: cluster.content(content) is None, what="content gone")


def test_restore_smaller_than_snapshot_stays_pending(cluster, ns):
    cluster.bound_pvc(ns, "data", size="2Gi")
    assert cluster.create_snapshot(ns, "s1", pvc="data")[0] == 201
    cluster.wait_ready(ns, "s1")
    cluster.restore_pvc(ns, "small", "s1", size="1Gi")
    ev = wait_for(lambda: [e for e in cluster.events(ns, "small")
                           if e["reason"] == "ProvisioningFailed"], what="ProvisioningFailed")
    assert ev[0]["involvedObject"]["kind"] == "PersistentVolumeClaim"
    assert ev[0]["type"] == "Warning"
    assert f"requested volume size {2**30} is less than the size {2 * 2**30}" in ev[0]["message"]
    assert status(cluster.pvc(ns, "small")).get("phase") == "Pending"


def test_quantities():
    assert sc.parse_quantity("1Gi") == 2**30
    assert sc.parse_quantity("1.5Gi") == 3 * 2**29
    assert sc.parse_quantity("500M") == 500 * 10**6
    assert sc.parse_quantity("1e3") == 1000
    assert sc.parse_quantity(7) == 7
    assert sc.format_quantity(2**30) == "1Gi" and sc.format_quantity(1536) == "1536"
    assert sc.format_quantity(3 * 2**29) == "1536Mi" and sc.format_quantity(0) == "0"
    with pytest.raises(ValueError):
        sc.parse_quantity("1 GB")
