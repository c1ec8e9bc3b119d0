#!/usr/bin/env bash
# Redis failovers in a row under a steady stream of submissions: the suite's
# Sentinel test (a primary, a replica, three Sentinels, two CCs, two workservers)
# with N failovers instead of one, the roles swapping each time. Every 202 must end
# downloadable exactly once. Figures: docs/RELIABILITY.md.
#   scripts/failover-soak.sh [N] [DURABILITY]    (default 10, replica)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/testamur-target}"
export TESTAMUR_FAILOVERS="${1:-10}"
export TESTAMUR_TEST_DURABILITY="${2:-replica}"
exec cargo test --workspace --locked --test it \
  production_redis::sentinel_failover_with_replica_durability_keeps_every_acknowledged_request \
  -- --nocapture
