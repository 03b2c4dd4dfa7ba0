#!/bin/sh
# Start the container: iptables chains, then wshd (which runs the lib/ hooks).
# wshd's own output and the hooks' go to run/wshd.{out,err}.log.
[ -n "${DEBUG:-}" ] && set -x
set -eu

case "$0" in */*) cd "${0%/*}" ;; esac
. ./lib/common.sh

[ -f etc/config ] || die "etc/config is missing (run setup.sh first)"
[ ! -f run/wshd.pid ] || die "wshd is already running"

prof "net.sh setup"
./net.sh setup

# allow_nested_warden=true gives the old unconfined container: its root is
# the host's root (every capability, no seccomp filter, /proc unmasked).
confinement=
[ "${allow_nested_warden:-false}" != true ] || confinement=--unconfined

prof "wshd"
# shellcheck disable=SC2086 # an empty $confinement is no argument
if ! ./bin/wshd --run ./run --lib ./lib --root ./mnt --title "wshd: $id" $confinement \
    < /dev/null > run/wshd.out.log 2> run/wshd.err.log; then
  last=$(grep -v '^+' run/wshd.err.log | tail -n 1)
  die "wshd failed to start${last:+: $last}"
fi
