#!/bin/sh
# Build a full Debian rootfs for Warden containers with debootstrap.
#
#   debian.sh [--suite SUITE] [--mirror URL] [--include PKG,PKG] DIR
#
# Defaults: the host's suite (from /etc/os-release, else bookworm), the
# host's first apt mirror (else deb.debian.org), and rsync (for copy-in and
# copy-out) plus iproute2 included. The result has merged /usr, a `vcap` user
# with uid/gid $VCAP_UID (default 10000, renumbered per container by the
# skeleton's setup.sh) and no daemons started by dpkg. debootstrap's progress
# is printed as it goes. busybox.sh remains the default, much smaller rootfs.
set -eu

die() { echo "debian.sh: $*" >&2; exit 1; }

suite=""
mirror=""
include="rsync,iproute2,iputils-ping,procps"
while [ $# -gt 0 ]; do
  case "$1" in
    --suite) [ $# -ge 2 ] || die "--suite needs a value"; suite=$2; shift 2 ;;
    --mirror) [ $# -ge 2 ] || die "--mirror needs a value"; mirror=$2; shift 2 ;;
    --include) [ $# -ge 2 ] || die "--include needs a value"; include="$include,$2"; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    --) shift; break ;;
    -*) die "unknown option: $1" ;;
    *) break ;;
  esac
done
[ $# -eq 1 ] || die "usage: debian.sh [--suite SUITE] [--mirror URL] [--include PKGS] DIR"
target=$1
[ "$(id -u)" = 0 ] || die "must run as root (debootstrap)"
command -v debootstrap >/dev/null || die "debootstrap is not installed (apt-get install debootstrap)"
vcap_uid=${VCAP_UID:-10000}
case "$vcap_uid" in ''|*[!0-9]*) die "VCAP_UID must be a number: $vcap_uid" ;; esac

if [ -z "$suite" ]; then
  suite=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
  [ -n "$suite" ] || suite=bookworm
fi
if [ -z "$mirror" ]; then
  mirror=$(grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list | awk '{ print $2; exit }')
  [ -n "$mirror" ] || mirror=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{ print $2; exit }')
  [ -n "$mirror" ] || mirror=http://deb.debian.org/debian
fi
if [ -e "$target" ] && [ -n "$(ls -A "$target" 2>/dev/null)" ]; then
  die "$target exists and is not empty"
fi
mkdir -p "$target"

echo "debian.sh: debootstrap $suite from $mirror into $target (with $include)"
debootstrap --verbose --variant=minbase --merged-usr --include="$include" \
  "$suite" "$target" "$mirror"

echo "debian.sh: configuring"
# No service may start while packages are installed into the rootfs later.
cat > "$target/usr/sbin/policy-rc.d" <<'POLICY'
#!/bin/sh
exit 101
POLICY
chmod 0755 "$target/usr/sbin/policy-rc.d"

# vcap, written directly (no chroot needed).
if ! grep -q '^vcap:' "$target/etc/passwd"; then
  echo "vcap:x:$vcap_uid:$vcap_uid:vcap:/home/vcap:/bin/bash" >> "$target/etc/passwd"
  echo "vcap:x:$vcap_uid:" >> "$target/etc/group"
  echo "vcap:*:19000:0:99999:7:::" >> "$target/etc/shadow"
fi
mkdir -p "$target/home/vcap"
chown "$vcap_uid:$vcap_uid" "$target/home/vcap"
chmod 0755 "$target/home/vcap"

# mesg(1) in login scripts complains when stdin is not a tty, which a job's
# never is.
if [ -e "$target/usr/bin/mesg" ]; then
  ln -sf /bin/true "$target/usr/bin/mesg"
fi

rm -rf "$target/var/cache/apt/archives/"*.deb "$target/var/lib/apt/lists/"* 2>/dev/null || true
: > "$target/etc/hostname"
echo "debian.sh: done: $target"
