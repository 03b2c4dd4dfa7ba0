#!/bin/sh
# Start the container: iptables chains, then wshd (which runs the lib/ hooks).
# wshd's own output and the hooks' go to run/wshd.{out,err}.log.
[ -n "${DEBUG:-}" ] && set -x
set -eu

case "$0" in */*) cd "${0%/*}" ;; esac
. ./lib/common.sh
# Steps run in the background here: whichever way this script ends, it
# waits for them first, so none outlives it (and races the cleanup of a
# failed create or destroy).
trap wait EXIT

[ -f etc/config ] || die "etc/config is missing (run setup.sh first)"
[ ! -f run/wshd.pid ] || die "wshd is already running"

# The iptables chains and wshd are made side by side: each is mostly
# waiting (iptables-restore's commit, wshd's hooks and processes), and
# neither needs the other. Nothing but wshd and its hooks (ours) runs in the
# container until this script returns, and it returns only once both are
# done: no job ever runs before the chains exist.
prof "net.sh setup, wshd (in parallel)"
in_step "net.sh setup" ./net.sh setup &
net_setup=$!

# allow_nested_warden=true gives the old unconfined container: its root is
# the host's root (every capability, no seccomp filter, /proc unmasked).
confinement=
[ "${allow_nested_warden:-false}" != true ] || confinement=--unconfined
# cgroup v2: the group the before-clone hook makes, for wshd to start the
# container's first process in (CLONE_INTO_CGROUP).
cgroup=
! cgroup_v2 || cgroup=--cgroup=$cgroup2_parent/instance-$id

# shellcheck disable=SC2086 # an empty $confinement is no argument
if ! in_step wshd ./bin/wshd --run ./run --lib ./lib --root ./mnt --title "wshd: $id" $confinement ${cgroup:+"$cgroup"} \
    < /dev/null > run/wshd.out.log 2> run/wshd.err.log; then
  wait "$net_setup" || :
  last=$(grep -v '^+' run/wshd.err.log | tail -n 1)
  die "wshd failed to start${last:+: $last}"
fi
wait "$net_setup" || die "net.sh setup failed"
