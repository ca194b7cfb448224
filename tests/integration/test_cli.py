"""The command line itself: help at every level, version, exit codes for
usage errors, output formats.  No peers needed."""
import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
KT = ROOT / os.environ.get("KT_BUILD", "build") / "src" / "cli" / "kontinuity"


def kt(*args):
    return subprocess.run([str(KT), *map(str, args)], capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("words", [[], ["etcd"], ["etcd", "snapshot"],
                                   ["etcd", "snapshot", "save"], ["etcd", "snapshot", "status"],
                                   ["etcd", "snapshot", "verify"]])
def test_help_at_every_level(words):
    r = kt(*words, "--help")
    assert r.returncode == 0, r.stderr
    assert "Usage: kontinuity" in r.stdout
    if len(words) == 3:
        assert "Examples:" in r.stdout
        assert "Exit codes" in r.stdout
        assert "-o, --output" in r.stdout


def test_top_help_documents_exit_codes():
    r = kt("--help")
    for line in ["0  success", "1  failure", "2  usage error", "3  verification failed"]:
        assert line in r.stdout


def test_version():
    r = kt("--version")
    assert r.returncode == 0 and r.stdout.startswith("kontinuity ")


def test_no_command_is_a_usage_error():
    r = kt()
    assert r.returncode == 2 and "Usage: kontinuity" in r.stderr


def test_unknown_command():
    r = kt("etcd", "snapshot", "explode")
    assert r.returncode == 2
    assert "unknown command 'etcd snapshot explode'" in r.stderr


def test_group_without_command_lists_commands():
    r = kt("etcd", "snapshot")
    assert r.returncode == 2
    assert "kontinuity etcd snapshot save" in r.stderr


def test_bad_output_format():
    r = kt("etcd", "snapshot", "status", "x.db", "-o", "xml")
    assert r.returncode == 2 and "unknown output format 'xml'" in r.stderr


def test_global_flags_before_the_command(tmp_path):
    r = kt("-o", "json", "etcd", "snapshot", "status", tmp_path / "missing.db")
    assert r.returncode == 1 and "missing.db" in r.stderr


def test_flag_before_the_command_never_echoes_its_value():
    r = kt("--user", "root:Sup3rSecret", "etcd", "snapshot", "save", "x.db")
    assert r.returncode == 2
    assert "Sup3rSecret" not in r.stdout + r.stderr
    assert "'--user' must come after the command" in r.stderr


def test_endpoint_with_credentials_is_refused_without_echo(tmp_path):
    r = kt("etcd", "snapshot", "save", tmp_path / "x.db", "-v", "-v",
           "--endpoint", "http://root:hunter22@127.0.0.1:1")
    assert r.returncode == 2
    assert "hunter22" not in r.stdout + r.stderr
    assert "--user" in r.stderr


def test_output_to_a_full_device_fails(tmp_path):
    with open("/dev/full", "w") as full:
        r = subprocess.run([str(KT), "--help"], stdout=full, stderr=subprocess.PIPE, text=True,
                           timeout=30)
    assert r.returncode == 1 and "cannot write the output" in r.stderr


def test_file_names_that_are_not_utf8_still_give_json(tmp_path):
    name = os.fsencode(tmp_path) + b"/\xff\x1b.db"
    r = subprocess.run([os.fsencode(KT), b"-o", b"json", b"etcd", b"snapshot", b"verify", name],
                       capture_output=True, timeout=30)
    assert r.returncode == 1  # missing file: one clear line, not silence
    assert r.stderr.startswith(b"kontinuity: ")


def test_errors_are_json_lines_with_log_format_json(tmp_path):
    import json
    r = kt("etcd", "snapshot", "status", tmp_path / "missing.db", "--log-format", "json")
    assert r.returncode == 1
    line = json.loads(r.stderr.strip())
    assert line["level"] == "error" and "missing.db" in line["msg"]
