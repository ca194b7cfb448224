"""`kontinuity etcd snapshot save/status/verify` against real etcd and etcdutl.

Every case talks to a real etcd started on 127.0.0.1 by peers.py and compares
with the real etcdctl/etcdutl where they have an answer.
"""
import hashlib
import json
import os
import pathlib
import shutil
import socket
import subprocess
import threading
import http.server

import pytest

import boltmangle
import peers

ROOT = pathlib.Path(__file__).resolve().parents[2]
KT = ROOT / os.environ.get("KT_BUILD", "build") / "src" / "cli" / "kontinuity"
STATUS_KEYS = ["hash", "revision", "totalKey", "totalSize", "version"]


def kt(*args, timeout=120, **kw):
    return subprocess.run([str(KT), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, **kw)


def sha256(path):
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def etcdutl_status(path):
    r = subprocess.run([peers.binary("etcdutl"), "snapshot", "status", str(path), "-w", "json"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def our_status(path):
    r = kt("etcd", "snapshot", "status", path, "-o", "json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def put_keys(etcd, prefix, n, size):
    """Put PREFIX0..PREFIX{n-1} with values of SIZE bytes, 50 per transaction."""
    for start in range(0, n, 50):
        ops = [{"request_put": {"key": peers._b64(f"{prefix}{i}"),
                                "value": peers._b64(peers.sample_value(i, size))}}
               for i in range(start, min(n, start + 50))]
        assert etcd.api("/v3/kv/txn", {"success": ops}).get("succeeded")


def load_cluster_like(etcd):
    """Kubernetes-like keys with history: puts, updates and deletes."""
    put_keys(etcd, "/registry/pods/default/pod-", 60, 700)
    put_keys(etcd, "/registry/configmaps/kube-system/cm-", 20, 300)
    put_keys(etcd, "/registry/shop.example.com/carts/shop/cart-", 7, 100)
    put_keys(etcd, "/registry/pods/default/pod-", 10, 900)  # new revisions of pod-0..9
    for i in range(5):
        etcd.etcdctl("del", f"/registry/pods/default/pod-{i}")
    etcd.etcdctl("put", "/unrelated/key", "v")


@pytest.fixture
def loaded_etcd(etcd):
    load_cluster_like(etcd)
    return etcd


# ---------------------------------------------------------------- save


def _meta_fields_differ_only(a, b):
    """The two meta pages may differ only in root page, txid and checksum:
    etcd commits a transaction for every Snapshot call, so two snapshots of an
    idle etcd are never byte-identical there nor in the free pages that
    commit reuses (docs/etcd-wire.md)."""
    ps = boltmangle.page_size(a)
    for (_, ma), (_, mb) in zip(boltmangle.metas(a), boltmangle.metas(b)):
        for k in ("magic", "version", "pagesize", "flags", "seq", "freelist", "pgid"):
            assert ma[k] == mb[k], k
    return ps


def test_save_has_etcdctls_bytes_and_is_private(loaded_etcd, tmp_path):
    before, ours, after = tmp_path / "before.db", tmp_path / "ours.db", tmp_path / "after.db"
    loaded_etcd.etcdctl("snapshot", "save", str(before))
    r = kt("etcd", "snapshot", "save", ours, "--endpoint", loaded_etcd.endpoint)
    assert r.returncode == 0, r.stderr
    assert "Snapshot saved to" in r.stdout
    loaded_etcd.etcdctl("snapshot", "save", str(after))
    a, o, b = (p.read_bytes() for p in (before, ours, after))
    assert len(a) == len(o) == len(b) and len(o) % 512 == 32
    # Same database: every page but the two meta pages is byte-identical, and
    # the meta pages differ only where etcd's per-snapshot commit writes.
    ps = _meta_fields_differ_only(a, o)
    _meta_fields_differ_only(o, b)
    # The pages that hold the keys are the same pages with the same bytes
    # (the commit only rewrites the root and the "meta" bucket).
    reach = boltmangle.reachable_pages(o, b"key")
    assert reach == boltmangle.reachable_pages(a, b"key") == boltmangle.reachable_pages(b, b"key")
    assert len(reach) > 10
    for pgid in sorted(reach):
        assert o[pgid * ps:(pgid + 1) * ps] == a[pgid * ps:(pgid + 1) * ps], pgid
        assert o[pgid * ps:(pgid + 1) * ps] == b[pgid * ps:(pgid + 1) * ps], pgid
    assert hashlib.sha256(o[:-32]).digest() == o[-32:]
    assert our_status(ours) == etcdutl_status(ours)
    assert {k: v for k, v in etcdutl_status(ours).items()} == etcdutl_status(before)
    assert oct(ours.stat().st_mode & 0o777) == "0o600"
    assert not (tmp_path / "ours.db.part").exists()


def test_save_json_output_reports_what_was_written(loaded_etcd, tmp_path):
    out = tmp_path / "s.db"
    r = kt("etcd", "snapshot", "save", out, "--endpoint", loaded_etcd.endpoint, "-o", "json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["size"] == out.stat().st_size
    data = out.read_bytes()
    assert info["sha256"] == hashlib.sha256(data).hexdigest()  # what sha256sum prints
    assert hashlib.sha256(data[:-32]).digest() == data[-32:]
    assert info["revision"] == etcdutl_status(out)["revision"]
    assert info["verified"] is True


def test_save_refuses_to_overwrite(loaded_etcd, tmp_path):
    out = tmp_path / "keep.db"
    out.write_bytes(b"previous backup")
    r = kt("etcd", "snapshot", "save", out, "--endpoint", loaded_etcd.endpoint)
    assert r.returncode == 1
    assert "already exists" in r.stderr
    assert out.read_bytes() == b"previous backup"
    assert not (tmp_path / "keep.db.part").exists()


def test_save_unreachable_endpoint(tmp_path):
    port = peers.free_port()
    out = tmp_path / "s.db"
    r = kt("etcd", "snapshot", "save", out, "--endpoint", f"http://127.0.0.1:{port}", timeout=60)
    assert r.returncode == 1
    assert f"127.0.0.1:{port}" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not out.exists() and not (tmp_path / "s.db.part").exists()


def test_save_wrong_endpoint_not_etcd(tmp_path):
    """An HTTP server that is not etcd: a clear protocol error, no hang, no file."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a):
            pass
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        out = tmp_path / "s.db"
        r = kt("etcd", "snapshot", "save", out, "--endpoint",
               f"http://127.0.0.1:{srv.server_address[1]}", "--timeout", "20s", timeout=60)
    finally:
        srv.shutdown()
    assert r.returncode == 1
    assert r.stderr.startswith("kontinuity: "), r.stderr
    assert not out.exists() and not (tmp_path / "s.db.part").exists()


def test_save_bad_flags_are_usage_errors(tmp_path):
    assert kt("etcd", "snapshot", "save").returncode == 2
    r = kt("etcd", "snapshot", "save", tmp_path / "x.db", "--endpoint", "ftp://x")
    assert r.returncode == 2 and "http://" in r.stderr
    r = kt("etcd", "snapshot", "save", tmp_path / "x.db", "--timeout", "soon")
    assert r.returncode == 2 and "invalid duration" in r.stderr
    r = kt("etcd", "snapshot", "save", tmp_path / "x.db", "--bogus")
    assert r.returncode == 2 and "unknown flag '--bogus'" in r.stderr


def test_save_full_disk_leaves_nothing(loaded_etcd, tmp_path):
    put_keys(loaded_etcd, "/registry/secrets/big/s-", 400, 4000)  # > 1 MiB of data
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mnt)], check=True)
    try:
        r = kt("etcd", "snapshot", "save", mnt / "s.db", "--endpoint", loaded_etcd.endpoint)
        left = sorted(p.name for p in mnt.iterdir())
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
    assert r.returncode == 1
    assert "No space left on device" in r.stderr
    assert left == []


def test_save_tls_with_client_certs(etcd_tls, tmp_path):
    load_cluster_like(etcd_tls)
    ours, theirs = tmp_path / "ours.db", tmp_path / "theirs.db"
    assert etcd_tls.etcdctl("snapshot", "save", str(theirs)).returncode == 0
    r = kt("etcd", "snapshot", "save", ours, "--endpoint", etcd_tls.endpoint,
           "--cacert", etcd_tls.ca_file, "--cert", etcd_tls.client_cert,
           "--key", etcd_tls.client_key)
    assert r.returncode == 0, r.stderr
    assert etcdutl_status(ours) == etcdutl_status(theirs)
    assert our_status(ours) == etcdutl_status(ours)


def test_save_tls_wrong_ca_is_refused(etcd_tls, tmp_path):
    other = peers.CA(tmp_path / "other-ca", cn="some-other-ca")
    out = tmp_path / "s.db"
    r = kt("etcd", "snapshot", "save", out, "--endpoint", etcd_tls.endpoint,
           "--cacert", other.cert, "--cert", etcd_tls.client_cert, "--key", etcd_tls.client_key)
    assert r.returncode == 1
    assert "TLS" in r.stderr or "certificate" in r.stderr
    assert not out.exists()
    # Without a client certificate the server refuses the handshake.
    r = kt("etcd", "snapshot", "save", out, "--endpoint", etcd_tls.endpoint,
           "--cacert", etcd_tls.ca_file)
    assert r.returncode == 1
    assert not out.exists()


def test_save_auth(etcd, tmp_path):
    load_cluster_like(etcd)
    password = "s3cr3t-Pa55word"
    etcd.enable_auth("root", password)
    out = tmp_path / "s.db"
    r = kt("etcd", "snapshot", "save", out, "--endpoint", etcd.endpoint)
    assert r.returncode == 1 and not out.exists()
    assert "--user" in r.stderr, r.stderr
    r = kt("etcd", "snapshot", "save", out, "--endpoint", etcd.endpoint,
           "--user", "root:wrong-password-x", "-v", "-v", "--log-format", "json")
    assert r.returncode == 1 and not out.exists()
    assert "wrong-password-x" not in r.stderr + r.stdout
    assert "authentication failed" in r.stderr or "auth" in r.stderr
    r = kt("etcd", "snapshot", "save", out, "--endpoint", etcd.endpoint,
           "--user", f"root:{password}", "-v", "-v")
    assert r.returncode == 0, r.stderr
    assert password not in r.stderr + r.stdout
    assert our_status(out) == etcdutl_status(out)
    # The same through the environment, so the password is not in ps output.
    out2 = tmp_path / "env.db"
    r = kt("etcd", "snapshot", "save", out2, "--endpoint", etcd.endpoint,
           env={**os.environ, "KONTINUITY_ETCD_USER": f"root:{password}"})
    assert r.returncode == 0, r.stderr
    assert password not in r.stderr + r.stdout


def test_save_shows_progress_on_a_tty(loaded_etcd, tmp_path):
    out = tmp_path / "s.db"
    r = subprocess.run(["script", "-qec", f"{KT} etcd snapshot save {out} --endpoint "
                        f"{loaded_etcd.endpoint}", "/dev/null"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout
    assert "saving snapshot" in r.stdout and "/s" in r.stdout
    assert out.exists()


# ---------------------------------------------------------------- status


def test_status_matches_etcdutl_on_snapshot_and_raw_db(loaded_etcd, tmp_path):
    snap = tmp_path / "s.db"
    assert loaded_etcd.etcdctl("snapshot", "save", str(snap)).returncode == 0
    ours = our_status(snap)
    assert ours == etcdutl_status(snap)
    assert list(ours) == STATUS_KEYS
    assert ours["version"].startswith("3.6")
    loaded_etcd.stop()
    raw = tmp_path / "raw.db"
    shutil.copy(loaded_etcd.data_dir / "member" / "snap" / "db", raw)
    assert raw.stat().st_size % 512 == 0
    assert our_status(raw) == etcdutl_status(raw)


@pytest.mark.parametrize("version", ["3.5", "3.4"])
def test_status_matches_etcdutl_on_older_etcd(version, tmp_path):
    with peers.Etcd(tmp_path / "etcd", version=version) as old:
        load_cluster_like(old)
        snap = tmp_path / "old.db"
        r = kt("etcd", "snapshot", "save", snap, "--endpoint", old.endpoint)
        assert r.returncode == 0, r.stderr
    ours = our_status(snap)
    assert ours == etcdutl_status(snap)
    assert ours["version"] == ""


def test_status_table_and_yaml(loaded_etcd, tmp_path):
    snap = tmp_path / "s.db"
    assert loaded_etcd.etcdctl("snapshot", "save", str(snap)).returncode == 0
    st = etcdutl_status(snap)
    r = kt("etcd", "snapshot", "status", snap)
    assert r.returncode == 0
    header, row = r.stdout.splitlines()
    assert header.split() == ["HASH", "REVISION", "TOTAL", "KEYS", "TOTAL", "SIZE", "VERSION"]
    assert row.split()[0] == format(st["hash"], "x")
    r = kt("etcd", "snapshot", "status", snap, "-o", "yaml")
    assert r.returncode == 0
    assert f"revision: {st['revision']}" in r.stdout
    assert f"totalKey: {st['totalKey']}" in r.stdout


# ---------------------------------------------------------------- verify


def test_verify_counts_kubernetes_objects(loaded_etcd, tmp_path):
    snap = tmp_path / "s.db"
    assert kt("etcd", "snapshot", "save", snap, "--endpoint", loaded_etcd.endpoint).returncode == 0
    r = kt("etcd", "snapshot", "verify", snap, "-o", "json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["ok"] is True and rep["trailer"] == "sha256-ok"
    assert rep["resources"] == {"pods": 55, "configmaps": 20, "shop.example.com/carts": 7}
    assert rep["kubernetesObjects"] == 82
    assert rep["status"] == etcdutl_status(snap)
    assert rep["etcd"]["consistentIndex"] > 0
    r = kt("etcd", "snapshot", "verify", snap)
    assert r.returncode == 0
    assert "OK" in r.stdout and "SHA-256 matches" in r.stdout
    assert "pods" in r.stdout and "55" in r.stdout


def test_verify_raw_db_says_no_trailer(loaded_etcd, tmp_path):
    loaded_etcd.stop()
    raw = tmp_path / "raw.db"
    shutil.copy(loaded_etcd.data_dir / "member" / "snap" / "db", raw)
    r = kt("etcd", "snapshot", "verify", raw)
    assert r.returncode == 0, r.stderr
    assert "trailer    none" in r.stdout


# ---------------------------------------------------------------- bad input


@pytest.fixture
def good_snapshot(loaded_etcd, tmp_path):
    put_keys(loaded_etcd, "/registry/events/default/ev-", 300, 200)  # deep enough for branches
    snap = tmp_path / "good.db"
    assert loaded_etcd.etcdctl("snapshot", "save", str(snap)).returncode == 0
    return snap.read_bytes()


def _damaged(good, case):
    """(bytes, text the error must contain) for each kind of damage."""
    db, trailer = good[:-32], good[-32:]
    ps = boltmangle.page_size(db)
    if case == "empty":
        return b"", "empty"
    if case == "truncated":
        return good[: len(good) // 2 + 100], "truncated"
    if case == "truncated-at-page":
        return db[: (len(db) // ps // 2) * ps], "truncated"
    if case == "wrong-magic":
        return boltmangle.wrong_magic(db), "magic"
    if case == "flipped-data":
        # a byte inside a stored value (the user key inside mvccpb.KeyValue)
        b = bytearray(good)
        b[good.index(b"/unrelated/key") + 3] ^= 0x01
        return bytes(b), "SHA-256"
    if case == "flipped-structure":
        b, pgid = boltmangle.flip_page_header(db)
        return b, f"page {pgid}"
    if case == "meta-checksum":
        b = bytearray(db)
        b[16 + 8 * 5] ^= 0x10  # inside both metas' root field -> checksum mismatch
        b[ps + 16 + 8 * 5] ^= 0x10
        return bytes(b), "checksum"
    if case == "outside":
        return boltmangle.point_outside(db), "page"
    if case == "cycle":
        b, pgid = boltmangle.make_cycle(db)
        return b, f"page {pgid}"
    if case == "huge-size":
        return boltmangle.huge_size(db), "truncated"
    raise AssertionError(case)


BAD = ["empty", "truncated", "truncated-at-page", "wrong-magic", "flipped-data",
       "flipped-structure", "meta-checksum", "outside", "cycle", "huge-size"]


@pytest.mark.parametrize("command", ["status", "verify"])
@pytest.mark.parametrize("case", BAD)
def test_bad_snapshot(good_snapshot, tmp_path, command, case):
    data, needle = _damaged(good_snapshot, case)
    if command == "status" and case == "flipped-data":
        # status, like etcdutl's, reads the database and not the trailer
        # (verify does): a flipped value byte changes the hash the same way.
        bad = tmp_path / "flipped.db"
        bad.write_bytes(data)
        assert our_status(bad) == etcdutl_status(bad)
        return
    bad = tmp_path / f"{case}.db"
    bad.write_bytes(data)
    r = kt("etcd", "snapshot", command, bad)
    assert r.returncode == 3, (r.returncode, r.stdout, r.stderr)
    first = r.stderr.strip().splitlines()[0]
    assert first.startswith("kontinuity: "), r.stderr
    assert needle.lower() in r.stderr.lower(), r.stderr
    assert "Traceback" not in r.stderr and "Sanitizer" not in r.stderr
    assert bad.read_bytes() == data  # read-only: never touched


def test_etcdutl_agrees_these_are_bad(good_snapshot, tmp_path):
    """Our verdict is not stricter than the reference for structural damage."""
    for case in ["wrong-magic", "cycle", "outside"]:
        data, _ = _damaged(good_snapshot, case)
        bad = tmp_path / f"{case}.db"
        bad.write_bytes(data)
        r = subprocess.run([peers.binary("etcdutl"), "snapshot", "status", str(bad)],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode != 0, case


def test_directory_and_missing_file(tmp_path):
    for command in ["status", "verify"]:
        r = kt("etcd", "snapshot", command, tmp_path)
        assert r.returncode == 1 and "directory" in r.stderr, r.stderr
        r = kt("etcd", "snapshot", command, tmp_path / "nope.db")
        assert r.returncode == 1 and "nope.db" in r.stderr


def test_no_permission(good_snapshot, tmp_path):
    snap = tmp_path / "private.db"
    snap.write_bytes(good_snapshot)
    snap.chmod(0o600)
    tmp_path.chmod(0o755)
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                        str(KT), "etcd", "snapshot", "verify", str(snap)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r.stderr
    assert "Permission denied" in r.stderr and "private.db" in r.stderr


# ---------------------------------------------------------------- interruption


def test_interrupted_save_is_all_or_nothing(loaded_etcd, tmp_path):
    """SIGINT/SIGTERM at any moment: either a complete, verified FILE (the
    signal came after the rename) or nothing at all, never a .part."""
    import signal
    import time
    put_keys(loaded_etcd, "/registry/secrets/big/s-", 600, 30000)  # ~18 MiB
    outcomes = set()
    for i, delay in enumerate([0.0, 0.02, 0.05, 0.1, 0.2, 0.4]):
        out = tmp_path / f"s{i}.db"
        p = subprocess.Popen([str(KT), "etcd", "snapshot", "save", str(out), "--endpoint",
                              loaded_etcd.endpoint], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        time.sleep(delay)
        p.send_signal(signal.SIGINT if i % 2 else signal.SIGTERM)
        _, err = p.communicate(timeout=60)
        assert not (tmp_path / f"s{i}.db.part").exists()
        if p.returncode == 0:
            assert our_status(out) == etcdutl_status(out)
            outcomes.add("saved")
        elif p.returncode < 0:
            # The signal came before save set up its handler: it had not
            # created anything yet.
            assert not out.exists()
        else:
            assert p.returncode == 1 and "interrupted" in err, err
            assert not out.exists()
            outcomes.add("interrupted")
    assert "interrupted" in outcomes


def test_killed_save_does_not_block_the_name(loaded_etcd, tmp_path):
    """A save killed outright leaves FILE.part; the next save reclaims it."""
    out = tmp_path / "s.db"
    part = tmp_path / "s.db.part"
    part.write_bytes(b"left by a save that was killed -9")
    r = kt("etcd", "snapshot", "save", out, "--endpoint", loaded_etcd.endpoint)
    assert r.returncode == 0, r.stderr
    assert "left behind by an interrupted save" in r.stderr
    assert not part.exists()
    assert our_status(out) == etcdutl_status(out)


def test_verify_large_snapshot(loaded_etcd, tmp_path):
    """Above 8 MiB verify hashes the trailer on a second thread while it walks
    the pages: the verdicts must be the same as on small files."""
    put_keys(loaded_etcd, "/registry/secrets/big/s-", 600, 30000)  # ~18 MiB
    snap = tmp_path / "big.db"
    assert kt("etcd", "snapshot", "save", snap, "--endpoint", loaded_etcd.endpoint).returncode == 0
    assert snap.stat().st_size > 16 << 20
    r = kt("etcd", "snapshot", "verify", snap, "-o", "json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["trailer"] == "sha256-ok" and rep["resources"]["secrets"] == 600
    data = bytearray(snap.read_bytes())
    data[data.index(b"/registry/secrets/big/s-599") + 5] ^= 0x20  # a value byte
    bad = tmp_path / "bad.db"
    bad.write_bytes(bytes(data))
    r = kt("etcd", "snapshot", "verify", bad)
    assert r.returncode == 3 and "SHA-256" in r.stderr, r.stderr
    bad.write_bytes(boltmangle.wrong_magic(bytes(data[:-32])) + bytes(data[-32:]))
    r = kt("etcd", "snapshot", "verify", bad)
    assert r.returncode == 3 and "SHA-256" in r.stderr, r.stderr  # trailer is reported first
