"""Data availability against the real daemon: every sealed block becomes
`available` (shards durable in D=4 directories), blocks survive losing two
directories or flipped bytes, `mezz da scrub` reports exactly the damage,
`mezz da repair` restores it, and shards and namespace proofs verify offline.

k=8, m=8 over 4 directories: each directory holds 4 shards of every block,
so losing two directories loses exactly m shards per block."""
import json
import os
import random
import shutil
import sqlite3
import subprocess
import tempfile
import time
import unittest

from harness import MEZZ, Daemon, run_async, ws_connect, ws_call

K, M, D = 8, 8, 4


def rmtree_live(path):
    """Remove a directory the daemon may be writing into at the same time."""
    for _ in range(100):
        try:
            shutil.rmtree(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.01)  # a new shard appeared mid-removal: again
    raise AssertionError("could not remove %s" % path)


class DaTest(unittest.TestCase):
    def setUp(self):
        self.data = tempfile.mkdtemp(prefix="mezz-da-")
        self.addCleanup(shutil.rmtree, self.data, True)
        self.dirs = [os.path.join(self.data, "disk%d" % i) for i in range(D)]
        self.settings = {"storage.da_dirs": ",".join(self.dirs), "da.k": str(K),
                         "da.m": str(M)}
        self.d = Daemon(settings=self.settings, data_dir=self.data)
        self.addCleanup(self.d.cleanup)
        self.d.start()
        self.d.setup_tenant("acme", "alpha", 101, key=False)
        self.d.setup_tenant("bravo", "beta", 102, key=False)
        self.load()

    # -- helpers -----------------------------------------------------------
    def load(self):
        """~600 transactions of random sizes in two namespaces over several slots,
        and a burst of 12 of 100,000 bytes: blocks whose shards pass 64 KiB,
        stored in aligned packs (docs/PROTOCOL.md), as well as small ones."""
        rng = random.Random(7)
        for burst in range(7):
            batch = []
            for i in range(100 if burst < 6 else 12):
                size = rng.choice([1, 7, 64, 200, 1000, 3000]) if burst < 6 else 100000
                data = "0x" + os.urandom(size).hex()
                ns = "alpha" if rng.random() < 0.6 else "beta"
                batch.append({"jsonrpc": "2.0", "id": i, "method": "mezz_sendTransaction",
                              "params": {"namespace": ns, "data": data}})
            status, doc = self.d.raw_post(json.dumps(batch))
            self.assertEqual(status, 200)
            self.assertTrue(all("result" in a for a in doc), doc[:2])
            time.sleep(0.15)
        last_seq = self.d.status()["nextSeq"]
        self.height = self.d.wait_sealed_seq(last_seq)
        self.wait_available(self.height)

    def wait_available(self, height, timeout=20.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            st = self.d.status()
            self.assertFalse(st["daHalted"], self.d.log())
            if st["availableHeight"] >= height:
                return
            time.sleep(0.05)
        self.fail("block %d not available within %.0fs" % (height, timeout))

    def snapshot(self):
        """Everything served about every block: block JSON, every shard, both
        namespace proofs."""
        out = {}
        for h in range(1, self.height + 1):
            out[(h, "block")] = self.d.rpc("mezz_getBlock", {"height": h})
            for i in range(K + M):
                out[(h, i)] = self.d.rpc("mezz_getShard", {"height": h, "index": i})
            for ns in ("alpha", "beta"):
                out[(h, ns)] = self.d.rpc("mezz_getNamespaceProof",
                                          {"height": h, "namespace": ns})
        return out

    def mezz(self, *args):
        cmd = [MEZZ, "--data-dir", self.data]
        for k, v in self.settings.items():
            cmd += ["--set", "%s=%s" % (k, v)]
        return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=120)

    def damage(self, out):
        """{(height, index): status} from scrub/repair output."""
        found = {}
        for line in out.splitlines():
            if line.startswith("height ") and " shard " in line:
                words = line.split()
                found[(int(words[1]), int(words[3].rstrip(":")))] = words[4]
        return found

    def shard_files(self):
        """Every block's pack file: <dir>/<h // 4096>/<h>, one per directory."""
        files = []
        for d in self.dirs:
            for root, _, names in os.walk(d):
                files += [os.path.join(root, n) for n in names if n.isdigit()]
        return files

    @staticmethod
    def pack_head(path):
        with open(path, "rb") as f:
            return f.read(4)

    @staticmethod
    def pack_records(path):
        """[(index, offset, length)] of the shard records in a pack, walked by
        their own headers (docs/PROTOCOL.md, "Shard record and shard pack"):
        back to back in a dense pack; in an aligned one ("MZPK" || 2) after
        the header, each after up to 4095 zero bytes."""
        out = []
        with open(path, "rb") as f:
            data = f.read()
        aligned = data[:8] == b"MZPK\0\0\0\2"
        off = 8 if aligned else 0
        while off < len(data):
            if aligned:
                pad = len(data[off:off + 4096]) - len(data[off:off + 4096].lstrip(b"\0"))
                assert pad < 4096, (path, off)
                off += pad
            assert data[off:off + 4] == b"MZSH", (path, off)
            index = int.from_bytes(data[off + 16:off + 18], "big")
            S = int.from_bytes(data[off + 22:off + 26], "big")
            n = 67 + 32 * data[off + 66] + S + 4
            out.append((index, off, n))
            off += n
        return out

    def restart_pruned(self):
        """Restart with transaction retention 1: blocks are served from shards."""
        self.d.stop()
        self.d.settings["storage.tx_retention_blocks"] = "1"
        self.d.start()
        deadline = time.time() + 10
        while time.time() < deadline:
            # the prune floor moves in bounded steps; wait until the loaded
            # blocks are all past it
            db = sqlite3.connect("file:%s?mode=ro" % os.path.join(self.data, "mezzanine.db"),
                                 uri=True)
            try:
                row = db.execute("SELECT v FROM meta WHERE k='txs_pruned_below'").fetchone()
            finally:
                db.close()
            if row and row[0] > self.height:
                return
            time.sleep(0.1)
        self.fail("retention did not prune the loaded blocks")

    # -- tests -------------------------------------------------------------
    def test_every_block_available_with_events_in_order(self):
        async def go():
            async with ws_connect(self.d.ws_url()) as ws:
                await ws_call(ws, "mezz_subscribe", ["blocks", {"fromHeight": 1}])
                seen = []
                while len([s for s in seen if s[0] == "available"]) < self.height:
                    msg = json.loads(await ws.recv())
                    r = msg["params"]["result"]
                    seen.append((r["level"], r["height"], r.get("daRoot")))
                return seen
        seen = run_async(go())
        sealed = [h for lvl, h, _ in seen if lvl == "sealed"]
        avail = [h for lvl, h, _ in seen if lvl == "available"]
        self.assertEqual(avail, list(range(1, self.height + 1)))
        self.assertEqual(sealed[:self.height], list(range(1, self.height + 1)))
        for lvl, h, _ in seen:  # available h only after sealed h
            if lvl == "available":
                self.assertLess(seen.index(("sealed", h, None)),
                                seen.index(next(s for s in seen if s[:2] == ("available", h))))
        for lvl, h, root in seen:
            if lvl == "available":
                shard = self.d.rpc("mezz_getShard", {"height": h, "index": 0})
                self.assertEqual(shard["daRoot"], root)

    def test_two_directories_lost_scrub_repair(self):
        before = self.snapshot()
        self.d.stop()
        lost = [1, 3]
        for i in lost:
            shutil.rmtree(self.dirs[i])
        scrub = self.mezz("da", "scrub")
        self.assertEqual(scrub.returncode, 1, scrub.stdout + scrub.stderr)
        expect = {(h, i): "missing" for h in range(1, self.height + 1)
                  for i in range(K + M) if i % D in lost}
        found = {k: v for k, v in self.damage(scrub.stdout).items() if k[0] <= self.height}
        self.assertEqual(found, expect)
        repair = self.mezz("da", "repair")
        self.assertEqual(repair.returncode, 0, repair.stdout + repair.stderr)
        self.assertIn("0 unrecoverable", repair.stdout)
        clean = self.mezz("da", "scrub")
        self.assertEqual(clean.returncode, 0, clean.stdout + clean.stderr)
        self.assertIn(" 0 missing, 0 corrupt", clean.stdout)
        self.restart_pruned()
        self.assertEqual(self.snapshot(), before)

    def test_lost_directories_served_and_repaired_on_read(self):
        before = self.snapshot()
        self.restart_pruned()  # blocks now come from shards
        for i in (0, 2):
            rmtree_live(self.dirs[i])  # under the running daemon
        self.assertEqual(self.snapshot(), before)
        clean = self.mezz("da", "scrub", "--to", str(self.height))
        self.assertEqual(clean.returncode, 0, clean.stdout + clean.stderr)
        self.assertIn("repaired_on_read", self.d.log())

    def test_flipped_bytes_scrub_repair(self):
        before = self.snapshot()
        self.d.stop()
        rng = random.Random(11)
        shards = sorted((f, i, off, n) for f in self.shard_files()
                        if int(os.path.basename(f)) <= self.height
                        for i, off, n in self.pack_records(f))
        self.assertEqual(len(shards), self.height * (K + M))
        aligned = {f for f, _, _, _ in shards if self.pack_head(f) == b"MZPK"}
        self.assertTrue(aligned, "no block big enough for aligned packs")
        self.assertLess(len(aligned), len({f for f, _, _, _ in shards}), "no dense packs")
        # damage in both layouts: 3 shards of aligned packs, 9 anywhere else
        big = [s for s in shards if s[0] in aligned]
        victims = rng.sample(big, 3)
        victims += rng.sample([s for s in shards if s not in victims], 9)
        expect = {}
        for f, i, off, n in victims:
            with open(f, "r+b") as fh:
                at = off + rng.randrange(n)
                fh.seek(at)
                b = fh.read(1)
                fh.seek(at)
                fh.write(bytes([b[0] ^ (1 << rng.randrange(8))]))
            expect[(int(os.path.basename(f)), i)] = "corrupt"
        scrub = self.mezz("da", "scrub")
        self.assertEqual(scrub.returncode, 1, scrub.stdout)
        self.assertEqual(self.damage(scrub.stdout), expect)
        repair = self.mezz("da", "repair")
        self.assertEqual(repair.returncode, 0, repair.stdout + repair.stderr)
        self.assertIn("%d shards rebuilt" % len(victims), repair.stdout)
        clean = self.mezz("da", "scrub")
        self.assertEqual(clean.returncode, 0, clean.stdout)
        self.restart_pruned()
        self.assertEqual(self.snapshot(), before)

    def test_more_than_m_lost_is_reported_not_invented(self):
        self.d.stop()
        for i in (0, 1, 2):
            shutil.rmtree(self.dirs[i])
        scrub = self.mezz("da", "scrub", "--to", "3")
        self.assertEqual(scrub.returncode, 1)
        repair = self.mezz("da", "repair", "--to", "3")
        self.assertEqual(repair.returncode, 1, repair.stdout)
        self.assertIn("3 unrecoverable", repair.stdout)

    def test_proofs_verify_offline_and_tampering_fails(self):
        h = self.height
        for method, params, kind in (
                ("mezz_getShard", {"height": h, "index": 3}, "shard"),
                ("mezz_getShard", {"height": h, "index": K + M - 1}, "shard"),
                ("mezz_getNamespaceProof", {"height": h, "namespace": "alpha"}, "nsproof"),
                ("mezz_getNamespaceProof", {"height": 1, "namespace": "beta"}, "nsproof")):
            doc = self.d.call(method, params)
            path = os.path.join(self.data, "proof.json")
            with open(path, "w") as f:
                json.dump(doc, f)
            ok = self.mezz("verify", kind, path)
            self.assertEqual(ok.returncode, 0, ok.stdout + ok.stderr)
            self.assertTrue(ok.stdout.startswith("OK"), ok.stdout)
            # flip one hex digit of the proof blob: must fail
            r = doc["result"]
            p = r["proof"]
            pos = len(p) // 2
            r["proof"] = p[:pos] + ("0" if p[pos] != "0" else "1") + p[pos + 1:]
            with open(path, "w") as f:
                json.dump(doc, f)
            bad = self.mezz("verify", kind, path)
            self.assertNotEqual(bad.returncode, 0, bad.stdout)
        # a namespace proof for a namespace absent from block 1 says so
        doc = self.d.rpc("mezz_getNamespaceProof", {"height": 1, "namespace": "alpha"})
        self.assertEqual(doc["count"], len(doc["txs"]))

    def test_retention_deletes_old_shards_and_payloads(self):
        self.d.stop()
        self.d.settings["da.retention_blocks"] = "5"
        self.d.settings["storage.tx_retention_blocks"] = "3"
        self.d.start()
        deadline = time.time() + 15
        while time.time() < deadline:
            db = sqlite3.connect("file:%s?mode=ro" % os.path.join(self.data, "mezzanine.db"),
                                 uri=True)
            try:
                floor = db.execute(
                    "SELECT v FROM meta WHERE k='shards_pruned_below'").fetchone()
            finally:
                db.close()
            heights = {int(os.path.basename(f)) for f in self.shard_files()}
            if floor and floor[0] > self.height + 2 and min(heights) >= floor[0] - 1:
                break
            time.sleep(0.2)
        else:
            self.fail("shards not pruned: floor %r, lowest stored %r" % (floor, min(heights)))
        doc = self.d.call("mezz_getShard", {"height": 1, "index": 0})
        self.assertEqual(doc["error"]["code"], -32007, doc)
        self.assertIn("retention", doc["error"]["message"])
        top = self.d.status()["availableHeight"]
        self.assertEqual(self.d.rpc("mezz_getShard", {"height": top, "index": 0})["index"], 0)
        scrub = self.mezz("da", "scrub")
        self.assertEqual(scrub.returncode, 0, scrub.stdout + scrub.stderr)

    def test_failed_shard_write_stops_da_not_preconfirmations(self):
        """A shard directory that cannot be written (here: replaced by a plain
        file) stops the DA stage for good, says so, and leaves the sequencer
        running; the blocks stay sealed, not available."""
        # the daemon's next block can recreate the directory between the
        # removal and the file's creation: remove it again until the file wins
        for _ in range(100):
            rmtree_live(self.dirs[2])
            try:
                fd = os.open(self.dirs[2], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                break
            except (FileExistsError, IsADirectoryError):
                continue
        else:
            self.fail("could not replace %s with a file" % self.dirs[2])
        os.write(fd, b"not a directory\n")
        os.close(fd)
        deadline = time.time() + 10
        while time.time() < deadline and not self.d.status()["daHalted"]:
            time.sleep(0.05)
        st = self.d.status()
        self.assertTrue(st["daHalted"], self.d.log())
        self.assertIn("da_halted", self.d.log())
        code, _, body = self.d.http(b"", "/healthz", method="GET")
        self.assertEqual(code, 503)
        self.assertIn(b"da:", body)
        stuck = st["availableHeight"]
        r = self.d.call("mezz_sendTransaction", {"namespace": "alpha", "data": "0x0a0b"})
        self.assertIn("result", r, r)  # preconfirmations go on
        self.d.wait_sealed_seq(r["result"]["seq"] + 1)
        time.sleep(0.5)
        st = self.d.status()
        self.assertEqual(st["availableHeight"], stuck)
        self.assertGreater(st["height"], stuck)

    def test_shards_of_a_private_namespace_need_its_key(self):
        key = self.d.setup_tenant("carol", "private", 103, ingress="public", feed="key")
        r = self.d.rpc("mezz_sendTransaction", {"namespace": "private", "data": "0x5eed"})
        h = self.d.wait_sealed_seq(r["seq"] + 1)
        self.wait_available(h)
        for height in range(h, 0, -1):  # the block holding it
            hdr = self.d.rpc("mezz_getBlock", {"height": height})["header"]
            if hdr["firstSeq"] <= r["seq"] < hdr["firstSeq"] + hdr["txCount"]:
                break
        anon = self.d.call("mezz_getShard", {"height": height, "index": 0})
        self.assertEqual(anon["error"]["code"], -32001, anon)
        proof = self.d.call("mezz_getNamespaceProof", {"height": height, "namespace": "private"})
        self.assertEqual(proof["error"]["code"], -32001, proof)
        self.assertIn("result", self.d.call("mezz_getShard", {"height": height, "index": 0},
                                            key=key))

    def test_bad_params(self):
        for params in ({"height": 0, "index": 0}, {"height": 1, "index": -1},
                       {"height": 1, "index": 256}, {"height": 1}):
            self.assertEqual(self.d.call("mezz_getShard", params)["error"]["code"], -32602)
        self.assertEqual(self.d.call("mezz_getShard", {"height": 1, "index": K + M})
                         ["error"]["code"], -32602)
        self.assertEqual(self.d.call("mezz_getShard", {"height": 10**9, "index": 0})
                         ["error"]["code"], -32007)
        self.assertEqual(self.d.call("mezz_getNamespaceProof",
                                     {"height": 1, "namespace": "nope"})["error"]["code"],
                         -32003)


if __name__ == "__main__":
    unittest.main()
