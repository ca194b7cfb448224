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
