#!/bin/sh
# Build a container rootfs from a container image.
#
#   oci.sh SRC DIR
#
# SRC: a `docker save` tarball, an OCI image layout directory, an
# oci-archive tarball (each tar possibly gzip- or zstd-compressed), or
# docker://REF (fetched with skopeo, which must be installed). DIR must not
# exist; it is made only when the whole image was applied. The image's Env,
# WorkingDir, User, Entrypoint and Cmd are recorded in DIR/.warden-image.json.
# A thin wrapper around `wardenctl rootfs import` (found beside this script's
# tree in target/, on PATH, or as $WARDENCTL); see docs/cli.md.
set -eu

die() { echo "oci.sh: $*" >&2; exit 1; }

case "${1:-}" in -h|--help) sed -n '2,12p' "$0"; exit 0 ;; esac
[ $# -eq 2 ] || die "usage: oci.sh SRC DIR"

ctl=${WARDENCTL:-}
if [ -z "$ctl" ]; then
  here=$(cd "$(dirname "$0")/../.." && pwd)
  for c in "$here/target/x86_64-unknown-linux-gnu/release/wardenctl" \
           "$here/target/release/wardenctl" "$(command -v wardenctl 2>/dev/null || true)"; do
    if [ -n "$c" ] && [ -x "$c" ]; then ctl=$c; break; fi
  done
fi
[ -n "$ctl" ] || die "wardenctl not found (build the workspace or set WARDENCTL)"
exec "$ctl" rootfs import "$1" "$2"
