#!/bin/sh
# Build a full Debian rootfs for Warden containers with debootstrap.
#
#   debian.sh [--suite SUITE] [--mirror URL] [--include PKG,PKG] DIR
#
# Defaults: the host's suite (from /etc/os-release, else bookworm), the
# host's apt mirror for that suite (else deb.debian.org), and the packages a
# Warden job expects included: bash, rsync (copy-in and copy-out), locales
# with en_US.UTF-8 generated (the server's default job LANG), net-tools,
# netcat-openbsd, curl, perl, lsof, fuse3, iproute2, iputils-ping, procps.
# The result has merged /usr, a `vcap` user with uid/gid $VCAP_UID (default
# 10000, renumbered per container by the skeleton's setup.sh), LANG set in
# /etc/default/locale, and no daemons started by dpkg. debootstrap's progress
# is printed as it goes. busybox.sh remains the default, much smaller rootfs.
set -eu

die() { echo "debian.sh: $*" >&2; exit 1; }

suite=""
mirror=""
# What a Warden job may count on (the Ruby server runs every job with
# /bin/bash and LANG=en_US.UTF-8 unless its own LANG says otherwise).
include="rsync,locales,net-tools,netcat-openbsd,curl,perl,lsof,fuse3,iproute2,iputils-ping,procps"
locale=en_US.UTF-8
while [ $# -gt 0 ]; do
  case "$1" in
    --suite) [ $# -ge 2 ] || die "--suite needs a value"; suite=$2; shift 2 ;;
    --mirror) [ $# -ge 2 ] || die "--mirror needs a value"; mirror=$2; shift 2 ;;
    --include) [ $# -ge 2 ] || die "--include needs a value"; include="$include,$2"; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
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
  # The first source that carries the suite itself (not -security, not a
  # third-party repository that happens to come first).
  mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
    awk -v s="$suite" '$1 == "deb" { sub(/\[[^]]*\][ \t]*/, ""); $0 = $0; if ($3 == s) { print $2; exit } }')
  [ -n "$mirror" ] || mirror=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
    awk -v s="$suite" 'BEGIN { RS = "" }
      { uri = ""; ok = 0; n = split($0, l, "\n")
        for (i = 1; i <= n; i++) {
          if (l[i] ~ /^URIs:/) { split(l[i], a, " "); uri = a[2] }
          if (l[i] ~ /^Suites:/) { m = split(l[i], b, " "); for (j = 2; j <= m; j++) if (b[j] == s) ok = 1 }
        }
        if (ok && uri != "") { print uri; exit } }')
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

# The locale the server gives every job (LANG=en_US.UTF-8): generated in the
# chroot with the rootfs's own localedef, and made the default.
if ! grep -qx "$locale UTF-8" "$target/etc/locale.gen" 2>/dev/null; then
  echo "$locale UTF-8" >> "$target/etc/locale.gen"
fi
chroot "$target" /usr/sbin/locale-gen || die "locale-gen failed in $target"
echo "LANG=$locale" > "$target/etc/default/locale"
chroot "$target" locale -a | grep -qix 'en_US.utf8' || die "$locale is missing from $target after locale-gen"

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
