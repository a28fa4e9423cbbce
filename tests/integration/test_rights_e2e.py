"""Execution-ticket sales end to end on a real anvil: buyers deposit on the
Inbox, sign purchases (EIP-712, `cast wallet sign --data`) that the daemon
checks against their free deposit, stores and posts (Purchased events); the
daemon settles the sale with the hash of the L1 draw block and posts the
settlement (SaleSettled); then a buyer pulls its refund, the rollup's key
pulls its revenue and a buyer withdraws what is left, each checked to the
wei with `cast balance` and the receipts' gas.

test_winner_orders_its_window follows a sale past its settlement: the
daemon's own grant gives the window to the winning buyer, who orders its
rollup's slots with the key it bought with (proposer-ordered slots), and
misses a slot it leaves to the appliance.

test_rejected_purchase_is_void_and_the_sale_settles makes the chain skip a
purchase the daemon took (the buyer withdraws its deposit before the post is
mined): the daemon voids it from the receipt, reallocates, and the sale
still settles on chain, to the wei.
"""
import asyncio
import json
import time

from harness import run_async, ws_connect
from test_proposer import call, collect_pending, pending_session, recv_json, rnd

from harness import cast
from test_outbox import KEY0, OutboxCase
import test_sales as ts


async def send_held(sender, win):
    """Three transactions to r1001 from sender, and the winner's pending
    notes (win) once all three are held for it: (datas, notes)."""
    datas = [rnd() for _ in range(3)]
    await sender.send(json.dumps([
        {"jsonrpc": "2.0", "id": k, "method": "mezz_sendTransaction",
         "params": {"namespace": "r1001", "data": x}} for k, x in enumerate(datas)]))
    notes = []
    while not set(datas) <= {x["txs"][0]["data"] for x in notes}:
        await collect_pending(win, len(notes) + 1, notes)
    return datas, notes


GWEI = 10 ** 9
# anvil dev account 2: the rollups' key on the Inbox
ROLLUP_KEY = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a"
EV = {
    "Purchased": "Purchased(uint64,address,uint64,uint64,uint64,uint64[])",
    "PurchaseRejected": "PurchaseRejected(uint64,address,uint64,uint8)",
    "SaleSettled": "SaleSettled(uint64,uint256,uint256,uint64,uint64)",
}


class RightsE2ETest(OutboxCase):
    ANVIL_ARGS = ("--block-time", "1")

    def send(self, key, *args, value=None):
        cmd = ["send", "--rpc-url", self.anvil.url, "--private-key", key, "--json"]
        if value is not None:
            cmd += ["--value", str(value)]
        r = json.loads(cast(*cmd, self.inbox, *args).stdout)
        self.assertEqual(r["status"], "0x1", r)
        return r

    def uint(self, sig, *args):
        return int(self.anvil.view(self.inbox, sig, *args).split()[0])

    def balance(self, addr):
        return int(cast("balance", "--rpc-url", self.anvil.url, addr).stdout.strip())

    @staticmethod
    def gas(r):
        return int(r["gasUsed"], 16) * int(r["effectiveGasPrice"], 16)

    def logs(self, name):
        topic = cast("keccak", EV[name]).stdout.strip()
        return self.anvil.rpc("eth_getLogs", [{"address": self.inbox, "fromBlock": "earliest",
                                               "toBlock": "latest", "topics": [topic]}])

    def open_sale(self, d, reserves=((1001, 100), (1002, 100))):
        """Rollups r1001 and r1002 (tenant "rollups") opt in at these reserves
        on the started daemon d; returns (a SalesCase bound to d, the first
        open sale they are in)."""
        key = d.setup_tenant("rollups", "r1001", 1001)
        d.setup_tenant("rollups", "r1002", 1002, key=False, create_tenant=False)
        first = max(d.rpc("mezz_setOffer", {"namespace": cid, "optIn": True,
                                            "reserveGwei": r}, key=key)["fromSale"]
                    for cid, r in reserves)
        case = ts.SalesCase()
        case.d, case.first_sale, case.inbox = d, first, self.inbox
        return case, case.fresh_sale(timeout=60)

    def test_deposit_buy_settle_claim_withdraw(self):
        buyers = [ts.address(k) for k in ts.BUYER_KEYS]
        rollup_addr = ts.address(ROLLUP_KEY)
        # the rollups' key, set by the owner (account 0) before the daemon
        # takes over account 0's nonces
        for cid in (1001, 1002):
            self.send(KEY0, "setRollupKey(uint64,address)", str(cid), rollup_addr)
        deposit = 10 ** 6 * GWEI  # 1,000,000 gwei each
        for k in ts.BUYER_KEYS[:2]:
            self.send(k, "deposit()", value=deposit)
        self.send(ts.BUYER_KEYS[2], "deposit()", value=500 * GWEI)

        d = self.daemon(**{
            "rights.enabled": 1, "rights.window_slots": 60, "rights.close_lead": 40,
            "rights.improve_lead": 20, "rights.ahead_slots": 80, "rights.price_gwei": 1000,
            "rights.floor_gwei": 100, "rights.cap": 5000, "rights.target": 2500,
            "rights.burn_bps": 1000, "rights.l1_block_ms": 1000,
            "l1.post_interval_ms": 60000})
        d.start()
        case, s = self.open_sale(d, ((1001, 200), (1002, 100)))
        n, p = s["sale"], s["priceGwei"]
        self.assertEqual(s["drawSource"], "l1Block")
        self.assertGreater(s["drawBlock"], self.anvil.block_number())

        # B1 3 and B2 1 on {1001,1002}; B2 1 on {1001}: the pair wins.
        # B2 signs its pair purchase with v = 0/1 (as some wallets do): it
        # recovers, and it must reach the Inbox as 27/28, which is all the
        # contract takes; posted as given, it would revert the whole
        # postPurchases and void B1's purchase with it.
        case.buy(0, s, [1001, 1002], 3)
        nonce = ts.fresh_nonce()
        sig = ts.sign(ts.BUYER_KEYS[1], n, [1001, 1002], 1, p, nonce, inbox=self.inbox)
        self.assertIn(sig[-2:], ("1b", "1c"))
        sig = sig[:-2] + "%02x" % (int(sig[-2:], 16) - 27)
        case.buy(1, s, [1001, 1002], 1, nonce=nonce, sig=sig)
        case.buy(1, s, [1001], 1)
        # B3 deposited 500 gwei: one ticket costs 1000
        doc = case.buy_call(2, s, [1001], 1)
        case.assertRpcError(doc, -32037)
        self.assertIn("500 gwei", doc["error"]["message"])
        # B1's 3 tickets are committed, escrowed or not: one ticket more than
        # what is left of its deposit is refused
        left = deposit // GWEI // p - 3
        doc = case.buy_call(0, s, [1002], left + 1)
        case.assertRpcError(doc, -32037)

        # posted: three Purchased events of sale n
        self.wait_for("purchases on L1", lambda: len(self.logs("Purchased")) == 3, 60, d)
        got = sorted((int(lg["topics"][1], 16), "0x" + lg["topics"][2][-40:])
                     for lg in self.logs("Purchased"))
        self.assertEqual(got, sorted([(n, buyers[0]), (n, buyers[1]), (n, buyers[1])]))
        self.assertEqual(self.uint("escrow(uint64,address)(uint256)", str(n), buyers[0]),
                         3 * p * GWEI)

        done = case.wait_state(n, "settled", timeout=90)
        st = done["settlement"]
        # the seed is the draw block's prevrandao (mixHash), not its hash,
        # which that block's proposer could grind
        blk = self.anvil.rpc("eth_getBlockByNumber", [hex(done["drawBlock"]), False])
        self.assertNotEqual(int(blk["mixHash"], 16), 0)
        self.assertEqual(st["seed"], blk["mixHash"])
        self.assertEqual(st["revenueGwei"], 4 * p)
        self.wait_for("SaleSettled", lambda: self.logs("SaleSettled"), 60, d)
        [ev] = self.logs("SaleSettled")
        self.assertEqual(int(ev["topics"][1], 16), n)
        data = bytes.fromhex(ev["data"][2:])
        self.assertEqual(int.from_bytes(data[0:32], "big"), st["revenueGwei"] * GWEI)
        self.assertEqual(int.from_bytes(data[32:64], "big"), st["burnGwei"] * GWEI)
        self.assertEqual(self.uint("totalBurned()(uint256)"), st["burnGwei"] * GWEI)
        credits = {c["rollup"]: c["amountGwei"] for c in st["credits"]}
        self.assertEqual(sorted(credits), [1001, 1002])
        for cid, amt in credits.items():
            self.assertEqual(self.uint("claimableRevenue(uint64)(uint256)", str(cid)),
                             amt * GWEI)
        refunds = {b["address"]: b["refundGwei"] for b in st["buyers"]}
        # B2's singleton ticket lost: at least p back; every ticket on the pair is spent
        self.assertEqual(refunds[buyers[1]], p)
        self.assertEqual(refunds[buyers[0]], 0)
        for b, amt in refunds.items():
            self.assertEqual(self.uint("claimableRefund(address)(uint256)", b), amt * GWEI)

        # pull: B2's refund, the rollup's revenue
        before = self.balance(buyers[1])
        r = self.send(ts.BUYER_KEYS[1], "claimRefund()")
        self.assertEqual(self.balance(buyers[1]), before + p * GWEI - self.gas(r))
        before = self.balance(rollup_addr)
        r = self.send(ROLLUP_KEY, "claimRevenue(uint64)", "1001")
        self.assertEqual(self.balance(rollup_addr), before + credits[1001] * GWEI - self.gas(r))
        self.assertEqual(self.uint("claimableRevenue(uint64)(uint256)", "1001"), 0)
        # withdraw what B1 did not spend
        free = self.uint("freeBalance(address)(uint256)", buyers[0])
        self.assertEqual(free, deposit - 3 * p * GWEI)
        before = self.balance(buyers[0])
        r = self.send(ts.BUYER_KEYS[0], "withdraw(uint256)", str(free))
        self.assertEqual(self.balance(buyers[0]), before + free - self.gas(r))
        self.assertEqual(self.uint("freeBalance(address)(uint256)", buyers[0]), 0)
        # the daemon's poster never reverted (a failed settlement would)
        for t in self.anvil.poster_txs():
            rc = self.anvil.rpc("eth_getTransactionReceipt", [t["hash"]])
            self.assertEqual(rc["status"], "0x1", rc)

    # -- the winner orders its window ------------------------------------------
    def test_winner_orders_its_window(self):
        """Sale -> Purchased -> SaleSettled -> the daemon's grant (no CLI
        grant) -> the buyer's key orders a slot of its window, the executor's
        feed carries that order, and a slot it leaves alone is a miss."""
        bkey = ts.BUYER_KEYS[0]
        winner = ts.address(bkey)
        for cid in (1001, 1002):
            self.send(KEY0, "setRollupKey(uint64,address)", str(cid), ts.address(ROLLUP_KEY))
        self.send(bkey, "deposit()", value=10 ** 6 * GWEI)
        # 1 s slots; the sale window is 16 slots; a winner written in Python
        # gets 700 ms of each slot before the appliance orders it.
        d = self.daemon(**{
            "sequencer.slot_ms": 1000, "sequencer.proposer_deadline_ms": 300,
            "rights.enabled": 1, "rights.window_slots": 16, "rights.close_lead": 8,
            "rights.improve_lead": 5, "rights.ahead_slots": 12, "rights.price_gwei": 1000,
            "rights.floor_gwei": 100, "rights.cap": 100, "rights.target": 50,
            "rights.burn_bps": 1000, "rights.l1_block_ms": 1000,
            "l1.post_interval_ms": 60000})
        d.start()
        case, s = self.open_sale(d)
        n = s["sale"]
        case.buy(0, s, [1001, 1002], 2)
        self.wait_for("Purchased", lambda: self.logs("Purchased"), 60, d)

        done = case.wait_state(n, "settled", timeout=90)
        # settled, and so granted, before the window: improve_lead (5 s) covers
        # the draw block and its confirmation (2 x 1 s, config.c)
        self.assertLess(d.status()["slot"], s["startSlot"], "granted after the window began")
        [w] = done["settlement"]["winners"]
        self.assertEqual((w["buyer"], w["rollups"]), (winner, [1001, 1002]))
        self.wait_for("SaleSettled", lambda: self.logs("SaleSettled"), 60, d)
        self.assertEqual(int(self.logs("SaleSettled")[0]["topics"][1], 16), n)
        # the settlement's grant, written by the daemon: the whole window
        rows = [r.split("\t") for r in d.mezz("rights", "list").stdout.strip().splitlines()[1:]]
        self.assertEqual(sorted(rows), [[str(s["startSlot"]), str(s["endSlot"] - 1), str(cid),
                                         winner] for cid in (1001, 1002)])
        while d.status()["slot"] < s["startSlot"]:
            time.sleep(0.1)

        async def ordered():
            """One attempt at ordering a slot; None when the deadline won."""
            win = await pending_session(d.ws_url(), address=winner, key=bkey)
            feed = await ws_connect(d.ws_url())
            self.assertIn("result", await call(feed, "mezz_subscribe",
                                               ["blocks", {"namespaces": ["r1001"]}]))
            sender = await ws_connect(d.ws_url())
            datas, notes = await send_held(sender, win)
            by_data = {x["txs"][0]["data"]: x for x in notes}
            [slot] = {by_data[x]["slot"] for x in datas}
            # held for the next slot when this one is decided: submit once open
            while d.status()["slot"] < slot:
                await asyncio.sleep(0.05)
            own = rnd()
            res = await call(win, "mezz_submitSlotBlock", {
                "slot": slot, "txs": [{"pendingRef": by_data[x]["ref"]} for x in reversed(datas)]
                + [{"namespace": "r1001", "data": own}]})
            try:
                if "error" in res:
                    # too late for that slot on a slow machine: the appliance
                    # ordered it (a miss); try again in a later slot
                    self.assertRegex(res["error"]["message"], "open slot|already decided")
                    return None
                self.assertEqual(res["result"], {"accepted": True, "slot": slot,
                                                 "included": 3, "own": 1, "bundles": 0})
                answers = await recv_json(sender, 30)
                seq_of = {datas[a["id"]]: a["result"]["seq"] for a in answers}
                self.assertEqual(sorted(seq_of, key=seq_of.get), list(reversed(datas)))
                while True:  # the executor's block: exactly the winner's order
                    msg = await recv_json(feed, 30)
                    if msg.get("method") != "mezz_subscription":
                        continue
                    got = [t["data"] for ns in msg["params"]["result"].get("namespaces", [])
                           if ns["name"] == "r1001" for t in ns["txs"]]
                    if got:
                        self.assertEqual(got, list(reversed(datas)) + [own])
                        return slot
            finally:
                for ws in (win, feed, sender):
                    await ws.close()

        for _ in range(5):
            good = run_async(ordered(), timeout=60)
            if good:
                break
        else:
            self.fail("the winner never made a deadline in 5 slots")
        self.assertGreaterEqual(d.status()["proposer"]["accepted"], 1)

        async def left_alone():
            win = await pending_session(d.ws_url(), address=winner, key=bkey)
            sender = await ws_connect(d.ws_url())
            datas, notes = await send_held(sender, win)
            [slot] = {x["slot"] for x in notes if x["txs"][0]["data"] in datas}
            answers = await recv_json(sender, 30)  # the winner never submits
            seqs = [a["result"]["seq"] for a in sorted(answers, key=lambda a: a["id"])]
            self.assertEqual(seqs, sorted(seqs), "the fallback keeps arrival order")
            await win.close()
            await sender.close()
            return slot

        misses0 = d.status()["proposer"]["misses"]
        slot = run_async(left_alone(), timeout=60)
        self.assertNotEqual(slot, good)
        self.assertLess(slot, s["endSlot"], "the window ended before the test's second slot")
        self.assertGreater(d.status()["proposer"]["misses"], misses0)
        misses = [m.split("\t") for m in d.mezz("rights", "misses").stdout.strip().splitlines()[1:]]
        self.assertIn([str(slot), winner, "deadline", "3"], [m[:4] for m in misses])

    # -- a purchase the chain rejects -------------------------------------------
    def test_rejected_purchase_is_void_and_the_sale_settles(self):
        """B's purchase is taken (its deposit covers it at latest), then B
        withdraws before the postPurchases is mined: mining is paused while B
        buys and B's withdraw carries a far higher tip, so it is ordered
        first in the next block whatever the outbox's timing. The chain
        emits PurchaseRejected (unfunded); the daemon waits for the post's
        receipt, voids B's purchase (persisted: it survives kill -9), the
        allocation it closed with ({1001} on B's 5 tickets) is no longer
        valid and A's pair wins; SaleSettled balances; B is neither charged
        nor refunded."""
        a_key, b_key = ts.BUYER_KEYS[0], ts.BUYER_KEYS[1]
        a, b = ts.address(a_key), ts.address(b_key)
        for cid in (1001, 1002):
            self.send(KEY0, "setRollupKey(uint64,address)", str(cid), ts.address(ROLLUP_KEY))
        self.send(a_key, "deposit()", value=10 ** 6 * GWEI)
        d = self.daemon(**{
            "rights.enabled": 1, "rights.window_slots": 100, "rights.close_lead": 40,
            "rights.improve_lead": 20, "rights.ahead_slots": 80, "rights.price_gwei": 1000,
            "rights.floor_gwei": 100, "rights.cap": 5000, "rights.target": 2500,
            "rights.burn_bps": 1000, "rights.l1_block_ms": 1000,
            "l1.post_interval_ms": 60000})
        d.start()
        case, s = self.open_sale(d)
        n, p = s["sale"], s["priceGwei"]
        self.send(b_key, "deposit()", value=5 * p * GWEI)  # exactly B's purchase

        case.buy(0, s, [1001, 1002], 3)
        self.wait_for("A's purchase on L1", lambda: self.logs("Purchased"), 30, d)
        self.anvil.rpc("evm_setIntervalMining", [0])
        try:
            case.buy(1, s, [1001], 5)
            b_before = self.balance(b)
            tx = cast("send", "--rpc-url", self.anvil.url, "--private-key", b_key, "--async",
                      "--gas-price", "300gwei", "--priority-gas-price", "200gwei",
                      "--gas-limit", "200000",  # estimation would see the pending post
                      self.inbox, "withdraw(uint256)", str(5 * p * GWEI)).stdout.strip()
        finally:
            self.anvil.rpc("evm_setIntervalMining", [1])
        self.wait_for("PurchaseRejected", lambda: self.logs("PurchaseRejected"), 60, d)
        [rej] = self.logs("PurchaseRejected")
        self.assertEqual((int(rej["topics"][1], 16), "0x" + rej["topics"][2][-40:]), (n, b))
        self.assertEqual(int(rej["data"][-64:], 16), 2, "REJECT_UNFUNDED")
        wr = self.anvil.rpc("eth_getTransactionReceipt", [tx])
        self.assertEqual(wr["status"], "0x1")
        self.assertEqual(self.balance(b), b_before + 5 * p * GWEI - self.gas(wr))
        b_after = self.balance(b)

        closed = case.wait_state(n, "closed", timeout=60)
        self.assertEqual(closed["best"]["bundles"], [1], "B's 5 tickets on {1001} win at close")
        done = case.wait_state(n, "settled", timeout=90)
        self.assertEqual([(x["buyer"], x["void"]) for x in done["purchases"]],
                         [(a, False), (b, True)])
        self.assertEqual(done["best"]["bundles"], [0], "reallocated over what the chain took")
        st = done["settlement"]
        self.assertEqual([(w["buyer"], w["bundle"]) for w in st["winners"]], [(a, 0)])
        self.assertEqual(st["buyers"], [{"address": a, "paidGwei": 3 * p,
                                         "chargedGwei": 3 * p, "refundGwei": 0}])
        self.assertEqual(st["revenueGwei"], 3 * p)

        self.wait_for("SaleSettled", lambda: self.logs("SaleSettled"), 60, d)
        [ev] = self.logs("SaleSettled")
        self.assertEqual(int(ev["topics"][1], 16), n)
        data = bytes.fromhex(ev["data"][2:])
        self.assertEqual(int.from_bytes(data[0:32], "big"), 3 * p * GWEI)
        self.assertEqual(int.from_bytes(data[32:64], "big"), st["burnGwei"] * GWEI)
        self.assertEqual(int.from_bytes(data[64:96], "big"), 1, "one buyer settled")
        credited = sum(self.uint("claimableRevenue(uint64)(uint256)", str(c))
                       for c in (1001, 1002))
        self.assertEqual(credited + self.uint("totalBurned()(uint256)"), 3 * p * GWEI)
        self.assertEqual(credited, st["creditedGwei"] * GWEI)
        for who in (a, b):
            self.assertEqual(self.uint("escrow(uint64,address)(uint256)", str(n), who), 0)
            self.assertEqual(self.uint("claimableRefund(address)(uint256)", who), 0)
        self.assertEqual(self.uint("freeBalance(address)(uint256)", a), 10 ** 6 * GWEI - 3 * p * GWEI)
        self.assertEqual(self.uint("freeBalance(address)(uint256)", b), 0)
        self.assertEqual(self.balance(b), b_after, "B was neither charged nor refunded")
        for t in self.anvil.poster_txs():
            rc = self.anvil.rpc("eth_getTransactionReceipt", [t["hash"]])
            self.assertEqual(rc["status"], "0x1", rc)

        # the void is on disk: the rebuilt sale is the same sale
        d.kill9()
        d.start()
        again = d.rpc("mezz_getSale", {"sale": n})
        self.assertEqual(again["settlement"], st)
        self.assertEqual([x["void"] for x in again["purchases"]], [False, True])
