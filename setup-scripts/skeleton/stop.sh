#!/bin/sh
# stop.sh [-w SECONDS]: SIGTERM every process of the container but wshd, then
# SIGKILL what is left once SECONDS (default 10) have passed; -w 0 sends
# SIGKILL at once. wshd keeps running, so the container can still be looked
# at (copy-out, info) until it is destroyed.
[ -n "${DEBUG:-}" ] && set -x
set -eu

case "$0" in */*) cd "${0%/*}" ;; esac
. ./lib/common.sh

usage() {
  echo "usage: $0 [-w SECONDS]" >&2
  exit 1
}

wait_s=10
while getopts ":w:h" opt; do
  case "$opt" in
    w) wait_s=$OPTARG ;;
    h) usage ;;
    *) ;; # unknown options are ignored, as by the reference script
  esac
done
case "$wait_s" in ''|*[!0-9]*) die "-w needs a whole number of seconds: $wait_s" ;; esac

[ -f run/wshd.pid ] || die "wshd is not running"
read -r pid < run/wshd.pid

others() {
  for p in $(instance_pids); do
    [ "$p" = "$pid" ] || echo "$p"
  done
}

now_ms() {
  echo $(($(date +%s%N) / 1000000))
}

deadline=$(($(now_ms) + wait_s * 1000))
signal=TERM
[ "$wait_s" -gt 0 ] || signal=KILL
sent_term=""
while :; do
  victims=$(others)
  [ -n "$victims" ] || break
  if [ "$signal" = TERM ] && [ "$(now_ms)" -ge "$deadline" ]; then
    signal=KILL
  fi
  if [ "$signal" = KILL ]; then
    # shellcheck disable=SC2086
    kill -KILL $victims 2>/dev/null || true
  elif [ -z "$sent_term" ]; then
    # shellcheck disable=SC2086
    kill -TERM $victims 2>/dev/null || true
    sent_term=1
  fi
  sleep 0.05
done
