"""Data availability against the real daemon: every sealed block becomes
`available` (shards durable in D=4 directories), blocks survive losing two
directories or flipped bytes, `mezz da scrub` reports exactly the damage,
`mezz da repair` restores it, and shards and namespace proofs verify offline.

k=8, m=8 over 4 directories: each directory holds 4 shards of every block,
so losing two directories loses exactly m shards per block."""
import json
import os
import pty
import random
import re
import select
import shutil
import sqlite3
import subprocess
import tempfile
import time
import unittest

from harness import MEZZ, Daemon, fault_daemon, run_async, ws_connect, ws_call

K, M, D = 8, 8, 4

# The progress line of `mezz da scrub|repair` (appliance/cli_progress.c).
PROGRESS = re.compile(r"^(scrub|repair): (\d+)/(\d+) blocks  (\d+\.\d) MiB  "
                      r"(\d+\.\d) MiB/s  (\d+) s left\s*$")
# Its summary line, on stdout whether or not that is a terminal.
SUMMARY = re.compile(r"^(scrub|repair): (\d+) blocks, .* (\d+\.\d) MiB read in ")


def render(raw):
    """The lines a terminal shows for raw output: carriage return, erase to
    the end of the line (ESC [ K) and overwriting, as a terminal does."""
    lines, cur, col, i = [], [], 0, 0
    while i < len(raw):
        if raw.startswith("\033[K", i):
            del cur[col:]
            i += 3
            continue
        c = raw[i]
        i += 1
        if c == "\n":
            lines.append("".join(cur))
            cur, col = [], 0
        elif c == "\r":
            col = 0
        else:
            if col < len(cur):
                cur[col] = c
            else:
                cur.append(c)
            col += 1
    if cur:
        lines.append("".join(cur))
    return lines


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

    def snapshot(self, lead=None):
        """Everything served about every block: block JSON, every shard, both
        namespace proofs. lead maps a height to what is asked for first
        ("block", "shards" or "ns"): the request that meets the block's
        damage, if it has any. The block comes first by default."""
        out = {}
        for h in range(1, self.height + 1):
            asks = {"block": [((h, "block"), "mezz_getBlock", {"height": h})],
                    "shards": [((h, i), "mezz_getShard", {"height": h, "index": i})
                               for i in range(K + M)],
                    "ns": [((h, ns), "mezz_getNamespaceProof", {"height": h, "namespace": ns})
                           for ns in ("alpha", "beta")]}
            first = (lead or {}).get(h, "block")
            for kind in [first] + [k for k in asks if k != first]:
                for key, method, params in asks[kind]:
                    out[key] = self.d.rpc(method, params)
        return out

    def mezz_cmd(self, *args):
        cmd = [MEZZ, "--data-dir", self.data]
        for k, v in self.settings.items():
            cmd += ["--set", "%s=%s" % (k, v)]
        return cmd + list(args)

    def mezz(self, *args):
        return subprocess.run(self.mezz_cmd(*args), capture_output=True, text=True,
                              timeout=120)

    def mezz_tty(self, *args, timeout=120):
        """Run mezz with stdin, stdout and stderr on one pseudo-terminal, as
        an operator would; return (exit code, everything it wrote there)."""
        master, slave = pty.openpty()
        try:
            p = subprocess.Popen(self.mezz_cmd(*args), stdin=slave, stdout=slave,
                                 stderr=slave)
        finally:
            os.close(slave)
        chunks, deadline = [], time.time() + timeout
        try:
            while time.time() < deadline:
                if not select.select([master], [], [], 1.0)[0]:
                    continue
                try:
                    b = os.read(master, 65536)
                except OSError:  # EIO: mezz exited and closed the terminal
                    break
                if not b:
                    break
                chunks.append(b)
        finally:
            os.close(master)
        try:
            rc = p.wait(timeout=max(1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            raise
        return rc, b"".join(chunks).decode(errors="replace")

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

    def block_shards(self, height=None):
        """[(pack file, index, offset, length)] of every shard record of the
        loaded blocks, or of block height alone."""
        def wanted(h):
            return h == height if height is not None else h <= self.height
        return sorted((f, i, off, n) for f in self.shard_files()
                      if wanted(int(os.path.basename(f)))
                      for i, off, n in self.pack_records(f))

    @staticmethod
    def flip(rng, victims):
        """Flip one bit of a random byte of each shard record in victims;
        return the damage scrub must find, {(height, index): "corrupt"}."""
        expect = {}
        for f, i, off, n in victims:
            with open(f, "r+b") as fh:
                at = off + rng.randrange(n)
                fh.seek(at)
                b = fh.read(1)
                fh.seek(at)
                fh.write(bytes([b[0] ^ (1 << rng.randrange(8))]))
            expect[(int(os.path.basename(f)), i)] = "corrupt"
        return expect

    def pick_victims(self, rng, shards, aligned):
        """Damage in both pack layouts: 3 shards of aligned packs, 9 anywhere else."""
        big = [s for s in shards if s[0] in aligned]
        victims = rng.sample(big, 3)
        return victims + rng.sample([s for s in shards if s not in victims], 9)

    def repaired_on_read(self):
        """{height: (corrupt, repaired)} from the daemon's da_repaired_on_read lines."""
        out = {}
        with open(self.d.log_path, errors="replace") as f:
            for line in f:
                if "da_repaired_on_read" in line:
                    h = int(re.search(r"height=(\d+)", line).group(1))
                    self.assertNotIn(h, out, "block %d repaired on read twice" % h)
                    out[h] = (int(re.search(r"corrupt=(\d+)", line).group(1)),
                              int(re.search(r"repaired=(\d+)", line).group(1)))
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
        """Flipped bytes in random shards: scrub finds exactly the damage;
        while it is there every block, shard and namespace proof is served
        byte-identical from the shards (repairing on read exactly the damaged
        blocks, after which scrub is clean); damaged again, `mezz da repair`
        rebuilds exactly the damage and scrub is clean."""
        before = self.snapshot()
        self.d.stop()
        rng = random.Random(11)
        shards = self.block_shards()
        self.assertEqual(len(shards), self.height * (K + M))
        aligned = {f for f, _, _, _ in shards if self.pack_head(f) == b"MZPK"}
        self.assertTrue(aligned, "no block big enough for aligned packs")
        self.assertLess(len(aligned), len({f for f, _, _, _ in shards}), "no dense packs")

        # served while damaged: from shards only (transactions pruned)
        expect = self.flip(rng, self.pick_victims(rng, shards, aligned))
        self.restart_pruned()
        scrub = self.mezz("da", "scrub", "--to", str(self.height))
        self.assertEqual(scrub.returncode, 1, scrub.stdout)
        self.assertEqual(self.damage(scrub.stdout), expect, "damage present once serving")
        # the first request for a damaged block meets the damage: its block,
        # a shard or a namespace proof, in turn
        damaged = sorted({h for h, _ in expect})
        self.assertGreaterEqual(len(damaged), 3)
        lead = {h: ("block", "shards", "ns")[j % 3] for j, h in enumerate(damaged)}
        self.assertEqual(self.snapshot(lead), before)
        per_block = {h: sum(1 for x, _ in expect if x == h) for h in damaged}
        self.assertEqual(self.repaired_on_read(), {h: (n, n) for h, n in per_block.items()})
        clean = self.mezz("da", "scrub", "--to", str(self.height))
        self.assertEqual(clean.returncode, 0, clean.stdout)

        # repaired offline
        self.d.stop()
        expect = self.flip(rng, self.pick_victims(rng, shards, aligned))
        scrub = self.mezz("da", "scrub")
        self.assertEqual(scrub.returncode, 1, scrub.stdout)
        self.assertEqual(self.damage(scrub.stdout), expect)
        repair = self.mezz("da", "repair")
        self.assertEqual(repair.returncode, 0, repair.stdout + repair.stderr)
        self.assertIn("%d shards rebuilt" % len(expect), repair.stdout)
        # the packs holding a damaged shard are rewritten whole, and only those
        packs = {f for f, i, _, _ in shards if (int(os.path.basename(f)), i) in expect}
        mib = sum(os.path.getsize(f) for f in packs) / 1048576
        written = re.search(r"shards rebuilt \((\d+\.\d) MiB written\)", repair.stdout)
        self.assertIsNotNone(written, repair.stdout)
        self.assertAlmostEqual(float(written.group(1)), mib, delta=0.051)
        clean = self.mezz("da", "scrub")
        self.assertEqual(clean.returncode, 0, clean.stdout)
        self.d.start()
        self.assertEqual(self.snapshot(), before)

    def test_scrub_repair_progress_line_only_on_a_terminal(self):
        """On a terminal, scrub and repair show the progress line (N/N blocks,
        MiB, MiB/s, time left), erased before each damage line so that the
        two never share a line; repair counts what it reads to rebuild. Not
        on a terminal there is no progress line. The summary is printed
        either way."""
        self.d.stop()
        # one corrupt shard in the largest block with an aligned pack: not
        # block 1, so a progress line is on the screen when its damage is met
        records = [r for r in self.block_shards() if self.pack_head(r[0]) == b"MZPK"]
        h = max(int(os.path.basename(r[0])) for r in records)
        self.assertGreater(h, 1)
        victim = self.block_shards(h)[0]
        self.flip(random.Random(3), [victim])
        i = victim[1]
        block_mib = sum(r[3] for r in self.block_shards(h)) / 1048576.0
        damage_line = "height %d shard %d: corrupt (%s)" % (h, i, self.dirs[i % D])

        def on_tty(cmd, rc):
            code, raw = self.mezz_tty("da", cmd)
            lines = render(raw)
            self.assertEqual(code, rc, raw)
            summary = [m for m in map(SUMMARY.match, lines) if m and m.group(1) == cmd]
            self.assertEqual(len(summary), 1, lines)
            blocks, mib = int(summary[0].group(2)), summary[0].group(3)
            progress = [m for m in map(PROGRESS.match, lines) if m]
            self.assertTrue(progress, "no progress line on a terminal: %r" % raw)
            last = progress[-1]
            self.assertEqual(last.group(1), cmd)
            self.assertEqual((int(last.group(2)), int(last.group(3))), (blocks, blocks), lines)
            self.assertEqual(last.group(4), mib, "progress and summary count the same bytes")
            self.assertGreater(float(last.group(5)), 0, "a rate")
            self.assertEqual(last.group(6), "0", "nothing left at the end")
            # a damage line stands alone on its line: the progress line was
            # erased first, not continued by the damage line
            self.assertEqual([l for l in lines if l.startswith("height ")], [damage_line],
                             lines)
            for m in re.finditer("height ", raw):
                self.assertTrue(raw[:m.start()].endswith(("\n", "\033[K")) or m.start() == 0,
                                "damage line printed over the progress line: %r"
                                % raw[max(0, m.start() - 80):m.end() + 20])
            return blocks, float(mib)

        def off_tty(cmd, rc):
            p = self.mezz("da", cmd)
            self.assertEqual(p.returncode, rc, p.stdout + p.stderr)
            self.assertFalse([l for l in p.stderr.splitlines() if PROGRESS.match(l)], p.stderr)
            self.assertFalse([l for l in p.stdout.splitlines() if PROGRESS.match(l)], p.stdout)
            summary = [l for l in p.stdout.splitlines() if SUMMARY.match(l)]
            self.assertEqual(len(summary), 1, p.stdout)
            return p.stdout

        blocks, scrub_mib = on_tty("scrub", 1)
        self.assertGreaterEqual(blocks, self.height)
        self.assertIn(damage_line, off_tty("scrub", 1).splitlines())
        _, repair_mib = on_tty("repair", 0)
        # the scrub's reads and the rebuild's: every shard of the block again
        self.assertAlmostEqual(repair_mib - scrub_mib, block_mib, delta=0.11)
        out = off_tty("repair", 0)
        self.assertIn(", 0 shards rebuilt", out)
        self.assertNotIn("height ", out)

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


class QueueWeightTest(unittest.TestCase):
    """A block waiting for mz-da keeps the feed's JSON of it alive (the
    sealer renders it ahead for subscribers: hex, about twice the payload).
    da.queue_mib counts it: before, only the payload was counted and the
    queue held about three times the cap with subscribers."""

    def test_a_queued_block_counts_its_rendered_json(self):
        from test_ops import parse_prometheus, value
        # mz-da holds its first block; the rest queue
        d, _ = fault_daemon(self, "MEZZ_FAULT_STALL_DA_FILE", "stall-da", exists=True)
        d.start()
        d.setup_tenant("t", "demo", 31337, key=False)
        d.wait_height(2)

        def queued():
            _, _, raw = d.http(b"", "/metrics", method="GET")
            return value(parse_prometheus(raw.decode()), "mezz_da_queue_bytes")

        size = 120 * 1024

        async def scenario():
            async with ws_connect(d.ws_url()) as ws:
                sub = await ws_call(ws, "mezz_subscribe", ["blocks", {"levels": ["sealed"]}])
                self.assertIn("result", sub)
                time.sleep(0.3)  # the subscription's interest reaches the sealer
                before = queued()
                seq = d.send("demo", os.urandom(size))["seq"]
                d.wait_sealed_seq(seq + 1)
                return before, queued()

        before, after = run_async(scenario())
        # payload + its hex JSON; a few empty blocks sealed meanwhile weigh
        # a few hundred bytes each
        self.assertGreater(after - before, 2.5 * size,
                           "queued bytes grew by %d for a %d-byte transaction" %
                           (after - before, size))
