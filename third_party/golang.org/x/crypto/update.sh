#!/usr/bin/env bash
# Refreshes this copy of golang.org/x/crypto from the module proxy and
# applies the patches listed in PATCHES.md. Usage, from this folder:
#   ./update.sh v0.59.0
# Only the packages rosterd's build needs are kept (see PATCHES.md).
set -euo pipefail
cd "$(dirname "$0")"
version=${1:?usage: update.sh VERSION}
src=$(go mod download -json "golang.org/x/crypto@$version" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
[ -d "$src" ] || { echo "update.sh: cannot download golang.org/x/crypto@$version" >&2; exit 1; }
packages="ssh ssh/internal/bcrypt_pbkdf ssh/knownhosts bcrypt blowfish chacha20 curve25519 internal/alias internal/poly1305 cryptobyte cryptobyte/asn1 argon2 blake2b cast5 hkdf ripemd160 sha3 blake2s"
rm -rf ssh bcrypt blowfish chacha20 curve25519 internal cryptobyte argon2 blake2b cast5 hkdf ripemd160 sha3 blake2s
for p in $packages; do
	mkdir -p "$p"
	find "$src/$p" -maxdepth 1 -type f \( -name '*.go' -o -name '*.s' \) ! -name '*_test.go' -exec cp {} "$p/" \;
done
cp "$src/go.mod" "$src/LICENSE" "$src/PATENTS" .
chmod -R u+w .
shopt -s nullglob
for p in patches/*.patch; do
	patch -p1 --no-backup-if-mismatch < "$p"
done
echo "golang.org/x/crypto $version" > VERSION
