#!/bin/sh
# disk.sh setup BYTES [INODES] | grow BYTES | teardown | device
#
# The container's writable layer (the overlay's upper and work directories)
# on an ext4 image of its own, loop-mounted on the host at tmp/disk before
# wshd starts: writes past BYTES fail with ENOSPC, files past INODES too.
# This host-side mount is what the before-clone hook uses as upperdir (it is
# copied into wshd's mount namespace, which is a slave of the host's).
#
#   setup     make tmp/disk.img so that BYTES are available once mounted
#             (made again, larger, when the first left less), room for INODES
#             files (-N; ext4 fixes the count at mkfs time, rounded up to
#             fill the inode table), mount it (-o loop: the device is
#             autocleared once the last mount is gone), move tmp/rootfs in
#   grow      enlarge the image and resize2fs online (needs CAP_SYS_RESOURCE;
#             ext4 cannot shrink while mounted, so BYTES below the current
#             size is refused); more block groups bring inodes in proportion
#   teardown  unmount (idempotent); the loop device goes with the last mount
#   device    print the loop device (empty when not mounted)
[ -n "${DEBUG:-}" ] && set -x
set -eu
# The image holds the container's files and etc/disk is host state: neither
# is any other host user's business. The upper layer's own mode comes from
# tmp/rootfs (cp -a), not from this umask.
umask 077

case "$0" in */*) cd "${0%/*}" ;; esac
. ./lib/common.sh

img=tmp/disk.img
mnt=$PWD/tmp/disk

device() {
  awk -v p="$mnt" '$2 == p && $3 == "ext4" { d = $1 } END { if (d) print d }' /proc/self/mounts
}

number() {
  case "$1" in ''|*[!0-9]*) die "not a number: $1" ;; esac
}

# What a writer will be able to use once the image is mounted, read from
# the unmounted image: the free blocks less the clusters ext4 keeps back for
# delayed allocation (min(2 %, 4096), ext4_calculate_resv_clusters); no
# blocks are reserved for root (-m 0). Computed rather than mounted and
# measured: a loop device being released while the image is made again
# could write its last blocks over the new filesystem.
available() {
  dumpe2fs -h "$img" 2>/dev/null | awk -F: '
    $1 == "Block count" { n = $2 } $1 == "Free blocks" { f = $2 }
    $1 == "Block size" { b = $2 }
    END { r = int(n / 50); if (r > 4096) r = 4096; printf "%.0f\n", (f - r) * b }'
}

mkfs() {
  rm -f "$img"
  truncate -s "$1" "$img"
  # No journal: a container's scratch layer is not kept across a crash, and
  # the journal would take a megabyte of the limit.
  mkfs.ext4 -q -F -b 4096 -I 256 -m 0 -O ^has_journal ${inodes:+-N "$inodes"} \
    -E nodiscard,lazy_itable_init=1 "$img" >/dev/null
}

setup() {
  bytes=$1
  inodes=${2:-}
  number "$bytes"
  [ -z "$inodes" ] || number "$inodes"
  [ -z "$(device)" ] || die "the disk image is mounted already"
  # The fs's own inodes (11 reserved, the root directory, lost+found,
  # rootfs/ and work/), setup.sh's upper layer and the hook's wshd come on
  # top of what the container is given.
  [ -z "$inodes" ] || inodes=$((inodes + 16 + $(find tmp/rootfs | wc -l)))
  # The image is made again, larger by what was missing, until BYTES are
  # available: the limit is what the container can write, not the size of
  # a file on the host.
  # What the container did not write comes on top: setup.sh's upper layer
  # and the copy of wshd the before-clone hook puts in its /sbin.
  extra=$(du -s -B1 --apparent-size bin/wshd tmp/rootfs | awk '{ s += $1 } END { print s + 65536 }')
  want=$((bytes + extra))
  mkdir -p "$mnt"
  size=$want
  tries=0
  while :; do
    mkfs "$size"
    have=$(available)
    [ "$have" -lt "$want" ] || break
    tries=$((tries + 1))
    [ "$tries" -le 4 ] || die "cannot size an image for $bytes bytes"
    size=$((size + want - have + 65536))
  done
  # mount picks a free loop device; one taken by a concurrent mount in the
  # meantime makes it fail, so it is asked again.
  tries=0
  until mount -t ext4 -o loop,nosuid,nodev,noatime "$img" "$mnt" 2>tmp/mount.err; do
    tries=$((tries + 1))
    [ "$tries" -le 3 ] || die "mount $img: $(tail -n 1 tmp/mount.err)"
    sleep 0.05
  done
  mkdir "$mnt/rootfs" "$mnt/work"
  # The jobs' logs are charged here (orchestrator/src/output.rs): made now,
  # so a container out of inodes still pays for its output in blocks.
  (umask 077 && : > "$mnt/job-output")
  # The upper layer setup.sh wrote (etc files, vcap's home) moves in.
  cp -a tmp/rootfs/. "$mnt/rootfs/"
  rm -rf tmp/rootfs tmp/work
  # The hook's upperdir and workdir (tmp/rootfs, tmp/work) lead here.
  ln -s disk/rootfs tmp/rootfs
  ln -s disk/work tmp/work
  echo "$bytes ${2:-}" > etc/disk
}

grow() {
  bytes=$1
  number "$bytes"
  dev=$(device)
  [ -n "$dev" ] || die "the container has no disk image (create it with a disk limit)"
  old=$(stat -c %s "$img")
  new=$((bytes + old - $(awk '{ print $1 }' etc/disk)))
  [ "$new" -ge "$old" ] || die "cannot shrink a mounted ext4 filesystem (limit ${bytes} is below the current one)"
  [ "$new" -gt "$old" ] || return 0
  truncate -s "$new" "$img"
  losetup -c "$dev"
  if ! resize2fs "$dev" >/dev/null 2>tmp/resize2fs.err; then
    # The kernel refused (no CAP_SYS_RESOURCE): the image goes back to its
    # size, so the filesystem keeps its limit.
    truncate -s "$old" "$img"
    losetup -c "$dev"
    die "online resize refused: $(tail -n 1 tmp/resize2fs.err)"
  fi
  inodes=$(awk '{ print $2 }' etc/disk)
  echo "$bytes $inodes" > etc/disk
}

teardown() {
  [ -n "$(device)" ] || return 0
  tries=0
  until umount "$mnt" 2>/dev/null; do
    tries=$((tries + 1))
    if [ "$tries" -gt 50 ]; then
      umount -l "$mnt"
      break
    fi
    sleep 0.02
  done
}

case "${1:-}" in
  setup) setup "${2:-}" "${3:-}" ;;
  grow) grow "${2:-}" ;;
  teardown) teardown ;;
  device) device ;;
  *) die "Unknown command: ${1:-}" ;;
esac
