#!/usr/bin/env python3
"""A stand-in for the kubelet's static pod handling, for tests on a machine
where no kubelet (and no container runtime) can run.

    python3 kubelet_standin.py --manifests DIR --log FILE
        [--bin etcd=/path/to/etcd ...] [--pod-logs DIR] [--grace S]
        [--poll S] [--backoff S] [--max-backoff S]

Every --poll seconds (0.1) it reads DIR the way the kubelet's file source
does: every regular file whose name does not start with "." is a candidate
manifest (so `etcd.yaml.bak` left in DIR still counts, as with the real
kubelet; only a dot-file or a file moved out of DIR is ignored). A file that
is empty, does not parse, or is not a v1 Pod is logged and left out of the
desired set, so a pod whose manifest becomes unreadable is stopped, as the
kubelet does. Two files declaring the same namespace/name: the first in
name order wins, the other is logged as a duplicate.

For each desired pod it runs the FIRST container as a plain process:
argv = command + args, the first word mapped through --bin (exact word,
else its basename: "etcd" -> /path/to/etcd), env from the container's
literal env values, cwd = workingDir if set. Output goes to
POD_LOGS/<namespace>_<name>.log (POD_LOGS defaults to the dir of --log).
Each child gets its own session and PR_SET_PDEATHSIG=SIGKILL, so nothing
survives this process.

- manifest removed (or now invalid): stop (SIGTERM to the process group,
  SIGKILL after the pod's spec.terminationGracePeriodSeconds, else --grace
  seconds, default 30 as the kubelet's; etcd 3.6 with a kube-apiserver
  connected takes about 7 s to exit on SIGTERM).
- manifest content changed (or the pod now comes from another file): stop,
  then start the new spec.
- process exited by itself: start again after a back-off (restartPolicy
  Always) of --backoff seconds (0.5), doubled per consecutive quick exit up
  to --max-backoff (5); reset once a run lasted 10 s.
- SIGTERM/SIGINT: stop every child (same grace), then exit 0.

Every event is one line in --log, `<UTC ISO time> <event> key=value ...`,
with event one of: standin-start, start, exit, stop, backoff, invalid,
duplicate, standin-stop. `start`, `exit` and `stop` carry pod=, file= and
pid=; `stop` carries reason= (removed, changed, shutdown) and how= (TERM,
KILL when the grace ran out, exited when it had already gone);
`exit`/`stop` carry status= (the wait status as Python's returncode: -N
for signal N). A pod whose manifest turned invalid is stopped with
reason=removed after an `invalid` line.
"""

import argparse
import ctypes
import datetime
import hashlib
import os
import shlex
import signal
import subprocess
import sys
import time

try:
    import yaml
except ImportError:  # pragma: no cover - reported at start-up
    yaml = None

PR_SET_PDEATHSIG = 1
QUICK_EXIT = 10.0          # a run shorter than this counts for the back-off


def _die_with_parent():
    # In the child between fork and exec. This process is single-threaded, so
    # the death signal is tied to the whole stand-in, not to a worker thread.
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except Exception:
        pass


class Log:
    def __init__(self, path):
        self.f = open(path, "a", buffering=1)

    def __call__(self, event, **kv):
        now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")
        parts = [now.replace("+00:00", "Z"), event]
        for k, v in kv.items():
            parts.append(f"{k}={shlex.quote(str(v))}")
        self.f.write(" ".join(parts) + "\n")


class Pod:
    """One desired static pod: where it came from and how to run it."""

    def __init__(self, key, path, digest, argv, env, cwd, grace=None):
        self.key, self.path, self.digest = key, path, digest
        self.argv, self.env, self.cwd = argv, env, cwd
        self.grace = grace       # terminationGracePeriodSeconds, if the spec sets it

    def same_spec(self, other):
        return other is not None and (self.path, self.digest) == (other.path, other.digest)


def parse_manifest(path, bins):
    """Pod for the manifest at PATH, or raise ValueError saying why not."""
    with open(path, "rb") as f:
        path_bytes = f.read()
    if not path_bytes.strip():
        raise ValueError("empty file")
    try:
        docs = [d for d in yaml.safe_load_all(path_bytes) if d is not None]
    except yaml.YAMLError as e:
        raise ValueError(f"YAML: {str(e).splitlines()[0]}")
    if len(docs) != 1:
        raise ValueError(f"{len(docs)} documents, want 1")
    data = docs[0]
    if not isinstance(data, dict) or data.get("kind") != "Pod" or data.get("apiVersion") != "v1":
        raise ValueError("not a v1 Pod")
    meta = data.get("metadata") or {}
    name = meta.get("name")
    if not name:
        raise ValueError("no metadata.name")
    ns = meta.get("namespace") or "default"
    spec = data.get("spec") or {}
    grace = spec.get("terminationGracePeriodSeconds")
    if grace is not None and not isinstance(grace, (int, float)):
        raise ValueError("terminationGracePeriodSeconds is not a number")
    containers = spec.get("containers") or []
    if not containers or not isinstance(containers[0], dict):
        raise ValueError("no spec.containers")
    c = containers[0]
    argv = [str(a) for a in (c.get("command") or [])] + [str(a) for a in (c.get("args") or [])]
    if not argv:
        raise ValueError("container has no command (an image entrypoint cannot be run here)")
    first = argv[0]
    argv[0] = bins.get(first) or bins.get(os.path.basename(first)) or first
    env = dict(os.environ)
    for e in c.get("env") or []:
        if isinstance(e, dict) and "name" in e and "value" in e:
            env[str(e["name"])] = str(e["value"])
    digest = hashlib.sha256(path_bytes).hexdigest()[:16]
    return Pod(f"{ns}/{name}", path, digest, argv, env, c.get("workingDir") or None, grace)


class Running:
    """The process run for a pod, and its restart state."""

    def __init__(self, pod):
        self.pod = pod
        self.proc = None
        self.started = 0.0
        self.backoff = 0.0
        self.next_start = 0.0    # monotonic time of the next start when not running


class Standin:
    def __init__(self, args):
        self.args = args
        self.log = Log(args.log)
        self.bins = dict(b.split("=", 1) for b in args.bin)
        self.pod_logs = args.pod_logs or os.path.dirname(os.path.abspath(args.log))
        self.running = {}        # pod key -> Running
        self.reported = {}       # file -> last invalid/duplicate message (log once)
        self.stopping = False

    # -- desired state -------------------------------------------------------

    def desired(self):
        pods = {}
        try:
            names = sorted(os.listdir(self.args.manifests))
        except FileNotFoundError:
            names = []
        seen = set()
        for n in names:
            if n.startswith("."):
                continue
            path = os.path.join(self.args.manifests, n)
            if not os.path.isfile(path):
                continue
            seen.add(path)
            try:
                pod = parse_manifest(path, self.bins)
            except (OSError, ValueError) as e:
                self._report(path, "invalid", file=path, error=str(e))
                continue
            if pod.key in pods:
                self._report(path, "duplicate", file=path, pod=pod.key,
                             kept=pods[pod.key].path)
                continue
            self.reported.pop(path, None)
            pods[pod.key] = pod
        for p in list(self.reported):
            if p not in seen:
                del self.reported[p]
        return pods

    def _report(self, path, event, **kv):
        msg = (event, tuple(sorted(kv.items())))
        if self.reported.get(path) != msg:
            self.reported[path] = msg
            self.log(event, **kv)

    # -- processes -------------------------------------------------------------

    def start(self, r):
        pod = r.pod
        logf = os.path.join(self.pod_logs, pod.key.replace("/", "_") + ".log")
        try:
            with open(logf, "ab") as out:
                out.write(f"==== stand-in start {time.strftime('%Y-%m-%dT%H:%M:%S')} "
                          f"{shlex.join(pod.argv)}\n".encode())
                out.flush()
                r.proc = subprocess.Popen(pod.argv, stdin=subprocess.DEVNULL, stdout=out,
                                          stderr=subprocess.STDOUT, env=pod.env, cwd=pod.cwd,
                                          start_new_session=True, preexec_fn=_die_with_parent)
        except OSError as e:
            r.proc = None
            self.log("start-failed", pod=pod.key, file=pod.path, error=str(e))
            self._schedule_restart(r, ran=0.0)
            return
        r.started = time.monotonic()
        self.log("start", pod=pod.key, file=pod.path, pid=r.proc.pid, digest=pod.digest,
                 argv=shlex.join(pod.argv))

    def stop(self, r, reason):
        p = r.proc
        if p is None:
            return
        how = "exited"
        if p.poll() is None:
            how = "TERM"
            _killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(timeout=self.args.grace if r.pod.grace is None else r.pod.grace)
            except subprocess.TimeoutExpired:
                how = "KILL"
        _killpg(p.pid, signal.SIGKILL)       # the leader if still there, and its group
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self.log("stop", pod=r.pod.key, file=r.pod.path, pid=p.pid, reason=reason, how=how,
                 status=p.returncode)
        r.proc = None

    def _schedule_restart(self, r, ran):
        if ran >= QUICK_EXIT or r.backoff == 0.0:
            r.backoff = self.args.backoff
        else:
            r.backoff = min(r.backoff * 2, self.args.max_backoff)
        r.next_start = time.monotonic() + r.backoff
        self.log("backoff", pod=r.pod.key, seconds=f"{r.backoff:.2f}")

    # -- loop ------------------------------------------------------------------

    def sync(self):
        want = self.desired()
        for key in list(self.running):
            r = self.running[key]
            new = want.get(key)
            if new is None:
                self.stop(r, "removed")
                del self.running[key]
            elif not new.same_spec(r.pod):
                self.stop(r, "changed")
                self.running[key] = Running(new)
        now = time.monotonic()
        for key, pod in want.items():
            r = self.running.setdefault(key, Running(pod))
            if r.proc is not None and r.proc.poll() is not None:
                p, r.proc = r.proc, None
                _killpg(p.pid, signal.SIGKILL)    # leftovers of its group
                ran = now - r.started
                self.log("exit", pod=key, file=r.pod.path, pid=p.pid, status=p.returncode,
                         ran=f"{ran:.2f}")
                self._schedule_restart(r, ran)
            if r.proc is None and now >= r.next_start:
                self.start(r)

    def shutdown(self, *_):
        self.stopping = True

    def run(self):
        self.log("standin-start", pid=os.getpid(), manifests=self.args.manifests)
        signal.signal(signal.SIGTERM, self.shutdown)
        signal.signal(signal.SIGINT, self.shutdown)
        try:
            while not self.stopping:
                self.sync()
                time.sleep(self.args.poll)
        finally:
            for r in self.running.values():
                self.stop(r, "shutdown")
            self.log("standin-stop", pid=os.getpid())


def _killpg(pid, sig):
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def main(argv=None):
    ap = argparse.ArgumentParser(description="Run static pod manifests as plain processes.")
    ap.add_argument("--manifests", required=True, help="static pod manifests dir")
    ap.add_argument("--log", required=True, help="event log (appended)")
    ap.add_argument("--bin", action="append", default=[], metavar="WORD=PATH",
                    help="run PATH where a command's first word is WORD (repeatable)")
    ap.add_argument("--pod-logs", help="dir for <namespace>_<name>.log (default: dir of --log)")
    ap.add_argument("--grace", type=float, default=30.0,
                    help="SIGTERM to SIGKILL, seconds, unless the pod sets "
                         "terminationGracePeriodSeconds (default 30, the kubelet's)")
    ap.add_argument("--poll", type=float, default=0.1, help="manifest dir poll interval")
    ap.add_argument("--backoff", type=float, default=0.5, help="first restart back-off")
    ap.add_argument("--max-backoff", type=float, default=5.0, help="back-off cap")
    args = ap.parse_args(argv)
    for b in args.bin:
        if "=" not in b:
            ap.error(f"--bin {b!r}: want WORD=PATH")
    if yaml is None:
        print("kubelet_standin: PyYAML is not importable (apt-get install python3-yaml, "
              "or pip install pyyaml)", file=sys.stderr)
        return 2
    Standin(args).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
