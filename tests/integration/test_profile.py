"""`kontinuity profile create|list|check` on a real kube-apiserver (with the
Profile CRD of deploy/crds/kontinuity.io/) and a real MinIO: the profile is a
custom resource, its keys a Secret beside it; check proves keys, bucket,
Object Lock and a probe write, records the result in the profile's status,
and never prints the secret key."""
import json
import pathlib
import subprocess

import pytest
import yaml

import peers
import snapshot_controller_standin as sc
from test_etcd_snapshot import KT
from test_s3 import s3tool, versions

ROOT = pathlib.Path(__file__).resolve().parents[2]
CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
PROFILES = "/apis/kontinuity.io/v1alpha1/namespaces/kontinuity/profiles"


def install_kontinuity_crds(kube):
    """The CRDs of deploy/crds/kontinuity.io/ and the namespace kontinuity, on
    KUBE (a peers.KubeApiserver); returns a REST client for it."""
    a = sc.Api(kube.url, kube.token, kube.ca_file)
    for f in sorted((ROOT / "deploy" / "crds" / "kontinuity.io").glob("*.yaml")):
        crd = yaml.safe_load(f.read_text())
        status, out = a.request("POST", f"{CRD_PATH}?fieldValidation=Strict", crd)
        assert status in (201, 409), out
    peers.wait_for(lambda: a.request("GET", PROFILES)[0] in (200, 404) and
                   a.request("GET", "/apis/kontinuity.io/v1alpha1")[0] == 200, 30,
                   "the Profile CRD served")
    a.request("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                             "metadata": {"name": "kontinuity"}})
    return a


@pytest.fixture(scope="module")
def api(kube_apiserver):
    return install_kontinuity_crds(kube_apiserver)


@pytest.fixture(scope="module")
def keys(minio, tmp_path_factory):
    d = tmp_path_factory.mktemp("profile-keys")
    (d / "ak").write_text(minio.access_key + "\n")
    (d / "sk").write_text(minio.secret_key + "\n")
    (d / "bad").write_text("not-the-secret\n")
    return d


def kt(kube, *args):
    return subprocess.run([str(KT), *map(str, args), "--kubeconfig", str(kube.kubeconfig)],
                          capture_output=True, text=True, timeout=120)


def checks(r):
    return {c["check"]: c for c in json.loads(r.stdout)}


def test_profile_on_an_object_lock_bucket(kube_apiserver, api, minio, keys):
    s3tool(minio, "prof-lock", "mb", "--lock")
    r = kt(kube_apiserver, "profile", "create", "offsite", "--endpoint", minio.endpoint,
           "--bucket", "prof-lock", "--prefix", "cluster-a", "--path-style",
           "--access-key-id-file", keys / "ak", "--secret-access-key-file", keys / "sk",
           "--immutable-days", "1")
    assert r.returncode == 0, r.stderr
    assert "offsite-keys" in r.stdout and minio.secret_key not in r.stdout + r.stderr
    prof = api.get(f"{PROFILES}/offsite")
    assert prof["spec"]["location"] == {"endpoint": minio.endpoint, "bucket": "prof-lock",
                                        "region": "us-east-1", "prefix": "cluster-a",
                                        "pathStyle": True}
    assert prof["spec"]["immutability"] == {"days": 1}
    secret = api.get("/api/v1/namespaces/kontinuity/secrets/offsite-keys")
    assert set(secret["data"]) == {"access_key_id", "secret_access_key"}
    assert minio.secret_key not in json.dumps(prof)

    r = kt(kube_apiserver, "profile", "check", "offsite", "-o", "json")
    assert r.returncode == 0, r.stdout + r.stderr
    c = checks(r)
    assert [c[k]["result"] for k in ("bucket", "object-lock", "write")] == ["ok"] * 3, c
    assert "COMPLIANCE" in c["object-lock"]["detail"]
    assert minio.secret_key not in r.stdout + r.stderr
    last = api.get(f"{PROFILES}/offsite")["status"]["lastCheck"]
    assert last["result"] == "ok" and last["time"].endswith("Z")
    # The probe went where the profile points and is hidden behind a delete marker.
    probes = [v for v in versions(minio, "prof-lock", "cluster-a/kontinuity-probe/")]
    assert [v[4] for v in probes] == ["marker", "data"], probes


def test_profile_check_names_what_is_wrong(kube_apiserver, api, minio, keys):
    s3tool(minio, "prof-plain", "mb")
    assert kt(kube_apiserver, "profile", "create", "plain", "--endpoint", minio.endpoint,
              "--bucket", "prof-plain", "--path-style", "--access-key-id-file", keys / "ak",
              "--secret-access-key-file", keys / "sk",
              "--immutable-days", "30").returncode == 0
    r = kt(kube_apiserver, "profile", "check", "plain", "-o", "json")
    c = checks(r)
    assert r.returncode == 1 and c["object-lock"]["result"] == "FAIL"
    assert "has no Object Lock" in c["object-lock"]["detail"] and c["object-lock"]["fix"]
    assert api.get(f"{PROFILES}/plain")["status"]["lastCheck"]["result"] == "fail"

    assert kt(kube_apiserver, "profile", "create", "badkeys", "--endpoint", minio.endpoint,
              "--bucket", "prof-plain", "--path-style", "--access-key-id-file", keys / "ak",
              "--secret-access-key-file", keys / "bad").returncode == 0
    r = kt(kube_apiserver, "profile", "check", "badkeys", "-o", "json")
    c = checks(r)
    assert r.returncode == 1 and c["bucket"]["result"] == "FAIL"
    assert "keys" in c["bucket"]["fix"] and "not-the-secret" not in r.stdout + r.stderr

    assert kt(kube_apiserver, "profile", "create", "nobucket", "--endpoint", minio.endpoint,
              "--bucket", "no-such-bucket", "--path-style", "--secret",
              "offsite-keys").returncode == 0
    c = checks(kt(kube_apiserver, "profile", "check", "nobucket", "-o", "json"))
    assert c["bucket"]["result"] == "FAIL" and "create the bucket" in c["bucket"]["fix"]

    rows = json.loads(kt(kube_apiserver, "profile", "list", "-o", "json").stdout)
    by = {x["name"]: x for x in rows}
    assert by["plain"]["check"] == "fail" and by["plain"]["immutableDays"] == 30
    assert by["nobucket"]["bucket"] == "no-such-bucket"

    # A profile whose Secret is gone: a clear error naming it.
    assert kt(kube_apiserver, "profile", "create", "nosecret", "--endpoint", minio.endpoint,
              "--bucket", "prof-plain", "--secret", "missing-keys").returncode == 0
    r = kt(kube_apiserver, "profile", "check", "nosecret")
    assert r.returncode == 1 and "Secret 'missing-keys' not found" in r.stderr


def test_profile_create_refuses_bad_input_and_leaves_nothing(kube_apiserver, api, minio, keys):
    r = kt(kube_apiserver, "profile", "create", "x", "--endpoint", minio.endpoint, "--bucket",
           "prof-plain")
    assert r.returncode == 2 and "--secret" in r.stderr
    r = kt(kube_apiserver, "profile", "create", "x", "--endpoint", minio.endpoint, "--bucket",
           "prof-plain", "--secret", "s", "--immutable-days", "-1")
    assert r.returncode == 2 and "0..36500" in r.stderr
    # The CRD's schema refuses an endpoint that is not http(s)://host: the
    # Secret made for it is taken back.
    r = kt(kube_apiserver, "profile", "create", "badurl", "--endpoint", "ftp://x/y", "--bucket",
           "prof-plain", "--access-key-id-file", keys / "ak", "--secret-access-key-file",
           keys / "sk")
    assert r.returncode == 2 and "spec.location.endpoint" in r.stderr, r.stderr
    assert api.request("GET", "/api/v1/namespaces/kontinuity/secrets/badurl-keys")[0] == 404
    assert api.request("GET", f"{PROFILES}/badurl")[0] == 404
    r = kt(kube_apiserver, "profile", "check", "nope")
    assert r.returncode == 1 and "profile 'nope' not found in namespace 'kontinuity'" in r.stderr


def test_valgrind_profile_check(kube_apiserver, api, minio, keys):
    from test_valgrind import VALGRIND
    s3tool(minio, "prof-vg", "mb")
    assert kt(kube_apiserver, "profile", "create", "vg", "--endpoint", minio.endpoint,
              "--bucket", "prof-vg", "--path-style", "--access-key-id-file", keys / "ak",
              "--secret-access-key-file", keys / "sk").returncode == 0
    for args in (["profile", "check", "vg"], ["profile", "list", "-o", "json"],
                 ["profile", "check", "nope"]):
        r = subprocess.run([*VALGRIND, str(KT), *args, "--kubeconfig",
                            str(kube_apiserver.kubeconfig)],
                           capture_output=True, text=True, timeout=600)
        assert r.returncode != 99, f"valgrind found errors:\n{r.stderr[-6000:]}"
