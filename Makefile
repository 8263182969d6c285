# Havel's two commands for a fresh Debian 12 machine (as root):
#   make run   installs what the host needs, builds Havel, and builds the default example with it
#   make test  installs, builds, and runs every test
export PATH := /opt/swift/usr/bin:$(PATH)

SWIFT   ?= swift
HAVEL   := .build/debug/havel
EXAMPLE ?= examples/default.xml

.PHONY: all setup build run test bench clean

all: build

setup:
	@scripts/setup-host.sh

build: setup
	$(SWIFT) build

run: build
	$(HAVEL) validate $(EXAMPLE)
	$(HAVEL) show $(EXAMPLE)
	$(HAVEL) build $(EXAMPLE) -o build/default

test: setup
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

clean:
	rm -rf .build

# Havel against a bare mmdebstrap of the same packages, and disk image creation (root; a few minutes).
bench: setup
	$(SWIFT) build -c release
	bench/build-vs-mmdebstrap bench/reference-arm64.xml 2
	bench/image-creation 2
