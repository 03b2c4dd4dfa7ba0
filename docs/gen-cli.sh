#!/bin/bash
# Regenerates docs/cli.md from the binaries' own help:
#  - the wardenctl reference: `wardenctl --help`, then `wardenctl SUB --help`
#    for every subcommand it lists, and `wardenctl SUB SUBSUB --help` for
#    those a SUB lists in turn, e.g. `rootfs import` (clap); then the
#    schemas of the --json output (docs/schema/README.md and *.json);
#  - the warden (REPL) reference: `warden --help`, `warden -- help`, then
#    `warden -- CMD --help` for every command that lists.
# tests/tests/docs.rs checks that the file is current, each part on its own.
#
#   docs/gen-cli.sh [WARDENCTL [WARDEN]]   (default: the release builds; `make build` first)
#   ONLY=warden docs/gen-cli.sh [WARDEN]   (keep the file's wardenctl part as it is)
set -euo pipefail
cd "$(dirname "$0")/.."
rel=target/x86_64-unknown-linux-gnu/release
if [[ ${ONLY:-} == warden ]]; then
  r=${1:-$rel/warden}
else
  w=${1:-$rel/wardenctl}
  r=${2:-$rel/warden}
  [[ -x $w ]] || { echo "gen-cli.sh: $w is not there: make build" >&2; exit 1; }
fi
[[ -x $r ]] || { echo "gen-cli.sh: $r is not there: make build" >&2; exit 1; }
# An empty environment: clap shows the values of WARDEN_* variables it reads.
help() { env -i "$w" "$@"; }
rhelp() { env -i "$r" "$@"; }
section() { # title help-text
  # shellcheck disable=SC2016 # the backquotes are markdown
  printf '\n## %s\n\n```text\n%s\n```\n' "$1" "$2"
}
# The line the warden part begins with (docs.rs splits the file there).
marker='# warden (the REPL) command-line reference'
commands() { awk '/^Commands:/ {on = 1; next} on && /^$/ {exit} on {print $1}' | grep -vx help || true; }
wardenctl_part() {
  local top subs s ss text
  top=$(help --help)
  subs=$(commands <<<"$top")
  echo "# wardenctl command-line reference"
  echo
  echo "Generated from wardenctl's own \`--help\` by \`docs/gen-cli.sh\`; do not edit by hand."
  echo "After changing the command line: \`make build && docs/gen-cli.sh\`."
  section "wardenctl" "$top"
  for s in $subs; do
    text=$(help "$s" --help)
    section "wardenctl $s" "$text"
    # Nested subcommands (`rootfs import`) get sections of their own.
    for ss in $(commands <<<"$text"); do
      section "wardenctl $s $ss" "$(help "$s" "$ss" --help)"
    done
  done
  # The protocol server, whose only command line is its flags.
  section "wardend" "$(env -i "$(dirname "$w")/wardend" --help)"
  json_part
}
# The --json schemas: docs/schema/README.md, then each COMMAND.json in
# byte order of the file names.
json_part() {
  local f name
  printf '\n%s\n' "$(cat docs/schema/README.md)"
  for f in $(LC_ALL=C ls docs/schema/*.json); do
    name=$(basename "$f" .json)
    # shellcheck disable=SC2016 # the backquotes are markdown
    printf '\n### wardenctl %s --json\n\n```json\n%s\n```\n' "$name" "$(cat "$f")"
  done
}
warden_part() {
  local list cmds c
  list=$(rhelp -- help)
  cmds=$(awk -F'\t' '/^\t/ {split($2, a, " "); print a[1]}' <<<"$list" | grep -vx help)
  echo
  echo "$marker"
  echo
  echo "Generated from warden's own \`--help\`, \`help\` and \`CMD --help\` by \`docs/gen-cli.sh\`; do not edit by hand."
  echo "How it behaves (arguments, output, exit status, history): [warden.md](warden.md)."
  section "warden" "$(rhelp --help)"
  section "warden help" "$list"
  for c in $cmds; do
    section "warden $c --help" "$(rhelp -- "$c" --help)"
  done
}
{
  if [[ ${ONLY:-} == warden ]]; then
    # Everything before the warden part, as it is.
    # (but the blank line before the marker, which warden_part writes).
    awk -v m="$marker" '$0 == m {exit} held {print prev} {prev = $0; held = 1}
      END {if (held && prev != "") print prev}' docs/cli.md
  else
    wardenctl_part
  fi
  warden_part
} >docs/cli.md.tmp
mv docs/cli.md.tmp docs/cli.md
echo "wrote docs/cli.md"
