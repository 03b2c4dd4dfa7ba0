#!/bin/sh
# Run by wshd once the container's first process exists (held at a barrier);
# PID is that process as the host sees it.
[ -n "${DEBUG:-}" ] && set -x
set -eu

case "$0" in */*) cd "${0%/*}/.." ;; *) cd .. ;; esac
. ./lib/common.sh

[ -n "${PID:-}" ] || die "PID is not set"
# All this hook makes is the host's own state (the pid file, cgroups): private
# whatever umask wshd was started with.
prof "pid file"
umask 077
echo "$PID" > run/wshd.pid

# pids.max (container_pids_limit, 0 = none) is set before the process joins,
# so a fork bomb never finds the group unlimited; a host without the pids
# controller has no such file.
pids_limit=${container_pids_limit:-4096}
set_pids_max() {
  [ "$pids_limit" != 0 ] && [ -f "$1/pids.max" ] || return 0
  echo "$pids_limit" > "$1/pids.max"
}

prof "cgroups"
# One group per hierarchy; the devices whitelist is set before the process
# joins, so it never runs unrestricted.
if cgroup_v2; then
  # Controllers must be enabled in the parent for the group to have them.
  read -r controllers < "$cgroup2_parent/cgroup.controllers" || true
  for c in $controllers; do
    echo "+$c" > "$cgroup2_parent/cgroup.subtree_control" 2>/dev/null || true
  done
  cg="$cgroup2_parent/instance-$id"
  mkdir -p "$cg"
  set_pids_max "$cg"
  # v2 has no devices.allow/deny: the same whitelist is a BPF program
  # attached to the group (it stays attached until the group is removed).
  if [ "${allow_nested_warden:-false}" != true ]; then
    [ -x bin/cgroup-devices ] || die "bin/cgroup-devices is missing: cgroup v2 needs it for the device whitelist"
    _ifs=$IFS
    IFS='
'
    # shellcheck disable=SC2086 # one argument per whitelist line
    bin/cgroup-devices attach "$cg" $device_whitelist || die "cannot enforce the device whitelist on $cg"
    IFS=$_ifs
  fi
  echo "$PID" > "$cg/cgroup.procs"
else
  instance_cgroups_var
  _ifs=$IFS
  IFS='
'
  # shellcheck disable=SC2086
  mkdir -p $cgroups
  for cg in $cgroups; do
    if [ -f "$cg/cpuset.cpus" ]; then
      read -r cpus < "${cg%/*}/cpuset.cpus"
      read -r mems < "${cg%/*}/cpuset.mems"
      echo "$cpus" > "$cg/cpuset.cpus"
      echo "$mems" > "$cg/cpuset.mems"
    fi
    if [ -f "$cg/devices.deny" ] && [ "${allow_nested_warden:-false}" != true ]; then
      echo a > "$cg/devices.deny"
      # IFS is a newline here: one rule per line, no pipe (a subshell).
      for rule in $device_whitelist; do
        echo "$rule" > "$cg/devices.allow"
      done
    fi
    set_pids_max "$cg"
    [ ! -f "$cg/cgroup.clone_children" ] || echo 1 > "$cg/cgroup.clone_children"
    echo "$PID" > "$cg/cgroup.procs"
  done
  IFS=$_ifs
fi

# The veth pair is born with its container end already inside the child's
# network namespace, so the end never exists on the host side by that name.
# Addresses inside are set from here with the host's ip(8), so the rootfs
# needs no networking tools.
# The ifb (w-<id>-2) that net_rate.sh shapes the container's outgoing
# traffic on is made here too, as the reference did, so that it is there
# from the start (destroy.sh removes it); it comes last, so that a kernel
# without ifb still gets a container (net_rate.sh then polices instead).
prof "veth, ifb"
mask_to_prefix_var "$network_netmask"
mtu=${container_iface_mtu:-1500}
ifb_lines=
[ -e "/sys/class/net/$network_ifb_iface" ] || ifb_lines="link add name $network_ifb_iface mtu $mtu type ifb
link set $network_ifb_iface up"
if ! ip -batch - <<IP
link add name $network_host_iface mtu $mtu type veth peer name $network_container_iface mtu $mtu netns $PID
addr add $network_host_ip/$prefix dev $network_host_iface
link set $network_host_iface up
$ifb_lines
IP
then
  # Only the ifb may fail: the veth must be up (IFF_UP, flag 0x1).
  flags=0
  [ ! -f "/sys/class/net/$network_host_iface/flags" ] || read -r flags < "/sys/class/net/$network_host_iface/flags"
  [ $((flags & 1)) = 1 ] && [ ! -e "/sys/class/net/$network_ifb_iface" ] ||
    die "cannot set up $network_host_iface"
  echo "hook-parent-after-clone.sh: no ifb device $network_ifb_iface (no ifb in the kernel?)" >&2
fi
# No IPv6 on the host end (no link-local address the container could reach
# the host on; the host drops IPv6 arriving there). The container's end and
# its lo are switched off from inside, by hook-child-after-pivot.sh. The
# container is held at its barrier until this hook returns.
prof "container network"
v6=/proc/sys/net/ipv6/conf/$network_host_iface/disable_ipv6
[ ! -f "$v6" ] || echo 1 > "$v6"
nsenter --net="/proc/$PID/ns/net" ip -batch - <<IP
link set lo up
addr add $network_container_ip/$prefix dev $network_container_iface
link set $network_container_iface up
route add default via $network_host_ip dev $network_container_iface
IP
