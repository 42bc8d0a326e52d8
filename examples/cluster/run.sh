#!/usr/bin/env bash
# Runs the example cluster on loopback, in the foreground (Ctrl-C stops all of it):
#
#   redis-server        127.0.0.1:6390                       (CLUSTER_REDIS_PORT)
#   the chat app        127.0.0.1:3000                       (CLUSTER_APP_PORT; examples/chat)
#   siobridge node 1    127.0.0.1:7901, API 127.0.0.1:7911   (CLUSTER_NODE1_PORT, CLUSTER_NODE1_API_PORT; node1.toml)
#   siobridge node 2    127.0.0.1:7902, API 127.0.0.1:7912   (CLUSTER_NODE2_PORT, CLUSTER_NODE2_API_PORT; node2.toml)
#   nginx               http://127.0.0.1:7900                (CLUSTER_NGINX_PORT; nginx.conf: sticky sessions)
#
# Each port can be changed by the variable named beside it, e.g.
#   CLUSTER_NGINX_PORT=8080 CLUSTER_REDIS_PORT=6391 examples/cluster/run.sh
# CLUSTER_ADAPTER picks the nodes' [cluster] adapter: redis (node1.toml's, classic pub/sub),
# redis-sharded (Redis 7's sharded pub/sub) or redis-streams (one Redis stream), e.g.
#   CLUSTER_ADAPTER=redis-sharded examples/cluster/run.sh
# The nodes get theirs as SIOBRIDGE_* variables over node1.toml and node2.toml; nginx a copy of
# nginx.conf with them.
#
# Needs bin/siobridge (`make build`), Debian's redis-server and nginx (`make deps`), Go (it
# builds the chat app), curl and setsid. What they write (nginx's pid, logs and temp files,
# Redis's directory) goes to a temporary directory, removed on exit. On exit nginx stops
# first, then the nodes, which deliver their clients' disconnect webhooks to the app, then
# the app and Redis.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

NGINX_PORT=${CLUSTER_NGINX_PORT:-7900}
APP_PORT=${CLUSTER_APP_PORT:-3000}
REDIS_PORT=${CLUSTER_REDIS_PORT:-6390}
NODE1_PORT=${CLUSTER_NODE1_PORT:-7901}
NODE1_API_PORT=${CLUSTER_NODE1_API_PORT:-7911}
NODE2_PORT=${CLUSTER_NODE2_PORT:-7902}
NODE2_API_PORT=${CLUSTER_NODE2_API_PORT:-7912}
ADAPTER=${CLUSTER_ADAPTER:-redis}
case $ADAPTER in
redis | redis-sharded | redis-streams) ;;
*)
	echo "run.sh: CLUSTER_ADAPTER=$ADAPTER: want redis, redis-sharded or redis-streams" >&2
	exit 1
	;;
esac

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
declare -A pid=() # name -> pid
# stop <name...>: SIGTERM to each, then waits for all of them.
stop() {
	local name
	for name; do [[ -n ${pid[$name]:-} ]] && kill "${pid[$name]}" 2>/dev/null || true; done
	for name; do [[ -n ${pid[$name]:-} ]] && wait "${pid[$name]}" 2>/dev/null || true; done
}
cleanup() {
	trap - EXIT INT TERM
	stop nginx
	stop node1 node2 # each closes its clients and delivers their disconnect webhooks to the app
	stop app redis
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start <name> <command...>: runs it in the background, its output prefixed with its name. It
# runs in a session of its own, so that Ctrl-C reaches this script alone, which stops the
# processes in order; sed ignores it, so that it prints their last lines.
start() {
	local name=$1
	shift
	setsid "$@" > >(trap '' INT; exec sed -u "s/^/[$name] /") 2>&1 &
	pid[$name]=$!
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

start redis "$REDIS" --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$tmp" --loglevel warning

go build -o bin/chat-app ./examples/chat
start app bin/chat-app -listen "127.0.0.1:$APP_PORT" -secret demo-secret

# node <n> <port> <api port>: siobridge from node<n>.toml, on the ports chosen.
node() {
	start "node$1" env \
		SIOBRIDGE_SERVER_LISTEN="127.0.0.1:$2" \
		SIOBRIDGE_API_LISTEN="127.0.0.1:$3" \
		SIOBRIDGE_SERVER_UPSTREAM="http://127.0.0.1:$APP_PORT" \
		SIOBRIDGE_WEBHOOK_URL="http://127.0.0.1:$APP_PORT/webhook" \
		SIOBRIDGE_CLUSTER_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0" \
		SIOBRIDGE_CLUSTER_ADAPTER="$ADAPTER" \
		bin/siobridge -config "examples/cluster/node$1.toml"
}
node 1 "$NODE1_PORT" "$NODE1_API_PORT"
node 2 "$NODE2_PORT" "$NODE2_API_PORT"
wait_http "http://127.0.0.1:$NODE1_API_PORT/readyz" # 200 once subscribed to Redis
wait_http "http://127.0.0.1:$NODE2_API_PORT/readyz"

mkdir -p "$tmp/nginx/tmp" # nginx makes the temp paths of nginx.conf in there
sed -e "s/127\.0\.0\.1:7900;/127.0.0.1:$NGINX_PORT;/" \
	-e "s/127\.0\.0\.1:7901;/127.0.0.1:$NODE1_PORT;/" \
	-e "s/127\.0\.0\.1:7902;/127.0.0.1:$NODE2_PORT;/" \
	examples/cluster/nginx.conf >"$tmp/nginx/nginx.conf"
nginx_args=(-p "$tmp/nginx/" -c "$tmp/nginx/nginx.conf" -e stderr)
if [[ $(id -u) -eq 0 ]]; then
	# As root, nginx's workers would run as nobody, who cannot enter $tmp.
	nginx_args+=(-g "user root;")
fi
start nginx "$NGINX" "${nginx_args[@]}"
wait_http "http://127.0.0.1:$NGINX_PORT/"

cat <<MSG

Cluster up ($ADAPTER adapter): open http://127.0.0.1:$NGINX_PORT in two browser tabs and chat.
  which node served each request:  tail -f $tmp/nginx/access.log
  emit through either node's API:  curl -s 127.0.0.1:$NODE2_API_PORT/emit -d '{"event":"reviceMsg","args":[{"from":"api","text":"hi"}]}'
  every socket of the cluster:     curl -s 127.0.0.1:$NODE1_API_PORT/sockets
Ctrl-C stops everything.
MSG
wait -n || true # until Ctrl-C, or until one of them ends
echo "run.sh: a process ended; stopping the others" >&2
