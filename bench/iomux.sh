#!/bin/bash
# Throughput and memory of iomux-spawn / iomux-link (release builds).
#
#   bench/iomux.sh [RUNS]      (default 5 runs per case; medians reported)
#
# Cases:
#   pipe      head -c 1G /dev/zero | cat > /dev/null        (the yardstick)
#   one       iomux-spawn DIR head -c 1G /dev/zero, one iomux-link > /dev/null
#   hundred   one 200 MiB job, 100 links at once; aggregate = 100 x 200 MiB / time
#   rss       peak RSS (VmHWM) of iomux-spawn during the hundred-link runs
# Results: a table on stdout and bench/results/iomux.csv (case,run,value,unit:
# one row per run and case). A link that fell behind the window (exit 255) is
# counted in failed_links; on a loaded machine that is the price of never
# slowing the job down.
# Env: BIN_DIR or WARDEN_BIN_DIR (default target/x86_64-unknown-linux-gnu/release),
# BENCH_RESULTS (default bench/results), BENCH_TMPDIR (default /tmp: where
# the work directory goes).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
BIN_DIR=${BIN_DIR:-${WARDEN_BIN_DIR:-target/x86_64-unknown-linux-gnu/release}}
RESULTS=${BENCH_RESULTS:-bench/results}
SPAWN=$BIN_DIR/iomux-spawn
LINK=$BIN_DIR/iomux-link
[[ -x $SPAWN && -x $LINK ]] || { echo "build first: cargo build --release -p iomux-spawn -p iomux-link" >&2; exit 1; }

WORK=$(mktemp -d "${BENCH_TMPDIR:-/tmp}/iomux-bench.XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

GIB=$((1 << 30))
JOB100=$((200 << 20))
now() { date +%s.%N; }
median() { tr ' ' '\n' | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
gbps() { awk -v b="$1" -v t="$2" 'BEGIN {printf "%.2f", b / t / 1e9}'; }
sockets_of() { find "/proc/$1/fd" -lname 'socket:*' 2>/dev/null | wc -l; }

# Start iomux-spawn on JOB (a shell script); sets SPAWN_PID once child_pid= is out.
start_spawn() {
  local dir=$1 script=$2
  mkdir -p "$dir"
  mkfifo "$dir.fifo"
  "$SPAWN" "$dir" sh -c "$script" > "$dir.fifo" &
  SPAWN_PID=$!
  PIDS+=("$SPAWN_PID")
  exec 9< "$dir.fifo"
  local line
  read -r line <&9
  [[ $line == child_pid=* ]] || { echo "unexpected: $line" >&2; exit 1; }
  # keep draining its stdout so "child active" never blocks it
  cat <&9 > /dev/null &
  exec 9<&-
}

run_pipe() {
  local t0 t1
  t0=$(now)
  head -c 1G /dev/zero | cat > /dev/null
  t1=$(now)
  awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}'
}

run_one() {
  local dir=$WORK/one.$1 t0 t1
  start_spawn "$dir" "head -c 1G /dev/zero"
  t0=$(now)
  local rc=0
  "$LINK" "$dir" > /dev/null || rc=$?
  t1=$(now)
  wait "$SPAWN_PID"
  awk -v a="$t0" -v b="$t1" -v rc="$rc" 'BEGIN {print b - a, rc}'
}

# Prints "seconds peak_rss_kib".
run_hundred() {
  local dir=$WORK/hundred.$1 go=$WORK/go.$1 links=() t0 t1 i p n peak=0 hwm
  start_spawn "$dir" "while [ ! -e $go ]; do sleep 0.01; done; head -c $JOB100 /dev/zero"
  for i in $(seq 1 100); do
    "$LINK" "$dir" > /dev/null &
    links+=($!)
    PIDS+=($!)
  done
  for p in "${links[@]}"; do
    n=0
    until [[ $(sockets_of "$p") -ge 3 ]]; do sleep 0.01; n=$((n + 1)); [[ $n -lt 3000 ]] || exit 1; done
  done
  t0=$(now)
  touch "$go"
  # VmHWM only grows, so the last sample before exit is the peak.
  while kill -0 "$SPAWN_PID" 2>/dev/null; do
    hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$SPAWN_PID/status" 2>/dev/null || true)
    [[ -n $hwm && $hwm -gt $peak ]] && peak=$hwm
    sleep 0.02
  done
  local failed=0
  for p in "${links[@]}"; do wait "$p" || failed=$((failed + 1)); done
  t1=$(now)
  wait "$SPAWN_PID" || true
  awk -v a="$t0" -v b="$t1" -v r="$peak" -v f="$failed" 'BEGIN {print b - a, r, f}'
}

pipe_t=() one_t=() hun_t=() rss=() hun_f=() one_rc=() one_failed=0 hun_failed=0
for r in $(seq 1 "$RUNS"); do
  pipe_t+=("$(run_pipe)")
  read -r t rc < <(run_one "$r")
  one_t+=("$t")
  one_rc+=("$rc")
  [[ $rc == 0 ]] || one_failed=$((one_failed + 1))
  read -r t k f < <(run_hundred "$r")
  hun_t+=("$t")
  rss+=("$k")
  hun_f+=("$f")
  hun_failed=$((hun_failed + f))
  echo "run $r: pipe ${pipe_t[-1]}s one ${one_t[-1]}s (rc $rc) hundred ${t}s ($f links failed) rss ${k}KiB load $(cut -d' ' -f1 /proc/loadavg)" >&2
done

mp=$(echo "${pipe_t[@]}" | median)
mo=$(echo "${one_t[@]}" | median)
mh=$(echo "${hun_t[@]}" | median)
mr=$(echo "${rss[@]}" | median)
maxr=$(echo "${rss[@]}" | tr ' ' '\n' | sort -g | tail -1)
pipe_gbs=$(gbps $GIB "$mp")
one_gbs=$(gbps $GIB "$mo")
hun_gbs=$(gbps $((100 * JOB100)) "$mh")

mkdir -p "$RESULTS"
{
  echo "case,run,value,unit"
  for i in "${!pipe_t[@]}"; do
    r=$((i + 1))
    echo "output_plain_pipe_1GiB,$r,$(gbps $GIB "${pipe_t[$i]}"),GB/s"
    echo "output_iomux_1_link_1GiB,$r,$(gbps $GIB "${one_t[$i]}"),GB/s"
    echo "output_iomux_100_links_aggregate,$r,$(gbps $((100 * JOB100)) "${hun_t[$i]}"),GB/s"
    echo "rss_iomux_spawn_100_links,$r,${rss[$i]},KiB"
    echo "failed_links_of_1,$r,$([[ ${one_rc[$i]} == 0 ]] && echo 0 || echo 1),links"
    echo "failed_links_of_100,$r,${hun_f[$i]},links"
  done
} > "$RESULTS/iomux.csv"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
{
  echo "case,median_seconds,gb_per_s,ratio_to_pipe"
  echo "pipe_1GiB,$mp,$pipe_gbs,1.00"
  echo "one_link_1GiB,$mo,$one_gbs,$(ratio "$one_gbs" "$pipe_gbs")"
  echo "hundred_links_200MiB_aggregate,$mh,$hun_gbs,$(ratio "$hun_gbs" "$pipe_gbs")"
  echo "spawn_peak_rss_kib_hundred_links,$mr (max $maxr),,"
  echo "failed_links,one: $one_failed of $RUNS; hundred: $hun_failed of $((100 * RUNS)),,"
} | column -t -s,
echo "per-run data: $RESULTS/iomux.csv"
