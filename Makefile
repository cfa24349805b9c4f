# Makefile -- thin wrapper over CMake for the README's two commands. `make help` lists targets.
BUILD ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
TSAN_BUILD ?= build-tsan
JOBS ?= $(shell nproc)
PORT ?= 8080
METRICS_PORT ?= 9095
FUZZ_SECONDS ?= 15

.PHONY: all build run test check test-valgrind test-asan test-tsan test-fuzz deb clean help

all: build

build:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(BUILD) -j $(JOBS)

# The example server: arrpcd with the demo plugin, in the foreground, on 127.0.0.1:$(PORT),
# metrics on 127.0.0.1:$(METRICS_PORT) (arrpc 0.5.0's default port).
run: build
	@echo "arrpcd: serving the demo handler on 127.0.0.1:$(PORT); stop with Ctrl-C"
	@echo "call it:  $(BUILD)/bin/arrpc-call --port $(PORT) '{\"echo\": \"hello\"}'"
	@echo "metrics:  curl http://127.0.0.1:$(METRICS_PORT)/metrics"
	exec $(BUILD)/bin/arrpcd --listen 127.0.0.1:$(PORT) --handler $(BUILD)/lib/arrpc-demo.so \
		--metrics-listen 127.0.0.1:$(METRICS_PORT)

# Every test, in turn; the first failure stops it and fails the target (and CI): the suite with
# the valgrind pass over the unit tests, the suite again under ASan + UBSan, the fuzz smoke runs.
test:
	$(MAKE) check
	$(MAKE) test-asan
	$(MAKE) test-tsan
	$(MAKE) test-fuzz

# The suite: unit, integration, and valgrind memcheck over the unit tests (label valgrind).
check: build
	cd $(BUILD) && ctest --output-on-failure --timeout 600 -j 2

test-valgrind: build
	cd $(BUILD) && ctest --output-on-failure --timeout 600 -j 2 -L valgrind

# Everything built with -fsanitize=address,undefined (arrpcd and its workers too); any report
# fails the test it came from, or the last test (sanitizer_logs_empty).
test-asan:
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DARRPC_SANITIZE=address,undefined
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ctest --output-on-failure --timeout 600 -j 2

# The tests that run handler threads, built with ThreadSanitizer (clang: gcc's TSan refuses the
# atomic fences the metrics use); any report fails the test it came from or the last one.
TSAN_TESTS = unit_test_pool|integration_test_threads|integration_test_handlers|integration_test_server_api|integration_test_access_log$$|integration_test_crash
test-tsan:
	cmake -S . -B $(TSAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
	    -DARRPC_SANITIZE=thread
	cmake --build $(TSAN_BUILD) -j $(JOBS)
	cd $(TSAN_BUILD) && ctest --output-on-failure --timeout 600 -j 2 \
	    -R '$(TSAN_TESTS)|sanitizer_logs'

# The libFuzzer harnesses (clang), each run FUZZ_SECONDS over its seed corpus (tests/fuzz/).
test-fuzz:
	cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
	    -DARRPC_FUZZ=ON -DARRPC_TESTS=OFF -DARRPC_FUZZ_SECONDS=$(FUZZ_SECONDS)
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzzers
	cd $(FUZZ_BUILD) && ctest --output-on-failure -j 2 -L fuzz

# The Debian packages (docs/packaging.md), built from a copy of the checkout in $(BUILD)/deb/src:
# the .deb files land in $(BUILD)/deb. Needs dpkg-dev and debhelper (tools/install-deps.sh).
deb:
	sh tools/build-deb.sh $(BUILD)/deb $(JOBS)
	@ls $(BUILD)/deb/*.deb

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(FUZZ_BUILD)

help:
	@echo "make build | run (PORT=8080) | test | deb | clean"
	@echo "  test = check (suite + valgrind) + test-asan (ASan/UBSan suite) + test-tsan (threads"
	@echo "         under ThreadSanitizer) + test-fuzz (smoke)"
	@echo "  make test-valgrind | test-fuzz FUZZ_SECONDS=300 | docs/testing.md"
