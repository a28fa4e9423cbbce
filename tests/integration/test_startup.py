"""Starts the daemon must refuse, and how: a configuration error exits 78
(EX_CONFIG, which the unit does not restart), a listening address that
cannot be bound exits 1 with the reason instead of running with no socket,
two shard directories that are one directory are named, not deadlocked
on, and a database is not reopened under another slot length."""
import os
import shutil
import socket
import subprocess
import tempfile
import unittest

from harness import MEZZANINE, Daemon, free_port


class StartupRefusedTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="mezz-start-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.data = os.path.join(self.tmp, "data")

    def start(self, *sets, config=None):
        """Run the daemon until it exits (each case here must exit at once)."""
        args = [MEZZANINE, "--data-dir", self.data]
        if config:
            args += ["-c", config]
        for s in sets:
            args += ["--set", s]
        try:
            return subprocess.run(args, capture_output=True, text=True, timeout=15)
        except subprocess.TimeoutExpired as e:
            self.fail("the daemon kept running: %s" % (e.stderr or b"")[-500:])

    def test_config_errors_exit_78(self):
        bad = os.path.join(self.tmp, "bad.conf")
        with open(bad, "w") as f:
            f.write("[sequencer]\nslot_ms = 1\n")
        p = self.start(config=bad)
        self.assertEqual(p.returncode, 78, p.stderr)
        self.assertIn("slot_ms", p.stderr)
        p = self.start("server.idle_timeout_s=65536")  # the WebSocket timer is 16 bits
        self.assertEqual(p.returncode, 78, p.stderr)
        self.assertIn("idle_timeout_s", p.stderr)

    def test_listen_address_must_be_a_literal(self):
        p = self.start("server.listen=localhost:%d" % free_port())
        self.assertEqual(p.returncode, 78, p.stderr)
        self.assertIn("IPv4 or [IPv6] literal", p.stderr)

    def test_port_in_use_stops_the_start(self):
        port = free_port()
        s = socket.socket()
        self.addCleanup(s.close)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen()
        p = self.start("server.listen=127.0.0.1:%d" % port)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("cannot listen on 127.0.0.1:%d: Address already in use" % port, p.stderr)
        self.assertNotIn("event=started", p.stderr)

    def test_one_shard_directory_under_two_names_is_refused(self):
        d = os.path.join(self.tmp, "shards")
        os.makedirs(d)
        link = os.path.join(self.tmp, "link")
        os.symlink(d, link)
        for second in (d + "/", link):
            p = self.start("server.listen=127.0.0.1:%d" % free_port(),
                           "storage.da_dirs=%s,%s" % (d, second))
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn("'%s' and '%s' are one directory" % (d, second), p.stderr)

    def test_a_missing_shard_directory_parent_is_named(self):
        missing = os.path.join(self.tmp, "not-mounted", "shards")
        p = self.start("server.listen=127.0.0.1:%d" % free_port(),
                       "storage.da_dirs=%s" % missing)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("'%s': No such file or directory" % missing, p.stderr)
        self.assertFalse(os.path.exists(os.path.dirname(missing)), "parents are not made")


class DataDirLockTest(unittest.TestCase):
    def test_a_second_daemon_on_one_data_directory_is_refused(self):
        """Two daemons on one database would sequence under one key: the
        second finds the data directory locked and names the first."""
        a = Daemon()
        self.addCleanup(shutil.rmtree, a.data_dir, True)
        self.addCleanup(a.kill9)
        a.start()
        b = Daemon(data_dir=a.data_dir)
        self.addCleanup(b.kill9)
        with self.assertRaises(AssertionError) as refused:
            b.start()
        self.assertIn("exited with 1", str(refused.exception))
        self.assertIn("a mezzanine daemon is running on this data directory",
                      str(refused.exception))
        self.assertIn("pid=%d" % a.proc.pid, str(refused.exception))
        h = a.status()["height"]
        a.wait_height(h + 2)  # the first goes on
        a.kill9()
        b.start()  # a killed holder leaves no lock behind
        b.wait_height(h + 3)
        b.stop()


class SlotLengthTest(unittest.TestCase):
    def test_another_slot_ms_on_the_same_database_is_refused(self):
        """Slot numbers are wall time / slot_ms: under a longer slot the old
        numbers lie decades ahead and sealing waited for them (the height
        froze, /healthz went red). The database keeps its slot_ms."""
        d = Daemon(slot_ms=100)
        self.addCleanup(shutil.rmtree, d.data_dir, True)
        self.addCleanup(d.kill9)
        d.start()
        d.wait_height(2)
        d.stop()
        d.settings["sequencer.slot_ms"] = "1000"
        with self.assertRaises(AssertionError) as refused:
            d.start()
        self.assertIn("exited with 78", str(refused.exception))
        self.assertIn("sequencer.slot_ms is 1000, this database's slots are 100 ms",
                      str(refused.exception))
        d.settings["sequencer.slot_ms"] = "100"
        d.start()
        h = d.status()["height"]
        d.wait_height(h + 3)  # sealing goes on
        d.stop()


if __name__ == "__main__":
    unittest.main()
