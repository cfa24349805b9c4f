# Makefile -- thin wrapper over CMake for the README's two commands. `make help` lists targets.
BUILD ?= build
JOBS ?= $(shell nproc)
PORT ?= 8080

.PHONY: all build run test clean help

all: build

build:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(BUILD) -j $(JOBS)

# The example server: arrpcd with the demo plugin, in the foreground, on 127.0.0.1:$(PORT).
run: build
	@echo "arrpcd: serving the demo handler on 127.0.0.1:$(PORT); stop with Ctrl-C"
	@echo "call it:  $(BUILD)/bin/arrpc-call --port $(PORT) '{\"echo\": \"hello\"}'"
	exec $(BUILD)/bin/arrpcd --listen 127.0.0.1:$(PORT) --handler $(BUILD)/lib/arrpc-demo.so

# Every test; ctest's exit status fails the target (and CI) when any test fails.
test: build
	cd $(BUILD) && ctest --output-on-failure --timeout 600 -j 2

clean:
	rm -rf $(BUILD)

help:
	@echo "make build | run (PORT=8080) | test | clean"
