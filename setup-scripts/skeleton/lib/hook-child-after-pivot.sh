#!/bin/sh
# Run inside the container after pivot_root, by the container's /bin/sh (busybox
# or any POSIX sh: nothing here may need bash or a host tool). The old root is
# still at /mnt, so this file is /mnt/<instance>/lib/hook-child-after-pivot.sh.
[ -n "${DEBUG:-}" ] && set -x
set -eu

case "$0" in */*) cd "${0%/*}/.." ;; *) cd .. ;; esac
. ./etc/config

mkdir -p /proc /dev/pts /dev/shm
mount -t proc -o nosuid,nodev,noexec proc /proc
# /dev/ptmx is a link to pts/ptmx (made before pivot_root).
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts /dev/pts
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm

# Through /proc rather than hostname(1), which a rootfs need not have.
echo "$id" > /proc/sys/kernel/hostname
