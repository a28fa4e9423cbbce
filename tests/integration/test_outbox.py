"""The outbox against a real anvil: batches land in order and are finalized,
fee bumps and the fee cap, a reorg that drops a post, kill -9 between signing
and sending and between sending and mining, and an L1 outage.

Each test starts its own anvil on a free port, deploys the Inbox (poster =
anvil's account 0, start height 1), writes a keystore for that key with
`cast wallet import`, and starts the real daemon posting to it.

anvil's tags: "safe" is latest - 32 * slots_per_epoch... precisely, anvil
answers finalized = latest - 2 * slots_in_an_epoch (64 by default); the
tests start it with --slots-in-an-epoch 1, so finalized = latest - 2.
"""
import hashlib
import http.server
import json
import os
import shutil
import signal
import sqlite3
import ssl
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.request

from harness import (BUILD, CAST, MEZZ, MEZZANINE_TEST, Daemon, cast, free_port, run_async,
                     ws_call, ws_connect)

CONTRACTS = os.path.join(BUILD, "contracts")
KEY0 = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
ADDR0 = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"
ADDR1 = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"  # anvil's account 1
BATCH_TOPIC = None  # keccak of the BatchPosted signature, set on first use
GWEI = 10 ** 9


def find_anvil():
    a = shutil.which("anvil")
    if a:
        return a
    if CAST:
        a = os.path.join(os.path.dirname(CAST), "anvil")
        if os.access(a, os.X_OK):
            return a
    return None


class Anvil:
    def __init__(self, args=(), port=None):
        self.bin = find_anvil()
        if self.bin is None:
            raise unittest.SkipTest("anvil not found")
        self.port = port or free_port()
        self.args = list(args)
        self.proc = None

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def start(self):
        self.proc = subprocess.Popen([self.bin, "--port", str(self.port), "--silent",
                                      "--slots-in-an-epoch", "1", *self.args],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 20
        while True:
            try:
                self.rpc("eth_chainId")
                return self
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def rpc(self, method, params=None):
        req = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method,
                          "params": params or []}).encode()
        r = urllib.request.Request(self.url, data=req,
                                   headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(r, timeout=10) as resp:
            doc = json.loads(resp.read())
        if "error" in doc:
            raise AssertionError("anvil %s: %r" % (method, doc["error"]))
        return doc["result"]

    def block_number(self):
        return int(self.rpc("eth_blockNumber"), 16)

    def deploy(self):
        with open(os.path.join(CONTRACTS, "Inbox.bin")) as f:
            code = f.read().strip()
        args = cast("abi-encode", "c(address,uint64)", ADDR0, "1").stdout.strip()
        r = json.loads(cast("send", "--rpc-url", self.url, "--private-key", KEY0, "--json",
                            "--create", code + args[2:]).stdout)
        assert r["status"] == "0x1", r
        return r["contractAddress"].lower()

    def batch_logs(self, inbox, to_block="latest"):
        global BATCH_TOPIC
        if BATCH_TOPIC is None:
            BATCH_TOPIC = cast("keccak", "BatchPosted(uint64,bytes32,uint64,uint64,bytes32,"
                               "uint64[],bytes32[])").stdout.strip()
        logs = self.rpc("eth_getLogs", [{"address": inbox, "fromBlock": "earliest",
                                         "toBlock": to_block, "topics": [BATCH_TOPIC]}])
        out = []
        for lg in logs:
            data = bytes.fromhex(lg["data"][2:])
            out.append({"index": int(lg["topics"][1], 16), "hash": lg["topics"][2],
                        "from": int.from_bytes(data[0:32], "big"),
                        "to": int.from_bytes(data[32:64], "big"),
                        "daRoot": "0x" + data[64:96].hex(), "tx": lg["transactionHash"],
                        "block": int(lg["blockNumber"], 16)})
        return out

    def view(self, inbox, sig, *args, block=None):
        at = ("--block", str(block)) if block is not None else ()
        return cast("call", "--rpc-url", self.url, *at, inbox, sig, *args).stdout.strip()

    def poster_txs(self):
        """Every transaction account 0 sent (the deployment first), in chain order."""
        out = []
        for n in range(1, self.block_number() + 1):
            b = self.rpc("eth_getBlockByNumber", [hex(n), True])
            for tx in b["transactions"]:
                if tx["from"].lower() == ADDR0:
                    out.append(tx)
        return out


def keystore(dirpath):
    ks = os.path.join(dirpath, "ks")
    os.makedirs(ks, exist_ok=True)
    cast("wallet", "import", "poster", "--private-key", KEY0, "--unsafe-password", "pw",
         "--keystore-dir", ks)
    pw = os.path.join(dirpath, "ks.pw")
    with open(pw, "w") as f:
        f.write("pw\n")
    return os.path.join(ks, "poster"), pw


class OutboxCase(unittest.TestCase):
    ANVIL_ARGS = ()

    def setUp(self):
        if not os.path.exists(os.path.join(CONTRACTS, "Inbox.bin")):
            self.fail("Inbox.bin missing: run `make contracts`")
        self.tmp = tempfile.mkdtemp(prefix="mezz-l1-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.anvil = Anvil(self.ANVIL_ARGS).start()
        self.addCleanup(self.anvil.stop)
        self.inbox = self.anvil.deploy()
        self.ks, self.pw = keystore(self.tmp)
        self.data = os.path.join(self.tmp, "data")
        os.makedirs(self.data)

    def daemon(self, env=None, **settings):
        s = {"l1.rpc_urls": self.anvil.url, "l1.chain_id": "31337", "l1.inbox": self.inbox,
             "l1.keystore": self.ks, "l1.keystore_password_file": self.pw,
             "l1.post_interval_ms": "300", "l1.bump_after_blocks": "1",
             "l1.timeout_ms": "2000", "da.k": "2", "da.m": "2"}
        s.update({k.replace("__", "."): str(v) for k, v in settings.items()})
        d = Daemon(MEZZANINE_TEST, s, env=env, data_dir=self.data, slot_ms=100)
        self.addCleanup(d.kill9)
        return d

    def l1(self, d):
        return d.status()["l1"]

    def wait_for(self, what, fn, timeout=30.0, d=None):
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            last = fn()
            if last:
                return last
            time.sleep(0.1)
        self.fail("%s not reached in %.0fs (l1 %r)\n%s" % (
            what, timeout, self.l1(d) if d and d.alive() else None, d.log() if d else ""))

    def journal(self):
        db = sqlite3.connect("file:%s?mode=ro" % os.path.join(self.data, "outbox.db"), uri=True)
        try:
            return db.execute("SELECT nonce, tip, max_fee, hex(hash), job FROM txs"
                              " ORDER BY created_ms, rowid").fetchall()
        finally:
            db.close()

    def check_chain(self, upto=None):
        """Batch events contiguous from index 0 and height 1, each index once,
        hashes as the contract stores them, every poster tx succeeded, nonces
        0.. without gap or repeat (nonce 0 was the deployment)."""
        # one L1 block for every read: the daemon keeps posting meanwhile
        at = self.anvil.block_number()
        logs = self.anvil.batch_logs(self.inbox, to_block=hex(at))
        self.assertEqual([lg["index"] for lg in logs], list(range(len(logs))))
        nxt = 1
        for lg in logs:
            self.assertEqual(lg["from"], nxt, logs)
            self.assertGreaterEqual(lg["to"], lg["from"])
            nxt = lg["to"] + 1
        if upto is not None:
            self.assertGreaterEqual(nxt - 1, upto)
        for lg in logs[-3:]:
            self.assertEqual(self.anvil.view(self.inbox, "batchHash(uint64)(bytes32)",
                                             str(lg["index"]), block=at), lg["hash"])
        txs = self.anvil.poster_txs()
        self.assertEqual([int(t["nonce"], 16) for t in txs], list(range(len(txs))))
        for t in txs:
            r = self.anvil.rpc("eth_getTransactionReceipt", [t["hash"]])
            self.assertEqual(r["status"], "0x1", "poster tx reverted: %r" % r)
        self.assertEqual(int(self.anvil.view(self.inbox, "batchCount()(uint32)", block=at)),
                         len(logs))
        return logs


class BatchesTest(OutboxCase):
    ANVIL_ARGS = ("--block-time", "1")

    def test_batches_land_in_order_then_posted_and_finalized_events(self):
        d = self.daemon().start()
        d.setup_tenant("t", "rollup", 901)
        for i in range(5):
            d.send("rollup", b"tx-%d" % i)
        t0 = time.time()
        self.wait_for("posted height 20", lambda: self.l1(d)["postedHeight"] >= 20, d=d)
        h = self.wait_for("finalized height 20",
                          lambda: d.status()["finalizedHeight"] >= 20 and
                          d.status()["finalizedHeight"], d=d)

        async def events():
            async with ws_connect(d.ws_url()) as ws:
                await ws_call(ws, "mezz_subscribe", ["blocks", {"fromHeight": 1}])
                seen = {"posted": [], "finalized": []}
                while len(seen["finalized"]) < h:
                    r = json.loads(await ws.recv())["params"]["result"]
                    if r["level"] in seen:
                        seen[r["level"]].append(r)
                return seen
        seen = run_async(events())
        self.assertEqual([r["height"] for r in seen["posted"][:h]], list(range(1, h + 1)))
        self.assertEqual([r["height"] for r in seen["finalized"][:h]], list(range(1, h + 1)))
        logs = {lg["index"]: lg for lg in self.check_chain(upto=h)}
        for r in seen["finalized"][:h]:
            lg = logs[r["batchIndex"]]
            self.assertTrue(lg["from"] <= r["height"] <= lg["to"])
            self.assertEqual(r["l1TxHash"], lg["tx"])
            self.assertEqual(r["l1BlockNumber"], lg["block"])
            self.assertEqual(r["l1Status"], "finalized")
        # daRoot of the first batch, recomputed from the available events
        first = logs[0]
        self.assertEqual(first["daRoot"], self.da_root(d, first["from"], first["to"]))

        async def resumed():  # blocks 1..h had; their L1 levels asked for again
            async with ws_connect(d.ws_url()) as ws:
                await ws_call(ws, "mezz_subscribe", ["blocks", {
                    "fromHeight": h + 1, "levels": ["posted", "finalized"],
                    "levelsFrom": {"posted": 1, "finalized": 1}}])
                got = {"sealed": [], "posted": [], "finalized": []}
                while len(got["finalized"]) < h:
                    r = json.loads(await ws.recv())["params"]["result"]
                    got[r["level"]].append(r)
                return got
        got = run_async(resumed())
        self.assertEqual([r["height"] for r in got["finalized"]], list(range(1, h + 1)))
        self.assertEqual([r["height"] for r in got["posted"][:h]], list(range(1, h + 1)))
        self.assertEqual(got["finalized"], seen["finalized"][:h])
        self.assertTrue(all(r["height"] > h for r in got["sealed"]), got["sealed"][:1])
        n = len(logs)
        self.__class__.rate = (n, time.time() - t0)
        print("  batches: %d in %.1fs (%.1f/min), %d superblocks"
              % (n, time.time() - t0, 60.0 * n / (time.time() - t0), h), flush=True)

    def da_root(self, d, frm, to):
        """docs/PROTOCOL-ethereum.md: leaves keccak(0x00 || height u64 || recordHash)."""
        db = sqlite3.connect("file:%s?mode=ro" % os.path.join(self.data, "mezzanine.db"),
                             uri=True)
        try:
            recs = dict(db.execute("SELECT height, record FROM da_blocks WHERE height"
                                   " BETWEEN ? AND ?", (frm, to)).fetchall())
        finally:
            db.close()
        leaves = []
        for hgt in range(frm, to + 1):
            commitment = hashlib.sha256(recs[hgt]).hexdigest()  # da_record_hash
            leaves.append(cast("keccak", "0x00%016x%s" % (hgt, commitment)).stdout.strip())
        while len(leaves) > 1:
            nxt = [cast("keccak", "0x01" + leaves[i][2:] + leaves[i + 1][2:]).stdout.strip()
                   for i in range(0, len(leaves) - 1, 2)]
            if len(leaves) % 2:
                nxt.append(leaves[-1])
            leaves = nxt
        return leaves[0]


class RetentionTest(OutboxCase):
    """Retention never prunes what L1 has not posted: with nothing mined,
    neither transaction payloads nor shards go, however short the retention;
    once batches land, both floors follow the posted height."""

    def floors(self):
        db = sqlite3.connect("file:%s?mode=ro" % os.path.join(self.data, "mezzanine.db"),
                             uri=True)
        try:
            rows = dict(db.execute("SELECT k, v FROM meta WHERE k IN "
                                   "('txs_pruned_below', 'shards_pruned_below')").fetchall())
        finally:
            db.close()
        return rows.get("txs_pruned_below", 0), rows.get("shards_pruned_below", 0)

    def test_nothing_pruned_before_it_is_posted(self):
        self.anvil.rpc("evm_setAutomine", [False])
        d = self.daemon(storage__tx_retention_blocks=1, da__retention_blocks=1).start()
        d.setup_tenant("t", "rollup", 902)
        for i in range(5):
            d.send("rollup", b"r-%d" % i)
        self.wait_for("20 blocks available", lambda: d.status()["availableHeight"] >= 20, d=d)
        time.sleep(0.5)
        self.assertEqual(d.status()["postedHeight"], 0)
        txs, shards = self.floors()
        self.assertLessEqual(txs, 1, "payloads pruned before they were posted")
        self.assertLessEqual(shards, 1, "shards pruned before they were posted")
        self.assertTrue(os.listdir(os.path.join(self.data, "shards")))
        self.anvil.rpc("evm_setAutomine", [True])
        self.anvil.rpc("evm_mine")
        self.wait_for("posted 20", lambda: self.l1(d)["postedHeight"] >= 20, d=d)
        self.wait_for("floors past 10", lambda: min(self.floors()) > 10, d=d)
        posted = d.status()["postedHeight"]
        self.assertLessEqual(max(self.floors()), posted + 1)


class FeesTest(OutboxCase):
    def test_stuck_transaction_is_replaced_with_higher_fees_same_nonce(self):
        self.anvil.rpc("evm_setAutomine", [False])
        d = self.daemon(**{"l1.max_fee_gwei": "1000"}).start()
        self.wait_for("a first transaction", lambda: self.journal(), d=d)
        # the base fee jumps over the first tx's maxFee: a block without it
        self.anvil.rpc("anvil_setNextBlockBaseFeePerGas", [hex(40 * GWEI)])
        self.anvil.rpc("evm_mine")
        rows = self.wait_for("a fee bump", lambda: len(self.journal()) >= 2 and self.journal(),
                             d=d)
        first, second = rows[0], rows[1]
        self.assertEqual(first[0], second[0], "replacement must keep the nonce")
        self.assertEqual(first[4], second[4], "same job")
        self.assertGreaterEqual(second[1] * 10, first[1] * 11, rows)
        self.assertGreaterEqual(second[2] * 10, first[2] * 11, rows)
        # the counter moves after the replacement's journal row commits (outbox.c,
        # bump): the status may show the row before the count
        self.wait_for("feeBumps counted", lambda: self.l1(d)["feeBumps"] >= 1, d=d)
        self.anvil.rpc("evm_setAutomine", [True])
        self.anvil.rpc("evm_mine")
        self.wait_for("posted", lambda: self.l1(d)["postedHeight"] >= 1, d=d)
        mined = self.anvil.batch_logs(self.inbox)[0]["tx"]
        hashes = ["0x" + r[3].lower() for r in self.journal() if r[0] == first[0]]
        self.assertIn(mined, hashes[1:], "the replacement, not the first, was mined")
        self.check_chain()

    def test_no_bump_past_the_cap_the_same_bytes_are_sent_again(self):
        """A stuck transaction whose +12.5% bump would pass l1.max_fee_gwei
        is not replaced: its journal keeps one transaction, the same bytes
        are sent again, and it is mined once the base fee allows."""
        self.anvil.rpc("anvil_setNextBlockBaseFeePerGas", [hex(5 * GWEI)])
        self.anvil.rpc("evm_mine")
        self.anvil.rpc("evm_setAutomine", [False])
        d = self.daemon(**{"l1.max_fee_gwei": "10"}).start()
        first = self.wait_for("a first transaction", lambda: self.journal(), d=d)[0]
        self.assertGreater(first[2] * 9, 10 * GWEI * 8, "a bump would pass the cap")
        for _ in range(3):  # blocks it cannot enter: a bump is due after one
            self.anvil.rpc("anvil_setNextBlockBaseFeePerGas", [hex(40 * GWEI)])
            self.anvil.rpc("evm_mine")
            time.sleep(0.7)  # two passes of the outbox
        self.assertEqual(self.journal(), [first], "no replacement past the cap")
        self.assertEqual(self.l1(d)["feeBumps"], 0)
        self.anvil.rpc("anvil_setNextBlockBaseFeePerGas", [hex(GWEI)])
        self.anvil.rpc("evm_setAutomine", [True])
        self.anvil.rpc("evm_mine")
        self.wait_for("posted", lambda: self.l1(d)["postedHeight"] >= 1, d=d)
        self.assertEqual(self.anvil.batch_logs(self.inbox)[0]["tx"], "0x" + first[3].lower())
        self.check_chain()

    def test_fee_cap_waits_then_resumes_when_base_fee_drops(self):
        self.anvil.rpc("anvil_setNextBlockBaseFeePerGas", [hex(50 * GWEI)])
        self.anvil.rpc("evm_mine")
        d = self.daemon(**{"l1.max_fee_gwei": "20"}).start()
        self.wait_for("fee_capped", lambda: self.l1(d)["status"] == "fee_capped", d=d)
        time.sleep(1.5)
        self.assertEqual(self.l1(d)["status"], "fee_capped")
        self.assertEqual(self.journal(), [], "nothing signed while capped")
        self.assertEqual(int(self.anvil.rpc("eth_getTransactionCount", [ADDR0, "pending"]), 16),
                         1, "no transaction sent while capped")
        self.anvil.rpc("anvil_setNextBlockBaseFeePerGas", [hex(GWEI)])
        self.anvil.rpc("evm_mine")
        self.wait_for("posted after the base fee dropped",
                      lambda: self.l1(d)["postedHeight"] >= 1, d=d)
        for row in self.journal():
            self.assertLessEqual(row[2], 20 * GWEI)
        self.check_chain()


class NonceSpentTest(OutboxCase):
    def test_nonce_spent_by_a_foreign_transaction_the_job_is_signed_again(self):
        """The poster key spends the nonce of a job in flight from elsewhere (a
        transaction the journal does not hold). Once that transaction is
        settled (finalized = latest - 2 here), the job is queued again and
        signed with the next free nonce: the batch lands, nothing is stuck."""
        self.anvil.rpc("evm_setAutomine", [False])
        d = self.daemon().start()
        first = self.wait_for("a first transaction", lambda: self.journal(), d=d)[0]
        # no block is mined meanwhile, so no bump is due and the daemon sends
        # nothing between the drop and the foreign transaction
        self.anvil.rpc("anvil_dropAllTransactions", [])
        foreign = self.anvil.rpc("eth_sendTransaction", [{
            "from": ADDR0, "to": ADDR0, "value": "0x0", "nonce": hex(first[0]),
            "gas": hex(21000), "maxFeePerGas": hex(2000 * GWEI),
            "maxPriorityFeePerGas": hex(1000 * GWEI)}])
        self.anvil.rpc("evm_mine")
        self.assertEqual(self.anvil.rpc("eth_getTransactionReceipt", [foreign])["status"], "0x1")
        time.sleep(1.0)  # passes with the foreign transaction mined but not settled
        self.assertEqual(self.l1(d)["requeued"], 0, "not before it is settled")
        for _ in range(3):  # settle it: finalized moves past its block
            time.sleep(0.7)
            self.anvil.rpc("evm_mine")
        self.wait_for("the job queued again", lambda: self.l1(d)["requeued"] >= 1, d=d)
        self.assertIn("nonce %d spent" % first[0], self.l1(d)["lastError"])
        self.anvil.rpc("evm_setAutomine", [True])
        self.anvil.rpc("evm_mine")
        self.wait_for("posted", lambda: self.l1(d)["postedHeight"] >= 1, d=d)
        mined = self.anvil.batch_logs(self.inbox)[0]["tx"]
        rows = [r for r in self.journal() if "0x" + r[3].lower() == mined]
        self.assertEqual(len(rows), 1, "the batch landed by a journaled transaction")
        self.assertEqual(rows[0][4], first[4], "the same job")
        self.assertGreater(rows[0][0], first[0], "signed again with a later nonce")
        self.assertEqual(self.l1(d)["requeued"], 1)
        self.check_chain()


class RetryTest(OutboxCase):
    def owner_call(self, sig, *args):
        """The Inbox's owner (account 1, not the poster's key) calls sig."""
        data = cast("calldata", sig, *args).stdout.strip()
        h = self.anvil.rpc("eth_sendTransaction", [{"from": ADDR1, "to": self.inbox,
                                                    "data": data}])
        r = self.wait_for("the owner's call mined",
                          lambda: self.anvil.rpc("eth_getTransactionReceipt", [h]))
        self.assertEqual(r["status"], "0x1")

    def retry(self):
        return subprocess.run([MEZZ, "--data-dir", self.data, "l1", "retry"],
                              capture_output=True, text=True, timeout=30)

    def test_a_failed_batch_is_queued_again_by_mezz_l1_retry(self):
        """The poster is changed on the Inbox: the next batch reverts at
        estimation and the outbox halts. With the poster set back and the
        daemon stopped, `mezz l1 retry` queues it again and the next start
        posts it and the rest, the chain of batches unbroken."""
        cast("send", "--rpc-url", self.anvil.url, "--private-key", KEY0, self.inbox,
             "transferOwnership(address)", ADDR1)
        d = self.daemon().start()
        self.wait_for("posted", lambda: self.l1(d)["postedHeight"] >= 1, d=d)
        self.owner_call("setPoster(address)", ADDR1)
        st = self.wait_for("halted", lambda: self.l1(d)["status"] == "halted" and self.l1(d),
                           d=d)
        self.assertIn("reverts at estimation", st["lastError"])
        held = st["postedHeight"]
        p = self.retry()
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("is running on", p.stderr)
        d.stop()
        self.owner_call("setPoster(address)", ADDR0)
        p = self.retry()
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertRegex(p.stdout, r"batch \d+ \(heights \d+\.\.\d+\), failed: .*queued again")
        self.assertIn("1 batch queued again", p.stdout)
        self.assertIn("no failed batch", self.retry().stdout)
        d.start()
        self.wait_for("posted past the failed batch",
                      lambda: self.l1(d)["postedHeight"] > held + 2, d=d)
        self.assertNotEqual(self.l1(d)["status"], "halted")
        self.check_chain()


class ReorgTest(OutboxCase):
    def test_reorg_drops_posts_they_are_posted_again_with_the_same_index(self):
        d = self.daemon().start()
        self.wait_for("three batches", lambda: len(self.anvil.batch_logs(self.inbox)) >= 3,
                      d=d)
        before = self.anvil.batch_logs(self.inbox)
        depth = self.anvil.block_number() - before[1]["block"] + 1
        self.anvil.rpc("anvil_reorg", [depth, []])
        after_reorg = self.anvil.batch_logs(self.inbox)
        self.assertLess(len(after_reorg), len(before), "the reorg dropped batches")
        self.wait_for("reorg seen", lambda: self.l1(d)["reorgs"] >= 1, d=d)
        self.wait_for("re-posted", lambda: len(self.anvil.batch_logs(self.inbox)) > len(before),
                      d=d)
        logs = self.check_chain()
        self.assertEqual(logs[1]["from"], before[1]["from"])
        self.assertEqual(logs[1]["to"], before[1]["to"], "same batch at the same index")
        self.assertEqual(logs[1]["hash"], before[1]["hash"])


class StateRootTest(OutboxCase):
    def test_state_root_relayed_and_stale_l2_block_rejected_early(self):
        d = self.daemon().start()
        key = d.setup_tenant("t", "rollup", 901)
        root = "0x" + "ab" * 32
        params = {"namespace": "rollup", "l2Block": 5, "stateRoot": root, "proofKind": 2,
                  "proofLocator": "0x" + b"da://901/5".hex()}
        doc = d.call("mezz_postStateRoot", params)
        self.assertEqual(doc["error"]["code"], -32001, doc)
        self.assertEqual(d.rpc("mezz_postStateRoot", params, key=key)["status"], "queued")
        for l2 in (5, 4):
            doc = d.call("mezz_postStateRoot", dict(params, l2Block=l2), key=key)
            self.assertEqual(doc["error"]["code"], -32012, doc)
        st = self.wait_for("state root posted", lambda: d.rpc(
            "mezz_getStateRoot", {"namespace": "rollup", "l2Block": 5})["status"] in
            ("posted", "finalized") and d.rpc("mezz_getStateRoot",
                                               {"namespace": "rollup", "l2Block": 5}), d=d)
        rec = self.anvil.rpc("eth_getTransactionReceipt", [st["l1TxHash"]])
        topic0 = cast("keccak", "StateRootPosted(uint64,uint64,bytes32,uint8,address,bytes)"
                      ).stdout.strip()
        lg = [x for x in rec["logs"] if x["topics"][0] == topic0][0]
        self.assertEqual(int(lg["topics"][1], 16), 901)
        self.assertEqual(int(lg["topics"][2], 16), 5)
        self.assertEqual(lg["data"][2:66], "ab" * 32)
        self.assertEqual(self.anvil.view(self.inbox, "rollups(uint64)(address,uint64,bool)",
                                         "901").split()[1], "5")
        self.check_chain()


class CrashTest(OutboxCase):
    ROUNDS = 20  # per crash point

    def nonces(self):
        return tuple(int(self.anvil.rpc("eth_getTransactionCount", [ADDR0, tag]), 16)
                     for tag in ("latest", "pending"))

    def test_kill9_between_sign_and_send_and_between_send_and_mine(self):
        """Rounds alternate: a crash right after a transaction is signed and
        journaled, then one right after it is sent. For the second, anvil
        does not mine (automine off), so the kill lands while the transaction
        is in the node's pool and not mined; it is mined while the daemon is
        down, and the next daemon must find it by its journaled hash."""
        crashes = 0
        for rnd in range(2 * self.ROUNDS):
            point = "sign" if rnd % 2 == 0 else "send"
            if point == "send":
                self.anvil.rpc("evm_setAutomine", [False])
            d = self.daemon(env={"MEZZ_FAULT_L1_CRASH": point})
            try:
                d.start()
            except AssertionError:
                pass  # died before it answered: that is the point
            try:
                d.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.fail("round %d: no crash at %s\n%s" % (rnd, point, d.log()))
            self.assertEqual(d.proc.returncode, -signal.SIGKILL, d.log())
            d.kill9()
            latest, pending = self.nonces()
            if point == "send":
                self.assertEqual(pending, latest + 1,
                                 "round %d: the sent transaction is pending, not mined" % rnd)
                self.anvil.rpc("evm_setAutomine", [True])
                self.anvil.rpc("evm_mine")
                self.assertEqual(self.nonces(), (pending, pending))
            else:
                self.assertEqual(pending, latest, "round %d: signed, nothing sent" % rnd)
            crashes += 1
        d = self.daemon().start()
        h = d.status()["availableHeight"]
        self.wait_for("caught up", lambda: self.l1(d)["postedHeight"] >= h, d=d)
        logs = self.check_chain(upto=h)
        self.assertGreaterEqual(len(logs), self.ROUNDS)
        self.assertEqual(crashes, 2 * self.ROUNDS)


class ConfirmationsTest(OutboxCase):
    def test_posted_waits_for_the_confirmations(self):
        """l1.confirmations = 3: a batch mined in block b is `posted` once
        the chain's head is b + 2, not before."""
        d = self.daemon(l1__confirmations=3).start()
        self.wait_for("two batches mined", lambda: len(self.anvil.batch_logs(self.inbox)) >= 2,
                      d=d)
        self.anvil.rpc("evm_setAutomine", [False])  # the head stays where it is
        time.sleep(0.5)
        head = self.anvil.block_number()
        logs = self.anvil.batch_logs(self.inbox)
        deep = max([lg["to"] for lg in logs if lg["block"] <= head - 2], default=0)
        self.assertGreater(logs[-1]["block"], head - 2)
        self.wait_for("the batches 3 deep posted", lambda: d.status()["postedHeight"] >= deep,
                      d=d)
        time.sleep(1.5)  # several passes of the outbox: nothing shallower is posted
        self.assertEqual(d.status()["postedHeight"], deep, logs)
        self.anvil.rpc("evm_mine")  # what the outbox sent meanwhile, and one more
        self.anvil.rpc("evm_mine")
        self.wait_for("the last batch posted",
                      lambda: d.status()["postedHeight"] >= logs[-1]["to"], d=d)
        self.anvil.rpc("evm_setAutomine", [True])
        self.check_chain()


class LandedElsewhereTest(OutboxCase):
    def queued_batch(self):
        db = sqlite3.connect("file:%s?mode=ro" % os.path.join(self.data, "outbox.db"), uri=True)
        try:
            return db.execute("SELECT batch_index, hex(calldata) FROM jobs WHERE kind = 1"
                              " AND state = 0 ORDER BY batch_index LIMIT 1").fetchone()
        except sqlite3.OperationalError:
            return None  # not created yet
        finally:
            db.close()

    def land_batch0_elsewhere(self, **settings):
        """Batch 0 queued under the fee cap, the daemon killed, the batch
        landed by `cast send` with its queued calldata (the key used
        elsewhere), the daemon started again and three batches on chain.
        Returns (daemon, the logs then, the landing transaction's hash)."""
        self.anvil.rpc("anvil_setNextBlockBaseFeePerGas", [hex(50 * GWEI)])
        self.anvil.rpc("evm_mine")
        d = self.daemon(**{"l1.max_fee_gwei": "20"}).start()
        job = self.wait_for("batch 0 queued under the fee cap", self.queued_batch, d=d)
        self.assertEqual(job[0], 0)
        d.kill9()
        self.anvil.rpc("anvil_setNextBlockBaseFeePerGas", [hex(GWEI)])
        self.anvil.rpc("evm_mine")
        sent = json.loads(cast("send", "--rpc-url", self.anvil.url, "--private-key", KEY0,
                               "--json", self.inbox, "0x" + job[1].lower()).stdout)
        self.assertEqual(sent["status"], "0x1", sent)
        d = self.daemon(**dict({"l1.max_fee_gwei": "20"}, **settings)).start()
        self.wait_for("three batches", lambda: len(self.anvil.batch_logs(self.inbox)) >= 3,
                      d=d)
        before = self.anvil.batch_logs(self.inbox)
        self.assertEqual(before[0]["tx"], sent["transactionHash"])
        return d, before, sent["transactionHash"]

    def reorg_from_batch0(self, before):
        self.anvil.rpc("anvil_reorg", [self.anvil.block_number() - before[0]["block"] + 1, []])

    def test_batch_landed_by_a_tx_not_in_the_journal_is_posted_again_after_a_reorg(self):
        """The daemon takes batch 0, landed by a transaction it did not
        journal, as mined and journals that transaction's bytes from the
        node (asking again while the node does not answer: two 503s here),
        so when a reorg drops it those same bytes are sent again: same
        transaction, same index."""
        raw = "eth_getRawTransactionByHash"
        proxy = Proxy(self.tmp, self.anvil.url, fail={raw: 2})
        self.addCleanup(proxy.close)
        d, before, foreign = self.land_batch0_elsewhere(l1__rpc_urls=proxy.url)
        self.assertEqual(proxy.calls.get(raw), 3, "asked until the node answered")
        self.assertIn(foreign[2:].upper(), [r[3] for r in self.journal()],
                      "the landed transaction's bytes are journaled")
        self.reorg_from_batch0(before)
        self.wait_for("reorg seen", lambda: self.l1(d)["reorgs"] >= 1, d=d)
        self.wait_for("re-posted", lambda: len(self.anvil.batch_logs(self.inbox)) > len(before),
                      d=d)
        logs = self.check_chain()
        self.assertEqual(logs[0]["tx"], foreign, "the same transaction, sent again")
        self.assertEqual(logs[0]["hash"], before[0]["hash"])
        self.assertEqual((logs[0]["from"], logs[0]["to"]), (before[0]["from"], before[0]["to"]))

    def test_without_the_bytes_from_the_node_a_reorg_halts(self):
        """A node without eth_getRawTransactionByHash: batch 0 is taken as
        mined without its bytes; when a reorg drops it, the outbox halts with
        the reason rather than sign the batch again under another nonce."""
        proxy = Proxy(self.tmp, self.anvil.url, refuse=("eth_getRawTransactionByHash",))
        self.addCleanup(proxy.close)
        d, before, foreign = self.land_batch0_elsewhere(l1__rpc_urls=proxy.url)
        self.assertNotIn(foreign[2:].upper(), [r[3] for r in self.journal()])
        self.reorg_from_batch0(before)
        st = self.wait_for("halted", lambda: self.l1(d)["status"] == "halted" and self.l1(d),
                           d=d)
        self.assertIn("not in the journal to send again", st["lastError"])
        time.sleep(1)
        self.assertEqual([lg["index"] for lg in self.anvil.batch_logs(self.inbox)], [],
                         "nothing re-posted over batch 0's index")


class Proxy:
    """A front for anvil on loopback: each POST is passed to anvil as is,
    but a call of a method in `refuse` gets JSON-RPC's "method not found" (a
    node without it), and the first fail[method] calls of a method get HTTP
    503 (a node that does not answer); self.calls counts calls by method.
    With tls, it is https:// with a self-signed certificate for 127.0.0.1
    made by openssl (self.cert)."""

    def __init__(self, tmp, upstream, tls=False, refuse=(), fail=None,
                 message="the method does not exist"):
        proxy = self
        fail = dict(fail or {})

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                call = json.loads(body)
                method = call.get("method") if isinstance(call, dict) else None
                proxy.calls[method] = proxy.calls.get(method, 0) + 1
                if fail.get(method, 0) > 0:
                    fail[method] -= 1
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if method in refuse:
                    out = json.dumps({"jsonrpc": "2.0", "id": call.get("id"), "error": {
                        "code": -32601, "message": message}}).encode()
                else:
                    req = urllib.request.Request(upstream, data=body,
                                                 headers={"Content-Type": "application/json"})
                    with urllib.request.urlopen(req, timeout=10) as r:
                        out = r.read()
                proxy.posts += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args):
                pass

        self.posts = 0
        self.calls = {}
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls:
            self.cert, key = os.path.join(tmp, "l1-cert.pem"), os.path.join(tmp, "l1-key.pem")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days",
                            "1", "-subj", "/CN=127.0.0.1", "-addext",
                            "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", self.cert],
                           check=True, capture_output=True)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(self.cert, key)
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.url = "%s://127.0.0.1:%d" % ("https" if tls else "http",
                                           self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class NodeWordsTest(OutboxCase):
    def test_a_node_error_cut_inside_a_utf8_character_keeps_status_json_valid(self):
        """lastError quotes the node's message cut at a byte count; cut
        inside a two-byte character it made mezz_status invalid UTF-8."""
        proxy = Proxy(self.tmp, self.anvil.url, refuse=("eth_sendRawTransaction",),
                      message="\u043e\u0448\u0438\u0431\u043a\u0430 " * 40)
        self.addCleanup(proxy.close)
        d = self.daemon(**{"l1.rpc_urls": proxy.url}).start()
        deadline = time.time() + 30
        while True:
            _, _, raw = d.http(json.dumps({"jsonrpc": "2.0", "id": 1,
                                           "method": "mezz_status"}).encode(), "/")
            text = raw.decode("utf-8")  # strict: raises on a cut character
            err = json.loads(text)["result"]["l1"]["lastError"]
            if err.startswith("send:"):
                break
            self.assertLess(time.time(), deadline, "no send error seen: %r" % err)
            time.sleep(0.2)
        self.assertIn("?", err, "the non-ASCII words are replaced")


class HttpsTest(OutboxCase):
    def test_posts_over_https_checked_against_l1_ca_file(self):
        """An https:// L1 URL: with the node's CA in l1.ca_file batches land;
        without it the certificate is refused and nothing is sent."""
        proxy = Proxy(self.tmp, self.anvil.url, tls=True)
        self.addCleanup(proxy.close)
        d = self.daemon(l1__rpc_urls=proxy.url).start()
        self.wait_for("the certificate refused", lambda: "certificate" in
                      self.l1(d).get("lastError", "").lower(), d=d)
        self.assertEqual(proxy.posts, 0)
        self.assertEqual(self.anvil.batch_logs(self.inbox), [])
        d.kill9()
        d = self.daemon(l1__rpc_urls=proxy.url, l1__ca_file=proxy.cert).start()
        self.wait_for("a batch posted over https", lambda: self.l1(d)["postedHeight"] >= 1, d=d)
        self.assertGreater(proxy.posts, 0)
        self.check_chain()

    def test_unreadable_ca_file_stops_the_start(self):
        p = subprocess.run([MEZZANINE_TEST, "--data-dir", self.data, "--set",
                            "l1.rpc_urls=https://127.0.0.1:1", "--set", "l1.inbox=" + self.inbox,
                            "--set", "l1.keystore=" + self.ks, "--set",
                            "l1.keystore_password_file=" + self.pw, "--set",
                            "l1.ca_file=" + os.path.join(self.tmp, "missing.pem")],
                           capture_output=True, text=True, timeout=30)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("l1.ca_file", p.stderr)


class OutageTest(OutboxCase):
    OUTAGE_S = 60

    def test_l1_down_for_a_minute_then_posting_resumes(self):
        state = os.path.join(self.tmp, "anvil-state.json")
        # this test runs its own anvil with a state file
        self.anvil.stop()
        self.anvil = Anvil(("--block-time", "1", "--state", state, "--state-interval", "1"),
                           port=self.anvil.port).start()
        self.addCleanup(self.anvil.stop)
        self.inbox = self.anvil.deploy()
        d = self.daemon().start()
        self.wait_for("posting", lambda: self.l1(d)["postedHeight"] >= 5, d=d)
        time.sleep(1.5)  # a state dump after the last post
        self.anvil.stop()
        down_at = d.status()["availableHeight"]
        t0 = time.time()
        while time.time() - t0 < self.OUTAGE_S:
            st = d.status()  # the daemon keeps serving
            time.sleep(2)
        self.assertIn(st["l1"]["status"], ("rpc_down", "syncing"), st["l1"])
        self.assertGreater(st["availableHeight"], down_at)
        self.anvil = Anvil(("--block-time", "1", "--state", state),
                           port=self.anvil.port).start()
        self.addCleanup(self.anvil.stop)  # each instance its own: this one was left running
        h = d.status()["availableHeight"]
        self.wait_for("resumed", lambda: self.l1(d)["postedHeight"] >= h, timeout=40, d=d)
        self.check_chain(upto=h)


if __name__ == "__main__":
    unittest.main()
