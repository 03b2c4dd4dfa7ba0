#!/bin/sh
# /init of the test VM (busybox sh). Built into the initramfs by run.sh.
#
# Stage 1 (the initramfs itself): pivot_root(2) refuses to move the initial
# rootfs, and wshd pivots, so everything is copied into a tmpfs and
# switch_root makes that the root. Stage 2: a v2-only host as a current
# distribution has it (cgroup2 alone at /sys/fs/cgroup, the controllers
# enabled in the root, this process moved out of the root group the way
# systemd does it), the kernel modules loaded, then the in-VM tests; every
# result line goes to the second serial port (the results channel), the
# detail to the console. Always ends in poweroff: a VM that does not power
# off is one that hung, and run.sh kills it and reports a failure.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH

if [ ! -e /.stage2 ]; then
  mount -t proc proc /proc
  mkdir -p /newroot
  mount -t tmpfs -o mode=0755 tmpfs /newroot
  for d in /*; do
    case "$d" in /newroot | /proc | /sys | /dev) continue ;; esac
    cp -a "$d" /newroot/
  done
  mkdir -p /newroot/proc /newroot/sys /newroot/dev
  : > /newroot/.stage2
  umount /proc
  # shellcheck disable=SC2093 # the lines after it run only if it failed
  exec switch_root /newroot /init
  echo "vm-init: switch_root failed" > /dev/console
  poweroff -f
fi

mount -t proc -o nosuid,nodev,noexec proc /proc
mount -t sysfs -o nosuid,nodev,noexec sysfs /sys
mount -t devtmpfs -o mode=0755,nosuid devtmpfs /dev
mkdir -p /dev/pts /dev/shm /run /tmp /var/tmp /var/lib
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts /dev/pts
ln -sf pts/ptmx /dev/ptmx 2>/dev/null
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
chmod 1777 /tmp /var/tmp
exec < /dev/console > /dev/console 2>&1

cmdline=$(cat /proc/cmdline)
arg() {
  for w in $cmdline; do
    case "$w" in "$1"=*) echo "${w#*=}" ;; esac
  done
}

mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
for c in $(cat /sys/fs/cgroup/cgroup.controllers); do
  echo "+$c" > /sys/fs/cgroup/cgroup.subtree_control ||
    echo "vm-init: cannot enable controller $c"
done
mkdir -p /sys/fs/cgroup/init.scope
echo $$ > /sys/fs/cgroup/init.scope/cgroup.procs

kver=$(uname -r)
echo /sbin/modprobe > /proc/sys/kernel/modprobe
while read -r ko; do
  [ -n "$ko" ] || continue
  insmod "/lib/modules/$kver/$ko" 2>/tmp/insmod.err ||
    grep -q 'File exists' /tmp/insmod.err ||
    echo "vm-init: insmod $ko: $(cat /tmp/insmod.err)"
done < "/lib/modules/$kver/modules.load"

hostname vm
ip link set lo up

echo "vm-init: kernel $kver, $(nproc) cpus, cgroup controllers: $(cat /sys/fs/cgroup/cgroup.subtree_control)"
echo "vm-init: running tests ($(cut -d' ' -f1 /proc/uptime)s after boot)"
VMTEST_RESULTS=/dev/ttyS1 VMTEST_ONLY=$(arg vmtest.only) VMTEST_INJECT=$(arg vmtest.inject) \
  VMTEST_TEST_TIMEOUT=$(arg vmtest.test_timeout) \
  sh /opt/vmtest/tests.sh
echo "vm-init: tests finished with $? ($(cut -d' ' -f1 /proc/uptime)s after boot)"
sync
poweroff -f
