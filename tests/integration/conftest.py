"""pytest fixtures for the real peers (see peers.py): etcd, etcd_tls,
etcd_factory, minio, kube_apiserver, peer_bin. Each fixture stops what it
started in its finalizer. A missing peer binary FAILS the test (never a skip)
with a message to run scripts/peers.sh.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import peers  # noqa: E402


def _need(make):
    """Build a peer object; turn a missing binary into a test failure."""
    try:
        return make()
    except peers.PeerMissing as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture
def peer_bin():
    """peer_bin("KT_ETCDUTL_BIN") -> path, failing the test if it is missing."""
    return lambda var: _need(lambda: peers.binary(var))


@pytest.fixture
def etcd_factory(tmp_path):
    """etcd_factory(version="3.6", tls=False, extra_args=(), start=True) -> Etcd.
    Any number of members, each in its own dir under tmp_path; all stopped at
    the end of the test."""
    started = []

    def make(version="3.6", tls=False, extra_args=(), start=True):
        d = tmp_path / f"etcd{len(started)}-{version}{'-tls' if tls else ''}"
        e = _need(lambda: peers.Etcd(d, version=version, tls=tls, extra_args=extra_args))
        started.append(e)
        return e.start() if start else e

    yield make
    for e in started:
        e.stop()


@pytest.fixture
def etcd(etcd_factory):
    """A running etcd 3.6 member (plain HTTP), fresh for each test."""
    return etcd_factory()


@pytest.fixture
def etcd_tls(etcd_factory):
    """A running etcd 3.6 member with TLS and required client certificates."""
    return etcd_factory(tls=True)


@pytest.fixture(scope="module")
def minio(tmp_path_factory):
    """A running MinIO shared by the tests of one module (use distinct buckets)."""
    m = _need(lambda: peers.Minio(tmp_path_factory.mktemp("minio")))
    m.start()
    yield m
    m.stop()


@pytest.fixture(scope="session")
def kube_apiserver(tmp_path_factory):
    """A running kube-apiserver (and its own etcd) shared by the whole session."""
    k = _need(lambda: peers.KubeApiserver(tmp_path_factory.mktemp("kube-apiserver")))
    k.start()
    yield k
    k.stop()


# CSI volume snapshots: snapshot_crds (session), snapshot_standin (module).
from snapshots import snapshot_crds, snapshot_standin  # noqa: E402,F401
