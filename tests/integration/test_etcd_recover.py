"""The mission's disaster-recovery scenarios, end to end on real peers:
`kontinuity etcd recover` on a kubeadm-style node whose etcd is a static pod
run by the kubelet stand-in (controlplane.py), with a real kube-apiserver on
top and the backups taken by the real agent.

1. Quorum loss in a 3-member cluster: recover the survivor from the newest
   local backup; every object in the backup is served again, a watch opened
   before the loss never sees revisions go backwards, and the two lost members
   rejoin as voting members.
2. A single-member cluster whose database and local backups are both gone:
   recover from the export in S3 (MinIO) with the cluster down.
"""
import base64
import json
import os
import shutil
import signal
import subprocess
import time

import controlplane
import peers
from test_etcd_export import secret_body
from test_etcd_snapshot import KT
from test_s3 import make_bucket

BUMP = 1_000_000_000


need = peers.need


def wait_for(pred, timeout=60, what="condition"):
    return peers.wait_for(pred, timeout, what)


def backups(d):
    return sorted(p.name for p in d.glob("etcd_backup_*.db")) if d.exists() else []


def start_agent(endpoint, d, tmp_path, *extra):
    """The real agent, every 2 s, from the main thread (PDEATHSIG)."""
    argv = [str(KT), "etcd", "agent", "--endpoint", endpoint, "--dir", str(d),
            "--interval", "2s", "--hostname", "cp-1", "--instance-id", "i-cp1",
            "--imds-url", "", *map(str, extra)]
    return peers.start_process(argv, tmp_path / "agent.log")


def stop_agent(p, n, d, tmp_path):
    try:
        wait_for(lambda: len(backups(d)) >= n, 60, f"{n} backups by the agent:\n"
                 + peers.log_tail(tmp_path / "agent.log"))
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(30)


def recover(cp, d, tmp_path, *extra, timeout=600):
    return subprocess.run(
        [str(KT), "etcd", "recover", "--manifest", str(cp.manifest_path), "--dir", str(d),
         "--stash-dir", str(tmp_path), "--etcdutl", peers.binary("KT_ETCDUTL_BIN"),
         "--wait-timeout", "2m", *map(str, extra)],
        capture_output=True, text=True, timeout=timeout,
        env={k: v for k, v in os.environ.items() if not k.startswith("BACKUP_")})


def objects_of(kube, namespaces):
    """Every Secret, ConfigMap and Deployment (names and payload) in namespaces."""
    out = {}
    for ns in namespaces:
        for res in ("secrets", "configmaps", "deployments"):
            # 429: the API server's watch cache re-lists after etcd came back.
            deadline = time.monotonic() + 60
            while True:
                status, body = kube.list(res, ns)
                if status == 200 or (status != 429 and status < 500) or \
                        time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert status == 200, (res, ns, status, body)
            for o in body["items"]:
                payload = o.get("data") if res != "deployments" else o["spec"]["replicas"]
                out[(res, ns, o["metadata"]["name"])] = payload
    return out


def make_app(kube, ns, tag, n=3):
    assert kube.create_namespace(ns)[0] == 201
    for i in range(n):
        assert kube.create_secret(ns, f"{tag}-secret-{i}", {"password": f"pw-{tag}-{i}"})[0] == 201
        assert kube.create_configmap(ns, f"{tag}-config-{i}", {"i": str(i), "tag": tag})[0] == 201
        assert kube.create_deployment(ns, f"{tag}-deploy-{i}", replicas=i + 1)[0] == 201


def writable(kube, ns, name):
    try:
        status, _ = kube.create_configmap(ns, name, {"probe": "1"}, timeout=5)
    except OSError:
        return False
    return status == 201


def test_quorum_loss_recovered_on_the_survivor(tmp_path, capsys):
    cp = need(lambda: controlplane.EtcdCluster(tmp_path / "cp"))
    cp.start()
    api = None
    agent = None
    try:
        api = controlplane.start_apiserver(cp, tmp_path / "api")
        kube = controlplane.Kube(api)
        for ns in ("shop", "billing"):
            make_app(kube, ns, ns)
        before = objects_of(kube, ["shop", "billing"])
        assert len(before) >= 18

        d = tmp_path / "zadara"
        agent = start_agent(cp["m1"].endpoint, d, tmp_path, "--kubeconfig", "")
        stop_agent(agent, 2, d, tmp_path)
        agent = None

        # More changes after the last backup: these are lost by design.
        make_app(kube, "late", "late", n=1)
        status, cml = kube.list("configmaps")
        watch = kube.watch("configmaps", resource_version=cml["metadata"]["resourceVersion"])

        # Quorum loss.
        cp.kill("m2")
        cp.kill("m3")
        t_lost = time.monotonic()
        r = cp.etcdctl("put", "/quorum-probe", "x", "--command-timeout=3s", endpoints="m1",
                       check=False)
        # Without quorum a write never commits: the client gives up
        # ("context deadline exceeded") or etcd does ("request timed out").
        assert r.returncode != 0 and ("deadline" in r.stderr or "timed out" in r.stderr), r
        assert not writable(kube, "shop", "written-without-quorum")

        # The runbook, first as a dry run that changes nothing.
        manifest_before = cp.manifest_path.read_bytes()
        data_before = sorted(os.listdir(cp["m1"].data_dir / "member"))
        r = recover(cp, d, tmp_path, "--dry-run")
        assert r.returncode == 0, r.stderr
        assert "dry run: every check passed; nothing was changed" in r.stdout
        assert cp.manifest_path.read_bytes() == manifest_before
        assert sorted(os.listdir(cp["m1"].data_dir / "member")) == data_before

        t0 = time.monotonic()
        r = recover(cp, d, tmp_path)
        r_seconds = time.monotonic() - t0
        assert r.returncode == 0, r.stdout + r.stderr
        for step in range(1, 6):
            assert f"[{step}/5]" in r.stdout, r.stdout
        newest = backups(d)[-1]
        assert f"recovered in " in r.stdout and newest in r.stdout
        # The manifest is the original again and etcd runs from it.
        assert cp.manifest_path.read_bytes() == manifest_before
        assert any(n.startswith("data.before-restore-") for n in os.listdir(cp["m1"].dir))
        # How to bring the others back, with their real peer URLs.
        for m in ("m2", "m3"):
            assert f"member add {m} --peer-urls={cp[m].peer_url}" in r.stdout, r.stdout

        wait_for(lambda: writable(kube, "shop", "written-after-recovery"), 120, "API writable")
        t_writable = time.monotonic()
        with capsys.disabled():   # shown in every run, not only on failure
            print(f"\n[DR] quorum lost -> API writable: {t_writable - t_lost:.1f} s "
                  f"(recover itself: {r_seconds:.1f} s)")

        # Every object of the backup is served, with its content.
        after = objects_of(kube, ["shop", "billing"])
        for key, payload in before.items():
            assert after.get(key) == payload, key
        assert kube.get("namespaces", "late")[0] == 404   # created after the backup

        # Watchers never see revisions go backwards.
        wait_for(lambda: watch.ended or any((e["rv"] or 0) > BUMP for e in watch.events),
                 60, "the watch to see the recovery")
        rvs = [e["rv"] for e in watch.events if e["rv"] is not None and e["type"] != "ERROR"]
        assert rvs == sorted(rvs), watch.events
        assert all(e["rv"] > BUMP for e in watch.events
                   if e["rv"] and e["t"] > t_lost - watch._t0), watch.events
        status, cml = kube.list("configmaps")
        assert int(cml["metadata"]["resourceVersion"]) > BUMP

        # The two lost members rejoin, one at a time, as voting members.
        for m in ("m2", "m3"):
            added = cp.member_add(m, endpoints="m1")
            cp.start_joining(m, added["ETCD_INITIAL_CLUSTER"])
        cp.wait_healthy(timeout=120)
        members = cp.member_list(endpoints="m1")
        assert sorted(x["name"] for x in members) == ["m1", "m2", "m3"]
        assert not any(x["isLearner"] for x in members)
        assert writable(kube, "billing", "written-with-three-members")
    finally:
        if agent is not None:
            agent.kill()
        if api is not None:
            api.stop()
        cp.stop()


def test_lost_database_and_local_backups_restored_from_s3(tmp_path, minio):
    bucket = "dr-single"
    make_bucket(minio, bucket)
    cp = need(lambda: controlplane.EtcdCluster(tmp_path / "cp", names=("m1",)))
    cp.start()
    api = None
    try:
        api = controlplane.start_apiserver(cp, tmp_path / "api")
        kube = controlplane.Kube(api)
        make_app(kube, "shop", "shop")
        before = objects_of(kube, ["shop"])
        # The export Secret in the cluster, as the deployment does it.
        status, _ = api.request("POST", "/api/v1/namespaces/kube-system/secrets",
                                secret_body(minio, bucket))
        assert status == 201
        d = tmp_path / "zadara"
        agent = start_agent(cp["m1"].endpoint, d, tmp_path, "--kubeconfig", api.kubeconfig)
        try:
            wait_for(lambda: " export node=cp-1 " in (d / "etcd-backup.log").read_text()
                     if (d / "etcd-backup.log").exists() else False, 90, "an export")
        finally:
            agent.send_signal(signal.SIGTERM)
            agent.wait(30)

        # The disk dies: etcd's data and the local backups are gone.  The
        # kubelet starts etcd again on an empty directory (DirectoryOrCreate).
        stash = tmp_path / "etcd.yaml"
        os.replace(cp.manifest_path, stash)
        wait_for(lambda: not cp.data_dir_in_use(), 60, "etcd to stop")
        shutil.rmtree(cp["m1"].data_dir)
        shutil.rmtree(d)
        os.replace(stash, cp.manifest_path)
        cp.wait_healthy(timeout=60)
        assert kube.get("namespaces", "shop", timeout=10)[0] != 200

        conf = tmp_path / "export.yaml"      # the copy kept outside the cluster
        conf.write_text(f"backup_access_key_id: {minio.access_key}\n"
                        f"backup_secret_access_key: {minio.secret_key}\n"
                        f"backup_region: {minio.region}\nbackup_endpoint: {minio.endpoint}\n"
                        f"backup_bucket: {bucket}\n")
        conf.chmod(0o600)
        r = recover(cp, d, tmp_path, "--from", "remote:latest", "--export-config", conf,
                    "--kubeconfig", "")
        assert r.returncode == 0, r.stdout + r.stderr
        assert f"s3://{bucket}/" in r.stdout and "kubernetes/etcd_backup_cp-1_i-cp1_" in r.stdout
        assert minio.secret_key not in r.stdout + r.stderr
        assert "member add" not in r.stdout            # nobody else to rejoin
        assert backups(d), "the download stays as a local backup"

        wait_for(lambda: writable(kube, "shop", "written-after-recovery"), 120, "API writable")
        after = objects_of(kube, ["shop"])
        for key, payload in before.items():
            assert after.get(key) == payload, key
        status, secret = kube.get("secrets", "zadara-backup-export", "kube-system")
        assert status == 200
        assert base64.b64decode(secret["data"]["backup_bucket"]).decode() == bucket
    finally:
        if api is not None:
            api.stop()
        cp.stop()


def test_recover_refuses_bad_sources_and_changes_nothing(tmp_path):
    """Every refusal comes before etcd is stopped: same manifest, same etcd
    process, same data directory."""
    cp = need(lambda: controlplane.EtcdCluster(tmp_path / "cp", names=("m1",)))
    cp.start()
    try:
        cp.etcdctl("put", "/precious", "yes", endpoints="m1")
        pid = cp.pid("m1")
        manifest = cp.manifest_path.read_bytes()
        data = sorted(os.listdir(cp["m1"].data_dir / "member"))
        snap = tmp_path / "s.db"
        cp.etcdctl("snapshot", "save", snap, endpoints="m1")
        corrupt = tmp_path / "corrupt.db"
        corrupt.write_bytes(snap.read_bytes()[:-4096])
        d = tmp_path / "zadara"
        cases = [
            (["--from", corrupt], 3, "corrupt.db"),
            (["--from", "latest"], 1, "cannot find the latest backup"),
            (["--from", snap, "--etcdutl", tmp_path / "no-etcdutl"], 1, "no-etcdutl"),
            (["--from", "remote:latest", "--kubeconfig", ""], 1, "no export target"),
        ]
        for args, code, text in cases:
            r = recover(cp, d, tmp_path, *args)   # a later --etcdutl wins over recover()'s
            assert r.returncode == code, (args, r.stdout, r.stderr)
            assert text in r.stderr, (args, r.stderr)
            assert cp.manifest_path.read_bytes() == manifest
            assert cp.pid("m1") == pid
            assert sorted(os.listdir(cp["m1"].data_dir / "member")) == data
            assert not list(tmp_path.glob("etcd.yaml.before-recover-*"))
        r = subprocess.run([str(KT), "etcd", "recover", "--manifest", str(tmp_path / "none.yaml")],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 1 and "none.yaml" in r.stderr
        assert cp.etcdctl("get", "/precious", "--print-value-only", endpoints="m1").stdout.strip() \
            == "yes"
    finally:
        cp.stop()
