#!/usr/bin/env python3
"""`kontinuity app backup` and `app restore` of a 2,000-object namespace on a
real kube-apiserver (docs/benchmarks.md, "Application backup").

    bench/app_bench.py KONTINUITY_BINARY      (normally `make bench-app`)

A kube-apiserver on its own etcd (the test peers, tests/integration/peers.py)
gets a namespace of N objects (default 2,000): 40 % ConfigMaps of ~2 KiB,
25 % Secrets of ~1 KiB, 15 % Services, 10 % ServiceAccounts, 10 %
Deployments.  Then, each measured through bench/spawn.c (wall, CPU user+sys,
peak RSS of the child):
  backup1    app backup into a fresh local repository
  backup2    the same namespace again (everything deduplicated)
  restore    app restore into a new namespace (every object created)
  dry-run    app restore --dry-run into a third namespace (reads only)
There is no peer to run side by side: Velero and K10 need a cluster with
controllers and object storage plugins that cannot run here.  The figures
are ours alone; docs/benchmarks.md says so.

Environment: BENCH_APP_OBJECTS (default 2000), BENCH_APP_OUT (markdown
report, default bench/out/app-latest.md).
"""

import concurrent.futures
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "integration"))
sys.path.insert(0, str(HERE))

import peers  # noqa: E402
from repo_bench import build_spawn, run_measured  # noqa: E402


def make_objects(kube, ns, n):
    kube.request("POST", "/api/v1/namespaces",
                 {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    kube.request("POST", f"/api/v1/namespaces/{ns}/serviceaccounts",
                 {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}})
    objs = []
    for i in range(n):
        share = i * 100 // n
        if share < 40:
            objs.append((f"/api/v1/namespaces/{ns}/configmaps", {
                "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cm-{i}"},
                "data": {"config.yaml": f"# config {i}\n" + "key: value\n" * 180}}))
        elif share < 65:
            objs.append((f"/api/v1/namespaces/{ns}/secrets", {
                "apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"s-{i}"},
                "stringData": {"password": os.urandom(24).hex(), "cert": "x" * 900}}))
        elif share < 80:
            objs.append((f"/api/v1/namespaces/{ns}/services", {
                "apiVersion": "v1", "kind": "Service", "metadata": {"name": f"svc-{i}"},
                "spec": {"selector": {"app": f"a{i}"}, "ports": [{"port": 80}]}}))
        elif share < 90:
            objs.append((f"/api/v1/namespaces/{ns}/serviceaccounts", {
                "apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": f"sa-{i}"}}))
        else:
            objs.append((f"/apis/apps/v1/namespaces/{ns}/deployments", {
                "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": f"d-{i}"},
                "spec": {"replicas": 1, "selector": {"matchLabels": {"app": f"d{i}"}},
                         "template": {"metadata": {"labels": {"app": f"d{i}"}},
                                      "spec": {"containers": [{"name": "c",
                                                               "image": "nginx:1.27"}]}}}}))

    def post(item):
        status, body = kube.request("POST", *item)
        if status not in (200, 201):
            raise RuntimeError(f"POST {item[0]}: {status} {body}")
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(post, objs))


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    kt = Path(sys.argv[1]).resolve()
    n = int(os.environ.get("BENCH_APP_OBJECTS", "2000"))
    out = Path(os.environ.get("BENCH_APP_OUT", HERE / "out" / "app-latest.md"))
    work = Path(tempfile.mkdtemp(prefix="kt-app-bench-"))
    build_spawn(work)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KONTINUITY_")}
    env["KONTINUITY_PASSWORD"] = "app bench passphrase"
    rows = []
    with peers.KubeApiserver(work / "kube") as kube:
        make_objects(kube, "bench", n)
        repo = work / "repo"
        subprocess.run([str(kt), "repo", "init", "--repo", str(repo)], env=env, check=True,
                       capture_output=True)
        cfg = ["--kubeconfig", str(kube.kubeconfig), "--repo", str(repo)]
        steps = [
            ("backup1", ["app", "backup", "bench", "--no-volume-snapshots", "-o", "json"]),
            ("backup2", ["app", "backup", "bench", "--no-volume-snapshots", "-o", "json"]),
            ("restore", ["app", "restore", "latest", "--to-namespace", "bench-copy",
                         "-o", "json"]),
            ("dry-run", ["app", "restore", "latest", "--to-namespace", "bench-dry",
                         "--dry-run", "-o", "json"]),
        ]
        for name, args in steps:
            log = work / f"{name}.out"
            m = run_measured([kt, *args, *cfg], log, env)
            if m["rc"] != 0:
                sys.exit(f"{name} failed:\n{log.read_text()[-3000:]}")
            text = log.read_text()
            detail = ""
            if name.startswith("backup"):
                j = json.loads(text[text.index("{"):])
                detail = f"{j['objects']} objects, {j['bytes']} B, {j['bytesNew']} B new"
            else:
                rep = json.loads(text[text.index("["):text.rindex("]") + 1])
                done = sum(1 for r in rep if r["result"] in ("created", "would-create"))
                detail = f"{done} of {len(rep)} objects {'created' if name == 'restore' else 'would be created'}"
            rows.append((name, m, detail))
            print(f"{name}: {m['wall']:.2f} s wall, {m['cpu']:.2f} s CPU, "
                  f"{m['rss_kib'] / 1024:.1f} MiB peak RSS; {detail}", flush=True)
    load = os.getloadavg()
    lines = [f"# Application backup of {n} objects ({datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC)",
             "", f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, load {load[0]:.1f} at the end; "
             "kube-apiserver and its etcd on the same machine.", "",
             "| step | wall | CPU | peak RSS | result |", "|---|---:|---:|---:|---|"]
    for name, m, detail in rows:
        lines.append(f"| {name} | {m['wall']:.2f} s | {m['cpu']:.2f} s | "
                     f"{m['rss_kib'] / 1024:.1f} MiB | {detail} |")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(f"report: {out}")
    subprocess.run(["rm", "-rf", str(work)])


if __name__ == "__main__":
    main()
