#!/usr/bin/env bash
# bench/run.sh KONTINUITY_BINARY: the benchmarks of `make bench` (see
# docs/benchmarks.md).  kontinuity against etcdctl (snapshot save) and etcdutl
# (snapshot status) on the same ~1 GiB etcd, side by side in one run.
#
# Knobs (environment): BENCH_DB_MIB (default 1024), BENCH_ROUNDS (3),
# BENCH_STATUS_ROUNDS (5), BENCH_DIR (parent of the scratch dir, /tmp),
# BENCH_OUT (bench/out/latest.md).  The peers come from scripts/peers.sh.
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: bench/run.sh KONTINUITY_BINARY" >&2
    exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
eval "$("$repo/scripts/peers.sh" --print-env)"
export BENCH_INVOKED="bench/run.sh $1"
exec python3 "$here/bench.py" "$1"
