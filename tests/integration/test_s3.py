"""src/s3 against a real MinIO (which checks SigV4), through tests/unit/s3tool.

s3tool reads its configuration from S3_* environment variables (the secret
never sits in argv), prints results on stdout, and exits with the kt_code
of a failure (2 notfound, 7 transient, 9 auth).
"""
import hashlib
import os
import pathlib
import subprocess
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
S3TOOL = ROOT / os.environ.get("KT_BUILD", "build") / "tests" / "unit" / "s3tool"
MIB = 1 << 20
KT_ENOTFOUND, KT_ETRANSIENT, KT_EAUTH = 2, 7, 9


def env_for(minio, bucket, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("S3_")}
    env.update(S3_ENDPOINT=minio.endpoint, S3_REGION=minio.region, S3_BUCKET=bucket,
               S3_ACCESS_KEY=minio.access_key, S3_SECRET_KEY=minio.secret_key)
    if minio.ca_file:
        env["S3_CACERT"] = str(minio.ca_file)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def s3tool(minio, bucket, *args, check=True, timeout=300, **extra):
    if not S3TOOL.exists():
        pytest.fail(f"{S3TOOL} is missing: run 'make build' first")
    r = subprocess.run([str(S3TOOL), *map(str, args)], capture_output=True, text=True,
                       timeout=timeout, env=env_for(minio, bucket, **extra))
    if check:
        assert r.returncode == 0, f"s3tool {' '.join(map(str, args))}: {r.stderr}"
    return r


def fields(stdout):
    return dict(line.split("=", 1) for line in stdout.splitlines() if "=" in line)


def make_bucket(minio, name):
    s3tool(minio, name, "mb")
    return name


def random_file(path, size, seed):
    """size bytes that do not compress or repeat (so parts differ)."""
    h = hashlib.sha256(str(seed).encode()).digest()
    with open(path, "wb") as f:
        left = size
        block = bytearray()
        counter = 0
        while left:
            if not block:
                block = bytearray(hashlib.sha256(h + counter.to_bytes(8, "little")).digest()
                                  * 2048)
                counter += 1
            n = min(left, len(block))
            f.write(block[:n])
            del block[:n]
            left -= n
    return path


def sha256(path):
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def md5(path):
    return hashlib.md5(pathlib.Path(path).read_bytes()).hexdigest()


def test_small_put_head_get_identical(minio, tmp_path):
    b = make_bucket(minio, "small")
    src = random_file(tmp_path / "src", 100_000, 1)
    put = fields(s3tool(minio, b, "put", "dir/small obj+1", src, "node=cp-1", "rev=42").stdout)
    assert put["etag"] == md5(src)  # a single PUT's ETag is the MD5 of the bytes
    head = fields(s3tool(minio, b, "head", "dir/small obj+1").stdout)
    assert head["size"] == "100000"
    assert head["etag"] == md5(src)
    assert head["meta.node"] == "cp-1" and head["meta.rev"] == "42"
    dst = tmp_path / "dst"
    s3tool(minio, b, "get", "dir/small obj+1", dst)
    assert sha256(dst) == sha256(src)
    # Empty object, from memory and from a file.
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    s3tool(minio, b, "put", "empty", empty)
    assert fields(s3tool(minio, b, "head", "empty").stdout)["size"] == "0"


def test_existing_bucket_is_eexist(minio):
    make_bucket(minio, "twice")
    r = s3tool(minio, "twice", "mb", check=False)
    assert r.returncode == 11, r.stderr  # KT_EEXIST
    assert "already exists" in r.stderr


def test_multipart_40mib_identical(minio, tmp_path):
    b = make_bucket(minio, "multipart")
    src = random_file(tmp_path / "src", 40 * MIB, 2)
    r = s3tool(minio, b, "put", "etcd/snap.db", src, S3_PART_SIZE=5 * MIB, S3_THREADS=3)
    put = fields(r.stdout)
    assert put["etag"].endswith("-8"), put  # multipart ETag: md5-of-md5s "-<parts>"
    assert r.stderr.count("part ") == 8
    head = fields(s3tool(minio, b, "head", "etcd/snap.db").stdout)
    assert head["size"] == str(40 * MIB)
    assert head["etag"] == put["etag"]
    # The multipart ETag is the MD5 of the parts' binary MD5s.
    data = pathlib.Path(src).read_bytes()
    md5s = b"".join(hashlib.md5(data[i:i + 5 * MIB]).digest() for i in range(0, len(data), 5 * MIB))
    assert head["etag"] == hashlib.md5(md5s).hexdigest() + "-8"
    dst = tmp_path / "dst"
    s3tool(minio, b, "get", "etcd/snap.db", dst)
    assert sha256(dst) == sha256(src)


def test_list_pagination_and_delete(minio, tmp_path):
    b = make_bucket(minio, "listing")
    names = [f"pre/k{i:03d}" for i in range(23)] + ["other/x"]
    for n in names:
        s3tool(minio, b, "putmem", n, f"value of {n}")
    r = s3tool(minio, b, "ls", "pre/", 5)
    lines = [ln.split("\t") for ln in r.stdout.splitlines() if "\t" in ln]
    assert [ln[0] for ln in lines] == sorted(n for n in names if n.startswith("pre/"))
    assert fields(r.stdout)["count"] == "23"
    assert all(ln[1] == str(len(f"value of {ln[0]}")) for ln in lines)
    assert fields(s3tool(minio, b, "ls").stdout)["count"] == "24"
    s3tool(minio, b, "rm", "pre/k000")
    s3tool(minio, b, "rm", "pre/k000")  # deleting a missing key succeeds
    r = s3tool(minio, b, "head", "pre/k000", check=False)
    assert r.returncode == KT_ENOTFOUND, r.stderr
    assert "not found" in r.stderr
    assert fields(s3tool(minio, b, "ls", "pre/", 7).stdout)["count"] == "22"


def test_missing_bucket_is_notfound(minio, tmp_path):
    r = s3tool(minio, "no-such-bucket", "putmem", "k", "v", check=False)
    assert r.returncode == KT_ENOTFOUND, r.stderr
    assert "bucket 'no-such-bucket' does not exist" in r.stderr


@pytest.mark.parametrize("cmd", [("putmem", "k", "v"), ("ls",), ("head", "k")])
def test_wrong_secret_is_clear_auth_error(minio, tmp_path, cmd):
    b = make_bucket(minio, "auth-" + cmd[0])
    wrong = "Wr0ng-Secret-" + "x" * 20
    r = s3tool(minio, b, *cmd, check=False, S3_SECRET_KEY=wrong, S3_DEBUG=1)
    assert r.returncode == KT_EAUTH, r.stderr
    assert f"bucket '{b}'" in r.stderr
    assert minio.endpoint in r.stderr
    assert "secret key" in r.stderr
    for out in (r.stdout, r.stderr):
        assert wrong not in out
        assert minio.secret_key not in out


def test_unreachable_endpoint_is_transient(minio, tmp_path):
    from peers import free_port
    port = free_port()
    env = {"S3_ENDPOINT": f"http://127.0.0.1:{port}", "S3_ATTEMPTS": 3,
           "S3_RETRY_BASE_MS": 50, "S3_RETRY_MAX_MS": 100}
    t0 = time.monotonic()
    r = s3tool(minio, "any", "putmem", "k", "v", check=False, **env)
    assert r.returncode == KT_ETRANSIENT, r.stderr
    assert f"127.0.0.1:{port}" in r.stderr
    assert "after 3 attempts" in r.stderr
    assert time.monotonic() - t0 < 20


def test_minio_restart_mid_multipart(minio, tmp_path):
    """MinIO stops after the first part is stored and comes back a moment
    later: the upload either completes byte-identical (retries bridged the
    gap) or fails and leaves no object; never a success with bad data."""
    b = make_bucket(minio, "restart")
    src = random_file(tmp_path / "src", 120 * MIB, 3)
    env = env_for(minio, b, S3_PART_SIZE=5 * MIB, S3_THREADS=2, S3_ATTEMPTS=12,
                  S3_RETRY_BASE_MS=200, S3_RETRY_MAX_MS=2000)
    p = subprocess.Popen([str(S3TOOL), "put", "big", str(src)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env)
    stderr = []
    try:
        while True:
            line = p.stderr.readline()
            if not line:
                break
            stderr.append(line)
            if line.startswith("part "):
                break
        minio.stop()
        time.sleep(1.0)
        minio.start()
        out, err = p.communicate(timeout=300)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    stderr.append(err)
    assert any(s.startswith("part ") for s in stderr), "".join(stderr)
    if p.returncode == 0:
        assert fields(out)["etag"].endswith("-24")
        dst = tmp_path / "dst"
        s3tool(minio, b, "get", "big", dst)
        assert sha256(dst) == sha256(src)
    else:
        assert p.returncode in (KT_ETRANSIENT, KT_ENOTFOUND), "".join(stderr)
        r = s3tool(minio, b, "head", "big", check=False)
        assert r.returncode == KT_ENOTFOUND, r.stderr


def versions(minio, bucket, prefix=""):
    """[(key, version id, size, latest, 'marker'|'data')] from ListObjectVersions."""
    out = s3tool(minio, bucket, "lsv", *([prefix] if prefix else [])).stdout
    rows = [line.split("\t") for line in out.splitlines() if "\t" in line]
    return [(k, v, int(n), latest == "latest", kind) for k, v, n, latest, kind in rows]


def test_object_lock_bucket_keeps_every_version(minio, tmp_path):
    bucket = "lock-versions"
    s3tool(minio, bucket, "mb", "--lock")
    assert fields(s3tool(minio, bucket, "lock-get").stdout)["enabled"] == "1"
    s3tool(minio, bucket, "lock-set", "GOVERNANCE", "1")
    cfg = fields(s3tool(minio, bucket, "lock-get").stdout)
    assert (cfg["mode"], cfg["days"]) == ("GOVERNANCE", "1")
    # A plain bucket has no lock configuration: not an error, just disabled.
    s3tool(minio, "lock-plain", "mb")
    assert fields(s3tool(minio, "lock-plain", "lock-get").stdout)["enabled"] == "0"

    f = tmp_path / "f"
    f.write_bytes(b"immutable bytes")
    s3tool(minio, bucket, "put", "obj", f)
    ret = fields(s3tool(minio, bucket, "retention", "obj").stdout)
    assert ret["mode"] == "GOVERNANCE" and ret["retain_until"] > time.strftime("%Y-%m-%d")
    # An explicit retention on the write wins over the bucket default; multipart too.
    random_file(tmp_path / "big", 12 * MIB, 7)
    s3tool(minio, bucket, "putlock", "big", tmp_path / "big", "COMPLIANCE",
           "2099-01-01T00:00:00Z", S3_PART_SIZE=5 * MIB)
    ret = fields(s3tool(minio, bucket, "retention", "big").stdout)
    assert ret["mode"] == "COMPLIANCE" and ret["retain_until"].startswith("2099-01-01")
    r = s3tool(minio, bucket, "putlock", "x", f, "FOREVER", "2099-01-01T00:00:00Z", check=False)
    assert r.returncode == 1 and "GOVERNANCE or COMPLIANCE" in r.stderr

    # DELETE without a version only hides the object behind a delete marker ...
    s3tool(minio, bucket, "rm", "obj")
    v = [x for x in versions(minio, bucket) if x[0] == "obj"]
    assert [x[4] for x in v] == ["marker", "data"] and v[0][3] and v[1][2] == 15
    # ... and the data version itself cannot be deleted before its retain-until date.
    r = s3tool(minio, bucket, "rmv", "obj", v[1][1], check=False)
    assert r.returncode == 6, r.stderr
    assert "Object Lock retention" in r.stderr and "retain-until" in r.stderr
    assert minio.secret_key not in r.stderr
    assert [x[4] for x in versions(minio, bucket) if x[0] == "obj"] == ["marker", "data"]
