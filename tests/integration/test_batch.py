"""Batch submission (mezz_sendTransactions): many transactions in one
request, one batch receipt. Every transaction is sequenced as
mezz_sendTransaction would sequence it; the answer carries each group's
signed fields once and one multiproof for all of the request's transactions
in that group. Checked three ways: `mezz verify batch`, an independent
verifier written here from docs/PROTOCOL.md, and the sealed blocks."""
import copy
import hashlib
import json
import os
import unittest

from harness import DaemonCase, keccak_hex, run_async, ws_connect


def sha(b):
    return hashlib.sha256(b).digest()


def tx_leaf(seq, chain, h):
    return sha(b"\x00" + seq.to_bytes(8, "big") + chain.to_bytes(8, "big") + h)


def node(l, r):
    return sha(b"\x01" + l + r)


def multiverify(leaves, idx, n, proof, root):
    """docs/PROTOCOL.md "Batch receipts", level by level."""
    known = list(zip(idx, leaves))
    p = 0
    m = n
    while m > 1:
        nxt = []
        j = 0
        while j < len(known):
            x, h = known[j]
            if x % 2:
                h = node(proof[p], h)
                p += 1
            elif j + 1 < len(known) and known[j + 1][0] == x + 1:
                h = node(h, known[j + 1][1])
                j += 1
            elif x + 1 < m:
                h = node(h, proof[p])
                p += 1
            nxt.append((x // 2, h))
            j += 1
        known = nxt
        m = (m + 1) // 2
    return len(known) == 1 and p == len(proof) and known[0][1] == root


def check_sections(test, res):
    """Every brief entry is proved by its group's section (independently)."""
    chain = res["chainId"]
    briefs = [t for t in res["txs"] if "index" in t]
    for sec in res["groups"]:
        mine = [t for t in briefs if t["group"] == sec["group"]]
        test.assertTrue(mine, "a section with no entries: %r" % sec)
        for t in mine:
            test.assertEqual(t["seq"], sec["firstSeq"] + t["index"])
        leaves = [tx_leaf(t["seq"], chain, bytes.fromhex(t["hash"][2:])) for t in mine]
        proof = [bytes.fromhex(x[2:]) for x in sec["proof"]]
        test.assertTrue(multiverify(leaves, [t["index"] for t in mine], sec["count"], proof,
                                    bytes.fromhex(sec["root"][2:])),
                        "group %d's multiproof" % sec["group"])
    test.assertEqual(sorted({t["group"] for t in briefs}), sorted(s["group"] for s in res["groups"]))


class BatchTest(DaemonCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.d.setup_tenant("acme", "demo", 31337, key=False)
        cls.key = cls.d.setup_tenant("bolt", "priv", 5, ingress="key")

    def send(self, txs, ns="demo", key=None):
        return self.d.call("mezz_sendTransactions", {"namespace": ns, "txs": txs}, key=key)

    def verify(self, doc, ok=True):
        path = os.path.join(self.d.data_dir, "batch.json")
        with open(path, "w") as f:
            json.dump(doc, f)
        p = self.d.mezz("verify", "batch", path, check=False)
        self.assertEqual(p.returncode == 0, ok, p.stdout + p.stderr)
        return p.stdout

    def in_blocks(self, res):
        """seq -> (hash, data) of every transaction of res, from sealed blocks."""
        last = max(t.get("seq", t.get("receipt", {}).get("seq", 0)) for t in res["txs"])
        h = self.d.wait_sealed_seq(last + 1)
        got = {}
        for height in range(h, 0, -1):
            b = self.d.rpc("mezz_getBlock", {"height": height, "namespaces": [res["namespace"]]})
            for ns in b["namespaces"]:
                for t in ns["txs"]:
                    got[t["seq"]] = (t["hash"], t["data"])
            if b["header"]["firstSeq"] <= min(t.get("seq", last) for t in res["txs"]):
                break
        return got

    def test_batch_receipt_proves_every_transaction(self):
        txs = ["0x" + os.urandom(120).hex() for _ in range(300)]
        doc = self.send(txs)
        res = doc["result"]
        self.assertEqual((res["namespace"], res["chainId"]), ("demo", 31337))
        self.assertEqual(len(res["txs"]), 300)
        self.assertTrue(all("index" in t for t in res["txs"]), res["txs"][:2])
        self.assertEqual(len({t["seq"] for t in res["txs"]}), 300)
        check_sections(self, res)
        self.assertIn("OK batch receipt: 300 transactions", self.verify(doc))
        # each hash is the transaction's Keccak-256, each seq holds its data
        for k in (0, 151, 299):
            self.assertEqual(res["txs"][k]["hash"], keccak_hex(txs[k]))
        blocks = self.in_blocks(res)
        for t, data in zip(res["txs"], txs):
            self.assertEqual(blocks[t["seq"]], (t["hash"], data))
        # the single receipt of any of them is under the same signed root
        one = self.d.rpc("mezz_getPreconfirmation", {"hash": res["txs"][7]["hash"]})
        sec = [s for s in res["groups"] if s["group"] == one["group"]][0]
        self.assertEqual((one["seq"], one["index"], one["root"], one["signature"]),
                         (res["txs"][7]["seq"], res["txs"][7]["index"], sec["root"],
                          sec["signature"]))

    def test_tampered_batch_receipts_fail(self):
        doc = self.send(["0x" + os.urandom(40).hex() for _ in range(40)])
        self.verify(doc)
        sec = doc["result"]["groups"][0]
        cases = []
        if sec["proof"]:
            d = copy.deepcopy(doc)
            p = d["result"]["groups"][0]["proof"]
            p[0] = p[0][:-1] + ("0" if p[0][-1] != "0" else "1")
            cases.append(("a proof hash", d))
        d = copy.deepcopy(doc)
        h = d["result"]["txs"][3]["hash"]
        d["result"]["txs"][3]["hash"] = h[:-1] + ("0" if h[-1] != "0" else "1")
        cases.append(("a transaction hash", d))
        d = copy.deepcopy(doc)
        d["result"]["groups"][0]["count"] += 1
        cases.append(("the group's count (signed)", d))
        d = copy.deepcopy(doc)
        a, b = d["result"]["txs"][4], d["result"]["txs"][5]
        a["hash"], b["hash"] = b["hash"], a["hash"]
        cases.append(("two transactions swapped", d))
        d = copy.deepcopy(doc)
        del d["result"]["groups"][0]
        cases.append(("a section removed", d))
        d = copy.deepcopy(doc)
        d["result"]["chainId"] = 1
        cases.append(("another chain id", d))
        for what, bad in cases:
            with self.subTest(what):
                self.verify(bad, ok=False)

    def test_entries_for_repeats_resubmissions_and_bad_items(self):
        before = "0x" + os.urandom(32).hex()
        single = self.d.rpc("mezz_sendTransaction", {"namespace": "demo", "data": before})
        fresh = ["0x" + os.urandom(32).hex() for _ in range(5)]
        txs = [fresh[0], before, fresh[1], fresh[1], "0x123", 7, fresh[2], fresh[3], fresh[4]]
        res = self.send(txs)["result"]
        e = res["txs"]
        self.assertEqual(len(e), len(txs))
        # stored before: its stored receipt, the same as the single answer
        self.assertEqual(e[1], {"receipt": single})
        # repeated inside the request: the first is brief, the repeat a full
        # receipt of the same transaction
        self.assertIn("index", e[2])
        self.assertEqual(e[3]["receipt"]["seq"], e[2]["seq"])
        # bad items are refused on their own, the rest sequenced
        self.assertEqual(e[4]["error"]["code"], -32602)
        self.assertEqual(e[5]["error"]["code"], -32602)
        self.assertIn("txs[5]", e[5]["error"]["message"])
        for k in (0, 2, 6, 7, 8):
            self.assertIn("index", e[k])
        check_sections(self, res)
        out = self.verify({"result": res})
        self.assertIn("5 transactions proved by 1 group section(s), 2 by their own receipts, "
                      "2 refused", out)
        # resubmitting the whole request: every transaction is now stored
        again = self.send(txs)["result"]
        self.assertEqual(again["groups"], [])
        for k in (0, 2, 6, 7, 8):
            self.assertEqual(again["txs"][k]["receipt"]["seq"], e[k]["seq"])
        self.verify({"result": again})

    def test_over_websocket_with_other_requests(self):
        txs = ["0x" + os.urandom(64).hex() for _ in range(100)]

        async def go():
            async with ws_connect(self.d.ws_url()) as ws:
                await ws.send(json.dumps({"jsonrpc": "2.0", "id": "b", "method":
                                          "mezz_sendTransactions",
                                          "params": {"namespace": "demo", "txs": txs}}))
                await ws.send(json.dumps({"jsonrpc": "2.0", "id": 2, "method": "mezz_status"}))
                return [json.loads(await ws.recv()) for _ in range(2)]
        got = {d["id"]: d for d in run_async(go())}
        res = got["b"]["result"]
        self.assertEqual(len(res["txs"]), 100)
        check_sections(self, res)
        self.verify(got["b"])
        self.assertIn("nextSeq", got[2]["result"])

    def test_same_transaction_from_another_request_in_the_group(self):
        # A batch entry is proved only by its own request's section: a plain
        # mezz_sendTransaction of the same bytes, landing in the same group
        # right behind it (one read of the socket), must get a full receipt,
        # not a copy of the brief entry.
        async def go():
            same = 0
            async with ws_connect(self.d.ws_url()) as ws:
                for _ in range(10):
                    x = "0x" + os.urandom(20).hex()
                    await ws.send(json.dumps({"jsonrpc": "2.0", "id": "b", "method":
                                              "mezz_sendTransactions",
                                              "params": {"namespace": "demo", "txs": [x]}}))
                    await ws.send(json.dumps({"jsonrpc": "2.0", "id": "s", "method":
                                              "mezz_sendTransaction",
                                              "params": {"namespace": "demo", "data": x}}))
                    got = {}
                    for _ in range(2):
                        m = json.loads(await ws.recv())
                        got[m["id"]] = m
                    entry, single = got["b"]["result"]["txs"][0], got["s"]["result"]
                    self.assertIn("proof", single, single)
                    self.assertEqual(single["seq"], entry.get("seq", entry.get("receipt", {}).get("seq")))
                    same += "index" in entry and single["group"] == entry["group"]
                    last = single
            return same, last
        same, single = run_async(go())
        self.assertGreater(same, 0, "never in one group: the case was not exercised")
        path = os.path.join(self.d.data_dir, "single.json")
        with open(path, "w") as f:
            json.dump(single, f)
        self.d.mezz("verify", "receipt", path)

    def test_request_errors(self):
        self.assertRpcError(self.send([]), -32602)
        self.assertRpcError(self.send("0x01"), -32602)
        self.assertRpcError(self.send(["0x01"], ns="nope"), -32003)
        self.assertRpcError(self.send(["0x01"], ns="priv"), -32001)
        ok = self.send(["0x" + os.urandom(8).hex()], ns="priv", key=self.key)
        self.assertEqual(ok["result"]["chainId"], 5)
        status, doc = self.d.raw_post(json.dumps([
            {"jsonrpc": "2.0", "id": 1, "method": "mezz_sendTransactions",
             "params": {"namespace": "demo", "txs": ["0x01"]}},
            {"jsonrpc": "2.0", "id": 2, "method": "mezz_status"}]).encode())
        self.assertEqual(doc[0]["error"]["code"], -32600)
        self.assertIn("result", doc[1])


class BatchAcrossGroupsTest(DaemonCase):
    # Groups of at most 32 transactions: a request of 150 lands in several.
    SETTINGS = {"sequencer.group_max_txs": "32"}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.d.setup_tenant("acme", "demo", 31337, key=False)

    def test_one_section_per_group(self):
        txs = ["0x" + os.urandom(48).hex() for _ in range(150)]
        doc = self.d.call("mezz_sendTransactions", {"namespace": "demo", "txs": txs})
        res = doc["result"]
        self.assertGreaterEqual(len(res["groups"]), 5)
        self.assertEqual(len({s["group"] for s in res["groups"]}), len(res["groups"]))
        self.assertTrue(all(s["count"] <= 32 for s in res["groups"]))
        check_sections(self, res)
        path = os.path.join(self.d.data_dir, "batch.json")
        with open(path, "w") as f:
            json.dump(doc, f)
        out = self.d.mezz("verify", "batch", path).stdout
        self.assertIn("150 transactions proved by %d group section(s)" % len(res["groups"]), out)


if __name__ == "__main__":
    unittest.main()
