"""`kontinuity snapshot create|list|delete|restore` and `kontinuity doctor`
against the real kube-apiserver with the snapshot.storage.k8s.io/v1 CRDs, the
snapshot controller and CSI driver stood in by snapshot_controller_standin.py
(ready, slow and error drivers).  Every check reads the cluster back through
the REST API: what the command printed must be what the cluster holds."""
import json
import subprocess

import pytest

import peers
from snapshots import (DRIVER, ERROR_DRIVER, NO_DEFAULT_DRIVER, SLOW_DRIVER, VS_PATH,
                       ns_path, wait_for)
from test_etcd_snapshot import KT

pytestmark = pytest.mark.usefixtures("snapshot_standin")


@pytest.fixture
def cluster(snapshot_standin):
    return snapshot_standin


@pytest.fixture
def ns(cluster):
    return cluster.namespace("snapcli")


def kt(cluster, *args, kubeconfig=None, timeout=120):
    cfg = kubeconfig or cluster.kube.kubeconfig
    return subprocess.run([str(KT), *map(str, args), "--kubeconfig", str(cfg)],
                          capture_output=True, text=True, timeout=timeout)


def ok(r):
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


def snapshots_in(cluster, ns):
    return [v["metadata"]["name"] for v in cluster.api.list(ns_path(VS_PATH, ns))]


def test_create_wait_prints_content_and_handle(cluster, ns):
    cluster.bound_pvc(ns, "data", size="3Gi")
    r = ok(kt(cluster, "snapshot", "create", "data", "-n", ns, "--name", "s1", "--wait",
              "-o", "json"))
    out = json.loads(r.stdout)
    vs = cluster.snapshot(ns, "s1")
    content = cluster.content(vs["status"]["boundVolumeSnapshotContentName"])
    assert out["readyToUse"] is True and out["pvc"] == "data"
    assert out["class"] == "standin"                 # the default class of the PVC's driver
    assert out["content"] == content["metadata"]["name"]
    assert out["snapshotHandle"] == content["status"]["snapshotHandle"] != ""
    assert out["restoreSize"] == vs["status"]["restoreSize"]
    assert vs["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "kontinuity"
    # the table form carries the same facts
    r = ok(kt(cluster, "snapshot", "list", "-n", ns))
    assert "NAME" in r.stdout and "HANDLE" in r.stdout
    assert content["status"]["snapshotHandle"] in r.stdout


def test_default_name_and_slow_snapshot_shows_progress(cluster, ns):
    cluster.bound_pvc(ns, "slow", driver=SLOW_DRIVER)
    r = ok(kt(cluster, "snapshot", "create", "slow", "-n", ns, "--wait", "-o", "json"))
    out = json.loads(r.stdout)
    assert out["name"].startswith("slow-") and len(out["name"]) == len("slow-") + 14
    assert out["readyToUse"] is True and out["class"] == "standin-slow"
    assert "readyToUse=false" in r.stderr          # progress while the driver worked
    assert snapshots_in(cluster, ns) == [out["name"]]


def test_wait_times_out_clearly(cluster, ns):
    cluster.bound_pvc(ns, "slow", driver=SLOW_DRIVER)
    r = kt(cluster, "snapshot", "create", "slow", "-n", ns, "--name", "t", "--wait",
           "--timeout", "300ms")
    assert r.returncode == 1
    assert f"VolumeSnapshot '{ns}/t' is not ready after" in r.stderr
    assert "may still become ready" in r.stderr
    cluster.wait_ready(ns, "t")                    # it did, later


def test_driver_error_is_reported(cluster, ns):
    cluster.bound_pvc(ns, "bad", driver=ERROR_DRIVER)
    r = kt(cluster, "snapshot", "create", "bad", "-n", ns, "--name", "e", "--wait")
    assert r.returncode == 1
    msg = cluster.snapshot(ns, "e")["status"]["error"]["message"]
    assert f"VolumeSnapshot '{ns}/e' failed: {msg}" in r.stderr


def test_refusals_create_nothing(cluster, ns, tmp_path):
    r = kt(cluster, "snapshot", "create", "nope", "-n", ns)
    assert r.returncode == 1
    assert f"PersistentVolumeClaim 'nope' not found in namespace '{ns}'" in r.stderr
    cluster.bound_pvc(ns, "nodef", driver=NO_DEFAULT_DRIVER)
    r = kt(cluster, "snapshot", "create", "nodef", "-n", ns)
    assert r.returncode == 1
    assert f"no default VolumeSnapshotClass for driver '{NO_DEFAULT_DRIVER}'" in r.stderr
    assert "--class" in r.stderr
    r = kt(cluster, "snapshot", "create", "nodef", "-n", ns, "--class", "missing-class")
    assert r.returncode == 1 and "VolumeSnapshotClass 'missing-class' does not exist" in r.stderr
    r = kt(cluster, "snapshot", "create", "nodef", "-n", ns, "--class", "standin")
    assert r.returncode == 2 and f"is for driver '{DRIVER}'" in r.stderr
    r = kt(cluster, "snapshot", "create", "nodef", "-n", ns, "--name", "Bad_Name",
           "--class", "standin")
    assert r.returncode == 2
    assert snapshots_in(cluster, ns) == []
    # usage errors never reach the cluster
    r = kt(cluster, "snapshot", "create", "-n", ns)
    assert r.returncode == 2 and "name the PVC" in r.stderr
    r = kt(cluster, "snapshot", "restore", "x", "-n", ns)
    assert r.returncode == 2 and "--to-pvc" in r.stderr
    r = kt(cluster, "snapshot", "list", "-n", ns, "-A")
    assert r.returncode == 2


def test_restore_into_a_new_pvc(cluster, ns):
    cluster.bound_pvc(ns, "src", size="2Gi")
    ok(kt(cluster, "snapshot", "create", "src", "-n", ns, "--name", "snap", "--wait"))
    r = kt(cluster, "snapshot", "restore", "snap", "-n", ns, "--to-pvc", "small",
           "--size", "1Gi")
    assert r.returncode == 2 and "smaller than the snapshot's restoreSize 2Gi" in r.stderr
    assert cluster.pvc(ns, "small") is None
    r = ok(kt(cluster, "snapshot", "restore", "snap", "-n", ns, "--to-pvc", "copy", "--wait",
              "-o", "json"))
    out = json.loads(r.stdout)
    pvc = cluster.pvc(ns, "copy")
    assert pvc["spec"]["dataSource"] == {"apiGroup": "snapshot.storage.k8s.io",
                                         "kind": "VolumeSnapshot", "name": "snap"}
    assert pvc["spec"]["resources"]["requests"]["storage"] == "2Gi" == out["size"]
    assert pvc["spec"]["storageClassName"] == cluster.pvc(ns, "src")["spec"]["storageClassName"]
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert pvc["status"]["phase"] == "Bound" == out["phase"]
    assert out["volume"] == pvc["spec"]["volumeName"]
    assert pvc["metadata"]["annotations"]["kontinuity.io/restored-from"] == f"{ns}/snap"
    r = kt(cluster, "snapshot", "restore", "snap", "-n", ns, "--to-pvc", "copy")
    assert r.returncode == 1 and "already exists" in r.stderr
    # a bigger size and another access mode are taken as asked
    ok(kt(cluster, "snapshot", "restore", "snap", "-n", ns, "--to-pvc", "big", "--size", "5Gi",
          "--access-mode", "ReadWriteMany"))
    big = cluster.pvc(ns, "big")
    assert big["spec"]["resources"]["requests"]["storage"] == "5Gi"
    assert big["spec"]["accessModes"] == ["ReadWriteMany"]


def test_restore_refuses_a_snapshot_that_is_not_ready(cluster, ns):
    cluster.bound_pvc(ns, "bad", driver=ERROR_DRIVER)
    kt(cluster, "snapshot", "create", "bad", "-n", ns, "--name", "e")
    cluster.wait_snapshot(ns, "e", lambda v: (v.get("status") or {}).get("error"))
    r = kt(cluster, "snapshot", "restore", "e", "-n", ns, "--to-pvc", "x")
    assert r.returncode == 2 and "is not ready to use" in r.stderr
    assert cluster.pvc(ns, "x") is None


def test_list_all_namespaces_and_delete(cluster, ns):
    other = cluster.namespace("snapcli")
    for n in (ns, other):
        cluster.bound_pvc(n, "d")
        ok(kt(cluster, "snapshot", "create", "d", "-n", n, "--name", "s", "--wait"))
    rows = json.loads(ok(kt(cluster, "snapshot", "list", "-A", "-o", "json")).stdout)
    mine = {(x["namespace"], x["name"]) for x in rows}
    assert {(ns, "s"), (other, "s")} <= mine
    rows = json.loads(ok(kt(cluster, "snapshot", "list", "-n", ns, "-o", "json")).stdout)
    assert [(x["namespace"], x["name"]) for x in rows] == [(ns, "s")]
    content = cluster.snapshot(ns, "s")["status"]["boundVolumeSnapshotContentName"]
    r = ok(kt(cluster, "snapshot", "delete", "s", "-n", ns))
    assert f"deleted VolumeSnapshot {ns}/s" in r.stdout
    wait_for(lambda: cluster.snapshot(ns, "s") is None, what="snapshot gone")
    wait_for(lambda: cluster.content(content) is None, what="content gone (policy Delete)")
    r = kt(cluster, "snapshot", "delete", "s", "-n", ns)
    assert r.returncode == 1 and f"VolumeSnapshot 's' not found in namespace '{ns}'" in r.stderr
    r = kt(cluster, "snapshot", "list", "-n", ns)
    assert r.returncode == 0 and "no VolumeSnapshots in namespace" in r.stderr


def test_wrong_context_and_missing_rbac(cluster, ns, tmp_path):
    r = subprocess.run([str(KT), "snapshot", "list", "-n", ns, "--kubeconfig",
                        str(cluster.kube.kubeconfig), "--context", "nope"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "nope" in r.stderr
    k = cluster.kube
    cert, key = peers.CA(k.ca_file.parent).issue("snapnobody", "kt-snap-nobody", server=False)
    cfg = tmp_path / "nobody.conf"
    cfg.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters:\n- name: k\n  cluster:\n    server: {k.url}\n"
        f"    certificate-authority: {k.ca_file}\n"
        "users:\n- name: u\n  user:\n"
        f"    client-certificate: {cert}\n    client-key: {key}\n"
        "contexts:\n- name: c\n  context:\n    cluster: k\n    user: u\n")
    r = kt(cluster, "snapshot", "create", "x", "-n", ns, kubeconfig=cfg)
    assert r.returncode == 1 and "kt-snap-nobody" in r.stderr and "403" in r.stderr
    d = kt(cluster, "doctor", "-o", "json", "--etcd-manifest", tmp_path / "none.yaml",
           kubeconfig=cfg)
    assert d.returncode == 1, d.stderr
    rbac = [c for c in json.loads(d.stdout) if c["check"] == "rbac"]
    assert rbac and rbac[0]["result"] == "FAIL"
    assert "create volumesnapshots.snapshot.storage.k8s.io" in rbac[0]["detail"]
    assert rbac[0]["fix"]


def test_doctor_reports_each_check_with_a_fix(cluster, tmp_path):
    r = kt(cluster, "doctor", "-o", "json", "--etcd-manifest", tmp_path / "none.yaml")
    checks = json.loads(r.stdout)
    by = {}
    for c in checks:
        by.setdefault(c["check"], []).append(c)
    assert by["crds"][0]["result"] == "ok"
    assert by["classes"][0]["result"] == "ok"
    assert by["rbac"][0]["result"] == "ok"           # the admin token may do everything
    assert by["etcd"][0]["result"] == "skip" and "not a control-plane node" in \
        by["etcd"][0]["detail"]
    drivers = {c["detail"].split()[2]: c for c in by["driver"]}
    assert drivers[DRIVER]["result"] == "ok" and "standin" in drivers[DRIVER]["detail"]
    # a StorageClass whose driver has no VolumeSnapshotClass at all: FAIL with the fix
    nd = drivers[NO_DEFAULT_DRIVER]
    assert nd["result"] == "FAIL" and "has no VolumeSnapshotClass" in nd["detail"]
    assert f"driver: {NO_DEFAULT_DRIVER}" in nd["fix"]
    assert r.returncode == 1                        # something failed
    t = kt(cluster, "doctor", "--etcd-manifest", tmp_path / "none.yaml")
    assert "CHECK" in t.stdout and "FIX" in t.stdout and t.returncode == 1


def test_doctor_checks_etcd_on_a_control_plane_node(cluster, tmp_path):
    """A node with an etcd static pod manifest: doctor reads the client URL and
    CA from it and asks etcd for its status with the kubeadm health-check
    client certificate next to the CA, as on a kubeadm node."""
    etcd = peers.need(lambda: peers.Etcd(workdir=tmp_path / "etcd", tls=True).start())
    try:
        pki = tmp_path / "pki" / "etcd"
        pki.mkdir(parents=True)
        (pki / "ca.crt").write_bytes(open(etcd.ca_file, "rb").read())
        (pki / "healthcheck-client.crt").write_bytes(open(etcd.client_cert, "rb").read())
        (pki / "healthcheck-client.key").write_bytes(open(etcd.client_key, "rb").read())
        manifest = tmp_path / "etcd.yaml"
        manifest.write_text(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: etcd\n  namespace: kube-system\n"
            "spec:\n  containers:\n  - name: etcd\n    image: registry.k8s.io/etcd:3.6.16-0\n"
            "    command:\n    - etcd\n"
            f"    - --listen-client-urls={etcd.endpoint}\n"
            f"    - --trusted-ca-file={pki / 'ca.crt'}\n")
        r = kt(cluster, "doctor", "-o", "json", "--etcd-manifest", manifest)
        e = [c for c in json.loads(r.stdout) if c["check"] == "etcd"][0]
        assert e["result"] == "ok" and etcd.endpoint in e["detail"] and "revision" in \
            e["detail"], e
    finally:
        etcd.stop()
    r = kt(cluster, "doctor", "-o", "json", "--etcd-manifest", manifest)
    e = [c for c in json.loads(r.stdout) if c["check"] == "etcd"][0]
    assert e["result"] == "FAIL" and "does not answer" in e["detail"] and e["fix"]
    assert r.returncode == 1


def test_valgrind_snapshot_commands_and_doctor(cluster, ns, tmp_path):
    """The snapshot paths (create with a watch, list with contents, restore,
    delete) and doctor under valgrind: no invalid access, no leak."""
    from test_valgrind import VALGRIND
    cluster.bound_pvc(ns, "vg", driver=SLOW_DRIVER)
    cfg = str(cluster.kube.kubeconfig)

    def vg(*args):
        r = subprocess.run([*VALGRIND, str(KT), *map(str, args), "--kubeconfig", cfg],
                           capture_output=True, text=True, timeout=600)
        assert r.returncode != 99, f"valgrind found errors:\n{r.stderr[-6000:]}"
        return r
    assert vg("snapshot", "create", "vg", "-n", ns, "--name", "v", "--wait").returncode == 0
    assert vg("snapshot", "list", "-A", "-o", "yaml").returncode == 0
    assert vg("snapshot", "restore", "v", "-n", ns, "--to-pvc", "vg2", "--wait").returncode == 0
    assert vg("snapshot", "create", "missing", "-n", ns).returncode == 1
    assert vg("doctor", "--etcd-manifest", tmp_path / "none").returncode in (0, 1)
    assert vg("snapshot", "delete", "v", "-n", ns).returncode == 0
