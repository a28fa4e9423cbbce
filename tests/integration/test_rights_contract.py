"""Execution-ticket money on the Inbox, on a real anvil: deposits and
withdrawals, EIP-712 purchases signed by `cast wallet sign --data` and
committed by the poster, skipped replays and unfunded buyers, every
settlement revert, a settlement's credits, and claims paid to the wei
(ETH balances read with `cast balance`, gas subtracted from receipts).
"""
import json
import os
import unittest

import test_contract as tc
from harness import BUILD, cast, sign_purchase

GWEI = 10 ** 9
OWNER, STRANGER, ROLLUP_KEY = tc.OWNER, tc.STRANGER, tc.ROLLUP_KEY
# anvil dev accounts 3..5: ticket buyers
BUYER_KEYS = ["0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
              "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
              "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba"]
KEYS = tc.KEYS + BUYER_KEYS
B1, B2, B3 = 3, 4, 5

POST_PURCHASES = "postPurchases(uint64,(uint64,uint64[],uint64,uint64,uint64)[],bytes[])"
SETTLE = "settleSale(uint64,((address,uint256,uint256)[],(uint64,uint256)[],uint256))"
EVENTS = dict(tc.EVENTS)
EVENTS.update({
    "Deposited": "Deposited(address,uint256,uint256)",
    "Withdrawn": "Withdrawn(address,uint256,uint256)",
    "Purchased": "Purchased(uint64,address,uint64,uint64,uint64,uint64[])",
    "PurchaseRejected": "PurchaseRejected(uint64,address,uint64,uint8)",
    "SaleSettled": "SaleSettled(uint64,uint256,uint256,uint64,uint64)",
    "RevenueCredited": "RevenueCredited(uint64,uint64,uint256)",
    "RefundClaimed": "RefundClaimed(address,uint256)",
    "RevenueClaimed": "RevenueClaimed(uint64,address,uint256)",
})
REJECT_NONCE_USED, REJECT_UNFUNDED = 1, 2


def word(data, i):
    return tc.word(data, i)


class RightsContractTest(tc.AnvilInboxCase):
    EVENTS = EVENTS

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.addrs = list(tc.ADDRS) + [
            cast("wallet", "address", "--private-key", k).stdout.strip().lower()
            for k in BUYER_KEYS]
        cls.chain_id = int(cls.rpc("eth_chainId")["result"], 16)

    # -- helpers -----------------------------------------------------------
    def tx(self, who, sig, *args, value=None):
        cmd = ["send", "--rpc-url", self.rpc_url, "--private-key", KEYS[who], "--json"]
        if value is not None:
            cmd += ["--value", str(value)]
        r = json.loads(cast(*cmd, self.inbox, sig, *args).stdout)
        self.assertEqual(r["status"], "0x1", r)
        return r

    def reverts(self, who, sig, args, error_sig, *error_args, value=0):
        data = cast("calldata", sig, *args).stdout.strip()
        doc = self.rpc("eth_call", [{"from": self.addrs[who], "to": self.inbox, "data": data,
                                     "value": hex(value)}, "latest"])
        self.assertIn("error", doc, "%s did not revert" % sig)
        want = cast("calldata", error_sig, *[str(a) for a in error_args]).stdout.strip()
        self.assertEqual(doc["error"].get("data"), want, "%s should revert with %s%r" %
                         (sig, error_sig, error_args))

    def logs(self, receipt, name):
        topic0 = cast("keccak", EVENTS[name]).stdout.strip()
        return [(lg["topics"], bytes.fromhex(lg["data"][2:])) for lg in receipt["logs"]
                if lg["address"].lower() == self.inbox and lg["topics"][0] == topic0]

    def inbox_log_count(self, receipt):
        return len([lg for lg in receipt["logs"] if lg["address"].lower() == self.inbox])

    def uint(self, sig, *args):
        return int(self.view(sig, *args).split()[0])

    def balance(self, who):
        return int(cast("balance", "--rpc-url", self.rpc_url, self.addrs[who]).stdout.strip())

    @staticmethod
    def gas_cost(receipt):
        return int(receipt["gasUsed"], 16) * int(receipt["effectiveGasPrice"], 16)

    def sign(self, who, sale, rollups, tickets, price, nonce):
        return sign_purchase(KEYS[who], sale, rollups, tickets, price, nonce, self.chain_id,
                             self.inbox)

    @staticmethod
    def purchases_args(sale, items):
        """items: (purchase tuple, signature) pairs -> postPurchases arguments."""
        ps = ",".join("(%d,[%s],%d,%d,%d)" % (p[0], ",".join(str(r) for r in p[1]), p[2], p[3],
                                              p[4]) for p, _ in items)
        return (str(sale), "[%s]" % ps, "[%s]" % ",".join(s for _, s in items))

    def purchase(self, who, sale, rollups, tickets, price, nonce):
        return ((sale, rollups, tickets, price, nonce),
                self.sign(who, sale, rollups, tickets, price, nonce))

    @staticmethod
    def settlement(buyers, credits, burn):
        b = ",".join("(%s,%d,%d)" % x for x in buyers)
        c = ",".join("(%d,%d)" % x for x in credits)
        return "([%s],[%s],%d)" % (b, c, burn)

    def deposit(self, who, wei):
        return self.tx(who, "deposit()", value=wei)

    # -- deposits and withdrawals -----------------------------------------
    def test_deposit_and_withdraw(self):
        before = self.balance(B1)
        r = self.deposit(B1, 5 * GWEI)
        [(topics, data)] = self.logs(r, "Deposited")
        self.assertEqual(tc.addr_of(topics[1]), self.addrs[B1])
        self.assertEqual((word(data, 0), word(data, 1)), (5 * GWEI, 5 * GWEI))
        r2 = self.deposit(B1, 7)
        [(_, data)] = self.logs(r2, "Deposited")
        self.assertEqual((word(data, 0), word(data, 1)), (7, 5 * GWEI + 7))
        self.assertEqual(self.uint("freeBalance(address)(uint256)", self.addrs[B1]), 5 * GWEI + 7)
        self.assertEqual(self.balance(B1),
                         before - 5 * GWEI - 7 - self.gas_cost(r) - self.gas_cost(r2))

        self.reverts(B1, "withdraw(uint256)", (str(5 * GWEI + 8),),
                     "InsufficientBalance(uint256,uint256)", 5 * GWEI + 7, 5 * GWEI + 8)
        self.reverts(B2, "withdraw(uint256)", ("1",), "InsufficientBalance(uint256,uint256)", 0, 1)
        before = self.balance(B1)
        r = self.tx(B1, "withdraw(uint256)", str(2 * GWEI))
        [(topics, data)] = self.logs(r, "Withdrawn")
        self.assertEqual(tc.addr_of(topics[1]), self.addrs[B1])
        self.assertEqual((word(data, 0), word(data, 1)), (2 * GWEI, 3 * GWEI + 7))
        self.assertEqual(self.balance(B1), before + 2 * GWEI - self.gas_cost(r))
        self.assertEqual(self.uint("freeBalance(address)(uint256)", self.addrs[B1]), 3 * GWEI + 7)

    # -- purchases ---------------------------------------------------------
    def test_purchases_debit_into_escrow_and_skip_replays_and_unfunded(self):
        sale = 9
        self.deposit(B1, 100 * GWEI)
        self.deposit(B2, 10 * GWEI)
        # the contract's digest is the one cast signed
        p, sig = self.purchase(B1, sale, [1, 2], 3, 10, 1)
        items = [(p, sig),
                 self.purchase(B2, sale, [2], 1, 10, 1),    # B2's nonce 1 is its own
                 self.purchase(B1, sale, [1, 2], 1, 10, 1), # replays B1's nonce 1
                 self.purchase(B2, sale, [3], 1, 10, 2),    # B2 has 0 left: unfunded
                 self.purchase(B1, sale, [3], 2, 5, 2)]
        r = self.tx(OWNER, POST_PURCHASES, *self.purchases_args(sale, items))
        bought = self.logs(r, "Purchased")
        rejected = self.logs(r, "PurchaseRejected")
        self.assertEqual(len(bought), 3)
        self.assertEqual(len(rejected), 2)
        self.assertEqual(self.inbox_log_count(r), 5)
        got = [(int(t[1], 16), tc.addr_of(t[2]), word(d, 0), word(d, 1), word(d, 2),
                [word(d, 5 + i) for i in range(word(d, 4))]) for t, d in bought]
        self.assertEqual(got, [(sale, self.addrs[B1], 1, 3, 10, [1, 2]),
                               (sale, self.addrs[B2], 1, 1, 10, [2]),
                               (sale, self.addrs[B1], 2, 2, 5, [3])])
        for t, d in bought:
            self.assertEqual(word(d, 3), 4 * 32)
        got = [(int(t[1], 16), tc.addr_of(t[2]), word(d, 0), word(d, 1)) for t, d in rejected]
        self.assertEqual(got, [(sale, self.addrs[B1], 1, REJECT_NONCE_USED),
                               (sale, self.addrs[B2], 2, REJECT_UNFUNDED)])
        self.assertEqual(self.uint("freeBalance(address)(uint256)", self.addrs[B1]), 60 * GWEI)
        self.assertEqual(self.uint("freeBalance(address)(uint256)", self.addrs[B2]), 0)
        self.assertEqual(self.uint("escrow(uint64,address)(uint256)", str(sale), self.addrs[B1]),
                         40 * GWEI)
        self.assertEqual(self.uint("escrow(uint64,address)(uint256)", str(sale), self.addrs[B2]),
                         10 * GWEI)
        self.assertEqual(self.view("sales(uint64)(uint32,bool)", str(sale)).split(),
                         ["2", "false"])
        self.assertEqual(self.view("nonceUsed(address,uint64)(bool)", self.addrs[B2], "2"),
                         "false")
        # an unfunded purchase goes through once the buyer has deposited
        self.deposit(B2, 10 * GWEI)
        r = self.tx(OWNER, POST_PURCHASES, *self.purchases_args(sale, [items[3]]))
        self.assertEqual(len(self.logs(r, "Purchased")), 1)
        self.assertEqual(self.uint("escrow(uint64,address)(uint256)", str(sale), self.addrs[B2]),
                         20 * GWEI)
        self.assertEqual(self.view("sales(uint64)(uint32,bool)", str(sale)).split()[0], "2")
        # Purchased names B1 and B2, so the contract recovered cast's signers:
        # its digest is eth_signTypedData_v4's. The domain, spelled out:
        enc = cast("abi-encode", "f(bytes32,bytes32,bytes32,uint256,address)",
                   cast("keccak", "EIP712Domain(string name,string version,uint256 chainId,"
                        "address verifyingContract)").stdout.strip(),
                   cast("keccak", "mezzanine").stdout.strip(), cast("keccak", "1").stdout.strip(),
                   str(self.chain_id), self.inbox).stdout.strip()
        self.assertEqual(self.view("domainSeparator()(bytes32)"),
                         cast("keccak", enc).stdout.strip())

    def test_purchase_reverts(self):
        sale = 4
        self.deposit(B1, 100 * GWEI)
        good = self.purchase(B1, sale, [1], 1, 10, 7)
        args = self.purchases_args(sale, [good])
        self.reverts(STRANGER, POST_PURCHASES, args, "NotPoster(address)", self.addrs[STRANGER])
        self.reverts(OWNER, POST_PURCHASES, (args[0], args[1], "[]"),
                     "SignatureCountMismatch(uint256,uint256)", 1, 0)
        self.reverts(OWNER, POST_PURCHASES, self.purchases_args(5, [good]),
                     "WrongSale(uint256,uint64)", 0, sale)
        # a signature over other fields recovers another address: its owner
        # (a random key) has no balance, so it is skipped, not charged to B1
        other = ((sale, [1], 2, 10, 7), good[1])
        r = self.tx(OWNER, POST_PURCHASES, *self.purchases_args(sale, [other]))
        [(t, d)] = self.logs(r, "PurchaseRejected")
        self.assertNotEqual(tc.addr_of(t[2]), self.addrs[B1])
        self.assertEqual(word(d, 1), REJECT_UNFUNDED)
        sig = good[1]
        r_, s_, v = sig[2:66], int(sig[66:130], 16), int(sig[130:132], 16)
        n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
        high = "0x%s%064x%02x" % (r_, n - s_, 55 - v)  # the malleated twin
        for bad in (high, sig[:-2] + "00", sig[:-2] + "1d", sig[:-2], sig + "00",
                    "0x" + "00" * 64 + "1b"):
            self.reverts(OWNER, POST_PURCHASES, (args[0], args[1], "[%s]" % bad),
                         "BadSignature(uint256)", 0)
        zero = self.purchase(B1, sale, [1], 0, 10, 8)
        self.reverts(OWNER, POST_PURCHASES, self.purchases_args(sale, [good, zero]),
                     "EmptyPurchase(uint256)", 1)
        # nothing moved; the good one still works
        self.assertEqual(self.uint("freeBalance(address)(uint256)", self.addrs[B1]), 100 * GWEI)
        self.tx(OWNER, POST_PURCHASES, *args)
        self.assertEqual(self.uint("escrow(uint64,address)(uint256)", str(sale), self.addrs[B1]),
                         10 * GWEI)

    # -- settlement --------------------------------------------------------
    def setup_sale(self, sale=1):
        """B1 buys 3 tickets on [10, 20] and B2 2 on [20] at 10 gwei; rollups
        10 and 20 have keys (ROLLUP_KEY and STRANGER)."""
        self.tx(OWNER, "setRollupKey(uint64,address)", "10", self.addrs[ROLLUP_KEY])
        self.tx(OWNER, "setRollupKey(uint64,address)", "20", self.addrs[STRANGER])
        self.deposit(B1, 50 * GWEI)
        self.deposit(B2, 50 * GWEI)
        items = [self.purchase(B1, sale, [10, 20], 3, 10, 1),
                 self.purchase(B2, sale, [20], 2, 10, 1)]
        self.tx(OWNER, POST_PURCHASES, *self.purchases_args(sale, items))
        b1, b2 = self.addrs[B1], self.addrs[B2]
        return sorted([b1, b2])

    def good_settlement(self):
        """[10, 20] won: B1 charged 30 gwei, B2 refunded 20; 10% burned, the
        rest split 18/9 between rollups 10 and 20."""
        buyers = sorted([(self.addrs[B1], 30 * GWEI, 0), (self.addrs[B2], 0, 20 * GWEI)])
        return buyers, [(10, 18 * GWEI), (20, 9 * GWEI)], 3 * GWEI

    def test_settlement_reverts(self):
        sale = 1
        self.setup_sale(sale)
        buyers, credits, burn = self.good_settlement()
        ok = self.settlement(buyers, credits, burn)
        self.reverts(STRANGER, SETTLE, (str(sale), ok), "NotPoster(address)", self.addrs[STRANGER])
        # wrong sums
        self.reverts(OWNER, SETTLE, (str(sale), self.settlement(buyers, credits, burn + 1)),
                     "Unbalanced(uint256,uint256,uint256)", 30 * GWEI, 27 * GWEI, burn + 1)
        bad = [(10, 18 * GWEI), (20, 9 * GWEI - 1)]
        self.reverts(OWNER, SETTLE, (str(sale), self.settlement(buyers, bad, burn)),
                     "Unbalanced(uint256,uint256,uint256)", 30 * GWEI, 27 * GWEI - 1, burn)
        b = [(a, c, r_ + (1 if i == 0 else 0)) for i, (a, c, r_) in enumerate(buyers)]
        self.reverts(OWNER, SETTLE, (str(sale), self.settlement(b, credits, burn)),
                     "EscrowMismatch(address,uint256,uint256)", b[0][0],
                     b[0][1] + b[0][2] - 1, b[0][1] + b[0][2])
        # duplicate, unsorted, missing and stranger buyers
        self.reverts(OWNER, SETTLE, (str(sale), self.settlement([buyers[0], buyers[0]],
                                                                credits, burn)),
                     "BuyersUnsorted(uint256)", 1)
        self.reverts(OWNER, SETTLE, (str(sale), self.settlement(buyers[::-1], credits, burn)),
                     "BuyersUnsorted(uint256)", 1)
        self.reverts(OWNER, SETTLE, (str(sale), self.settlement(buyers[:1], credits, burn)),
                     "BuyerCountMismatch(uint256,uint256)", 2, 1)
        stranger = sorted([buyers[0], (self.addrs[B3], 0, 0)])
        self.reverts(OWNER, SETTLE, (str(sale), self.settlement(stranger, credits, burn)),
                     "EscrowMismatch(address,uint256,uint256)", self.addrs[B3], 0, 0)
        # credits: unsorted, duplicate
        self.reverts(OWNER, SETTLE, (str(sale), self.settlement(buyers, credits[::-1], burn)),
                     "CreditsUnsorted(uint256)", 1)
        self.reverts(OWNER, SETTLE,
                     (str(sale), self.settlement(buyers, [(10, 9 * GWEI), (10, 18 * GWEI)],
                                                 burn)),
                     "CreditsUnsorted(uint256)", 1)
        # a sale nobody bought into has no buyers to settle; one with buyers
        # cannot be settled as empty
        self.reverts(OWNER, SETTLE, (str(sale), self.settlement([], [], 0)),
                     "BuyerCountMismatch(uint256,uint256)", 2, 0)
        # the good one, then never again, and no purchases into it afterwards
        self.tx(OWNER, SETTLE, str(sale), ok)
        self.reverts(OWNER, SETTLE, (str(sale), ok), "SaleAlreadySettled(uint64)", sale)
        late = self.purchase(B1, sale, [10], 1, 10, 9)
        self.reverts(OWNER, POST_PURCHASES, self.purchases_args(sale, [late]),
                     "SaleAlreadySettled(uint64)", sale)

    def test_credit_to_an_unregistered_rollup_is_kept_until_it_has_a_key(self):
        """Rollup 30 has no key when the sale settles: the settlement lands
        (a revert would lock every buyer's escrow for good, a sale settles
        once), 30's credit waits, nobody can take it, and the key the owner
        registers later pulls exactly it."""
        sale = 1
        self.setup_sale(sale)
        buyers, _, burn = self.good_settlement()
        r = self.tx(OWNER, SETTLE, str(sale),
                    self.settlement(buyers, [(10, 18 * GWEI), (30, 9 * GWEI)], burn))
        self.assertEqual(len(self.logs(r, "SaleSettled")), 1)
        self.assertEqual(self.uint("escrow(uint64,address)(uint256)", str(sale), self.addrs[B1]), 0)
        self.assertEqual(self.uint("claimableRefund(address)(uint256)", self.addrs[B2]), 20 * GWEI)
        self.assertEqual(self.uint("claimableRevenue(uint64)(uint256)", "30"), 9 * GWEI)
        for who in (OWNER, STRANGER, B1):
            self.reverts(who, "claimRevenue(uint64)", ("30",), "NotRollupKey(uint64,address)",
                         30, self.addrs[who])
        self.tx(OWNER, "setRollupKey(uint64,address)", "30", self.addrs[B3])
        before = self.balance(B3)
        r = self.tx(B3, "claimRevenue(uint64)", "30")
        [(t, d)] = self.logs(r, "RevenueClaimed")
        self.assertEqual((int(t[1], 16), tc.addr_of(t[2]), word(d, 0)),
                         (30, self.addrs[B3], 9 * GWEI))
        self.assertEqual(self.balance(B3), before + 9 * GWEI - self.gas_cost(r))
        self.assertEqual(self.uint("claimableRevenue(uint64)(uint256)", "30"), 0)

    def test_settlement_credits_and_claims_pay_exactly(self):
        sale = 1
        self.setup_sale(sale)
        buyers, credits, burn = self.good_settlement()
        inbox_before = int(cast("balance", "--rpc-url", self.rpc_url, self.inbox).stdout)
        r = self.tx(OWNER, SETTLE, str(sale), self.settlement(buyers, credits, burn))
        [(t, d)] = self.logs(r, "SaleSettled")
        self.assertEqual(int(t[1], 16), sale)
        self.assertEqual([word(d, i) for i in range(4)], [30 * GWEI, 3 * GWEI, 2, 2])
        got = [(int(t[1], 16), int(t[2], 16), word(d, 0)) for t, d in
               self.logs(r, "RevenueCredited")]
        self.assertEqual(got, [(sale, 10, 18 * GWEI), (sale, 20, 9 * GWEI)])
        self.assertEqual(self.inbox_log_count(r), 3)
        self.assertEqual(self.view("sales(uint64)(uint32,bool)", str(sale)).split()[1], "true")
        self.assertEqual(self.uint("escrow(uint64,address)(uint256)", str(sale), self.addrs[B1]), 0)
        self.assertEqual(self.uint("claimableRefund(address)(uint256)", self.addrs[B2]), 20 * GWEI)
        self.assertEqual(self.uint("claimableRefund(address)(uint256)", self.addrs[B1]), 0)
        self.assertEqual(self.uint("claimableRevenue(uint64)(uint256)", "10"), 18 * GWEI)
        self.assertEqual(self.uint("totalBurned()(uint256)"), 3 * GWEI)

        # refunds: B2 gets exactly 20 gwei; B1 has nothing to claim
        self.reverts(B1, "claimRefund()", (), "NothingToClaim()")
        before = self.balance(B2)
        r = self.tx(B2, "claimRefund()")
        [(t, d)] = self.logs(r, "RefundClaimed")
        self.assertEqual((tc.addr_of(t[1]), word(d, 0)), (self.addrs[B2], 20 * GWEI))
        self.assertEqual(self.balance(B2), before + 20 * GWEI - self.gas_cost(r))
        self.reverts(B2, "claimRefund()", (), "NothingToClaim()")

        # revenue: only the rollup's key claims, and it is paid to that key
        self.reverts(B1, "claimRevenue(uint64)", ("10",), "NotRollupKey(uint64,address)", 10,
                     self.addrs[B1])
        self.reverts(STRANGER, "claimRevenue(uint64)", ("10",), "NotRollupKey(uint64,address)",
                     10, self.addrs[STRANGER])
        self.reverts(OWNER, "claimRevenue(uint64)", ("30",), "NotRollupKey(uint64,address)", 30,
                     self.addrs[OWNER])
        for rid, who, amount in ((10, ROLLUP_KEY, 18 * GWEI), (20, STRANGER, 9 * GWEI)):
            before = self.balance(who)
            r = self.tx(who, "claimRevenue(uint64)", str(rid))
            [(t, d)] = self.logs(r, "RevenueClaimed")
            self.assertEqual((int(t[1], 16), tc.addr_of(t[2]), word(d, 0)),
                             (rid, self.addrs[who], amount))
            self.assertEqual(self.balance(who), before + amount - self.gas_cost(r))
            self.reverts(who, "claimRevenue(uint64)", (str(rid),), "NothingToClaim()")
        # what stays in the contract: B1's and B2's untouched free balances and the burn
        inbox_after = int(cast("balance", "--rpc-url", self.rpc_url, self.inbox).stdout)
        self.assertEqual(inbox_after, inbox_before - 20 * GWEI - 27 * GWEI)
        self.assertEqual(inbox_after, 20 * GWEI + 30 * GWEI + 3 * GWEI)

    def test_abi_lists_rights_functions_events_and_errors(self):
        names = {(e["type"], e.get("name")) for e in self.abi}
        for fn in ("deposit", "withdraw", "postPurchases", "settleSale", "claimRefund",
                   "claimRevenue", "freeBalance", "escrow", "claimableRefund",
                   "claimableRevenue", "domainSeparator", "purchaseDigest", "sales"):
            self.assertIn(("function", fn), names)
        for ev in EVENTS:
            self.assertIn(("event", ev), names)


if __name__ == "__main__":
    unittest.main()
