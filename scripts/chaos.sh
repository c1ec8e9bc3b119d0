#!/usr/bin/env bash
# A long chaos run (docs/RELIABILITY.md): the chaos test of the suite with more
# time, so it makes 200+ random SIGKILLs of workservers and CCs (restarted at once)
# and a Redis restart while batches keep arriving. Bounded: SECS (default 330) of
# chaos, then the checks. Usage: scripts/chaos.sh [SECS] [SEED]
set -euo pipefail
cd "$(dirname "$0")/.."
export TESTAMUR_CHAOS_SECS="${1:-330}"
export TESTAMUR_CHAOS_SEED="${2:-0}"
timeout $((TESTAMUR_CHAOS_SECS + 600)) \
  cargo test --workspace --locked --test it -- chaos --nocapture 2>&1 | grep -E "CHAOS|test result|panicked|assert"
