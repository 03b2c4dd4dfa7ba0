#!/bin/sh
# Limit the container's bandwidth: RATE in bits/s, BURST in bytes.
# Traffic to the container is shaped by a tbf on the host veth; traffic from
# it is redirected to an ifb device (w-<id>-2) and shaped there.
[ -n "${DEBUG:-}" ] && set -x
set -eu

case "$0" in */*) cd "${0%/*}" ;; esac
. ./lib/common.sh

[ -n "${RATE:-}" ] || die "Please specify RATE..."
[ -n "${BURST:-}" ] || die "Please specify BURST..."

dev=$network_host_iface
ifb=$network_ifb_iface

tc qdisc del dev "$dev" root 2>/dev/null || true
tc qdisc del dev "$dev" ingress 2>/dev/null || true

tc qdisc add dev "$dev" root tbf rate "${RATE}bit" burst "$BURST" latency 25ms

if [ ! -e "/sys/class/net/$ifb" ]; then
  modprobe ifb numifbs=0 2>/dev/null || true
  # In the container's device group, as the one made at start (destroy.sh).
  device_group_var "${network_host_ip:-}"
  # shellcheck disable=SC2086 # "group N" is two words, or none
  ip link add "$ifb" ${device_group:+group $device_group} type ifb 2>/dev/null || true
fi
tc qdisc add dev "$dev" ingress handle ffff:
if [ -e "/sys/class/net/$ifb" ]; then
  ip link set "$ifb" up
  tc qdisc del dev "$ifb" root 2>/dev/null || true
  tc qdisc add dev "$ifb" root tbf rate "${RATE}bit" burst "$BURST" latency 25ms
  tc filter add dev "$dev" parent ffff: protocol all prio 1 u32 match u32 0 0 \
    action mirred egress redirect dev "$ifb"
else
  # No ifb in this kernel: police instead of shaping.
  tc filter add dev "$dev" parent ffff: protocol ip prio 1 u32 match ip src 0.0.0.0/0 \
    police rate "${RATE}bit" burst "$BURST" drop flowid :1
fi
