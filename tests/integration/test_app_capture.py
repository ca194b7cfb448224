"""The capture walk of an application backup (src/app, kt_app_collect) on a
real kube-apiserver, through tests/unit/apptool: what a restore point takes
from a namespace, what it skips and why (docs/app-backup.md), partial
failures named per resource, and the sanitized objects created again in
another namespace in restore order.  (`kontinuity app backup` stores what
this walk captures; its end-to-end tests come with the command.)"""
import json
import os
import pathlib
import subprocess
import uuid

import pytest

import peers
import snapshot_controller_standin as sc

ROOT = pathlib.Path(__file__).resolve().parents[2]
APPTOOL = ROOT / os.environ.get("KT_BUILD", "build") / "tests" / "unit" / "apptool"
CRD = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


@pytest.fixture(scope="module")
def api(kube_apiserver):
    k = kube_apiserver
    return sc.Api(k.url, k.token, k.ca_file)


def apptool(kube, *args, kubeconfig=None, check=True):
    r = subprocess.run([str(APPTOOL), "--kubeconfig", str(kubeconfig or kube.kubeconfig),
                        *map(str, args)], capture_output=True, text=True, timeout=120)
    if check:
        assert r.returncode == 0, r.stderr
    return r


def parse(out):
    objs, notes, stats = set(), {}, None
    for line in out.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "object":
            tier, group, resource, name = rest.split(" ")
            objs.add((group, resource, name))
        elif kind == "stats":
            stats = [int(x) for x in rest.split()]
        else:
            what, _, why = rest.partition("\t")
            notes[(kind, what)] = why
    return objs, notes, stats


def meta(name, ns=None, **extra):
    m = {"name": name, **extra}
    if ns:
        m["namespace"] = ns
    return m


@pytest.fixture(scope="module")
def app(api):
    """A namespace holding one of everything the rules distinguish."""
    ns = f"app-{uuid.uuid4().hex[:6]}"
    node_port = 30000 + int(ns[4:], 16) % 2700     # one per module sharing the API server
    api.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                      "metadata": meta(ns)})
    p = f"/api/v1/namespaces/{ns}"
    lab = {"app": "pg"}
    api.create(f"{p}/serviceaccounts", {"apiVersion": "v1", "kind": "ServiceAccount",
                                        "metadata": meta("pg", ns, labels=lab)})
    api.create(f"{p}/configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                   "metadata": meta("cfg", ns, labels=lab), "data": {"a": "1"}})
    api.create(f"{p}/configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                   "metadata": meta("kube-root-ca.crt", ns), "data": {"ca": "x"}})
    api.create(f"{p}/secrets", {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                                "metadata": meta("creds", ns, labels=lab),
                                "stringData": {"password": "s3cret"}})
    api.create(f"{p}/secrets", {
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
        "metadata": meta("pg-token-abcde", ns,
                         annotations={"kubernetes.io/service-account.name": "pg"})})
    api.create(f"{p}/secrets", {
        "apiVersion": "v1", "kind": "Secret", "type": "helm.sh/release.v1",
        "metadata": meta("sh.helm.release.v1.pg.v1", ns,
                         labels={"owner": "helm", "name": "pg", "version": "1", **lab}),
        "data": {"release": "SDRzSQ=="}})
    api.create(f"{p}/services", {
        "apiVersion": "v1", "kind": "Service", "metadata": meta("pg", ns, labels=lab),
        "spec": {"type": "NodePort", "selector": lab,
                 "ports": [{"port": 5432, "nodePort": node_port}]}})
    api.create(f"{p}/services", {
        "apiVersion": "v1", "kind": "Service", "metadata": meta("pg-hl", ns, labels=lab),
        "spec": {"clusterIP": "None", "selector": lab, "ports": [{"port": 5432}]}})
    sts = api.create(f"/apis/apps/v1/namespaces/{ns}/statefulsets", {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": meta("pg", ns, labels=lab),
        "spec": {"serviceName": "pg-hl", "replicas": 1, "selector": {"matchLabels": lab},
                 "template": {"metadata": {"labels": lab},
                              "spec": {"containers": [{"name": "pg", "image": "postgres:16"}]}}}})
    pod = {"serviceAccountName": "pg", "containers": [{"name": "c", "image": "busybox"}]}
    api.create(f"{p}/pods", {
        "apiVersion": "v1", "kind": "Pod", "spec": pod,
        "metadata": meta("pg-0", ns, labels=lab, ownerReferences=[{
            "apiVersion": "apps/v1", "kind": "StatefulSet", "name": "pg",
            "uid": sts["metadata"]["uid"], "controller": True}])})
    api.create(f"{p}/pods", {"apiVersion": "v1", "kind": "Pod", "spec": pod,
                             "metadata": meta("standalone", ns)})
    api.create(f"{p}/events", {
        "apiVersion": "v1", "kind": "Event", "metadata": meta("e1", ns),
        "involvedObject": {"kind": "Pod", "name": "pg-0", "namespace": ns},
        "reason": "Test", "message": "m", "type": "Normal"})
    api.create(f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases", {
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta("l", ns),
        "spec": {"holderIdentity": "x"}})
    pvc, pv = sc.make_bound_pvc(api, ns, "data-pg-0", size="1Gi")
    api.create(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": meta("pg-view", ns, labels=lab),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": "view"},
        "subjects": [{"kind": "ServiceAccount", "name": "pg", "namespace": ns}]})
    api.create("/apis/rbac.authorization.k8s.io/v1/clusterroles", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": meta(f"cr-{ns}"),
        "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}]})
    api.create("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": meta(f"crb-{ns}"),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": f"cr-{ns}"},
        "subjects": [{"kind": "ServiceAccount", "name": "pg", "namespace": ns}]})
    group = f"g{ns.replace('-', '')}.example.com"
    status, _ = api.request("POST", CRD, {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": meta(f"widgets.{group}"),
        "spec": {"group": group, "scope": "Namespaced",
                 "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                 "versions": [{"name": "v1", "served": True, "storage": True, "schema": {
                     "openAPIV3Schema": {"type": "object",
                                         "x-kubernetes-preserve-unknown-fields": True}}}]}})
    assert status == 201

    def served():
        return api.request("GET", f"/apis/{group}/v1/namespaces/{ns}/widgets")[0] == 200
    peers.wait_for(served, 30, "the Widget CRD served")
    api.create(f"/apis/{group}/v1/namespaces/{ns}/widgets", {
        "apiVersion": f"{group}/v1", "kind": "Widget", "metadata": meta("w1", ns, labels=lab),
        "spec": {"size": 3}})
    return {"ns": ns, "pv": pv["metadata"]["name"], "group": group, "node_port": node_port}


def test_capture_takes_the_application_and_says_what_it_skipped(kube_apiserver, app):
    ns = app["ns"]
    objs, notes, stats = parse(apptool(kube_apiserver, "collect", ns, "--cluster-rbac").stdout)
    want = {
        ("core", "namespaces", ns), ("core", "serviceaccounts", "pg"),
        ("core", "configmaps", "cfg"), ("core", "secrets", "creds"),
        ("core", "secrets", "sh.helm.release.v1.pg.v1"), ("core", "services", "pg"),
        ("core", "services", "pg-hl"), ("apps", "statefulsets", "pg"),
        ("core", "pods", "standalone"), ("core", "persistentvolumeclaims", "data-pg-0"),
        ("core", "persistentvolumes", app["pv"]),
        ("rbac.authorization.k8s.io", "rolebindings", "pg-view"),
        ("rbac.authorization.k8s.io", "clusterrolebindings", f"crb-{ns}"),
        ("rbac.authorization.k8s.io", "clusterroles", f"cr-{ns}"),
        (app["group"], "widgets", "w1"),
        ("apiextensions.k8s.io", "customresourcedefinitions", f"widgets.{app['group']}"),
    }
    assert want <= objs, want - objs
    # nothing else but the ServiceAccount "default" if the server made one
    assert objs - want <= {("core", "serviceaccounts", "default")}, objs - want
    for what in ("pods/pg-0", "secrets/pg-token-abcde", "configmaps/kube-root-ca.crt"):
        assert notes.get(("skip-object", what)), (what, notes)
    assert "controller" in notes[("skip-object", "pods/pg-0")]
    for what in ("events", "events.events.k8s.io", "endpoints",
                 "endpointslices.discovery.k8s.io", "leases.coordination.k8s.io",
                 "controllerrevisions.apps"):
        assert notes.get(("skip-resource", what)), (what, sorted(notes))
    assert not [k for k in notes if k[0] == "failed"], notes
    assert stats[0] == len(objs) and stats[1] == 3 and stats[2] == 0
    # Without --cluster-rbac the cluster roles stay out; a selector narrows the
    # namespaced objects (the namespace and the dependencies of what is taken stay).
    objs2, _, _ = parse(apptool(kube_apiserver, "collect", ns, "--selector", "app=pg").stdout)
    assert ("core", "configmaps", "cfg") in objs2 and ("core", "pods", "standalone") not in objs2
    assert not [o for o in objs2 if o[1] in ("clusterroles", "clusterrolebindings")]
    assert ("core", "namespaces", ns) in objs2
    assert ("core", "persistentvolumeclaims", "data-pg-0") not in objs2   # not labelled


def test_missing_namespace_and_partial_rbac(kube_apiserver, app, api, tmp_path):
    r = apptool(kube_apiserver, "collect", "no-such-ns", check=False)
    assert r.returncode == 1 and "namespace 'no-such-ns' does not exist" in r.stderr
    # A user that may read the namespace and its ConfigMaps only: every other
    # resource is a named failure, the walk goes on and takes what it may.
    ns, user = app["ns"], f"reader-{app['ns']}"
    api.create("/apis/rbac.authorization.k8s.io/v1/clusterroles", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": meta(user),
        "rules": [{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"]},
                  {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]})
    api.create("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": meta(user),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": user},
        "subjects": [{"kind": "User", "name": user, "apiGroup": "rbac.authorization.k8s.io"}]})
    k = kube_apiserver
    cert, key = peers.CA(k.ca_file.parent).issue(user, user, server=False)
    cfg = tmp_path / "reader.conf"
    cfg.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters:\n- name: k\n  cluster:\n    server: {k.url}\n"
        f"    certificate-authority: {k.ca_file}\n"
        f"users:\n- name: u\n  user:\n    client-certificate: {cert}\n    client-key: {key}\n"
        "contexts:\n- name: c\n  context:\n    cluster: k\n    user: u\n")

    def allowed():   # RBAC caches take a moment
        return "object" in apptool(k, "collect", ns, kubeconfig=cfg, check=False).stdout
    peers.wait_for(allowed, 30, "the reader's RBAC in effect")
    objs, notes, stats = parse(apptool(k, "collect", ns, kubeconfig=cfg).stdout)
    assert ("core", "configmaps", "cfg") in objs and ("core", "namespaces", ns) in objs
    failed = {what: why for (kind, what), why in notes.items() if kind == "failed"}
    assert "secrets" in failed and "statefulsets.apps" in failed
    assert "403" in failed["secrets"] and user in failed["secrets"]
    assert stats[2] == len(failed) > 3


def test_sanitized_objects_create_in_another_namespace(kube_apiserver, app, api):
    """The captured objects, sanitized and mapped, are accepted by the API
    server in a new namespace, in restore order; cluster-assigned fields are
    gone and namespace references follow."""
    ns, to = app["ns"], app["ns"] + "-copy"
    lines = apptool(kube_apiserver, "sanitize", ns, to).stdout.splitlines()
    objs = [json.loads(x) for x in lines]
    kinds = [o["kind"] for o in objs]
    assert kinds.index("Namespace") < kinds.index("ServiceAccount") < kinds.index("Secret")
    assert kinds.index("Secret") < kinds.index("PersistentVolumeClaim") < kinds.index("Service")
    assert kinds.index("Service") < kinds.index("StatefulSet") < kinds.index("Widget")
    created = 0
    for o in objs:
        if o["kind"] in ("PersistentVolume", "CustomResourceDefinition", "ClusterRole",
                         "ClusterRoleBinding"):
            continue    # cluster-scoped and present already
        m = o["metadata"]
        assert "uid" not in m and "resourceVersion" not in m and "status" not in o
        assert m.get("namespace", to) == to
        group, _, version = o["apiVersion"].rpartition("/")
        plural = {"Namespace": "namespaces", "ServiceAccount": "serviceaccounts",
                  "ConfigMap": "configmaps", "Secret": "secrets", "Service": "services",
                  "PersistentVolumeClaim": "persistentvolumeclaims", "Pod": "pods",
                  "StatefulSet": "statefulsets", "RoleBinding": "rolebindings",
                  "Widget": "widgets"}[o["kind"]]
        base = f"/api/{version}" if not group else f"/apis/{group}/{version}"
        path = f"{base}/namespaces" if o["kind"] == "Namespace" else \
            f"{base}/namespaces/{to}/{plural}"
        status, out = api.request("POST", path, o)
        assert status == 201, (o["kind"], m["name"], status, out)
        created += 1
    assert created >= 11
    svc = api.get(f"/api/v1/namespaces/{to}/services/pg")
    assert svc["spec"]["clusterIP"] != api.get(f"/api/v1/namespaces/{ns}/services/pg")["spec"][
        "clusterIP"]
    assert svc["spec"]["ports"][0]["nodePort"] != app["node_port"]   # allocated anew
    assert api.get(f"/api/v1/namespaces/{to}/services/pg-hl")["spec"]["clusterIP"] == "None"
    rb = api.get(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{to}/rolebindings/pg-view")
    assert rb["subjects"][0]["namespace"] == to
    pvc = api.get(f"/api/v1/namespaces/{to}/persistentvolumeclaims/data-pg-0")
    assert "volumeName" not in pvc["spec"] or not pvc["spec"]["volumeName"]
    assert api.get(f"/api/v1/namespaces/{to}/secrets/creds")["data"]["password"]


def reports(out):
    rows = {}
    for line in out.splitlines():
        if line.startswith("report "):
            head, _, detail = line[len("report "):].partition("\t")
            outcome, kind, name = head.split(" ")
            rows[(kind, name)] = (outcome, detail)
    applied = [int(x) for x in out.splitlines()[-1].split()[1:]]
    return rows, applied


def test_restore_engine_creates_skips_updates_and_plans(kube_apiserver, app, api):
    ns, to = app["ns"], app["ns"] + "-r"
    k = kube_apiserver
    # A dry run reads only: every object would be created, nothing is.
    rows, applied = reports(apptool(k, "restore", ns, to, "--dry-run").stdout)
    assert {o for o, _ in rows.values()} == {"would-create"}, rows
    assert api.request("GET", f"/api/v1/namespaces/{to}")[0] == 404
    # The real run: everything created, Services excluded when asked.
    rows, applied = reports(apptool(k, "restore", ns, to, "--exclude", "Service").stdout)
    assert rows[("Namespace", to)][0] == "created"
    assert rows[("ConfigMap", "cfg")][0] == "created"
    assert rows[("Widget", "w1")][0] == "created"
    assert rows[("Service", "pg")] == ("skipped", "excluded by --include-kinds/--exclude-kinds")
    assert api.request("GET", f"/api/v1/namespaces/{to}/services/pg")[0] == 404
    assert applied[3] == 0 and applied[0] == len(rows) - 2, (applied, rows)
    # Again: what exists is skipped by default ...
    rows, applied = reports(apptool(k, "restore", ns, to).stdout)
    assert rows[("ConfigMap", "cfg")] == ("skipped", "exists")
    assert rows[("Service", "pg")][0] == "created"
    # ... and brought back to the restore point with --update (server-side apply).
    api.merge_patch(f"/api/v1/namespaces/{to}/configmaps/cfg", {"data": {"a": "changed"}})
    rows, applied = reports(apptool(k, "restore", ns, to, "--update",
                                    "--include", "ConfigMap").stdout)
    assert rows[("ConfigMap", "cfg")][0] == "updated"
    assert api.get(f"/api/v1/namespaces/{to}/configmaps/cfg")["data"]["a"] == "1"
    assert rows[("Secret", "creds")][0] == "skipped"


def test_valgrind_capture_and_restore_engine(kube_apiserver, app):
    """kt_app_collect, kt_app_sanitize and kt_app_apply under valgrind."""
    from test_valgrind import VALGRIND
    for args in (["collect", app["ns"], "--cluster-rbac"],
                 ["restore", app["ns"], app["ns"] + "-vg"],
                 ["restore", app["ns"], app["ns"] + "-vg", "--dry-run"]):
        r = subprocess.run([*VALGRIND, str(APPTOOL), "--kubeconfig",
                            str(kube_apiserver.kubeconfig), *args],
                           capture_output=True, text=True, timeout=600)
        assert r.returncode != 99, f"valgrind found errors:\n{r.stderr[-6000:]}"
        assert r.returncode == 0, r.stderr
