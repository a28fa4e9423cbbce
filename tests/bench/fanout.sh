#!/usr/bin/env bash
# Feed fan-out benchmark: many block-feed subscribers on one daemon under
# transaction load, with and without slow subscribers.
#   tests/bench/fanout.sh BUILD_DIR quick|full
# Each scenario starts a fresh daemon (fresh data directory under $TMPDIR,
# free port) with namespaces "bench" (loaded) and "feed" (followed), runs
# BUILD_DIR/bench/fanout with the load generators as its load command, and
# stops the daemon. Prints a markdown section; with OUT=FILE also appends one
# JSON line per run to FILE.
#
# Both the subscribers (fanout.c) and the load (peerload --peer mezz, one
# epoll loop per process) speak raw WebSocket frames, the lightest clients
# the benches have: they share the machine's cores with the daemon they
# measure.
#
# Load: 10k tx/s in total (TOTAL_RATE), of which FEED_RATE tx/s go to the
# followed namespace "feed" and the rest to "bench". Every subscriber follows
# "feed" (levels: sealed), as an executor follows its own rollup; a sealed
# block is sent to every subscriber every slot whether or not its namespace
# had transactions. Set FEED_RATE=TOTAL_RATE to have every subscriber receive
# the whole 10k tx/s stream (each block is then ~1.2 MB of JSON per
# subscriber: bandwidth-bound, see the notes printed with the table).
#
# Scenarios: (a) SUBS subscribers, none slow; (b) SUBS subscribers of which
# SLOW (default 0.1) stop reading. The slow ones are dropped by the daemon
# when their queue passes feed.queue_max_blocks (QUEUE_BLOCKS, default 8,
# so that the drop happens inside a short run) or server.ws_send_queue_bytes.
# Unread bytes first fill the kernel socket buffers; the daemon runs with
# server.ws_sndbuf_bytes=SNDBUF (default 32768, the daemon's own default is
# 262144) and the slow subscribers pin their receive buffer to 4 KiB, so
# that ~13 KB blocks reach the daemon's queue within seconds.
# DSET="--set k=v ..." adds daemon settings (an A/B of feed.fanout_threads).
# FANOUT_DEBUG=1 prints, per block, its first arrival after its slot end and
# its fan-out (first to last arrival), to stderr.
set -uo pipefail
build="${1:-build}"
mode="${2:-quick}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$here"

case "$mode" in
quick) dur=${DUR:-8} warm=${WARM:-1} ;;
full) dur=${DUR:-30} warm=${WARM:-2} ;;
*) echo "usage: tests/bench/fanout.sh BUILD_DIR quick|full" >&2; exit 2 ;;
esac
subs=${SUBS:-1000}
slow=${SLOW:-0.1}
threads=${THREADS:-4}
total_rate=${TOTAL_RATE:-10000}
feed_rate=${FEED_RATE:-100}
queue_blocks=${QUEUE_BLOCKS:-8}
sndbuf=${SNDBUF:-32768}
slot_ms=250

daemon="$build/mezzanine"
cli="$build/mezz"
fanout="$build/bench/fanout"
peerload="$build/bench/peerload"
for b in "$daemon" "$cli" "$fanout" "$peerload"; do
  [ -x "$b" ] || { echo "fanout.sh: $b is missing; run make tools" >&2; exit 2; }
done

work="$(mktemp -d "${TMPDIR:-/tmp}/mezz-fanout.XXXXXX")"
results="$work/results.jsonl"
: >"$results"
dpid=""

cleanup() {
  if [ -n "$dpid" ]; then
    kill "$dpid" 2>/dev/null
    wait "$dpid" 2>/dev/null
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# free_port, status, mezz_start, mezz_stop
. "$here/tests/bench/lib.sh"

# start_daemon DIR: fresh data dir, namespaces "bench" and "feed", daemon on
# a free port (as scripts/run-bench), with the connection cap per address
# off (1000 subscribers all come from 127.0.0.1) and the feed queue cap.
start_daemon() {
  local dir="$1" i
  sync
  mkdir -p "$dir"
  "$cli" --data-dir "$dir" tenant create bench >/dev/null &&
    "$cli" --data-dir "$dir" namespace create bench bench 777 >/dev/null &&
    "$cli" --data-dir "$dir" namespace create bench feed 778 >/dev/null ||
    { echo "fanout.sh: namespace setup failed" >&2; return 1; }
  # log.level=info: the daemon logs each client_dropped with its time.
  mezz_start "$dir" --set log.level=info --set limits.ip_max_connections=0 \
    --set "feed.queue_max_blocks=$queue_blocks" --set "server.ws_sndbuf_bytes=$sndbuf" \
    --set "sequencer.slot_ms=$slot_ms" ${DSET:-}
}

stop_daemon() { mezz_stop; }

metric() { # port name -> value of an unlabelled metric
  curl -s -m 2 "http://127.0.0.1:$1/metrics" | awk -v n="mezz_$2" '$1 == n {print $2}'
}

# run_one SCENARIO SLOW_FRACTION
run_one() {
  local scen="$1" sl="$2" dir="$work/$1" out bench_rate load
  start_daemon "$dir" || return 1
  bench_rate=$((total_rate - feed_rate))
  # The load command: peerload on "bench" and, if any, on "feed", together.
  local pl="$peerload --peer mezz --addr 127.0.0.1:$port"
  local opts="--duration $dur --warmup $warm --drain 2"
  load="exec $pl --stream feed --conns 2 --rate $feed_rate $opts >$dir/peerload-feed.json"
  if [ "$bench_rate" -gt 0 ]; then
    load="$pl --stream bench --conns 4 --rate $bench_rate $opts >$dir/peerload-bench.json & "
    load+="$pl --stream feed --conns 2 --rate $feed_rate $opts >$dir/peerload-feed.json; wait"
  fi
  [ "$feed_rate" -le 0 ] && load="exec $pl --stream bench --conns 4 --rate $bench_rate $opts >$dir/peerload-bench.json"
  out="$("$fanout" --url "ws://127.0.0.1:$port/" --namespace feed --subs "$subs" \
    --threads "$threads" --slow "$sl" --slot-ms "$slot_ms" --warmup "$warm" \
    --daemon-pid "$dpid" -- bash -c "$load" 2>"$dir/fanout.err" | tail -1)"
  local drops subsm conns
  drops="$(metric "$port" feed_drops_total)"
  subsm="$(metric "$port" feed_subscribers)"
  conns="$(metric "$port" ws_connections)"
  curl -s -m 2 "http://127.0.0.1:$port/metrics" >"$dir/metrics.txt"
  stop_daemon
  [ -n "${FANOUT_DEBUG:-}" ] && grep '^fanout: block' "$dir/fanout.err" | sed "s/^/$scen: /" >&2
  if ! echo "$out" | grep -q '^{'; then
    echo "fanout.sh: $scen: fanout failed:" >&2
    cat "$dir/fanout.err" >&2
    return 1
  fi
  DIR="$dir" SCEN="$scen" OUT="$out" DROPS="${drops:-}" SUBSM="${subsm:-}" CONNS="${conns:-}" \
    QUEUE_BLOCKS="$queue_blocks" TOTAL_RATE="$total_rate" FEED_RATE="$feed_rate" \
    /usr/bin/python3 - >>"$results" <<'EOF'
import json, os, re, datetime
d = os.environ["DIR"]
r = json.loads(os.environ["OUT"])
r["scenario"] = os.environ["SCEN"]
r["queue_max_blocks"] = int(os.environ["QUEUE_BLOCKS"])
r["total_rate"] = int(os.environ["TOTAL_RATE"]); r["feed_rate"] = int(os.environ["FEED_RATE"])
for k, e in (("metric_feed_drops_total", "DROPS"), ("metric_feed_subscribers_end", "SUBSM"),
             ("metric_ws_connections_end", "CONNS")):
    try: r[k] = int(float(os.environ[e]))
    except ValueError: r[k] = None
# The daemon's own record of each drop: "ts=... event=client_dropped reason=...".
ts = []
reasons = {}
for line in open(d + "/daemon.log"):
    if "event=client_dropped" not in line: continue
    m = re.match(r"ts=(\S+)Z", line)
    if m: ts.append(datetime.datetime.fromisoformat(m.group(1)))
    why = re.sub(r"fromHeight=\d+", "fromHeight=N", line.split("reason=", 1)[-1].strip())
    reasons[why] = reasons.get(why, 0) + 1
r["log_drops"] = len(ts)
# The daemon's own split of seal-to-delivery (OPERATIONS.md): slot end to
# the block handed to the feed, and hand-over to the last copy written.
# Mean from _sum/_count; p99 as the upper bound of its histogram bucket.
def hist(name):
    b, n, tot = [], 0, 0.0
    for line in open(d + "/metrics.txt"):
        if line.startswith(name + "_bucket{le=\""):
            le = line.split('"')[1]
            b.append((float("inf") if le == "+Inf" else float(le), float(line.split()[-1])))
        elif line.startswith(name + "_count"):
            n = float(line.split()[-1])
        elif line.startswith(name + "_sum"):
            tot = float(line.split()[-1])
    if not n:
        return None, None
    p99 = next(le for le, c in b if c >= 0.99 * n)
    return tot / n * 1e6, p99 * 1e6
try:
    for k, name in (("seal", "mezz_block_seal_seconds"), ("fanout", "mezz_feed_fanout_seconds")):
        r[f"metric_{k}_mean_us"], r[f"metric_{k}_p99_le_us"] = hist(name)
except (OSError, ValueError, StopIteration):
    pass
r["log_drop_reasons"] = reasons
if ts:
    r["log_drop_spread_s"] = round((max(ts) - min(ts)).total_seconds(), 2)
# peerload's last line: loadgen's keys; "errors" counts every error answer,
# busy ones included ("busy" is always 0).
for name in ("bench", "feed"):
    try:
        g = json.loads(open(f"{d}/peerload-{name}.json").read().strip().splitlines()[-1])
        r[f"load_{name}_tps"] = g.get("achieved_tps"); r[f"load_{name}_p99_us"] = g.get("p99_us")
        r[f"load_{name}_errors"] = g.get("errors", 0) + g.get("busy", 0)
    except (OSError, ValueError, IndexError):
        pass
print(json.dumps(r))
EOF
  tail -1 "$results" | /usr/bin/python3 -c 'import json,sys; r=json.load(sys.stdin); print("  %(scenario)s: blocks=%(blocks)s deliveries=%(deliveries)s/%(expected)s p50=%(lat_p50_us)sus p99=%(lat_p99_us)sus max=%(lat_max_us)sus spread_p99=%(spread_p99_us)sus slow_closed=%(slow_closed)s/%(slow)s drops_metric=%(metric_feed_drops_total)s rss=%(rss0_kb)s/%(rss_subscribed_kb)s/%(rss_load_max_kb)s kB" % r)' >&2
}

echo "== feed fan-out ($mode): $subs subscribers, ${total_rate} tx/s (${feed_rate} tx/s to the followed namespace), ${dur}s + ${warm}s warm-up" >&2
rc=0
run_one a_none_slow 0 || rc=1
run_one b_slow "$slow" || rc=1
# The kernel's floor for the same fan-out: a bare send(2) loop of the same
# number of messages of the same size to receivers on the same cores.
floor_json="" floor2_json=""
msg_bytes="$(/usr/bin/python3 -c 'import json,sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r.get("scenario") == "a_none_slow" and r.get("bytes_per_delivery"):
        print(int(r["bytes_per_delivery"]))' "$results" 2>/dev/null)"
if [ -x "$build/bench/sendfloor" ] && [ -n "$msg_bytes" ]; then
  floor_json="$("$build/bench/sendfloor" --conns "$subs" --size "$msg_bytes" --threads "$threads" \
    --sndbuf "$sndbuf" --rounds "$([ "$mode" = full ] && echo 40 || echo 12)" | tail -1)"
  echo "  kernel floor: $floor_json" >&2
  # The same with the round split over two sending threads: the floor of
  # the daemon's fan-out on its default two threads (feed.fanout_threads).
  floor2_json="$("$build/bench/sendfloor" --conns "$subs" --size "$msg_bytes" --threads "$threads" \
    --sndbuf "$sndbuf" --senders 2 --rounds "$([ "$mode" = full ] && echo 40 || echo 12)" | tail -1)"
  echo "  kernel floor, two senders: $floor2_json" >&2
fi
[ -n "${OUT:-}" ] && cat "$results" >>"$OUT"

RESULTS="$results" MODE="$mode" BUILD="$build" FLOOR="$floor_json" FLOOR2="${floor2_json:-}" /usr/bin/python3 - <<'EOF'
import json, os
rows = {r["scenario"]: r for r in map(json.loads, open(os.environ["RESULTS"])) if r}
a, b = rows.get("a_none_slow"), rows.get("b_slow")
ms = lambda us: "-" if us is None else f"{us/1000:.2f} ms"
o = print
any_r = a or b
if not any_r:
    raise SystemExit(1)
o("## Feed fan-out (tests/bench/fanout.sh)")
o("")
o(f"{any_r['subs']} WebSocket subscribers in one process ({any_r['threads']} threads), each following "
  f"namespace `feed` (sealed blocks only) while peerload (`--peer mezz`) offers "
  f"{any_r['total_rate']:,} tx/s in total, "
  f"{any_r['feed_rate']:,} tx/s of it to `feed`; slot 250 ms, feed.queue_max_blocks "
  f"{any_r['queue_max_blocks']}, fresh daemon per scenario. Mode `{os.environ['MODE']}`.")
o("Latency is slot end (header.timeMs + slot) to the arrival of the block's last byte at a normal "
  "(reading) subscriber: seal, storage with the next group's fsync, hand-over and fan-out. "
  "Spread is arrival minus the first arrival of that block at any subscriber (fan-out alone). "
  "The daemon's own split, from its histograms (OPERATIONS.md): seal is slot end to the block "
  "handed to the feed (mezz_block_seal_seconds), fan-out is that hand-over to the last copy "
  "written to a socket (mezz_feed_fanout_seconds); p99 is the upper bound of its bucket.")
o("")
cols = [("blocks", "blocks", str), ("deliveries", "deliveries", str), ("expected", "expected", str),
        ("gaps", "gaps", str), ("dups", "dups", str),
        ("lat_p50_us", "p50", ms), ("lat_p99_us", "p99", ms), ("lat_max_us", "max", ms),
        ("spread_p50_us", "spread p50", ms), ("spread_p99_us", "spread p99", ms),
        ("bytes_per_delivery", "bytes/msg", lambda x: f"{x:,.0f}"),
        ("slow", "slow subs", str), ("slow_closed", "slow closed", str),
        ("slow_closed_1008", "closed 1008", str), ("metric_feed_drops_total", "feed_drops_total", str),
        ("log_drops", "client_dropped log lines", str), ("normal_closed", "normal closed", str),
        ("rss0_kb", "RSS idle", lambda k: f"{k/1024:.1f} MiB"),
        ("rss_subscribed_kb", "RSS subscribed", lambda k: f"{k/1024:.1f} MiB"),
        ("rss_load_max_kb", "RSS max under load", lambda k: f"{k/1024:.1f} MiB"),
        ("rss_per_sub_bytes", "RSS per subscriber", lambda x: f"{x/1024:.1f} KiB"),
        ("daemon_cpu_pct", "daemon CPU%", str), ("daemon_lws_cpu_pct", "lws thread CPU%", str),
        ("fanout_cpu_pct", "client CPU%", str),
        ("metric_seal_mean_us", "seal mean (daemon)", ms), ("metric_seal_p99_le_us", "seal p99 <=", ms),
        ("metric_fanout_mean_us", "fan-out mean (daemon)", ms),
        ("metric_fanout_p99_le_us", "fan-out p99 <=", ms), ("load_bench_tps", "bench tx/s", str),
        ("load_feed_tps", "feed tx/s", str)]
o("| scenario | " + " | ".join(c[1] for c in cols) + " |")
o("|---" * (len(cols) + 1) + "|")
for name, r in (("(a) none slow", a), ("(b) 10% slow", b)):
    if r:
        o(f"| {name} | " + " | ".join("-" if r.get(k) is None else f(r[k]) for k, _, f in cols) + " |")
o("")
if a and b and a.get("lat_p99_us"):
    ratio = b["lat_p99_us"] / a["lat_p99_us"]
    o(f"Normal subscribers' p99 with 10% slow vs none: {ms(b['lat_p99_us'])} / {ms(a['lat_p99_us'])} = "
      f"**{ratio:.2f}x** (target <= 1.10x). Budget p99 <= 10 ms: (a) "
      f"**{'PASS' if a['lat_p99_us'] <= 10000 else 'MISS'}**, (b) "
      f"**{'PASS' if b['lat_p99_us'] <= 10000 else 'MISS'}**.")
fl = json.loads(os.environ["FLOOR"]) if os.environ.get("FLOOR", "").startswith("{") else None
if fl and a:
    o("")
    per_send = (f"The sending thread's CPU time per `send(2)`: {fl['send_cpu_ns'] / 1000:.1f} us "
                "(on loopback a send also runs the receiver's TCP input and its wake-up). "
                if fl.get('send_cpu_ns') else "")
    o(f"Kernel floor (`tests/bench/sendfloor.c`, same run): one thread writes {fl['conns']:,} messages "
      f"of {fl['size']:,} bytes over loopback TCP, a plain `send(2)` loop with the daemon's socket "
      f"options, to {fl['threads']} epoll receiver threads on the same two cores, every 250 ms "
      f"({fl['rounds']} rounds). The loop takes {ms(fl['loop_p50_us'])} (median round); start of "
      f"the round to a message's last byte: p50 {ms(fl['lat_p50_us'])}, p99 {ms(fl['lat_p99_us'])}. "
      + per_send +
      (f"The daemon's fan-out alone (spread p99 {ms(a.get('spread_p99_us'))}, its own fan-out mean "
       f"{ms(a.get('metric_fanout_mean_us'))}) against that loop: "
       f"{a['metric_fanout_mean_us'] / fl['loop_p50_us']:.2f}x."
       if a.get('metric_fanout_mean_us') else ""))
    fl2 = json.loads(os.environ["FLOOR2"]) if os.environ.get("FLOOR2", "").startswith("{") else None
    if fl2:
        o("")
        o(f"The same loop split over two sending threads (`--senders 2`, the floor of the daemon's "
          f"fan-out on its default two threads, `feed.fanout_threads`): the loop takes "
          f"{ms(fl2['loop_p50_us'])}; last byte p50 {ms(fl2['lat_p50_us'])}, p99 "
          f"{ms(fl2['lat_p99_us'])}"
          + (f"; {fl2['send_cpu_ns'] / 1000:.1f} us of CPU per send on the first sender"
             if fl2.get('send_cpu_ns') else "") + "."
          + (f" The daemon's fan-out mean against this loop: "
             f"{a['metric_fanout_mean_us'] / fl2['loop_p50_us']:.2f}x."
             if a and a.get('metric_fanout_mean_us') else ""))
    o("")
if b:
    o(f"Slow subscribers: {b['slow']}; closed by the daemon {b['slow_closed']} "
      f"({b['slow_closed_1008']} with close code 1008), the daemon's mezz_feed_drops_total says "
      f"{b.get('metric_feed_drops_total')}, its log has {b.get('log_drops')} client_dropped lines "
      f"spread over {b.get('log_drop_spread_s', '-')} s: {b.get('log_drop_reasons')}.")
o("")
EOF
exit $rc
