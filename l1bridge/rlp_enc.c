/*
 * rlp_enc.c - RLP encoding into a caller's bounded buffer.
 *
 * Items are appended in order. A list's payload is written first, right
 * after where its header will go; at l1_rlp_list_end the payload length is
 * known, so the payload moves up by the header's size (1..9 bytes) and the
 * header is written in front. Nested lists pay one memmove per level, which
 * is nothing next to signing for the short lists of a transaction.
 */
#include <string.h>

#include "l1bridge/l1.h"

static int enc_fail(struct l1_rlp_enc *e, int rc)
{
	if (e->err == 0)
		e->err = rc;
	return e->err;
}

/* Header for a payload of n bytes with base 0x80 (string) or 0xc0 (list). */
static size_t enc_header(uint8_t out[static 9], uint8_t base, size_t n)
{
	size_t ll = 0;

	if (n < 56) {
		out[0] = (uint8_t)(base + n);
		return 1;
	}
	for (size_t t = n; t > 0; t >>= 8)
		ll++;
	out[0] = (uint8_t)(base + 55 + ll);
	for (size_t i = 0; i < ll; i++)
		out[1 + i] = (uint8_t)(n >> (8 * (ll - 1 - i)));
	return 1 + ll;
}

void l1_rlp_enc_init(struct l1_rlp_enc *e, uint8_t *buf, size_t cap)
{
	memset(e, 0, sizeof(*e));
	e->buf = buf;
	e->cap = buf == NULL ? 0 : cap;
}

static int enc_append(struct l1_rlp_enc *e, const void *p, size_t n)
{
	if (n > e->cap - e->len)
		return enc_fail(e, L1_ENOSPC);
	if (n > 0)
		memcpy(e->buf + e->len, p, n);
	e->len += n;
	return 0;
}

int l1_rlp_put_bytes(struct l1_rlp_enc *e, const void *p, size_t n)
{
	uint8_t hdr[9];
	size_t h;
	int rc;

	if (e->err)
		return e->err;
	if (p == NULL && n > 0)
		return enc_fail(e, L1_EINVAL);
	if (n == 1 && ((const uint8_t *)p)[0] < 0x80)
		return enc_append(e, p, 1);
	h = enc_header(hdr, 0x80, n);
	if (h + n < n || h + n > e->cap - e->len)
		return enc_fail(e, L1_ENOSPC);
	if ((rc = enc_append(e, hdr, h)) < 0)
		return rc;
	return enc_append(e, p, n);
}

int l1_rlp_put_uint256(struct l1_rlp_enc *e, const uint8_t v[static 32])
{
	size_t skip = 0;

	while (skip < 32 && v[skip] == 0)
		skip++;
	return l1_rlp_put_bytes(e, v + skip, 32 - skip);
}

int l1_rlp_put_u64(struct l1_rlp_enc *e, uint64_t v)
{
	uint8_t w[32];

	l1_u256_from_u64(w, v);
	return l1_rlp_put_uint256(e, w);
}

int l1_rlp_list_begin(struct l1_rlp_enc *e)
{
	if (e->err)
		return e->err;
	if (e->depth == L1_RLP_MAX_DEPTH)
		return enc_fail(e, L1_ERLP_DEPTH);
	e->open[e->depth++] = e->len;
	return 0;
}

int l1_rlp_list_end(struct l1_rlp_enc *e)
{
	uint8_t hdr[9];
	size_t start, n, h;

	if (e->err)
		return e->err;
	if (e->depth == 0)
		return enc_fail(e, L1_EINVAL);
	start = e->open[--e->depth];
	n = e->len - start;
	h = enc_header(hdr, 0xc0, n);
	if (h > e->cap - e->len)
		return enc_fail(e, L1_ENOSPC);
	memmove(e->buf + start + h, e->buf + start, n);
	memcpy(e->buf + start, hdr, h);
	e->len += h;
	return 0;
}

int l1_rlp_enc_finish(struct l1_rlp_enc *e, size_t *len)
{
	if (e->err)
		return e->err;
	if (e->depth != 0)
		return enc_fail(e, L1_EINVAL);
	if (len != NULL)
		*len = e->len;
	return 0;
}
