#!/usr/bin/env python3
"""Back up a series of etcd snapshots into a fresh local repository, each as a
delta against the one before (as the agent does), and measure what the
repository costs.

For every snapshot: `kontinuity repo backup FILE --delta-parent latest
--delta-base PREVIOUS-FILE`; the repository's size (every object's bytes)
after it, the time and the peak RSS of the backup.  At the end the deepest
delta snapshot is restored (time, peak RSS, SHA-256 compared) and
`check --read-data` runs.  Prints a table and a summary, with the projection
to 100 snapshots of docs/chunking.md (first + 99 x the mean added; and with
the keyframes of K counted as they would fall in 100).

    python3 bench/etcd_repo_series.py --kontinuity /tmp/b/src/cli/kontinuity \\
        --snapshots /tmp/kt-churn-50 [--max-depth 20] [--csv out.csv]

The series is made by bench/etcd_churn.py.  Not part of `make check`.
"""
import argparse
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

MiB = 1 << 20


def repo_size(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            total += os.path.getsize(os.path.join(root, f))
    return total


def run(cmd, env):
    """Run cmd; (seconds, peak RSS in KiB, stdout)."""
    start = time.monotonic()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(p.pid, 0)
    out = p.stdout.read().decode()
    err = p.stderr.read().decode()
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        sys.exit("command failed (%d): %s\n%s%s" % (p.returncode, " ".join(cmd), out, err))
    return time.monotonic() - start, usage.ru_maxrss, out


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kontinuity", required=True)
    ap.add_argument("--snapshots", default="/tmp/kt-churn-50")
    ap.add_argument("--max-depth", type=int, default=0, help="K (0: the default, 20)")
    ap.add_argument("--no-base-file", action="store_true",
                    help="do not pass --delta-base (the base is restored from the repository)")
    ap.add_argument("--count", type=int, default=0, help="only the first N snapshots")
    ap.add_argument("--csv")
    ap.add_argument("--keep", help="keep the repository in this directory")
    a = ap.parse_args()
    files = sorted(glob.glob(os.path.join(a.snapshots, "snap-*.db")))
    if a.count:
        files = files[:a.count]
    if not files:
        sys.exit("no snap-*.db in " + a.snapshots)
    work = tempfile.mkdtemp(prefix="kt-series-")
    repo = a.keep or os.path.join(work, "repo")
    env = dict(os.environ, KONTINUITY_PASSWORD="bench-passphrase", KONTINUITY_REPO=repo)
    run([a.kontinuity, "repo", "init"], env)
    rows = []
    prev_size = repo_size(repo)
    for i, f in enumerate(files):
        cmd = [a.kontinuity, "repo", "backup", f, "--tag", "etcd", "--host", "bench", "-o", "json"]
        if i:
            cmd += ["--delta-parent", "latest"]
            if not a.no_base_file:
                cmd += ["--delta-base", files[i - 1]]
        if a.max_depth:
            cmd += ["--delta-max-depth", str(a.max_depth)]
        secs, rss, out = run(cmd, env)
        res = json.loads(out)
        size = repo_size(repo)
        rows.append({"i": i, "file": os.path.basename(f), "bytes": os.path.getsize(f),
                     "added": size - prev_size, "repo": size, "depth": res.get("deltaDepth", 0),
                     "seconds": secs, "rss_kib": rss, "id": res["id"], "path": f})
        prev_size = size
        r = rows[-1]
        print("%3d %-14s %6.2f MiB  added %8.3f MiB  repo %8.2f MiB  depth %2d  %5.2fs  %6.1f MiB RSS"
              % (i, r["file"], r["bytes"] / MiB, r["added"] / MiB, size / MiB, r["depth"], secs,
                 rss / 1024), flush=True)
    mean_file = sum(r["bytes"] for r in rows) / len(rows)
    later = rows[1:]
    mean_added = sum(r["added"] for r in later) / len(later)
    deltas = [r["added"] for r in later if r["depth"] > 0]
    keyframes = [r["added"] for r in later if r["depth"] == 0]
    deltas_sorted = sorted(deltas)
    median_delta = deltas_sorted[len(deltas_sorted) // 2] if deltas else 0
    first = rows[0]["added"]
    proj = first + 99 * mean_added
    k = a.max_depth or 20
    n_key = 99 // (k + 1)   # keyframes among the 99 later snapshots of 100
    mean_delta = sum(deltas) / len(deltas) if deltas else 0
    mean_key = sum(keyframes) / len(keyframes) if keyframes else first
    proj_k = first + n_key * mean_key + (99 - n_key) * mean_delta
    deepest = max(rows, key=lambda r: (r["depth"], r["i"]))
    target = os.path.join(work, "restore")
    rsecs, rrss, _ = run([a.kontinuity, "repo", "restore", deepest["id"], target], env)
    restored = os.path.join(target, deepest["path"].lstrip("/"))
    same = sha256(restored) == sha256(deepest["path"])
    csecs, crss, _ = run([a.kontinuity, "repo", "check", "--read-data"], env)
    print()
    print("snapshots: %d, mean %.1f MiB" % (len(rows), mean_file / MiB))
    print("first: %.2f MiB (%.3fx)" % (first / MiB, first / mean_file))
    print("later: mean added %.3f MiB (%.2f %%), median delta %.3f MiB (%.2f %%)"
          % (mean_added / MiB, 100 * mean_added / mean_file, median_delta / MiB,
             100 * median_delta / mean_file))
    for r in later:
        if r["depth"] == 0:
            print("keyframe: snapshot %d, %.2f MiB" % (r["i"], r["added"] / MiB))
    print("100 snapshots, first + 99 x mean added: %.2fx" % (proj / mean_file))
    print("100 snapshots, first + %d keyframes + %d deltas (K=%d): %.2fx"
          % (n_key, 99 - n_key, k, proj_k / mean_file))
    print("repository after %d: %.2f MiB (%.2fx)" % (len(rows), rows[-1]["repo"] / MiB,
                                                    rows[-1]["repo"] / mean_file))
    print("backup: median %.2fs, max %.2fs; peak RSS max %.1f MiB"
          % (sorted(r["seconds"] for r in rows)[len(rows) // 2],
             max(r["seconds"] for r in rows), max(r["rss_kib"] for r in rows) / 1024))
    print("restore of snapshot %d (depth %d): %.2fs, peak RSS %.1f MiB, byte-identical: %s"
          % (deepest["i"], deepest["depth"], rsecs, rrss / 1024, same))
    print("check --read-data: %.2fs, peak RSS %.1f MiB" % (csecs, crss / 1024))
    if a.csv:
        with open(a.csv, "w") as f:
            f.write("i,file,bytes,added,repo,depth,seconds,rss_kib\n")
            for r in rows:
                f.write("%d,%s,%d,%d,%d,%d,%.3f,%d\n" % (r["i"], r["file"], r["bytes"], r["added"],
                                                      r["repo"], r["depth"], r["seconds"],
                                                      r["rss_kib"]))
    shutil.rmtree(work)
    if not same:
        sys.exit("restored bytes differ")


if __name__ == "__main__":
    main()
