#!/usr/bin/env bash
# Builds the platform-specific package locode-linux-x64.vsix: the extension
# with the locode binary (stripped) in server/, as rust-analyzer ships its
# server. The extension runs server/locode unless locode.serverPath is set.
#   editors/vscode/scripts/package.sh                 # uses target/release/locode
#   LOCODE_BIN=/path/to/locode editors/vscode/scripts/package.sh
set -euo pipefail
ext="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
root="$(cd "$ext/../.." && pwd)"
bin="${LOCODE_BIN:-$root/target/release/locode}"
if [ ! -x "$bin" ]; then
  echo "error: locode binary not found at $bin (cargo build --release, or set LOCODE_BIN)" >&2
  exit 2
fi
case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) target=linux-x64 ;;
  *) echo "error: this script packages for linux-x64; this machine is $(uname -s)-$(uname -m)" >&2; exit 2 ;;
esac
cd "$ext"
if [ ! -d node_modules ]; then
  npm ci --no-audit --no-fund
fi
rm -rf server
mkdir -p server
# Without debug info: 17 MB instead of 170.
if command -v strip >/dev/null 2>&1; then
  strip -o server/locode "$bin"
else
  cp "$bin" server/locode
fi
chmod 755 server/locode
npm run --silent build
out="locode-$target.vsix"
# (No repository URL to rewrite the README's image links to: they stay relative.)
npx --no-install vsce package --target "$target" --allow-missing-repository --skip-license --no-rewrite-relative-links -o "$out" >&2
echo "$ext/$out"
