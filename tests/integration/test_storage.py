"""Storage promises: data files are private, and the WAL stays bounded under
sustained load (checkpoints keep up with a busy committer)."""
import json
import os
import stat
import subprocess
import unittest

from harness import BUILD, DaemonCase

WAL_LIMIT = 128 << 20  # CKPT_FRAMES is 32 MiB; unchecked, 5 s of load makes ~800 MiB


class StorageTest(DaemonCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.d.setup_tenant("acme", "demo", 31337, key=False)

    def test_data_files_are_private(self):
        self.d.send("demo", "0x01")  # make sure the WAL exists
        for name in ("mezzanine.db", "mezzanine.db-wal", "identity.key", "apikey.secret"):
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


if __name__ == "__main__":
    unittest.main()
