/*
 * nsproof.c - namespace proofs against a block header (mezz_getNamespaceProof).
 *
 * A rollup asks for its namespace in a block and must learn either every
 * transaction of it (presence) or that there is none (absence), with nothing
 * to trust but the signed header. Layout (big-endian):
 *
 *   "MZNP" || version u32 (=1) || ns u64 || kind u8
 *   kind 1, presence:
 *     index u32 || count u64 || path_len u8 || path[path_len][32] ||
 *     count x (seq u64 || len u32 || data[len])
 *   kind 0, absence:
 *     n_adj u8 (0..2) ||
 *     n_adj x (index u32 || ns u64 || count u64 || root[32] || path_len u8 || path)
 *
 * Presence: the verifier rebuilds the namespace root from the transactions
 * (tx leaves with the caller's hash), the namespace leaf from (ns, count,
 * root), and walks the path to header.ns_root. The leaf commits to count, so
 * a missing or extra transaction changes the root. Absence: the namespace
 * table is sorted, so two adjacent leaves with ns_a < ns < ns_b (or one leaf
 * at an edge of the table, or an empty table) prove no leaf for ns exists.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "da/da.h"
#include "da/internal.h"

#define NSPROOF_MAGIC "MZNP"
#define NSPROOF_HDR_LEN (4 + 4 + 8 + 1)
#define ADJ_FIXED_LEN (4 + 8 + 8 + 32 + 1)

enum { KIND_ABSENT = 0, KIND_PRESENT = 1 };

/* Leaf and path for entry `index` of the payload's namespace table. */
static int table_leaf(struct da_ns_leaf *l, const struct da_payload *pl, size_t index)
{
	uint8_t (*leaves)[32];
	size_t n = pl->hdr.ns_count, len;
	int rc;

	leaves = malloc(n * sizeof(*leaves));
	if (leaves == NULL)
		return DA_ENOMEM;
	for (size_t i = 0; i < n; i++)
		seq_merkle_ns_leaf(leaves[i], pl->ns[i].ns, pl->ns[i].count, pl->ns[i].root);
	rc = seq_merkle_proof((const uint8_t (*)[32])leaves, n, index, l->path, &len);
	free(leaves);
	if (rc != 0 || len > DA_NS_MAX_PATH)
		return rc == SEQ_ENOMEM ? DA_ENOMEM : DA_EINVAL;
	l->index = (uint32_t)index;
	l->ns = pl->ns[index].ns;
	l->count = pl->ns[index].count;
	memcpy(l->root, pl->ns[index].root, 32);
	l->path_len = (uint8_t)len;
	return 0;
}

int da_ns_proof_build(struct da_ns_proof *p, const struct da_payload *pl, uint64_t ns)
{
	size_t lo = 0, hi, start = 0;
	int rc;

	if (p == NULL || pl == NULL || (pl->hdr.ns_count > 0 && (pl->ns == NULL || pl->txs == NULL)))
		return DA_EINVAL;
	memset(p, 0, sizeof(*p));
	p->ns = ns;
	/* First table entry with entry.ns >= ns. */
	hi = pl->hdr.ns_count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (pl->ns[mid].ns < ns)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < pl->hdr.ns_count && pl->ns[lo].ns == ns) {
		for (size_t j = 0; j < lo; j++)
			start += pl->ns[j].count;
		rc = table_leaf(&p->leaf, pl, lo);
		if (rc != 0)
			return rc;
		p->present = 1;
		p->count = pl->ns[lo].count;
		p->txs = malloc(p->count * sizeof(*p->txs));
		if (p->txs == NULL)
			return DA_ENOMEM;
		memcpy(p->txs, pl->txs + start, p->count * sizeof(*p->txs));
		return 0;
	}
	if (lo > 0) {
		rc = table_leaf(&p->adj[p->n_adj++], pl, lo - 1);
		if (rc != 0)
			return rc;
	}
	if (lo < pl->hdr.ns_count) {
		rc = table_leaf(&p->adj[p->n_adj++], pl, lo);
		if (rc != 0)
			return rc;
	}
	return 0;
}

static size_t proof_len(const struct da_ns_proof *p)
{
	size_t len = NSPROOF_HDR_LEN;

	if (p->present) {
		len += 4 + 8 + 1 + (size_t)p->leaf.path_len * 32;
		for (uint64_t i = 0; i < p->count; i++)
			len += DA_TX_HDR_LEN + p->txs[i].len;
	} else {
		len += 1;
		for (unsigned i = 0; i < p->n_adj; i++)
			len += ADJ_FIXED_LEN + (size_t)p->adj[i].path_len * 32;
	}
	return len;
}

int da_ns_proof_encode(const struct da_ns_proof *p, uint8_t **out, size_t *len)
{
	uint8_t *buf, *q;
	size_t n;

	if (p == NULL || out == NULL || len == NULL || p->n_adj > 2 ||
	    (p->present && p->count > 0 && p->txs == NULL) ||
	    p->leaf.path_len > DA_NS_MAX_PATH)
		return DA_EINVAL;
	for (unsigned i = 0; i < p->n_adj; i++)
		if (p->adj[i].path_len > DA_NS_MAX_PATH)
			return DA_EINVAL;
	n = proof_len(p);
	buf = malloc(n);
	if (buf == NULL)
		return DA_ENOMEM;
	memcpy(buf, NSPROOF_MAGIC, 4);
	q = da__put_u32(buf + 4, DA_NSPROOF_VERSION);
	q = da__put_u64(q, p->ns);
	*q++ = p->present ? KIND_PRESENT : KIND_ABSENT;
	if (p->present) {
		q = da__put_u32(q, p->leaf.index);
		q = da__put_u64(q, p->count);
		*q++ = p->leaf.path_len;
		memcpy(q, p->leaf.path, (size_t)p->leaf.path_len * 32);
		q += (size_t)p->leaf.path_len * 32;
		for (uint64_t i = 0; i < p->count; i++) {
			q = da__put_u64(q, p->txs[i].seq);
			q = da__put_u32(q, p->txs[i].len);
			if (p->txs[i].len > 0)
				memcpy(q, p->txs[i].data, p->txs[i].len);
			q += p->txs[i].len;
		}
	} else {
		*q++ = (uint8_t)p->n_adj;
		for (unsigned i = 0; i < p->n_adj; i++) {
			const struct da_ns_leaf *a = &p->adj[i];

			q = da__put_u32(q, a->index);
			q = da__put_u64(q, a->ns);
			q = da__put_u64(q, a->count);
			memcpy(q, a->root, 32);
			q += 32;
			*q++ = a->path_len;
			memcpy(q, a->path, (size_t)a->path_len * 32);
			q += (size_t)a->path_len * 32;
		}
	}
	*out = buf;
	*len = n;
	return 0;
}

int da_ns_proof_decode(struct da_ns_proof *out, const uint8_t *buf, size_t len)
{
	struct da_ns_proof p;
	const uint8_t *q, *end;
	int rc = DA_EDECODE;

	if (out == NULL)
		return DA_EINVAL;
	memset(out, 0, sizeof(*out));
	memset(&p, 0, sizeof(p));
	if (buf == NULL || len < NSPROOF_HDR_LEN || memcmp(buf, NSPROOF_MAGIC, 4) != 0 ||
	    da__get_u32(buf + 4) != DA_NSPROOF_VERSION || buf[16] > KIND_PRESENT)
		return DA_EDECODE;
	p.ns = da__get_u64(buf + 8);
	p.present = buf[16] == KIND_PRESENT;
	q = buf + NSPROOF_HDR_LEN;
	end = buf + len;
	if (p.present) {
		if ((size_t)(end - q) < 13)
			return DA_EDECODE;
		p.leaf.index = da__get_u32(q);
		p.leaf.ns = p.ns;
		p.count = da__get_u64(q + 4);
		p.leaf.count = p.count;
		p.leaf.path_len = q[12];
		q += 13;
		if (p.leaf.path_len > DA_NS_MAX_PATH ||
		    (size_t)(end - q) < (size_t)p.leaf.path_len * 32)
			return DA_EDECODE;
		memcpy(p.leaf.path, q, (size_t)p.leaf.path_len * 32);
		q += (size_t)p.leaf.path_len * 32;
		/* Every tx takes at least 12 bytes: bound count before allocating. */
		if (p.count == 0 || p.count > (uint64_t)(end - q) / DA_TX_HDR_LEN)
			return DA_EDECODE;
		p.txs = calloc(p.count, sizeof(*p.txs));
		if (p.txs == NULL)
			return DA_ENOMEM;
		for (uint64_t i = 0; i < p.count; i++) {
			struct da_tx *x = &p.txs[i];

			if ((size_t)(end - q) < DA_TX_HDR_LEN)
				goto out;
			x->ns = p.ns;
			x->seq = da__get_u64(q);
			x->len = da__get_u32(q + 8);
			q += DA_TX_HDR_LEN;
			if (x->len > (size_t)(end - q) || (i > 0 && x->seq <= p.txs[i - 1].seq))
				goto out;
			x->data = q;
			q += x->len;
		}
	} else {
		if (q == end || *q > 2)
			return DA_EDECODE;
		p.n_adj = *q++;
		for (unsigned i = 0; i < p.n_adj; i++) {
			struct da_ns_leaf *a = &p.adj[i];

			if ((size_t)(end - q) < ADJ_FIXED_LEN)
				return DA_EDECODE;
			a->index = da__get_u32(q);
			a->ns = da__get_u64(q + 4);
			a->count = da__get_u64(q + 12);
			memcpy(a->root, q + 20, 32);
			a->path_len = q[52];
			q += ADJ_FIXED_LEN;
			if (a->path_len > DA_NS_MAX_PATH || a->count == 0 ||
			    (size_t)(end - q) < (size_t)a->path_len * 32)
				return DA_EDECODE;
			memcpy(a->path, q, (size_t)a->path_len * 32);
			q += (size_t)a->path_len * 32;
		}
		/* Bracketing leaves are adjacent and lie on both sides of ns. */
		if (p.n_adj == 2 && (p.adj[0].index == UINT32_MAX ||
				     p.adj[1].index != p.adj[0].index + 1 ||
				     !(p.adj[0].ns < p.ns && p.ns < p.adj[1].ns)))
			return DA_EDECODE;
		if (p.n_adj == 1 && p.adj[0].ns == p.ns)
			return DA_EDECODE;
	}
	if (q != end)
		goto out;
	*out = p;
	p.txs = NULL;
	rc = 0;
out:
	free(p.txs);
	return rc;
}

static int leaf_verify(const struct da_ns_leaf *l, const struct seq_block_hdr *h)
{
	uint8_t leaf[32];

	seq_merkle_ns_leaf(leaf, l->ns, l->count, l->root);
	return seq_merkle_verify(leaf, l->index, h->ns_count, (const uint8_t (*)[32])l->path,
				 l->path_len, h->ns_root) == 0 ? 0 : DA_EPROOF;
}

static int verify_present(const struct da_ns_proof *p, const struct seq_block_hdr *h,
			  da_hash_fn *hash, void *arg)
{
	struct da_ns_leaf l = p->leaf;
	uint8_t (*leaves)[32], th[32];
	int rc = DA_EPROOF;

	if (p->count == 0 || p->count > h->tx_count || p->txs == NULL)
		return DA_EPROOF;
	leaves = malloc(p->count * sizeof(*leaves));
	if (leaves == NULL)
		return DA_ENOMEM;
	for (uint64_t i = 0; i < p->count; i++) {
		const struct da_tx *x = &p->txs[i];

		if (x->seq < h->first_seq || x->seq - h->first_seq >= h->tx_count ||
		    (i > 0 && x->seq <= p->txs[i - 1].seq))
			goto out;
		hash(th, x->data, x->len, arg);
		seq_merkle_tx_leaf(leaves[i], x->seq, p->ns, th);
	}
	if (seq_merkle_root(l.root, (const uint8_t (*)[32])leaves, p->count) != 0) {
		rc = DA_ENOMEM;
		goto out;
	}
	l.ns = p->ns;
	l.count = p->count;
	rc = leaf_verify(&l, h);
out:
	free(leaves);
	return rc;
}

static int verify_absent(const struct da_ns_proof *p, const struct seq_block_hdr *h)
{
	static const uint8_t empty_root[32] = {
		0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4,
		0xc8, 0x99, 0x6f, 0xb9, 0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b,
		0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55};
	const struct da_ns_leaf *a = p->adj;

	if (h->ns_count == 0)
		return p->n_adj == 0 && CRYPTO_memcmp(h->ns_root, empty_root, 32) == 0
			       ? 0
			       : DA_EPROOF;
	if (p->n_adj == 1) {
		int low_edge = a[0].index == 0 && p->ns < a[0].ns;
		int high_edge = a[0].index == h->ns_count - 1 && a[0].ns < p->ns;

		if (!low_edge && !high_edge)
			return DA_EPROOF;
	} else if (p->n_adj == 2) {
		if (a[0].index == UINT32_MAX || a[1].index != a[0].index + 1 ||
		    !(a[0].ns < p->ns && p->ns < a[1].ns))
			return DA_EPROOF;
	} else {
		return DA_EPROOF;
	}
	for (unsigned i = 0; i < p->n_adj; i++)
		if (leaf_verify(&a[i], h) != 0)
			return DA_EPROOF;
	return 0;
}

int da_ns_proof_verify(const struct da_ns_proof *p, const struct seq_block_hdr *h,
		       da_hash_fn *hash, void *arg)
{
	if (p == NULL || h == NULL || hash == NULL)
		return DA_EINVAL;
	return p->present ? verify_present(p, h, hash, arg) : verify_absent(p, h);
}

void da_ns_proof_free(struct da_ns_proof *p)
{
	if (p == NULL)
		return;
	free(p->txs);
	memset(p, 0, sizeof(*p));
}
