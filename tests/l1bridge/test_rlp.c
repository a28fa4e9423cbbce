/*
 * test_rlp.c - strict RLP decoding: differential against `cast to-rlp`,
 * canonical-form rejections, bounds, list splitting and integers.
 */
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "l1bridge/l1.h"

#include "tests/l1bridge/helpers.h"

/* Renders a decoded item in the JSON shape cast to-rlp takes, so a decode
 * can be compared with the value cast encoded. */
static void to_json(const struct l1_rlp_item *it, char *out, size_t *off, size_t cap)
{
	if (!it->is_list) {
		cr_assert(*off + 4 + 2 * it->payload_len < cap);
		out[(*off)++] = '"';
		l1_hex_encode(out + *off, it->payload, it->payload_len);
		*off += 2 + 2 * it->payload_len;
		out[(*off)++] = '"';
		return;
	}
	out[(*off)++] = '[';
	for (size_t pos = 0; pos < it->payload_len;) {
		struct l1_rlp_item child;

		cr_assert_eq(l1_rlp_decode_prefix(&child, it->payload + pos,
						  it->payload_len - pos), 0);
		if (pos > 0)
			out[(*off)++] = ',';
		to_json(&child, out, off, cap);
		pos += child.encoded_len;
	}
	cr_assert(*off + 2 < cap);
	out[(*off)++] = ']';
	out[*off] = '\0';
}

static void roundtrip(const char *json)
{
	static char out[8192], enc_hex[8192];
	static uint8_t enc[4096];
	struct l1_rlp_item it;
	size_t n, off = 0;

	l1t_cast(enc_hex, sizeof(enc_hex), "to-rlp '%s'", json);
	n = l1t_unhex(enc, sizeof(enc), enc_hex);
	cr_assert_eq(l1_rlp_decode(&it, enc, n), 0, "decode of %s (%s)", enc_hex, json);
	cr_assert_eq(it.encoded_len, n);
	to_json(&it, out, &off, sizeof(out));
	out[off] = '\0';
	cr_assert_str_eq(out, json, "cast encoded %s as %s", json, enc_hex);
}

static void hexrun(char *out, size_t bytes, unsigned seed)
{
	out[0] = '0';
	out[1] = 'x';
	for (size_t i = 0; i < bytes; i++)
		snprintf(out + 2 + 2 * i, 3, "%02x", (unsigned)((i * 31 + seed) & 0xff));
}

Test(rlp, differential_cast)
{
	static const char *const fixed[] = {
		"\"0x\"", "\"0x00\"", "\"0x7f\"", "\"0x80\"", "\"0xff\"", "[]",
		"[[]]", "[\"0x01\",\"0x\"]", "[[\"0x\"],[[],[\"0x0102\"]],\"0x7f\"]",
	};
	static char big[8192];
	static const size_t sizes[] = { 2, 55, 56, 255, 256, 1024 };

	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		roundtrip(fixed[i]);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		big[0] = '"';
		hexrun(big + 1, sizes[i], (unsigned)i);
		strcat(big, "\"");
		roundtrip(big);
	}
	/* A list whose payload crosses 56 bytes: 20 items of 3 bytes. */
	strcpy(big, "[");
	for (int i = 0; i < 20; i++)
		strcat(big, i ? ",\"0x0a0b\"" : "\"0x0a0b\"");
	strcat(big, "]");
	roundtrip(big);
}

/* Encodings checked by hand against `cast to-rlp`:
 *   cast to-rlp '["0x01","0x",["0x7f","0x80"],"0x0102...38"]' (56-byte tail). */
Test(rlp, embedded_nested)
{
	uint8_t buf[80];
	struct l1_rlp_item top, c[4], inner[2];
	size_t n = l1t_unhex(buf, sizeof(buf),
			     "0xf8400180c37f8180b838"
			     "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c"
			     "1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738");
	size_t count;

	cr_assert_eq(n, 66);
	cr_assert_eq(l1_rlp_decode(&top, buf, n), 0);
	cr_assert(top.is_list);
	cr_assert_eq(top.payload_len, 0x40);
	cr_assert_eq(top.payload, buf + 2);
	cr_assert_eq(l1_rlp_list(&top, c, 4, &count), 0);
	cr_assert_eq(count, 4);
	cr_assert(!c[0].is_list && c[0].payload_len == 1 && c[0].payload[0] == 0x01);
	cr_assert(!c[1].is_list && c[1].payload_len == 0 && c[1].encoded_len == 1);
	cr_assert(c[2].is_list && c[2].encoded_len == 4);
	cr_assert(!c[3].is_list && c[3].payload_len == 56 && c[3].encoded_len == 58);
	cr_assert_eq(c[3].payload[55], 0x38);
	cr_assert_eq(l1_rlp_list(&c[2], inner, 2, &count), 0);
	cr_assert_eq(count, 2);
	cr_assert(inner[0].payload[0] == 0x7f && inner[1].payload[0] == 0x80);
	/* Too many children for the caller's array. */
	cr_assert_eq(l1_rlp_list(&top, c, 3, &count), L1_ETX_FIELDS);
	cr_assert_eq(count, 0);
	/* A string is not a list. */
	cr_assert_eq(l1_rlp_list(&c[3], c, 4, &count), L1_EINVAL);
}

static int dec(const char *hex)
{
	uint8_t buf[128];
	struct l1_rlp_item it;
	size_t n = l1t_unhex(buf, sizeof(buf), hex);

	return l1_rlp_decode(&it, buf, n);
}

/* Builds header || payload where the payload is `plen` bytes of 0x11. */
static int dec_long(const char *hdr_hex, size_t plen)
{
	uint8_t buf[512];
	struct l1_rlp_item it;
	size_t h = l1t_unhex(buf, sizeof(buf), hdr_hex);

	cr_assert(h + plen <= sizeof(buf));
	memset(buf + h, 0x11, plen);
	return l1_rlp_decode(&it, buf, h + plen);
}

Test(rlp, rejects_noncanonical)
{
	cr_assert_eq(dec("0x8100"), L1_ERLP_NONCANON);
	cr_assert_eq(dec("0x817f"), L1_ERLP_NONCANON);
	cr_assert_eq(dec("0x8180"), 0);
	/* Long form for a 55-byte payload (string and list). */
	cr_assert_eq(dec_long("0xb837", 55), L1_ERLP_NONCANON);
	cr_assert_eq(dec_long("0xf837", 55), L1_ERLP_NONCANON);
	cr_assert_eq(dec_long("0xb800", 0), L1_ERLP_NONCANON);
	/* Leading zero in a long length. */
	cr_assert_eq(dec_long("0xb90038", 56), L1_ERLP_NONCANON);
	cr_assert_eq(dec_long("0xfa000100", 256), L1_ERLP_NONCANON);
	cr_assert_eq(dec_long("0xb838", 56), 0);
	cr_assert_eq(dec_long("0xb90100", 256), 0);
}

Test(rlp, rejects_truncated_and_overflow)
{
	struct l1_rlp_item it;

	cr_assert_eq(l1_rlp_decode(&it, (const uint8_t *)"", 0), L1_ERLP);
	cr_assert_eq(dec("0x8201"), L1_ERLP);
	cr_assert_eq(dec("0xb8"), L1_ERLP);
	cr_assert_eq(dec("0xb901"), L1_ERLP);
	cr_assert_eq(dec("0xc201"), L1_ERLP);
	cr_assert_eq(dec("0xf8"), L1_ERLP);
	cr_assert_eq(dec_long("0xb838", 55), L1_ERLP);
	/* Lengths that would wrap a size_t if added carelessly. */
	cr_assert_eq(dec("0xbfffffffffffffffff00"), L1_ERLP);
	cr_assert_eq(dec("0xffffffffffffffffff00"), L1_ERLP);
	cr_assert_eq(dec("0xbf010000000000000000"), L1_ERLP);
	cr_assert_eq(dec("0xfffffffffffffffff7"), L1_ERLP);
}

Test(rlp, trailing_and_prefix)
{
	uint8_t buf[] = { 0x82, 0xab, 0xcd, 0x01 };
	struct l1_rlp_item it;

	cr_assert_eq(l1_rlp_decode(&it, buf, sizeof(buf)), L1_ERLP_TRAILING);
	cr_assert_eq(dec("0xc000"), L1_ERLP_TRAILING);
	cr_assert_eq(l1_rlp_decode_prefix(&it, buf, sizeof(buf)), 0);
	cr_assert_eq(it.encoded_len, 3);
	cr_assert_eq(it.payload_len, 2);
	cr_assert_eq(it.payload, buf + 1);
	cr_assert_eq(l1_rlp_decode_prefix(&it, buf + 3, 1), 0);
	cr_assert_eq(it.payload[0], 0x01);
	cr_assert_eq(it.encoded_len, 1);
}

Test(rlp, list_children_checked)
{
	uint8_t buf[16];
	struct l1_rlp_item top, c[4];
	size_t n, count;

	/* The list header is fine; its child is not canonical. */
	n = l1t_unhex(buf, sizeof(buf), "0xc28100");
	cr_assert_eq(l1_rlp_decode(&top, buf, n), 0);
	cr_assert_eq(l1_rlp_list(&top, c, 4, &count), L1_ERLP_NONCANON);
	/* A child running past the end of its list. */
	n = l1t_unhex(buf, sizeof(buf), "0xc2830102");
	cr_assert_eq(l1_rlp_decode_prefix(&top, buf, n), 0);
	cr_assert_eq(l1_rlp_list(&top, c, 4, &count), L1_ERLP);
	/* Empty list. */
	n = l1t_unhex(buf, sizeof(buf), "0xc0");
	cr_assert_eq(l1_rlp_decode(&top, buf, n), 0);
	cr_assert_eq(l1_rlp_list(&top, NULL, 0, &count), 0);
	cr_assert_eq(count, 0);
}

static int u256(const char *hex, uint8_t out[32])
{
	static uint8_t buf[64];
	struct l1_rlp_item it;
	size_t n = l1t_unhex(buf, sizeof(buf), hex);

	cr_assert_eq(l1_rlp_decode(&it, buf, n), 0);
	return l1_rlp_uint256(&it, out);
}

static int u64(const char *hex, uint64_t *out)
{
	static uint8_t buf[64];
	struct l1_rlp_item it;
	size_t n = l1t_unhex(buf, sizeof(buf), hex);

	cr_assert_eq(l1_rlp_decode(&it, buf, n), 0);
	return l1_rlp_u64(&it, out);
}

Test(rlp, integers)
{
	uint8_t v[32], want[32] = { 0 };
	uint64_t x;

	cr_assert_eq(u256("0x80", v), 0);
	cr_assert_arr_eq(v, want, 32);
	cr_assert_eq(u256("0x7f", v), 0);
	want[31] = 0x7f;
	cr_assert_arr_eq(v, want, 32);
	cr_assert_eq(u256("0x820400", v), 0);
	want[30] = 0x04;
	want[31] = 0x00;
	cr_assert_arr_eq(v, want, 32);
	cr_assert_eq(u256("0xa0ff00000000000000000000000000000000000000000000000000000000000001", v), 0);
	cr_assert(v[0] == 0xff && v[31] == 0x01);
	cr_assert_eq(u256("0x00", v), L1_ETX_INT);
	cr_assert_eq(u256("0x820001", v), L1_ETX_INT);
	cr_assert_eq(u256("0xa1010000000000000000000000000000000000000000000000000000000000000000", v),
		     L1_ETX_INT);
	cr_assert_eq(u256("0xc0", v), L1_ETX_FIELDS);

	cr_assert_eq(u64("0x80", &x), 0);
	cr_assert_eq(x, 0);
	cr_assert_eq(u64("0x825208", &x), 0);
	cr_assert_eq(x, 21000);
	cr_assert_eq(u64("0x88ffffffffffffffff", &x), 0);
	cr_assert_eq(x, UINT64_MAX);
	cr_assert_eq(u64("0x89010000000000000000", &x), L1_ETX_INT);
	cr_assert_eq(u64("0x8200ff", &x), L1_ETX_INT);
	cr_assert_eq(u64("0xc180", &x), L1_ETX_FIELDS);
}
