#!/usr/bin/env bash
# Refreshes this copy of go.etcd.io/bbolt from the module proxy and applies
# the patches listed in PATCHES.md. Usage, from this folder:
#   ./update.sh v1.5.0
# Only the packages rosterd's build needs are kept (see PATCHES.md).
set -euo pipefail
cd "$(dirname "$0")"
version=${1:?usage: update.sh VERSION}
src=$(go mod download -json "go.etcd.io/bbolt@$version" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
[ -d "$src" ] || { echo "update.sh: cannot download go.etcd.io/bbolt@$version" >&2; exit 1; }
packages=". errors internal/common internal/freelist"
rm -rf errors internal ./*.go
for p in $packages; do
	mkdir -p "$p"
	find "$src/$p" -maxdepth 1 -type f -name '*.go' ! -name '*_test.go' -exec cp {} "$p/" \;
done
cp "$src/go.mod" "$src/LICENSE" .
chmod -R u+w .
shopt -s nullglob
for p in patches/*.patch; do
	patch -p1 --no-backup-if-mismatch < "$p"
done
echo "go.etcd.io/bbolt $version" > VERSION
