# hx.reliability: two commands for users (`make run`, `make test`), the rest for contributors.
#
# Everything a target needs is installed by the target itself (apt packages, rustup
# targets, a pinned Python venv), so both commands work on a fresh Debian 12 machine.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VENV        ?= .venv
VENV215     ?= .venvs/ansible-2.15
COLLECTIONS ?= .cache/collections
STAMPS      := .cache/stamps
PY          := $(VENV)/bin/python
# The modules, one binary each (see rust/reliability-modules/src/bin/).
# The monitor daemon and CLI (rust/reliability-monitor), shipped in the role.
MONITOR_DIR := roles/reliability_monitor/files
MODULES     := reliability_facts health_check backup_manifest backup_verify backup_retention circuit_breaker service_recovery maintenance_window
ARCHES      := x86_64 aarch64
TRIPLE_x86_64  := x86_64-unknown-linux-musl
TRIPLE_aarch64 := aarch64-unknown-linux-musl
# No cross gcc: rust-lld links static aarch64 binaries on its own, and clang compiles the
# C and assembly that ring (rustls' crypto) and libzstd (tar.zst restores) carry, for either
# target. ring needs no libc headers; libzstd's few (stdlib.h, string.h: malloc, memcpy)
# come from the host's glibc headers for x86_64 and from libc6-dev-arm64-cross's for
# aarch64, declarations musl's libc.a (linked by rustc) satisfies alike.
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER := rust-lld
export CC_x86_64_unknown_linux_musl := clang
export CFLAGS_x86_64_unknown_linux_musl := --target=x86_64-linux-musl
export CC_aarch64_unknown_linux_musl := clang
export CFLAGS_aarch64_unknown_linux_musl := --target=aarch64-linux-musl -isystem /usr/aarch64-linux-gnu/include
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: help run test setup build collection install cargo-test lint docs sanity integration molecule bench bench-quick clean fuzz-smoke fuzz

help:
	@echo "make run    build, install the collection, print this host's health summary"
	@echo "make test   every test: cargo, lint, docs, sanity, integration (localhost + systemd hosts), molecule, fuzz and bench smoke runs"
	@echo "make bench  benchmarks under bench/ (slow; report in bench/results/, summary in the README; make test runs bench-quick)"
	@echo "make fuzz   every fuzz target for FUZZ_SECONDS each (make test runs fuzz-smoke)"

## ---- the two commands -------------------------------------------------------------

run: install
	ansible-playbook playbooks/health_summary.yml

test: install
	$(MAKE) cargo-test lint docs sanity integration molecule fuzz-smoke bench-quick
	@echo "make test: all suites passed"

## ---- set-up --------------------------------------------------------------------------

setup: $(STAMPS)/apt $(STAMPS)/rustup $(STAMPS)/venv $(STAMPS)/venv215 $(STAMPS)/binfmt

$(STAMPS)/apt: tools/apt-packages.txt
	tools/setup-host apt tools/apt-packages.txt
	@mkdir -p $(STAMPS) && touch $@

$(STAMPS)/rustup:
	tools/setup-host rustup $(foreach a,$(ARCHES),$(TRIPLE_$(a)))
	@mkdir -p $(STAMPS) && touch $@

$(STAMPS)/venv: requirements/dev.txt requirements/dev.lock.txt
	tools/setup-host venv $(VENV) requirements/dev.txt requirements/dev.lock.txt
	@mkdir -p $(STAMPS) && touch $@

# aarch64 binaries run under qemu-user in the tests. Not a stamp that survives a reboot:
# re-checked each time (cheap).
.PHONY: $(STAMPS)/binfmt
$(STAMPS)/binfmt: $(STAMPS)/apt
	tools/setup-host binfmt

$(STAMPS)/venv215: requirements/ansible-2.15.txt
	tools/setup-host venv $(VENV215) requirements/ansible-2.15.txt
	@mkdir -p $(STAMPS) && touch $@

## ---- build ---------------------------------------------------------------------------

# Static musl binaries for every architecture, placed in bin/ as <module>_<arch>: a
# directory of the collection that no plugin loader reads (ansible-doc -l tripped on them
# under plugins/modules/; the last line removes any an older build left there). The
# action plugin of each module picks one for the target. The monitor goes into the role's
# files/ as reliability-monitor_<arch>, which the role copies by the host's architecture.
MONITORS    := $(foreach a,$(ARCHES),$(MONITOR_DIR)/reliability-monitor_$(a))
BINARIES    := $(foreach a,$(ARCHES),$(foreach m,$(MODULES),bin/$(m)_$(a))) $(MONITORS)
build: $(STAMPS)/rustup $(STAMPS)/apt
	$(foreach a,$(ARCHES),cargo build --release --locked -p reliability-modules -p reliability-monitor --target $(TRIPLE_$(a)) &&) true
	install -d bin
	$(foreach a,$(ARCHES),$(foreach m,$(MODULES),install -m 0755 target/$(TRIPLE_$(a))/release/$(m) bin/$(m)_$(a) &&)) true
	$(foreach a,$(ARCHES),install -D -m 0755 target/$(TRIPLE_$(a))/release/reliability-monitor $(MONITOR_DIR)/reliability-monitor_$(a) &&) true
	rm -f $(foreach a,$(ARCHES),$(foreach m,$(MODULES),plugins/modules/$(m)_$(a)))

collection: build $(STAMPS)/venv
	mkdir -p build
	rm -f build/hx-reliability-*.tar.gz
	ansible-galaxy collection build --force --output-path build .

install: collection
	rm -rf $(COLLECTIONS)/ansible_collections/hx/reliability
	ansible-galaxy collection install --force -p $(COLLECTIONS) build/hx-reliability-*.tar.gz

## ---- test suites ---------------------------------------------------------------------

cargo-test: $(STAMPS)/rustup
	cargo test --workspace --locked
	cargo clippy --workspace --all-targets --locked -- -D warnings
	cargo fmt --all --check

lint: $(STAMPS)/venv
	ansible-lint --profile production
	yamllint -s .
	tools/check-static $(BINARIES)

docs: install
	$(foreach m,$(MODULES),ansible-doc hx.reliability.$(m) > /dev/null &&) true

sanity: install
	VENV=$(CURDIR)/$(VENV) tests/sanity/run-sanity $(CURDIR)

integration: install $(STAMPS)/venv215 $(STAMPS)/binfmt
	tests/hosts/testhosts rootfs
	tests/hosts/testhosts rootfs --no-python
	pytest -q tests/integration

# ANSIBLE_HOME of this checkout: molecule's prerun installs the collection there (by default
# ~/.ansible/collections, which another checkout's run on the same machine would overwrite).
molecule: install
	tests/hosts/testhosts rootfs
	ANSIBLE_HOME=$(CURDIR)/.cache/ansible-home molecule test --all

# libFuzzer targets under fuzz/ (nightly, cargo-fuzz). New inputs go to .cache/fuzz/<target>,
# never into the committed seeds under fuzz/corpus/; a crash is saved under fuzz/artifacts/.
FUZZ_TARGETS       := module_args manifest archive http_response threshold duration size unit_name sql_screen
FUZZ_SMOKE_SECONDS ?= 15
FUZZ_SECONDS       ?= 900
FUZZ_FLAGS         := -rss_limit_mb=1024 -timeout=10 -max_len=1048576

$(STAMPS)/fuzz:
	tools/setup-host fuzz
	@mkdir -p $(STAMPS) && touch $@

# Short: a few seconds per target, in `make test`.
fuzz-smoke: $(STAMPS)/fuzz
	cd fuzz && cargo +nightly fuzz build -O
	$(foreach t,$(FUZZ_TARGETS),mkdir -p .cache/fuzz/$(t) && (cd fuzz && cargo +nightly fuzz run -O $(t) ../.cache/fuzz/$(t) corpus/$(t) -- $(FUZZ_FLAGS) -max_total_time=$(FUZZ_SMOKE_SECONDS) -print_final_stats=1) &&) true

# Long: FUZZ_SECONDS per target, on demand.
fuzz: $(STAMPS)/fuzz
	cd fuzz && cargo +nightly fuzz build -O
	$(foreach t,$(FUZZ_TARGETS),mkdir -p .cache/fuzz/$(t) && (cd fuzz && cargo +nightly fuzz run -O $(t) ../.cache/fuzz/$(t) corpus/$(t) -- $(FUZZ_FLAGS) -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1) &&) true

# Every benchmark side by side (boots one nspawn test host for the SSH halves); writes
# bench/results/<date>.{md,json} and the summary in README.md's Speed section.
bench: install
	bench/run

# The same scripts in seconds (one run, tiny data), to keep them working; in `make test`,
# where a broken script fails the run. bench/run's suites boot no test host;
# bench/footprint.sh's recovery part boots one (a few seconds). Nothing is written to
# README.md or bench/results/: bench/run's report goes to a temporary directory,
# footprint.sh's is only printed.
bench-quick: install
	BENCH_QUICK=1 bench/run
	BENCH_QUICK=1 bench/footprint.sh

clean:
	cargo clean
	rm -rf build .cache/collections bin $(MONITORS)
