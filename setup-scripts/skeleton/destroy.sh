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
# Steps run in the background here: whichever way this script ends, it
# waits for them first, so none outlives it (and races the cleanup of a
# failed create or destroy).
trap wait EXIT

# Processes are what this costs (a shell builtin costs next to nothing), and
# the kernel's part (a process tree exiting, a network device unregistered,
# the RCU grace period iptables-restore waits for before it can exit) is
# mostly waiting: so wshd is killed first, and while the container dies the
# iptables chains, the network devices (one request for both) and, once the
# container is dead, its groups and writable layer are removed in parallel,
# by children this script waits for (the kernel tells it when they end);
# the chains are waited for last.
prof "kill wshd"
# The pid file is trusted only when the pid is in the container's group: after
# a reboot it could name anything.
if [ -f run/wshd.pid ]; then
  read -r pid < run/wshd.pid || pid=""
  all_instance_pids_var
  for p in $pids; do
    if [ "$p" = "$pid" ]; then
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
  done
fi

prof "net.sh teardown, links, groups (in parallel)"
in_step "net.sh teardown" ./net.sh teardown &
net_teardown=$!
# The host end takes the container's end with it; deleted here rather than
# left to the namespace's (asynchronous) end, which this would have to wait
# for. The devices in the container's group (all of them, unless they were
# made before there were groups) go in one request: the kernel then pays
# one round of grace periods for them all, where a deletion each paid one
# each, one after the other (the kernel serialises them).
links=
device_group_var "${network_host_ip:-}"
in_group=false
for dev in "$network_host_iface" "$network_ifb_iface"; do
  [ -e "/sys/class/net/$dev" ] || continue
  group=
  [ -z "$device_group" ] || read -r group < "/sys/class/net/$dev/netdev_group" || :
  if [ -n "$device_group" ] && [ "$group" = "$device_group" ]; then
    in_group=true
  else
    ip link del "$dev" 2>/dev/null &
    links="$links $!"
  fi
done
if "$in_group"; then
  ip link del group "$device_group" 2>/dev/null &
  links="$links $!"
fi

# The container's own end, meanwhile: unregistering the devices and freeing
# the chains is the kernel waiting for grace periods (tens of ms), during
# which the container dies; what needs it dead runs in that time too.
# Whatever is left in the groups (a wshd that died half-way leaves its child
# behind) is killed until the groups are empty; then its writable layer
# goes (what root/destroy.sh would remove later, file by file), unless it
# is in a disk image (disk.sh, below) or still mounted here; then the groups.
disk_mounted=false
layer_mounted=false
case "$PWD" in
  *[[:space:]\\]*) disk_mounted=true layer_mounted=true ;;
  *)
    while read -r _dev _mp _rest; do
      [ "$_mp" != "$PWD/tmp/disk" ] || disk_mounted=true
      [ "$_mp" != "$PWD/mnt" ] || layer_mounted=true
    done < /proc/self/mounts
    ;;
esac
container_end() {
  # Its steps nest under its own (in_step's scope); a no-op unprofiled.
  prof_scope=${WARDEN_PROFILE_SCOPE:-}
  prof "wait for empty groups"
  tries=0
  while :; do
    all_instance_pids_var
    [ -n "$pids" ] || break
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    tries=$((tries + 1))
    [ "$tries" -le 3000 ] || die "processes $pids of instance-$id do not die"
    sleep 0.01
  done
  [ ! -f run/wshd.pid ] || rm -f run/wshd.pid

  prof "writable layer"
  if ! "$disk_mounted" && ! "$layer_mounted"; then
    rm -rf tmp/rootfs tmp/work 2>/dev/null || true
  fi

  # One rmdir for all groups; the loop below only retries the stubborn ones.
  prof "rmdir cgroups"
  instance_cgroups_var
  old_ifs=$IFS
  IFS='
'
  # shellcheck disable=SC2086
  [ -z "$cgroups" ] || rmdir $cgroups 2>/dev/null || true
  for cg in $cgroups; do
    [ -d "$cg" ] || continue
    tries=0
    until rmdir "$cg" 2>/dev/null || [ ! -d "$cg" ]; do
      tries=$((tries + 1))
      [ "$tries" -le 1000 ] || die "cannot remove cgroup $cg"
      sleep 0.01
    done
  done
  IFS=$old_ifs
}
in_step "groups, writable layer" container_end &
container_ended=$!

prof "wait for links"
for job in $links; do
  wait "$job" || true
done

prof "wait for groups, writable layer"
wait "$container_ended" || exit 1

# The writable layer's image: unmounted once nothing in the container holds
# it; its loop device is released with the last mount. disk.sh is run only
# when something is mounted there (or the path cannot be compared with the
# mount table, which escapes blanks and backslashes).
prof "disk.sh teardown"
if "$disk_mounted"; then
  ./disk.sh teardown || echo "destroy.sh: disk.sh teardown failed, going on" >&2
fi

prof "wait for net.sh teardown"
wait "$net_teardown" || echo "destroy.sh: net.sh teardown failed, going on" >&2

# What the parallel deletion missed (a namespace still held open by someone
# else keeps the container's end, and so the host's).
prof "delete links"
for dev in "$network_host_iface" "$network_ifb_iface"; do
  if [ -e "/sys/class/net/$dev" ]; then
    ip link del "$dev" 2>/dev/null || true
  fi
done

: > run/destroyed
