#!/bin/sh
# Run by wshd once the container's first process exists (held at a barrier);
# PID is that process as the host sees it.
[ -n "${DEBUG:-}" ] && set -x
set -eu

case "$0" in */*) cd "${0%/*}/.." ;; *) cd .. ;; esac
. ./lib/common.sh

[ -n "${PID:-}" ] || die "PID is not set"
echo "$PID" > run/wshd.pid

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
  groups=$(instance_cgroups)
  # shellcheck disable=SC2086
  mkdir -p $groups
  for cg in $groups; do
    if [ -f "$cg/cpuset.cpus" ]; then
      read -r cpus < "${cg%/*}/cpuset.cpus"
      read -r mems < "${cg%/*}/cpuset.mems"
      echo "$cpus" > "$cg/cpuset.cpus"
      echo "$mems" > "$cg/cpuset.mems"
    fi
    if [ -f "$cg/devices.deny" ] && [ "${allow_nested_warden:-false}" != true ]; then
      echo a > "$cg/devices.deny"
      echo "$device_whitelist" | while IFS= read -r rule; do
        echo "$rule" > "$cg/devices.allow"
      done
    fi
    [ ! -f "$cg/cgroup.clone_children" ] || echo 1 > "$cg/cgroup.clone_children"
    echo "$PID" > "$cg/cgroup.procs"
  done
fi

# The veth pair is born with its container end already inside the child's
# network namespace, so the end never exists on the host side by that name.
# Addresses inside are set from here with the host's ip(8), so the rootfs
# needs no networking tools.
prefix=$(mask_to_prefix "$network_netmask")
mtu=${container_iface_mtu:-1500}
ip -batch - <<IP
link add name $network_host_iface mtu $mtu type veth peer name $network_container_iface mtu $mtu netns $PID
addr add $network_host_ip/$prefix dev $network_host_iface
link set $network_host_iface up
IP
nsenter --net="/proc/$PID/ns/net" ip -batch - <<IP
link set lo up
addr add $network_container_ip/$prefix dev $network_container_iface
link set $network_container_iface up
route add default via $network_host_ip dev $network_container_iface
IP
