#!/bin/sh
# Install the Debian packages the build, the demo and the tests need.
# Idempotent; does nothing when everything is already there.
set -eu
packages="busybox-static iptables iproute2 rsync e2fsprogs util-linux procps psmisc kmod make gcc g++ file python3 protobuf-compiler python3-protobuf"
# Rust from Debian when there is none (rustup's ~/.cargo/bin counts, as
# make finds it once the shell's profile put it on PATH): on Debian 12 the
# -web packages (1.96, enough for this workspace and its static binaries;
# they install /usr/bin/cargo, rustc, rustfmt, cargo-fmt), elsewhere
# Debian's plain ones. Neither has clippy; `make lint` says it skips it.
if ! command -v cargo >/dev/null 2>&1 && [ ! -x "${HOME:-/root}/.cargo/bin/cargo" ]; then
  codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
  if [ "$codename" = bookworm ]; then
    packages="$packages rustc-web cargo-web rustfmt-web"
  else
    packages="$packages rustc cargo rustfmt"
  fi
fi
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
