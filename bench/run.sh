#!/bin/bash
# Every benchmark in one run (`make bench`), on the busybox rootfs, as root:
#   bench/wsh.sh        exec round trip: wsh vs nsenter vs runc exec vs bare
#                       fork/exec; output through wsh vs a plain pipe; wshd RSS
#   bench/iomux.sh      output through iomux, 1 link and 100 links, vs a pipe;
#                       iomux-spawn's peak RSS with 100 links
#   bench/lifecycle.sh  create + start + first run vs runc run; destroy; the
#                       profile of one create and destroy (every step's wall time)
#   bench/scaling.sh    create latency as live containers grow (when present)
#   bench/wardend.sh    the protocol server: ping requests/s (1, 64 clients);
#                       run /bin/true through wardend vs wardenctl run vs wsh;
#                       wardend's RSS idle, with containers, with open streams
# then bench/summarize.py: a table of medians and ratios on stdout, and under
# bench/results/: summary.csv, README-table.md (with the machine and its load
# average at start, end, and sampled during the run: load.csv), the per-bench
# CSVs, PNG plots, and each bench's own output (<bench>.txt) and stderr
# (<bench>.log).
#
# Builds what it needs (release binaries, target/rootfs/busybox) and installs
# missing peers from Debian (runc, hyperfine, python3-matplotlib).
# Env: BENCH_QUICK=1 for a short run (fewer rounds, scaling to 20, wardend
# with 20 containers; about 40 s on 2 cores) instead of the full one (about 4
# minutes); BENCH_RESULTS (default bench/results).
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) == 0 ]] || { echo "bench/run.sh: must run as root" >&2; exit 1; }

if [[ ${BENCH_QUICK:-0} == 1 ]]; then
  mode=quick rounds=50 wsh_mib=500 tp_runs=3 iomux_runs=1 life_runs=5 scale=20
  wd_rounds=20 wd_ping_rounds=3 wd_ping_seconds=0.5 wd_containers=20
else
  mode=full rounds=300 wsh_mib=2000 tp_runs=5 iomux_runs=5 life_runs=20 scale=250
  wd_rounds=200 wd_ping_rounds=10 wd_ping_seconds=1 wd_containers=100
fi
export BENCH_RESULTS=${BENCH_RESULTS:-bench/results}
export WARDEN_BIN_DIR=$PWD/target/x86_64-unknown-linux-gnu/release
export WARDEN_TEST_ROOTFS=$PWD/target/rootfs/busybox
results=$BENCH_RESULTS

# Peers and tools.
scripts/install-deps.sh
missing=()
command -v runc >/dev/null || missing+=(runc)
command -v hyperfine >/dev/null || missing+=(hyperfine)
/usr/bin/python3 -c 'import matplotlib' 2>/dev/null || missing+=(python3-matplotlib)
if [[ ${#missing[@]} -gt 0 ]]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
fi

# What `make build rootfs` makes.
${CARGO:-cargo} build --release --workspace
[[ -x $WARDEN_TEST_ROOTFS/bin/busybox ]] ||
  setup-scripts/rootfs/busybox.sh --with rsync "$WARDEN_TEST_ROOTFS"

mkdir -p "$results"
for f in summary.csv README-table.md machine.env load.csv wsh.csv wsh-hyperfine.json iomux.csv \
  lifecycle.csv scaling.csv exec-latency.png throughput.png lifecycle.png scaling.png \
  lifecycle-profile.csv lifecycle-profile.txt \
  wsh.txt wsh.log iomux.txt iomux.log lifecycle.txt lifecycle.log scaling.txt scaling.log \
  wardend.csv wardend.txt wardend.log; do
  rm -f "${results:?}/$f"
done
{
  echo "mode=$mode"
  echo "nproc=$(nproc)"
  echo "cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
  echo "kernel=$(uname -r)"
  echo "date=$(date -u '+%F %T UTC')"
  echo "commit=$(git rev-parse --short HEAD 2>/dev/null || echo none)$(git diff --quiet HEAD 2>/dev/null || echo ' (with local changes)')"
  echo "load_start=$(cut -d' ' -f1-3 /proc/loadavg)"
} >"$results/machine.env"
echo "== $mode run; load average $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cpus"
# The 1-minute load every 5 s, to tell a slow result from a busy machine.
(
  echo "epoch,load1"
  while :; do
    echo "$(date +%s),$(cut -d' ' -f1 /proc/loadavg)"
    sleep 5
  done
) >"$results/load.csv" &
sampler=$!
trap 'kill "$sampler" 2>/dev/null || true' EXIT

failed=()
bench() { # name command...
  local name=$1
  shift
  echo "== $name: $*"
  if "$@" 2>"$results/$name.log" | tee "$results/$name.txt"; then
    :
  else
    echo "== $name FAILED (stderr in $results/$name.log):" >&2
    tail -5 "$results/$name.log" >&2
    failed+=("$name")
  fi
}
bench wsh env WSH_MIB="$wsh_mib" WSH_TP_RUNS="$tp_runs" bench/wsh.sh "$rounds"
bench iomux bench/iomux.sh "$iomux_runs"
bench lifecycle bench/lifecycle.sh "$life_runs"
if [[ -x bench/scaling.sh ]]; then
  bench scaling bench/scaling.sh "$scale"
  # in case it writes to bench/results whatever BENCH_RESULTS says
  [[ -f $results/scaling.csv || ! -f bench/results/scaling.csv ]] ||
    cp bench/results/scaling.csv "$results/scaling.csv"
else
  echo "== scaling: bench/scaling.sh is not there yet; skipped"
fi
bench wardend env WARDEND_PING_ROUNDS="$wd_ping_rounds" WARDEND_PING_SECONDS="$wd_ping_seconds" \
  WARDEND_CONTAINERS="$wd_containers" bench/wardend.sh "$wd_rounds"

kill "$sampler" 2>/dev/null || true
echo "load_end=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$results/machine.env"
echo "== summary (also $results/summary.csv, $results/README-table.md)"
/usr/bin/python3 bench/summarize.py "$results"
cat "$results/machine.env"
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "bench/run.sh: failed: ${failed[*]}" >&2
  exit 1
fi
