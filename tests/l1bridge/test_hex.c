/*
 * test_hex.c - hex helpers and error strings.
 */
#include <string.h>

#include <criterion/criterion.h>

#include "l1bridge/l1.h"

Test(hex, encode)
{
	const uint8_t in[] = { 0x00, 0x01, 0xab, 0xff };
	char out[2 + 2 * sizeof(in) + 1];

	l1_hex_encode(out, in, sizeof(in));
	cr_assert_str_eq(out, "0x0001abff");
	l1_hex_encode(out, in, 0);
	cr_assert_str_eq(out, "0x");
}

/* Every byte value, at every length to 80 (the 16-byte blocks, the tail
 * and both together) and at unaligned starts, against a nibble loop. */
Test(hex, encode_blocks_and_tail_match_a_nibble_loop)
{
	static const char digits[] = "0123456789abcdef";
	uint8_t in[256 + 96];
	char out[2 + 2 * 96 + 1], want[2 + 2 * 96 + 1];

	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)(i < 256 ? i : i * 37 + 11);
	for (size_t off = 0; off < 256 + 16; off += 3) {
		for (size_t len = 0; len <= 80; len++) {
			want[0] = '0';
			want[1] = 'x';
			for (size_t i = 0; i < len; i++) {
				want[2 + 2 * i] = digits[in[off + i] >> 4];
				want[3 + 2 * i] = digits[in[off + i] & 15];
			}
			want[2 + 2 * len] = '\0';
			memset(out, '#', sizeof(out));
			l1_hex_encode(out, in + off, len);
			cr_assert_str_eq(out, want, "offset %zu, length %zu", off, len);
			cr_assert_eq(out[3 + 2 * len], '#', "wrote past the NUL at length %zu", len);
		}
	}
}

Test(hex, decode_roundtrip_and_case)
{
	uint8_t out[8];
	size_t n = 99;

	cr_assert_eq(l1_hex_decode(out, sizeof(out), &n, "0x0001AbfF", 10), 0);
	cr_assert_eq(n, 4);
	cr_assert(memcmp(out, "\x00\x01\xab\xff", 4) == 0);
	cr_assert_eq(l1_hex_decode(out, sizeof(out), &n, "dead", 4), 0);
	cr_assert_eq(n, 2);
	cr_assert(out[0] == 0xde && out[1] == 0xad);
	cr_assert_eq(l1_hex_decode(out, sizeof(out), &n, "0x", 2), 0);
	cr_assert_eq(n, 0);
	cr_assert_eq(l1_hex_decode(out, 0, &n, "", 0), 0);
	cr_assert_eq(n, 0);
}

Test(hex, decode_rejects)
{
	uint8_t out[2];
	size_t n;

	cr_assert_eq(l1_hex_decode(out, sizeof(out), &n, "0x123", 5), L1_EINVAL);
	cr_assert_eq(l1_hex_decode(out, sizeof(out), &n, "0xzz", 4), L1_EINVAL);
	cr_assert_eq(l1_hex_decode(out, sizeof(out), &n, "0x0g", 4), L1_EINVAL);
	cr_assert_eq(l1_hex_decode(out, sizeof(out), &n, "0x 1", 4), L1_EINVAL);
	cr_assert_eq(l1_hex_decode(out, sizeof(out), &n, "0x010203", 8), L1_ETOOBIG);
	/* hex_len bounds the read: the bytes past it are never looked at. */
	cr_assert_eq(l1_hex_decode(out, sizeof(out), &n, "0x01zz", 4), 0);
	cr_assert_eq(n, 1);
	cr_assert_eq(out[0], 0x01);
}

/* The 32-digit blocks and the tail against a nibble loop: every one of the
 * 256 byte values at each position of a 40-byte (80-digit) string, in both
 * cases, at every length to 40 and at unaligned starts. */
static int nib(unsigned c)
{
	if (c >= '0' && c <= '9')
		return (int)(c - '0');
	if (c >= 'a' && c <= 'f')
		return (int)(c - 'a' + 10);
	if (c >= 'A' && c <= 'F')
		return (int)(c - 'A' + 10);
	return -1;
}

Test(hex, decode_blocks_and_tail_match_a_nibble_loop)
{
	static const char digits[] = "0123456789abcdefABCDEF";
	char buf[3 + 80];
	uint8_t out[40], want[40];
	size_t n;

	for (size_t off = 0; off < 3; off++) {
		char *h = buf + off;

		for (size_t len = 0; len <= 40; len++) {
			for (size_t i = 0; i < 2 * len; i++)
				h[i] = digits[(i * 7 + len + off) % 22];
			for (size_t i = 0; i < len; i++)
				want[i] = (uint8_t)(nib((unsigned char)h[2 * i]) << 4 |
						    nib((unsigned char)h[2 * i + 1]));
			cr_assert_eq(l1_hex_decode(out, sizeof(out), &n, h, 2 * len), 0,
				     "length %zu", len);
			cr_assert_eq(n, len);
			cr_assert(memcmp(out, want, len) == 0, "offset %zu, length %zu", off, len);
		}
		/* one byte of every value at every position of 80 digits (the
		 * first digit is never '0', so no "0x" prefix can form) */
		for (size_t pos = 0; pos < 80; pos++) {
			for (unsigned c = 0; c < 256; c++) {
				int r;

				for (size_t i = 0; i < 80; i++)
					h[i] = digits[(i * 5 + off + 1) % 22];
				h[pos] = (char)c;
				r = l1_hex_decode(out, sizeof(out), &n, h, 80);
				if (nib(c) < 0) {
					cr_assert_eq(r, L1_EINVAL, "byte 0x%02x at %zu accepted", c, pos);
					continue;
				}
				cr_assert_eq(r, 0, "digit '%c' at %zu refused", c, pos);
				cr_assert_eq(out[pos / 2] >> (pos % 2 ? 0 : 4) & 15, nib(c),
					     "digit '%c' at %zu", c, pos);
			}
		}
	}
}

Test(errors, strerror_covers_table)
{
#define CHECK(name, code, msg)                          \
	cr_assert_eq(name, code);                       \
	cr_assert_str_eq(l1_strerror(name), msg);
	L1_ERRORS(CHECK)
#undef CHECK
	cr_assert_null(l1_strerror(0));
	cr_assert_null(l1_strerror(-1));
	cr_assert_null(l1_strerror(-1200));
	cr_assert_str_eq(l1_strerror(L1_ESIG_HIGHS),
			 "signature s value is not in the lower half order");
}
