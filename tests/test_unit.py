"""Runs the C unit tests and replays the fuzz corpora, in the normal build and
under ASan+UBSan, so that `make check` ends with one pytest summary.

Build directories come from KT_BUILD / KT_ASAN_BUILD (set by the Makefile).
"""
import os
import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
BUILDS = {
    "plain": ROOT / os.environ.get("KT_BUILD", "build"),
    "asan": ROOT / os.environ.get("KT_ASAN_BUILD", "build-asan"),
}
UNIT = ["test_core", "test_etcd", "test_etcd_kv", "test_snapshot", "test_kube", "test_s3", "test_cron", "test_repo", "test_store", "test_archive"]
UNIT += ["test_repo_chunker", "test_blobio", "test_kube_client", "test_app"]
CORPORA = ["bbolt", "grpc", "kubeconfig", "s3xml", "config", "cron", "staticpod", "repo"]
CORPORA += ["chunker", "volsnap", "app", "helm"]
SAN_ENV = {
    "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:halt_on_error=1",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
}


def _binary(build, rel):
    path = BUILDS[build] / rel
    if not path.exists():
        pytest.fail(f"{path} is missing: run 'make build build-asan' first")
    return path


@pytest.mark.parametrize("build", BUILDS)
@pytest.mark.parametrize("name", UNIT)
def test_unit(build, name):
    exe = _binary(build, f"tests/unit/{name}")
    r = subprocess.run([exe], capture_output=True, text=True, timeout=600,
                       env={**os.environ, **SAN_ENV})
    assert r.returncode == 0, f"{name} ({build}) failed:\n{r.stdout}\n{r.stderr}"
    assert " passed, 0 failed" in r.stdout


@pytest.mark.parametrize("build", BUILDS)
@pytest.mark.parametrize("target", CORPORA)
def test_fuzz_corpus_replay(build, target):
    corpus = sorted((ROOT / "fuzz" / "corpus" / target).glob("*"))
    assert corpus, f"fuzz/corpus/{target} is empty"
    exe = _binary(build, f"replay_{target}")
    r = subprocess.run([exe, *map(str, corpus)], capture_output=True, text=True,
                       timeout=600, env={**os.environ, **SAN_ENV})
    assert r.returncode == 0, f"replay of {target} corpus crashed:\n{r.stdout}\n{r.stderr[-4000:]}"


@pytest.mark.parametrize("target", CORPORA)
def test_libfuzzer_target_runs(target, tmp_path):
    """The libFuzzer build replays its corpus and fuzzes briefly without a crash
    (a short fixed number of runs: a smoke check, not a campaign)."""
    exe = ROOT / os.environ.get("KT_FUZZ_BUILD", "build-fuzz") / "fuzz" / f"fuzz_{target}"
    if not exe.exists():
        pytest.fail(f"{exe} is missing: run 'make build-fuzz' first")
    work = tmp_path / "corpus"
    shutil.copytree(ROOT / "fuzz" / "corpus" / target, work)
    r = subprocess.run([exe, "-runs=3000", "-max_len=65536", "-seed=1", str(work)],
                       capture_output=True, text=True, timeout=600, cwd=tmp_path,
                       env={**os.environ, **SAN_ENV})
    assert r.returncode == 0, r.stderr[-4000:]
    assert "Done 3000 runs" in r.stderr
