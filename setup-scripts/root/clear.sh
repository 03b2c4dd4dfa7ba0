#!/bin/sh
# clear.sh INSTANCES_PATH: destroy every instance in INSTANCES_PATH, in parallel.
[ -n "${DEBUG:-}" ] && set -x
set -eu

[ $# -eq 1 ] || { echo "usage: $0 INSTANCES_PATH" >&2; exit 1; }
instances=$1
here=$(cd "$(dirname "$0")" && pwd)

status=0
pids=""
for instance in "$instances"/*; do
  [ -d "$instance" ] || continue
  echo "Destroying $instance"
  "$here/destroy.sh" "$instance" &
  pids="$pids $!"
done
for p in $pids; do
  wait "$p" || status=1
done
exit $status
