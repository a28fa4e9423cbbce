"""Block feed: catch-up then live, exactly once and in order; namespace filter; slow subscribers."""
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import websockets

from harness import (MEZZ, MEZZANINE_TEST, Daemon, DaemonCase, free_port, recv_until_quiet,
                     run_async, ws_call, ws_connect)


def send_batch(d, ns, n, size=40):
    reqs = [{"jsonrpc": "2.0", "id": i, "method": "mezz_sendTransaction",
             "params": {"namespace": ns, "data": "0x" + os.urandom(size).hex()}} for i in range(n)]
    st, doc = d.raw_post(json.dumps(reqs))
    assert st == 200 and isinstance(doc, list) and len(doc) == n, (st, str(doc)[:300])
    out = []
    for x in doc:
        assert "result" in x, x
        out.append((x["result"]["hash"], x["result"]["seq"]))
    return out


class Collector:
    """Checks a stream of block notifications: contiguous heights and seqs."""

    def __init__(self, test, first_height):
        self.t = test
        self.next_height = first_height
        self.next_seq = None
        self.txs = {}  # hash -> (seq, ns name)
        self.names = set()
        self.blocks = 0

    def add(self, msg, sid):
        t = self.t
        t.assertEqual(msg.get("method"), "mezz_subscription", msg)
        t.assertEqual(msg["params"]["subscription"], sid)
        b = msg["params"]["result"]
        t.assertEqual(b["level"], "sealed")
        t.assertEqual(b["height"], self.next_height, "gap or duplicate in the feed")
        hdr = b["header"]
        t.assertEqual(hdr["height"], b["height"])
        if self.next_seq is not None:
            t.assertEqual(hdr["firstSeq"], self.next_seq, "seq gap between blocks")
        self.next_seq = hdr["firstSeq"] + hdr["txCount"]
        self.next_height += 1
        self.blocks += 1
        for ns in b["namespaces"]:
            self.names.add(ns["name"])
            t.assertEqual(ns["count"], len(ns["txs"]))
            for tx in ns["txs"]:
                t.assertNotIn(tx["hash"], self.txs, "transaction delivered twice")
                t.assertTrue(hdr["firstSeq"] <= tx["seq"] < self.next_seq)
                self.txs[tx["hash"]] = (tx["seq"], ns["name"])
        return b


class FeedTest(DaemonCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.d.setup_tenant("acme", "alpha", 111, key=False)
        cls.d.setup_tenant("beta", "beta", 222, key=False)

    def test_catch_up_then_live_exactly_once(self):
        d = self.d
        early = send_batch(d, "alpha", 30) + send_batch(d, "beta", 30)
        d.wait_sealed_seq(max(s for _, s in early) + 1)
        d.wait_height(d.status()["height"] + 3)
        live = []

        def producer():
            for i in range(8):
                live.extend(send_batch(d, "alpha" if i % 2 else "beta", 25))
                time.sleep(0.07)

        async def scenario():
            c = Collector(self, 1)
            async with ws_connect(d.ws_url()) as ws:
                sub = await ws_call(ws, "mezz_subscribe", ["blocks", {"fromHeight": 1, "levels": ["sealed"]}])
                sid = sub["result"]
                th = threading.Thread(target=producer)
                th.start()
                try:
                    target = None
                    while True:
                        b = c.add(json.loads(await ws.recv()), sid)
                        if target is None and not th.is_alive():
                            last_seq = max(s for _, s in live)
                            target = last_seq + 1
                        if target is not None and c.next_seq >= target:
                            break
                finally:
                    await asyncio.get_running_loop().run_in_executor(None, th.join)
            return c

        c = run_async(scenario(), 40)
        self.assertEqual(len(live), 200)
        for h, s in early + live:
            self.assertIn(h, c.txs)
            self.assertEqual(c.txs[h][0], s, "tx delivered at another seq than its receipt")
        # the whole chain from seq 1 on was seen
        self.assertEqual(sorted(s for s, _ in c.txs.values()), list(range(1, c.next_seq)))

    def test_namespace_filter(self):
        d = self.d
        start = d.status()["height"] + 1
        a = send_batch(d, "alpha", 20)
        b = send_batch(d, "beta", 20)
        a += send_batch(d, "alpha", 5)
        last = max(s for _, s in a + b)

        async def scenario():
            async with ws_connect(d.ws_url()) as ws:
                sub = await ws_call(ws, "mezz_subscribe",
                                    ["blocks", {"namespaces": ["alpha"], "fromHeight": start, "levels": ["sealed"]}])
                sid = sub["result"]
                c = Collector(self, start)
                while c.next_seq is None or c.next_seq <= last:
                    c.add(json.loads(await ws.recv()), sid)
                return c

        c = run_async(scenario(), 20)
        self.assertEqual(c.names, {"alpha"})
        self.assertEqual({h for h in c.txs}, {h for h, _ in a})
        for h, s in a:
            self.assertEqual(c.txs[h], (s, "alpha"))
        for h, _ in b:
            self.assertNotIn(h, c.txs)

    def test_unsubscribe(self):
        async def scenario():
            async with ws_connect(self.d.ws_url()) as ws:
                sub = await ws_call(ws, "mezz_subscribe", ["blocks", {"levels": []}])
                sid = sub["result"]
                u = await ws_call(ws, "mezz_unsubscribe", [sid], id=2)
                self.assertIs(u.get("result"), True, u)
                u = await ws_call(ws, "mezz_unsubscribe", [sid], id=3)
                self.assertIs(u.get("result"), False, u)
                # drain anything in flight, then nothing more arrives
                await asyncio.sleep(0.2)
                await recv_until_quiet(ws, 0.05)
                try:
                    m = await asyncio.wait_for(ws.recv(), 0.5)
                    self.fail("notification after unsubscribe: %s" % m[:200])
                except asyncio.TimeoutError:
                    pass
        run_async(scenario())


class PreconfirmedTest(DaemonCase):
    """The `preconfirmed` level: one event per committed group, opt-in, live,
    filtered like blocks, carrying what the receipts say, before the block."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.d.setup_tenant("acme", "alpha", 111, key=False)
        cls.d.setup_tenant("beta", "beta", 222, key=False)
        cls.kp = cls.d.setup_tenant("priv", "secret", 333, feed="key")

    def test_events_match_receipts_and_come_before_the_block(self):
        d = self.d

        async def scenario():
            async with ws_connect(d.ws_url()) as ws:
                sub = await ws_call(ws, "mezz_subscribe", ["blocks", {
                    "namespaces": ["alpha"],
                    "levels": ["preconfirmed", "sealed"]}])
                sid = sub["result"]
                receipts = {}
                for i in range(6):
                    for ns in ("alpha", "beta"):
                        r = d.rpc("mezz_sendTransaction",
                                  {"namespace": ns, "data": "0x" + os.urandom(30).hex()})
                        receipts[r["hash"]] = r
                want = {h for h, r in receipts.items() if r["namespace"] == "alpha"}
                pre, sealed_at = {}, {}
                n = 0
                while want - set(sealed_at):
                    m = json.loads(await asyncio.wait_for(ws.recv(), 20))
                    self.assertEqual(m["params"]["subscription"], sid)
                    res = m["params"]["result"]
                    n += 1
                    if res["level"] == "preconfirmed":
                        self.assertEqual(res["count"] >= 1, True)
                        for ns in res["namespaces"]:
                            self.assertEqual(ns["name"], "alpha", "filter ignored")
                            for tx in ns["txs"]:
                                self.assertNotIn(tx["hash"], pre, "preconfirmed twice")
                                pre[tx["hash"]] = (n, res, tx)
                    elif res["level"] == "sealed":
                        for ns in res["namespaces"]:
                            for tx in ns["txs"]:
                                sealed_at[tx["hash"]] = n
                return receipts, want, pre, sealed_at

        receipts, want, pre, sealed_at = run_async(scenario(), 40)
        self.assertEqual(set(pre), want, "every alpha transaction, and only those")
        for h in want:
            n, ev, tx = pre[h]
            r = receipts[h]
            self.assertLess(n, sealed_at[h], "preconfirmed event after its block")
            self.assertEqual(tx["seq"], r["seq"])
            self.assertEqual(ev["group"], r["group"])
            self.assertEqual(ev["slot"], r["slot"])
            self.assertEqual(ev["root"], r["root"])
            self.assertEqual(ev["signature"], r["signature"])
            self.assertEqual(tx["index"], r["index"])
            self.assertEqual(ev["count"], r["count"])

    def test_opt_in_and_private_namespaces(self):
        d = self.d

        async def scenario():
            async with ws_connect(d.ws_url()) as anon, \
                    ws_connect(d.ws_url(), key=self.kp) as owner, \
                    ws_connect(d.ws_url()) as plain:
                a = (await ws_call(anon, "mezz_subscribe",
                                   ["blocks", {"levels": ["preconfirmed"]}]))["result"]
                o = (await ws_call(owner, "mezz_subscribe",
                                   ["blocks", {"namespaces": ["secret"],
                                               "levels": ["preconfirmed"]}]))["result"]
                await ws_call(plain, "mezz_subscribe", ["blocks", {}])
                r = d.rpc("mezz_sendTransaction",
                          {"namespace": "secret", "data": "0x" + os.urandom(20).hex()},
                          key=self.kp)
                got = None
                while got is None:
                    m = json.loads(await asyncio.wait_for(owner.recv(), 20))
                    res = m["params"]["result"]
                    if res["level"] == "preconfirmed":
                        got = res
                self.assertEqual(m["params"]["subscription"], o)
                self.assertEqual(got["namespaces"][0]["txs"][0]["hash"], r["hash"])
                d.wait_sealed_seq(r["seq"] + 1)
                # Whatever the other two got meanwhile (sealed blocks keep
                # coming every slot on `plain`): no preconfirmed event, and
                # never the private namespace.
                for ws, who in ((anon, "anonymous"), (plain, "default levels")):
                    end = time.time() + 0.6
                    while time.time() < end:
                        try:
                            m = json.loads(await asyncio.wait_for(ws.recv(), 0.1))
                        except asyncio.TimeoutError:
                            continue
                        res = m["params"]["result"]
                        self.assertNotEqual(res["level"], "preconfirmed", who)
                        for ns in res.get("namespaces", []):
                            self.assertNotEqual(ns["name"], "secret", who)
                self.assertTrue(a)
        run_async(scenario(), 40)

    def test_bad_level_rejected(self):
        async def scenario():
            async with ws_connect(self.d.ws_url()) as ws:
                return await ws_call(ws, "mezz_subscribe", ["blocks", {"levels": ["preconf"]}])
        r = run_async(scenario())
        self.assertEqual(r["error"]["code"], -32602)
        self.assertIn("preconfirmed", r["error"]["message"])


class FeedCacheTest(DaemonCase):
    """feed.cache_mib bounds the memory of the recent-block ring: its oldest
    blocks leave, the newest stays, and a height that left is served from
    storage exactly as the ring served it."""
    SETTINGS = {"feed.cache_mib": "1"}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.d.setup_tenant("acme", "alpha", 111, key=False)
        cls.d.setup_tenant("beta", "beta", 222, key=False)

    def rendered_ahead(self):
        status, _, raw = self.d.http(b"", "/metrics", method="GET")
        self.assertEqual(status, 200)
        m = re.search(r"^mezz_feed_rendered_ahead_total (\d+)$", raw.decode(), re.M)
        self.assertIsNotNone(m)
        return int(m.group(1))

    def test_blocks_rendered_ahead_are_byte_identical(self):
        """With block subscribers the sealer renders each block's transactions
        (mezz_feed_rendered_ahead_total counts them); what the feed then sends,
        for every view (all namespaces, one namespace), is byte for byte what
        the lws thread renders itself for the same height read back from
        storage (feed.cache_mib=1 evicts it from the ring)."""
        d = self.d
        result = re.compile(r'"result":(.*)\}\}$', re.S)

        async def take(ws, sid, upto_seq, got):
            while True:
                raw = await asyncio.wait_for(ws.recv(), 20)
                m = json.loads(raw)
                self.assertEqual(m["params"]["subscription"], sid)
                b = m["params"]["result"]
                got[b["height"]] = result.search(raw).group(1)
                if b["header"]["firstSeq"] + b["header"]["txCount"] > upto_seq:
                    return

        async def scenario():
            live_all, live_beta = {}, {}
            async with ws_connect(d.ws_url()) as wa, ws_connect(d.ws_url()) as wb:
                sa = (await ws_call(wa, "mezz_subscribe", ["blocks", {"levels": ["sealed"]}]))["result"]
                sb = (await ws_call(wb, "mezz_subscribe",
                                    ["blocks", {"namespaces": ["beta"], "levels": ["sealed"]}]))["result"]
                before = await asyncio.get_running_loop().run_in_executor(None, self.rendered_ahead)
                last = 0
                for i in range(6):
                    sent = await asyncio.get_running_loop().run_in_executor(
                        None, lambda: send_batch(d, "alpha", 12, 9000) + send_batch(d, "beta", 12, 7000))
                    last = max(s for _, s in sent)
                    await take(wa, sa, last, live_all)
                # beta's subscriber gets only blocks with beta in them: the last one has
                await take(wb, sb, last, live_beta)
                after = await asyncio.get_running_loop().run_in_executor(None, self.rendered_ahead)
            # the same heights read back from storage, rendered by the lws thread
            again = {}
            for view, live in ((None, live_all), (["beta"], live_beta)):
                opts = {"fromHeight": min(live), "levels": ["sealed"]}
                if view:
                    opts["namespaces"] = view
                got = {}
                async with ws_connect(d.ws_url()) as w:
                    sid = (await ws_call(w, "mezz_subscribe", ["blocks", opts]))["result"]
                    await take(w, sid, last, got)
                again[bool(view)] = got
            return live_all, live_beta, again, after - before

        live_all, live_beta, again, ahead = run_async(scenario(), 90)
        heavy = [h for h, t in live_all.items() if '"name":"alpha"' in t and '"name":"beta"' in t]
        self.assertGreaterEqual(len(heavy), 3, "too few blocks with both namespaces")
        self.assertGreaterEqual(ahead, len(heavy), "the sealer rendered no block ahead")
        for h, t in live_all.items():
            self.assertEqual(t, again[False][h], "height %d: rendered ahead != rendered on read" % h)
        for h, t in live_beta.items():
            self.assertNotIn('"name":"alpha"', t)
            self.assertEqual(t, again[True][h], "height %d (beta only) differs" % h)

    def test_only_namespaces_a_subscription_may_want_are_rendered_ahead(self):
        """A subscription filtered to beta makes the sealer render beta's
        transactions ahead, not a block that holds only alpha's."""
        d = self.d

        def subscribers():
            status, _, raw = d.http(b"", "/metrics", method="GET")
            return int(re.search(r"^mezz_feed_subscribers (\d+)$", raw.decode(), re.M).group(1))

        for _ in range(50):  # the other tests' subscriptions are gone
            if subscribers() == 0:
                break
            time.sleep(0.1)
        self.assertEqual(subscribers(), 0)

        async def until_seq(ws, last):
            while True:
                b = json.loads(await asyncio.wait_for(ws.recv(), 20))["params"]["result"]
                if b["header"]["firstSeq"] + b["header"]["txCount"] > last:
                    return

        async def scenario():
            loop = asyncio.get_running_loop()
            async with ws_connect(d.ws_url()) as ws:
                await ws_call(ws, "mezz_subscribe", ["blocks", {"namespaces": ["beta"], "levels": ["sealed"]}])
                n0 = await loop.run_in_executor(None, self.rendered_ahead)
                for _ in range(3):
                    sent = await loop.run_in_executor(None, send_batch, d, "alpha", 10, 2000)
                    await until_seq(ws, max(s for _, s in sent))
                n1 = await loop.run_in_executor(None, self.rendered_ahead)
                sent = await loop.run_in_executor(None, send_batch, d, "beta", 10, 2000)
                await until_seq(ws, max(s for _, s in sent))
                n2 = await loop.run_in_executor(None, self.rendered_ahead)
            return n0, n1, n2

        n0, n1, n2 = run_async(scenario(), 60)
        self.assertEqual(n1, n0, "a block of alpha only was rendered for a beta subscription")
        self.assertGreaterEqual(n2, n1 + 1, "beta's block was not rendered ahead")

    def cache(self):
        status, _, raw = self.d.http(b"", "/metrics", method="GET")
        self.assertEqual(status, 200)
        got = {}
        for line in raw.decode().splitlines():
            name, _, v = line.partition(" ")
            if name in ("mezz_feed_cache_bytes", "mezz_feed_cache_blocks"):
                got[name] = float(v)
        return got["mezz_feed_cache_bytes"], got["mezz_feed_cache_blocks"]

    def test_ring_within_its_budget_and_older_heights_from_storage(self):
        d = self.d
        start = d.status()["height"] + 1
        rounds = 8

        async def scenario():
            live, peak = {}, (0, 0)
            async with ws_connect(d.ws_url()) as ws:
                sub = await ws_call(ws, "mezz_subscribe", ["blocks", {"levels": ["sealed"]}])
                sid = sub["result"]
                for _ in range(rounds):
                    # about 0.3 MB of payload a block, its JSON twice that: two blocks
                    # with their renderings are over the 1 MiB budget
                    sent = await asyncio.get_running_loop().run_in_executor(
                        None, send_batch, d, "alpha", 15, 20000)
                    last = max(s for _, s in sent)
                    while not live or max(b["header"]["firstSeq"] + b["header"]["txCount"]
                                          for b in live.values()) <= last:
                        m = json.loads(await asyncio.wait_for(ws.recv(), 20))
                        self.assertEqual(m["params"]["subscription"], sid)
                        b = m["params"]["result"]
                        live[b["height"]] = b
                    nbytes, nblocks = self.cache()
                    peak = max(peak, (nblocks, nbytes))
                    self.assertGreaterEqual(nblocks, 1, "the newest block is always kept")
                    if nblocks > 1:
                        self.assertLessEqual(nbytes, 1 << 20, "ring over feed.cache_mib")
                # every height again, most of them no longer in the ring
                c = Collector(self, min(live))
                async with ws_connect(d.ws_url()) as ws2:
                    sub2 = await ws_call(ws2, "mezz_subscribe",
                                         ["blocks", {"fromHeight": min(live), "levels": ["sealed"]}])
                    while c.next_height <= max(live):
                        b = c.add(json.loads(await asyncio.wait_for(ws2.recv(), 20)), sub2["result"])
                        self.assertEqual(b, live[b["height"]], "storage and ring disagree")
            return live, peak

        live, (nblocks, _) = run_async(scenario(), 90)
        heavy = [h for h, b in live.items() if h >= start and b["header"]["txCount"] >= 15]
        self.assertGreaterEqual(len(heavy), rounds // 2, "blocks too small to test the budget")
        self.assertLess(nblocks, len(heavy), "the ring kept every block: budget ignored")


def slow_connect(d):
    """A WebSocket client that buffers almost nothing, on a socket with a
    tiny receive buffer, so that not reading really pushes back on the
    server."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", d.port))
    return websockets.connect(d.ws_url(), sock=s, max_queue=1, read_limit=4096, max_size=2 ** 26)


class SlowCase(DaemonCase):
    """A daemon whose connections hold 4 blocks, with 20 ms slots."""
    SETTINGS = {"feed.queue_max_blocks": "4"}
    SLOT_MS = 20

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.d.setup_tenant("acme", "alpha", 111, key=False)

    def producer(self, stop, sent=None):
        """Blocks of 4 x 30 KB transactions until stop is set (a thread)."""
        while not stop.is_set():
            got = send_batch(self.d, "alpha", 4, size=30000)
            if sent is not None:
                sent.extend(got)
            time.sleep(0.02)

    async def read_until_closed(self, ws, add, stop, th):
        """add(message) for every message until the server closes the
        connection, then stop the producer (th); the close frame's reason,
        once it is checked to be 1008."""
        try:
            while True:
                add(json.loads(await asyncio.wait_for(ws.recv(), 10)))
        except websockets.ConnectionClosed as e:
            closed = e
        finally:
            stop.set()
            await asyncio.get_running_loop().run_in_executor(None, th.join)
        self.assertIsNotNone(closed.rcvd, "no close frame from the server")
        self.assertEqual(closed.rcvd.code, 1008)
        return closed.rcvd.reason


class SlowSubscriberTest(SlowCase):
    def test_slow_subscriber_dropped_then_resumes(self):
        d = self.d
        start = d.status()["height"] + 1
        sent = []
        stop = threading.Event()

        async def first():
            c = Collector(self, start)
            async with slow_connect(d) as ws:
                sub = await ws_call(ws, "mezz_subscribe", ["blocks", {"fromHeight": start, "levels": ["sealed"]}])
                sid = sub["result"]
                th = threading.Thread(target=self.producer, args=(stop, sent))
                th.start()
                await asyncio.sleep(2.0)  # not reading
                reason = await self.read_until_closed(ws, lambda m: c.add(m, sid), stop, th)
            return c, reason

        c, reason = run_async(first(), 60)
        m = re.search(r"fromHeight=(\d+)", reason)
        self.assertIsNotNone(m, reason)
        n = int(m.group(1))
        self.assertGreaterEqual(n, start)
        self.assertEqual(n, c.next_height, "fromHeight=%d but the client got blocks up to %d"
                         % (n, c.next_height - 1))
        self.assertTrue(d.alive())
        last = max(s for _, s in sent)

        async def resume():
            async with ws_connect(d.ws_url()) as ws:
                sub = await ws_call(ws, "mezz_subscribe", ["blocks", {"fromHeight": n, "levels": ["sealed"]}])
                sid = sub["result"]
                while c.next_seq is None or c.next_seq <= last:
                    c.add(json.loads(await asyncio.wait_for(ws.recv(), 10)), sid)
        run_async(resume(), 60)
        for h, s in sent:
            self.assertEqual(c.txs.get(h, (None,))[0], s)
        self.assertGreater(len(sent), 40)


class SubscriptionShapeTest(DaemonCase):
    """How subscriptions are made and shared: a mezz_subscribe inside a
    batch is answered (with its id) before its first notification; filters
    naming the same namespaces in any order, repeated or not, are one view of
    a block, and every subscriber sharing a view shares its rendering however
    many other views come first; a connection holds at most 32."""

    NS = ("alpha", "beta", "gamma", "delta")

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        for k, ns in enumerate(cls.NS):
            cls.d.setup_tenant("t%d" % k, ns, 301 + k, key=False)

    def test_subscribe_in_a_batch_answers_before_its_first_notification(self):
        d = self.d
        d.send("alpha", os.urandom(20))
        d.wait_height(3)

        async def go():
            async with ws_connect(d.ws_url()) as ws:
                await ws.send(json.dumps([
                    {"jsonrpc": "2.0", "id": 1, "method": "mezz_sendTransaction",
                     "params": {"namespace": "alpha", "data": "0x" + os.urandom(20).hex()}},
                    {"jsonrpc": "2.0", "id": 2, "method": "mezz_subscribe",
                     "params": ["blocks", {"fromHeight": 1, "levels": ["sealed"]}]}]))
                first = json.loads(await asyncio.wait_for(ws.recv(), 10))
                self.assertIsInstance(first, list, "a notification came before the answer: %s"
                                      % str(first)[:200])
                ans = {x["id"]: x for x in first}
                self.assertIn("result", ans[1], ans)
                sid = ans[2]["result"]
                c = Collector(self, 1)
                while c.next_height <= 3:
                    c.add(json.loads(await asyncio.wait_for(ws.recv(), 10)), sid)
        run_async(go(), 30)

    def test_a_view_is_rendered_once_however_many_views_come_before(self):
        d = self.d
        odd = [["alpha"], ["alpha", "alpha"], ["beta", "alpha"], ["alpha", "beta", "beta"],
               ["gamma"], ["delta", "gamma"], ["alpha", "gamma"], ["beta"], ["delta"],
               ["alpha", "delta"], ["beta", "gamma"], ["beta", "delta"]]
        distinct = {tuple(sorted(set(f))) for f in odd}
        self.assertEqual(len(distinct), 10)

        def views():
            return metric(d, "mezz_feed_views_total")

        async def go():
            # nobody reads: closed without waiting for the close handshake
            plain = [await ws_connect(d.ws_url(), close_timeout=0.1) for _ in range(20)]
            for ws in plain:
                await ws_call(ws, "mezz_subscribe", ["blocks", {"levels": ["sealed"]}])
            # opened last, so it is met first in a fan-out
            att = await ws_connect(d.ws_url(), close_timeout=0.1)
            for k, f in enumerate(odd):
                await ws_call(att, "mezz_subscribe",
                              ["blocks", {"namespaces": f, "levels": ["sealed"]}], id=k + 1)
            await asyncio.sleep(0.3)
            h0, v0 = d.status()["height"], views()
            await asyncio.sleep(3.0)
            h1, v1 = d.status()["height"], views()
            for ws in plain + [att]:
                await ws.close()
            return h1 - h0, v1 - v0
        blocks, made = run_async(go(), 60)
        self.assertGreaterEqual(blocks, 5)
        # per block: the 10 distinct filters and the unfiltered view, give or
        # take the blocks at the edges of the window
        self.assertLessEqual(made, (blocks + 2) * (len(distinct) + 1),
                             "%d renderings for %d blocks" % (made, blocks))
        self.assertGreaterEqual(made, (blocks - 2) * (len(distinct) + 1))

    def test_at_most_32_subscriptions_on_a_connection(self):
        d = self.d

        async def go():
            async with ws_connect(d.ws_url()) as ws:
                ids = []
                for k in range(32):
                    ids.append((await ws_call(ws, "mezz_subscribe",
                                              ["blocks", {"levels": ["sealed"]}], id=k + 1))["result"])
                doc = await ws_call(ws, "mezz_subscribe", ["blocks"], id=99)
                self.assertRpcError(doc, -32004)
                self.assertIn("at most 32 subscriptions", doc["error"]["message"])
                self.assertIs((await ws_call(ws, "mezz_unsubscribe", [ids[0]], id=100))["result"],
                              True)
                self.assertIn("result", await ws_call(ws, "mezz_subscribe", ["blocks"], id=101))
        run_async(go(), 30)


class BigBlockTest(DaemonCase):
    """A block whose message is bigger than server.ws_send_queue_bytes (the
    minimum, 64 KiB) is still delivered, live and caught up: the byte cap is
    on what waits behind other messages. Before, every catch-up from it was
    dropped at that very block ("resubscribe with fromHeight=h"), forever."""
    SETTINGS = {"server.ws_send_queue_bytes": "65536"}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.d.setup_tenant("acme", "alpha", 111, key=False)

    def test_block_over_the_byte_cap_is_delivered_live_and_caught_up(self):
        d = self.d
        start = d.status()["height"] + 1

        async def live():
            async with ws_connect(d.ws_url(), max_size=2 ** 24) as ws:
                sid = (await ws_call(ws, "mezz_subscribe",
                                     ["blocks", {"fromHeight": start, "levels": ["sealed"]}]))["result"]
                c = Collector(self, start)
                [(h, seq)] = send_batch(d, "alpha", 1, size=40000)  # 80 KB of hex
                while h not in c.txs:
                    c.add(json.loads(await asyncio.wait_for(ws.recv(), 10)), sid)
                return c.next_height - 1, h, seq
        height, h, seq = run_async(live(), 60)

        async def catch_up():
            async with ws_connect(d.ws_url(), max_size=2 ** 24) as ws:
                sid = (await ws_call(ws, "mezz_subscribe",
                                     ["blocks", {"fromHeight": height, "levels": ["sealed"]}]))["result"]
                msg = await asyncio.wait_for(ws.recv(), 10)
                self.assertGreater(len(msg), 65536)
                c = Collector(self, height)
                c.add(json.loads(msg), sid)
                return c.txs
        for attempt in range(2):
            self.assertEqual(run_async(catch_up(), 60).get(h, (None,))[0], seq,
                             "catch-up %d" % attempt)
        self.assertTrue(d.alive())

    def test_catch_up_with_level_events_delivers_a_block_over_the_byte_cap(self):
        """With the default levels a catch-up queued the due level events
        (available h-1), then the big block behind them in the same turn:
        over the cap, so a prompt reader was dropped (1008, resubscribe at
        h) at every big block. The block now waits for an empty queue."""
        d = self.d
        start = d.status()["height"] + 1
        [(_, seq0)] = send_batch(d, "alpha", 1, size=100)
        d.wait_sealed_seq(seq0 + 1)
        [(h, seq)] = send_batch(d, "alpha", 1, size=40000)  # 80 KB of hex, a later block
        big = d.wait_sealed_seq(seq + 1)
        deadline = time.time() + 10
        while d.status()["availableHeight"] < big:
            self.assertLess(time.time(), deadline, "blocks not available")
            time.sleep(0.05)

        async def catch_up():
            async with ws_connect(d.ws_url(), max_size=2 ** 24) as ws:
                sid = (await ws_call(ws, "mezz_subscribe",
                                     ["blocks", {"fromHeight": start}]))["result"]
                c = Collector(self, start)
                levels = 0
                while h not in c.txs:
                    msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    if msg["params"]["result"]["level"] == "sealed":
                        c.add(msg, sid)
                    else:
                        levels += 1
                self.assertGreater(levels, 0, "level events came with the catch-up")
                return c.txs
        self.assertEqual(run_async(catch_up(), 60)[h][0], seq, "block %d" % big)
        self.assertTrue(d.alive())

    def test_batch_answer_too_large_starts_no_subscription(self):
        """A batch whose answer would pass the byte cap is answered with
        errors instead, and a mezz_subscribe in it never starts (it is
        freed with the request, and no longer counted)."""
        d = self.d
        [(h, seq)] = send_batch(d, "alpha", 1, size=40000)
        height = d.wait_sealed_seq(seq + 1)

        def subscribers():
            _, _, raw = d.http(b"", "/metrics", method="GET")
            return int(re.search(r"(?m)^mezz_feed_subscribers (\d+)", raw.decode()).group(1))

        async def go():
            async with ws_connect(d.ws_url(), max_size=2 ** 24) as ws:
                await ws.send(json.dumps([
                    {"jsonrpc": "2.0", "id": 1, "method": "mezz_subscribe",
                     "params": ["blocks", {"levels": ["sealed"]}]},
                    {"jsonrpc": "2.0", "id": 2, "method": "mezz_getBlock",
                     "params": {"height": height}}]))
                ans = json.loads(await asyncio.wait_for(ws.recv(), 10))
                return ans, await recv_until_quiet(ws, 1.0), subscribers()
        base = subscribers()
        ans, later, during = run_async(go(), 30)
        self.assertEqual(sorted(x["id"] for x in ans), [1, 2])
        for x in ans:
            self.assertEqual(x["error"]["code"], -32004, x)
        self.assertEqual(later, [], "a subscription from the refused batch started")
        self.assertEqual(during, base)


class LevelsFromTest(DaemonCase):
    """A subscription resumed at fromHeight=F gets, with levelsFrom, the level
    events of blocks below F it had sealed but not yet seen reach a level
    (for posted and finalized, minutes behind the block): from the height
    asked for, each once and in order, with no sealed block below F again.
    Without levelsFrom a level starts at F. Bad maps are refused."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.d.setup_tenant("acme", "alpha", 111, key=False)

    def top_available(self, at_least):
        deadline = time.time() + 20
        while time.time() < deadline:
            send_batch(self.d, "alpha", 3)
            top = self.d.status()["availableHeight"]
            if top >= at_least:
                return top
            time.sleep(0.05)
        self.fail("availableHeight %d not reached" % at_least)

    def events(self, opts, until):
        """(level, height) of each notification until `available` until."""
        async def go():
            async with ws_connect(self.d.ws_url()) as ws:
                sid = (await ws_call(ws, "mezz_subscribe", ["blocks", opts]))["result"]
                got = []
                while ("available", until) not in got:
                    m = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    self.assertEqual(m["params"]["subscription"], sid)
                    r = m["params"]["result"]
                    got.append((r["level"], r["height"]))
                return got
        return run_async(go(), 60)

    def test_level_events_resume_below_from_height(self):
        top = self.top_available(8)
        a, f = top - 6, top - 2
        got = self.events({"fromHeight": f, "levels": ["available"],
                           "levelsFrom": {"available": a}}, top)
        avail = [h for lv, h in got if lv == "available"]
        self.assertEqual(avail, list(range(a, top + 1)), got)
        self.assertEqual([h for lv, h in got if lv == "sealed"][:top - f + 1],
                         list(range(f, top + 1)), got)
        for h in range(f, top + 1):  # at and above F: sealed before available
            self.assertLess(got.index(("sealed", h)), got.index(("available", h)), got)

        plain = self.events({"fromHeight": f, "levels": ["available"]}, top)
        self.assertEqual([h for lv, h in plain if lv == "available"], list(range(f, top + 1)),
                         plain)

    def test_bad_levels_from_refused(self):
        top = self.top_available(2)
        f = top

        async def call(opts):
            async with ws_connect(self.d.ws_url()) as ws:
                return await ws_call(ws, "mezz_subscribe", ["blocks", opts])
        for opts in ({"fromHeight": f, "levelsFrom": {"available": f + 1}},
                     {"fromHeight": f, "levelsFrom": {"available": 0}},
                     {"fromHeight": f, "levelsFrom": {"sealed": 1}},
                     {"fromHeight": f, "levelsFrom": {"available": "1"}},
                     {"fromHeight": f, "levelsFrom": [1]},
                     {"fromHeight": f, "levels": ["available"], "levelsFrom": {"posted": 1}}):
            doc = run_async(call(opts))
            self.assertRpcError(doc, -32602, repr(opts))
            self.assertIn("levelsFrom", doc["error"]["message"], repr(opts))
        self.assertIn("result", run_async(call({"fromHeight": f, "levelsFrom": {"available": f}})))
        self.assertTrue(self.d.alive())


class TailResumeTest(unittest.TestCase):
    """`mezz tail` across a daemon crash: it resumes after the last block it
    showed and asks, with levelsFrom, for the `available` events of blocks
    it showed before they were coded (mz-da stalled by the fault build, then
    SIGKILL). Every block and every level event is shown once, in order,
    with no gap."""

    def setUp(self):
        self.data = tempfile.mkdtemp(prefix="mezz-tail-")
        self.addCleanup(shutil.rmtree, self.data, True)
        self.stall = os.path.join(self.data, "stall-da")
        self.d = Daemon(MEZZANINE_TEST, data_dir=self.data, port=free_port(),
                        env={"MEZZ_FAULT_STALL_DA_FILE": self.stall})
        self.addCleanup(self.d.cleanup)
        self.lines = []

    def read_tail(self, out):
        for line in out:
            m = re.match(r"^(sealed|available)\s+height (\d+)", line)
            if m:
                self.lines.append((m.group(1), int(m.group(2))))

    def shown(self, level):
        return [h for lv, h in list(self.lines) if lv == level]

    def wait(self, what, cond, timeout=20.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if cond():
                return
            time.sleep(0.05)
        self.fail("%s: tail showed %r\n%s" % (what, self.lines[-10:], self.d.log()))

    def test_resumes_blocks_and_their_levels_after_a_crash(self):
        d = self.d.start()
        d.setup_tenant("acme", "demo", 31337, key=False)
        tail = subprocess.Popen([MEZZ, "--url", d.url, "tail", "demo", "--levels", "available"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(tail.kill)
        reader = threading.Thread(target=self.read_tail, args=(tail.stdout,), daemon=True)
        reader.start()
        stop = threading.Event()

        def feed():
            while not stop.is_set():
                try:
                    send_batch(d, "demo", 5)
                except Exception:  # the daemon is being killed
                    pass
                stop.wait(0.05)
        feeder = threading.Thread(target=feed)
        feeder.start()
        try:
            self.wait("available events", lambda: len(self.shown("available")) >= 3)
            open(self.stall, "w").close()
            self.wait("mz-da stalled", lambda: "what=da " in d.log())
            coded = d.status()["availableHeight"]
            self.wait("blocks shown past the stall",
                      lambda: self.shown("sealed") and max(self.shown("sealed")) >= coded + 3)
            d.kill9()
            before = max(self.shown("sealed"))
            os.unlink(self.stall)
            d.start()
            self.wait("levels of the blocks shown before the crash",
                      lambda: self.shown("available") and
                      max(self.shown("available")) >= before + 2)
        finally:
            stop.set()
            feeder.join()
        tail.send_signal(signal.SIGINT)
        self.assertEqual(tail.wait(10), 0)
        reader.join(10)
        err = tail.stderr.read()
        self.assertIn("reconnecting", err)
        sealed, avail = self.shown("sealed"), self.shown("available")
        self.assertEqual(sealed, list(range(sealed[0], sealed[-1] + 1)), err)
        self.assertEqual(avail, list(range(avail[0], avail[-1] + 1)), err)
        self.assertLessEqual(avail[0], coded)
        for h in avail:  # each after its block
            self.assertLess(self.lines.index(("sealed", h)), self.lines.index(("available", h)))


class TwoSlowSubscriptionsTest(SlowCase):
    """A connection with two subscriptions far apart (one live, one catching
    up from 1 through a backlog) that stops reading is closed with the lowest
    of their resume heights as fromHeight, so resubscribing there loses
    nothing, and with each one's own (0xID=N): exactly the first height each
    has not had. (It used to name the first queued block of either, which
    for the one behind skipped every block between.)"""

    def test_each_subscription_told_where_to_resume(self):
        d = self.d
        for _ in range(12):  # a backlog of blocks for the one catching up
            send_batch(d, "alpha", 4, size=30000)
            time.sleep(0.03)
        live_from = d.status()["height"] + 1
        stop = threading.Event()

        async def go():
            async with slow_connect(d) as ws:
                a = (await ws_call(ws, "mezz_subscribe",
                                   ["blocks", {"fromHeight": live_from, "levels": ["sealed"]}]))["result"]
                got = {a: Collector(self, live_from)}
                # not ws_call: a's first block may come before b's answer
                await ws.send(json.dumps({"jsonrpc": "2.0", "id": 2, "method": "mezz_subscribe",
                                          "params": ["blocks", {"fromHeight": 1,
                                                                "levels": ["sealed"]}]}))
                while True:
                    m = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    if m.get("id") == 2:
                        break
                    got[a].add(m, a)
                b = m["result"]
                got[b] = Collector(self, 1)
                th = threading.Thread(target=self.producer, args=(stop,))
                th.start()
                await asyncio.sleep(2.0)  # not reading

                def add(m):
                    sid = m["params"]["subscription"]
                    got[sid].add(m, sid)
                reason = await self.read_until_closed(ws, add, stop, th)
            return got, reason

        got, reason = run_async(go(), 60)
        nxt = {sid: c.next_height for sid, c in got.items()}
        self.assertGreater(max(nxt.values()) - min(nxt.values()), 2, "not apart: %r" % nxt)
        m = re.search(r"fromHeight=(\d+)", reason)
        self.assertIsNotNone(m, reason)
        self.assertEqual(int(m.group(1)), min(nxt.values()), reason)
        own = dict(re.findall(r"(0x[0-9a-f]+)=(\d+)", reason))
        self.assertEqual({k: int(v) for k, v in own.items()}, nxt, reason)
        self.assertTrue(d.alive())


def metric(d, name):
    status, _, raw = d.http(b"", "/metrics", method="GET")
    assert status == 200, status
    for line in raw.decode().splitlines():
        k, _, v = line.partition(" ")
        if k == name:
            return float(v)
    raise AssertionError("no metric " + name)


class FanoutTest(DaemonCase):
    """A live block's copies are written straight to the subscribers' sockets,
    split between the network thread and an mz-fanout helper once a fan-out
    has 64 copies or more (feed.fanout_threads = 2, the default). 37
    connections hold two subscriptions each, one unfiltered and one for
    namespace alpha (two views), so copies of one connection come in pairs,
    and the ids alternate between one and two hex digits: every subscription
    gets every block once, in order, under its own id, with its own filter,
    and every copy of a view is the same. 74 copies halve at copy 37, inside
    a connection's pair: the split must move past it, or with short writes
    (the variants) two threads would write into one socket. The variants run
    the same scenario with the writes cut short by a fault hook, and on one
    thread."""
    BINARY = MEZZANINE_TEST
    ENV = {}
    CONNS = 37
    HELPERS = True

    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(cls.BINARY, cls.SETTINGS, env=cls.ENV, slot_ms=cls.SLOT_MS)
        cls.addClassCleanup(cls.d.cleanup)
        cls.d.start()
        cls.d.setup_tenant("acme", "alpha", 111, key=False)
        cls.d.setup_tenant("beta", "beta", 222, key=False)

    def test_every_copy_whole_in_order_under_its_own_id(self):
        d = self.d
        start = d.status()["height"] + 40  # every subscription is live before it
        before = metric(d, "mezz_feed_fanout_direct_total")

        async def scenario():
            conns = [await ws_connect(d.ws_url()) for _ in range(self.CONNS)]
            try:
                subs = {}  # sid -> (connection, Collector, filtered)
                for filtered in (False, True):
                    for i, ws in enumerate(conns):
                        p = {"fromHeight": start, "levels": ["sealed"]}
                        if filtered:
                            p["namespaces"] = ["alpha"]
                        r = await ws_call(ws, "mezz_subscribe", ["blocks", p], id=1 + filtered)
                        subs[r["result"]] = (i, Collector(self, start), filtered)
                self.assertLess(d.status()["height"], start - 1, "subscribing took too long")
                widths = {len(sid) for sid in subs}
                self.assertGreaterEqual(len(widths), 2, "ids of one width only: %s" % widths)
                while d.status()["height"] < start:  # the txs go into live blocks
                    await asyncio.sleep(0.02)
                sent = []
                for k in range(6):
                    sent += [(h, q, "alpha") for h, q in send_batch(d, "alpha", 15)]
                    sent += [(h, q, "beta") for h, q in send_batch(d, "beta", 15)]
                    await asyncio.sleep(0.05)
                last = max(q for _, q, _ in sent)
                views = {}  # (filtered, height) -> set of result texts

                async def read(i, ws):
                    mine = {sid: v for sid, v in subs.items() if v[0] == i}
                    while any(c.next_seq is None or c.next_seq <= last for _, c, _ in mine.values()):
                        msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
                        sid = msg["params"]["subscription"]
                        self.assertIn(sid, mine, "a copy under another connection's id")
                        _, c, filtered = mine[sid]
                        b = c.add(msg, sid)
                        views.setdefault((filtered, b["height"]), set()).add(
                            json.dumps(b, sort_keys=True))
                await asyncio.gather(*(read(i, ws) for i, ws in enumerate(conns)))
                return subs, sent, views
            finally:
                for ws in conns:
                    await ws.close()

        subs, sent, views = run_async(scenario(), 90)
        self.assertEqual(len(subs), 2 * self.CONNS)
        for sid, (_, c, filtered) in subs.items():
            want = {h: q for h, q, ns in sent if ns == "alpha" or not filtered}
            got = {h: s for h, (s, _) in c.txs.items()}
            self.assertEqual(got, want, "subscription %s (filtered=%s)" % (sid, filtered))
            if filtered:
                self.assertEqual(c.names, {"alpha"})
        for key, texts in views.items():
            self.assertEqual(len(texts), 1, "copies of one view differ at %s" % (key,))
        direct = metric(d, "mezz_feed_fanout_direct_total") - before
        self.assertGreaterEqual(direct, 2 * self.CONNS * (max(h for _, h in views) - start + 1))
        helper = metric(d, "mezz_feed_fanout_helper_total")
        if self.HELPERS:
            self.assertGreater(helper, 0, "no copy went to a helper")
        else:
            self.assertEqual(helper, 0)


class FanoutShortWriteTest(FanoutTest):
    """Every direct write stops after 40 bytes, inside the copy's own frame
    header and head: lws finishes the rest of the first copy of each
    connection, and the second queues behind it."""
    ENV = {"MEZZ_FAULT_FANOUT_WRITE_MAX": "40"}


class FanoutShortTailTest(FanoutTest):
    """As above, cut inside the shared tail (the block's JSON)."""
    ENV = {"MEZZ_FAULT_FANOUT_WRITE_MAX": "300"}


class FanoutFullSocketTest(FanoutTest):
    """Nothing is written directly, as with every socket buffer full: every
    copy is queued and sent from the connection's WRITEABLE callback."""
    ENV = {"MEZZ_FAULT_FANOUT_WRITE_MAX": "0"}


class FanoutOneThreadTest(FanoutTest):
    """feed.fanout_threads = 1: the network thread writes every copy."""
    SETTINGS = {"feed.fanout_threads": "1"}
    HELPERS = False
