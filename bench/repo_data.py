#!/usr/bin/env python3
"""The data set of the repository benchmark (bench/repo_bench.py): ~1 GiB of
mixed files and a 2 % mutation of them, the same bytes every time.

    bench/repo_data.py generate DIR [MIB]     make DIR (must not exist)
    bench/repo_data.py mutate DIR             change DIR in place

generate (MIB = 1024 by default; the shares scale with it):
  big/random-N.bin   4 files, 40 % of MIB: random bytes (incompressible)
  big/text-N.log     4 files, 40 % of MIB: log lines (timestamps, levels,
                     components, ids, numbers): zstd -3 makes them ~4x smaller
  small/dNN/fNNNNN   10,000 files (scaled with MIB, at least 100) in 100
                     directories, 1-40 KiB each (~20 % of MIB): 3 in 4 are
                     text (JSON- and YAML-like objects), 1 in 4 random bytes

mutate (about 2 % of the bytes):
  inserts   16 places in every big file get 4-64 KiB of new bytes (of the
            file's kind; less below 100 MiB files), at random offsets in the
            middle of the file
  appends   1/100 of its size is appended to every big file
  removed   2 % of the small files are deleted
  added     as many new small files are made (new names, same mix)

Every byte comes from random.Random seeded with a constant, so two runs (and
the three tools of one run) see identical data.  Modification times are the
time of writing: the peers' "unchanged file" shortcuts (restic's parent
snapshot, borg's files cache) see exactly the files the mutation touched.
"""

import os
import random
import sys
from pathlib import Path

MIB = 1 << 20
SEED = 20261127
N_SMALL = 10000
SMALL_DIRS = 100

_LEVELS = ("INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR")
_COMPONENTS = ("kube-apiserver", "etcd", "kubelet", "scheduler", "controller-manager",
               "coredns", "kube-proxy", "ingress-nginx", "cert-manager", "metrics-server")
_WORDS = ("request", "completed", "pod", "node", "watch", "lease", "renewed", "sync",
          "reconcile", "deployment", "replicaset", "endpoint", "updated", "created",
          "deleted", "timeout", "retry", "connection", "established", "closed", "status",
          "ready", "pending", "failed", "volume", "mounted", "image", "pulled", "event",
          "namespace", "default", "kube-system", "configmap", "secret", "service")


def text_bytes(rnd, n, t0=1_790_000_000):
    """About n bytes (exactly n) of log lines."""
    out = []
    size = 0
    t = t0 + rnd.randrange(1 << 20)
    ms = 0
    while size < n:
        ms += rnd.randrange(1, 400)
        words = " ".join(rnd.choices(_WORDS, k=rnd.randrange(3, 12)))
        line = (f"2026-11-{(t // 86400) % 28 + 1:02d}T{(t // 3600) % 24:02d}:"
                f"{(t // 60) % 60:02d}:{t % 60:02d}.{ms % 1000:03d}Z "
                f"{rnd.choice(_LEVELS)} {rnd.choice(_COMPONENTS)} {words} "
                f"id={rnd.getrandbits(48):012x} n={rnd.randrange(100000)} "
                f"dur={rnd.randrange(1, 5000)}ms\n")
        if ms >= 1000:
            t += ms // 1000
            ms %= 1000
        out.append(line)
        size += len(line)
    return "".join(out).encode()[:n]


def object_bytes(rnd, n):
    """About n bytes (exactly n) of JSON/YAML-like objects."""
    out = []
    size = 0
    i = 0
    while size < n:
        i += 1
        name = f"obj-{rnd.getrandbits(32):08x}"
        if rnd.random() < 0.5:
            s = (f'{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}",'
                 f'"namespace":"{rnd.choice(_WORDS)}","resourceVersion":"{rnd.randrange(10**9)}",'
                 f'"uid":"{rnd.getrandbits(128):032x}"}},"data":{{"key-{i}":'
                 f'"{" ".join(rnd.choices(_WORDS, k=rnd.randrange(2, 20)))}"}}}}\n')
        else:
            s = (f"- name: {name}\n  image: registry.example.com/{rnd.choice(_COMPONENTS)}:"
                 f"v1.{rnd.randrange(40)}.{rnd.randrange(20)}\n  replicas: {rnd.randrange(1, 9)}\n"
                 f"  labels: {{app: {rnd.choice(_WORDS)}, tier: {rnd.choice(_WORDS)}}}\n")
        out.append(s)
        size += len(s)
    return "".join(out).encode()[:n]


def small_content(rnd):
    n = rnd.randrange(1024, 40 * 1024 + 1)
    return rnd.randbytes(n) if rnd.random() < 0.25 else object_bytes(rnd, n)


def _write_big(path, rnd, kind, size):
    with open(path, "wb") as f:
        left = size
        while left:
            k = min(left, 8 * MIB)
            f.write(rnd.randbytes(k) if kind == "random" else text_bytes(rnd, k))
            left -= k


def generate(root, mib=1024):
    """Make the data set under root (which must not exist).  Returns
    (bytes, files)."""
    root = Path(root)
    rnd = random.Random(SEED)
    (root / "big").mkdir(parents=True)
    big = mib * MIB * 2 // 5 // 4          # each of 4 + 4 files: 10 % of the total
    for i in range(4):
        _write_big(root / "big" / f"random-{i}.bin", rnd, "random", big)
        _write_big(root / "big" / f"text-{i}.log", rnd, "text", big)
    n_small = max(100, N_SMALL * mib // 1024)
    for d in range(SMALL_DIRS):
        (root / "small" / f"d{d:02d}").mkdir(parents=True)
    for i in range(n_small):
        (root / "small" / f"d{i % SMALL_DIRS:02d}" / f"f{i:05d}").write_bytes(small_content(rnd))
    return stats(root)


def stats(root):
    total = files = 0
    for dirpath, _dirs, names in os.walk(root):
        for n in names:
            total += os.lstat(os.path.join(dirpath, n)).st_size
            files += 1
    return total, files


def mutate(root):
    """Change about 2 % of the bytes under root in place.  Returns a dict of
    what changed (bytes inserted, appended, removed, added; files removed,
    added)."""
    root = Path(root)
    rnd = random.Random(SEED + 1)
    ch = {"inserted": 0, "inserts": 0, "appended": 0, "removed": 0, "added": 0,
          "files_removed": 0, "files_added": 0}
    for p in sorted((root / "big").iterdir()):
        kind = "random" if p.suffix == ".bin" else "text"
        data = p.read_bytes()
        size = len(data)
        # 16 inserts at distinct offsets in the middle 90 % of the file,
        # applied from the end so earlier offsets stay valid.
        offs = sorted(rnd.sample(range(size // 20, size - size // 20), 16), reverse=True)
        parts = []
        tail = size
        top = max(4096, min(64 * 1024, 64 * 1024 * size // (100 * MIB)))
        for off in offs:
            n = rnd.randrange(top // 16, top + 1)
            new = rnd.randbytes(n) if kind == "random" else text_bytes(rnd, n)
            parts.append(data[off:tail])
            parts.append(new)
            tail = off
            ch["inserted"] += n
            ch["inserts"] += 1
        parts.append(data[:tail])
        app = size // 100
        with open(p, "wb") as f:
            for part in reversed(parts):
                f.write(part)
            f.write(rnd.randbytes(app) if kind == "random" else text_bytes(rnd, app))
        ch["appended"] += app
    small = sorted(str(p) for p in (root / "small").rglob("f*"))
    k = max(1, len(small) // 50)
    for s in rnd.sample(small, k):
        ch["removed"] += os.lstat(s).st_size
        os.unlink(s)
        ch["files_removed"] += 1
    for i in range(k):
        p = root / "small" / f"d{i % SMALL_DIRS:02d}" / f"new{i:05d}"
        data = small_content(rnd)
        p.write_bytes(data)
        ch["added"] += len(data)
        ch["files_added"] += 1
    return ch


def main(argv):
    if len(argv) >= 3 and argv[1] == "generate":
        total, files = generate(argv[2], int(argv[3]) if len(argv) > 3 else 1024)
        print(f"{total} bytes in {files} files")
        return 0
    if len(argv) == 3 and argv[1] == "mutate":
        print(mutate(argv[2]))
        return 0
    print(__doc__.strip().split("\n\n")[1], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
