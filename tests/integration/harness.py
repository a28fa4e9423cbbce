"""Black-box harness for the mezzanine daemon.

Starts real daemons on free ports with fresh temporary data directories and
talks to them only through their public interfaces: JSON-RPC over HTTP and
WebSocket, the mezz CLI and process signals.

Binaries come from $MEZZ_BUILD (default /work/main/build); cast comes from
PATH or /work/main/.deps/bin.
"""
import asyncio
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

import websockets

BUILD = os.path.abspath(os.environ.get("MEZZ_BUILD", "/work/main/build"))
# mezz would read this machine's /etc/mezzanine/mezzanine.conf; tests set
# everything they need on the command line.
os.environ.setdefault("MEZZ_CONFIG", "")
MEZZANINE = os.path.join(BUILD, "mezzanine")
MEZZANINE_TEST = os.path.join(BUILD, "mezzanine-test")
MEZZ = os.path.join(BUILD, "mezz")

# anvil's first dev account and the second one's address
DEV_PRIVATE_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
DEV_TO = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def find_cast():
    c = shutil.which("cast")
    if c:
        return c
    c = "/work/main/.deps/bin/cast"
    return c if os.access(c, os.X_OK) else None


CAST = find_cast()


def cast(*args, check=True):
    if CAST is None:
        raise unittest.SkipTest("cast not found")
    p = subprocess.run([CAST, *args], capture_output=True, text=True, timeout=60)
    if check and p.returncode != 0:
        raise AssertionError("cast %s failed (%d): %s" % (" ".join(args), p.returncode, p.stderr))
    return p



def sign_purchase(key, sale, rollups, tickets, price, nonce, chain_id, inbox):
    """EIP-712 signature of a ticket Purchase (docs/PROTOCOL-ethereum.md),
    made by `cast wallet sign --data`, independent of our C code."""
    typed = {
        "types": {
            "EIP712Domain": [{"name": "name", "type": "string"},
                             {"name": "version", "type": "string"},
                             {"name": "chainId", "type": "uint256"},
                             {"name": "verifyingContract", "type": "address"}],
            "Purchase": [{"name": "saleId", "type": "uint64"},
                         {"name": "rollups", "type": "uint64[]"},
                         {"name": "tickets", "type": "uint64"},
                         {"name": "priceGwei", "type": "uint64"},
                         {"name": "nonce", "type": "uint64"}]},
        "primaryType": "Purchase",
        "domain": {"name": "mezzanine", "version": "1", "chainId": chain_id,
                   "verifyingContract": inbox},
        "message": {"saleId": sale, "rollups": rollups, "tickets": tickets,
                    "priceGwei": price, "nonce": nonce}}
    return cast("wallet", "sign", "--data", "--private-key", key,
                json.dumps(typed)).stdout.strip()

def mktx(nonce=0, chain=31337, value=1, key=DEV_PRIVATE_KEY):
    """A signed EIP-1559 transfer, built offline by cast."""
    p = cast("mktx", "--private-key", key, "--chain", str(chain), "--nonce", str(nonce),
             "--gas-limit", "21000", "--gas-price", "1000000000",
             "--priority-gas-price", "1000000", DEV_TO, "--value", str(value))
    return p.stdout.strip()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RpcError(Exception):
    def __init__(self, error):
        super().__init__("%s: %s" % (error.get("code"), error.get("message")))
        self.code = error.get("code")
        self.message = error.get("message")
        self.error = error


class Daemon:
    """One mezzanine process on a data directory."""

    def __init__(self, binary=MEZZANINE, settings=None, env=None, data_dir=None, slot_ms=100,
                 port=None):
        """port: the same on every start (a client that reconnects), else a
        free one each time."""
        self.binary = binary
        self.fixed_port = port
        self.settings = dict(settings or {})
        self.settings.setdefault("sequencer.slot_ms", str(slot_ms))
        self.extra_env = dict(env or {})
        self.own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="mezz-it-")
        self.port = None
        self.proc = None
        self.log_path = None
        self._log = None
        self._generation = 0

    # -- lifecycle ---------------------------------------------------------
    def start(self, timeout=10.0, wait=True):
        """Start the daemon; with wait=False return as soon as it is spawned."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.port = self.fixed_port or free_port()
        self._generation += 1
        self.log_path = os.path.join(self.data_dir, "daemon-%d.log" % self._generation)
        self._log = open(self.log_path, "wb")
        args = [self.binary, "--data-dir", self.data_dir,
                "--set", "server.listen=127.0.0.1:%d" % self.port]
        for k, v in self.settings.items():
            args += ["--set", "%s=%s" % (k, v)]
        env = dict(os.environ)
        env.update(self.extra_env)
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        if not wait:
            return self
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("daemon exited with %d during start:\n%s"
                                     % (self.proc.returncode, self.log()))
            try:
                self.rpc("mezz_status", timeout=1.0)
                return self
            except (OSError, http.client.HTTPException):
                time.sleep(0.05)
        raise AssertionError("daemon did not answer mezz_status within %.0fs:\n%s"
                             % (timeout, self.log()))

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")[-4000:]
        except (OSError, TypeError):
            return ""

    def stop(self, timeout=15.0):
        """SIGTERM, wait, and return the exit code (asserting it is 0)."""
        rc = self.terminate(timeout)
        assert rc == 0, "daemon exited with %r after SIGTERM:\n%s" % (rc, self.log())
        return rc

    def terminate(self, timeout=15.0):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("daemon did not stop within %.0fs of SIGTERM:\n%s"
                                     % (timeout, self.log()))
        self._close_log()
        return self.proc.returncode

    def kill9(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self._close_log()

    def _close_log(self):
        if self._log:
            self._log.close()
            self._log = None

    def cleanup(self):
        """Teardown: always kill, then remove the data dir we created."""
        try:
            self.kill9()
        finally:
            if self.own_dir:
                shutil.rmtree(self.data_dir, ignore_errors=True)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    # -- HTTP --------------------------------------------------------------
    @property
    def url(self):
        return "http://127.0.0.1:%d/" % self.port

    def ws_url(self, path="/"):
        return "ws://127.0.0.1:%d%s" % (self.port, path)

    def http(self, body, path="/", headers=None, timeout=30.0, method="POST"):
        """Send raw bytes; return (status, parsed json or None, raw bytes)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            h = {"Content-Type": "application/json"}
            h.update(headers or {})
            conn.request(method, path, body=body, headers=h)
            r = conn.getresponse()
            raw = r.read()
            try:
                doc = json.loads(raw) if raw else None
            except ValueError:
                doc = None
            return r.status, doc, raw
        finally:
            conn.close()

    def raw_post(self, body, path="/", headers=None, timeout=30.0):
        if isinstance(body, str):
            body = body.encode()
        status, doc, _ = self.http(body, path, headers, timeout)
        return status, doc

    def call(self, method, params=None, key=None, path="/", timeout=30.0, headers=None, id=1):
        """Full JSON-RPC response object for one request."""
        req = {"jsonrpc": "2.0", "id": id, "method": method}
        if params is not None:
            req["params"] = params
        h = dict(headers or {})
        if key is not None:
            h["Authorization"] = "Bearer " + key
        status, doc = self.raw_post(json.dumps(req).encode(), path, h, timeout)
        if doc is None:
            raise AssertionError("non-JSON HTTP %d answer to %s" % (status, method))
        return doc

    def rpc(self, method, params=None, key=None, path="/", timeout=30.0, headers=None):
        """Result of one request; raises RpcError on a JSON-RPC error."""
        doc = self.call(method, params, key, path, timeout, headers)
        if "error" in doc:
            raise RpcError(doc["error"])
        return doc["result"]

    def status(self):
        return self.rpc("mezz_status")

    def send(self, namespace, data, key=None):
        if isinstance(data, (bytes, bytearray)):
            data = "0x" + bytes(data).hex()
        return self.rpc("mezz_sendTransaction", {"namespace": namespace, "data": data}, key=key)

    def wait_height(self, height, timeout=10.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            st = self.status()
            if st["height"] >= height:
                return st
            time.sleep(0.02)
        raise AssertionError("height %d not reached in %.0fs (status %r)"
                             % (height, timeout, self.status()))

    def wait_sealed_seq(self, next_seq, timeout=10.0):
        """Wait until every seq < next_seq is in a sealed block; return height."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            h = self.status()["height"]
            if h >= 1:
                hdr = self.rpc("mezz_getBlock", {"height": h})["header"]
                if hdr["firstSeq"] + hdr["txCount"] >= next_seq:
                    return h
            time.sleep(0.02)
        raise AssertionError("seq < %d not sealed within %.0fs" % (next_seq, timeout))

    # -- CLI ---------------------------------------------------------------
    def mezz(self, *args, check=True, url=False, input=None):
        cmd = [MEZZ]
        cmd += ["--url", self.url] if url else ["--data-dir", self.data_dir]
        cmd += [str(a) for a in args]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60, input=input)
        if check and p.returncode != 0:
            raise AssertionError("mezz %s failed (%d): %s%s"
                                 % (" ".join(cmd[1:]), p.returncode, p.stdout, p.stderr))
        return p

    def setup_tenant(self, tenant, namespace=None, chain_id=31337, ingress="public",
                     feed="public", key=True, create_tenant=True):
        """Create tenant (+namespace) (+key). Returns the key or None."""
        if create_tenant:
            self.mezz("tenant", "create", tenant)
        if namespace:
            self.mezz("namespace", "create", tenant, namespace, chain_id,
                      "--ingress", ingress, "--feed", feed)
        if key:
            return self.create_key(tenant)
        return None

    def create_key(self, tenant):
        out = self.mezz("key", "create", tenant).stdout.strip().splitlines()
        keys = [l.strip() for l in out if l.strip().startswith("mz_")]
        assert len(keys) == 1, "unexpected key create output %r" % out
        return keys[0]

    def key_id(self, key):
        """Find a key's id in `mezz key list` (the list shows a prefix)."""
        rows = self.mezz("key", "list").stdout.strip().splitlines()
        for row in rows[1:]:
            cols = row.split("\t")
            shown = cols[2].rstrip(".")
            if key.startswith(shown):
                return cols[0]
        raise AssertionError("key not in list: %r" % rows)


class DaemonCase(unittest.TestCase):
    """One daemon per test class (settings in SETTINGS), killed at teardown."""
    SETTINGS = {}
    BINARY = MEZZANINE
    SLOT_MS = 100

    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(cls.BINARY, cls.SETTINGS, slot_ms=cls.SLOT_MS)
        cls.addClassCleanup(cls.d.cleanup)
        cls.d.start()

    def new_daemon(self, **kw):
        d = Daemon(**kw)
        self.addCleanup(d.cleanup)
        return d.start()

    def assertRpcError(self, doc, code, msg=None):
        self.assertIsInstance(doc, dict, msg)
        self.assertNotIn("result", doc, msg)
        self.assertIn("error", doc, msg)
        self.assertEqual(doc["error"].get("code"), code, "%s: %r" % (msg, doc))
        self.assertIsInstance(doc["error"].get("message"), str)
        self.assertTrue(doc["error"]["message"], "empty error message")


def fault_daemon(tc, var, name, exists=False, **kw):
    """A test-build daemon (cleaned up by test case tc) whose fault file,
    named by the environment variable var (MEZZ_FAULT_..._FILE), is `name`
    in a temporary directory of its own; exists: created before the start.
    Returns (daemon, path of the file)."""
    tmp = tempfile.mkdtemp(prefix="mezz-fault-")
    tc.addCleanup(shutil.rmtree, tmp, True)
    path = os.path.join(tmp, name)
    if exists:
        open(path, "w").close()
    env = dict(kw.pop("env", None) or {})
    env[var] = path
    d = Daemon(MEZZANINE_TEST, env=env, **kw)
    tc.addCleanup(d.cleanup)
    return d, path


def run_async(coro, timeout=60):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def ws_call(ws, method, params=None, id=1):
    req = {"jsonrpc": "2.0", "id": id, "method": method}
    if params is not None:
        req["params"] = params
    await ws.send(json.dumps(req))
    while True:
        msg = json.loads(await ws.recv())
        if isinstance(msg, dict) and msg.get("method") == "mezz_subscription":
            continue
        return msg


async def recv_until_quiet(ws, quiet):
    """Every JSON message ws receives until `quiet` seconds pass without one."""
    out = []
    try:
        while True:
            out.append(json.loads(await asyncio.wait_for(ws.recv(), quiet)))
    except asyncio.TimeoutError:
        return out


def ws_connect(url, key=None, headers=None, **kw):
    h = dict(headers or {})
    if key is not None:
        h["Authorization"] = "Bearer " + key
    kw.setdefault("max_size", 64 * 1024 * 1024)
    kw.setdefault("open_timeout", 10)
    return websockets.connect(url, extra_headers=h, **kw)


def keccak_hex(data_hex):
    return cast("keccak", data_hex).stdout.strip()
