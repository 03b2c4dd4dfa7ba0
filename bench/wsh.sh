#!/bin/bash
# Exec round trip and output throughput of wsh, against peers measured in the
# same run, all on the same busybox rootfs:
#   exec   wsh /bin/true | nsenter into the same container | runc exec into
#          a runc container on the same rootfs | bare fork/exec of /bin/true
#   confinement  wsh /bin/true into the confined container and into an
#          unconfined one (--allow-nested-warden: no capability cut, no
#          seccomp filter), in alternating batches so that a drift of the
#          machine's speed falls on both alike
#   output dd of N MiB through wsh into a pipe | the same dd into a plain pipe
#   rss    wshd's RSS with the container idle
# wsh can beat the plain pipe: it widens the process's stdout pipe to 1 MiB,
# so dd's 1 MiB writes take fewer wake-ups than in a default 64 KiB pipe.
#
#   bench/wsh.sh [ROUNDS]      (root; default 300 hyperfine runs per command)
#
# Results: a table on stdout; bench/results/wsh.csv (case,run,value,unit: one
# row per measured run) and bench/results/wsh-hyperfine.json (hyperfine's
# export, with every run's time). Builds nothing: `make build rootfs` first.
# Env: WARDEN_BIN_DIR, WARDEN_TEST_ROOTFS, BENCH_RESULTS (default
# bench/results), WSH_MIB (default 2000), WSH_TP_RUNS (default 5),
# BENCH_TMPDIR (default /tmp: where the depot goes).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-300}
bin=${WARDEN_BIN_DIR:-$PWD/target/x86_64-unknown-linux-gnu/release}
rootfs=$(cd "${WARDEN_TEST_ROOTFS:-$PWD/target/rootfs/busybox}" && pwd)
results=${BENCH_RESULTS:-bench/results}
mib=${WSH_MIB:-2000}
tp_runs=${WSH_TP_RUNS:-5}
mkdir -p "$results"
[[ $(id -u) == 0 ]] || { echo "must run as root" >&2; exit 1; }
[[ -x $bin/wsh && -x $bin/wardenctl ]] || { echo "build first: make build rootfs" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "hyperfine is missing: apt-get install hyperfine" >&2; exit 1; }
command -v runc >/dev/null || { echo "runc is missing: apt-get install runc" >&2; exit 1; }

export WARDEN_DEPOT
WARDEN_DEPOT=$(mktemp -d "${BENCH_TMPDIR:-/tmp}/warden-bench.XXXXXX")
bundle=$WARDEN_DEPOT.runc
runc_id=wsh-bench-$$
handle=""
open_handle=""
cleanup() {
  if [ -n "$handle" ]; then "$bin/wardenctl" destroy "$handle" >/dev/null 2>&1 || true; fi
  if [ -n "$open_handle" ]; then "$bin/wardenctl" destroy "$open_handle" >/dev/null 2>&1 || true; fi
  runc kill "$runc_id" KILL >/dev/null 2>&1 || true
  runc delete -f "$runc_id" >/dev/null 2>&1 || true
  rm -rf "$WARDEN_DEPOT" "$bundle" "$WARDEN_DEPOT".pair*.json
}
trap cleanup EXIT
"$bin/wardenctl" setup >/dev/null
handle=$("$bin/wardenctl" create --rootfs "$rootfs")
path=$("$bin/wardenctl" info "$handle" --json | sed -n 's/.*"container_path": *"\([^"]*\)".*/\1/p')
sock=$path/run/wshd.sock
pid=$(cat "$path/run/wshd.pid")
open_handle=$("$bin/wardenctl" create --allow-nested-warden --rootfs "$rootfs")
open_path=$("$bin/wardenctl" info "$open_handle" --json | sed -n 's/.*"container_path": *"\([^"]*\)".*/\1/p')

# The runc peer: runc's default spec (its namespaces, cgroup, mounts) on the
# same rootfs, writable like a warden container, idling in sleep.
mkdir -p "$bundle"
(cd "$bundle" && runc spec)
sed -i -e 's/"terminal": true/"terminal": false/' -e 's/"readonly": true/"readonly": false/' \
  -e 's/"sh"$/"sleep", "1000000"/' -e "s|\"path\": \"rootfs\"|\"path\": \"$rootfs\"|" \
  "$bundle/config.json"
runc run -d --bundle "$bundle" "$runc_id" </dev/null >/dev/null 2>&1
runc exec "$runc_id" /bin/true

json=$results/wsh-hyperfine.json
hyperfine -N --warmup 20 --runs "$rounds" --export-json "$json" \
  -n "wsh /bin/true" "$bin/wsh --socket $sock /bin/true" \
  -n "nsenter /bin/true" "nsenter -t $pid -m -u -i -n -p -r -w /bin/true" \
  -n "runc exec /bin/true" "runc exec $runc_id /bin/true" \
  -n "bare /bin/true" "/bin/true" >/dev/null

# Confinement's cost: alternating batches of both, pooled.
pair_batches=${WSH_PAIR_BATCHES:-10}
for i in $(seq "$pair_batches"); do
  hyperfine -N --warmup 5 --runs $((rounds / 4 + 1)) --export-json "$WARDEN_DEPOT.pair$i.json" \
    -n confined "$bin/wsh --socket $sock /bin/true" \
    -n unconfined "$bin/wsh --socket $open_path/run/wshd.sock /bin/true" >/dev/null
done

# Throughput: dd of $mib MiB through wsh into a pipe vs into a plain pipe.
tp() { # command... ; prints microseconds
  local s e
  s=$(date +%s%N)
  "$@" | cat >/dev/null
  e=$(date +%s%N)
  echo $(((e - s) / 1000))
}
gbps() { awk -v b=$((mib * 1048576)) -v us="$1" 'BEGIN { printf "%.3f", b / us / 1000 }'; }
pipe_runs=() wsh_runs=()
for _ in $(seq "$tp_runs"); do
  pipe_runs+=("$(gbps "$(tp dd if=/dev/zero bs=1M count="$mib" status=none)")")
  wsh_runs+=("$(gbps "$(tp "$bin/wsh" --socket "$sock" dd if=/dev/zero bs=1M count="$mib" status=none)")")
done
rss_kb=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")

csv=$results/wsh.csv
{
  echo "case,run,value,unit"
  python3 - "$json" <<'PY'
import json, sys
names = {"wsh /bin/true": "exec_wsh", "nsenter /bin/true": "exec_nsenter",
         "runc exec /bin/true": "exec_runc", "bare /bin/true": "exec_bare"}
for r in json.load(open(sys.argv[1]))["results"]:
    for i, t in enumerate(r["times"], 1):
        print("%s,%d,%.4f,ms" % (names[r["command"]], i, t * 1000))
PY
  python3 - "$WARDEN_DEPOT".pair*.json <<'PY'
import json, sys
runs = {"confined": [], "unconfined": []}
for path in sys.argv[1:]:
    for r in json.load(open(path))["results"]:
        runs[r["command"]] += r["times"]
for name, times in runs.items():
    for i, t in enumerate(times, 1):
        print("exec_wsh_%s,%d,%.4f,ms" % (name, i, t * 1000))
PY
  for i in "${!pipe_runs[@]}"; do
    echo "output_plain_pipe_${mib}MiB,$((i + 1)),${pipe_runs[$i]},GB/s"
    echo "output_wsh_${mib}MiB,$((i + 1)),${wsh_runs[$i]},GB/s"
  done
  echo "rss_wshd_idle,1,$rss_kb,KiB"
} >"$csv"

median_of() { awk -F, -v c="$1" '$1 == c {print $3}' "$csv" | sort -g |
  awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
bare=$(median_of exec_bare)
pipe=$(median_of "output_plain_pipe_${mib}MiB")
printf '%-28s %10s %10s\n' "exec round trip (median)" "ms" "vs bare"
for c in wsh nsenter runc bare; do
  m=$(median_of "exec_$c")
  label=$c
  [ "$c" != runc ] || label="runc exec"
  printf '%-28s %10s %10s\n' "$label /bin/true" "$m" "$(ratio "$m" "$bare")"
done
c=$(median_of exec_wsh_confined)
u=$(median_of exec_wsh_unconfined)
printf '%-28s %10s %10s\n' "confinement (interleaved)" "ms" "vs open"
printf '%-28s %10s %10s\n' "wsh, confined" "$c" "$(ratio "$c" "$u")"
printf '%-28s %10s %10s\n' "wsh, unconfined" "$u" "1.00"
printf '%-28s %10s %10s\n' "output ($mib MiB, median)" "GB/s" "vs pipe"
printf '%-28s %10s %10s\n' "plain pipe" "$pipe" "1.00"
w=$(median_of "output_wsh_${mib}MiB")
printf '%-28s %10s %10s\n' "through wsh" "$w" "$(ratio "$w" "$pipe")"
printf '%-28s %10s\n' "wshd idle RSS (KiB)" "$rss_kb"
echo "per-run data: $csv, $json"
