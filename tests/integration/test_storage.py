"""Storage promises: data files are private, the WAL stays bounded under
sustained load (checkpoints keep up with a busy committer), and the
transaction index (txindex.db) answers duplicates and lookups by hash from
memory, after its merge, and after being deleted or damaged."""
import json
import os
import re
import time
import stat
import subprocess
import unittest

from harness import BUILD, Daemon, DaemonCase

WAL_LIMIT = 128 << 20  # CKPT_FRAMES is 32 MiB; unchecked, 5 s of load makes ~800 MiB


class StorageTest(DaemonCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.d.setup_tenant("acme", "demo", 31337, key=False)

    def test_data_files_are_private(self):
        self.d.send("demo", "0x01")  # make sure the WAL exists
        for name in ("mezzanine.db", "mezzanine.db-wal", "txindex.db", "identity.key",
                     "apikey.secret"):
            mode = stat.S_IMODE(os.stat(os.path.join(self.d.data_dir, name)).st_mode)
            self.assertEqual(mode & 0o077, 0, "%s is mode %o" % (name, mode))

    def test_wal_stays_bounded_under_load(self):
        loadgen = os.path.join(BUILD, "bench", "loadgen")
        out = subprocess.run(
            [loadgen, "--url", self.d.ws_url(), "--namespace", "demo", "--duration", "5",
             "--warmup", "0", "--conns", "8", "--window", "32", "--rate", "0", "--batch", "10"],
            capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        self.assertGreater(result["receipts"], 20000, result)  # the load really ran
        wal = os.path.getsize(os.path.join(self.d.data_dir, "mezzanine.db-wal"))
        print("  wal after %d receipts: %.1f MiB" % (result["receipts"], wal / 2**20))
        self.assertLess(wal, WAL_LIMIT, "WAL grew to %d bytes" % wal)


def metric(d, name):
    _, _, raw = d.http(b"", "/metrics", method="GET")
    m = re.search(rb"^mezz_%s (\d+)" % name.encode(), raw, re.M)
    return int(m.group(1)) if m else None


class TxIndexTest(unittest.TestCase):
    """Resubmitting a stored transaction returns its receipt and takes no seq,
    and mezz_getPreconfirmation finds it: while it is only in memory, after
    mz-index merged it into txindex.db, after a restart, and after
    txindex.db was deleted or overwritten with garbage (it is rebuilt)."""

    def check_all(self, d, sent):
        n = d.status()["nextSeq"]
        for data, r in sent:
            self.assertEqual(d.send("demo", data)["seq"], r["seq"], "resubmission re-sequenced")
            self.assertEqual(d.rpc("mezz_getPreconfirmation", {"hash": r["hash"]})["seq"],
                             r["seq"])
        self.assertEqual(d.status()["nextSeq"], n, "a resubmission consumed a seq")

    def test_duplicates_and_lookups_survive_merge_restart_and_rebuild(self):
        d = Daemon(slot_ms=100)
        self.addCleanup(d.cleanup)
        d.start()
        d.setup_tenant("acme", "demo", 31337, key=False)
        merges = metric(d, "txindex_merges_total")
        sent = []
        for i in range(60):
            data = "0x" + os.urandom(40).hex()
            sent.append((data, d.send("demo", data)))
        self.check_all(d, sent[-10:])  # the newest, likely still in memory
        deadline = time.time() + 15
        while time.time() < deadline and (metric(d, "txindex_merges_total") == merges
                                          or metric(d, "txindex_unindexed") != 0):
            time.sleep(0.2)
        self.assertEqual(metric(d, "txindex_unindexed"), 0, "nothing merged in 15 s")
        self.assertGreater(metric(d, "txindex_merges_total"), merges)
        self.check_all(d, sent)  # now every one through txindex.db
        d.stop()
        d.start()
        self.check_all(d, sent)
        d.stop()
        xi = os.path.join(d.data_dir, "txindex.db")
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(xi + suffix):
                os.unlink(xi + suffix)
        d.start()
        self.check_all(d, sent)
        d.stop()
        with open(xi, "wb") as f:
            f.write(os.urandom(8192))
        d.start()
        self.assertIn("txindex_rebuild", d.log())
        self.check_all(d, sent)
        more = "0x" + os.urandom(40).hex()
        r = d.send("demo", more)
        self.assertEqual(r["seq"], sent[-1][1]["seq"] + 1)
        self.check_all(d, sent + [(more, r)])


if __name__ == "__main__":
    unittest.main()
