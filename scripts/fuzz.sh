#!/usr/bin/env bash
# Fuzzing (docs/FUZZING.md): builds the cargo-fuzz targets in fuzz/ and runs each
# for a bounded time, then prints executions and coverage per target. Exits
# non-zero if any target crashed, leaked past the memory limit or hung on an
# input (the input is kept under the build directory's fuzz-artifacts/).
#
#   scripts/fuzz.sh [seconds-per-target] [target...]   (default: 60 s, every target)
#
# scripts/test.sh runs `scripts/fuzz.sh 4`. cargo-fuzz needs nightly flags; the
# stable toolchain accepts them with RUSTC_BOOTSTRAP=1. No sanitizer (`-s none`):
# the code is safe Rust, and the build is much faster. The build goes to
# $FUZZ_TARGET_DIR, else "$CARGO_TARGET_DIR-fuzz", else ~/.cache/testamur-fuzz,
# never the workspace's own target directory (other flags: it would rebuild).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
if ! [[ "$secs" =~ ^[0-9]+$ ]] || [ "$secs" -lt 1 ]; then
  echo "usage: scripts/fuzz.sh [seconds-per-target] [target...]" >&2
  exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: cargo-fuzz is missing; run: cargo install cargo-fuzz --locked --version 0.13.2" >&2
  exit 1
fi
export RUSTC_BOOTSTRAP=1
if [ -n "${FUZZ_TARGET_DIR:-}" ]; then
  dir=$FUZZ_TARGET_DIR
elif [ -n "${CARGO_TARGET_DIR:-}" ]; then
  dir="$CARGO_TARGET_DIR-fuzz"
else
  dir="$HOME/.cache/testamur-fuzz"
fi
unset CARGO_TARGET_DIR
if (($#)); then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi

# cargo fuzz has no --locked: refuse a fuzz/Cargo.lock that would have to change.
cargo fetch --locked --quiet --manifest-path fuzz/Cargo.toml --target "$(rustc -vV | sed -n 's/^host: //p')"
echo "fuzz: building ${#targets[@]} targets into $dir"
start=$(date +%s)
cargo fuzz build -s none --codegen-units 16 --target-dir "$dir"
echo "fuzz: built in $(( $(date +%s) - start )) s; ${secs} s per target"
bin="$dir/$(rustc -vV | sed -n 's/^host: //p')/release"

status=0
summary=()
for t in "${targets[@]}"; do
  # New inputs go to a corpus under the build directory (not the repository);
  # the committed seeds in fuzz/corpus/ are read as well.
  # Short runs (under 60 s, as in scripts/test.sh) start from the seeds alone: a
  # grown corpus is replayed in full first, which libFuzzer's time limit does not
  # cut short (minutes for the TOML targets).
  if [ "$secs" -lt 60 ]; then
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
  else
    work="$dir/fuzz-corpus/$t"
  fi
  art="$dir/fuzz-artifacts/$t/"
  mkdir -p "$work" "$art" "fuzz/corpus/$t"
  log="$dir/fuzz-$t.log"
  rc=0
  "$bin/$t" "$work" "fuzz/corpus/$t" -max_total_time="$secs" -timeout="${FUZZ_TIMEOUT:-10}" \
    -rss_limit_mb="${FUZZ_RSS_MB:-2048}" -max_len="${FUZZ_MAX_LEN:-16384}" \
    -artifact_prefix="$art" -print_final_stats=1 >"$log" 2>&1 || rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "$log" | tail -1)
  if [ "$rc" = 0 ]; then
    line=$(printf '%-13s ok      %10s runs %7s/s  %s' "$t" "${runs:-?}" "${rate:-?}" "${cov:-}")
  else
    status=1
    line=$(printf '%-13s FAILED  %10s runs  (exit %s; log %s)' "$t" "${runs:-?}" "$rc" "$log")
    grep -E '^==[0-9]+==|panicked|^SUMMARY|artifact_prefix|Test unit written' "$log" | head -8 >&2 || true
  fi
  echo "fuzz: $line"
  summary+=("$line")
  if [ "$secs" -lt 60 ]; then rm -rf "$work"; fi
done
echo "fuzz: summary (${secs} s per target)"
printf '  %s\n' "${summary[@]}"
if [ "$status" != 0 ]; then
  echo "fuzz: a target failed; reproduce with \"$bin/<target>\" <input from $dir/fuzz-artifacts/<target>/>" >&2
fi
exit "$status"
