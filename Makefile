# Swerve developer entry points. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := build

SWIFT      ?= swift
# Build directory (swift --scratch-path); override to keep parallel builds apart.
BUILD_DIR  ?= .build
SWIFT_FLAGS := --scratch-path $(BUILD_DIR)
VENV       ?= .venv
PY         := $(VENV)/bin/python
HOST       ?= 127.0.0.1
GRPC_PORT  ?= 8001
METRICS_PORT ?= 8002
PYTEST_ARGS ?=
# Interop suite guard: SIGINT (pytest tears down its servers) after 15 minutes.
PYTEST := timeout -s INT -k 60 900 $(PY) -m pytest IntegrationTests/interop

# System packages: build deps, then the benchmark clients (h2load etc.); openssl makes the TLS tests'
# certificates; libb64-0d is a library Triton's perf_analyzer links (test_statistics.py); prometheus
# brings promtool, which checks deploy/prometheus (test_prometheus_rules.py); chromium renders
# `swerve bench --report` pages headless (test_bench.py).
APT_PKGS := libnghttp2-dev libprotobuf-c-dev protobuf-c-compiler libopenblas-dev libjemalloc-dev \
            nghttp2-client nghttp2-server openssl haproxy curl libb64-0d prometheus chromium

.PHONY: help deps venv build release examples run cluster cluster-down test swift-test interop fuzz fuzz-corpus bench bench-paths bench-training bench-cluster bench-core bench-trees bench-computed bench-math clean

help:
	@echo "make deps      install missing apt packages ($(APT_PKGS))"
	@echo "make venv      create $(VENV) with IntegrationTests/interop/requirements.txt"
	@echo "make build     debug build"
	@echo "make release   release build"
	@echo "make examples  regenerate examples/repository (needs venv)"
	@echo "make run       serve examples/repository on $(HOST):$(GRPC_PORT) (metrics $(METRICS_PORT))"
	@echo "make cluster   $(CLUSTER_N) release replicas of examples/repository behind HAProxy (deploy/local/cluster.sh; make cluster-down stops them)"
	@echo "make test      swift test + interop tests (pytest) against .build/debug/swerve"
	@echo "make interop   only the interop tests (PYTEST_ARGS='-k errors' to select)"
	@echo "make fuzz      libFuzzer+ASan targets (Fuzz/), FUZZ_SECONDS=60 each; not part of make test"
	@echo "make fuzz-corpus  regenerate the seed corpus Fuzz/corpus (needs venv)"
	@echo "make bench     benchmarks/run.sh"
	@echo "make bench-paths  benchmarks/paths.sh (static table / cache / batcher)"
	@echo "make bench-cluster  benchmarks/cluster.sh (HAProxy cost, affine vs round-robin routing)"
	@echo "make bench-training  benchmarks/training.sh (trainer vs scikit-learn, 1 vs 2 threads)"
	@echo "make bench-core  benchmarks/core.sh (the core beside onnxruntime on exported MLPs: Relu/Tanh/Sigmoid/GELU/LayerNorm)"
	@echo "make bench-computed  benchmarks/computed.sh (computed and cached path vs nghttpd; batcher rows/s vs the core)"
	@echo "make bench-math  swerve bench --math (vector math error over every float of each range, speed vs libm)"

deps:
	@missing=""; \
	for p in $(APT_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" \
	    || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi; \
	  $$sudo apt-get update && \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; \
	fi

venv:
	@VENV=$(VENV) scripts/setup-venv.sh

build: deps
	$(SWIFT) build $(SWIFT_FLAGS)

release: deps
	$(SWIFT) build $(SWIFT_FLAGS) -c release

examples: venv
	$(PY) examples/make_examples.py

run: release
	$(BUILD_DIR)/release/swerve serve --repository examples/repository \
	  --host $(HOST) --grpc-port $(GRPC_PORT) --metrics-port $(METRICS_PORT)

CLUSTER_N ?= 3
cluster: release
	SWERVE_BIN=$(abspath $(BUILD_DIR))/release/swerve deploy/local/cluster.sh up -n $(CLUSTER_N) --repository examples/repository
	@echo "endpoint: $$(deploy/local/cluster.sh endpoint)  (deploy/local/cluster.sh status|add|remove|down)"

cluster-down:
	deploy/local/cluster.sh down

# The Swift tests run in two invocations. Suites that wait on sockets, threads and clocks (servers in
# process, the registry, rollouts, the transport, load timeouts, log writers) run apart from the
# CPU-heavy synchronous suites (kernels, operators, training): swift-testing runs every test on the
# cooperative pool, two threads on a 2-core machine, and synchronous suites that hold both for a
# minute starved the waiting tests' continuations past their bounds.
IO_TESTS := ^(SwerveServerTests|SwerveClientTests|SwerveRegistryTests|SwerveRolloutTests|SwerveTransportTests|SwerveRepositoryTests)\.|^SwerveServingTests\.(ModelLoadHardeningTests|PredictionLogTests|DriftMonitorTests)/|^SwerveTrainingTests\.IngestLogTests/
SWIFT_TEST = $(SWIFT) test $(SWIFT_FLAGS) --skip '$(IO_TESTS)' && $(SWIFT) test $(SWIFT_FLAGS) --filter '$(IO_TESTS)'

swift-test: deps
	$(SWIFT) build $(SWIFT_FLAGS)
	$(SWIFT_TEST)

interop: deps venv
	$(SWIFT) build $(SWIFT_FLAGS)
	SWERVE_BIN=$(abspath $(BUILD_DIR))/debug/swerve $(PYTEST) $(PYTEST_ARGS)

test: deps venv
	$(SWIFT) build $(SWIFT_FLAGS)
	$(SWIFT_TEST)
	SWERVE_BIN=$(abspath $(BUILD_DIR))/debug/swerve $(PYTEST) $(PYTEST_ARGS)

# Each target built with -sanitize=fuzzer,address into .build-fuzz and run FUZZ_SECONDS, one after
# the other; knobs (FUZZ_TARGETS, FUZZ_MALLOC_MB, FUZZ_RSS_MB, FUZZ_ARGS, ...) in Fuzz/run.sh.
FUZZ_SECONDS ?= 60
fuzz: deps
	FUZZ_SECONDS=$(FUZZ_SECONDS) Fuzz/run.sh

fuzz-corpus: venv
	$(PY) Fuzz/make_corpus.py

bench: deps venv
	SWERVE_BUILD_DIR=$(BUILD_DIR) benchmarks/run.sh

bench-paths: deps venv
	SWERVE_BUILD_DIR=$(BUILD_DIR) benchmarks/paths.sh

bench-core: deps venv
	benchmarks/core.sh

bench-trees: deps venv
	benchmarks/trees.sh

bench-computed: deps
	benchmarks/computed.sh

bench-math: release
	$(BUILD_DIR)/release/swerve bench --math

bench-cluster: deps venv
	SWERVE_BUILD_DIR=$(BUILD_DIR) benchmarks/cluster.sh

bench-training: deps venv
	SWERVE_BUILD_DIR=$(BUILD_DIR) benchmarks/training.sh

clean:
	rm -rf $(BUILD_DIR) IntegrationTests/interop/gen
