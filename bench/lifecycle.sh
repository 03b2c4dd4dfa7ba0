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
cleanup() {
  for h in $("$W" list 2>/dev/null); do "$W" destroy "$h" || true; done
  runc delete -f "lifecycle-bench-$$" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

now_ns() { date +%s%N; }
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
{
  echo "case,run,value,unit"
  for i in "${!starts[@]}"; do
    echo "warden_start,$((i + 1)),${starts[$i]},ms"
    echo "warden_start_unconfined,$((i + 1)),${opens[$i]},ms"
    echo "warden_destroy,$((i + 1)),${destroys[$i]},ms"
    echo "warden_cycle,$((i + 1)),${cycles[$i]},ms"
    echo "runc_run,$((i + 1)),${runcs[$i]},ms"
  done
} > "$RESULTS/lifecycle.csv"
echo "targets (x runc): start <= 1.0, destroy <= 0.5, cycle <= 1.5; per-run data in $RESULTS/lifecycle.csv"
profile
