"""Every bad input gets its documented error; the process keeps serving; nothing is stored."""
import json
import os
import re
import socket
import time
import unittest

import websockets

from harness import DaemonCase, mktx, run_async, ws_call, ws_connect
import rlp

MAX_TX = 2048
MAX_MSG = 65536
MAX_BATCH = 50
TXS = (b'{"jsonrpc":"2.0","id":1,"method":"mezz_sendTransactions",'
       b'"params":{"namespace":"demo","txs":["0xab","0xcd"]}}')


def req(method, params=None, id=1):
    r = {"jsonrpc": "2.0", "id": id, "method": method}
    if params is not None:
        r["params"] = params
    return r


class BadInputTest(DaemonCase):
    SETTINGS = {"server.max_tx_bytes": str(MAX_TX),
                "server.max_message_bytes": str(MAX_MSG),
                "server.max_batch_items": str(MAX_BATCH)}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.d.setup_tenant("acme", "demo", 31337, key=False)
        cls.good_raw = mktx(nonce=3)

    def setUp(self):
        self.before = self.d.status()["nextSeq"]

    def tearDown(self):
        # the process still serves and nothing was stored
        self.assertTrue(self.d.alive(), "daemon died:\n" + self.d.log())
        st = self.d.status()
        self.assertEqual(st["nextSeq"], self.before, "a bad input was stored")
        self.assertIs(st["halted"], False)

    def post(self, body, path="/", status=200):
        if not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        st, doc = self.d.raw_post(body, path)
        self.assertEqual(st, status, doc)
        return doc

    def expect(self, body, code, path="/", status=200, contains=None):
        doc = self.post(body, path, status)
        self.assertRpcError(doc, code, "body %r" % (body if len(str(body)) < 200 else "...",))
        if contains:
            self.assertIn(contains.lower(), doc["error"]["message"].lower())
        return doc

    # -- JSON-RPC envelope ------------------------------------------------
    def test_parse_errors(self):
        for body in (b'{"jsonrpc":"2.0","id":1,"method":', b"{", b"nul", b"\xff\xfe",
                     b'{"jsonrpc":"2.0","id":1,"method":"mezz_status"} x',
                     # a whole mezz_sendTransactions, then more: the fast
                     # scanner's shape of it once sized the answers wrongly
                     TXS + b' x', TXS + b',{"jsonrpc":"2.0","id":2,"method":"mezz_status"}',
                     b"[" * 10000):
            doc = self.expect(body, -32700)
            self.assertIsNone(doc.get("id"))
        for path in ("/", "/rollup/demo"):
            self.expect(b"{bad json", -32700, path=path)

    def test_pipelined_http_is_closed_and_stalls_no_one(self):
        """Bytes after a request's body, before its answer (a pipelined
        request, a stray CRLF): the connection is closed, counted, and the
        network thread goes on serving. lws re-offered such bytes as another
        body on every turn of its loop: the answer became a parse error and
        the thread spun at 100%, stalling every client."""
        body = json.dumps(req("mezz_status")).encode()
        one = (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n" % len(body)) + body
        pid = self.d.proc.pid

        def cpu_ticks():
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return int(fields[11]) + int(fields[12])
        for extra in (one, b"\r\n"):
            sk = socket.create_connection(("127.0.0.1", self.d.port), timeout=5)
            sk.sendall(one + extra)
            got = b""
            try:
                while True:
                    chunk = sk.recv(65536)
                    if not chunk:
                        break
                    got += chunk
            except (socket.timeout, ConnectionResetError):
                self.fail("the pipelining connection was neither answered nor closed")
            sk.close()
            self.assertNotIn(b"-32700", got, extra)
            t0 = cpu_ticks()
            time.sleep(1.0)
            self.assertLess(cpu_ticks() - t0, 0.3 * os.sysconf("SC_CLK_TCK"),
                            "the daemon keeps spinning after %r" % extra[:8])
            self.assertIn("result", self.d.call("mezz_status"))
        _, _, raw = self.d.http(b"", "/metrics", method="GET")
        m = re.search(r"(?m)^mezz_http_pipelined_closed_total (\d+)", raw.decode())
        self.assertGreaterEqual(int(m.group(1)), 2)

    def test_invalid_requests(self):
        cases = [{"jsonrpc": "1.0", "id": 1, "method": "mezz_status"},
                 {"id": 1, "method": "mezz_status"},
                 {"jsonrpc": 2.0, "id": 1, "method": "mezz_status"},
                 {"jsonrpc": "2.0", "id": 1, "method": 5},
                 {"jsonrpc": "2.0", "id": 1},
                 {"jsonrpc": "2.0", "id": {}, "method": "mezz_status"},
                 {"jsonrpc": "2.0", "id": [1], "method": "mezz_status"},
                 {"jsonrpc": "2.0", "id": True, "method": "mezz_status"},
                 []]
        for c in cases:
            self.expect(c, -32600)

    def test_invalid_request_bare_json_scalar(self):
        """A bare JSON scalar is valid JSON but not a request: -32600, not -32700."""
        for c in (b"42", b'"x"', b"null", b"true"):
            self.expect(c, -32600)

    def test_invalid_entries_inside_batch(self):
        doc = self.post([req("mezz_status", id=1), 5, {"jsonrpc": "2.0", "id": 3, "method": 7},
                         req("nope", id=4)])
        self.assertIsInstance(doc, list)
        self.assertEqual(len(doc), 4)
        codes = sorted(x["error"]["code"] for x in doc if "error" in x)
        self.assertEqual(codes, [-32601, -32600, -32600])
        self.assertEqual(sum(1 for x in doc if "result" in x), 1)

    def test_unknown_methods(self):
        for m in ("mezz_nope", "eth_sendRawTransaction", "", "MEZZ_STATUS"):
            self.expect(req(m), -32601)
        for m in ("eth_getBalance", "mezz_status", "eth_blockNumber"):
            self.expect(req(m, []), -32601, path="/rollup/demo")

    def test_invalid_params(self):
        bad = [req("mezz_sendTransaction", "x"),
               req("mezz_sendTransaction", 5),
               req("mezz_sendTransaction", {"namespace": "demo"}),
               req("mezz_sendTransaction", {"namespace": "demo", "data": 1}),
               req("mezz_sendTransaction", {"namespace": "demo", "data": "0xzz"}),
               req("mezz_sendTransaction", {"namespace": "demo", "data": "0x123"}),
               req("mezz_sendTransaction", {"namespace": "demo", "data": "abcd"}),
               req("mezz_getPreconfirmation", {"hash": "0x1234"}),
               req("mezz_getPreconfirmation", {"hash": 7}),
               req("mezz_getPreconfirmation", {}),
               req("mezz_getBlock", {"height": "one"}),
               req("mezz_getBlock", {"height": -1}),
               req("mezz_getBlock", {"height": 1, "namespaces": "demo"}),
               req("mezz_getBlock", {}),
               ]
        wrong = []
        for r in bad:
            doc = self.post(r)
            if doc.get("error", {}).get("code") != -32602:
                wrong.append((r, doc))
        self.assertEqual(wrong, [])
        # no namespace at all: either code is reasonable
        for p in ({"data": "0x01"}, {"namespace": 5, "data": "0x01"}, {}):
            doc = self.post(req("mezz_sendTransaction", p))
            self.assertIn(doc["error"]["code"], (-32602, -32003))
        raw_bad = [[], ["0x"], [5], ["zz"], [self.good_raw, "extra"], "x"]
        for p in raw_bad:
            doc = self.post(req("eth_sendRawTransaction", p), path="/rollup/demo")
            self.assertIn(doc["error"]["code"], (-32602, -32008), p)

    def test_subscribe_over_http_rejected(self):
        doc = self.post(req("mezz_subscribe", ["blocks", {}]))
        self.assertIn("error", doc)

    def test_unknown_namespace(self):
        self.expect(req("mezz_sendTransaction", {"namespace": "nope", "data": "0x01"}), -32003)
        self.expect(req("eth_sendRawTransaction", [self.good_raw]), -32003, path="/rollup/nope")
        self.expect(req("eth_chainId", []), -32003, path="/rollup/nope")

    # -- sizes ------------------------------------------------------------
    def test_oversize_tx(self):
        doc = self.expect(req("mezz_sendTransaction",
                              {"namespace": "demo", "data": "0x" + "ab" * (MAX_TX + 1)}), -32004)
        # exactly the limit is accepted (and stored: adjust the expectation)
        r = self.d.send("demo", os.urandom(MAX_TX))
        self.assertEqual(r["seq"], self.before)
        self.before += 1

    def test_oversize_batch(self):
        items = [req("mezz_status", id=i) for i in range(MAX_BATCH + 1)]
        self.expect(items, -32004)
        items = [req("mezz_sendTransaction", {"namespace": "demo", "data": "0x" + os.urandom(8).hex()},
                     id=i) for i in range(MAX_BATCH + 1)]
        self.expect(items, -32004)
        ok = self.post([req("mezz_status", id=i) for i in range(MAX_BATCH)])
        self.assertEqual(len(ok), MAX_BATCH)

    def test_oversize_http_body_413(self):
        body = json.dumps(req("mezz_sendTransaction",
                              {"namespace": "demo", "data": "0x" + "00" * MAX_MSG}))
        self.assertGreater(len(body), MAX_MSG)
        doc = self.expect(body, -32004, status=413)
        doc = self.expect(b" " * (MAX_MSG + 1), -32004, status=413)

    def test_oversize_ws_message_closes_1009(self):
        async def go():
            async with ws_connect(self.d.ws_url()) as ws:
                st = await ws_call(ws, "mezz_status")
                self.assertIn("result", st)
                await ws.send(json.dumps(req("mezz_sendTransaction",
                                             {"namespace": "demo", "data": "0x" + "00" * MAX_MSG})))
                try:
                    msg = await ws.recv()
                    self.fail("expected close, got %r" % msg[:200])
                except websockets.ConnectionClosed as e:
                    return e.rcvd.code if e.rcvd else None
        self.assertEqual(run_async(go(), 20), 1009)
        # a fresh connection works
        async def again():
            async with ws_connect(self.d.ws_url()) as ws:
                return await ws_call(ws, "mezz_status")
        self.assertIn("nextSeq", run_async(again())["result"])

    def test_ws_connection_survives_bad_messages(self):
        async def go():
            async with ws_connect(self.d.ws_url()) as ws:
                await ws.send("{nope")
                a = json.loads(await ws.recv())
                await ws.send("[]")
                b = json.loads(await ws.recv())
                await ws.send(json.dumps(req("zzz")))
                c = json.loads(await ws.recv())
                d = await ws_call(ws, "mezz_status")
                return a, b, c, d
        a, b, c, d = run_async(go())
        self.assertEqual(a["error"]["code"], -32700)
        self.assertEqual(b["error"]["code"], -32600)
        self.assertEqual(c["error"]["code"], -32601)
        self.assertIn("nextSeq", d["result"])

    # -- Ethereum transactions -------------------------------------------
    def send_raw(self, raw):
        return self.post(req("eth_sendRawTransaction", [raw]), path="/rollup/demo")

    def expect_invalid_tx(self, raw, contains=None):
        doc = self.send_raw(raw)
        self.assertRpcError(doc, -32008, raw[:40])
        if contains:
            self.assertIn(contains, doc["error"]["message"].lower())
        return doc

    def test_invalid_rlp(self):
        for raw in ("0x02", "0x02f8", "0x02c0", "0xf8", "0x" + "ff" * 40,
                    "0x02f86b" + "00" * 10, self.good_raw[:-10]):
            self.expect_invalid_tx(raw)

    def test_trailing_bytes(self):
        self.expect_invalid_tx(self.good_raw + "00")
        self.expect_invalid_tx(self.good_raw + "c0")

    def test_wrong_chain_id(self):
        raw = mktx(nonce=1, chain=1)
        self.expect_invalid_tx(raw, contains="chain")

    def test_bad_signature_r_not_on_curve(self):
        t, f = rlp.typed_fields(self.good_raw)
        self.assertEqual(t, 2)
        self.assertEqual(len(f), 12)
        r = int.from_bytes(f[10], "big")
        tried = 0
        for pos in range(32):
            for bit in (1, 2, 4, 8, 16, 32, 64, 128):
                nr = r ^ (bit << (8 * pos))
                if rlp.on_curve_x(nr) or nr >= rlp.SECP_N or nr == 0:
                    continue
                g = list(f)
                g[10] = rlp.int_bytes(nr)
                self.expect_invalid_tx(rlp.typed_raw(t, g))
                tried += 1
                if tried == 3:
                    return
        self.fail("could not craft an off-curve r")

    def test_bad_signature_zero_and_overflow(self):
        t, f = rlp.typed_fields(self.good_raw)
        for r, s in ((0, None), (None, 0), (rlp.SECP_N, None), (None, rlp.SECP_N),
                     (2 ** 256 - 1, None)):
            g = list(f)
            if r is not None:
                g[10] = rlp.int_bytes(r)
            if s is not None:
                g[11] = rlp.int_bytes(s)
            self.expect_invalid_tx(rlp.typed_raw(t, g))
        g = list(f)
        g[9] = b"\x02"  # y parity must be 0 or 1
        self.expect_invalid_tx(rlp.typed_raw(t, g))

    def test_high_s(self):
        t, f = rlp.typed_fields(self.good_raw)
        s = int.from_bytes(f[11], "big")
        self.assertLessEqual(s, rlp.SECP_N // 2)
        g = list(f)
        g[11] = rlp.int_bytes(rlp.SECP_N - s)
        g[9] = b"" if f[9] == b"\x01" else b"\x01"  # flip y parity: same signer
        self.expect_invalid_tx(rlp.typed_raw(t, g))

    def test_non_canonical_rlp(self):
        t, f = rlp.typed_fields(self.good_raw)
        # nonce 3 encoded as a one-byte string (0x8103) instead of 0x03
        body = rlp.encode(f)
        enc_nonce = rlp.encode(f[1])
        self.assertEqual(enc_nonce, b"\x03")
        inner = b"".join(rlp.encode(x) if i != 1 else b"\x81\x03" for i, x in enumerate(f))
        raw = "0x02" + (rlp._len(len(inner), 0xC0) + inner).hex()
        self.assertNotEqual(raw, self.good_raw)
        self.expect_invalid_tx(raw)


class OversizeResponseTest(DaemonCase):
    """An answer too big for the connection's send queue becomes an error
    (-32004) on a connection that stays open, not a dropped connection."""
    SETTINGS = {"server.ws_send_queue_bytes": "65536", "server.max_batch_items": "1000"}

    def test_batch_answer_over_send_queue_is_an_error(self):
        async def go():
            async with ws_connect(self.d.ws_url()) as ws:
                # ~400 bytes per status answer: 300 of them exceed 64 KiB
                await ws.send(json.dumps([req("mezz_status", id=i) for i in range(300)]))
                doc = json.loads(await ws.recv())
                self.assertEqual(len(doc), 300)
                for item in doc:
                    self.assertEqual(item["error"]["code"], -32004, item)
                    self.assertIn("ws_send_queue_bytes", item["error"]["message"])
                # the same connection still answers
                small = await ws_call(ws, "mezz_status", id=7)
                self.assertIn("nextSeq", small["result"])
        run_async(go())

    def test_batch_receipt_over_send_queue_is_an_error_and_nothing_lost(self):
        self.d.setup_tenant("big", "big", 777, key=False)
        txs = ["0x" + os.urandom(16).hex() for _ in range(1000)]  # ~110 KB of entries

        async def go():
            async with ws_connect(self.d.ws_url()) as ws:
                doc = await ws_call(ws, "mezz_sendTransactions",
                                    {"namespace": "big", "txs": txs}, id=9)
                self.assertEqual(doc["error"]["code"], -32004, doc)
                self.assertIn("mezz_getPreconfirmation", doc["error"]["message"])
                small = await ws_call(ws, "mezz_status", id=7)
                self.assertIn("nextSeq", small["result"])
        run_async(go())
        # the transactions were sequenced: resubmitting one by one finds each
        for x in txs[:3] + txs[-3:]:
            r = self.d.rpc("mezz_sendTransaction", {"namespace": "big", "data": x})
            again = self.d.rpc("mezz_getPreconfirmation", {"hash": r["hash"]})
            self.assertEqual(again["seq"], r["seq"])
        self.assertEqual(self.d.status()["transactions"], 1000)
