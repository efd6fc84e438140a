#!/usr/bin/env bash
# Vendor artifacts the simulators are held to, committed so `make run` needs only the Rust toolchain, and
# proven here to be the vendor's own bytes.
#
#   scripts/vendor.sh check     fetch each pinned package with npm (into .tools/vendor/) and compare the
#                               committed copy byte for byte; exit 1 on any difference
#
# tests/simulators/vendor/adf-schema/full.json = json-schema/v1/full.json of the npm package named in
# tests/simulators/vendor/adf-schema/PACKAGE (Atlassian's ADF schema, Apache-2.0). To move to a newer
# release: change PACKAGE, run `scripts/vendor.sh update`, run the tests, commit both files.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="$ROOT/.tools/vendor"
ADF_DIR="$ROOT/tests/simulators/vendor/adf-schema"
ADF_FILE="json-schema/v1/full.json"

die() { echo "vendor.sh: $*" >&2; exit 1; }

# Unpacks the pinned package (npm verifies the tarball's integrity) and prints the path of its schema.
fetch_adf() {
	command -v npm >/dev/null || die "npm is needed to fetch the vendor's package: apt-get install npm"
	local pkg dir
	pkg="$(tr -d '[:space:]' <"$ADF_DIR/PACKAGE")"
	[[ "$pkg" =~ ^@atlaskit/adf-schema@[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "$ADF_DIR/PACKAGE must pin one exact version"
	dir="$WORK/${pkg//[@\/]/_}"
	if [[ ! -f "$dir/package/$ADF_FILE" ]]; then
		rm -rf "$dir" && mkdir -p "$dir"
		(cd "$dir" && npm pack --silent "$pkg" >/dev/null && tar -xzf ./*.tgz package/package.json "package/$ADF_FILE")
	fi
	local got
	got="$(sed -n 's/^[[:space:]]*"version": "\(.*\)",$/\1/p' "$dir/package/package.json" | head -n 1)"
	[[ "$pkg" == *"@$got" ]] || die "npm unpacked version $got, not $pkg"
	echo "$dir/package/$ADF_FILE"
}

check() {
	local vendor
	vendor="$(fetch_adf)"
	if cmp -s "$vendor" "$ADF_DIR/full.json"; then
		echo "vendor.sh: tests/simulators/vendor/adf-schema/full.json is $(tr -d '[:space:]' <"$ADF_DIR/PACKAGE") $ADF_FILE, byte for byte"
	else
		die "tests/simulators/vendor/adf-schema/full.json differs from $(tr -d '[:space:]' <"$ADF_DIR/PACKAGE") $ADF_FILE"
	fi
}

update() {
	cp "$(fetch_adf)" "$ADF_DIR/full.json"
	check
}

case "${1:-}" in
	check) check ;;
	update) update ;;
	*) die "usage: scripts/vendor.sh check | update" ;;
esac
