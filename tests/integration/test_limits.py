"""Admission control: per-tenant token buckets (transactions/s, bytes/s),
per-address limits for anonymous callers and connection caps, the -32009
error with data.retryAfterMs and HTTP 429 + Retry-After, handshake and idle
timeouts, and WebSocket pings."""
import asyncio
import base64
import json
import os
import re
import socket
import struct
import time

from harness import DaemonCase, run_async, ws_call, ws_connect

RATE_LIMITED = -32009


def tx(n=40):
    return "0x" + os.urandom(n).hex()


class TenantLimitTest(DaemonCase):
    SETTINGS = {"server.max_tx_bytes": "1024", "limits.burst_ms": "1000"}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        d = cls.d
        cls.ka = d.setup_tenant("acme", "alpha", 101)
        cls.kb = d.setup_tenant("beta", "bravo", 202)
        d.mezz("tenant", "limits", "acme", "--tx-per-s", "5")
        cls.kg = d.setup_tenant("gamma", "charlie", 303)
        d.mezz("tenant", "limits", "gamma", "--tx-per-s", "50")
        cls.kd = d.setup_tenant("delta", "delta", 404)
        d.mezz("tenant", "limits", "delta", "--tx-per-s", "5")

    def send(self, ns, key=None, n=40):
        return self.d.call("mezz_sendTransaction", {"namespace": ns, "data": tx(n)}, key=key)

    def test_tx_limit_error_429_retry_and_isolation(self):
        time.sleep(1.1)  # a full bucket
        docs = [self.send("alpha", self.ka) for _ in range(12)]
        ok = [x for x in docs if "result" in x]
        limited = [x for x in docs if "error" in x]
        self.assertGreaterEqual(len(ok), 5)
        self.assertLessEqual(len(ok), 7)  # the bucket holds 5, plus what refilled meanwhile
        for x in limited:
            self.assertRpcError(x, RATE_LIMITED)
            self.assertGreater(x["error"]["data"]["retryAfterMs"], 0)
            self.assertLessEqual(x["error"]["data"]["retryAfterMs"], 1000)
            self.assertEqual(x["error"]["data"]["limit"], "tenant transactions/s")
        # HTTP: 429 with Retry-After in whole seconds
        body = json.dumps({"jsonrpc": "2.0", "id": 7, "method": "mezz_sendTransaction",
                           "params": {"namespace": "alpha", "data": tx()}}).encode()
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", self.d.port, timeout=10)
        conn.request("POST", "/", body=body, headers={"Content-Type": "application/json",
                                                      "Authorization": "Bearer " + self.ka})
        r = conn.getresponse()
        doc = json.loads(r.read())
        conn.close()
        self.assertEqual(r.status, 429, doc)
        self.assertEqual(r.getheader("Retry-After"), "1")
        wait = doc["error"]["data"]["retryAfterMs"]
        # another tenant is not limited at all
        for _ in range(20):
            self.assertIn("result", self.send("bravo", self.kb))
        # the hint is honest: after waiting it, a submission fits again
        time.sleep(wait / 1000.0 + 0.05)
        self.assertIn("result", self.send("alpha", self.ka))
        # a batch with some refused items is a 200 with per-item errors
        time.sleep(1.1)
        reqs = [{"jsonrpc": "2.0", "id": i, "method": "mezz_sendTransaction",
                 "params": {"namespace": "alpha", "data": tx()}} for i in range(8)]
        st, out = self.d.raw_post(json.dumps(reqs))
        self.assertEqual(st, 200)
        self.assertEqual(sum("result" in x for x in out), 5)
        self.assertEqual(sum(x.get("error", {}).get("code") == RATE_LIMITED for x in out), 3)

    def test_batch_request_items_limited_on_their_own(self):
        # mezz_sendTransactions: each transaction takes its own token; the
        # refused ones are error entries, the rest are sequenced and proved.
        time.sleep(1.1)  # a full bucket of 5
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "mezz_sendTransactions",
                           "params": {"namespace": "delta", "txs": [tx() for _ in range(9)]}})
        st, doc = self.d.raw_post(body.encode(), headers={"Authorization": "Bearer " + self.kd})
        self.assertEqual(st, 200, doc)
        entries = doc["result"]["txs"]
        ok = [e for e in entries if "index" in e]
        refused = [e for e in entries if "error" in e]
        self.assertEqual(len(ok) + len(refused), 9)
        self.assertGreaterEqual(len(ok), 5)
        self.assertLessEqual(len(ok), 6)  # the bucket holds 5, plus what refilled meanwhile
        for e in refused:
            self.assertEqual(e["error"]["code"], RATE_LIMITED, e)
        path = os.path.join(self.d.data_dir, "limited-batch.json")
        with open(path, "w") as f:
            json.dump(doc, f)
        out = self.d.mezz("verify", "batch", path).stdout
        self.assertIn("%d refused" % len(refused), out)
        # every transaction refused: the HTTP status says so
        body = json.dumps({"jsonrpc": "2.0", "id": 2, "method": "mezz_sendTransactions",
                           "params": {"namespace": "delta", "txs": [tx() for _ in range(3)]}})
        st, doc = self.d.raw_post(body.encode(), headers={"Authorization": "Bearer " + self.kd})
        self.assertEqual(st, 429, doc)
        self.assertTrue(all(e["error"]["code"] == RATE_LIMITED for e in doc["result"]["txs"]))
        # 429 only when every answer sent is a -32009: refused notifications
        # (no answer) beside an answered mezz_status are a 200; a refused
        # notification beside a refused request is a 429
        def note(k):
            return {"jsonrpc": "2.0", "method": "mezz_sendTransaction",
                    "params": {"namespace": "delta", "data": tx()}}
        hdr = {"Authorization": "Bearer " + self.kd}
        st, doc = self.d.raw_post(json.dumps(
            [note(0), note(1), {"jsonrpc": "2.0", "id": 7, "method": "mezz_status"}]).encode(),
            headers=hdr)
        self.assertEqual(st, 200, doc)
        self.assertEqual([x["id"] for x in doc], [7])
        st, doc = self.d.raw_post(json.dumps(
            [note(0), {"jsonrpc": "2.0", "id": 8, "method": "mezz_sendTransaction",
                       "params": {"namespace": "delta", "data": tx()}}]).encode(), headers=hdr)
        self.assertEqual(st, 429, doc)
        self.assertEqual(doc[0]["error"]["code"], RATE_LIMITED)

    def test_bytes_limit_and_default_restored(self):
        self.d.mezz("tenant", "limits", "beta", "--bytes-per-s", "2000")
        try:
            time.sleep(1.1)
            docs = [self.send("bravo", self.kb, n=500) for _ in range(6)]
            ok = sum("result" in x for x in docs)
            self.assertIn(ok, (4, 5))  # 2000-byte bucket, 500-byte payloads
            lim = [x for x in docs if "error" in x]
            self.assertTrue(lim)
            self.assertEqual(lim[0]["error"]["data"]["limit"], "tenant bytes/s")
        finally:
            self.d.mezz("tenant", "limits", "beta", "--bytes-per-s", "default")
        for _ in range(10):
            self.assertIn("result", self.send("bravo", self.kb, n=500))

    def paced(self):
        _, _, raw = self.d.http(b"", "/metrics", method="GET")
        text = raw.decode()
        out = []
        for name in ("mezz_ws_rx_paused_total", "mezz_ws_rx_paced_total"):
            m = re.search(r"^%s (\d+)" % name, text, re.M)
            self.assertIsNotNone(m, "%s missing from /metrics" % name)
            out.append(int(m.group(1)))
        return out

    def test_limit_applies_over_websocket(self):
        """One submission at a time over a WebSocket at a 5 tx/s limit: the
        bucket's 5 go through, the next is refused with a retry hint, and the
        ones after it are admitted no faster than the limit (the connection
        is read at its limit's pace)."""
        time.sleep(1.1)

        async def go():
            async with ws_connect(self.d.ws_url(), key=self.ka) as ws:
                out = []
                for i in range(10):
                    x = await ws_call(ws, "mezz_sendTransaction",
                                      {"namespace": "alpha", "data": tx()}, id=i)
                    out.append((time.monotonic(), x))
                return out
        out = run_async(go())
        codes = [x.get("error", {}).get("code") for _, x in out]
        self.assertTrue(all(c is None for c in codes[:5]), codes)
        self.assertEqual(codes[5], RATE_LIMITED, codes)
        self.assertGreaterEqual(out[5][1]["error"]["data"]["retryAfterMs"], 1)
        after = [t for t, x in out[6:] if "result" in x]
        self.assertGreaterEqual(len(after), 3, codes)
        # 5 tx/s: n admissions after the refusal span at least (n-1)/5 s.
        self.assertGreaterEqual(after[-1] - after[0], (len(after) - 1) / 5.0 * 0.9)

    def test_flood_on_one_websocket_is_paused_then_paced_every_message_answered(self):
        """30 submissions pipelined on one connection at a 5 tx/s limit: the
        bucket's 5 go through, the next is refused and pauses reading; what
        follows is read at the limit's pace and admitted, not refused. Every
        message gets exactly one answer, and the admissions after the
        refusal keep to 5 tx/s."""
        time.sleep(1.1)
        before = self.paced()

        async def go():
            async with ws_connect(self.d.ws_url(), key=self.ka) as ws:
                for i in range(30):
                    await ws.send(json.dumps({"jsonrpc": "2.0", "id": i,
                                              "method": "mezz_sendTransaction",
                                              "params": {"namespace": "alpha", "data": tx()}}))
                answers, at = {}, {}
                while len(answers) < 30:
                    m = json.loads(await asyncio.wait_for(ws.recv(), 60))
                    self.assertNotIn(m["id"], answers, "answered twice")
                    answers[m["id"]] = m
                    at[m["id"]] = time.monotonic()
                return answers, at
        answers, at = run_async(go())
        ok = [i for i in range(30) if "result" in answers[i]]
        limited = [i for i in range(30)
                   if answers[i].get("error", {}).get("code") == RATE_LIMITED]
        self.assertEqual(len(ok) + len(limited), 30)
        self.assertEqual(len(limited), 1, "refused: %s" % limited)
        for i in limited:
            self.assertGreaterEqual(answers[i]["error"]["data"]["retryAfterMs"], 1)
        after = sorted(at[i] for i in ok if i > limited[0])
        self.assertGreaterEqual(len(after), 20)
        self.assertGreaterEqual(after[-1] - after[0], (len(after) - 1) / 5.0 * 0.9)
        paused, paced = self.paced()
        self.assertGreater(paused, before[0])
        self.assertGreater(paced, before[1])

    def test_two_flooding_connections_are_paced_together(self):
        """Two connections of one tenant (50 tx/s) each pipeline 60
        submissions. The bucket's 50 go through; then each is refused once
        and from there read in turns booked on the tenant's bucket, one after
        the other's: every message is answered once, the rest is admitted,
        not refused, and together they keep to 50 tx/s. (Measured: 2
        refusals; 9-18 when the refusal pause did not wait for a turn, 34-38
        without pacing.)"""
        time.sleep(1.1)

        async def flood(ws, base):
            for i in range(60):
                await ws.send(json.dumps({"jsonrpc": "2.0", "id": base + i,
                                          "method": "mezz_sendTransaction",
                                          "params": {"namespace": "charlie", "data": tx()}}))
            got = {}
            while len(got) < 60:
                m = json.loads(await asyncio.wait_for(ws.recv(), 60))
                got[m["id"]] = (time.monotonic(), m)
            return got

        async def go():
            async with ws_connect(self.d.ws_url(), key=self.kg) as a, \
                    ws_connect(self.d.ws_url(), key=self.kg) as b:
                ra, rb = await asyncio.gather(flood(a, 0), flood(b, 1000))
                return {**ra, **rb}
        got = run_async(go())
        self.assertEqual(len(got), 120)
        refused = [i for i, (_, m) in got.items()
                   if m.get("error", {}).get("code") == RATE_LIMITED]
        ok = sorted(t for t, m in got.values() if "result" in m)
        self.assertEqual(len(ok) + len(refused), 120)
        self.assertLessEqual(len(refused), 4, "refused: %d" % len(refused))
        # After the bucket's 50: the rest keep to 50 tx/s together.
        late = ok[50:]
        self.assertGreaterEqual(len(late), 60)
        self.assertGreaterEqual(late[-1] - late[0], (len(late) - 1) / 50.0 * 0.9)

    def test_metrics_count_limited(self):
        _, _, raw = self.d.http(b"", "/metrics", method="GET")
        self.assertRegex(raw.decode(), r'mezz_tenant_limited_total\{tenant="acme"\} [1-9]')


class BundleLimitTest(DaemonCase):
    """A bundle is admitted as one (docs/OPERATIONS.md, "Limits"): all of a
    tenant's legs' tokens at once, so a bundle bigger than the bucket passes
    when the bucket is full, as one big transaction does; and every tenant or
    none, so a refused bundle takes no tokens. A bundle refused because the
    ingress queue is full is answered (-32006) and takes no tokens either.
    Public namespaces: anonymous legs in two tenants' namespaces."""
    SETTINGS = {"limits.burst_ms": "1000", "sequencer.ingress_queue_max": "16"}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        d = cls.d
        d.setup_tenant("acme", "alpha", 501, key=False)
        d.setup_tenant("beta", "bravo", 502, key=False)
        d.setup_tenant("gamma", "charlie", 503, key=False)
        d.mezz("tenant", "limits", "acme", "--tx-per-s", "1")
        d.mezz("tenant", "limits", "beta", "--tx-per-s", "1")
        d.mezz("tenant", "limits", "gamma", "--tx-per-s", "5")

    def bundle(self, *nss, timeout=10):
        return self.d.call("mezz_sendBundle",
                           {"txs": [{"namespace": ns, "data": tx()} for ns in nss]},
                           timeout=timeout)

    def single(self, ns):
        return self.d.call("mezz_sendTransaction", {"namespace": ns, "data": tx()})

    def test_bundle_bigger_than_the_bucket_passes_when_it_is_full(self):
        time.sleep(2.1)  # acme's bucket (one token) full
        self.assertIn("result", self.bundle("alpha", "alpha"))
        doc = self.bundle("alpha", "alpha")  # now a token in debt
        self.assertRpcError(doc, RATE_LIMITED)
        self.assertEqual(doc["error"]["data"]["limit"], "tenant transactions/s")

    def test_bundle_refused_by_one_tenant_takes_no_tokens_from_another(self):
        time.sleep(2.1)  # both buckets full
        self.assertIn("result", self.single("bravo"))  # beta's only token
        doc = self.bundle("alpha", "bravo")  # acme admits, beta refuses
        self.assertRpcError(doc, RATE_LIMITED)
        # acme's token came back: its one transaction a second is still there
        self.assertIn("result", self.single("alpha"))

    def test_bundle_refused_busy_is_answered_and_takes_no_tokens(self):
        time.sleep(1.1)  # gamma's bucket (five tokens) full
        # 20 legs can never fit an ingress queue of 16: refused busy, answered
        doc = self.bundle(*["charlie"] * 20, timeout=5)
        self.assertRpcError(doc, -32006)
        self.assertIn("ingress queue is full", doc["error"]["message"])
        # and its 20 tokens were given back: gamma's five are all there
        docs = [self.single("charlie") for _ in range(5)]
        self.assertEqual([("result" in x) for x in docs], [True] * 5, docs)


class AddressLimitTest(DaemonCase):
    SETTINGS = {"limits.ip_tx_per_s": "4", "limits.ip_max_connections": "6"}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.ka = cls.d.setup_tenant("acme", "pub", 301)

    def test_anonymous_limited_per_address_keyed_not(self):
        time.sleep(1.1)
        docs = [self.d.call("mezz_sendTransaction", {"namespace": "pub", "data": tx()}) for _ in range(10)]
        limited = [x for x in docs if "error" in x]
        self.assertGreaterEqual(len(limited), 4)
        self.assertEqual(limited[0]["error"]["code"], RATE_LIMITED)
        self.assertEqual(limited[0]["error"]["data"]["limit"], "address transactions/s")
        # the tenant's own key (its RPC node) is not charged to the address
        for _ in range(10):
            self.assertIn("result", self.d.call("mezz_sendTransaction",
                                                {"namespace": "pub", "data": tx()}, key=self.ka))

    def test_connection_cap_per_address(self):
        socks = []
        try:
            for _ in range(6):
                sk = socket.create_connection(("127.0.0.1", self.d.port), timeout=5)
                # one answered request each (kept alive): the daemon has
                # certainly accepted and counted it, however busy the machine
                sk.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                self.assertTrue(sk.recv(100).startswith(b"HTTP/1.1 200"))
                socks.append(sk)
            extra = socket.create_connection(("127.0.0.1", self.d.port), timeout=5)
            extra.settimeout(5)
            try:
                extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                got = extra.recv(100)
            except (ConnectionResetError, BrokenPipeError):
                got = b""
            extra.close()
            self.assertEqual(got, b"", "a 7th connection was served")
            # closing one frees a place
            socks.pop().close()
            time.sleep(0.3)
            st, _, body = self.d.http(b"", "/healthz", method="GET")
            self.assertEqual(st, 200)
        finally:
            for s in socks:
                s.close()
        time.sleep(0.3)
        _, _, raw = self.d.http(b"", "/metrics", method="GET")
        self.assertRegex(raw.decode(), r"(?m)^mezz_connections_refused_total [1-9]")


class AddressTableTest(DaemonCase):
    """A full address table (limits.ip_table_entries, here its minimum, 64)
    puts each further address in one shared overflow entry: its connection
    cap is then shared by all of them, and mezz_limits_ip_overflow_total
    counts each such connection (OPERATIONS.md, "The address table")."""
    SETTINGS = {"limits.ip_table_entries": "64", "limits.ip_max_connections": "2"}
    N = 70

    def healthz(self, source):
        """An open connection from source with one answered request, or None
        if the daemon closed it."""
        sk = socket.create_connection(("127.0.0.1", self.d.port), timeout=5,
                                      source_address=(source, 0))
        try:
            sk.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            got = sk.recv(100)
        except (ConnectionResetError, BrokenPipeError):
            got = b""
        if got.startswith(b"HTTP/1.1 200"):
            return sk
        sk.close()
        return None

    def test_addresses_past_the_table_share_one_entry(self):
        socks = []
        try:
            for k in range(1, self.N + 1):
                socks.append(self.healthz("127.0.1.%d" % k))
            served = [s for s in socks if s is not None]
            # 64 entries, one perhaps held by 127.0.0.1 (this harness), then
            # two connections in the overflow entry; the rest refused there
            self.assertIn(len(served), (65, 66), [s is not None for s in socks])
            self.assertEqual(socks[self.N - 1], None, "the last address was served")
            self.assertTrue(all(socks[:63]), "an address with a free entry was refused")
        finally:
            for s in socks:
                if s is not None:
                    s.close()
        time.sleep(0.3)
        _, _, raw = self.d.http(b"", "/metrics", method="GET")
        m = re.search(r"(?m)^mezz_limits_ip_overflow_total (\d+)", raw.decode())
        self.assertIsNotNone(m)
        self.assertGreaterEqual(int(m.group(1)), self.N - 64)


def ws_handshake(port, path="/"):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (path, key)).encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            raise AssertionError("closed during handshake")
        buf += chunk
    assert buf.startswith(b"HTTP/1.1 101"), buf[:100]
    return s, buf.split(b"\r\n\r\n", 1)[1]


def read_frame(s, buf=b""):
    """(opcode, payload, rest) of one server frame, or None at EOF."""
    def need(n):
        nonlocal buf
        while len(buf) < n:
            c = s.recv(65536)
            if not c:
                return False
            buf += c
        return True
    if not need(2):
        return None
    op, ln = buf[0] & 0x0F, buf[1] & 0x7F
    off = 2
    if ln == 126:
        need(4)
        ln = struct.unpack(">H", buf[2:4])[0]
        off = 4
    elif ln == 127:
        need(10)
        ln = struct.unpack(">Q", buf[2:10])[0]
        off = 10
    need(off + ln)
    return op, buf[off:off + ln], buf[off + ln:]


class TimeoutTest(DaemonCase):
    SETTINGS = {"server.handshake_timeout_s": "1", "server.idle_timeout_s": "5",
                "server.ws_ping_s": "1"}

    def test_slow_handshake_is_closed(self):
        s = socket.create_connection(("127.0.0.1", self.d.port), timeout=10)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # never finishes the headers
        t0 = time.time()
        try:
            got = s.recv(100)
        except ConnectionResetError:
            got = b""
        took = time.time() - t0
        s.close()
        self.assertLess(took, 4, "slow handshake held for %.1f s" % took)
        self.assertNotIn(b"200", got)
        self.assertIn("height", self.d.status())

    def test_dripping_handshake_is_closed(self):
        # slowloris: a byte every 200 ms never lets the headers finish
        s = socket.create_connection(("127.0.0.1", self.d.port), timeout=10)
        head = b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" + b"X-Pad: " + b"a" * 200
        t0 = time.time()
        closed = False
        for b in head:
            try:
                s.sendall(bytes([b]))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            time.sleep(0.2)
            if time.time() - t0 > 8:
                break
        took = time.time() - t0
        s.close()
        self.assertTrue(closed, "dripping client still connected after %.1f s" % took)
        self.assertLess(took, 4)

    def test_websocket_ping_then_hangup_when_unanswered(self):
        s, rest = ws_handshake(self.d.port)
        s.settimeout(10)
        t0 = time.time()
        f = read_frame(s, rest)
        self.assertIsNotNone(f)
        self.assertEqual(f[0], 0x9, "expected a ping, got opcode %d" % f[0])
        self.assertLess(time.time() - t0, 3)
        # never answer: the server hangs up after idle_timeout_s
        while True:
            f = read_frame(s, f[2])
            if f is None or f[0] == 0x8:
                break
        took = time.time() - t0
        s.close()
        self.assertLess(took, 9, "unanswered pings tolerated for %.1f s" % took)
        self.assertGreater(took, 2)

    def test_answered_pings_keep_the_connection(self):
        async def go():
            async with ws_connect(self.d.ws_url()) as ws:  # answers pings itself
                await asyncio.sleep(6.5)
                return await ws_call(ws, "mezz_status")
        self.assertIn("result", run_async(go()))
