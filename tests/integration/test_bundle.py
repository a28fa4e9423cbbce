"""Atomic cross-rollup bundles (mezz_sendBundle): every leg lands in the same
superblock at consecutive sequence numbers under one signed group root, or
none lands; resubmission is idempotent; one receipt covers every leg."""
import json
import os
import threading
import time
import unittest

from harness import DaemonCase


def leg(ns, data=None):
    return {"namespace": ns, "data": data or "0x" + os.urandom(24).hex()}


class BundleTest(DaemonCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.d.setup_tenant("acme", "alpha", 201, key=False)
        cls.d.setup_tenant("bravo", "beta", 202, key=False)
        cls.key = cls.d.setup_tenant("carol", "gamma", 203, ingress="key", feed="public")

    def bundle(self, legs, key=None):
        return self.d.call("mezz_sendBundle", {"txs": legs}, key=key)

    def check_landed(self, res, legs):
        """Consecutive seqs, one group, one slot; the block holds them all."""
        self.assertEqual(res["count"], len(legs))
        seqs = [r["seq"] for r in res["legs"]]
        self.assertEqual(seqs, list(range(res["firstSeq"], res["firstSeq"] + len(legs))))
        self.assertEqual({r["group"] for r in res["legs"]}, {res["group"]})
        self.assertEqual({r["slot"] for r in res["legs"]}, {res["slot"]})
        self.assertEqual({r["signature"] for r in res["legs"]}, {res["legs"][0]["signature"]})
        for r, l in zip(res["legs"], legs):
            self.assertEqual(r["namespace"], l["namespace"])
        h = self.d.wait_sealed_seq(res["firstSeq"] + len(legs))
        block = None
        for height in range(h, 0, -1):
            b = self.d.rpc("mezz_getBlock", {"height": height})
            hdr = b["header"]
            if hdr["firstSeq"] <= res["firstSeq"] < hdr["firstSeq"] + hdr["txCount"]:
                block = b
                break
        self.assertIsNotNone(block)
        hdr = block["header"]
        self.assertLessEqual(res["firstSeq"] + len(legs), hdr["firstSeq"] + hdr["txCount"],
                             "bundle split across blocks")
        in_block = {t["seq"]: t["data"] for ns in block["namespaces"] for t in ns["txs"]}
        for r, l in zip(res["legs"], legs):
            self.assertEqual(in_block[r["seq"]], l["data"])

    def test_bundle_lands_atomically_and_receipts_verify(self):
        legs = [leg("alpha"), leg("beta"), leg("alpha")]
        doc = self.bundle(legs)
        res = doc["result"]
        self.check_landed(res, legs)
        for r in res["legs"]:
            path = os.path.join(self.d.data_dir, "leg.json")
            with open(path, "w") as f:
                json.dump(r, f)
            self.d.mezz("verify", "receipt", path)  # raises on failure
        # resubmitting the same bundle: the same answer
        again = self.bundle(legs)
        self.assertEqual(again["result"], res)

    def test_bundles_of_the_most_legs(self):
        # The committer inserts rows in runs of 64 (committer.c INSERT_RUN):
        # a bundle of 64 fresh legs fills one run inside its savepoint, and
        # one whose last leg is stored already must still store none.
        legs = [leg("alpha" if i % 2 else "beta") for i in range(64)]
        doc = self.bundle(legs)
        self.assertIn("result", doc, doc)
        self.check_landed(doc["result"], legs)
        single = leg("beta")
        self.assertIn("result", self.d.call("mezz_sendTransaction", single))
        fresh = [leg("alpha") for _ in range(63)]
        doc = self.bundle(fresh + [single])
        self.assertEqual(doc["error"]["code"], -32010, doc)
        for l in (fresh[0], fresh[62]):
            got = self.d.call("mezz_getPreconfirmation",
                              {"hash": keccak(l["data"]), "namespace": "alpha"})
            self.assertEqual(got["error"]["code"], -32007, "a leg of a refused bundle was stored")
        doc = self.bundle(fresh)  # and the same legs without the conflict land
        self.assertIn("result", doc, doc)
        self.check_landed(doc["result"], fresh)

    def test_conflicting_leg_stores_nothing(self):
        single = leg("beta")
        self.assertIn("result", self.d.call("mezz_sendTransaction", single))
        fresh = [leg("alpha"), leg("alpha")]
        doc = self.bundle([fresh[0], single, fresh[1]])
        self.assertEqual(doc["error"]["code"], -32010, doc)
        for l in fresh:
            h = self.d.rpc("mezz_status")  # the daemon is fine
            self.assertFalse(h["halted"])
            got = self.d.call("mezz_getPreconfirmation",
                              {"hash": keccak(l["data"]), "namespace": "alpha"})
            self.assertEqual(got["error"]["code"], -32007, "a leg of a refused bundle was stored")

    def test_bad_bundles(self):
        one = leg("alpha")
        for params, code in (({"txs": [one]}, -32602),
                             ({"txs": []}, -32602),
                             ({"txs": [one, one]}, -32602),
                             ({"txs": [leg("alpha")] * 0 + [leg("alpha") for _ in range(65)]},
                              -32602),
                             ({"txs": [one, {"namespace": "nope", "data": "0x01"}]}, -32003),
                             ({"txs": [leg("alpha"), {"namespace": "beta", "data": "zz"}]},
                              -32602),
                             ({"txs": [leg("alpha"), leg("gamma")]}, -32001)):
            doc = self.d.call("mezz_sendBundle", params)
            self.assertEqual(doc["error"]["code"], code, (params, doc))
        # with carol's key the key-only leg is accepted (her key may submit to
        # gamma, and alpha is public but belongs to acme: a key acts only
        # within its tenant, so that mix is refused)
        doc = self.bundle([leg("gamma"), leg("gamma")], key=self.key)
        self.assertIn("result", doc, doc)
        doc = self.bundle([leg("gamma"), leg("alpha")], key=self.key)
        self.assertEqual(doc["error"]["code"], -32002, doc)

    def test_many_bundles_under_load_never_split(self):
        stop = threading.Event()

        def noise():
            while not stop.is_set():
                batch = [{"jsonrpc": "2.0", "id": i, "method": "mezz_sendTransaction",
                          "params": leg("beta")} for i in range(200)]
                self.d.raw_post(json.dumps(batch))

        t = threading.Thread(target=noise)
        t.start()
        try:
            # one HTTP batch of 1,500 bundles x 3 legs: more than a group
            # (group_max_txs 4096), so the committer must not cut one
            reqs, all_legs = [], []
            for i in range(1500):
                legs = [leg("alpha"), leg("beta"), leg("alpha")]
                all_legs.append(legs)
                reqs.append({"jsonrpc": "2.0", "id": i, "method": "mezz_sendBundle",
                             "params": {"txs": legs}})
            status, doc = self.d.raw_post(json.dumps(reqs))
        finally:
            stop.set()
            t.join()
        self.assertEqual(status, 200)
        for a in doc:
            self.assertIn("result", a, a)
            res = a["result"]
            seqs = [r["seq"] for r in res["legs"]]
            self.assertEqual(seqs, list(range(seqs[0], seqs[0] + 3)))
            self.assertEqual(len({r["group"] for r in res["legs"]}), 1)
        self.check_landed(doc[-1]["result"], all_legs[doc[-1]["id"]])


def keccak(data_hex):
    from harness import keccak_hex
    return keccak_hex(data_hex)


if __name__ == "__main__":
    unittest.main()
