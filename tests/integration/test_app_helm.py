"""Issue 7 with a real Helm release: `helm install` (helm v3, a test peer from
scripts/peers.sh) puts the PostgreSQL-shaped chart of charts/pg into
namespace pg on the real kube-apiserver (a StatefulSet with a volume claim
template, generated credentials, headless + ClusterIP Services, a
ConfigMap, a custom resource whose CRD comes from the chart's crds/, and
Helm's release Secret); `kontinuity app backup pg`; the namespace is
deleted entirely (namespace controller stood in); `app restore` brings it
back into pg and into pg-copy, compared object by object; then Helm goes on
managing both: `helm list` shows the release deployed at its revision in
its own namespace, `helm get values/manifest` work, `helm upgrade --set`
changes the objects (the generated password kept), `helm rollback` takes
it back.

No kube-controller-manager runs here: the PVC data-pg-0 that the
StatefulSet controller would make from the claim template is made bound by
the test, labelled as that controller labels it."""
import base64
import gzip
import json
import os
import pathlib
import subprocess

import pytest

import peers
import snapshot_controller_standin as sc
from namespace_controller_standin import delete_namespace
from test_etcd_snapshot import KT

pytestmark = pytest.mark.usefixtures("snapshot_standin")

CHART = pathlib.Path(__file__).resolve().parent / "charts" / "pg"
NS, COPY = "pg", "pg-copy"
GROUP = "pg.charts.kontinuity.test"
PASS = "helm restore point passphrase"
SELECTOR = {"app.kubernetes.io/name": "pg", "app.kubernetes.io/instance": "pg"}
RESOURCES = (("core", "configmaps", "ConfigMap"), ("core", "secrets", "Secret"),
             ("core", "services", "Service"),
             ("core", "persistentvolumeclaims", "PersistentVolumeClaim"),
             ("apps", "statefulsets", "StatefulSet"), (GROUP, "databases", "Database"))


def kt_env():
    e = {k: v for k, v in os.environ.items() if not k.startswith("KONTINUITY_")}
    e["KONTINUITY_PASSWORD"] = PASS
    return e


def kt(kube, *args):
    r = subprocess.run([str(KT), *map(str, args), "--kubeconfig", str(kube.kubeconfig)],
                       capture_output=True, text=True, env=kt_env(), timeout=300)
    assert r.returncode == 0, f"{args[:2]} exited {r.returncode}:\n{r.stdout}\n{r.stderr}"
    return r


@pytest.fixture(scope="module")
def helm(kube_apiserver, tmp_path_factory):
    """helm(*args, check=True) -> CompletedProcess: the pinned helm against the
    test kube-apiserver, with its config, cache and data in a temp dir."""
    exe = peers.need(lambda: peers.binary("KT_HELM_BIN"))
    home = tmp_path_factory.mktemp("helm-home")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HELM_", "KUBECONFIG"))}
    env.update(HOME=str(home), HELM_CACHE_HOME=str(home / "cache"),
               HELM_CONFIG_HOME=str(home / "config"), HELM_DATA_HOME=str(home / "data"),
               KUBECONFIG=str(kube_apiserver.kubeconfig))

    def run(*args, check=True):
        r = subprocess.run([exe, *map(str, args)], capture_output=True, text=True, env=env,
                           timeout=180)
        if check:
            assert r.returncode == 0, f"helm {' '.join(map(str, args))} exited " \
                                      f"{r.returncode}:\n{r.stdout}\n{r.stderr}"
        return r
    return run


@pytest.fixture(scope="module")
def api(kube_apiserver):
    k = kube_apiserver
    return sc.Api(k.url, k.token, k.ca_file)


@pytest.fixture(scope="module")
def repo(kube_apiserver, tmp_path_factory):
    r = tmp_path_factory.mktemp("helm-repo") / "repo"
    out = subprocess.run([str(KT), "repo", "init", "--repo", str(r)], capture_output=True,
                         text=True, env=kt_env(), timeout=120)
    assert out.returncode == 0, out.stderr
    return r


def listing(api, ns, group, resource):
    if group == "core":
        base = "/api/v1"
    else:
        base = f"/apis/{group}/" + api.get(f"/apis/{group}")["preferredVersion"]["version"]
    return {o["metadata"]["name"]: o for o in api.list(f"{base}/namespaces/{ns}/{resource}")}


def snapshot_of(api, ns):
    return {r: listing(api, ns, g, r) for g, r, _ in RESOURCES}


def release_of(secret):
    """The release JSON inside a Helm release Secret: Secret data is base64
    of Helm's text, which is base64(gzip(JSON))."""
    text = base64.b64decode(secret["data"]["release"])
    return json.loads(gzip.decompress(base64.b64decode(text)))


def comparable(obj, kind):
    """What a restore must reproduce: everything but what the cluster assigns
    (and the namespace Helm's annotation and release record name: its own)."""
    o = json.loads(json.dumps(obj))
    o["kind"] = kind
    m = o["metadata"]
    ann = m.get("annotations", {})
    if ann.get("meta.helm.sh/release-namespace") == m.get("namespace"):
        ann["meta.helm.sh/release-namespace"] = "<its namespace>"
    for k in ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields",
              "namespace", "selfLink", "ownerReferences"):
        m.pop(k, None)
    o.pop("status", None)
    if kind == "Service":
        if o["spec"].get("clusterIP") != "None":
            o["spec"].pop("clusterIP", None)
            o["spec"].pop("clusterIPs", None)
    if kind == "PersistentVolumeClaim":
        for k in ("volumeName", "dataSource", "dataSourceRef", "storageClassName"):
            o["spec"].pop(k, None)
        m.pop("annotations", None)
        m.pop("finalizers", None)
    if o.get("type") == "helm.sh/release.v1":
        rel = release_of(o)
        if rel["namespace"] == obj["metadata"]["namespace"]:
            rel["namespace"] = "<its namespace>"
        o["data"]["release"] = rel
    return o


def make_statefulset_pvc(api, ns):
    """data-pg-0 as the StatefulSet controller makes it from the claim
    template (named TEMPLATE-STS-ORDINAL, the template's labels), bound as
    the PV controller binds it."""
    sc.make_bound_pvc(api, ns, "data-pg-0", size="1Gi")
    api.merge_patch(f"/api/v1/namespaces/{ns}/persistentvolumeclaims/data-pg-0",
                    {"metadata": {"labels": SELECTOR}})


@pytest.fixture(scope="module")
def installed(helm, api):
    r = helm("install", "pg", CHART, "-n", NS, "--create-namespace")
    assert "STATUS: deployed" in r.stdout, r.stdout
    peers.wait_for(lambda: api.request("GET", f"/apis/{GROUP}/v1/namespaces/{NS}/databases")[0]
                   == 200, 30, "the chart's CRD served")
    make_statefulset_pvc(api, NS)
    before = snapshot_of(api, NS)
    assert set(before["secrets"]) == {"pg", "sh.helm.release.v1.pg.v1"}
    assert set(before["services"]) == {"pg", "pg-hl"}
    assert set(before["databases"]) == {"app"}
    sts = before["statefulsets"]["pg"]
    assert sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    assert sts["metadata"]["annotations"]["meta.helm.sh/release-namespace"] == NS
    assert release_of(before["secrets"]["sh.helm.release.v1.pg.v1"])["namespace"] == NS
    password = base64.b64decode(before["secrets"]["pg"]["data"]["password"]).decode()
    return {"before": before, "password": password}


@pytest.fixture(scope="module")
def restored(kube_apiserver, api, repo, installed):
    """Back up pg, delete the namespace entirely, restore into pg and pg-copy."""
    r = kt(kube_apiserver, "app", "backup", NS, "--repo", repo, "-o", "json")
    out = json.loads(r.stdout)
    assert out["failed"] == 0 and out["volumes"] == 1, out
    outputs = [r.stdout + r.stderr]
    delete_namespace(api, NS)
    assert api.request("GET", f"/api/v1/namespaces/{NS}")[0] == 404
    reports = {}
    for to in (NS, COPY):
        args = ["app", "restore", out["id"], "--repo", repo, "-o", "json"]
        if to != NS:
            args += ["--to-namespace", to]
        r = kt(kube_apiserver, *args)
        outputs.append(r.stdout + r.stderr)
        reports[to] = {(x["kind"], x["name"]): x["result"] for x in json.loads(r.stdout)}
    return {"id": out["id"], "reports": reports, "outputs": outputs}


@pytest.mark.parametrize("to", [NS, COPY])
def test_restored_objects_equal_the_installed_ones(api, installed, restored, to):
    report = restored["reports"][to]
    assert report[("Namespace", to)] == "created", report
    assert "failed" not in report.values(), report
    for kind, name in (("Secret", "sh.helm.release.v1.pg.v1"), ("StatefulSet", "pg"),
                       ("Database", "app"), ("PersistentVolumeClaim", "data-pg-0")):
        assert report[(kind, name)] == "created", (kind, name, report)
    after = snapshot_of(api, to)
    for group, resource, kind in RESOURCES:
        before = installed["before"][resource]
        assert set(before) <= set(after[resource]), (resource, set(before), set(after[resource]))
        for name, obj in before.items():
            assert comparable(after[resource][name], kind) == comparable(obj, kind), \
                (to, resource, name)
    # Helm's labels and annotations are intact; the release-namespace
    # annotation and the release inside the record name the target.
    sts = after["statefulsets"]["pg"]
    assert sts["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    assert sts["metadata"]["annotations"]["meta.helm.sh/release-name"] == "pg"
    assert sts["metadata"]["annotations"]["meta.helm.sh/release-namespace"] == to
    rec = after["secrets"]["sh.helm.release.v1.pg.v1"]
    assert rec["type"] == "helm.sh/release.v1"
    assert rec["metadata"]["labels"]["owner"] == "helm"
    assert release_of(rec)["namespace"] == to
    if to == NS:   # in place: the record comes back byte for byte
        assert rec["data"] == installed["before"]["secrets"]["sh.helm.release.v1.pg.v1"]["data"]
    # The PVC is provisioned from the restore point's snapshot.
    pvc = after["persistentvolumeclaims"]["data-pg-0"]
    assert pvc["spec"]["dataSource"]["kind"] == "VolumeSnapshot"
    peers.wait_for(lambda: api.get(f"/api/v1/namespaces/{to}/persistentvolumeclaims/"
                                   "data-pg-0").get("status", {}).get("phase") == "Bound",
                   30, f"{to}/data-pg-0 provisioned from the snapshot")


def test_no_credential_in_any_output(installed, restored):
    for text in restored["outputs"]:
        assert installed["password"] not in text


@pytest.mark.parametrize("to", [NS, COPY])
def test_helm_manages_the_restored_release(helm, api, installed, restored, to):
    rows = json.loads(helm("list", "-n", to, "-o", "json").stdout)
    assert [(r["name"], r["namespace"], r["revision"], r["status"]) for r in rows] == \
        [("pg", to, "1", "deployed")], rows
    status = json.loads(helm("status", "pg", "-n", to, "-o", "json").stdout)
    assert status["namespace"] == to and status["info"]["status"] == "deployed"
    values = json.loads(helm("get", "values", "pg", "-n", to, "--all", "-o", "json").stdout)
    assert values["config"]["maxConnections"] == 100
    manifest = helm("get", "manifest", "pg", "-n", to).stdout
    assert "kind: StatefulSet" in manifest and "kind: Database" in manifest

    cm_path = f"/api/v1/namespaces/{to}/configmaps/pg-config"
    db_path = f"/apis/{GROUP}/v1/namespaces/{to}/databases/app"
    r = helm("upgrade", "pg", CHART, "-n", to, "--set", "config.maxConnections=200",
             "--set", "backup.schedule=0 4 * * *")
    assert "STATUS: deployed" in r.stdout and "REVISION: 2" in r.stdout, r.stdout
    assert "max_connections = 200" in api.get(cm_path)["data"]["postgresql.conf"]
    assert api.get(db_path)["spec"]["backupSchedule"] == "0 4 * * *"
    sts = api.get(f"/apis/apps/v1/namespaces/{to}/statefulsets/pg")
    assert sts["spec"]["template"]["metadata"]["annotations"]["checksum/config"] != \
        installed["before"]["statefulsets"]["pg"]["spec"]["template"]["metadata"][
            "annotations"]["checksum/config"]
    # the generated password is the one restored (the chart looks it up)
    secret = api.get(f"/api/v1/namespaces/{to}/secrets/pg")
    assert base64.b64decode(secret["data"]["password"]).decode() == installed["password"]
    rows = json.loads(helm("list", "-n", to, "-o", "json").stdout)
    assert [(r["namespace"], r["revision"], r["status"]) for r in rows] == \
        [(to, "2", "deployed")], rows
    history = json.loads(helm("history", "pg", "-n", to, "-o", "json").stdout)
    assert [(h["revision"], h["status"]) for h in history] == [(1, "superseded"),
                                                               (2, "deployed")], history

    helm("rollback", "pg", "1", "-n", to)
    assert "max_connections = 100" in api.get(cm_path)["data"]["postgresql.conf"]
    assert api.get(db_path)["spec"]["backupSchedule"] == "0 3 * * *"
    rows = json.loads(helm("list", "-n", to, "-o", "json").stdout)
    assert [(r["namespace"], r["revision"], r["status"]) for r in rows] == \
        [(to, "3", "deployed")], rows
