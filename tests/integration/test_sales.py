"""Execution-ticket sales run by the real daemon (rights.enabled = 1, L1 off):
offers by tenant keys, sales driven by the slot clock through
open -> closed -> settled, purchases signed with EIP-712 by `cast wallet sign
--data`, every purchase error, improvement proposals judged against the
standing allocation, a settlement that balances, and purchases that survive a
SIGKILL mid-sale.

Timing: slots are 100 ms; a sale is open for window_slots (5 s) once the
previous one closes. Tests wait for a sale to open before buying in it, so
nothing asserts how long anything takes; a machine slow enough to need more
than a few seconds per step fails with the sale's state in the message.
"""
import json
import os
import sqlite3
import time
import unittest

from harness import Daemon, DaemonCase, cast, sign_purchase

# anvil dev accounts 3..5 (public test keys)
BUYER_KEYS = ["0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
              "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
              "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba"]
CHAIN_ID = 31337
INBOX = "0x00000000000000000000000000000000000dead1"

# 21 opted-in rollups: above SEQ_RIGHTS_EXACT_MAX (20), so the sale's own
# allocation is the heuristic's and a better one can be proposed.
ROLLUPS = list(range(1001, 1022))
OPTED_OUT = 1099

SETTINGS = {
    "rights.enabled": "1",
    "rights.window_slots": "50",
    "rights.close_lead": "40",
    "rights.improve_lead": "15",
    "rights.ahead_slots": "70",
    "rights.price_gwei": "100",
    "rights.floor_gwei": "10",
    "rights.cap": "40",
    "rights.target": "20",
    "rights.burn_bps": "1000",
    "l1.chain_id": str(CHAIN_ID),
    "l1.inbox": INBOX,
}

# rpc error codes (docs/API.md)
UNAUTHORIZED, FORBIDDEN, INVALID_PARAMS, NOT_FOUND = -32001, -32002, -32602, -32007
SALE_CLOSED, BAD_SIGNATURE, WRONG_PRICE, SOLD_OUT = -32031, -32032, -32033, -32034
BAD_BUNDLE, NONCE_USED, RIGHTS_DISABLED = -32035, -32036, -32030


def address(key):
    return cast("wallet", "address", "--private-key", key).stdout.strip().lower()


def sign(key, sale, rollups, tickets, price, nonce, chain_id=CHAIN_ID, inbox=INBOX):
    return sign_purchase(key, sale, rollups, tickets, price, nonce, chain_id, inbox)


_nonce = [int(time.time() * 1000)]


def fresh_nonce():
    _nonce[0] += 1
    return _nonce[0]


def setup_rollups(d):
    """One tenant owning every rollup, all opted in with reserve 0 but
    1001 (reserve 50) and 1099 (opted out). Returns (key, first sale)."""
    key = d.setup_tenant("rollups", "r1001", 1001)
    for cid in ROLLUPS[1:] + [OPTED_OUT]:
        d.setup_tenant("rollups", "r%d" % cid, cid, key=False, create_tenant=False)
    first = None
    for cid in ROLLUPS + [OPTED_OUT]:
        res = d.rpc("mezz_setOffer", {"namespace": cid, "optIn": cid != OPTED_OUT,
                                      "reserveGwei": 50 if cid == 1001 else 0}, key=key)
        first = res["fromSale"] if first is None else max(first, res["fromSale"])
    return key, first


class SalesCase(DaemonCase):
    SETTINGS = SETTINGS
    inbox = INBOX  # the EIP-712 domain's verifyingContract (l1.inbox)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.key, cls.first_sale = setup_rollups(cls.d)
        cls.buyers = [address(k) for k in BUYER_KEYS]

    def sale(self, n=None):
        return self.d.rpc("mezz_getSale", {} if n is None else {"sale": n})

    def wait_state(self, n, state, timeout=30.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            s = self.sale(n)
            if s["state"] == state:
                return s
            time.sleep(0.05)
        self.fail("sale %d not %s within %.0fs: %r" % (n, state, timeout, self.sale(n)))

    def fresh_sale(self, timeout=30.0):
        """Wait for a sale to open that carries our offers, and return it
        right after it opened (it stays open for window_slots)."""
        start = self.sale()["sale"]
        deadline = time.time() + timeout
        while time.time() < deadline:
            s = self.sale()
            if s["sale"] > start and s["sale"] >= self.first_sale and s["state"] == "open":
                return s
            time.sleep(0.02)
        self.fail("no new sale opened within %.0fs: %r" % (timeout, self.sale()))

    def buy_call(self, who, sale, rollups, tickets, price=None, nonce=None, sig=None):
        price = sale["priceGwei"] if price is None else price
        nonce = fresh_nonce() if nonce is None else nonce
        if sig is None:
            sig = sign(BUYER_KEYS[who], sale["sale"], rollups, tickets, price, nonce,
                       inbox=self.inbox)
        return self.d.call("mezz_buyTickets", {
            "sale": sale["sale"], "rollups": rollups, "tickets": tickets,
            "priceGwei": price, "nonce": nonce, "signature": sig})

    def buy(self, who, sale, rollups, tickets, **kw):
        doc = self.buy_call(who, sale, rollups, tickets, **kw)
        self.assertIn("result", doc, "purchase refused: %r (sale %r)" % (doc, self.sale(sale["sale"])))
        return doc["result"]


class SaleLifecycleTest(SalesCase):
    def test_sale_open_closed_settled_with_proposals(self):
        s = self.fresh_sale()
        n, p = s["sale"], s["priceGwei"]
        self.assertEqual([r["chainId"] for r in s["rollups"]], ROLLUPS, "1099 opted out: not in the sale")
        self.assertEqual(s["rollups"][0]["reserveGwei"], 50)
        # X = {1001,1002} 4 tickets, A = {1001,1003} 3, B = {1002,1004} 3,
        # S = {1005} 1. Greedy keeps X (+S) = 5p; A + B + S = 7p is better.
        r0 = self.buy(0, s, [1001, 1002], 4)
        self.assertEqual(r0["buyer"], self.buyers[0])
        self.assertEqual((r0["bundle"], r0["paidGwei"], r0["status"]), (0, 4 * p, "stored"))
        self.assertEqual(self.buy(1, s, [1001, 1003], 3)["bundle"], 1)
        self.assertEqual(self.buy(2, s, [1002, 1004], 3)["bundle"], 2)
        self.assertEqual(self.buy(0, s, [1005], 1)["bundle"], 3)
        open_ = self.sale(n)
        self.assertEqual(open_["sold"], 11)
        self.assertEqual([(b["bundle"], b["rollups"], b["tickets"]) for b in open_["bundles"]],
                         [(0, [1001, 1002], 4), (1, [1001, 1003], 3), (2, [1002, 1004], 3),
                          (3, [1005], 1)])
        self.assertEqual([x["buyer"] for x in open_["purchases"]],
                         [self.buyers[0], self.buyers[1], self.buyers[2], self.buyers[0]])
        self.assertIsNone(open_["best"])
        # proposals are not taken while the sale is open
        doc = self.d.call("mezz_proposeAllocation", {"sale": n, "bundles": [1, 2, 3]})
        self.assertRpcError(doc, SALE_CLOSED)

        closed = self.wait_state(n, "closed")
        self.assertEqual(closed["best"]["bundles"], [0, 3])
        self.assertEqual(closed["best"]["revenueGwei"], 5 * p)
        # purchases are refused once closed
        self.assertRpcError(self.buy_call(1, closed, [1006], 1), SALE_CLOSED)
        # worse, overlapping, unknown: rejected with the reason
        worse = self.d.rpc("mezz_proposeAllocation", {"sale": n, "bundles": [1, 3]})
        self.assertEqual((worse["accepted"], worse["reason"]), (False, "notBetter"))
        self.assertEqual(worse["revenueGwei"], 4 * p)
        overlap = self.d.rpc("mezz_proposeAllocation", {"sale": n, "bundles": [0, 1]})
        self.assertEqual((overlap["accepted"], overlap["reason"]), (False, "overlap"))
        nobid = self.d.rpc("mezz_proposeAllocation", {"sale": n, "bundles": [9]})
        self.assertFalse(nobid["accepted"])
        self.assertRpcError(self.d.call("mezz_proposeAllocation", {"sale": n, "bundles": [2, 1]}),
                            INVALID_PARAMS)
        better = self.d.rpc("mezz_proposeAllocation", {"sale": n, "bundles": [1, 2, 3]})
        self.assertEqual(better, {"accepted": True, "revenueGwei": 7 * p,
                                  "previousRevenueGwei": 5 * p})
        # the same allocation again is not strictly better
        again = self.d.rpc("mezz_proposeAllocation", {"sale": n, "bundles": [1, 2, 3]})
        self.assertEqual((again["accepted"], again["reason"]), (False, "notBetter"))
        self.assertEqual(self.sale(n)["best"]["proposalsAccepted"], 1)

        done = self.wait_state(n, "settled")
        self.assertRpcError(self.d.call("mezz_proposeAllocation", {"sale": n, "bundles": [1, 2]}),
                            SALE_CLOSED)
        st = done["settlement"]
        self.assertEqual(done["best"]["bundles"], [1, 2, 3])
        self.assertEqual(st["revenueGwei"], 7 * p)
        self.assertEqual(st["creditedGwei"] + st["burnGwei"], st["revenueGwei"])
        self.assertEqual(sum(c["amountGwei"] for c in st["credits"]) + st["burnGwei"], 7 * p)
        # burn per winning bundle, floor(R * 1000 / 10000)
        self.assertEqual(st["burnGwei"], sum(3 * p * 1000 // 10000 for _ in range(2)) +
                         p * 1000 // 10000)
        self.assertEqual([w["bundle"] for w in st["winners"]], [1, 2, 3])
        self.assertEqual([w["buyer"] for w in st["winners"]],
                         [self.buyers[1], self.buyers[2], self.buyers[0]])
        self.assertEqual(sorted(c["rollup"] for c in st["credits"]),
                         [1001, 1002, 1003, 1004, 1005])
        buyers = {b["address"]: b for b in st["buyers"]}
        self.assertEqual(buyers[self.buyers[0]]["paidGwei"], 5 * p)
        self.assertEqual(buyers[self.buyers[0]]["chargedGwei"], p)
        self.assertEqual(buyers[self.buyers[0]]["refundGwei"], 4 * p)
        for b in st["buyers"]:
            self.assertEqual(b["refundGwei"], b["paidGwei"] - b["chargedGwei"])
        self.assertEqual(sum(b["chargedGwei"] for b in st["buyers"]), st["revenueGwei"])
        # the canonical encoding carries the seed and the sale id
        enc = bytes.fromhex(st["encoding"][2:])
        self.assertEqual(enc[:4], b"MZST")
        self.assertEqual(int.from_bytes(enc[8:16], "big"), n)
        self.assertEqual(enc[24:56].hex(), st["seed"][2:])
        # the seed is the hash of the first superblock at or after the deadline
        height = self.d.status()["height"]
        found = None
        for h in range(height, 0, -1):
            blk = self.d.rpc("mezz_getBlock", {"height": h})
            if blk["header"]["slot"] < done["drawSlot"]:
                break
            found = blk
        self.assertIsNotNone(found)
        self.assertEqual(found["hash"], st["seed"])
        # next sale's price follows the rule: 11 sold < target 20
        nxt = self.sale(n + 1)
        self.assertEqual(nxt["priceGwei"], p - p * (20 - 11) // (8 * 20))
        with open(self.d.log_path, errors="replace") as f:
            log = f.read()
        self.assertIn("event=rights_sale_settled sale=%d " % n, log)
        # each winner was granted its bundle's rollups over the window
        rows = [l.split("\t") for l in self.d.mezz("rights", "list").stdout.splitlines()[1:]]
        got = sorted((int(r[0]), int(r[1]), int(r[2]), r[3]) for r in rows
                     if int(r[0]) == done["startSlot"])
        want = sorted((done["startSlot"], done["endSlot"] - 1, cid, w["buyer"])
                      for w in st["winners"] for cid in w["rollups"])
        self.assertEqual(got, want)


class PurchaseErrorsTest(SalesCase):
    def test_purchase_errors(self):
        s = self.fresh_sale()
        n, p = s["sale"], s["priceGwei"]
        # wrong price (signed at that price too)
        self.assertRpcError(self.buy_call(0, s, [1006], 1, price=p + 1), WRONG_PRICE)
        # a signature that does not recover: v out of range, all zeros
        good = sign(BUYER_KEYS[0], n, [1006], 1, p, 7)
        self.assertRpcError(self.buy_call(0, s, [1006], 1, nonce=7, sig=good[:-2] + "1f"),
                            BAD_SIGNATURE)
        self.assertRpcError(self.buy_call(0, s, [1006], 1, nonce=7, sig="0x" + "00" * 65),
                            BAD_SIGNATURE)
        # a signature over other fields recovers someone else: not our buyer
        other = self.buy(0, s, [1006], 2, nonce=fresh_nonce(), sig=good)
        self.assertNotEqual(other["buyer"], self.buyers[0])
        # the buyer recovered from a good signature, and nonce replay
        nonce = fresh_nonce()
        ok = self.buy(0, s, [1006], 1, nonce=nonce)
        self.assertEqual(ok["buyer"], self.buyers[0])
        self.assertRpcError(self.buy_call(0, s, [1007], 1, nonce=nonce), NONCE_USED)
        # the very same purchase again (its first answer lost): the first
        # answer again, nothing bought twice; before, -32036 "sign with a
        # fresh nonce" had the buyer buy and escrow twice
        again = self.buy(0, s, [1006], 1, nonce=nonce)
        self.assertEqual((again["purchase"], again["sold"], again["status"]),
                         (ok["purchase"], ok["sold"], "stored"), (ok, again))
        self.assertEqual(len(self.sale(n)["purchases"]), 2)
        # opted out, unknown, unsorted, empty
        self.assertRpcError(self.buy_call(0, s, [1006, OPTED_OUT], 1), BAD_BUNDLE)
        self.assertRpcError(self.buy_call(0, s, [4242], 1), BAD_BUNDLE)
        self.assertRpcError(self.buy_call(0, s, [1007, 1006], 1, sig="0x" + "11" * 65),
                            INVALID_PARAMS)
        self.assertRpcError(self.buy_call(0, s, [], 1, sig="0x" + "11" * 65), INVALID_PARAMS)
        self.assertRpcError(self.buy_call(0, s, [1006], 0, sig="0x" + "11" * 65), INVALID_PARAMS)
        # sold out: cap 40, 3 sold so far
        self.assertEqual(self.buy(1, s, [1008], 36)["sold"], 39)
        doc = self.buy_call(2, s, [1009], 2)
        self.assertRpcError(doc, SOLD_OUT)
        self.assertIn("39 of 40", doc["error"]["message"])
        self.assertEqual(self.buy(2, s, [1009], 1)["sold"], 40)
        self.assertRpcError(self.buy_call(2, s, [1009], 1), SOLD_OUT)
        # no such sale yet, and a refused purchase changed nothing
        self.assertRpcError(self.d.call("mezz_getSale", {"sale": n + 50}), NOT_FOUND)
        self.assertRpcError(self.buy_call(0, dict(s, sale=n + 50), [1006], 1), NOT_FOUND)
        self.assertEqual(self.sale(n)["sold"], 40)
        self.assertEqual(len(self.sale(n)["purchases"]), 4)
        # a closed sale: after it closes; the next is priced +12.5% (sold out)
        self.wait_state(n, "closed")
        self.assertRpcError(self.buy_call(0, s, [1006], 1), SALE_CLOSED)
        self.assertEqual(self.sale(n + 1)["priceGwei"], p + max(1, p // 8))

    def test_offers_need_the_tenant_key(self):
        other = self.d.setup_tenant("stranger", "stranger", 5555)
        body = {"namespace": 1001, "optIn": False, "reserveGwei": 1}
        self.assertRpcError(self.d.call("mezz_setOffer", body), UNAUTHORIZED)
        self.assertRpcError(self.d.call("mezz_setOffer", body, key=other), FORBIDDEN)
        self.assertRpcError(self.d.call("mezz_setOffer", dict(body, reserveGwei=-1), key=self.key),
                            INVALID_PARAMS)
        self.assertRpcError(self.d.call("mezz_setOffer", dict(body, optIn=1), key=self.key),
                            INVALID_PARAMS)
        res = self.d.rpc("mezz_setOffer", {"namespace": "stranger", "optIn": True,
                                           "reserveGwei": 3}, key=other)
        self.assertEqual((res["chainId"], res["optIn"], res["reserveGwei"]), (5555, True, 3))
        # applies from a sale not yet open: the open one does not have it
        cur = self.sale()
        if cur["state"] == "open":
            self.assertNotIn(5555, [r["chainId"] for r in cur["rollups"]])
        self.assertGreater(res["fromSale"], cur["sale"] if cur["state"] == "open" else 0)
        deadline = time.time() + 30
        while self.sale()["sale"] < res["fromSale"] and time.time() < deadline:
            time.sleep(0.05)
        later = self.sale(res["fromSale"])
        self.assertIn({"chainId": 5555, "reserveGwei": 3}, later["rollups"])


class RestartTest(unittest.TestCase):
    def test_purchases_survive_sigkill_mid_sale(self):
        d = Daemon(settings=SETTINGS, slot_ms=100)
        self.addCleanup(d.cleanup)
        d.start()
        key, first = setup_rollups(d)
        case = SalesCase()
        case.d, case.first_sale = d, first
        s = case.fresh_sale()
        n, p = s["sale"], s["priceGwei"]
        case.buy(0, s, [1001, 1002], 2)
        case.buy(1, s, [1003], 5)
        before = case.sale(n)
        d.kill9()
        d.start()
        after = case.sale(n)
        self.assertEqual(after["purchases"], before["purchases"])
        self.assertEqual(after["bundles"], before["bundles"])
        self.assertEqual(after["sold"], 7)
        # the rebuilt sale goes on: it closes and settles with both purchases
        done = case.wait_state(n, "settled")
        self.assertEqual(done["settlement"]["revenueGwei"], done["best"]["revenueGwei"])
        self.assertEqual(sum(b["paidGwei"] for b in done["settlement"]["buyers"]), 7 * p)
        # and a restart after settlement answers the same settlement
        d.stop()
        d.start()
        self.assertEqual(case.sale(n)["settlement"], done["settlement"])

        # The stored settlement, not a rebuilt one, is what the sale holds
        # (and posts): a row that differs from what this build rebuilds (as
        # after an upgrade that draws or splits otherwise; here its seed)
        # wins and is logged; one that does not decode is logged and the
        # rebuilt one kept.
        enc = bytes.fromhex(done["settlement"]["encoding"][2:])
        other = enc[:24] + bytes(b ^ 0x5a for b in enc[24:56]) + enc[56:]
        for row, want, event in ((other, other, "rights_settlement_rebuilt_differs"),
                                 (b"MZST", enc, "rights_settlement_unreadable")):
            d.stop()
            db = sqlite3.connect(os.path.join(d.data_dir, "rights.db"))
            with db:
                db.execute("UPDATE settlements SET encoding = ? WHERE sale = ?", (row, n))
            db.close()
            d.start()
            got = case.sale(n)["settlement"]
            self.assertEqual(got["encoding"], "0x" + want.hex(), event)
            self.assertEqual(got["seed"], "0x" + want[24:56].hex(), event)
            self.assertIn("event=%s sale=%d " % (event, n), d.log())


class RightsOffTest(DaemonCase):
    def test_rights_methods_refused_when_off(self):
        for m, params in (("mezz_getSale", {"sale": 1}), ("mezz_setOffer", {}),
                          ("mezz_buyTickets", {}), ("mezz_proposeAllocation", {})):
            self.assertRpcError(self.d.call(m, params), RIGHTS_DISABLED, m)


if __name__ == "__main__":
    unittest.main()
