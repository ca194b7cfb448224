"""Delta-encoded etcd snapshots in the repository (docs/repository-format.md,
"Delta-encoded files"), against a real etcd: a series of snapshots with
churn between them (puts, updates, deletes, a compaction, a defrag) is
backed up as deltas, once through `kontinuity etcd backup --repo`; every
snapshot restores byte-identical; K forces keyframes; forgetting the bases
and pruning keeps the dependents whole; a damaged patch blob is named and
a restore of it fails without leaving a file."""
import hashlib
import json
import os
import subprocess
import time

import pytest

from test_etcd_snapshot import KT, load_cluster_like, put_keys
from test_repo import PASS, env, repo, restored


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def churn(etcd, round_no):
    """What a cluster writes between two backups: new keys, new revisions of
    old ones, deletes; every second round a compaction."""
    put_keys(etcd, f"/registry/events/default/ev-{round_no}-", 40, 400)
    put_keys(etcd, "/registry/pods/default/pod-", 30 + round_no, 700 + round_no)
    put_keys(etcd, "/registry/leases/kube-node-lease/node-", 20, 200)
    for i in range(5):
        etcd.etcdctl("del", f"/registry/events/default/ev-{round_no - 1}-{i}", check=False)
    if round_no % 2 == 0:
        rev = json.loads(etcd.etcdctl("endpoint", "status", "-w", "json").stdout)[0]
        etcd.etcdctl("compaction", str(rev["Status"]["header"]["revision"]))


def snapshot(etcd, path):
    etcd.etcdctl("snapshot", "save", str(path))
    return path


def delta_depths(r, snap_id):
    """{path: delta_depth} of the files of a snapshot."""
    ls = json.loads(repo("ls", "--repo", r, snap_id[:8], "-o", "json").stdout)
    return {x["path"]: x["delta_depth"] for x in ls if x["type"] == "file"}


def backup(r, path, *extra):
    return json.loads(repo("backup", "--repo", r, path, "--tag", "etcd", "--host", "cp-1",
                           "-o", "json", *extra).stdout)


@pytest.fixture
def series(etcd, tmp_path):
    """Six snapshots of one etcd with churn between them; a defrag before
    the fourth."""
    load_cluster_like(etcd)
    put_keys(etcd, "/registry/configmaps/kube-system/big-", 200, 2000)
    d = tmp_path / "snaps"
    d.mkdir()
    out = []
    for i in range(6):
        if i:
            churn(etcd, i)
        if i == 3:
            etcd.etcdctl("defrag")
        out.append(snapshot(etcd, d / f"snap-{i}.db"))
    return out


def test_series_of_deltas_restores_byte_identical(etcd, series, tmp_path):
    r = tmp_path / "repo"
    repo("init", "--repo", r)
    results = []
    for i, f in enumerate(series):
        extra = ["--delta-parent", "latest", "--delta-base", series[i - 1]] if i else []
        if i == 2:   # no local copy of the base: it is restored from the repository
            extra = ["--delta-parent", "latest"]
        if i == 4:   # a wrong local copy is ignored (its SHA-256 does not match)
            extra = ["--delta-parent", "latest", "--delta-base", series[0]]
        results.append(backup(r, f, *extra))
    assert results[0]["filesDelta"] == 0
    for i in range(1, 6):
        assert results[i]["filesDelta"] == 1, results[i]
        assert results[i]["deltaDepth"] == i
        depth = delta_depths(r, results[i]["id"])
        assert depth == {str(series[i]): i}
        # A delta costs much less than storing the snapshot's pages did.
        assert results[i]["bytesNew"] < results[0]["bytesNew"] / 4, (i, results)
    for i, f in enumerate(series):
        out = tmp_path / f"out{i}"
        repo("restore", "--repo", r, results[i]["id"][:8], out)
        got = restored(out, f)
        assert sha(got) == sha(f)
        assert oct(os.stat(got).st_mode & 0o777) == oct(os.stat(f).st_mode & 0o777)
        assert os.stat(got).st_mtime_ns == os.stat(f).st_mtime_ns
        assert [p.name for p in got.parent.iterdir()] == [f.name]   # no temp files left
    ck = json.loads(repo("check", "--repo", r, "--read-data", "-o", "json").stdout)
    assert ck["ok"] and ck["problems"] == 0
    # The snapshots with deltas are format version 2 (older readers refuse
    # them rather than write a patch out as the file); a plain one stays 1.
    snaps = json.loads(repo("snapshots", "--repo", r, "-o", "json").stdout)
    assert [s["version"] for s in snaps] == [1, 2, 2, 2, 2, 2]


def test_max_depth_forces_keyframes(etcd, series, tmp_path):
    r = tmp_path / "repo"
    repo("init", "--repo", r)
    depths = []
    for f in series:   # "latest" in the empty repository: no base, pages
        res = backup(r, f, "--delta-parent", "latest", "--delta-max-depth", "2")
        depths.append(res["deltaDepth"])
    assert depths == [0, 1, 2, 0, 1, 2]
    for i, f in enumerate(series):
        out = tmp_path / f"out{i}"
        repo("restore", "--repo", r, "latest" if i == 5 else
             json.loads(repo("snapshots", "--repo", r, "-o", "json").stdout)[i]["id"][:8], out)
        assert sha(restored(out, f)) == sha(f)


def test_forget_bases_prune_dependents_still_restore(etcd, series, tmp_path):
    r = tmp_path / "repo"
    repo("init", "--repo", r)
    ids = []
    for i, f in enumerate(series):
        ids.append(backup(r, f, *(["--delta-parent", "latest"] if i else []))["id"])
    repo("forget", "--repo", r, "--keep-last", "2")
    repo("prune", "--repo", r)
    left = [s["id"] for s in json.loads(repo("snapshots", "--repo", r, "-o", "json").stdout)]
    assert left == ids[4:]
    for i in (4, 5):
        out = tmp_path / f"out{i}"
        repo("restore", "--repo", r, ids[i][:8], out)
        assert sha(restored(out, series[i])) == sha(series[i])
    ck = json.loads(repo("check", "--repo", r, "--read-data", "-o", "json").stdout)
    assert ck["ok"] and ck["problems"] == 0
    # The chain's data stayed: forgetting everything but the last and
    # pruning again still restores it.
    repo("forget", "--repo", r, "--keep-last", "1", "--prune")
    out = tmp_path / "last"
    repo("restore", "--repo", r, "latest", out)
    assert sha(restored(out, series[5])) == sha(series[5])


def packs(r):
    return {p: os.path.getsize(p) for p in (r / "data").rglob("*") if p.is_file()}


def test_damaged_patch_is_named_and_restore_leaves_nothing(etcd, series, tmp_path):
    r = tmp_path / "repo"
    repo("init", "--repo", r)
    backup(r, series[0])
    before = packs(r)
    two = backup(r, series[1], "--delta-parent", "latest")
    assert two["filesDelta"] == 1
    new = {p: s for p, s in packs(r).items() if p not in before}
    patch_pack = max(new, key=new.get)   # the data pack (the tree pack is tiny)
    data = bytearray(patch_pack.read_bytes())
    data[100] ^= 0x01
    patch_pack.write_bytes(bytes(data))
    ck = repo("check", "--repo", r, "--read-data", check=False)
    assert ck.returncode != 0
    assert series[1].name in ck.stderr and "delta" in ck.stderr, ck.stderr
    out = tmp_path / "out"
    res = repo("restore", "--repo", r, two["id"][:8], out, check=False)
    assert res.returncode != 0 and series[1].name in res.stderr, res.stderr
    target = restored(out, series[1])
    assert not target.parent.exists() or list(target.parent.iterdir()) == []
    # The plain snapshot still restores.
    out0 = tmp_path / "out0"
    repo("restore", "--repo", r, "latest" if False else
         json.loads(repo("snapshots", "--repo", r, "-o", "json").stdout)[0]["id"][:8], out0)
    assert sha(restored(out0, series[0])) == sha(series[0])


def test_etcd_backup_repo_uses_deltas(etcd, tmp_path):
    load_cluster_like(etcd)
    put_keys(etcd, "/registry/configmaps/kube-system/big-", 200, 2000)
    r = tmp_path / "repo"
    repo("init", "--repo", r)
    d = tmp_path / "backups"
    outs = []
    for i in range(3):
        if i:
            churn(etcd, i)
            time.sleep(1.1)   # backup names have whole seconds
        p = subprocess.run([str(KT), "etcd", "backup", "--endpoint", etcd.endpoint, "--dir",
                            str(d), "--hostname", "cp-1", "--instance-id", "i-test",
                            "--kubeconfig", "", "--repo", str(r), "-o", "json"],
                           capture_output=True, text=True, timeout=120, env=env())
        assert p.returncode == 0, p.stderr
        outs.append(json.loads(p.stdout))
    assert [o["repo"]["deltaDepth"] for o in outs] == [0, 1, 2], outs
    assert outs[2]["repo"]["added"] < outs[0]["repo"]["added"] / 4
    snaps = json.loads(repo("snapshots", "--repo", r, "-o", "json").stdout)
    for s, o in zip(snaps, outs):
        assert s["tags"] == ["etcd"]
        out = tmp_path / ("out-" + s["id"][:8])
        repo("restore", "--repo", r, s["id"][:8], out)
        local = s["paths"][0]
        assert sha(restored(out, local)) == o["sha256"] == sha(local)
    # --repo-no-delta stores pages.
    churn(etcd, 3)
    time.sleep(1.1)
    p = subprocess.run([str(KT), "etcd", "backup", "--endpoint", etcd.endpoint, "--dir", str(d),
                        "--hostname", "cp-1", "--instance-id", "i-test", "--kubeconfig", "",
                        "--repo", str(r),
                        "--repo-no-delta", "-o", "json"], capture_output=True, text=True,
                       timeout=120, env=env())
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["repo"]["deltaDepth"] == 0
    log = (d / "etcd-backup.log").read_text()
    assert "delta_depth=2" in log
    assert PASS not in log


def test_a_plain_backup_after_a_delta_does_not_reuse_the_delta_as_content(etcd, series,
                                                                          tmp_path):
    """A plain backup whose parent holds the same, unchanged file as a delta
    must not take the delta frame over as the file's content: the file is
    read again, and restores byte-identical."""
    r = tmp_path / "repo"
    repo("init", "--repo", r)
    backup(r, series[0])
    backup(r, series[1], "--delta-parent", "latest")
    third = backup(r, series[1])
    out = tmp_path / "out"
    repo("restore", "--repo", r, third["id"][:8], out)
    got = [p for p in out.rglob("*") if p.is_file()]
    assert len(got) == 1 and sha(got[0]) == sha(series[1])
    repo("check", "--repo", r, "--read-data")


def test_delta_base_in_a_split_directory(tmp_path):
    """A delta whose base sits in a directory stored as a tree index (the
    test knob splits 40 entries into parts): the base is found by name in
    its part (kt_archive_dir_find), restore is byte-identical and check
    --read-data decodes the delta."""
    import random
    from test_repo import etcd_like, tree
    knobs = {"KT_TREE_PART_NODES": "16"}
    src = tmp_path / "dir"
    src.mkdir()
    for i in range(40):
        (src / f"n{i:02d}.txt").write_text(f"{i}\n")
    db = src / "n20-member.db"
    etcd_like(db, 400)
    r = tmp_path / "repo"
    repo("init", "--repo", r)
    repo("backup", "--repo", r, src, extra_env=knobs)
    with open(db, "r+b") as f:   # a few pages change
        for page in (3, 150, 390):
            f.seek(page * 4096 + 64)
            f.write(random.Random(page).randbytes(512))
    two = json.loads(repo("backup", "--repo", r, src, "--delta-parent", "latest", "-o", "json",
                          extra_env=knobs).stdout)
    assert two["filesDelta"] == 1, two
    snaps = json.loads(repo("snapshots", "--repo", r, "-o", "json").stdout)
    assert snaps[-1]["version"] == 4
    out = tmp_path / "out"
    repo("restore", "--repo", r, "latest", out)
    assert tree(restored(out, src)) == tree(src)
    assert json.loads(repo("check", "--repo", r, "--read-data", "-o", "json").stdout)["ok"]
