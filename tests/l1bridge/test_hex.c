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
