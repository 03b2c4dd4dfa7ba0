# Entry points. Every target that needs host packages installs them first
# (scripts/install-deps.sh, apt-get as root), so each works on a fresh
# Debian 12 machine.
SHELL := /bin/bash
CARGO ?= cargo
TARGET := x86_64-unknown-linux-gnu
RELEASE := target/$(TARGET)/release
ROOTFS ?= target/rootfs/busybox

.PHONY: deps build rootfs demo test test-vm torture fuzz bench docs lint clean

deps:
	scripts/install-deps.sh

build:
	$(CARGO) build --release --workspace

$(ROOTFS)/bin/busybox:
	setup-scripts/rootfs/busybox.sh --with rsync $(ROOTFS)

rootfs: $(ROOTFS)/bin/busybox

demo: deps build rootfs
	scripts/demo.sh $(ROOTFS)

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test: deps lint build rootfs
	WARDEN_TEST_ROOTFS=$(CURDIR)/$(ROOTFS) WARDEN_BIN_DIR=$(CURDIR)/$(RELEASE) \
	  $(CARGO) test --release --workspace -- --test-threads=2

# The integration tests again, on a cgroup-v2-only kernel (Debian's) booted
# under qemu; see tests/vm/README.md.
test-vm: deps build rootfs
	tests/vm/run.sh

# Malformed requests by the ten thousand, kill/re-link rounds, fuzzing.
torture: deps build rootfs
	WARDEN_TEST_ROOTFS=$(CURDIR)/$(ROOTFS) WARDEN_BIN_DIR=$(CURDIR)/$(RELEASE) tests/torture.sh

fuzz: deps
	tests/fuzz.sh

# Medians and ratios against peers measured in the same run; writes
# bench/results/ (CSV, PNG, README-table.md).
bench: deps
	bench/run.sh

# docs/cli.md from wardenctl's and warden's own help (tests/tests/docs.rs checks it).
docs: build
	docs/gen-cli.sh

clean:
	$(CARGO) clean
