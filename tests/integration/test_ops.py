"""Operations: /metrics (strictly parsed, values move under load), /healthz
(503 with a reason within two slots of a block-production stall), and the
key=value log format."""
import asyncio
import glob
import json
import math
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import threading
import time
import unittest

from harness import (MEZZ, MEZZANINE, MEZZANINE_TEST, Daemon, DaemonCase, fault_daemon,
                     free_port, run_async, ws_call, ws_connect)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
SAMPLE = re.compile(r"^(%s)(\{(.*)\})? (\S+)$" % NAME)
LABEL = re.compile(r'^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)')


def parse_value(v):
    if v in ("+Inf", "-Inf", "NaN"):
        return float(v.replace("Inf", "inf").replace("NaN", "nan"))
    if not re.match(r"^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$", v):
        raise AssertionError("bad sample value %r" % v)
    return float(v)


def parse_labels(text):
    out = {}
    while text:
        m = LABEL.match(text)
        if not m:
            raise AssertionError("bad label set at %r" % text)
        if m.group(1) in out:
            raise AssertionError("duplicate label %s" % m.group(1))
        out[m.group(1)] = m.group(2)
        text = text[m.end():]
    return out


def parse_prometheus(text):
    """A strict parser for the text exposition format 0.0.4. Returns
    {family: {"type": t, "help": h, "samples": [(name, labels, value)]}}."""
    if not text.endswith("\n"):
        raise AssertionError("exposition must end with a newline")
    fams, current, seen = {}, None, set()
    for n, line in enumerate(text.split("\n")[:-1], 1):
        where = "line %d: %r" % (n, line)
        if line.startswith("# HELP "):
            name, _, help_ = line[7:].partition(" ")
            assert re.fullmatch(NAME, name), where
            assert "help" not in fams.get(name, {}), "second HELP, " + where
            fams.setdefault(name, {"samples": []})["help"] = help_
            current = name
        elif line.startswith("# TYPE "):
            name, _, typ = line[7:].partition(" ")
            assert typ in ("counter", "gauge", "histogram", "summary", "untyped"), where
            f = fams.setdefault(name, {"samples": []})
            assert "type" not in f and not f["samples"], "TYPE after samples, " + where
            f["type"] = typ
            current = name
        elif line.startswith("#") or not line:
            raise AssertionError("unexpected line, " + where)
        else:
            m = SAMPLE.match(line)
            assert m, "bad sample, " + where
            name, labels, value = m.group(1), parse_labels(m.group(3) or ""), parse_value(m.group(4))
            fam = name
            for suffix in ("_bucket", "_sum", "_count"):
                if name.endswith(suffix) and fams.get(name[:-len(suffix)], {}).get("type") == "histogram":
                    fam = name[:-len(suffix)]
            assert fam == current, "sample outside its family block, " + where
            assert "type" in fams[fam], "sample before TYPE, " + where
            key = (name, tuple(sorted(labels.items())))
            assert key not in seen, "duplicate series, " + where
            seen.add(key)
            if fams[fam]["type"] == "counter":
                assert value >= 0 and not math.isnan(value), where
            fams[fam]["samples"].append((name, labels, value))
    for fam, f in fams.items():
        if f.get("type") != "histogram":
            continue
        buckets = [(s[1]["le"], s[2]) for s in f["samples"] if s[0] == fam + "_bucket"]
        assert buckets and buckets[-1][0] == "+Inf", fam
        les = [parse_value(le) for le, _ in buckets]
        assert les == sorted(les) and len(set(les)) == len(les), "%s: le not ascending" % fam
        counts = [c for _, c in buckets]
        assert counts == sorted(counts), "%s: buckets not cumulative %r" % (fam, counts)
        count = [s[2] for s in f["samples"] if s[0] == fam + "_count"]
        assert count == [counts[-1]], "%s: +Inf bucket != count" % fam
        assert [s for s in f["samples"] if s[0] == fam + "_sum"], fam
    return fams


def value(fams, fam, name=None, **labels):
    for n, l, v in fams[fam]["samples"]:
        if n == (name or fam) and all(l.get(k) == x for k, x in labels.items()):
            return v
    raise KeyError("%s %r" % (name or fam, labels))


class MetricsTest(DaemonCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.d.setup_tenant("acme", "alpha", 101, key=False)
        cls.kb = cls.d.setup_tenant("beta", "bravo", 202, ingress="key")

    def scrape(self):
        status, _, raw = self.d.http(b"", "/metrics", method="GET")
        self.assertEqual(status, 200)
        return parse_prometheus(raw.decode())

    def test_parser_is_strict(self):
        good = "# HELP a x\n# TYPE a counter\na 1\n"
        parse_prometheus(good)
        for bad in ("a 1\n", "# TYPE a counter\na one\n", "# TYPE a counter\na 1",
                    "# TYPE a counter\na{x=1} 1\n", "# TYPE a counter\na 1\na 2\n",
                    "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 0\nh_count 1\n"):
            with self.assertRaises(AssertionError, msg=bad):
                parse_prometheus(bad)

    def test_metrics_parse_and_move_under_load(self):
        before = self.scrape()
        for fam in ("mezz_ingress_txs_total", "mezz_group_commit_size", "mezz_group_commit_seconds",
                    "mezz_preconfirmation_seconds", "mezz_slot_lag", "mezz_feed_subscribers",
                    "mezz_ingress_queue_depth", "mezz_ws_send_queue_bytes", "mezz_tenant_txs_total",
                    "mezz_tenant_bytes_total", "mezz_tenant_rejected_total", "mezz_block_height"):
            self.assertIn(fam, before)
        self.assertEqual(before["mezz_group_commit_seconds"]["type"], "histogram")
        stop = threading.Event()
        sent = [0]

        def load():
            while not stop.is_set():
                reqs = [{"jsonrpc": "2.0", "id": i, "method": "mezz_sendTransaction",
                         "params": {"namespace": "alpha", "data": "0x" + os.urandom(50).hex()}}
                        for i in range(50)]
                st, doc = self.d.raw_post(json.dumps(reqs))
                assert st == 200 and all("result" in x for x in doc), doc
                sent[0] += 50

        async def subscribed_scrape():
            async with ws_connect(self.d.ws_url()) as ws:
                r = await ws_call(ws, "mezz_subscribe", ["blocks", {"namespaces": ["alpha"]}])
                self.assertIn("result", r)
                await asyncio.sleep(0.3)
                return await asyncio.get_running_loop().run_in_executor(None, self.scrape)

        t = threading.Thread(target=load)
        t.start()
        try:
            time.sleep(0.5)
            mid = run_async(subscribed_scrape())
            time.sleep(0.5)
        finally:
            stop.set()
            t.join()
        # refused: anonymous into beta's key-only namespace
        self.assertIn("error", self.d.call("mezz_sendTransaction", {"namespace": "bravo", "data": "0x01"}))
        after = self.scrape()
        self.assertGreaterEqual(value(mid, "mezz_feed_subscribers"), 1)
        grew = lambda fam, name=None, **l: value(after, fam, name, **l) - value(before, fam, name, **l)
        self.assertGreaterEqual(grew("mezz_ingress_txs_total"), sent[0])
        self.assertGreaterEqual(grew("mezz_ingress_bytes_total"), sent[0] * 50)
        self.assertGreaterEqual(grew("mezz_tenant_txs_total", tenant="acme"), sent[0])
        self.assertGreaterEqual(grew("mezz_tenant_bytes_total", tenant="acme"), sent[0] * 50)
        self.assertEqual(grew("mezz_tenant_txs_total", tenant="beta"), 0)
        self.assertGreaterEqual(grew("mezz_tenant_rejected_total", tenant="beta"), 1)
        self.assertGreaterEqual(grew("mezz_preconfirmation_seconds", "mezz_preconfirmation_seconds_count"), sent[0])
        self.assertGreater(grew("mezz_group_commit_size", "mezz_group_commit_size_count"), 0)
        self.assertGreaterEqual(grew("mezz_group_commit_size", "mezz_group_commit_size_sum"), sent[0])
        self.assertGreater(grew("mezz_group_commit_seconds", "mezz_group_commit_seconds_sum"), 0)
        self.assertGreater(grew("mezz_block_height"), 0)
        self.assertGreaterEqual(grew("mezz_block_seal_seconds", "mezz_block_seal_seconds_count"),
                                grew("mezz_block_height"))
        # the subscriber above followed alpha for 0.3 s: at least one block fanned out to it
        self.assertGreaterEqual(value(after, "mezz_feed_fanout_seconds", "mezz_feed_fanout_seconds_count"), 1)
        self.assertGreaterEqual(grew("mezz_txs_committed_total"), sent[0])
        # the sealer keeps up: the lag reads at most 2 slots and health 1.
        # Scraped again for up to 5 s: a seal waits on storage, and a stall
        # of this VM's disk (up to ~1 s measured, BENCHMARKS.md) lags it for
        # a moment (CI once read 4); a sealer that is stuck or a gauge that
        # is wrong still fails here.
        for _ in range(50):
            if value(after, "mezz_slot_lag") <= 2 and value(after, "mezz_healthy") == 1:
                break
            time.sleep(0.1)
            after = self.scrape()
        self.assertLessEqual(value(after, "mezz_slot_lag"), 2)
        self.assertEqual(value(after, "mezz_healthy"), 1)

    def test_preconfirmation_is_queue_plus_commit_plus_answer(self):
        """Every preconfirmation is observed once in each of its three parts
        (mezz_preconf_{queue,commit,answer}_seconds), and for each the parts
        add up to its mezz_preconfirmation_seconds observation; mezz status
        prints each part's p99."""
        whole = "mezz_preconfirmation_seconds"
        parts = ("mezz_preconf_queue_seconds", "mezz_preconf_commit_seconds",
                 "mezz_preconf_answer_seconds")
        before = self.scrape()
        sent = 0
        for k in range(20):
            reqs = [{"jsonrpc": "2.0", "id": i, "method": "mezz_sendTransaction",
                     "params": {"namespace": "alpha", "data": "0x" + os.urandom(40).hex()}}
                    for i in range(25)]
            st, doc = self.d.raw_post(json.dumps(reqs))
            self.assertTrue(st == 200 and all("result" in x for x in doc), doc)
            sent += 25
        self.assertIn("result", self.d.call("mezz_sendTransaction",
                                            {"namespace": "alpha", "data": "0x" + os.urandom(9).hex()}))
        sent += 1
        # a refused one is in none of them
        self.assertIn("error", self.d.call("mezz_sendTransaction", {"namespace": "bravo", "data": "0x01"}))
        after = self.scrape()
        grew = lambda fam, suffix: value(after, fam, fam + suffix) - value(before, fam, fam + suffix)
        self.assertEqual(grew(whole, "_count"), sent)
        for p in parts:
            self.assertEqual(after[p]["type"], "histogram", p)
            self.assertEqual(grew(p, "_count"), sent, p)
        # each part is truncated to whole microseconds on its own: up to 2 us
        # a preconfirmation below the whole, never above it
        total = sum(grew(p, "_sum") for p in parts)
        self.assertLessEqual(total, grew(whole, "_sum") + 1e-6)
        self.assertGreaterEqual(total, grew(whole, "_sum") - 2e-6 * sent - 1e-6)
        # the commit holds an fsync
        self.assertGreater(grew("mezz_preconf_commit_seconds", "_sum"), 0)
        out = self.d.mezz("status", url=True).stdout
        self.assertRegex(out, r"p99 of its parts: queue \d+\.\d\d ms   commit \d+\.\d\d ms"
                              r"   answer \d+\.\d\d ms\n", out)

    def test_metrics_table_in_operations_md_matches_the_scrape(self):
        """Every family /metrics exports has a row in OPERATIONS.md's metrics
        table, and every name in that table is exported."""
        exported = set(self.scrape())
        with open(os.path.join(REPO, "docs", "OPERATIONS.md")) as f:
            text = f.read()
        section = text[text.index("\n## Metrics\n"):]
        section = section[:section.index("\n## ", 1)]
        rows = [l for l in section.splitlines() if l.startswith("| `mezz_")]
        documented = set()
        for row in rows:
            documented |= set(re.findall(r"`(mezz_[a-z0-9_]+)(?:\{[a-z]+\})?`", row.split("|")[1]))
        self.assertEqual(sorted(exported - documented), [],
                         "exported, missing from the metrics table in docs/OPERATIONS.md")
        self.assertEqual(sorted(documented - exported), [],
                         "in the metrics table in docs/OPERATIONS.md, not exported")

    def test_metric_names_anywhere_in_the_docs_are_exported(self):
        """A metric named in any doc (a counter, histogram or byte gauge by
        its suffix, with our prefix or the daemon's full name) is one
        /metrics exports."""
        exported = set(self.scrape())
        name = re.compile(r"\bmezz(?:anine)?_[a-z0-9_]+_(?:total|seconds|bytes)\b")
        wrong = []
        for path in [os.path.join(REPO, "README.md")] + sorted(glob.glob(os.path.join(REPO, "docs", "*.md"))):
            with open(path) as f:
                for n, line in enumerate(f, 1):
                    wrong += ["%s:%d: %s" % (os.path.relpath(path, REPO), n, m)
                              for m in name.findall(line) if m not in exported]
        self.assertEqual(wrong, [])

    def test_health_components_are_documented(self):
        """Every component the daemon registers with app_health_register is
        listed under "Health" in OPERATIONS.md."""
        registered = set()
        for path in glob.glob(os.path.join(REPO, "appliance", "*.c")) + \
                glob.glob(os.path.join(REPO, "l1bridge", "*.c")):
            with open(path) as f:
                registered |= set(re.findall(r'app_health_register\("([a-z0-9_]+)"', f.read()))
        self.assertIn("da", registered)
        with open(os.path.join(REPO, "docs", "OPERATIONS.md")) as f:
            text = f.read()
        health = text[text.index("\n## Health\n"):]
        health = health[:health.index("\n## ", 1)]
        listed = set(re.findall(r"(?m)^- `([a-z0-9_]+)`:", health))
        self.assertEqual(sorted(registered - listed), [],
                         "registered, not listed under Health in docs/OPERATIONS.md")

    def test_log_lines_are_key_value_events(self):
        self.d.call("mezz_sendTransaction", {"namespace": "nope", "data": "0x01"})
        lines = [l for l in self.d.log().splitlines() if l.strip()]
        self.assertTrue(lines)
        pair = r'[a-z_]+=("(?:[^"\\]|\\.)*"|\S+)'
        for l in lines:
            self.assertRegex(l, r"^ts=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=(debug|info|warn|error) event=[a-z_]+( %s)*$" % pair, l)
        self.assertTrue(any("event=started" in l for l in lines))


class HealthTest(unittest.TestCase):
    SLOT_MS = 250

    def test_healthz_503_within_two_slots_of_a_sealing_stall(self):
        tmp = tempfile.mkdtemp(prefix="mezz-health-")
        stall = os.path.join(tmp, "stall-seal")
        d = Daemon(MEZZANINE_TEST, env={"MEZZ_FAULT_STALL_SEAL_FILE": stall}, slot_ms=self.SLOT_MS)
        self.addCleanup(d.cleanup)
        d.start()
        d.wait_height(2)
        # healthy while blocks flow (no false alarms over several slots)
        end = time.time() + 1.5
        while time.time() < end:
            st, _, body = d.http(b"", "/healthz", method="GET")
            self.assertEqual((st, body), (200, b"ok\n"))
            time.sleep(0.05)
        open(stall, "w").close()
        t0 = time.time()
        while True:
            st, _, body = d.http(b"", "/healthz", method="GET")
            if st == 503:
                break
            self.assertLess(time.time() - t0, 5, "still healthy 5 s into the stall")
            time.sleep(0.01)
        took = time.time() - t0
        self.assertIn(b"blocks", body)
        self.assertIn(b"no progress", body)
        # two slots from the last block, plus the block that may have been in flight
        self.assertLessEqual(took, 2 * self.SLOT_MS / 1000 + 0.15, "503 after %.3f s" % took)
        # the rest of the daemon still answers, and /metrics says unhealthy
        self.assertIn("height", d.status())
        _, _, raw = d.http(b"", "/metrics", method="GET")
        self.assertEqual(value(parse_prometheus(raw.decode()), "mezz_healthy"), 0)
        os.unlink(stall)
        deadline = time.time() + 5
        while d.http(b"", "/healthz", method="GET")[0] != 200:
            self.assertLess(time.time(), deadline, "did not recover after the stall")
            time.sleep(0.05)
        d.stop()
        os.rmdir(tmp)


class AvailableGaugeTest(unittest.TestCase):
    """mezz_available_height holds the available tip from the start, not
    only from the next block that becomes available: restarted with mz-da
    stalled (no block becomes available), it equals mezz_status's
    availableHeight, which is not 0."""

    def test_available_height_gauge_set_on_start(self):
        d, stall = fault_daemon(self, "MEZZ_FAULT_STALL_DA_FILE", "stall-da")
        d.start()
        deadline = time.time() + 10
        while d.status()["availableHeight"] < 3:
            self.assertLess(time.time(), deadline, "no block became available")
            time.sleep(0.05)
        d.stop()
        open(stall, "w").close()
        d.start()
        avail = d.status()["availableHeight"]
        self.assertGreaterEqual(avail, 3)
        d.wait_height(d.status()["height"] + 2)  # blocks are sealed, none coded
        _, _, raw = d.http(b"", "/metrics", method="GET")
        self.assertEqual(value(parse_prometheus(raw.decode()), "mezz_available_height"), avail)
        self.assertEqual(d.status()["availableHeight"], avail)


class RestartMetricsTest(unittest.TestCase):
    """Metrics across a restart whose sealing had stopped: mezz_slot_lag
    counts the slots since the stored tip from the first sample on, and
    the blocks recovery seals at start for slots from before the restart
    are not seal latencies."""

    def scrape(self, d):
        _, _, raw = d.http(b"", "/metrics", method="GET")
        return parse_prometheus(raw.decode())

    def start_stalled_then_kill(self, tmp):
        """A daemon killed -9 with one transaction committed in a slot its
        stalled sealer never sealed; returns it, stopped."""
        stall = os.path.join(tmp, "stall-seal")
        d = Daemon(MEZZANINE_TEST, env={"MEZZ_FAULT_STALL_SEAL_FILE": stall})
        self.addCleanup(d.cleanup)
        d.start()
        d.setup_tenant("acme", "demo", 31337, key=False)
        d.wait_height(2)
        open(stall, "w").close()
        time.sleep(0.2)  # the block in flight, if any, is sealed
        d.send("demo", b"\x01")
        d.kill9()
        return d, stall

    def test_slot_lag_counts_from_the_stored_tip_after_restart(self):
        tmp = tempfile.mkdtemp(prefix="mezz-lag-")
        self.addCleanup(shutil.rmtree, tmp, True)
        d, stall = self.start_stalled_then_kill(tmp)
        d.start()  # the stall file is still there: nothing is sealed
        tip = d.rpc("mezz_getBlock", {"height": d.status()["height"]})
        time.sleep(1.0)
        lag = value(self.scrape(d), "mezz_slot_lag")
        now_slot = int(time.time() * 1000) // 100
        self.assertGreaterEqual(lag, 10)
        self.assertLessEqual(lag, now_slot - tip["slot"])

    # The recovery's seals at start are of slots that ended before the
    # restart: counted, the downtime showed as seal latency.
    def test_recovered_blocks_are_not_seal_latencies(self):
        tmp = tempfile.mkdtemp(prefix="mezz-seal-")
        self.addCleanup(shutil.rmtree, tmp, True)
        d, stall = self.start_stalled_then_kill(tmp)
        os.unlink(stall)
        time.sleep(2.0)  # down for 20 slots
        d.start()
        d.wait_height(d.status()["height"] + 3)
        fams = self.scrape(d)
        name = "mezz_block_seal_seconds"
        under_1s = value(fams, name, name + "_bucket", le="1")
        self.assertEqual(under_1s, value(fams, name, name + "_count"),
                         "seal latencies of 1 s or more at 100 ms slots: %s s in all"
                         % value(fams, name, name + "_sum"))


if __name__ == "__main__":
    unittest.main()


def per_thread(pid, read):
    """{thread name: [read(tid), ...]} of a running process, from /proc;
    threads that end while being read are left out."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                name = f.read().strip()
            value = read(int(tid))
        except (FileNotFoundError, ProcessLookupError):
            continue
        out.setdefault(name, []).append(value)
    return out


def thread_nices(pid):
    """{thread name: [nice, ...]} of a running process."""
    def nice(tid):
        with open("/proc/%d/task/%d/stat" % (pid, tid)) as f:
            stat = f.read()
        # fields after the parenthesised name; nice is field 19 of stat(5)
        return int(stat[stat.rindex(")") + 2:].split()[16])
    return per_thread(pid, nice)


class ThreadPriorityTest(unittest.TestCase):
    """sequencer.background_nice: mz-da and mz-index run at a lower CPU
    priority than the preconfirmation path, and still do their work."""

    def run_daemon(self, settings):
        d = Daemon(MEZZANINE_TEST, settings=settings)
        self.addCleanup(d.cleanup)
        d.start()
        d.wait_height(3)
        deadline = time.time() + 10
        while d.rpc("mezz_status")["availableHeight"] < 3:
            self.assertLess(time.time(), deadline, "blocks did not become available")
            time.sleep(0.05)
        return d, thread_nices(d.proc.pid)

    def test_background_threads_niced_by_default(self):
        # with the sync pipeline on (not the default) so that mz-sync exists too
        d, nices = self.run_daemon({"storage.sync_pipeline": "1"})
        base = os.getpriority(os.PRIO_PROCESS, 0)
        want = max(base, 10)
        for name in ("mz-da", "mz-index"):
            self.assertEqual(nices.get(name), [want], "%s: %r" % (name, nices))
        with open("/proc/%d/comm" % d.proc.pid) as f:
            main = f.read().strip()  # the lws thread
        for name in (main, "mz-commit", "mz-sync", "mz-seal", "mz-ckpt"):
            self.assertEqual(nices.get(name), [base], "%s: %r" % (name, nices))
        self.assertNotIn("thread_priority_unchanged", d.log())

    def test_background_nice_0_leaves_every_thread_alone(self):
        _, nices = self.run_daemon({"sequencer.background_nice": "0"})
        base = os.getpriority(os.PRIO_PROCESS, 0)
        self.assertEqual({n for v in nices.values() for n in v}, {base}, repr(nices))


def thread_cpus(pid):
    """{thread name: [set of CPUs it may run on, ...]} of a running process."""
    return per_thread(pid, lambda tid: set(os.sched_getaffinity(tid)))


class ThreadPinTest(unittest.TestCase):
    """sequencer.network_cpu and sequencer.commit_cpu pin the answer path's two
    threads and no other; unset, nothing is pinned; a CPU the process may not
    use stops the start with a message naming the ones it may."""

    def run_daemon(self, settings):
        d = Daemon(MEZZANINE_TEST, settings=settings)
        self.addCleanup(d.cleanup)
        d.start()
        d.wait_height(3)
        # a transaction goes through both threads and is answered
        d.setup_tenant("pin", "pin", 4242, key=False)
        self.assertEqual(d.send("pin", "0x01")["namespace"], "pin")
        with open("/proc/%d/comm" % d.proc.pid) as f:
            main = f.read().strip()  # the lws thread
        return d, main, thread_cpus(d.proc.pid)

    def setUp(self):
        self.allowed = os.sched_getaffinity(0)  # the daemon inherits these

    def test_nothing_pinned_by_default(self):
        d, _, cpus = self.run_daemon({})
        self.assertEqual({frozenset(s) for v in cpus.values() for s in v},
                         {frozenset(self.allowed)}, repr(cpus))
        self.assertNotIn("thread_pinned", d.log())

    def test_network_and_commit_threads_pinned_and_no_other(self):
        if len(self.allowed) < 2:
            self.skipTest("needs two CPUs")
        net, com = sorted(self.allowed)[:2]
        d, main, cpus = self.run_daemon({"sequencer.network_cpu": str(net),
                                         "sequencer.commit_cpu": str(com)})
        self.assertEqual(cpus.get(main), [{net}], repr(cpus))
        self.assertEqual(cpus.get("mz-commit"), [{com}], repr(cpus))
        others = {n: v for n, v in cpus.items() if n not in (main, "mz-commit")}
        self.assertIn("mz-da", others)
        for name, sets in others.items():
            for s in sets:
                self.assertEqual(s, self.allowed, "%s was pinned: %r" % (name, cpus))
        self.assertIn("event=thread_pinned thread=mz-commit cpu=%d" % com, d.log())

    def test_cpu_not_allowed_refuses_to_start(self):
        bad = max(self.allowed) + 1
        d = Daemon(MEZZANINE_TEST, settings={"sequencer.commit_cpu": str(bad)})
        self.addCleanup(d.cleanup)
        d.start(wait=False)
        self.assertNotEqual(d.proc.wait(30), 0)
        self.assertIn("cannot pin mz-commit to CPU %d" % bad, d.log())
        self.assertIn("this process may use CPUs", d.log())


class CliInputTest(DaemonCase):
    """The operator CLI on odd input: empty or mistyped data directories,
    numbers that are not quite numbers, a damaged database. One daemon
    (shards in two directories of its own, so that a CLI which ignores the
    config file looks in the wrong place) plus fresh data directories."""

    @classmethod
    def setUpClass(cls):
        cls.shards = tempfile.mkdtemp(prefix="mezz-it-shards-")
        cls.addClassCleanup(shutil.rmtree, cls.shards, True)
        cls.SETTINGS = {"storage.da_dirs": "%s/a,%s/b" % (cls.shards, cls.shards),
                        "da.k": "2", "da.m": "2"}
        super().setUpClass()
        cls.d.setup_tenant("acme", "alpha", 101, key=False)

    def mezz(self, *args, data_dir=None, env=None, timeout=30):
        """mezz on data_dir (none: no --data-dir at all); a CompletedProcess."""
        cmd = [MEZZ] + (["--data-dir", data_dir] if data_dir else [])
        e = dict(os.environ)
        e.update(env or {})
        return subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True,
                              timeout=timeout, env=e)

    def fresh_dir(self):
        d = tempfile.mkdtemp(prefix="mezz-it-cli-")
        self.addCleanup(shutil.rmtree, d, True)
        return d

    def fresh_db(self):
        """A data directory whose database has a tenant and nothing else."""
        d = self.fresh_dir()
        p = self.mezz("tenant", "create", "acme", data_dir=d)
        self.assertEqual(p.returncode, 0, p.stderr)
        return d

    def test_da_names_a_shard_directory_it_cannot_open_and_exits_1(self):
        d = self.fresh_db()
        shards = os.path.join(d, "s")
        os.makedirs(shards)
        for cmd in ("scrub", "repair"):
            p = self.mezz("--set", "storage.da_dirs=%s,%s/" % (shards, shards), "da", cmd,
                          data_dir=d)
            self.assertEqual(p.returncode, 1, p.stderr)  # not the error code's low byte
            self.assertIn("'%s' and '%s/' are one directory" % (shards, shards), p.stderr)

    def test_da_on_a_database_without_blocks_checks_nothing(self):
        d = self.fresh_db()
        for cmd in ("scrub", "repair"):
            p = self.mezz("da", cmd, data_dir=d)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            self.assertRegex(p.stdout, r"^%s: 0 blocks, 0 shards ok, 0 missing, 0 corrupt" % cmd)

    def test_numbers_are_integers_and_ranges_are_checked(self):
        dead = "http://127.0.0.1:1/"
        pk = "0x" + "00" * 32
        for args in (["da", "scrub", "--to", "1O0"], ["da", "repair", "--from", "1x"],
                     ["da", "scrub", "--from", "0"], ["da", "scrub", "--from", "5", "--to", "3"],
                     ["da", "scrub", "--from", "-1"], ["da", "scrub", "--to", " 7"],
                     ["da", "scrub", "--to", "99999999999999999999"]):
            p = self.mezz(*args, data_dir=self.d.data_dir)
            self.assertEqual(p.returncode, 2, "%r: %s%s" % (args, p.stdout, p.stderr))
            self.assertIn("usage: mezz da", p.stderr)
        for a, b in (("1x", "2"), ("1", "2x"), ("0", "2"), ("3", "2"), ("-1", "2")):
            p = self.mezz("--url", dead, "verify", "blocks", a, b, "--public-key", pk)
            self.assertEqual(p.returncode, 2, "%s %s: %s" % (a, b, p.stderr))
            self.assertIn("FROM <= TO", p.stderr)
        for h in ("-1", "1x", "+1", "0"):
            p = self.mezz("--url", dead, "tail", "alpha", "--from", h)
            self.assertEqual(p.returncode, 2, "--from %s: %s" % (h, p.stderr))
        d = self.fresh_db()
        for kid in (" 1", "+1", "99999999999999999999", "1 "):
            p = self.mezz("key", "revoke", kid, data_dir=d)
            self.assertEqual(p.returncode, 1, "%r: %s" % (kid, p.stderr))
            self.assertIn("key id must be a positive integer", p.stderr)
        for rate in (" 5", "+5", "5k", "-0"):
            p = self.mezz("tenant", "limits", "acme", "--tx-per-s", rate, data_dir=d)
            self.assertEqual(p.returncode, 1, "%r: %s%s" % (rate, p.stdout, p.stderr))

    def test_ids_are_decimal_or_0x_hex_never_octal(self):
        d = self.fresh_db()
        p = self.mezz("namespace", "create", "acme", "oct", "010", data_dir=d)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("(chain id 10)", p.stdout)
        p = self.mezz("namespace", "create", "acme", "hex", "0x1F", data_dir=d)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("(chain id 31)", p.stdout)
        for bad in ("1e3", "0x", "0x0x5", "0x-5", "08x", " 12", "-12"):
            p = self.mezz("namespace", "create", "acme", "bad", bad, data_dir=d)
            self.assertEqual(p.returncode, 1, "%r: %s%s" % (bad, p.stdout, p.stderr))
            self.assertIn("chain id must be", p.stderr)
        rows = self.mezz("namespace", "list", data_dir=d).stdout.splitlines()[1:]
        self.assertEqual(sorted(r.split("\t")[1] for r in rows), ["10", "31"])
        p = self.mezz("rights", "grant", "--from", "010", "--to", "011", "--rollups", "010,0x1f",
                      "--winner", "0x" + "11" * 20, data_dir=d)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("granted slots 10..11 of 2 rollup(s)", p.stdout)
        rows = self.mezz("rights", "list", data_dir=d).stdout.splitlines()[1:]
        self.assertEqual(sorted(tuple(r.split("\t")[:3]) for r in rows),
                         [("10", "11", "10"), ("10", "11", "31")])

    def test_list_of_a_damaged_database_fails(self):
        d = self.fresh_db()
        path = os.path.join(d, "mezzanine.db")
        db = sqlite3.connect(path)
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page = db.execute("PRAGMA page_size").fetchone()[0]
        before = os.path.getsize(path)
        # enough tenants that their table's leaves lie in pages past `before`
        db.executemany("INSERT INTO tenants(name, created_ms) VALUES (?, 0)",
                       [("t%05d-%s" % (i, "x" * 50),) for i in range(3000)])
        db.commit()
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
        size = os.path.getsize(path)
        self.assertGreater(size, before + 4 * page)
        with open(path, "r+b") as f:
            for off in range(before, size, page):
                f.seek(off)
                f.write(b"\xa5" * page)
        p = self.mezz("tenant", "list", data_dir=d)
        self.assertNotEqual(p.returncode, 0,
                            "%d rows listed, exit 0" % (len(p.stdout.splitlines()) - 1))
        self.assertIn("query failed", p.stderr)
        self.assertIn("malformed", p.stderr)

    def test_a_directory_is_not_a_config_file(self):
        conf_dir = self.fresh_dir()
        p = self.mezz("config", "check", conf_dir)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertNotIn("OK", p.stdout)
        self.assertIn("Is a directory", p.stderr)
        p = self.mezz("-c", conf_dir, "tenant", "list", data_dir=self.fresh_db())
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("Is a directory", p.stderr)
        data = self.fresh_dir()
        try:
            p = subprocess.run([MEZZANINE, "-c", conf_dir, "--data-dir", data, "--set",
                                "server.listen=127.0.0.1:%d" % free_port()], capture_output=True,
                               text=True, timeout=10)
        except subprocess.TimeoutExpired:
            self.fail("the daemon started on a directory as its config file")
        self.assertEqual(p.returncode, 78, p.stderr)  # EX_CONFIG: not restarted by the unit
        self.assertIn("Is a directory", p.stderr)
        self.assertEqual(os.listdir(data), [])

    def test_data_dir_overrides_only_the_config_files_data_dir(self):
        deadline = time.time() + 20
        while self.d.status()["availableHeight"] < 2:
            self.assertLess(time.time(), deadline, "no block coded")
            time.sleep(0.05)
        top = self.d.status()["availableHeight"]
        conf = os.path.join(self.fresh_dir(), "mezzanine.conf")
        with open(conf, "w") as f:
            f.write("[storage]\ndata_dir = /nonexistent/mezz-it\nda_dirs = %s\n"
                    % self.SETTINGS["storage.da_dirs"])
        ok = r"scrub: %d blocks, %d shards ok, 0 missing, 0 corrupt" % (top, top * 4)
        # the default file (here MEZZ_CONFIG) and -c alike; --data-dir wins over data_dir
        for how in ({"env": {"MEZZ_CONFIG": conf}}, {"env": {"MEZZ_CONFIG": ""}, "c": conf}):
            args = ["-c", how["c"]] if "c" in how else []
            p = self.mezz(*args, "--data-dir", self.d.data_dir, "da", "scrub", "--to", top,
                          env=how["env"])
            self.assertEqual(p.returncode, 0, "%r: %s%s" % (how, p.stdout, p.stderr))
            self.assertRegex(p.stdout, ok)
        # without the file, the shards are looked for in DATA_DIR/shards: all missing
        p = self.mezz("da", "scrub", "--to", top, data_dir=self.d.data_dir,
                      env={"MEZZ_CONFIG": ""})
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("%d missing" % (top * 4), p.stdout)

    def test_restore_needs_a_named_data_dir(self):
        # A backup that does not exist: even a restore that ignored this rule
        # would stop at its MANIFEST, before writing anything anywhere.
        missing = os.path.join(self.fresh_dir(), "no-such-backup")
        existed = os.path.exists("/var/lib/mezzanine")
        for args in (["restore", missing], ["restore", "--accept-loss"]):
            p = self.mezz(*args)
            self.assertEqual(p.returncode, 2, "%r: %s%s" % (args, p.stdout, p.stderr))
            self.assertIn("name the data directory with --data-dir", p.stderr)
        self.assertEqual(os.path.exists("/var/lib/mezzanine"), existed)
        # named before or after the command, it is used
        for args in (["--data-dir", self.fresh_dir(), "restore", missing],
                     ["restore", missing, "--data-dir", self.fresh_dir()]):
            p = self.mezz(*args)
            self.assertEqual(p.returncode, 1, "%r: %s%s" % (args, p.stdout, p.stderr))
            self.assertIn("MANIFEST", p.stderr)
        p = self.mezz("--help")
        self.assertIn("restore --accept-loss", p.stderr)

    def test_only_tenant_create_makes_a_database(self):
        d = self.fresh_dir()
        for args in (["key", "create", "acme"], ["namespace", "create", "acme", "x", "5"],
                     ["tenant", "list"], ["namespace", "list"], ["key", "list"],
                     ["key", "revoke", "1"], ["tenant", "limits", "acme"], ["rights", "list"],
                     ["rights", "misses"], ["da", "scrub"], ["da", "repair"]):
            p = self.mezz(*args, data_dir=d)
            self.assertEqual(p.returncode, 1, "%r: %s%s" % (args, p.stdout, p.stderr))
            self.assertIn("no database in %s" % d, p.stderr, args)
            self.assertEqual(os.listdir(d), [], "%r left files behind" % args)
        # a new data directory starts with its first tenant (scripts/run-dev)
        p = self.mezz("tenant", "create", "acme", data_dir=d)
        self.assertEqual(p.returncode, 0, p.stderr)
        p = self.mezz("key", "create", "acme", data_dir=d)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(p.stdout.startswith("mz_"), p.stdout)

    def test_tail_shows_a_preconfirmed_groups_fields(self):
        tail = subprocess.Popen([MEZZ, "--url", self.d.url, "tail", "alpha", "--levels",
                                 "preconfirmed"], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
        self.addCleanup(tail.kill)
        lines = []
        threading.Thread(target=lambda: lines.extend(iter(tail.stdout.readline, "")),
                         daemon=True).start()
        shown = re.compile(r"^preconfirmed slot (\d+)  group (\d+)  firstSeq (\d+)  count (\d+)"
                           r"  txs (\d+)$")
        receipts, deadline, hit = {}, time.time() + 20, None
        while hit is None and time.time() < deadline:
            r = self.d.send("alpha", os.urandom(16))
            receipts[r["group"]] = r
            time.sleep(0.1)
            for l in list(lines):
                m = shown.match(l.rstrip("\n"))
                self.assertTrue(m or not l.startswith("preconfirmed"), l)
                if m and int(m.group(2)) in receipts:
                    hit = [int(x) for x in m.groups()]
        self.assertIsNotNone(hit, "tail showed %r" % lines[-5:])
        slot, group, first, count, txs = hit
        r = receipts[group]
        self.assertEqual(slot, r["slot"])
        self.assertTrue(first <= r["seq"] < first + count, (hit, r))
        self.assertGreaterEqual(txs, 1)
        tail.send_signal(signal.SIGINT)
        self.assertEqual(tail.wait(10), 0)
