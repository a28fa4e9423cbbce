"""RFC 6455 at the byte level, with raw sockets: every protocol violation
gets the right close code (1002 protocol error, 1007 invalid UTF-8, 1009
too big) or a prompt disconnect, and the daemon keeps serving another
client meanwhile."""
import json
import os
import socket
import struct
import threading
import time
import unittest

from harness import DaemonCase
from test_limits import read_frame, ws_handshake


def frame(op, payload=b"", fin=True, rsv=0, mask=True, length=None):
    b0 = (0x80 if fin else 0) | (rsv << 4) | op
    n = len(payload) if length is None else length
    if n < 126:
        hdr = struct.pack("!BB", b0, (0x80 if mask else 0) | n)
    elif n < 65536:
        hdr = struct.pack("!BBH", b0, (0x80 if mask else 0) | 126, n)
    else:
        hdr = struct.pack("!BBQ", b0, (0x80 if mask else 0) | 127, n)
    if not mask:
        return hdr + payload
    key = os.urandom(4)
    return hdr + key + bytes(c ^ key[i % 4] for i, c in enumerate(payload))


class WsProtocolTest(DaemonCase):
    SETTINGS = {"server.max_message_bytes": "65536", "server.handshake_timeout_s": "2"}

    def close_code(self, *frames, timeout=5):
        """Send frames; return the close code the server sends (None when it
        just disconnects) and how long it took."""
        s, rest = ws_handshake(self.d.port)
        s.settimeout(timeout)
        t0 = time.time()
        try:
            for f in frames:
                s.sendall(f)
        except (BrokenPipeError, ConnectionResetError):
            return None, time.time() - t0
        code = None
        try:
            while True:
                f = read_frame(s, rest)
                if f is None:
                    break
                op, payload, rest = f
                if op == 0x8:
                    code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                    break
        except (ConnectionResetError, socket.timeout):
            pass
        took = time.time() - t0
        s.close()
        self.assertLess(took, timeout, "connection neither closed nor answered")
        return code, took

    def assertServing(self):
        self.assertIn("height", self.d.status())

    def test_reserved_opcodes(self):
        for op in (0x3, 0x7, 0xB, 0xF):
            code, _ = self.close_code(frame(op, b"x"))
            self.assertIn(code, (1002, None), "opcode %#x" % op)
            self.assertServing()

    def test_rsv_bits(self):
        for rsv in (1, 2, 4):
            code, _ = self.close_code(frame(0x1, b'{"a":1}', rsv=rsv))
            self.assertIn(code, (1002, None), "rsv %d" % rsv)
        self.assertServing()

    # Debian's lws 4.1.6 reads unmasked client frames instead of failing the
    # connection (RFC 6455 5.1), and the application never sees the mask bit.
    # Kept as an expected failure so the gap stays visible; see docs/OPERATIONS.md.
    @unittest.expectedFailure
    def test_unmasked_client_frame(self):
        code, _ = self.close_code(frame(0x1, b'{"jsonrpc":"2.0"}', mask=False))
        self.assertIn(code, (1002, None))
        self.assertServing()

    def test_fragmented_control_frames(self):
        code, _ = self.close_code(frame(0x9, b"ping", fin=False))
        self.assertIn(code, (1002, None))
        # a control frame over 125 bytes is a protocol error too
        code, _ = self.close_code(frame(0x9, b"p" * 126))
        self.assertIn(code, (1002, None))
        self.assertServing()

    def test_invalid_utf8_text(self):
        for bad in (b"\xff\xfe", b'{"a":"\xc3\x28"}', b"\xed\xa0\x80", b"\xf4\x90\x80\x80"):
            code, _ = self.close_code(frame(0x1, bad))
            # the daemon's own check (server.c) sends the close frame
            self.assertEqual(code, 1007, repr(bad))
        # split across fragments, invalid only when joined
        code, _ = self.close_code(frame(0x1, b"\xe2\x82", fin=False), frame(0x0, b"\x28"))
        self.assertEqual(code, 1007)
        self.assertServing()

    def test_huge_declared_length(self):
        # the header and the first bytes of a frame claiming 2^40 bytes
        code, took = self.close_code(frame(0x1, b"[" * 64, length=1 << 40))
        self.assertIn(code, (1009, 1002, None))
        self.assertLess(took, 2)
        # a message over server.max_message_bytes in fragments: 1009
        code, _ = self.close_code(frame(0x1, b"[" + b" " * 40000, fin=False),
                                  frame(0x0, b" " * 40000, fin=False))
        self.assertEqual(code, 1009)
        self.assertServing()

    def test_continuation_without_start(self):
        code, _ = self.close_code(frame(0x0, b"orphan"))
        self.assertIn(code, (1002, None))
        self.assertServing()

    def test_slowloris_handshakes_do_not_block_others(self):
        held = []
        for _ in range(20):
            s = socket.create_connection(("127.0.0.1", self.d.port), timeout=10)
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")
            held.append(s)
        t0 = time.time()
        self.assertServing()  # others are served at once
        self.assertLess(time.time() - t0, 1)
        closed = 0
        deadline = time.time() + 6
        for s in held:
            s.settimeout(max(0.1, deadline - time.time()))
            try:
                if s.recv(100) == b"":
                    closed += 1
            except (ConnectionResetError, socket.timeout):
                closed += 1 if time.time() < deadline else 0
            s.close()
        self.assertEqual(closed, 20, "handshakes left open past server.handshake_timeout_s")

    def test_other_client_served_during_abuse(self):
        stop = threading.Event()
        errors = []

        def abuse():
            while not stop.is_set():
                try:
                    self.close_code(frame(0x1, b"\xff"), frame(0xB, b"x"))
                except AssertionError as e:
                    errors.append(e)
        th = threading.Thread(target=abuse)
        th.start()
        try:
            s, rest = ws_handshake(self.d.port)
            s.settimeout(5)
            for i in range(20):
                s.sendall(frame(0x1, json.dumps({"jsonrpc": "2.0", "id": i, "method": "mezz_status"}).encode()))
                op, payload, rest = read_frame(s, rest)
                self.assertEqual(op, 0x1)
                self.assertEqual(json.loads(payload)["id"], i)
            s.close()
        finally:
            stop.set()
            th.join()
        self.assertFalse(errors)


class PipelinedAnswersTest(DaemonCase):
    """Many requests written back to back on one connection: the answers
    leave several per write (server.c write_coalesced) and the common
    requests skip jansson (fastrpc.c). Every answer must still be its own
    well-formed frame (FIN, text, no RSV bits, unmasked) carrying exactly
    one JSON-RPC answer with its request's id, and a request read by the
    fast path must be answered exactly as the general path answers it."""

    def test_every_pipelined_request_gets_its_own_frame_and_id(self):
        self.d.setup_tenant("pipe", "pipe", chain_id=4242, key=False)
        s, rest = ws_handshake(self.d.port)
        s.settimeout(20)
        n = 300
        want = {}
        out = b""
        for i in range(n):
            data = "0x%04x" % (i % 150) + "ab" * 40  # items i and i+150 are the same tx
            if i % 3 == 0:  # the fast path's form
                msg = {"jsonrpc": "2.0", "id": i, "method": "mezz_sendTransaction",
                       "params": {"namespace": "pipe", "data": data}}
                idv = i
            elif i % 3 == 1:  # params as an array: the general path
                msg = {"jsonrpc": "2.0", "id": i, "method": "mezz_sendTransaction",
                       "params": [{"namespace": "pipe", "data": data}]}
                idv = i
            else:  # a string id with an escape: the general path, id decoded
                msg = {"jsonrpc": "2.0", "id": "t\u00e9%d" % i, "method": "mezz_sendTransaction",
                       "params": {"namespace": "pipe", "data": data}}
                idv = "t\u00e9%d" % i
            want[json.dumps(idv)] = data
            out += frame(0x1, json.dumps(msg).encode())
        s.sendall(out)
        hashes = {}
        for _ in range(n):
            f = read_frame(s, rest)
            self.assertIsNotNone(f, "connection closed before every answer came")
            op, payload, rest = f
            self.assertEqual(op, 0x1, "not a text frame")
            doc = json.loads(payload)  # exactly one JSON value per frame
            self.assertIsInstance(doc, dict)
            self.assertIn("result", doc, doc)
            key = json.dumps(doc["id"])
            self.assertIn(key, want, "an answer for an id never sent, or twice")
            data = want.pop(key)
            # the same transaction sent on both paths gets the same receipt hash
            prev = hashes.setdefault(data, doc["result"]["hash"])
            self.assertEqual(prev, doc["result"]["hash"])
        self.assertEqual(want, {}, "requests left unanswered")
        self.assertEqual(len(hashes), 150)
        s.close()

    def test_frame_headers_are_plain_text_frames(self):
        self.d.setup_tenant("pipe2", "pipe2", chain_id=4243, key=False)
        s, rest = ws_handshake(self.d.port)
        s.settimeout(20)
        n = 120
        s.sendall(b"".join(frame(0x1, json.dumps(
            {"jsonrpc": "2.0", "id": i, "method": "mezz_sendTransaction",
             "params": {"namespace": "pipe2", "data": "0x%06x" % i}}).encode())
            for i in range(n)))
        buf, seen = rest, 0
        while seen < n:
            while len(buf) < 4:
                buf += s.recv(65536)
            self.assertEqual(buf[0], 0x81, "FIN + text, no RSV bits")
            self.assertEqual(buf[1] & 0x80, 0, "server frames are unmasked")
            ln, off = buf[1] & 0x7F, 2
            if ln == 126:
                ln, off = struct.unpack(">H", buf[2:4])[0], 4
            self.assertLess(ln, 126 + 65536)
            while len(buf) < off + ln:
                buf += s.recv(65536)
            doc = json.loads(buf[off:off + ln])
            self.assertEqual(doc["id"], seen, "answers out of order on one connection")
            buf, seen = buf[off + ln:], seen + 1
        s.close()
