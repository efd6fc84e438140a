# campbridge — the commands people and CI use. `make test` is what .ci/run runs.
SHELL := /bin/bash
.DEFAULT_GOAL := help
CARGO ?= cargo
CARGO_FLAGS := --locked

.PHONY: help test lint fmt check-fmt clippy unit run config-check

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s "$$(printf '\t')"

test: check-fmt clippy unit test-aws ## Format check, clippy -D warnings, every test

lint: check-fmt clippy ## Format check and clippy -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

check-fmt:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy $(CARGO_FLAGS) --workspace --all-targets --all-features -- -D warnings

# nextest when installed (faster, per-test processes); plain cargo test otherwise.
unit:
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run $(CARGO_FLAGS) --workspace --all-features --no-fail-fast; \
	else \
		$(CARGO) test $(CARGO_FLAGS) --workspace --all-features --no-fail-fast; \
	fi

# ---- AWS mode --------------------------------------------------------------------------------------------
.PHONY: tools-aws test-aws

tools-aws: ## Install DynamoDB Local, moto, cargo-lambda and cfn-lint (pinned) under .tools/
	scripts/emulators.sh install

# Built outside the namespace (it has no network), run inside it next to the emulators.
test-aws: tools-aws ## The AWS adapters against DynamoDB Local and moto, in a private network namespace
	$(CARGO) test $(CARGO_FLAGS) --workspace --all-features --test aws_emulators --no-run
	scripts/emulators.sh run $(CARGO) test $(CARGO_FLAGS) --offline --workspace --all-features --test aws_emulators
