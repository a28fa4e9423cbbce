/*
 * group.c - preconfirmation groups and the receipts cut from them.
 *
 * A group is one durable SQLite transaction: a contiguous run of sequence
 * numbers in one slot. The appliance signs one Merkle root per group (ed25519
 * costs ~19 us, far too much per transaction); each receipt carries that
 * signature plus the transaction's audit path, so it verifies on its own.
 */
#include "sequencer/bytes.h"
#include "sequencer/seq.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#define GROUP_MAGIC "MZGR"
#define GROUP_VERSION 1u

void seq_group_message(uint8_t out[static SEQ_GROUP_MSG_LEN],
		       const struct seq_group_hdr *h)
{
	uint8_t *p = out;

	memcpy(p, GROUP_MAGIC, 4);
	p = seq__put_u32(p + 4, GROUP_VERSION);
	p = seq__put_u64(p, h->group_id);
	p = seq__put_u64(p, h->slot);
	p = seq__put_u64(p, h->first_seq);
	p = seq__put_u32(p, h->count);
	memcpy(p, h->root, 32);
}

/* seq_group_build, and with t the whole tree too: the root is its top, so
 * the n - 1 node hashes are done once for the root and every proof. */
static int group_build(struct seq_group *g, struct seq_merkle_tree *t, uint64_t group_id,
		       uint64_t slot, uint64_t first_seq, const uint64_t *ns,
		       const uint8_t (*hashes)[32], size_t n, const uint8_t sk[static 64])
{
	uint8_t msg[SEQ_GROUP_MSG_LEN];
	uint8_t (*leaves)[32];
	size_t i;
	int rc;

	if (t)
		memset(t, 0, sizeof(*t));
	if (g == NULL || ns == NULL || hashes == NULL || n == 0 ||
	    n > UINT32_MAX || first_seq > UINT64_MAX - (n - 1))
		return SEQ_EINVAL;
	leaves = malloc(n * sizeof(*leaves));
	if (leaves == NULL)
		return SEQ_ENOMEM;
	for (i = 0; i < n; i++)
		seq_merkle_tx_leaf(leaves[i], first_seq + i, ns[i], hashes[i]);

	g->hdr.group_id = group_id;
	g->hdr.slot = slot;
	g->hdr.first_seq = first_seq;
	g->hdr.count = (uint32_t)n;
	if (t) {
		rc = seq_merkle_tree_build(t, (const uint8_t (*)[32])leaves, n);
		if (rc == 0)
			memcpy(g->hdr.root, seq_merkle_tree_root(t), 32);
	} else {
		rc = seq_merkle_root(g->hdr.root, (const uint8_t (*)[32])leaves, n);
	}
	if (rc != 0)
		goto fail;
	seq_group_message(msg, &g->hdr);
	if (crypto_sign_detached(g->sig, NULL, msg, sizeof(msg), sk) != 0) {
		rc = SEQ_EINVAL; /* defensive: libsodium does not fail here */
		goto fail;
	}
	g->leaves = leaves;
	return 0;
fail:
	if (t)
		seq_merkle_tree_free(t);
	free(leaves);
	g->leaves = NULL;
	return rc;
}

int seq_group_build(struct seq_group *g, uint64_t group_id, uint64_t slot,
		    uint64_t first_seq, const uint64_t *ns,
		    const uint8_t (*hashes)[32], size_t n,
		    const uint8_t sk[static 64])
{
	return group_build(g, NULL, group_id, slot, first_seq, ns, hashes, n, sk);
}

int seq_group_build_tree(struct seq_group *g, struct seq_merkle_tree *t, uint64_t group_id,
			 uint64_t slot, uint64_t first_seq, const uint64_t *ns,
			 const uint8_t (*hashes)[32], size_t n, const uint8_t sk[static 64])
{
	if (t == NULL)
		return SEQ_EINVAL;
	return group_build(g, t, group_id, slot, first_seq, ns, hashes, n, sk);
}

void seq_group_free(struct seq_group *g)
{
	if (g == NULL)
		return;
	free(g->leaves);
	g->leaves = NULL;
}

int seq_group_verify(const struct seq_group_hdr *h, const uint8_t sig[static 64],
		     const uint8_t pk[static 32])
{
	uint8_t msg[SEQ_GROUP_MSG_LEN];

	if (h == NULL)
		return SEQ_EINVAL;
	seq_group_message(msg, h);
	if (crypto_sign_verify_detached(sig, msg, sizeof(msg), pk) != 0)
		return SEQ_ESIG;
	return 0;
}

/* The fields every receipt copies from its group; the path is the caller's. */
static void receipt_fill(struct seq_receipt *r, const struct seq_group_hdr *h,
			 const uint8_t sig[static 64], size_t index, uint64_t ns,
			 const uint8_t hash[static 32])
{
	memcpy(r->hash, hash, 32);
	r->ns = ns;
	r->seq = h->first_seq + index;
	r->slot = h->slot;
	r->group_id = h->group_id;
	r->index = (uint32_t)index;
	r->count = h->count;
	memcpy(r->root, h->root, 32);
	memcpy(r->sig, sig, 64);
}

int seq_receipt_from_group(struct seq_receipt *r, const struct seq_group *g,
			   size_t index, uint64_t ns, const uint8_t hash[static 32])
{
	uint8_t leaf[32];
	int rc;

	if (r == NULL || g == NULL || g->leaves == NULL || index >= g->hdr.count)
		return SEQ_EINVAL;
	/* Refuse to cut a receipt that could never verify. */
	seq_merkle_tx_leaf(leaf, g->hdr.first_seq + index, ns, hash);
	if (memcmp(leaf, g->leaves[index], 32) != 0)
		return SEQ_EINVAL;
	rc = seq_merkle_proof((const uint8_t (*)[32])g->leaves, g->hdr.count,
			      index, r->path, &r->path_len);
	if (rc != 0)
		return rc;
	receipt_fill(r, &g->hdr, g->sig, index, ns, hash);
	return 0;
}

int seq_receipt_from_tree(struct seq_receipt *r, const struct seq_group_hdr *h,
			  const uint8_t sig[static 64], const struct seq_merkle_tree *t,
			  size_t index, uint64_t ns, const uint8_t hash[static 32])
{
	uint8_t leaf[32];
	int rc;

	if (r == NULL || h == NULL || t == NULL || t->nodes == NULL || t->n != h->count ||
	    index >= t->n)
		return SEQ_EINVAL;
	seq_merkle_tx_leaf(leaf, h->first_seq + index, ns, hash);
	if (memcmp(leaf, t->nodes[index], 32) != 0)
		return SEQ_EINVAL;
	rc = seq_merkle_tree_path(t, index, r->path, &r->path_len);
	if (rc != 0)
		return rc;
	receipt_fill(r, h, sig, index, ns, hash);
	return 0;
}

/*
 * A receipt proves two things: the transaction's leaf sits at `index` of a
 * tree of `count` leaves with `root` (SEQ_EPROOF otherwise), and the
 * appliance signed that root for the group starting at seq - index
 * (SEQ_ESIG otherwise).
 */
int seq_receipt_verify(const struct seq_receipt *r, const uint8_t pk[static 32])
{
	struct seq_group_hdr h;
	uint8_t leaf[32];
	int rc;

	if (r == NULL)
		return SEQ_EINVAL;
	if (r->count == 0 || r->index >= r->count || r->seq < r->index ||
	    r->path_len > SEQ_MERKLE_MAX_DEPTH)
		return SEQ_EPROOF;
	seq_merkle_tx_leaf(leaf, r->seq, r->ns, r->hash);
	rc = seq_merkle_verify(leaf, r->index, r->count,
			       (const uint8_t (*)[32])r->path, r->path_len, r->root);
	if (rc != 0)
		return rc;
	h.group_id = r->group_id;
	h.slot = r->slot;
	h.first_seq = r->seq - r->index;
	h.count = r->count;
	memcpy(h.root, r->root, 32);
	return seq_group_verify(&h, r->sig, pk);
}
