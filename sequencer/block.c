/*
 * block.c - building a superblock's header and namespace table.
 *
 * Two commitments cover the same transactions: tx_root over every tx leaf in
 * sequence order (what a preconfirmation promises), and ns_root over one leaf
 * per namespace (what a rollup's executor checks its own slice against). The
 * tx leaves are hashed once and reused for both.
 */
#include "sequencer/bytes.h"
#include "sequencer/seq.h"

#include <stdlib.h>
#include <string.h>


/* Position of a transaction in the block, keyed for the namespace sort. */
struct ns_key {
	uint64_t ns;
	size_t idx;
};

static int ns_key_cmp(const void *a, const void *b)
{
	const struct ns_key *x = a, *y = b;

	if (x->ns != y->ns)
		return x->ns < y->ns ? -1 : 1;
	return (x->idx > y->idx) - (x->idx < y->idx);
}

static void build_empty(struct seq_block_hdr *h)
{
	seq__sha256(h->tx_root, "", 0);
	memcpy(h->ns_root, h->tx_root, 32);
	h->ns_count = 0;
}

int seq_block_build(struct seq_block_hdr *h, struct seq_block_ns **ns_table,
		    const struct seq_tx *txs, size_t n, uint64_t first_seq,
		    uint64_t height, uint64_t slot, uint64_t time_ms,
		    const uint8_t parent[static 32])
{
	uint8_t (*leaves)[32] = NULL, (*by_ns)[32] = NULL, (*ns_leaves)[32] = NULL;
	struct seq_block_ns *table = NULL;
	struct ns_key *keys = NULL;
	struct seq_block_hdr out;
	size_t i, j, nns = 0;
	int rc = SEQ_ENOMEM;

	if (h == NULL || ns_table == NULL || (n > 0 && txs == NULL))
		return SEQ_EINVAL;
	*ns_table = NULL;
	if (n > 0 && first_seq > UINT64_MAX - (n - 1))
		return SEQ_EORDER;
	for (i = 0; i < n; i++)
		if (txs[i].seq != first_seq + i)
			return SEQ_EORDER;

	memset(&out, 0, sizeof(out));
	out.version = SEQ_BLOCK_VERSION;
	out.height = height;
	out.slot = slot;
	out.time_ms = time_ms;
	memcpy(out.parent, parent, 32);
	out.first_seq = first_seq;
	out.tx_count = n;
	if (n == 0) {
		build_empty(&out);
		*h = out;
		return 0;
	}

	leaves = malloc(n * sizeof(*leaves));
	by_ns = malloc(n * sizeof(*by_ns));
	keys = malloc(n * sizeof(*keys));
	if (leaves == NULL || by_ns == NULL || keys == NULL)
		goto out;
	for (i = 0; i < n; i++) {
		seq_merkle_tx_leaf(leaves[i], txs[i].seq, txs[i].ns, txs[i].hash);
		keys[i].ns = txs[i].ns;
		keys[i].idx = i;
	}
	rc = seq_merkle_root(out.tx_root, (const uint8_t (*)[32])leaves, n);
	if (rc != 0)
		goto out;

	/* Sorting by (ns, position) keeps each namespace's leaves in seq order. */
	qsort(keys, n, sizeof(*keys), ns_key_cmp);
	for (i = 0; i < n; i++) {
		memcpy(by_ns[i], leaves[keys[i].idx], 32);
		if (i == 0 || keys[i].ns != keys[i - 1].ns)
			nns++;
	}
	if (nns > UINT32_MAX) {
		rc = SEQ_EINVAL;
		goto out;
	}
	rc = SEQ_ENOMEM;
	table = calloc(nns, sizeof(*table));
	ns_leaves = malloc(nns * sizeof(*ns_leaves));
	if (table == NULL || ns_leaves == NULL)
		goto out;
	for (i = 0, j = 0; i < n; j++) {
		size_t start = i;

		while (i < n && keys[i].ns == keys[start].ns)
			i++;
		table[j].ns = keys[start].ns;
		table[j].count = i - start;
		rc = seq_merkle_root(table[j].root,
				     (const uint8_t (*)[32])(by_ns + start), i - start);
		if (rc != 0)
			goto out;
		seq_merkle_ns_leaf(ns_leaves[j], table[j].ns, table[j].count,
				   table[j].root);
	}
	rc = seq_merkle_root(out.ns_root, (const uint8_t (*)[32])ns_leaves, nns);
	if (rc != 0)
		goto out;
	out.ns_count = (uint32_t)nns;

	*h = out;
	*ns_table = table;
	table = NULL;
out:
	free(table);
	free(ns_leaves);
	free(keys);
	free(by_ns);
	free(leaves);
	return rc;
}
