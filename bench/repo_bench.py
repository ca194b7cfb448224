#!/usr/bin/env python3
"""`kontinuity repo` against restic and borg, side by side in one run, on the
same generated data (docs/benchmarks.md, "Repository").

    bench/repo_bench.py KONTINUITY_BINARY      (normally `make bench-repo`)

Data: bench/repo_data.py, ~1 GiB of random bytes, compressible text and
10,000 small files, then a 2 % mutation of it (inserts in the middle of the
big files, appends, small files removed and added).  Each tool gets its own
local directory repository, encrypted (restic: always; borg: repokey with
BORG_PASSPHRASE; ours: KONTINUITY_PASSWORD), zstd compression (restic:
its default `auto`, which is zstd at klauspost's SpeedDefault, about level
3; borg: `--compression zstd,3`; ours: the default, zstd level 1, which
leaves the repository ~1 % larger than level 3 did for ~10 % less CPU).

Steps, each measured per tool (wall, CPU user+sys and peak RSS of the
child, through bench/spawn.c):
  backup1 cold   first backup after `sync; echo 3 > /proc/sys/vm/drop_caches`;
                 ROUNDS times (the first into the repository the later steps
                 use, the others into fresh ones), order rotated, median
  backup1 warm   first backup into a fresh repository, data in the page
                 cache (read again before every run: borg evicts its input
                 files); BENCH_REPO_ROUNDS times, order rotated, median
  backup2 cold   second backup after the mutation, into the repository of
                 backup1 cold, caches dropped first
  backup2 warm   the same backup into a copy of that repository taken before
                 backup2 cold, data in the page cache
  restore cold   the second snapshot into an empty directory, caches dropped;
                 ROUNDS times, order rotated, median (one cold run of either
                 tool varied by 20 % here)
  restore warm   the same, repository in the page cache (read again before
                 every run); ROUNDS times, median
  restore ... +sync  the same restores plus a `sync` right after each: until
                 the files are on disk (ours are before it returns; restic
                 and borg leave that to the kernel after they exit)
  check          `repo check --read-data` / `restic check --read-data` /
                 `borg check --verify-data`, repository in the page cache
Every cold restore is compared with the data (content, mode, mtime of
every file; outside the measurement).  "added" is how much the repository
directory grew with backup2 (sum of file sizes).  Before every run the
page cache is synced (outside the measurement), so that no tool pays for
the write-back of another's files.  On an ext4 without a journal, start a
run at least 6 minutes after deleting many files there (the last run's
scratch directory, `make check`'s temporary trees): until then every
file created steps over the deleted inodes (docs/benchmarks.md, "Steps").

Environment:
  BENCH_REPO_MIB      data set size, MiB (default 1024; 64 for a quick trial)
  BENCH_REPO_ROUNDS   rounds of backup1 and restore, cold and warm (default 3)
  BENCH_REPO_TOOLS    comma list of kontinuity,restic,borg (default all three)
  BENCH_COLD          0: skip dropping the page cache (cold steps are then warm)
  BENCH_RESTIC, BENCH_BORG   the peers (default: restic, borg on PATH)
  BENCH_DIR           parent of the scratch directory (default /tmp; needs
                      ~31 GiB free at the default size: the restored trees
                      stay until the restore step ends, the repositories
                      of the extra backup1 rounds until the end); removed
                      at the end
  BENCH_REPO_OUT      markdown report (default bench/out/repo-latest.md)
  BENCH_KT_LABEL      what the report says the kontinuity binary is (default:
                      the commit of this tree, noting uncommitted changes)
"""

import datetime
import hashlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.dont_write_bytecode = True
sys.path.insert(0, str(HERE))
import repo_data  # noqa: E402

MIB = 1 << 20
PASS = "bench passphrase, not a secret"
TARGET_RSS_MIB = 64


def env_int(name, default):
    v = os.environ.get(name, "")
    try:
        return int(v) if v else default
    except ValueError:
        sys.exit(f"repo bench: {name}={v!r} is not an integer")


def log(msg):
    print(f"[repo-bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


_warnings = []


def warn(msg):
    _warnings.append(msg)
    log("WARNING: " + msg)


# ---------------------------------------------------------------------------
# measuring one child (bench/spawn.c: fork, exec, wait4; see bench/bench.py)

_spawn = None
_child = None


def build_spawn(work):
    global _spawn
    exe = work / "spawn"
    subprocess.run([os.environ.get("CC") or "cc", "-O2", "-o", str(exe),
                    str(HERE / "spawn.c")], check=True)
    _spawn = exe


def run_measured(argv, out_path, env, cwd=None):
    """Run ARGV (stdout+stderr to OUT_PATH) through the launcher; returns
    dict(wall, cpu, rss_kib, rc)."""
    global _child
    res = Path(str(out_path) + ".res")
    _child = subprocess.Popen([str(_spawn), str(out_path), str(res), *map(str, argv)],
                              stdin=subprocess.DEVNULL, env=env, cwd=cwd)
    try:
        rc = _child.wait()
    finally:
        _child = None
    if rc != 0:
        raise RuntimeError(f"bench/spawn could not run {argv[0]} (exit {rc})")
    wall_ns, user_us, sys_us, rss_kib, code = (int(x) for x in res.read_text().split())
    res.unlink()
    return {"wall": wall_ns / 1e9, "cpu": (user_us + sys_us) / 1e6, "rss_kib": rss_kib,
            "rc": code}


_cold_ok = None


def drop_caches():
    """Empty the page cache (root only).  Returns True when it was done."""
    global _cold_ok
    if os.environ.get("BENCH_COLD", "1") == "0":
        _cold_ok = False
        return False
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        _cold_ok = True
    except OSError as e:
        if _cold_ok is not False:
            warn(f"cannot drop the page cache ({e}): the cold steps ran warm")
        _cold_ok = False
    return _cold_ok


def warm(root):
    """Read every file under root once (into the page cache)."""
    for dirpath, _dirs, names in os.walk(root):
        for n in names:
            with open(os.path.join(dirpath, n), "rb") as f:
                while f.read(8 * MIB):
                    pass


def tree_size(root):
    total = 0
    for dirpath, _dirs, names in os.walk(root):
        for n in names:
            try:
                total += os.lstat(os.path.join(dirpath, n)).st_size
            except FileNotFoundError:
                pass
    return total


def manifest(root):
    """{relative path: (kind, mode, mtime_ns, size, sha256)} of the data."""
    out = {}
    for dirpath, dirs, names in os.walk(root):
        for n in dirs:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            out[os.path.relpath(p, root)] = ("dir", st.st_mode & 0o7777)
        for n in names:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            h = hashlib.sha256()
            with open(p, "rb") as f:
                while True:
                    b = f.read(8 * MIB)
                    if not b:
                        break
                    h.update(b)
            out[os.path.relpath(p, root)] = ("file", st.st_mode & 0o7777, st.st_mtime_ns,
                                             st.st_size, h.hexdigest())
    return out


# ---------------------------------------------------------------------------
# the three tools


class Tool:
    name = "?"

    def __init__(self, binary, work):
        self.bin = binary
        self.work = work

    def env(self, repo):
        e = {k: v for k, v in os.environ.items()
             if not k.startswith(("KONTINUITY_", "RESTIC_", "BORG_", "AWS_"))}
        e["HOME"] = str(self.work / "home")
        return e

    def state(self, repo):
        """Client-side state beside repo (caches) that a copy must carry."""
        return None

    def copy_repo(self, repo, dst):
        shutil.copytree(repo, dst, symlinks=True)
        st = self.state(repo)
        if st and st.exists():
            shutil.copytree(st, self.state(dst), symlinks=True)

    def added_reported(self, out_text):
        return None


class Kontinuity(Tool):
    name = "kontinuity"
    command = {"init": "kontinuity repo init --repo R",
               "backup": "kontinuity repo backup --repo R DATA",
               "restore": "kontinuity repo restore --repo R latest TARGET",
               "check": "kontinuity repo check --repo R --read-data"}

    def env(self, repo):
        e = super().env(repo)
        e["KONTINUITY_PASSWORD"] = PASS
        return e

    def init(self, repo):
        return [self.bin, "repo", "init", "--repo", repo], None

    def backup(self, repo, data, label):
        return [self.bin, "repo", "backup", "--repo", repo, data, "-o", "json"], None

    def restore(self, repo, target):
        return [self.bin, "repo", "restore", "--repo", repo, "latest", target], None

    def check(self, repo):
        return [self.bin, "repo", "check", "--repo", repo, "--read-data"], None

    def added_reported(self, out_text):
        start = out_text.find("{")
        try:
            return json.loads(out_text[start:]).get("storedBytes") if start >= 0 else None
        except ValueError:
            return None

    def version(self):
        return subprocess.run([self.bin, "--version"], capture_output=True,
                              text=True).stdout.strip()


class Restic(Tool):
    name = "restic"
    command = {"init": "restic init --repository-version 2",
               "backup": "restic backup DATA",
               "restore": "restic restore latest --target TARGET",
               "check": "restic check --read-data"}

    def state(self, repo):
        return Path(str(repo) + ".cache")

    def env(self, repo):
        e = super().env(repo)
        e.update(RESTIC_REPOSITORY=str(repo), RESTIC_PASSWORD=PASS,
                 RESTIC_CACHE_DIR=str(self.state(repo)))
        return e

    def init(self, repo):
        return [self.bin, "init", "--repository-version", "2"], None

    def backup(self, repo, data, label):
        return [self.bin, "backup", "--json", data], None

    def restore(self, repo, target):
        return [self.bin, "restore", "latest", "--target", target], None

    def check(self, repo):
        return [self.bin, "check", "--read-data"], None

    def added_reported(self, out_text):
        for line in reversed(out_text.splitlines()):
            if '"summary"' in line:
                try:
                    return json.loads(line).get("data_added")
                except ValueError:
                    pass
        return None

    def version(self):
        return subprocess.run([self.bin, "version"], capture_output=True,
                              text=True).stdout.strip()


class Borg(Tool):
    name = "borg"
    command = {"init": "borg init --encryption repokey",
               "backup": "borg create --compression zstd,3 R::NAME DATA",
               "restore": "borg extract R::b2 (in TARGET)",
               "check": "borg check --verify-data"}

    def state(self, repo):
        return Path(str(repo) + ".base")

    def env(self, repo):
        e = super().env(repo)
        e.update(BORG_PASSPHRASE=PASS, BORG_BASE_DIR=str(self.state(repo)),
                 BORG_RELOCATED_REPO_ACCESS_IS_OK="yes",
                 BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK="no")
        return e

    def init(self, repo):
        return [self.bin, "init", "--encryption", "repokey", repo], None

    def backup(self, repo, data, label):
        return [self.bin, "create", "--compression", "zstd,3", "--stats",
                f"{repo}::{label}", data], None

    def restore(self, repo, target):
        return [self.bin, "extract", f"{repo}::b2"], target

    def check(self, repo):
        return [self.bin, "check", "--verify-data", repo], None

    def added_reported(self, out_text):
        for line in out_text.splitlines():
            if line.startswith("This archive:"):
                parts = line.split()
                # This archive:   X GB   Y GB   Z MB   (orig, compressed, dedup)
                try:
                    val, unit = float(parts[-2]), parts[-1]
                    mult = {"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}[unit]
                    return int(val * mult)
                except (ValueError, KeyError, IndexError):
                    return None
        return None

    def version(self):
        return subprocess.run([self.bin, "--version"], capture_output=True,
                              text=True).stdout.strip()


# ---------------------------------------------------------------------------


class Result:
    def __init__(self, step, tool, nbytes):
        self.step, self.tool, self.nbytes = step, tool, nbytes
        self.runs = []

    def add(self, r):
        self.runs.append(r)

    @property
    def wall(self):
        return statistics.median(r["wall"] for r in self.runs)

    @property
    def cpu(self):
        return statistics.median(r["cpu"] for r in self.runs)

    @property
    def rss_mib(self):
        return max(r["rss_kib"] for r in self.runs) / 1024.0

    @property
    def rate(self):
        return self.nbytes / MIB / self.wall


def rotated(tools, rnd):
    """The tools in round rnd's order: each goes first in turn."""
    k = rnd % len(tools)
    return tools[k:] + tools[:k]


def run_step(tool, step, argv_cwd, repo, work, tag):
    argv, cwd = argv_cwd
    out = work / f"{tool.name}-{tag}.out"
    os.sync()       # nobody's dirty pages are written back during the next run
    r = run_measured(argv, out, tool.env(repo), cwd=cwd)
    text = out.read_text(errors="replace")
    if r["rc"] != 0:
        raise RuntimeError(f"{tool.name} {step} exited {r['rc']}:\n{text[-3000:]}")
    out.unlink()
    log(f"{step:13s} {tool.name:10s} {r['wall']:7.2f}s  cpu {r['cpu']:6.2f}s  "
        f"rss {r['rss_kib'] / 1024:7.1f} MiB")
    return r, text


def verify_restore(tool, target, data, want):
    root = Path(str(target) + str(Path(data).resolve()))
    got = manifest(root)
    if got != want:
        missing = sorted(set(want) - set(got))[:5]
        extra = sorted(set(got) - set(want))[:5]
        diff = sorted(k for k in set(want) & set(got) if want[k] != got[k])[:5]
        warn(f"{tool.name}: the restore differs from the data: missing {missing}, "
             f"extra {extra}, different {[(k, want[k], got[k]) for k in diff]}")
        return False
    return True


def fmt_ratio(x):
    return f"{x:.2f}" if x is not None else ""


def table_rows(results, tools):
    """Rows: step, tool, wall, MiB/s, cpu, rss, speed ours/theirs, rss ours/theirs."""
    rows = []
    for step in STEPS:
        ours = results.get((step, "kontinuity"))
        for t in tools:
            r = results.get((step, t.name))
            if not r:
                continue
            speed = rss = None
            if ours and r is not ours:
                speed = r.wall / ours.wall
                rss = ours.rss_mib / r.rss_mib if r.rss_mib else None
            rows.append([step, t.name, f"{r.wall:.2f}", f"{r.rate:.0f}", f"{r.cpu:.2f}",
                         f"{r.rss_mib:.1f}", fmt_ratio(speed), fmt_ratio(rss)])
    return rows


HEAD = ["step", "tool", "wall s", "MiB/s", "cpu s", "peak RSS MiB",
        "speed ours/theirs", "RSS ours/theirs"]
STEPS = ["backup1 cold", "backup1 warm", "backup2 cold", "backup2 warm", "restore cold",
         "restore warm", "restore cold +sync", "restore warm +sync", "check"]


def durable(r):
    """The restore just measured, plus a `sync` right after it: the time
    until the restored files are on disk.  Our restore syncs before it
    returns (the sync then finds nothing to write); restic and borg leave
    their write-back to the kernel, after they exit, which the plain
    restore rows do not count.  CPU stays the tool's own."""
    t0 = time.monotonic()
    os.sync()
    return {**r, "wall": r["wall"] + time.monotonic() - t0}


def plain_table(rows):
    w = [max(len(str(x)) for x in col) for col in zip(HEAD, *rows)]
    lines = ["  ".join(str(x).rjust(w[i]) if i >= 2 else str(x).ljust(w[i])
                       for i, x in enumerate(r)) for r in [HEAD] + rows]
    return "\n".join(lines)


def md_table(rows):
    out = ["| " + " | ".join(HEAD) + " |", "|---|---|" + "---:|" * (len(HEAD) - 2)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


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


def main():
    if len(sys.argv) != 2:
        print("usage: bench/repo_bench.py KONTINUITY_BINARY", file=sys.stderr)
        return 2
    kt = str(Path(sys.argv[1]).resolve())
    mib = env_int("BENCH_REPO_MIB", 1024)
    rounds = max(1, env_int("BENCH_REPO_ROUNDS", 3))
    want_tools = os.environ.get("BENCH_REPO_TOOLS", "kontinuity,restic,borg").split(",")
    out_md = Path(os.environ.get("BENCH_REPO_OUT", str(HERE / "out" / "repo-latest.md")))
    parent = Path(os.environ.get("BENCH_DIR", "/tmp"))
    work = Path(tempfile.mkdtemp(prefix="kt-repo-bench-", dir=parent))

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)

    try:
        build_spawn(work)
        (work / "home").mkdir()
        tools = []
        for name in want_tools:
            if name == "kontinuity":
                tools.append(Kontinuity(kt, work))
            elif name == "restic":
                tools.append(Restic(os.environ.get("BENCH_RESTIC") or shutil.which("restic")
                                    or "restic", work))
            elif name == "borg":
                tools.append(Borg(os.environ.get("BENCH_BORG") or shutil.which("borg")
                                  or "borg", work))
            else:
                sys.exit(f"repo bench: unknown tool {name!r} in BENCH_REPO_TOOLS")
        for t in tools:
            if not shutil.which(t.bin):
                sys.exit(f"repo bench: {t.bin} not found (make bench-repo installs the "
                         "Debian packages restic and borgbackup)")
        load_before = os.getloadavg()[0]
        started = datetime.datetime.now(datetime.timezone.utc)

        data = work / "data"
        t0 = time.monotonic()
        nbytes, nfiles = repo_data.generate(data, mib)
        log(f"generated {nbytes / MIB:.0f} MiB in {nfiles} files in "
            f"{time.monotonic() - t0:.0f}s")
        results = {}

        def rec(step, tool, r, n):
            key = (step, tool.name)
            if key not in results:
                results[key] = Result(step, tool.name, n)
            results[key].add(r)

        repos = {t.name: work / f"repo-{t.name}" for t in tools}
        sizes = {}
        for t in tools:
            run_step(t, "init", t.init(repos[t.name]), repos[t.name], work, "init")

        # 1. first backup, cold: round 0 into the repository the later
        # steps use, the other rounds into fresh ones (kept to the end)
        for rnd in range(rounds):
            for t in rotated(tools, rnd):
                repo = repos[t.name] if rnd == 0 else work / f"cold-{t.name}-{rnd}"
                if rnd:
                    run_step(t, "init", t.init(repo), repo, work, "initc")
                drop_caches()
                r, _ = run_step(t, "backup1 cold", t.backup(repo, data, "b1"), repo, work,
                                "b1c")
                rec("backup1 cold", t, r, nbytes)
                if rnd == 0:
                    sizes[(t.name, "b1")] = tree_size(repo)
        # 1b. first backup, warm, fresh repositories.  The data is read
        # again before every run: borg drops its input files from the page
        # cache (posix_fadvise DONTNEED), so whoever ran after it would
        # otherwise read them cold.
        for rnd in range(rounds):
            for t in rotated(tools, rnd):
                # A fresh repository each round, kept until the end: see
                # the restores below for why nothing is deleted midway.
                w = work / f"warm-{t.name}-{rnd}"
                run_step(t, "init", t.init(w), w, work, "initw")
                warm(data)
                r, _ = run_step(t, "backup1 warm", t.backup(w, data, "b1"), w, work, "b1w")
                rec("backup1 warm", t, r, nbytes)

        # 2. the mutation, then the second backup
        ch = repo_data.mutate(data)
        nbytes2, nfiles2 = repo_data.stats(data)
        changed = ch["inserted"] + ch["appended"] + ch["removed"] + ch["added"]
        log(f"mutated: {ch}; {changed / MIB:.1f} MiB changed "
            f"({100 * changed / nbytes:.1f} %), now {nbytes2 / MIB:.0f} MiB in {nfiles2} files")
        added = {}
        reported = {}
        reuse_note = None
        for t in tools:
            t.copy_repo(repos[t.name], work / f"copy-{t.name}")
        for t in tools:
            drop_caches()
            r, text = run_step(t, "backup2 cold", t.backup(repos[t.name], data, "b2"),
                               repos[t.name], work, "b2c")
            rec("backup2 cold", t, r, nbytes2)
            sizes[(t.name, "b2")] = tree_size(repos[t.name])
            added[t.name] = sizes[(t.name, "b2")] - sizes[(t.name, "b1")]
            reported[t.name] = t.added_reported(text)
            log(f"  {t.name}: repository grew by {added[t.name] / MIB:.1f} MiB "
                f"(the tool says {reported[t.name]})")
            if t.name == "kontinuity":
                start = text.find("{")
                try:
                    j = json.loads(text[start:]) if start >= 0 else {}
                except ValueError:
                    j = {}
                reuse_note = (f"kontinuity backup2: {j.get('filesRead')} files read, "
                              f"{j.get('filesReused')} unchanged since the parent snapshot "
                              f"not read ({(j.get('bytesReused') or 0) / MIB:.1f} MiB)")
                log("  " + reuse_note)
        for t in tools:
            c = work / f"copy-{t.name}"
            warm(data)
            r, _ = run_step(t, "backup2 warm", t.backup(c, data, "b2"), c, work, "b2w")
            rec("backup2 warm", t, r, nbytes2)

        # 3. restore the second snapshot.  The restored trees stay until
        # the end of this step, and the repositories of the warm backups
        # until the end of the run: creating 10,000 files right after deleting
        # 10,000 is much slower on ext4 (its inode allocator skips the
        # recently deleted inodes one by one), whoever comes next.
        want = manifest(data)
        targets = []
        for kind in ("cold", "warm"):
            for rnd in range(rounds):
                for t in rotated(tools, rnd):
                    target = work / f"restore-{t.name}-{kind}-{rnd}"
                    target.mkdir()
                    targets.append(target)
                    if kind == "cold":
                        drop_caches()
                    else:
                        warm(repos[t.name])
                    r, _ = run_step(t, f"restore {kind}", t.restore(repos[t.name], target),
                                    repos[t.name], work, "r" + kind[0])
                    rec(f"restore {kind}", t, r, nbytes2)
                    rec(f"restore {kind} +sync", t, durable(r), nbytes2)
                    if kind == "cold" and rnd == 0 and verify_restore(t, target, data, want):
                        log(f"  {t.name}: restored tree equals the data (content, modes, "
                            "mtimes)")
        for target in targets:
            shutil.rmtree(target)

        # 4. check every byte
        for t in tools:
            warm(repos[t.name])
            r, _ = run_step(t, "check", t.check(repos[t.name]), repos[t.name], work, "check")
            rec("check", t, r, nbytes2)

        # ------------------------------------------------------------------ report
        rows = table_rows(results, tools)
        size_rows = []
        for t in tools:
            size_rows.append([t.name, f"{sizes[(t.name, 'b1')] / MIB:.1f}",
                              f"{added[t.name] / MIB:.1f}",
                              f"{reported[t.name] / MIB:.1f}" if reported[t.name] else "?"])
        targets = []
        ours = lambda s: results.get((s, "kontinuity"))          # noqa: E731
        theirs = lambda s: results.get((s, "restic"))            # noqa: E731
        if ours("backup1 cold") and theirs("backup1 cold"):
            for s in STEPS:
                if s.startswith(("backup", "restore")):
                    x = theirs(s).wall / ours(s).wall
                    targets.append((f"{s} throughput >= 2x restic's", f"{x:.2f}x", x >= 2))
            targets.append(("bytes added by backup2 <= restic's",
                            f"{added['kontinuity'] / MIB:.1f} MiB vs "
                            f"{added['restic'] / MIB:.1f} MiB",
                            added["kontinuity"] <= added["restic"]))
        if any(k[1] == "kontinuity" for k in results):
            peak = max(r.rss_mib for k, r in results.items() if k[1] == "kontinuity")
            targets.append((f"peak RSS <= {TARGET_RSS_MIB} MiB (every step)",
                            f"{peak:.1f} MiB", peak <= TARGET_RSS_MIB))

        head_sha = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                                  capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--",
                                "src"], capture_output=True, text=True).stdout.strip()
        info = [("date", started.strftime("%Y-%m-%d %H:%M UTC")),
                ("command", os.environ.get("BENCH_INVOKED", f"bench/repo_bench.py {sys.argv[1]}")),
                ("machine", machine()),
                ("kontinuity", os.environ.get("BENCH_KT_LABEL") or
                 f"{head_sha}{' + uncommitted changes in src/' if dirty else ''}")]
        for t in tools:
            if t.name != "kontinuity":
                info.append((t.name, t.version().splitlines()[0]))
        info += [("data", f"{nbytes / MIB:.0f} MiB in {nfiles} files; after the mutation "
                          f"{nbytes2 / MIB:.0f} MiB in {nfiles2} files"),
                 ("mutation", f"{changed / MIB:.1f} MiB ({100 * changed / nbytes:.1f} %): "
                              f"{ch['inserts']} inserts of {ch['inserted'] / MIB:.1f} MiB in all, "
                              f"{ch['appended'] / MIB:.1f} MiB appended, "
                              f"{ch['files_removed']} small files ({ch['removed'] / MIB:.1f} MiB) "
                              f"removed, {ch['files_added']} ({ch['added'] / MIB:.1f} MiB) added"),
                 ("cold", "page cache dropped before each cold step" if _cold_ok
                          else "NOT cold: the page cache could not be dropped"),
                 ("rounds", f"backup1 and restore, cold and warm: {rounds} (median); "
                            "backup2 and check once"),
                 ("load avg", f"{load_before:.2f} before, {os.getloadavg()[0]:.2f} after "
                              "(1-minute; other work on the machine skews the times)")]
        print()
        for k, v in info:
            print(f"{k:11s} {v}")
        print()
        print(plain_table(rows))
        print()
        if reuse_note:
            print(reuse_note)
        print("repository MiB: after backup1 / added by backup2 / as the tool reports it")
        for r in size_rows:
            print("  " + "  ".join(r))
        print()
        for name, val, ok in targets:
            print(f"{'met   ' if ok else 'MISSED'}  {name}: {val}")
        for w in _warnings:
            print(f"WARNING: {w}")

        out_md.parent.mkdir(parents=True, exist_ok=True)
        md = ["# kontinuity repository benchmark - latest run", ""]
        md += [f"- **{k}**: `{v}`" if k == "command" else f"- **{k}**: {v}" for k, v in info]
        md += ["", "MiB/s: data set bytes / wall time (backup1: the data before the mutation, "
               "later steps: after it).  speed ours/theirs: their wall time / ours (above 1: "
               "we are faster).  cpu: user+sys of the child.  Peak RSS: ru_maxrss.", "",
               md_table(rows), "",
               "| tool | repository after backup1 MiB | added by backup2 MiB | "
               "added, as the tool reports it MiB |", "|---|---:|---:|---:|"]
        md += ["| " + " | ".join(r) + " |" for r in size_rows]
        if reuse_note:
            md += ["", reuse_note + "."]
        md += ["", "| target | value | met |", "|---|---:|---|"]
        md += [f"| {n} | {v} | {'yes' if ok else '**no**'} |" for n, v, ok in targets]
        md += [f"\n**WARNING**: {w}" for w in _warnings]
        out_md.write_text("\n".join(md) + "\n")
        log(f"wrote {out_md}")
        return 0 if not _warnings else 1
    finally:
        if _child is not None and _child.poll() is None:
            _child.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
