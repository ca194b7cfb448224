"""src/kube against a real kube-apiserver, through the kubetool driver
(tests/unit/kubetool.c): kubeconfigs with a token and with a client
certificate (inline and as files), the in-cluster config, GET of a namespace
and of a Secret, and the errors a user meets (not found, wrong token,
no RBAC permission, wrong CA)."""
import base64
import json
import os
import pathlib
import secrets
import shutil
import subprocess

import pytest

import peers

ROOT = pathlib.Path(__file__).resolve().parents[2]
KUBETOOL = ROOT / os.environ.get("KT_BUILD", "build") / "tests" / "unit" / "kubetool"
SECRET_NS, SECRET_NAME = "kube-system", "zadara-backup-export"


def kubetool(*args, env=None):
    """Run kubetool; returns (CompletedProcess, decoded JSON line)."""
    if not KUBETOOL.exists():
        pytest.fail(f"{KUBETOOL} is missing: run 'make build' first")
    r = subprocess.run([str(KUBETOOL), *map(str, args)], capture_output=True, text=True,
                       timeout=60, env=env)
    assert r.stdout.strip(), f"kubetool printed nothing:\n{r.stderr}"
    return r, json.loads(r.stdout)


def ok(*args, **kw):
    r, out = kubetool(*args, **kw)
    assert r.returncode == 0 and out["ok"], f"{args}: {out}\n{r.stderr}"
    return out["result"]


def failed(*args, **kw):
    r, out = kubetool(*args, **kw)
    assert r.returncode == 1 and not out["ok"], f"{args} should fail: {out}"
    return r, out


def b64(data):
    return base64.b64encode(data if isinstance(data, bytes) else data.encode()).decode()


def write_kubeconfig(path, server, cluster_lines, user_lines):
    path.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters:\n- name: c\n  cluster:\n    server: {server}\n{cluster_lines}"
        f"users:\n- name: u\n  user:\n{user_lines}"
        "contexts:\n- name: x\n  context:\n    cluster: c\n    user: u\n"
        "current-context: x\n")
    path.chmod(0o600)
    return path


def kube_system_uid(k):
    status, ns = k.request("GET", "/api/v1/namespaces/kube-system")
    assert status == 200, ns
    return ns["metadata"]["uid"]


def test_namespace_uid_with_token_kubeconfig(kube_apiserver):
    k = kube_apiserver
    assert ok("--kubeconfig", k.kubeconfig, "nsuid", "kube-system")["uid"] == kube_system_uid(k)


def test_namespace_uid_with_client_cert_kubeconfig(kube_apiserver):
    k = kube_apiserver
    uid = ok("--kubeconfig", k.kubeconfig_cert, "nsuid", "kube-system")["uid"]
    assert uid == kube_system_uid(k)


def test_get_returns_the_object(kube_apiserver):
    k = kube_apiserver
    obj = ok("--kubeconfig", k.kubeconfig, "get", "/api/v1/namespaces/kube-system")
    assert obj["kind"] == "Namespace"
    assert obj["metadata"]["name"] == "kube-system"
    assert obj["metadata"]["uid"] == kube_system_uid(k)


def test_config_reports_what_was_parsed(kube_apiserver):
    k = kube_apiserver
    cfg = ok("--kubeconfig", k.kubeconfig, "config")
    assert cfg["server"] == k.url and cfg["context"] == "kt" and cfg["namespace"] == "default"
    assert cfg["token"] and cfg["ca_data"] and not cfg["cert_data"]
    assert k.token not in json.dumps(cfg)


def test_file_forms_relative_to_the_kubeconfig(kube_apiserver, tmp_path):
    """certificate-authority, client-certificate/key and tokenFile as files,
    named relative to the kubeconfig's directory."""
    k = kube_apiserver
    (tmp_path / "pki").mkdir()
    shutil.copy(k.ca_file, tmp_path / "pki" / "ca.crt")
    shutil.copy(k.client_cert, tmp_path / "pki" / "admin.crt")
    shutil.copy(k.client_key, tmp_path / "pki" / "admin.key")
    cert_cfg = write_kubeconfig(tmp_path / "cert.conf", k.url,
                                "    certificate-authority: pki/ca.crt\n",
                                "    client-certificate: pki/admin.crt\n"
                                "    client-key: pki/admin.key\n")
    (tmp_path / "token").write_text(k.token + "\n")
    token_cfg = write_kubeconfig(tmp_path / "token.conf", k.url,
                                 "    certificate-authority: pki/ca.crt\n",
                                 "    tokenFile: token\n")
    uid = kube_system_uid(k)
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    for cfg in (cert_cfg, token_cfg):
        r = subprocess.run([str(KUBETOOL), "--kubeconfig", str(cfg), "nsuid", "kube-system"],
                           capture_output=True, text=True, timeout=60, cwd=elsewhere)
        assert r.returncode == 0, r.stdout + r.stderr
        assert json.loads(r.stdout)["result"]["uid"] == uid


def test_context_selection(kube_apiserver, tmp_path):
    """--context picks a context other than current-context."""
    k = kube_apiserver
    cfg = tmp_path / "multi.conf"
    cfg.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters:\n- name: kt\n  cluster:\n    server: {k.url}\n"
        f"    certificate-authority-data: {b64(k.ca_file.read_bytes())}\n"
        f"users:\n- name: admin\n  user:\n    token: {k.token}\n"
        "contexts:\n- name: kt\n  context: {cluster: kt, user: admin}\n"
        "- name: broken\n  context: {cluster: nowhere, user: admin}\n"
        "current-context: broken\n")
    r, out = failed("--kubeconfig", cfg, "nsuid", "kube-system")
    assert out["code"] == "not-found"
    assert "contexts[1].context.cluster names cluster 'nowhere'" in out["message"]
    assert ok("--kubeconfig", cfg, "--context", "kt", "nsuid", "kube-system")["uid"] \
        == kube_system_uid(k)


def test_secret_read_back_decoded(kube_apiserver):
    k = kube_apiserver
    values = {
        "backup_access_key_id": "AKIAKONTINUITYTEST",
        "backup_secret_access_key": secrets.token_urlsafe(30),
        "backup_region": "us-east-1",
        "backup_endpoint": "https://s3.example:9000",
        "backup_bucket": "etcd-backups",
        "ca.crt": k.ca_file.read_text(),
    }
    body = {"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": SECRET_NAME, "namespace": SECRET_NS},
            "type": "Opaque", "data": {key: b64(v) for key, v in values.items()}}
    k.request("DELETE", f"/api/v1/namespaces/{SECRET_NS}/secrets/{SECRET_NAME}")
    status, created = k.request("POST", f"/api/v1/namespaces/{SECRET_NS}/secrets", body)
    assert status == 201, created
    try:
        for cfg in (k.kubeconfig, k.kubeconfig_cert):
            got = ok("--kubeconfig", cfg, "secret", SECRET_NS, SECRET_NAME)
            assert got["type"] == "Opaque"
            assert got["data"] == values
    finally:
        k.request("DELETE", f"/api/v1/namespaces/{SECRET_NS}/secrets/{SECRET_NAME}")


def test_missing_secret_is_not_found(kube_apiserver):
    k = kube_apiserver
    r, out = failed("--kubeconfig", k.kubeconfig, "secret", SECRET_NS, "no-such-secret")
    assert out["code"] == "not-found" and out["status"] == 404
    assert f"GET /api/v1/namespaces/{SECRET_NS}/secrets/no-such-secret: 404 (NotFound): " \
           'secrets "no-such-secret" not found' in out["message"]


def test_missing_namespace_is_not_found(kube_apiserver):
    r, out = failed("--kubeconfig", kube_apiserver.kubeconfig, "nsuid", "no-such-ns")
    assert out["code"] == "not-found"
    assert 'namespaces "no-such-ns" not found' in out["message"]


def test_wrong_token_is_an_auth_error_and_never_printed(kube_apiserver, tmp_path):
    k = kube_apiserver
    wrong = "kt" + secrets.token_hex(20)
    cfg = write_kubeconfig(tmp_path / "wrong.conf", k.url,
                           f"    certificate-authority-data: {b64(k.ca_file.read_bytes())}\n",
                           f"    token: {wrong}\n")
    r, out = failed("--kubeconfig", cfg, "nsuid", "kube-system")
    assert out["code"] == "auth" and out["status"] == 401
    assert "401" in out["message"] and "Unauthorized" in out["message"]
    assert f"credentials of user 'u' in kubeconfig '{cfg}'" in out["message"]
    for text in (r.stdout, r.stderr):
        assert wrong not in text
        assert k.token not in text
    # The same token from a tokenFile: still never printed.
    (tmp_path / "tok").write_text(wrong)
    cfg2 = write_kubeconfig(tmp_path / "wrong2.conf", k.url,
                            f"    certificate-authority-data: {b64(k.ca_file.read_bytes())}\n",
                            "    tokenFile: tok\n")
    r, out = failed("--kubeconfig", cfg2, "secret", SECRET_NS, SECRET_NAME)
    assert out["code"] == "auth"
    assert wrong not in r.stdout + r.stderr


def test_user_without_rbac_is_forbidden(kube_apiserver, tmp_path):
    k = kube_apiserver
    # The apiserver's CA lives in its pki dir; peers.CA reuses an existing CA.
    cert, key = peers.CA(k.ca_file.parent).issue("nobody", "kt-nobody", server=False)
    cfg = write_kubeconfig(tmp_path / "nobody.conf", k.url,
                           f"    certificate-authority: {k.ca_file}\n",
                           f"    client-certificate-data: {b64(cert.read_bytes())}\n"
                           f"    client-key-data: {b64(key.read_bytes())}\n")
    r, out = failed("--kubeconfig", cfg, "secret", SECRET_NS, SECRET_NAME)
    assert out["code"] == "auth" and out["status"] == 403
    assert "(Forbidden)" in out["message"] and "kt-nobody" in out["message"]
    assert "lacks RBAC permission" in out["message"]


def test_wrong_ca_is_a_tls_error(kube_apiserver, tmp_path):
    k = kube_apiserver
    other = peers.CA(tmp_path / "other-ca", cn="not-the-kube-ca")
    cfg = write_kubeconfig(tmp_path / "wrongca.conf", k.url,
                           f"    certificate-authority-data: {b64(other.cert.read_bytes())}\n",
                           f"    token: {k.token}\n")
    r, out = failed("--kubeconfig", cfg, "nsuid", "kube-system")
    assert out["code"] == "tls"
    assert f"kubeconfig '{cfg}': TLS verification of {k.url} failed" in out["message"]
    assert "check certificate-authority(-data) of cluster 'c'" in out["message"]
    assert "--cacert" not in out["message"]
    assert k.token not in r.stdout + r.stderr


def test_insecure_skip_tls_verify_is_refused(kube_apiserver, tmp_path):
    k = kube_apiserver
    cfg = write_kubeconfig(tmp_path / "insecure.conf", k.url,
                           "    insecure-skip-tls-verify: true\n", f"    token: {k.token}\n")
    r, out = failed("--kubeconfig", cfg, "nsuid", "kube-system")
    assert out["code"] == "usage"
    assert "clusters[0].cluster.insecure-skip-tls-verify is true" in out["message"]


def test_in_cluster_config(kube_apiserver, tmp_path):
    k = kube_apiserver
    sa = tmp_path / "serviceaccount"
    sa.mkdir()
    (sa / "token").write_text(k.token)
    shutil.copy(k.ca_file, sa / "ca.crt")
    (sa / "namespace").write_text("kube-system")
    env = {**os.environ, "KUBERNETES_SERVICE_HOST": "127.0.0.1",
           "KUBERNETES_SERVICE_PORT": str(k.port)}
    cfg = ok("--in-cluster", sa, "config", env=env)
    assert cfg["server"] == k.url and cfg["namespace"] == "kube-system"
    assert ok("--in-cluster", sa, "nsuid", "kube-system", env=env)["uid"] == kube_system_uid(k)
    env.pop("KUBERNETES_SERVICE_HOST")
    r, out = failed("--in-cluster", sa, "nsuid", "kube-system", env=env)
    assert out["code"] == "not-found" and "KUBERNETES_SERVICE_HOST" in out["message"]
