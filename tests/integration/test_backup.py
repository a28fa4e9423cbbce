"""mezz backup and restore against the real daemon.

A backup taken while loadgen keeps the committer busy restores into a new
data directory (with copied shards, beside the still-running original, and
with the original shard directories after it stopped) and the restored
node serves exactly the same blocks, which `mezz verify blocks` accepts.
Restore refuses a non-empty data directory and detects a truncated,
altered or incomplete backup before it writes anything."""
import hashlib
import json
import os
import re
import shutil
import sqlite3
import stat
import subprocess
import tempfile
import time
import unittest

from harness import BUILD, MEZZ, Daemon

K, M, D = 4, 4, 2


def mezz(*args, settings=None, data_dir=None, url=None):
    cmd = [MEZZ]
    if data_dir:
        cmd += ["--data-dir", data_dir]
    if url:
        cmd += ["--url", url]
    for k, v in (settings or {}).items():
        cmd += ["--set", "%s=%s" % (k, v)]
    return subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True,
                          timeout=300)


def refused_until_accepted(tc, node, new, restore_out):
    """A restored node starts only once its operator accepts that the backup
    lacks what the old node did after it: refused (exit 78, naming the
    command) until `mezz restore --accept-loss`. Returns the first seq the
    backup lacks."""
    m = re.search(r"the backup ends before seq (\d+)", restore_out)
    tc.assertIsNotNone(m, restore_out)
    with tc.assertRaises(AssertionError) as refused:
        node.start()
    tc.assertIn("exited with 78", str(refused.exception))
    tc.assertIn("startup_refused", str(refused.exception))
    tc.assertIn("restore --accept-loss", str(refused.exception))
    a = mezz("restore", "--accept-loss", data_dir=new)
    tc.assertEqual(a.returncode, 0, a.stdout + a.stderr)
    tc.assertIn("from seq %s on" % m.group(1), a.stdout)
    return int(m.group(1))


class BackupTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="mezz-backup-")
        cls.addClassCleanup(shutil.rmtree, cls.root, True)
        cls.data = os.path.join(cls.root, "data")
        os.mkdir(cls.data)
        cls.dirs = [os.path.join(cls.root, "disk%d" % i) for i in range(D)]
        cls.settings = {"storage.da_dirs": ",".join(cls.dirs), "da.k": str(K), "da.m": str(M)}
        cls.d = Daemon(settings=cls.settings, data_dir=cls.data)
        cls.addClassCleanup(cls.d.cleanup)
        cls.d.start()
        cls.d.setup_tenant("acme", "demo", 31337, key=False)
        cls.d.send("demo", "0x01")
        cls.d.wait_height(2)

        # The backup runs while loadgen keeps the committer writing.
        load = subprocess.Popen(
            [os.path.join(BUILD, "bench", "loadgen"), "--url", cls.d.ws_url(), "--namespace",
             "demo", "--duration", "4", "--warmup", "0", "--conns", "4", "--window", "16",
             "--rate", "0", "--batch", "10", "--size", "100"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.5)
        cls.bk = os.path.join(cls.root, "backup")
        cls.backup = mezz("backup", cls.bk, "--with-shards", settings=cls.settings,
                          data_dir=cls.data)
        out, err = load.communicate(timeout=60)
        cls.load_rc, cls.load_out, cls.load_err = load.returncode, out, err
        db = sqlite3.connect("file:%s?mode=ro" % os.path.join(cls.bk, "mezzanine.db"), uri=True)
        try:
            cls.tip = db.execute("SELECT max(height) FROM blocks").fetchone()[0] or 0
            cls.da_tip = db.execute("SELECT max(height) FROM da_blocks").fetchone()[0] or 0
        finally:
            db.close()
        cls.pk = cls.d.status()["publicKey"]

    def restore(self, *args, settings=None):
        return mezz("restore", *args, settings=settings)

    def accept(self, new, restored):
        node = Daemon(data_dir=new, settings={"da.k": str(K), "da.m": str(M)})
        self.addCleanup(node.cleanup)
        return refused_until_accepted(self, node, new, restored.stdout)

    def test_backup_was_taken_under_load(self):
        self.assertEqual(self.backup.returncode, 0, self.backup.stderr)
        self.assertEqual(self.load_rc, 0, self.load_err)
        receipts = json.loads(self.load_out.strip().splitlines()[-1])["receipts"]
        self.assertGreater(receipts, 2000, "the load did not really run")
        # the daemon kept committing after the backup's snapshot
        self.assertGreater(self.d.status()["height"], self.tip)
        self.assertGreater(self.da_tip, 0)
        for name in ("mezzanine.db", "identity.key", "apikey.secret", "shards.manifest",
                     "MANIFEST"):
            mode = stat.S_IMODE(os.stat(os.path.join(self.bk, name)).st_mode)
            self.assertEqual(mode & 0o077, 0, "%s is mode %o" % (name, mode))
        # one manifest line per available block up to the copy's DA tip
        with open(os.path.join(self.bk, "shards.manifest")) as f:
            lines = [l.split() for l in f if not l.startswith("#")]
        self.assertEqual([int(l[0]) for l in lines], list(range(1, self.da_tip + 1)))
        for l in lines:
            self.assertEqual(len(l), 4 + K + M, l[:5])
            self.assertEqual(len(l[1]), 64)
            self.assertTrue(all(not s.endswith(":-") for s in l[4:]), l)

    def assertSameBlocks(self, node):
        """Every block in the backup is served identically and verifies."""
        for h in range(1, self.tip + 1):
            want = self.d.rpc("mezz_getBlock", {"height": h})
            got = node.rpc("mezz_getBlock", {"height": h})
            self.assertEqual(got, want, "block %d differs" % h)
        p = mezz("verify", "blocks", 1, self.tip, "--public-key", self.pk, url=node.url)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(node.status()["publicKey"], self.pk)

    def test_restore_with_copied_shards_serves_the_same_blocks(self):
        new = os.path.join(self.root, "restored-copy")
        p = self.restore(self.bk, "--data-dir", new)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("integrity ok", p.stdout)
        self.assertIn(" 0 missing, 0 damaged", p.stdout)
        for name in ("mezzanine.db", "identity.key", "apikey.secret"):
            mode = stat.S_IMODE(os.stat(os.path.join(new, name)).st_mode)
            self.assertEqual(mode & 0o077, 0, "%s is mode %o" % (name, mode))
        # default shard directory of the new data dir; the original keeps running
        node = Daemon(data_dir=new, settings={"da.k": str(K), "da.m": str(M)})
        self.addCleanup(node.cleanup)
        self.accept(new, p)
        node.start()
        self.assertSameBlocks(node)
        # the copied shards are the committed ones
        s = mezz("da", "scrub", "--to", self.da_tip, data_dir=new,
                 settings={"da.k": str(K), "da.m": str(M)})
        self.assertEqual(s.returncode, 0, s.stdout + s.stderr)
        self.assertIn(" 0 missing, 0 corrupt", s.stdout)

    def test_damaged_shard_file_in_the_backup_is_left_out_and_reported(self):
        """A shard file of the backup with a flipped byte is not placed as if
        good: restore says so, the check counts it damaged, repair rebuilds it."""
        bk = os.path.join(self.root, "bk-shardflip")
        shutil.copytree(self.bk, bk)
        victim = os.path.join(bk, "shards", "0", "1-2")
        with open(victim, "r+b") as f:
            f.seek(100)
            b = f.read(1)
            f.seek(100)
            f.write(bytes([b[0] ^ 0x01]))
        new = os.path.join(self.root, "restored-shardflip")
        p = self.restore(bk, "--data-dir", new)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("1-2: not a shard of block 1, or damaged: left out", p.stderr)
        self.assertIn(" 0 missing, 1 damaged", p.stdout)
        self.assertIn("run mezz da repair", p.stdout)
        settings = {"da.k": str(K), "da.m": str(M)}
        r = mezz("da", "repair", "--to", self.da_tip, data_dir=new, settings=settings)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        s = mezz("da", "scrub", "--to", self.da_tip, data_dir=new, settings=settings)
        self.assertEqual(s.returncode, 0, s.stdout + s.stderr)
        self.assertIn(" 0 missing, 0 corrupt", s.stdout)

    def test_restore_with_the_original_shard_dirs(self):
        """Disaster recovery: the box's database is lost, its shard disks are not."""
        shutil.copytree(self.bk, os.path.join(self.root, "bk-noshards"))
        bk = os.path.join(self.root, "bk-noshards")
        shutil.rmtree(os.path.join(bk, "shards"))  # shards are not in MANIFEST
        new = os.path.join(self.root, "restored-same")
        p = self.restore(bk, "--data-dir", new, settings=self.settings)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn(" 0 missing, 0 damaged", p.stdout)
        # into empty shard directories: everything is reported missing, beyond m
        p = self.restore(bk, "--data-dir", os.path.join(self.root, "restored-empty"))
        self.assertEqual(p.returncode, 3, p.stdout + p.stderr)
        self.assertIn("cannot be rebuilt", p.stdout)

    def test_restore_into_non_empty_dir_is_refused(self):
        new = os.path.join(self.root, "busy")
        os.mkdir(new)
        with open(os.path.join(new, "keep"), "w") as f:
            f.write("mine")
        p = self.restore(self.bk, "--data-dir", new)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("not empty", p.stderr)
        self.assertEqual(sorted(os.listdir(new)), ["keep"])
        # the daemon's own live data dir, above all
        p = self.restore(self.bk, "--data-dir", self.data)
        self.assertEqual(p.returncode, 1)
        # and backup does not overwrite an existing backup
        p = mezz("backup", self.bk, data_dir=self.data, settings=self.settings)
        self.assertEqual(p.returncode, 1)
        self.assertIn("not empty", p.stderr)

    def damaged_copy(self, name):
        bk = os.path.join(self.root, "bk-" + name)
        shutil.copytree(self.bk, bk, ignore=shutil.ignore_patterns("shards"))
        return bk

    def assertRefused(self, bk, needle):
        new = os.path.join(self.root, "restored-" + os.path.basename(bk))
        p = self.restore(bk, "--data-dir", new)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn(needle, p.stderr)
        self.assertFalse(os.path.exists(os.path.join(new, "mezzanine.db")),
                         "a damaged backup was restored")

    def test_truncated_backup_is_detected(self):
        bk = self.damaged_copy("truncated")
        path = os.path.join(bk, "mezzanine.db")
        os.truncate(path, os.path.getsize(path) // 2)
        self.assertRefused(bk, "truncated")

    def test_altered_backup_is_detected(self):
        bk = self.damaged_copy("flipped")
        path = os.path.join(bk, "shards.manifest")
        with open(path, "r+b") as f:
            f.seek(os.path.getsize(path) // 2)
            b = f.read(1)
            f.seek(-1, 1)
            f.write(bytes([b[0] ^ 0x20]))
        self.assertRefused(bk, "SHA-256")

    def test_incomplete_backup_is_detected(self):
        bk = self.damaged_copy("incomplete")
        os.unlink(os.path.join(bk, "MANIFEST"))
        self.assertRefused(bk, "incomplete")

    def test_corrupt_database_fails_integrity_check(self):
        """Damage MANIFEST cannot see (its hashes rewritten to match) still
        stops at PRAGMA integrity_check."""
        bk = self.damaged_copy("corrupt")
        path = os.path.join(bk, "mezzanine.db")
        db = sqlite3.connect(path)
        page = db.execute("PRAGMA page_size").fetchone()[0]
        root = db.execute("SELECT rootpage FROM sqlite_schema WHERE name='blocks'").fetchone()[0]
        db.close()
        with open(path, "r+b") as f:  # scribble over the page header of the blocks table's root
            f.seek((root - 1) * page)
            f.write(b"\xff" * 8)
        lines = []
        with open(os.path.join(bk, "MANIFEST")) as f:
            for l in f:
                if l.startswith("#") or not l.endswith(" mezzanine.db\n"):
                    lines.append(l)
                    continue
                data = open(path, "rb").read()
                lines.append("%s %d mezzanine.db\n" % (hashlib.sha256(data).hexdigest(),
                                                       len(data)))
        with open(os.path.join(bk, "MANIFEST"), "w") as f:
            f.writelines(lines)
        self.assertRefused(bk, "integrity_check")


if __name__ == "__main__":
    unittest.main()


class RightsBackupTest(unittest.TestCase):
    """With sales running, a backup holds rights.db (copied before
    mezzanine.db) and lists it in MANIFEST, and the restored node goes on
    with the same sales instead of numbering new ones from 1 (the ids are
    on L1). The restored node refuses to start (exit 78) until `mezz
    restore --accept-loss`: the backup ends before the seq of a transaction
    the old node receipted after it, which the new node would give to
    another transaction under the same key."""

    def test_rights_db_backed_up_and_restore_waits_for_acceptance(self):
        from test_sales import SETTINGS as SALES, setup_rollups
        root = tempfile.mkdtemp(prefix="mezz-backup-rights-")
        self.addCleanup(shutil.rmtree, root, True)
        data = os.path.join(root, "data")
        os.mkdir(data)
        d = Daemon(settings=SALES, data_dir=data)
        self.addCleanup(d.cleanup)
        d.start()
        key, first = setup_rollups(d)
        deadline = time.time() + 30
        while d.rpc("mezz_getSale", {})["sale"] < first and time.time() < deadline:
            time.sleep(0.1)
        sale = d.rpc("mezz_getSale", {})
        self.assertGreaterEqual(sale["sale"], first)
        before = d.send("r1001", "0x" + os.urandom(8).hex(), key=key)
        bk = os.path.join(root, "backup")
        p = mezz("backup", bk, "--with-shards", data_dir=data)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("rights.db", p.stdout)
        after = d.send("r1001", "0x" + os.urandom(8).hex(), key=key)  # not in the backup
        with open(os.path.join(bk, "MANIFEST")) as f:
            self.assertIn("rights.db", [l.split()[2] for l in f if not l.startswith("#")])
        d.stop()

        new = os.path.join(root, "restored")
        p = mezz("restore", bk, "--data-dir", new)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        node = Daemon(settings=SALES, data_dir=new)
        self.addCleanup(node.cleanup)
        lacks = refused_until_accepted(self, node, new, p.stdout)
        self.assertTrue(before["seq"] < lacks <= after["seq"], p.stdout)
        node.start()
        again = node.rpc("mezz_getSale", {"sale": sale["sale"]})
        self.assertEqual(again["sale"], sale["sale"])
        self.assertEqual(again["rollups"], sale["rollups"])
        self.assertGreaterEqual(node.rpc("mezz_getSale", {})["sale"], sale["sale"])
        self.assertEqual(node.status()["nextSeq"], lacks)
