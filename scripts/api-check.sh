#!/usr/bin/env bash
# A longer schemathesis run against the CC's own /openapi.json, once per role
# (public, lms, operator, workserver token), all checks; the test suite runs the
# same with 25 examples per operation. Usage: scripts/api-check.sh [EXAMPLES]
# (default 200). Bounded by `timeout` (30 min). Figures: docs/RELIABILITY.md.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
TESTAMUR_API_EXAMPLES="${1:-200}" timeout 1800 \
  cargo test --workspace --locked --test it -- --exact \
  api_schema::openapi_document_holds_for_every_role --nocapture >"$log" 2>&1 || status=$?
grep -E "^schemathesis as|generated|failures|test result" "$log" || true
if [ "$status" -ne 0 ]; then tail -n 200 "$log"; fi
exit "$status"
