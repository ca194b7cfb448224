"""src/store against real peers, through tests/unit/storetool.

The conformance suite (tests/unit/store_suite.c, the same code test_store
runs against the local backend) runs against MinIO with and without a key
prefix, and under faulty+retry.  Then what only a real server can show:
write-once under racing writers (If-None-Match on PUT and on
CompleteMultipartUpload), ranged GETs byte for byte, multipart for big
objects, foreign keys skipped by listings, and secrets kept out of output.

storetool takes S3 settings from S3_* environment variables only (never
argv) and exits with the kt_code of a failure (3 corrupt, 9 auth, 11 exists).
"""
import hashlib
import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = ROOT / os.environ.get("KT_BUILD", "build")
STORETOOL = BUILD / "tests" / "unit" / "storetool"
S3TOOL = BUILD / "tests" / "unit" / "s3tool"
MIB = 1 << 20
KT_ECORRUPT, KT_EAUTH, KT_EEXIST = 3, 9, 11


def s3_env(minio, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("S3_")}
    env.update(S3_ENDPOINT=minio.endpoint, S3_REGION=minio.region,
               S3_ACCESS_KEY=minio.access_key, S3_SECRET_KEY=minio.secret_key)
    if minio.ca_file:
        env["S3_CACERT"] = str(minio.ca_file)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def storetool(env, *args, check=True, timeout=600):
    if not STORETOOL.exists():
        pytest.fail(f"{STORETOOL} is missing: run 'make build' first")
    r = subprocess.run([str(STORETOOL), *map(str, args)], capture_output=True, text=True,
                       timeout=timeout, env=env)
    if check:
        assert r.returncode == 0, f"storetool {' '.join(map(str, args))}:\n{r.stdout}\n{r.stderr}"
    return r


def s3tool(minio, bucket, *args):
    env = s3_env(minio, S3_BUCKET=bucket)
    r = subprocess.run([str(S3TOOL), *map(str, args)], capture_output=True, text=True,
                       timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    return dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)


def random_bytes(size, seed):
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}-{counter}".encode()).digest() * 64
        counter += 1
    return bytes(out[:size])


def assert_suite_passed(r):
    assert "0 failed" in r.stdout, r.stdout + r.stderr
    assert "FAIL" not in r.stdout, r.stdout
    assert r.stdout.count("ok - ") == 10, r.stdout   # every case of tests/unit/store_suite.c


def test_suite_minio_with_prefix(minio, tmp_path):
    """1100 names (two list pages) and a 40 MiB object in 5 MiB parts."""
    env = s3_env(minio, S3_PART_SIZE=5 * MIB, S3_THREADS=3, TMPDIR=tmp_path)
    r = storetool(env, "--create", "suite", "s3://store-suite/repos/one", 1100, 40)
    assert_suite_passed(r)
    # put_file went multipart: 8 parts of 5 MiB.
    head = s3tool(minio, "store-suite", "head", "repos/one/big/blob")
    assert head["size"] == str(40 * MIB)
    assert head["etag"].endswith("-8"), head
    # Everything lives under the prefix.
    ls = storetool(env, "ls", "s3://store-suite")
    assert all(line.startswith("repos/one/") for line in ls.stdout.splitlines()
               if "\t" in line)


def test_suite_minio_without_prefix(minio, tmp_path):
    env = s3_env(minio, S3_PART_SIZE=5 * MIB, TMPDIR=tmp_path)
    r = storetool(env, "--create", "suite", "s3://store-bare", 1050, 11)
    assert_suite_passed(r)


def test_suite_minio_faulty_retry(minio, tmp_path):
    """One operation in five fails (before, after, timeout, short read);
    the retry wrapper must hide every one of them."""
    env = s3_env(minio, S3_PART_SIZE=5 * MIB, S3_THREADS=2, TMPDIR=tmp_path)
    r = storetool(env, "--create", "--faulty", "424242:20", "--retry", "12:5", "suite",
                  "s3://store-faulty/r", 1100, 12)
    assert_suite_passed(r)
    counters = dict(kv.split("=") for kv in r.stderr.strip().splitlines()[-1].split())
    assert int(counters["faults"]) > 100, r.stderr
    assert int(counters["retries"]) > 100, r.stderr


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_write_once_race(minio, tmp_path, backend):
    """Eight writers race for one name: exactly one wins, the others get
    KT_EEXIST, and the object holds the winner's bytes.  On S3 this needs
    If-None-Match (a HEAD-then-PUT would let several 'win')."""
    if backend == "s3":
        env, url = s3_env(minio), "s3://store-race/p"
        storetool(env, "--create", "ls", url)
    else:
        env, url = dict(os.environ), str(tmp_path / "store")
        storetool(env, "--create", "ls", url)
    for round_ in range(5):
        name = f"race/{round_}"
        procs = [subprocess.Popen([str(STORETOOL), "putmem", url, name, f"writer {i}"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, env=env) for i in range(8)]
        results = [(p.wait(timeout=60), p.stderr.read()) for p in procs]
        for p in procs:
            p.stdout.close()
            p.stderr.close()
        winners = [i for i, (rc, _) in enumerate(results) if rc == 0]
        assert len(winners) == 1, results
        assert all(rc == KT_EEXIST for rc, _ in results if rc), results
        assert all("already exists" in err for rc, err in results if rc), results
        out = tmp_path / "got"
        storetool(env, "get", url, name, out)
        assert out.read_bytes() == f"writer {winners[0]}".encode()


def test_write_once_race_multipart(minio, tmp_path):
    """Three big uploads race for one name: the conditional Complete lets
    exactly one through, the losers' uploads are aborted."""
    env = s3_env(minio, S3_PART_SIZE=5 * MIB, S3_THREADS=2)
    url = "s3://store-race-mp/p"
    storetool(env, "--create", "ls", url)
    files = []
    for i in range(3):
        f = tmp_path / f"src{i}"
        f.write_bytes(random_bytes(12 * MIB, i))
        files.append(f)
    procs = [subprocess.Popen([str(STORETOOL), "put", url, "big", str(f)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              env=env) for f in files]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    for p in procs:
        p.stderr.close()
    winners = [i for i, (rc, _) in enumerate(results) if rc == 0]
    assert len(winners) == 1, results
    assert all(rc == KT_EEXIST for rc, _ in results if rc), results
    out = tmp_path / "got"
    storetool(env, "get", url, "big", out)
    assert out.read_bytes() == files[winners[0]].read_bytes()


def test_ranged_get_minio(minio, tmp_path):
    env = s3_env(minio)
    url = "s3://store-range/x"
    data = random_bytes(300_000, 9)
    src = tmp_path / "src"
    src.write_bytes(data)
    storetool(env, "--create", "put", url, "obj", src)
    storetool(env, "putmem", url, "empty", "")
    out = tmp_path / "out"
    for off, length in [(0, 1), (1, 299_999), (123_456, 7), (299_999, 1), (250_000, 0),
                        (300_000, 0), (0, 0)]:
        storetool(env, "get", url, "obj", out, off, length)
        want = data[off:off + length] if length else data[off:]
        assert out.read_bytes() == want, (off, length)
    storetool(env, "get", url, "empty", out, 0, 0)
    assert out.read_bytes() == b""
    for off, length in [(299_990, 20), (300_000, 1), (400_000, 0), (0, 300_001)]:
        r = storetool(env, "get", url, "obj", out, off, length, check=False)
        assert r.returncode == KT_ECORRUPT, r.stderr
        assert "'obj'" in r.stderr and "has 300000 bytes" in r.stderr, r.stderr
    r = storetool(env, "get", url, "empty", out, 0, 1, check=False)
    assert r.returncode == KT_ECORRUPT and "has 0 bytes" in r.stderr, r.stderr


def test_listing_skips_foreign_keys(minio, tmp_path):
    """Keys that are not valid names (written by other tools) are not ours."""
    env = s3_env(minio)
    url = "s3://store-foreign/repo"
    storetool(env, "--create", "putmem", url, "data/ok", "1")
    for key in ["repo/data/has space", "repo/data/dir/", "repo/data/caf\u00e9", "reposibling",
                "other/data/x"]:
        s3tool(minio, "store-foreign", "putmem", key, "foreign")
    r = storetool(env, "ls", url)
    assert r.stdout.splitlines() == ["data/ok\t1", "count=1"], r.stdout


def test_wrong_secret_is_auth_error_without_leak(minio, tmp_path):
    wrong = "Wr0ng-Store-Secret-" + "y" * 16
    env = s3_env(minio, S3_SECRET_KEY=wrong, S3_DEBUG=1)
    r = storetool(env, "--create", "putmem", "s3://store-auth/p", "k", "v", check=False)
    assert r.returncode == KT_EAUTH, r.stderr
    assert "store-auth" in r.stderr and "secret key" in r.stderr, r.stderr
    for out in (r.stdout, r.stderr):
        assert wrong not in out
        assert minio.secret_key not in out


def test_missing_s3_settings_are_usage_errors(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("S3_")}
    r = storetool(env, "ls", "s3://bucket/p", check=False)
    assert r.returncode == 1, r.stderr  # KT_EUSAGE
    assert "endpoint" in r.stderr


class LosingProxy:
    """A TCP proxy in front of MinIO that, while `lose` > 0, forwards a PUT
    to the server and then closes the client's connection instead of
    passing the answer back: the write happened, the writer never heard."""

    def __init__(self, target_port):
        import socket
        import threading
        self.target_port = target_port
        self.lose = 0
        self.lost = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        import socket
        import threading
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self._up, args=(client, server), daemon=True).start()

    def _up(self, client, server):
        import threading
        first = True
        dropping = False
        try:
            while True:
                data = client.recv(65536)
                if not data:
                    break
                if first:
                    first = False
                    with self.lock:
                        if data.startswith(b"PUT ") and self.lose > 0:
                            self.lose -= 1
                            dropping = True
                    if not dropping:
                        threading.Thread(target=self._down, args=(server, client),
                                         daemon=True).start()
                server.sendall(data)
                if dropping and b"\r\n\r\n" in data:
                    # Let the server finish the request, then hang up on the client.
                    server.settimeout(5)
                    try:
                        server.recv(65536)
                    except OSError:
                        pass
                    with self.lock:
                        self.lost += 1
                    break
        except OSError:
            pass
        finally:
            client.close()
            server.close()

    @staticmethod
    def _down(server, client):
        try:
            while True:
                data = server.recv(65536)
                if not data:
                    break
                client.sendall(data)
        except OSError:
            pass
        finally:
            try:
                client.shutdown(2)
            except OSError:
                pass

    def close(self):
        self.sock.close()


def test_lost_put_answer_is_resolved_by_the_s3_client(minio, tmp_path):
    """The first PUT lands but its answer is lost; the client's retry is
    refused with 412.  The object is ours (size and MD5 ETag match), so
    the put succeeds; someone else's object under the name stays EEXIST."""
    direct = s3_env(minio)
    storetool(direct, "--create", "ls", "s3://store-lost/p")
    proxy = LosingProxy(minio.port)
    try:
        env = s3_env(minio, S3_ENDPOINT=f"http://127.0.0.1:{proxy.port}", S3_ATTEMPTS=3,
                     S3_TIMEOUT_MS=20000)
        proxy.lose = 1
        r = storetool(env, "putmem", "s3://store-lost/p", "mine", "my bytes", check=False)
        assert proxy.lost == 1
        assert r.returncode == 0, r.stderr
        out = tmp_path / "got"
        storetool(direct, "get", "s3://store-lost/p", "mine", out)
        assert out.read_bytes() == b"my bytes"

        storetool(direct, "putmem", "s3://store-lost/p", "theirs", "their bytes")
        proxy.lose = 1
        r = storetool(env, "putmem", "s3://store-lost/p", "theirs", "my bytes!!!", check=False)
        assert proxy.lost == 2
        assert r.returncode == KT_EEXIST, r.stderr
        storetool(direct, "get", "s3://store-lost/p", "theirs", out)
        assert out.read_bytes() == b"their bytes"
    finally:
        proxy.close()
