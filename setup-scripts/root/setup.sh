#!/bin/sh
# Once per host (and again after a reboot): cgroup hierarchies, the global
# iptables chains, disk quotas. Idempotent.
#
# Environment (as a Warden server passes it): POOL_NETWORK, ALLOW_NETWORKS,
# DENY_NETWORKS, ALLOW_HOST_ACCESS, CONTAINER_ROOTFS_PATH,
# CONTAINER_DEPOT_PATH, CONTAINER_DEPOT_MOUNT_POINT_PATH, DISK_QUOTA_ENABLED.
[ -n "${DEBUG:-}" ] && set -x
set -eu

cd "$(dirname "$0")"

die() {
  echo "setup.sh: $*" >&2
  exit 1
}

[ "$(id -u)" = 0 ] || die "must run as root"

if [ -n "${CONTAINER_ROOTFS_PATH:-}" ] && [ ! -d "$CONTAINER_ROOTFS_PATH" ]; then
  die "CONTAINER_ROOTFS_PATH $CONTAINER_ROOTFS_PATH is not a directory"
fi
if [ -n "${CONTAINER_DEPOT_PATH:-}" ]; then
  mkdir -p "$CONTAINER_DEPOT_PATH"
  # Container root plants setuid files in the writable layers below, on a
  # filesystem without nosuid: no other host user may reach them.
  chmod 0700 "$CONTAINER_DEPOT_PATH"
fi

grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null || true
grep -qw overlay /proc/filesystems || die "the kernel has no overlay filesystem"
# Each container gets an ifb device (w-<id>-2) at start, for net_rate.sh;
# numifbs=0: no ifb0/ifb1 of the module's own. Without ifb, containers start
# without it (net_rate.sh then polices).
[ -d /sys/module/ifb ] || modprobe ifb numifbs=0 2>/dev/null || true

# The device nodes every container's /dev gets (hook-parent-before-clone.sh
# copies the set in one process instead of copying and making them per
# container): the host's null, zero, random, urandom and tty with their
# modes, fuse made 0666 (0600 on most hosts), the links of the skeleton's
# lib/dev. Made under a temporary name and renamed, so a hook never sees
# half a set; /run goes at reboot, and so does the set.
nodes=/run/warden/dev-nodes
if [ ! -d "$nodes" ]; then
  mkdir -p -m 0755 /run/warden
  tmp_nodes=$(mktemp -d /run/warden/dev-nodes.XXXXXX)
  chmod 0755 "$tmp_nodes"
  cp -RP --preserve=mode /dev/null /dev/zero /dev/random /dev/urandom /dev/tty "$tmp_nodes/"
  mknod -m 0666 "$tmp_nodes/fuse" c 10 229
  ln -s /proc/self/fd "$tmp_nodes/fd"
  ln -s /proc/self/fd/0 "$tmp_nodes/stdin"
  ln -s /proc/self/fd/1 "$tmp_nodes/stdout"
  ln -s /proc/self/fd/2 "$tmp_nodes/stderr"
  ln -s pts/ptmx "$tmp_nodes/ptmx"
  mv -T "$tmp_nodes" "$nodes" 2>/dev/null || rm -rf "$tmp_nodes"
fi

cgroup_root=/sys/fs/cgroup
if [ -f "$cgroup_root/cgroup.controllers" ]; then
  # cgroup v2: the instance groups live under the root; give them controllers.
  for c in $(cat "$cgroup_root/cgroup.controllers"); do
    echo "+$c" > "$cgroup_root/cgroup.subtree_control" 2>/dev/null || true
  done
else
  # cgroup v1: every controller the containers need must be mounted somewhere
  # (the scripts find the hierarchies in the mount table).
  mounted=$(awk '$3 == "cgroup" { print $4 }' /proc/self/mounts | tr ',' '\n')
  for subsystem in cpu cpuacct devices memory cpuset pids; do
    echo "$mounted" | grep -qx "$subsystem" && continue
    grep -qw "^$subsystem" /proc/cgroups || continue
    if ! awk -v p="$cgroup_root" '$2 == p { found = 1 } END { exit !found }' /proc/self/mounts; then
      mount -t tmpfs -o mode=0755 cgroup "$cgroup_root"
    fi
    mkdir -p "$cgroup_root/$subsystem"
    mount -t cgroup -o "$subsystem" cgroup "$cgroup_root/$subsystem"
  done
fi

./net.sh setup

if [ "${DISK_QUOTA_ENABLED:-false}" = true ]; then
  mp=${CONTAINER_DEPOT_MOUNT_POINT_PATH:?CONTAINER_DEPOT_MOUNT_POINT_PATH is not set}
  # quotaon -p exits non-zero when quotas are already on.
  if quotaon -p "$mp" > /dev/null 2>&1; then
    mount -o remount,usrjquota=aquota.user,grpjquota=aquota.group,jqfmt=vfsv0 "$mp"
    quotacheck -ugmb -F vfsv0 "$mp"
    quotaon "$mp"
  fi
fi
