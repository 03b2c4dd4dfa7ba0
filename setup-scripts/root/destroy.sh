#!/bin/sh
# destroy.sh INSTANCE_PATH: the instance's destroy.sh, then the directory.
[ -n "${DEBUG:-}" ] && set -x
set -eu

die() {
  echo "destroy.sh: $*" >&2
  exit 1
}

[ $# -eq 1 ] || die "usage: $0 INSTANCE_PATH"
target=$1
[ -e "$target" ] || exit 0

if [ -x "$target/destroy.sh" ]; then
  "$target/destroy.sh"
  # Gone first: a destroy killed during the removal below leaves a partial
  # directory whose teardown is done, and which must not run a half-removed
  # destroy.sh again.
  rm -f "$target/destroy.sh"
fi

# A wshd that did not keep its mounts private leaves the overlay on the host.
if awk -v p="$(cd "$target" && pwd)/mnt" '$2 == p { found = 1 } END { exit !found }' /proc/self/mounts; then
  umount -l "$target/mnt" || true
fi

# The kernel may still be releasing the container's mount namespace.
tries=0
until rm -rf "$target" 2>/dev/null && [ ! -e "$target" ]; do
  tries=$((tries + 1))
  [ "$tries" -le 100 ] || die "cannot remove $target"
  sleep 0.1
done
