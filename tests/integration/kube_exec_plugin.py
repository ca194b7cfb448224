#!/usr/bin/env python3
"""A client-go exec credential plugin for the tests (test_kube_api.py): it
prints an ExecCredential the test kube-apiserver accepts.  It stands in for
aws-iam-authenticator / gke-gcloud-auth-plugin.

Environment (set through the kubeconfig's exec.env):
  KT_PLUGIN_TOKEN  the bearer token to hand out
  KT_PLUGIN_LOG    a file to which each run appends one line: the
                   KUBERNETES_EXEC_INFO it was given
  KT_PLUGIN_MODE   ok (default): token, no expiry; expired: an
                   expirationTimestamp in the past; wrong-first: a wrong token
                   on the first run, the right one afterwards; fail: exit 1;
                   garbage: print something that is not JSON; cert: the client
                   certificate/key in KT_PLUGIN_CERT/KT_PLUGIN_KEY (PEM files)
"""
import datetime
import json
import os
import sys

info = json.loads(os.environ.get("KUBERNETES_EXEC_INFO", "{}"))
log = os.environ.get("KT_PLUGIN_LOG")
runs = 0
if log:
    if os.path.exists(log):
        with open(log) as f:
            runs = len(f.readlines())
    with open(log, "a") as f:
        f.write(json.dumps(info) + "\n")

mode = os.environ.get("KT_PLUGIN_MODE", "ok")
if mode == "fail":
    print("plugin: no credentials configured", file=sys.stderr)
    sys.exit(1)
if mode == "garbage":
    print("Please log in at https://login.example/")
    sys.exit(0)

status = {}
if mode == "cert":
    status["clientCertificateData"] = open(os.environ["KT_PLUGIN_CERT"]).read()
    status["clientKeyData"] = open(os.environ["KT_PLUGIN_KEY"]).read()
else:
    token = os.environ["KT_PLUGIN_TOKEN"]
    if mode == "wrong-first" and runs == 0:
        token = "wrong" + token
    status["token"] = token
if mode == "expired":
    past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
    status["expirationTimestamp"] = past.strftime("%Y-%m-%dT%H:%M:%SZ")

print(json.dumps({"apiVersion": info.get("apiVersion", "client.authentication.k8s.io/v1"),
                  "kind": "ExecCredential", "status": status}))
