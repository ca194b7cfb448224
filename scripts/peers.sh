#!/usr/bin/env bash
# scripts/peers.sh: builds the pinned real peers that the integration tests run
# (etcd 3.6 + etcdctl + etcdutl, etcd 3.5, etcd 3.4 from Debian, MinIO,
# kube-apiserver, helm) once into a cache outside the tree, keyed by version:
#   ${KT_PEERS_DIR:-$HOME/.cache/kontinuity/peers}/NAME-VERSION/bin/...
# A finished peer has NAME-VERSION/.done; a build happens in a temp dir beside
# it and is renamed into place only when complete, so an interrupted build
# never leaves a half cache. Only `go` (through the configured module proxy)
# and apt-get (Debian packages) are used.
#
# usage: scripts/peers.sh [--print-env] [etcd|etcd35|etcd34|minio|kube-apiserver|helm ...]
#   no peer names = all peers; --print-env prints `export KT_*_BIN=...` lines
#   for the cached paths (nothing is built).
set -euo pipefail

# ---- pinned versions --------------------------------------------------------
ETCD_VERSION=v3.6.16          # go.etcd.io/etcd/{server,etcdctl,etcdutl}/v3
ETCD35_VERSION=v3.5.35        # latest 3.5 patch (go.etcd.io/etcd/server/v3)
ETCD34_DEB_VERSION=3.4.23     # Debian bookworm package etcd-server (/usr/bin/etcd)
MINIO_RELEASE=RELEASE.2025-09-07T16-13-09Z
MINIO_VERSION=v0.0.0-20250907161309-07c3a429bfed  # pseudo-version of that tag
KUBE_VERSION=v1.35.4          # k8s.io/kubernetes
KUBE_STAGING_VERSION=v0.35.4  # every k8s.io/* staging module, pinned by replace
HELM_VERSION=v3.22.0          # helm.sh/helm/v3 (the Helm release tests)
# -----------------------------------------------------------------------------

PEERS_DIR=${KT_PEERS_DIR:-$HOME/.cache/kontinuity/peers}
ALL_PEERS=(etcd etcd35 etcd34 minio kube-apiserver helm)

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false
GO_BUILD_FLAGS=(-trimpath -mod=mod)

die() { echo "peers.sh: $*" >&2; exit 1; }

etcd_dir()  { echo "$PEERS_DIR/etcd-$ETCD_VERSION"; }
etcd35_dir() { echo "$PEERS_DIR/etcd-$ETCD35_VERSION"; }
minio_dir() { echo "$PEERS_DIR/minio-$MINIO_VERSION"; }
kube_dir()  { echo "$PEERS_DIR/kube-apiserver-$KUBE_VERSION"; }
helm_dir()  { echo "$PEERS_DIR/helm-$HELM_VERSION"; }

print_env() {
    cat <<EOF
export KT_ETCD_BIN=$(etcd_dir)/bin/etcd
export KT_ETCDCTL_BIN=$(etcd_dir)/bin/etcdctl
export KT_ETCDUTL_BIN=$(etcd_dir)/bin/etcdutl
export KT_ETCD35_BIN=$(etcd35_dir)/bin/etcd
export KT_ETCDCTL35_BIN=$(etcd35_dir)/bin/etcdctl
export KT_ETCD34_BIN=/usr/bin/etcd
export KT_MINIO_BIN=$(minio_dir)/bin/minio
export KT_KUBE_APISERVER_BIN=$(kube_dir)/bin/kube-apiserver
export KT_HELM_BIN=$(helm_dir)/bin/helm
EOF
}

# new_gomod DIR: a throwaway module to build released code from.
new_gomod() {
    (cd "$1" && go mod init kt-peer-build >/dev/null 2>&1)
}

# main_wrapper DIR: etcd's own main.go (the root module go.etcd.io/etcd/v3
# is not published for every release, so reproduce its two lines).
main_wrapper() {
    mkdir -p "$1/cmd/etcd"
    cat >"$1/cmd/etcd/main.go" <<'EOF'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
EOF
}

# ---- one builder per peer; each runs in "$work" (a temp dir) and fills
# ---- "$out/bin"; its output goes to the build log ---------------------------

build_etcd_release() {   # VERSION WITH_ETCDUTL
    local ver=$1 with_utl=$2
    new_gomod "$work"
    main_wrapper "$work"
    cd "$work"
    local mods=(go.etcd.io/etcd/server/v3@"$ver" go.etcd.io/etcd/etcdctl/v3@"$ver")
    [ "$with_utl" = 1 ] && mods+=(go.etcd.io/etcd/etcdutl/v3@"$ver")
    go get "${mods[@]}"
    go build "${GO_BUILD_FLAGS[@]}" -o "$out/bin/etcd" ./cmd/etcd
    go build "${GO_BUILD_FLAGS[@]}" -o "$out/bin/etcdctl" go.etcd.io/etcd/etcdctl/v3
    [ "$with_utl" = 1 ] && go build "${GO_BUILD_FLAGS[@]}" -o "$out/bin/etcdutl" go.etcd.io/etcd/etcdutl/v3
    "$out/bin/etcd" --version
    "$out/bin/etcdctl" version
}

build_etcd()   { build_etcd_release "$ETCD_VERSION" 1; }
build_etcd35() { build_etcd_release "$ETCD35_VERSION" 0; }

build_minio() {
    new_gomod "$work"
    cd "$work"
    go get github.com/minio/minio@"$MINIO_VERSION"
    # The ldflags minio's own release build sets (buildscripts/gen-ldflags.go),
    # so it runs as a release, not as a development build.
    local ts=${MINIO_RELEASE#RELEASE.} commit=${MINIO_VERSION##*-}
    local date=${ts%%T*} time=${ts#*T}
    local version="${date}T${time//-/:}"
    local p=github.com/minio/minio/cmd
    go build "${GO_BUILD_FLAGS[@]}" -tags kqueue \
        -ldflags "-s -w -X $p.Version=$version -X $p.ReleaseTag=$MINIO_RELEASE -X $p.CommitID=$commit -X $p.ShortCommitID=${commit:0:12} -X $p.CopyrightYear=${date%%-*}" \
        -o "$out/bin/minio" github.com/minio/minio
    "$out/bin/minio" --version
}

build_kube_apiserver() {
    new_gomod "$work"
    cd "$work"
    # Every k8s.io/* module that kubernetes' go.mod maps into ./staging is
    # published separately as v0.X.Y: pin each with replace.
    go mod download -json k8s.io/kubernetes@"$KUBE_VERSION" >/dev/null
    local kmod
    kmod=$(go mod download -json k8s.io/kubernetes@"$KUBE_VERSION" |
        sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
    [ -f "$kmod" ] || die "cannot find go.mod of k8s.io/kubernetes@$KUBE_VERSION"
    local staging
    staging=$(sed -n 's#^[[:space:]]*\(k8s\.io/[A-Za-z0-9._/-]*\) => \./staging/.*#\1#p' "$kmod")
    [ -n "$staging" ] || die "no staging replace lines in $kmod"
    echo "staging modules pinned to $KUBE_STAGING_VERSION:" $staging
    local m
    for m in $staging; do
        go mod edit -replace "$m=$m@$KUBE_STAGING_VERSION"
    done
    go mod edit -require "k8s.io/kubernetes@$KUBE_VERSION"
    go get k8s.io/kubernetes/cmd/kube-apiserver@"$KUBE_VERSION"
    # The version stamp hack/lib/version.sh gives a release build.
    local minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
    local ld="-s -w" pkg
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        ld+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
        ld+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
    done
    go build "${GO_BUILD_FLAGS[@]}" -ldflags "$ld" -o "$out/bin/kube-apiserver" \
        k8s.io/kubernetes/cmd/kube-apiserver
    "$out/bin/kube-apiserver" --version
}

build_helm() {
    # `go install pkg@version` builds the released module with its own go.mod
    # (its replace and exclude lines honoured), outside any module of ours.
    # The version stamp is what helm's Makefile sets for a release build.
    local p=helm.sh/helm/v3/internal/version
    GOBIN="$out/bin" go install -trimpath \
        -ldflags "-s -w -X $p.version=$HELM_VERSION -X $p.gitTreeState=clean" \
        helm.sh/helm/v3/cmd/helm@"$HELM_VERSION"
    "$out/bin/helm" version --short
}

# ---- cache handling ---------------------------------------------------------

# cached_build NAME DIR BUILDER: run BUILDER into a temp dir, move it to DIR.
cached_build() {
    local name=$1 dir=$2 builder=$3
    if [ -f "$dir/.done" ]; then
        echo "$name: cached $dir"
        return 0
    fi
    mkdir -p "$PEERS_DIR"
    # One builder per peer at a time (two `make check` runs side by side).
    exec 9>"$dir.lock"
    flock 9
    if [ -f "$dir/.done" ]; then
        echo "$name: cached $dir (built by another run)"
        exec 9>&-
        return 0
    fi
    # Leftovers of an interrupted run: a dir without .done is not ours to
    # trust, and no other build of this peer runs while we hold the lock.
    rm -rf "$dir" "$dir".tmp.*
    local tmp
    tmp=$(mktemp -d "$dir.tmp.XXXXXX")
    chmod 755 "$tmp"
    trap 'rm -rf "'"$tmp"'"' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    local log="$tmp/build.log" start=$SECONDS rc=0
    mkdir -p "$tmp/bin" "$tmp/work"
    echo "$name: building into $dir (log while building: $log) ..."
    # errexit is off inside an `if` condition, so take the status apart.
    set +e
    (set -ex; work="$tmp/work" out="$tmp"; "$builder") >"$log" 2>&1
    rc=$?
    set -e
    if [ $rc = 0 ]; then
        rm -rf "$tmp/work"
        printf 'built %s in %ss with %s\n' "$(date -u +%FT%TZ)" "$((SECONDS - start))" \
            "$(go version)" >"$tmp/.done"
        mv -T "$tmp" "$dir"      # atomic: the cache appears complete or not at all
        trap - EXIT INT TERM
        rm -f "$dir.failed.log"
        exec 9>&-
        echo "$name: built in $((SECONDS - start))s $dir"
    else
        mv "$log" "$dir.failed.log"
        rm -rf "$tmp"
        trap - EXIT INT TERM
        exec 9>&-
        echo "---- last 40 lines of $dir.failed.log ----" >&2
        tail -n 40 "$dir.failed.log" >&2
        die "$name: build FAILED after $((SECONDS - start))s (full log: $dir.failed.log)"
    fi
}

# etcd 3.4 is Debian's package; installing it must not leave a service
# running on port 2379, so forbid service starts while apt-get runs.
install_etcd34() {
    if [ -x /usr/bin/etcd ] && /usr/bin/etcd --version 2>/dev/null | grep -q "etcd Version: $ETCD34_DEB_VERSION"; then
        echo "etcd34: cached /usr/bin/etcd (Debian etcd-server $ETCD34_DEB_VERSION)"
        return 0
    fi
    [ "$(id -u)" = 0 ] || die "etcd34: need root to apt-get install etcd-server"
    local start=$SECONDS log
    mkdir -p "$PEERS_DIR"
    log="$PEERS_DIR/etcd34-apt.log"
    local policy=/usr/sbin/policy-rc.d had_policy=0
    [ -e "$policy" ] && had_policy=1
    if [ $had_policy = 0 ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod +x "$policy"
    fi
    echo "etcd34: apt-get install etcd-server ..."
    local ok=1
    {
        apt-get update -qq || true
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends etcd-server
    } >"$log" 2>&1 || ok=0
    [ $had_policy = 0 ] && rm -f "$policy"
    if [ $ok = 0 ]; then
        tail -n 40 "$log" >&2
        die "etcd34: apt-get install etcd-server FAILED (log: $log)"
    fi
    # Belt and braces: no etcd service left running or enabled.
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        systemctl disable --now etcd >/dev/null 2>&1 || true
    fi
    if command -v service >/dev/null 2>&1; then
        service etcd stop >/dev/null 2>&1 || true
    fi
    command -v update-rc.d >/dev/null 2>&1 && update-rc.d etcd disable >/dev/null 2>&1 || true
    /usr/bin/etcd --version | grep -q "etcd Version: $ETCD34_DEB_VERSION" ||
        die "etcd34: /usr/bin/etcd is not $ETCD34_DEB_VERSION: $(/usr/bin/etcd --version | head -1)"
    echo "etcd34: installed in $((SECONDS - start))s /usr/bin/etcd"
}

build_peer() {
    case $1 in
    etcd) cached_build etcd "$(etcd_dir)" build_etcd ;;
    etcd35) cached_build etcd35 "$(etcd35_dir)" build_etcd35 ;;
    etcd34) install_etcd34 ;;
    minio) cached_build minio "$(minio_dir)" build_minio ;;
    kube-apiserver) cached_build kube-apiserver "$(kube_dir)" build_kube_apiserver ;;
    helm) cached_build helm "$(helm_dir)" build_helm ;;
    *) die "unknown peer '$1' (known: ${ALL_PEERS[*]})" ;;
    esac
}

main() {
    local peers=() p
    for p in "$@"; do
        case $p in
        --print-env) print_env; return 0 ;;
        -h | --help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; return 0 ;;
        *) peers+=("$p") ;;
        esac
    done
    [ ${#peers[@]} -gt 0 ] || peers=("${ALL_PEERS[@]}")
    for p in "${peers[@]}"; do
        case " ${ALL_PEERS[*]} " in *" $p "*) ;; *) die "unknown peer '$p' (known: ${ALL_PEERS[*]})" ;; esac
    done
    command -v go >/dev/null || die "go not found in PATH"
    for p in "${peers[@]}"; do
        build_peer "$p"
    done
}

main "$@"
