#!/bin/sh
# net.sh setup|teardown: the host-wide iptables chains every container's
# chains hook into. Containers are denied by default: a container reaches
# ALLOW_NETWORKS and what its own net-out rules allow, nothing else, and what
# it may not reach is refused at once (tcp reset, else icmp port unreachable),
# never silently dropped.
#
#   raw     PREROUTING -i w-+ -> warden-source   one rule per container
#                   (skeleton/net.sh): from w-<id>-0, any source but the
#                   container's address is dropped, before conntrack and
#                   before the routing decision, so for traffic to the host
#                   (INPUT) and through it (FORWARD) alike
#   filter  INPUT   -i w-+ -> warden-input    established traffic, then the
#                   host itself refused (accepted with ALLOW_HOST_ACCESS=true)
#           FORWARD -i w-+ -> warden-forward  established traffic, then one
#                   goto per container (warden-i-<id>, see skeleton/net.sh),
#                   then DROP (a w-+ interface without a container chain)
#           warden-default: where a container's chain ends: ALLOW_NETWORKS
#                   accepted, then everything refused (DENY_NETWORKS are
#                   refused explicitly, in front, for the record)
#   nat     PREROUTING, OUTPUT (local destinations) -> warden-prerouting
#           POSTROUTING -> warden-postrouting: POOL_NETWORK masqueraded when
#                   leaving through anything but a container veth
#
# setup is idempotent and never flushes the chains the containers hook into
# (warden-source, warden-forward, warden-prerouting), so it can be run again
# while containers exist; warden-input and warden-default hold nothing per
# container and are rebuilt whole in one iptables-restore transaction, so
# rules an older setup made there are replaced, never doubled. teardown
# removes everything, containers' chains included.
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

# What a container may not reach gets an answer at once: a reset for tcp, an
# icmp port unreachable for the rest (REJECT answers no broadcast).
reject() {
  echo "-A $1 ${2:+$2 }-p tcp -j REJECT --reject-with tcp-reset"
  echo "-A $1 ${2:+$2 }-j REJECT --reject-with icmp-port-unreachable"
}

setup() {
  ensure_chain raw warden-source
  ensure_chain filter warden-forward

  ensure_rule filter warden-forward first -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
  ensure_rule filter warden-forward append -j DROP

  # warden-input and warden-default hold no per-container rule, so they are
  # rebuilt whole, in one transaction (":chain" creates a chain or empties
  # it): running containers never see them empty, and whatever an earlier
  # setup put there (the DROP that ended warden-input, the ACCEPT that ended
  # warden-default) is gone.
  {
    echo "*filter"
    echo ":warden-input - [0:0]"
    echo ":warden-default - [0:0]"
    echo "-A warden-input -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
    if [ "$ALLOW_HOST_ACCESS" = true ]; then
      echo "-A warden-input -j ACCEPT"
    else
      reject warden-input
    fi
    for n in $ALLOW_NETWORKS; do
      echo "-A warden-default -d $n -j ACCEPT"
    done
    for n in $DENY_NETWORKS; do
      reject warden-default "-d $n"
    done
    reject warden-default
    echo "COMMIT"
  } | iptables-restore -w --noflush

  ensure_rule raw PREROUTING first -i w-+ -j warden-source
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
  delete_rule raw PREROUTING -i w-+ -j warden-source
  delete_rule filter INPUT -i w-+ -j warden-input
  delete_rule filter FORWARD -i w-+ -j warden-forward
  delete_rule nat PREROUTING -j warden-prerouting
  delete_rule nat OUTPUT -m addrtype --dst-type LOCAL -j warden-prerouting
  delete_rule nat POSTROUTING -j warden-postrouting
  for table in raw filter nat; do
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
