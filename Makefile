# Entry points. Every target that needs host packages installs them first
# (scripts/install-deps.sh, apt-get as root), so each works on a fresh
# Debian 12 machine.
SHELL := /bin/bash
# cargo on PATH, else rustup's (a shell whose profile did not add it), else
# plain cargo: Debian's, which `deps` installs when there is none at all.
CARGO ?= $(or $(shell command -v cargo 2>/dev/null),$(wildcard $(HOME)/.cargo/bin/cargo),cargo)
TARGET := x86_64-unknown-linux-gnu
# Override to install binaries built elsewhere: make install RELEASE=DIR
RELEASE ?= target/$(TARGET)/release
ROOTFS ?= target/rootfs/busybox
PREFIX ?= /usr/local
DESTDIR ?=
# What `make install` takes from $(RELEASE) (scripts/install.sh has the layout).
INSTALLED_BINS := wardenctl wardend warden wsh wshd iomux-spawn iomux-link cgroup-devices

.PHONY: deps build rootfs demo test test-vm torture fuzz bench docs lint clean install uninstall

deps:
	scripts/install-deps.sh

build:
	$(CARGO) build --release --workspace

$(ROOTFS)/bin/busybox:
	setup-scripts/rootfs/busybox.sh --with rsync $(ROOTFS)

rootfs: $(ROOTFS)/bin/busybox

demo: deps build rootfs
	scripts/demo.sh $(ROOTFS)

# Debian's Rust (rustc-web, which install-deps.sh installs when there is no
# cargo) has no clippy: lint says so and goes on, except under CI=true.
lint:
	$(CARGO) fmt --all --check
	@if $(CARGO) clippy --version >/dev/null 2>&1; then \
	  echo "$(CARGO) clippy --workspace --all-targets -- -D warnings"; \
	  $(CARGO) clippy --workspace --all-targets -- -D warnings; \
	elif [ "$${CI:-}" = true ]; then \
	  echo "make lint: cargo clippy is not installed, and CI=true always runs it" >&2; exit 1; \
	else \
	  echo "make lint: skipping clippy: cargo clippy is not installed (Debian's Rust has none; rustup component add clippy)" >&2; \
	fi

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

# Built only when missing, so that `make install` (often run as root after a
# build as a user) does not rebuild; `make build install` rebuilds first.
$(addprefix $(RELEASE)/,$(INSTALLED_BINS)) &:
	$(CARGO) build --release --workspace

# Binaries, setup scripts, man pages, completions under $(DESTDIR)$(PREFIX);
# uninstall removes what the manifest install wrote lists (scripts/install.sh).
install: $(addprefix $(RELEASE)/,$(INSTALLED_BINS))
	PREFIX='$(PREFIX)' DESTDIR='$(DESTDIR)' RELEASE='$(RELEASE)' scripts/install.sh install

uninstall:
	PREFIX='$(PREFIX)' DESTDIR='$(DESTDIR)' scripts/install.sh uninstall

clean:
	$(CARGO) clean
