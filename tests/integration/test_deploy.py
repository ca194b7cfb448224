"""The manifests in deploy/ are accepted by a real kube-apiserver (server-side
dry run: validated against the API schema, nothing persisted), and the
example agent config is accepted by the agent's own parser."""
import pathlib
import subprocess

from test_etcd_snapshot import KT

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_daemonset_is_valid(kube_apiserver):
    body = (ROOT / "deploy/kubernetes/etcd-agent-daemonset.yaml").read_text()
    status, resp = kube_apiserver.request(
        "POST", "/apis/apps/v1/namespaces/kube-system/daemonsets?dryRun=All&fieldValidation=Strict",
        body, content_type="application/yaml")
    assert status == 201, resp
    assert resp["spec"]["template"]["spec"]["hostNetwork"] is True


def test_example_agent_config_parses(tmp_path):
    # --help after a valid --config: the file was parsed and every key known.
    r = subprocess.run([str(KT), "etcd", "agent", "--config",
                        str(ROOT / "deploy/systemd/agent.yaml"), "--help"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
