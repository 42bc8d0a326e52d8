#!/usr/bin/env bash
# Runs the demo: the chat app on 127.0.0.1:3000 and siobridge in front of it on
# http://127.0.0.1:7896. Started by `make demo`, which builds bin/siobridge first.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

go build -o bin/chat-app ./examples/chat
bin/chat-app -listen 127.0.0.1:3000 -secret demo-secret &
app=$!
trap 'kill "$app" 2>/dev/null || true' EXIT INT TERM

echo "chat: open http://127.0.0.1:7896 in two browser tabs (Ctrl-C stops)"
bin/siobridge -config examples/chat/siobridge.toml
