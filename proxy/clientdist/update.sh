#!/usr/bin/env bash
# Copies the pinned socket.io-client browser bundle into proxy/clientdist/, where
# proxy/bundle.go embeds it. Works from any directory. The version is proxy/clientdist-npm's
# (package.json and its lock file); npm ci installs it there when it is not installed yet, or
# older than the lock file. node_modules stays there: in proxy/clientdist it would be embedded.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

pkg=proxy/clientdist-npm
dist="$pkg/node_modules/socket.io-client/dist"
stamp="$pkg/node_modules/.package-lock.json" # written by npm ci
dest=proxy/clientdist
files=(
	socket.io.js socket.io.js.map
	socket.io.min.js socket.io.min.js.map
	socket.io.esm.min.js socket.io.esm.min.js.map
)

if [[ ! -f $stamp || $pkg/package-lock.json -nt $stamp || $pkg/package.json -nt $stamp ]]; then
	if ! command -v npm >/dev/null 2>&1; then
		echo "update.sh: npm is needed to install socket.io-client (Node.js 18 or later)" >&2
		exit 1
	fi
	echo "==> npm ci in $pkg"
	(cd "$pkg" && npm ci --no-audit --no-fund)
fi

for f in "${files[@]}"; do
	if [[ ! -f "$dist/$f" ]]; then
		echo "update.sh: $dist/$f is missing: is socket.io-client installed correctly? (rm -rf $pkg/node_modules and retry)" >&2
		exit 1
	fi
done
for f in "${files[@]}"; do
	cp "$dist/$f" "$dest/$f"
done

version="$(node -p "require('./$pkg/node_modules/socket.io-client/package.json').version" 2>/dev/null || echo unknown)"
echo "==> copied socket.io-client $version dist files into $dest/"
