"""KV.Range and Cluster.MemberList of src/etcd against a real etcd, through
the etcdtool driver (tests/unit/etcdtool.c), compared with what etcdctl
answers for the same question: single keys with their revisions and lease,
prefixes (with the keys just outside them), the count over all keys,
keys-only, limit and more, reads at an old and at a compacted revision, an
answer too big for one gRPC message, the member list of one member and of a
member plus a learner, TLS with client certificates, etcd auth, and etcd
3.5 and 3.4."""
import base64
import json
import os
import pathlib
import subprocess

import pytest

import peers

ROOT = pathlib.Path(__file__).resolve().parents[2]
ETCDTOOL = ROOT / os.environ.get("KT_BUILD", "build") / "tests" / "unit" / "etcdtool"


def etcdtool(*args):
    """Run etcdtool; returns (CompletedProcess, decoded JSON line)."""
    if not ETCDTOOL.exists():
        pytest.fail(f"{ETCDTOOL} is missing: run 'make build' first")
    r = subprocess.run([str(ETCDTOOL), *map(str, args)], capture_output=True, text=True,
                       timeout=120)
    assert r.stdout.strip(), f"etcdtool printed nothing:\n{r.stderr}"
    return r, json.loads(r.stdout)


def ok(*args):
    r, out = etcdtool(*args)
    assert r.returncode == 0 and out["ok"], f"{args}: {out}\n{r.stderr[-2000:]}"
    return out["result"]


def failed(*args):
    r, out = etcdtool(*args)
    assert r.returncode == 1 and not out["ok"], f"{args} should fail: {out}"
    return out


def conn_args(etcd):
    """etcdtool's connection flags for this member (certs, user)."""
    args = []
    if etcd.tls:
        args += ["--cacert", etcd.ca_file, "--cert", etcd.client_cert, "--key", etcd.client_key]
    if etcd.user:
        args += ["--user", f"{etcd.user}:{etcd.password}"]
    return args


def rng(etcd, key, *flags):
    return ok(*conn_args(etcd), "range", etcd.endpoint, key, *flags)


def ctl_json(etcd, *args):
    return json.loads(etcd.etcdctl(*args, "-w", "json").stdout)


def ctl_fields(etcd, *args):
    """etcdctl -w fields as a dict ({"Count": 3, "Revision": 9, ...}); the
    only format etcdctl 3.6 accepts with --count-only."""
    out = {}
    for line in etcd.etcdctl(*args, "-w", "fields").stdout.splitlines():
        name, sep, value = line.partition(" : ")
        if sep and name.startswith('"'):
            out[name.strip('"')] = json.loads(value)
    return out


def b64(data):
    return base64.b64encode(data if isinstance(data, bytes) else data.encode()).decode()


def same_kvs(ours, theirs):
    """Our kvs equal etcdctl's -w json kvs: keys, values, revisions, lease."""
    assert [kv["key_b64"] for kv in ours] == [kv["key"] for kv in theirs]
    for o, t in zip(ours, theirs):
        assert o["value_b64"] == t.get("value", ""), o["key"]
        for ours_name, their_name in (("create_revision", "create_revision"),
                                      ("mod_revision", "mod_revision"),
                                      ("version", "version"), ("lease", "lease")):
            assert o[ours_name] == t.get(their_name, 0), (o["key"], ours_name)


def put_txn(etcd, items):
    """Put (key, value) byte pairs, 100 per transaction."""
    items = list(items)
    for start in range(0, len(items), 100):
        ops = [{"request_put": {"key": b64(k), "value": b64(v)}}
               for k, v in items[start:start + 100]]
        assert etcd.api("/v3/kv/txn", {"success": ops}).get("succeeded")


# ---------------------------------------------------------------- range


def test_one_key_with_revisions_and_lease_matches_etcdctl(etcd):
    etcd.etcdctl("put", "/kt/one", "first")
    etcd.etcdctl("put", "/kt/one", "second value")
    lease = ctl_json(etcd, "lease", "grant", "600")["ID"]
    etcd.etcdctl("put", "/kt/leased", "v", f"--lease={lease:x}")

    got = rng(etcd, "/kt/one")
    want = ctl_json(etcd, "get", "/kt/one")
    assert got["count"] == 1 and not got["more"]
    assert got["kvs"][0]["key"] == "/kt/one" and got["kvs"][0]["value"] == "second value"
    assert got["kvs"][0]["version"] == 2
    assert got["kvs"][0]["create_revision"] < got["kvs"][0]["mod_revision"]
    same_kvs(got["kvs"], want["kvs"])
    assert got["header"]["revision"] == want["header"]["revision"]
    assert int(got["header"]["cluster_id"]) == want["header"]["cluster_id"]
    assert int(got["header"]["member_id"]) == want["header"]["member_id"]

    leased = rng(etcd, "/kt/leased")["kvs"]
    assert leased[0]["lease"] == lease
    same_kvs(leased, ctl_json(etcd, "get", "/kt/leased")["kvs"])

    # A key that does not exist: an empty answer, not an error.
    missing = rng(etcd, "/kt/none")
    assert missing["kvs"] == [] and missing["count"] == 0 and not missing["more"]


def test_prefix_holds_exactly_the_keys_under_it(etcd):
    inside = [b"/kt/app/", b"/kt/app/a", b"/kt/app/z/deep", b"/kt/app/\xff\xfe-binary"]
    inside += [f"/kt/app/n{i:03d}".encode() for i in range(40)]
    # Just outside: the prefix without its slash, the range end itself
    # ('/' + 1 == '0') and a neighbour.
    outside = [b"/kt/app", b"/kt/app0", b"/kt/apq/x", b"/kt/ap"]
    put_txn(etcd, [(k, b"value of " + k + b"\x00\x01") for k in inside + outside])

    got = rng(etcd, "/kt/app/", "--prefix")
    want = ctl_json(etcd, "get", "/kt/app/", "--prefix")
    assert sorted(base64.b64decode(kv["key_b64"]) for kv in got["kvs"]) == sorted(inside)
    assert got["count"] == len(inside) and not got["more"]
    same_kvs(got["kvs"], want["kvs"])
    # Keys and values that are not text travel intact.
    binary = [kv for kv in got["kvs"] if base64.b64decode(kv["key_b64"]).endswith(b"-binary")]
    assert binary[0]["key"] is None
    assert base64.b64decode(binary[0]["value_b64"]).endswith(b"\x00\x01")

    # An explicit [key, range end) gives the same keys.
    explicit = rng(etcd, "/kt/app/", "--range-end", "/kt/app0")
    assert explicit["kvs"] == got["kvs"]


def test_count_over_all_keys_equals_etcdctls(etcd):
    etcd.put_many(230, size=300)
    etcd.etcdctl("put", "/unrelated", "v")
    etcd.etcdctl("del", "/unrelated")
    etcd.etcdctl("put", "a-key-outside-registry", "v")

    ours = rng(etcd, "", "--prefix", "--count-only")
    theirs = ctl_fields(etcd, "get", "", "--prefix", "--count-only")
    assert ours["count"] == theirs["Count"] == 231
    assert ours["kvs"] == [] and not ours["more"]
    assert ours["header"]["revision"] == theirs["Revision"]
    assert int(ours["header"]["cluster_id"]) == theirs["ClusterID"]

    # All keys with their values: as many as counted, the same as etcdctl's.
    everything = rng(etcd, "", "--prefix")
    assert len(everything["kvs"]) == everything["count"] == 231
    same_kvs(everything["kvs"], ctl_json(etcd, "get", "", "--prefix")["kvs"])


def test_keys_only_limit_and_more(etcd):
    put_txn(etcd, [(f"/kt/page/{i:02d}".encode(), b"x" * 100) for i in range(25)])

    keys = rng(etcd, "/kt/page/", "--prefix", "--keys-only")
    assert len(keys["kvs"]) == 25
    assert all(kv["value_b64"] == "" and kv["mod_revision"] > 0 for kv in keys["kvs"])
    same_kvs(keys["kvs"], ctl_json(etcd, "get", "/kt/page/", "--prefix", "--keys-only")["kvs"])

    page = rng(etcd, "/kt/page/", "--prefix", "--limit", 5)
    assert [kv["key"] for kv in page["kvs"]] == [f"/kt/page/{i:02d}" for i in range(5)]
    assert page["more"] and page["count"] == 25
    # The next page starts after the last key ("/kt/page/04" + 1 byte is
    # inside [/kt/page/05, ...)): the pages together are the whole prefix.
    rest = rng(etcd, "/kt/page/05", "--range-end", "/kt/page0", "--limit", 100)
    assert not rest["more"] and len(rest["kvs"]) == 20
    assert page["kvs"] + rest["kvs"] == rng(etcd, "/kt/page/", "--prefix")["kvs"]

    serializable = rng(etcd, "/kt/page/", "--prefix", "--serializable", "--count-only")
    assert serializable["count"] == 25


def test_old_revision_and_compacted_revision(etcd):
    first = etcd.put("/kt/hist", "v1")
    etcd.put("/kt/hist", "v2")
    now = etcd.put("/kt/other", "x")

    old = rng(etcd, "/kt/hist", "--revision", first)
    assert old["kvs"][0]["value"] == "v1" and old["kvs"][0]["mod_revision"] == first
    assert rng(etcd, "/kt/hist")["kvs"][0]["value"] == "v2"

    etcd.etcdctl("compaction", now)
    out = failed(*conn_args(etcd), "range", etcd.endpoint, "/kt/hist", "--revision", first)
    assert out["code"] == "remote" and out["status"] == 11  # OUT_OF_RANGE
    assert "compacted" in out["message"] and etcd.endpoint in out["message"]

    # Usage errors are caught before anything is sent.
    out = failed("range", etcd.endpoint, "/kt/hist", "--limit", -3)
    assert out["code"] == "usage" and "got -3" in out["message"]
    out = failed("range", etcd.endpoint, "")
    assert out["code"] == "usage" and "needs a key" in out["message"]


def test_answer_over_the_message_limit_is_a_limit_error(etcd):
    # Five values of 1 MiB: one answer of 5 MiB, over KT_GRPC_MAX_MESSAGE.
    for i in range(5):
        etcd.put(f"/kt/big/{i}", peers.sample_value(i, 1 << 20))
    out = failed("range", etcd.endpoint, "/kt/big/", "--prefix")
    assert out["code"] == "limit"
    assert "over the limit of 4194304" in out["message"]
    assert "limit, keys only or count only" in out["message"]
    # What the message advises works.
    assert len(rng(etcd, "/kt/big/", "--prefix", "--keys-only")["kvs"]) == 5
    assert rng(etcd, "/kt/big/", "--prefix", "--count-only")["count"] == 5
    two = rng(etcd, "/kt/big/", "--prefix", "--limit", 2)
    assert len(two["kvs"]) == 2 and two["more"]
    assert base64.b64decode(two["kvs"][1]["value_b64"]) == peers.sample_value(1, 1 << 20)


# ---------------------------------------------------------------- members


def test_member_list_of_one_member(etcd):
    want = ctl_json(etcd, "member", "list")
    for flags in ([], ["--linearizable"]):
        got = ok("members", etcd.endpoint, *flags)
        assert got["members"] == [{
            "id": str(want["members"][0]["ID"]),
            "name": etcd.member_name,
            "peer_urls": [etcd.peer_url],
            "client_urls": [etcd.endpoint],
            "is_learner": False,
        }]
        assert int(got["header"]["cluster_id"]) == want["header"]["cluster_id"]
        assert got["header"]["member_id"] == got["members"][0]["id"]


def test_member_list_with_an_unstarted_learner(etcd):
    learner_url = f"http://127.0.0.1:{peers.free_port()}"
    etcd.etcdctl("member", "add", "kt-learner", "--learner", "--peer-urls", learner_url)
    want = {m["ID"]: m for m in ctl_json(etcd, "member", "list")["members"]}
    got = ok("members", etcd.endpoint)["members"]
    assert sorted(int(m["id"]) for m in got) == sorted(want)
    learner = [m for m in got if m["is_learner"]]
    assert len(learner) == 1
    # Added but never started: no name and no client URLs yet.
    assert learner[0]["name"] == "" and learner[0]["client_urls"] == []
    assert learner[0]["peer_urls"] == [learner_url]
    assert want[int(learner[0]["id"])]["isLearner"]


# ---------------------------------------------------------------- transport


def test_tls_with_client_certificates(etcd_tls):
    etcd_tls.etcdctl("put", "/kt/tls", "secure")
    got = rng(etcd_tls, "/kt/tls")
    assert got["kvs"][0]["value"] == "secure"
    members = ok(*conn_args(etcd_tls), "members", etcd_tls.endpoint)["members"]
    assert members[0]["client_urls"] == [etcd_tls.endpoint]
    assert members[0]["name"] == etcd_tls.member_name

    # etcd requires a client certificate: without one the call fails, says
    # where and what to pass.
    out = failed("--cacert", etcd_tls.ca_file, "members", etcd_tls.endpoint)
    assert out["code"] == "tls", out
    assert etcd_tls.endpoint in out["message"] and "--cert" in out["message"]
    # The wrong CA: verification fails, never skipped.
    other = peers.CA(pathlib.Path(etcd_tls.dir) / "other-ca")
    out = failed("--cacert", other.cert, "--cert", etcd_tls.client_cert, "--key",
                 etcd_tls.client_key, "range", etcd_tls.endpoint, "/kt/tls")
    assert out["code"] == "tls", out


def test_auth_needs_a_user(etcd):
    etcd.etcdctl("put", "/kt/auth", "v")
    etcd.enable_auth("root", "kt-pw-123")
    out = failed("range", etcd.endpoint, "/kt/auth")
    assert out["code"] == "auth" and "--user" in out["message"]
    out = failed("members", etcd.endpoint)
    assert out["code"] == "auth"
    out = failed("--user", "root:wrong", "range", etcd.endpoint, "/kt/auth")
    assert out["code"] == "auth" and "wrong" not in out["message"]
    assert rng(etcd, "/kt/auth")["kvs"][0]["value"] == "v"
    assert len(ok(*conn_args(etcd), "members", etcd.endpoint)["members"]) == 1


def test_nothing_listening_is_transient():
    port = peers.free_port()
    out = failed("--timeout-ms", 5000, "members", f"http://127.0.0.1:{port}")
    assert out["code"] == "transient" and f"127.0.0.1:{port}" in out["message"]


@pytest.mark.parametrize("version", ["3.5", "3.4"])
def test_older_etcd(etcd_factory, version):
    etcd = etcd_factory(version=version)
    put_txn(etcd, [(f"/kt/v/{i}".encode(), f"value-{i}".encode()) for i in range(12)])
    got = rng(etcd, "/kt/v/", "--prefix")
    assert sorted(kv["value"] for kv in got["kvs"]) == sorted(f"value-{i}" for i in range(12))
    assert rng(etcd, "", "--prefix", "--count-only")["count"] == 12
    # 3.4 does not know MemberListRequest.linearizable and ignores it.
    for flags in ([], ["--linearizable"]):
        members = ok("members", etcd.endpoint, *flags)["members"]
        assert [(m["name"], m["peer_urls"], m["client_urls"]) for m in members] == \
            [(etcd.member_name, [etcd.peer_url], [etcd.endpoint])]
