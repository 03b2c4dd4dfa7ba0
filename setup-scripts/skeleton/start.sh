#!/bin/sh
# Start the container: iptables chains, then wshd (which runs the lib/ hooks).
# wshd's own output and the hooks' go to run/wshd.{out,err}.log.
[ -n "${DEBUG:-}" ] && set -x
set -eu

case "$0" in */*) cd "${0%/*}" ;; esac
. ./lib/common.sh

[ -f etc/config ] || die "etc/config is missing (run setup.sh first)"
[ ! -f run/wshd.pid ] || die "wshd is already running"

./net.sh setup

if ! ./bin/wshd --run ./run --lib ./lib --root ./mnt --title "wshd: $id" \
    < /dev/null > run/wshd.out.log 2> run/wshd.err.log; then
  last=$(grep -v '^+' run/wshd.err.log | tail -n 1)
  die "wshd failed to start${last:+: $last}"
fi
