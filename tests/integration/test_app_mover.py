"""The volume data mover (docs/app-backup.md, "Volume data: the mover"):
`kontinuity mover backup|restore` on a local directory (the data path alone),
and `app backup --profile` / `app import` on real kube-apiservers with the
CSI machinery (snapshot_controller_standin.py, with volume data) and the Job
controller + kubelet (job_runner_standin.py) stood in: the mover Job runs the
real binary on the volume's local directory, the restore point names the
data snapshot, and a second cluster gets the volume back byte-identical. A
failing mover is a named partial failure and leaves nothing behind."""
import json
import os
import subprocess

import pytest

import snapshot_controller_standin as sc
from job_runner_standin import JobRunnerStandin
from test_app import PASS, env, kt
from test_app_capture import api, app  # noqa: F401 (fixtures)
from test_etcd_snapshot import KT

pytestmark = pytest.mark.usefixtures("snapshot_standin")

# KT_MOVER_IMAGE: the image of the binary's own version.
IMAGE = "kontinuity/kontinuity:" + subprocess.run(
    [str(KT), "--version"], capture_output=True, text=True, check=True).stdout.split()[-1]
MANAGED = "app.kubernetes.io/managed-by=kontinuity"


def fill(d):
    """Files of different sizes and modes, a subdirectory, a symlink, old mtimes."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "empty").write_bytes(b"")
    (d / "small.txt").write_text("hello volume\n")
    (d / "big.bin").write_bytes(os.urandom(3 << 20))
    (d / "sub" / "deeper").mkdir(parents=True)
    (d / "sub" / "deeper" / "conf").write_text("k=v\n")
    os.chmod(d / "sub" / "deeper" / "conf", 0o600)
    os.chmod(d / "small.txt", 0o640)
    (d / "sub" / "exec.sh").write_text("#!/bin/sh\n")
    os.chmod(d / "sub" / "exec.sh", 0o755)
    os.symlink("sub/deeper/conf", d / "link")
    for i, p in enumerate(sorted(d.rglob("*"), key=lambda p: -len(p.parts))):
        if not p.is_symlink():
            os.utime(p, ns=(1_600_000_000_000_000_000 + i * 1_000_000_123,) * 2)
    os.utime(d, ns=(1_500_000_000_123_456_789,) * 2)


def tree(d):
    """Everything a restore must reproduce, per relative path."""
    out = {".": (oct(os.stat(d).st_mode), os.stat(d).st_mtime_ns)}
    for p in sorted(d.rglob("*")):
        rel = str(p.relative_to(d))
        if rel == "lost+found":
            continue
        st = os.lstat(p)
        if p.is_symlink():
            out[rel] = ("link", os.readlink(p))
        elif p.is_dir():
            out[rel] = ("dir", oct(st.st_mode), st.st_mtime_ns)
        else:
            out[rel] = ("file", oct(st.st_mode), st.st_mtime_ns, p.read_bytes())
    return out


def test_mover_backup_restore_a_local_directory(tmp_path):
    """The data path alone: what the Job runs, on a local directory."""
    e = {k: v for k, v in os.environ.items() if not k.startswith(("KONTINUITY_", "AWS_"))}
    e.update(KONTINUITY_PASSWORD=PASS, KONTINUITY_REPO=str(tmp_path / "repo"))

    def run(*args, check=True):
        r = subprocess.run([str(KT), *map(str, args)], capture_output=True, text=True, env=e,
                           timeout=300)
        assert not check or r.returncode == 0, r.stderr
        return r
    run("repo", "init")
    src = tmp_path / "vol"
    fill(src)
    out = json.loads(run("mover", "backup", src, "-n", "shop", "--pvc", "data-0", "--run",
                         "r1", "-o", "json").stdout)
    assert out["files"] == 5 and out["bytes"] > 3 << 20
    snaps = json.loads(run("repo", "snapshots", "-o", "json").stdout)
    assert snaps[-1]["tags"] == ["volume", "ns=shop", "pvc=data-0", "rp=r1"]
    assert out["parent"] is None
    # The next copy of the same PVC compares with its last one, never with
    # another PVC's (every volume is at the same mount path in its Job).
    other = json.loads(run("mover", "backup", src, "-n", "shop", "--pvc", "data-1", "-o",
                           "json").stdout)
    assert other["parent"] is None
    again = json.loads(run("mover", "backup", src, "-n", "shop", "--pvc", "data-0", "--run",
                           "r2", "-o", "json").stdout)
    assert again["parent"] == out["id"] and again["filesReused"] == 5
    dst = tmp_path / "newvol"
    (dst / "lost+found").mkdir(parents=True)       # a fresh filesystem has one
    run("mover", "restore", out["id"][:8], dst)
    assert tree(dst) == tree(src)
    # Not into a volume with data, and only volume snapshots.
    r = run("mover", "restore", out["id"][:8], src, check=False)
    assert r.returncode == 1 and "not empty" in r.stderr
    (tmp_path / "f").write_text("x")
    plain = json.loads(run("repo", "backup", tmp_path / "f", "-o", "json").stdout)["id"]
    r = run("mover", "restore", plain[:8], tmp_path / "x", check=False)
    assert r.returncode == 2 and "not a volume snapshot" in r.stderr
    r = run("mover", "backup", src, check=False)
    assert r.returncode == 2 and "--pvc" in r.stderr


def test_valgrind_mover_backup_restore(tmp_path):
    from test_valgrind import VALGRIND
    e = {k: v for k, v in os.environ.items() if not k.startswith(("KONTINUITY_", "AWS_"))}
    e.update(KONTINUITY_PASSWORD=PASS, KONTINUITY_REPO=str(tmp_path / "repo"))
    subprocess.run([str(KT), "repo", "init"], env=e, check=True, capture_output=True)
    fill(tmp_path / "vol")
    for args in (["mover", "backup", tmp_path / "vol", "-n", "a", "--pvc", "b"],
                 ["mover", "restore", "latest", tmp_path / "out"]):
        r = subprocess.run([*VALGRIND, str(KT), *map(str, args)], capture_output=True,
                           text=True, env=e, timeout=600)
        assert r.returncode != 99, f"valgrind found errors:\n{r.stderr[-6000:]}"
        assert r.returncode == 0, r.stderr
    assert tree(tmp_path / "out") == tree(tmp_path / "vol")


# ---- orchestration on kube-apiservers ---------------------------------------

def make_profile(kube, minio, tmp_path, name, bucket):
    from test_profile import install_kontinuity_crds
    install_kontinuity_crds(kube)
    for f, text in (("ak", minio.access_key), ("sk", minio.secret_key), ("rp", "mover pass")):
        (tmp_path / f).write_text(text)
    kt(kube, "profile", "create", name, "--endpoint", minio.endpoint, "--bucket", bucket,
       "--prefix", "rp", "--path-style", "--access-key-id-file", tmp_path / "ak",
       "--secret-access-key-file", tmp_path / "sk", "--repository-password-file",
       tmp_path / "rp")


def leftovers(api, ns):
    sel = f"?labelSelector={MANAGED}"
    return [o["metadata"]["name"] for p in (f"/apis/batch/v1/namespaces/{ns}/jobs",
                                            f"/api/v1/namespaces/{ns}/secrets",
                                            f"/api/v1/namespaces/{ns}/persistentvolumeclaims")
            for o in api.list(p + sel) if not o["metadata"].get("deletionTimestamp")]


@pytest.fixture
def data_standins(snapshot_standin, api, tmp_path):
    """The CSI stand-in keeping volume data under tmp_path/csi, and a job
    runner mapping the mover image to the binary under test."""
    standin = snapshot_standin.standin
    standin.data_root = tmp_path / "csi"
    runner = JobRunnerStandin(api, standin.volume_dir, {IMAGE: KT}, tmp_path / "jobs.log")
    runner.start()
    yield standin, runner
    runner.stop()
    standin.data_root = None
    assert not runner.errors, runner.errors


def app_volume(api, ns, standin, pvc="data-pg-0"):
    pv = api.get(f"/api/v1/namespaces/{ns}/persistentvolumeclaims/{pvc}")["spec"]["volumeName"]
    handle = api.get(f"/api/v1/persistentvolumes/{pv}")["spec"]["csi"]["volumeHandle"]
    return standin.volume_dir(handle)


def test_export_copies_volume_data_and_import_restores_it_byte_identical(
        kube_apiserver, app, api, minio, data_standins, tmp_path):
    from test_s3 import s3tool
    standin, runner = data_standins
    ns = app["ns"]
    vol = app_volume(api, ns, standin)
    for p in list(vol.iterdir()):
        raise AssertionError(f"the app's volume is not fresh: {p}")
    fill(vol)
    before = tree(vol)
    s3tool(minio, "rp-mover", "mb")
    make_profile(kube_apiserver, minio, tmp_path, "mover-export", "rp-mover")
    r = kt(kube_apiserver, "app", "backup", ns, "--profile", "mover-export", "--mover-timeout",
           "1m", "-o", "json")
    out = json.loads(r.stdout)
    assert out["failed"] == 0 and out["volumes"] == 1 and out["volumesCopied"] == 1, r.stderr
    assert out["dataBytes"] > 3 << 20
    # The mover ran the binary on the volume read through the temporary PVC,
    # with the credentials from the Secret's env and none in its arguments.
    assert len(runner.ran) == 1
    job_ns, job, argv, job_env = runner.ran[0]
    assert job_ns == ns and job.startswith("kt-mover-") and argv[1:3] == ["mover", "backup"]
    assert job_env["AWS_SECRET_ACCESS_KEY"] == minio.secret_key
    assert minio.secret_key not in " ".join(argv) and "mover pass" not in " ".join(argv)
    assert minio.secret_key not in r.stderr + r.stdout
    assert leftovers(api, ns) == []
    # The manifest names the data snapshot, tagged for this PVC.
    rows = json.loads(kt(kube_apiserver, "restorepoint", "list", "--profile", "mover-export",
                         "-o", "json").stdout)
    assert [x for x in rows if x["id"] == out["id"]]
    e = dict(env(), AWS_ACCESS_KEY_ID=minio.access_key, AWS_SECRET_ACCESS_KEY=minio.secret_key,
             AWS_ENDPOINT_URL=minio.endpoint, KONTINUITY_PASSWORD="mover pass",
             KONTINUITY_REPO="s3://rp-mover/rp")
    r = subprocess.run([str(KT), "repo", "restore", out["id"][:8], tmp_path / "rp-out"], env=e,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    man = json.loads(next((tmp_path / "rp-out").rglob("manifest.json")).read_text())
    data = man["volumes"][0]["data"]
    snaps = {s["id"]: s for s in json.loads(subprocess.run(
        [str(KT), "repo", "snapshots", "-o", "json"], env=e, capture_output=True,
        text=True).stdout)}
    assert data["bytes"] == snaps[data["snapshot"]]["bytes"] and data["files"] == 5
    assert "pvc=data-pg-0" in snaps[data["snapshot"]]["tags"]
    assert f"ns={ns}" in snaps[data["snapshot"]]["tags"]

    # A second cluster, no shared storage: import brings the volume's bytes.
    import peers as p
    from snapshots import install_crds
    with p.KubeApiserver(tmp_path / "cluster-b") as other:
        make_profile(other, minio, tmp_path, "mover-export", "rp-mover")
        api_b = sc.Api(other.url, other.token, other.ca_file)
        install_crds(api_b)
        api_b.create(sc.SC_PATH, {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                                  "metadata": {"name": "standin", "annotations": {
                                      sc.ANN_DEFAULT_SC: "true"}},
                                  "provisioner": sc.DRIVER, "volumeBindingMode": "Immediate"})
        csi_b = sc.SnapshotControllerStandin(api_b, tmp_path / "csi-b.log",
                                             data_root=tmp_path / "csi-b").start()
        runner_b = JobRunnerStandin(api_b, csi_b.volume_dir, {IMAGE: KT},
                                    tmp_path / "jobs-b.log").start()
        try:
            r = kt(other, "app", "import", out["id"][:8], "--profile", "mover-export",
                   "-o", "json")
            results = {(x["kind"], x["name"]): (x["result"], x["detail"])
                       for x in json.loads(r.stdout)}
            assert results[("PersistentVolumeClaim", "data-pg-0")][0] == "created"
            assert results[("VolumeData", "data-pg-0")][0] == "created", results
            assert ("VolumeSnapshot", man["volumes"][0]["snapshot"]) not in results
            assert tree(app_volume(api_b, ns, csi_b)) == before
            assert leftovers(api_b, ns) == []
            assert minio.secret_key not in r.stdout + r.stderr
        finally:
            runner_b.stop()
            csi_b.stop()
        assert not runner_b.errors and not csi_b.errors

    # Deleting the restore point takes its volume data copy along.
    r = kt(kube_apiserver, "restorepoint", "delete", out["id"][:8], "--profile", "mover-export",
           "-o", "json")
    row = json.loads(r.stdout)[0]
    assert row["volumeData"] == 1 and row["volumeDataDeleted"] == 1, row
    left = {s["id"] for s in json.loads(subprocess.run(
        [str(KT), "repo", "snapshots", "-o", "json"], env=e, capture_output=True,
        text=True).stdout)}
    assert out["id"] not in left and data["snapshot"] not in left


def test_a_failing_mover_is_a_named_partial_failure_and_leaves_nothing(
        kube_apiserver, app, api, minio, data_standins, tmp_path):
    from test_s3 import s3tool
    standin, runner = data_standins
    runner.fail = lambda job: "DeadlineExceeded"
    ns = app["ns"]
    s3tool(minio, "rp-mover-fail", "mb")
    make_profile(kube_apiserver, minio, tmp_path, "mover-fail", "rp-mover-fail")
    r = kt(kube_apiserver, "app", "backup", ns, "--profile", "mover-fail", "-o", "json",
           check=False)
    assert r.returncode == 1, r.stderr
    out = json.loads(r.stdout)
    assert out["failed"] == 1 and out["volumes"] == 1 and out["volumesCopied"] == 0
    assert "persistentvolumeclaims/data-pg-0 (volume data)" in r.stderr
    assert "DeadlineExceeded" in r.stderr and "kt-mover-" in r.stderr
    assert leftovers(api, ns) == []
    # snapshot-only keeps the old behaviour: no Job at all.
    n = len(runner.ran)
    out = json.loads(kt(kube_apiserver, "app", "backup", ns, "--profile", "mover-fail",
                        "--volume-data", "snapshot-only", "-o", "json").stdout)
    assert out["failed"] == 0 and out["volumesCopied"] == 0 and len(runner.ran) == n
    r = kt(kube_apiserver, "app", "backup", ns, "--repo", tmp_path / "r", "--volume-data",
           "copy", check=False)
    assert r.returncode == 2 and "needs --profile" in r.stderr
    r = kt(kube_apiserver, "app", "backup", ns, "--profile", "mover-fail", "--volume-data",
           "all", check=False)
    assert r.returncode == 2 and "copy or snapshot-only" in r.stderr

    # A restore whose mover fails: the VolumeData line names it, exit 1, nothing left.
    runner.fail = None
    rid = json.loads(kt(kube_apiserver, "app", "backup", ns, "--profile", "mover-fail",
                        "-o", "json").stdout)["id"]
    runner.fail = lambda job: "BackoffLimitExceeded"
    to = ns + "-fail"
    r = kt(kube_apiserver, "app", "restore", rid[:8], "--profile", "mover-fail",
           "--volume-data", "copy", "--to-namespace", to, "--storage-class", "standin",
           "--include-kinds", "Namespace,PersistentVolumeClaim", "-o", "json", check=False)
    assert r.returncode == 1, r.stderr
    rows = {(x["kind"], x["name"]): x for x in json.loads(r.stdout)}
    assert rows[("VolumeData", "data-pg-0")]["result"] == "failed"
    assert "BackoffLimitExceeded" in rows[("VolumeData", "data-pg-0")]["detail"]
    assert "volume data failed" in r.stderr
    assert leftovers(api, to) == []


def test_valgrind_app_backup_and_restore_with_the_mover(kube_apiserver, app, api, minio,
                                                         data_standins, tmp_path):
    """valgrind on the orchestrator and, through the job runner, on the mover
    it starts: app backup --profile (copy), then app restore --volume-data copy
    into another namespace with --storage-class (the PVC made empty, filled by
    a mover Job)."""
    from test_s3 import s3tool
    from test_valgrind import VALGRIND
    standin, runner = data_standins
    runner.wrapper = VALGRIND
    ns = app["ns"]
    vol = app_volume(api, ns, standin)
    fill(vol / "vg")
    s3tool(minio, "rp-mover-vg", "mb")
    make_profile(kube_apiserver, minio, tmp_path, "mover-vg", "rp-mover-vg")
    to = ns + "-vgm"
    for args in (["app", "backup", ns, "--profile", "mover-vg"],
                 ["app", "restore", "latest", "--profile", "mover-vg", "--volume-data", "copy",
                  "--to-namespace", to, "--storage-class", "standin",
                  "--include-kinds", "Namespace,PersistentVolumeClaim"]):
        r = subprocess.run([*VALGRIND, str(KT), *args, "--kubeconfig",
                            str(kube_apiserver.kubeconfig)], capture_output=True, text=True,
                           env=env(), timeout=900)
        assert r.returncode != 99, f"valgrind found errors:\n{r.stderr[-6000:]}"
        assert r.returncode == 0, r.stderr
    assert len(runner.ran) == 2 and runner.ran[0][2][0] == "valgrind"
    exits = [line for line in (tmp_path / "jobs.log").read_text().splitlines() if " exit " in line]
    assert len(exits) == 2 and all(line.endswith("status=0") for line in exits), exits
    pvc = api.get(f"/api/v1/namespaces/{to}/persistentvolumeclaims/data-pg-0")
    assert pvc["spec"]["storageClassName"] == "standin" and "dataSource" not in pvc["spec"]
    assert tree(app_volume(api, to, standin)) == tree(vol)
    assert leftovers(api, ns) == [] and leftovers(api, to) == []


def test_a_policy_copies_volume_data_and_retention_removes_the_copies(
        kube_apiserver, app, api, minio, data_standins, tmp_path):
    """A policy exports volume data by default (mover Jobs); when retention
    forgets a restore point, its volume data snapshot goes with it."""
    from test_s3 import s3tool
    standin, runner = data_standins
    ns = app["ns"]
    fill(app_volume(api, ns, standin))
    s3tool(minio, "rp-mover-pol", "mb")
    make_profile(kube_apiserver, minio, tmp_path, "mover-pol", "rp-mover-pol")
    r = kt(kube_apiserver, "policy", "create", "bad-vd", "--namespaces", ns, "--profile",
           "mover-pol", "--volume-data", "some", check=False)
    assert r.returncode == 2 and "copy or snapshot-only" in r.stderr
    kt(kube_apiserver, "policy", "create", "movpol", "--namespaces", ns, "--profile", "mover-pol",
       "--schedule", "@daily", "--keep-last", "1")
    e = dict(env(), AWS_ACCESS_KEY_ID=minio.access_key, AWS_SECRET_ACCESS_KEY=minio.secret_key,
             AWS_ENDPOINT_URL=minio.endpoint, KONTINUITY_PASSWORD="mover pass",
             KONTINUITY_REPO="s3://rp-mover-pol/rp")

    def volume_snapshots():
        snaps = json.loads(subprocess.run([str(KT), "repo", "snapshots", "-o", "json"], env=e,
                                          capture_output=True, text=True).stdout)
        return {s["id"] for s in snaps if "volume" in s["tags"]}
    first = json.loads(kt(kube_apiserver, "policy", "run", "movpol", "-o", "json").stdout)
    assert first["result"] == "ok", first
    copies1 = volume_snapshots()
    assert len(copies1) == 1 and any(a[1:3] == ["mover", "backup"] for _, _, a, _ in runner.ran)
    second = json.loads(kt(kube_apiserver, "policy", "run", "movpol", "-o", "json").stdout)
    assert second["result"] == "ok" and second["removed"] == 2, second   # ns + catalog
    copies2 = volume_snapshots()
    assert len(copies2) == 1 and not copies1 & copies2     # the old copy went with its point
    assert leftovers(api, ns) == []
    kt(kube_apiserver, "policy", "delete", "movpol")
