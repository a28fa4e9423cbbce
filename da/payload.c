/*
 * payload.c - the byte layout that gets erasure coded, its builder and its
 * strict parser.
 *
 *   header[148] || signature[64] || ns table || txs || zero padding to k * S
 *
 * The payload is one 4 KiB-aligned buffer of k * S bytes, so the k data
 * shards are slices of it and coding never copies the block. The parser is
 * the gate for bytes that come back from disk or from peers: it checks every
 * length before using it, allocates only after the lengths are known to fit
 * in the buffer, and accepts exactly one encoding of a block.
 */
#include <stdlib.h>
#include <string.h>

#include "da/da.h"
#include "da/internal.h"

size_t da_payload_shard_size(size_t payload_len, unsigned k)
{
	uint64_t per, S;

	if (k == 0)
		return 0;
	per = payload_len / k + (payload_len % k != 0);
	S = (per + 63) / 64 * 64;
	if (S < 64)
		S = 64;
	if (S > UINT32_MAX - 63 || S > SIZE_MAX / k)
		return 0;
	return (size_t)S;
}

int da_payload_build_reuse(struct da_bufs *kb, const struct seq_block_hdr *h,
			   const uint8_t sig[static 64], const struct seq_block_ns *ns,
			   const struct da_tx *txs, unsigned k, uint8_t **buf_out,
			   size_t *cap_out, size_t *payload_len, size_t *S_out)
{
	uint64_t len, sum = 0;
	size_t S, total, i;
	uint8_t *buf, *p;

	if (h == NULL || sig == NULL || buf_out == NULL || cap_out == NULL || payload_len == NULL ||
	    S_out == NULL || k == 0 || (h->ns_count > 0 && ns == NULL) ||
	    (h->tx_count > 0 && txs == NULL) || h->tx_count > SIZE_MAX / DA_TX_HDR_LEN)
		return DA_EINVAL;
	*buf_out = NULL;
	len = DA_PAYLOAD_MIN_LEN + (uint64_t)h->ns_count * DA_NS_ENTRY_LEN;
	for (i = 0; i < h->ns_count; i++) {
		if (ns[i].count == 0 || (i > 0 && ns[i].ns <= ns[i - 1].ns) ||
		    ns[i].count > h->tx_count - sum)
			return DA_EINVAL;
		sum += ns[i].count;
	}
	if (sum != h->tx_count)
		return DA_EINVAL;
	for (i = 0; i < h->tx_count; i++) {
		if (i > 0 && (txs[i].ns < txs[i - 1].ns ||
			      (txs[i].ns == txs[i - 1].ns && txs[i].seq <= txs[i - 1].seq)))
			return DA_EINVAL;
		if (txs[i].len > 0 && txs[i].data == NULL)
			return DA_EINVAL;
		len += DA_TX_HDR_LEN + (uint64_t)txs[i].len;
		if (len > SIZE_MAX / 2)
			return DA_EINVAL;
	}
	S = da_payload_shard_size((size_t)len, k);
	if (S == 0)
		return DA_EINVAL;
	total = S * k;
	buf = da__buf_take(kb ? &kb->payload : NULL, kb ? &kb->payload_cap : NULL, total, cap_out);
	if (buf == NULL)
		return DA_ENOMEM;

	seq_block_hdr_encode(buf, h);
	memcpy(buf + SEQ_BLOCK_HDR_LEN, sig, SEQ_SIG_LEN);
	p = buf + DA_PAYLOAD_MIN_LEN;
	for (i = 0; i < h->ns_count; i++) {
		p = da__put_u64(p, ns[i].ns);
		p = da__put_u64(p, ns[i].count);
		memcpy(p, ns[i].root, 32);
		p += 32;
	}
	for (i = 0; i < h->tx_count; i++) {
		p = da__put_u64(p, txs[i].seq);
		p = da__put_u32(p, txs[i].len);
		if (txs[i].len > 0)
			memcpy(p, txs[i].data, txs[i].len);
		p += txs[i].len;
	}
	memset(p, 0, total - (size_t)len);
	*buf_out = buf;
	*payload_len = (size_t)len;
	*S_out = S;
	return 0;
}

int da_payload_build(const struct seq_block_hdr *h, const uint8_t sig[static 64],
		     const struct seq_block_ns *ns, const struct da_tx *txs, unsigned k,
		     uint8_t **buf_out, size_t *payload_len, size_t *S_out)
{
	size_t cap;

	return da_payload_build_reuse(NULL, h, sig, ns, txs, k, buf_out, &cap, payload_len, S_out);
}

static int all_zero(const uint8_t *p, size_t n)
{
	uint8_t acc = 0;

	for (size_t i = 0; i < n; i++)
		acc |= p[i];
	return acc == 0;
}

int da_payload_parse(struct da_payload *out, const uint8_t *buf, size_t padded_len,
		     size_t payload_len)
{
	struct da_payload p = {0};
	const uint8_t *q, *end;
	uint8_t *seen = NULL;
	uint64_t sum = 0, t = 0;
	int rc = DA_EDECODE;

	if (out == NULL)
		return DA_EINVAL;
	memset(out, 0, sizeof(*out));
	if (buf == NULL || payload_len < DA_PAYLOAD_MIN_LEN || padded_len < payload_len)
		return DA_EDECODE;
	if (seq_block_hdr_decode(&p.hdr, buf, SEQ_BLOCK_HDR_LEN) != 0)
		return DA_EDECODE;
	p.sig = buf + SEQ_BLOCK_HDR_LEN;
	p.payload_len = payload_len;
	q = buf + DA_PAYLOAD_MIN_LEN;
	end = buf + payload_len;

	/* Table and transactions must fit before anything is allocated. */
	if ((uint64_t)p.hdr.ns_count > (uint64_t)(end - q) / DA_NS_ENTRY_LEN)
		return DA_EDECODE;
	if (p.hdr.tx_count > ((uint64_t)(end - q) - (uint64_t)p.hdr.ns_count * DA_NS_ENTRY_LEN) /
				     DA_TX_HDR_LEN)
		return DA_EDECODE;
	if ((p.hdr.ns_count == 0) != (p.hdr.tx_count == 0))
		return DA_EDECODE;

	rc = DA_ENOMEM;
	if (p.hdr.ns_count > 0) {
		p.ns = calloc(p.hdr.ns_count, sizeof(*p.ns));
		p.txs = calloc(p.hdr.tx_count, sizeof(*p.txs));
		seen = calloc(p.hdr.tx_count / 8 + 1, 1);
		if (p.ns == NULL || p.txs == NULL || seen == NULL)
			goto out;
	}
	rc = DA_EDECODE;
	for (uint32_t j = 0; j < p.hdr.ns_count; j++) {
		struct seq_block_ns *e = &p.ns[j];

		e->ns = da__get_u64(q);
		e->count = da__get_u64(q + 8);
		memcpy(e->root, q + 16, 32);
		q += DA_NS_ENTRY_LEN;
		if (e->count == 0 || (j > 0 && e->ns <= p.ns[j - 1].ns) ||
		    e->count > p.hdr.tx_count - sum)
			goto out;
		sum += e->count;
	}
	if (sum != p.hdr.tx_count)
		goto out;

	for (uint32_t j = 0; j < p.hdr.ns_count; j++) {
		for (uint64_t c = 0; c < p.ns[j].count; c++, t++) {
			struct da_tx *x = &p.txs[t];
			uint64_t off;

			if ((size_t)(end - q) < DA_TX_HDR_LEN)
				goto out;
			x->ns = p.ns[j].ns;
			x->seq = da__get_u64(q);
			x->len = da__get_u32(q + 8);
			q += DA_TX_HDR_LEN;
			if (x->len > (size_t)(end - q))
				goto out;
			x->data = q;
			q += x->len;
			/* In the block's range, unique, ascending inside the namespace. */
			if (x->seq < p.hdr.first_seq)
				goto out;
			off = x->seq - p.hdr.first_seq;
			if (off >= p.hdr.tx_count || (seen[off / 8] & (1u << (off % 8))))
				goto out;
			seen[off / 8] |= (uint8_t)(1u << (off % 8));
			if (c > 0 && x->seq <= p.txs[t - 1].seq)
				goto out;
		}
	}
	if (q != end || !all_zero(end, padded_len - payload_len))
		goto out;
	*out = p;
	p.ns = NULL;
	p.txs = NULL;
	rc = 0;
out:
	free(seen);
	free(p.ns);
	free(p.txs);
	return rc;
}

void da_payload_free(struct da_payload *p)
{
	if (p == NULL)
		return;
	free(p->ns);
	free(p->txs);
	memset(p, 0, sizeof(*p));
}

int da_payload_check_roots(const struct da_payload *p, da_hash_fn *hash, void *arg)
{
	uint8_t want[SEQ_BLOCK_HDR_LEN], got[SEQ_BLOCK_HDR_LEN];
	struct seq_block_ns *table = NULL;
	struct seq_block_hdr h;
	struct seq_tx *stx = NULL;
	uint64_t n;
	int rc;

	if (p == NULL || hash == NULL || (p->hdr.tx_count > 0 && p->txs == NULL))
		return DA_EINVAL;
	n = p->hdr.tx_count;
	if (n > 0) {
		stx = malloc(n * sizeof(*stx));
		if (stx == NULL)
			return DA_ENOMEM;
	}
	/* seq_block_build wants sequence order; the parser proved the seqs
	 * are a permutation of [first_seq, first_seq + n). */
	for (uint64_t i = 0; i < n; i++) {
		const struct da_tx *x = &p->txs[i];
		struct seq_tx *s;

		if (x->seq < p->hdr.first_seq || x->seq - p->hdr.first_seq >= n) {
			rc = DA_EINVAL;
			goto out;
		}
		s = &stx[x->seq - p->hdr.first_seq];
		s->seq = x->seq;
		s->ns = x->ns;
		hash(s->hash, x->data, x->len, arg);
	}
	rc = seq_block_build(&h, &table, stx, n, p->hdr.first_seq, p->hdr.height,
			     p->hdr.slot, p->hdr.time_ms, p->hdr.parent);
	if (rc == SEQ_ENOMEM) {
		rc = DA_ENOMEM;
		goto out;
	}
	if (rc != 0) {
		rc = DA_EMISMATCH;
		goto out;
	}
	rc = DA_EMISMATCH;
	seq_block_hdr_encode(want, &p->hdr);
	seq_block_hdr_encode(got, &h);
	if (memcmp(want, got, sizeof(want)) != 0)
		goto out;
	for (uint32_t j = 0; j < h.ns_count; j++)
		if (table[j].ns != p->ns[j].ns || table[j].count != p->ns[j].count ||
		    memcmp(table[j].root, p->ns[j].root, 32) != 0)
			goto out;
	rc = 0;
out:
	free(table);
	free(stx);
	return rc;
}
