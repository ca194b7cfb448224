#!/usr/bin/env python3
"""File data before and after a small scattered edit, and what each chunker
stores for the second version (docs/chunking.md, "File data").

    bench/chunk_mutation.py [--mib 256] [--change 2] [--out DIR] [--chunkstat EXE]

Writes DIR/v1.bin: --mib MiB of mixed data in 1 MiB runs (a third random
bytes, a third English-like text, a third JSON-like records), and
DIR/v2.bin: the same with --change percent of it edited the way files
change: half of the changed bytes as insertions of 1-16 KiB at random
places, a quarter as in-place overwrites of 1-16 KiB, a quarter appended.
Then runs bench/chunkstat over [v1, v2]: the "median added" column is what
the second backup costs.  Seeded: every run writes the same bytes.
"""

import argparse
import random
import subprocess
import sys
from pathlib import Path

WORDS = ("the of and to in is that for it as was with be by on not he this are or his from at "
         "which but have an they you were her she there been one all we their has would when "
         "backup restore etcd snapshot cluster namespace volume chunk repository").split()


def text(rng, n):
    out = []
    size = 0
    while size < n:
        w = rng.choice(WORDS)
        out.append(w)
        size += len(w) + 1
    return (" ".join(out)).encode()[:n]


def records(rng, n):
    out = bytearray()
    while len(out) < n:
        i = rng.randrange(10 ** 6)
        out += (f'{{"id":{i},"name":"obj-{i:06d}","kind":"{rng.choice(WORDS)}",'
                f'"labels":{{"app":"{rng.choice(WORDS)}","tier":"{rng.choice(WORDS)}"}},'
                f'"value":{rng.random():.6f}}}\n').encode()
    return bytes(out[:n])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--change", type=float, default=2.0, help="percent of the size edited")
    ap.add_argument("--out", default="/tmp/kt-chunk-mutation")
    ap.add_argument("--chunkstat", default="/tmp/build-chunk/tests/unit/chunkstat")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    mib = 1 << 20
    v1 = bytearray()
    for k in range(args.mib):
        kind = k % 3
        v1 += rng.randbytes(mib) if kind == 0 else text(rng, mib) if kind == 1 else records(rng, mib)
    (out / "v1.bin").write_bytes(v1)
    budget = int(len(v1) * args.change / 100)
    v2 = bytearray(v1)
    edits = []                  # (offset, kind, data)
    spent = 0
    while spent < budget // 2:  # insertions
        n = rng.randrange(1024, 16 * 1024)
        edits.append((rng.randrange(len(v1)), "insert", rng.randbytes(n)))
        spent += n
    while spent < budget * 3 // 4:  # overwrites in place
        n = rng.randrange(1024, 16 * 1024)
        edits.append((rng.randrange(len(v1) - n), "overwrite", rng.randbytes(n)))
        spent += n
    for off, kind, data in sorted(edits, key=lambda e: -e[0]):  # back to front: offsets hold
        if kind == "insert":
            v2[off:off] = data
        else:
            v2[off:off + len(data)] = data
    v2 += rng.randbytes(budget - spent)
    (out / "v2.bin").write_bytes(v2)
    n_ins = sum(1 for e in edits if e[1] == "insert")
    print(f"v1 {len(v1) / mib:.0f} MiB; v2: {n_ins} insertions, {len(edits) - n_ins} overwrites, "
          f"{(budget - spent) / mib:.1f} MiB appended; {budget / mib:.1f} MiB changed in all",
          flush=True)
    sys.exit(subprocess.run([args.chunkstat, str(out / "v1.bin"), str(out / "v2.bin")]).returncode)


if __name__ == "__main__":
    main()
