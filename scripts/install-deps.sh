#!/bin/sh
# Install the Debian packages the build, the demo and the tests need.
# Idempotent; does nothing when everything is already there.
set -eu
packages="busybox-static iptables iproute2 rsync e2fsprogs util-linux procps psmisc kmod make gcc g++ file python3 protobuf-compiler python3-protobuf"
missing=""
for p in $packages; do
  dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "install-deps: missing packages:$missing (run as root to install them)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
