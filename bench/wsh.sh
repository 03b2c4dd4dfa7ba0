#!/bin/bash
# Exec round trip and output throughput of wsh, against peers measured in the
# same run: nsenter into the same container, a bare fork/exec of /bin/true,
# and the same writer into a plain pipe on the host. Prints medians, ratios
# and wshd's idle RSS; appends rows to bench/results/wsh.csv.
#
#   bench/wsh.sh [ROUNDS]        (root; builds nothing: run `make build rootfs`)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-300}
bin=${WARDEN_BIN_DIR:-$PWD/target/x86_64-unknown-linux-gnu/release}
rootfs=${WARDEN_TEST_ROOTFS:-$PWD/target/rootfs/busybox}
results=bench/results
mkdir -p "$results"
command -v hyperfine >/dev/null || apt-get install -y -qq hyperfine >/dev/null

export WARDEN_DEPOT
WARDEN_DEPOT=$(mktemp -d /tmp/warden-bench.XXXXXX)
handle=""
cleanup() {
  [ -n "$handle" ] && "$bin/wardenctl" destroy "$handle" >/dev/null 2>&1 || true
  rm -rf "$WARDEN_DEPOT"
}
trap cleanup EXIT
"$bin/wardenctl" setup >/dev/null
handle=$("$bin/wardenctl" create --rootfs "$rootfs")
path=$("$bin/wardenctl" info "$handle" --json | sed -n 's/.*"container_path": *"\([^"]*\)".*/\1/p')
sock=$path/run/wshd.sock
pid=$(cat "$path/run/wshd.pid")

json=$(mktemp)
hyperfine -N --warmup 20 --runs "$rounds" --export-json "$json" \
  -n "wsh /bin/true" "$bin/wsh --socket $sock /bin/true" \
  -n "nsenter /bin/true" "nsenter -t $pid -m -u -i -n -p -r -w /bin/true" \
  -n "bare /bin/true" "/bin/true" >/dev/null
medians=$(python3 - "$json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
for x in r:
    print("%s\t%.3f" % (x["command"], x["median"] * 1000))
PY
)
rm -f "$json"
wsh_ms=$(awk -F'\t' '$1=="wsh /bin/true"{print $2}' <<<"$medians")
ns_ms=$(awk -F'\t' '$1=="nsenter /bin/true"{print $2}' <<<"$medians")
bare_ms=$(awk -F'\t' '$1=="bare /bin/true"{print $2}' <<<"$medians")

# Throughput: 2000 MiB from dd, through wsh into a pipe vs into a plain pipe.
tp() { # label command...
  local best=()
  for _ in 1 2 3 4 5; do
    local s e
    s=$(date +%s%N)
    "$@" | cat >/dev/null
    e=$(date +%s%N)
    best+=($(( (e - s) / 1000 )))
  done
  printf '%s\n' "${best[@]}" | sort -n | sed -n 3p
}
mib=2000
plain_us=$(tp dd if=/dev/zero bs=1M count=$mib status=none)
wsh_us=$(tp "$bin/wsh" --socket "$sock" dd if=/dev/zero bs=1M count=$mib status=none)
rss_kb=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")

gbps() { awk -v b=$((mib * 1048576)) -v us="$1" 'BEGIN { printf "%.2f", b / us / 1000 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
printf '%-28s %10s %10s\n' "exec round trip (median)" "ms" "vs wsh"
printf '%-28s %10s %10s\n' "wsh /bin/true" "$wsh_ms" "1.00"
printf '%-28s %10s %10s\n' "nsenter /bin/true" "$ns_ms" "$(ratio "$ns_ms" "$wsh_ms")"
printf '%-28s %10s %10s\n' "bare fork/exec /bin/true" "$bare_ms" "$(ratio "$bare_ms" "$wsh_ms")"
printf '%-28s %10s %10s\n' "throughput ($mib MiB, median)" "GB/s" "vs pipe"
printf '%-28s %10s %10s\n' "plain pipe" "$(gbps "$plain_us")" "1.00"
printf '%-28s %10s %10s\n' "through wsh" "$(gbps "$wsh_us")" "$(ratio "$plain_us" "$wsh_us")"
printf '%-28s %10s\n' "wshd idle RSS (KiB)" "$rss_kb"
csv=$results/wsh.csv
[ -f "$csv" ] || echo "date,commit,wsh_ms,nsenter_ms,bare_ms,pipe_gbps,wsh_gbps,wshd_rss_kib" >"$csv"
echo "$(date -u +%FT%TZ),$(git rev-parse --short HEAD 2>/dev/null || echo none),$wsh_ms,$ns_ms,$bare_ms,$(gbps "$plain_us"),$(gbps "$wsh_us"),$rss_kb" >>"$csv"
