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
#              and, made by the first `in` with it, what lets the host reach
#              a forwarded port on 127.0.0.1 too (see loopback_raw_rule)
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
nat_postrouting_chain=warden-postrouting
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

# net-in on 127.0.0.1. A connection from the host to 127.0.0.1:HOST_PORT
# is DNATed in nat OUTPUT like one to any other local address, but the
# kernel refuses to route a packet with a loopback source out of a
# non-loopback device (a martian) unless route_localnet is set on that
# device: so the first `in` sets it on the host veth, and SNATs what leaves
# there from 127.0.0.0/8 to the host's veth address, so the container
# answers an address it can reach (conntrack maps the answers back).
# route_localnet also stops the kernel from dropping packets *arriving*
# on the veth with loopback addresses: the container could then reach the
# host's 127.0.0.1 services (and forge loopback sources). Two rules keep
# that shut: raw PREROUTING drops everything from the veth addressed to
# 127.0.0.0/8 (before conntrack and routing; answers to the host's
# connections are addressed to the veth address there, and are mapped back
# only later), and the anti-spoofing rule of setup already drops any
# source but the container's. And only locally originated loopback
# traffic is DNATed: the 127.0.0.0/8 rule of `in` matches only packets
# routed out of lo, which in nat means nat OUTPUT (in PREROUTING, where
# packets from outside are seen, there is no output device yet), and the
# rule for the other local addresses leaves 127.0.0.0/8 out, so a packet
# from the network addressed to 127.0.0.1 stays the martian it is.
loopback_raw_rule="$raw_source_chain -i $network_host_iface -d 127.0.0.0/8 -j DROP"
loopback_snat_rule="$nat_postrouting_chain -o $network_host_iface -s 127.0.0.0/8 -j SNAT --to-source $network_host_ip"
route_localnet=/proc/sys/net/ipv4/conf/$network_host_iface/route_localnet

# The rule by rule way, for whatever state a failed command left.
teardown_slowly() {
  delete_rule raw "$raw_source_chain" -i "$network_host_iface" ! -s "$network_container_ip" -j DROP
  # shellcheck disable=SC2086 # the rules are words
  delete_rule raw $loopback_raw_rule
  # shellcheck disable=SC2086
  delete_rule nat $loopback_snat_rule
  delete_rule filter "$filter_forward_chain" -i "$network_host_iface" -g "$instance_chain"
  ipt -t filter -F "$instance_chain" 2>/dev/null || true
  ipt -t filter -X "$instance_chain" 2>/dev/null || true
  delete_rule nat "$nat_prerouting_chain" -j "$instance_chain"
  ipt -t nat -F "$instance_chain" 2>/dev/null || true
  ipt -t nat -X "$instance_chain" 2>/dev/null || true
}

# tmp/net.up names the tables holding the container's chains and rules:
# "raw filter" after setup, "raw filter nat lo" once `in` made the nat chain
# and the loopback rules (made on first use: each table a teardown touches
# is a commit of its own, and a deletion commit costs a kernel grace period,
# about as much as the rest of a teardown), "down" after teardown; "raw
# filter nat" is an older `in`'s (the nat chain, no loopback rules), and an
# empty file an older setup's, which made all three tables. Sets tables.
read_tables() {
  tables=
  if [ -f tmp/net.up ]; then
    read -r tables < tmp/net.up || :
    [ -n "$tables" ] || tables="raw filter nat"
  fi
}

teardown() {
  read_tables
  lo_raw=
  lo_nat=
  case " $tables " in
    *" lo "*)
      lo_raw="-D $loopback_raw_rule"
      lo_nat="-D $loopback_snat_rule"
      ;;
  esac
  case "$tables" in
    "raw filter") nat_rules= ;;
    # nat too: made by `in`, by an older setup, or the state is unknown.
    *) nat_rules="*nat
-D $nat_prerouting_chain -j $instance_chain
-F $instance_chain
-X $instance_chain
$lo_nat
COMMIT" ;;
  esac
  restore 2>/dev/null <<RULES || { take_lock && teardown_slowly; }
*raw
-D $raw_source_chain -i $network_host_iface ! -s $network_container_ip -j DROP
$lo_raw
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
    # The first forward makes the nat chain and its jump, and the loopback
    # rules (see loopback_raw_rule), all in the commit of its DNATs.
    chain_lines=
    case " $tables " in
      *" nat "*) ;;
      *) chain_lines=":$instance_chain - [0:0]
-A $nat_prerouting_chain -j $instance_chain" ;;
    esac
    lo_raw=
    lo_nat=
    case " $tables " in
      *" lo "*) ;;
      *)
        lo_raw="*raw
-A $loopback_raw_rule
COMMIT"
        lo_nat="-A $loopback_snat_rule"
        ;;
    esac
    to=$network_container_ip:$CONTAINER_PORT
    restore <<RULES
$lo_raw
*nat
$chain_lines
$lo_nat
-A $instance_chain -p tcp ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL --dport $HOST_PORT -j DNAT --to-destination $to
-A $instance_chain -p tcp -d 127.0.0.0/8 -o lo --dport $HOST_PORT -j DNAT --to-destination $to
COMMIT
RULES
    # Only now: the raw rule that makes it safe is in force.
    echo 1 > "$route_localnet"
    echo "raw filter nat lo" > tmp/net.up
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
