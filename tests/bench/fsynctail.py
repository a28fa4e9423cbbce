#!/usr/bin/env python3
"""fsynctail.py - how much of a server's latency tail is its disk's flush tail.

  perf script -F comm,pid,tid,time,event,trace -i perf.data |
      tests/bench/fsynctail.py --pid PID [--trace PEERLOAD_TRACE] [--slow-ms 1]

Input: `perf record -a -k mono` of syscalls:sys_{enter,exit}_{fsync,fdatasync}
taken while the server ran (CLOCK_MONOTONIC timestamps, so they line up with
the peerload trace). Output: one JSON object on stdout.

  fsync_n, fsync_p50_us, fsync_p99_us, fsync_max_us
      every fsync and fdatasync any thread of PID made, and their durations
  fsync_over2ms
      how many took longer than 2 ms
  With --trace (peerload --trace: the send time and the latency of each
  acknowledged message):
  slow_acks
      acknowledgements slower than the run's p99
  slow_acks_on_slow_fsync
      of those, how many were in flight (send to ack) while a sync of the
      server's took longer than --slow-ms
  acks_on_slow_fsync_pct
      the same share over all acknowledgements: what chance alone gives
"""
import argparse
import bisect
import json
import re
import sys

EVENT = re.compile(r"^\s*\S.*?\s+(\d+)/(\d+)\s+(?:\[\d+\]\s+)?([\d.]+):\s+syscalls:sys_(enter|exit)_f(?:data)?sync:")


def percentile(sorted_values, p):
    if not sorted_values:
        return 0
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * p / 100))]


def read_syncs(lines, pid):
    """(start, end) in seconds of every completed sync call of pid's threads."""
    open_calls, spans = {}, []
    for line in lines:
        m = EVENT.match(line)
        if not m or int(m.group(1)) != pid:
            continue
        tid, t = m.group(2), float(m.group(3))
        if m.group(4) == "enter":
            open_calls[tid] = t
        elif tid in open_calls:
            spans.append((open_calls.pop(tid), t))
    return spans


def merged(spans):
    out = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return out


def overlaps(union, starts, a, b):
    """Does [a, b] meet any interval of the sorted, disjoint union?"""
    i = bisect.bisect_right(starts, b) - 1
    return i >= 0 and union[i][1] >= a


def read_trace(path):
    """[(send, ack)] in seconds, CLOCK_MONOTONIC."""
    base, acks = None, []
    with open(path) as f:
        for line in f:
            if line.startswith("#"):
                base = int(line.rsplit(":", 1)[1]) / 1e9
                continue
            ms, us = line.split()
            send = base + float(ms) / 1e3
            acks.append((send, send + int(us) / 1e6))
    if base is None:
        sys.exit("fsynctail: the trace has no CLOCK_MONOTONIC header (peerload --trace)")
    return acks


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--trace")
    ap.add_argument("--slow-ms", type=float, default=1.0)
    args = ap.parse_args()

    spans = read_syncs(sys.stdin, args.pid)
    durations = sorted(b - a for a, b in spans)
    out = {
        "fsync_n": len(durations),
        "fsync_p50_us": round(percentile(durations, 50) * 1e6),
        "fsync_p99_us": round(percentile(durations, 99) * 1e6),
        "fsync_max_us": round(durations[-1] * 1e6) if durations else 0,
        "fsync_over2ms": sum(1 for d in durations if d > 0.002),
    }
    if args.trace:
        union = merged(s for s in spans if s[1] - s[0] > args.slow_ms / 1e3)
        starts = [a for a, _ in union]
        acks = read_trace(args.trace)
        lat = sorted(b - a for a, b in acks)
        p99 = percentile(lat, 99)
        slow = [(a, b) for a, b in acks if b - a > p99]
        hit = sum(1 for a, b in slow if overlaps(union, starts, a, b))
        every = sum(1 for a, b in acks if overlaps(union, starts, a, b))
        out.update(slow_acks=len(slow), slow_acks_on_slow_fsync=hit,
                   acks_on_slow_fsync_pct=round(100.0 * every / len(acks), 1) if acks else 0,
                   slow_fsync_ms=args.slow_ms)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
