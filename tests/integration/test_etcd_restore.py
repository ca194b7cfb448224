"""`kontinuity etcd restore` and `etcd drill` against real etcd, etcdutl and
MinIO: a restored data directory serves the snapshot's keys with the
revision bumped, an existing data directory is moved aside (never deleted),
and every bad source fails before anything on disk changes."""
import base64
import hashlib
import json
import os
import shutil
import subprocess
import time

import pytest

import boltmangle
import peers
from test_etcd_backup import backups_in
from test_etcd_export import export_env, objects, run as backup_run
from test_etcd_snapshot import KT, load_cluster_like
from test_s3 import make_bucket, s3tool


def kt(*args, timeout=300, env=None):
    return subprocess.run([str(KT), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env or {k: v for k, v in os.environ.items()
                                                       if not k.startswith("BACKUP_")})


def tree(path):
    """Every file under path with its SHA-256: what 'nothing changed' means."""
    out = {}
    if not os.path.exists(path):
        return out
    for root, dirs, files in os.walk(path):
        for name in dirs:
            out[os.path.relpath(os.path.join(root, name), path) + "/"] = "dir"
        for name in files:
            p = os.path.join(root, name)
            with open(p, "rb") as f:
                out[os.path.relpath(p, path)] = hashlib.sha256(f.read()).hexdigest()
    return out


def member_flags(e):
    """restore flags that make the data directory fit Etcd object e."""
    return ["--data-dir", e.data_dir, "--name", e.member_name,
            "--initial-cluster", f"{e.member_name}={e.peer_url}",
            "--initial-advertise-peer-urls", e.peer_url, "--manifest", ""]


def etcdutl():
    return peers.binary("KT_ETCDUTL_BIN")


def save(etcd, path):
    r = kt("etcd", "snapshot", "save", path, "--endpoint", etcd.endpoint)
    assert r.returncode == 0, r.stderr
    return path


def keys(etcd, prefix="/"):
    """Every key under prefix with its value, as etcd serves them now."""
    r = etcd.etcdctl("get", prefix, "--prefix", "-w", "json")
    return {base64.b64decode(kv["key"]).decode(): base64.b64decode(kv["value"])
            for kv in json.loads(r.stdout).get("kvs", [])}


# ------------------------------------------------------------------ restore


def test_restore_serves_the_snapshot_with_bumped_revision(etcd, etcd_factory, tmp_path):
    load_cluster_like(etcd)
    snap = save(etcd, tmp_path / "s.db")
    want = keys(etcd)
    rev = etcd.revision()
    etcd.etcdctl("put", "/registry/pods/default/after-the-snapshot", "x")
    target = etcd_factory(start=False)
    r = kt("etcd", "restore", "--from", snap, "--etcdutl", etcdutl(), *member_flags(target))
    assert r.returncode == 0, r.stderr
    assert f"restored {snap} into {target.data_dir} as member kt" in r.stdout
    assert oct(os.stat(target.data_dir).st_mode & 0o777) == "0o700"
    target.start()
    assert keys(target) == want
    # Revisions go forward for watchers: bumped by 1e9 and compacted there.
    assert target.revision() >= rev + 1_000_000_000
    r = target.etcdctl("get", "/x", f"--rev={rev}", check=False)
    assert r.returncode != 0 and "compacted" in r.stderr


def test_no_bump_keeps_the_revision_and_json_output(etcd, etcd_factory, tmp_path):
    load_cluster_like(etcd)
    snap = save(etcd, tmp_path / "s.db")
    rev = etcd.revision()
    target = etcd_factory(start=False)
    r = kt("etcd", "restore", "--from", snap, "--etcdutl", etcdutl(), "--no-bump-revision",
           "-o", "json", *member_flags(target))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["bumpRevision"] == 0 and out["source"]["revision"] == rev
    assert out["source"]["verified"] and out["movedAside"] is None
    assert "--bump-revision=1000000000" not in out["etcdutl"]
    target.start()
    assert target.revision() == rev


def test_existing_data_dir_is_moved_aside_never_deleted(etcd, etcd_factory, tmp_path):
    load_cluster_like(etcd)
    snap = save(etcd, tmp_path / "s.db")
    target = etcd_factory()            # a member with data of its own
    target.etcdctl("put", "/only/in/the/old/data", "old")
    target.stop()
    before = tree(target.data_dir)
    r = kt("etcd", "restore", "--from", snap, "--etcdutl", etcdutl(), *member_flags(target))
    assert r.returncode == 0, r.stderr
    aside = [p for p in os.listdir(target.dir) if p.startswith("data.before-restore-")]
    assert len(aside) == 1 and f"kept as {target.dir / aside[0]}" in r.stdout
    assert tree(target.dir / aside[0]) == before
    target.start()
    assert "/only/in/the/old/data" not in keys(target)


def test_restore_refuses_while_etcd_runs_on_the_data_dir(etcd, tmp_path):
    snap = save(etcd, tmp_path / "s.db")
    before = tree(etcd.data_dir)
    r = kt("etcd", "restore", "--from", snap, "--etcdutl", etcdutl(), *member_flags(etcd))
    assert r.returncode == 1, r.stderr
    assert f"etcd is running on '{etcd.data_dir}'" in r.stderr
    assert etcd.running() and tree(etcd.data_dir).keys() == before.keys()


def test_dry_run_changes_nothing(etcd, etcd_factory, tmp_path):
    snap = save(etcd, tmp_path / "s.db")
    target = etcd_factory()
    target.stop()
    before = tree(target.dir)
    r = kt("etcd", "restore", "--from", snap, "--etcdutl", etcdutl(), "--dry-run",
           *member_flags(target))
    assert r.returncode == 0, r.stderr
    assert "dry run: nothing changed" in r.stdout and "snapshot restore" in r.stdout
    assert tree(target.dir) == before


# ------------------------------------------------------------------ bad sources


@pytest.fixture
def victim(etcd, etcd_factory, tmp_path):
    """A stopped member whose data directory must survive every bad restore."""
    load_cluster_like(etcd)
    snap = save(etcd, tmp_path / "good.db")
    t = etcd_factory()
    t.etcdctl("put", "/precious", "yes")
    t.stop()
    return snap, t, tree(t.dir)


def _fails_and_changes_nothing(victim, *args, code=1, env=None):
    snap, t, before = victim
    r = kt("etcd", "restore", *args, *member_flags(t), env=env)
    assert r.returncode == code, (r.stdout, r.stderr)
    assert tree(t.dir) == before
    return r.stderr


def test_bad_sources_fail_before_anything_changes(victim, tmp_path):
    snap = victim[0]
    data = snap.read_bytes()
    # truncated
    trunc = tmp_path / "truncated.db"
    trunc.write_bytes(data[: len(data) // 2])
    err = _fails_and_changes_nothing(victim, "--from", trunc, "--etcdutl", etcdutl(), code=3)
    assert "truncated.db" in err
    # corrupt: a flipped byte inside a page breaks the trailer and the walk
    bad = bytearray(data)
    bad[boltmangle.page_size(data) * 3 + 100] ^= 0xFF
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(bytes(bad))
    err = _fails_and_changes_nothing(victim, "--from", corrupt, "--etcdutl", etcdutl(), code=3)
    assert "corrupt.db" in err
    # missing file
    err = _fails_and_changes_nothing(victim, "--from", tmp_path / "nope.db", "--etcdutl",
                                     etcdutl(), code=1)
    assert "nope.db" in err
    # missing etcdutl
    err = _fails_and_changes_nothing(victim, "--from", snap, "--etcdutl", tmp_path / "no-etcdutl")
    assert "no-etcdutl" in err and "--etcdutl" in err
    # not etcdutl at all
    err = _fails_and_changes_nothing(victim, "--from", snap, "--etcdutl", "/bin/false", code=2)
    assert "does not look like etcdutl" in err


def test_wrong_checksum_in_the_backup_index(etcd, victim, tmp_path):
    d = tmp_path / "zadara"
    r = backup_run(etcd, d, "--kubeconfig", "")
    assert r.returncode == 0, r.stderr
    (name,) = backups_in(d)
    idx = json.loads((d / "etcd-backups.json").read_text())
    idx["backups"][name]["sha256"] = "0" * 64
    (d / "etcd-backups.json").write_text(json.dumps(idx))
    err = _fails_and_changes_nothing(victim, "--from", d / name, "--etcdutl", etcdutl(), code=3)
    assert "wrong checksum" in err and "0" * 64 in err
    # latest has nothing else to fall back on
    err = _fails_and_changes_nothing(victim, "--from", "latest", "--dir", d, "--etcdutl",
                                     etcdutl(), code=3)
    assert "none of the 1 verified backups" in err


def test_unwritable_data_dir_parent(victim):
    """As an unprivileged user (root may write anywhere): the parent of the
    data directory is not writable, so the plan fails before etcdutl runs."""
    import tempfile
    snap = victim[0]
    top = tempfile.mkdtemp(prefix="kt-unwritable-", dir="/tmp")   # pytest's tmp is 0700
    try:
        os.chmod(top, 0o755)
        tool = os.path.join(top, "bin")
        os.mkdir(tool, 0o755)
        shutil.copy(etcdutl(), os.path.join(tool, "etcdutl"))
        shutil.copy(KT, os.path.join(tool, "kontinuity"))
        pub = os.path.join(top, "pub.db")
        shutil.copy(snap, pub)
        os.chmod(pub, 0o644)
        ro = os.path.join(top, "ro")
        os.mkdir(ro, 0o755)
        r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                            os.path.join(tool, "kontinuity"), "etcd", "restore", "--from", pub,
                            "--etcdutl", os.path.join(tool, "etcdutl"),
                            "--data-dir", os.path.join(ro, "data"), "--manifest", ""],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 1, (r.stdout, r.stderr)
        assert f"cannot write in '{ro}'" in r.stderr
        assert os.listdir(ro) == []
    finally:
        shutil.rmtree(top)


# ------------------------------------------------------------------ latest and remote


def test_latest_skips_a_damaged_newest_backup(etcd, etcd_factory, tmp_path):
    d = tmp_path / "zadara"
    load_cluster_like(etcd)
    assert backup_run(etcd, d, "--kubeconfig", "").returncode == 0
    rev_old = etcd.revision()
    etcd.etcdctl("put", "/registry/configmaps/default/newer", "v")
    time.sleep(1.1)                       # a new name
    assert backup_run(etcd, d, "--kubeconfig", "").returncode == 0
    older, newer = backups_in(d)
    with open(d / newer, "r+b") as f:     # bit rot after the save
        f.seek(5000)
        b = f.read(1)
        f.seek(5000)
        f.write(bytes([b[0] ^ 1]))
    target = etcd_factory(start=False)
    r = kt("etcd", "restore", "--from", "latest", "--dir", d, "--etcdutl", etcdutl(),
           "--no-bump-revision", *member_flags(target))
    assert r.returncode == 0, r.stderr
    assert f"skipping backup '{newer}'" in r.stderr and "wrong checksum" in r.stderr
    assert f"restored {d / older}" in r.stdout
    target.start()
    assert target.revision() == rev_old


def test_remote_latest_with_the_cluster_down(etcd, etcd_factory, minio, tmp_path):
    """No API server, no local backups, no index: the export config file and
    the cluster name are enough to find the folder and the newest object."""
    bucket = "restore-remote"
    make_bucket(minio, bucket)
    d = tmp_path / "zadara"
    load_cluster_like(etcd)
    env = export_env(minio, bucket)
    assert backup_run(etcd, d, "--kubeconfig", "", "--cluster-id", "c9", env=env).returncode == 0
    want = keys(etcd)
    conf = tmp_path / "export.yaml"
    conf.write_text(f"backup_access_key_id: {minio.access_key}\n"
                    f"backup_secret_access_key: {minio.secret_key}\n"
                    f"backup_region: {minio.region}\nbackup_endpoint: {minio.endpoint}\n"
                    f"backup_bucket: {bucket}\n")
    shutil.rmtree(d)
    target = etcd_factory(start=False)
    r = kt("etcd", "restore", "--from", "remote:latest", "--dir", d, "--export-config", conf,
           "--kubeconfig", "", "--etcdutl", etcdutl(), *member_flags(target))
    assert r.returncode == 0, r.stderr
    (obj,) = objects(minio, bucket, "c9-kubernetes/")
    assert f"s3://{bucket}/{obj}" in r.stdout
    assert minio.secret_key not in r.stdout + r.stderr
    target.start()
    assert keys(target) == want


def test_remote_missing_object_and_wrong_checksum(etcd, victim, minio, tmp_path):
    bucket = "restore-remote-bad"
    make_bucket(minio, bucket)
    d = tmp_path / "zadara"
    env = export_env(minio, bucket)
    assert backup_run(etcd, d, "--kubeconfig", "", "--cluster-id", "c7", env=env).returncode == 0
    common = ["--dir", d, "--kubeconfig", "", "--cluster-id", "c7", "--etcdutl", etcdutl()]
    err = _fails_and_changes_nothing(victim, "--from", "remote:etcd_backup_nope.db", *common,
                                     env=env)
    assert "no exported backup named 'etcd_backup_nope.db'" in err
    # Replace the object's bytes, keep its recorded sha256: a wrong checksum.
    (key,) = objects(minio, bucket, "c7-kubernetes/")
    head = s3tool(minio, bucket, "head", key).stdout
    sha = [line.split("=", 1)[1] for line in head.splitlines() if line.startswith("meta.sha256=")][0]
    other = tmp_path / "other.db"
    other.write_bytes(victim[0].read_bytes())
    s3tool(minio, bucket, "put", key, other, f"sha256={sha}", "node=cp-1")
    shutil.rmtree(d)
    err = _fails_and_changes_nothing(victim, "--from", "remote:latest", *common, code=3, env=env)
    assert "wrong checksum" in err and sha in err
    assert not list(d.glob("*.db")) and not list(d.glob("*.part"))


# ------------------------------------------------------------------ drill


def test_drill_passes_on_a_good_backup(etcd, tmp_path):
    load_cluster_like(etcd)
    snap = save(etcd, tmp_path / "s.db")
    r = kt("etcd", "drill", snap, "--etcd", peers.etcd_binary("3.6"), "--etcdutl", etcdutl(),
           "-o", "json", "--work-dir", tmp_path)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["result"] == "PASS"
    assert out["revision"] == out["revisionExpected"] == etcd.revision()
    assert out["keys"] == out["keysExpected"] == len(keys(etcd))
    assert {c["check"] for c in out["checks"]} == {"restore", "start", "revision", "keys",
                                                   "objects", "sample"}
    assert out["resources"] == 3 and out["sampled"] == 3
    assert not [p for p in os.listdir(tmp_path) if p.startswith("kontinuity-drill-")]
    r = kt("etcd", "drill", snap, "--etcd", peers.etcd_binary("3.6"), "--etcdutl", etcdutl())
    assert r.returncode == 0 and "PASS in" in r.stdout


def test_drill_fails_when_etcd_cannot_serve_it(etcd, tmp_path):
    snap = save(etcd, tmp_path / "s.db")
    fake = tmp_path / "etcd"
    fake.write_text("#!/bin/sh\necho 'panic: member has been permanently removed' >&2\nexit 1\n")
    fake.chmod(0o755)
    r = kt("etcd", "drill", snap, "--etcd", fake, "--etcdutl", etcdutl())
    assert r.returncode == 3, (r.stdout, r.stderr)
    assert "FAIL" in r.stdout and "permanently removed" in r.stdout


def test_agent_cycle_with_drill_every(etcd, tmp_path):
    load_cluster_like(etcd)
    d = tmp_path / "zadara"
    flags = ["--kubeconfig", "", "--drill-every", "2", "--etcd", peers.etcd_binary("3.6"),
             "--etcdutl", etcdutl(), "--metrics-file", tmp_path / "m.prom"]
    r = backup_run(etcd, d, *flags)
    assert r.returncode == 0, r.stderr
    assert "drill" not in (d / "etcd-backup.log").read_text()
    time.sleep(1.1)
    r = backup_run(etcd, d, *flags)
    assert r.returncode == 0, r.stderr
    assert "restore drill PASS" in r.stdout
    log = (d / "etcd-backup.log").read_text().splitlines()
    assert "drill node=cp-1" in log[-1] and "result=PASS" in log[-1]
    prom = (tmp_path / "m.prom").read_text()
    assert 'kontinuity_etcd_drill_last_result{node="cp-1"} 1' in prom
    assert 'kontinuity_etcd_drills_total{node="cp-1"} 1' in prom


def test_latest_refuses_a_backup_of_a_recreated_etcd(etcd, etcd_factory, tmp_path):
    """The database is lost, etcd comes back empty and the agent backs that
    up: 'latest' must not restore the empty cluster on its own."""
    d = tmp_path / "zadara"
    load_cluster_like(etcd)
    assert backup_run(etcd, d, "--kubeconfig", "").returncode == 0
    good = backups_in(d)[0]
    empty = etcd_factory()                 # a new, nearly empty etcd
    time.sleep(1.1)
    r = backup_run(empty, d, "--kubeconfig", "")
    assert r.returncode == 0, r.stderr
    assert "revision went backwards" in r.stderr
    assert "revision went backwards" in (d / "etcd-backup.log").read_text()
    newest = backups_in(d)[-1]
    target = etcd_factory(start=False)
    r = kt("etcd", "restore", "--from", "latest", "--dir", d, "--etcdutl", etcdutl(),
           *member_flags(target))
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert newest in r.stderr and good in r.stderr and "etcd was re-created" in r.stderr
    assert not target.data_dir.exists()
    r = kt("etcd", "restore", "--from", d / good, "--etcdutl", etcdutl(), *member_flags(target))
    assert r.returncode == 0, r.stderr


def test_remote_latest_refuses_a_recreated_etcd(etcd, etcd_factory, minio, tmp_path):
    bucket = "restore-recreated"
    make_bucket(minio, bucket)
    env = export_env(minio, bucket)
    load_cluster_like(etcd)
    d = tmp_path / "zadara"
    flags = ["--kubeconfig", "", "--cluster-id", "c5"]
    assert backup_run(etcd, d, *flags, env=env).returncode == 0
    time.sleep(1.1)
    assert backup_run(etcd_factory(), d, *flags, env=env).returncode == 0
    old, new = objects(minio, bucket, "c5-kubernetes/")
    target = etcd_factory(start=False)
    common = ["--dir", tmp_path / "dl", *flags, "--etcdutl", etcdutl(), *member_flags(target)]
    r = kt("etcd", "restore", "--from", "remote:latest", *common, env=env)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert new in r.stderr and old in r.stderr and "re-created" in r.stderr
    r = kt("etcd", "restore", "--from", f"remote:{old.split('/')[1]}", *common, env=env)
    assert r.returncode == 0, r.stderr


def test_drill_fails_on_values_that_are_not_kubernetes_objects(etcd, tmp_path):
    etcd.etcdctl("put", "/registry/configmaps/default/c1", '{"kind":"ConfigMap"}')
    etcd.etcdctl("put", "/registry/pods/default/p1", "garbage, not an object")
    snap = save(etcd, tmp_path / "s.db")
    r = kt("etcd", "drill", snap, "--etcd", peers.etcd_binary("3.6"), "--etcdutl", etcdutl(),
           "-o", "json")
    assert r.returncode == 3, (r.stdout, r.stderr)
    out = json.loads(r.stdout)
    checks = {c["check"]: c for c in out["checks"]}
    assert checks["objects"]["result"] == "ok" and checks["sample"]["result"] == "FAIL"
    assert "pods" in checks["sample"]["detail"]
