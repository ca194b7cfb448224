#!/usr/bin/env bash
# bench/run.sh KONTINUITY_BINARY: the benchmarks of `make bench` (see
# docs/benchmarks.md).  kontinuity against etcdctl (snapshot save) and etcdutl
# (snapshot status) on the same ~1 GiB etcd, and the export upload (s3tool put,
# i.e. kt_s3_put) against `rclone copyto` to one local MinIO, side by side in
# one run.
#
# Knobs (environment): BENCH_ONLY (etcd|export; unset: both), BENCH_DB_MIB
# (default 1024), BENCH_ROUNDS (3), BENCH_STATUS_ROUNDS (5),
# BENCH_EXPORT_ROUNDS (3), BENCH_DIR (parent of the scratch dir, /tmp),
# BENCH_OUT (bench/out/latest.md).  The peers come from scripts/peers.sh
# (MinIO is built here when missing and the export part runs); rclone is the
# Debian package (apt-get install rclone).
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: bench/run.sh KONTINUITY_BINARY" >&2
    exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
if [ "${BENCH_ONLY:-}" != etcd ]; then
    "$repo/scripts/peers.sh" minio >&2     # cached after the first build
    if ! command -v rclone >/dev/null 2>&1; then
        echo "bench: installing rclone (the export benchmark's peer)" >&2
        sudo_cmd=()
        [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
        "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends rclone >/dev/null ||
            { "${sudo_cmd[@]}" apt-get update -qq &&
              "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends rclone >/dev/null; }
    fi
fi
eval "$("$repo/scripts/peers.sh" --print-env)"
export BENCH_INVOKED="bench/run.sh $1"
exec python3 "$here/bench.py" "$1"
