#!/usr/bin/env python3
"""kontinuity benchmarks against the named peer, side by side in one run.

    bench/bench.py KONTINUITY_BINARY        (normally through bench/run.sh)

1. save:   `kontinuity etcd snapshot save`  vs `etcdctl snapshot save`
           against one etcd 3.6 holding a ~BENCH_DB_MIB MiB database.
2. status: `kontinuity etcd snapshot status -o json` vs
           `etcdutl snapshot status -w json` on the same snapshot file
           (the two answers must be equal), plus `kontinuity etcd snapshot
           verify` as an extra line, compared with etcdutl status for scale.
3. export: `s3tool put KEY FILE` (kt_s3_put, the upload of the export stage of
           `etcd backup`) vs `rclone copyto FILE bench:BUCKET/KEY` on the same
           file (the snapshot of 1., or a generated one with BENCH_ONLY=export)
           to one local MinIO; plus one full `kontinuity etcd backup
           --export-config` cycle for scale when etcd runs too.

Runs alternate ours/theirs (the order flips every round), each with a fresh
output file that is deleted afterwards.  Wall time is measured around each
child process, peak RSS and CPU time come from wait4() of that child, done by
a small C launcher (bench/spawn.c, compiled into the scratch dir) so that the
Python parent's own RSS does not leak into the child's ru_maxrss.
Results: a plain table on stdout and bench/out/latest.md.

Environment:
  BENCH_ONLY           etcd (1. and 2.) or export (3.); unset: all
  BENCH_DB_MIB         database size to load, MiB (default 1024; 64 for a quick trial)
  BENCH_ROUNDS         rounds of save, each one ours + one theirs (default 3)
  BENCH_STATUS_ROUNDS  rounds of status / verify (default 5)
  BENCH_EXPORT_ROUNDS  rounds of export, each one ours + one theirs (default 3)
  BENCH_S3TOOL         default: build/tests/unit/s3tool beside the kontinuity build
  BENCH_RCLONE         default: rclone on PATH (Debian: apt-get install rclone)
  BENCH_RSS_TARGET_MIB what "a few MiB" of peak RSS for save means (default 10)
  BENCH_DIR            parent of the scratch directory (default /tmp); the
                       scratch directory is removed at the end, also on error
  BENCH_OUT            markdown report (default bench/out/latest.md)
  KT_ETCD_BIN, KT_ETCDCTL_BIN, KT_ETCDUTL_BIN, KT_MINIO_BIN   peer binaries (bench/run.sh sets them)
"""

import base64
import datetime
import http.client
import json
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.dont_write_bytecode = True   # no __pycache__ in tests/ from a benchmark run
sys.path.insert(0, str(REPO / "tests" / "integration"))
import peers  # noqa: E402  (the integration-test harness: Etcd, binaries, cleanup)

MIB = 1 << 20
VALUE_SIZE = 16000          # ~16 KiB: with the key and mvcc header one bbolt
                            # overflow run of 4 pages, so the db is ~ the data
PUTS_PER_TXN = 64
LOAD_THREADS = 2            # two keep-alive connections: encode one while etcd applies the other
RESOURCES = ("pods", "configmaps", "secrets", "deployments", "services",
             "events", "leases", "apps.example.com/widgets")


def env_int(name, default):
    v = os.environ.get(name, "")
    try:
        return int(v) if v else default
    except ValueError:
        sys.exit(f"bench: {name}={v!r} is not an integer")


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# workload


def k8s_key(i):
    res = RESOURCES[i % len(RESOURCES)]
    return f"/registry/{res}/ns-{(i // len(RESOURCES)) % 50:02d}/obj-{i:08d}"


_FILLER = (b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","namespace":"y",'
           b'"labels":{"app.kubernetes.io/name":"bench","tier":"backend"},'
           b'"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"..."}},'
           b'"managedFields":[{"manager":"kubectl","operation":"Update","apiVersion":"v1"}]}')


def k8s_value(i):
    """VALUE_SIZE bytes, about half repetitive JSON and half random hex: it
    compresses to roughly 35-40 %, like real objects with embedded data."""
    head = (f'{{"kind":"Object","key":"{k8s_key(i)}","n":{i},"spec":').encode()
    rnd = os.urandom(VALUE_SIZE // 4).hex().encode()         # VALUE_SIZE/2 bytes
    rep = _FILLER * (VALUE_SIZE // len(_FILLER) + 1)
    return (head + rnd + rep)[:VALUE_SIZE]


def _b64(b):
    return base64.b64encode(b).decode()


def load(etcd, db_mib):
    """Put ~DB_MIB MiB through the JSON gateway (POST /v3/kv/txn, 64 puts
    per txn) on LOAD_THREADS keep-alive connections.  Returns the key count."""
    n = max(PUTS_PER_TXN, db_mib * MIB // VALUE_SIZE)
    host, port = "127.0.0.1", etcd.client_port
    local = threading.local()
    done = [0]
    lock = threading.Lock()
    t0 = time.monotonic()

    def txn(start):
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = http.client.HTTPConnection(host, port, timeout=120)
        ops = [{"request_put": {"key": _b64(k8s_key(i).encode()), "value": _b64(k8s_value(i))}}
               for i in range(start, min(n, start + PUTS_PER_TXN))]
        body = json.dumps({"success": ops}).encode()
        conn.request("POST", "/v3/kv/txn", body=body, headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        data = r.read()
        if r.status != 200 or not json.loads(data).get("succeeded"):
            raise RuntimeError(f"txn at key {start}: HTTP {r.status}: {data[:300]!r}")
        with lock:
            done[0] += len(ops)
            if done[0] % (PUTS_PER_TXN * 256) < PUTS_PER_TXN:
                el = time.monotonic() - t0
                log(f"  loaded {done[0]}/{n} keys ({done[0] * VALUE_SIZE / MIB / el:.0f} MiB/s)")

    pool = ThreadPoolExecutor(LOAD_THREADS)
    try:
        for f in [pool.submit(txn, s) for s in range(0, n, PUTS_PER_TXN)]:
            f.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)   # on error: drop what is queued
    log(f"loaded {n} keys, {n * VALUE_SIZE / MIB:.0f} MiB of values in "
        f"{time.monotonic() - t0:.1f}s")
    return n


# ---------------------------------------------------------------------------
# measuring one child

_current_child = None
_spawn = None       # path of the compiled bench/spawn.c


def build_spawn(work):
    """Compile bench/spawn.c (the launcher that measures each child) into WORK."""
    global _spawn
    exe = work / "spawn"
    cc = os.environ.get("CC") or "cc"
    subprocess.run([cc, "-O2", "-o", str(exe), str(REPO / "bench" / "spawn.c")], check=True)
    _spawn = exe


def run_measured(argv, out_path, env=None):
    """Run ARGV through the launcher (bench/spawn.c: fork, exec, wait4), its
    stdout+stderr to OUT_PATH; returns dict(wall, cpu, user, sys, rss_kib, rc).
    The launcher, not this ~40 MiB Python, is the parent: see spawn.c for why.
    ENV: the child's whole environment (default: ours)."""
    global _current_child
    res_path = Path(str(out_path) + ".res")
    p = subprocess.Popen([str(_spawn), str(out_path), str(res_path), *[str(a) for a in argv]],
                         stdin=subprocess.DEVNULL, env=env)
    _current_child = p
    try:
        rc = p.wait()
    finally:
        _current_child = None
    if rc != 0:
        raise RuntimeError(f"bench/spawn could not run {argv[0]} (exit {rc})")
    wall_ns, user_us, sys_us, rss_kib, code = (int(x) for x in res_path.read_text().split())
    res_path.unlink()
    return {"wall": wall_ns / 1e9, "cpu": (user_us + sys_us) / 1e6, "user": user_us / 1e6,
            "sys": sys_us / 1e6, "rss_kib": rss_kib, "rc": code}


def check_rc(name, r, out_path):
    if r["rc"] != 0:
        text = Path(out_path).read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{name} exited {r['rc']}; output:\n{text}")


class Series:
    """Runs of one command: median/min wall, median CPU, max peak RSS."""

    def __init__(self, bench, tool, command):
        self.bench, self.tool, self.command = bench, tool, command
        self.runs = []

    def add(self, r):
        self.runs.append(r)

    @property
    def wall_med(self):
        return statistics.median(r["wall"] for r in self.runs)

    @property
    def wall_min(self):
        return min(r["wall"] for r in self.runs)

    @property
    def cpu_med(self):
        return statistics.median(r["cpu"] for r in self.runs)

    @property
    def rss_mib(self):
        return max(r["rss_kib"] for r in self.runs) / 1024.0


# ---------------------------------------------------------------------------
# the two benchmarks


def bench_save(kt, etcdctl, etcd, work, rounds, keep_path):
    ours = Series("save", "kontinuity", f"kontinuity etcd snapshot save FILE --endpoint {etcd.endpoint}")
    theirs = Series("save", "etcdctl", f"etcdctl snapshot save FILE --endpoints {etcd.endpoint}")
    sizes = {}
    for rnd in range(rounds):
        order = (ours, theirs) if rnd % 2 == 0 else (theirs, ours)
        for s in order:
            f = work / f"save-{s.tool}-{rnd}.db"
            if s is ours:
                argv = [kt, "etcd", "snapshot", "save", f, "--endpoint", etcd.endpoint]
            else:
                argv = [etcdctl, "snapshot", "save", f, "--endpoints", etcd.endpoint]
            outp = work / f"save-{s.tool}-{rnd}.out"
            r = run_measured(argv, outp)
            check_rc(s.command, r, outp)
            size = f.stat().st_size
            sizes.setdefault(s.tool, set()).add(size)
            s.add(r)
            log(f"save round {rnd + 1}/{rounds} {s.tool:10s} {r['wall']:7.2f}s "
                f"cpu {r['cpu']:6.2f}s  rss {r['rss_kib'] / 1024:7.1f} MiB  "
                f"{size / MIB:.0f} MiB file")
            if rnd == rounds - 1 and s is theirs:
                os.replace(f, keep_path)     # the status benchmark's input
            else:
                f.unlink()
            for leftover in (Path(str(f) + ".part"),):
                if leftover.exists():
                    leftover.unlink()
    if len(sizes.get("kontinuity", ())) and sizes.get("kontinuity") != sizes.get("etcdctl"):
        warn(f"save: file sizes differ: kontinuity {sorted(sizes['kontinuity'])} "
             f"etcdctl {sorted(sizes['etcdctl'])}")
    return [ours, theirs], max(max(v) for v in sizes.values())


def bench_status(kt, etcdutl, snap, work, rounds):
    ours = Series("status", "kontinuity", "kontinuity etcd snapshot status FILE -o json")
    theirs = Series("status", "etcdutl", "etcdutl snapshot status FILE -w json")
    verify = Series("verify*", "kontinuity", "kontinuity etcd snapshot verify FILE")
    # Both read the same file from the page cache: warm it once first.
    with open(snap, "rb") as f:
        while f.read(8 * MIB):
            pass
    answers = {}
    for rnd in range(rounds):
        order = (ours, theirs) if rnd % 2 == 0 else (theirs, ours)
        for s in order + (verify,):
            if s is ours:
                argv = [kt, "etcd", "snapshot", "status", snap, "-o", "json"]
            elif s is theirs:
                argv = [etcdutl, "snapshot", "status", snap, "-w", "json"]
            else:
                argv = [kt, "etcd", "snapshot", "verify", snap]
            outp = work / f"{s.bench.rstrip('*')}-{s.tool}-{rnd}.out"
            r = run_measured(argv, outp)
            check_rc(s.command, r, outp)
            s.add(r)
            if s is not verify:
                answers.setdefault(s.tool, []).append(outp.read_text(errors="replace"))
            log(f"{s.bench} round {rnd + 1}/{rounds} {s.tool:10s} {r['wall']:7.2f}s "
                f"cpu {r['cpu']:6.2f}s  rss {r['rss_kib'] / 1024:7.1f} MiB")
            outp.unlink()
    equal, detail = compare_status(answers)
    if not equal:
        warn("status: kontinuity and etcdutl DISAGREE:\n" + detail)
    return [ours, theirs, verify], equal, detail


EXPORT_BUCKET = "kt-bench"


def make_payload(path, mib):
    """MIB MiB of semi-compressible bytes (values like the etcd load's, back to
    back): the export input when no etcd snapshot was made (BENCH_ONLY=export)."""
    n = max(1, mib * MIB // VALUE_SIZE)
    t0 = time.monotonic()
    with open(path, "wb") as f:
        for i in range(0, n, 64):
            f.write(b"".join(k8s_value(j) for j in range(i, min(n, i + 64))))
    log(f"wrote {n * VALUE_SIZE / MIB:.0f} MiB of test data in {time.monotonic() - t0:.1f}s")


def s3tool_env(minio, bucket):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("S3_", "RCLONE_"))}
    env.update(S3_ENDPOINT=minio.endpoint, S3_REGION=minio.region, S3_BUCKET=bucket,
               S3_ACCESS_KEY=minio.access_key, S3_SECRET_KEY=minio.secret_key, S3_STYLE="path")
    return env


def rclone_env(minio, work):
    """rclone configured by environment only: remote `bench:`; RCLONE_CONFIG
    points at a file that does not exist, so no user config is read.  AWS_*
    variables are dropped: the SDK would apply e.g. AWS_CA_BUNDLE to this
    plain-HTTP endpoint and fail."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("S3_", "RCLONE_", "AWS_"))}
    env.update(RCLONE_CONFIG=str(work / "no-rclone.conf"),
               RCLONE_CONFIG_BENCH_TYPE="s3", RCLONE_CONFIG_BENCH_PROVIDER="Minio",
               RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=minio.access_key,
               RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=minio.secret_key,
               RCLONE_CONFIG_BENCH_ENDPOINT=minio.endpoint,
               RCLONE_CONFIG_BENCH_REGION=minio.region)
    return env


def s3tool_call(s3tool, env, *args):
    r = subprocess.run([str(s3tool), *args], env=env, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError(f"s3tool {' '.join(args)} exited {r.returncode}: {r.stderr[-2000:]}")
    return r.stdout


def bench_export(s3tool, rclone, minio, src, work, rounds):
    """`s3tool put KEY FILE` (kt_s3_put, the upload of the export stage) vs
    `rclone copyto FILE bench:BUCKET/KEY`, interleaved, a fresh key each run;
    each object's size is checked with `s3tool head` and then deleted."""
    ours = Series("export", "kontinuity", "s3tool put KEY FILE (kt_s3_put)")
    theirs = Series("export", "rclone", "rclone copyto FILE bench:BUCKET/KEY")
    s3env = s3tool_env(minio, EXPORT_BUCKET)
    rcenv = rclone_env(minio, work)
    size = src.stat().st_size
    with open(src, "rb") as f:          # both read the file from the page cache
        while f.read(8 * MIB):
            pass
    for rnd in range(rounds):
        order = (ours, theirs) if rnd % 2 == 0 else (theirs, ours)
        for s in order:
            key = f"bench/{s.tool}-{rnd}-{time.time_ns()}.db"
            if s is ours:
                argv, env = [s3tool, "put", key, src], s3env
            else:
                argv, env = [rclone, "copyto", src, f"bench:{EXPORT_BUCKET}/{key}"], rcenv
            outp = work / f"export-{s.tool}-{rnd}.out"
            r = run_measured(argv, outp, env=env)
            check_rc(s.command, r, outp)
            head = s3tool_call(s3tool, s3env, "head", key)
            got = dict(ln.split("=", 1) for ln in head.splitlines() if "=" in ln)
            if int(got.get("size", -1)) != size:
                raise RuntimeError(f"export: {key} has size {got.get('size')}, expected {size}")
            s3tool_call(s3tool, s3env, "rm", key)
            s.add(r)
            log(f"export round {rnd + 1}/{rounds} {s.tool:10s} {r['wall']:7.2f}s "
                f"cpu {r['cpu']:6.2f}s  rss {r['rss_kib'] / 1024:7.1f} MiB  "
                f"{size / MIB / r['wall']:.0f} MiB/s")
            outp.unlink()
    return [ours, theirs], size


def backup_cycle(kt, etcd, minio, work):
    """One `kontinuity etcd backup --export-config FILE` (snapshot, verify,
    save, export), for scale; returns (measured dict, export duration string)."""
    d = work / "cycle"
    d.mkdir()
    cfg = work / "export.yaml"
    cfg.write_text(f"backup_access_key_id: {minio.access_key}\n"
                   f"backup_secret_access_key: {minio.secret_key}\n"
                   f"backup_region: {minio.region}\nbackup_endpoint: {minio.endpoint}\n"
                   f"backup_bucket: {EXPORT_BUCKET}\n")
    cfg.chmod(0o600)
    argv = [kt, "etcd", "backup", "--endpoint", etcd.endpoint, "--no-client-cert",
            "--dir", d, "--instance-id", "i-bench", "--hostname", "bench", "--imds-url", "",
            "--kubeconfig", "", "--cluster-id", "bench", "--export-config", cfg]
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKUP_")}
    outp = work / "cycle.out"
    r = run_measured(argv, outp, env=env)
    check_rc("kontinuity etcd backup", r, outp)
    export_dur = "?"
    for line in outp.read_text(errors="replace").splitlines():
        if " export " in f" {line} " and "outcome=ok" in line:
            for tok in line.split():
                if tok.startswith("duration="):
                    export_dur = tok.split("=", 1)[1]
    log(f"backup cycle {r['wall']:.2f}s cpu {r['cpu']:.2f}s rss {r['rss_kib'] / 1024:.1f} MiB, "
        f"export {export_dur}")
    shutil.rmtree(d, ignore_errors=True)
    return r, export_dur


def _parse_status(text):
    """The JSON object in TEXT (etcdutl may log lines before it)."""
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                pass
    try:
        return json.loads(text)
    except ValueError:
        return None


def compare_status(answers):
    ours = [_parse_status(t) for t in answers.get("kontinuity", [])]
    theirs = [_parse_status(t) for t in answers.get("etcdutl", [])]
    if not ours or not theirs or None in ours or None in theirs:
        return False, (f"unparsable output\n kontinuity: {answers.get('kontinuity', [''])[0]!r}\n"
                       f" etcdutl: {answers.get('etcdutl', [''])[0]!r}")
    if any(o != ours[0] for o in ours) or any(t != theirs[0] for t in theirs):
        return False, "the answers vary from run to run"
    if ours[0] != theirs[0]:
        return False, (f" kontinuity: {json.dumps(ours[0], sort_keys=True)}\n"
                       f" etcdutl:    {json.dumps(theirs[0], sort_keys=True)}")
    return True, json.dumps(ours[0], sort_keys=True)


_warnings = []


def warn(msg):
    _warnings.append(msg)
    bar = "!" * 78
    print(f"\n{bar}\nWARNING: {msg}\n{bar}\n", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# report


def machine():
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 30)
    return f"{cpu}, {os.cpu_count()} CPUs, {mem:.0f} GiB RAM, Linux {platform.release()}"


def version_of(argv):
    try:
        r = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=10)
        return (r.stdout or r.stderr).strip().splitlines()[0]
    except Exception as e:     # noqa: BLE001 - a version string is informative only
        return f"? ({e})"


def tree_state():
    """Commit of the tree being measured, and whether it has local changes."""
    try:
        rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "src"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return rev + (" + uncommitted changes in src/" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "? (not a git checkout)"


def rows(series, ratio_to):
    """Table rows: [bench, tool, median, min, cpu, rss, ratio]."""
    out = []
    for s in series:
        ref = ratio_to.get(s)
        ratio = f"{s.wall_med / ref.wall_med:.2f}" if ref else ""
        rss_ratio = f"{s.rss_mib / ref.rss_mib:.2f}" if ref else ""
        out.append([s.bench, s.tool, f"{s.wall_med:.2f}", f"{s.wall_min:.2f}",
                    f"{s.cpu_med:.2f}", f"{s.rss_mib:.1f}", ratio, rss_ratio])
    return out


HEADER = ["bench", "tool", "median s", "min s", "cpu s", "peak RSS MiB",
          "time ours/theirs", "RSS ours/theirs"]


def plain_table(rws):
    w = [max(len(str(r[i])) for r in [HEADER] + rws) for i in range(len(HEADER))]
    lines = ["  ".join(str(c).ljust(w[i]) if i < 2 else str(c).rjust(w[i])
                       for i, c in enumerate(r)) for r in [HEADER] + rws]
    lines.insert(1, "  ".join("-" * x for x in w))
    return "\n".join(lines)


def md_table(rws):
    out = ["| " + " | ".join(HEADER) + " |",
           "|" + "|".join(["---"] * 2 + ["---:"] * (len(HEADER) - 2)) + "|"]
    out += ["| " + " | ".join(str(c).replace("*", "\\*") for c in r) + " |" for r in rws]
    return "\n".join(out)


# ---------------------------------------------------------------------------


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: bench/bench.py KONTINUITY_BINARY")
    kt = Path(sys.argv[1]).resolve()
    if not os.access(kt, os.X_OK):
        sys.exit(f"bench: {kt} is not an executable (build it: ninja -C build)")
    db_mib = env_int("BENCH_DB_MIB", 1024)
    rounds = env_int("BENCH_ROUNDS", 3)
    st_rounds = env_int("BENCH_STATUS_ROUNDS", 5)
    ex_rounds = env_int("BENCH_EXPORT_ROUNDS", 3)
    rss_target = env_int("BENCH_RSS_TARGET_MIB", 10)
    out_md = Path(os.environ.get("BENCH_OUT") or REPO / "bench" / "out" / "latest.md")
    only = os.environ.get("BENCH_ONLY", "").strip()
    if only not in ("", "etcd", "export"):
        sys.exit(f"bench: BENCH_ONLY={only!r}: expected etcd or export (or unset: both)")
    do_etcd = only in ("", "etcd")
    do_export = only in ("", "export")
    if do_etcd:
        etcdctl = peers.binary("KT_ETCDCTL_BIN")
        etcdutl = peers.binary("KT_ETCDUTL_BIN")
    if do_export:
        # build/src/cli/kontinuity -> build/tests/unit/s3tool
        s3tool = Path(os.environ.get("BENCH_S3TOOL") or kt.parents[2] / "tests" / "unit" / "s3tool")
        if not os.access(s3tool, os.X_OK):
            sys.exit(f"bench: {s3tool} is not an executable (build it: ninja -C build)")
        rclone = os.environ.get("BENCH_RCLONE") or shutil.which("rclone")
        if not rclone:
            sys.exit("bench: rclone not found (Debian: apt-get install rclone; or set BENCH_RCLONE)")
        peers.binary("KT_MINIO_BIN")

    # SIGTERM -> SystemExit so that the finally below removes the scratch dir
    # (peers.py chains its own handler, which stops etcd, in front of this one).
    signal.signal(signal.SIGTERM, lambda s, f: sys.exit(128 + s))

    parent = os.environ.get("BENCH_DIR") or "/tmp"
    Path(parent).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="kt-bench-", dir=parent))
    etcd = minio = None
    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = os.getloadavg()[0]
    try:
        build_spawn(work)
        floor = run_measured(["true"], work / "true.out")["rss_kib"] / 1024.0
        series, ratio_to, targets, info_data, info_rate = [], {}, [], [], []
        equal, detail = True, ""
        cycle = None
        if do_export:
            minio = peers.Minio(work / "minio")
            minio.start()
            s3tool_call(s3tool, s3tool_env(minio, EXPORT_BUCKET), "mb")
            log(f"minio at {minio.endpoint}, bucket {EXPORT_BUCKET}")
        snap = work / "snapshot.db"
        if do_etcd:
            log(f"scratch dir {work}; loading ~{db_mib} MiB into etcd 3.6")
            etcd = peers.Etcd(work / "etcd", version="3.6", extra_args=[
                "--quota-backend-bytes", str(max(8 << 30, 4 * db_mib * MIB)),
                "--max-request-bytes", str(8 * MIB),
                "--unsafe-no-fsync",          # faster loading; no effect on what is measured
                "--snapshot-count", "100000", "--log-level", "warn"])
            etcd.start()
            nkeys = load(etcd, db_mib)
            st = etcd.api("/v3/maintenance/status", {})
            db_size = int(st.get("dbSize", 0))
            log(f"etcd db size {db_size / MIB:.0f} MiB, revision {st['header']['revision']}")

            save_series, snap_size = bench_save(kt, etcdctl, etcd, work, rounds, snap)
            if do_export:
                cycle = backup_cycle(kt, etcd, minio, work)
            etcd.stop()           # status/verify run with no etcd beside them
            status_series, equal, detail = bench_status(kt, etcdutl, snap, work, st_rounds)

            ours_save, theirs_save = save_series
            ours_st, theirs_st, verify = status_series
            series += save_series + status_series
            ratio_to.update({ours_save: theirs_save, ours_st: theirs_st, verify: theirs_st})
            save_ratio = ours_save.wall_med / theirs_save.wall_med
            status_ratio = ours_st.wall_med / theirs_st.wall_med
            targets += [
                ("save: time ours/theirs <= 1.0", f"{save_ratio:.2f}", save_ratio <= 1.0),
                (f"save: peak RSS a few MiB (<= {rss_target} MiB)", f"{ours_save.rss_mib:.1f} MiB",
                 ours_save.rss_mib <= rss_target),
                ("status: faster than etcdutl (ratio < 1.0)", f"{status_ratio:.2f}", status_ratio < 1.0),
                ("status: same answer as etcdutl", "equal" if equal else "DIFFERENT", equal),
            ]
            info_data.append(f"{nkeys} keys of {VALUE_SIZE} B under /registry/..., etcd db "
                             f"{db_size / MIB:.0f} MiB, snapshot file {snap_size / MIB:.0f} MiB "
                             f"({snap_size} B)")
            info_rate.append(("save rate", f"kontinuity {snap_size / MIB / ours_save.wall_med:.0f} MiB/s, "
                              f"etcdctl {snap_size / MIB / theirs_save.wall_med:.0f} MiB/s (median)"))
        if do_export:
            if not snap.exists():
                snap = work / "payload.bin"
                make_payload(snap, db_mib)
                info_data.append(f"export input: {snap.stat().st_size} B of generated values "
                                 "(half random hex, half repeated JSON)")
            else:
                info_data.append("export input: the etcdctl snapshot file above")
            export_series, ex_size = bench_export(s3tool, rclone, minio, snap, work, ex_rounds)
            ours_ex, theirs_ex = export_series
            series += export_series
            ratio_to[ours_ex] = theirs_ex
            ex_ratio = ours_ex.wall_med / theirs_ex.wall_med
            targets.append(("export: time ours/theirs <= 1.0", f"{ex_ratio:.2f}", ex_ratio <= 1.0))
            info_rate.append(("export rate", f"kontinuity {ex_size / MIB / ours_ex.wall_med:.0f} MiB/s, "
                              f"rclone {ex_size / MIB / theirs_ex.wall_med:.0f} MiB/s (median) to "
                              f"MinIO {version_of([minio.bin, '--version'])} on 127.0.0.1 over HTTP"))
            if cycle:
                r, export_dur = cycle
                info_rate.append(("backup cycle", f"one `kontinuity etcd backup --export-config` "
                                  f"(save, verify, export): {r['wall']:.2f} s wall, {r['cpu']:.2f} s "
                                  f"cpu, {r['rss_kib'] / 1024:.1f} MiB peak RSS; export "
                                  f"duration {export_dur}"))
        rws = rows(series, ratio_to)

        cmdline = os.environ.get("BENCH_INVOKED") or " ".join(shlex.quote(a) for a in sys.argv)
        env_desc = " ".join(f"{k}={os.environ[k]}" for k in
                            ("BENCH_ONLY", "BENCH_DB_MIB", "BENCH_ROUNDS", "BENCH_STATUS_ROUNDS",
                             "BENCH_EXPORT_ROUNDS")
                            if os.environ.get(k))
        info = [
            ("date", started.strftime("%Y-%m-%d %H:%M UTC")),
            ("command", (env_desc + " " if env_desc else "") + cmdline),
            ("machine", machine()),
            ("kontinuity", f"{version_of([kt, '--version'])} ({tree_state()})"),
        ]
        if do_etcd:
            info += [("etcdctl", version_of([etcdctl, "version"])),
                     ("etcdutl", version_of([etcdutl, "version"]))]
        if do_export:
            info += [("rclone", version_of([rclone, "version"]) + " (s3 backend defaults)")]
        info += [("data", "; ".join(info_data))] + info_rate
        info += [
            ("rounds", "; ".join(
                ([f"save {rounds} x (ours, theirs) interleaved", f"status/verify {st_rounds} x"]
                 if do_etcd else []) +
                ([f"export {ex_rounds} x (ours, theirs) interleaved"] if do_export else []))),
            ("scratch", str(parent)),
            ("load avg", f"{load_before:.2f} before the run, {os.getloadavg()[0]:.2f} after "
                         "(1-minute; other work on the machine skews the times)"),
            ("RSS floor", f"{floor:.1f} MiB (peak RSS of `true` through the launcher)"),
        ]

        print()
        for k, v in info:
            print(f"{k:11s} {v}")
        print()
        print(plain_table(rws))
        if do_etcd:
            print("* verify has no peer equivalent: its ratios are against etcdutl snapshot status")
        print()
        for name, val, ok in targets:
            print(f"{'met ' if ok else 'MISSED'}  {name}: {val}")
        if do_etcd:
            print(f"\nstatus answer: {detail}")
        for w in _warnings:
            print(f"WARNING: {w}")

        out_md.parent.mkdir(parents=True, exist_ok=True)
        md = ["# kontinuity benchmark - latest run", ""]
        md += [f"- **{k}**: `{v}`" if k == "command" else f"- **{k}**: {v}" for k, v in info]
        md += ["", "Wall time: median and minimum over the runs; cpu: median user+sys of "
               "the child; peak RSS: largest ru_maxrss of the child over the runs." +
               ("  * verify has no peer equivalent: its ratios are against etcdutl snapshot "
                "status, for scale." if do_etcd else ""), "",
               md_table(rws), "", "| target | value | met |", "|---|---:|---|"]
        md += [f"| {n} | {v} | {'yes' if ok else '**no**'} |" for n, v, ok in targets]
        if do_etcd:
            md += ["", f"status answer (both tools): `{detail}`" if equal
                   else f"**WARNING: status answers differ**\n\n```\n{detail}\n```"]
        md += [f"\n**WARNING**: {w}" for w in _warnings if not w.startswith("status:")]
        out_md.write_text("\n".join(md) + "\n")
        log(f"wrote {out_md}")
        return 0 if not _warnings else 1
    finally:
        if _current_child is not None and _current_child.poll() is None:
            _current_child.kill()
        if etcd is not None:
            etcd.stop()
        if minio is not None:
            minio.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
