"""The integration paths under valgrind: no invalid access, no definite or
indirect leak, in save (h2c and TLS), status and verify on good and bad
files."""
import subprocess

import pytest

from test_etcd_snapshot import KT, load_cluster_like

VALGRIND = ["valgrind", "--quiet", "--error-exitcode=99", "--leak-check=full",
            "--errors-for-leak-kinds=definite,indirect", "--show-leak-kinds=definite,indirect"]


def vg(*args):
    r = subprocess.run([*VALGRIND, str(KT), *map(str, args)], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode != 99, f"valgrind found errors:\n{r.stderr[-6000:]}"
    return r


def test_valgrind_save_status_verify(etcd, tmp_path):
    load_cluster_like(etcd)
    snap = tmp_path / "s.db"
    assert vg("etcd", "snapshot", "save", snap, "--endpoint", etcd.endpoint).returncode == 0
    assert vg("etcd", "snapshot", "status", snap, "-o", "yaml").returncode == 0
    assert vg("etcd", "snapshot", "verify", snap, "-o", "json").returncode == 0
    bad = tmp_path / "bad.db"
    bad.write_bytes(snap.read_bytes()[:5000])
    assert vg("etcd", "snapshot", "verify", bad).returncode == 3
    assert vg("etcd", "snapshot", "save", snap, "--endpoint", etcd.endpoint).returncode == 1


def test_valgrind_save_tls_and_refusals(etcd_tls, tmp_path):
    snap = tmp_path / "s.db"
    r = vg("etcd", "snapshot", "save", snap, "--endpoint", etcd_tls.endpoint,
           "--cacert", etcd_tls.ca_file, "--cert", etcd_tls.client_cert,
           "--key", etcd_tls.client_key)
    assert r.returncode == 0, r.stderr
    r = vg("etcd", "snapshot", "save", tmp_path / "no.db", "--endpoint", etcd_tls.endpoint)
    assert r.returncode == 1


def test_valgrind_restore_drill_and_remote(etcd, etcd_factory, minio, tmp_path):
    """restore (file, remote:latest, a refusal) and a drill: the paths that
    run etcdutl and etcd as children (not traced) and fetch from S3."""
    import peers
    from test_etcd_export import export_env, run as backup_run
    from test_s3 import make_bucket
    load_cluster_like(etcd)
    snap = tmp_path / "s.db"
    assert vg("etcd", "snapshot", "save", snap, "--endpoint", etcd.endpoint).returncode == 0
    etcdutl = peers.binary("KT_ETCDUTL_BIN")
    target = etcd_factory(start=False)
    member = ["--name", "kt", "--initial-cluster", f"kt={target.peer_url}",
              "--initial-advertise-peer-urls", target.peer_url, "--manifest", ""]
    r = vg("etcd", "restore", "--from", snap, "--data-dir", target.data_dir, "--etcdutl",
           etcdutl, *member)
    assert r.returncode == 0, r.stderr
    r = vg("etcd", "restore", "--from", tmp_path / "missing.db", "--data-dir", target.data_dir,
           "--etcdutl", etcdutl, *member)
    assert r.returncode == 1
    r = vg("etcd", "drill", snap, "--etcd", peers.etcd_binary("3.6"), "--etcdutl", etcdutl)
    assert r.returncode == 0, r.stderr
    make_bucket(minio, "vg-restore")
    d = tmp_path / "zadara"
    env = export_env(minio, "vg-restore")
    assert backup_run(etcd, d, "--kubeconfig", "", "--cluster-id", "vg", env=env).returncode == 0
    r = subprocess.run([*VALGRIND, str(KT), "etcd", "restore", "--from", "remote:latest",
                        "--dir", str(tmp_path / "dl"), "--kubeconfig", "", "--etcdutl", etcdutl,
                        "--data-dir", str(tmp_path / "remote-data"), "--manifest", ""],
                       capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode != 99, f"valgrind found errors:\n{r.stderr[-6000:]}"
    assert r.returncode == 0, r.stderr
