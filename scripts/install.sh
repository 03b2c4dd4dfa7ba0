#!/bin/bash
# scripts/install.sh install|uninstall: what `make install` and
# `make uninstall` run.
#
# Environment: PREFIX (default /usr/local), DESTDIR (a staging root, default
# none), RELEASE (the directory holding the built binaries, default
# target/x86_64-unknown-linux-gnu/release).
#
# Layout under DESTDIR/PREFIX (the one wardenctl and wardend find on their
# own, see Paths::discover in orchestrator/src/scripts.rs):
#   bin/                 wardenctl wardend warden, and wsh (-> ../lib/warden/wsh)
#   lib/warden/          wshd wsh iomux-spawn iomux-link cgroup-devices (the
#                        helpers create copies into each container)
#   share/warden/        the setup scripts: root/ skeleton/ rootfs/ README.md
#   share/man/man1/      wardenctl.1, wardenctl-SUB.1 for every subcommand,
#                        wardend.1, warden.1 (clap_mangen, via `PROG __generate man`)
#   share/bash-completion/completions/, share/zsh/site-functions/,
#   share/fish/vendor_completions.d/   (clap_complete)
#
# Every file written and every directory made (only those that were not
# there) is listed in share/warden/install-manifest; uninstall removes
# exactly those, directories only when empty, so a shared PREFIX such as
# /usr/local keeps its own bin/ and share/.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD

action=${1:-}
case $action in install | uninstall) ;; *)
  echo "usage: $0 install|uninstall (PREFIX, DESTDIR, RELEASE from the environment)" >&2
  exit 2
  ;;
esac
PREFIX=${PREFIX:-/usr/local}
case $PREFIX in /*) ;; *)
  echo "install.sh: PREFIX must be an absolute path: $PREFIX" >&2
  exit 2
  ;;
esac
RELEASE=${RELEASE:-target/x86_64-unknown-linux-gnu/release}
case $RELEASE in /*) ;; *) RELEASE=$src/$RELEASE ;; esac
root=${DESTDIR:-}$PREFIX
manifest_rel=share/warden/install-manifest
manifest=$root/$manifest_rel

user_bins="wardenctl wardend warden"
helpers="wshd wsh iomux-spawn iomux-link cgroup-devices"
# Programs with man pages and completions (each makes its own: clidoc).
documented="wardenctl wardend warden"

if [[ $action == uninstall ]]; then
  if [[ ! -f $manifest ]]; then
    echo "install.sh: no $manifest: nothing installed there (or by hand); nothing removed" >&2
    exit 1
  fi
  mapfile -t entries <"$manifest"
  # Files first, the last installed first; then the manifest; then the
  # directories, deepest (latest made) first, each only when empty.
  for ((i = ${#entries[@]} - 1; i >= 0; i--)); do
    kind=${entries[i]%% *} rel=${entries[i]#* }
    [[ $kind == f ]] && rm -f -- "${root:?}/$rel"
  done
  rm -f -- "$manifest"
  for ((i = ${#entries[@]} - 1; i >= 0; i--)); do
    kind=${entries[i]%% *} rel=${entries[i]#* }
    [[ $kind == d ]] && { rmdir --ignore-fail-on-non-empty -- "${root:?}/$rel" 2>/dev/null || true; }
  done
  exit 0
fi

for b in $user_bins $helpers; do
  [[ -x $RELEASE/$b ]] || {
    echo "install.sh: $RELEASE/$b is missing: make build (or RELEASE=DIR)" >&2
    exit 1
  }
done

# The manifest is written last, from these lists; entries of an earlier
# install stay (a directory it made is still ours to remove).
files=()
dirs=()
if [[ -f $manifest ]]; then
  while read -r kind rel; do
    case $kind in f) files+=("$rel") ;; d) dirs+=("$rel") ;; esac
  done <"$manifest"
fi

mkdir_p() { # REL: makes DESTDIR/PREFIX/REL and each missing parent, noting them
  local rel=$1 parts="" part
  local IFS=/
  for part in $rel; do
    parts=${parts:+$parts/}$part
    if [[ ! -d $root/$parts ]]; then
      mkdir -m 0755 -- "$root/$parts"
      dirs+=("$parts")
    fi
  done
}
put() { # MODE SRC REL
  mkdir_p "$(dirname "$3")"
  install -m "$1" -- "$2" "$root/$3"
  files+=("$3")
}

mkdir -p -- "$root"
for b in $user_bins; do
  put 0755 "$RELEASE/$b" "bin/$b"
done
for b in $helpers; do
  put 0755 "$RELEASE/$b" "lib/warden/$b"
done
# wsh is a user's command too (wsh --socket INSTANCE/run/wshd.sock).
ln -sfn ../lib/warden/wsh "$root/bin/wsh"
files+=("bin/wsh")

# The scripts as they are in the tree: modes (executable or not) and the
# skeleton's /dev symlinks kept.
while IFS= read -r -d '' path; do
  rel=share/warden/${path#setup-scripts/}
  if [[ -L $path ]]; then
    mkdir_p "$(dirname "$rel")"
    ln -sfn -- "$(readlink "$path")" "$root/$rel"
    files+=("$rel")
  elif [[ -d $path ]]; then
    mkdir_p "$rel"
  elif [[ $(basename "$path") == .gitkeep ]]; then
    continue
  elif [[ -x $path ]]; then
    put 0755 "$path" "$rel"
  else
    put 0644 "$path" "$rel"
  fi
done < <(find setup-scripts -mindepth 1 -print0 | sort -z)

gen=$(mktemp -d)
trap 'rm -rf "$gen"' EXIT
mkdir "$gen/man" "$gen/bash" "$gen/zsh" "$gen/fish"
for p in $documented; do
  "$RELEASE/$p" __generate man "$gen/man" >/dev/null
  for sh in bash zsh fish; do
    "$RELEASE/$p" __generate completions "$sh" "$gen/$sh" >/dev/null
  done
done
for f in "$gen"/man/*.1; do
  put 0644 "$f" "share/man/man1/$(basename "$f")"
done
for f in "$gen"/bash/*; do
  put 0644 "$f" "share/bash-completion/completions/$(basename "$f")"
done
for f in "$gen"/zsh/*; do
  put 0644 "$f" "share/zsh/site-functions/$(basename "$f")"
done
for f in "$gen"/fish/*; do
  put 0644 "$f" "share/fish/vendor_completions.d/$(basename "$f")"
done

mkdir_p share/warden
{
  printf 'd %s\n' "${dirs[@]}"
  printf 'f %s\n' "${files[@]}"
} | awk '$2 != "" && !seen[$0]++' >"$manifest.tmp"
chmod 0644 "$manifest.tmp"
mv "$manifest.tmp" "$manifest"
echo "installed in $root (manifest: $manifest)"
