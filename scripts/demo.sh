#!/bin/bash
# The main job on the embedded default: create a container on the busybox
# rootfs, run commands in it through wsh (directly and as wardenctl jobs),
# destroy it, and show that nothing is left.
#
#   scripts/demo.sh ROOTFS       (root; `make demo` builds everything first)
set -euo pipefail
cd "$(dirname "$0")/.."
rootfs=$(realpath "${1:?usage: demo.sh ROOTFS}")
bin=$PWD/target/x86_64-unknown-linux-gnu/release
export WARDEN_DEPOT=${WARDEN_DEPOT:-/tmp/warden-demo}
export WARDEN_BIN_DIR=$bin
export WARDEN_SCRIPTS_DIR=$PWD/setup-scripts
ctl=$bin/wardenctl

say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
handle=""
cleanup() { [ -z "$handle" ] || "$ctl" destroy "$handle" >/dev/null 2>&1 || true; }
trap cleanup EXIT

say wardenctl setup
"$ctl" setup
say wardenctl create --rootfs "$rootfs"
handle=$("$ctl" create --rootfs "$rootfs")
echo "$handle"
say wardenctl info "$handle"
"$ctl" info "$handle"
path=$("$ctl" info "$handle" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["container_path"])')

sock=$path/run/wshd.sock
say wsh --socket "$sock" --user vcap id
"$bin/wsh" --socket "$sock" --user vcap id
say wsh --socket "$sock" sh -c 'hostname; ps; exit 3'
rc=0; "$bin/wsh" --socket "$sock" sh -c 'hostname; ps; exit 3' || rc=$?
echo "exit code: $rc"
say wsh --socket "$sock" --v2 --env GREETING=hello --dir /tmp sh -c 'echo $GREETING from $(pwd)'
"$bin/wsh" --socket "$sock" --v2 --env GREETING=hello --dir /tmp sh -c 'echo $GREETING from $(pwd)'

say wardenctl run "$handle" -- sh -c "'echo out; echo err >&2; exit 7'"
rc=0; "$ctl" run "$handle" -- sh -c 'echo out; echo err >&2; exit 7' || rc=$?
echo "exit code: $rc"
say wardenctl spawn "$handle" -- sh -c "'sleep 1; uname -a'"
job=$("$ctl" spawn "$handle" -- sh -c 'sleep 1; uname -a')
echo "job $job"
say wardenctl link "$handle" "$job"
"$ctl" link "$handle" "$job"

say wardenctl destroy "$handle"
"$ctl" destroy "$handle"
handle=""

# The same through Warden's protocol: wardend on a socket of its own, the
# warden shell typing into it (a warden> session, commands from stdin).
sockdir=$(mktemp -d /tmp/warden-demo-sock.XXXXXX)
chmod 700 "$sockdir"
printf '%s\n' "server:" \
  "  unix_domain_path: $sockdir/warden.sock" \
  "  container_rootfs_path: $rootfs" \
  "  container_depot_path: $WARDEN_DEPOT" \
  "logging:" \
  "  file: $sockdir/wardend.log" >"$sockdir/linux.yml"
say wardend --config "$sockdir/linux.yml" '&'
"$bin/wardend" --config "$sockdir/linux.yml" &
server=$!
cleanup() {
  [ -z "$handle" ] || "$ctl" destroy "$handle" >/dev/null 2>&1 || true
  "$ctl" destroy demo >/dev/null 2>&1 || true
  kill "$server" 2>/dev/null || true
  rm -rf "$sockdir"
}
for _ in $(seq 200); do [ -S "$sockdir/warden.sock" ] && break; sleep 0.05; done
# Each line as typed at the warden> prompt (warden reads commands from a
# pipe the same way, without the prompt).
session=(
  'create --handle demo'
  "run --handle demo --script 'echo hello from \$(hostname); id -un'"
  'limit_memory --handle demo --limit_in_bytes 67108864'
  'net_in --handle demo --container_port 8080'
  'destroy --handle demo'
  'list'
)
printf '\n\033[1m$ warden --socket %s\033[0m\n' "$sockdir/warden.sock"
for line in "${session[@]}"; do
  printf 'warden> %s\n' "$line"
  printf '%s\n' "$line" | "$bin/warden" --socket "$sockdir/warden.sock" 2>&1 || true
done
kill "$server"
wait "$server" 2>/dev/null || true
say wardenctl list
"$ctl" list
echo "(empty: nothing left)"
