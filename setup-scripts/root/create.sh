#!/bin/sh
# create.sh INSTANCE_PATH: copy the skeleton to INSTANCE_PATH (which must not
# exist), run its setup.sh, print the path.
# The instance's environment (id, network_*, user_uid, rootfs_path, ...) is
# passed through to setup.sh. With WARDEN_BIN_DIR set, wshd, wsh, iomux-spawn,
# iomux-link and cgroup-devices are taken from there into the instance's bin/.
[ -n "${DEBUG:-}" ] && set -x
set -eu

die() {
  echo "create.sh: $*" >&2
  exit 1
}

[ $# -eq 1 ] || die "usage: $0 INSTANCE_PATH"
# Directories resolved with cd and $PWD (builtins), not $(cd ... && pwd),
# a subshell each.
start_dir=$PWD
cd "${0%/*}"
here=$PWD
cd "$start_dir"
# Warden keeps the skeleton inside its root directory; this tree keeps it
# next to it.
if [ -n "${WARDEN_SKELETON:-}" ]; then
  skeleton=$WARDEN_SKELETON
elif [ -d "$here/skeleton" ]; then
  skeleton=$here/skeleton
else
  skeleton=$here/../skeleton
fi
[ -x "$skeleton/setup.sh" ] || die "no skeleton at $skeleton"
# prof NAME: a step of the wall-time profile (WARDEN_PROFILE; lib/profile.sh).
if [ -n "${WARDEN_PROFILE:-}" ]; then
  . "$skeleton/lib/profile.sh"
else
  prof() { :; }
  in_step() {
    shift
    "$@"
  }
fi
prof "mkdir"
target=$1

[ ! -e "$target" ] || die "\"$target\" already exists, aborting..."
# Private from the first moment, whatever the caller's umask (-m sets the
# mode exactly): container root plants setuid files under it, and job output
# and state live in it.
mkdir -m 0700 "$target"
cd "$target"
target=$PWD
cd "$start_dir"
# Nothing half-made stays behind: the directory goes unless all went well,
# once the step run in the background (the helpers' links) has ended.
trap 'wait; rm -rf "$target"' EXIT
prof "copy skeleton"
# The skeleton's entries, not the skeleton itself ("$skeleton/."), which
# would give the directory the skeleton's mode back (and need a chmod).
set --
for f in "$skeleton"/* "$skeleton"/.[!.]* "$skeleton"/..?*; do
  [ ! -e "$f" ] && [ ! -L "$f" ] || set -- "$@" "$f"
done
cp -a "$@" "$target/"

# The helpers are linked while setup.sh runs (it does not need them).
prof "link helpers, setup.sh (in parallel)"
link_helpers() {
  # Hard links cost nothing; copies are needed across filesystems.
  ln -f "$@" "$target/bin/" 2>/dev/null || cp "$@" "$target/bin/"
}
linked=
if [ -n "${WARDEN_BIN_DIR:-}" ]; then
  set -- wshd wsh iomux-spawn iomux-link cgroup-devices
  for b in "$@"; do
    [ -x "$WARDEN_BIN_DIR/$b" ] || die "$WARDEN_BIN_DIR/$b is missing"
  done
  for b in wshd wsh iomux-spawn iomux-link cgroup-devices; do
    shift
    set -- "$@" "$WARDEN_BIN_DIR/$b"
  done
  in_step "link helpers" link_helpers "$@" &
  linked=$!
fi

# setup.sh mounts nothing, so a failure leaves only files. The reference
# ran it under `unshare -m`: a process and a mount namespace's copy and
# teardown per create, for no mount.
if ! in_step setup.sh "$target/setup.sh"; then
  [ -z "$linked" ] || wait "$linked" || :
  die "$target/setup.sh failed"
fi
[ -z "$linked" ] || wait "$linked" || die "cannot link the helpers from $WARDEN_BIN_DIR"
trap - EXIT
echo "$target"
