#!/bin/bash
# wardend, the protocol server, against peers measured in the same run, on
# the busybox rootfs, with a wardend of its own (temporary config, depot and
# socket; pool 10.253.0.0/23, away from the tests' and the other benches'):
#   ping   requests/s with 1 client and with 64 clients (warden-load ping),
#          in alternating rounds
#   run    `run /bin/true` round trip through wardend (one connection,
#          warden-load run) | `wardenctl run H -- /bin/true` (a process
#          start per command, same depot, same container) | `wsh --socket
#          INSTANCE/run/wshd.sock /bin/true` straight to wshd | the same
#          job through wsh (`/bin/sh` reading the script `/bin/true` on
#          its stdin, as vcap, as wardend runs every job) | the run through
#          wardend on a second container whose bin/iomux-spawn is a copy
#          (not the helper's file), so wardend execs each job's iomux-spawn
#          instead of having its zygote fork one (orchestrator/src/
#          zygote.rs): the zygote's gain, same server; all timed
#          alike (warden-load exec: fork/exec/wait), in interleaved batches
#          of 10 whose order rotates
#   where the time goes  `spawn /bin/true` through wardend (the job's start:
#          iomux-spawn, the recorder process, iomux-link; a `run` records its
#          job on the connection's own thread instead, see
#          orchestrator/src/attach.rs) and `info` (which every
#          RunResponse carries: two `tc` runs, a walk of the container's
#          files, cgroup reads), in the same batches
#   rss    wardend's VmRSS idle (just started, no container), with 100
#          containers, and with 100 open streams (one per container, on a
#          `sleep 600` job, each on a connection of its own); its threads
#          then; and the RSS of one job's recorder (`wardend __record`, a
#          process per job, not counted in wardend's)
# Targets: run through wardend <= 2x the direct wsh round trip (it adds an
# iomux-spawn), and <= 0.5x `wardenctl run` (which pays a process start);
# the line "floor" sets that half against the same job through wsh alone,
# which no server's run can go below.
#
#   bench/wardend.sh [ROUNDS]   (root; default 200 round trips per run case)
#
# Results: a table on stdout; bench/results/wardend.csv (case,run,value,unit:
# one row per measured run). Builds nothing: `make build rootfs` first.
# Env: WARDEN_BIN_DIR, WARDEN_TEST_ROOTFS, BENCH_RESULTS (default
# bench/results), WARDEND_PING_ROUNDS (default 10) and WARDEND_PING_SECONDS
# (default 1) per client count, WARDEND_CONTAINERS (default 100), BENCH_TMPDIR
# (default /tmp: where the work directory and its depot go).
# Cleans up on exit, also on failure: destroys its containers, stops its
# wardend, removes its directories, and says if anything was left.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-200}
bin=$(cd "${WARDEN_BIN_DIR:-$PWD/target/x86_64-unknown-linux-gnu/release}" && pwd)
rootfs=$(cd "${WARDEN_TEST_ROOTFS:-$PWD/target/rootfs/busybox}" && pwd)
results=${BENCH_RESULTS:-bench/results}
ping_rounds=${WARDEND_PING_ROUNDS:-10}
ping_seconds=${WARDEND_PING_SECONDS:-1}
containers=${WARDEND_CONTAINERS:-100}
batch=10
[[ $(id -u) == 0 ]] || { echo "must run as root" >&2; exit 1; }
for b in wardend wardenctl wsh warden-load; do
  [[ -x $bin/$b ]] || { echo "$bin/$b is missing: build first (make build rootfs)" >&2; exit 1; }
done
((containers >= 1 && containers <= 127)) || { echo "WARDEND_CONTAINERS: 1..127 (the pool, less the exec case's)" >&2; exit 1; }
W=$bin/wardenctl
LOAD=$bin/warden-load
mkdir -p "$results"

work=$(mktemp -d "${BENCH_TMPDIR:-/tmp}/wardend-bench.XXXXXX")
chmod 700 "$work"
mkdir -m 700 "$work/sock" "$work/depot"
socket=$work/sock/warden.sock
export WARDEN_DEPOT=$work/depot WARDEN_BIN_DIR=$bin
pool_start=10.253.0.0 pool_size=128 # /23: 128 networks of 4 addresses
wardend_pid="" streams_pid=""

leftovers() { # what of ours is still there, one line each
  local h
  for h in $("$W" list 2>/dev/null); do echo "container $h"; done
  pgrep -a -f -- "$work" 2>/dev/null | sed 's/^/process /' || true
  ip -o -4 addr show 2>/dev/null | awk '$4 ~ /^10\.253\.[01]\./ {print "address " $2 " " $4}'
}
cleanup() {
  local rc=$? h left
  set +e
  if [[ -n $streams_pid ]]; then
    exec 3>&- 2>/dev/null
    kill "$streams_pid" 2>/dev/null
    wait "$streams_pid" 2>/dev/null
  fi
  if [[ -n $wardend_pid ]]; then
    # shellcheck disable=SC2046
    "$LOAD" destroy "$socket" $("$W" list 2>/dev/null) >/dev/null 2>&1
    kill "$wardend_pid" 2>/dev/null
    wait "$wardend_pid" 2>/dev/null
  fi
  for h in $("$W" list 2>/dev/null); do "$W" destroy "$h" >/dev/null 2>&1; done
  left=$(leftovers)
  if [[ -n $left ]]; then
    echo "bench/wardend.sh: left behind:" >&2
    echo "$left" >&2
    rc=1
  fi
  if ((rc != 0)) && [[ -f $work/wardend.log ]]; then
    echo "--- last lines of wardend's log" >&2
    tail -20 "$work/wardend.log" >&2
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Microseconds a file creation takes in the depot's directory: on this VM
# (ext4 mounted with discard) 10-15 µs, but 100-370 µs for a while in a
# region that just saw many deletions, and a job creates 19 files; printed
# with the results so a slow run can be told from a slow disk.
create_us() {
  local d=$work/create-probe i t0 t1
  mkdir "$d"
  t0=$(date +%s%N)
  for i in {1..200}; do : >"$d/f$i"; done
  t1=$(date +%s%N)
  rm -rf "$d"
  echo $(((t1 - t0) / 200000))
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
threads() { awk '/^Threads/ {print $2}' "/proc/$1/status"; }
wait_until() { # SECONDS what command...
  local until=$((SECONDS + $1)) what=$2
  shift 2
  until "$@"; do
    ((SECONDS < until)) || { echo "bench/wardend.sh: timed out waiting for $what" >&2; return 1; }
    sleep 0.05
  done
}

"$W" setup >/dev/null
cat >"$work/linux.yml" <<EOF
server:
  unix_domain_path: $socket
  unix_domain_permissions: 0600
  container_rootfs_path: $rootfs
  container_depot_path: $WARDEN_DEPOT
  container_grace_time: ~
network:
  pool_start_address: $pool_start
  pool_size: $pool_size
logging:
  level: info
EOF
"$bin/wardend" --config "$work/linux.yml" </dev/null >"$work/wardend.log" 2>&1 &
wardend_pid=$!
wait_until 30 "wardend's socket" "$LOAD" ping "$socket" 1 0.01 >/dev/null 2>&1
sleep 0.5
rss_idle=$(rss_kib "$wardend_pid")

csv=$work/wardend.csv
echo "case,run,value,unit" >"$csv"
row() { echo "$1,$2,$3,$4" >>"$csv"; }

# Ping: 1 and 64 clients, alternating.
for r in $(seq "$ping_rounds"); do
  row ping_1_client "$r" "$("$LOAD" ping "$socket" 1 "$ping_seconds" 2>/dev/null)" req/s
  row ping_64_clients "$r" "$("$LOAD" ping "$socket" 64 "$ping_seconds" 2>/dev/null)" req/s
done

# run /bin/true: wardend, wardenctl, wsh on one container, interleaved.
handle=$("$LOAD" create "$socket" wardend-bench-run 1)
path=$("$W" info "$handle" --json | sed -n 's/.*"container_path": *"\([^"]*\)".*/\1/p')
[[ -S $path/run/wshd.sock ]] || { echo "no wshd socket for $handle at $path" >&2; exit 1; }
# A container holding its own copy of iomux-spawn: its jobs' iomux-spawn is
# exec'd, as before the zygote.
exec_handle=$("$LOAD" create "$socket" wardend-bench-exec 1)
exec_path=$("$W" info "$exec_handle" --json | sed -n 's/.*"container_path": *"\([^"]*\)".*/\1/p')
cp "$exec_path/bin/iomux-spawn" "$exec_path/bin/iomux-spawn.copy"
mv "$exec_path/bin/iomux-spawn.copy" "$exec_path/bin/iomux-spawn"
# The same job straight through wsh: /bin/sh reading the script on its
# stdin, as every Warden job is run (a run's script is fed to a shell).
printf '/bin/true\n' >"$work/true.sh"
cases=(run_wardend run_wardenctl run_wsh run_wsh_sh spawn_wardend info_wardend run_wardend_exec)
measure() { # case N
  case $1 in
    run_wardend) "$LOAD" run "$socket" "$handle" "$2" ;;
    run_wardend_exec) "$LOAD" run "$socket" "$exec_handle" "$2" ;;
    spawn_wardend) "$LOAD" spawn "$socket" "$handle" "$2" ;;
    info_wardend) "$LOAD" info "$socket" "$handle" "$2" ;;
    run_wardenctl) "$LOAD" exec "$2" -- "$W" run "$handle" -- /bin/true ;;
    run_wsh) "$LOAD" exec "$2" -- "$bin/wsh" --socket "$path/run/wshd.sock" /bin/true ;;
    run_wsh_sh) "$LOAD" exec "$2" --stdin "$work/true.sh" -- "$bin/wsh" --socket "$path/run/wshd.sock" --user vcap /bin/sh ;;
  esac 2>>"$work/load.log"
}
create_before=$(create_us)
for c in "${cases[@]}"; do measure "$c" 5 >/dev/null; done # warm-up
batches=$(((rounds + batch - 1) / batch))
for b in $(seq 0 $((batches - 1))); do
  for k in "${!cases[@]}"; do
    c=${cases[$(((b + k) % ${#cases[@]}))]}
    measure "$c" "$batch" >>"$work/$c.ms"
  done
done
create_after=$(create_us)
for c in "${cases[@]}"; do
  awk -v c="$c" '{print c "," NR "," $1 ",ms"}' "$work/$c.ms" >>"$csv"
done
row file_create_before_runs 1 "$create_before" us
row file_create_after_runs 1 "$create_after" us

# RSS with containers, then with one open stream each.
more=()
if ((containers > 1)); then
  mapfile -t more < <("$LOAD" create "$socket" wardend-bench- $((containers - 1)))
fi
handles=("$handle" "${more[@]}")
sleep 0.5
rss_containers=$(rss_kib "$wardend_pid")
mkfifo "$work/hold"
"$LOAD" streams "$socket" "${handles[@]}" <"$work/hold" >"$work/streams.out" 2>>"$work/load.log" &
streams_pid=$!
exec 3>"$work/hold"
wait_until 120 "$containers open streams" grep -qx "ready $containers" "$work/streams.out"
sleep 0.5
rss_streams=$(rss_kib "$wardend_pid")
threads_streams=$(threads "$wardend_pid")
recorders=()
for d in "$WARDEN_DEPOT"/*/jobs/*/; do
  pid=$(cat "$d/record.pid" 2>/dev/null) || continue
  [[ -r /proc/$pid/status ]] && recorders+=("$(rss_kib "$pid")")
done
rss_recorder=$(printf '%s\n' "${recorders[@]}" | median)
exec 3>&-
wait "$streams_pid" || { echo "warden-load streams failed (log: below)" >&2; cat "$work/load.log" >&2; exit 1; }
streams_pid=""
"$LOAD" destroy "$socket" "${handles[@]}" "$exec_handle"
{
  row rss_wardend_idle 1 "$rss_idle" KiB
  row rss_wardend_${containers}_containers 1 "$rss_containers" KiB
  row rss_wardend_${containers}_streams 1 "$rss_streams" KiB
  row threads_wardend_${containers}_streams 1 "$threads_streams" threads
  row rss_recorder_per_job 1 "$rss_recorder" KiB
}
cp "$csv" "$results/wardend.csv"

med() { awk -F, -v c="$1" '$1 == c {print $3}' "$csv" | median; }
p1=$(med ping_1_client) p64=$(med ping_64_clients)
rw=$(med run_wardend) rc=$(med run_wardenctl) rs=$(med run_wsh) rsh=$(med run_wsh_sh)
rx=$(med run_wardend_exec)
sw=$(med spawn_wardend) iw=$(med info_wardend)
verdict() { awk -v r="$1" -v t="$2" 'BEGIN { print (r <= t) ? "met" : "MISSED" }'; }
printf '%-36s %12s %8s\n' "ping (median of $ping_rounds x ${ping_seconds}s)" "requests/s" "vs 1"
printf '%-36s %12s %8s\n' "1 client" "$p1" "1.00" "64 clients" "$p64" "$(ratio "$p64" "$p1")"
printf '%-36s %12s %8s\n' "run /bin/true (median of $rounds)" "ms" "vs wsh"
printf '%-36s %12s %8s\n' "through wardend" "$rw" "$(ratio "$rw" "$rs")" \
  "wardenctl run" "$rc" "$(ratio "$rc" "$rs")" "wsh straight to wshd" "$rs" "1.00" \
  "wsh, the same job (sh <script)" "$rsh" "$(ratio "$rsh" "$rs")" \
  "through wardend, iomux-spawn exec'd" "$rx" "$(ratio "$rx" "$rs")"
printf '%-36s %12s %8s\n' "where the time goes" "ms" "of run" \
  "  spawn /bin/true (the job's start)" "$sw" "$(ratio "$sw" "$rw")" \
  "  info (carried by every run reply)" "$iw" "$(ratio "$iw" "$rw")"
printf 'target: wardend/wsh %s <= 2.00 (%s); wardend/wardenctl %s <= 0.50 (%s); wardend/(wsh, same job) %s\n' \
  "$(ratio "$rw" "$rs")" "$(verdict "$(ratio "$rw" "$rs")" 2)" \
  "$(ratio "$rw" "$rc")" "$(verdict "$(ratio "$rw" "$rc")" 0.5)" "$(ratio "$rw" "$rsh")"
# The 0.5x target against what no server can go below: the job itself,
# sent straight to wshd by wsh (no server, holder process or job files).
half=$(awk -v c="$rc" 'BEGIN { printf "%.3f", c / 2 }')
printf 'floor: 0.5 x wardenctl run = %s ms; the same job through wsh alone takes %s ms (%s of it)\n' \
  "$half" "$rsh" "$(ratio "$rsh" "$half")"
printf 'zygote: a run with iomux-spawn exec'"'"'d takes %s the forked one\n' "$(ratio "$rx" "$rw")"
printf '%-36s %12s\n' "wardend RSS (KiB)" "" "idle" "$rss_idle" \
  "$containers containers" "$rss_containers" "$containers open streams" "$rss_streams" \
  "  (threads then)" "$threads_streams" "one job's recorder (own process)" "$rss_recorder"
echo "a file's creation in the depot ($work): ${create_before} µs before the runs, ${create_after} µs after"
echo "per-run data: $results/wardend.csv"
