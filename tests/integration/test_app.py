"""`kontinuity app backup|restore` and `restorepoint list` end to end on a real
kube-apiserver and a repository: the namespace of test_app_capture.py (one of
everything the rules distinguish, a Helm release Secret and a custom
resource included) is captured into a restore point, restored into another
namespace and compared field by field, deleted objects come back in place,
--existing update brings changed ones back, and the Secret's value is never
in the repository's bytes or in any output."""
import json
import subprocess

import pytest

import peers
from test_app_capture import api, app  # noqa: F401 (fixtures)
from test_etcd_snapshot import KT

# The PVC of the application is snapshotted through the real API server with
# the snapshot controller stood in (snapshots.py).
pytestmark = pytest.mark.usefixtures("snapshot_standin")

PASS = "restore point passphrase"


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    r = tmp_path_factory.mktemp("app-repo") / "repo"
    out = subprocess.run([str(KT), "repo", "init", "--repo", str(r)], capture_output=True,
                         text=True, env=env(), timeout=120)
    assert out.returncode == 0, out.stderr
    return r


def env():
    import os
    e = {k: v for k, v in os.environ.items() if not k.startswith("KONTINUITY_")}
    e["KONTINUITY_PASSWORD"] = PASS
    return e


def kt(kube, *args, check=True):
    r = subprocess.run([str(KT), *map(str, args), "--kubeconfig", str(kube.kubeconfig)],
                       capture_output=True, text=True, env=env(), timeout=300)
    if check:
        assert r.returncode == 0, f"{args[:2]} exited {r.returncode}:\n{r.stdout}\n{r.stderr}"
    return r


def rp(kube, repo, *args, check=True):
    r = subprocess.run([str(KT), *map(str, args), "--repo", str(repo)], capture_output=True,
                       text=True, env=env(), timeout=300)
    if check:
        assert r.returncode == 0, r.stderr
    return r


KINDS = {"configmaps": "ConfigMap", "secrets": "Secret", "services": "Service",
         "serviceaccounts": "ServiceAccount", "persistentvolumeclaims": "PersistentVolumeClaim",
         "statefulsets": "StatefulSet", "rolebindings": "RoleBinding", "widgets": "Widget"}


def comparable(obj, ns, resource):
    """What a restore must reproduce: everything but what the cluster assigns."""
    o = json.loads(json.dumps(obj))
    o["kind"] = KINDS[resource]
    m = o["metadata"]
    for k in ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields",
              "namespace", "selfLink", "ownerReferences"):
        m.pop(k, None)
    if o["kind"] == "Namespace":
        m.pop("name")
        m.get("labels", {}).pop("kubernetes.io/metadata.name", None)
    o.pop("status", None)
    if o["kind"] == "Service":
        for k in ("clusterIP", "clusterIPs"):
            if o["spec"].get(k) not in ("None", ["None"]):
                o["spec"].pop(k, None)
        for p in o["spec"].get("ports", []):
            p.pop("nodePort", None)
    if o["kind"] == "PersistentVolumeClaim":
        o["spec"].pop("volumeName", None)
        o["spec"].pop("dataSource", None)       # the restored one comes from the snapshot
        o["spec"].pop("dataSourceRef", None)
        o["spec"].pop("storageClassName", None) # "" (static) becomes the driver's class
        m.pop("annotations", None)
        m.get("finalizers", []).clear()
    if o["kind"] == "RoleBinding":
        for s in o.get("subjects", []):
            if s.get("namespace") == ns:
                s["namespace"] = "<ns>"
    return o


def listing(api, ns, group, resource):
    base = f"/api/v1" if group == "core" else f"/apis/{group}"
    if group != "core":
        ver = api.get(f"/apis/{group}")["preferredVersion"]["version"]
        base = f"{base}/{ver}"
    return {o["metadata"]["name"]: o for o in api.list(f"{base}/namespaces/{ns}/{resource}")}


def test_backup_restore_into_another_namespace_field_by_field(kube_apiserver, app, api, repo,
                                                               tmp_path):
    ns = app["ns"]
    r = kt(kube_apiserver, "app", "backup", ns, "--repo", repo, "-o", "json")
    out = json.loads(r.stdout)
    assert out["objects"] >= 14 and out["failed"] == 0 and out["skippedObjects"] == 3
    assert out["volumes"] == 1
    snaps = api.list(f"/apis/snapshot.storage.k8s.io/v1/namespaces/{ns}/volumesnapshots")
    vsnaps = [v for v in snaps if v["spec"]["source"].get("persistentVolumeClaimName") ==
              "data-pg-0"]
    assert vsnaps and vsnaps[-1]["status"]["readyToUse"] is True
    rows = json.loads(rp(kube_apiserver, repo, "restorepoint", "list", "-o", "json").stdout)
    mine = [x for x in rows if x["namespace"] == ns]
    assert mine and mine[-1]["id"] == out["id"] and mine[-1]["objects"] == out["objects"]
    # The Secret's value is encrypted at rest: not in any byte of the repository.
    for f in repo.rglob("*"):
        if f.is_file():
            assert b"s3cret" not in f.read_bytes(), f

    to = ns + "-copy"
    r = kt(kube_apiserver, "app", "restore", out["id"][:8], "--repo", repo, "--to-namespace",
           to, "-o", "json")
    report = json.loads(r.stdout)
    results = {(x["kind"], x["name"]): x["result"] for x in report}
    assert results[("Namespace", to)] == "created" and "failed" not in results.values(), report
    assert ("PersistentVolume", app["pv"]) not in results   # volumes come from snapshots
    for group, resource in (("core", "configmaps"), ("core", "secrets"), ("core", "services"),
                            ("core", "serviceaccounts"), ("core", "persistentvolumeclaims"),
                            ("apps", "statefulsets"), ("rbac.authorization.k8s.io",
                                                       "rolebindings"),
                            (app["group"], "widgets")):
        src = listing(api, ns, group, resource)
        dst = listing(api, to, group, resource)
        src.pop("kube-root-ca.crt", None)
        src.pop("pg-token-abcde", None)
        assert set(src) - {"default"} <= set(dst), (resource, set(src), set(dst))
        for name, obj in src.items():
            if name == "default":
                continue
            assert comparable(dst[name], to, resource) == comparable(obj, ns, resource), \
                (resource, name)
    # The PVC comes back from the restore point's snapshot, made usable in the
    # new namespace as a copy bound to the same storage snapshot.
    snap = vsnaps[-1]["metadata"]["name"]
    assert results[("VolumeSnapshot", snap)] == "created"
    copy = api.get(f"/apis/snapshot.storage.k8s.io/v1/namespaces/{to}/volumesnapshots/{snap}")
    content = api.get("/apis/snapshot.storage.k8s.io/v1/volumesnapshotcontents/"
                      + copy["spec"]["source"]["volumeSnapshotContentName"])
    orig = api.get("/apis/snapshot.storage.k8s.io/v1/volumesnapshotcontents/"
                   + vsnaps[-1]["status"]["boundVolumeSnapshotContentName"])
    assert content["spec"]["source"]["snapshotHandle"] == orig["status"]["snapshotHandle"]
    assert content["spec"]["deletionPolicy"] == "Retain"
    pvc = api.get(f"/api/v1/namespaces/{to}/persistentvolumeclaims/data-pg-0")
    assert pvc["spec"]["storageClassName"] == "standin"   # the snapshot driver's class
    assert pvc["spec"]["dataSource"] == {"apiGroup": "snapshot.storage.k8s.io",
                                         "kind": "VolumeSnapshot", "name": snap}
    try:
        peers.wait_for(lambda: api.get(f"/api/v1/namespaces/{to}/persistentvolumeclaims/"
                                       "data-pg-0").get("status", {}).get("phase") == "Bound",
                       30, "the restored PVC bound (provisioned from the snapshot)")
    except AssertionError:
        ev = api.list(f"/api/v1/namespaces/{to}/events")
        vs = api.get(f"/apis/snapshot.storage.k8s.io/v1/namespaces/{to}/volumesnapshots/{snap}")
        raise AssertionError(f"{[e['message'] for e in ev]}\n{vs}\n{content}")
    helm = api.get(f"/api/v1/namespaces/{to}/secrets/sh.helm.release.v1.pg.v1")
    assert helm["metadata"]["labels"]["owner"] == "helm" and helm["type"] == "helm.sh/release.v1"


def test_restore_in_place_brings_back_what_was_deleted(kube_apiserver, app, api, repo):
    ns = app["ns"]
    rid = json.loads(kt(kube_apiserver, "app", "backup", ns, "--repo", repo,
                        "-o", "json").stdout)["id"]
    api.delete(f"/api/v1/namespaces/{ns}/configmaps/cfg")
    api.delete(f"/apis/apps/v1/namespaces/{ns}/statefulsets/pg")
    api.merge_patch(f"/api/v1/namespaces/{ns}/secrets/creds", {"stringData": {"password": "x"}})
    dry = json.loads(kt(kube_apiserver, "app", "restore", rid, "--repo", repo, "--dry-run",
                        "-o", "json").stdout)
    plan = {(x["kind"], x["name"]): x["result"] for x in dry}
    assert plan[("ConfigMap", "cfg")] == "would-create"
    assert plan[("Secret", "creds")] == "would-skip"
    assert api.request("GET", f"/api/v1/namespaces/{ns}/configmaps/cfg")[0] == 404
    r = kt(kube_apiserver, "app", "restore", rid, "--repo", repo)
    assert "ConfigMap" in r.stdout and "created" in r.stdout and "skipped" in r.stdout
    assert api.get(f"/api/v1/namespaces/{ns}/configmaps/cfg")["data"] == {"a": "1"}
    assert api.get(f"/apis/apps/v1/namespaces/{ns}/statefulsets/pg")["spec"]["replicas"] == 1
    import base64
    creds = api.get(f"/api/v1/namespaces/{ns}/secrets/creds")["data"]["password"]
    assert base64.b64decode(creds) == b"x"                 # existing: left alone ...
    kt(kube_apiserver, "app", "restore", rid, "--repo", repo, "--existing", "update",
       "--include-kinds", "Secret")
    creds = api.get(f"/api/v1/namespaces/{ns}/secrets/creds")["data"]["password"]
    assert base64.b64decode(creds) == b"s3cret"            # ... or brought back


def test_refusals(kube_apiserver, app, repo, tmp_path):
    r = kt(kube_apiserver, "app", "backup", "no-such-ns", "--repo", repo, check=False)
    assert r.returncode == 1 and "namespace 'no-such-ns' does not exist" in r.stderr
    r = kt(kube_apiserver, "app", "restore", "ffffffff", "--repo", repo, check=False)
    assert r.returncode != 0 and "ffffffff" in r.stderr
    r = kt(kube_apiserver, "app", "restore", "latest", "--repo", repo, "--existing", "merge",
           check=False)
    assert r.returncode == 2 and "skip or update" in r.stderr
    # A file snapshot is not a restore point.
    (tmp_path / "f").write_text("x")
    snap = json.loads(rp(kube_apiserver, repo, "repo", "backup", tmp_path / "f",
                         "-o", "json").stdout)["id"]
    r = kt(kube_apiserver, "app", "restore", snap[:8], "--repo", repo, check=False)
    assert r.returncode == 2 and "not a restore point" in r.stderr
    r = subprocess.run([str(KT), "app", "backup", app["ns"], "--repo", str(repo),
                        "--kubeconfig", str(kube_apiserver.kubeconfig)], capture_output=True,
                       text=True, env={**env(), "KONTINUITY_PASSWORD": "wrong"}, timeout=120)
    assert r.returncode != 0 and "wrong" not in r.stderr


def test_valgrind_app_backup_restore_list(kube_apiserver, app, repo):
    from test_valgrind import VALGRIND
    ns = app["ns"]
    for args in (["app", "backup", ns], ["restorepoint", "list"],
                 ["app", "restore", "latest", "--to-namespace", ns + "-vgr", "--dry-run"],
                 ["app", "restore", "latest", "--to-namespace", ns + "-vgr"]):
        kube = [] if args[0] == "restorepoint" else ["--kubeconfig",
                                                     str(kube_apiserver.kubeconfig)]
        r = subprocess.run([*VALGRIND, str(KT), *args, "--repo", str(repo), *kube],
                           capture_output=True, text=True, env=env(), timeout=600)
        assert r.returncode != 99, f"valgrind found errors:\n{r.stderr[-6000:]}"
        assert r.returncode == 0, r.stderr


def test_export_to_an_immutable_profile_and_import_into_another_cluster(
        kube_apiserver, app, api, minio, tmp_path):
    """The mission's DR story: restore points go to an export profile whose
    bucket has Object Lock (every object under COMPLIANCE retention, never
    deletable before its date); a second cluster with the same profile lists
    and restores them."""
    from test_profile import install_kontinuity_crds
    from test_s3 import s3tool, versions
    ns = app["ns"]
    s3tool(minio, "rp-export", "mb", "--lock")
    (tmp_path / "ak").write_text(minio.access_key)
    (tmp_path / "sk").write_text(minio.secret_key)
    (tmp_path / "rp").write_text("export passphrase")

    def make_profile(kube):
        install_kontinuity_crds(kube)
        r = kt(kube, "profile", "create", "app-export", "--endpoint", minio.endpoint, "--bucket",
               "rp-export", "--prefix", "restore-points", "--path-style", "--immutable-days",
               "1", "--access-key-id-file", tmp_path / "ak", "--secret-access-key-file",
               tmp_path / "sk", "--repository-password-file", tmp_path / "rp", check=False)
        assert r.returncode == 0, r.stderr
    make_profile(kube_apiserver)
    # (test_app_mover.py exports and imports the volume data with mover Jobs.)
    out = json.loads(kt(kube_apiserver, "app", "backup", ns, "--profile", "app-export",
                        "--volume-data", "snapshot-only", "-o", "json").stdout)
    assert out["objects"] >= 14 and out["failed"] == 0
    # Every object written carries COMPLIANCE retention; none can be destroyed.
    vs = [v for v in versions(minio, "rp-export", "restore-points/") if v[4] == "data"]
    assert any(k.startswith("restore-points/data/") for k, *_ in vs)
    pack = next(v for v in vs if v[0].startswith("restore-points/data/"))
    ret = dict(line.split("=", 1) for line in
               s3tool(minio, "rp-export", "retention", pack[0]).stdout.splitlines())
    assert ret["mode"] == "COMPLIANCE"
    r = s3tool(minio, "rp-export", "rmv", pack[0], pack[1], check=False)
    assert r.returncode == 6 and "Object Lock retention" in r.stderr

    # A second cluster: its own kube-apiserver and etcd, the same profile.
    import peers as p
    with p.KubeApiserver(tmp_path / "cluster-b") as other:
        make_profile(other)
        listed = kt(other, "app", "import", "--profile", "app-export", "-o", "json")
        rows = json.loads(listed.stdout)
        mine = [x for x in rows if x["id"] == out["id"]]
        assert mine and mine[0]["namespace"] == ns and mine[0]["cluster"]
        # No shared storage between the clusters here: objects only.
        r = kt(other, "app", "import", out["id"][:8], "--profile", "app-export",
               "--exclude-kinds", "PersistentVolumeClaim", "-o", "json")
        results = {(x["kind"], x["name"]): x["result"] for x in json.loads(r.stdout)}
        assert results[("Namespace", ns)] == "created"
        assert results[("Secret", "creds")] == "created"
        assert results[("Widget", "w1")] == "created"   # its CRD came along (tier 0)
        other_api = install_kontinuity_crds(other)
        cm = other_api.get(f"/api/v1/namespaces/{ns}/configmaps/cfg")
        assert cm["data"] == {"a": "1"}
        assert minio.secret_key not in listed.stdout + listed.stderr + r.stdout + r.stderr


def test_policy_on_a_seconds_schedule_keeps_what_retention_says(
        kube_apiserver, app, api, minio, tmp_path):
    """A policy backs up a namespace on an @every schedule into its profile's
    repository; `kontinuity controller` runs it, records each run in the
    status, and retention (keep-last 2) removes the older restore points."""
    import signal
    import time
    from test_profile import install_kontinuity_crds
    from test_s3 import s3tool
    ns = app["ns"]
    install_kontinuity_crds(kube_apiserver)
    s3tool(minio, "rp-policy", "mb")
    for f, text in (("ak", minio.access_key), ("sk", minio.secret_key), ("rp", "pol pass")):
        (tmp_path / f).write_text(text)
    kt(kube_apiserver, "profile", "create", "app-policy", "--endpoint", minio.endpoint, "--bucket",
       "rp-policy", "--path-style", "--access-key-id-file", tmp_path / "ak",
       "--secret-access-key-file", tmp_path / "sk", "--repository-password-file",
       tmp_path / "rp")
    r = kt(kube_apiserver, "policy", "create", "bad", "--namespaces", ns, "--profile", "app-policy",
           "--schedule", "every day", check=False)
    assert r.returncode == 2 and "every day" in r.stderr
    kt(kube_apiserver, "policy", "create", "fast", "--namespaces", ns, "--profile", "app-policy",
       "--schedule", "@every 2s", "--keep-last", "2", "--no-volume-snapshots")
    run = json.loads(kt(kube_apiserver, "policy", "run", "fast", "-o", "json").stdout)
    assert run["result"] == "ok" and len(run["restorePoints"]) == 2   # NS and the catalog
    path = "/apis/kontinuity.io/v1alpha1/namespaces/kontinuity/policies/fast"
    st = api.get(path)["status"]
    assert st["runs"] == 1 and st["lastRun"]["result"] == "ok"

    ctl = subprocess.Popen([str(KT), "controller", "-n", "kontinuity", "--interval", "1s",
                            "--kubeconfig", str(kube_apiserver.kubeconfig)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    try:
        peers.wait_for(lambda: (api.get(path).get("status") or {}).get("runs", 0) >= 4, 60,
                       "the controller running the policy three more times")
    finally:
        ctl.send_signal(signal.SIGTERM)
        out, err = ctl.communicate(timeout=60)
    assert ctl.returncode == 0, err
    assert "controller stopped" in err
    st = api.get(path)["status"]
    assert st["lastRun"]["result"] == "ok", st
    rows = json.loads(kt(kube_apiserver, "restorepoint", "list", "--profile", "app-policy", "-n", ns,
                         "-o", "json").stdout)
    assert len(rows) == 2, rows              # keep-last 2, the older ones forgotten
    # The catalog (policies, profiles, their Secrets) goes along each run, so a
    # new install recovers it; and every run is an Event on the policy.
    catalog = json.loads(kt(kube_apiserver, "restorepoint", "list", "--profile", "app-policy",
                            "-n", "kontinuity", "-o", "json").stdout)
    assert len(catalog) == 2                 # the same retention
    events = [e for e in api.list("/api/v1/namespaces/kontinuity/events")
              if e["involvedObject"]["name"] == "fast"]
    assert len(events) >= 4 and {e["reason"] for e in events} == {"BackupSucceeded"}
    assert events[0]["involvedObject"]["kind"] == "Policy"
    listed = json.loads(kt(kube_apiserver, "policy", "list", "-o", "json").stdout)
    assert any(p["name"] == "fast" and p["result"] == "ok" for p in listed)
    kt(kube_apiserver, "policy", "delete", "fast")
    assert api.request("GET", path)[0] == 404


def test_policy_retention_gives_volume_snapshots_back(kube_apiserver, app, api, minio,
                                                     tmp_path):
    """Restore points keep their storage snapshots (Retain) until retention
    forgets them: then the VolumeSnapshot and its content go, so the storage
    snapshot is deleted too."""
    from test_profile import install_kontinuity_crds
    from test_s3 import s3tool
    ns = app["ns"]
    install_kontinuity_crds(kube_apiserver)
    s3tool(minio, "rp-vols", "mb")
    for f, text in (("ak", minio.access_key), ("sk", minio.secret_key), ("rp", "vols pass")):
        (tmp_path / f).write_text(text)
    kt(kube_apiserver, "profile", "create", "app-vols", "--endpoint", minio.endpoint,
       "--bucket", "rp-vols", "--path-style", "--access-key-id-file", tmp_path / "ak",
       "--secret-access-key-file", tmp_path / "sk", "--repository-password-file",
       tmp_path / "rp")
    kt(kube_apiserver, "policy", "create", "vols", "--namespaces", ns, "--profile", "app-vols",
       "--schedule", "@daily", "--keep-last", "1", "--volume-data", "snapshot-only")
    vs_path = f"/apis/snapshot.storage.k8s.io/v1/namespaces/{ns}/volumesnapshots"

    def mine():
        return {v["metadata"]["name"]: v for v in api.list(vs_path)}
    before = set(mine())
    first = json.loads(kt(kube_apiserver, "policy", "run", "vols", "-o", "json").stdout)
    new1 = set(mine()) - before
    assert first["result"] == "ok" and len(new1) == 1
    content1 = mine()[next(iter(new1))]["status"]["boundVolumeSnapshotContentName"]
    second = json.loads(kt(kube_apiserver, "policy", "run", "vols", "-o", "json").stdout)
    assert second["result"] == "ok" and second["removed"] == 2   # the namespace and catalog
    assert "1 volume snapshots given back" in second["message"], second
    peers.wait_for(lambda: not (new1 & set(mine())), 30,
                   "the forgotten restore point's VolumeSnapshot deleted (finalizers done)")
    assert len(set(mine()) - before) == 1                   # the second one stays
    peers.wait_for(lambda: api.request(
        "GET", f"/apis/snapshot.storage.k8s.io/v1/volumesnapshotcontents/{content1}")[0] == 404,
        30, "the forgotten restore point's content deleted")
    kt(kube_apiserver, "policy", "delete", "vols")


def test_delete_the_namespace_entirely_and_restore_it(kube_apiserver, app, api, repo):
    """The story of the issue: back up, delete the namespace entirely (the
    namespace controller stood in: kube-apiserver alone never finishes a
    namespace deletion), restore it under its own name; every object comes
    back as it was and the PVC is provisioned from the restore point's
    snapshot, which outlived its namespace (its content is kept: Retain)."""
    from namespace_controller_standin import delete_namespace
    ns = app["ns"]
    rid = json.loads(kt(kube_apiserver, "app", "backup", ns, "--repo", repo,
                        "-o", "json").stdout)["id"]
    kinds = (("core", "configmaps"), ("core", "secrets"), ("core", "services"),
             ("core", "serviceaccounts"), ("apps", "statefulsets"),
             ("rbac.authorization.k8s.io", "rolebindings"), (app["group"], "widgets"))
    before = {k: listing(api, ns, *k) for k in kinds}
    delete_namespace(api, ns)
    assert api.request("GET", f"/api/v1/namespaces/{ns}")[0] == 404
    r = kt(kube_apiserver, "app", "restore", rid, "--repo", repo, "-o", "json")
    results = {(x["kind"], x["name"]): x["result"] for x in json.loads(r.stdout)}
    assert results[("Namespace", ns)] == "created" and "failed" not in results.values()
    for k in kinds:
        after = listing(api, ns, *k)
        for name, obj in before[k].items():
            if name in ("kube-root-ca.crt", "pg-token-abcde", "default"):
                continue
            assert comparable(after[name], ns, k[1]) == comparable(obj, ns, k[1]), (k, name)
    pvc = api.get(f"/api/v1/namespaces/{ns}/persistentvolumeclaims/data-pg-0")
    assert pvc["spec"]["dataSource"]["kind"] == "VolumeSnapshot"
    peers.wait_for(lambda: api.get(f"/api/v1/namespaces/{ns}/persistentvolumeclaims/"
                                   "data-pg-0").get("status", {}).get("phase") == "Bound",
                   30, "the PVC provisioned from the snapshot that outlived its namespace")
