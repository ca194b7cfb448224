"""The Kubernetes API client (src/kube) against a real kube-apiserver,
through tests/unit/kubetool: discovery, the verbs (create, get, update,
merge/JSON patch, server-side apply, delete with preconditions), paged
lists with flat memory, watch, exec credential plugins, $KUBECONFIG
merging and the lookup order, and the errors a user meets (conflicts,
missing RBAC, an expired token, a client certificate the server does not
trust)."""
import base64
import json
import os
import pathlib
import secrets
import subprocess
import sys
import threading
import time

import pytest

import peers

ROOT = pathlib.Path(__file__).resolve().parents[2]
KUBETOOL = ROOT / os.environ.get("KT_BUILD", "build") / "tests" / "unit" / "kubetool"
PLUGIN = pathlib.Path(__file__).resolve().parent / "kube_exec_plugin.py"


def kubetool(*args, env=None, stdin=None, timeout=300):
    """Run kubetool; returns (CompletedProcess, decoded last JSON line, other lines)."""
    if not KUBETOOL.exists():
        pytest.fail(f"{KUBETOOL} is missing: run 'make build' first")
    r = subprocess.run([str(KUBETOOL), *map(str, args)], capture_output=True, text=True,
                       timeout=timeout, env=env, input=stdin)
    lines = r.stdout.strip().splitlines()
    assert lines, f"kubetool printed nothing:\n{r.stderr}"
    return r, json.loads(lines[-1]), lines[:-1]


def ok(*args, **kw):
    r, out, _ = kubetool(*args, **kw)
    assert r.returncode == 0 and out["ok"], f"{args}: {out}\n{r.stderr[-2000:]}"
    return out["result"]


def failed(*args, **kw):
    r, out, _ = kubetool(*args, **kw)
    assert r.returncode == 1 and not out["ok"], f"{args} should fail: {out}"
    return r, out


def b64(data):
    return base64.b64encode(data if isinstance(data, bytes) else data.encode()).decode()


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def new_namespace(k, prefix="kt"):
    name = f"{prefix}-{secrets.token_hex(4)}"
    status, body = k.request("POST", "/api/v1/namespaces",
                             {"apiVersion": "v1", "kind": "Namespace",
                              "metadata": {"name": name}})
    assert status == 201, body
    return name


def write_json(path, obj):
    path.write_text(json.dumps(obj))
    return path


def kubeconfig_with_user(path, k, user_lines, name="u"):
    path.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters:\n- name: c\n  cluster:\n    server: {k.url}\n"
        f"    certificate-authority-data: {b64(k.ca_file.read_bytes())}\n"
        f"users:\n- name: {name}\n  user:\n{user_lines}"
        f"contexts:\n- name: x\n  context:\n    cluster: c\n    user: {name}\n"
        "current-context: x\n")
    path.chmod(0o600)
    return path


# --------------------------------------------------------------------------
# Discovery


def test_discovery_lists_groups_versions_and_resources(kube_apiserver):
    res = ok("--kubeconfig", kube_apiserver.kubeconfig, "discover")
    by = {(r["group"], r["version"], r["resource"]): r for r in res["resources"]}
    assert res["n"] == len(res["resources"]) > 30
    cm = by[("", "v1", "configmaps")]
    assert cm["kind"] == "ConfigMap" and cm["namespaced"] and cm["preferred"]
    assert {"get", "list", "watch", "create", "update", "patch", "delete"} <= set(cm["verbs"])
    ns = by[("", "v1", "namespaces")]
    assert not ns["namespaced"]
    assert by[("apps", "v1", "deployments")]["kind"] == "Deployment"
    # Subresources are skipped.
    assert not any("/" in r["resource"] for r in res["resources"])
    # Every group the server lists is there.
    status, groups = kube_apiserver.request("GET", "/apis")
    assert status == 200
    served = {(g["name"], v["version"]) for g in groups["groups"] for v in g["versions"]}
    assert served <= {(r["group"], r["version"]) for r in res["resources"]}


def test_resource_lookup_by_name_kind_and_group(kube_apiserver):
    kc = kube_apiserver.kubeconfig
    assert ok("--kubeconfig", kc, "find", "configmaps")["kind"] == "ConfigMap"
    assert ok("--kubeconfig", kc, "find", "ConfigMap")["resource"] == "configmaps"
    d = ok("--kubeconfig", kc, "find", "deployments.apps")
    assert d["group"] == "apps" and d["version"] == "v1" and d["preferred"]
    assert ok("--kubeconfig", kc, "find", "Deployment.apps")["resource"] == "deployments"
    r, out = failed("--kubeconfig", kc, "find", "frobnicators.example.com")
    assert out["code"] == "not-found"
    assert "serves no resource 'frobnicators.example.com'" in out["message"]


# --------------------------------------------------------------------------
# Verbs


def test_create_get_update_patch_apply_delete(kube_apiserver, tmp_path):
    k = kube_apiserver
    kc = k.kubeconfig
    ns = new_namespace(k)
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "one"},
          "data": {"a": "1"}}
    created = ok("--kubeconfig", kc, "create", "configmaps", ns, write_json(tmp_path / "c", cm))
    assert created["metadata"]["namespace"] == ns and created["data"] == {"a": "1"}
    got = ok("--kubeconfig", kc, "getobj", "configmaps", ns, "one")
    assert got["metadata"]["uid"] == created["metadata"]["uid"]

    # Creating it again: AlreadyExists, naming the object.
    r, out = failed("--kubeconfig", kc, "create", "configmaps", ns, tmp_path / "c")
    assert out["code"] == "exists" and out["status"] == 409
    assert f'cannot create configmaps "one" in namespace "{ns}": 409 (AlreadyExists)' \
        in out["message"]

    # Update (PUT) with the current resourceVersion, then with a stale one.
    got["data"] = {"a": "2"}
    updated = ok("--kubeconfig", kc, "update", "configmaps", ns,
                 write_json(tmp_path / "u", got))
    assert updated["data"] == {"a": "2"}
    got["data"] = {"a": "stale"}
    r, out = failed("--kubeconfig", kc, "update", "configmaps", ns,
                    write_json(tmp_path / "s", got))
    assert out["code"] == "exists" and out["status"] == 409
    assert f'cannot update configmaps "one" in namespace "{ns}": 409 (Conflict)' in out["message"]
    assert "read it again and retry" in out["message"]

    # Merge patch, JSON patch, server-side apply.
    (tmp_path / "m").write_text('{"data": {"b": "merged"}}')
    ok("--kubeconfig", kc, "patch", "configmaps", ns, "one", "merge", tmp_path / "m")
    (tmp_path / "j").write_text('[{"op": "replace", "path": "/data/a", "value": "3"}]')
    ok("--kubeconfig", kc, "patch", "configmaps", ns, "one", "json", tmp_path / "j")
    status, live = k.request("GET", f"/api/v1/namespaces/{ns}/configmaps/one")
    assert live["data"] == {"a": "3", "b": "merged"}
    (tmp_path / "bad").write_text('[{"op": "test", "path": "/data/a", "value": "nope"}]')
    r, out = failed("--kubeconfig", kc, "patch", "configmaps", ns, "one", "json",
                    tmp_path / "bad")
    assert f'cannot patch configmaps "one" in namespace "{ns}"' in out["message"]

    apply = ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: one\n"
             "data:\n  a: applied\n  c: new\n")
    (tmp_path / "a.yaml").write_text(apply)
    # kubetool's earlier writes own data.a (manager "kubetool"/"Go-http-client"):
    # without force, apply reports the conflict; with force it takes the field.
    r, out = failed("--kubeconfig", kc, "patch", "configmaps", ns, "one", "apply",
                    tmp_path / "a.yaml", "--manager", "kt-test")
    assert out["code"] == "exists" and "409 (Conflict)" in out["message"]
    res = ok("--kubeconfig", kc, "patch", "configmaps", ns, "one", "apply", tmp_path / "a.yaml",
             "--manager", "kt-test", "--force")
    assert res["data"]["a"] == "applied" and res["data"]["c"] == "new"
    managers = {m["manager"] for m in res["metadata"]["managedFields"]}
    assert "kt-test" in managers
    # Apply also creates.
    (tmp_path / "two.yaml").write_text(apply.replace("name: one", "name: two"))
    ok("--kubeconfig", kc, "patch", "configmaps", ns, "two", "apply", tmp_path / "two.yaml")
    assert k.request("GET", f"/api/v1/namespaces/{ns}/configmaps/two")[0] == 200

    # Delete with a wrong uid precondition: refused; with the right one: gone.
    r, out = failed("--kubeconfig", kc, "delete", "configmaps", ns, "one", "--uid", "not-it")
    assert out["code"] == "exists" and out["status"] == 409
    assert f'cannot delete configmaps "one" in namespace "{ns}"' in out["message"]
    ok("--kubeconfig", kc, "delete", "configmaps", ns, "one", "--uid",
       created["metadata"]["uid"], "--propagation", "Background")
    assert k.request("GET", f"/api/v1/namespaces/{ns}/configmaps/one")[0] == 404
    r, out = failed("--kubeconfig", kc, "getobj", "configmaps", ns, "one")
    assert out["code"] == "not-found"
    assert f'cannot get configmaps "one" in namespace "{ns}": 404 (NotFound)' in out["message"]
    r, out = failed("--kubeconfig", kc, "delete", "configmaps", ns, "two", "--propagation",
                    "Sideways")
    assert out["code"] == "usage" and "Sideways" in out["message"]
    # Cluster-scoped objects and other groups.
    ok("--kubeconfig", kc, "delete", "namespaces", "-", ns, "--propagation", "Foreground")
    status, gone = k.request("GET", f"/api/v1/namespaces/{ns}")
    assert status == 404 or gone["status"]["phase"] == "Terminating"


def test_missing_rbac_names_verb_object_and_user(kube_apiserver, tmp_path):
    k = kube_apiserver
    ns = new_namespace(k)
    cert, key = peers.CA(k.ca_file.parent).issue("nobody2", "kt-nobody", server=False)
    cfg = tmp_path / "nobody.conf"
    kubeconfig_with_user(cfg, k, f"    client-certificate-data: {b64(cert.read_bytes())}\n"
                                 f"    client-key-data: {b64(key.read_bytes())}\n", name="bob")
    cm = write_json(tmp_path / "cm", {"apiVersion": "v1", "kind": "ConfigMap",
                                      "metadata": {"name": "x"}})
    # Discovery needs no RBAC (system:discovery); the create does.
    r, out = failed("--kubeconfig", cfg, "create", "configmaps", ns, cm)
    assert out["code"] == "auth" and out["status"] == 403
    msg = out["message"]
    assert msg.startswith(f'cannot create configmaps "x" in namespace "{ns}": 403 (Forbidden): ')
    assert 'User "kt-nobody" cannot create resource "configmaps"' in msg
    assert f"user 'bob' of kubeconfig '{cfg}' lacks RBAC permission to create" in msg
    r, out = failed("--kubeconfig", cfg, "list", "configmaps", ns)
    assert out["message"].startswith(f'cannot list configmaps in namespace "{ns}": 403')
    r, out = failed("--kubeconfig", cfg, "list", "secrets", "-")
    assert out["message"].startswith("cannot list secrets in all namespaces: 403")


def test_untrusted_client_certificate_is_refused(kube_apiserver, tmp_path):
    """A client certificate from a CA the server does not trust is refused
    (401), and the message names our user and what to check."""
    k = kube_apiserver
    other = peers.CA(tmp_path / "other-ca", cn="not-the-kube-ca")
    cert, key = other.issue("admin", "kt-admin", org="system:masters", server=False)
    cfg = kubeconfig_with_user(tmp_path / "c.conf", k,
                               f"    client-certificate: {cert}\n    client-key: {key}\n")
    r, out = failed("--kubeconfig", cfg, "nsuid", "kube-system")
    # The server sees a certificate it cannot verify and answers 401.
    assert out["code"] == "auth" and out["status"] == 401
    assert f"did not accept the credentials of user 'u' in kubeconfig '{cfg}'" in out["message"]
    assert "check its token or client certificate" in out["message"]


# --------------------------------------------------------------------------
# Lists and memory


def _names(lines):
    return [ln.split(" ", 1)[1] for ln in lines if ln.startswith("item ")]


def test_list_of_5000_pages_with_flat_memory(kube_apiserver):
    k = kube_apiserver
    kc = k.kubeconfig
    big, small = new_namespace(k, "big"), new_namespace(k, "small")
    assert ok("--kubeconfig", kc, "create-many", big, "cm", 5000, timeout=900)["n"] == 5000
    assert ok("--kubeconfig", kc, "create-many", small, "cm", 500, timeout=300)["n"] == 500

    # Under ASan, freed memory sits in a quarantine and would count toward
    # the peak; turn it off (other builds ignore the variable).
    env = {**os.environ, "ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") +
           ":quarantine_size_mb=0"}
    r, out, lines = kubetool("--kubeconfig", kc, "list", "configmaps", big, "--limit", 500,
                             env=env)
    assert r.returncode == 0, out
    names = _names(lines)
    want = {f"{big}/cm-{i}" for i in range(5000)} | {f"{big}/kube-root-ca.crt"}
    got = set(names)
    assert len(names) == len(got), "an object was handed over twice"
    assert got - {f"{big}/kube-root-ca.crt"} == want - {f"{big}/kube-root-ca.crt"}
    res = out["result"]
    assert res["n_items"] == len(names)
    assert res["n_pages"] >= 10
    assert res["resource_version"]

    r2, out2, lines2 = kubetool("--kubeconfig", kc, "list", "configmaps", small, "--limit", 500,
                                env=env)
    assert r2.returncode == 0
    assert len(_names(lines2)) >= 500
    hwm_big, hwm_small = res["vmhwm_kb"], out2["result"]["vmhwm_kb"]
    print(f"VmHWM: 5000 objects in pages of 500: {hwm_big} KiB; 500 objects: {hwm_small} KiB")
    # Ten times the objects, the same peak: memory holds one page.
    assert hwm_big <= hwm_small * 1.25 + 2048, (hwm_big, hwm_small)

    # A page bigger than the byte limit is refused, saying to lower the limit.
    # (kubetool has no byte-limit option: list with one huge page instead.)
    r3, out3, _ = kubetool("--kubeconfig", kc, "list", "configmaps", big, "--limit", 5000,
                           env=env)
    assert r3.returncode == 0 and out3["result"]["n_pages"] == 1
    print(f"VmHWM: 5000 objects in one page: {out3['result']['vmhwm_kb']} KiB")
    assert out3["result"]["vmhwm_kb"] > hwm_big  # the whole list in one page costs more


def test_list_with_label_selector_and_cluster_wide(kube_apiserver, tmp_path):
    k = kube_apiserver
    ns = new_namespace(k)
    for i in range(7):
        k.request("POST", f"/api/v1/namespaces/{ns}/configmaps",
                  {"metadata": {"name": f"l{i}", "labels": {"pick": "yes" if i % 2 else "no"}}})
    r, out, lines = kubetool("--kubeconfig", k.kubeconfig, "list", "configmaps", ns,
                             "--limit", 2, "--selector", "pick=yes")
    assert sorted(_names(lines)) == [f"{ns}/l1", f"{ns}/l3", f"{ns}/l5"]
    r, out, lines = kubetool("--kubeconfig", k.kubeconfig, "list", "configmaps", "-",
                             "--limit", 100)
    assert {f"{ns}/l{i}" for i in range(7)} <= set(_names(lines))
    r, out, lines = kubetool("--kubeconfig", k.kubeconfig, "list", "namespaces", "-")
    assert f"/{ns}" in _names(lines)


# --------------------------------------------------------------------------
# Watch


def test_watch_streams_events_one_by_one(kube_apiserver, tmp_path):
    k = kube_apiserver
    kc = k.kubeconfig
    ns = new_namespace(k)
    listed = ok("--kubeconfig", kc, "list", "configmaps", ns)
    rv = listed["resource_version"]
    proc = subprocess.Popen([str(KUBETOOL), "--kubeconfig", str(kc), "watch", "configmaps", ns,
                             "--rv", rv, "--max-events", "3", "--timeout", "60"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1)
        k.request("POST", f"/api/v1/namespaces/{ns}/configmaps", {"metadata": {"name": "w1"}})
        k.request("PATCH", f"/api/v1/namespaces/{ns}/configmaps/w1", {"data": {"x": "y"}},
                  content_type="application/merge-patch+json")
        k.request("DELETE", f"/api/v1/namespaces/{ns}/configmaps/w1")
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    lines = stdout.strip().splitlines()
    out = json.loads(lines[-1])
    assert out["ok"], out
    events = [ln.split()[1:3] for ln in lines[:-1]]
    assert events == [["ADDED", "w1"], ["MODIFIED", "w1"], ["DELETED", "w1"]]
    assert out["result"]["n_events"] == 3 and out["result"]["last_rv"] == lines[-2].split()[3]

    # Without a resourceVersion: what exists arrives as ADDED; the server's
    # timeout ends the watch cleanly.
    k.request("POST", f"/api/v1/namespaces/{ns}/configmaps", {"metadata": {"name": "w2"}})
    r, out, lines = kubetool("--kubeconfig", kc, "watch", "configmaps", ns, "--timeout", "2",
                             "--bookmarks")
    assert out["ok"], out
    assert ["ADDED", "w2"] in [ln.split()[1:3] for ln in lines]


def test_watch_event_size_is_bounded(kube_apiserver, tmp_path):
    k = kube_apiserver
    ns = new_namespace(k)
    k.request("POST", f"/api/v1/namespaces/{ns}/configmaps",
              {"metadata": {"name": "big"}, "data": {"x": "y" * 200000}})
    r, out = failed("--kubeconfig", k.kubeconfig, "watch", "configmaps", ns, "--timeout", "5",
                    "--max-event-bytes", "100000")
    assert out["code"] == "limit"
    assert "a watch event of configmaps is larger than 100000 bytes" in out["message"]


# --------------------------------------------------------------------------
# Credentials


def exec_kubeconfig(path, k, env, api="client.authentication.k8s.io/v1", hint=None,
                    command=None):
    env_lines = "".join(f"      - name: {n}\n        value: '{v}'\n" for n, v in env.items())
    path.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters:\n- name: c\n  cluster:\n    server: {k.url}\n"
        f"    certificate-authority-data: {b64(k.ca_file.read_bytes())}\n"
        "users:\n- name: eks-user\n  user:\n    exec:\n"
        f"      apiVersion: {api}\n"
        f"      command: {command or sys.executable}\n"
        + ("" if command else f"      args: ['{PLUGIN}']\n")
        + "      interactiveMode: Never\n      provideClusterInfo: true\n"
        + (f'      installHint: "{hint}"\n' if hint else "")
        + ("      env:\n" + env_lines if env_lines else "")
        + "contexts:\n- name: x\n  context:\n    cluster: c\n    user: eks-user\n"
        "current-context: x\n")
    path.chmod(0o600)
    return path


def runs(log):
    return [json.loads(ln) for ln in log.read_text().splitlines()] if log.exists() else []


def test_exec_plugin_token_is_cached_and_never_printed(kube_apiserver, tmp_path):
    k = kube_apiserver
    log = tmp_path / "runs"
    for api in ("client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1"):
        log.unlink(missing_ok=True)
        cfg = exec_kubeconfig(tmp_path / "exec.conf", k,
                              {"KT_PLUGIN_TOKEN": k.token, "KT_PLUGIN_LOG": log}, api=api)
        r, out, _ = kubetool("--kubeconfig", cfg, "getobj", "namespaces", "-", "kube-system",
                             "--repeat", 3)
        assert out["ok"], out
        assert out["result"]["metadata"]["name"] == "kube-system"
        assert k.token not in r.stdout + r.stderr
        seen = runs(log)
        assert len(seen) == 1, "the credential (no expiry) must be reused"
        assert seen[0]["apiVersion"] == api and seen[0]["kind"] == "ExecCredential"
        assert seen[0]["spec"]["interactive"] is False
        assert seen[0]["spec"]["cluster"]["server"] == k.url
        assert base64.b64decode(seen[0]["spec"]["cluster"]["certificate-authority-data"]) \
            == k.ca_file.read_bytes()


def test_exec_plugin_expired_credential_is_renewed(kube_apiserver, tmp_path):
    k = kube_apiserver
    log = tmp_path / "runs"
    cfg = exec_kubeconfig(tmp_path / "exec.conf", k, {"KT_PLUGIN_TOKEN": k.token,
                                                     "KT_PLUGIN_LOG": log,
                                                     "KT_PLUGIN_MODE": "expired"})
    ok("--kubeconfig", cfg, "get", "/api/v1/namespaces/default", "--repeat", 3)
    assert len(runs(log)) == 3


def test_exec_plugin_rerun_once_after_401(kube_apiserver, tmp_path):
    k = kube_apiserver
    log = tmp_path / "runs"
    cfg = exec_kubeconfig(tmp_path / "exec.conf", k, {"KT_PLUGIN_TOKEN": k.token,
                                                     "KT_PLUGIN_LOG": log,
                                                     "KT_PLUGIN_MODE": "wrong-first"})
    assert ok("--kubeconfig", cfg, "nsuid", "kube-system")["uid"]
    assert len(runs(log)) == 2
    # A plugin that keeps handing out a bad token: one re-run, then the 401.
    wrong = "kt" + secrets.token_hex(16)
    log.unlink()
    cfg = exec_kubeconfig(tmp_path / "exec2.conf", k, {"KT_PLUGIN_TOKEN": wrong,
                                                      "KT_PLUGIN_LOG": log})
    r, out = failed("--kubeconfig", cfg, "nsuid", "kube-system")
    assert out["code"] == "auth" and out["status"] == 401
    assert len(runs(log)) == 2
    assert wrong not in r.stdout + r.stderr


def test_exec_plugin_client_certificate(kube_apiserver, tmp_path):
    k = kube_apiserver
    cfg = exec_kubeconfig(tmp_path / "exec.conf", k, {"KT_PLUGIN_MODE": "cert",
                                                     "KT_PLUGIN_CERT": k.client_cert,
                                                     "KT_PLUGIN_KEY": k.client_key})
    assert ok("--kubeconfig", cfg, "nsuid", "kube-system")["uid"]


def test_exec_plugin_failures_are_clear(kube_apiserver, tmp_path):
    k = kube_apiserver
    cfg = exec_kubeconfig(tmp_path / "missing.conf", k, {}, command="kt-no-such-plugin",
                          hint="install kt-no-such-plugin from your cloud's CLI")
    r, out = failed("--kubeconfig", cfg, "nsuid", "kube-system")
    assert out["code"] == "auth"
    assert "exec plugin 'kt-no-such-plugin' of user 'eks-user' cannot be found" in out["message"]
    assert "install kt-no-such-plugin from your cloud's CLI" in out["message"]
    cfg = exec_kubeconfig(tmp_path / "fail.conf", k, {"KT_PLUGIN_MODE": "fail"})
    r, out = failed("--kubeconfig", cfg, "nsuid", "kube-system")
    assert "exited with status 1" in out["message"]
    assert "plugin: no credentials configured" in r.stderr  # its stderr reaches the user
    cfg = exec_kubeconfig(tmp_path / "garbage.conf", k, {"KT_PLUGIN_MODE": "garbage"})
    r, out = failed("--kubeconfig", cfg, "nsuid", "kube-system")
    assert "printed no ExecCredential JSON" in out["message"]


def mint_sa_token(k, tmp_path, namespace, name, uid, exp_offset):
    now = int(time.time())
    header = {"alg": "RS256", "typ": "JWT"}
    claims = {"iss": "https://kubernetes.default.svc.cluster.local",
              "aud": ["https://kubernetes.default.svc.cluster.local"],
              "sub": f"system:serviceaccount:{namespace}:{name}",
              "iat": now - 3600, "nbf": now - 3600, "exp": now + exp_offset,
              "kubernetes.io": {"namespace": namespace,
                                "serviceaccount": {"name": name, "uid": uid}}}
    signing_input = (b64url(json.dumps(header).encode()) + "." +
                     b64url(json.dumps(claims).encode())).encode()
    (tmp_path / "jwt.in").write_bytes(signing_input)
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(k.sa_key),
                          str(tmp_path / "jwt.in")], capture_output=True, check=True).stdout
    return signing_input.decode() + "." + b64url(sig)


def test_expired_service_account_token(kube_apiserver, tmp_path):
    k = kube_apiserver
    status, sa = k.request("POST", "/api/v1/namespaces/default/serviceaccounts",
                           {"metadata": {"name": f"kt-sa-{secrets.token_hex(3)}"}})
    assert status == 201, sa
    name, uid = sa["metadata"]["name"], sa["metadata"]["uid"]
    # The same token, valid: authenticated (403: it has no RBAC), which
    # proves the minting is right and only the expiry differs below.
    good = mint_sa_token(k, tmp_path, "default", name, uid, 3600)
    cfg = kubeconfig_with_user(tmp_path / "good.conf", k, f"    token: {good}\n")
    r, out = failed("--kubeconfig", cfg, "nsuid", "kube-system")
    assert out["status"] == 403, out
    assert f"system:serviceaccount:default:{name}" in out["message"]

    expired = mint_sa_token(k, tmp_path, "default", name, uid, -600)
    cfg = kubeconfig_with_user(tmp_path / "expired.conf", k, f"    token: {expired}\n")
    r, out = failed("--kubeconfig", cfg, "nsuid", "kube-system")
    assert out["code"] == "auth" and out["status"] == 401
    assert "the token of user 'u' in kubeconfig" in out["message"]
    assert "expired at " in out["message"] and "get a new token" in out["message"]
    assert expired not in r.stdout + r.stderr


# --------------------------------------------------------------------------
# Finding the config


def test_kubeconfig_env_merges_files(kube_apiserver, tmp_path):
    k = kube_apiserver
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (b / "ca.crt").write_bytes(k.ca_file.read_bytes())
    # File 1: current-context and the user; file 2: the cluster (with a CA
    # path relative to file 2) and a second definition of the user that
    # must lose (kubectl: the first file to define a name wins).
    (a / "config").write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: merged\n"
        "contexts:\n- name: merged\n  context: {cluster: kt, user: admin, namespace: kube-system}\n"
        f"users:\n- name: admin\n  user: {{token: {k.token}}}\n")
    (b / "config").write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: other\n"
        f"clusters:\n- name: kt\n  cluster: {{server: '{k.url}', certificate-authority: ca.crt}}\n"
        "users:\n- name: admin\n  user: {token: wrong-token}\n")
    env = {**os.environ, "KUBECONFIG": f"{a / 'config'}:{tmp_path / 'missing'}:{b / 'config'}"}
    env.pop("KUBERNETES_SERVICE_HOST", None)
    cfg = ok("config", env=env)
    assert cfg["context"] == "merged" and cfg["namespace"] == "kube-system"
    assert cfg["ca_file"] == str(b / "ca.crt") and cfg["token"]
    assert ok("nsuid", "kube-system", env=env)["uid"]
    # --context picks from the merged set; a context defined nowhere names the files.
    r, out = failed("--context", "nope", "nsuid", "kube-system", env=env)
    assert "context 'nope' is not defined in contexts of any file" in out["message"]
    assert "$KUBECONFIG" in out["message"]
    # --kubeconfig wins over $KUBECONFIG and is not merged.
    r, out = failed("--kubeconfig", a / "config", "nsuid", "kube-system", env=env)
    assert "cluster 'kt', which is not defined" in out["message"]


def test_lookup_order_home_then_in_cluster(kube_apiserver, tmp_path):
    k = kube_apiserver
    home = tmp_path / "home"
    (home / ".kube").mkdir(parents=True)
    env = {k2: v for k2, v in os.environ.items()
           if k2 not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT")}
    env["HOME"] = str(home)
    r, out = failed("nsuid", "kube-system", env=env)
    assert out["code"] == "not-found"
    assert "no --kubeconfig, $KUBECONFIG unset, no $HOME/.kube/config and not in a pod" \
        in out["message"]
    (home / ".kube" / "config").write_text(k.kubeconfig.read_text())
    assert ok("config", env=env)["source"] == f"kubeconfig '{home}/.kube/config'"
    assert ok("nsuid", "kube-system", env=env)["uid"]
    # Empty $KUBECONFIG counts as unset (as for kubectl).
    assert ok("nsuid", "kube-system", env={**env, "KUBECONFIG": ""})["uid"]
    # Without ~/.kube/config, a pod's environment leads to the service
    # account (here: none mounted, so the error says so).
    (home / ".kube" / "config").unlink()
    pod = {**env, "KUBERNETES_SERVICE_HOST": "127.0.0.1",
           "KUBERNETES_SERVICE_PORT": str(k.port)}
    if not pathlib.Path("/var/run/secrets/kubernetes.io/serviceaccount/token").exists():
        r, out = failed("nsuid", "kube-system", env=pod)
        assert "in-cluster config: no service-account token" in out["message"]
    r, out = failed("--context", "x", "nsuid", "kube-system", env=pod)
    assert out["code"] == "usage" and "in-cluster config has no contexts" in out["message"]


# --------------------------------------------------------------------------
# The front end's --kubeconfig / --context


def test_etcd_backup_takes_context(etcd, kube_apiserver, tmp_path):
    """`kontinuity etcd backup --context` reaches the kube client: with a
    kubeconfig whose current-context is broken, the named context reads
    the (absent) export Secret; without it the kubeconfig is unusable."""
    k = kube_apiserver
    kt = ROOT / os.environ.get("KT_BUILD", "build") / "src" / "cli" / "kontinuity"
    cfg = tmp_path / "two.conf"
    cfg.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters:\n- name: kt\n  cluster:\n    server: {k.url}\n"
        f"    certificate-authority-data: {b64(k.ca_file.read_bytes())}\n"
        f"users:\n- name: admin\n  user:\n    token: {k.token}\n"
        "contexts:\n- name: good\n  context: {cluster: kt, user: admin}\n"
        "- name: broken\n  context: {cluster: nowhere, user: admin}\n"
        "current-context: broken\n")
    k.request("DELETE", "/api/v1/namespaces/kube-system/secrets/zadara-backup-export")
    env = {n: v for n, v in os.environ.items() if not n.startswith("BACKUP_")}

    def backup(d, *extra):
        return subprocess.run([str(kt), "etcd", "backup", "--endpoint", etcd.endpoint,
                               "--dir", str(tmp_path / d), "--hostname", "cp-1",
                               "--instance-id", "i-cp-1", "--kubeconfig", str(cfg), *extra],
                              capture_output=True, text=True, timeout=300, env=env)

    r = backup("d1")
    assert r.returncode == 0, r.stderr
    assert f"kubeconfig '{cfg}' unusable" in r.stderr and "cluster 'nowhere'" in r.stderr
    r = backup("d2", "--context", "good")
    assert r.returncode == 0, r.stderr
    assert "unusable" not in r.stderr
    assert "no Secret kube-system/zadara-backup-export" in r.stderr
    assert k.token not in r.stdout + r.stderr
