#!/bin/sh
# Run by wshd after unshare(CLONE_NEWNS), in wshd's own mount namespace: the
# overlay mounted here is seen by the container (cloned from this namespace)
# and never by the host.
[ -n "${DEBUG:-}" ] && set -x
set -eu

case "$0" in */*) cd "${0%/*}/.." ;; *) cd .. ;; esac
. ./lib/common.sh
# Steps run in the background here: whichever way this script ends, it
# waits for them first, so none outlives it (and races the cleanup of a
# failed create or destroy).
trap wait EXIT

# cgroup v2: the group is made now, so that wshd (--cgroup, from start.sh)
# starts the container's first process in it rather than moving it there
# after the clone, which waits for an RCU grace period (10-30 ms). The
# device whitelist is attached by hook-parent-after-clone.sh, before the
# process is released.
if cgroup_v2; then
  prof "cgroup"
  make_v2_group
fi

prof "mountinfo"
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

prof "overlay"
mount -n -t overlay \
  -o "lowerdir=$rootfs_path,upperdir=$PWD/tmp/rootfs,workdir=$PWD/tmp/work" \
  overlay mnt

# vcap has the pool's uid now (setup.sh): what the rootfs's vcap owned (its
# home, whatever the rootfs ships) is given to it, as the reference's usermod
# and groupmod did with find. Through the overlay, so each file is copied up
# into the writable layer and the shared rootfs keeps its owners; symlinks
# are changed, never followed; one find, and only when an id changes.
prof "owners of vcap's files"
own_uid=${user_old_uid:-}
own_gid=${group_old_gid:-}
[ "$own_uid" != "$user_uid" ] || own_uid=
[ "$own_gid" != "$user_uid" ] || own_gid=
if [ -n "$own_uid" ] && [ -n "$own_gid" ]; then
  find "$PWD/mnt" -xdev \( -uid "$own_uid" -exec chown -h "$user_uid" {} + -false \) \
    -o \( -gid "$own_gid" -exec chgrp -h "$user_uid" {} + \)
elif [ -n "$own_uid" ]; then
  find "$PWD/mnt" -xdev -uid "$own_uid" -exec chown -h "$user_uid" {} +
elif [ -n "$own_gid" ]; then
  find "$PWD/mnt" -xdev -gid "$own_gid" -exec chgrp -h "$user_uid" {} +
fi

# wshd re-executes itself from inside the container as /sbin/wshd; with merged
# /usr that path is a symlink, resolved inside mnt, never on the host. Copied
# while /dev is made: two processes each, independent of each other.
copy_wshd() {
  path_in_root_var "$PWD/mnt" /sbin
  sbin=$resolved
  [ -d "$sbin" ] || mkdir -p "$sbin"
  cp bin/wshd "$sbin/wshd"
}
prof "copy wshd, dev nodes (in parallel)"
in_step "copy wshd" copy_wshd &
wshd_copied=$!

# A private /dev holding only the whitelisted nodes; /dev/pts and /dev/shm are
# mounted by the container's first process (hook-child-before-pivot.sh).
make_dev() {
  path_in_root_var "$PWD/mnt" /dev
  dev=$resolved
  [ -d "$dev" ] || mkdir -p "$dev"
  mount -n -t tmpfs -o mode=0755,nosuid,size=65536k tmpfs "$dev"
  # -R recreates nodes as nodes, it never reads them. root/setup.sh prepares
  # the whole set once per boot (dev_nodes, made as below), so one process
  # copies it; without it, the nodes are copied from the host's /dev and fuse
  # (0600 on most hosts) is made. fd, stdin, stdout, stderr and ptmx are
  # symlinks (lib/dev); pts/ and shm/ are made with their mounts.
  nodes=/run/warden/dev-nodes
  prepared=true
  for n in null zero random urandom tty fuse; do
    [ -c "$nodes/$n" ] || prepared=false
  done
  for n in fd stdin stdout stderr ptmx; do
    [ -L "$nodes/$n" ] || prepared=false
  done
  if "$prepared"; then
    cp -RP --preserve=mode "$nodes/null" "$nodes/zero" "$nodes/random" "$nodes/urandom" \
      "$nodes/tty" "$nodes/fuse" "$nodes/fd" "$nodes/stdin" "$nodes/stdout" "$nodes/stderr" \
      "$nodes/ptmx" "$dev/"
  else
    cp -RP --preserve=mode /dev/null /dev/zero /dev/random /dev/urandom /dev/tty \
      lib/dev/fd lib/dev/stdin lib/dev/stdout lib/dev/stderr lib/dev/ptmx "$dev/"
    mknod -m 0666 "$dev/fuse" c 10 229
  fi
}
in_step "dev nodes" make_dev
wait "$wshd_copied" || die "cannot copy wshd into the container"
