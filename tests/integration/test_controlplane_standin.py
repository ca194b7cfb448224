"""The control-plane test bed for `kontinuity etcd recover`, and the manual
runbook it automates, on the real peers: the kubelet stand-in
(kubelet_standin.py) and controlplane.py (3-member etcd with m1 as a
kubeadm-style static pod, kube-apiserver on the three members, REST client
with a recording watch).

The runbook (what these tests pin down):
  1. quorum lost (m2, m3 gone);
  2. move etcd.yaml out of the manifests dir; wait until etcd let go of its
     data dir (bbolt flock free; ~7 s with a kube-apiserver attached);
  3. etcdutl snapshot restore SNAP --data-dir NEW --name m1
       --initial-cluster <all members, as the manifest says>
       --initial-advertise-peer-urls <m1 peer URL> --initial-cluster-token <token>
       --bump-revision 1000000000 --mark-compacted
     and swap NEW in as the manifest's --data-dir;
  4. write the manifest back with --force-new-cluster; wait for /health;
  5. write the original manifest back; wait for /health;
  6. per lost member: etcdctl member add NAME --peer-urls=URL (retry on
     "unhealthy cluster"), start it with an empty data dir,
     --initial-cluster-state=existing and the ETCD_INITIAL_CLUSTER printed.
"""
import http.client
import os
import signal
import time

import pytest

import controlplane
import peers

BUMP = 1_000_000_000


need = peers.need


def wait_for(pred, timeout=30, what="condition"):
    return peers.wait_for(pred, timeout, what)


# ---------------------------------------------------------------------------
# the stand-in alone (a sleep process instead of etcd: fast)


def pod_yaml(name, command, grace=None):
    lines = ["apiVersion: v1", "kind: Pod", "metadata:", f"  name: {name}", "  namespace: t",
             "spec:"]
    if grace is not None:
        lines.append(f"  terminationGracePeriodSeconds: {grace}")
    lines += ["  containers:", "  - name: main", "    image: example/none", "    command:"]
    lines += [f"    - {c!r}" for c in command]
    return "\n".join(lines) + "\n"


def write(path, text):
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def test_standin_follows_the_manifests_dir_like_a_kubelet(tmp_path):
    man = tmp_path / "manifests"
    k = controlplane.KubeletStandin(tmp_path / "kubelet", man, bins={"sleeper": "/bin/sleep"},
                                    grace=10, backoff=0.2)
    k.start()
    try:
        n = lambda ev, pod="t/a": len(k.events(ev, pod=pod))  # noqa: E731
        write(man / "a.yaml", pod_yaml("a", ["sleeper", "1000"]))
        p1 = int(k.wait_event("start", pod="t/a")["pid"])
        assert peers.pid_alive(p1)
        assert open(f"/proc/{p1}/cmdline").read().split("\0")[:2] == ["/bin/sleep", "1000"]

        # a dot-file is ignored (that is where manifests are written first)
        write(man / ".hidden.yaml", pod_yaml("hidden", ["sleeper", "1000"]))
        # the process dies by itself: restarted after the back-off
        starts = n("start")
        os.kill(p1, signal.SIGKILL)
        assert k.wait_event("exit", pod="t/a", pid=p1)["status"] == "-9"
        p2 = int(k.wait_event("start", pod="t/a", after=starts)["pid"])
        assert p2 != p1 and peers.pid_alive(p2)

        # content changed: stopped (TERM), started with the new command
        starts = n("start")
        write(man / "a.yaml", pod_yaml("a", ["sleeper", "2000"]))
        stop = k.wait_event("stop", pod="t/a", pid=p2)
        assert (stop["reason"], stop["how"]) == ("changed", "TERM")
        p3 = int(k.wait_event("start", pod="t/a", after=starts)["pid"])
        assert open(f"/proc/{p3}/cmdline").read().split("\0")[1] == "2000"

        # a non-dot copy with the same pod name is a duplicate, as with a
        # kubelet (it is read, not ignored): first file in name order wins
        write(man / "a.yaml.bak", pod_yaml("a", ["sleeper", "3000"]))
        dup = k.wait_event("duplicate", pod="t/a")
        assert dup["file"].endswith("a.yaml.bak") and dup["kept"].endswith("/a.yaml")
        assert k.pid("t/a") == p3
        (man / "a.yaml.bak").unlink()

        # SIGTERM ignored: SIGKILL after the pod's terminationGracePeriodSeconds
        write(man / "stubborn.yaml", pod_yaml("stubborn", ["sh", "-c", "trap '' TERM; sleep 1000"],
                                              grace=1))
        ps = int(k.wait_event("start", pod="t/stubborn")["pid"])
        time.sleep(0.3)                       # let sh set its trap
        t = time.monotonic()
        (man / "stubborn.yaml").unlink()
        stop = k.wait_event("stop", pod="t/stubborn", pid=ps)
        assert (stop["reason"], stop["how"]) == ("removed", "KILL")
        assert 0.9 < time.monotonic() - t < 5
        assert not peers.pid_alive(ps)

        # a manifest that no longer parses takes the pod away, as with a kubelet
        (man / "a.yaml").write_text("apiVersion: v1\nkind: Pod\nmetadata: [\n")
        assert k.wait_event("invalid", pod=None, file=man / "a.yaml")["error"].startswith("YAML")
        assert k.wait_event("stop", pod="t/a", pid=p3)["reason"] == "removed"

        # moved out of the dir: stopped; the hidden pod never ran
        starts = n("start")
        write(man / "a.yaml", pod_yaml("a", ["sleeper", "1000"]))
        p4 = int(k.wait_event("start", pod="t/a", after=starts)["pid"])
        os.rename(man / "a.yaml", tmp_path / "a.yaml")
        assert k.wait_event("stop", pod="t/a", pid=p4)["reason"] == "removed"
        assert not k.events(pod="t/hidden")

        # the stand-in stopped with SIGTERM stops its pods
        os.rename(tmp_path / "a.yaml", man / "a.yaml")
        p5 = wait_for(lambda: k.pid("t/a"), what="a started again")
        k.stop()
        assert k.events("stop", pod="t/a")[-1]["reason"] == "shutdown"
        assert k.events("standin-stop")
        assert not peers.pid_alive(p5)

        # the stand-in killed outright: PR_SET_PDEATHSIG takes its pods along
        k.start()
        p6 = wait_for(lambda: k.pid("t/a"), what="a started by the new stand-in")
        k.proc.kill()
        wait_for(lambda: not peers.pid_alive(p6), timeout=5, what="pod killed with the stand-in")
    finally:
        k.stop()


# ---------------------------------------------------------------------------
# the runbook end to end


def create_ok(kube, name, timeout=60):
    """Create ConfigMap demo/NAME, retrying while the apiserver recovers;
    returns (its resourceVersion, seconds it took)."""
    t = time.monotonic()
    last = None
    while time.monotonic() - t < timeout:
        try:
            status, body = kube.create_configmap("demo", name, {"n": name}, timeout=20)
        except (OSError, http.client.HTTPException) as e:
            status, body = type(e).__name__, str(e)
        if status == 201:
            return int(body["metadata"]["resourceVersion"]), time.monotonic() - t
        last = (status, body)
        time.sleep(0.2)
    raise AssertionError(f"create {name} never succeeded: {last}")


def test_restore_runbook_on_static_pod_etcd_under_kube_apiserver(tmp_path):
    cp = need(lambda: controlplane.EtcdCluster(tmp_path / "cp"))
    api = None
    try:
        cp.start()
        api = controlplane.start_apiserver(cp, tmp_path / "api")
        kube = controlplane.Kube(api)
        m1 = cp["m1"]
        ids = {m["name"]: m["id"] for m in cp.member_list()}
        cluster_id = cp.endpoint_status(endpoints="m1")[0]["Status"]["header"]["cluster_id"]

        assert kube.create_namespace("demo")[0] == 201
        assert kube.create_secret("demo", "s-before", {"password": "x"})[0] == 201
        assert kube.create_deployment("demo", "d-before")[0] == 201
        for i in range(3):
            create_ok(kube, f"before-{i}")
        snap = tmp_path / "snap.db"
        cp.etcdctl("snapshot", "save", snap, endpoints="m1")
        for i in range(3):
            create_ok(kube, f"after-{i}")
        rv_before = int(kube.list_ok("configmaps", "demo")["metadata"]["resourceVersion"])
        watch = kube.watch("configmaps", "demo", resource_version=rv_before)
        last_rv, _ = create_ok(kube, "after-watch")
        watch.wait(lambda evs: any(e["name"] == "after-watch" for e in evs), timeout=10)

        # a) quorum lost: a create through the apiserver fails after etcd's
        # request timeout (7 s: "etcdserver: request timed out", HTTP 500),
        # a plain etcdctl put after its 5 s --command-timeout
        cp.kill("m2")
        cp.kill("m3")
        t = time.monotonic()
        status, body = kube.create_configmap("demo", "during-outage", {"n": "x"}, timeout=60)
        took = time.monotonic() - t
        assert status >= 500, (status, body)
        assert 3 < took < 40, took
        r = cp.etcdctl("put", "/kt/outage", "x", endpoints="m1", check=False)
        assert r.returncode != 0 and "deadline exceeded" in r.stderr
        assert not cp.health("m1")[0]

        # b) manifest out: the stand-in stops etcd; its data dir is free
        stops = len(cp.standin.events("stop"))
        original = cp.manifest_path.read_text()
        parked = tmp_path / "etcd.yaml.parked"
        os.rename(cp.manifest_path, parked)
        assert cp.standin.wait_event("stop", after=stops, timeout=45)["reason"] == "removed"
        assert not cp.data_dir_in_use("m1")
        restored = m1.dir / "data.restored"
        cp.restore(snap, restored)                  # all 3 members, as in the manifest
        os.rename(m1.data_dir, m1.dir / "data.old")
        os.rename(restored, m1.data_dir)
        starts = len(cp.standin.events("start"))
        cp.write_manifest(extra_flags=["--force-new-cluster"])
        cp.standin.wait_event("start", after=starts)
        cp.wait_healthy(["m1"], timeout=60)
        t_healthy = time.monotonic()
        members = cp.member_list(endpoints="m1")
        assert [(m["name"], m["id"], m["isLearner"]) for m in members] == \
            [("m1", ids["m1"], False)]              # same member id ...
        header = cp.endpoint_status(endpoints="m1")[0]["Status"]["header"]
        assert header["cluster_id"] == cluster_id   # ... and cluster id as before
        assert header["revision"] > BUMP

        # c) the apiserver, never restarted, serves the snapshot's objects
        rv, _ = create_ok(kube, "after-restore")
        writable_after = time.monotonic() - t_healthy
        assert rv > BUMP > last_rv
        assert writable_after < 30
        assert kube.names("configmaps", "demo") == \
            ["after-restore", "before-0", "before-1", "before-2"]
        assert kube.names("secrets", "demo") == ["s-before"]
        assert kube.names("deployments", "demo") == ["d-before"]
        # the watch opened before the outage was closed by the apiserver, not
        # fed revisions from the restored past
        wait_for(lambda: watch.ended, timeout=60, what="old watch closed")
        rvs = [e["rv"] for e in watch.snapshot() if e["rv"] is not None]
        assert rvs == sorted(rvs) and all(r >= rv_before for r in rvs)
        # a client resuming from its last resourceVersion is told to relist
        again = kube.watch("configmaps", "demo", resource_version=last_rv)
        evs = again.wait(lambda evs: evs, timeout=10)
        again.close()
        assert evs and evs[0]["type"] == "ERROR" and evs[0]["code"] == 410, evs
        fresh_rv = kube.list_ok("configmaps", "demo")["metadata"]["resourceVersion"]
        fresh = kube.watch("configmaps", "demo", resource_version=fresh_rv)

        # b, second half) the original manifest (3-member --initial-cluster,
        # state new) back: ignored by an initialized data dir, still healthy
        starts = len(cp.standin.events("start"))
        cp.write_manifest(text=original)
        cp.standin.wait_event("start", after=starts, timeout=45)
        cp.wait_healthy(["m1"], timeout=60)
        assert [m["name"] for m in cp.member_list(endpoints="m1")] == ["m1"]
        create_ok(kube, "after-plain")

        # a stale member coming back with its old data dir fences itself:
        # m1 rejects it as removed and it exits
        old_m2 = cp.start_member("m2")
        wait_for(lambda: old_m2.proc.poll() is not None, timeout=30, what="stale m2 exit")
        assert "data-dir used by this member must be removed" in old_m2.log_path.read_text()

        # d) m2 as a voting member at once; m3 as a learner, then promoted
        add = cp.member_add("m2", endpoints="m1")
        assert add["ETCD_INITIAL_CLUSTER_STATE"] == "existing"
        cp.start_joining("m2", add["ETCD_INITIAL_CLUSTER"])
        add = cp.member_add("m3", learner=True, endpoints="m1")
        cp.start_joining("m3", add["ETCD_INITIAL_CLUSTER"], wait=False)

        def promoted():
            r = cp.etcdctl("member", "promote", add["id"], endpoints="m1", check=False)
            return r.returncode == 0 or "not a learner" in r.stderr
        wait_for(promoted, timeout=60, what="m3 promoted")
        cp.wait_healthy(timeout=60)
        members = cp.member_list()
        assert sorted((m["name"], m["isLearner"]) for m in members) == \
            [("m1", False), ("m2", False), ("m3", False)]
        statuses = cp.endpoint_status()
        assert len({s["Status"]["leader"] for s in statuses}) == 1
        rv, _ = create_ok(kube, "after-readd")
        assert kube.names("configmaps", "demo") == \
            ["after-plain", "after-readd", "after-restore", "before-0", "before-1", "before-2"]
        evs = fresh.wait(lambda evs: any(e["name"] == "after-readd" for e in evs), timeout=20)
        assert [e["name"] for e in evs if e["type"] == "ADDED"] == ["after-plain", "after-readd"]
        assert all(e["rv"] > BUMP for e in evs)
        fresh.close()
        watch.close()
    finally:
        if api is not None:
            api.stop()          # first: etcd then stops at once, not after 7 s
        cp.stop()


@pytest.mark.parametrize("initial_cluster", ["all", "m1-only"])
def test_restore_initial_cluster_variants(tmp_path, initial_cluster):
    """Why step 3 passes every member, as the manifest does: the member and
    cluster ids stay, --force-new-cluster is then required (without it the
    restored 3-member cluster has no quorum), and stale members that come
    back find themselves removed and exit. Restoring with m1 alone starts
    without --force-new-cluster, but under a new cluster id, and two stale
    members that come back form the old cluster again beside it."""
    cp = need(lambda: controlplane.EtcdCluster(tmp_path / "cp"))
    try:
        cp.start()
        m1 = cp["m1"]
        cluster_id = cp.endpoint_status(endpoints="m1")[0]["Status"]["header"]["cluster_id"]
        cp.etcdctl("put", "/kt/k", "v1", endpoints="m1")
        snap = tmp_path / "snap.db"
        cp.etcdctl("snapshot", "save", snap, endpoints="m1")
        cp.etcdctl("put", "/kt/k", "v2", endpoints="m1")
        cp.kill("m2")
        cp.kill("m3")
        original = cp.manifest_path.read_text()
        stops = len(cp.standin.events("stop"))
        os.rename(cp.manifest_path, tmp_path / "etcd.yaml.parked")
        cp.standin.wait_event("stop", after=stops, timeout=45)
        ic = cp.initial_cluster if initial_cluster == "all" else f"m1={m1.peer_url}"
        cp.restore(snap, m1.dir / "restored", initial_cluster=ic)
        os.rename(m1.data_dir, m1.dir / "data.old")
        os.rename(m1.dir / "restored", m1.data_dir)
        cp.write_manifest(text=original)            # no --force-new-cluster yet
        if initial_cluster == "all":
            with pytest.raises(TimeoutError):
                cp.wait_healthy(["m1"], timeout=8)
            starts = len(cp.standin.events("start"))
            cp.write_manifest(extra_flags=["--force-new-cluster"])
            cp.standin.wait_event("start", after=starts, timeout=45)
        cp.wait_healthy(["m1"], timeout=60)
        assert [m["name"] for m in cp.member_list(endpoints="m1")] == ["m1"]
        assert cp.etcdctl("get", "/kt/k", "--print-value-only",
                          endpoints="m1").stdout.strip() == "v1"
        new_id = cp.endpoint_status(endpoints="m1")[0]["Status"]["header"]["cluster_id"]
        # the stale members come back with their old data dirs
        cp.start_member("m2")
        cp.start_member("m3")
        if initial_cluster == "all":
            assert new_id == cluster_id
            for n in ("m2", "m3"):
                wait_for(lambda n=n: cp[n].proc.poll() is not None, timeout=30,
                         what=f"stale {n} exit")
        else:
            assert new_id != cluster_id
            cp.wait_healthy(["m2", "m3"], timeout=30)   # split brain: the old cluster lives
            assert cp.etcdctl("get", "/kt/k", "--print-value-only",
                              endpoints="m2").stdout.strip() == "v2"
        assert cp.health("m1")[0]
    finally:
        cp.stop()
