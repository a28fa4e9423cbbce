"""API keys: key-only ingress and feed, tenant isolation, revocation, malformed headers."""
import asyncio
import json
import os
import shutil
import socket
import sqlite3
import tempfile
import time
import unittest

import websockets

from harness import (DEV_PRIVATE_KEY, Daemon, DaemonCase, cast, fault_daemon, free_port, mktx,
                     run_async, ws_call, ws_connect)


def tx(data=None):
    return "0x" + (data or os.urandom(24)).hex()


class AuthTest(DaemonCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        d = cls.d
        # acme: private (key/key) and public namespaces; beta: private
        cls.ka = d.setup_tenant("acme", "priv", 1001, ingress="key", feed="key")
        d.setup_tenant("acme", "pub", 1002, key=False, create_tenant=False)
        d.setup_tenant("acme", "privin", 1003, ingress="key", feed="public", key=False,
                       create_tenant=False)
        cls.kb = d.setup_tenant("beta", "bpriv", 2001, ingress="key", feed="key")

    def setUp(self):
        self.before = self.d.status()["nextSeq"]

    def send(self, ns, key=None, headers=None, data=None):
        return self.d.call("mezz_sendTransaction", {"namespace": ns, "data": tx(data)},
                           key=key, headers=headers)

    def assertNothingStored(self):
        self.assertEqual(self.d.status()["nextSeq"], self.before)

    def test_private_ingress(self):
        self.assertRpcError(self.send("priv"), -32001)
        self.assertRpcError(self.send("priv", key=self.kb), -32002)
        self.assertRpcError(self.send("bpriv", key=self.ka), -32002)
        self.assertRpcError(self.send("priv", key="mz_" + "A" * 43), -32001)
        self.assertNothingStored()
        ok = self.send("priv", key=self.ka)
        self.assertEqual(ok["result"]["namespace"], "priv")
        ok = self.send("bpriv", key=self.kb)
        self.assertEqual(ok["result"]["namespace"], "bpriv")
        # the feed mode does not open ingress
        self.assertRpcError(self.send("privin"), -32001)
        self.assertIn("result", self.send("privin", key=self.ka))

    def test_private_ingress_ethereum_path(self):
        raw = mktx(nonce=1, chain=1001)
        doc = self.d.call("eth_sendRawTransaction", [raw], path="/rollup/priv")
        self.assertRpcError(doc, -32001)
        doc = self.d.call("eth_sendRawTransaction", [raw], path="/rollup/priv", key=self.kb)
        self.assertRpcError(doc, -32002)
        self.assertNothingStored()
        doc = self.d.call("eth_sendRawTransaction", [raw], path="/rollup/priv", key=self.ka)
        self.assertTrue(doc.get("result", "").startswith("0x"), doc)

    def test_public_namespace_keys(self):
        self.assertIn("result", self.send("pub"))
        self.assertIn("result", self.send("pub", key=self.ka))
        # an invalid key is refused, not treated as anonymous
        self.before = self.d.status()["nextSeq"]
        self.assertRpcError(self.send("pub", key="mz_not_a_key"), -32001)
        self.assertNothingStored()
        # another tenant's (valid) key on acme's public namespace: a key acts
        # only within its own tenant, so it is refused, and nothing is stored.
        self.assertRpcError(self.send("pub", key=self.kb), -32002)
        self.assertNothingStored()

    def test_private_feed_get_block_and_preconfirmation(self):
        r = self.send("priv", key=self.ka)["result"]
        h = self.d.wait_sealed_seq(r["seq"] + 1)
        height = None
        for hh in range(h, 0, -1):
            b = self.d.rpc("mezz_getBlock", {"height": hh}, key=self.ka)
            if any(t["hash"] == r["hash"] for ns in b["namespaces"] for t in ns["txs"]):
                height = hh
                break
        self.assertIsNotNone(height)
        # anonymous and the other tenant do not see priv's sub-block, but see the table
        for key in (None, self.kb):
            b = self.d.rpc("mezz_getBlock", {"height": height}, key=key)
            self.assertNotIn("priv", [ns["name"] for ns in b["namespaces"]])
            self.assertIn(1001, [e["chainId"] for e in b["nsTable"]])
        # asking for it explicitly does not leak it either
        for key, code in ((None, -32001), (self.kb, -32002)):
            doc = self.d.call("mezz_getBlock", {"height": height, "namespaces": ["priv"]}, key=key)
            if "error" in doc:
                self.assertEqual(doc["error"]["code"], code)
            else:
                self.assertEqual([n for n in doc["result"]["namespaces"] if n["name"] == "priv"], [])
        b = self.d.rpc("mezz_getBlock", {"height": height, "namespaces": ["priv"]}, key=self.ka)
        self.assertEqual([n["name"] for n in b["namespaces"]], ["priv"])
        # preconfirmations of a private namespace
        self.assertEqual(self.d.rpc("mezz_getPreconfirmation", {"hash": r["hash"]},
                                    key=self.ka)["seq"], r["seq"])
        doc = self.d.call("mezz_getPreconfirmation", {"hash": r["hash"], "namespace": "priv"})
        self.assertIn(doc["error"]["code"], (-32001, -32007), doc)
        doc = self.d.call("mezz_getPreconfirmation", {"hash": r["hash"], "namespace": "priv"},
                          key=self.kb)
        self.assertIn(doc["error"]["code"], (-32002, -32007), doc)

    def test_private_feed_subscribe(self):
        async def sub(key, ns):
            async with ws_connect(self.d.ws_url(), key=key) as ws:
                return await ws_call(ws, "mezz_subscribe", ["blocks", {"namespaces": [ns]}])
        self.assertRpcError(run_async(sub(None, "priv")), -32001)
        self.assertRpcError(run_async(sub(self.kb, "priv")), -32002)
        self.assertRpcError(run_async(sub(self.ka, "bpriv")), -32002)
        self.assertRegex(run_async(sub(self.ka, "priv"))["result"], "^0x[0-9a-f]+$")
        self.assertRegex(run_async(sub(None, "privin"))["result"], "^0x[0-9a-f]+$")

    def test_unfiltered_subscription_hides_private(self):
        r = self.send("priv", key=self.ka)["result"]
        p = self.send("pub")["result"]
        start = self.d.status()["height"]

        async def collect(key):
            seen = set()
            async with ws_connect(self.d.ws_url(), key=key) as ws:
                s = await ws_call(ws, "mezz_subscribe", ["blocks", {"fromHeight": max(1, start - 3), "levels": ["sealed"]}])
                self.assertRegex(s.get("result"), "^0x[0-9a-f]+$", s)
                while True:
                    b = json.loads(await ws.recv())["params"]["result"]
                    if b.get("level") != "sealed":
                        continue  # available/posted/finalized events carry no txs
                    for ns in b["namespaces"]:
                        for t in ns["txs"]:
                            seen.add((ns["name"], t["hash"]))
                    hdr = b["header"]
                    if hdr["firstSeq"] + hdr["txCount"] > max(r["seq"], p["seq"]):
                        return seen
        anon = run_async(collect(None))
        self.assertIn(("pub", p["hash"]), anon)
        self.assertNotIn(("priv", r["hash"]), anon)
        self.assertFalse([x for x in anon if x[0] in ("priv", "bpriv")])
        owner = run_async(collect(self.ka))
        self.assertIn(("priv", r["hash"]), owner)
        self.assertIn(("pub", p["hash"]), owner)

    def test_revoked_key_http_and_open_websocket(self):
        k = self.d.create_key("acme")
        kid = self.d.key_id(k)
        self.assertIn("result", self.send("priv", key=k))

        async def scenario():
            async with ws_connect(self.d.ws_url(), key=k) as ws:
                ok = await ws_call(ws, "mezz_sendTransaction", {"namespace": "priv", "data": tx()})
                self.assertIn("result", ok)
                sub = await ws_call(ws, "mezz_subscribe", ["blocks", {"namespaces": ["priv"], "levels": ["sealed"]}], id=2)
                self.assertRegex(sub.get("result"), "^0x[0-9a-f]+$")
                p = await asyncio.get_running_loop().run_in_executor(
                    None, lambda: self.d.mezz("key", "revoke", kid))
                before = self.d.status()["nextSeq"]
                # the very next HTTP request fails
                self.assertRpcError(self.send("priv", key=k), -32001)
                # and the very next message on the already-open socket: refused with
                # -32001, or the daemon has already closed it (1008, key revoked)
                try:
                    doc = await ws_call(ws, "mezz_sendTransaction",
                                        {"namespace": "priv", "data": tx()}, id=3)
                    self.assertRpcError(doc, -32001)
                    doc = await ws_call(ws, "mezz_getBlock",
                                        {"height": 1, "namespaces": ["priv"]}, id=4)
                    if "result" in doc:
                        self.assertEqual([n for n in doc["result"]["namespaces"]
                                          if n["name"] == "priv"], [])
                    else:
                        self.assertEqual(doc["error"]["code"], -32001)
                    self.assertEqual(self.d.status()["nextSeq"], before)
                    # a live subscription must not deliver priv's new data
                    self.send("priv", key=self.ka)
                    loop = asyncio.get_running_loop()
                    end = loop.time() + 1.5
                    while loop.time() < end:
                        try:
                            m = json.loads(await asyncio.wait_for(ws.recv(), 0.5))
                        except asyncio.TimeoutError:
                            continue
                        if m.get("method") == "mezz_subscription":
                            b = m["params"]["result"]
                            self.assertEqual([n for n in b["namespaces"] if n["name"] == "priv"],
                                             [], "revoked key still fed priv, block %d" % b["height"])
                except websockets.ConnectionClosed as e:
                    self.assertIsNotNone(e.rcvd)
                    self.assertEqual(e.rcvd.code, 1008)
                    self.assertIn("revoked", e.rcvd.reason)
        run_async(scenario(), 30)
        self.before = self.d.status()["nextSeq"]
        rows = self.d.mezz("key", "list").stdout
        self.assertIn("revoked", [l.split("\t")[4] for l in rows.splitlines() if l.split("\t")[0] == kid])
        # other keys of the tenant still work
        self.assertIn("result", self.send("priv", key=self.ka))

    def test_revoke_is_whole_or_not_at_all(self):
        """A revocation whose version bump fails (injected: a trigger on
        meta aborts it) revokes nothing, so the retry revokes the key and an
        already-open socket holding it is refused from then on. Before, the
        key stayed revoked in the table but accepted on open sockets, and the
        retry answered that there was no active key to revoke."""
        k = self.d.create_key("acme")
        kid = self.d.key_id(k)
        db_path = os.path.join(self.d.data_dir, "mezzanine.db")

        def sql(stmt):
            db = sqlite3.connect(db_path, timeout=10)
            try:
                with db:
                    db.execute(stmt)
            finally:
                db.close()

        async def scenario():
            loop = asyncio.get_running_loop()
            async with ws_connect(self.d.ws_url(), key=k) as ws:
                ok = await ws_call(ws, "mezz_sendTransaction", {"namespace": "priv", "data": tx()})
                self.assertIn("result", ok)
                sql("CREATE TRIGGER fail_bump BEFORE UPDATE ON meta WHEN NEW.k = 'auth_version'"
                    " BEGIN SELECT RAISE(ABORT, 'injected'); END")
                try:
                    p = await loop.run_in_executor(
                        None, lambda: self.d.mezz("key", "revoke", kid, check=False))
                finally:
                    sql("DROP TRIGGER fail_bump")
                self.assertNotEqual(p.returncode, 0, p.stdout)
                rows = self.d.mezz("key", "list").stdout.splitlines()
                self.assertIn("active", [r.split("\t")[4] for r in rows if r.split("\t")[0] == kid])
                ok = await ws_call(ws, "mezz_sendTransaction",
                                   {"namespace": "priv", "data": tx()}, id=2)
                self.assertIn("result", ok, "a key still active was refused")
                await loop.run_in_executor(None, lambda: self.d.mezz("key", "revoke", kid))
                try:
                    doc = await ws_call(ws, "mezz_sendTransaction",
                                        {"namespace": "priv", "data": tx()}, id=3)
                    self.assertRpcError(doc, -32001)
                except websockets.ConnectionClosed as e:
                    self.assertEqual(e.rcvd.code, 1008)
        run_async(scenario(), 30)
        self.before = self.d.status()["nextSeq"]

    def test_revoked_key_subscription_dropped_without_another_message(self):
        """The feed checks a subscriber's key per block: after a revocation, with
        no request reaching the daemon at all, the next sealed block closes the
        subscription (1008) instead of being sent to it."""
        k = self.d.create_key("acme")
        kid = self.d.key_id(k)

        async def scenario():
            async with ws_connect(self.d.ws_url(), key=k) as ws:
                sub = await ws_call(ws, "mezz_subscribe",
                                    ["blocks", {"namespaces": ["priv"], "levels": ["sealed"]}], id=1)
                self.assertRegex(sub.get("result"), "^0x[0-9a-f]+$")
                loop = asyncio.get_running_loop()
                while True:  # a block arrives: the subscription is live
                    m = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    if m.get("method") == "mezz_subscription":
                        break
                await loop.run_in_executor(None, lambda: self.d.mezz("key", "revoke", kid))
                after = 0  # blocks received after the revocation (one may be in flight)
                try:
                    end = loop.time() + 5
                    while loop.time() < end:
                        try:
                            m = json.loads(await asyncio.wait_for(ws.recv(), end - loop.time()))
                        except asyncio.TimeoutError:
                            break
                        if m.get("method") == "mezz_subscription":
                            after += 1
                    self.fail("still subscribed 5 s after the revocation, %d blocks sent" % after)
                except websockets.ConnectionClosed as e:
                    self.assertIsNotNone(e.rcvd)
                    self.assertEqual(e.rcvd.code, 1008)
                    self.assertIn("revoked", e.rcvd.reason)
                self.assertLessEqual(after, 1)
        run_async(scenario(), 30)

    def test_malformed_authorization_headers(self):
        cases = ["Bearer", "Bearer ", "Basic x", "Basic " + self.ka, "bearer", "Bearer " + "A" * 500,
                 "Bearer " + "mz_" + "x" * 497, "garbage", "Bearer \x01\x02", "Bearer %s extra" % self.ka,
                 "Token " + self.ka]
        for h in cases:
            for ns in ("priv", "pub"):
                doc = self.send(ns, headers={"Authorization": h})
                self.assertRpcError(doc, -32001, "header %r ns %s" % (h[:30], ns))
        self.assertNothingStored()
        # on the WebSocket handshake: either refused or every call refused
        for h in ("Bearer", "Basic x", "Bearer " + "A" * 500, "garbage"):
            async def go():
                try:
                    async with ws_connect(self.d.ws_url(), headers={"Authorization": h}) as ws:
                        return await ws_call(ws, "mezz_sendTransaction",
                                             {"namespace": "pub", "data": tx()})
                except websockets.InvalidStatusCode as e:
                    return {"http": e.status_code}
            doc = run_async(go())
            if "http" in doc:
                self.assertIn(doc["http"], (400, 401, 403))
            else:
                self.assertRpcError(doc, -32001, "ws header %r" % h[:30])
        self.assertNothingStored()


class KeyStorageTest(DaemonCase):
    """Keys are shown once and stored only as keyed hashes."""

    def test_key_plaintext_never_stored(self):
        key = self.d.setup_tenant("gamma", "g", 3001, ingress="key", feed="key")
        self.assertIn("result", self.d.call("mezz_sendTransaction",
                                            {"namespace": "g", "data": "0x0102"}, key=key))
        secret = key[3:].encode()  # the random part, whatever encoding a store might use
        for name in os.listdir(self.d.data_dir):
            path = os.path.join(self.d.data_dir, name)
            if os.path.isfile(path):
                with open(path, "rb") as f:
                    self.assertNotIn(secret, f.read(), "key found in plaintext in " + name)
        listing = self.d.mezz("key", "list").stdout
        self.assertNotIn(key, listing)
        self.assertIn(key[:10] + "...", listing)  # only a prefix, to tell keys apart


class AuthCounterFallbackTest(DaemonCase):
    """The CLI signals auth changes through data_dir/auth.seq; a change the
    daemon was not signalled about (the file gone from under it, so the CLI
    finds none) still takes effect within the daemon's once-a-second read.
    (A namespace, not a key: every HTTP request looks its key up afresh, so
    only the namespace registry depends on the auth version there.)"""

    def test_unsignalled_change_takes_effect_within_a_second(self):
        self.d.setup_tenant("acme", "first", 1001, key=False)
        ok = self.d.call("mezz_sendTransaction", {"namespace": "first", "data": tx()})
        self.assertIn("result", ok)
        os.unlink(os.path.join(self.d.data_dir, "auth.seq"))  # the daemon keeps its mapping
        self.d.setup_tenant("acme", "later", 1002, key=False, create_tenant=False)
        time.sleep(1.2)
        doc = self.d.call("mezz_sendTransaction", {"namespace": "later", "data": tx()})
        self.assertIn("result", doc, "a namespace made 1.2 s ago is still unknown")


class AuthHeaderReplayTest(DaemonCase):
    """A bearer key is a password: whoever presents it is its tenant, so
    "replay" protection is TLS (nobody sees it) plus revocation (a leaked key
    stops working on the next request). What the daemon must refuse is any
    header that is not exactly one well-formed, live key."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.ka = cls.d.setup_tenant("acme", "priv", 1001, ingress="key", feed="key")
        cls.kb = cls.d.setup_tenant("beta", "bpriv", 2001, ingress="key", feed="key")

    def send(self, key=None, headers=None, ns="priv"):
        return self.d.call("mezz_sendTransaction", {"namespace": ns, "data": tx()},
                           key=key, headers=headers)

    def raw_request(self, header_lines):
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "mezz_sendTransaction",
                           "params": {"namespace": "priv", "data": tx()}}).encode()
        s = socket.create_connection(("127.0.0.1", self.d.port), timeout=10)
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
                  b"".join(h + b"\r\n" for h in header_lines) +
                  b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
        data = b""
        while True:
            c = s.recv(65536)
            if not c:
                break
            data += c
        s.close()
        return data

    def test_two_authorization_headers_refused(self):
        before = self.d.status()["nextSeq"]
        for pair in ((self.ka, self.kb), (self.ka, self.ka), (self.ka, "junk")):
            out = self.raw_request([b"Authorization: Bearer " + pair[0].encode(),
                                    b"Authorization: Bearer " + pair[1].encode()])
            self.assertNotIn(b'"result"', out, pair)
        self.assertEqual(self.d.status()["nextSeq"], before)

    def test_replayed_header_after_revocation_fails_at_once(self):
        k = self.d.create_key("acme")
        header = {"Authorization": "Bearer " + k}
        self.assertIn("result", self.send(headers=header))
        self.assertIn("result", self.send(headers=header))  # the same header again: same tenant
        self.d.mezz("key", "revoke", self.d.key_id(k))
        for _ in range(3):
            self.assertRpcError(self.send(headers=header), -32001)
        # another key of the tenant is unaffected
        self.assertIn("result", self.send(key=self.ka))

    def test_key_of_another_tenant_never_reaches_private_data(self):
        r = self.send(key=self.ka)["result"]
        self.assertRpcError(self.send(key=self.kb), -32002)
        doc = self.d.call("mezz_getPreconfirmation", {"hash": r["hash"]}, key=self.kb)
        self.assertIn(doc["error"]["code"], (-32002, -32007))
        h = self.d.wait_sealed_seq(r["seq"] + 1)
        for hh in range(1, h + 1):
            b = self.d.rpc("mezz_getBlock", {"height": hh}, key=self.kb)
            self.assertNotIn("priv", [n["name"] for n in b["namespaces"]])

    def test_near_miss_keys_refused(self):
        before = self.d.status()["nextSeq"]
        for bad in (self.ka[:-1], self.ka + "A", self.ka.upper(), " " + self.ka,
                    self.ka.replace("mz_", "MZ_"), self.ka + "\t"):
            self.assertRpcError(self.send(headers={"Authorization": "Bearer " + bad}), -32001, repr(bad))
        self.assertEqual(self.d.status()["nextSeq"], before)


class StateRootAuthTest(DaemonCase):
    """mezz_postStateRoot takes only the key of the namespace's own tenant.
    The method answers -32011 unless L1 is configured, so it is (a keystore
    made by cast), but nothing listens at its URL: the key check comes before
    anything reaches L1, and a post that passes it is queued locally."""

    @classmethod
    def setUpClass(cls):
        tmp = tempfile.mkdtemp(prefix="mezz-sr-auth-")
        cls.addClassCleanup(shutil.rmtree, tmp, True)
        ks = os.path.join(tmp, "ks")
        cast("wallet", "import", "poster", "--private-key", DEV_PRIVATE_KEY,
             "--unsafe-password", "pw", "--keystore-dir", ks)
        with open(os.path.join(tmp, "ks.pw"), "w") as f:
            f.write("pw\n")
        cls.SETTINGS = {"l1.rpc_urls": "http://127.0.0.1:%d" % free_port(),
                        "l1.chain_id": "31337", "l1.inbox": "0x" + "11" * 20,
                        "l1.keystore": os.path.join(ks, "poster"),
                        "l1.keystore_password_file": os.path.join(tmp, "ks.pw"),
                        "l1.timeout_ms": "1000"}
        super().setUpClass()
        cls.ka = cls.d.setup_tenant("acme", "arollup", 901)
        cls.kb = cls.d.setup_tenant("beta", "brollup", 902)

    def post(self, ns, l2, key):
        return self.d.call("mezz_postStateRoot",
                           {"namespace": ns, "l2Block": l2, "stateRoot": "0x" + "ab" * 32,
                            "proofKind": 1, "proofLocator": "0x" + b"da://x".hex()}, key=key)

    def test_other_tenants_key_forbidden(self):
        doc = self.post("arollup", 5, self.kb)
        self.assertRpcError(doc, -32002)
        self.assertIn("does not own namespace 'arollup'", doc["error"]["message"])
        # nothing was queued for arollup: l2Block 5 is unknown, and still free
        self.assertRpcError(self.d.call("mezz_getStateRoot",
                                        {"namespace": "arollup", "l2Block": 5}), -32007)
        # beta's key is valid (it posts for its own rollup), acme's posts for arollup
        self.assertEqual(self.d.rpc("mezz_postStateRoot", {
            "namespace": "brollup", "l2Block": 1, "stateRoot": "0x" + "cd" * 32},
            key=self.kb)["status"], "queued")
        ok = self.post("arollup", 5, self.ka)
        self.assertEqual(ok.get("result"), {"namespace": "arollup", "l2Block": 5,
                                            "status": "queued"}, ok)
        # the other way round too, and by chain id instead of name
        doc = self.d.call("mezz_postStateRoot", {"namespace": 902, "l2Block": 2,
                                                 "stateRoot": "0x" + "cd" * 32}, key=self.ka)
        self.assertRpcError(doc, -32002)


class AuthReadFaultTest(unittest.TestCase):
    """While the daemon cannot re-read the auth version (fault build: the
    read fails while a file exists), no key is trusted on its cached
    answer: a keyed subscription is closed at the next block, as for a
    revoked key. Before, the feed ignored the failed re-read and went on
    feeding a key revoked meanwhile."""

    def test_feed_stops_trusting_keys_when_auth_cannot_be_read(self):
        d, fault = fault_daemon(self, "MEZZ_FAULT_AUTH_READ_FILE", "auth-read")
        d.start()
        d.setup_tenant("acme", "priv", 1001, ingress="key", feed="key", key=False)
        k = d.create_key("acme")
        kid = d.key_id(k)

        async def scenario():
            async with ws_connect(d.ws_url(), key=k) as ws:
                sub = await ws_call(ws, "mezz_subscribe",
                                    ["blocks", {"namespaces": ["priv"], "levels": ["sealed"]}])
                self.assertRegex(sub.get("result", ""), "^0x")
                while json.loads(await asyncio.wait_for(ws.recv(), 10)).get("method") is None:
                    pass  # live
                open(fault, "w").close()
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(None, lambda: d.mezz("key", "revoke", kid))
                end = loop.time() + 5
                try:
                    while loop.time() < end:
                        try:
                            await asyncio.wait_for(ws.recv(), end - loop.time())
                        except asyncio.TimeoutError:
                            break
                    self.fail("a key was trusted for 5 s while auth could not be read")
                except websockets.ConnectionClosed as e:
                    self.assertEqual(e.rcvd.code, 1008)
        run_async(scenario(), 30)
        os.unlink(fault)
        self.assertTrue(d.alive())

