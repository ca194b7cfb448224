"""`kontinuity restorepoint show|delete` and `app restore --wait` on a real
kube-apiserver: show prints what the manifest holds (objects, the volume
snapshot, what was skipped and why); delete removes the restore point and
gives its VolumeSnapshot back to the storage, refuses snapshots that are
not restore points and deletes nothing when one name is wrong; --wait
waits until the restored PVC is Bound and the StatefulSet reports its
replicas ready (the workload controllers and kubelet are stood in for by
ready_standin below), and exits 1 naming what is missing when they do not."""
import json
import subprocess
import threading

import pytest

import peers
from test_app import env, kt, rp  # noqa: F401
from test_app_capture import api, app  # noqa: F401 (fixtures)
from test_etcd_snapshot import KT

pytestmark = pytest.mark.usefixtures("snapshot_standin")


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    r = tmp_path_factory.mktemp("rp-repo") / "repo"
    out = subprocess.run([str(KT), "repo", "init", "--repo", str(r)], capture_output=True,
                         text=True, env=env(), timeout=120)
    assert out.returncode == 0, out.stderr
    return r


def backup(kube, ns, repo):
    return json.loads(kt(kube, "app", "backup", ns, "--repo", repo, "-o", "json").stdout)


def rp_ids(kube, repo):
    return [x["id"] for x in json.loads(rp(kube, repo, "restorepoint", "list",
                                           "-o", "json").stdout)]


def test_show_names_objects_volumes_and_skips(kube_apiserver, app, repo):
    ns = app["ns"]
    out = backup(kube_apiserver, ns, repo)
    m = json.loads(rp(kube_apiserver, repo, "restorepoint", "show", out["id"][:8],
                      "-o", "json").stdout)
    assert m["id"] == out["id"] and m["namespace"] == ns
    assert m["counts"]["objects"] == out["objects"] == len(m["objects"])
    assert {("StatefulSet", "pg"), ("Secret", "creds"), ("ConfigMap", "cfg")} <= \
        {(o["kind"], o["name"]) for o in m["objects"]}
    assert [v["pvc"] for v in m["volumes"]] == ["data-pg-0"]
    assert len(m["skipped"]) >= 3 and all(s["why"] for s in m["skipped"])
    table = rp(kube_apiserver, repo, "restorepoint", "show", out["id"][:8]).stdout
    assert f"restore point  {out['id']}" in table and f"namespace      {ns}" in table
    assert "volume snapshots (1)" in table and m["volumes"][0]["snapshot"] in table
    assert "skipped (" in table and "StatefulSet" in table
    import yaml
    yml = yaml.safe_load(rp(kube_apiserver, repo, "restorepoint", "show", "latest", "-o",
                            "yaml").stdout)
    assert yml["id"] == out["id"] and yml["objects"] == m["objects"]
    r = rp(kube_apiserver, repo, "restorepoint", "show", "ffffffff", check=False)
    assert r.returncode != 0 and "ffffffff" in r.stderr


def test_delete_gives_the_volume_snapshot_back(kube_apiserver, app, api, repo, tmp_path):
    ns = app["ns"]
    out = backup(kube_apiserver, ns, repo)
    m = json.loads(rp(kube_apiserver, repo, "restorepoint", "show", out["id"],
                      "-o", "json").stdout)
    snap = m["volumes"][0]["snapshot"]
    content = m["volumes"][0]["content"]
    vs_path = f"/apis/snapshot.storage.k8s.io/v1/namespaces/{ns}/volumesnapshots/{snap}"
    vsc_path = f"/apis/snapshot.storage.k8s.io/v1/volumesnapshotcontents/{content}"
    assert api.get(vsc_path)["spec"]["deletionPolicy"] == "Retain"

    # A dry run changes nothing.
    r = kt(kube_apiserver, "restorepoint", "delete", out["id"][:8], "--repo", repo, "--dry-run")
    assert "would delete restore point" in r.stdout and "1 of 1" in r.stdout
    assert out["id"] in rp_ids(kube_apiserver, repo) and api.get(vs_path)
    # One wrong name: nothing is deleted.
    r = kt(kube_apiserver, "restorepoint", "delete", out["id"][:8], "0000dead", "--repo", repo,
           check=False)
    assert r.returncode != 0 and "0000dead" in r.stderr
    assert out["id"] in rp_ids(kube_apiserver, repo)
    # A `repo backup` snapshot is not a restore point.
    (tmp_path / "f").write_text("x")
    fsnap = json.loads(rp(kube_apiserver, repo, "repo", "backup", tmp_path / "f",
                          "-o", "json").stdout)["id"]
    r = kt(kube_apiserver, "restorepoint", "delete", fsnap[:8], "--repo", repo, check=False)
    assert r.returncode == 2 and "not a restore point" in r.stderr and "repo forget" in r.stderr

    r = kt(kube_apiserver, "restorepoint", "delete", out["id"][:8], "--repo", repo, "--prune",
           "-o", "json")
    row = json.loads(r.stdout)[0]
    assert row["id"] == out["id"] and row["volumeSnapshots"] == 1
    assert row["volumeSnapshotsDeleted"] == 1
    assert out["id"] not in rp_ids(kube_apiserver, repo)
    # The snapshot controller (stood in) deletes the content, now Delete.
    peers.wait_for(lambda: api.request("GET", vs_path)[0] == 404 and
                   api.request("GET", vsc_path)[0] == 404, 30,
                   "the VolumeSnapshot and its content deleted")
    r = rp(kube_apiserver, repo, "repo", "check")
    assert r.returncode == 0
    r = kt(kube_apiserver, "restorepoint", "delete", out["id"], "--repo", repo, check=False)
    assert r.returncode != 0 and out["id"][:8] in r.stderr


def test_delete_without_a_cluster_keeps_the_volume_snapshots(kube_apiserver, app, api, repo):
    ns = app["ns"]
    out = backup(kube_apiserver, ns, repo)
    m = json.loads(rp(kube_apiserver, repo, "restorepoint", "show", out["id"],
                      "-o", "json").stdout)
    vs_path = (f"/apis/snapshot.storage.k8s.io/v1/namespaces/{ns}/volumesnapshots/"
               + m["volumes"][0]["snapshot"])
    bad = {**env(), "KUBECONFIG": "/nonexistent/kubeconfig", "HOME": "/nonexistent"}
    r = subprocess.run([str(KT), "restorepoint", "delete", out["id"], "--repo", str(repo)],
                       capture_output=True, text=True, env=bad, timeout=120)
    assert r.returncode != 0 and "--keep-volume-snapshots" in r.stderr
    assert out["id"] in rp_ids(kube_apiserver, repo)
    r = subprocess.run([str(KT), "restorepoint", "delete", out["id"], "--repo", str(repo),
                        "--keep-volume-snapshots"], capture_output=True, text=True, env=bad,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert out["id"] not in rp_ids(kube_apiserver, repo)
    assert api.get(vs_path)["metadata"]["name"] == m["volumes"][0]["snapshot"]


class ReadyStandin:
    """Plays the StatefulSet controller and the kubelet for readiness only:
    once a StatefulSet exists in the namespace, its status says every
    replica is ready, as the real ones report after the pods start."""

    def __init__(self, api, ns):
        self.api, self.ns, self.stop = api, ns, threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.wait(0.3):
            try:
                for s in self.api.list(f"/apis/apps/v1/namespaces/{self.ns}/statefulsets"):
                    n = s["spec"].get("replicas", 1)
                    if s.get("status", {}).get("readyReplicas") == n:
                        continue
                    self.api.merge_patch(
                        f"/apis/apps/v1/namespaces/{self.ns}/statefulsets/"
                        f"{s['metadata']['name']}/status",
                        {"status": {"observedGeneration": s["metadata"]["generation"],
                                    "replicas": n, "readyReplicas": n, "currentReplicas": n,
                                    "updatedReplicas": n, "availableReplicas": n}})
            except Exception:
                pass   # the namespace may not exist yet

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.t.join()


def test_restore_wait_until_ready(kube_apiserver, app, api, repo):
    ns = app["ns"]
    rid = backup(kube_apiserver, ns, repo)["id"]
    to = ns + "-w"
    with ReadyStandin(api, to):
        r = kt(kube_apiserver, "app", "restore", rid, "--repo", repo, "--to-namespace", to,
               "--wait", "--wait-timeout", "90s", "-o", "json")
    rows = {(x["kind"], x["name"]): x for x in json.loads(r.stdout)}
    assert rows[("StatefulSet", "pg")]["ready"] is True
    assert rows[("PersistentVolumeClaim", "data-pg-0")]["ready"] is True
    assert api.get(f"/api/v1/namespaces/{to}/persistentvolumeclaims/data-pg-0")[
        "status"]["phase"] == "Bound"


def test_restore_wait_names_what_is_not_ready(kube_apiserver, app, api, repo):
    ns = app["ns"]
    rid = backup(kube_apiserver, ns, repo)["id"]
    to = ns + "-nr"
    r = kt(kube_apiserver, "app", "restore", rid, "--repo", repo, "--to-namespace", to,
           "--wait", "--wait-timeout", "3s", check=False)
    assert r.returncode == 1, r.stderr
    assert "NOT READY: StatefulSet" in r.stderr and "0 of 1 replicas ready" in r.stderr
    assert "not ready after 3s" in r.stderr
    line = next(x for x in r.stdout.splitlines() if x.startswith("StatefulSet"))
    assert " no " in line and "0 of 1 replicas ready" in line
    r = kt(kube_apiserver, "app", "restore", rid, "--repo", repo, "--wait-timeout", "soon",
           check=False)
    assert r.returncode == 2 and "--wait-timeout" in r.stderr


def test_valgrind_restorepoint_show_delete_and_wait(kube_apiserver, app, api, repo):
    from test_valgrind import VALGRIND
    ns = app["ns"]
    rid = backup(kube_apiserver, ns, repo)["id"]
    with ReadyStandin(api, ns + "-vgw"):
        for args in (["restorepoint", "show", rid], ["restorepoint", "show", rid, "-o", "json"],
                     ["app", "restore", rid, "--to-namespace", ns + "-vgw", "--wait",
                      "--wait-timeout", "120s"],
                     ["restorepoint", "delete", rid, "--dry-run"],
                     ["restorepoint", "delete", rid]):
            r = subprocess.run([*VALGRIND, str(KT), *args, "--repo", str(repo), "--kubeconfig",
                                str(kube_apiserver.kubeconfig)], capture_output=True, text=True,
                               env=env(), timeout=600)
            assert r.returncode != 99, f"valgrind found errors:\n{r.stderr[-6000:]}"
            assert r.returncode == 0, r.stderr


def test_policy_namespace_selector_follows_labels(kube_apiserver, app, api, minio, tmp_path):
    """A policy with --namespace-selector backs up the namespaces whose labels
    match at each run: a namespace labelled later is picked up, one unlabelled
    is left out; the catalog goes along once."""
    from test_profile import install_kontinuity_crds
    from test_s3 import s3tool
    ns = app["ns"]
    install_kontinuity_crds(kube_apiserver)
    s3tool(minio, "rp-nsel", "mb")
    for f, text in (("ak", minio.access_key), ("sk", minio.secret_key), ("rp", "nsel pass")):
        (tmp_path / f).write_text(text)
    kt(kube_apiserver, "profile", "create", "nsel", "--endpoint", minio.endpoint, "--bucket",
       "rp-nsel", "--path-style", "--access-key-id-file", tmp_path / "ak",
       "--secret-access-key-file", tmp_path / "sk", "--repository-password-file",
       tmp_path / "rp")
    r = kt(kube_apiserver, "policy", "create", "none", "--profile", "nsel", check=False)
    assert r.returncode == 2 and "--namespace-selector" in r.stderr
    label = f"kt-test-{ns}"
    kt(kube_apiserver, "policy", "create", "by-label", "--namespace-selector", f"{label}=yes",
       "--profile", "nsel", "--no-volume-snapshots", "--schedule", "@daily")
    pol = api.get("/apis/kontinuity.io/v1alpha1/namespaces/kontinuity/policies/by-label")
    assert pol["spec"]["namespaceSelector"] == f"{label}=yes" and "namespaces" not in pol["spec"]
    listed = kt(kube_apiserver, "policy", "list").stdout
    assert "NS-SELECTOR" in listed and f"{label}=yes" in listed

    def run_namespaces():
        run = json.loads(kt(kube_apiserver, "policy", "run", "by-label", "-o", "json").stdout)
        assert run["result"] == "ok", run
        rows = json.loads(kt(kube_apiserver, "restorepoint", "list", "--profile", "nsel",
                             "-o", "json").stdout)
        return sorted(x["namespace"] for x in rows if x["id"] in run["restorePoints"])
    assert run_namespaces() == ["kontinuity"]          # nothing matches yet: the catalog only
    api.merge_patch(f"/api/v1/namespaces/{ns}", {"metadata": {"labels": {label: "yes"}}})
    assert run_namespaces() == sorted([ns, "kontinuity"])
    api.merge_patch(f"/api/v1/namespaces/{ns}", {"metadata": {"labels": {label: "no"}}})
    assert run_namespaces() == ["kontinuity"]
    kt(kube_apiserver, "policy", "delete", "by-label")
