# tests/bench/lib.sh - sourced by the benchmark scripts (and scripts/run-bench):
# a free loopback port, mezz_status, and the daemon's start and stop.
# mezz_start needs $daemon (the mezzanine binary); it sets $port and $dpid.

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

status() { # port -> the mezz_status answer (empty when nothing answers)
  curl -s -m 1 -X POST -H 'Content-Type: application/json' \
    -d '{"jsonrpc":"2.0","id":1,"method":"mezz_status"}' "http://127.0.0.1:$1/"
}

# mezz_start DIR [DAEMON ARGS...]: the daemon on data dir DIR, on a free
# loopback port, log.level=warn (later --set arguments override it), its log
# appended to DIR/daemon.log. Five tries: a port can be taken between
# free_port and the daemon's bind. Returns once mezz_status answers.
mezz_start() {
  local dir="$1" i
  shift
  for i in 1 2 3 4 5; do
    port="$(free_port)"
    "$daemon" --data-dir "$dir" --set "server.listen=127.0.0.1:$port" --set log.level=warn \
      "$@" >>"$dir/daemon.log" 2>&1 &
    dpid=$!
    for _ in $(seq 100); do
      status "$port" | grep -q '"halted":false' && return 0
      kill -0 "$dpid" 2>/dev/null || break
      sleep 0.1
    done
    mezz_stop
  done
  echo "$(basename "$0"): the daemon did not start; log:" >&2
  cat "$dir/daemon.log" >&2
  return 1
}

mezz_stop() {
  if [ -n "${dpid:-}" ]; then
    kill "$dpid" 2>/dev/null
    wait "$dpid" 2>/dev/null
  fi
  dpid=""
}
