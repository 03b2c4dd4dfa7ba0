#!/bin/sh
# Run by wshd once the container's first process exists (held at a barrier);
# PID is that process as the host sees it.
[ -n "${DEBUG:-}" ] && set -x
set -eu

case "$0" in */*) cd "${0%/*}/.." ;; *) cd .. ;; esac
. ./lib/common.sh
# Steps run in the background here: whichever way this script ends, it
# waits for them first, so none outlives it (and races the cleanup of a
# failed create or destroy).
trap wait EXIT

[ -n "${PID:-}" ] || die "PID is not set"
# All this hook makes is the host's own state (the pid file, cgroups): private
# whatever umask wshd was started with.
prof "pid file"
umask 077
echo "$PID" > run/wshd.pid

# One group per hierarchy; the devices whitelist is set before the process
# joins, so it never runs unrestricted.
make_cgroups() {
  if cgroup_v2; then
    make_v2_group
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
    # Born there (wshd --cgroup), or moved now. /proc/PID/cgroup names the
    # group from the v2 mount (/sys/fs/cgroup, see cgroup_v2).
    _in_group=false
    while IFS= read -r _line; do
      [ "$_line" != "0::${cg#/sys/fs/cgroup}" ] || _in_group=true
    done < "/proc/$PID/cgroup"
    "$_in_group" || echo "$PID" > "$cg/cgroup.procs"
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
}

# The first process to join a group waits for an RCU grace period (the
# kernel's cgroup_threadgroup_rwsem): about 10 ms, while the veth costs
# processes. So the groups are made side by side with the network devices;
# the container is released only after both (this hook's end).
prof "cgroups, veth, ifb (in parallel)"
in_step cgroups make_cgroups &
cgroups_made=$!

# The veth pair is born with its container end already inside the child's
# network namespace, so the end never exists on the host side by that name;
# the container's first process sets its addresses, with the host's ip(8)
# (hook-child-before-pivot.sh), so the rootfs needs no networking tools.
# The ifb (w-<id>-2) that net_rate.sh shapes the container's outgoing
# traffic on is made here too, as the reference did, so that it is there
# from the start (destroy.sh removes it); it comes last, so that a kernel
# without ifb still gets a container (net_rate.sh then polices instead).
# Both are born in the container's device group (lib/common.sh), which
# destroy.sh deletes in one request.
make_veth() {
  mask_to_prefix_var "$network_netmask"
  mtu=${container_iface_mtu:-1500}
  device_group_var "$network_host_ip"
  group=${device_group:+group $device_group}
  ifb_lines=
  [ -e "/sys/class/net/$network_ifb_iface" ] || ifb_lines="link add name $network_ifb_iface mtu $mtu $group type ifb
link set $network_ifb_iface up"
  if ! ip -batch - <<IP
link add name $network_host_iface mtu $mtu $group type veth peer name $network_container_iface mtu $mtu netns $PID
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
  # No IPv6 on the host end (no link-local address the container could
  # reach the host on; the host drops IPv6 arriving there). The container's
  # end and its lo are switched off from inside, by
  # hook-child-after-pivot.sh.
  v6=/proc/sys/net/ipv6/conf/$network_host_iface/disable_ipv6
  [ ! -f "$v6" ] || echo 1 > "$v6"
}
in_step "veth, ifb" make_veth
# The container is held at its barrier until this hook returns.
wait "$cgroups_made" || die "cannot put process $PID in the container's groups"
