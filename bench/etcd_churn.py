#!/usr/bin/env python3
"""Consecutive etcd snapshots of a churning Kubernetes cluster, and what each
chunker makes of them (docs/chunking.md).

    bench/etcd_churn.py [--out DIR] [--nodes 50] [--snapshots 40] [--windows 24]
                        [--warmup 48] [--defrag-at 20] [--chunkstat EXE]
                        [--stat-only] [--no-delta]

1. Starts etcd 3.6 and kube-apiserver on loopback (tests/integration/peers.py),
   the apiserver with its own compactor off (--etcd-compaction-interval=0):
   this script compacts instead, at simulated 5-minute marks.
2. Loads the state of a cluster of --nodes nodes through the API: Nodes with
   full status, their Leases, namespaces, CRDs with large schemas, service
   accounts, Deployments and ReplicaSets, ~30 Pods per node with status,
   Services and EndpointSlices, ConfigMaps, Secrets, Helm release Secrets
   (gzip payloads).
3. Runs --windows simulated 5-minute windows of churn per snapshot interval
   (24 windows = the 2 hours between two backups of the agent).  Per window,
   what such a cluster writes in 5 minutes: every node's Lease renewed every
   10 s and its status once, four leader-election Leases renewed every 2 s,
   Pods replaced by rollouts and CronJobs (create, status, events, graceful
   delete, EndpointSlice and ReplicaSet status), Events created, counted up
   and expired after one hour (deleted, as their TTL would), ConfigMap and
   Secret updates, a Helm upgrade every hour.  At the end of each window the
   revision store is compacted to the revision of the previous window's end,
   as kube-apiserver's compactor does every 5 minutes.
4. `etcdctl snapshot save` after each interval into DIR/snap-NNN.db; before
   snapshot --defrag-at, one `etcdctl defrag`.
5. Runs bench/chunkstat (--chunkstat, default the one in /tmp/build-chunk or
   build/) over the series: the default chunker set, then again with a zstd
   dictionary and with a dictionary and 1 MiB compression groups; writes
   DIR/chunkstat*.txt (and .csv, per file).
6. A delta baseline with the zstd command line (when installed): each
   snapshot alone (zstd -3), each against the one before it and against the
   first (`zstd -3 --patch-from`); writes DIR/delta.txt.

Simulated timestamps (renewTime, heartbeats, event times) advance 5 minutes
per window, whatever the wall clock does.  Everything is seeded: two runs
load and churn the same objects (etcd's layout still depends on timing).
Not part of `make check`: with the defaults it makes ~2.7 million API writes
and runs for about two hours on two cores.  --snapshots 3 --windows 4
--warmup 4 --nodes 10 is a one-minute trial.
"""

import argparse
import base64
import datetime
import gzip
import hashlib
import http.client
import json
import os
import queue
import random
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.dont_write_bytecode = True
sys.path.insert(0, str(REPO / "tests" / "integration"))
import peers  # noqa: E402

WINDOW_S = 300            # one simulated compaction window
T0 = datetime.datetime(2026, 11, 2, 8, 0, 0, tzinfo=datetime.timezone.utc)


def log(msg):
    print(f"[churn {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# a small parallel REST client


class Api:
    """Requests on THREADS keep-alive HTTPS connections to kube-apiserver.
    run(batch) sends a list of (method, path, body[, content_type]) and
    waits for all; bodies of answers are read and dropped.  Counts errors
    and stops the run when more than a few percent fail."""

    def __init__(self, api, threads=4):
        self.host, _, port = api.url.split("://", 1)[1].rpartition(":")
        self.port = int(port)
        self.ssl = api.ssl_context()
        self.token = api.token
        self.q = queue.Queue()
        self.lock = threading.Lock()
        self.n_ok = self.n_err = 0
        self.errors = []
        self.threads = [threading.Thread(target=self._worker, daemon=True) for _ in range(threads)]
        for t in self.threads:
            t.start()

    def _conn(self):
        return http.client.HTTPSConnection(self.host, self.port, timeout=120, context=self.ssl)

    def _worker(self):
        conn = self._conn()
        while True:
            item = self.q.get()
            if item is None:
                return
            req, done = item
            method, path, body = req[0], req[1], req[2]
            ctype = req[3] if len(req) > 3 else (
                "application/merge-patch+json" if method == "PATCH" else "application/json")
            data = None if body is None else json.dumps(body, separators=(",", ":")).encode()
            headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json",
                       "User-Agent": "kubelet/v1.35.4 (linux/amd64) churn"}
            if data is not None:
                headers["Content-Type"] = ctype
            status, answer = 0, b""
            for attempt in range(3):
                try:
                    conn.request(method, path, body=data, headers=headers)
                    r = conn.getresponse()
                    answer = r.read()
                    status = r.status
                    if status == 429 or status >= 500:
                        time.sleep(0.2)
                        continue
                    break
                except (OSError, http.client.HTTPException) as e:
                    conn.close()
                    conn = self._conn()
                    status, answer = 0, str(e).encode()
            with self.lock:
                if 200 <= status < 300 or (method == "DELETE" and status == 404):
                    self.n_ok += 1
                else:
                    self.n_err += 1
                    if len(self.errors) < 10:
                        self.errors.append(f"{method} {path} -> {status} {answer[:300]!r}")
            done()

    def run(self, batch):
        if not batch:
            return
        left = [len(batch)]
        ev = threading.Event()
        lk = threading.Lock()

        def done():
            with lk:
                left[0] -= 1
                if left[0] == 0:
                    ev.set()
        for req in batch:
            self.q.put((req, done))
        ev.wait()
        if self.n_err > 50 and self.n_err > 0.02 * (self.n_ok + self.n_err):
            raise RuntimeError(f"{self.n_err} failed requests, e.g.:\n" + "\n".join(self.errors))

    def close(self):
        for _ in self.threads:
            self.q.put(None)


# ---------------------------------------------------------------------------
# object shapes (what kubelets, controllers and Helm write, abridged)


def ts(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def micro(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


def hexid(rng, n=64):
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


def uid(rng):
    h = hexid(rng, 32)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


IMAGES = [f"registry.example.com/team-{i % 9}/service-{i}:v1.{i % 17}.{i % 5}" for i in range(120)]


class Cluster:
    """The simulated cluster's objects and the churn it produces."""

    def __init__(self, n_nodes, seed=1):
        self.rng = random.Random(seed)
        self.n_nodes = n_nodes
        self.nodes = [f"ip-10-0-{i // 200}-{i % 200 + 10}.ec2.internal" for i in range(n_nodes)]
        self.namespaces = [f"team-{i:02d}" for i in range(max(4, n_nodes * 4 // 5))]
        self.deployments = []      # dict(ns, name, rs (current), rs_hash, pods[list of names], gen)
        self.events = []           # (window, ns, name) for TTL expiry
        self.event_names = []      # recent events for count updates
        self.helm = []             # dict(ns, name, rev)
        self.jobs = []             # (ns, name, pod)
        self.configmaps = []       # (ns, name)
        self.secrets = []          # (ns, name)
        self.window = 0
        self.seq = 0
        self.node_images = {}

    def now(self, frac=0.0):
        return T0 + datetime.timedelta(seconds=(self.window + frac) * WINDOW_S)

    def name_suffix(self, n=5):
        return "".join(self.rng.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(n))

    # -- shapes ---------------------------------------------------------------

    def node_obj(self, i):
        name = self.nodes[i]
        return {"apiVersion": "v1", "kind": "Node", "metadata": {
            "name": name,
            "labels": {"beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux",
                       "kubernetes.io/arch": "amd64", "kubernetes.io/hostname": name,
                       "kubernetes.io/os": "linux",
                       "node.kubernetes.io/instance-type": ["m5.2xlarge", "m5.4xlarge"][i % 2],
                       "topology.kubernetes.io/region": "us-east-1",
                       "topology.kubernetes.io/zone": f"us-east-1{'abc'[i % 3]}",
                       "node-role.kubernetes.io/worker": ""},
            "annotations": {"node.alpha.kubernetes.io/ttl": "0",
                            "volumes.kubernetes.io/controller-managed-attach-detach": "true",
                            "csi.volume.kubernetes.io/nodeid":
                                json.dumps({"ebs.csi.aws.com": f"i-0{hexid(self.rng, 16)}"})}},
            "spec": {"podCIDR": f"10.244.{i}.0/24", "podCIDRs": [f"10.244.{i}.0/24"],
                     "providerID": f"aws:///us-east-1{'abc'[i % 3]}/i-0{hexid(self.rng, 16)}"}}

    def node_status(self, i):
        t = ts(self.now(i / max(1, self.n_nodes)))
        if i not in self.node_images:          # stable per node: images, machine ids
            self.node_ids = getattr(self, "node_ids", {})
            self.node_ids[i] = (hexid(self.rng, 32), uid(self.rng), uid(self.rng))
            imgs = self.rng.sample(IMAGES, 35)
            self.node_images[i] = [{"names": [f"{im.split(':')[0]}@sha256:{hexid(self.rng)}", im],
                                    "sizeBytes": self.rng.randrange(5_000_000, 900_000_000)}
                                   for im in imgs]
        conds = [{"type": ty, "status": st, "lastHeartbeatTime": t,
                  "lastTransitionTime": ts(T0), "reason": rs, "message": msg}
                 for ty, st, rs, msg in (
                     ("MemoryPressure", "False", "KubeletHasSufficientMemory",
                      "kubelet has sufficient memory available"),
                     ("DiskPressure", "False", "KubeletHasNoDiskPressure",
                      "kubelet has no disk pressure"),
                     ("PIDPressure", "False", "KubeletHasSufficientPID",
                      "kubelet has sufficient PID available"),
                     ("Ready", "True", "KubeletReady", "kubelet is posting ready status"))]
        return {"status": {
            "capacity": {"cpu": "8", "ephemeral-storage": "104845292Ki", "hugepages-1Gi": "0",
                         "hugepages-2Mi": "0", "memory": "32386544Ki", "pods": "110"},
            "allocatable": {"cpu": "7910m", "ephemeral-storage": "95551679124",
                            "hugepages-1Gi": "0", "hugepages-2Mi": "0",
                            "memory": "31369712Ki", "pods": "110"},
            "conditions": conds,
            "addresses": [{"type": "InternalIP", "address": f"10.0.{i // 200}.{i % 200 + 10}"},
                          {"type": "Hostname", "address": self.nodes[i]},
                          {"type": "InternalDNS", "address": self.nodes[i]}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {"machineID": self.node_ids[i][0], "systemUUID": self.node_ids[i][1],
                         "bootID": self.node_ids[i][2], "kernelVersion": "6.1.0-27-cloud-amd64",
                         "osImage": "Debian GNU/Linux 12 (bookworm)",
                         "containerRuntimeVersion": "containerd://1.7.24",
                         "kubeletVersion": "v1.35.4", "kubeProxyVersion": "v1.35.4",
                         "operatingSystem": "linux", "architecture": "amd64"},
            "images": self.node_images[i]}}

    def crd(self, i):
        group = f"{['cert', 'monitoring', 'networking', 'storage', 'policy'][i % 5]}.op{i}.example.com"
        props = {f"field{k}": {"type": "string", "description": self.config_text(
                     self.rng.choice([200, 600, 2000]))}
                 for k in range(self.rng.choice([20, 60, 120]))}
        schema = {"type": "object", "properties": {
            "spec": {"type": "object", "properties": props},
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}
        return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                "metadata": {"name": f"things{i}.{group}"},
                "spec": {"group": group, "scope": "Namespaced",
                         "names": {"plural": f"things{i}", "singular": f"thing{i}",
                                   "kind": f"Thing{i}"},
                         "versions": [{"name": "v1", "served": True, "storage": True,
                                       "schema": {"openAPIV3Schema": schema}}]}}

    def lease_obj(self, ns, name, holder, duration):
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": name, "namespace": ns},
                "spec": {"holderIdentity": holder, "leaseDurationSeconds": duration,
                         "acquireTime": micro(T0), "renewTime": micro(self.now()),
                         "leaseTransitions": 0}}

    def pod_obj(self, d, name, node):
        app = d["name"]
        return {"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": name, "namespace": d["ns"], "generateName": f"{d['rs']}-",
            "labels": {"app.kubernetes.io/name": app, "app.kubernetes.io/instance": app,
                       "pod-template-hash": d["rs_hash"]},
            "annotations": {"kubectl.kubernetes.io/restartedAt": ts(T0),
                            "prometheus.io/scrape": "true", "prometheus.io/port": "9090"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": d["rs"],
                                 "uid": d["rs_uid"], "controller": True,
                                 "blockOwnerDeletion": True}]},
            "spec": {"nodeName": node, "serviceAccountName": d.get("sa", app),
                     "containers": [{
                         "name": app, "image": d["image"],
                         "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"},
                                   {"name": "metrics", "containerPort": 9090,
                                    "protocol": "TCP"}],
                         "env": [{"name": f"{app.upper().replace('-', '_')}_SETTING_{k}",
                                  "value": f"value-{k}-{d['gen']}"} for k in range(8)] +
                                [{"name": "POD_NAME", "valueFrom": {"fieldRef": {
                                    "apiVersion": "v1", "fieldPath": "metadata.name"}}}],
                         "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                                       "limits": {"memory": "512Mi"}},
                         "volumeMounts": [{"name": "config", "mountPath": "/etc/app"}],
                         "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080,
                                                       "scheme": "HTTP"},
                                           "periodSeconds": 10, "timeoutSeconds": 1,
                                           "successThreshold": 1, "failureThreshold": 3},
                         "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080,
                                                        "scheme": "HTTP"},
                                            "periodSeconds": 5, "timeoutSeconds": 1,
                                            "successThreshold": 1, "failureThreshold": 3},
                         "imagePullPolicy": "IfNotPresent"}],
                     "volumes": [{"name": "config", "configMap": {"name": f"{app}-config",
                                                                  "defaultMode": 420}}],
                     "tolerations": [{"key": "node.kubernetes.io/not-ready",
                                      "operator": "Exists", "effect": "NoExecute",
                                      "tolerationSeconds": 300},
                                     {"key": "node.kubernetes.io/unreachable",
                                      "operator": "Exists", "effect": "NoExecute",
                                      "tolerationSeconds": 300}]}}

    def pod_status(self, d, node, running):
        t = ts(self.now(0.5))
        ip = f"10.244.{self.nodes.index(node)}.{self.rng.randrange(2, 250)}"
        st = {"phase": "Running" if running else "Pending", "hostIP": "10.0.0.1",
              "podIP": ip, "podIPs": [{"ip": ip}], "startTime": t, "qosClass": "Burstable",
              "conditions": [{"type": ty, "status": "True" if running or ty == "PodScheduled"
                              else "False", "lastProbeTime": None, "lastTransitionTime": t}
                             for ty in ("PodReadyToStartContainers", "Initialized", "Ready",
                                        "ContainersReady", "PodScheduled")],
              "containerStatuses": [{
                  "name": d["name"], "image": d["image"],
                  "imageID": f"{d['image'].split(':')[0]}@sha256:{hexid(self.rng)}",
                  "containerID": f"containerd://{hexid(self.rng)}",
                  "ready": running, "started": running, "restartCount": 0,
                  "state": {"running": {"startedAt": t}} if running else
                           {"waiting": {"reason": "ContainerCreating"}}}]}
        return {"status": st}

    def event_obj(self, ns, inv_kind, inv_name, reason, msg, node=None):
        self.seq += 1
        name = f"{inv_name}.{self.seq:016x}"
        t = ts(self.now(self.rng.random()))
        return name, {"apiVersion": "v1", "kind": "Event",
                      "metadata": {"name": name, "namespace": ns},
                      "involvedObject": {"kind": inv_kind, "namespace": ns, "name": inv_name,
                                         "apiVersion": "v1", "uid": uid(self.rng)},
                      "reason": reason, "message": msg, "type": "Normal", "count": 1,
                      "firstTimestamp": t, "lastTimestamp": t,
                      "source": {"component": "kubelet" if node else "deployment-controller",
                                 **({"host": node} if node else {})},
                      "reportingComponent": "kubelet" if node else "deployment-controller",
                      "reportingInstance": node or ""}

    def config_text(self, n):
        lines = []
        while sum(map(len, lines)) < n:
            k = self.rng.randrange(10_000)
            lines.append(f"setting.{k % 37}.option_{k}: \"{self.rng.choice(['on', 'off', 'auto'])}"
                         f"-{k % 101}\"  # tuned for {self.rng.choice(IMAGES)}\n")
        return "".join(lines)[:n]

    def secret_data(self, n):
        return {f"key-{i}": base64.b64encode(self.rng.randbytes(n // 3)).decode()
                for i in range(3)}

    def helm_secret(self, h):
        payload = json.dumps({"name": h["name"], "version": h["rev"],
                              "manifest": self.config_text(h["size"]),
                              "chart": {"values": self.config_text(h["size"] // 4)}}).encode()
        gz = base64.b64encode(gzip.compress(payload, 6)).decode()
        return {"apiVersion": "v1", "kind": "Secret", "type": "helm.sh/release.v1",
                "metadata": {"name": f"sh.helm.release.v1.{h['name']}.v{h['rev']}",
                             "namespace": h["ns"],
                             "labels": {"name": h["name"], "owner": "helm",
                                        "status": "deployed", "version": str(h["rev"])}},
                "data": {"release": base64.b64encode(gz.encode()).decode()}}

    def endpointslice(self, d):
        return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": f"{d['name']}-abcde", "namespace": d["ns"],
                             "labels": {"kubernetes.io/service-name": d["name"],
                                        "endpointslice.kubernetes.io/managed-by":
                                            "endpointslice-controller.k8s.io"}},
                "addressType": "IPv4",
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                "endpoints": [{"addresses": [f"10.244.{self.rng.randrange(self.n_nodes)}."
                                             f"{self.rng.randrange(2, 250)}"],
                               "conditions": {"ready": True, "serving": True,
                                              "terminating": False},
                               "nodeName": p[1], "targetRef": {"kind": "Pod", "name": p[0],
                                                               "namespace": d["ns"]}}
                              for p in d["pods"]]}

    # -- paths ----------------------------------------------------------------

    @staticmethod
    def core(ns, res, name=None, sub=None):
        p = f"/api/v1/namespaces/{ns}/{res}" if ns else f"/api/v1/{res}"
        return p + (f"/{name}" if name else "") + (f"/{sub}" if sub else "")

    @staticmethod
    def group(gv, ns, res, name=None, sub=None):
        p = f"/apis/{gv}/namespaces/{ns}/{res}" if ns else f"/apis/{gv}/{res}"
        return p + (f"/{name}" if name else "") + (f"/{sub}" if sub else "")

    # -- the initial state ----------------------------------------------------

    def load(self, api):
        rng = self.rng
        api.run([("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                 "metadata": {"name": ns}})
                 for ns in self.namespaces])
        # CRDs of the operators such a cluster runs: big, static schemas
        api.run([("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                  self.crd(i)) for i in range(max(4, self.n_nodes * 2 // 5))])
        api.run([("POST", self.core(ns, "serviceaccounts"), {"metadata": {"name": "default"}})
                 for ns in self.namespaces + ["kube-system", "default"]])
        api.run([("POST", "/api/v1/nodes", self.node_obj(i)) for i in range(self.n_nodes)])
        api.run([("PATCH", f"/api/v1/nodes/{self.nodes[i]}/status", self.node_status(i))
                 for i in range(self.n_nodes)])
        api.run([("POST", self.group("coordination.k8s.io/v1", "kube-node-lease", "leases"),
                  self.lease_obj("kube-node-lease", n, n, 40)) for n in self.nodes])
        self.leaders = ["kube-controller-manager", "kube-scheduler", "cert-manager-controller",
                        "ingress-nginx-leader"]
        api.run([("POST", self.group("coordination.k8s.io/v1", "kube-system", "leases"),
                  self.lease_obj("kube-system", n, f"{n}_{uid(rng)}", 15)) for n in self.leaders])
        # CA bundle per namespace, as kube-controller-manager publishes it
        ca = "-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(rng.randbytes(800)).decode() + \
             "-----END CERTIFICATE-----\n"
        api.run([("POST", self.core(ns, "configmaps"),
                  {"metadata": {"name": "kube-root-ca.crt"}, "data": {"ca.crt": ca}})
                 for ns in self.namespaces])
        n_deploy = self.n_nodes * 6          # ~5 pods each: 30 pods per node
        batch_a, batch_b, batch_c = [], [], []
        for k in range(n_deploy):
            ns = self.namespaces[k % len(self.namespaces)]
            name = f"svc-{k:04d}-{rng.choice(['api', 'web', 'worker', 'cache', 'auth'])}"
            d = {"ns": ns, "name": name, "image": rng.choice(IMAGES), "gen": 1,
                 "replicas": rng.choice([2, 3, 5, 5, 8]), "pods": []}
            self.deployments.append(d)
            batch_a.append(("POST", self.core(ns, "serviceaccounts"), {"metadata": {"name": name}}))
            batch_a.append(("POST", self.core(ns, "configmaps"), {
                "metadata": {"name": f"{name}-config", "labels": {"app": name}},
                "data": {"app.yaml": self.config_text(rng.choice([600, 2000, 6000, 20000]))}}))
            batch_a.append(("POST", self.core(ns, "configmaps"), {
                "metadata": {"name": f"{name}-env", "labels": {"app": name}},
                "data": {f"K{i}": f"v{rng.randrange(1000)}" for i in range(20)}}))
            self.configmaps += [(ns, f"{name}-config"), (ns, f"{name}-env")]
            batch_a.append(("POST", self.core(ns, "secrets"), {
                "metadata": {"name": f"{name}-creds"}, "type": "Opaque",
                "data": self.secret_data(rng.choice([300, 1200, 3000]))}))
            self.secrets.append((ns, f"{name}-creds"))
            batch_a.append(("POST", self.core(ns, "services"), {
                "metadata": {"name": name, "labels": {"app": name}},
                "spec": {"selector": {"app.kubernetes.io/name": name},
                         "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}))
            batch_a.append(("POST", self.group("apps/v1", ns, "deployments"), self.deployment(d)))
            d["old_rs"] = []
            for old in range(rng.randrange(1, 6)):            # history of old ReplicaSets
                h = f"{rng.randrange(16 ** 10):010x}"
                d["old_rs"].append(f"{name}-{h}")
                batch_b.append(("POST", self.group("apps/v1", ns, "replicasets"),
                                self.replicaset(d, h, 0)))
            self.new_rs(d)
            batch_b.append(("POST", self.group("apps/v1", ns, "replicasets"),
                            self.replicaset(d, d["rs_hash"], d["replicas"])))
            for _ in range(d["replicas"]):
                pod = f"{d['rs']}-{self.name_suffix()}"
                node = rng.choice(self.nodes)
                d["pods"].append((pod, node))
                batch_c.append(("POST", self.core(ns, "pods"), self.pod_obj(d, pod, node)))
        log(f"loading {n_deploy} deployments and their objects")
        api.run(batch_a)
        api.run(batch_b)
        api.run(batch_c)
        api.run([("PATCH", self.core(d["ns"], "pods", p, "status"),
                  self.pod_status(d, node, True)) for d in self.deployments for p, node in d["pods"]])
        api.run([("POST", self.group("discovery.k8s.io/v1", d["ns"], "endpointslices"),
                  self.endpointslice(d)) for d in self.deployments])
        # TLS secrets and Helm releases (10 revisions of history kept)
        api.run([("POST", self.core(self.namespaces[i % len(self.namespaces)], "secrets"), {
            "metadata": {"name": f"tls-{i:03d}"}, "type": "kubernetes.io/tls",
            "data": {"tls.crt": base64.b64encode(rng.randbytes(1400)).decode(),
                     "tls.key": base64.b64encode(rng.randbytes(1200)).decode()}})
            for i in range(self.n_nodes * 2)])
        batch = []
        for i in range(self.n_nodes):
            h = {"ns": self.namespaces[i % len(self.namespaces)], "name": f"release-{i:02d}",
                 "rev": 0, "size": rng.choice([8000, 30000, 90000])}
            self.helm.append(h)
            for _ in range(rng.randrange(1, 11)):
                h["rev"] += 1
                batch.append(("POST", self.core(h["ns"], "secrets"), self.helm_secret(h)))
        api.run(batch)
        log(f"loaded: {len(self.deployments)} deployments, "
            f"{sum(len(d['pods']) for d in self.deployments)} pods, {self.n_nodes} nodes, "
            f"{sum(h['rev'] for h in self.helm)} helm release secrets")

    def new_rs(self, d):
        d["rs_hash"] = f"{self.rng.randrange(16 ** 10):010x}"
        d["rs"] = f"{d['name']}-{d['rs_hash']}"
        d["rs_uid"] = uid(self.rng)

    def deployment(self, d):
        labels = {"app.kubernetes.io/name": d["name"]}
        return {"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": d["name"], "labels": labels,
                             "annotations": {"deployment.kubernetes.io/revision": str(d["gen"])}},
                "spec": {"replicas": d["replicas"], "revisionHistoryLimit": 10,
                         "selector": {"matchLabels": labels},
                         "template": {"metadata": {"labels": labels,
                                                   "annotations": {"rollout": str(d["gen"])}},
                                      "spec": {"containers": [{"name": d["name"],
                                                               "image": d["image"]}]}}}}

    def replicaset(self, d, h, replicas):
        labels = {"app.kubernetes.io/name": d["name"], "pod-template-hash": h}
        return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": f"{d['name']}-{h}", "labels": labels,
                             "annotations": {"deployment.kubernetes.io/desired-replicas":
                                             str(d["replicas"]),
                                             "deployment.kubernetes.io/max-replicas":
                                             str(d["replicas"] + 1),
                                             "deployment.kubernetes.io/revision": str(d["gen"])}},
                "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                         "template": {"metadata": {"labels": labels},
                                      "spec": {"containers": [{"name": d["name"],
                                                               "image": d["image"]}]}}}}

    # -- one window of churn ----------------------------------------------------

    def churn_window(self, api):
        """Three phases (creates, updates, deletes), each sent in parallel."""
        rng = self.rng
        create, update, delete = [], [], []
        lease_path = "coordination.k8s.io/v1"
        # node leases every 10 s, leader leases every 2 s
        for k in range(WINDOW_S // 10):
            for n in self.nodes:
                (create, update, delete)[k % 3].append((
                    "PATCH", self.group(lease_path, "kube-node-lease", "leases", n),
                    {"spec": {"renewTime": micro(self.now(k / 30 + rng.random() / 30))}}))
        for k in range(WINDOW_S // 2):
            for n in self.leaders:
                (create, update, delete)[k % 3].append((
                    "PATCH", self.group(lease_path, "kube-system", "leases", n),
                    {"spec": {"renewTime": micro(self.now(k / 150))}}))
        # node status once per window (with leases, kubelets report every 5 min)
        update += [("PATCH", f"/api/v1/nodes/{self.nodes[i]}/status", self.node_status(i))
                   for i in range(self.n_nodes)]
        # pod replacement: ~5 % of pods per hour, by rollouts
        n_replace = max(1, round(sum(len(d["pods"]) for d in self.deployments) * 0.05 / 12))
        status_after = []
        for _ in range(n_replace):
            d = rng.choice(self.deployments)
            if rng.random() < 0.3:                          # a rollout: a new ReplicaSet
                d["gen"] += 1
                # the old one is scaled to 0 and kept; beyond 10 the oldest goes
                # (revisionHistoryLimit), as the deployment controller does
                update.append(("PATCH", self.group("apps/v1", d["ns"], "replicasets", d["rs"]),
                               {"spec": {"replicas": 0}}))
                d["old_rs"].append(d["rs"])
                if len(d["old_rs"]) > 10:
                    delete.append(("DELETE", self.group("apps/v1", d["ns"], "replicasets",
                                                        d["old_rs"].pop(0)), None))
                self.new_rs(d)
                create.append(("POST", self.group("apps/v1", d["ns"], "replicasets"),
                               self.replicaset(d, d["rs_hash"], d["replicas"])))
                update.append(("PATCH", self.group("apps/v1", d["ns"], "deployments", d["name"]),
                               {"metadata": {"annotations": {
                                   "deployment.kubernetes.io/revision": str(d["gen"])}},
                                "spec": {"template": {"metadata": {"annotations": {
                                    "rollout": str(d["gen"])}}}}}))
            old, old_node = d["pods"].pop(rng.randrange(len(d["pods"])))
            pod, node = f"{d['rs']}-{self.name_suffix()}", rng.choice(self.nodes)
            d["pods"].append((pod, node))
            create.append(("POST", self.core(d["ns"], "pods"), self.pod_obj(d, pod, node)))
            status_after.append(("PATCH", self.core(d["ns"], "pods", pod, "status"),
                                 self.pod_status(d, node, False)))
            status_after.append(("PATCH", self.core(d["ns"], "pods", pod, "status"),
                                 self.pod_status(d, node, True)))
            update.append(("DELETE", self.core(d["ns"], "pods", old) + "?gracePeriodSeconds=30",
                           None))
            delete.append(("DELETE", self.core(d["ns"], "pods", old) + "?gracePeriodSeconds=0",
                           None))
            delete.append(("PUT", self.group("discovery.k8s.io/v1", d["ns"], "endpointslices",
                                             f"{d['name']}-abcde"), self.endpointslice(d)))
            delete.append(("PATCH", self.group("apps/v1", d["ns"], "replicasets", d["rs"],
                                               "status"),
                           {"status": {"replicas": d["replicas"], "readyReplicas": d["replicas"],
                                       "availableReplicas": d["replicas"],
                                       "observedGeneration": d["gen"]}}))
            for reason, msg in (("Scheduled", f"Successfully assigned {d['ns']}/{pod} to {node}"),
                                ("Pulled", f'Container image "{d["image"]}" already present'),
                                ("Created", f"Created container {d['name']}"),
                                ("Started", f"Started container {d['name']}"),
                                ("Killing", f"Stopping container {d['name']}")):
                self._event(create, d["ns"], "Pod", pod, reason, msg, node)
        # CronJobs: 4 jobs per window, 3 finished kept each
        for c in range(4):
            ns = self.namespaces[c]
            job = f"backup-{c}-{self.window:08d}"
            pod = f"{job}-{self.name_suffix()}"
            node = rng.choice(self.nodes)
            create.append(("POST", self.group("batch/v1", ns, "jobs"), {
                "metadata": {"name": job, "labels": {"cronjob": f"backup-{c}"}},
                "spec": {"backoffLimit": 2, "template": {"spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "backup", "image": IMAGES[c],
                                    "args": ["--run", job]}]}}}}))
            d = {"ns": ns, "name": "backup", "sa": "default", "image": IMAGES[c], "rs": job,
                 "rs_hash": "job",
                 "rs_uid": uid(rng), "gen": self.window}
            create.append(("POST", self.core(ns, "pods"), self.pod_obj(d, pod, node)))
            status_after.append(("PATCH", self.core(ns, "pods", pod, "status"),
                                 self.pod_status(d, node, True)))
            status_after.append(("PATCH", self.group("batch/v1", ns, "jobs", job, "status"),
                                 {"status": {"startTime": ts(self.now()), "active": 1}}))
            for reason in ("Scheduled", "Pulled", "Created", "Started", "Completed"):
                self._event(create, ns, "Pod", pod, reason, f"{reason} {pod}", node)
            self.jobs.append((ns, job, pod))
        while len(self.jobs) > 12:
            ns, job, pod = self.jobs.pop(0)
            # Background: with Orphan (the default for jobs) the object would
            # wait forever for a garbage collector that does not run here
            delete.append(("DELETE", self.group("batch/v1", ns, "jobs", job) +
                           "?propagationPolicy=Background", None))
            delete.append(("DELETE", self.core(ns, "pods", pod) + "?gracePeriodSeconds=0", None))
        # background events: ~1/s, half of them repeats (count++)
        for _ in range(WINDOW_S // 2):
            ns = rng.choice(self.namespaces)
            self._event(create, ns, "Deployment", rng.choice(self.deployments)["name"],
                        rng.choice(["ScalingReplicaSet", "FailedGetScale", "Unhealthy",
                                    "BackOff", "SuccessfulCreate"]),
                        f"message {rng.randrange(100000)}")
        for _ in range(WINDOW_S // 2):
            if self.event_names:
                ns, name = rng.choice(self.event_names[-2000:])
                update.append(("PATCH", self.core(ns, "events", name),
                               {"count": rng.randrange(2, 50), "lastTimestamp":
                                ts(self.now(rng.random()))}))
        # events expire after an hour (12 windows): the TTL lease would delete them
        while self.events and self.events[0][0] <= self.window - 12:
            _, ns, name = self.events.pop(0)
            delete.append(("DELETE", self.core(ns, "events", name), None))
        # config churn: 2 ConfigMaps, 1 Secret per window; a Helm upgrade per hour
        for ns, name in rng.sample(self.configmaps, 2):
            update.append(("PATCH", self.core(ns, "configmaps", name),
                           {"data": {"app.yaml": self.config_text(rng.choice([600, 2000, 6000]))}}))
        ns, name = rng.choice(self.secrets)
        update.append(("PATCH", self.core(ns, "secrets", name),
                       {"data": self.secret_data(rng.choice([300, 1200]))}))
        if self.window % 12 == 0:
            h = rng.choice(self.helm)
            h["rev"] += 1
            create.append(("POST", self.core(h["ns"], "secrets"), self.helm_secret(h)))
            update.append(("PATCH", self.core(h["ns"], "secrets",
                                              f"sh.helm.release.v1.{h['name']}.v{h['rev'] - 1}"),
                           {"metadata": {"labels": {"status": "superseded"}}}))
            if h["rev"] > 10:
                delete.append(("DELETE", self.core(
                    h["ns"], "secrets", f"sh.helm.release.v1.{h['name']}.v{h['rev'] - 10}"),
                    None))
        rng.shuffle(create)
        rng.shuffle(update)
        api.run(create)
        api.run(status_after)
        api.run(update)
        api.run(delete)
        self.window += 1
        return len(create) + len(status_after) + len(update) + len(delete)

    def _event(self, batch, ns, kind, inv, reason, msg, node=None):
        name, obj = self.event_obj(ns, kind, inv, reason, msg, node)
        batch.append(("POST", self.core(ns, "events"), obj))
        self.events.append((self.window, ns, name))
        self.event_names.append((ns, name))
        if len(self.event_names) > 4000:
            del self.event_names[:2000]


# ---------------------------------------------------------------------------


def find_chunkstat():
    for p in (Path("/tmp/build-chunk/tests/unit/chunkstat"), REPO / "build/tests/unit/chunkstat"):
        if p.exists():
            return p
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="/tmp/kt-etcd-churn", help="snapshot directory (kept)")
    ap.add_argument("--nodes", type=int, default=50)
    ap.add_argument("--snapshots", type=int, default=40)
    ap.add_argument("--windows", type=int, default=24, help="5-minute windows per interval")
    ap.add_argument("--warmup", type=int, default=48, help="windows before the first snapshot")
    ap.add_argument("--defrag-at", type=int, default=20, help="defrag before this snapshot "
                    "(-1: never)")
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--chunkstat", help="bench/chunkstat binary (default: found in a build)")
    ap.add_argument("--no-delta", action="store_true", help="skip the zstd delta baseline")
    ap.add_argument("--stat-only", action="store_true",
                    help="only run chunkstat over the snapshots already in --out")
    args = ap.parse_args()
    out = Path(args.out)

    if not args.stat_only:
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        generate(args, out)
    exe = Path(args.chunkstat) if args.chunkstat else find_chunkstat()
    snaps = sorted(out.glob("snap-*.db"))
    if exe is None:
        log("no chunkstat binary found (ninja -C /tmp/build-chunk); snapshots are in " + str(out))
        return
    runs = [("chunkstat", []),
            ("chunkstat-dict", ["--dict", "112640"]),
            ("chunkstat-dict-group", ["--dict", "112640", "--group", str(1 << 20)])]
    for name, extra in runs:
        log(f"chunkstat {' '.join(extra)} over {len(snaps)} snapshots")
        with open(out / f"{name}.txt", "w") as f:
            subprocess.run([str(exe), *extra, "--csv", str(out / f"{name}.csv"),
                            *map(str, snaps)], stdout=f, check=True)
        sys.stdout.write((out / f"{name}.txt").read_text())
    if shutil.which("zstd") and not args.no_delta:
        delta_baseline(snaps, out)


def zstd_size(argv):
    r = subprocess.run(["zstd", "-q", "-c", *argv], capture_output=True, check=True)
    return len(r.stdout)


def delta_baseline(snaps, out):
    """What a delta encoder makes of the series, for scale: the information
    that changes between snapshots, which no chunker can go below."""
    log("delta baseline (zstd --patch-from)")
    rows = []
    for i, s in enumerate(snaps):
        size = s.stat().st_size
        alone = zstd_size(["-3", str(s)])
        prev = zstd_size(["-3", f"--patch-from={snaps[i - 1]}", str(s)]) if i else alone
        first = zstd_size(["-3", f"--patch-from={snaps[0]}", str(s)]) if i else alone
        rows.append((s.name, size, alone, prev, first))
    mean = sum(r[1] for r in rows) / len(rows)
    lines = ["| snapshot | MiB | zstd -3 alone | vs the one before | vs the first |",
             "|---|---:|---:|---:|---:|"]
    for name, size, alone, prev, first in rows:
        lines.append(f"| {name} | {size / 2**20:.1f} | {100 * alone / mean:.1f}% | "
                     f"{100 * prev / mean:.2f}% | {100 * first / mean:.2f}% |")
    deltas = [r[3] for r in rows[1:]]
    if deltas:
        chain = (rows[0][2] + sum(deltas) / len(deltas) * 99) / mean
        lines.append(f"\nmean delta to the snapshot before: {100 * sum(deltas) / len(deltas) / mean:.2f}%"
                     f" of the mean snapshot; a chain of 100 (first alone, then deltas): "
                     f"{chain:.2f}x the mean snapshot")
    text = "\n".join(lines) + "\n"
    (out / "delta.txt").write_text(text)
    sys.stdout.write(text)


def generate(args, out):
    work = out / "peers"
    etcd = peers.Etcd(work / "etcd", version="3.6", extra_args=[
        "--quota-backend-bytes", str(8 << 30), "--log-level", "warn",
        "--unsafe-no-fsync"])      # faster; the bbolt layout does not depend on fsync
    etcd.start()
    api = peers.KubeApiserver(work / "apiserver", etcd=etcd, extra_args=[
        "--etcd-compaction-interval=0", "--event-ttl=24h", "--max-requests-inflight=1000",
        "--max-mutating-requests-inflight=500"])
    api.start()
    client = Api(api, threads=args.threads)
    cl = Cluster(args.nodes)
    try:
        t0 = time.monotonic()
        cl.load(client)
        log(f"loaded in {time.monotonic() - t0:.0f}s; revision {etcd.revision()}; "
            f"{client.n_err} requests failed" + "".join("\n  " + e for e in client.errors))
        prev_rev = etcd.revision()
        meta = []

        def window():
            nonlocal prev_rev
            n = cl.churn_window(client)
            rev = etcd.revision()
            # kube-apiserver's compactor: compact to what it saw 5 minutes ago
            etcd.api("/v3/kv/compaction", {"revision": str(prev_rev)})
            prev_rev = rev
            return n

        t0 = time.monotonic()
        n = sum(window() for _ in range(args.warmup))
        log(f"warm-up: {args.warmup} windows, {n} writes in {time.monotonic() - t0:.0f}s")
        for s in range(args.snapshots):
            if s == args.defrag_at:
                etcd.etcdctl("defrag", timeout=600)
                log("defragmented")
            path = out / f"snap-{s:03d}.db"
            etcd.etcdctl("snapshot", "save", str(path), timeout=600)
            st = json.loads(subprocess.run([peers.binary("etcdutl"), "snapshot", "status",
                                            str(path), "-w", "json"], capture_output=True,
                                           text=True, check=True).stdout)
            meta.append({"snapshot": path.name, "window": cl.window, "size": path.stat().st_size,
                         "revision": st["revision"], "keys": st["totalKey"],
                         "defrag_before": s == args.defrag_at})
            log(f"{path.name}: {path.stat().st_size / 2**20:.1f} MiB, {st['totalKey']} keys, "
                f"revision {st['revision']}")
            if s == args.snapshots - 1:
                break
            t0 = time.monotonic()
            n = sum(window() for _ in range(args.windows))
            el = time.monotonic() - t0
            log(f"interval {s + 1}: {n} writes in {el:.0f}s ({n / el:.0f}/s), "
                f"{client.n_err} failed so far")
        (out / "series.json").write_text(json.dumps({
            "nodes": args.nodes, "windows_per_interval": args.windows,
            "defrag_at": args.defrag_at, "snapshots": meta}, indent=1))
    finally:
        client.close()
        api.stop()
        etcd.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
