#!/bin/bash
# Container lifecycle latency: wardenctl vs runc, on the same busybox rootfs.
#
#   bench/lifecycle.sh [RUNS]      (default 20; medians reported)
#   bench/lifecycle.sh --profile   only the profile below
#
# Cases (each run a fresh container):
#   warden_start    wardenctl create (copy skeleton, overlay, cgroups, veth
#                   pair with addresses, iptables chains, wshd) + the first
#                   `wardenctl run H -- /bin/true` (iomux-spawn asking wshd,
#                   recorded by wardenctl itself)
#   warden_start_unconfined  the same with --allow-nested-warden (no
#                   capability cut, seccomp filter or /proc masks): what
#                   confinement costs a create
#   warden_destroy  wardenctl destroy
#   warden_cycle    the two above together (create, first run, destroy)
#   runc_run        runc run of /bin/true (new namespaces incl. network, no
#                   interfaces configured; cgroups), which also tears down
#   floor_*         what the kernel and the machine cost at least (below)
# Then the profile of one create, first run and destroy (WARDEN_PROFILE,
# orchestrator/src/profile.rs; bench/profile.py prints it): the wall time
# of every step of wardenctl, each script, each hook, wshd's own phases and
# each cgroup and network operation, nested as they run; raw events in
# bench/results/lifecycle-profile.txt, one row per step in
# lifecycle-profile.csv.
# Targets (issue 14), as ratios to runc_run in the same run: warden_start
# <= 1.0, warden_destroy <= 0.5, warden_cycle <= 1.5. Results: a table on stdout and
# bench/results/lifecycle.csv (case,run,value,unit: one row per run and case).
# SETTLE (default 0.25 s): the pause before each case.
# Env: BIN_DIR or WARDEN_BIN_DIR (default target/x86_64-unknown-linux-gnu/release),
# ROOTFS or WARDEN_TEST_ROOTFS (default target/rootfs/busybox), BENCH_RESULTS
# (default bench/results), BENCH_TMPDIR (default /tmp: where the work
# directory and its depot go). Needs root, `wardenctl setup` done (it is
# run here), runc (apt-get install runc).
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE_ONLY=false
if [[ ${1:-} == --profile ]]; then
  PROFILE_ONLY=true
  shift
fi
RUNS=${1:-20}
BIN_DIR=$(cd "${BIN_DIR:-${WARDEN_BIN_DIR:-target/x86_64-unknown-linux-gnu/release}}" && pwd)
ROOTFS=$(cd "${ROOTFS:-${WARDEN_TEST_ROOTFS:-target/rootfs/busybox}}" && pwd -P)
RESULTS=${BENCH_RESULTS:-bench/results}
W=$BIN_DIR/wardenctl
[[ -x $W ]] || { echo "build first: make build" >&2; exit 1; }
$PROFILE_ONLY || command -v runc >/dev/null || { echo "runc is missing: apt-get install runc" >&2; exit 1; }
[[ $(id -u) == 0 ]] || { echo "must run as root" >&2; exit 1; }

WORK=$(mktemp -d "${BENCH_TMPDIR:-/tmp}/lifecycle-bench.XXXXXX")
export WARDEN_DEPOT=$WORK/depot WARDEN_BIN_DIR=$BIN_DIR
POOL=${POOL:-10.254.240.0/24}
# The floors' scratch objects (see floors below): a network namespace, a
# device group and an iptables chain of this run's own.
FLOOR_NETNS=lcbench-$$
FLOOR_GROUP=$((2000000000 + $$ % 100000000))
FLOOR_CHAIN=lcbench-$$
cleanup() {
  for h in $("$W" list 2>/dev/null); do "$W" destroy "$h" || true; done
  runc delete -f "lifecycle-bench-$$" >/dev/null 2>&1 || true
  ip link del "lcb$$-0" 2>/dev/null || true
  ip link del "lcb$$-2" 2>/dev/null || true
  ip netns del "$FLOOR_NETNS" 2>/dev/null || true
  iptables -w -t raw -F "$FLOOR_CHAIN" 2>/dev/null || true
  iptables -w -t raw -X "$FLOOR_CHAIN" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

now_ns() { date +%s%N; }
# bash's clock, in microseconds: no process between two readings.
now_us() { local t=${EPOCHREALTIME//[!0-9]/}; echo "${t#0}"; }
us_ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b - a) / 1e3 }'; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) / 1e6 }'; }
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

"$W" setup
mkdir -p "$RESULTS"

# One create, first run and destroy with every step timed. The roots are
# stamped here, around wardenctl, so that its own start-up counts too.
profile() {
  local prof=$RESULTS/lifecycle-profile.txt h=profiled
  : >"$prof"
  # bash's clock (microseconds): no process between the stamp and wardenctl.
  root() {
    local t=${EPOCHREALTIME//[!0-9]/}
    echo "${t}000 $1 /$2" >>"$prof"
  }
  root B create
  WARDEN_PROFILE=$prof WARDEN_PROFILE_SCOPE=/create \
    "$W" create --handle "$h" --rootfs "$ROOTFS" --pool-network "$POOL" >/dev/null
  root E create
  root B run
  WARDEN_PROFILE=$prof WARDEN_PROFILE_SCOPE=/run "$W" run "$h" -- /bin/true
  root E run
  root B destroy
  WARDEN_PROFILE=$prof WARDEN_PROFILE_SCOPE=/destroy "$W" destroy "$h"
  root E destroy
  echo "== profile of one create, first run and destroy (ms; share of its root)"
  /usr/bin/python3 bench/profile.py "$prof" --csv "$RESULTS/lifecycle-profile.csv"
}
if $PROFILE_ONLY; then
  profile
  exit 0
fi

# The kernel's and the machine's floors under a create and a destroy,
# measured in the same run (bash's clock, so no process is timed but the
# one measured):
#   floor_devices  one `ip link del group` of a veth pair (its peer in a
#                  scratch network namespace of this run's) and an ifb:
#                  what destroy.sh's device deletion waits for at least
#   floor_chain    one iptables-restore deleting a rule and its chain (raw,
#                  a scratch chain of this run's): what net.sh teardown
#                  waits for at least (in parallel with the devices)
#   floor_process  the start of one static glibc process that exits at
#                  once (the rootfs's busybox `true`): what each of the
#                  processes a create starts costs at least
# No traffic: nothing is addressed, the chain is referenced by no rule.
ip netns add "$FLOOR_NETNS"
floor_devices=() floor_chains=() floor_processes=()
floors() {
  local t0 t1 i best
  # A container's group is its host address with the top bit cleared, so
  # this number could be one's (a pool in 119.x-125.x): the group must be
  # empty before it is made, as the deletion timed below takes all of it.
  [ -z "$(ip -o link show group "$FLOOR_GROUP")" ] ||
    { echo "bench/lifecycle.sh: device group $FLOOR_GROUP is in use" >&2; exit 1; }
  ip -batch - <<IP
link add name lcb$$-0 group $FLOOR_GROUP type veth peer name lcb$$-1 netns $FLOOR_NETNS
link set lcb$$-0 up
link add name lcb$$-2 group $FLOOR_GROUP type ifb
link set lcb$$-2 up
IP
  iptables -w -t raw -N "$FLOOR_CHAIN"
  iptables -w -t raw -A "$FLOOR_CHAIN" -s 192.0.2.255/32 -j DROP
  sleep "$SETTLE"
  t0=$(now_us)
  ip link del group "$FLOOR_GROUP"
  t1=$(now_us)
  floor_devices+=("$(us_ms "$t0" "$t1")")
  sleep "$SETTLE"
  t0=$(now_us)
  printf '*raw\n-D %s -s 192.0.2.255/32 -j DROP\n-X %s\nCOMMIT\n' "$FLOOR_CHAIN" "$FLOOR_CHAIN" |
    iptables-restore -w --noflush
  t1=$(now_us)
  floor_chains+=("$(us_ms "$t0" "$t1")")
  # The fastest of 5: a start, not a start plus whatever else ran then.
  best=
  for i in 1 2 3 4 5; do
    t0=$(now_us)
    "$ROOTFS/bin/busybox" true
    t1=$(now_us)
    best=$(awk -v b="$best" -v d="$(us_ms "$t0" "$t1")" 'BEGIN { print (b == "" || d < b) ? d : b }')
  done
  floor_processes+=("$best")
}

# runc bundle: the same rootfs, read-only, /bin/true, no terminal.
mkdir -p "$WORK/bundle"
(cd "$WORK/bundle" && runc spec)
sed -i -e 's/"terminal": true/"terminal": false/' -e 's/"sh"$/"\/bin\/true"/' \
  -e "s|\"path\": \"rootfs\"|\"path\": \"$ROOTFS\"|" "$WORK/bundle/config.json"

# Each case starts on a settled kernel: what a destroy leaves to the kernel
# (a network namespace's cleanup, RCU callbacks) runs after it returns and
# slowed whichever case came next by up to 2x (runc, measured right after a
# destroy, took 98 ms where it takes 40 alone).
SETTLE=${SETTLE:-0.25}
starts=() opens=() destroys=() runcs=()
for i in $(seq "$RUNS"); do
  h=bench$i
  sleep "$SETTLE"
  t0=$(now_ns)
  "$W" create --handle "$h" --rootfs "$ROOTFS" --pool-network "$POOL" >/dev/null
  "$W" run "$h" -- /bin/true
  t1=$(now_ns)
  "$W" destroy "$h"
  t2=$(now_ns)
  sleep "$SETTLE"
  starts+=("$(ms "$t0" "$t1")")
  destroys+=("$(ms "$t1" "$t2")")

  t0=$(now_ns)
  "$W" create --handle "$h" --allow-nested-warden --rootfs "$ROOTFS" --pool-network "$POOL" >/dev/null
  "$W" run "$h" -- /bin/true
  t1=$(now_ns)
  "$W" destroy "$h"
  opens+=("$(ms "$t0" "$t1")")

  sleep "$SETTLE"
  t0=$(now_ns)
  runc run --bundle "$WORK/bundle" "lifecycle-bench-$$" </dev/null
  t1=$(now_ns)
  runcs+=("$(ms "$t0" "$t1")")

  floors
done

m_start=$(echo "${starts[*]}" | median)
m_open=$(echo "${opens[*]}" | median)
m_destroy=$(echo "${destroys[*]}" | median)
m_runc=$(echo "${runcs[*]}" | median)
cycles=()
for i in "${!starts[@]}"; do
  cycles+=("$(awk -v a="${starts[$i]}" -v b="${destroys[$i]}" 'BEGIN { printf "%.1f", a + b }')")
done
m_cycle=$(echo "${cycles[*]}" | median)
ratio() { awk -v a="$1" -v b="$m_runc" 'BEGIN { printf "%.2f", a / b }'; }
printf '%-16s %10s %9s\n' case median_ms x_runc
printf '%-16s %10s %9s\n' warden_start "$m_start" "$(ratio "$m_start")" \
  warden_destroy "$m_destroy" "$(ratio "$m_destroy")" warden_cycle "$m_cycle" "$(ratio "$m_cycle")" \
  runc_run "$m_runc" 1.00
printf '%-16s %10s  (confined/unconfined %s)\n' start_unconfined "$m_open" \
  "$(awk -v a="$m_start" -v b="$m_open" 'BEGIN { printf "%.2f", a / b }')"
m_fdev=$(echo "${floor_devices[*]}" | median)
m_fchain=$(echo "${floor_chains[*]}" | median)
m_fproc=$(echo "${floor_processes[*]}" | median)
printf '%-16s %10s %9s\n' floor_devices "$m_fdev" "$(ratio "$m_fdev")" \
  floor_chain "$m_fchain" "$(ratio "$m_fchain")" floor_process "$m_fproc" "$(ratio "$m_fproc")"
echo "destroy's target (0.5 x runc) is $(awk -v r="$m_runc" 'BEGIN { printf "%.1f", r / 2 }') ms;" \
  "its device deletion and chain deletion alone wait $m_fdev and $m_fchain ms (in parallel)"
{
  echo "case,run,value,unit"
  for i in "${!starts[@]}"; do
    echo "warden_start,$((i + 1)),${starts[$i]},ms"
    echo "warden_start_unconfined,$((i + 1)),${opens[$i]},ms"
    echo "warden_destroy,$((i + 1)),${destroys[$i]},ms"
    echo "warden_cycle,$((i + 1)),${cycles[$i]},ms"
    echo "runc_run,$((i + 1)),${runcs[$i]},ms"
    echo "floor_devices,$((i + 1)),${floor_devices[$i]},ms"
    echo "floor_chain,$((i + 1)),${floor_chains[$i]},ms"
    echo "floor_process,$((i + 1)),${floor_processes[$i]},ms"
  done
} > "$RESULTS/lifecycle.csv"
echo "targets (x runc): start <= 1.0, destroy <= 0.5, cycle <= 1.5; per-run data in $RESULTS/lifecycle.csv"
profile
