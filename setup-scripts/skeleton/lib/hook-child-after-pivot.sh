#!/bin/sh
# Run inside the container after pivot_root, by the container's /bin/sh (busybox
# or any POSIX sh: nothing here may need bash or a host tool). The old root is
# still at /mnt, so this file is /mnt/<instance>/lib/hook-child-after-pivot.sh.
[ -n "${DEBUG:-}" ] && set -x
set -eu

case "$0" in */*) cd "${0%/*}/.." ;; *) cd .. ;; esac
. ./etc/config
# A step of the wall-time profile (lib/profile.sh): the host's paths are
# under /mnt until wshd detaches the old root.
if [ -n "${WARDEN_PROFILE:-}" ]; then
  WARDEN_PROFILE=/mnt$WARDEN_PROFILE
  [ -z "${WARDEN_PROFILE_PIPE:-}" ] || WARDEN_PROFILE_PIPE=/mnt$WARDEN_PROFILE_PIPE
  . ./lib/profile.sh
else
  prof() { :; }
fi
prof "hostname, sysctls"
# Through /proc rather than hostname(1), which a rootfs need not have.
echo "$id" > /proc/sys/kernel/hostname

# The network namespace's own settings, while /proc/sys is still writable
# (wshd makes it read-only once this hook returns); shell builtins only.
# IPv6 off: no address, not even link-local, on lo or the veth (writing
# "all" also sets "default" and every device; each is written for the
# record). ICMP datagram sockets for every group: ping without CAP_NET_RAW.
if [ -d /proc/sys/net/ipv6/conf ]; then
  for v6 in all default lo "${network_container_iface:-w-$id-1}"; do
    v6=/proc/sys/net/ipv6/conf/$v6/disable_ipv6
    [ ! -f "$v6" ] || echo 1 > "$v6"
  done
fi
echo "0 2147483647" > /proc/sys/net/ipv4/ping_group_range
