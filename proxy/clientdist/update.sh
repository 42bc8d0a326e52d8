#!/usr/bin/env bash
# Copies the pinned socket.io-client browser bundle into proxy/clientdist/, where
# proxy/bundle.go embeds it. Works from any directory. Installs the pinned package with npm ci
# (socketio/testdata/interop, socket.io-client 4.8.4) when it is not installed yet.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

interop=socketio/testdata/interop
dist="$interop/node_modules/socket.io-client/dist"
dest=proxy/clientdist
files=(
	socket.io.js socket.io.js.map
	socket.io.min.js socket.io.min.js.map
	socket.io.esm.min.js socket.io.esm.min.js.map
)

if [[ ! -f "$interop/node_modules/socket.io-client/package.json" ]]; then
	if ! command -v npm >/dev/null 2>&1; then
		echo "update.sh: npm is needed to install socket.io-client (Node.js 18 or later)" >&2
		exit 1
	fi
	echo "==> npm ci in $interop"
	(cd "$interop" && npm ci --no-audit --no-fund)
fi

for f in "${files[@]}"; do
	if [[ ! -f "$dist/$f" ]]; then
		echo "update.sh: $dist/$f is missing: is socket.io-client installed correctly? (rm -rf $interop/node_modules and retry)" >&2
		exit 1
	fi
done
for f in "${files[@]}"; do
	cp "$dist/$f" "$dest/$f"
done

version="$(node -p "require('./$interop/node_modules/socket.io-client/package.json').version" 2>/dev/null || echo unknown)"
echo "==> copied socket.io-client $version dist files into $dest/"
