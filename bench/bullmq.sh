#!/usr/bin/env bash
# The queue path side by side (issue 15, docs/PERFORMANCE.md): BullMQ 5 (from the
# npm registry, installed into $BULLMQ_DIR, default ~/.cache/testamur-bullmq) on a
# throwaway redis-server of its own, then `testamur bench queue` on the same
# machine, each with N no-op jobs (default 20000), then `testamur bench redis` (the
# same scripts called straight, no HTTPS: the ceiling). Needs node and npm.
#   bench/bullmq.sh [N]       (TESTAMUR: the testamur binary to use)
set -euo pipefail
N="${1:-20000}"
here="$(cd "$(dirname "$0")" && pwd)"
dir="${BULLMQ_DIR:-$HOME/.cache/testamur-bullmq}"
bin="${TESTAMUR:-${CARGO_TARGET_DIR:-$here/../target}/release/testamur}"
command -v node >/dev/null || { echo "bullmq.sh: node is needed (apt-get install nodejs npm)" >&2; exit 1; }
[ -x "$bin" ] || { echo "bullmq.sh: no testamur binary at $bin (cargo build --release, or set TESTAMUR)" >&2; exit 1; }
mkdir -p "$dir"
if [ ! -d "$dir/node_modules/bullmq" ]; then
  (cd "$dir" && npm init -y >/dev/null && npm install --no-audit --no-fund --silent bullmq@5 >/dev/null)
fi
cp "$here/bullmq.mjs" "$dir/bullmq.mjs"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
work=$(mktemp -d)
trap 'redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" --daemonize yes >/dev/null
for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
echo "bullmq $(cd "$dir" && node -e 'console.log(require("bullmq/package.json").version)'), $(redis-server --version | cut -d' ' -f3)"
(cd "$dir" && REDIS_PORT="$port" N="$N" timeout 600 node bullmq.mjs)
"$bin" bench queue --n "$N" --dir "$work/testamur"
"$bin" bench redis --n "$N" --dir "$work/testamur-redis"
