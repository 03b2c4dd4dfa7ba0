#!/bin/sh
# destroy.sh INSTANCE_PATH: the instance's destroy.sh, then the directory.
[ -n "${DEBUG:-}" ] && set -x
set -eu

die() {
  echo "destroy.sh: $*" >&2
  exit 1
}

[ $# -eq 1 ] || die "usage: $0 INSTANCE_PATH"
target=$1
[ -e "$target" ] || exit 0
# prof NAME: a step of the wall-time profile (WARDEN_PROFILE; lib/profile.sh).
if [ -n "${WARDEN_PROFILE:-}" ] && [ -f "$target/lib/profile.sh" ]; then
  . "$target/lib/profile.sh"
else
  prof() { :; }
fi

# Not again when it already ran to its end (a server or wardenctl ran it
# first, to reap the jobs' helpers in between): it would only find
# run/destroyed and exit, one process for nothing.
if [ -x "$target/destroy.sh" ] && [ ! -f "$target/run/destroyed" ]; then
  prof "destroy.sh"
  "$target/destroy.sh"
fi

# A wshd that did not keep its mounts private leaves the overlay on the host.
# Read with builtins (mount points in the table escape blanks and
# backslashes: such a path is unmounted whatever the table says).
prof "overlay on the host?"
old_pwd=$PWD
cd "$target"
mnt=$PWD/mnt
cd "$old_pwd"
case "$mnt" in
  *[[:space:]\\]*) umount -l "$mnt" 2>/dev/null || true ;;
  *)
    while read -r _dev _mp _rest; do
      if [ "$_mp" = "$mnt" ]; then
        umount -l "$mnt" || true
        break
      fi
    done < /proc/self/mounts
    ;;
esac

# destroy.sh goes first (rm takes its operands in order): a destroy killed
# during the removal leaves a partial directory whose teardown is done, and
# which must not run a half-removed destroy.sh again. The kernel may still
# be releasing the container's mount namespace, hence the retries.
prof "rm -rf instance"
tries=0
until rm -rf "$target/destroy.sh" "$target" 2>/dev/null && [ ! -e "$target" ]; do
  tries=$((tries + 1))
  [ "$tries" -le 100 ] || die "cannot remove $target"
  sleep 0.1
done
