#!/usr/bin/env bash
# deps.sh - install what building and testing kontinuity needs and is missing.
#
# Debian/Ubuntu packages through apt-get (only those not yet installed, so a
# second run does nothing), pytest through pip when no pytest is importable.
# Go (>= 1.25, to build the test peers) must already be on PATH: Debian's
# own golang package is too old for etcd 3.6 and Kubernetes 1.35.
# Usage: scripts/deps.sh [build|demo|test|bench]
#   build: compile only; demo: + what the demo runs; test: + every test tool;
#   bench: + the peers `make bench` compares with (rclone, restic, borg)
set -euo pipefail

mode=${1:-test}
pkgs=(meson ninja-build pkg-config gcc libc6-dev make
      libcurl4-openssl-dev libssl-dev libjansson-dev libyaml-dev libzstd-dev libmicrohttpd-dev zlib1g-dev
      openssl ca-certificates)
if [ "$mode" = demo ]; then
	pkgs+=(python3)
fi
if [ "$mode" = bench ]; then
	# The peers of bench/ (docs/benchmarks.md): rclone for the export
	# upload, restic and borg for the repository.
	pkgs+=(python3 rclone restic borgbackup)
fi
if [ "$mode" = test ]; then
	# clang + its runtimes for the libFuzzer targets; valgrind for leak
	# checks.  (etcd 3.4 from Debian is a test peer: scripts/peers.sh
	# installs it with its service kept off.)
	# python3-yaml: the kubelet stand-in and the DR tests read static pod manifests.
	# strace: a restore test sees which files were written with O_DIRECT.
	pkgs+=(clang libclang-rt-14-dev python3 python3-pip python3-yaml strace util-linux valgrind)
fi

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "deps: installing ${missing[*]}"
	sudo_cmd=()
	[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
	"${sudo_cmd[@]}" apt-get update -qq
	DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ "$mode" = test ] && ! python3 -c 'import pytest' 2>/dev/null; then
	echo "deps: installing pytest"
	python3 -m pip install --quiet pytest || python3 -m pip install --quiet --break-system-packages pytest
fi
if [ "$mode" = test ] && ! python3 -c 'import yaml' 2>/dev/null; then
	# A python3 that is not Debian's (pyenv, venv) does not see python3-yaml.
	echo "deps: installing PyYAML"
	python3 -m pip install --quiet pyyaml || python3 -m pip install --quiet --break-system-packages pyyaml
fi
if { [ "$mode" = demo ] || [ "$mode" = test ]; } && ! command -v go >/dev/null 2>&1; then
	echo "deps: Go >= 1.25 is needed to build the test peers (etcd, MinIO, kube-apiserver);" >&2
	echo "      install it and put 'go' on PATH, then run this again." >&2
	exit 1
fi
echo "deps: ok"
