#!/bin/sh
# layout.sh WARDEN_CHECKOUT BUILD_DIR
#
# Lays this repository's scripts and binaries into a checkout of Warden
# (cloudfoundry/warden: the directory that holds warden/), where the Ruby
# server looks for them, as README.md's "Dropping into Warden" says:
#
#   setup-scripts/root/*.sh        -> warden/root/linux/*.sh
#   setup-scripts/skeleton/        -> warden/root/linux/skeleton/
#   BUILD_DIR/{wshd,wsh,iomux-spawn,iomux-link,cgroup-devices}
#                                  -> warden/root/linux/skeleton/bin/
#   BUILD_DIR/oom, repquota, closefds
#                                  -> warden/src/oom/oom, warden/src/repquota/repquota,
#                                     warden/src/closefds/closefds
#
# BUILD_DIR is where `make build` puts the binaries
# (target/x86_64-unknown-linux-gnu/release). Whatever is replaced is kept
# once as NAME.orig (the skeleton as skeleton.orig/); files already in place
# are left alone, so a second run changes nothing. Everything is checked
# before anything is written: a directory that does not look like Warden's,
# or a missing binary, is refused with one line on stderr and exit 1.
# WARDEN_RS_SCRIPTS overrides where setup-scripts/ is (default: this tree's).
set -eu

die() {
  echo "layout.sh: $*" >&2
  exit 1
}

[ $# -eq 2 ] || die "usage: layout.sh WARDEN_CHECKOUT BUILD_DIR"
here=$(cd "$(dirname "$0")" && pwd)
scripts=${WARDEN_RS_SCRIPTS:-$here/../../setup-scripts}

# --- checks; nothing is written before they all pass ----------------------
[ -d "$1" ] || die "$1 is not a directory"
[ -d "$2" ] || die "BUILD_DIR $2 is not a directory"
checkout=$(cd "$1" && pwd)
build=$(cd "$2" && pwd)
server=$checkout/warden
for f in lib/warden/container/linux.rb lib/warden/util.rb; do
  [ -f "$server/$f" ] ||
    die "$checkout does not look like a Warden checkout: no warden/$f (give the directory that holds warden/)"
done
[ -d "$server/root/linux" ] ||
  die "$checkout does not look like a Warden checkout: no warden/root/linux/"
[ -d "$scripts/root" ] && [ -x "$scripts/skeleton/setup.sh" ] ||
  die "no setup-scripts at $scripts (set WARDEN_RS_SCRIPTS)"

skeleton_bins="wshd wsh iomux-spawn iomux-link cgroup-devices"
src_bins="oom repquota closefds"
missing=""
for b in $skeleton_bins $src_bins; do
  [ -f "$build/$b" ] && [ -x "$build/$b" ] || missing="$missing $b"
done
[ -z "$missing" ] || die "BUILD_DIR $build lacks executables:$missing (run make build)"

# --- the layout ------------------------------------------------------------
linux=$server/root/linux
changed=0
stage=""
trap '[ -z "$stage" ] || rm -rf "$stage"' EXIT

# put SRC DST: DST becomes a 0755 copy of SRC, unless it already is one; a
# DST that differs is kept as DST.orig the first time.
put() {
  if [ -f "$2" ] && [ ! -L "$2" ] && cmp -s "$1" "$2" && [ "$(stat -c %a "$2")" = 755 ]; then
    return 0
  fi
  if { [ -e "$2" ] || [ -L "$2" ]; } && [ ! -e "$2.orig" ] && [ ! -L "$2.orig" ]; then
    cp -P -p "$2" "$2.orig"
    echo "layout.sh: kept the original as $2.orig"
  fi
  mkdir -p "${2%/*}"
  cp "$1" "$2.layout.$$"
  chmod 0755 "$2.layout.$$"
  mv -f "$2.layout.$$" "$2"
  echo "layout.sh: installed $2"
  changed=$((changed + 1))
}

# A tree's content, modes, owners and link targets, one line per entry.
tree_sig() {
  (
    cd "$1"
    find . -mindepth 1 -printf '%P %y %m %U:%G %l\n' | LC_ALL=C sort
    find . -type f -exec cksum {} + | LC_ALL=C sort -k 3
  )
}

for f in "$scripts"/root/*.sh; do
  put "$f" "$linux/${f##*/}"
done

# The skeleton as a whole: ours plus the binaries, made aside and compared.
stage=$(mktemp -d)
cp -a "$scripts/skeleton/." "$stage/"
mkdir -p "$stage/bin"
for b in $skeleton_bins; do
  cp "$build/$b" "$stage/bin/$b"
  chmod 0755 "$stage/bin/$b"
done
# The server's root copies the skeleton into every container: root's alone.
[ "$(id -u)" != 0 ] || chown -hR 0:0 "$stage"
if [ ! -d "$linux/skeleton" ] || [ -L "$linux/skeleton" ] ||
  [ "$(tree_sig "$stage")" != "$(tree_sig "$linux/skeleton")" ]; then
  new=$linux/.skeleton.layout.$$
  cp -a "$stage" "$new"
  chmod 0755 "$new"
  if [ -e "$linux/skeleton" ] || [ -L "$linux/skeleton" ]; then
    if [ -e "$linux/skeleton.orig" ] || [ -L "$linux/skeleton.orig" ]; then
      rm -rf "$linux/skeleton"
    else
      mv "$linux/skeleton" "$linux/skeleton.orig"
      echo "layout.sh: kept the original as $linux/skeleton.orig/"
    fi
  fi
  mv "$new" "$linux/skeleton"
  echo "layout.sh: installed $linux/skeleton/ (with bin/: $skeleton_bins)"
  changed=$((changed + 1))
fi

# Warden::Util.path("src/<tool>/<tool>"), relative to warden/: closefds runs
# in front of every command the server starts, oom watches a memory cgroup,
# repquota reads disk usage.
for b in $src_bins; do
  put "$build/$b" "$server/src/$b/$b"
done

if [ "$changed" = 0 ]; then
  echo "layout.sh: $server already laid out, nothing changed"
else
  echo "layout.sh: $server laid out ($changed changed); next: the cgroup mounts in README.md, Dropping into Warden"
fi
