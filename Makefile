# Densa — top-level convenience targets. The quick start is two commands:
#   make demo   install what is needed, build, and run the main job on the bundled sample
#   make test   install what is needed, build, and run the tests
PRESET   ?= ci
BUILD    := build/$(PRESET)
JOBS     ?= $(shell nproc)
DENSA    := $(BUILD)/app/densa
DEMO_OUT ?= demo-out

.PHONY: all deps configure build demo test test-unit test-data asan bench format clean help

all: build

help:
	@echo "make demo    - install deps, build, run densa on a generated sample CT (output in $(DEMO_OUT)/)"
	@echo "make test    - install deps, build, run every test (data tests use ../shared/data when present)"
	@echo "make asan    - build and run unit + data tests under AddressSanitizer/UBSan"
	@echo "make bench   - build and run the benchmarks (tests/bench)"
	@echo "make format  - clang-format every C++ file"

deps:
	@packaging/install-deps.sh

configure: deps
	@cmake --preset $(PRESET) >/dev/null

build: configure
	cmake --build $(BUILD) -j$(JOBS)

demo: configure
	cmake --build $(BUILD) -j$(JOBS) --target densa
	@packaging/demo.sh $(DENSA) $(DEMO_OUT)

test: build
	ctest --preset $(PRESET) -j$(JOBS)

test-unit: build
	ctest --preset $(PRESET) -j$(JOBS) -L unit

test-data: build
	ctest --preset $(PRESET) -j$(JOBS) -L data

asan: deps
	cmake --preset asan >/dev/null
	cmake --build build/asan -j$(JOBS)
	ctest --preset asan -j$(JOBS) -L "unit|data"

bench: deps
	cmake --preset release >/dev/null
	cmake --build build/release -j$(JOBS) --target io_bench
	DENSA_DATA_DIR=$(CURDIR)/../shared/data build/release/tests/bench/io_bench

format:
	git ls-files '*.hpp' '*.cpp' | xargs clang-format -i

clean:
	rm -rf build $(DEMO_OUT)
