"""Tiny RLP codec and secp256k1 helpers for crafting bad transactions in tests."""

SECP_P = 2 ** 256 - 2 ** 32 - 977
SECP_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def _decode(b, i):
    p = b[i]
    if p < 0x80:
        return b[i:i + 1], i + 1
    if p < 0xB8:
        n = p - 0x80
        return b[i + 1:i + 1 + n], i + 1 + n
    if p < 0xC0:
        ll = p - 0xB7
        n = int.from_bytes(b[i + 1:i + 1 + ll], "big")
        s = i + 1 + ll
        return b[s:s + n], s + n
    if p < 0xF8:
        n = p - 0xC0
        s = i + 1
    else:
        ll = p - 0xF7
        n = int.from_bytes(b[i + 1:i + 1 + ll], "big")
        s = i + 1 + ll
    out, j = [], s
    while j < s + n:
        item, j = _decode(b, j)
        out.append(item)
    assert j == s + n
    return out, s + n


def decode(b):
    item, end = _decode(b, 0)
    assert end == len(b), "trailing bytes"
    return item


def _len(n, off):
    if n < 56:
        return bytes([off + n])
    nb = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([off + 55 + len(nb)]) + nb


def encode(x):
    if isinstance(x, list):
        body = b"".join(encode(i) for i in x)
        return _len(len(body), 0xC0) + body
    if len(x) == 1 and x[0] < 0x80:
        return bytes(x)
    return _len(len(x), 0x80) + bytes(x)


def int_bytes(v):
    return v.to_bytes((v.bit_length() + 7) // 8, "big") if v else b""


def typed_fields(raw_hex):
    """(type byte, fields) of an EIP-2718 typed transaction."""
    b = bytes.fromhex(raw_hex[2:])
    assert b[0] < 0x7F
    return b[0], decode(b[1:])


def typed_raw(tx_type, fields):
    return "0x" + (bytes([tx_type]) + encode(fields)).hex()


def on_curve_x(x):
    """True if some point on secp256k1 has this x coordinate."""
    if x == 0 or x >= SECP_P:
        return False
    rhs = (pow(x, 3, SECP_P) + 7) % SECP_P
    return pow(rhs, (SECP_P - 1) // 2, SECP_P) == 1
