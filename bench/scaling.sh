#!/bin/bash
# Create latency as containers accumulate, with networking and limits on.
#
#   bench/scaling.sh [COUNT]       (default 250)
#
# Each step creates one more container and leaves it running:
#   create   wardenctl create --disk-limit 64 MiB --disk-inode-limit 4096
#            (ext4 image on a loop device, overlay, cgroups, veth, chains, wshd)
#   limits   limit-memory 64 MiB (starts the OOM watcher), limit-cpu 512,
#            limit-bandwidth 10 Mbit, net-out (one tcp port to the pool),
#            net-in (a host port from the pool)
# Reported at 1, 50, 100, 250 live containers (those not above COUNT, and
# COUNT itself): the median of the 5 creates ending there (at 1: the first 5).
# Target: create+limits of the 250th within 1.5x the first. Then every
# container is destroyed and the host checked for leftovers (chains, veths,
# ifbs, cgroups, loop devices, watcher processes).
# Results: bench/results/scaling.csv (n,create_ms,limits_ms,total_ms,load1:
# one row per container, with the load average then, as the machine may be
# shared) and a table on stdout.
# Env: BIN_DIR or WARDEN_BIN_DIR, ROOTFS or WARDEN_TEST_ROOTFS, BENCH_RESULTS,
# POOL (default 10.252.0.0/22: 256 containers), BENCH_TMPDIR (default /tmp:
# where the work directory and its depot go). Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${1:-250}
BIN_DIR=$(cd "${BIN_DIR:-${WARDEN_BIN_DIR:-target/x86_64-unknown-linux-gnu/release}}" && pwd)
ROOTFS=$(cd "${ROOTFS:-${WARDEN_TEST_ROOTFS:-target/rootfs/busybox}}" && pwd)
RESULTS=${BENCH_RESULTS:-bench/results}
POOL=${POOL:-10.252.0.0/22}
W=$BIN_DIR/wardenctl
[[ -x $W ]] || { echo "build first: make build" >&2; exit 1; }
[[ $(id -u) == 0 ]] || { echo "must run as root" >&2; exit 1; }
(( COUNT >= 1 && COUNT <= 256 )) || { echo "COUNT must be 1..256 (one /30 each of a /22)" >&2; exit 1; }

WORK=$(mktemp -d "${BENCH_TMPDIR:-/tmp}/scaling-bench.XXXXXX")
export WARDEN_DEPOT=$WORK/depot WARDEN_BIN_DIR=$BIN_DIR WARDEN_POOL_NETWORK=$POOL
ids=()
cleanup() {
  for h in $("$W" list 2>/dev/null); do "$W" destroy "$h" >/dev/null 2>&1 || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

now_ns() { date +%s%N; }
ms() { echo "scale=1; ($2 - $1) / 1000000" | bc; }

"$W" setup >/dev/null
mkdir -p "$RESULTS"
csv=$RESULTS/scaling.csv
echo "n,create_ms,limits_ms,total_ms,load1" > "$csv"

for ((n = 1; n <= COUNT; n++)); do
  h=c$n
  t0=$(now_ns)
  "$W" create --handle "$h" --rootfs "$ROOTFS" --disk-limit 67108864 --disk-inode-limit 4096 >/dev/null
  t1=$(now_ns)
  "$W" limit-memory "$h" 67108864 >/dev/null
  "$W" limit-cpu "$h" 512 >/dev/null
  "$W" limit-bandwidth "$h" --rate 10000000 --burst 65536 >/dev/null
  "$W" net-out "$h" --network "$POOL" --port 8080 >/dev/null
  "$W" net-in "$h" --container-port 8080 >/dev/null
  t2=$(now_ns)
  ids+=("$("$W" info "$h" --json | sed 's/.*"id":"\([^"]*\)".*/\1/')")
  read -r load1 _ < /proc/loadavg
  echo "$n,$(ms "$t0" "$t1"),$(ms "$t1" "$t2"),$(ms "$t0" "$t2"),$load1" >> "$csv"
done

# Median of column COL over the 5 creates ending at N (1: the first 5, one
# sample being at the mercy of whatever else the machine runs).
median() {
  awk -F, -v lo="$(( $2 > 5 ? $2 - 4 : 1 ))" -v hi="$(( $2 > 5 ? $2 : 5 ))" -v col="$1" \
    'NR > 1 && $1 >= lo && $1 <= hi { print $col }' "$csv" | sort -n |
    awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

printf '%8s %12s %12s %12s\n' live create_ms limits_ms total_ms
points=""
for p in 1 50 100 250 "$COUNT"; do
  (( p <= COUNT )) || continue
  case " $points " in *" $p "*) continue ;; esac
  points="$points $p"
  row="$(median 2 "$p") $(median 3 "$p") $(median 4 "$p")"
  # shellcheck disable=SC2086
  printf '%8s %12s %12s %12s\n' "$p" $row
done
first=$(median 4 1)
last=$(median 4 "$COUNT")
echo "total at $COUNT / at 1: $(echo "scale=2; $last / $first" | bc) (target <= 1.5)"

t0=$(now_ns)
for h in $("$W" list); do "$W" destroy "$h"; done
t1=$(now_ns)
echo "destroyed $COUNT in $(ms "$t0" "$t1") ms"

left=0
for id in "${ids[@]}"; do
  for what in "iptables -w -S" "iptables -w -t nat -S"; do
    if $what | grep -q "warden-i-$id"; then echo "left: chain warden-i-$id" >&2; left=1; fi
  done
  for dev in 0 1 2; do
    [[ ! -e /sys/class/net/w-$id-$dev ]] || { echo "left: w-$id-$dev" >&2; left=1; }
  done
  for cg in /sys/fs/cgroup/*/instance-"$id" /sys/fs/cgroup/instance-"$id"; do
    [[ ! -e $cg ]] || { echo "left: $cg" >&2; left=1; }
  done
done
if losetup -a | grep -q "$WORK"; then echo "left: loop devices" >&2; losetup -a | grep "$WORK" >&2; left=1; fi
if pgrep -f "__oom-watch $WORK" >/dev/null; then echo "left: OOM watchers" >&2; left=1; fi
if grep -q "$WORK" /proc/self/mounts; then echo "left: mounts" >&2; left=1; fi
(( left == 0 )) && echo "nothing left after destroy"
exit "$left"
