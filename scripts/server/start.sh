# Sourced by the server scripts: start_server LOG ARGS... starts the release server in the
# background with ARGS, stops it on exit, and returns once /health says ready (the log is
# printed if it dies first). Needs $release and $PORT; sets $server (the pid).
start_server() {
    local log=$1
    shift
    "$release/e5v-server" --port "$PORT" "$@" 2> "$log" &
    server=$!
    trap 'kill $server 2>/dev/null || true' EXIT
    for _ in $(seq 600); do
        curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && return 0
        kill -0 $server 2>/dev/null || { cat "$log"; exit 1; }
        sleep 0.5
    done
    echo "the server was not ready after 300 s" >&2
    exit 1
}
