"""Smoke tests of the test peers themselves (peers.py, conftest.py): each
starts, answers, and is gone after stop()."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

import peers


def assert_gone(pid):
    """PID and every other live member of its process group are gone."""
    assert not peers.pid_alive(pid), f"pid {pid} still running"
    for entry in os.listdir("/proc"):
        if entry.isdigit() and peers.pid_alive(int(entry)):
            try:
                assert os.getpgid(int(entry)) != pid, f"pid {entry} of group {pid} still running"
            except ProcessLookupError:
                pass


@pytest.mark.parametrize("version", ["3.6", "3.5", "3.4"])
def test_etcd_versions(etcd_factory, version):
    e = etcd_factory(version=version)
    e.etcdctl("put", "/kt/smoke", "hello")
    r = e.etcdctl("get", "/kt/smoke", "--print-value-only")
    assert r.stdout.strip() == "hello"
    status = json.loads(e.etcdctl("endpoint", "status", "-w", "json").stdout)
    assert status[0]["Status"]["version"].startswith(version + ".")
    pid = e.pid
    e.stop()
    assert_gone(pid)


def test_etcd_put_many_and_restart(etcd):
    keys = etcd.put_many(3000, size=512)
    assert len(keys) == 3000
    assert keys[0] == "/registry/pods/default/pod-0"
    assert keys[2] == "/registry/apps.example.com/widgets/ns-2/w-2"
    assert etcd.count("/registry/") == 3000
    assert etcd.get(keys[1]) == peers.sample_value(1, 512)
    etcd.put("/single", b"\x00\xffbin")
    assert etcd.get("/single") == b"\x00\xffbin"
    # same data dir and ports after a restart
    etcd.stop()
    etcd.start()
    assert etcd.count("/registry/") == 3000


def test_etcd_snapshot_with_etcdutl(etcd, peer_bin, tmp_path):
    etcd.put_many(100)
    snap = tmp_path / "snap.db"
    etcd.etcdctl("snapshot", "save", snap)
    r = subprocess.run([peer_bin("KT_ETCDUTL_BIN"), "snapshot", "status", snap, "-w", "json"],
                       capture_output=True, text=True, check=True)
    assert json.loads(r.stdout)["totalKey"] >= 100


def test_etcd_tls(etcd_tls):
    assert etcd_tls.endpoint.startswith("https://")
    etcd_tls.etcdctl("put", "k", "v")
    assert etcd_tls.get("k") == b"v"
    # no client certificate: refused
    r = subprocess.run([peers.binary("KT_ETCDCTL_BIN"), "--endpoints", etcd_tls.endpoint,
                        "--cacert", str(etcd_tls.ca_file), "--dial-timeout", "2s",
                        "--command-timeout", "3s", "get", "k"],
                       capture_output=True, text=True)
    assert r.returncode != 0


def test_etcd_auth(etcd):
    etcd.put("before", "1")
    etcd.enable_auth("root", "pw-123")
    assert etcd.etcdctl("get", "before", "--print-value-only").stdout.strip() == "1"
    assert etcd.get("before") == b"1"
    etcd.put_many(10)
    r = subprocess.run([peers.binary("KT_ETCDCTL_BIN"), "--endpoints", etcd.endpoint,
                        "get", "before"], capture_output=True, text=True)
    assert r.returncode != 0


def test_minio(minio):
    status, _ = peers.http_request(minio.endpoint, "/minio/health/live")
    assert status == 200
    # anonymous S3 request is refused (SigV4 required)
    status, body = peers.http_request(minio.endpoint, "/")
    assert status == 403, body


def test_minio_tls_stop(tmp_path):
    m = peers.Minio(tmp_path, tls=True).start()
    status, _ = peers.http_request(m.endpoint, "/minio/health/live", ssl_context=m.ssl_context())
    assert status == 200
    pid = m.pid
    m.stop()
    assert_gone(pid)


def test_kube_apiserver(kube_apiserver):
    k = kube_apiserver
    status, ns = k.request("GET", "/api/v1/namespaces/kube-system")
    assert status == 200, ns
    assert ns["metadata"]["name"] == "kube-system" and ns["metadata"]["uid"]
    status, _ = peers.http_request(k.url, "/api/v1/namespaces", ssl_context=k.ssl_context())
    assert status in (401, 403)  # anonymous: no access
    cfg = k.kubeconfig.read_text()
    assert k.url in cfg and k.token in cfg
    # client certificate of system:masters works too
    ctx = peers.https_context(k.ca_file, k.client_cert, k.client_key)
    status, body = peers.http_request(k.url, "/version", ssl_context=ctx)
    assert status == 200 and json.loads(body)["gitVersion"].startswith("v1.")
    # the objects are in its etcd under /registry
    assert k.etcd.count("/registry/namespaces/") >= 4


def test_kube_apiserver_stop(tmp_path):
    k = peers.KubeApiserver(tmp_path).start()
    pids = (k.pid, k.etcd.pid)
    k.stop()
    for pid in pids:
        assert_gone(pid)


def test_runner_killed_takes_peers_along(tmp_path):
    """SIGTERM to a process that started a peer kills the peer too."""
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {os.path.dirname(os.path.abspath(peers.__file__))!r})
        import peers
        e = peers.Etcd({str(tmp_path / 'e')!r}).start()
        print(e.pid, flush=True)
        time.sleep(60)
    """)
    p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    pid = int(p.stdout.readline())
    assert peers.pid_alive(pid)
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=20)
    assert_gone(pid)
