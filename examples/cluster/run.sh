#!/usr/bin/env bash
# Runs the example cluster on loopback, in the foreground (Ctrl-C stops all of it):
#
#   redis-server        127.0.0.1:6390
#   the chat app        127.0.0.1:3000         (examples/chat: the page and the webhooks)
#   siobridge node 1    127.0.0.1:7901, API 127.0.0.1:7911   (node1.toml)
#   siobridge node 2    127.0.0.1:7902, API 127.0.0.1:7912   (node2.toml)
#   nginx               http://127.0.0.1:7900  (nginx.conf: sticky sessions over both nodes)
#
# Needs bin/siobridge (`make build`), Debian's redis-server and nginx (`make deps`), Go (it
# builds the chat app) and curl. What they write (nginx's pid, logs and temp files, Redis's
# directory) goes to a temporary directory, removed on exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

find_bin() { # name, fallback path
	command -v "$1" 2>/dev/null || { [[ -x $2 ]] && echo "$2"; } || {
		echo "run.sh: $1 is not installed: run \`make deps\` (Debian's $1 package)" >&2
		exit 1
	}
}
REDIS=$(find_bin redis-server /usr/bin/redis-server)
NGINX=$(find_bin nginx /usr/sbin/nginx)
if [[ ! -x bin/siobridge ]]; then
	echo "run.sh: bin/siobridge is missing: run \`make build\` first" >&2
	exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/siobridge-cluster.XXXXXX")
pids=()
cleanup() {
	trap - EXIT INT TERM
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start <name> <command...>: runs it in the background, its output prefixed with its name.
start() {
	local name=$1
	shift
	"$@" > >(sed -u "s/^/[$name] /") 2>&1 &
	pids+=($!)
}

# wait_http <url>: until it answers 200 (at most 15 s).
wait_http() {
	for _ in $(seq 150); do
		if curl -fsS -o /dev/null "$1" 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "run.sh: $1 did not answer" >&2
	exit 1
}

start redis "$REDIS" --port 6390 --bind 127.0.0.1 --save "" --appendonly no --dir "$tmp" --loglevel warning

go build -o bin/chat-app ./examples/chat
start app bin/chat-app -listen 127.0.0.1:3000 -secret demo-secret

start node1 bin/siobridge -config examples/cluster/node1.toml
start node2 bin/siobridge -config examples/cluster/node2.toml
wait_http http://127.0.0.1:7911/readyz # 200 once subscribed to Redis
wait_http http://127.0.0.1:7912/readyz

mkdir -p "$tmp/nginx/tmp" # nginx makes the temp paths of nginx.conf in there
nginx_args=(-p "$tmp/nginx/" -c "$PWD/examples/cluster/nginx.conf" -e stderr)
if [[ $(id -u) -eq 0 ]]; then
	# As root, nginx's workers would run as nobody, who cannot enter $tmp.
	nginx_args+=(-g "user root;")
fi
start nginx "$NGINX" "${nginx_args[@]}"
wait_http http://127.0.0.1:7900/

cat <<MSG

Cluster up: open http://127.0.0.1:7900 in two browser tabs and chat.
  which node served each request:  tail -f $tmp/nginx/access.log
  emit through either node's API:  curl -s 127.0.0.1:7912/emit -d '{"event":"reviceMsg","args":[{"from":"api","text":"hi"}]}'
  every socket of the cluster:     curl -s 127.0.0.1:7911/sockets
Ctrl-C stops everything.
MSG
wait -n || true # until Ctrl-C, or until one of them ends
echo "run.sh: a process ended; stopping the others" >&2
