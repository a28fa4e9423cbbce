/*
 * commit.c - what a block's data availability is committed to: shard
 * leaves, the shard root, the fixed-length commitment record, the coded
 * block, and single-shard proofs.
 *
 * The shard tree is the sequencer's Merkle tree (seq_merkle_*), so the inner
 * node tag 0x01 is shared with the tx and namespace trees; the leaf tag 0x03
 * keeps shard leaves apart from tx (0x00) and namespace (0x02) leaves.
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "da/da.h"
#include "da/internal.h"

#define RECORD_MAGIC "MZDA"
enum { TAG_SHARD_LEAF = 0x03 };

/* Low-level SHA256_* for the same reason as sequencer/sha256.c: no provider
 * lookup or allocation per call. */
void da__sha256(uint8_t out[32], const void *buf, size_t len)
{
	SHA256_CTX c;

	SHA256_Init(&c);
	SHA256_Update(&c, buf, len);
	SHA256_Final(out, &c);
}

unsigned da__path_depth(uint64_t index, uint64_t n)
{
	unsigned d = 0;

	/* As in seq_merkle_verify: a node without a right sibling is carried. */
	while (n > 1) {
		if ((index & 1) || index + 1 < n)
			d++;
		index >>= 1;
		n = n / 2 + (n & 1);
	}
	return d;
}

int da__check_geometry(unsigned k, unsigned m, uint64_t S, uint64_t payload_len)
{
	if (k < 1 || m < 1 || k + m > DA_MAX_SHARDS || S < 64 || payload_len < DA_PAYLOAD_MIN_LEN ||
	    payload_len > SIZE_MAX || S != da_payload_shard_size((size_t)payload_len, k))
		return DA_EDECODE;
	return 0;
}

/* A shard leaf's hash up to its shard's bytes (PROTOCOL.md). */
static void leaf_start(SHA256_CTX *c, unsigned index)
{
	uint8_t pre[3];

	pre[0] = TAG_SHARD_LEAF;
	da__put_u16(pre + 1, (uint16_t)index);
	SHA256_Init(c);
	SHA256_Update(c, pre, sizeof(pre));
}

void da_shard_leaf(uint8_t out[static 32], unsigned index, const uint8_t *shard, size_t S)
{
	SHA256_CTX c;

	leaf_start(&c, index);
	SHA256_Update(&c, shard, S);
	SHA256_Final(out, &c);
}

static int shard_leaves(uint8_t (**out)[32], uint8_t *const *shards, unsigned n, size_t S)
{
	uint8_t (*leaves)[32];

	if (shards == NULL || n == 0 || n > DA_MAX_SHARDS)
		return DA_EINVAL;
	leaves = malloc(n * sizeof(*leaves));
	if (leaves == NULL)
		return DA_ENOMEM;
	for (unsigned i = 0; i < n; i++)
		da_shard_leaf(leaves[i], i, shards[i], S);
	*out = leaves;
	return 0;
}

int da_shard_root(uint8_t out[static 32], uint8_t *const *shards, unsigned n, size_t S)
{
	uint8_t (*leaves)[32];
	int rc = shard_leaves(&leaves, shards, n, S);

	if (rc != 0)
		return rc;
	rc = seq_merkle_root(out, (const uint8_t (*)[32])leaves, n) ? DA_ENOMEM : 0;
	free(leaves);
	return rc;
}

int da_shard_tree(struct seq_merkle_tree *t, uint8_t *const *shards, unsigned n, size_t S)
{
	uint8_t (*leaves)[32];
	int rc = shard_leaves(&leaves, shards, n, S);

	if (rc != 0)
		return rc;
	rc = seq_merkle_tree_build(t, (const uint8_t (*)[32])leaves, n) ? DA_ENOMEM : 0;
	free(leaves);
	return rc;
}

void da_record_encode(uint8_t out[static DA_RECORD_LEN], const struct da_record *r)
{
	uint8_t *p = out;

	memcpy(p, RECORD_MAGIC, 4);
	p = da__put_u32(p + 4, r->version);
	p = da__put_u64(p, r->height);
	memcpy(p, r->block_hash, 32);
	p = da__put_u16(p + 32, r->k);
	p = da__put_u16(p, r->m);
	p = da__put_u32(p, r->S);
	p = da__put_u64(p, r->payload_len);
	memcpy(p, r->shard_root, 32);
}

int da_record_check(const struct da_record *r)
{
	if (r == NULL || r->version != DA_RECORD_VERSION)
		return DA_EDECODE;
	return da__check_geometry(r->k, r->m, r->S, r->payload_len);
}

int da_record_decode(struct da_record *r, const uint8_t *buf, size_t len)
{
	struct da_record x;
	const uint8_t *p = buf;

	if (r == NULL)
		return DA_EINVAL;
	if (buf == NULL || len != DA_RECORD_LEN || memcmp(p, RECORD_MAGIC, 4) != 0)
		return DA_EDECODE;
	memset(&x, 0, sizeof(x));
	x.version = da__get_u32(p + 4);
	x.height = da__get_u64(p + 8);
	memcpy(x.block_hash, p + 16, 32);
	x.k = da__get_u16(p + 48);
	x.m = da__get_u16(p + 50);
	x.S = da__get_u32(p + 52);
	x.payload_len = da__get_u64(p + 56);
	memcpy(x.shard_root, p + 64, 32);
	if (da_record_check(&x) != 0)
		return DA_EDECODE;
	*r = x;
	return 0;
}

void da_record_hash(uint8_t out[static 32], const struct da_record *r)
{
	uint8_t buf[DA_RECORD_LEN];

	da_record_encode(buf, r);
	da__sha256(out, buf, sizeof(buf));
}

/* Buffers this big are 2 MiB-aligned on transparent huge pages: the store's
 * direct writes pin their pages, and pinning 4 KiB pages one by one was
 * 2.8% of the pipeline at 1 MiB shards (docs/BENCHMARKS.md). */
#define HUGE_FROM ((size_t)2 << 20)

uint8_t *da__buf_take(uint8_t **slot, size_t *slot_cap, size_t need, size_t *got)
{
	uint8_t *p;

	if (slot != NULL && *slot != NULL && *slot_cap >= need) {
		p = *slot;
		*got = *slot_cap;
		*slot = NULL;
		*slot_cap = 0;
		return p;
	}
	/* 4 KiB-aligned: the store writes shards from here direct (store.c) */
	if (need >= HUGE_FROM) {
		size_t len = (need + HUGE_FROM - 1) & ~(HUGE_FROM - 1);

		if (posix_memalign((void **)&p, HUGE_FROM, len) != 0)
			return NULL;
		(void)madvise(p, len, MADV_HUGEPAGE);
		*got = len;
		return p;
	}
	if (posix_memalign((void **)&p, 4096, need) != 0)
		return NULL;
	*got = need;
	return p;
}

/* Keeps buf (cap bytes) in the slot if it is larger than what is there. */
static void buf_keep(uint8_t **slot, size_t *slot_cap, uint8_t *buf, size_t cap)
{
	if (buf == NULL)
		return;
	if (*slot != NULL && *slot_cap >= cap) {
		free(buf);
		return;
	}
	free(*slot);
	*slot = buf;
	*slot_cap = cap;
}

void da_bufs_free(struct da_bufs *kb)
{
	if (kb == NULL)
		return;
	free(kb->payload);
	free(kb->parity);
	memset(kb, 0, sizeof(*kb));
}

/* Every shard's leaf hash and CRC, fed slice by slice while da_encode_each codes. */
struct leaf_feed {
	SHA256_CTX ctx[DA_MAX_SHARDS];
	uint8_t *const *shard;
	uint32_t *crc;
	unsigned n;
};

static void leaf_feed_slice(void *arg, size_t off, size_t len)
{
	struct leaf_feed *f = arg;

	for (unsigned i = 0; i < f->n; i++) {
		SHA256_Update(&f->ctx[i], f->shard[i] + off, len);
		f->crc[i] = da__crc32c(f->crc[i], f->shard[i] + off, len);
	}
}

int da_block_encode_reuse(struct da_bufs *kb, struct da_block *b, struct da_record *r,
			  const struct da_code *c, uint8_t *payload, size_t payload_cap,
			  size_t payload_len, size_t S, uint64_t height,
			  const uint8_t block_hash[static 32])
{
	struct leaf_feed *feed = NULL;
	unsigned k, m;
	int rc = DA_EINVAL;

	if (b != NULL)
		memset(b, 0, sizeof(*b));
	if (b == NULL || r == NULL || c == NULL || payload == NULL || block_hash == NULL)
		goto fail;
	k = da_code_k(c);
	m = da_code_m(c);
	if (da__check_geometry(k, m, S, payload_len) != 0 || payload_cap < S * k)
		goto fail;
	rc = DA_ENOMEM;
	b->parity = da__buf_take(kb ? &kb->parity : NULL, kb ? &kb->parity_cap : NULL, S * m,
				 &b->parity_cap);
	if (b->parity == NULL)
		goto fail;
	b->payload_cap = payload_cap;
	b->k = k;
	b->m = m;
	b->S = S;
	b->payload_len = payload_len;
	b->payload = payload;
	for (unsigned i = 0; i < k; i++)
		b->shard[i] = payload + (size_t)i * S;
	for (unsigned i = 0; i < m; i++)
		b->shard[k + i] = b->parity + (size_t)i * S;
	/* The leaves are hashed, and the shards' CRCs taken, as each column
	 * slice is coded, while it is in cache: one pass over memory for all
	 * three (da/README.md). */
	feed = malloc(sizeof(*feed));
	rc = DA_ENOMEM;
	if (feed == NULL)
		goto fail_block;
	feed->shard = b->shard;
	feed->crc = b->crc;
	feed->n = k + m;
	for (unsigned i = 0; i < k + m; i++)
		leaf_start(&feed->ctx[i], i);
	rc = da_encode_each(c, b->shard, b->shard + k, S, leaf_feed_slice, feed);
	if (rc != 0)
		goto fail_block;
	for (unsigned i = 0; i < k + m; i++)
		SHA256_Final(b->leaf[i], &feed->ctx[i]);
	memset(r, 0, sizeof(*r));
	r->version = DA_RECORD_VERSION;
	r->height = height;
	memcpy(r->block_hash, block_hash, 32);
	r->k = (uint16_t)k;
	r->m = (uint16_t)m;
	r->S = (uint32_t)S;
	r->payload_len = payload_len;
	rc = seq_merkle_root(r->shard_root, (const uint8_t (*)[32])b->leaf, k + m) ? DA_ENOMEM : 0;
	if (rc != 0)
		goto fail_block;
	free(feed);
	return 0;
fail_block:
	free(feed);
	da_block_recycle(b, kb);
	return rc;
fail:
	free(payload);
	return rc;
}

int da_block_encode(struct da_block *b, struct da_record *r, const struct da_code *c,
		    uint8_t *payload, size_t payload_len, size_t S, uint64_t height,
		    const uint8_t block_hash[static 32])
{
	size_t cap = c != NULL && S <= SIZE_MAX / da_code_k(c) ? S * da_code_k(c) : 0;

	return da_block_encode_reuse(NULL, b, r, c, payload, cap, payload_len, S, height,
				     block_hash);
}

void da_block_free(struct da_block *b)
{
	da_block_recycle(b, NULL);
}

void da_block_recycle(struct da_block *b, struct da_bufs *kb)
{
	if (b == NULL)
		return;
	if (kb != NULL) {
		buf_keep(&kb->payload, &kb->payload_cap, b->payload, b->payload_cap);
		buf_keep(&kb->parity, &kb->parity_cap, b->parity, b->parity_cap);
	} else {
		free(b->payload);
		free(b->parity);
	}
	memset(b, 0, sizeof(*b));
}

/* ------------------------------------------------------------------ */
/* Shard proofs                                                        */

int da_shard_proof_build(struct da_shard_proof *p, const struct da_record *r,
			 const struct seq_merkle_tree *t, unsigned index,
			 const uint8_t *shard)
{
	size_t len;

	if (p == NULL || r == NULL || t == NULL || shard == NULL ||
	    index >= (unsigned)r->k + r->m || t->n != (size_t)r->k + r->m)
		return DA_EINVAL;
	memset(p, 0, sizeof(*p));
	if (seq_merkle_tree_path(t, index, p->path, &len) != 0 || len > DA_SHARD_MAX_PATH)
		return DA_EINVAL;
	p->rec = *r;
	p->index = (uint16_t)index;
	p->path_len = (uint8_t)len;
	p->shard = shard;
	return 0;
}

size_t da_shard_proof_len(const struct da_shard_proof *p)
{
	return DA_RECORD_LEN + 2 + 1 + (size_t)p->path_len * 32 + p->rec.S;
}

int da_shard_proof_encode(const struct da_shard_proof *p, uint8_t *out, size_t cap)
{
	uint8_t *q = out;

	if (p == NULL || out == NULL || p->path_len > DA_SHARD_MAX_PATH ||
	    cap < da_shard_proof_len(p))
		return DA_EINVAL;
	da_record_encode(q, &p->rec);
	q = da__put_u16(q + DA_RECORD_LEN, p->index);
	*q++ = p->path_len;
	memcpy(q, p->path, (size_t)p->path_len * 32);
	memcpy(q + (size_t)p->path_len * 32, p->shard, p->rec.S);
	return 0;
}

int da_shard_proof_decode(struct da_shard_proof *p, const uint8_t *buf, size_t len)
{
	struct da_shard_proof x;
	const uint8_t *q;

	if (p == NULL)
		return DA_EINVAL;
	if (buf == NULL || len < DA_RECORD_LEN + 3 ||
	    da_record_decode(&x.rec, buf, DA_RECORD_LEN) != 0)
		return DA_EDECODE;
	q = buf + DA_RECORD_LEN;
	x.index = da__get_u16(q);
	x.path_len = q[2];
	q += 3;
	if (x.index >= (unsigned)x.rec.k + x.rec.m ||
	    x.path_len != da__path_depth(x.index, (unsigned)x.rec.k + x.rec.m) ||
	    len != DA_RECORD_LEN + 3 + (size_t)x.path_len * 32 + x.rec.S)
		return DA_EDECODE;
	memcpy(x.path, q, (size_t)x.path_len * 32);
	x.shard = q + (size_t)x.path_len * 32;
	*p = x;
	return 0;
}

int da_shard_proof_verify(const struct da_shard_proof *p)
{
	uint8_t leaf[32];

	if (p == NULL || p->shard == NULL || da_record_check(&p->rec) != 0 ||
	    p->index >= (unsigned)p->rec.k + p->rec.m || p->path_len > DA_SHARD_MAX_PATH)
		return DA_EPROOF;
	da_shard_leaf(leaf, p->index, p->shard, p->rec.S);
	if (seq_merkle_verify(leaf, p->index, (uint64_t)p->rec.k + p->rec.m,
			      (const uint8_t (*)[32])p->path, p->path_len,
			      p->rec.shard_root) != 0)
		return DA_EPROOF;
	return 0;
}
