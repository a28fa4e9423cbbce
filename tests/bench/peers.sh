#!/usr/bin/env bash
# Mezzanine next to its peers, Redis Streams and NATS JetStream, on the same
# workload in one run (issue 7).
#   tests/bench/peers.sh BUILD_DIR quick|full      (OUT=results.jsonl optional)
# quick: each scenario once, 2 s measured after 1 s of warm-up (~35 s in all).
# full:  each scenario 3 times, 10 s measured after 2 s of warm-up; medians.
#
# Workload (tests/bench/peerload.c for all three: one client, one epoll loop,
# each protocol spoken over plain sockets, so no system pays for a heavier
# client library on the two cores it shares with the client): 200-byte
# payloads, the first 8 bytes a counter tag, 4 client connections, the load
# generator on the same machine as the server. For mezzanine peerload speaks
# WebSocket itself (RFC 6455 frames, masked); loadgen (libwebsockets' client,
# used by scripts/run-bench) took 60% of a core at 34k receipts/s where
# peerload takes 7%.
#   (a) max throughput: closed loop, 4 connections x 64 messages in flight.
#   (b) open loop at 10,000 msg/s with one subscriber: submit -> ack p50/p99
#       and submit -> delivered-to-the-subscriber p50/p99.
# (a) also runs "mezzanine-pinned": the same daemon with its network thread and
# mz-commit pinned to the first two CPUs this process may use
# (sequencer.network_cpu, sequencer.commit_cpu: off by default). Its row and a
# line under the table report it; the ratio columns stay the defaults'.
# Every run starts a fresh server on a fresh directory under $TMPDIR and a free
# loopback port, after the previous run's directory is removed and synced (as
# scripts/run-bench does, so one run's writeback is not the next run's p99).
#
# What "ack" means, and at which durability, for each system:
#   mezzanine  the preconfirmation receipt of mezz_sendTransaction over
#              WebSocket: SQLite WAL, group commit fsynced before any answer, the
#              receipt is sent after the group's fsync. Delivered = the
#              transaction's `preconfirmed` event on a mezz_subscribe feed
#              (one event per committed group, sent after its fsync): the
#              same event as the peers' per-message delivery. The sealed
#              block (end of its 250 ms slot) is a later, stronger level;
#              scripts/run-bench scenario (d) measures delivery at that level.
#   redis      the reply to XADD <stream> * d <payload>; appendonly yes,
#              appendfsync always (Redis writes and fdatasyncs the AOF in
#              beforeSleep, before it sends that event-loop turn's replies: a
#              group commit, the same durability as mezzanine's). RDB saves
#              off, automatic AOF rewrites off (a background fork in a short
#              run is noise, and mezzanine never compacts either). Delivered =
#              XREAD BLOCK on one connection, COUNT 4096, from the last id.
#   nats       the JetStream PubAck of a publish with a reply inbox to a
#              file-storage stream (R1). `sync_interval: always` (fsync every
#              message before the PubAck) exists only from nats-server 2.10;
#              the script uses it when the installed server accepts it. Debian
#              12 ships 2.9.10, which rejects the option: there JetStream
#              writes each message to the file (page cache) before the PubAck
#              and fsyncs only in the background (every ~2 minutes by
#              default), so its rows are NOT at equal durability and are
#              labelled so. Delivered = a durable push consumer (ack policy
#              none, deliver subject outside the stream's subjects).
# The script prints the settings it checked on the live servers (CONFIG GET,
# /varz and /jsz) so a reader can see them rather than trust this comment.
#
# The disk's share of the tail. Every (b) run also records, when perf can
# trace syscalls here (root, tracefs), each fsync and fdatasync of every
# process (perf record -a -k mono: CLOCK_MONOTONIC, the clock of peerload
# --trace, which gives the send time and latency of each ack).
# tests/bench/fsynctail.py then counts the server's syncs that took over
# 2 ms and how many of the acks slower than the run's p99 were in flight
# while one of its syncs took over 1 ms, next to the share of all acks that
# were (what chance gives). A p99 that follows those counts from run to run
# is the disk's, whichever system is measured.
set -uo pipefail
build="${1:-build}"
mode="${2:-quick}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$here"

# b_reps: scenario (b), the latency one, runs more often: its p99 moves with
# the disk's flush latency from one minute to the next (see below).
case "$mode" in
quick) reps=1 b_reps=1 dur=2 warm=1 ;;
full) reps=3 b_reps=5 dur=10 warm=2 ;;
*) echo "usage: tests/bench/peers.sh BUILD_DIR quick|full" >&2; exit 2 ;;
esac

daemon="$build/mezzanine"
cli="$build/mezz"
peerload="$build/bench/peerload"
for b in "$daemon" "$cli" "$peerload"; do
  [ -x "$b" ] || { echo "peers: $b is missing; run make tools" >&2; exit 2; }
done
for c in redis-server redis-cli nats-server curl; do
  command -v "$c" >/dev/null || { echo "peers: $c is missing; run scripts/install-deps" >&2; exit 2; }
done

work="$(mktemp -d "${TMPDIR:-/tmp}/mezz-peers.XXXXXX")"
results="$work/results.jsonl"
spid=""       # the server of the current run
lpid=""       # its load generator
last_dir=""

stop_server() {
  if [ -n "$spid" ]; then
    kill "$spid" 2>/dev/null
    wait "$spid" 2>/dev/null
    spid=""
  fi
}
cleanup() {
  # The load generator holds only sockets and memory: nothing to lose.
  if [ -n "$lpid" ]; then
    kill -KILL "$lpid" 2>/dev/null
    wait "$lpid" 2>/dev/null
  fi
  stop_server
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# free_port, status, mezz_start, mezz_stop
. "$here/tests/bench/lib.sh"

# fresh_dir DIR: remove the previous run's directory, write dirty pages back.
fresh_dir() {
  [ -n "$last_dir" ] && rm -rf "$last_dir"
  sync
  last_dir="$1"
  mkdir -p "$1"
}

# start_mezzanine DIR: namespace "bench", daemon on a free port (scripts/run-bench's start_daemon).
# start_mezzanine DIR [--set KEY=VALUE ...]
start_mezzanine() {
  local dir="$1" i
  shift
  fresh_dir "$dir"
  "$cli" --data-dir "$dir" tenant create bench >/dev/null &&
    "$cli" --data-dir "$dir" namespace create bench bench 777 >/dev/null ||
    { echo "peers: namespace setup failed" >&2; return 1; }
  mezz_start "$dir" "$@" || return 1
  spid="$dpid" dpid=""
}

start_redis() {
  local dir="$1" i
  fresh_dir "$dir"
  for i in 1 2 3; do
    port="$(free_port)"
    cat >"$dir/redis.conf" <<EOF
bind 127.0.0.1
port $port
dir $dir
appendonly yes
appendfsync always
save ""
auto-aof-rewrite-percentage 0
daemonize no
logfile $dir/redis.log
EOF
    redis-server "$dir/redis.conf" &
    spid=$!
    for _ in $(seq 50); do
      if [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ]; then
        echo "    redis checked: $(redis-cli -p "$port" CONFIG GET appendonly | paste -sd=) \
$(redis-cli -p "$port" CONFIG GET appendfsync | paste -sd=) \
save='$(redis-cli -p "$port" CONFIG GET save | sed -n 2p)'"
        return 0
      fi
      kill -0 "$spid" 2>/dev/null || break
      sleep 0.1
    done
    stop_server
  done
  echo "peers: redis-server did not start; log:" >&2
  cat "$dir/redis.log" >&2
  return 1
}

# Does this nats-server accept `sync_interval: always`? (2.10 and later.)
nats_sync=""
probe="$work/nats-probe.conf"
printf 'listen: 127.0.0.1:4222\njetstream { store_dir: "%s/probe", sync_interval: always }\n' \
  "$work" >"$probe"
if nats-server -c "$probe" -t >/dev/null 2>&1; then
  nats_sync="  sync_interval: always"
  nats_durability="fsync per message (sync_interval: always)"
else
  nats_durability="NO per-message fsync: nats-server $(nats-server --version | sed 's/.*v//') lacks sync_interval (background sync only)"
fi

start_nats() {
  local dir="$1" i
  fresh_dir "$dir"
  for i in 1 2 3; do
    port="$(free_port)"
    mport="$(free_port)"
    cat >"$dir/nats.conf" <<EOF
listen: 127.0.0.1:$port
http: 127.0.0.1:$mport
jetstream {
  store_dir: "$dir/js"
  max_file_store: 16G
  max_memory_store: 64M
$nats_sync
}
EOF
    nats-server -c "$dir/nats.conf" >"$dir/nats.log" 2>&1 &
    spid=$!
    for _ in $(seq 50); do
      curl -sf -m 1 "http://127.0.0.1:$mport/healthz" 2>/dev/null | grep -q ok && return 0
      kill -0 "$spid" 2>/dev/null || break
      sleep 0.1
    done
    stop_server
  done
  echo "peers: nats-server did not start; log:" >&2
  cat "$dir/nats.log" >&2
  return 1
}

# What the live NATS server says about its stream and its sync setting.
nats_check() {
  curl -s -m 2 "http://127.0.0.1:$mport/varz" >"$1/varz.json"
  curl -s -m 2 "http://127.0.0.1:$mport/jsz?streams=true&config=true" >"$1/jsz.json"
  python3 - "$1" <<'EOF'
import json, sys
d = sys.argv[1]
v = json.load(open(d + "/varz.json"))
j = json.load(open(d + "/jsz.json"))
cfg = v.get("jetstream", {}).get("config", {})
sync = cfg.get("sync_interval", cfg.get("sync_always", "absent (not supported by this server)"))
st = [s for a in j.get("account_details", []) for s in a.get("stream_detail", [])]
desc = ", ".join(f"{s['name']}: storage={s['config'].get('storage')} replicas={s['config'].get('num_replicas')} "
                 f"messages={s.get('state', {}).get('messages')}" for s in st)
print(f"    nats checked: server {v.get('version')}, jetstream sync_interval={sync}; stream {desc}")
EOF
}

# load DIR PROGRAM ARGS...: run a load generator against the server $spid.
# It runs in the background and the script waits for it: a trapped signal
# interrupts `wait` at once, where a foreground child that catches SIGINT
# itself (both load generators drain on it) would keep the script going.
load() {
  local dir="$1"
  shift
  "$@" --duration "$dur" --warmup "$warm" --daemon-pid "$spid" >"$dir/load.out" 2>"$dir/load.err" &
  lpid=$!
  wait "$lpid"
  lpid=""
}

# Can perf record syscall tracepoints here? (root and tracefs; not in every
# container.) Without it the (b) runs have no sync columns.
fsync_trace=""
if command -v perf >/dev/null &&
  perf record -q -k mono -e syscalls:sys_enter_fdatasync -o "$work/perf-probe.data" true \
    >/dev/null 2>&1; then
  fsync_trace=1
fi
tpid=""
trace_start() { # DIR: every process's syncs, until trace_stop
  [ -n "$fsync_trace" ] || return 0
  perf record -q -a -k mono -o "$1/perf.data" \
    -e syscalls:sys_enter_fdatasync -e syscalls:sys_exit_fdatasync \
    -e syscalls:sys_enter_fsync -e syscalls:sys_exit_fsync >/dev/null 2>&1 &
  tpid=$!
  sleep 0.3 # perf's tracepoints are armed before the load starts
}
trace_stop() { # DIR SERVER_PID: the sync figures, as JSON, in DIR/fsync.json
  [ -n "$tpid" ] || return 0
  kill -INT "$tpid" 2>/dev/null
  wait "$tpid" 2>/dev/null
  tpid=""
  perf script -F comm,pid,tid,time,event,trace -i "$1/perf.data" 2>/dev/null |
    python3 "$here/tests/bench/fsynctail.py" --pid "$2" --trace "$1/trace" >"$1/fsync.json" ||
    rm -f "$1/fsync.json"
  rm -f "$1/perf.data"
}

# run_one SYSTEM SCENARIO REP ARGS...: start SYSTEM's server, run the load, stop it.
run_one() {
  local sys="$1" scen="$2" rep="$3" dir out durab traced="" server cmd_args
  shift 3
  cmd_args="$*"
  dir="$work/$sys-$scen-$rep"
  # The latency scenario (open loop) is traced: see "The disk's share" above.
  case " $* " in *" --rate 0 "*) ;; *) traced=1 ;; esac
  case "$sys" in
  mezzanine)
    start_mezzanine "$dir" || return 1
    durab="SQLite WAL, receipt after the group's WAL fsync"
    ;;
  mezzanine-pinned)
    start_mezzanine "$dir" --set sequencer.network_cpu="$pin_net" \
      --set sequencer.commit_cpu="$pin_com" || return 1
    durab="as mezzanine; sequencer.network_cpu=$pin_net, commit_cpu=$pin_com (not the default)"
    ;;
  redis)
    start_redis "$dir" || return 1
    durab="AOF appendfsync always, reply after fsync"
    ;;
  nats)
    start_nats "$dir" || return 1
    durab="$nats_durability"
    ;;
  esac
  [ -n "$traced" ] && { trace_start "$dir"; set -- "$@" --trace "$dir/trace"; }
  case "$sys" in
  mezzanine*) load "$dir" "$peerload" --peer mezz --stream bench --addr "127.0.0.1:$port" "$@" ;;
  redis) load "$dir" "$peerload" --peer redis --addr "127.0.0.1:$port" "$@" ;;
  nats)
    load "$dir" "$peerload" --peer nats --addr "127.0.0.1:$port" "$@"
    nats_check "$dir"
    ;;
  esac
  server="$spid"
  [ -n "$traced" ] && trace_stop "$dir" "$server"
  out="$(tail -1 "$dir/load.out")"
  stop_server
  if ! echo "$out" | grep -q '^{'; then
    echo "peers: $sys $scen #$rep: the load generator failed:" >&2
    cat "$dir/load.err" >&2
    return 1
  fi
  SYS="$sys" SCEN="$scen" REP="$rep" ARGS="$cmd_args" DUR_NOTE="$durab" OUT_JSON="$out" \
    FSYNC_JSON="$dir/fsync.json" python3 - >>"$results" <<'EOF'
import json, os
r = json.loads(os.environ["OUT_JSON"])
r.update(system=os.environ["SYS"], scenario=os.environ["SCEN"], rep=int(os.environ["REP"]),
         args=os.environ["ARGS"], durability=os.environ["DUR_NOTE"])
if os.path.exists(os.environ["FSYNC_JSON"]):
    r.update(json.load(open(os.environ["FSYNC_JSON"])))
print(json.dumps(r))
EOF
  echo "  $sys $scen #$rep: $(echo "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); print("tps=%(achieved_tps)s p50=%(p50_us)sus p99=%(p99_us)sus errors=%(errors)s" % d + ("  deliv_p50=%(deliv_p50_us)sus deliv_p99=%(deliv_p99_us)sus delivered=%(delivered)s" % d if "deliv_p50_us" in d else "") + ("  server_cpu=%s%%" % d["daemon_cpu_pct"] if "daemon_cpu_pct" in d else ""))')"
}

# The first two CPUs this process may use, for mezzanine-pinned.
read -r pin_net pin_com < <(python3 -c 'import os; c = sorted(os.sched_getaffinity(0)); print(*(c[:2] if len(c) > 1 else ["", ""]))')

scenarios=(
  "a_max|--conns 4 --window 64 --rate 0"
  "b_open10k_sub|--conns 4 --rate 10000 --subscribe"
)

echo "== peers ($mode): $reps repetition(s) of (a), $b_reps of (b), ${dur}s measured + ${warm}s warm-up"
echo "   $(redis-server --version | cut -d' ' -f1-3), nats-server $(nats-server --version | sed 's/.*v//'), mezzanine $(git rev-parse --short HEAD 2>/dev/null)"
echo "   nats durability: $nats_durability"
rc=0
for rep in $(seq "$b_reps"); do
  for s in "${scenarios[@]}"; do
    [ "$rep" -gt "$reps" ] && [ "${s%%|*}" != b_open10k_sub ] && continue
    for sys in mezzanine mezzanine-pinned redis nats; do
      # The answer path's two threads pinned (sequencer.network_cpu and
      # commit_cpu, off by default): the closed loop only, and only with two
      # CPUs to pin them to.
      if [ "$sys" = mezzanine-pinned ] && { [ -z "$pin_com" ] || [ "${s%%|*}" != a_max ]; }; then
        continue
      fi
      # For mezzanine, one transaction per WebSocket message, and delivered =
      # the preconfirmed feed event (per group, after the fsync).
      args="${s#*|}"
      # shellcheck disable=SC2086
      run_one "$sys" "${s%%|*}" "$rep" $args || rc=1
    done
  done
done

[ -n "${OUT:-}" ] && cp "$results" "$OUT"
RESULTS="$results" REPS="$reps" B_REPS="$b_reps" python3 - <<'EOF'
import json, os, statistics
rows = [json.loads(l) for l in open(os.environ["RESULTS"]) if l.strip()]
def med(sys, scen, k):
    v = [r[k] for r in rows if r["system"] == sys and r["scenario"] == scen and k in r]
    return statistics.median(v) if v else None
def ms(us):
    return "-" if us is None else f"{us / 1000:.2f}"
def n(x):
    return "-" if x is None else f"{x:,.0f}"
def ratio(a, b):
    return "-" if a is None or b in (None, 0) else f"{a / b:.2f}"
systems = ["mezzanine", "mezzanine-pinned", "redis", "nats"]
def short(sys):
    a = med(sys, "b_open10k_sub", "achieved_tps")
    return " (!)" if a is not None and a < 9500 else ""
dur = {r["system"]: r["durability"] for r in rows}
print()
print(f"medians of {os.environ['REPS']} repetition(s) of (a) and {os.environ['B_REPS']} of (b); "
      "latencies in ms; (a) closed loop 4 conns x window 64; (b) open loop 10k msg/s + 1 subscriber")
print()
print("| system | (a) max msg/s | (a) ack p50 / p99 | (b) achieved msg/s | (b) ack p50 / p99 | "
      "(b) delivered p50 / p99 | server CPU% (a) | mezz/peer (a) msg/s | mezz/peer (b) ack p99 | "
      "mezz/peer (b) delivered p99 | durability |")
print("|---" * 11 + "|")
m_a = med("mezzanine", "a_max", "achieved_tps")
m_p99 = med("mezzanine", "b_open10k_sub", "p99_us")
m_d99 = med("mezzanine", "b_open10k_sub", "deliv_p99_us")
for s in systems:
    if not any(r["system"] == s for r in rows):
        continue
    a = med(s, "a_max", "achieved_tps")
    b99 = med(s, "b_open10k_sub", "p99_us")
    d99 = med(s, "b_open10k_sub", "deliv_p99_us")
    print(f"| {s} | {n(a)} | {ms(med(s, 'a_max', 'p50_us'))} / {ms(med(s, 'a_max', 'p99_us'))} | "
          f"{n(med(s, 'b_open10k_sub', 'achieved_tps'))}{short(s)} | "
          f"{ms(med(s, 'b_open10k_sub', 'p50_us'))} / {ms(b99)} | "
          f"{ms(med(s, 'b_open10k_sub', 'deliv_p50_us'))} / {ms(d99)} | "
          f"{n(med(s, 'a_max', 'daemon_cpu_pct'))} | "
          f"{'1' if s == 'mezzanine' else '-' if s == 'mezzanine-pinned' else ratio(m_a, a)} | "
          f"{'1' if s == 'mezzanine' else ratio(m_p99, b99)} | "
          f"{'1' if s == 'mezzanine' else ratio(m_d99, d99)} | {dur.get(s, '-')} |")
print()
print("Ratios are mezzanine / peer: above 1 is more throughput for mezzanine, or a longer latency "
      "for mezzanine. 'Delivered' is, for mezzanine, the transaction's `preconfirmed` feed event "
      "(sent after its group's fsync); for the peers, the message reaching the consumer. "
      "mezzanine's sealed-block delivery (end of a 250 ms slot) is in the preconfirmation table.")
p_a = med("mezzanine-pinned", "a_max", "achieved_tps")
if p_a is not None:
    print()
    print(f"mezzanine-pinned, (a) only: the same daemon with its network thread and mz-commit "
          f"pinned to CPUs of their own (sequencer.network_cpu, sequencer.commit_cpu; off by "
          f"default, docs/ARCHITECTURE.md): {n(p_a)} msg/s, {ratio(p_a, m_a)}x the default, "
          f"{ratio(p_a, med('redis', 'a_max', 'achieved_tps'))}x Redis, "
          f"{ratio(p_a, med('nats', 'a_max', 'achieved_tps'))}x NATS.")
if any(short(s) for s in systems):
    print("(!) did not sustain the offered 10k msg/s: its (b) latencies are queueing behind the "
          "backlog, not service times, and its (b) ratios are not comparable.")
b_rows = sorted((r for r in rows if r["scenario"] == "b_open10k_sub"),
                key=lambda r: (r["rep"], systems.index(r["system"])))
if any("fsync_n" in r for r in b_rows):
    print()
    print("Every (b) run, in the order run (the systems interleaved), with the server's own syncs "
          "(perf trace of every fsync and fdatasync of the server process; "
          "tests/bench/fsynctail.py). *Slow acks on a slow sync*: of the acks slower than that "
          "run's p99, those in flight while a sync of the server took over 1 ms; *chance*: the "
          "share of all acks in flight during such a sync.")
    print()
    print("| rep | system | ack p99 | delivered p99 | server syncs | sync p50 / p99 / max | "
          "syncs over 2 ms | slow acks on a slow sync | chance |")
    print("|---" * 9 + "|")
    for r in b_rows:
        if "fsync_n" not in r:
            continue
        share = (f"{r['slow_acks_on_slow_fsync']} of {r['slow_acks']} "
                 f"({100.0 * r['slow_acks_on_slow_fsync'] / r['slow_acks']:.0f}%)"
                 if r.get("slow_acks") else "-")
        print(f"| {r['rep']} | {r['system']} | {ms(r['p99_us'])} | {ms(r.get('deliv_p99_us'))} | "
              f"{n(r['fsync_n'])} | {ms(r['fsync_p50_us'])} / {ms(r['fsync_p99_us'])} / "
              f"{ms(r['fsync_max_us'])} | {r['fsync_over2ms']} | {share} | "
              f"{r.get('acks_on_slow_fsync_pct', '-')}% |")
errs = [(r["system"], r["scenario"], r["errors"]) for r in rows if r.get("errors")]
if errs:
    print("errors: " + ", ".join(f"{a} {b}: {c}" for a, b, c in errs))
lost = [(r["system"], r["scenario"], r["conns_closed"]) for r in rows if r.get("conns_closed")]
if lost:
    print("connections closed by the server during the run: " +
          ", ".join(f"{a} {b}: {c}" for a, b, c in lost))
EOF
exit $rc
