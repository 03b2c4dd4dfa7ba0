#!/bin/sh
# net.sh setup|teardown|in|out|get_ingress_info|get_egress_info
#
#   setup      per-container chains warden-i-<id> (filter and nat), hooked
#              into the global chains that root/net.sh setup created, and
#              the container's anti-spoofing rule (raw warden-source: from
#              w-<id>-0 only network_container_ip gets in). One
#              iptables-restore:
#                raw    warden-source  -i w-<id>-0 ! -s IP -j DROP
#                filter warden-forward -i w-<id>-0 -g warden-i-<id>
#                       warden-i-<id>  [net-out rules] -g warden-default
#                nat    warden-prerouting -j warden-i-<id>  [net-in DNATs]
#                       (made by the first `in`: a table less to tear down)
#              warden-default accepts ALLOW_NETWORKS and refuses the rest
#              (tcp reset, icmp port unreachable): nothing but what net-out
#              names is reachable, other containers and the host included
#   teardown   removes them (idempotent)
#   in         HOST_PORT, CONTAINER_PORT: forward a host tcp port
#   out        allow egress beyond the default: NETWORK (CIDR or a-b range),
#              PORTS (N, N:M or a list; PORT and PORT_RANGE are read too),
#              PROTOCOL (tcp, udp, icmp, all; default tcp with ports, else
#              all), ICMP_TYPE, ICMP_CODE, LOG (true: log new connections)
#   get_ingress_info  tc state of the traffic out of the container: the
#                     ifb's qdisc (the rate net_rate.sh set), the veth's
#                     ingress filters
#   get_egress_info   tc state of the traffic into it: the veth's qdiscs
[ -n "${DEBUG:-}" ] && set -x
set -eu

case "$0" in */*) cd "${0%/*}" ;; esac
. ./lib/common.sh

[ -n "${id:-}" ] || die "etc/config holds no id"

raw_source_chain=warden-source
filter_forward_chain=warden-forward
filter_default_chain=warden-default
nat_prerouting_chain=warden-prerouting
instance_chain=warden-i-$id

ipt() {
  iptables -w "$@"
}


# iptables wants -D in front of the chain: delete_rule TABLE CHAIN RULE...
delete_rule() {
  _table=$1
  _chain=$2
  shift 2
  while ipt -t "$_table" -D "$_chain" "$@" 2>/dev/null; do :; done
}

# Both tables in one iptables-restore transaction: all or nothing, and one
# process instead of a dozen. $lock, when set, is the lock file: flock takes
# it and runs iptables-restore in one process (setup and teardown's common
# case, the only command they need).
lock=
restore() {
  if [ -n "$lock" ]; then
    flock -w 30 "$lock" iptables-restore -w --noflush
  else
    iptables-restore -w --noflush
  fi
}

# The rule by rule way, for whatever state a failed command left.
teardown_slowly() {
  delete_rule raw "$raw_source_chain" -i "$network_host_iface" ! -s "$network_container_ip" -j DROP
  delete_rule filter "$filter_forward_chain" -i "$network_host_iface" -g "$instance_chain"
  ipt -t filter -F "$instance_chain" 2>/dev/null || true
  ipt -t filter -X "$instance_chain" 2>/dev/null || true
  delete_rule nat "$nat_prerouting_chain" -j "$instance_chain"
  ipt -t nat -F "$instance_chain" 2>/dev/null || true
  ipt -t nat -X "$instance_chain" 2>/dev/null || true
}

# tmp/net.up names the tables holding the container's chains and rules:
# "raw filter" after setup, "raw filter nat" once `in` made the nat chain
# (made on first use: each table a teardown touches is a commit of its own,
# and a deletion commit costs a kernel grace period, about as much as the
# rest of a teardown), "down" after teardown; an empty file is an older
# setup's, which made all three. Sets tables.
read_tables() {
  tables=
  if [ -f tmp/net.up ]; then
    read -r tables < tmp/net.up || :
    [ -n "$tables" ] || tables="raw filter nat"
  fi
}

teardown() {
  read_tables
  case "$tables" in
    "raw filter") nat_rules= ;;
    # nat too: made by `in`, by an older setup, or the state is unknown.
    *) nat_rules="*nat
-D $nat_prerouting_chain -j $instance_chain
-F $instance_chain
-X $instance_chain
COMMIT" ;;
  esac
  restore 2>/dev/null <<RULES || { take_lock && teardown_slowly; }
*raw
-D $raw_source_chain -i $network_host_iface ! -s $network_container_ip -j DROP
COMMIT
*filter
-D $filter_forward_chain -i $network_host_iface -g $instance_chain
-F $instance_chain
-X $instance_chain
COMMIT
$nat_rules
RULES
}

setup_rules() {
  # Anti-spoofing in raw PREROUTING: it sees every packet from the veth
  # before conntrack (a forged packet never matches an established flow, nor
  # makes one) and before routing, so it covers traffic to the host (INPUT)
  # and through it (FORWARD) with one rule.
  # Position 2 in the forward chain: after the rule accepting established
  # traffic, before the final DROP.
  restore <<RULES
*raw
-A $raw_source_chain -i $network_host_iface ! -s $network_container_ip -j DROP
COMMIT
*filter
:$instance_chain - [0:0]
-A $instance_chain -g $filter_default_chain
-I $filter_forward_chain 2 -i $network_host_iface -g $instance_chain
COMMIT
RULES
}

# tmp/net.up (not empty) marks chains set up and not torn down since;
# without it, the chains are normally absent and one iptables-restore
# suffices.
setup() {
  # Chains of an earlier setup are removed first, so the jumps to them are
  # never doubled.
  read_tables
  if [ -n "$tables" ] && [ "$tables" != down ]; then
    take_lock
    teardown
  fi
  if ! setup_rules 2>/dev/null; then
    take_lock
    ipt -t filter -n -L "$filter_forward_chain" >/dev/null 2>&1 ||
      die "chain $filter_forward_chain is missing: run root/setup.sh (wardenctl setup) first"
    ipt -t raw -n -L "$raw_source_chain" >/dev/null 2>&1 ||
      die "chain $raw_source_chain (raw) is missing: run root/setup.sh (wardenctl setup) again"
    teardown_slowly
    setup_rules
  fi
  echo "raw filter" > tmp/net.up
}

# Serialise the commands of one container (a server may call several at once)
# on tmp/net.sh.lock: held from here to the end, except by setup and
# teardown, whose common case is one iptables-restore that flock runs
# holding the lock (one process less); they take it for good (take_lock)
# before anything else.
[ -d tmp ] || mkdir -p tmp
locked=false
take_lock() {
  "$locked" && return 0
  exec 9> tmp/net.sh.lock
  flock -w 30 9 || die "timed out waiting for tmp/net.sh.lock"
  locked=true
  lock=
}
case "${1:-}" in
  setup|teardown) lock=tmp/net.sh.lock ;;
  *) take_lock ;;
esac

prof "${1:-}"
case "${1:-}" in
  setup)
    setup
    ;;
  teardown)
    teardown
    # Rewritten rather than removed: a builtin, where rm is a process.
    echo down > tmp/net.up
    ;;
  in)
    [ -n "${HOST_PORT:-}" ] || die "Please specify HOST_PORT..."
    [ -n "${CONTAINER_PORT:-}" ] || die "Please specify CONTAINER_PORT..."
    # They go into iptables-restore's input below: numbers only.
    case "$HOST_PORT$CONTAINER_PORT" in *[!0-9]*) die "ports must be numbers: $HOST_PORT, $CONTAINER_PORT" ;; esac
    read_tables
    case " $tables " in
      *" nat "*)
        ipt -t nat -A "$instance_chain" -p tcp -m addrtype --dst-type LOCAL \
          --dport "$HOST_PORT" -j DNAT --to-destination "$network_container_ip:$CONTAINER_PORT"
        ;;
      *)
        # The first forward makes the nat chain and its jump, in one commit.
        restore <<RULES
*nat
:$instance_chain - [0:0]
-A $nat_prerouting_chain -j $instance_chain
-A $instance_chain -p tcp -m addrtype --dst-type LOCAL --dport $HOST_PORT -j DNAT --to-destination $network_container_ip:$CONTAINER_PORT
COMMIT
RULES
        echo "raw filter nat" > tmp/net.up
        ;;
    esac
    ;;
  out)
    # Older servers pass PORT (or PORT_RANGE, "A:B") rather than PORTS.
    PORTS=${PORTS:-${PORT_RANGE:-${PORT:-}}}
    [ -n "${NETWORK:-}" ] || [ -n "${PORTS:-}" ] || [ -n "${PROTOCOL:-}" ] ||
      die "Please specify NETWORK, PORTS and/or PROTOCOL..."
    # As the reference: tcp unless told otherwise, when ports are given.
    if [ -n "${PORTS:-}" ]; then
      protocol=${PROTOCOL:-tcp}
    else
      protocol=${PROTOCOL:-all}
    fi
    set --
    case "${NETWORK:-}" in
      "") ;;
      *-*) set -- "$@" -m iprange --dst-range "$NETWORK" ;;
      *) set -- "$@" -d "$NETWORK" ;;
    esac
    case "$protocol" in
      tcp|udp)
        set -- "$@" -p "$protocol"
        [ -z "${PORTS:-}" ] || set -- "$@" -m multiport --dports "$PORTS"
        ;;
      icmp)
        set -- "$@" -p icmp
        if [ -n "${ICMP_TYPE:-}" ]; then
          set -- "$@" --icmp-type "$ICMP_TYPE${ICMP_CODE:+/$ICMP_CODE}"
        fi
        ;;
      all)
        [ -z "${PORTS:-}" ] || die "PORTS needs PROTOCOL tcp or udp"
        ;;
      *) die "unknown PROTOCOL: $protocol" ;;
    esac
    ipt -t filter -I "$instance_chain" 1 "$@" -j ACCEPT
    if [ "${LOG:-false}" = true ]; then
      ipt -t filter -I "$instance_chain" 1 "$@" -m conntrack --ctstate NEW \
        -j LOG --log-prefix "warden-i-$id "
    fi
    ;;
  # A server passes ID (its handle, which need not be the id): the device
  # comes from etc/config instead.
  # As the reference, named after the host veth's directions:
  # get_ingress_info is the traffic out of the container (the veth's
  # ingress): the tbf on the ifb it is redirected to (net_rate.sh), then the
  # veth's ingress filters (where a kernel without ifb polices);
  # get_egress_info the traffic into it: the veth's own qdiscs.
  get_ingress_info)
    if [ -e "/sys/class/net/$network_ifb_iface" ]; then
      tc qdisc show dev "$network_ifb_iface"
    fi
    tc filter show dev "$network_host_iface" parent ffff:
    ;;
  get_egress_info)
    tc qdisc show dev "$network_host_iface"
    ;;
  *)
    die "Unknown command: ${1:-}"
    ;;
esac
