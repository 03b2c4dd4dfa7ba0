#!/bin/sh
# Run by wshd after unshare(CLONE_NEWNS), in wshd's own mount namespace: the
# overlay mounted here is seen by the container (cloned from this namespace)
# and never by the host.
[ -n "${DEBUG:-}" ] && set -x
set -eu

case "$0" in */*) cd "${0%/*}/.." ;; *) cd .. ;; esac
. ./lib/common.sh

# wshd is expected to have made its mounts private; with one that did not
# (the C helper) on a host where / is shared (systemd), the overlay would
# propagate to the host, so / is made a slave here. Checked first, from
# mountinfo (optional field "shared:N"), to spare a process when not needed.
while read -r _id _parent _devno _root _mp _opts _rest; do
  if [ "$_mp" = / ]; then
    case " $_rest " in
      *" shared:"*) mount --make-rslave / ;;
    esac
  fi
done < /proc/self/mountinfo

mount -n -t overlay \
  -o "lowerdir=$rootfs_path,upperdir=$PWD/tmp/rootfs,workdir=$PWD/tmp/work" \
  overlay mnt

# wshd re-executes itself from inside the container as /sbin/wshd; with merged
# /usr that path is a symlink, resolved inside mnt, never on the host.
sbin=$(path_in_root "$PWD/mnt" /sbin)
[ -d "$sbin" ] || mkdir -p "$sbin"
cp bin/wshd "$sbin/wshd"

# A private /dev holding only the whitelisted nodes; /dev/pts and /dev/shm are
# mounted after pivot_root.
dev=$(path_in_root "$PWD/mnt" /dev)
[ -d "$dev" ] || mkdir -p "$dev"
mount -n -t tmpfs -o mode=0755,nosuid,size=65536k tmpfs "$dev"
# The nodes are copied from the host's /dev (one process for five nodes;
# -R recreates them as nodes, it never reads them); fuse is 0600 on most
# hosts, so it is made. fd, stdin, stdout, stderr and ptmx are symlinks from
# lib/dev; pts/ and shm/ are made after pivot_root.
cp -RP --preserve=mode /dev/null /dev/zero /dev/random /dev/urandom /dev/tty \
  lib/dev/fd lib/dev/stdin lib/dev/stdout lib/dev/stderr lib/dev/ptmx "$dev/"
mknod -m 0666 "$dev/fuse" c 10 229
