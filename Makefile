# Havel's two commands for a fresh Debian 12 machine (as root):
#   make run   installs what the host needs, builds Havel, and builds the default example with it
#   make test  installs, builds, and runs every test
export PATH := /opt/swift/usr/bin:$(PATH)

SWIFT   ?= swift
HAVEL   := .build/debug/havel
EXAMPLE ?= examples/default.xml

.PHONY: all setup build static run test test-slow examples bench clean deb

all: build

setup:
	@scripts/setup-host.sh

build: setup
	$(SWIFT) build

# havel with the Swift runtime linked in, for the initvm's daemon (havel initvm create finds it). Its own
# scratch path: objects compiled for a static link cannot be linked dynamically, and swift build does not
# rebuild them when the flag changes.
static: setup
	$(SWIFT) build --static-swift-stdlib --product havel --scratch-path .build/static

run: build
	$(HAVEL) validate $(EXAMPLE)
	$(HAVEL) show $(EXAMPLE)
	$(HAVEL) build $(EXAMPLE) -o build/default
	@scripts/how-to-boot.sh build/default

# The build plan's tests run first as an unprivileged user, which shows they need no root; then every test.
# One build of Havel: the initvm's daemon is this debug build, its Swift runtime libraries copied along.
test: setup
	$(SWIFT) build --build-tests
	$(SWIFT) build --product generate-manual
	scripts/unprivileged-tests.sh "$$($(SWIFT) build --show-bin-path)/HavelPackageTests.xctest" 'PlanRunTests|BuildPlanTests'
	$(SWIFT) test --skip-build

# The broad matrix of real builds (architectures, releases, both install tools, users' projects, a GRUB image
# that boots, every example), ELBE's armhf.xml and amd64-bookworm.xml with their boot checks, the arm64 kernel image that boots, the arm64 SDK,
# the emulated arm64 own-package build, <src-pkg> rebuilds, the fast and the emulated install path compared on armhf (with a kernel), riscv64 trixie and amd64, and the .deb
# (which needs make static's havel) installed into a fresh Debian 12, for changes that touch them; `make test`
# skips them. HAVEL_SLOW_CASES=a,b runs only the named matrix cases (the install-path comparisons are named paths-BUILDTYPE-SUITE). Root and the host's mirror; about 26 minutes on 2 cores (idle).
test-slow: static
	$(SWIFT) build --build-tests
	$(SWIFT) build --product generate-manual
	HAVEL_SLOW_TESTS=1 $(SWIFT) test --skip-build --filter 'SlowMatrixTests|DebianPackageTests|armhfBuildsAndItsOwnBootCheckLogsIn|theAmd64BookwormImageBootsToALoginInItsOwnCheck|aBootedImageMakesItsOwnHostKeys|anArm64ImageWithItsKernelBootsToALogin|anEmulatedBuildRunsInAnArm64Target|sourcePackagesFromTheMirrorAndAUrlListAreRebuiltAndInstalled|theCrossSDKBuildsAProgramThatRunsAgainstTheSysroot|otherArchitecturesAndReleasesGiveTheSameTree|anArm64BullseyeTreeIsTheSameWithTheHelpers'

# ELBE's own example projects (../shared/elbe-examples) built with --mirror host, checks included; prints
# a table of results and times (hours on 2 cores; HAVEL_EXAMPLES=a.xml,b.xml builds only those).
examples: build
	scripts/build-elbe-examples.sh

# The Debian package build/havel_<version>_amd64.deb: a release build with the Swift runtime linked in (no toolchain
# needed where it is installed), man pages from the commands' help, bash/zsh/fish completions, the daemon's systemd
# unit (disabled) and the user's guide; lintian checks it. `make test` packs the static debug build the same way and
# installs it into a fresh Debian 12 tree (DebianPackageTests).
deb: setup
	$(SWIFT) build -c release --static-swift-stdlib --product havel --scratch-path .build/static
	$(SWIFT) build --product generate-manual
	deb=$$(scripts/make-deb.sh .build/static/release/havel build) && lintian --fail-on error,warning --info "$$deb" && echo "$$deb"

clean:
	rm -rf .build

# Havel against a bare mmdebstrap of the same packages (with and without a packed 1 GiB image), disk image creation,
# the initvm (root; ~25 minutes).
bench: static
	$(SWIFT) build -c release
	bench/build-vs-mmdebstrap bench/reference-arm64.xml 2
	bench/build-vs-mmdebstrap bench/reference-arm64-image.xml 1
	bench/image-creation 2
	bench/initvm bench/reference-amd64.xml 1
