/*
 * test_keccak.c - Keccak-256 against fixed vectors and, differentially,
 * against foundry's `cast keccak` at test time.
 */
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "l1bridge/l1.h"

#include "tests/l1bridge/helpers.h"

static void pattern(uint8_t *buf, size_t n)
{
	for (size_t i = 0; i < n; i++)
		buf[i] = (uint8_t)(i * 7 + 3);
}

static void expect_hex(const uint8_t d[32], const char *want)
{
	char got[67];

	l1_hex_encode(got, d, 32);
	cr_assert_str_eq(got, want);
}

Test(keccak, empty)
{
	uint8_t d[32];

	l1_keccak256(d, "", 0);
	expect_hex(d, "0xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470");
}

Test(keccak, abc)
{
	uint8_t d[32];

	l1_keccak256(d, "abc", 3);
	expect_hex(d, "0x4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45");
}

/* Vectors from cast 1.7.1:
 *   cast keccak 0x$(python3 -c "print(bytes((i*7+3)&255 for i in range(N)).hex())")
 * for N = 136 (exactly one block, so padding fills a second) and 200. */
Test(keccak, embedded_multiblock)
{
	uint8_t buf[200], d[32];

	pattern(buf, sizeof(buf));
	l1_keccak256(d, buf, 136);
	expect_hex(d, "0x742061bcad767ed4c4f5883b1dcb1aad11afdcc140dc469d953759b127b9f9ed");
	l1_keccak256(d, buf, 200);
	expect_hex(d, "0x66d2cdf3ab4c5bd3c75add9b60b14ac5b7789534fa2da3f348853b847359a3a0");
}

/* Lengths around the 136-byte rate, where padding bugs live. */
static const size_t diff_lens[] = { 1, 55, 56, 134, 135, 136, 137, 200, 271, 272, 273, 1000 };

Test(keccak, differential_cast)
{
	static uint8_t buf[1000];
	static char hex[2 + 2 * sizeof(buf) + 1];
	char want[128];
	uint8_t d[32];

	pattern(buf, sizeof(buf));
	for (size_t i = 0; i < sizeof(diff_lens) / sizeof(diff_lens[0]); i++) {
		size_t n = diff_lens[i];
		char got[67];

		l1_hex_encode(hex, buf, n);
		l1t_cast(want, sizeof(want), "keccak %s", hex);
		l1_keccak256(d, buf, n);
		l1_hex_encode(got, d, 32);
		cr_expect_str_eq(got, want, "length %zu", n);
	}
}

/* Feeding the same bytes in any chunking gives the one-shot digest. */
Test(keccak, streaming_matches_oneshot)
{
	static uint8_t buf[1000];
	static const size_t chunks[] = { 1, 7, 135, 136, 137, 500 };
	uint8_t one[32], inc[32];

	pattern(buf, sizeof(buf));
	for (size_t li = 0; li < sizeof(diff_lens) / sizeof(diff_lens[0]); li++) {
		size_t n = diff_lens[li];

		l1_keccak256(one, buf, n);
		for (size_t ci = 0; ci < sizeof(chunks) / sizeof(chunks[0]); ci++) {
			struct l1_keccak k;

			l1_keccak_init(&k);
			for (size_t off = 0; off < n; off += chunks[ci]) {
				size_t take = n - off < chunks[ci] ? n - off : chunks[ci];
				l1_keccak_update(&k, buf + off, take);
				l1_keccak_update(&k, buf, 0);
			}
			l1_keccak_final(&k, inc);
			cr_expect_arr_eq(one, inc, 32, "length %zu chunk %zu", n, chunks[ci]);
		}
	}
}
