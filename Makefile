# halo: two commands on a fresh machine.
#
#   make demo   installs what is missing, builds, runs the main job on samples/
#   make test   installs what is missing, builds, runs every test suite
#
# libtorch comes from the pinned torch wheel in .venv (LIBTORCH_USE_PYTORCH);
# the halo-torch plug-in records its folder as run path, so target/release/halo
# runs without LD_LIBRARY_PATH.

SHELL := /bin/bash
export LIBTORCH_USE_PYTORCH := 1
export PATH := $(CURDIR)/.venv/bin:$(PATH)

.PHONY: setup build demo test
.DEFAULT_GOAL := demo

setup:
	@bash tools/setup.sh

build: setup
	cargo build --release --workspace

demo: build
	@bash tools/demo.sh

test: build
	@bash tools/test.sh
