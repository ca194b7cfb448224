"""A stand-in that plays the Job controller and the kubelet for kontinuity's
volume mover Jobs (src/app/mover.c), for tests on a machine where neither runs.
It talks only to a real kube-apiserver (kube_rest.Api), like they do.

    JobRunnerStandin(api, volume_dir, images={IMAGE: BINARY}, log_path=...,
                     wrapper=[...], fail=lambda job: reason_or_None).start() / .stop()

For each Job (any namespace) with no Complete/Failed condition yet, once:
- fail(job) returning a reason: the Job is failed at once (as when its pod
  could not run), status.failed 1 and the conditions FailureTarget and Failed
  with that reason; nothing runs.
- else the pod is "scheduled" when every persistentVolumeClaim volume of the
  template resolves PVC -> bound PV -> CSI volumeHandle -> volume_dir(handle)
  (a local directory the CSI stand-in keeps per volume); an emptyDir is a fresh
  directory under LOG_DIR, removed when the pod ends (as the kubelet does).
  Until then the Job waits (as a pod Pending on its PVC).
- the first container runs as a process: command[0] is replaced by the binary
  the image maps to (an unknown image fails the Job with ImagePullBackOff, as
  the kubelet would never start it), prefixed by wrapper (valgrind); every
  argument that is a volumeMount's mountPath or starts with "mountPath/" is
  rewritten to the local directory; env comes from literal values and from
  secretKeyRef (read through the API: a missing key fails the Job unless
  optional). readOnly mounts are NOT enforced (a plain process).
- its exit sets the Job's status as the job controller does: succeeded 1 with
  SuccessCriteriaMet + Complete, or failed 1 with FailureTarget + Failed
  (reason BackoffLimitExceeded), startTime/completionTime.

The container's output goes to LOG_DIR/<namespace>_<job>.log; every action is
one line in log_path: `<UTC ISO time> <event> key=value ...`. self.ran lists
(namespace, job, argv, env) of what ran, for tests to inspect (env values of
Secrets included: tests must not print it).
"""

import base64
import datetime
import pathlib
import shlex
import shutil
import subprocess
import tempfile
import threading

from kube_rest import ApiError

JOBS = "/apis/batch/v1/jobs"


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def _ts():
    return _now().strftime("%Y-%m-%dT%H:%M:%SZ")


class JobRunnerStandin:
    def __init__(self, api, volume_dir, images, log_path, wrapper=(), fail=None, poll=0.2,
                 timeout=600):
        self.api, self.volume_dir, self.images = api, volume_dir, dict(images)
        self.log_path = pathlib.Path(log_path)
        self.log_dir = self.log_path.parent
        self.wrapper, self.fail, self.poll, self.timeout = list(wrapper), fail, poll, timeout
        self._stop = threading.Event()
        self._seen = set()
        self._lock = threading.Lock()
        self._thread = None
        self.ran = []
        self.errors = []

    # -- lifecycle -----------------------------------------------------------

    def start(self):
        self._log("standin-start")
        self._thread = threading.Thread(target=self._loop, name="job-runner", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=self.timeout)
        self._log("standin-stop", ran=len(self.ran), errors=len(self.errors))

    def _log(self, event, **kv):
        parts = [_now().isoformat(timespec="milliseconds").replace("+00:00", "Z"), event]
        parts += [f"{k}={shlex.quote(str(v))}" for k, v in kv.items()]
        with self._lock, open(self.log_path, "a") as f:
            f.write(" ".join(parts) + "\n")

    # -- the loop --------------------------------------------------------------

    def _loop(self):
        while not self._stop.is_set():
            try:
                for job in self.api.list(JOBS):
                    self._one(job)
            except Exception as e:  # noqa: BLE001 - recorded, the loop goes on
                self.errors.append(repr(e))
                self._log("error", what=repr(e))
            self._stop.wait(self.poll)

    def _one(self, job):
        m = job["metadata"]
        key = (m["namespace"], m["name"], m["uid"])
        conds = (job.get("status") or {}).get("conditions") or []
        if key in self._seen or m.get("deletionTimestamp") or \
                any(c["type"] in ("Complete", "Failed") and c["status"] == "True"
                    for c in conds):
            return
        reason = self.fail(job) if self.fail else None
        if reason:
            self._seen.add(key)
            self._finish(job, False, reason, "the test's stand-in failed this Job")
            return
        pod = job["spec"]["template"]["spec"]
        dirs = self._volumes(m["namespace"], pod)
        if dirs is None:
            return                      # a PVC is not bound yet: "Pending"
        self._seen.add(key)
        try:
            self._run(job, pod, dirs)
        finally:
            for v in pod.get("volumes") or []:
                if "emptyDir" in v:
                    shutil.rmtree(dirs[v["name"]], ignore_errors=True)

    def _volumes(self, ns, pod):
        """{volume name: local dir}, or None while a PVC is not bound."""
        dirs = {}
        for v in pod.get("volumes") or []:
            if "persistentVolumeClaim" in v:
                claim = v["persistentVolumeClaim"]["claimName"]
                pvc = self.api.get(f"/api/v1/namespaces/{ns}/persistentvolumeclaims/{claim}")
                pv_name = ((pvc or {}).get("spec") or {}).get("volumeName")
                if not pv_name or (pvc.get("status") or {}).get("phase") != "Bound":
                    return None
                pv = self.api.get(f"/api/v1/persistentvolumes/{pv_name}")
                dirs[v["name"]] = self.volume_dir(pv["spec"]["csi"]["volumeHandle"])
        for v in pod.get("volumes") or []:
            if "emptyDir" in v:
                dirs[v["name"]] = pathlib.Path(tempfile.mkdtemp(prefix="emptydir-",
                                                                dir=self.log_dir))
        return dirs

    def _env(self, ns, container):
        env = {"PATH": "/usr/bin:/bin"}
        for e in container.get("env") or []:
            if "value" in e:
                env[e["name"]] = e["value"]
                continue
            ref = (e.get("valueFrom") or {}).get("secretKeyRef")
            if not ref:
                continue
            sec = self.api.get(f"/api/v1/namespaces/{ns}/secrets/{ref['name']}") or {}
            data = sec.get("data") or {}
            if ref["key"] in data:
                env[e["name"]] = base64.b64decode(data[ref["key"]]).decode()
            elif not ref.get("optional"):
                raise KeyError(f"secret {ns}/{ref['name']} has no key {ref['key']} "
                               "(CreateContainerConfigError)")
        return env

    def _run(self, job, pod, dirs):
        m = job["metadata"]
        ns, name = m["namespace"], m["name"]
        c = pod["containers"][0]
        binary = self.images.get(c.get("image"))
        if binary is None:
            self._finish(job, False, "ImagePullBackOff", f"image {c.get('image')} unknown here")
            return
        mounts = {vm["mountPath"].rstrip("/"): dirs[vm["name"]]
                  for vm in c.get("volumeMounts") or []}

        def rewrite(a):
            for path, local in mounts.items():
                if a == path or a.startswith(path + "/"):
                    return str(local) + a[len(path):]
            return a
        try:
            env = self._env(ns, c)
        except KeyError as e:
            self._finish(job, False, "BackoffLimitExceeded", str(e))
            return
        argv = self.wrapper + [str(binary)] + [rewrite(a) for a in
                                               (c.get("command") or [])[1:] + (c.get("args")
                                                                               or [])]
        self.ran.append((ns, name, argv, env))
        self._log("run", job=f"{ns}/{name}", argv=" ".join(argv[len(self.wrapper):]))
        self.api.merge_patch(f"/apis/batch/v1/namespaces/{ns}/jobs/{name}/status",
                             {"status": {"startTime": _ts(), "active": 1}})
        with open(self.log_dir / f"{ns}_{name}.log", "w") as out:
            try:
                rc = subprocess.run(argv, env=env, stdout=out, stderr=subprocess.STDOUT,
                                    timeout=self.timeout).returncode
            except subprocess.TimeoutExpired:
                rc = -9
        self._log("exit", job=f"{ns}/{name}", status=rc)
        self._finish(job, rc == 0, "BackoffLimitExceeded",
                     "Job has reached the specified backoff limit")

    def _finish(self, job, ok, reason, message):
        m = job["metadata"]
        path = f"/apis/batch/v1/namespaces/{m['namespace']}/jobs/{m['name']}/status"
        now = _ts()
        if ok:
            conds = [{"type": "SuccessCriteriaMet", "status": "True", "reason":
                      "CompletionsReached", "message": "Reached expected number of succeeded "
                      "pods", "lastProbeTime": now, "lastTransitionTime": now},
                     {"type": "Complete", "status": "True", "reason": "CompletionsReached",
                      "message": "Reached expected number of succeeded pods",
                      "lastProbeTime": now, "lastTransitionTime": now}]
            st = {"succeeded": 1, "active": 0, "completionTime": now, "conditions": conds}
        else:
            conds = [{"type": t, "status": "True", "reason": reason, "message": message,
                      "lastProbeTime": now, "lastTransitionTime": now}
                     for t in ("FailureTarget", "Failed")]
            st = {"failed": 1, "active": 0, "conditions": conds}
        try:
            cur = self.api.get(path[:-len("/status")]) or job
            st["startTime"] = (cur.get("status") or {}).get("startTime") or now
            self.api.merge_patch(path, {"status": st})
        except ApiError as e:
            if e.status != 404:        # deleted meanwhile: nothing to report to
                raise
        self._log("finish", job=f"{m['namespace']}/{m['name']}", ok=ok, reason=reason)
