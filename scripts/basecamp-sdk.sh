#!/usr/bin/env bash
# The official Basecamp SDK as a client of our Basecamp simulator, with every response validated against
# the SDK's OpenAPI document. Both are the vendor's published artifacts, installed pinned under .tools/:
#   - PyPI basecamp-sdk (tests/basecamp_sdk/requirements.txt), in .tools/basecamp-sdk/venv;
#   - npm @37signals/basecamp, which ships the OpenAPI document as dist/generated/openapi-stripped.json
#     (the PyPI package does not ship it), in .tools/basecamp-sdk/node.
#
#   scripts/basecamp-sdk.sh install         install (or keep) both
#   scripts/basecamp-sdk.sh run SIMULATOR   run tests/basecamp_sdk against the simulator binary SIMULATOR
#
# The check starts the simulator itself (it binds 127.0.0.1 only) and stops it by its PID. With unshare
# available it all runs in a private network namespace where only loopback exists.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools/basecamp-sdk"
NPM_PKG="@37signals/basecamp@0.7.3"
OPENAPI="$TOOLS/node/node_modules/@37signals/basecamp/dist/generated/openapi-stripped.json"
REQUIREMENTS="$ROOT/tests/basecamp_sdk/requirements.txt"

die() { echo "basecamp-sdk.sh: $*" >&2; exit 1; }

install() {
	command -v python3 >/dev/null || die "python3 (3.11+) is needed for the Basecamp SDK"
	command -v npm >/dev/null || die "npm is needed to install the SDK's OpenAPI document: apt-get install npm"
	if [[ ! -f "$OPENAPI" ]]; then
		npm install --no-audit --no-fund --ignore-scripts --prefix "$TOOLS/node" "$NPM_PKG"
	fi
	if [[ ! -x "$TOOLS/venv/bin/pip" ]]; then
		python3 -m venv "$TOOLS/venv"
	fi
	if ! cmp -s "$REQUIREMENTS" "$TOOLS/venv/.requirements"; then
		"$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$REQUIREMENTS"
		cp "$REQUIREMENTS" "$TOOLS/venv/.requirements"
	fi
}

check() {
	[[ -f "$OPENAPI" && -x "$TOOLS/venv/bin/python" ]] || die "not installed: run scripts/basecamp-sdk.sh install"
	export BASECAMP_SIMULATOR_BIN="$1" BASECAMP_OPENAPI="$OPENAPI"
	# Bounded: the simulator is ours and local; nothing here waits on anything else.
	timeout 300 "$TOOLS/venv/bin/python" -m unittest -v "$ROOT/tests/basecamp_sdk/test_sdk_against_simulator.py" \
		2>&1 | sed 's/^/  /'
	return "${PIPESTATUS[0]}"
}

run() {
	[[ $# -eq 1 && -x "$1" ]] || die "usage: scripts/basecamp-sdk.sh run PATH/TO/campbridge-simulators"
	local flags=(-n)
	[[ "$(id -u)" -eq 0 ]] || flags=(-r -n)
	if command -v unshare >/dev/null && unshare "${flags[@]}" true 2>/dev/null; then
		exec unshare "${flags[@]}" "$0" __inside "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
	fi
	check "$1"
}

case "${1:-}" in
	install) install ;;
	run) shift; run "$@" ;;
	__inside) shift; ip link set lo up; check "$@" ;;
	*) die "usage: scripts/basecamp-sdk.sh install | run SIMULATOR" ;;
esac
