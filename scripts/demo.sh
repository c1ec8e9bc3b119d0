#!/usr/bin/env bash
# Quick start, part 1: a local cluster (own redis-server, a CC, two workservers)
# turns sample requests into signed PDFs. Extra arguments go to `testamur demo`
# (e.g. --serve --dir DIR to keep it running for integration work).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The dev profile (dependencies optimised, see Cargo.toml) is what scripts/test.sh
# builds too, so the two quick-start commands share one build.
if [ ! -x "${CARGO_TARGET_DIR:-target}/debug/testamur" ]; then
  echo "demo: first build: compiling every dependency (15 to 30 minutes on 2 cores)..."
fi
cargo build --locked --bin testamur
exec cargo run --locked --quiet --bin testamur -- demo "$@"
