#!/usr/bin/env bash
# demo.sh - the main job, end to end, on a throwaway etcd.
#
# Starts etcd 3.6 (from the peer cache) on free loopback ports in a temp dir,
# loads it with Kubernetes-like keys, takes a snapshot with kontinuity,
# prints kontinuity's status beside etcdutl's, verifies the file, proves it
# restores (a drill into a throwaway etcd), restores it into a data directory,
# and stops the etcd it started (also on error or Ctrl-C).  Its temp dir goes
# too, unless KT_DEMO_KEEP=1 keeps the snapshot and data dirs to look at.
# Usage: [KT_DEMO_KEEP=1] scripts/demo.sh PATH/TO/kontinuity
set -euo pipefail

kt=$(realpath "$1")
eval "$(scripts/peers.sh --print-env)"
work=$(mktemp -d /tmp/kontinuity-demo.XXXXXX)
etcd_pid=

stop() {
	if [ -n "$etcd_pid" ] && kill -0 "$etcd_pid" 2>/dev/null; then
		kill "$etcd_pid" 2>/dev/null || true
		wait "$etcd_pid" 2>/dev/null || true
		echo "demo: stopped etcd (pid $etcd_pid)"
	fi
	if [ "${KT_DEMO_KEEP:-0}" = 1 ]; then
		echo "demo: kept $work"
	else
		rm -rf "$work"
		echo "demo: removed $work (KT_DEMO_KEEP=1 keeps it)"
	fi
}
trap stop EXIT
trap 'exit 130' INT TERM

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
client_port=$(free_port)
peer_port=$(free_port)
endpoint="http://127.0.0.1:$client_port"

echo "demo: starting etcd $("$KT_ETCD_BIN" --version | head -1 | awk '{print $3}') on $endpoint (data in $work/etcd)"
"$KT_ETCD_BIN" --name demo --data-dir "$work/etcd" \
	--listen-client-urls "$endpoint" --advertise-client-urls "$endpoint" \
	--listen-peer-urls "http://127.0.0.1:$peer_port" \
	--initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
	--initial-cluster "demo=http://127.0.0.1:$peer_port" \
	--log-outputs "$work/etcd.log" >/dev/null 2>&1 &
etcd_pid=$!
ctl() { "$KT_ETCDCTL_BIN" --endpoints "$endpoint" "$@"; }
for _ in $(seq 1 100); do
	ctl endpoint health >/dev/null 2>&1 && break
	kill -0 "$etcd_pid" 2>/dev/null || { echo "demo: etcd exited; log:"; tail -20 "$work/etcd.log"; exit 1; }
	sleep 0.1
done

echo "demo: loading Kubernetes-like keys (namespaces, pods, configmaps, secrets, a custom resource)"
# JSON objects, as an API server with --storage-media-type=application/json
# (and every custom resource) stores them.
pad=$(head -c 500 /dev/zero | tr '\0' 'x')
obj() { echo "{\"apiVersion\":\"$1\",\"kind\":\"$2\",\"metadata\":{\"name\":\"$3\",\"namespace\":\"$4\"},\"data\":{\"pad\":\"$pad\"}}"; }
{
	for ns in default kube-system shop; do
		echo "put /registry/namespaces/$ns $(obj v1 Namespace "$ns" "")"
		for i in $(seq 1 40); do echo "put /registry/pods/$ns/pod-$i $(obj v1 Pod "pod-$i" "$ns")"; done
		for i in $(seq 1 15); do echo "put /registry/configmaps/$ns/cm-$i $(obj v1 ConfigMap "cm-$i" "$ns")"; done
		for i in $(seq 1 10); do echo "put /registry/secrets/$ns/secret-$i $(obj v1 Secret "secret-$i" "$ns")"; done
		for i in $(seq 1 5); do echo "put /registry/shop.example.com/carts/$ns/cart-$i $(obj shop.example.com/v1 Cart "cart-$i" "$ns")"; done
	done
} > "$work/keys.txt"
# etcdctl txn takes many operations per process; batches of 100.
split -l 100 "$work/keys.txt" "$work/batch."
for b in "$work"/batch.*; do
	{ echo; cat "$b"; echo; echo; } | ctl txn >/dev/null
done
ctl del /registry/pods/shop/pod-40 >/dev/null
echo "demo: $(wc -l < "$work/keys.txt") keys written, one pod deleted"

snap="$work/etcd-snapshot.db"
echo
echo "\$ kontinuity etcd snapshot save $snap --endpoint $endpoint"
"$kt" etcd snapshot save "$snap" --endpoint "$endpoint"
echo
echo "\$ kontinuity etcd snapshot status $snap -o json"
"$kt" etcd snapshot status "$snap" -o json | tee "$work/ours.json"
echo "\$ etcdutl snapshot status $snap -w json"
"$KT_ETCDUTL_BIN" snapshot status "$snap" -w json 2>/dev/null | tee "$work/theirs.json"
echo
if python3 - "$work/ours.json" "$work/theirs.json" <<'PY'
import json, sys
ours, theirs = (json.load(open(p)) for p in sys.argv[1:3])
keys = ["hash", "revision", "totalKey", "totalSize", "version"]
diff = [k for k in keys if ours.get(k) != theirs.get(k)]
print("demo: status " + ("EQUAL to etcdutl's on all of " + ", ".join(keys) if not diff
      else "DIFFERS from etcdutl's on " + ", ".join(diff)))
sys.exit(1 if diff else 0)
PY
then :; else exit 1; fi
echo
echo "\$ kontinuity etcd snapshot verify $snap"
"$kt" etcd snapshot verify "$snap"
echo
echo "\$ kontinuity etcd drill $snap   # restore into a throwaway etcd and compare"
"$kt" etcd drill "$snap" --etcd "$KT_ETCD_BIN" --etcdutl "$KT_ETCDUTL_BIN" --work-dir "$work"
echo
restored="$work/restored"
echo "\$ kontinuity etcd restore --from $snap --data-dir $restored --manifest ''"
"$kt" etcd restore --from "$snap" --data-dir "$restored" --manifest '' --etcdutl "$KT_ETCDUTL_BIN"
echo
echo "demo: the snapshot was $snap ($(stat -c '%s bytes, mode %a' "$snap"))"
echo "demo: the restored data directory was $restored; for a control-plane node see"
echo "      kontinuity etcd recover --help and docs/disaster-recovery.md"
