"""Proposer-ordered slots (docs/RIGHTS.md): a slot's winner, authenticated by
its Ethereum key, privately receives its rollups' held transactions, orders
them in a sub-block that lands as it ordered it (and is what executors
receive); a winner that misses its deadline or submits an invalid sub-block
falls back to the appliance's ordering, which records the miss. Nothing
held is lost across kill -9 and nothing is sequenced twice.

Slots are 2 s with a 500 ms deadline so a winner written in Python has time;
no assertion depends on timing: a submission refused because its slot was
already past is retried with fresh transactions."""
import asyncio
import json
import os
import shutil
import sqlite3
import tempfile
import unittest

from harness import (DEV_PRIVATE_KEY, MEZZANINE_TEST, Daemon, DaemonCase, cast, recv_until_quiet,
                     run_async, ws_connect)

WINNER_KEY = DEV_PRIVATE_KEY
WINNER = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
# anvil's second dev account: a valid key that holds no grant
OTHER_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
OTHER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"

SLOT_MS = 2000


def rnd():
    return "0x" + os.urandom(20).hex()


async def recv_json(ws, timeout):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def call(ws, method, params=None, id=1, skip_notes=None):
    """Send one request, return its answer; notifications met on the way are
    appended to skip_notes (or dropped)."""
    req = {"jsonrpc": "2.0", "id": id, "method": method}
    if params is not None:
        req["params"] = params
    await ws.send(json.dumps(req))
    while True:
        msg = json.loads(await asyncio.wait_for(ws.recv(), 30))
        if isinstance(msg, dict) and msg.get("method") == "mezz_subscription":
            if skip_notes is not None:
                skip_notes.append(msg["params"]["result"])
            continue
        return msg


def sign(digest, key):
    """The challenge digest signed as an EIP-191 personal message (its 32
    bytes), as API.md asks."""
    return cast("wallet", "sign", "--private-key", key, digest).stdout.strip()


def sign_raw(digest, key):
    return cast("wallet", "sign", "--no-hash", "--private-key", key, digest).stdout.strip()


async def authenticate(ws, address=WINNER, key=WINNER_KEY):
    ch = await call(ws, "mezz_proposerChallenge")
    return await call(ws, "mezz_proposerAuth",
                      {"address": address, "signature": sign(ch["result"]["digest"], key)})


async def pending_session(url, address=WINNER, key=WINNER_KEY):
    """A WebSocket authenticated as `address` (signing with `key`) and
    subscribed to its held transactions."""
    ws = await ws_connect(url)
    doc = await authenticate(ws, address=address, key=key)
    assert doc.get("result", {}).get("authenticated"), doc
    doc = await call(ws, "mezz_subscribe", ["pending", {}])
    assert "result" in doc, doc
    return ws


async def collect_pending(ws, n, notes, timeout=30):
    while len(notes) < n:
        msg = await recv_json(ws, timeout)
        if msg.get("method") == "mezz_subscription":
            notes.append(msg["params"]["result"])
    return notes


def late(res):
    """A sub-block's answer saying it came after its slot was decided or
    closed (the deadline passed while the notice travelled): try the next."""
    return "error" in res and ("open slot" in res["error"]["message"] or
                               "already decided" in res["error"]["message"])


def granted_daemon(d, pause=0.2):
    """d started with tenant acme's rollup alpha (101) granted to WINNER
    from two slots on, once that slot has begun."""
    d.start()
    d.setup_tenant("acme", "alpha", 101, key=False)
    slot = d.status()["slot"]
    d.mezz("rights", "grant", "--from", slot + 2, "--to", slot + 100000, "--rollups", "101",
           "--winner", WINNER)
    while d.status()["slot"] < slot + 2:
        run_async(asyncio.sleep(pause))
    return d


class ProposerTest(DaemonCase):
    SLOT_MS = SLOT_MS
    SETTINGS = {"sequencer.proposer_deadline_ms": "500"}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.d.setup_tenant("acme", "alpha", 101, key=False)
        cls.d.setup_tenant("bravo", "beta", 202, key=False)
        cls.bkey = cls.d.create_key("bravo")
        slot = cls.d.status()["slot"]
        cls.d.mezz("rights", "grant", "--from", slot + 2, "--to", slot + 100000,
                   "--rollups", "101", "--winner", WINNER)
        cls.grant_from = slot + 2

    def wait_granted(self):
        for _ in range(100):
            if self.d.status()["slot"] >= self.grant_from:
                return
            run_async(asyncio.sleep(0.2))
        self.fail("grant never became active")

    def txs_in_blocks(self, ns_name):
        """Every transaction of a namespace in sealed blocks: [(seq, data)]."""
        out = []
        for h in range(1, self.d.status()["height"] + 1):
            b = self.d.rpc("mezz_getBlock", {"height": h})
            for ns in b["namespaces"]:
                if ns["name"] == ns_name:
                    out += [(t["seq"], t["data"]) for t in ns["txs"]]
        return out

    # -- grants ----------------------------------------------------------
    def test_grant_overlap_refused(self):
        p = self.d.mezz("rights", "grant", "--from", self.grant_from + 10, "--to",
                        self.grant_from + 20, "--rollups", "101", "--winner", OTHER, check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("overlapping", p.stderr)
        rows = self.d.mezz("rights", "list").stdout.strip().splitlines()
        self.assertEqual(len(rows), 2, rows)  # header + the one grant
        self.assertIn(WINNER.lower(), rows[1])

    def test_grant_of_rollup_zero_refused_as_invalid(self):
        for rollups in ("0", "0,101", "101,0"):
            p = self.d.mezz("rights", "grant", "--from", self.grant_from + 500000, "--to",
                            self.grant_from + 500010, "--rollups", rollups, "--winner", OTHER,
                            check=False)
            self.assertNotEqual(p.returncode, 0, rollups)
            self.assertIn("non-zero", p.stderr, rollups)

    # -- authentication and privacy -----------------------------------------
    def test_wrong_signature_refused(self):
        async def go():
            async with ws_connect(self.d.ws_url()) as ws:
                doc = await authenticate(ws, address=WINNER, key=OTHER_KEY)
                self.assertRpcError(doc, -32021)
                doc = await call(ws, "mezz_subscribe", ["pending"])
                self.assertRpcError(doc, -32021)
                # a signature over the right digest but a used-up challenge
                ch = await call(ws, "mezz_proposerChallenge")
                sig = sign(ch["result"]["digest"], WINNER_KEY)
                await call(ws, "mezz_proposerChallenge")  # replaces the challenge
                doc = await call(ws, "mezz_proposerAuth", {"address": WINNER, "signature": sig})
                self.assertRpcError(doc, -32021)
                doc = await call(ws, "mezz_submitSlotBlock", {"slot": 1, "txs": []})
                self.assertRpcError(doc, -32021)
                # the right key over the raw digest, no EIP-191 prefix: a
                # raw signature of a value the appliance hands out could be
                # a transaction's or a purchase's, so it is never accepted
                ch = await call(ws, "mezz_proposerChallenge")
                doc = await call(ws, "mezz_proposerAuth", {
                    "address": WINNER, "signature": sign_raw(ch["result"]["digest"], WINNER_KEY)})
                self.assertRpcError(doc, -32021)
                self.assertIn("EIP-191", doc["error"]["message"])
        run_async(go())

    def test_pending_subscription_ends_when_the_session_changes_address(self):
        """A pending subscription belongs to the address it was made under:
        authenticating as another address, or failing to authenticate,
        ends it (it went on with the new address's transactions, past the
        grant check, or paused and came back)."""
        self.wait_granted()

        async def go():
            ws = await pending_session(self.d.ws_url())
            doc = await authenticate(ws, address=OTHER, key=OTHER_KEY)
            self.assertTrue(doc["result"]["authenticated"])
            doc = await authenticate(ws, address=WINNER, key=OTHER_KEY)  # fails
            self.assertRpcError(doc, -32021)
            doc = await authenticate(ws)  # the winner again: no subscription now
            self.assertTrue(doc["result"]["authenticated"])
            data = rnd()
            sender = await ws_connect(self.d.ws_url())
            await sender.send(json.dumps({"jsonrpc": "2.0", "id": 1,
                                          "method": "mezz_sendTransaction",
                                          "params": {"namespace": "alpha", "data": data}}))
            await recv_json(sender, 30)  # sequenced (by the winner's fallback)
            notes = [m for m in await recv_until_quiet(ws, 1.0)
                     if m.get("method") == "mezz_subscription"]
            # and a new one may be made
            doc = await call(ws, "mezz_subscribe", ["pending"])
            await ws.close()
            await sender.close()
            return notes, doc
        notes, doc = run_async(go(), timeout=60)
        self.assertEqual(notes, [], "the old pending subscription went on")
        self.assertIn("result", doc)

    def test_pending_stream_private_to_winner(self):
        async def go():
            async with ws_connect(self.d.ws_url()) as anon:
                self.assertRpcError(await call(anon, "mezz_subscribe", ["pending"]), -32021)
            async with ws_connect(self.d.ws_url(), key=self.bkey) as tenant:
                self.assertRpcError(await call(tenant, "mezz_subscribe", ["pending"]), -32021)
            async with ws_connect(self.d.ws_url()) as other:
                doc = await authenticate(other, address=OTHER, key=OTHER_KEY)
                self.assertTrue(doc["result"]["authenticated"])
                self.assertRpcError(await call(other, "mezz_subscribe", ["pending"]), -32002)
        run_async(go())

    # -- the winner orders its slot -----------------------------------------
    def test_winner_orders_slot_and_executor_receives_it(self):
        self.wait_granted()

        async def attempt():
            win = await pending_session(self.d.ws_url())
            feed = await ws_connect(self.d.ws_url())
            sub = await call(feed, "mezz_subscribe", ["blocks", {"namespaces": ["alpha"]}])
            self.assertIn("result", sub)
            sender = await ws_connect(self.d.ws_url())
            datas = [rnd() for _ in range(3)]
            # one batch: the three are held together, for one slot
            await sender.send(json.dumps([
                {"jsonrpc": "2.0", "id": k, "method": "mezz_sendTransaction",
                 "params": {"namespace": "alpha", "data": x}} for k, x in enumerate(datas)]))
            misses0 = self.d.status()["proposer"]["misses"]
            notes = []
            while not set(datas) <= {n["txs"][0]["data"] for n in notes}:
                await collect_pending(win, len(notes) + 1, notes)
            by_data = {n["txs"][0]["data"]: n for n in notes if n["txs"][0]["data"] in datas}
            slots = {n["slot"] for n in by_data.values()}
            self.assertEqual(len(slots), 1, "one batch is held for one slot")
            slot = slots.pop()
            # nothing is preconfirmed before the winner's sub-block, unless
            # the deadline passed meanwhile (a slow machine): then the
            # appliance ordered them and recorded the miss; try again
            try:
                early = await asyncio.wait_for(sender.recv(), 0.3)
            except asyncio.TimeoutError:
                early = None
            if early is not None:
                self.assertGreater(self.d.status()["proposer"]["misses"], misses0, early)
                for ws in (win, feed, sender):
                    await ws.close()
                return None
            own = rnd()
            order = [by_data[x]["ref"] for x in reversed(datas)]
            res = await call(win, "mezz_submitSlotBlock", {
                "slot": slot, "txs": [{"pendingRef": r} for r in order] +
                [{"namespace": "alpha", "data": own}]})
            if late(res):
                # too late for that slot: the appliance ordered it; try again
                for ws in (win, feed, sender):
                    await ws.close()
                return None
            self.assertEqual(res.get("result", {}).get("accepted"), True, res)
            self.assertEqual(res["result"]["included"], 3)
            answers = await recv_json(sender, 30)
            self.assertIsInstance(answers, list)
            seq_of = {datas[a["id"]]: a["result"]["seq"] for a in answers}
            want = list(reversed(datas)) + [own]
            self.assertEqual(sorted(seq_of, key=seq_of.get), list(reversed(datas)))
            # the executor's feed: the alpha sub-block in the winner's order
            while True:
                msg = await recv_json(feed, 30)
                if msg.get("method") != "mezz_subscription":
                    continue
                blk = msg["params"]["result"]
                alpha = [t["data"] for ns in blk.get("namespaces", [])
                         if ns["name"] == "alpha" for t in ns["txs"]]
                if alpha:
                    self.assertEqual(alpha, want)
                    break
            for ws in (win, feed, sender):
                await ws.close()
            return True

        for _ in range(4):
            if run_async(attempt(), timeout=90):
                break
        else:
            self.fail("the winner never made a deadline in 4 slots")
        self.assertGreaterEqual(self.d.status()["proposer"]["accepted"], 1)

    def test_invalid_sub_blocks_rejected_then_fallback(self):
        self.wait_granted()
        cases = [
            ("foreign", lambda refs: [{"pendingRef": refs[0]},
                                      {"namespace": "beta", "data": rnd()}],
             "not granted"),
            ("duplicate", lambda refs: [{"pendingRef": refs[0]}, {"pendingRef": refs[0]}],
             "repeats pendingRef"),
            ("unknown", lambda refs: [{"pendingRef": 10 ** 9}], "not a transaction held"),
        ]

        async def attempt(build, why):
            win = await pending_session(self.d.ws_url())
            sender = await ws_connect(self.d.ws_url())
            data = rnd()
            await sender.send(json.dumps({"jsonrpc": "2.0", "id": 7,
                                          "method": "mezz_sendTransaction",
                                          "params": {"namespace": "alpha", "data": data}}))
            notes = await collect_pending(win, 1, [])
            note = [n for n in notes if n["txs"][0]["data"] == data][0]
            misses0 = self.d.status()["proposer"]["misses"]
            res = await call(win, "mezz_submitSlotBlock",
                             {"slot": note["slot"], "txs": build([note["ref"]])})
            self.assertIn("error", res)
            # Too late for this slot (the deadline passed while the note
            # travelled, or the slot was already decided): retry next slot.
            was_late = late(res)
            if not was_late:
                self.assertEqual(res["error"]["code"], -32020)
                self.assertIn(why, res["error"]["message"])
            # either way the appliance orders the held transaction, once
            ans = await recv_json(sender, 30)
            self.assertEqual(ans["id"], 7)
            self.assertIn("seq", ans["result"])
            if not was_late:
                self.assertGreater(self.d.status()["proposer"]["misses"], misses0)
            await win.close()
            await sender.close()
            return data, not was_late

        for name, build, why in cases:
            with self.subTest(name):
                for _ in range(4):
                    data, decided = run_async(attempt(build, why), timeout=90)
                    if decided:
                        break
                else:
                    self.fail("never submitted in time")
                self.d.wait_sealed_seq(self.d.status()["nextSeq"])
                self.assertEqual([d for _, d in self.txs_in_blocks("alpha")].count(data), 1)
        misses = self.d.mezz("rights", "misses").stdout.strip().splitlines()
        self.assertTrue(any("\tinvalid\t" in m for m in misses[1:]), misses)

    def test_missed_deadline_falls_back(self):
        self.wait_granted()

        async def go():
            win = await pending_session(self.d.ws_url())
            misses0 = self.d.status()["proposer"]["misses"]
            datas = [rnd() for _ in range(4)]
            sender = await ws_connect(self.d.ws_url())
            await sender.send(json.dumps([
                {"jsonrpc": "2.0", "id": k, "method": "mezz_sendTransaction",
                 "params": {"namespace": "alpha", "data": x}} for k, x in enumerate(datas)]))
            notes = []  # (the stream may also replay what earlier tests left held)
            while not set(datas) <= {n["txs"][0]["data"] for n in notes}:
                await collect_pending(win, len(notes) + 1, notes)
            answers = await recv_json(sender, 30)  # the winner never submits
            self.assertEqual(sorted(a["id"] for a in answers), [0, 1, 2, 3])
            seqs = [a["result"]["seq"] for a in answers]
            self.assertEqual(len(set(seqs)), 4)
            # the fallback keeps arrival order
            self.assertEqual(seqs, sorted(seqs))
            self.assertGreater(self.d.status()["proposer"]["misses"], misses0)
            await win.close()
            await sender.close()
            return datas

        datas = run_async(go(), timeout=90)
        self.d.wait_sealed_seq(self.d.status()["nextSeq"])
        sealed = [d for _, d in self.txs_in_blocks("alpha")]
        for x in datas:
            self.assertEqual(sealed.count(x), 1)
        misses = self.d.mezz("rights", "misses").stdout.strip().splitlines()
        self.assertTrue(any("\tdeadline\t" in m and WINNER.lower() in m for m in misses[1:]),
                        misses)

    def test_batch_request_held_then_fallback_answers_a_batch_receipt(self):
        # mezz_sendTransactions to a granted namespace: every transaction is
        # held for the winner; the winner never submits, so the fallback
        # sequences them (committer.c app__commit_decision) and the request
        # gets its one batch receipt, proved as any other.
        self.wait_granted()

        async def go():
            win = await pending_session(self.d.ws_url())
            datas = [rnd() for _ in range(5)]
            sender = await ws_connect(self.d.ws_url())
            await sender.send(json.dumps(
                {"jsonrpc": "2.0", "id": "b", "method": "mezz_sendTransactions",
                 "params": {"namespace": "alpha", "txs": datas}}))
            notes = []
            while not set(datas) <= {n["txs"][0]["data"] for n in notes}:
                await collect_pending(win, len(notes) + 1, notes)
            answer = await recv_json(sender, 30)
            await win.close()
            await sender.close()
            return datas, answer

        datas, answer = run_async(go(), timeout=90)
        res = answer["result"]
        self.assertEqual(len(res["txs"]), 5)
        seqs = [t.get("seq", t.get("receipt", {}).get("seq")) for t in res["txs"]]
        self.assertEqual(seqs, sorted(seqs))  # the fallback keeps arrival order
        self.assertTrue(all("error" not in t for t in res["txs"]), res["txs"])
        path = os.path.join(self.d.data_dir, "held-batch.json")
        with open(path, "w") as f:
            json.dump(answer, f)
        out = self.d.mezz("verify", "batch", path).stdout
        self.assertIn("OK batch receipt: 5 transactions proved by", out)
        self.d.wait_sealed_seq(max(seqs) + 1)
        sealed = dict(self.txs_in_blocks("alpha"))
        for seq, x in zip(seqs, datas):
            self.assertEqual(sealed[seq], x)

    def test_ungranted_namespace_unaffected(self):
        r = self.d.rpc("mezz_sendTransaction", {"namespace": "beta", "data": rnd()},
                       key=self.bkey)
        self.assertIn("seq", r)


class ProposerBundleTest(DaemonCase):
    """The winner's own atomic bundles in mezz_submitSlotBlock: legs in its
    granted namespaces land contiguous, in its order, between the items
    around them; a bundle with any bad leg refuses the whole sub-block
    (-32020) and none of its legs is stored."""
    SLOT_MS = SLOT_MS
    SETTINGS = {"sequencer.proposer_deadline_ms": "500"}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.d.setup_tenant("acme", "alpha", 101, key=False)
        cls.d.setup_tenant("acme", "gamma", 303, key=False, create_tenant=False)
        cls.d.setup_tenant("bravo", "beta", 202, key=False)
        slot = cls.d.status()["slot"]
        cls.d.mezz("rights", "grant", "--from", slot + 2, "--to", slot + 100000,
                   "--rollups", "101,303", "--winner", WINNER)
        while cls.d.status()["slot"] < slot + 2:
            run_async(asyncio.sleep(0.2))

    def sealed(self):
        """{data: seq} of every sealed transaction, all namespaces."""
        self.d.wait_sealed_seq(self.d.status()["nextSeq"])
        out = {}
        for h in range(1, self.d.status()["height"] + 1):
            for ns in self.d.rpc("mezz_getBlock", {"height": h})["namespaces"]:
                for t in ns["txs"]:
                    out[t["data"]] = t["seq"]
        return out

    def until_decided(self, attempt):
        """run attempt() (an async function returning None when late) until
        the winner makes a deadline, at most 4 slots."""
        last = []
        for _ in range(4):
            got = run_async(attempt(last), timeout=90)
            if got:
                return got
        self.fail("the winner never made a deadline in 4 slots: %r" % last[-1:])

    async def hold_user_bundle(self):
        """A winner's pending session, a user's bundle [alpha, gamma] sent on
        another socket and its pending notice: (win, sender, legs, notes,
        note), note["ref"] the bundle's pendingRef."""
        win = await pending_session(self.d.ws_url())
        sender = await ws_connect(self.d.ws_url())
        legs = [{"namespace": "alpha", "data": rnd()}, {"namespace": "gamma", "data": rnd()}]
        await sender.send(json.dumps({"jsonrpc": "2.0", "id": 7, "method": "mezz_sendBundle",
                                      "params": {"txs": legs}}))
        want = [x["data"] for x in legs]
        notes, note = [], None
        while note is None:
            await collect_pending(win, len(notes) + 1, notes)
            note = next((n for n in notes if [t["data"] for t in n["txs"]] == want), None)
        return win, sender, legs, notes, note

    def submit_around(self, build):
        """Hold two alpha transactions for the winner, submit build(refs) for
        their slot; retried (fresh transactions) while the slot was missed.
        Returns (answer, the two held datas)."""
        async def attempt(last):
            win = await pending_session(self.d.ws_url())
            sender = await ws_connect(self.d.ws_url())
            datas = [rnd(), rnd()]
            await sender.send(json.dumps([
                {"jsonrpc": "2.0", "id": k, "method": "mezz_sendTransaction",
                 "params": {"namespace": "alpha", "data": x}} for k, x in enumerate(datas)]))
            notes = []
            while not set(datas) <= {n["txs"][0]["data"] for n in notes}:
                await collect_pending(win, len(notes) + 1, notes)
            by = {n["txs"][0]["data"]: n for n in notes}
            slot = by[datas[0]]["slot"]
            # held for the next slot when this one is decided already: its
            # sub-block is taken once that slot is open
            while self.d.status()["slot"] < slot:
                await asyncio.sleep(0.05)
            res = await call(win, "mezz_submitSlotBlock", {
                "slot": slot, "txs": build([by[x]["ref"] for x in datas])})
            await recv_json(sender, 30)  # the held ones are sequenced either way
            await win.close()
            await sender.close()
            last.append(res)
            return None if late(res) else (res, datas)

        return self.until_decided(attempt)

    def test_own_bundle_lands_contiguous_in_order(self):
        legs = [("gamma", rnd()), ("alpha", rnd()), ("gamma", rnd())]
        res, held = self.submit_around(lambda refs: [
            {"pendingRef": refs[1]},
            {"bundle": [{"namespace": n, "data": x} for n, x in legs]},
            {"pendingRef": refs[0]}])
        self.assertEqual(res.get("result"), {"slot": res["result"]["slot"], "accepted": True,
                                             "included": 2, "own": 3, "bundles": 1}, res)
        seq = self.sealed()
        order = [held[1]] + [x for _, x in legs] + [held[0]]
        self.assertEqual([seq[x] for x in order], list(range(seq[held[1]], seq[held[1]] + 5)),
                         "the bundle's legs are contiguous, in the winner's order")

    def test_bad_leg_refuses_the_whole_sub_block(self):
        taken = rnd()  # an own transaction, sequenced first
        res, _ = self.submit_around(lambda refs: [{"pendingRef": refs[0]},
                                                  {"namespace": "alpha", "data": taken}])
        self.assertTrue(res["result"]["accepted"], res)
        cases = [
            ("ungranted leg", [("alpha", rnd()), ("beta", rnd())],
             r"txs\[1\]\.bundle\[1\]: namespace 'beta' is not granted"),
            ("leg already sequenced", [("gamma", rnd()), ("alpha", taken)],
             r"txs\[1\]\.bundle\[1\] is already sequenced"),
        ]
        for name, legs, why in cases:
            with self.subTest(name):
                res, held = self.submit_around(lambda refs: [
                    {"pendingRef": refs[0]},
                    {"bundle": [{"namespace": n, "data": x} for n, x in legs]}])
                self.assertEqual(res["error"]["code"], -32020, res)
                self.assertRegex(res["error"]["message"], why)
                seq = self.sealed()
                # nothing of the bundle, and the held ones ordered by the appliance
                for _, x in legs:
                    if x != taken:
                        self.assertNotIn(x, seq)
                self.assertLess(seq[held[0]], seq[held[1]], "fallback: arrival order")
        misses = self.d.mezz("rights", "misses").stdout.strip().splitlines()
        self.assertTrue(any("\tinvalid\t" in m for m in misses[1:]), misses)

    def test_held_bundle_ordered_by_the_winner_or_falls_back_whole(self):
        """A user's bundle into the winner's rollups is held as one pending
        item (bundle: true): the winner places it by its ref, or, left out,
        the appliance sequences it after the winner's items; either way its
        legs stay contiguous and one answer carries them. A bundle mixing a
        granted rollup with another party's is refused at once."""
        mixed = self.d.call("mezz_sendBundle", {"txs": [{"namespace": "alpha", "data": rnd()},
                                                        {"namespace": "beta", "data": rnd()}]})
        self.assertRpcError(mixed, -32010)

        async def attempt(include, last):
            win, sender, legs, _, note = await self.hold_user_bundle()
            want = [x["data"] for x in legs]
            self.assertIs(note["bundle"], True, note)
            while self.d.status()["slot"] < note["slot"]:
                await asyncio.sleep(0.05)
            own = rnd()
            txs = ([{"pendingRef": note["ref"]}] if include else []) + \
                [{"namespace": "alpha", "data": own}]
            res = await call(win, "mezz_submitSlotBlock", {"slot": note["slot"], "txs": txs})
            ans = await recv_json(sender, 30)  # sequenced either way
            await win.close()
            await sender.close()
            last.append(res)
            return None if late(res) else (res, ans, want, own)

        for include in (True, False):
            with self.subTest(include=include):
                res, ans, want, own = self.until_decided(
                    lambda last: attempt(include, last))
                self.assertTrue(res["result"]["accepted"], res)
                self.assertEqual(ans["id"], 7)
                r = ans["result"]
                self.assertEqual(r["count"], 2, ans)
                self.assertEqual([x["seq"] for x in r["legs"]], [r["firstSeq"], r["firstSeq"] + 1])
                seq = self.sealed()
                self.assertEqual([seq[x] for x in want], [r["firstSeq"], r["firstSeq"] + 1])
                if include:  # where the winner put it: before its own
                    self.assertEqual(seq[own], r["firstSeq"] + 2)
                else:  # left out: after the winner's items
                    self.assertEqual(r["firstSeq"], seq[own] + 1)

    def test_a_held_bundles_leg_cannot_be_sequenced_ahead_of_it(self):
        """The winner sees a user's held bundle and sequences one of its legs
        ahead of it: as its own transaction, or as the same transaction held
        again as a single. The bundle then failed (-32010, one leg sealed
        alone) while the sub-block was accepted. Such a sub-block is now
        invalid (-32020), and the appliance sequences the bundle whole."""
        async def attempt(mode, last):
            win, sender, legs, notes, note = await self.hold_user_bundle()
            want = [x["data"] for x in legs]
            if mode == "own":
                txs = [{"namespace": "alpha", "data": want[0]}]
            else:  # the same leg again, alone: held as a single for the winner
                other = await ws_connect(self.d.ws_url())
                await other.send(json.dumps({"jsonrpc": "2.0", "id": 8,
                                             "method": "mezz_sendTransaction",
                                             "params": legs[0]}))
                single = None
                while single is None:
                    await collect_pending(win, len(notes) + 1, notes)
                    single = next((n for n in notes if n["ref"] != note["ref"] and
                                   [t["data"] for t in n["txs"]] == want[:1]), None)
                txs = [{"pendingRef": single["ref"]}, {"pendingRef": note["ref"]}]
            while self.d.status()["slot"] < note["slot"]:
                await asyncio.sleep(0.05)
            res = await call(win, "mezz_submitSlotBlock", {"slot": note["slot"], "txs": txs})
            ans = await recv_json(sender, 30)
            if mode != "own":
                await recv_json(other, 30)
                await other.close()
            await win.close()
            await sender.close()
            last.append(res)
            return None if late(res) else (res, ans, want)

        for mode, why in (("own", r"txs\[0\] is a leg of bundle pendingRef \d+ held for you"),
                          ("single", r"txs\[0\]: pendingRef \d+ is also a leg of bundle")):
            with self.subTest(mode=mode):
                res, ans, want = self.until_decided(lambda last: attempt(mode, last))
                self.assertEqual(res.get("error", {}).get("code"), -32020, res)
                self.assertRegex(res["error"]["message"], why)
                self.assertIn("result", ans, "the bundle was sequenced whole: %r" % ans)
                r = ans["result"]
                self.assertEqual(r["count"], 2, ans)
                seq = self.sealed()
                self.assertEqual([seq[x] for x in want], [r["firstSeq"], r["firstSeq"] + 1])

    def test_malformed_bundles_refused(self):
        async def go():
            async with ws_connect(self.d.ws_url()) as ws:
                self.assertTrue((await authenticate(ws))["result"]["authenticated"])
                slot = self.d.status()["slot"]
                for txs in ([{"bundle": []}],
                            [{"bundle": [{"namespace": "alpha", "data": rnd()}] * 65}],
                            [{"bundle": [{"pendingRef": 1}]}],
                            [{"bundle": [{"namespace": "alpha", "data": rnd()}],
                              "pendingRef": 1}]):
                    doc = await call(ws, "mezz_submitSlotBlock", {"slot": slot, "txs": txs})
                    self.assertRpcError(doc, -32602)
                doc = await call(ws, "mezz_submitSlotBlock", {
                    "slot": slot, "txs": [{"bundle": [{"namespace": "nosuch", "data": rnd()}]}]})
                self.assertRpcError(doc, -32003)
        run_async(go())


class ProposerRestartTest(unittest.TestCase):
    """A (winner, slot) decided before a restart inside that slot stays
    decided: a second sub-block is refused as already decided, and the
    deadline records no miss for a slot whose sub-block was accepted.
    Slots are 8 s with a 2 s deadline, so a clean restart fits inside one;
    a round whose restart crossed into the next slot is run again."""

    SLOT_MS = 8000

    def setUp(self):
        self.d = Daemon(slot_ms=self.SLOT_MS,
                        settings={"sequencer.proposer_deadline_ms": "2000"})
        self.addCleanup(self.d.cleanup)
        self.d.start()
        self.d.setup_tenant("acme", "alpha", 101, key=False)
        slot = self.d.status()["slot"]
        self.d.mezz("rights", "grant", "--from", slot + 1, "--to", slot + 100000,
                    "--rollups", "101", "--winner", WINNER)

    def next_slot(self):
        """Wait for a granted slot to begin; return it."""
        s0 = self.d.status()["slot"]
        for _ in range(200):
            s = self.d.status()["slot"]
            if s > s0:
                return s
            run_async(asyncio.sleep(0.05))
        self.fail("no new slot")

    def submit(self, slot):
        async def go():
            async with ws_connect(self.d.ws_url()) as ws:
                doc = await authenticate(ws)
                self.assertTrue(doc.get("result", {}).get("authenticated"), doc)
                return await call(ws, "mezz_submitSlotBlock", {
                    "slot": slot, "txs": [{"namespace": "alpha", "data": rnd()}]})
        return run_async(go(), timeout=30)

    def misses(self, slot):
        db = sqlite3.connect("file:%s?mode=ro" % os.path.join(self.d.data_dir, "mezzanine.db"),
                             uri=True)
        try:
            return db.execute("SELECT reason FROM misses WHERE slot = ?", (slot,)).fetchall()
        finally:
            db.close()

    def accepted_then_restarted(self):
        """A slot whose sub-block was accepted and the daemon restarted
        inside it, or None when the restart left it."""
        slot = self.next_slot()
        res = self.submit(slot)
        self.assertEqual(res.get("result", {}).get("accepted"), True, res)
        self.d.stop()
        self.d.start()
        return slot if self.d.status()["slot"] == slot else None

    def test_decision_survives_a_restart_inside_its_slot(self):
        for resubmit in (True, False):
            for _ in range(3):
                slot = self.accepted_then_restarted()
                if slot is not None:
                    break
            else:
                self.fail("no restart fitted inside one slot")
            if resubmit:
                res = self.submit(slot)
                self.assertIn("error", res, "a second sub-block taken for slot %d" % slot)
                self.assertIn("already decided", res["error"]["message"])
            else:
                while self.d.status()["slot"] <= slot:
                    run_async(asyncio.sleep(0.1))
                self.assertEqual(self.misses(slot), [], "a miss for an accepted slot")
                self.assertEqual(self.d.status()["proposer"]["misses"], 0)


class ProposerFaultTest(unittest.TestCase):
    """Storage faults on the proposer's paths (fault build): with the WAL's
    fsync on mz-sync (storage.sync_pipeline = 1) and mz-sync stalled, the
    winner's "accepted" waits for the fsync like every receipt (it was sent
    at once); and when the sequencer halts, a request held for a winner is
    answered -32005 saying it is stored (it was never answered)."""

    def daemon(self, env, settings=None):
        tmp = tempfile.mkdtemp(prefix="mezz-propfault-")
        self.addCleanup(shutil.rmtree, tmp, True)
        env = {k: os.path.join(tmp, v) if k.endswith("_FILE") else v for k, v in env.items()}
        s = {"sequencer.proposer_deadline_ms": "500"}
        s.update(settings or {})
        d = Daemon(MEZZANINE_TEST, slot_ms=SLOT_MS, settings=s, env=env)
        self.addCleanup(d.cleanup)
        granted_daemon(d, pause=0.1)
        d.setup_tenant("bravo", "beta", 202, key=False)
        return d, env

    def test_winner_answer_waits_for_the_fsync(self):
        d, env = self.daemon({"MEZZ_FAULT_STALL_SYNC_FILE": "stall-sync"},
                             {"storage.sync_pipeline": "1"})
        stall = env["MEZZ_FAULT_STALL_SYNC_FILE"]

        async def attempt():
            ws = await ws_connect(d.ws_url())
            self.assertTrue((await authenticate(ws))["result"]["authenticated"])
            s0 = d.status()["slot"]
            while d.status()["slot"] == s0:  # the start of a slot: its deadline is 1.5 s off
                await asyncio.sleep(0.02)
            slot = d.status()["slot"]
            open(stall, "w").close()
            try:
                await ws.send(json.dumps({"jsonrpc": "2.0", "id": 1,
                                          "method": "mezz_submitSlotBlock",
                                          "params": {"slot": slot, "txs": [
                                              {"namespace": "alpha", "data": rnd()}]}}))
                try:
                    early = await asyncio.wait_for(ws.recv(), 1.0)
                except asyncio.TimeoutError:
                    early = None
            finally:
                os.unlink(stall)
            res = json.loads(early) if early else await recv_json(ws, 30)
            await ws.close()
            if late(res):
                return None
            self.assertIsNone(early, "answered while its fsync was stalled: %s" % early)
            self.assertIs(res["result"]["accepted"], True, res)
            return True

        for _ in range(3):
            if run_async(attempt(), timeout=60):
                return
        self.fail("the winner never made a deadline in 3 slots")

    def test_held_request_answered_when_the_sequencer_halts(self):
        d, _ = self.daemon({"MEZZ_FAULT_MAX_PAGES": "64"})

        async def go():
            win = await pending_session(d.ws_url())
            sender = await ws_connect(d.ws_url())
            data = rnd()
            await sender.send(json.dumps({"jsonrpc": "2.0", "id": 5,
                                          "method": "mezz_sendTransaction",
                                          "params": {"namespace": "alpha", "data": data}}))
            notes = await collect_pending(win, 1, [])
            self.assertEqual(notes[0]["txs"][0]["data"], data)
            # 100 x 4 KiB for beta: the 64-page database cap halts the sequencer
            st, doc = d.raw_post(json.dumps([
                {"jsonrpc": "2.0", "id": j, "method": "mezz_sendTransaction",
                 "params": {"namespace": "beta", "data": "0x" + os.urandom(4096).hex()}}
                for j in range(100)]))
            self.assertTrue(all(x["error"]["code"] == -32005 for x in doc), doc[:1])
            ans = await recv_json(sender, 10)
            await win.close()
            await sender.close()
            return ans
        ans = run_async(go(), timeout=60)
        self.assertEqual(ans["id"], 5)
        self.assertEqual(ans["error"]["code"], -32005, ans)
        self.assertIn("held", ans["error"]["message"])
        self.assertIs(d.status()["halted"], True)
        self.assertTrue(d.alive())


class ProposerCrashTest(unittest.TestCase):
    def test_held_transactions_survive_kill9(self):
        d = Daemon(slot_ms=SLOT_MS, settings={"sequencer.proposer_deadline_ms": "500"})
        self.addCleanup(d.cleanup)
        granted_daemon(d)
        datas = [rnd() for _ in range(5)]

        async def hold():
            win = await pending_session(d.ws_url())
            sender = await ws_connect(d.ws_url())
            await sender.send(json.dumps([
                {"jsonrpc": "2.0", "id": k, "method": "mezz_sendTransaction",
                 "params": {"namespace": "alpha", "data": x}} for k, x in enumerate(datas)]))
            # the winner hears of them only once they are durable
            await collect_pending(win, 5, [])
        run_async(hold(), timeout=60)
        d.kill9()
        d.start()
        hashes = [cast("keccak", x).stdout.strip() for x in datas]
        seqs = {}
        for _ in range(150):
            for h in hashes:
                if h in seqs:
                    continue
                doc = d.call("mezz_getPreconfirmation", {"hash": h, "namespace": "alpha"})
                if "result" in doc:
                    seqs[h] = doc["result"]["seq"]
            if len(seqs) == len(hashes):
                break
            run_async(asyncio.sleep(0.2))
        self.assertEqual(len(seqs), 5, "held transactions lost across kill -9")
        self.assertEqual(len(set(seqs.values())), 5)
        self.assertEqual(d.status()["proposer"]["pending"], 0)


if __name__ == "__main__":
    unittest.main()
