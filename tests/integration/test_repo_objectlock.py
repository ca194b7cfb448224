"""The repository on an S3 bucket with Object Lock (MinIO with a default
COMPLIANCE retention): backups, forget and prune work unchanged because the
repository never rewrites an object; nothing written can be destroyed before
its retain-until date, and every key holds exactly one data version (the
write-once rule of docs/repository-format.md, checked on the server)."""
import json
import random
from collections import defaultdict

from test_repo import make_data, repo, restored, tree
from test_s3 import s3tool, versions


def test_repository_on_an_object_lock_bucket(minio, tmp_path):
    bucket = "repo-locked"
    s3tool(minio, bucket, "mb", "--lock")
    s3tool(minio, bucket, "lock-set", "COMPLIANCE", "1")
    s3 = {"AWS_ACCESS_KEY_ID": minio.access_key, "AWS_SECRET_ACCESS_KEY": minio.secret_key,
          "AWS_DEFAULT_REGION": minio.region, "AWS_ENDPOINT_URL": minio.endpoint}
    url = f"s3://{bucket}/cluster-a"
    src = tmp_path / "src"
    make_data(src, big=2 << 20)
    repo("init", "--repo", url, extra_env=s3)
    rnd = random.Random(5)
    for i in range(3):
        (src / f"gen-{i}.bin").write_bytes(rnd.randbytes(1 << 20))
        if i:
            (src / f"gen-{i - 1}.bin").unlink()
        repo("backup", "--repo", url, src, extra_env=s3)
    want = tree(src)
    repo("forget", "--repo", url, "--keep-last", "1", extra_env=s3)
    pr = json.loads(repo("prune", "--repo", url, "-o", "json", extra_env=s3).stdout)
    assert pr["packsRemoved"] >= 1, pr
    assert json.loads(repo("check", "--repo", url, "--read-data", "-o", "json",
                           extra_env=s3).stdout)["ok"]
    snaps = json.loads(repo("snapshots", "--repo", url, "-o", "json", extra_env=s3).stdout)
    assert len(snaps) == 1
    out = tmp_path / "out"
    repo("restore", "--repo", url, "latest", out, extra_env=s3)
    assert tree(restored(out, src)) == want

    # On the server: one data version per key (nothing was ever rewritten);
    # what prune and forget removed is hidden behind delete markers, still there.
    per_key = defaultdict(list)
    for key, vid, size, latest, kind in versions(minio, bucket, "cluster-a/"):
        per_key[key].append((kind, vid, latest))
    assert per_key
    for key, vs in per_key.items():
        assert [k for k, _, _ in vs].count("data") == 1, (key, vs)
    hidden = [k for k, vs in per_key.items() if vs[0][0] == "marker"]
    assert any(k.startswith("cluster-a/data/") for k in hidden), sorted(per_key)
    assert any(k.startswith("cluster-a/snapshots/") for k in hidden)
    # ... and cannot be destroyed: deleting the data version is refused.
    victim = next(k for k in hidden if k.startswith("cluster-a/data/"))
    vid = next(v for kind, v, _ in per_key[victim] if kind == "data")
    r = s3tool(minio, bucket, "rmv", victim, vid, check=False)
    assert r.returncode == 6 and "Object Lock retention" in r.stderr, r.stderr
