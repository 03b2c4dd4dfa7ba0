#!/bin/bash
# Regenerates docs/cli.md, the wardenctl reference, from wardenctl's own help
# (clap): `wardenctl --help`, then `wardenctl SUB --help` for every
# subcommand it lists (and `wardenctl SUB SUBSUB --help` for those a SUB
# lists in turn, e.g. `rootfs import`). tests/tests/docs.rs checks that the file is current.
#
#   docs/gen-cli.sh [WARDENCTL]   (default: the release build; `make build` first)
set -euo pipefail
cd "$(dirname "$0")/.."
w=${1:-target/x86_64-unknown-linux-gnu/release/wardenctl}
[[ -x $w ]] || { echo "gen-cli.sh: $w is not there: make build" >&2; exit 1; }
# An empty environment: clap shows the values of WARDEN_* variables it reads.
help() { env -i "$w" "$@"; }
section() { # title help-text
  # shellcheck disable=SC2016 # the backquotes are markdown
  printf '\n## %s\n\n```text\n%s\n```\n' "$1" "$2"
}
top=$(help --help)
commands() { awk '/^Commands:/ {on = 1; next} on && /^$/ {exit} on {print $1}' | grep -vx help || true; }
subs=$(commands <<<"$top")
{
  echo "# wardenctl command-line reference"
  echo
  echo "Generated from wardenctl's own \`--help\` by \`docs/gen-cli.sh\`; do not edit by hand."
  echo "After changing the command line: \`make build && docs/gen-cli.sh\`."
  section "wardenctl" "$top"
  for s in $subs; do
    text=$(help "$s" --help)
    section "wardenctl $s" "$text"
    for ss in $(commands <<<"$text"); do
      section "wardenctl $s $ss" "$(help "$s" "$ss" --help)"
    done
  done
} >docs/cli.md.tmp
mv docs/cli.md.tmp docs/cli.md
echo "wrote docs/cli.md ($(wc -w <<<"$subs") subcommands)"
