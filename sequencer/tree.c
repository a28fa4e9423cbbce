/*
 * tree.c - a Merkle tree kept whole in memory, so that a group of n
 * transactions gets all n receipts' proofs in O(n log n) rather than O(n^2).
 * Shape and hashing are exactly seq_merkle_root's: pairs hashed with
 * seq_merkle_node, an odd node at the end of a level carried up unchanged.
 */
#include <stdlib.h>
#include <string.h>

#include "sequencer/seq.h"

int seq_merkle_tree_build(struct seq_merkle_tree *t, const uint8_t (*leaves)[32],
			  size_t n)
{
	size_t total = 0, len = n, lv = 0;

	memset(t, 0, sizeof(*t));
	if (n == 0)
		return SEQ_EINVAL;
	/* Count nodes across levels: n + ceil(n/2) + ... + 1. */
	for (;;) {
		total += len;
		if (len == 1)
			break;
		len = (len + 1) / 2;
	}
	t->nodes = malloc(total * 32);
	if (!t->nodes)
		return SEQ_ENOMEM;
	memcpy(t->nodes, leaves, n * 32);
	t->n = n;
	t->level_off[0] = 0;
	t->level_len[0] = n;
	len = n;
	while (len > 1) {
		size_t in = t->level_off[lv], out = in + len, next = (len + 1) / 2;

		for (size_t i = 0; i + 1 < len; i += 2)
			seq_merkle_node(t->nodes[out + i / 2], t->nodes[in + i],
					t->nodes[in + i + 1]);
		if (len & 1)
			memcpy(t->nodes[out + len / 2], t->nodes[in + len - 1], 32);
		lv++;
		t->level_off[lv] = out;
		t->level_len[lv] = next;
		len = next;
	}
	t->levels = lv + 1;
	return 0;
}

int seq_merkle_tree_path(const struct seq_merkle_tree *t, size_t index,
			 uint8_t (*path)[32], size_t *path_len)
{
	size_t k = 0;

	if (!t->nodes || index >= t->n)
		return SEQ_EINVAL;
	for (size_t lv = 0; lv + 1 < t->levels; lv++) {
		size_t sib = index ^ 1;

		if (sib < t->level_len[lv])
			memcpy(path[k++], t->nodes[t->level_off[lv] + sib], 32);
		index >>= 1;
	}
	*path_len = k;
	return 0;
}

size_t seq_merkle_multiproof_max(uint64_t n, size_t k)
{
	size_t depth = 0;

	while (depth < 64 && ((uint64_t)1 << depth) < n)
		depth++;
	/* a level gives at most one node per known node, and the proof is
	 * never more than the tree's other nodes */
	return k > (SIZE_MAX / 64) ? SIZE_MAX : k * depth;
}

int seq_merkle_tree_multiproof(const struct seq_merkle_tree *t, const size_t *idx, size_t k,
			       uint8_t (*proof)[32], size_t *len)
{
	size_t *cur, kk = k, p = 0;

	if (!t->nodes || k == 0 || k > t->n)
		return SEQ_EINVAL;
	for (size_t j = 0; j < k; j++)
		if (idx[j] >= t->n || (j && idx[j] <= idx[j - 1]))
			return SEQ_EINVAL;
	cur = malloc(k * sizeof(*cur));
	if (!cur)
		return SEQ_ENOMEM;
	memcpy(cur, idx, k * sizeof(*cur));
	for (size_t lv = 0; lv + 1 < t->levels; lv++) {
		const uint8_t (*level)[32] = (const uint8_t (*)[32])t->nodes + t->level_off[lv];
		size_t m = t->level_len[lv], w = 0;

		for (size_t j = 0; j < kk; j++) {
			size_t x = cur[j];

			if (x & 1)
				memcpy(proof[p++], level[x - 1], 32);
			else if (j + 1 < kk && cur[j + 1] == x + 1)
				j++; /* pairs with its known neighbour */
			else if (x + 1 < m)
				memcpy(proof[p++], level[x + 1], 32);
			/* else: the last node of an odd level, carried up */
			cur[w++] = x >> 1;
		}
		kk = w;
	}
	free(cur);
	*len = p;
	return 0;
}

const uint8_t *seq_merkle_tree_root(const struct seq_merkle_tree *t)
{
	return t->nodes ? t->nodes[t->level_off[t->levels - 1]] : NULL;
}

void seq_merkle_tree_free(struct seq_merkle_tree *t)
{
	if (!t)
		return;
	free(t->nodes);
	memset(t, 0, sizeof(*t));
}
