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
echo "test.sh: all tests passed"
