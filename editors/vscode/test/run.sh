#!/usr/bin/env bash
# The VS Code extension's test: builds it and drives the real locode binary
# through the extension's protocol layer with node's built-in test runner.
#   editors/vscode/test/run.sh                  # uses target/release/locode
#   LOCODE_BIN=/path/to/locode editors/vscode/test/run.sh
# npm ci runs only when node_modules is missing (it needs the npm registry);
# build and test then work offline.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ext="$(cd "$here/.." && pwd)"
root="$(cd "$ext/../.." && pwd)"
for tool in node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "error: $tool not found; install Node.js 20+ (Debian/Ubuntu: sudo apt-get install -y nodejs npm)" >&2
    exit 2
  fi
done
bin="${LOCODE_BIN:-$root/target/release/locode}"
case "$bin" in /*) ;; *) bin="$PWD/$bin" ;; esac
if [ ! -x "$bin" ]; then
  echo "error: locode binary not found at $bin (cargo build --release, or set LOCODE_BIN)" >&2
  exit 2
fi
cd "$ext"
if [ ! -d node_modules ]; then
  npm ci --no-audit --no-fund
fi
npm run --silent build
LOCODE_BIN="$bin" npm test --silent
