# Thin wrapper around Meson so that a fresh Debian 12 machine needs only
# `make demo` and `make check`. Every target first makes sure the Debian
# packages are there (scripts/install-deps installs what is missing).
#
#   make                 build into build/
#   make check           build and run the whole test suite (unit, integration)
#   make check SANITIZE=address,undefined   the same in an ASan+UBSan build (build-san/)
#   make demo            build and run the demo (scripts/demo)
#   make install         install under PREFIX (default /usr/local)
#   make bench           run the benchmarks in bench/

PREFIX   ?= /usr/local
SANITIZE ?=
BUILD    := $(if $(SANITIZE),build-san,build)
MESON_SETUP_ARGS := --prefix=$(PREFIX) $(if $(SANITIZE),-Db_sanitize=$(SANITIZE) -Db_lundef=false)

.PHONY: all deps check demo install bench clean

all: $(BUILD)/build.ninja
	ninja -C $(BUILD)

deps:
	@scripts/install-deps --check >/dev/null 2>&1 || scripts/install-deps

$(BUILD)/build.ninja: | deps
	meson setup $(MESON_SETUP_ARGS) $(BUILD)

check: all
	meson test -C $(BUILD) --print-errorlogs --num-processes 2 $(if $(SUITE),--suite $(SUITE),--no-suite soak)

demo: all
	VSS_BUILD=$(abspath $(BUILD)) scripts/demo

bench: all
	VSS_BUILD=$(abspath $(BUILD)) bench/run-all

install: all
	meson install -C $(BUILD)

clean:
	rm -rf build build-san
