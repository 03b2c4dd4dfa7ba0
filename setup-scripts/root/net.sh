#!/bin/sh
# net.sh setup|teardown: the host-wide iptables chains every container's
# chains hook into.
#
#   filter  INPUT   -i w-+ -> warden-input    containers may not reach the host
#           FORWARD -i w-+ -> warden-forward  established traffic, then one
#                   goto per container (warden-i-<id>, see skeleton/net.sh),
#                   then DROP
#           warden-default: where a container's chain ends: ALLOW_NETWORKS
#                   accepted, DENY_NETWORKS dropped, other containers (any
#                   w-+ interface) dropped, everything else accepted
#   nat     PREROUTING, OUTPUT (local destinations) -> warden-prerouting
#           POSTROUTING -> warden-postrouting: POOL_NETWORK masqueraded when
#                   leaving through anything but a container veth
#
# setup is idempotent and never flushes the chains the containers hook into,
# so it can be run again while containers exist. teardown removes everything,
# containers' chains included.
#
# Environment: POOL_NETWORK (default 10.254.0.0/22), ALLOW_NETWORKS,
# DENY_NETWORKS (space separated), ALLOW_HOST_ACCESS (true: containers may
# reach the host).
[ -n "${DEBUG:-}" ] && set -x
set -eu

POOL_NETWORK=${POOL_NETWORK:-10.254.0.0/22}
ALLOW_NETWORKS=${ALLOW_NETWORKS:-}
DENY_NETWORKS=${DENY_NETWORKS:-}
ALLOW_HOST_ACCESS=${ALLOW_HOST_ACCESS:-false}

die() {
  echo "net.sh: $*" >&2
  exit 1
}

ipt() {
  iptables -w "$@"
}

ensure_chain() {
  ipt -t "$1" -N "$2" 2>/dev/null || true
}

# ensure_rule TABLE CHAIN (append|first) RULE...
ensure_rule() {
  _table=$1
  _chain=$2
  _where=$3
  shift 3
  ipt -t "$_table" -C "$_chain" "$@" 2>/dev/null && return 0
  if [ "$_where" = first ]; then
    ipt -t "$_table" -I "$_chain" 1 "$@"
  else
    ipt -t "$_table" -A "$_chain" "$@"
  fi
}

delete_rule() {
  _table=$1
  _chain=$2
  shift 2
  while ipt -t "$_table" -D "$_chain" "$@" 2>/dev/null; do :; done
}

setup() {
  ensure_chain filter warden-input
  ensure_chain filter warden-forward
  ensure_chain filter warden-default

  ensure_rule filter warden-input first -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
  if [ "$ALLOW_HOST_ACCESS" = true ]; then
    delete_rule filter warden-input -j DROP
    ensure_rule filter warden-input append -j ACCEPT
  else
    delete_rule filter warden-input -j ACCEPT
    ensure_rule filter warden-input append -j DROP
  fi

  ensure_rule filter warden-forward first -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
  ensure_rule filter warden-forward append -j DROP

  # The default chain holds no per-container rule, so it is rebuilt whole,
  # in one transaction: running containers never see it empty.
  {
    echo "*filter"
    echo "-F warden-default"
    for n in $ALLOW_NETWORKS; do
      echo "-A warden-default -d $n -j ACCEPT"
    done
    for n in $DENY_NETWORKS; do
      echo "-A warden-default -d $n -j DROP"
    done
    echo "-A warden-default -o w-+ -j DROP"
    echo "-A warden-default -j ACCEPT"
    echo "COMMIT"
  } | iptables-restore -w --noflush

  ensure_rule filter INPUT first -i w-+ -j warden-input
  ensure_rule filter FORWARD first -i w-+ -j warden-forward

  ensure_chain nat warden-prerouting
  ensure_chain nat warden-postrouting
  ensure_rule nat PREROUTING append -j warden-prerouting
  ensure_rule nat OUTPUT append -m addrtype --dst-type LOCAL -j warden-prerouting
  ensure_rule nat POSTROUTING append -j warden-postrouting
  ensure_rule nat warden-postrouting append -s "$POOL_NETWORK" ! -o w-+ -j MASQUERADE

  echo 1 > /proc/sys/net/ipv4/ip_forward
}

teardown() {
  delete_rule filter INPUT -i w-+ -j warden-input
  delete_rule filter FORWARD -i w-+ -j warden-forward
  delete_rule nat PREROUTING -j warden-prerouting
  delete_rule nat OUTPUT -m addrtype --dst-type LOCAL -j warden-prerouting
  delete_rule nat POSTROUTING -j warden-postrouting
  for table in filter nat; do
    chains=$(ipt -t "$table" -S | awk '$1 == "-N" && $2 ~ /^warden-/ { print $2 }')
    for c in $chains; do
      ipt -t "$table" -F "$c"
    done
    for c in $chains; do
      ipt -t "$table" -X "$c"
    done
  done
}

# Host-wide: two setups at once would both find a rule missing and add it twice.
exec 9> /run/warden-net.lock
flock -w 60 9 || die "timed out waiting for /run/warden-net.lock"

case "${1:-}" in
  setup) setup ;;
  teardown) teardown ;;
  *) die "Unknown command: ${1:-}" ;;
esac
