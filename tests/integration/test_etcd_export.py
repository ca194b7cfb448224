"""The export stage of the etcd backup cycle against real etcd, MinIO and
kube-apiserver: the export Secret read through the node's kubeconfig, the
bucket layout <cluster-id>-<cluster-name>/<file>, the backlog, wrong keys,
S3 going away and coming back, several nodes sharing one bucket."""
import base64
import hashlib
import json
import os
import subprocess
import time

import pytest

import peers
from test_etcd_backup import NAME_RE, backups_in, wait_for
from test_etcd_snapshot import KT, load_cluster_like
from test_s3 import S3TOOL, env_for, fields, make_bucket, s3tool

SECRET_PATH = "/api/v1/namespaces/kube-system/secrets"


def secret_body(minio, bucket, secret=None):
    data = {"backup_access_key_id": minio.access_key,
            "backup_secret_access_key": secret or minio.secret_key,
            "backup_region": minio.region, "backup_endpoint": minio.endpoint,
            "backup_bucket": bucket}
    return {"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "zadara-backup-export", "namespace": "kube-system"},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


def export_env(minio, bucket, secret=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKUP_")}
    env.update(BACKUP_ACCESS_KEY_ID=minio.access_key,
               BACKUP_SECRET_ACCESS_KEY=secret or minio.secret_key,
               BACKUP_REGION=minio.region, BACKUP_ENDPOINT=minio.endpoint, BACKUP_BUCKET=bucket)
    return env


def run(etcd, d, *extra, env=None, node="cp-1"):
    return subprocess.run([str(KT), "etcd", "backup", "--endpoint", etcd.endpoint, "--dir", str(d),
                           "--hostname", node, "--instance-id", f"i-{node}", *map(str, extra)],
                          capture_output=True, text=True, timeout=300,
                          env=env or {k: v for k, v in os.environ.items()
                                      if not k.startswith("BACKUP_")})


def objects(minio, bucket, prefix=""):
    out = s3tool(minio, bucket, "ls", prefix).stdout.splitlines()
    return sorted(line.split("\t")[0] for line in out if "\t" in line)


def test_secret_created_after_the_agent_started(etcd, minio, kube_apiserver, tmp_path):
    """The agent runs with no export Secret; once the Secret exists, the next
    cycle exports, backlog included, into <kube-system UID>-<cluster-name>/."""
    import signal
    load_cluster_like(etcd)
    bucket = "export-secret-later"
    make_bucket(minio, bucket)
    d = tmp_path / "zadara"
    kube_apiserver.request("DELETE", f"{SECRET_PATH}/zadara-backup-export")
    p = subprocess.Popen([str(KT), "etcd", "agent", "--endpoint", etcd.endpoint, "--dir", str(d),
                          "--hostname", "cp-1", "--instance-id", "i-cp-1", "--interval", "2s",
                          "--kubeconfig", str(kube_apiserver.kubeconfig),
                          "--cluster-name", "prod"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={k: v for k, v in os.environ.items() if not k.startswith("BACKUP_")})
    try:
        assert wait_for(lambda: len(backups_in(d)) >= 2, timeout=30)
        assert objects(minio, bucket) == []
        status, resp = kube_apiserver.request("POST", SECRET_PATH, secret_body(minio, bucket))
        assert status == 201, resp
        _, ns = kube_apiserver.request("GET", "/api/v1/namespaces/kube-system")
        folder = f"{ns['metadata']['uid']}-prod"
        assert wait_for(lambda: len(objects(minio, bucket)) >= 3, timeout=30)
    finally:
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=60)
        kube_apiserver.request("DELETE", f"{SECRET_PATH}/zadara-backup-export")
    assert p.returncode == 0, err
    assert "no Secret kube-system/zadara-backup-export" in err
    names = backups_in(d)
    objs = objects(minio, bucket)
    assert all(o.startswith(folder + "/") for o in objs)
    assert {o.split("/")[1] for o in objs} >= set(names[:2])  # the backlog went out
    for n in names[:2]:  # byte-identical, with the metadata
        got = tmp_path / "got.db"
        s3tool(minio, bucket, "get", f"{folder}/{n}", got)
        assert got.read_bytes() == (d / n).read_bytes()
        head = fields(s3tool(minio, bucket, "head", f"{folder}/{n}").stdout)
        assert head["meta.sha256"] == hashlib.sha256(got.read_bytes()).hexdigest()
        assert head["meta.node"] == "cp-1"
    log = (d / "etcd-backup.log").read_text()
    assert " export " in log and minio.secret_key not in err + log


def test_wrong_secret_key_then_right_one(etcd, minio, tmp_path):
    bucket = "export-wrong-key"
    make_bucket(minio, bucket)
    d = tmp_path / "b"
    wrong = "WrongSecretKey-do-not-print-42"
    r = run(etcd, d, "--kubeconfig", "", "--cluster-id", "c1", env=export_env(minio, bucket, wrong))
    assert r.returncode == 1
    assert "saved locally, but the export failed" in r.stderr
    assert "auth" in r.stderr.lower() or "signature" in r.stderr.lower()
    log = (d / "etcd-backup.log").read_text()
    assert wrong not in r.stderr + r.stdout + log
    assert "outcome=failed" in log
    assert len(backups_in(d)) == 1  # the local backup is there regardless
    time.sleep(1.05)
    r = run(etcd, d, "--kubeconfig", "", "--cluster-id", "c1", env=export_env(minio, bucket))
    assert r.returncode == 0, r.stderr
    assert len(objects(minio, bucket, "c1-kubernetes/")) == 2


def test_s3_down_then_back_loses_nothing(etcd, tmp_path):
    with peers.Minio(tmp_path / "minio") as m:
        bucket = "export-outage"
        make_bucket(m, bucket)
        d = tmp_path / "b"
        env = export_env(m, bucket)
        assert run(etcd, d, "--kubeconfig", "", "--cluster-id", "c2", env=env).returncode == 0
        m.stop()
        for _ in range(2):
            time.sleep(1.05)
            r = run(etcd, d, "--kubeconfig", "", "--cluster-id", "c2", env=env)
            assert r.returncode == 1 and "export failed" in r.stderr
        assert len(backups_in(d)) == 3
        m.start()
        time.sleep(1.05)
        r = run(etcd, d, "--kubeconfig", "", "--cluster-id", "c2", env=env)
        assert r.returncode == 0, r.stderr
        assert [o.split("/")[1] for o in objects(m, bucket, "c2-kubernetes/")] == backups_in(d)


def test_three_nodes_one_bucket_and_remote_retention(minio, etcd_factory, tmp_path):
    bucket = "export-three-nodes"
    make_bucket(minio, bucket)
    env = export_env(minio, bucket)
    members = [etcd_factory() for _ in range(3)]
    for _ in range(3):
        for i, e in enumerate(members):
            r = run(e, tmp_path / f"node{i}", "--kubeconfig", "", "--cluster-id", "c3",
                    "--keep-remote", "2", env=env, node=f"cp-{i}")
            assert r.returncode == 0, r.stderr
        time.sleep(1.05)
    objs = objects(minio, bucket, "c3-kubernetes/")
    for i in range(3):
        mine = [o for o in objs if f"/etcd_backup_cp-{i}_" in o]
        assert len(mine) == 2, objs  # --keep-remote 2 per node, others untouched
        local = backups_in(tmp_path / f"node{i}")
        assert [o.split("/")[1] for o in mine] == local[-2:]


def test_export_config_file(etcd, minio, tmp_path):
    bucket = "export-file"
    make_bucket(minio, bucket)
    conf = tmp_path / "export.yaml"
    conf.write_text(f"backup_access_key_id: {minio.access_key}\n"
                    f"backup_secret_access_key: {minio.secret_key}\n"
                    f"backup_region: {minio.region}\nbackup_endpoint: {minio.endpoint}\n"
                    f"backup_bucket: {bucket}\n")
    d = tmp_path / "b"
    r = run(etcd, d, "--kubeconfig", "", "--cluster-id", "c4", "--export-config", conf)
    assert r.returncode == 0, r.stderr
    assert [o.split("/")[1] for o in objects(minio, bucket, "c4-kubernetes/")] == backups_in(d)
    r = subprocess.run([str(KT), "etcd", "backups", "list", "--remote", "--dir", str(d),
                        "--export-config", str(conf), "--cluster-id", "c4", "--kubeconfig", "",
                        "-o", "json"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [x["file"] for x in rows] == [f"s3://{bucket}/c4-kubernetes/{n}" for n in backups_in(d)]
    assert all(x["node"] == "cp-1" and x["exported"] for x in rows)
    conf.write_text("backup_bucket: x\n")
    time.sleep(1.05)
    r = run(etcd, d, "--kubeconfig", "", "--cluster-id", "c4", "--export-config", conf)
    assert r.returncode == 1 and "lacks 'backup_access_key_id'" in r.stderr


def test_export_over_tls_with_ca_bundle(etcd, tmp_path):
    with peers.Minio(tmp_path / "minio-tls", tls=True) as m:
        bucket = "export-tls"
        r = subprocess.run([str(S3TOOL), "mb"], env={**env_for(m, bucket), "S3_CACERT": str(m.ca_file)},
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        ca = m.ca_file.read_text()
        conf = tmp_path / "export.yaml"
        conf.write_text(f"backup_access_key_id: {m.access_key}\n"
                        f"backup_secret_access_key: {m.secret_key}\n"
                        f"backup_region: {m.region}\nbackup_endpoint: {m.endpoint}\n"
                        f"backup_bucket: {bucket}\nbackup_ca_bundle: |\n"
                        + "".join(f"  {line}\n" for line in ca.splitlines()))
        d = tmp_path / "b"
        r = run(etcd, d, "--kubeconfig", "", "--cluster-id", "c6", "--export-config", conf,
                "-o", "json")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["export"]["exported"] == 1
        assert not (d / ".export-ca.pem").exists()
        # Without the CA bundle, verification fails: TLS is never skipped.
        conf.write_text(conf.read_text().split("backup_ca_bundle")[0])
        time.sleep(1.05)
        r = run(etcd, d, "--kubeconfig", "", "--cluster-id", "c6", "--export-config", conf,
                env={k: v for k, v in os.environ.items()
                     if not k.startswith(("BACKUP_", "AWS_", "SSL_", "CURL_"))})
        assert r.returncode == 1 and ("TLS" in r.stderr or "certificate" in r.stderr), r.stderr


def test_cluster_id_falls_back_to_etcd(etcd, minio, tmp_path):
    """No --cluster-id, no API server: the folder is named after etcd's own
    cluster id (as etcdctl prints it), so a backup never depends on Kubernetes."""
    bucket = "export-etcd-id"
    make_bucket(minio, bucket)
    d = tmp_path / "b"
    r = run(etcd, d, "--kubeconfig", "", env=export_env(minio, bucket))
    assert r.returncode == 0, r.stderr
    st = json.loads(etcd.etcdctl("endpoint", "status", "-w", "json").stdout)
    cid = format(st[0]["Status"]["header"]["cluster_id"], "016x")
    assert [o.split("/")[0] for o in objects(minio, bucket)] == [f"{cid}-kubernetes"]
    assert json.loads((d / "etcd-backups.json").read_text())["clusterId"] == cid


def test_three_members_of_one_cluster_export_to_one_bucket(minio, tmp_path):
    """Three agents, one per member of a real 3-member etcd cluster, share one
    bucket folder without collisions; each object holds that cluster's data.
    (Members are launched from this thread, then awaited: the harness ties
    each child to the thread that forked it with PR_SET_PDEATHSIG.)"""
    members = [peers.Etcd(tmp_path / f"m{i}", member_name=f"m{i}") for i in range(3)]
    cluster = ",".join(f"{m.member_name}={m.peer_url}" for m in members)
    try:
        for m in members:
            m.extra_args = ["--initial-cluster", cluster, "--initial-cluster-token", "kt-three"]
            m.proc = peers.start_process(m._argv(), m.log_path, cwd=m.dir)
        for m in members:
            m._wait_ready(60)
        load_cluster_like(members[0])
        bucket = "export-one-cluster"
        make_bucket(minio, bucket)
        env = export_env(minio, bucket)
        for i, m in enumerate(members):
            r = run(m, tmp_path / f"node{i}", "--kubeconfig", "", env=env, node=f"cp-{i}")
            assert r.returncode == 0, r.stderr
        objs = objects(minio, bucket)
        assert len(objs) == 3, objs
        assert len({o.split("/")[0] for o in objs}) == 1  # one cluster id, one folder
        assert {o.split("/")[1].split("_")[2] for o in objs} == {"cp-0", "cp-1", "cp-2"}
        revs = {fields(s3tool(minio, bucket, "head", o).stdout)["meta.revision"] for o in objs}
        assert len(revs) == 1  # the same data, seen from each member
    finally:
        for m in members:
            m.stop()


def test_s3_lost_mid_upload_then_back(etcd, tmp_path):
    """MinIO killed while a cycle uploads a large backup: the backup is not
    marked exported unless the object is complete; when MinIO is back the
    next cycle exports the backlog, byte-identical."""
    import threading
    from test_etcd_snapshot import put_keys
    for start in range(0, 1500, 20):  # ~90 MiB of 60 kB values, 20 per txn: multipart
        put_keys(etcd, f"/registry/secrets/big/b{start}-", 20, 60000)
    with peers.Minio(tmp_path / "minio") as m:
        bucket = "export-mid-upload"
        make_bucket(m, bucket)
        env = export_env(m, bucket)
        d = tmp_path / "b"
        def kill_when_saved():  # the export starts right after the file appears
            end = time.time() + 60
            while not backups_in(d) and time.time() < end:
                time.sleep(0.005)
            m.stop()
        killer = threading.Thread(target=kill_when_saved)
        killer.start()
        r = run(etcd, d, "--kubeconfig", "", "--cluster-id", "c7", env=env)
        killer.join()
        idx = json.loads((d / "etcd-backups.json").read_text())["backups"]
        assert len(backups_in(d)) == 1
        m.start()
        if r.returncode != 0:  # the outage hit the upload (the usual case)
            assert "export failed" in r.stderr
            assert not any(v["exported"] for v in idx.values())
        time.sleep(1.05)
        r = run(etcd, d, "--kubeconfig", "", "--cluster-id", "c7", env=env)
        assert r.returncode == 0, r.stderr
        for n in backups_in(d):
            got = tmp_path / "got.db"
            s3tool(m, bucket, "get", f"c7-kubernetes/{n}", got)
            assert got.read_bytes() == (d / n).read_bytes()
        idx = json.loads((d / "etcd-backups.json").read_text())["backups"]
        assert all(v["exported"] for v in idx.values())
