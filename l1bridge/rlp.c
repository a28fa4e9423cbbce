/*
 * rlp.c - strict RLP decoding (Ethereum Yellow Paper, appendix B).
 *
 * Every input is hostile: each length is compared with the bytes that remain
 * before it is used, by subtraction so nothing can wrap. Only the canonical
 * encoding of an item is accepted, so one value has exactly one encoding and
 * a transaction hash names exactly one byte string:
 *   - a single byte < 0x80 is its own encoding (0x81 0x05 is rejected);
 *   - payloads shorter than 56 bytes use the short form;
 *   - long-form lengths have no leading zero bytes.
 */
#include <assert.h>
#include <string.h>

#include "l1bridge/l1.h"

/* Reads a big-endian long-form length of ll (1..8) bytes. */
static int rlp_long_len(const uint8_t *p, size_t ll, size_t *out)
{
	uint64_t n = 0;

	assert(ll >= 1 && ll <= 8);
	if (p[0] == 0)
		return L1_ERLP_NONCANON;
	for (size_t i = 0; i < ll; i++)
		n = n << 8 | p[i];
	if (n < 56)
		return L1_ERLP_NONCANON;
#if SIZE_MAX < UINT64_MAX
	if (n > SIZE_MAX)
		return L1_ERLP; /* only reachable where size_t is narrower */
#endif
	*out = (size_t)n;
	return 0;
}

int l1_rlp_decode_prefix(struct l1_rlp_item *item, const uint8_t *buf, size_t len)
{
	size_t hdr, n;
	uint8_t b;
	int rc;

	if (item == NULL || (buf == NULL && len > 0))
		return L1_EINVAL;
	if (len == 0)
		return L1_ERLP;
	b = buf[0];
	if (b < 0x80) {
		item->is_list = 0;
		item->payload = buf;
		item->payload_len = 1;
		item->encoded_len = 1;
		return 0;
	}
	if (b <= 0xb7 || (b >= 0xc0 && b <= 0xf7)) {
		hdr = 1;
		n = b - (b <= 0xb7 ? 0x80 : 0xc0);
	} else {
		hdr = 1 + (size_t)(b - (b <= 0xbf ? 0xb7 : 0xf7));
		if (hdr > len)
			return L1_ERLP;
		rc = rlp_long_len(buf + 1, hdr - 1, &n);
		if (rc < 0)
			return rc;
	}
	if (n > len - hdr)
		return L1_ERLP;
	if (b == 0x81 && buf[1] < 0x80)
		return L1_ERLP_NONCANON;
	item->is_list = b >= 0xc0;
	item->payload = buf + hdr;
	item->payload_len = n;
	item->encoded_len = hdr + n;
	return 0;
}

int l1_rlp_decode(struct l1_rlp_item *item, const uint8_t *buf, size_t len)
{
	int rc = l1_rlp_decode_prefix(item, buf, len);

	if (rc < 0)
		return rc;
	if (item->encoded_len != len)
		return L1_ERLP_TRAILING;
	return 0;
}

int l1_rlp_list(const struct l1_rlp_item *list, struct l1_rlp_item *children,
		size_t max, size_t *count)
{
	size_t off = 0, n = 0;

	if (list == NULL || count == NULL || (children == NULL && max > 0))
		return L1_EINVAL;
	*count = 0;
	if (!list->is_list)
		return L1_EINVAL;
	while (off < list->payload_len) {
		int rc;

		if (n == max)
			return L1_ETX_FIELDS;
		rc = l1_rlp_decode_prefix(&children[n], list->payload + off,
					  list->payload_len - off);
		if (rc < 0)
			return rc;
		off += children[n].encoded_len;
		n++;
	}
	*count = n;
	return 0;
}

/* Canonical unsigned integer of at most maxlen bytes: a string without
 * leading zero bytes (zero is the empty string). */
static int rlp_uint_check(const struct l1_rlp_item *item, size_t maxlen)
{
	if (item == NULL)
		return L1_EINVAL;
	if (item->is_list)
		return L1_ETX_FIELDS;
	if (item->payload_len > maxlen)
		return L1_ETX_INT;
	if (item->payload_len > 0 && item->payload[0] == 0)
		return L1_ETX_INT;
	return 0;
}

int l1_rlp_uint256(const struct l1_rlp_item *item, uint8_t out[static 32])
{
	int rc = rlp_uint_check(item, 32);

	if (rc < 0)
		return rc;
	memset(out, 0, 32);
	if (item->payload_len > 0)
		memcpy(out + 32 - item->payload_len, item->payload, item->payload_len);
	return 0;
}

int l1_rlp_u64(const struct l1_rlp_item *item, uint64_t *out)
{
	uint64_t v = 0;
	int rc = rlp_uint_check(item, 8);

	if (rc < 0)
		return rc;
	if (out == NULL)
		return L1_EINVAL;
	for (size_t i = 0; i < item->payload_len; i++)
		v = v << 8 | item->payload[i];
	*out = v;
	return 0;
}
