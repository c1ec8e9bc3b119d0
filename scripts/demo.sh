#!/usr/bin/env bash
# Quick start, part 1: a local cluster (own redis-server, a CC, two workservers)
# turns sample requests into signed PDFs. Extra arguments go to `testamur demo`
# (e.g. --serve --dir DIR to keep it running for integration work).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec cargo run --release --quiet --bin testamur -- demo "$@"
