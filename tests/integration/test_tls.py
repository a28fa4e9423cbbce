"""TLS on the service port: only TLS 1.2/1.3, AEAD ciphers only, and a
JSON-RPC call over https with curl --cacert (self-signed cert made here)."""
import json
import os
import shutil
import subprocess
import tempfile
import unittest

import ssl

from harness import Daemon, run_async, ws_call, ws_connect


def s_client(port, *args):
    p = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
                        "-servername", "localhost", *args],
                       input="", capture_output=True, text=True, timeout=20)
    return p.returncode, p.stdout + p.stderr


@unittest.skipUnless(shutil.which("openssl") and shutil.which("curl"), "openssl/curl missing")
class TlsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="mezz-tls-")
        cls.cert = os.path.join(cls.dir, "cert.pem")
        cls.key = os.path.join(cls.dir, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                        "-keyout", cls.key, "-out", cls.cert, "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                       check=True, capture_output=True, timeout=30)
        cls.d = Daemon(settings={"server.tls_cert": cls.cert, "server.tls_key": cls.key})
        cls.addClassCleanup(shutil.rmtree, cls.dir, True)
        cls.addClassCleanup(cls.d.cleanup)
        # the harness polls over plain HTTP; start without waiting and poll over TLS
        cls.d.start(wait=False)
        import time
        for _ in range(200):
            rc, _ = s_client(cls.d.port, "-brief")
            if rc == 0:
                break
            time.sleep(0.05)

    def test_tls13_works(self):
        rc, out = s_client(self.d.port, "-tls1_3", "-brief")
        self.assertEqual(rc, 0, out)
        self.assertIn("TLSv1.3", out)

    def test_tls12_aead_works(self):
        rc, out = s_client(self.d.port, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256", "-brief")
        self.assertEqual(rc, 0, out)
        self.assertIn("TLSv1.2", out)

    def test_tls11_and_tls10_refused(self):
        for v in ("-tls1_1", "-tls1"):
            rc, out = s_client(self.d.port, v, "-cipher", "ALL:@SECLEVEL=0", "-brief")
            self.assertNotEqual(rc, 0, "%s accepted:\n%s" % (v, out))

    def test_cbc_cipher_refused(self):
        for c in ("ECDHE-ECDSA-AES128-SHA256", "ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA384"):
            rc, out = s_client(self.d.port, "-tls1_2", "-cipher", c, "-brief")
            self.assertNotEqual(rc, 0, "%s accepted:\n%s" % (c, out))

    def test_jsonrpc_over_https_with_cacert(self):
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "mezz_status"})
        p = subprocess.run(["curl", "-sS", "--cacert", self.cert, "-X", "POST",
                            "-H", "Content-Type: application/json", "--data", body,
                            "https://localhost:%d/" % self.d.port,
                            "--resolve", "localhost:%d:127.0.0.1" % self.d.port],
                           capture_output=True, text=True, timeout=20)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("height", json.loads(p.stdout)["result"])
        # and plain HTTP on the TLS port gets nothing useful
        p = subprocess.run(["curl", "-sS", "-m", "5", "-X", "POST", "--data", body,
                            "http://127.0.0.1:%d/" % self.d.port], capture_output=True, text=True)
        self.assertNotIn('"result"', p.stdout)

    def test_block_feed_over_wss(self):
        # Live blocks are written to a subscriber straight from the fan-out
        # (feed.c deliver), outside lws' writeable callback: over TLS too,
        # each one arrives whole and in order.
        ctx = ssl.create_default_context(cafile=self.cert)

        async def scenario():
            async with ws_connect("wss://localhost:%d/" % self.d.port, ssl=ctx) as ws:
                sub = await ws_call(ws, "mezz_subscribe", ["blocks", {"levels": ["sealed"]}])
                self.assertIn("result", sub, sub)
                heights = []
                while len(heights) < 4:
                    m = json.loads(await ws.recv())
                    self.assertEqual(m["params"]["subscription"], sub["result"])
                    heights.append(m["params"]["result"]["height"])
                return heights

        heights = run_async(scenario(), 30)
        self.assertEqual(heights, list(range(heights[0], heights[0] + 4)))

    def test_half_configured_tls_refuses_to_start(self):
        d = Daemon(settings={"server.tls_cert": self.cert})
        self.addCleanup(d.cleanup)
        d.start(wait=False)
        self.assertNotEqual(d.proc.wait(10), 0)
        self.assertIn("tls_key", d.log())
