"""What ships in firmware-config/: every profile passes `mezz config check`,
the checker names every error with its line, and the sysctl file sets only
real, commented kernel keys."""
import glob
import os
import re
import subprocess
import tempfile
import unittest

from harness import MEZZ

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FW = os.path.join(REPO, "firmware-config")


def check(path):
    return subprocess.run([MEZZ, "config", "check", path], capture_output=True, text=True,
                          timeout=30)


class FirmwareConfigTest(unittest.TestCase):
    def test_every_shipped_config_passes_check(self):
        files = [os.path.join(FW, "mezzanine.conf")] + sorted(glob.glob(os.path.join(FW, "profiles", "*.conf")))
        names = {os.path.basename(f) for f in files}
        self.assertTrue({"dev.conf", "hosted.conf", "provider.conf"} <= names, names)
        for f in files:
            p = check(f)
            self.assertEqual(p.returncode, 0, "%s: %s%s" % (f, p.stdout, p.stderr))
            self.assertIn("OK", p.stdout)

    def test_profiles_mean_what_they_say(self):
        def text(name):
            with open(os.path.join(FW, "profiles", name)) as f:
                return f.read()
        self.assertRegex(text("dev.conf"), r"(?m)^listen = 127\.0\.0\.1:")
        self.assertRegex(text("hosted.conf"), r"(?m)^listen = 0\.0\.0\.0:")
        self.assertRegex(text("provider.conf"), r"(?m)^group_max_txs = \d+")

    def test_check_reports_every_error_with_line(self):
        bad = ("[server]\n"
               "listen = nowhere\n"          # 2
               "max_tx_bytes = -1\n"         # 3
               "this is not a setting\n"     # 4
               "[sequencer]\n"
               "slot_ms = 1\n"               # 6
               "nope = 3\n"                  # 7
               "[unterminated\n"             # 8
               "[log]\n"
               "level = chatty\n")           # 10
        with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
            f.write(bad)
        self.addCleanup(os.unlink, f.name)
        p = check(f.name)
        self.assertEqual(p.returncode, 1)
        for line in (2, 3, 4, 6, 7, 8, 10):
            self.assertRegex(p.stderr, r"(?m)^%s:%d: " % (re.escape(f.name), line), p.stderr)
        self.assertIn("7 error(s)", p.stderr)

    def test_a_rule_across_keys_names_the_line_of_a_key_it_names(self):
        """A rule between keys (l1.rpc_urls needs l1.inbox) is reported at
        the line of the key its sentence names, not at line 0 or at an
        unrelated [da] line."""
        with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
            f.write("[da]\n"              # 1
                    "k = 4\n"             # 2
                    "[l1]\n"              # 3
                    "rpc_urls = http://127.0.0.1:8545\n")  # 4
        self.addCleanup(os.unlink, f.name)
        p = check(f.name)
        self.assertEqual(p.returncode, 1)
        self.assertRegex(p.stderr, r"(?m)^%s:4: l1\.rpc_urls is set" % re.escape(f.name),
                         p.stderr)

    def test_sysctl_keys_exist_and_are_commented(self):
        path = os.path.join(FW, "sysctl.d", "90-mezzanine.conf")
        with open(path) as f:
            lines = f.read().splitlines()
        keys = 0
        for i, line in enumerate(lines):
            if not line.strip() or line.startswith("#"):
                continue
            m = re.match(r"^([a-z0-9_.]+) = (\S.*)$", line)
            self.assertIsNotNone(m, "line %d: %r" % (i + 1, line))
            j = i - 1  # a group of keys shares the comment above it
            while j >= 0 and re.match(r"^[a-z0-9_.]+ = ", lines[j]):
                j -= 1
            self.assertTrue(j >= 0 and lines[j].startswith("#"),
                            "%s has no comment above it" % m.group(1))
            proc = "/proc/sys/" + m.group(1).replace(".", "/")
            self.assertTrue(os.path.exists(proc), "no such kernel key: " + m.group(1))
            keys += 1
        for k in ("net.core.somaxconn", "net.ipv4.tcp_max_syn_backlog", "net.core.rmem_max",
                  "net.core.wmem_max", "net.ipv4.ip_local_port_range"):
            self.assertIn(k, "\n".join(lines))
        self.assertGreaterEqual(keys, 8)


if __name__ == "__main__":
    unittest.main()
