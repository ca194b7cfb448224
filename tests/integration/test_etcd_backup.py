"""`kontinuity etcd backup` (one cycle) and `etcd backups list` against a real
etcd.  The EC2 instance metadata service is stood in for by a tiny local HTTP
server (imds fixture): it cannot run here, and the real address must never be
contacted from tests, so every case passes --imds-url or --instance-id."""
import fcntl
import http.server
import json
import os
import re
import stat
import subprocess
import threading
import time

import pytest

import peers
from test_etcd_snapshot import KT, etcdutl_status, load_cluster_like

NAME_RE = re.compile(r"^etcd_backup_(?P<node>.+)_(?P<inst>[A-Za-z0-9-]+)_(?P<ts>\d{8}T\d{6}Z)\.db$")


class FakeIMDS(http.server.ThreadingHTTPServer):
    """The instance metadata service: IMDSv2 (token) and/or v1."""

    def __init__(self, instance_id="i-0123456789abcdef0", v2=True, v1=True):
        self.instance_id, self.v2, self.v1 = instance_id, v2, v1
        self.token = "imds-token-Zx81kq"
        self.calls = []
        imds = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _send(self, code, body=b""):
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_PUT(self):
                imds.calls.append(("PUT", self.path))
                if imds.v2 and self.path == "/latest/api/token" and \
                        self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                    return self._send(200, imds.token.encode())
                self._send(403)

            def do_GET(self):
                tok = self.headers.get("X-aws-ec2-metadata-token")
                imds.calls.append(("GET", self.path, tok))
                if self.path != "/latest/meta-data/instance-id":
                    return self._send(404)
                if (tok == imds.token and imds.v2) or (tok is None and imds.v1):
                    return self._send(200, imds.instance_id.encode())
                self._send(401)

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def imds():
    s = FakeIMDS()
    yield s
    s.shutdown()


def backup(etcd, d, *extra, env=None):
    return subprocess.run([str(KT), "etcd", "backup", "--endpoint", etcd.endpoint, "--dir", str(d),
                           "--hostname", "cp-1", "--kubeconfig", "", *map(str, extra)],
                          capture_output=True, text=True, timeout=120, env=env)


def backups_in(d):
    if not d.exists():
        return []
    return sorted(p.name for p in d.iterdir() if NAME_RE.match(p.name))


def test_cycle_names_logs_and_indexes(etcd, imds, tmp_path):
    load_cluster_like(etcd)
    d = tmp_path / "zadara"
    r = backup(etcd, d, "--imds-url", imds.url)
    assert r.returncode == 0, r.stderr
    [name] = backups_in(d)
    m = NAME_RE.match(name)
    assert m["node"] == "cp-1" and m["inst"] == "i-0123456789abcdef0"
    assert ("GET", "/latest/meta-data/instance-id", imds.token) in imds.calls  # IMDSv2 used
    f = d / name
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    st = etcdutl_status(f)
    log = (d / "etcd-backup.log").read_text().splitlines()
    assert len(log) == 1
    assert f"file={name}" in log[0] and "outcome=ok" in log[0]
    assert f"revision={st['revision']}" in log[0] and f"size={f.stat().st_size}" in log[0]
    assert "sha256=" in log[0] and "backup node=cp-1" in r.stderr
    idx = json.loads((d / "etcd-backups.json").read_text())["backups"][name]
    assert idx["revision"] == st["revision"] and idx["verified"] is True
    assert idx["exported"] is False
    assert imds.token not in r.stderr + r.stdout


def test_imdsv1_and_machine_id_fallbacks(etcd, tmp_path):
    v1 = FakeIMDS(instance_id="i-v1only", v2=False)
    try:
        r = backup(etcd, tmp_path / "a", "--imds-url", v1.url, "-o", "json")
    finally:
        v1.shutdown()
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["instance"] == "i-v1only" and out["instanceSource"] == "imds-v1"
    mid = tmp_path / "machine-id"
    mid.write_text("0123456789abcdef0123456789abcdef\n")
    r = backup(etcd, tmp_path / "b", "--imds-url", f"http://127.0.0.1:{peers.free_port()}",
               "--machine-id-file", mid, "-o", "json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["instance"] == "0123456789ab" and out["instanceSource"] == "machine-id"


def test_retention_keeps_the_newest(etcd, tmp_path):
    d = tmp_path / "b"
    names = []
    for _ in range(4):
        r = backup(etcd, d, "--instance-id", "i-1", "--keep", "2")
        assert r.returncode == 0, r.stderr
        names += [n for n in backups_in(d) if n not in names]
        time.sleep(1.05)  # names carry the second
    assert backups_in(d) == names[-2:]
    (d / "etcd_backup_cp-2_i-2_20200101T000000Z.db").write_bytes(b"another node's file")
    assert backup(etcd, d, "--instance-id", "i-1", "--keep", "1").returncode == 0
    left = backups_in(d)
    assert "etcd_backup_cp-2_i-2_20200101T000000Z.db" in left  # other nodes are not ours
    assert len([n for n in left if "_cp-1_" in n]) == 1
    idx = json.loads((d / "etcd-backups.json").read_text())["backups"]
    assert set(idx) == {n for n in left if "_cp-1_" in n}


def test_failed_cycle_is_logged_and_keeps_earlier_backups(etcd, tmp_path):
    d = tmp_path / "b"
    assert backup(etcd, d, "--instance-id", "i-1").returncode == 0
    before = backups_in(d)
    etcd.stop()
    time.sleep(1.05)
    r = backup(etcd, d, "--instance-id", "i-1", "--log-format", "json")
    assert r.returncode == 1
    assert backups_in(d) == before
    assert not [p for p in d.iterdir() if p.name.endswith(".part")]
    last = json.loads((d / "etcd-backup.log").read_text().splitlines()[-1])
    assert last["outcome"] == "failed" and "127.0.0.1" in last["error"]


def test_json_log_lines(etcd, tmp_path):
    d = tmp_path / "b"
    r = backup(etcd, d, "--instance-id", "i-1", "--log-format", "json")
    assert r.returncode == 0, r.stderr
    line = json.loads((d / "etcd-backup.log").read_text().splitlines()[0])
    assert line["event"] == "backup" and line["outcome"] == "ok"
    assert set(line) >= {"time", "node", "file", "size", "revision", "sha256", "duration"}
    for l in r.stderr.splitlines():
        json.loads(l)  # stderr is JSON lines too


def test_one_cycle_per_directory(etcd, tmp_path):
    d = tmp_path / "b"
    d.mkdir()
    with open(d / ".kontinuity.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        r = backup(etcd, d, "--instance-id", "i-1")
    assert r.returncode == 1 and "another kontinuity backup is running" in r.stderr
    assert backups_in(d) == []


def test_unwritable_directory(etcd, tmp_path):
    r = backup(etcd, "/proc/kontinuity-cannot-be-here", "--instance-id", "i-1")
    assert r.returncode == 1
    assert "kontinuity-cannot-be-here" in r.stderr


def test_backups_list(etcd, tmp_path):
    load_cluster_like(etcd)
    d = tmp_path / "b"
    assert backup(etcd, d, "--instance-id", "i-1").returncode == 0
    (d / "etcd_backup_cp-2_i-2_20200101T000000Z.db").write_bytes(b"x" * 512)
    r = subprocess.run([str(KT), "etcd", "backups", "list", "--dir", str(d), "-o", "json"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [x["node"] for x in rows] == ["cp-2", "cp-1"]  # oldest first
    assert rows[0]["revision"] is None and rows[0]["verified"] is False
    assert rows[1]["verified"] is True and rows[1]["revision"] > 0
    r = subprocess.run([str(KT), "etcd", "backups", "list", "--dir", str(d)],
                       capture_output=True, text=True, timeout=30)
    assert r.stdout.split("\n")[0].split() == ["NODE", "INSTANCE", "TIME", "REVISION", "SIZE",
                                               "VERIFIED", "EXPORTED"]


def wait_for(pred, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.1)
    return False


def test_agent_cycles_reloads_and_stops_cleanly(etcd, tmp_path):
    import signal
    load_cluster_like(etcd)
    d = tmp_path / "b"
    conf = tmp_path / "agent.yaml"
    conf.write_text(f"endpoint: {etcd.endpoint}\ndir: {d}\ninstance-id: i-agent\n"
                    "hostname: cp-1\ninterval: 1s\nkeep: 2\nkubeconfig: ''\n")
    p = subprocess.Popen([str(KT), "etcd", "agent", "--config", str(conf)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: len(backups_in(d)) >= 2), "no cycles"
        time.sleep(2.5)
        assert len(backups_in(d)) == 2  # retention with --keep 2 from the file
        # SIGHUP re-reads the file: a new instance id shows up in new names.
        conf.write_text(conf.read_text().replace("i-agent", "i-reloaded"))
        p.send_signal(signal.SIGHUP)
        assert wait_for(lambda: any("_i-reloaded_" in n for n in backups_in(d)))
        # A broken file on SIGHUP is reported; the agent keeps the running config.
        good = conf.read_text()
        conf.write_text("keep: [not, a, number]\n")
        p.send_signal(signal.SIGHUP)
        time.sleep(1.5)
        assert p.poll() is None
        conf.write_text(good)
        # etcd down: cycles fail and are logged, the agent keeps running.
        etcd.stop()
        time.sleep(2.5)
        assert p.poll() is None
        assert "outcome=failed" in (d / "etcd-backup.log").read_text()
        etcd.start()
        n_ok = (d / "etcd-backup.log").read_text().count("outcome=ok")
        assert wait_for(lambda: (d / "etcd-backup.log").read_text().count("outcome=ok") > n_ok)
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err
    assert "stopping on signal" in err
    assert not [x for x in d.iterdir() if x.name.endswith(".part")]


def test_config_file_errors_name_the_file(tmp_path):
    conf = tmp_path / "bad.yaml"
    conf.write_text("dir: /tmp/x\nbogus: 1\n")
    r = subprocess.run([str(KT), "etcd", "backup", "--config", str(conf)], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 2 and "unknown setting 'bogus'" in r.stderr and "bad.yaml" in r.stderr
    conf.write_text("dir: [a, b]\n")
    r = subprocess.run([str(KT), "etcd", "backup", "--config", str(conf)], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 2 and "line 1" in r.stderr


def test_metrics_file_and_endpoint(etcd, tmp_path):
    import signal
    import urllib.request
    d = tmp_path / "b"
    prom = tmp_path / "kontinuity.prom"
    assert backup(etcd, d, "--instance-id", "i-1", "--metrics-file", prom).returncode == 0
    text = prom.read_text()
    assert 'kontinuity_etcd_backup_cycles_total{node="cp-1"} 1' in text
    assert 'kontinuity_etcd_backup_failures_total{node="cp-1",stage="save"} 0' in text
    size = backups_in(d)
    assert f'kontinuity_etcd_backup_last_size_bytes{{node="cp-1"}} {(d / size[0]).stat().st_size}' in text
    etcd.stop()
    time.sleep(1.05)
    assert backup(etcd, d, "--instance-id", "i-1", "--metrics-file", prom).returncode == 1
    text = prom.read_text()
    assert 'kontinuity_etcd_backup_cycles_total{node="cp-1"} 2' in text
    assert 'kontinuity_etcd_backup_failures_total{node="cp-1",stage="save"} 1' in text
    # The agent serves the same numbers over HTTP.
    etcd.start()
    port = peers.free_port()
    p = subprocess.Popen([str(KT), "etcd", "agent", "--endpoint", etcd.endpoint, "--dir", str(d),
                          "--hostname", "cp-1", "--instance-id", "i-1", "--kubeconfig", "",
                          "--interval", "1h", "--metrics-addr", f"127.0.0.1:{port}"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def scraped():
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read()
                return b'kontinuity_etcd_backup_cycles_total{node="cp-1"} 3' in body
            except OSError:
                return False
        assert wait_for(scraped), "metrics endpoint never showed the third cycle"
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/other", timeout=2)
            assert False, "expected 404"
        except urllib.error.HTTPError as e:
            assert e.code == 404
    finally:
        p.send_signal(signal.SIGTERM)
        p.communicate(timeout=30)
    assert p.returncode == 0


def test_agent_schedule(etcd, tmp_path):
    """--schedule '* * * * *' fires at every minute boundary; --no-initial-backup
    makes the first cycle wait for it."""
    import signal
    d = tmp_path / "b"
    start = time.time()
    p = subprocess.Popen([str(KT), "etcd", "agent", "--endpoint", etcd.endpoint, "--dir", str(d),
                          "--hostname", "cp-1", "--instance-id", "i-1", "--kubeconfig", "",
                          "--schedule", "* * * * *", "--no-initial-backup"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: backups_in(d), timeout=75)
        fired = time.time()
        name = backups_in(d)[0]
        assert NAME_RE.match(name)["ts"].endswith("00Z") or NAME_RE.match(name)["ts"][-3:-1] < "05"
        assert int(fired) // 60 > int(start) // 60  # not before the next minute
    finally:
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=30)
    assert "on schedule '* * * * *' (UTC)" in err


def test_bad_schedule_is_a_usage_error(tmp_path):
    r = subprocess.run([str(KT), "etcd", "agent", "--schedule", "0 25 * * *", "--dir",
                        str(tmp_path)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "hour 25 is out of range 0-23" in r.stderr


def test_retention_never_removes_the_backup_just_taken(etcd, tmp_path):
    """A file of this node dated in the future (a clock that went back) must
    not make retention delete the backup this cycle just verified."""
    d = tmp_path / "b"
    d.mkdir()
    future = d / "etcd_backup_cp-1_i-1_20991231T235959Z.db"
    future.write_bytes(b"from a clock that ran ahead")
    r = backup(etcd, d, "--instance-id", "i-1", "--keep", "1")
    assert r.returncode == 0, r.stderr
    fresh = json.loads((d / "etcd-backups.json").read_text())["backups"]
    assert len(fresh) == 1 and (d / next(iter(fresh))).exists()


def test_full_disk_fails_the_cycle_and_keeps_earlier_backups(etcd, tmp_path):
    load_cluster_like(etcd)
    d = tmp_path / "small"
    d.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(d)], check=True)
    try:
        r = backup(etcd, d, "--instance-id", "i-1")
        assert r.returncode == 0, r.stderr
        first = backups_in(d)
        # Leave room for less than half a backup.
        vfs = os.statvfs(d)
        free = vfs.f_bavail * vfs.f_frsize
        size = (d / first[0]).stat().st_size
        with open(d / "filler", "wb") as f:
            f.write(b"\0" * max(0, free - size // 2))
        time.sleep(1.05)
        r = backup(etcd, d, "--instance-id", "i-1")
        left = backups_in(d)
        parts = [p.name for p in d.iterdir() if p.name.endswith(".part")]
        log = (d / "etcd-backup.log").read_text()
    finally:
        subprocess.run(["umount", str(d)], check=True)
    assert r.returncode == 1 and "No space left on device" in r.stderr
    assert left == first and parts == []
    assert "outcome=failed" in log
