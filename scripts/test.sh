#!/usr/bin/env bash
# Quick start, part 2: the whole test suite (unit and integration tests; each
# integration test starts its own redis-server, CC and workservers on real TLS and
# checks signatures with gpg and PDFs with poppler).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
cargo test --workspace --locked "$@"
# The criterion benches, each run once as a smoke test (`cargo bench` measures).
cargo test --workspace --locked --bench '*' "$@"
# The queue path bench, short (docs/PERFORMANCE.md has the long runs): testamur's
# no-op drain, then BullMQ's beside it when node is installed (after the e2e runs).
bin="${CARGO_TARGET_DIR:-target}/debug/testamur"
qdir=$(mktemp -d)
"$bin" bench queue --n 300 --dir "$qdir/bench-queue"
"$bin" bench redis --n 300 --dir "$qdir/bench-redis"
# What an acknowledgement costs by durability and fsync policy, short.
"$bin" bench durability --n 50 --dir "$qdir/bench-durability"
# The end-to-end bench, short: directory storage with the latency probes, then
# S3 (s3s-fs in process) with batch submission.
"$bin" bench e2e --n 200 --latency 20 --capacity-n 50 --dir "$qdir/bench-e2e"
"$bin" bench e2e --n 200 --batch --s3 --capacity-n 0 --dir "$qdir/bench-e2e-s3"
rm -rf "$qdir"
if command -v node >/dev/null && command -v npm >/dev/null; then
  TESTAMUR="$bin" bash bench/bullmq.sh 300
else
  echo "test.sh: node/npm not installed, bench/bullmq.sh skipped"
fi
# Every fuzz target for a few seconds (scripts/fuzz.sh runs them longer). Its
# own build directory: the fuzz build uses other compiler flags.
bash scripts/fuzz.sh "${FUZZ_SECONDS:-4}"
echo "test.sh: all tests passed"
