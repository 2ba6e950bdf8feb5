#!/usr/bin/env bash
# Installs what test/code-server.sh needs from npm, once: code-server (4.100.x,
# the last line that runs on Node 20) and playwright-core, pinned, into
# $LOCODE_VSCODE_TEST_DEPS (default ~/.cache/locode/vscode-test). Does nothing
# when they are already there. Chromium, ripgrep and libkrb5-dev come from
# apt (make test-deps).
#
# code-server's own postinstall cannot run here: it fetches ripgrep from
# GitHub (@vscode/ripgrep), which only the npm registry may be reached for.
# So its steps run one by one: Code's dependencies without their scripts,
# the native modules rebuilt (node-gyp; kerberos needs libkrb5-dev), and
# Debian's rg where @vscode/ripgrep would have put its download.
set -euo pipefail
CODE_SERVER_VERSION=4.100.3
PLAYWRIGHT_VERSION=1.55.1
deps="${LOCODE_VSCODE_TEST_DEPS:-$HOME/.cache/locode/vscode-test}"
stamp="$deps/installed-$CODE_SERVER_VERSION-$PLAYWRIGHT_VERSION"
if [ -f "$stamp" ] && [ -x "$deps/node_modules/.bin/code-server" ]; then
  exit 0
fi
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$node_major" != 20 ]; then
  echo "error: code-server $CODE_SERVER_VERSION needs Node 20; this is $(node --version)" >&2
  exit 2
fi
for tool in rg make g++ python3; do
  command -v "$tool" >/dev/null 2>&1 || { echo "error: $tool is needed to install code-server (make test-deps)" >&2; exit 2; }
done
rm -f "$deps"/installed-*
mkdir -p "$deps"
echo "installing code-server $CODE_SERVER_VERSION and playwright-core $PLAYWRIGHT_VERSION into $deps"
npm install --no-audit --no-fund --ignore-scripts --prefix "$deps" \
  "code-server@$CODE_SERVER_VERSION" "playwright-core@$PLAYWRIGHT_VERSION"
# argon2 (code-server's password hashing) built here rather than fetched from GitHub.
(cd "$deps" && npm_config_build_from_source=true npm rebuild argon2)
cd "$deps/node_modules/code-server/lib/vscode"
npm install --omit=dev --ignore-scripts --no-audit --no-fund
# node-pty's script runs node-gyp through npx (npm_config_yes: without a prompt).
npm_config_yes=true npm rebuild kerberos @parcel/watcher node-pty @vscode/spdlog native-watchdog @vscode/deviceid
mkdir -p node_modules/@vscode/ripgrep/bin
cp "$(command -v rg)" node_modules/@vscode/ripgrep/bin/rg
# What code-server's postinstall.sh links.
ln -sfn node_modules node_modules.asar
ln -sfn code-linux.sh bin/remote-cli/code-server
ln -sfn browser-linux.sh bin/helpers/browser.sh
(cd extensions && npm install --omit=dev --no-audit --no-fund)
"$deps/node_modules/.bin/code-server" --version >/dev/null
touch "$stamp"
