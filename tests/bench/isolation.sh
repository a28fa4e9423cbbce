#!/usr/bin/env bash
# isolation.sh - does a tenant flooding at 10x its rate limit move another
# tenant's preconfirmation latency? Prints a markdown section on stdout.
#
#   tests/bench/isolation.sh [BUILD_DIR]
#   env: QUIET_RATE (tx/s, default 2000)  LIMIT (the noisy tenant's limit,
#        default 2000 tx/s)  DUR (s per run, 10)  WARM (s, 2)  REPS (5)
#        SCENARIOS (default "baseline atlimit limited unlimited")
#
# Four scenarios, each REPS times on a fresh daemon, medians reported:
#   baseline   the quiet tenant alone at QUIET_RATE
#   atlimit    the same, while the noisy tenant offers exactly its LIMIT tx/s
#              (what its neighbours must expect it to use)
#   limited    the same, while the noisy tenant offers 10 x LIMIT with a
#              LIMIT tx/s tenant limit (the daemon refuses the excess with -32009)
#   unlimited  the same flood with no limit (the control: what the limit buys)
# The budget: limited p99 <= 1.10 x atlimit p99 (the flood's excess must not
# cost the neighbour anything beyond the noisy tenant's allowed share of the
# box); limited vs baseline is reported too.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${1:-build}"
case "$build" in /*) ;; *) build="$here/$build" ;; esac
QUIET_RATE="${QUIET_RATE:-2000}" LIMIT="${LIMIT:-2000}" DUR="${DUR:-10}" WARM="${WARM:-2}" REPS="${REPS:-5}"
SCENARIOS="${SCENARIOS:-baseline atlimit limited unlimited}"
# Both tenants' clients are peerload (--peer mezz: raw WebSocket frames, one
# epoll loop), the lightest client the benches have, so what the flood costs
# is mostly the daemon's work and not the flooding client's own CPU on the
# two cores all three share.
daemon="$build/mezzanine" cli="$build/mezz" peerload="$build/bench/peerload"
for b in "$daemon" "$cli" "$peerload"; do
  [ -x "$b" ] || { echo "isolation.sh: $b missing (make tools)" >&2; exit 1; }
done
work="$(mktemp -d /tmp/mezz-iso-XXXXXX)"
dpid=""
cleanup() { [ -n "$dpid" ] && kill "$dpid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

# free_port, status, mezz_start, mezz_stop
. "$here/tests/bench/lib.sh"

start_daemon() { # DIR NOISY_LIMIT
  local dir="$1" lim="$2"
  mkdir -p "$dir"
  "$cli" --data-dir "$dir" tenant create quiet >/dev/null
  "$cli" --data-dir "$dir" namespace create quiet quiet 1001 >/dev/null
  "$cli" --data-dir "$dir" tenant create noisy >/dev/null
  "$cli" --data-dir "$dir" namespace create noisy noisy 2002 >/dev/null
  "$cli" --data-dir "$dir" tenant limits noisy --tx-per-s "$lim" >/dev/null
  mezz_start "$dir"
}

stop_daemon() { mezz_stop; }

run() { # SCENARIO REP
  local scen="$1" rep="$2" dir="$work/$1-$2" lim=0 noisy_pid="" q n="null"
  local offer=$((LIMIT * 10))
  case "$scen" in limited | atlimit) lim="$LIMIT" ;; esac
  [ "$scen" = atlimit ] && offer="$LIMIT"
  start_daemon "$dir" "$lim"
  if [ "$scen" != baseline ]; then
    "$peerload" --peer mezz --addr "127.0.0.1:$port" --stream noisy --rate "$offer" \
      --conns 4 --max-inflight 4096 --duration $((DUR + WARM + 1)) --warmup 0 \
      >"$dir/noisy.json" 2>"$dir/noisy.err" &
    noisy_pid=$!
    sleep 1
  fi
  q="$("$peerload" --peer mezz --addr "127.0.0.1:$port" --stream quiet --rate "$QUIET_RATE" \
        --conns 4 --duration "$DUR" --warmup "$WARM" 2>"$dir/quiet.err" | tail -1)"
  if [ -n "$noisy_pid" ]; then
    wait "$noisy_pid" || true
    n="$(tail -1 "$dir/noisy.json")"
  fi
  stop_daemon
  printf '{"scenario":"%s","rep":%d,"quiet":%s,"noisy":%s}\n' "$scen" "$rep" "$q" "${n:-null}" \
    >>"$work/results.jsonl"
  # The next run must not share the disk with this one's writeback (the
  # same rule as scripts/run-bench): its fsyncs are the quiet tenant's p99.
  rm -rf "$dir"
  sync
}

for rep in $(seq "$REPS"); do
  for scen in $SCENARIOS; do
    run "$scen" "$rep"
  done
done

QUIET_RATE="$QUIET_RATE" LIMIT="$LIMIT" DUR="$DUR" WARM="$WARM" REPS="$REPS" python3 - "$work/results.jsonl" <<'PY'
import json, os, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for r in rows:
    by.setdefault(r["scenario"], []).append(r)
med = lambda xs: statistics.median(xs) if xs else float("nan")
def q(s, k): return med([r["quiet"][k] for r in by.get(s, [])])
def n(s, k): return med([(r["noisy"] or {}).get(k, 0) for r in by.get(s, [])])
lim, rate = int(os.environ["LIMIT"]), int(os.environ["QUIET_RATE"])
print("## Tenant isolation under a 10x flood\n")
print("The quiet tenant submits %d tx/s (open loop, 4 WebSocket connections); the noisy tenant "
      "offers %d tx/s, 10x its %d tx/s tenant limit (`limited`), or exactly its limit "
      "(`atlimit`). %s s runs, median of %s fresh daemons per scenario, latencies are "
      "send-to-receipt as the quiet client measures them. Both load generators run on the "
      "same 2 cores as the daemon (both are `peerload --peer mezz`).\n"
      % (rate, lim * 10, lim, os.environ["DUR"], os.environ["REPS"]))
print("| scenario | quiet p50 | quiet p99 | quiet p99 per run | quiet p999 | quiet tx/s | noisy accepted tx/s | noisy refused |")
print("|---|---|---|---|---|---|---|---|")
def runs(s): return " / ".join("%.2f" % (r["quiet"]["p99_us"] / 1e3) for r in by.get(s, []))
for s in ("baseline", "atlimit", "limited", "unlimited"):
    print("| %s | %.2f ms | %.2f ms | %s | %.2f ms | %.0f | %s | %s |" % (
        s, q(s, "p50_us") / 1e3, q(s, "p99_us") / 1e3, runs(s), q(s, "p999_us") / 1e3,
        q(s, "achieved_tps"),
        "-" if s == "baseline" else "%.0f" % n(s, "achieved_tps"),
        "-" if s == "baseline" else "%.0f" % n(s, "errors")))
span = int(os.environ["DUR"]) + int(os.environ["WARM"]) + 1
print("\nThe noisy client runs %d s (it starts 1 s before the quiet one and ends with it); its "
      "accepted rate is over that whole run, which starts with a full token bucket "
      "(`limits.burst_ms` = 1000: %d tokens), so a limit held exactly shows as %.0f tx/s."
      % (span, lim, lim * (span + 1) / span))
ratio = q("limited", "p99_us") / q("atlimit", "p99_us")
print("\nQuiet p99 with the limited flood / with the noisy tenant at its limit: **%.2fx** "
      "(budget <= 1.10x): %s. Limited flood / quiet alone: %.2fx. Without the limit / alone: "
      "%.2fx." % (ratio, "within budget" if ratio <= 1.10 else "OVER BUDGET",
                  q("limited", "p99_us") / q("baseline", "p99_us"),
                  q("unlimited", "p99_us") / q("baseline", "p99_us")))
PY
