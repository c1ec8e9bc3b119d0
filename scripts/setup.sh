#!/usr/bin/env bash
# Installs what testamur needs to build, run and test on Debian/Ubuntu, and only
# what is missing. As root it runs apt-get; otherwise it uses `sudo -n` if that works
# without a password, and else prints the exact command to run and stops.
set -euo pipefail

# Runtime: redis-server (queue), fonts (DejaVu now, Noto for every script).
# Tests: gnupg (gpg --verify), poppler-utils (pdftotext, pdffonts).
# Build: a C toolchain, pkg-config, OpenSSL headers (sequoia's crypto backend) and
# libclang (bindgen for the OpenSSL bindings).
PACKAGES=(redis-server gnupg poppler-utils fonts-dejavu-core fonts-noto-core fonts-noto-cjk
          build-essential pkg-config libssl-dev libclang-dev ca-certificates)
# `setup.sh --test` (scripts/test.sh): also a headless browser for the dashboard
# test (Debian's chromium and its WebDriver), openssl (HMAC checks), faketime
# (a CC with a skewed clock), Python's venv (schemathesis, below) and haproxy
# (tests/it/haproxy.rs runs the load balancer configuration of docs/DEPLOYMENT.md,
# deploy/haproxy.cfg, in front of two CCs; the test starts its own process on free
# ports, never the service that Debian's package installs), and libnss3-tools
# (certutil: the NSS database of the test CA that pdfsig checks PDF signatures with).
if [ "${1:-}" = "--test" ]; then
  PACKAGES+=(chromium chromium-driver openssl faketime python3 python3-venv haproxy libnss3-tools)
  # Node.js for the independent credential verifier (Digital Bazaar's, below) and
  # bench/bullmq.sh; a Node.js from elsewhere (nodesource, nvm) is fine.
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    PACKAGES+=(nodejs npm)
  fi
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: this is not a Debian/Ubuntu system; install the equivalents of: ${missing[*]}" >&2
    exit 1
  fi
  if [ "$(id -u)" = 0 ]; then
    SUDO=()
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
  else
    echo "setup: missing packages: ${missing[*]}" >&2
    echo "setup: run this, then try again:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" apt-get update -qq
  "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    echo "setup: cargo is in ~/.cargo/bin but not on PATH; run: source \"\$HOME/.cargo/env\"" >&2
  else
    echo "setup: no Rust toolchain. Install one (Rust 1.94 or newer) with:" >&2
    echo "  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y && source \"\$HOME/.cargo/env\"" >&2
  fi
  exit 1
fi
rustc_minor=$(rustc --version | sed -E 's/^rustc 1\.([0-9]+).*/\1/')
if [ "${rustc_minor:-0}" -lt 94 ]; then
  echo "setup: Rust 1.94 or newer is needed (found $(rustc --version)); run: rustup update stable" >&2
  exit 1
fi

# `--test`: schemathesis from PyPI, pinned, in a virtualenv of its own
# ($TESTAMUR_PY, default ~/.cache/testamur-py): it checks the CC against its own
# /openapi.json (tests/it/api_schema.rs, scripts/api-check.sh).
if [ "${1:-}" = "--test" ]; then
  ST_VERSION=4.32.5
  venv="${TESTAMUR_PY:-$HOME/.cache/testamur-py}"
  if ! "$venv/bin/st" --version 2>/dev/null | grep -qF "$ST_VERSION"; then
    echo "setup: installing schemathesis $ST_VERSION into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "schemathesis==$ST_VERSION"
  fi
fi

# `--test`: Digital Bazaar's Verifiable Credentials libraries from the npm registry,
# pinned by tests/credentials/package-lock.json, in $TESTAMUR_VCJS (default
# ~/.cache/testamur-vcjs): they verify the published credentials (tests/it/credentials.rs).
if [ "${1:-}" = "--test" ]; then
  vcjs="${TESTAMUR_VCJS:-$HOME/.cache/testamur-vcjs}"
  here="$(cd "$(dirname "$0")/.." && pwd)"
  if ! cmp -s "$here/tests/credentials/package-lock.json" "$vcjs/package-lock.json" \
     || [ ! -d "$vcjs/node_modules/@digitalbazaar/vc" ]; then
    echo "setup: installing the credential verifier (npm) into $vcjs"
    mkdir -p "$vcjs"
    cp "$here/tests/credentials/package.json" "$here/tests/credentials/package-lock.json" "$vcjs/"
    (cd "$vcjs" && npm ci --no-audit --no-fund --silent)
  fi
fi

# `setup.sh --test`: cargo-fuzz for the fuzz targets (scripts/fuzz.sh), pinned.
CARGO_FUZZ_VERSION=0.13.2
if [ "${1:-}" = "--test" ] && ! cargo fuzz --version 2>/dev/null | grep -q " $CARGO_FUZZ_VERSION"; then
  echo "setup: installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION" --quiet
fi

# The queue must be ours: tests and the demo start their own redis-server, so a
# system service is not needed. Debian starts one on install; it is left alone.
echo "setup: ok ($(rustc --version), $(redis-server --version | cut -d' ' -f3), $(gpg --version | head -1))"
