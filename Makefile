# campbridge — the commands people and CI use. `make test` is what .ci/run runs.
SHELL := /bin/bash
.DEFAULT_GOAL := help
CARGO ?= cargo
CARGO_FLAGS := --locked

.PHONY: help test lint fmt check-fmt clippy unit run demo check-vendor

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s "$$(printf '\t')"

run: ## Local mode: serve ./campbridge.toml if present, else the demo against the built-in simulators
	@if [ -f campbridge.toml ]; then \
		$(CARGO) run $(CARGO_FLAGS) -p campbridge -- serve --config campbridge.toml; \
	else \
		echo "No campbridge.toml here: running the demo against the built-in simulators (Ctrl-C to stop)."; \
		$(CARGO) run $(CARGO_FLAGS) -p campbridge -- demo; \
	fi

demo: ## The demo story once, then exit
	$(CARGO) run $(CARGO_FLAGS) -p campbridge -- demo --exit

test: check-fmt check-vendor clippy unit chaos-slice test-basecamp-sdk fuzz-smoke test-aws lint-infra ## Format check, vendor artifacts, clippy -D warnings, every test (emulators included), the chaos slice, a short fuzz run

lint: check-fmt clippy ## Format check and clippy -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all
	$(CARGO) fmt --manifest-path fuzz/Cargo.toml

check-fmt:
	$(CARGO) fmt --all -- --check
	$(CARGO) fmt --manifest-path fuzz/Cargo.toml -- --check

# The vendor artifacts the simulators are held to (Atlassian's ADF schema) are the vendor's own bytes.
check-vendor: ## Prove the committed vendor artifacts (the ADF schema) are byte-identical to the pinned packages
	scripts/vendor.sh check

clippy:
	$(CARGO) clippy $(CARGO_FLAGS) --workspace --all-targets --all-features -- -D warnings

# nextest when installed (faster, per-test processes); plain cargo test otherwise. The emulator-backed AWS
# tests (every package's `aws_emulators` test binary, the operator commands' `ops_aws` and the chaos
# harness's `chaos_aws`) run in test-aws, next to their emulators, not here; under plain cargo test they
# say they did not run. The chaos harness on SQLite (`chaos`) runs in chaos-slice, which prints its figures.
UNIT_FILTER := not (binary(aws_emulators) | binary(ops_aws) | binary(chaos_aws) | binary(chaos))
unit:
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run $(CARGO_FLAGS) --workspace --all-features --no-fail-fast -E '$(UNIT_FILTER)'; \
	else \
		$(CARGO) test $(CARGO_FLAGS) --workspace --all-features --no-fail-fast; \
	fi

# ---- fuzzing ------------------------------------------------------------------------------------------------
.PHONY: fuzz fuzz-smoke

FUZZ_SECONDS ?= 60

# libFuzzer on the stable toolchain (scripts/fuzz.sh): the webhook parsers and verifiers, the config reader
# and richtext, seeded from tests/fixtures and fuzz/corpus. Its own build in fuzz/target.
fuzz: ## Every fuzz target for FUZZ_SECONDS (default 60) each; a crash fails and leaves its input in fuzz/artifacts/
	scripts/fuzz.sh $(FUZZ_SECONDS)

# The short run in make test: every seed, then 10 s of mutations per target, on a quicker build.
fuzz-smoke:
	FUZZ_PROFILE=smoke scripts/fuzz.sh 10

# The official Basecamp SDK (PyPI basecamp-sdk) as a client of the Basecamp simulator, every response checked
# against the SDK's OpenAPI document (npm @37signals/basecamp); both pinned and installed under .tools/.
.PHONY: test-basecamp-sdk
test-basecamp-sdk: ## The official Basecamp SDK against the Basecamp simulator, responses validated against its OpenAPI
	scripts/basecamp-sdk.sh install
	$(CARGO) build $(CARGO_FLAGS) -p campbridge-simulators --bin campbridge-simulators
	scripts/basecamp-sdk.sh run $(or $(CARGO_TARGET_DIR),target)/debug/campbridge-simulators

# ---- chaos ---------------------------------------------------------------------------------------------
.PHONY: chaos-slice chaos

# The chaos convergence harness (campbridge/tests/harness): a short slice on SQLite in `make test` (600
# events, and the 429-storm and 60-second-outage runs), its figures printed; the AWS slice is in test-aws.
chaos-slice:
	$(CARGO) test $(CARGO_FLAGS) -p campbridge --all-features --test chaos -- --nocapture

# The full run: 10,000 events on SQLite, then on DynamoDB Local + SQS (moto). Figures are printed and
# written to target/tmp/chaos-*.txt; the README quotes them.
CHAOS_EVENTS ?= 10000
chaos: tools-aws ## The chaos harness at full size (10,000 events) on SQLite and on DynamoDB + SQS
	CAMPBRIDGE_CHAOS_EVENTS=$(CHAOS_EVENTS) $(CARGO) test $(CARGO_FLAGS) -p campbridge --all-features --test chaos \
		-- --nocapture under_chaos
	$(CARGO) build $(CARGO_FLAGS) -p campbridge --all-features --test chaos_aws
	scripts/emulators.sh run env CAMPBRIDGE_CHAOS_EVENTS=$(CHAOS_EVENTS) $(CARGO) test $(CARGO_FLAGS) --offline \
		-p campbridge --all-features --test chaos_aws -- --nocapture under_chaos

# ---- AWS mode --------------------------------------------------------------------------------------------
.PHONY: tools-aws test-aws lint-infra build deploy

tools-aws: ## Install DynamoDB Local, moto, cargo-lambda, cfn-lint and the SAM CLI (pinned) under .tools/
	scripts/emulators.sh install

# Every package's `aws_emulators` test: the adapters' contract suite (shared), the functions on cargo-lambda's
# runtime emulator and the story on the AWS adapters (functions/common). Built outside the namespace (it has
# no network), with the function binaries those tests run (`--bins`: same features as the tests, so
# nothing is compiled twice), then run inside it next to the emulators.
test-aws: tools-aws ## The AWS adapters and the functions against DynamoDB Local and moto, in a private network namespace
	$(CARGO) build $(CARGO_FLAGS) --workspace --all-features --bins --test aws_emulators --test ops_aws --test chaos_aws
	scripts/emulators.sh run $(CARGO) test $(CARGO_FLAGS) --offline --workspace --all-features --test aws_emulators --test ops_aws
	scripts/emulators.sh run $(CARGO) test $(CARGO_FLAGS) --offline -p campbridge --all-features --test chaos_aws -- --nocapture

lint-infra: tools-aws ## cfn-lint and `sam validate --lint` on the SAM template
	.tools/venv/bin/cfn-lint infra/template.yaml
	SAM_CLI_TELEMETRY=0 .tools/sam/bin/sam validate --lint --template infra/template.yaml

# cargo-lambda (pip, pinned in scripts/emulators.sh) brings zig for the arm64 cross build. Every workspace
# binary except the operator command, the simulators and the bench is a function.
build: tools-aws ## The Lambda binaries for arm64: target/lambda/<function>/bootstrap
	PATH="$(CURDIR)/.tools/venv/bin:$$PATH" $(CARGO) lambda build $(CARGO_FLAGS) --release --arm64 --workspace \
		--exclude campbridge --exclude campbridge-simulators --exclude campbridge-bench

# `campbridge config push` stores campbridge.toml (validated; a no-op when unchanged) and prints its version,
# which the stack runs (ConfigVersion). sam build calls cargo-lambda (BuildMethod: rust-cargolambda), hence
# the PATH. The README's deploy steps say what comes before and after.
STACK ?= campbridge
DEPLOY_PARAMETERS ?=
deploy: tools-aws ## Push campbridge.toml, then sam build + sam deploy of stack $(STACK) (needs AWS credentials; never run in CI)
	version="$$($(CARGO) run $(CARGO_FLAGS) -q -p campbridge -- config push --stack $(STACK) campbridge.toml)" && \
	cd infra && export SAM_CLI_TELEMETRY=0 PATH="$(CURDIR)/.tools/venv/bin:$(CURDIR)/.tools/sam/bin:$$PATH" && \
	sam build && \
	sam deploy --stack-name $(STACK) --capabilities CAPABILITY_IAM --resolve-s3 --no-fail-on-empty-changeset \
		--parameter-overrides ConfigVersion=$$version $(DEPLOY_PARAMETERS)

# ---- benchmarks ----------------------------------------------------------------------------------------
.PHONY: bench

# Every functions/* package with a main.rs (the first `name =` of its manifest is the package name), built
# in the same cargo invocation as the bench so the release build of the dependencies happens once.
BENCH_PACKAGES = campbridge-bench $(foreach m,$(wildcard functions/*/src/main.rs),$(shell sed -n 's/^name *= *"\(.*\)"/\1/p' $(dir $(m))../Cargo.toml | head -n 1))
BENCH_BIN = $(or $(CARGO_TARGET_DIR),target)/release/campbridge-bench

# Release builds for this host, then the bench inside the emulators' private network namespace (the
# functions read their secrets from moto at start; DynamoDB Local and moto count store operations).
bench: tools-aws ## Benchmarks: receiver CPU, cold starts, sizes, local latency/throughput, calls, store ops, cost → target/bench/results.json
	$(CARGO) build $(CARGO_FLAGS) --release $(addprefix -p ,$(BENCH_PACKAGES))
	scripts/emulators.sh run "$(BENCH_BIN)" --out target/bench/results.json
