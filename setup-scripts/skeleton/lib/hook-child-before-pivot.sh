#!/bin/sh
# Run by the container's first process before pivot_root, with the host's
# filesystem still visible. A server appends the bind mounts of a create
# request to this file (one `mount` per line), so it must not exit early.
[ -n "${DEBUG:-}" ] && set -x
set -eu

case "$0" in */*) cd "${0%/*}/.." ;; *) cd .. ;; esac
. ./lib/common.sh

