# Build, test and demo entry points. `make demo` and `make test` are the two
# commands a fresh clone needs.

SHELL := /bin/bash
WASM_TARGET := wasm32-wasip1
CARGO ?= cargo
KWCTL ?= kwctl
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
SOURCES := $(shell find src -name '*.rs') Cargo.toml Cargo.lock
# Where cargo puts its output: CARGO_TARGET_DIR, build.target-dir in a cargo
# config, or target/. cargo metadata knows which.
TARGET_DIR := $(shell $(CARGO) metadata --format-version 1 --no-deps 2>/dev/null | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
TARGET_DIR := $(if $(TARGET_DIR),$(TARGET_DIR),target)
WASM_OUT := $(TARGET_DIR)/$(WASM_TARGET)/release
# kubectl-deletion-cost embeds the policy module: its build script takes
# this one instead of building the module again in a nested cargo.
export DELETION_COST_POLICY_WASM := $(CURDIR)/policy.wasm


.PHONY: kube control-plane-bin cluster cluster-down e2e-cluster bench-burst
.PHONY: all install self-contained wasm-target fmt fmt-check lint test unit-tests fuzz-regressions e2e-tests e2e-policy-server rig-bin policy-server-rig policy-server-latency load demo simulate bench bench-readers bench-simulate profile perf-stat fuzz-smoke size push clean

all: policy.wasm

wasm-target:
	@rustup target list --installed 2>/dev/null | grep -qx $(WASM_TARGET) || rustup target add $(WASM_TARGET)

# The features Rust enables by default for wasm32-wasip1; wasm-opt must not
# assume more than the module already uses.
WASM_OPT_FEATURES := --enable-bulk-memory --enable-sign-ext --enable-mutable-globals \
	--enable-nontrapping-float-to-int --enable-reference-types --enable-multivalue

# The module's size budget (350 KB), checked on the optimised module: every
# policy-server replica loads it.
WASM_BUDGET := 350000

# -O3, then -Oz: about 2 KB smaller than -O3 alone, with the same
# instructions per request within 0.3% (docs/performance.md).
policy.wasm: $(SOURCES) | wasm-target
	$(CARGO) build --locked --target $(WASM_TARGET) --release -p pod-deletion-cost-policy
	@if command -v wasm-opt >/dev/null; then \
		wasm-opt -O3 -Oz $(WASM_OPT_FEATURES) --strip-debug --strip-producers \
			$(WASM_OUT)/pod_deletion_cost_policy.wasm -o policy.wasm; \
		size=$$(stat -c %s policy.wasm); \
		echo "policy.wasm: $$size bytes (budget $(WASM_BUDGET))"; \
		if [ "$$size" -gt $(WASM_BUDGET) ]; then \
			echo "policy.wasm is over its $(WASM_BUDGET)-byte budget: every policy-server replica loads it"; rm -f policy.wasm; exit 1; \
		fi; \
	else \
		cp $(WASM_OUT)/pod_deletion_cost_policy.wasm policy.wasm; \
		echo "policy.wasm: $$(stat -c %s policy.wasm) bytes, not post-optimised: wasm-opt (Debian package binaryen) is not installed, and the $(WASM_BUDGET)-byte budget holds for the optimised module only (wasm-opt takes about 50 KB off)"; \
	fi

floor.wasm: crates/bench/floor-guest/src/lib.rs crates/bench/floor-guest/Cargo.toml | wasm-target
	$(CARGO) build --locked --target $(WASM_TARGET) --release -p floor-guest
	cp $(WASM_OUT)/floor_guest.wasm floor.wasm

mutating-floor.wasm: crates/bench/mutating-floor-guest/src/lib.rs crates/bench/mutating-floor-guest/Cargo.toml | wasm-target
	$(CARGO) build --locked --target $(WASM_TARGET) --release -p mutating-floor-guest
	cp $(WASM_OUT)/mutating_floor_guest.wasm mutating-floor.wasm

peer.wasm: crates/bench/peer-guest/src/lib.rs crates/bench/peer-guest/Cargo.toml | wasm-target
	$(CARGO) build --locked --target $(WASM_TARGET) --release -p peer-guest
	cp $(WASM_OUT)/peer_guest.wasm peer.wasm

annotated-policy.wasm: policy.wasm metadata.yml README.md
	$(KWCTL) annotate -m metadata.yml -u README.md -o annotated-policy.wasm policy.wasm

# policy-server loads only annotated modules; the floor borrows the policy's
# metadata (protocol version, context-aware resources).
annotated-floor.wasm: floor.wasm metadata.yml
	$(KWCTL) annotate -m metadata.yml -o annotated-floor.wasm floor.wasm

fmt:
	$(CARGO) fmt --all

fmt-check:
	$(CARGO) fmt --all -- --check

lint: policy.wasm
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings
	$(CARGO) clippy --locked -p pod-deletion-cost-policy --target $(WASM_TARGET) -- -D warnings

unit-tests:
	$(CARGO) test --locked -p pod-deletion-cost-policy

# The compiled module through waPC in wasmtime (case table, scenarios,
# packaging checks), then the same cases under kwctl when it is installed.
e2e-tests: policy.wasm
	$(CARGO) test --locked -p wasm-host -p cluster-sim -p kubectl-deletion-cost -p bench -p e2e-tests
	@if ! command -v bats >/dev/null; then \
		echo "bats not found: e2e-tests/e2e.bats was not run"; \
	else \
		echo "e2e.bats with the kwctl stand-in (checks the suite's own plumbing):"; \
		$(CARGO) build --quiet --locked -p e2e-tests --bin e2e-runner -p kubectl-deletion-cost --bin kubectl-deletion_cost && \
		PATH="$(CURDIR)/e2e-tests/kwctl-stand-in:$$PATH" E2E_RUNNER="$(TARGET_DIR)/debug/e2e-runner" DELETION_COST="$(TARGET_DIR)/debug/kubectl-deletion_cost" \
			POLICY="$(CURDIR)/policy.wasm" bats e2e-tests/e2e.bats || exit 1; \
		if command -v $(KWCTL) >/dev/null; then \
			echo "e2e.bats under $$($(KWCTL) --version | head -n1):"; \
			$(MAKE) --no-print-directory annotated-policy.wasm && DELETION_COST="$(TARGET_DIR)/debug/kubectl-deletion_cost" bats --show-output-of-passing-tests e2e-tests/e2e.bats || exit 1; \
		else \
			echo "skipped: kwctl not found on PATH: e2e.bats ran against the stand-in only"; \
			if [ "$${CI:-}" = true ]; then echo "CI=true: a missing runtime is a failure"; exit 1; fi; \
		fi; \
	fi

demo: policy.wasm
	scripts/demo.sh

test: self-contained fmt-check lint unit-tests fuzz-regressions e2e-tests e2e-policy-server e2e-cluster

# The Kubernetes programs of the real control plane (kube-apiserver,
# kube-scheduler, kube-controller-manager, kubectl, etcd, kwok), built from
# the Go modules pinned in kube/ into ~/.cache/pod-deletion-cost/kube-<version>;
# nothing is built when the cache (or KUBE_BIN_DIR, or KUBEBUILDER_ASSETS
# for etcd, kube-apiserver and kubectl) holds them. Prints the directory.
CONTROL_PLANE := $(TARGET_DIR)/debug/control-plane
control-plane-bin:
	@$(CARGO) build --quiet --locked -p control-plane --bin control-plane
kube: control-plane-bin
	@$(CONTROL_PLANE) kube

# A real control plane on loopback with policy-server and the policy, until
# Ctrl-C or `make cluster-down`:
#   make cluster [SETTINGS=examples/ack-zones-placeholders.yaml]
SETTINGS ?= examples/eks-hybrid-bursting.yaml
cluster: annotated-policy.wasm kube
	$(CONTROL_PLANE) up --settings $(SETTINGS) --wasm annotated-policy.wasm

# Zone balance after a real scale-up burst (0 → 60, then 60 → 30 → 15 → 6
# → 3): this policy, this policy with `kubectl deletion-cost rebalance
# --apply` after the burst, and Kubernetes alone, run by run in one control
# plane; and the time to bind 300 pods with and without the webhook.
# BURST_BASELINE_WASM=other-annotated.wasm adds another build of the
# policy as a fourth system:
#   make bench-burst [BURST_RUNS=5] [BURST_JSON=target/bench-burst.json] [BURST_BASELINE_WASM=…]
BURST_RUNS ?= 5
bench-burst: annotated-policy.wasm kube
	$(CARGO) build --locked --profile native-release -p bench --bin bench-burst -p kubectl-deletion-cost --bin kubectl-deletion_cost
	DELETION_COST="$(TARGET_DIR)/native-release/kubectl-deletion_cost" \
		$(TARGET_DIR)/native-release/bench-burst --runs $(BURST_RUNS) --wasm annotated-policy.wasm

cluster-down: control-plane-bin
	$(CONTROL_PLANE) down

# The stories (e2e-tests/tests/cluster.rs) in that control plane. Without
# Go (and no cached build) or without policy-server they are skipped with a
# message; under CI=true that is a failure.
e2e-cluster: policy.wasm
	@missing=""; \
	command -v policy-server >/dev/null || missing="policy-server (Kubewarden 1.36) on PATH"; \
	command -v $(KWCTL) >/dev/null || missing="$$missing kwctl on PATH"; \
	if [ -z "$$missing" ] && ! $(MAKE) --no-print-directory control-plane-bin >/dev/null; then missing="the control-plane tool"; fi; \
	if [ -z "$$missing" ] && ! kube_dir="$$($(CONTROL_PLANE) kube)"; then missing="the Kubernetes programs (make kube needs Go)"; fi; \
	if [ -n "$$missing" ]; then \
		echo "skipped: the cluster stories need $$missing"; \
		if [ "$${CI:-}" = true ]; then echo "CI=true: a missing runtime is a failure"; exit 1; fi; \
		exit 0; \
	fi; \
	$(MAKE) --no-print-directory annotated-policy.wasm && \
	$(CARGO) build --quiet --locked -p kubectl-deletion-cost --bin kubectl-deletion_cost && \
	echo "cluster stories: Kubernetes $$($$kube_dir/kube-apiserver --version | cut -d' ' -f2), $$(policy-server --version | head -n1)" && \
	KUBE_BIN_DIR="$$kube_dir" ANNOTATED_POLICY_WASM="$(CURDIR)/annotated-policy.wasm" DELETION_COST="$(TARGET_DIR)/debug/kubectl-deletion_cost" \
		$(CARGO) test --locked -p e2e-tests --test cluster --test plugin_live -- --ignored --test-threads=1 --nocapture

# What the policy-server targets below need: policy-server (Kubewarden
# 1.36), kwctl (which annotates the modules), the tools given as $(1) and
# the Kubernetes programs (make kube), whose directory it leaves in
# kube_dir. Without one it says what was skipped and why, and stops the
# recipe: a skip, or under CI=true a failure. One shell line with the
# commands that follow it.
define POLICY_SERVER_RUNTIME
missing=""; \
for tool in policy-server $(KWCTL) $(1); do command -v $$tool >/dev/null || missing="$${missing:+$$missing, }$$tool on PATH"; done; \
if [ -z "$$missing" ] && ! $(MAKE) --no-print-directory control-plane-bin >/dev/null; then missing="the control-plane tool"; fi; \
if [ -z "$$missing" ] && ! kube_dir="$$($(CONTROL_PLANE) kube)"; then missing="the Kubernetes programs (make kube needs Go)"; fi; \
if [ -n "$$missing" ]; then \
	echo "skipped: $@ needs $$missing"; \
	if [ "$${CI:-}" = true ]; then echo "CI=true: a missing runtime is a failure"; exit 1; fi; \
	exit 0; \
fi
endef

# The real policy-server on loopback in front of a real kube-apiserver
# (with etcd), AdmissionReviews posted to it directly
# (e2e-tests/tests/policy_server.rs).
e2e-policy-server: policy.wasm
	@$(call POLICY_SERVER_RUNTIME); \
	$(MAKE) --no-print-directory annotated-policy.wasm && \
	echo "policy-server end to end under $$(policy-server --version | head -n1), kube-apiserver $$($$kube_dir/kube-apiserver --version | cut -d' ' -f2):" && \
	KUBE_BIN_DIR="$$kube_dir" ANNOTATED_POLICY_WASM="$(CURDIR)/annotated-policy.wasm" \
		$(CARGO) test --locked -p e2e-tests --test policy_server -- --ignored

# policy-server loads only annotated modules; the mutating floor borrows the
# policy's metadata so that it gets the same host capabilities.
annotated-mutating-floor.wasm: mutating-floor.wasm metadata.yml
	$(KWCTL) annotate -m metadata.yml -o annotated-mutating-floor.wasm mutating-floor.wasm

# The policy-server rig (crates/bench/src/bin/policy-server-rig): etcd,
# kube-apiserver holding the fixture cluster, and policy-server reading it
# as its ServiceAccount, on loopback.
RIG := $(TARGET_DIR)/native-release/policy-server-rig
rig-bin:
	@$(CARGO) build --quiet --locked --profile native-release -p bench --bin policy-server-rig

# Requests per second through the real policy-server (wrk, 8 connections),
# this policy against the mutating floor, alternating round by round, for a
# hybrid binding and a balance binding with 100 siblings:
#   make load [LOAD_ROUNDS=5] [LOAD_SECONDS=10]
load:
	@$(call POLICY_SERVER_RUNTIME,wrk curl); \
	$(MAKE) --no-print-directory annotated-policy.wasm annotated-mutating-floor.wasm rig-bin && \
	KUBE_BIN_DIR="$$kube_dir" scripts/load.sh $(RIG) $(CURDIR)/annotated-policy.wasm $(CURDIR)/annotated-mutating-floor.wasm

# The rig from a shell, until stdin closes:
#   make policy-server-rig [RIG_ARGS="--siblings 1000"]
RIG_ARGS ?=
policy-server-rig:
	@$(call POLICY_SERVER_RUNTIME); \
	$(MAKE) --no-print-directory annotated-policy.wasm rig-bin && \
	KUBE_BIN_DIR="$$kube_dir" $(RIG) --wasm annotated-policy.wasm $(RIG_ARGS)

# What a binding costs through policy-server, next to the floor module:
#   make policy-server-latency [REQUESTS=3000] [RIG_ARGS="--siblings 1000"]
REQUESTS ?= 3000
policy-server-latency:
	@$(call POLICY_SERVER_RUNTIME); \
	$(MAKE) --no-print-directory annotated-policy.wasm annotated-floor.wasm rig-bin && \
	KUBE_BIN_DIR="$$kube_dir" $(RIG) --wasm annotated-policy.wasm --floor annotated-floor.wasm \
		--measure $(REQUESTS) $(RIG_ARGS)

# The fuzz harnesses on the stable toolchain: every saved regression and
# seed replayed through the entry points the fuzz targets call. fuzz/ is a
# workspace of its own with its own lock file, built in a target directory
# of its own: the policy crate is a cdylib, so its rlib's file name carries
# no hash, and a build of it for the other workspace would overwrite the
# one this workspace's crates were compiled against.
fuzz-regressions: policy.wasm
	CARGO_TARGET_DIR="$(TARGET_DIR)/fuzz-regressions" $(CARGO) test --locked --manifest-path fuzz/Cargo.toml --features policy-config

# A clone has nothing beside it: no tracked file may read outside the repository.
self-contained:
	scripts/check-self-contained.sh

# What the policy would do on a cluster snapshot, before installing it:
#   make simulate SNAPSHOT=cluster.json [SETTINGS=policy.yaml] [SCALE="shop/web=3 ..."] [OUTPUT=json]
# SNAPSHOT may name two files (nodes, then pods). Bundled examples:
#   make simulate SNAPSHOT=crates/kubectl-deletion-cost/snapshots/eks-hybrid/cluster.json SETTINGS=examples/eks-hybrid-bursting.yaml SCALE=shop/web=3
SNAPSHOT ?=
SETTINGS ?=
SCALE ?=
OUTPUT ?= table
simulate: policy.wasm
	@test -n "$(SNAPSHOT)" || { echo "usage: make simulate SNAPSHOT=cluster.json [SETTINGS=settings.yml] [SCALE='ns/name=N ...'] [OUTPUT=json]"; exit 2; }
	@$(CARGO) run --quiet --locked --profile native-release -p kubectl-deletion-cost -- simulate \
		$(if $(SETTINGS),--settings $(SETTINGS)) $(foreach s,$(SCALE),--scale $(s)) \
		--output $(OUTPUT) $(SNAPSHOT)

# `kubectl deletion-cost` on PATH: kubectl-deletion_cost with this
# policy.wasm built in, in cargo's bin directory (~/.cargo/bin), or under
# INSTALL_ROOT/bin: make install [INSTALL_ROOT=~/.local]. Built in this
# checkout's target directory, so what `make test` built is reused.
INSTALL_ROOT ?=
install: policy.wasm
	$(CARGO) install --locked --profile native-release --target-dir "$(TARGET_DIR)" \
		--path crates/kubectl-deletion-cost $(if $(INSTALL_ROOT),--root "$(INSTALL_ROOT)")

clean:
	$(CARGO) clean
	rm -f policy.wasm annotated-policy.wasm annotated-floor.wasm annotated-mutating-floor.wasm floor.wasm mutating-floor.wasm peer.wasm

# Per-request cost of policy.wasm in wasmtime through waPC, on a fresh
# instance per request as policy-server runs it, as a ratio to
# mutating-floor.wasm timed alternately; then the warm-instance numbers
# against floor.wasm; peer.wasm does a hybrid hit the SDK's way.
# COLD=1: only the fresh-instance table, with the caches evicted before
# every request, as they are in a policy-server worker between requests.
bench: policy.wasm floor.wasm mutating-floor.wasm peer.wasm
	$(CARGO) run --locked --profile native-release -p bench --bin bench -- --wasm policy.wasm \
		--floor floor.wasm --mutating-floor mutating-floor.wasm --peer peer.wasm \
		$(if $(COLD),--cold-caches --filter "" --fresh-iterations 1000)

# The 1,000-sibling list answer read natively three ways: the policy's
# reader, the serde views of the same fields, and serde_json walking it
# without keeping anything (medians, and ratios to the policy's reader).
bench-readers:
	$(CARGO) run --locked --profile native-release -p bench --bin bench -- --readers

# The what-if replay (`simulate`) on a generated snapshot of 90 nodes and
# 10,000 pods (one 3,000-replica Deployment, 70 of 100) with zone balance
# on, in fresh processes round after round: wall, CPU and peak RSS, and the
# policy's own time in the same run as the floor. SIM_DIVIDE=10 divides
# every replica count by ten:
#   make bench-simulate [SIM_ROUNDS=3] [SIM_DIVIDE=1]
SIM_ROUNDS ?= 3
SIM_DIVIDE ?= 1
bench-simulate: policy.wasm
	$(CARGO) build --locked --profile native-release -p bench --bin bench-simulate
	$(TARGET_DIR)/native-release/bench-simulate --wasm policy.wasm --rounds $(SIM_ROUNDS) \
		--divide $(SIM_DIVIDE) --dir $(TARGET_DIR)/bench-simulate

# Instructions per call of one scenario under callgrind, which a shared
# machine's noise does not move: make profile SCENARIO="1000 siblings".
# SCENARIO=peer counts the peer guest's hybrid hit. REHYDRATED=1 counts
# requests on fresh instances, as policy-server serves them (instantiation,
# wapc_init and teardown included). NATIVE=1 counts the same calls compiled
# for this machine instead, where callgrind_annotate can name the policy's
# functions. WASM=mutating-floor.wasm counts another module.
SCENARIO ?= hybrid
WASM ?= $(if $(filter peer,$(SCENARIO)),peer.wasm,policy.wasm)
PROFILE_COUNTED := bench::profiled_$(if $(NATIVE),native_,$(if $(REHYDRATED),rehydrated_))calls
profile: $(WASM)
	$(CARGO) build --locked --profile native-release -p bench
	valgrind --tool=callgrind --smc-check=all \
		--toggle-collect='$(PROFILE_COUNTED)' \
		--callgrind-out-file=callgrind.out $(TARGET_DIR)/native-release/bench --wasm $(WASM) \
		--only "$(SCENARIO)" --iterations 10 $(if $(NATIVE),--native) $(if $(REHYDRATED),--rehydrated) 2>&1 | grep -E 'refs|calls'
	@echo "per call: the refs above / 10; details: callgrind_annotate callgrind.out"

# CPU time and page faults of 2,000 of one scenario's requests on fresh
# instances, the module's compilation included (needs perf, Debian package
# linux-perf): make perf-stat SCENARIO=hybrid
perf-stat: $(WASM)
	$(CARGO) build --locked --profile native-release -p bench
	perf stat -e task-clock,page-faults,minor-faults,major-faults,context-switches \
		$(TARGET_DIR)/native-release/bench --wasm $(WASM) --only "$(SCENARIO)" --iterations 2000 --rehydrated

size: policy.wasm
	@echo "policy.wasm: $$(stat -c %s policy.wasm) bytes"

# Distribution: `make push REGISTRY=ghcr.io/example/policies TAG=v0.1.0`.
REGISTRY ?=
TAG ?= v$(VERSION)
push: annotated-policy.wasm
	@test -n "$(REGISTRY)" || { echo "usage: make push REGISTRY=<host>/<path> [TAG=v$(VERSION)]"; exit 2; }
	$(KWCTL) push annotated-policy.wasm registry://$(REGISTRY)/pod-deletion-cost:$(TAG)

# Each fuzz target for FUZZ_SECONDS (default 60) after replaying the saved
# regressions; installs nightly and cargo-fuzz when missing.
fuzz-smoke:
	fuzz/fuzz-smoke.sh
