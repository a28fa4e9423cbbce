#!/usr/bin/python3
"""plot.py - turn benchmark JSON lines into SVG plots. Standard library only.

Two kinds of plot:

  plot.py line IN.jsonl OUT.svg --x FIELD --y FIELD[:LABEL] [--y FIELD[:LABEL]]...
          [--where KEY=VALUE[,KEY=VALUE...]] [--group FIELD] [--logx] [--logy]
          [--scale-y FACTOR] [--title TEXT] [--xlabel TEXT] [--ylabel TEXT]
          [--x-bytes]

      One line with points per --y field (or, with --group, one line per
      distinct value of that field for the first --y), over the records that
      match every --where pair, sorted by --x. --scale-y multiplies every y
      value (0.001 turns microseconds into milliseconds). --logx / --logy
      draw that axis in decades; with 8 or fewer distinct x values on a log
      x axis the ticks are exactly those values. --x-bytes labels x ticks as
      sizes (1024 -> "1 KiB").

  plot.py dist IN.jsonl OUT.svg [--where KEY=VALUE,...] [--label FORMAT]
          [--title TEXT] [--linear-y]

      A latency distribution: one percentile curve per matching record, from
      its "lat_pcts_us" list ([[percentile, us], ...], as tests/bench/loadgen
      prints it) or, for older records, from p50_us/p90_us/p99_us/p999_us.
      The x axis is the percentile on a "nines" scale (50%, 90%, 99%, 99.9%,
      99.99% equally spaced), the y axis latency in ms (log scale unless
      --linear-y). --label is a str.format pattern over the record's fields
      for the legend, e.g. "{x:.0e} stored" or "{conns} conns".

IN may be "-" for standard input. Lines that are not JSON objects are
skipped. Exit status 0 with a placeholder SVG that says "no data" when no
record matches, so a partial run still yields every file.
"""
import argparse
import json
import math
import sys
from xml.sax.saxutils import escape

W, H = 640, 400
ML, MR, MT, MB = 72, 24, 40, 56  # margins: left, right, top, bottom
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
          "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"]


def load(path, where):
    f = sys.stdin if path == "-" else open(path)
    rows = []
    for line in f:
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if all(match(r.get(k), v) for k, v in where):
            rows.append(r)
    return rows


def match(have, want):
    if have is None:
        return False
    if str(have) == want:
        return True
    try:
        return float(have) == float(want)
    except (TypeError, ValueError):
        return False


def parse_where(s):
    out = []
    for part in (s or "").split(","):
        if part:
            k, _, v = part.partition("=")
            out.append((k, v))
    return out


def fmt_num(v):
    """Short tick label: 1500 -> 1.5k, 2000000 -> 2M, 0.25 -> 0.25."""
    a = abs(v)
    for div, suf in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if a >= div:
            s = "%.3g" % (v / div)
            return s + suf
    if a == 0:
        return "0"
    return "%.3g" % v


def nice_step(span, n=6):
    raw = span / max(1, n)
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


class Axis:
    """Maps data values to pixels; linear or log10."""

    def __init__(self, lo, hi, log, p0, p1, tight=False):
        self.log = log
        if log:
            lo = max(lo, 1e-12)
            hi = max(hi, lo)
            if tight and hi > lo:
                # Just the data's range plus a margin (ticks are the data's x).
                pad = 0.06 * (math.log10(hi) - math.log10(lo))
                self.lo, self.hi = math.log10(lo) - pad, math.log10(hi) + pad
            else:
                self.lo = math.floor(math.log10(lo))
                self.hi = math.ceil(math.log10(hi))
            if self.hi == self.lo:
                self.hi += 1
        else:
            if lo > 0 and lo < 0.5 * hi:
                lo = 0  # start at zero when the data is not far from it
            if hi == lo:
                hi = lo + 1
            step = nice_step(hi - lo)
            self.lo = math.floor(lo / step) * step
            self.hi = math.ceil(hi / step) * step
            self.step = step
        self.p0, self.p1 = p0, p1

    def __call__(self, v):
        t = math.log10(max(v, 1e-12)) if self.log else v
        return self.p0 + (t - self.lo) / (self.hi - self.lo) * (self.p1 - self.p0)

    def ticks(self):
        if self.log:
            out = []
            decades = int(self.hi - self.lo)
            for e in range(math.ceil(self.lo), math.floor(self.hi) + 1):
                out.append((10.0 ** e, True))
                if decades <= 2 and e < self.hi:
                    out += [(2 * 10.0 ** e, False), (5 * 10.0 ** e, False)]
            return out
        out, v = [], self.lo
        while v <= self.hi + self.step / 2:
            out.append((v, True))
            v += self.step
        return out


def svg_start(title):
    return ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
            'viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">' % (W, H, W, H),
            '<rect width="100%" height="100%" fill="white"/>',
            '<text x="%d" y="22" text-anchor="middle" font-size="15">%s</text>'
            % (W // 2, escape(title))]


def frame(out, xa, ya, xlabel, ylabel, xticks=None):
    x0, x1, y0, y1 = ML, W - MR, H - MB, MT
    for v, major in (xticks if xticks is not None else xa.ticks()):
        px = xa(v)
        out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s"/>'
                   % (px, y1, px, y0, "#ddd" if major else "#f0f0f0"))
        out.append('<text x="%.1f" y="%d" text-anchor="middle">%s</text>'
                   % (px, y0 + 16, escape(label_of(v))))
    for v, major in ya.ticks():
        py = ya(v)
        out.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s"/>'
                   % (x0, py, x1, py, "#ddd" if major else "#f0f0f0"))
        out.append('<text x="%d" y="%.1f" text-anchor="end">%s</text>'
                   % (x0 - 6, py + 4, escape(fmt_num(v))))
    out.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#333"/>'
               % (x0, y1, x1 - x0, y0 - y1))
    out.append('<text x="%d" y="%d" text-anchor="middle">%s</text>'
               % ((x0 + x1) // 2, H - 14, escape(xlabel)))
    out.append('<text x="16" y="%d" text-anchor="middle" transform="rotate(-90 16 %d)">%s</text>'
               % ((y0 + y1) // 2, (y0 + y1) // 2, escape(ylabel)))


_labels = {}


def fmt_bytes(v):
    v = int(v)
    for div, suf in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if v >= div and v % div == 0:
            return "%d %s" % (v // div, suf)
    return "%d B" % v


def label_of(v):
    return _labels.get(v, fmt_num(v))


def series_svg(out, xa, ya, pts, color, dash=False):
    if not pts:
        return
    d = " ".join("%s%.1f,%.1f" % ("M" if i == 0 else "L", xa(x), ya(y))
                 for i, (x, y) in enumerate(pts))
    out.append('<path d="%s" fill="none" stroke="%s" stroke-width="2"%s/>'
               % (d, color, ' stroke-dasharray="6,4"' if dash else ""))
    for x, y in pts:
        out.append('<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s"/>' % (xa(x), ya(y), color))


def legend(out, names):
    x, y = ML + 12, MT + 16
    for i, name in enumerate(names):
        c = COLORS[i % len(COLORS)]
        out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"/>'
                   % (x, y - 4 + 16 * i, x + 20, y - 4 + 16 * i, c))
        out.append('<text x="%d" y="%d">%s</text>' % (x + 26, y + 16 * i, escape(name)))


def empty(path, title):
    out = svg_start(title)
    out.append('<text x="%d" y="%d" text-anchor="middle" fill="#888">no data</text>'
               % (W // 2, H // 2))
    write(path, out)


def write(path, out):
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def positive(vals, log):
    return [v for v in vals if v > 0] if log else vals


def cmd_line(a):
    rows = load(a.input, parse_where(a.where))
    ys = [(s.partition(":")[0], s.partition(":")[2] or s.partition(":")[0]) for s in a.y]
    series = []  # (name, [(x, y)])
    if a.group:
        field = ys[0][0]
        for g in sorted({str(r.get(a.group)) for r in rows}):
            pts = [(float(r[a.x]), float(r[field]) * a.scale_y) for r in rows
                   if str(r.get(a.group)) == g and a.x in r and field in r]
            series.append(("%s=%s" % (a.group, g), sorted(pts)))
    else:
        for field, name in ys:
            pts = [(float(r[a.x]), float(r[field]) * a.scale_y) for r in rows
                   if a.x in r and field in r]
            series.append((name, sorted(pts)))
    allx = positive([p[0] for _, s in series for p in s], a.logx)
    ally = positive([p[1] for _, s in series for p in s], a.logy)
    if not allx or not ally:
        return empty(a.output, a.title)
    xs = sorted(set(allx))
    # On a log x axis with few points, tick exactly at the measured x values.
    few = a.logx and len(xs) <= 8
    xa = Axis(min(allx), max(allx), a.logx, ML, W - MR, tight=few)
    ya = Axis(min(ally), max(ally), a.logy, H - MB, MT)
    out = svg_start(a.title)
    xticks = [(v, True) for v in xs] if few else None
    if a.x_bytes:
        for v in xs:
            _labels[v] = fmt_bytes(v)
    frame(out, xa, ya, a.xlabel or a.x, a.ylabel or ", ".join(n for _, n in ys), xticks)
    for i, (_, pts) in enumerate(series):
        series_svg(out, xa, ya, [(x, y) for x, y in pts
                                 if (x > 0 or not a.logx) and (y > 0 or not a.logy)],
                   COLORS[i % len(COLORS)])
    if len(series) > 1:
        legend(out, [n for n, _ in series])
    write(a.output, out)


def nines(p):
    return -math.log10(max(1e-6, 1 - p / 100.0))


def cmd_dist(a):
    rows = load(a.input, parse_where(a.where))
    curves = []
    for r in rows:
        if "lat_pcts_us" in r:
            pts = [(float(p), float(us)) for p, us in r["lat_pcts_us"]]
        else:
            pts = [(p, float(r[k])) for p, k in ((50, "p50_us"), (90, "p90_us"),
                                                (99, "p99_us"), (99.9, "p999_us")) if k in r]
        pts = [(nines(p), us / 1000.0) for p, us in pts if p < 100 and us > 0]
        if not pts:
            continue
        try:
            name = a.label.format(**r)
        except (KeyError, ValueError, IndexError):
            name = a.label
        curves.append((name, sorted(pts)))
    if not curves:
        return empty(a.output, a.title)
    xs = [p[0] for _, c in curves for p in c]
    ys = [p[1] for _, c in curves for p in c]
    xa = Axis(0, max(4.0, math.ceil(max(xs))), False, ML, W - MR)
    xa.lo, xa.hi = 0, max(4.0, math.ceil(max(xs)))
    ya = Axis(min(ys), max(ys), not a.linear_y, H - MB, MT)
    names = {0: "0%", 1: "90%", 2: "99%", 3: "99.9%", 4: "99.99%", 5: "99.999%"}
    ticks = []
    for k in range(int(xa.hi) + 1):
        _labels[float(k)] = names.get(k, "%d nines" % k)
        ticks.append((float(k), True))
    _labels[nines(50)] = "50%"
    ticks.append((nines(50), False))
    out = svg_start(a.title)
    frame(out, xa, ya, "percentile", "latency (ms)", ticks)
    for i, (_, c) in enumerate(curves):
        series_svg(out, xa, ya, c, COLORS[i % len(COLORS)])
    legend(out, [n for n, _ in curves])
    write(a.output, out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    ln = sub.add_parser("line")
    ln.add_argument("input")
    ln.add_argument("output")
    ln.add_argument("--x", required=True)
    ln.add_argument("--y", action="append", required=True)
    ln.add_argument("--where")
    ln.add_argument("--group")
    ln.add_argument("--logx", action="store_true")
    ln.add_argument("--logy", action="store_true")
    ln.add_argument("--x-bytes", action="store_true")
    ln.add_argument("--scale-y", type=float, default=1.0)
    ln.add_argument("--title", default="")
    ln.add_argument("--xlabel")
    ln.add_argument("--ylabel")
    ds = sub.add_parser("dist")
    ds.add_argument("input")
    ds.add_argument("output")
    ds.add_argument("--where")
    ds.add_argument("--label", default="{kind}")
    ds.add_argument("--title", default="Latency distribution")
    ds.add_argument("--linear-y", action="store_true")
    a = ap.parse_args()
    (cmd_line if a.cmd == "line" else cmd_dist)(a)


if __name__ == "__main__":
    main()
