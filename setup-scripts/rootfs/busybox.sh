#!/bin/sh
# Build a minimal container rootfs from Debian's busybox-static package.
#
#   busybox.sh [--with BINARY]... DIR
#
# DIR gets busybox with every applet linked, /etc/passwd and /etc/group with
# root and vcap (uid/gid $VCAP_UID, default 10000), and the empty directories a
# Warden container expects. --with copies a host binary (e.g. rsync) and the
# shared libraries it needs into the same path inside DIR.
set -eu

die() { echo "busybox.sh: $*" >&2; exit 1; }

extras=""
while [ $# -gt 0 ]; do
  case "$1" in
    --with) [ $# -ge 2 ] || die "--with needs a binary"; extras="$extras $2"; shift 2 ;;
    --with=*) extras="$extras ${1#--with=}"; shift ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    --) shift; break ;;
    -*) die "unknown option: $1" ;;
    *) break ;;
  esac
done
[ $# -eq 1 ] || die "usage: busybox.sh [--with BINARY]... DIR"
target=$1
vcap_uid=${VCAP_UID:-10000}
case "$vcap_uid" in ''|*[!0-9]*) die "VCAP_UID must be a number: $vcap_uid" ;; esac

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Prefer the package itself so the result does not depend on what the host
# happens to have as /bin/busybox; fall back to the installed package.
busybox=""
if (cd "$work" && apt-get download busybox-static >/dev/null 2>&1); then
  dpkg-deb -x "$work"/busybox-static_*.deb "$work/pkg"
  busybox="$work/pkg/bin/busybox"
elif dpkg-query -W -f '${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed'; then
  busybox=$(dpkg -L busybox-static | grep -E '/bin/busybox$' | head -n1)
fi
[ -n "$busybox" ] && [ -x "$busybox" ] || die "busybox-static is neither downloadable nor installed (apt-get install busybox-static)"
file_out=$(file -b "$busybox" 2>/dev/null || true)
case "$file_out" in *dynamically*) die "$busybox is not static" ;; esac

mkdir -p "$target"
cd "$target"
for d in bin sbin usr/bin usr/sbin etc dev proc sys tmp root home/vcap var/log var/tmp run mnt lib; do
  mkdir -p "$d"
done
chmod 1777 tmp var/tmp
chmod 0700 root
install -m 0755 "$busybox" bin/busybox
for applet in $(bin/busybox --list-full); do
  dest="$applet"
  [ -e "$dest" ] || [ -L "$dest" ] || ln -s /bin/busybox "$dest"
done

cat > etc/passwd <<PASSWD
root:x:0:0:root:/root:/bin/sh
vcap:x:$vcap_uid:$vcap_uid:vcap:/home/vcap:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat > etc/group <<GROUP
root:x:0:
vcap:x:$vcap_uid:
nogroup:x:65534:
GROUP
printf 'root:*::0:::::\nvcap:*::0:::::\n' > etc/shadow
chmod 0640 etc/shadow
printf 'hosts: files\n' > etc/nsswitch.conf
: > etc/hostname
printf '127.0.0.1 localhost\n' > etc/hosts
: > etc/resolv.conf
chown "$vcap_uid:$vcap_uid" home/vcap
chmod 0755 home/vcap

# Host binaries asked for with --with, with the libraries ldd names.
for bin in $extras; do
  path=$(command -v "$bin") || die "--with: $bin not found on the host"
  mkdir -p ".$(dirname "$path")"
  cp -L "$path" ".$path"
  for lib in $(ldd "$path" 2>/dev/null | awk '/=>/ { print $3 } /^[[:space:]]*\// { print $1 }'); do
    [ -f "$lib" ] || continue
    mkdir -p ".$(dirname "$lib")"
    cp -L "$lib" ".$lib"
  done
done
echo "$target"
