/*
 * seq.h - ordering logic for mezzanine: Merkle trees, preconfirmation groups,
 * superblock headers, the slot clock, and receipt verification.
 *
 * This module is pure logic. It never does I/O, never logs, and never keeps
 * global state; the appliance drives it. Every byte layout that is hashed or
 * signed here is documented in docs/PROTOCOL.md and must stay in step with it.
 *
 * Error space: 0 is success, negative is failure. Codes in [-1099, -1000]
 * belong to this module (see SEQ_ERRORS); seq_strerror() names them.
 *
 * Hashes are SHA-256 (OpenSSL libcrypto), signatures ed25519 (libsodium).
 * Integers inside hashed or signed layouts are big-endian.
 */
#ifndef MEZZ_SEQ_H
#define MEZZ_SEQ_H

#include <stddef.h>
#include <stdint.h>

#define SEQ_ERRORS(X)                                                    \
	X(SEQ_EINVAL, -1001, "invalid argument")                         \
	X(SEQ_ENOMEM, -1002, "out of memory")                            \
	X(SEQ_EPROOF, -1003, "Merkle proof does not match the root")     \
	X(SEQ_ESIG, -1004, "signature does not verify")                  \
	X(SEQ_EDECODE, -1005, "malformed encoding")                      \
	X(SEQ_ECHAIN, -1006, "parent hash does not match previous block") \
	X(SEQ_EORDER, -1007, "transactions out of sequence order")

enum {
#define SEQ_ERR_ENUM(name, code, msg) name = code,
	SEQ_ERRORS(SEQ_ERR_ENUM)
#undef SEQ_ERR_ENUM
};

/* Returns a static string for any seq_ error code, or NULL if not ours. */
const char *seq_strerror(int err);

#define SEQ_HASH_LEN 32
#define SEQ_SIG_LEN 64
#define SEQ_PK_LEN 32
#define SEQ_SK_LEN 64 /* libsodium ed25519 secret key (seed || pk) */
/* A Merkle proof over at most 2^64 leaves has at most 64 siblings. */
#define SEQ_MERKLE_MAX_DEPTH 64

/* ------------------------------------------------------------------ */
/* Merkle trees                                                        */
/*
 * The tree shape is RFC 6962's: for n > 1 leaves the left subtree holds the
 * largest power of two strictly less than n. Equivalently, building bottom-up,
 * an odd node at the end of a level is carried up unchanged. Domain tags:
 *   tx leaf        SHA-256(0x00 || seq u64 || ns u64 || tx_hash[32])
 *   inner node     SHA-256(0x01 || left[32] || right[32])
 *   namespace leaf SHA-256(0x02 || ns u64 || count u64 || ns_root[32])
 * The root of an empty tree is SHA-256 of the empty string.
 */
void seq_merkle_tx_leaf(uint8_t out[static 32], uint64_t seq, uint64_t ns,
			const uint8_t tx_hash[static 32]);
void seq_merkle_ns_leaf(uint8_t out[static 32], uint64_t ns, uint64_t count,
			const uint8_t ns_root[static 32]);
void seq_merkle_node(uint8_t out[static 32], const uint8_t left[static 32],
		     const uint8_t right[static 32]);

/* Root over n leaves. Allocates scratch of n/2 hashes; SEQ_ENOMEM if that fails. */
int seq_merkle_root(uint8_t out[static 32], const uint8_t (*leaves)[32], size_t n);

/*
 * Audit path for leaf `index` of n: fills path[0..*path_len) bottom-up with
 * sibling hashes. `path` must hold SEQ_MERKLE_MAX_DEPTH entries.
 * SEQ_EINVAL if index >= n.
 */
int seq_merkle_proof(const uint8_t (*leaves)[32], size_t n, size_t index,
		     uint8_t (*path)[32], size_t *path_len);

/* 0 if the path proves `leaf` at `index` of a tree of n leaves with `root`, else SEQ_EPROOF. */
int seq_merkle_verify(const uint8_t leaf[static 32], uint64_t index, uint64_t n,
		      const uint8_t (*path)[32], size_t path_len,
		      const uint8_t root[static 32]);

/*
 * A whole tree kept in memory (every level, about 2n hashes), for many proofs
 * over the same leaves: one O(n) build, then O(log n) per path. The leaves
 * are copied. Paths equal those of seq_merkle_proof. NULL-safe free.
 */
struct seq_merkle_tree {
	uint8_t (*nodes)[32]; /* level 0 (leaves), then level 1, ... root */
	size_t n;
	size_t levels;
	size_t level_off[SEQ_MERKLE_MAX_DEPTH + 1];
	size_t level_len[SEQ_MERKLE_MAX_DEPTH + 1];
};
int seq_merkle_tree_build(struct seq_merkle_tree *t, const uint8_t (*leaves)[32],
			  size_t n);
int seq_merkle_tree_path(const struct seq_merkle_tree *t, size_t index,
			 uint8_t (*path)[32], size_t *path_len);
const uint8_t *seq_merkle_tree_root(const struct seq_merkle_tree *t);
void seq_merkle_tree_free(struct seq_merkle_tree *t);

/* ------------------------------------------------------------------ */
/* Preconfirmation groups                                              */
/*
 * One group is one SQLite transaction: a contiguous run of sequence numbers
 * [first_seq, first_seq + count), all assigned to one slot. The appliance
 * signs one root per group. Signed message (SEQ_GROUP_MSG_LEN bytes):
 *   "MZGR" || version u32 (=1) || group_id u64 || slot u64 ||
 *   first_seq u64 || count u32 || root[32]
 */
#define SEQ_GROUP_MSG_LEN (4 + 4 + 8 + 8 + 8 + 4 + 32)

struct seq_group_hdr {
	uint64_t group_id;
	uint64_t slot;
	uint64_t first_seq;
	uint32_t count;
	uint8_t root[32];
};

/*
 * A group being built. The caller owns the struct; seq_group_build allocates
 * `leaves` (count entries), released by seq_group_free. NULL-safe free.
 */
struct seq_group {
	struct seq_group_hdr hdr;
	uint8_t (*leaves)[32];
	uint8_t sig[64];
};

/*
 * Build and sign a group: leaf i is seq_merkle_tx_leaf(first_seq + i, ns[i],
 * hashes[i]). n must be >= 1 and fit in u32. On failure nothing is allocated.
 */
int seq_group_build(struct seq_group *g, uint64_t group_id, uint64_t slot,
		    uint64_t first_seq, const uint64_t *ns,
		    const uint8_t (*hashes)[32], size_t n,
		    const uint8_t sk[static 64]);
void seq_group_free(struct seq_group *g);

void seq_group_message(uint8_t out[static SEQ_GROUP_MSG_LEN],
		       const struct seq_group_hdr *h);
int seq_group_verify(const struct seq_group_hdr *h, const uint8_t sig[static 64],
		     const uint8_t pk[static 32]);

/* ------------------------------------------------------------------ */
/* Receipts                                                            */

/*
 * What a submitter receives after the group's fsync. index is the position
 * in the group (seq - first_seq), count the group's size.
 */
struct seq_receipt {
	uint8_t hash[32];
	uint64_t ns;
	uint64_t seq;
	uint64_t slot;
	uint64_t group_id;
	uint32_t index;
	uint32_t count;
	uint8_t root[32];
	uint8_t path[SEQ_MERKLE_MAX_DEPTH][32];
	size_t path_len;
	uint8_t sig[64];
};

/* Fill r for transaction `index` of a built group (proof included, O(n)).
 * SEQ_EINVAL if (ns, hash) is not that leaf: it never cuts a receipt that
 * could not verify. */
int seq_receipt_from_group(struct seq_receipt *r, const struct seq_group *g,
			   size_t index, uint64_t ns, const uint8_t hash[static 32]);
/* The same from a group header, its signature and its whole tree (t built
 * over the group's leaves): O(log n) per receipt, for answering a group. */
int seq_receipt_from_tree(struct seq_receipt *r, const struct seq_group_hdr *h,
			  const uint8_t sig[static 64], const struct seq_merkle_tree *t,
			  size_t index, uint64_t ns, const uint8_t hash[static 32]);

/* Checks the Merkle path against the root and the signature over the group. */
int seq_receipt_verify(const struct seq_receipt *r, const uint8_t pk[static 32]);

/* ------------------------------------------------------------------ */
/* Superblocks                                                         */
/*
 * One superblock per slot. Header encoding (SEQ_BLOCK_HDR_LEN bytes):
 *   "MZSB" || version u32 (=1) || height u64 || slot u64 || time_ms u64 ||
 *   parent[32] || first_seq u64 || tx_count u64 || ns_count u32 ||
 *   ns_root[32] || tx_root[32]
 * Block hash = SHA-256(header bytes). The signature is ed25519 over the
 * header bytes (the magic separates them from group messages).
 * tx_root: Merkle root over every tx leaf of the block in sequence order.
 * ns_root: Merkle root over namespace leaves, namespaces in ascending id,
 *          each namespace's root taken over its own tx leaves in seq order.
 */
#define SEQ_BLOCK_HDR_LEN (4 + 4 + 8 + 8 + 8 + 32 + 8 + 8 + 4 + 32 + 32)
#define SEQ_BLOCK_VERSION 1

struct seq_block_hdr {
	uint32_t version;
	uint64_t height;
	uint64_t slot;
	uint64_t time_ms;
	uint8_t parent[32];
	uint64_t first_seq;
	uint64_t tx_count;
	uint32_t ns_count;
	uint8_t ns_root[32];
	uint8_t tx_root[32];
};

/* One entry of a block's namespace table. */
struct seq_block_ns {
	uint64_t ns;
	uint64_t count;
	uint8_t root[32];
};

/* A transaction as the block builder sees it. */
struct seq_tx {
	uint64_t seq;
	uint64_t ns;
	uint8_t hash[32];
};

/*
 * Build a block header and namespace table from txs (strictly increasing,
 * contiguous seq starting at first_seq; SEQ_EORDER otherwise). For n == 0,
 * first_seq is recorded as given and the roots are empty-tree roots.
 * *ns_table is allocated (ns_count entries, sorted by ns) and owned by the
 * caller (free()). version is set to SEQ_BLOCK_VERSION.
 */
int seq_block_build(struct seq_block_hdr *h, struct seq_block_ns **ns_table,
		    const struct seq_tx *txs, size_t n, uint64_t first_seq,
		    uint64_t height, uint64_t slot, uint64_t time_ms,
		    const uint8_t parent[static 32]);

void seq_block_hdr_encode(uint8_t out[static SEQ_BLOCK_HDR_LEN],
			  const struct seq_block_hdr *h);
/* SEQ_EDECODE on wrong length, magic or version. */
int seq_block_hdr_decode(struct seq_block_hdr *h, const uint8_t *buf, size_t len);
void seq_block_hash(uint8_t out[static 32], const struct seq_block_hdr *h);
void seq_block_sign(uint8_t sig[static 64], const struct seq_block_hdr *h,
		    const uint8_t sk[static 64]);
int seq_block_verify(const struct seq_block_hdr *h, const uint8_t sig[static 64],
		     const uint8_t pk[static 32]);

/*
 * Verify that `next` follows `prev`: height + 1, parent == hash(prev),
 * slot strictly greater, first_seq == prev first_seq + tx_count.
 * SEQ_ECHAIN otherwise.
 */
int seq_block_check_link(const struct seq_block_hdr *prev,
			 const struct seq_block_hdr *next);

/* ------------------------------------------------------------------ */
/* Slot clock                                                          */

/* Slot number containing now_ms, counting from genesis_ms. */
uint64_t seq_slot_at(uint64_t now_ms, uint64_t genesis_ms, uint32_t slot_ms);
/* Start time (ms) of a slot. */
uint64_t seq_slot_start(uint64_t slot, uint64_t genesis_ms, uint32_t slot_ms);

#endif /* MEZZ_SEQ_H */
