/*
 * merkle.c - domain-separated SHA-256 Merkle trees in RFC 6962's shape.
 *
 * Trees are built bottom-up: adjacent nodes of a level are paired left to
 * right and an odd node at the end of a level is carried up unchanged. This
 * gives exactly RFC 6962's shape (the left subtree of n > 1 leaves holds the
 * largest power of two strictly below n) with n - 1 inner hashes and one
 * scratch allocation, which matters for groups and blocks of ~100k leaves.
 *
 * Each hash input is assembled in a small stack buffer and hashed with one
 * seq__sha256() call, so an output may alias an input.
 */
#include "sequencer/bytes.h"
#include "sequencer/seq.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

enum { TAG_TX_LEAF = 0x00, TAG_NODE = 0x01, TAG_NS_LEAF = 0x02 };

void seq_merkle_tx_leaf(uint8_t out[static 32], uint64_t seq, uint64_t ns,
			const uint8_t tx_hash[static 32])
{
	uint8_t buf[1 + 8 + 8 + 32];

	buf[0] = TAG_TX_LEAF;
	seq__put_u64(buf + 1, seq);
	seq__put_u64(buf + 9, ns);
	memcpy(buf + 17, tx_hash, 32);
	seq__sha256(out, buf, sizeof(buf));
}

void seq_merkle_ns_leaf(uint8_t out[static 32], uint64_t ns, uint64_t count,
			const uint8_t ns_root[static 32])
{
	uint8_t buf[1 + 8 + 8 + 32];

	buf[0] = TAG_NS_LEAF;
	seq__put_u64(buf + 1, ns);
	seq__put_u64(buf + 9, count);
	memcpy(buf + 17, ns_root, 32);
	seq__sha256(out, buf, sizeof(buf));
}

void seq_merkle_node(uint8_t out[static 32], const uint8_t left[static 32],
		     const uint8_t right[static 32])
{
	uint8_t buf[1 + 32 + 32];

	buf[0] = TAG_NODE;
	memcpy(buf + 1, left, 32);
	memcpy(buf + 33, right, 32);
	seq__sha256(out, buf, sizeof(buf));
}

/* Number of nodes on the level above a level of m nodes, without overflow. */
static uint64_t level_up(uint64_t m)
{
	return m / 2 + (m & 1);
}

/*
 * Replace the level src[0..m) by its parent level in dst[0..level_up(m)).
 * dst may be src: node i is written only after nodes 2i and 2i+1 are read.
 */
static void level_reduce(uint8_t (*dst)[32], const uint8_t (*src)[32], size_t m)
{
	size_t i;

	for (i = 0; i < m / 2; i++)
		seq_merkle_node(dst[i], src[2 * i], src[2 * i + 1]);
	if (m & 1)
		memmove(dst[m / 2], src[m - 1], 32);
}

int seq_merkle_root(uint8_t out[static 32], const uint8_t (*leaves)[32], size_t n)
{
	uint8_t (*scratch)[32];
	size_t m;

	if (n == 0) {
		seq__sha256(out, "", 0);
		return 0;
	}
	if (leaves == NULL)
		return SEQ_EINVAL;
	if (n == 1) {
		memmove(out, leaves[0], 32);
		return 0;
	}
	scratch = malloc((n / 2 + 1) * sizeof(*scratch));
	if (scratch == NULL)
		return SEQ_ENOMEM;
	level_reduce(scratch, leaves, n);
	for (m = (size_t)level_up(n); m > 1; m = (size_t)level_up(m))
		level_reduce(scratch, (const uint8_t (*)[32])scratch, m);
	memcpy(out, scratch[0], 32);
	free(scratch);
	return 0;
}

int seq_merkle_proof(const uint8_t (*leaves)[32], size_t n, size_t index,
		     uint8_t (*path)[32], size_t *path_len)
{
	const uint8_t (*level)[32] = leaves;
	uint8_t (*scratch)[32] = NULL;
	size_t m = n, idx = index, len = 0, sib;

	if (leaves == NULL || path == NULL || path_len == NULL || index >= n)
		return SEQ_EINVAL;
	if (n > 1) {
		scratch = malloc((n / 2 + 1) * sizeof(*scratch));
		if (scratch == NULL)
			return SEQ_ENOMEM;
	}
	while (m > 1) {
		/* The last node of an odd level has no sibling: it is carried. */
		sib = idx ^ 1;
		if (sib < m) {
			/* A size_t count of leaves is at most 64 levels deep. */
			assert(len < SEQ_MERKLE_MAX_DEPTH);
			memcpy(path[len++], level[sib], 32);
		}
		level_reduce(scratch, level, m);
		level = (const uint8_t (*)[32])scratch;
		idx >>= 1;
		m = (size_t)level_up(m);
	}
	*path_len = len;
	free(scratch);
	return 0;
}

int seq_merkle_verify(const uint8_t leaf[static 32], uint64_t index, uint64_t n,
		      const uint8_t (*path)[32], size_t path_len,
		      const uint8_t root[static 32])
{
	uint8_t h[32];
	uint64_t m = n, idx = index;
	size_t k = 0;

	if (n == 0 || index >= n || path_len > SEQ_MERKLE_MAX_DEPTH ||
	    (path_len > 0 && path == NULL))
		return SEQ_EPROOF;
	memcpy(h, leaf, 32);
	while (m > 1) {
		if (idx & 1) {
			if (k >= path_len)
				return SEQ_EPROOF;
			seq_merkle_node(h, path[k++], h);
		} else if (idx + 1 < m) {
			if (k >= path_len)
				return SEQ_EPROOF;
			seq_merkle_node(h, h, path[k++]);
		}
		idx >>= 1;
		m = level_up(m);
	}
	if (k != path_len || CRYPTO_memcmp(h, root, 32) != 0)
		return SEQ_EPROOF;
	return 0;
}

int seq_merkle_multiverify(const uint8_t (*leaves)[32], const uint64_t *idx, size_t k,
			   uint64_t n, const uint8_t (*proof)[32], size_t len,
			   const uint8_t root[static 32])
{
	uint64_t *ci, m = n;
	uint8_t (*ch)[32];
	size_t kk = k, p = 0;
	int rc = SEQ_EPROOF;

	if (k == 0 || n == 0 || k > n || !leaves || !idx || (len && !proof))
		return SEQ_EPROOF;
	for (size_t j = 0; j < k; j++)
		if (idx[j] >= n || (j && idx[j] <= idx[j - 1]))
			return SEQ_EPROOF;
	ci = malloc(k * sizeof(*ci));
	ch = malloc(k * sizeof(*ch));
	if (!ci || !ch) {
		rc = SEQ_ENOMEM;
		goto out;
	}
	memcpy(ci, idx, k * sizeof(*ci));
	memcpy(ch, leaves, k * sizeof(*ch));
	while (m > 1) {
		size_t w = 0;

		for (size_t j = 0; j < kk; j++) {
			uint64_t x = ci[j];

			if (x & 1) {
				if (p >= len)
					goto out;
				seq_merkle_node(ch[w], proof[p++], ch[j]);
			} else if (j + 1 < kk && ci[j + 1] == x + 1) {
				seq_merkle_node(ch[w], ch[j], ch[j + 1]);
				j++;
			} else if (x + 1 < m) {
				if (p >= len)
					goto out;
				seq_merkle_node(ch[w], ch[j], proof[p++]);
			} else if (w != j) {
				memcpy(ch[w], ch[j], 32);
			}
			ci[w++] = x >> 1;
		}
		kk = w;
		m = level_up(m);
	}
	if (kk == 1 && p == len && CRYPTO_memcmp(ch[0], root, 32) == 0)
		rc = 0;
out:
	free(ci);
	free(ch);
	return rc;
}
