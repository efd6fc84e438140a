# campbridge — the commands people and CI use. `make test` is what .ci/run runs.
SHELL := /bin/bash
.DEFAULT_GOAL := help
CARGO ?= cargo
CARGO_FLAGS := --locked

.PHONY: help test lint fmt check-fmt clippy unit run demo

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

test: check-fmt clippy unit ## Format check, clippy -D warnings, every test

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
