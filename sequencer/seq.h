/*
 * seq.h - ordering logic for mezzanine: Merkle trees, preconfirmation groups,
 * superblock headers, the slot clock, receipt verification, and the sale of
 * sequencing rights (docs/RIGHTS.md).
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

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SEQ_ERRORS(X)                                                    \
	X(SEQ_EINVAL, -1001, "invalid argument")                         \
	X(SEQ_ENOMEM, -1002, "out of memory")                            \
	X(SEQ_EPROOF, -1003, "Merkle proof does not match the root")     \
	X(SEQ_ESIG, -1004, "signature does not verify")                  \
	X(SEQ_EDECODE, -1005, "malformed encoding")                      \
	X(SEQ_ECHAIN, -1006, "parent hash does not match previous block") \
	X(SEQ_EORDER, -1007, "transactions out of sequence order")        \
	X(SEQ_ESTATE, -1008, "not allowed in the sale's current state")  \
	X(SEQ_ECLOSED, -1009, "the sale is closed to purchases")          \
	X(SEQ_EBUNDLE, -1010, "bundle empty, unsorted or not in the sale") \
	X(SEQ_ESOLDOUT, -1011, "purchase would exceed the ticket cap")    \
	X(SEQ_EEARLY, -1012, "too early for this step of the sale")       \
	X(SEQ_ELATE, -1013, "the improvement window has ended")           \
	X(SEQ_ENOBID, -1014, "no tickets were bought on that bundle")     \
	X(SEQ_EOVERLAP, -1015, "allocation bundles overlap or repeat")    \
	X(SEQ_ERESERVE, -1016, "bundle revenue below its reserves")       \
	X(SEQ_ENOTBETTER, -1017, "allocation does not earn strictly more") \
	X(SEQ_EBALANCE, -1018, "settlement does not balance")

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

/*
 * Multiproofs: one proof for leaves idx[0..k) of a tree of n leaves, idx
 * strictly increasing. Level by level from the leaves, the verifier knows
 * some nodes (sorted by index); for each, left to right: an even node whose
 * right neighbour is known pairs with it; an even node with a right
 * neighbour that is not known takes it from the proof; an even node that
 * is the last of an odd level is carried up; an odd node takes its left
 * neighbour from the proof. The proof is those taken nodes, in the order
 * taken. A single leaf's multiproof is its audit path. Layout and an
 * example: docs/PROTOCOL.md, "Batch receipts".
 *
 * seq_merkle_multiproof_max: entries a proof for k leaves of n can need.
 * seq_merkle_tree_multiproof fills proof (room for that many) and *len;
 * SEQ_EINVAL if idx is empty, unsorted, repeated or out of range;
 * SEQ_ENOMEM for its scratch.
 * seq_merkle_multiverify: 0 if the proof takes leaves[0..k) at idx to
 * root, else SEQ_EPROOF (also for unsorted or out-of-range idx, or a proof
 * with entries left over or missing); SEQ_ENOMEM for its scratch.
 */
size_t seq_merkle_multiproof_max(uint64_t n, size_t k);
int seq_merkle_tree_multiproof(const struct seq_merkle_tree *t, const size_t *idx, size_t k,
			       uint8_t (*proof)[32], size_t *len);
int seq_merkle_multiverify(const uint8_t (*leaves)[32], const uint64_t *idx, size_t k,
			   uint64_t n, const uint8_t (*proof)[32], size_t len,
			   const uint8_t root[static 32]);

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
/*
 * seq_group_build that also fills *t with the group's whole Merkle tree (for
 * cutting every receipt's proof), hashing each node once: the root is the
 * tree's. The caller frees *t with seq_merkle_tree_free; on failure *t is
 * left empty (NULL-safe to free).
 */
int seq_group_build_tree(struct seq_group *g, struct seq_merkle_tree *t, uint64_t group_id,
			 uint64_t slot, uint64_t first_seq, const uint64_t *ns,
			 const uint8_t (*hashes)[32], size_t n, const uint8_t sk[static 64]);
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

/* ================================================================== */
/* Sequencing rights: sales, allocation, draw, revenue (docs/RIGHTS.md) */
/*
 * Pure and deterministic: no I/O, no clock, no global state; "now" is a slot
 * number the caller passes in. The same calls in the same order give the
 * same bytes out.
 *
 * Amounts are u64 gwei (the bridge multiplies by 10^9 for wei). Overflow is
 * impossible by construction: a ticket price is at most SEQ_RIGHTS_PRICE_MAX
 * (2^38 gwei, about 275k ETH), a sale sells at most SEQ_RIGHTS_TICKETS_MAX
 * (2^24) tickets, so every revenue, charge and refund is below 2^62; a
 * reserve is at most SEQ_RIGHTS_PRICE_MAX and a bundle holds at most
 * SEQ_RIGHTS_MAX_ROLLUPS (2^8) rollups, so reserve sums stay below 2^46.
 * Products of two amounts are taken in unsigned __int128.
 *
 * Lifecycle of one sale (sale.c has the transition table):
 *
 *   OPEN --seq_sale_close (now >= close slot)--> CLOSED --seq_sale_settle--> SETTLED
 *    |  seq_sale_buy                              |  seq_sale_propose
 *    |  (now < close slot)                        |  (now < improve deadline)
 *
 *   close slot       = start_slot - close_lead
 *   improve deadline = start_slot - improve_lead   (close_lead > improve_lead)
 *   settle           = at or after the improve deadline, with the seed of
 *                      L1 block draw_block (which must be later than the
 *                      deadline; the caller fetches it).
 */
#define SEQ_RIGHTS_MAX_ROLLUPS 256
#define SEQ_RIGHTS_EXACT_MAX 20 /* exact allocation up to this many rollups */
#define SEQ_RIGHTS_PRICE_MAX (UINT64_C(1) << 38)
#define SEQ_RIGHTS_TICKETS_MAX (UINT64_C(1) << 24)
#define SEQ_RIGHTS_BPS 10000u
#define SEQ_RIGHTS_STEP_DIV 8 /* price step is at most price / 8 = 12.5% */
#define SEQ_ADDR_LEN 20

/* One rollup's stance for one sale. Offers of one sale have unique ids. */
struct seq_offer {
	uint64_t rollup;
	uint64_t reserve; /* gwei for the whole window, <= SEQ_RIGHTS_PRICE_MAX */
	bool opt_in;      /* false: the rollup sequences itself this window */
};

/* What seq_sale_create needs. `offers` is only read during the call. */
struct seq_sale_params {
	uint64_t sale_id;
	uint64_t start_slot; /* the window sold is [start_slot, end_slot) */
	uint64_t end_slot;
	uint64_t close_lead;   /* purchases stop at start_slot - close_lead */
	uint64_t improve_lead; /* proposals stop at start_slot - improve_lead */
	uint64_t draw_block;   /* L1 block whose hash seeds the draw */
	uint64_t price;        /* gwei per ticket, 1..SEQ_RIGHTS_PRICE_MAX */
	uint64_t cap;          /* tickets per sale, 1..SEQ_RIGHTS_TICKETS_MAX */
	uint64_t target;       /* tickets the price rule aims for, 1..cap-1 */
	uint32_t burn_bps;     /* share of revenue burned, 0..SEQ_RIGHTS_BPS */
	const struct seq_offer *offers;
	size_t n_offers;
};

/* A participating rollup; the sale keeps them in ascending id. Its position
 * in that table is its "index", the bit it occupies in a bundle. */
struct seq_rollup {
	uint64_t id;
	uint64_t reserve;
};

/* A distinct bundle somebody bought tickets on. Bundles are numbered in the
 * order they were first bought; purchases aggregate onto them. */
struct seq_bundle {
	uint64_t bits[SEQ_RIGHTS_MAX_ROLLUPS / 64]; /* rollup indices */
	uint32_t size;                              /* popcount of bits */
	uint32_t low;                               /* lowest index set */
	uint64_t tickets;                           /* over every buyer */
	uint64_t reserve;                           /* sum of its reserves */
};

struct seq_purchase {
	uint8_t buyer[SEQ_ADDR_LEN];
	uint32_t bundle; /* index into sale->bundles */
	uint64_t tickets;
};

/* A set of disjoint winning bundles: indices into sale->bundles, strictly
 * ascending (the canonical form; seq_alloc_validate rejects any other). */
struct seq_alloc {
	uint64_t revenue; /* sum of tickets x price; recomputed on validation */
	uint32_t n;
	uint32_t bundle[SEQ_RIGHTS_MAX_ROLLUPS];
};

enum seq_sale_state { SEQ_SALE_OPEN, SEQ_SALE_CLOSED, SEQ_SALE_SETTLED };

/*
 * A sale. seq_sale_create fills it and allocates its tables; everything in
 * it is public (purchases are public by design) and read-only to callers;
 * pointers stay valid until the next seq_sale_buy or seq_sale_destroy.
 */
struct seq_sale {
	struct seq_sale_params p; /* offers/n_offers cleared after create */
	enum seq_sale_state state;
	struct seq_rollup *rollups; /* participants, ascending id */
	size_t n_rollups;
	struct seq_bundle *bundles;
	size_t n_bundles;
	struct seq_purchase *purchases;
	size_t n_purchases;
	uint64_t sold;        /* tickets over every purchase */
	struct seq_alloc best; /* valid from CLOSED on */
	uint64_t best_proposals; /* proposals accepted so far */
	/* internal: bundle hash index, cap_* capacities */
	uint32_t *index_;
	size_t index_cap_, bundles_cap_, purchases_cap_;
};

/* SEQ_EINVAL on bad params (window empty, leads inverted or past start,
 * price/cap/target/burn out of range, duplicate offer ids, > 256 opt-ins,
 * reserve too large). On failure nothing is allocated. */
int seq_sale_create(struct seq_sale *s, const struct seq_sale_params *p);
void seq_sale_destroy(struct seq_sale *s); /* NULL-safe; idempotent */

/* First slot at which purchases are refused (start_slot - close_lead). */
uint64_t seq_sale_close_slot(const struct seq_sale *s);
uint64_t seq_sale_deadline_slot(const struct seq_sale *s);

/*
 * Buy `tickets` tickets on the bundle `rollups[0..n)` (ids strictly
 * ascending, every one opted in) at the sale's price. Errors: SEQ_ECLOSED
 * (state or now_slot past the close slot), SEQ_EBUNDLE, SEQ_ESOLDOUT,
 * SEQ_EINVAL (tickets == 0), SEQ_ENOMEM. On error the sale is unchanged.
 */
int seq_sale_buy(struct seq_sale *s, uint64_t now_slot,
		 const uint8_t buyer[static SEQ_ADDR_LEN], const uint64_t *rollups,
		 size_t n, uint64_t tickets);

/* Index of the bundle with exactly these ids, or SEQ_ENOBID / SEQ_EBUNDLE. */
int seq_sale_bundle_find(const struct seq_sale *s, const uint64_t *rollups,
			 size_t n, uint32_t *out);
/* Writes the ids of bundle b in ascending order; returns how many, or
 * SEQ_EINVAL if b is out of range or cap too small. */
int seq_sale_bundle_ids(const struct seq_sale *s, uint32_t b, uint64_t *out,
			size_t cap);
/* tickets x price of bundle b. */
uint64_t seq_sale_bundle_value(const struct seq_sale *s, uint32_t b);

/* OPEN -> CLOSED: refuses purchases from now on and sets s->best to
 * seq_alloc_compute's answer. SEQ_EEARLY before the close slot. */
int seq_sale_close(struct seq_sale *s, uint64_t now_slot);

/*
 * Allocation. Revenue-maximising set of disjoint bundles, each with
 * tickets x price >= the sum of its rollups' reserves.
 *   exact     DP over subsets of rollups, O(2^n + sum over bundles of
 *             2^(n - low - size)); SEQ_EINVAL above SEQ_RIGHTS_EXACT_MAX
 *             rollups. Allocates 12 * 2^n bytes while running.
 *   heuristic greedy by value and by value per rollup, each followed by
 *             1-for-k swap improvement; the better of the two.
 *   compute   exact when n_rollups <= SEQ_RIGHTS_EXACT_MAX, else heuristic.
 * Ties (docs/RIGHTS.md): leaving a rollup unsold beats selling it for equal
 * revenue; otherwise the earlier bundle index wins. Deterministic.
 */
int seq_alloc_exact(const struct seq_sale *s, struct seq_alloc *out);
int seq_alloc_heuristic(const struct seq_sale *s, struct seq_alloc *out);
int seq_alloc_compute(const struct seq_sale *s, struct seq_alloc *out);

/* Checks `a` is canonical (ascending, in range), disjoint (SEQ_EOVERLAP),
 * every bundle bid (SEQ_ENOBID) and meeting its reserves (SEQ_ERESERVE);
 * writes its revenue. */
int seq_alloc_validate(const struct seq_sale *s, const struct seq_alloc *a,
		       uint64_t *revenue);
/* seq_alloc_validate, then SEQ_ENOTBETTER unless the revenue is strictly
 * greater than s->best's. 0 means "would be accepted". */
int seq_alloc_check(const struct seq_sale *s, const struct seq_alloc *a);
/* The improvement window: in CLOSED and before the deadline (SEQ_ELATE),
 * replaces s->best with `a` when seq_alloc_check accepts it. */
int seq_sale_propose(struct seq_sale *s, uint64_t now_slot, const struct seq_alloc *a);

/*
 * Void purchases the chain did not escrow (docs/RIGHTS.md, "Void
 * purchases"), in CLOSED (SEQ_ESTATE otherwise), all at once: each one's
 * tickets drop to 0 (purchase and bundle numbers stay, so proposals and the
 * draw still name the same things), then the allocation is judged again:
 * the standing one, re-valued, is kept if it is still valid and the one
 * seq_alloc_compute finds over what is left does not earn strictly more;
 * otherwise that one replaces it. A purchase already void is a no-op, so
 * voiding a set again changes nothing. SEQ_EINVAL if an index is out of
 * range; SEQ_ENOMEM leaves the sale unchanged.
 */
int seq_sale_void(struct seq_sale *s, const uint32_t *purchases, size_t n);

/*
 * The draw. Ticket index in [0, tickets) for bundle `bundle` of sale
 * `sale_id`: x = first 8 bytes (big-endian) of SHA-256(seed[32] ||
 * sale_id u64 BE || bundle u32 BE || attempt u32 BE), attempt = 0, 1, ...;
 * x is rejected while x >= 2^64 - (2^64 mod tickets), then x mod tickets.
 * No modulo bias. tickets must be >= 1.
 */
uint64_t seq_draw_ticket(const uint8_t seed[static 32], uint64_t sale_id,
			 uint32_t bundle, uint64_t tickets);

/*
 * Revenue split: burn = floor(revenue * burn_bps / 10000); the rest is
 * shared in proportion to weights[0..n) (1 <= n <= SEQ_RIGHTS_MAX_ROLLUPS,
 * rollups in ascending id),
 * floor first, then the leftover gwei one each by largest remainder, ties
 * to the lower index (= lower rollup id). All-zero weights split equally.
 * sum(shares) + burn == revenue exactly.
 */
void seq_revenue_split(uint64_t revenue, uint32_t burn_bps, const uint64_t *weights,
		       size_t n, uint64_t *shares, uint64_t *burn);
/* Weight of a rollup (by index) in a shared bundle: its reserve; tickets on
 * its singleton bundle, always refunded when it shares, count neither up
 * nor down (docs/RIGHTS.md "Shill bidding" says why). */
uint64_t seq_revenue_weight(const struct seq_sale *s, uint32_t rollup_index);

/* Next sale's price: see docs/RIGHTS.md "Price rule". Sold out (sold >=
 * cap) raises by max(1, price/8); above target raises proportionally less;
 * below target lowers by price * (target - sold) / (8 * target); never
 * below floor nor above SEQ_RIGHTS_PRICE_MAX. Requires 0 < target < cap. */
uint64_t seq_price_next(uint64_t price, uint64_t sold, uint64_t cap, uint64_t target,
			uint64_t floor);

/* What the bridge posts to L1 once a sale settles. */
struct seq_settle_winner {
	uint32_t bundle;   /* index in the sale's bundle table */
	uint32_t purchase; /* purchase holding the winning ticket */
	uint64_t ticket;   /* drawn ticket index within the bundle */
	uint8_t buyer[SEQ_ADDR_LEN];
	uint64_t revenue;  /* the bundle's tickets x price, all charged */
};
struct seq_settle_buyer {
	uint8_t addr[SEQ_ADDR_LEN];
	uint64_t paid;    /* escrowed at purchase: all its tickets x price */
	uint64_t charged; /* its tickets on winning bundles x price */
	uint64_t refund;  /* paid - charged, for it to pull */
};
struct seq_settle_credit {
	uint64_t rollup;
	uint32_t winner; /* index into winners: who sequences this rollup */
	uint64_t amount;
};
/*
 * Arrays owned by the settlement (seq_settlement_free). winners ascend by
 * bundle, buyers by address bytes (each address once), credits by rollup
 * id (every rollup of every winning bundle, once). Opted-in rollups absent
 * from credits went unsold and sequence themselves.
 */
struct seq_settlement {
	uint64_t sale_id;
	uint64_t price;
	uint8_t seed[32];
	uint64_t revenue; /* sum of winners' revenue == sum charged */
	uint64_t burn;
	struct seq_settle_winner *winners;
	size_t n_winners;
	struct seq_settle_buyer *buyers;
	size_t n_buyers;
	struct seq_settle_credit *credits;
	size_t n_credits;
};

/* CLOSED -> SETTLED at or after the deadline (SEQ_EEARLY before): draws a
 * winner per winning bundle of s->best, splits revenue, fills `out`. */
int seq_sale_settle(struct seq_sale *s, uint64_t now_slot, const uint8_t seed[static 32],
		    struct seq_settlement *out);
/* 0 when charged == sum credits + burn == revenue, refunds == paid -
 * charged, buyers strictly ascending (none twice), credits strictly
 * ascending; SEQ_EBALANCE otherwise. */
int seq_settlement_check(const struct seq_settlement *st);
/* Canonical big-endian encoding (layout in docs/RIGHTS.md); returns the
 * length needed, writing only when buf holds that many bytes. */
size_t seq_settlement_encode(const struct seq_settlement *st, uint8_t *buf, size_t len);
/* The inverse, strict: exactly one encoding of a settlement that passes
 * seq_settlement_check, else SEQ_EDECODE (or SEQ_EBALANCE); *out is then
 * empty. Free a decoded one with seq_settlement_free. */
int seq_settlement_decode(const uint8_t *buf, size_t len, struct seq_settlement *out);
void seq_settlement_free(struct seq_settlement *st); /* NULL-safe */

#endif /* MEZZ_SEQ_H */
