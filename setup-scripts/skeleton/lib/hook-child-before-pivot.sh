#!/bin/sh
# Run by the container's first process before pivot_root, with the host's
# filesystem still visible. A server appends the bind mounts of a create
# request to this file (one `mount` per line), so it must not exit early.
[ -n "${DEBUG:-}" ] && set -x
set -eu

case "$0" in */*) cd "${0%/*}/.." ;; *) cd .. ;; esac
. ./lib/common.sh

# The container's end of the veth (made by hook-parent-after-clone.sh) and
# its lo, from inside the network namespace, with the host's ip(8): one
# process, where entering the namespace from the host took two.
prof "container network"
mask_to_prefix_var "$network_netmask"
ip -batch - <<IP
link set lo up
addr add $network_container_ip/$prefix dev $network_container_iface
link set $network_container_iface up
route add default via $network_host_ip dev $network_container_iface
IP

# /proc, /dev/pts and /dev/shm, mounted under the new root before it is
# pivoted to: one mount(8) (the host's) for the three, where the
# container's own took one process each after pivot_root. /proc is found
# inside the root (an image's symlink is followed there, never on the host);
# /dev is the tmpfs hook-parent-before-clone.sh made.
prof "mounts"
path_in_root_var "$PWD/mnt" /proc
proc=$resolved
path_in_root_var "$PWD/mnt" /dev
dev=$resolved
shm="mode=1777,nosuid,nodev,size=${container_shm_size:-67108864}"
case "$proc$dev" in
  # fstab fields cannot hold blanks or backslashes unescaped.
  *[[:space:]\\]*)
    mkdir -p "$proc" "$dev/pts" "$dev/shm"
    mount -t proc -o nosuid,nodev,noexec proc "$proc"
    mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$dev/pts"
    mount -t tmpfs -o "$shm" tmpfs "$dev/shm"
    ;;
  *)
    # /dev/ptmx is a link to pts/ptmx (made with the device nodes). Sized
    # shm: unsized, it would be half the host's memory.
    printf '%s\n' "proc $proc proc nosuid,nodev,noexec,X-mount.mkdir 0 0" \
      "devpts $dev/pts devpts newinstance,ptmxmode=0666,mode=0620,X-mount.mkdir 0 0" \
      "tmpfs $dev/shm tmpfs $shm,X-mount.mkdir 0 0" > tmp/container.fstab
    mount -a -T tmp/container.fstab
    ;;
esac

# Bind mounts of the create request follow (a server appends them).
