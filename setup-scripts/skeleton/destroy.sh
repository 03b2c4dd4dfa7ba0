#!/bin/sh
# Tear the container down: iptables, every process (killing wshd, pid 1 of the
# container's pid namespace, kills the rest), cgroups, network devices.
# Idempotent, and safe on a half-made instance: a create that failed midway is
# undone by running this.
[ -n "${DEBUG:-}" ] && set -x
set -eu
umask 077

case "$0" in */*) cd "${0%/*}" ;; esac

# Checked before lib/ is read: a create killed while copying the skeleton
# leaves this script without lib/ (and without etc/config: nothing to undo).
[ -f etc/config ] || exit 0
# Done before (root/destroy.sh runs this again after a server or wardenctl did).
[ ! -f run/destroyed ] || exit 0

. ./lib/common.sh

./net.sh teardown || echo "destroy.sh: net.sh teardown failed, going on" >&2

# The pid file is trusted only when the pid is in the container's group: after
# a reboot it could name anything.
if [ -f run/wshd.pid ]; then
  read -r pid < run/wshd.pid || pid=""
  for p in $(all_instance_pids); do
    if [ "$p" = "$pid" ]; then
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
  done
fi

# Whatever is left in the groups (a wshd that died half-way leaves its child
# behind) is killed until the groups are empty.
tries=0
while :; do
  pids=$(all_instance_pids)
  [ -n "$pids" ] || break
  # shellcheck disable=SC2086
  kill -KILL $pids 2>/dev/null || true
  tries=$((tries + 1))
  [ "$tries" -le 3000 ] || die "processes $pids of instance-$id do not die"
  sleep 0.01
done
rm -f run/wshd.pid

# The writable layer's image: unmounted once nothing in the container holds
# it; its loop device is released with the last mount.
./disk.sh teardown || echo "destroy.sh: disk.sh teardown failed, going on" >&2

# One rmdir for all groups; the loop below only retries the stubborn ones.
# shellcheck disable=SC2046
rmdir $(instance_cgroups) 2>/dev/null || true
for cg in $(instance_cgroups); do
  [ -d "$cg" ] || continue
  tries=0
  until rmdir "$cg" 2>/dev/null || [ ! -d "$cg" ]; do
    tries=$((tries + 1))
    [ "$tries" -le 1000 ] || die "cannot remove cgroup $cg"
    sleep 0.01
  done
done

# The host end disappears with the container's network namespace; deleting it
# covers a namespace still held open by someone else.
for dev in "$network_host_iface" "$network_ifb_iface"; do
  if [ -e "/sys/class/net/$dev" ]; then
    ip link del "$dev" 2>/dev/null || true
  fi
done

: > run/destroyed
