#!/bin/bash
# Run every fuzz target of fuzz/ for FUZZ_SECONDS (default 30) each, with
# cargo-fuzz on the nightly toolchain; installs cargo-fuzz when missing.
#
#   tests/fuzz.sh                 all targets
#   tests/fuzz.sh request_decode  one target
#
# The workspace's .cargo/config.toml links statically (+crt-static), which
# the sanitizers cannot do. RUSTFLAGS, which cargo-fuzz sets with its own
# flags, replaces target.<triple>.rustflags of the config, so the fuzz build
# is dynamic; the target is named explicitly so that build.target and the
# fuzz build agree. -max_len lets raw inputs grow past the 9656-byte wsh
# request (libFuzzer's default stops at 4096). A crash leaves its input in fuzz/artifacts/TARGET/ and
# makes this script fail.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds=${FUZZ_SECONDS:-30}
triple=x86_64-unknown-linux-gnu

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "fuzz.sh: the nightly toolchain is missing (rustup toolchain install nightly)" >&2
  exit 1
fi
if ! command -v c++ >/dev/null; then
  # libfuzzer-sys compiles libFuzzer itself.
  echo "fuzz.sh: a C++ compiler is missing (apt-get install g++)" >&2
  exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: installing cargo-fuzz" >&2
  cargo install --locked cargo-fuzz
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list)
fi

# The iomux target writes job files under TMPDIR: give it one of its own.
scratch=$(mktemp -d /tmp/warden-fuzz-XXXXXX)
trap 'rm -rf "$scratch"' EXIT
export TMPDIR=$scratch
unset CARGO_ENCODED_RUSTFLAGS

for t in "${targets[@]}"; do
  echo "fuzz.sh: $t for ${seconds}s" >&2
  mkdir -p "corpus/$t"
  cargo +nightly fuzz run --target "$triple" "$t" "corpus/$t" -- \
    -max_total_time="$seconds" -max_len=12288 -print_final_stats=1
done
