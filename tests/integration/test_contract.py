"""The Inbox contract on a real anvil: deploy, every revert path, every event.

Uses the ABI and bytecode `make contracts` writes to $MEZZ_BUILD/contracts/,
cast for encoding and sending, and plain JSON-RPC (eth_call) to read the
exact revert data of each failing call.
"""
import json
import os
import shutil
import subprocess
import time
import unittest
import urllib.request

from harness import BUILD, CAST, cast, free_port

CONTRACTS = os.path.join(BUILD, "contracts")

# anvil's first three dev accounts: owner + poster, a stranger, a rollup key
KEYS = ["0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
        "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
        "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a"]
ADDRS = ["0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266",
         "0x70997970c51812dc3a010c7d01b50e0d17dc79c8",
         "0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc"]
OWNER, STRANGER, ROLLUP_KEY = 0, 1, 2

POST_BATCH = "postBatch(uint64,uint64,uint64,bytes32,uint64[],bytes32[])"
POST_STATE_ROOT = "postStateRoot(uint64,uint64,bytes32,uint8,bytes)"
POST_PURCHASES = "postPurchases(uint64,(uint64,uint64[],uint64,uint64,uint64)[],bytes[])"
SETTLE_SALE = "settleSale(uint64,((address,uint256,uint256)[],(uint64,uint256)[],uint256))"
ZERO = "0x" + "0" * 40
EVENTS = {
    "BatchPosted": "BatchPosted(uint64,bytes32,uint64,uint64,bytes32,uint64[],bytes32[])",
    "StateRootPosted": "StateRootPosted(uint64,uint64,bytes32,uint8,address,bytes)",
    "PosterChanged": "PosterChanged(address,address)",
    "RollupKeyChanged": "RollupKeyChanged(uint64,address,address)",
    "OwnershipTransferred": "OwnershipTransferred(address,address)",
}


def find_anvil():
    a = shutil.which("anvil")
    if a:
        return a
    if CAST:
        a = os.path.join(os.path.dirname(CAST), "anvil")
        if os.access(a, os.X_OK):
            return a
    return None


def b32(byte):
    return "0x" + ("%02x" % byte) * 32


def word(data, i):
    return int.from_bytes(data[32 * i:32 * i + 32], "big")


def addr_of(topic_or_word):
    return "0x" + topic_or_word[-40:].lower()


class AnvilInboxCase(unittest.TestCase):
    """One anvil per class, a fresh Inbox per test, and helpers to send,
    read and expect reverts (shared with test_rights_contract.py)."""
    EVENTS = EVENTS

    @classmethod
    def setUpClass(cls):
        anvil = find_anvil()
        if anvil is None:
            raise unittest.SkipTest("anvil not found")
        for f in ("Inbox.bin", "Inbox.abi"):
            if not os.path.exists(os.path.join(CONTRACTS, f)):
                raise AssertionError("%s missing: run `make contracts`" % os.path.join(CONTRACTS, f))
        with open(os.path.join(CONTRACTS, "Inbox.abi")) as f:
            cls.abi = json.load(f)
        cls.port = free_port()
        cls.rpc_url = "http://127.0.0.1:%d" % cls.port
        cls.anvil = subprocess.Popen([anvil, "--port", str(cls.port), "--silent"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cls.addClassCleanup(cls._stop_anvil)
        deadline = time.time() + 20
        while True:
            try:
                cls.rpc("eth_chainId")
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.05)

    @classmethod
    def _stop_anvil(cls):
        cls.anvil.terminate()
        cls.anvil.wait(10)

    @classmethod
    def rpc(cls, method, params=None):
        req = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method,
                          "params": params or []}).encode()
        r = urllib.request.Request(cls.rpc_url, data=req,
                                   headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(r, timeout=10) as resp:
            return json.loads(resp.read())

    # -- helpers -----------------------------------------------------------
    def setUp(self):
        """A fresh Inbox per test (owner = poster = account 0, start 0)."""
        with open(os.path.join(CONTRACTS, "Inbox.bin")) as f:
            code = f.read().strip()
        args = cast("abi-encode", "constructor(address,uint64)", ADDRS[OWNER], "0").stdout.strip()
        r = self.send(OWNER, None, code + args[2:])
        self.inbox = r["contractAddress"].lower()
        self.deploy_receipt = r

    def send(self, who, to, sig_or_code, *args):
        cmd = ["send", "--rpc-url", self.rpc_url, "--private-key", KEYS[who], "--json"]
        if to is None:
            cmd += ["--create", sig_or_code]
        else:
            cmd += [to, sig_or_code, *args]
        r = json.loads(cast(*cmd).stdout)
        self.assertEqual(r["status"], "0x1", r)
        return r

    def call_revert(self, who, sig, *args):
        """eth_call as `who`; returns the revert data (asserts it reverted)."""
        data = cast("calldata", sig, *args).stdout.strip()
        doc = self.rpc("eth_call", [{"from": ADDRS[who], "to": self.inbox, "data": data},
                                    "latest"])
        self.assertIn("error", doc, "%s %r did not revert: %r" % (sig, args, doc))
        return doc["error"].get("data")

    def assertReverts(self, who, sig, args, error_sig, *error_args):
        got = self.call_revert(who, sig, *args)
        want = cast("calldata", error_sig, *[str(a) for a in error_args]).stdout.strip()
        self.assertEqual(got, want, "%s%r should revert with %s%r" % (sig, args, error_sig,
                                                                     error_args))

    def view(self, sig, *args):
        return cast("call", "--rpc-url", self.rpc_url, self.inbox, sig, *args).stdout.strip()

    def only_log(self, receipt, name):
        logs = [lg for lg in receipt["logs"] if lg["address"].lower() == self.inbox]
        self.assertEqual(len(logs), 1, receipt["logs"])
        lg = logs[0]
        topic0 = cast("keccak", self.EVENTS[name]).stdout.strip()
        self.assertEqual(lg["topics"][0], topic0, "topic0 of %s" % name)
        return lg["topics"], bytes.fromhex(lg["data"][2:])


class InboxContractTest(AnvilInboxCase):
    def batch(self, index, frm, to, ns=((1, 0xa1),), who=OWNER, da=0xda):
        ids = "[" + ",".join(str(i) for i, _ in ns) + "]"
        roots = "[" + ",".join(b32(r) for _, r in ns) + "]"
        return self.send(who, self.inbox, POST_BATCH, str(index), str(frm), str(to), b32(da),
                         ids, roots)

    # -- deployment --------------------------------------------------------
    def test_deploy_sets_owner_poster_start_and_emits(self):
        self.assertEqual(addr_of(self.view("owner()(address)")), ADDRS[OWNER])
        self.assertEqual(addr_of(self.view("poster()(address)")), ADDRS[OWNER])
        self.assertEqual(self.view("batchCount()(uint32)"), "0")
        self.assertEqual(self.view("nextHeight()(uint64)"), "0")
        names = {}
        for lg in self.deploy_receipt["logs"]:
            for n, s in EVENTS.items():
                if lg["topics"][0] == cast("keccak", s).stdout.strip():
                    names[n] = lg["topics"]
        self.assertEqual(addr_of(names["OwnershipTransferred"][1]), "0x" + "0" * 40)
        self.assertEqual(addr_of(names["OwnershipTransferred"][2]), ADDRS[OWNER])
        self.assertEqual(addr_of(names["PosterChanged"][2]), ADDRS[OWNER])

    def test_start_height_from_constructor(self):
        with open(os.path.join(CONTRACTS, "Inbox.bin")) as f:
            code = f.read().strip()
        args = cast("abi-encode", "c(address,uint64)", ADDRS[OWNER], "1000").stdout.strip()
        self.inbox = self.send(OWNER, None, code + args[2:])["contractAddress"].lower()
        self.assertReverts(OWNER, POST_BATCH, ("0", "0", "5", b32(1), "[]", "[]"),
                           "HeightOverlap(uint64,uint64)", 1000, 0)
        self.batch(0, 1000, 1005)

    # -- postBatch: events and the hash chain -----------------------------
    def test_batch_event_fields_and_hash_chain(self):
        ns = ((2, 0x11), (7, 0x22), (300, 0x33))
        r = self.batch(0, 0, 9, ns, da=0xd0)
        topics, data = self.only_log(r, "BatchPosted")
        self.assertEqual(int(topics[1], 16), 0)
        h0 = topics[2]
        self.assertEqual(word(data, 0), 0)
        self.assertEqual(word(data, 1), 9)
        self.assertEqual(data[64:96], bytes([0xd0]) * 32)
        self.assertEqual(word(data, 3), 5 * 32)
        n = word(data, 5)
        self.assertEqual(n, 3)
        self.assertEqual([word(data, 6 + i) for i in range(n)], [2, 7, 300])
        self.assertEqual(word(data, 4), 5 * 32 + 32 + 32 * n)
        self.assertEqual(word(data, 6 + n), 3)
        self.assertEqual([data[32 * (7 + n + i):32 * (8 + n + i)] for i in range(n)],
                         [bytes([r_]) * 32 for _, r_ in ns])
        self.assertEqual(len(data), 32 * (7 + 2 * n))
        # batchHash[0] = keccak(abi.encode(0, 0, 0, 9, daRoot, ids, roots))
        enc = cast("abi-encode", "f(bytes32,uint64,uint64,uint64,bytes32,uint64[],bytes32[])",
                   b32(0), "0", "0", "9", b32(0xd0), "[2,7,300]",
                   "[%s,%s,%s]" % (b32(0x11), b32(0x22), b32(0x33))).stdout.strip()
        self.assertEqual(h0, cast("keccak", enc).stdout.strip())
        self.assertEqual(self.view("batchHash(uint64)(bytes32)", "0"), h0)
        # the second batch chains to the first
        r = self.batch(1, 10, 10, ((5, 0x55),), da=0xd1)
        topics, _ = self.only_log(r, "BatchPosted")
        enc = cast("abi-encode", "f(bytes32,uint64,uint64,uint64,bytes32,uint64[],bytes32[])",
                   h0, "1", "10", "10", b32(0xd1), "[5]", "[%s]" % b32(0x55)).stdout.strip()
        self.assertEqual(topics[2], cast("keccak", enc).stdout.strip())
        self.assertEqual(int(topics[1], 16), 1)
        self.assertEqual(self.view("batchCount()(uint32)"), "2")
        self.assertEqual(self.view("nextHeight()(uint64)"), "11")

    def test_batch_with_no_namespaces(self):
        topics, data = self.only_log(self.batch(0, 0, 0, ()), "BatchPosted")
        self.assertEqual(word(data, 5), 0)
        self.assertEqual(len(data), 32 * 7)

    # -- postBatch: every revert ------------------------------------------
    def test_batch_reverts(self):
        self.batch(0, 0, 9)
        ok = ("1", "10", "19", b32(1), "[1,2]", "[%s,%s]" % (b32(1), b32(2)))
        self.assertReverts(STRANGER, POST_BATCH, ok, "NotPoster(address)", ADDRS[STRANGER])
        self.assertReverts(OWNER, POST_BATCH, ("0",) + ok[1:], "WrongIndex(uint64,uint64)", 1, 0)
        self.assertReverts(OWNER, POST_BATCH, ("2",) + ok[1:], "WrongIndex(uint64,uint64)", 1, 2)
        self.assertReverts(OWNER, POST_BATCH, ("1", "11", "19") + ok[3:],
                           "HeightGap(uint64,uint64)", 10, 11)
        self.assertReverts(OWNER, POST_BATCH, ("1", "9", "19") + ok[3:],
                           "HeightOverlap(uint64,uint64)", 10, 9)
        self.assertReverts(OWNER, POST_BATCH, ("1", "10", "9") + ok[3:],
                           "BadRange(uint64,uint64)", 10, 9)
        self.assertReverts(OWNER, POST_BATCH, ok[:4] + ("[2,1]", ok[5]),
                           "NamespacesUnsorted(uint256)", 1)
        self.assertReverts(OWNER, POST_BATCH,
                           ok[:4] + ("[1,5,3]", "[%s,%s,%s]" % (b32(1), b32(2), b32(3))),
                           "NamespacesUnsorted(uint256)", 2)
        self.assertReverts(OWNER, POST_BATCH, ok[:4] + ("[4,4]", ok[5]),
                           "DuplicateNamespace(uint64)", 4)
        self.assertReverts(OWNER, POST_BATCH, ok[:4] + ("[1,2,3]", ok[5]),
                           "LengthMismatch(uint256,uint256)", 3, 2)
        self.assertReverts(OWNER, POST_BATCH, ok[:4] + ("[1]", ok[5]),
                           "LengthMismatch(uint256,uint256)", 1, 2)
        # nothing changed, and the good call still goes through
        self.assertEqual(self.view("batchCount()(uint32)"), "1")
        self.send(OWNER, self.inbox, POST_BATCH, *ok)

    def test_mined_revert_changes_nothing(self):
        """A reverting transaction actually mined (not just simulated)."""
        p = cast("send", "--rpc-url", self.rpc_url, "--private-key", KEYS[STRANGER], "--json",
                 "--gas-limit", "200000", self.inbox, POST_BATCH, "0", "0", "1", b32(1), "[]",
                 "[]", check=False)
        if p.returncode == 0:
            self.assertEqual(json.loads(p.stdout)["status"], "0x0")
        self.assertEqual(self.view("batchCount()(uint32)"), "0")

    # -- postStateRoot -----------------------------------------------------
    def test_state_root_events_and_reverts(self):
        rid = "42"
        self.assertReverts(ROLLUP_KEY, POST_STATE_ROOT, (rid, "1", b32(1), "0", "0x"),
                           "NotRollupPoster(uint64,address)", 42, ADDRS[ROLLUP_KEY])
        r = self.send(OWNER, self.inbox, "setRollupKey(uint64,address)", rid, ADDRS[ROLLUP_KEY])
        topics, data = self.only_log(r, "RollupKeyChanged")
        self.assertEqual(int(topics[1], 16), 42)
        self.assertEqual(addr_of(topics[2]), "0x" + "0" * 40)
        self.assertEqual(addr_of(topics[3]), ADDRS[ROLLUP_KEY])
        self.assertEqual(data, b"")

        locator = "0x" + b"ipfs://bafy-proof-locator-longer-than-one-word!".hex()
        r = self.send(ROLLUP_KEY, self.inbox, POST_STATE_ROOT, rid, "100", b32(0x5a), "3", locator)
        topics, data = self.only_log(r, "StateRootPosted")
        self.assertEqual(int(topics[1], 16), 42)
        self.assertEqual(int(topics[2], 16), 100)
        self.assertEqual(data[0:32], bytes([0x5a]) * 32)
        self.assertEqual(word(data, 1), 3)
        self.assertEqual(addr_of(data[64:96].hex()), ADDRS[ROLLUP_KEY])
        self.assertEqual(word(data, 3), 128)
        n = word(data, 4)
        self.assertEqual("0x" + data[160:160 + n].hex(), locator)
        self.assertEqual(len(data), 160 + 32 * ((n + 31) // 32))

        # the poster may post too; l2Block strictly increases per rollup
        self.send(OWNER, self.inbox, POST_STATE_ROOT, rid, "101", b32(2), "0", "0x")
        self.assertReverts(ROLLUP_KEY, POST_STATE_ROOT, (rid, "101", b32(1), "0", "0x"),
                           "StaleL2Block(uint64,uint64,uint64)", 42, 101, 101)
        self.assertReverts(OWNER, POST_STATE_ROOT, (rid, "7", b32(1), "0", "0x"),
                           "StaleL2Block(uint64,uint64,uint64)", 42, 101, 7)
        self.assertReverts(STRANGER, POST_STATE_ROOT, (rid, "200", b32(1), "0", "0x"),
                           "NotRollupPoster(uint64,address)", 42, ADDRS[STRANGER])
        # another rollup's key may not post for this one, and block 0 is a valid first post
        self.send(OWNER, self.inbox, "setRollupKey(uint64,address)", "43", ADDRS[STRANGER])
        self.assertReverts(STRANGER, POST_STATE_ROOT, (rid, "200", b32(1), "0", "0x"),
                           "NotRollupPoster(uint64,address)", 42, ADDRS[STRANGER])
        self.send(STRANGER, self.inbox, POST_STATE_ROOT, "43", "0", b32(1), "0", "0x")
        self.assertReverts(STRANGER, POST_STATE_ROOT, ("43", "0", b32(1), "0", "0x"),
                           "StaleL2Block(uint64,uint64,uint64)", 43, 0, 0)
        # revoking the key
        self.send(OWNER, self.inbox, "setRollupKey(uint64,address)", rid, "0x" + "0" * 40)
        self.assertReverts(ROLLUP_KEY, POST_STATE_ROOT, (rid, "300", b32(1), "0", "0x"),
                           "NotRollupPoster(uint64,address)", 42, ADDRS[ROLLUP_KEY])

    # -- owner functions ---------------------------------------------------
    def test_owner_functions(self):
        for sig, args in (("setPoster(address)", (ADDRS[STRANGER],)),
                          ("setRollupKey(uint64,address)", ("1", ADDRS[STRANGER])),
                          ("transferOwnership(address)", (ADDRS[STRANGER],))):
            self.assertReverts(STRANGER, sig, args, "NotOwner(address)", ADDRS[STRANGER])
        self.assertReverts(OWNER, "transferOwnership(address)", ("0x" + "0" * 40,),
                           "ZeroAddress()")

        topics, data = self.only_log(
            self.send(OWNER, self.inbox, "setPoster(address)", ADDRS[STRANGER]), "PosterChanged")
        self.assertEqual((addr_of(topics[1]), addr_of(topics[2]), data),
                         (ADDRS[OWNER], ADDRS[STRANGER], b""))
        # the old poster is out, the new one is in
        self.assertReverts(OWNER, POST_BATCH, ("0", "0", "1", b32(1), "[]", "[]"),
                           "NotPoster(address)", ADDRS[OWNER])
        self.batch(0, 0, 1, who=STRANGER)

        topics, data = self.only_log(
            self.send(OWNER, self.inbox, "transferOwnership(address)", ADDRS[ROLLUP_KEY]),
            "OwnershipTransferred")
        self.assertEqual((addr_of(topics[1]), addr_of(topics[2]), data),
                         (ADDRS[OWNER], ADDRS[ROLLUP_KEY], b""))
        self.assertReverts(OWNER, "setPoster(address)", (ADDRS[OWNER],), "NotOwner(address)",
                           ADDRS[OWNER])
        self.send(ROLLUP_KEY, self.inbox, "setPoster(address)", ADDRS[OWNER])

    def test_set_poster_zero_pauses_posting(self):
        """setPoster(address(0)) pauses posting: no sender passes the poster
        check until the owner names a poster again, and posting then resumes
        where it stopped. A rollup's own key still posts its state roots."""
        self.batch(0, 0, 9)
        topics, data = self.only_log(self.send(OWNER, self.inbox, "setPoster(address)", ZERO),
                                     "PosterChanged")
        self.assertEqual((addr_of(topics[1]), addr_of(topics[2]), data),
                         (ADDRS[OWNER], ZERO, b""))
        self.assertEqual(addr_of(self.view("poster()(address)")), ZERO)

        nxt = ("1", "10", "19", b32(1), "[1]", "[%s]" % b32(1))
        for who in (OWNER, STRANGER):
            self.assertReverts(who, POST_BATCH, nxt, "NotPoster(address)", ADDRS[who])
        self.assertReverts(OWNER, POST_PURCHASES, ("1", "[]", "[]"), "NotPoster(address)",
                           ADDRS[OWNER])
        self.assertReverts(OWNER, SETTLE_SALE, ("1", "([],[],0)"), "NotPoster(address)",
                           ADDRS[OWNER])
        self.assertReverts(OWNER, POST_STATE_ROOT, ("42", "1", b32(1), "0", "0x"),
                           "NotRollupPoster(uint64,address)", 42, ADDRS[OWNER])
        # mined, not just simulated: the old poster's batch reverts on chain
        p = cast("send", "--rpc-url", self.rpc_url, "--private-key", KEYS[OWNER], "--json",
                 "--gas-limit", "200000", self.inbox, POST_BATCH, *nxt, check=False)
        if p.returncode == 0:
            self.assertEqual(json.loads(p.stdout)["status"], "0x0")
        self.assertEqual(self.view("batchCount()(uint32)"), "1")
        self.assertEqual(self.view("nextHeight()(uint64)"), "10")
        # the pause is the poster's only: a registered rollup key still posts
        self.send(OWNER, self.inbox, "setRollupKey(uint64,address)", "42", ADDRS[ROLLUP_KEY])
        self.send(ROLLUP_KEY, self.inbox, POST_STATE_ROOT, "42", "1", b32(1), "0", "0x")

        topics, data = self.only_log(
            self.send(OWNER, self.inbox, "setPoster(address)", ADDRS[OWNER]), "PosterChanged")
        self.assertEqual((addr_of(topics[1]), addr_of(topics[2]), data),
                         (ZERO, ADDRS[OWNER], b""))
        self.batch(1, 10, 19)
        self.assertEqual(self.view("batchCount()(uint32)"), "2")
        self.assertEqual(self.view("nextHeight()(uint64)"), "20")

    def test_abi_lists_every_function_event_and_error(self):
        names = {(e["type"], e.get("name")) for e in self.abi}
        for fn in ("postBatch", "postStateRoot", "setPoster", "setRollupKey",
                   "transferOwnership", "batchHash", "rollups"):
            self.assertIn(("function", fn), names)
        for ev in EVENTS:
            self.assertIn(("event", ev), names)
        for err in ("NotOwner", "NotPoster", "NotRollupPoster", "ZeroAddress", "WrongIndex",
                    "HeightGap", "HeightOverlap", "BadRange", "LengthMismatch",
                    "NamespacesUnsorted", "DuplicateNamespace", "StaleL2Block"):
            self.assertIn(("error", err), names)


if __name__ == "__main__":
    unittest.main()
