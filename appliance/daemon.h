/*
 * daemon.h - internals shared by the daemon's files (committer.c, server.c,
 * rpc.c, feed.c, auth.c, receipt.c). Not a public interface: the CLI and the
 * other modules use app.h only.
 *
 * Ownership across the two queues:
 *   ingress (lws -> committer): struct app_sub; `data` passes to the
 *     committer, which frees it or moves it into a sealed block.
 *   done (committer -> lws): struct app_done; `json` and `block` pass to the
 *     lws thread. `req` is never dereferenced by the committer: only the lws
 *     thread touches requests, so they need no lock.
 */
#ifndef MEZZ_DAEMON_H
#define MEZZ_DAEMON_H

#include <stdatomic.h>

#include "appliance/app.h"
#include "da/da.h"
#include "l1bridge/l1.h"

struct lws_context;
struct app_req;

/* JSON-RPC error codes. Stable: documented in docs/API.md. */
enum {
	RPC_PARSE_ERROR = -32700,
	RPC_INVALID_REQUEST = -32600,
	RPC_METHOD_NOT_FOUND = -32601,
	RPC_INVALID_PARAMS = -32602,
	RPC_INTERNAL = -32603,
	RPC_UNAUTHORIZED = -32001,	/* missing, unknown or revoked API key */
	RPC_FORBIDDEN = -32002,		/* key may not act on this namespace */
	RPC_UNKNOWN_NAMESPACE = -32003,
	RPC_TOO_LARGE = -32004,		/* message, batch or transaction over its cap */
	RPC_HALTED = -32005,		/* sequencer stopped after a storage failure */
	RPC_BUSY = -32006,		/* ingress queue full: retry shortly */
	RPC_NOT_FOUND = -32007,		/* no such block or transaction */
	RPC_INVALID_TX = -32008,	/* transaction failed decoding or checks */
	RPC_BUNDLE_CONFLICT = -32010,	/* a bundle leg is already sequenced */
	RPC_RATE_LIMITED = -32009,	/* over a tenant or address rate limit: data.retryAfterMs */
	RPC_L1_DISABLED = -32011,	/* L1 posting is not configured (l1.rpc_urls) */
	RPC_STALE_L2_BLOCK = -32012,	/* l2Block not above the last one queued */
	RPC_SLOT_BLOCK_REJECTED = -32020, /* a winner's sub-block was invalid or late */
	RPC_PROPOSER_AUTH = -32021,	/* proposer not authenticated or signature refused */
	/* execution-ticket sales (docs/API.md, "Sequencing rights") */
	RPC_RIGHTS_DISABLED = -32030,	/* rights.enabled is 0 */
	RPC_SALE_CLOSED = -32031,	/* the sale no longer takes this */
	RPC_BAD_SIGNATURE = -32032,	/* the EIP-712 signature does not recover */
	RPC_WRONG_PRICE = -32033,	/* priceGwei is not the sale's price */
	RPC_SOLD_OUT = -32034,		/* over the sale's cap */
	RPC_BAD_BUNDLE = -32035,	/* rollups not ascending or not opted in */
	RPC_NONCE_USED = -32036,	/* the buyer already used this nonce */
	RPC_NO_DEPOSIT = -32037,	/* the buyer's free L1 deposit does not cover it */
};

/* A submission handed to the committer. */
struct app_sub {
	struct app_req *req;
	uint32_t slot; /* index of the answer within req */
	uint64_t ns;
	char ns_name[64];
	int want_hash; /* answer with the bare tx hash (eth_sendRawTransaction) */
	uint8_t hash[32];
	uint8_t *data;
	size_t len;
	/* atomic bundles: the first leg carries the number of legs, the others
	 * their index (>= 1); all legs are pushed together, in order */
	uint16_t bundle_n, bundle_leg;
	/* proposer.c: no_answer = nobody waits for this item (a winner's own
	 * transaction, or a pending one recovered after a restart); block !=
	 * NULL: this item is a winner's mezz_submitSlotBlock, not a transaction */
	uint8_t no_answer;
	/* mezz_sendTransactions: answer a transaction new in its group briefly
	 * (the request's batch receipt carries the group's proof) */
	uint8_t brief;
	struct app_slot_block *block;
	uint64_t pop_ns; /* when the committer took it from the ingress queue */
};
#define APP_BUNDLE_MAX_LEGS 64

/*
 * Which namespaces block subscriptions may want, kept by the lws
 * thread (app_feed_interest_add) and read by the sealer. A count per bucket
 * of chain ids: a bucket shared with another namespace only costs a
 * rendering nobody reads.
 */
#define APP_NS_BUCKETS 1024
struct app_feed_interest {
	atomic_uint_fast64_t all;	  /* subscriptions without a namespace filter */
	atomic_uint ns[APP_NS_BUCKETS]; /* filters naming a chain id, by id mod buckets */
};
void app_feed_interest_add(struct app_feed_interest *fi, const uint64_t *ns, size_t n, int delta);

/* JSON text at p + off, len bytes; p is the allocation (freed). */
struct app_json_part {
	char *p;
	size_t off, len;
};

/*
 * A sealed block as the feed serves it. Built by the committer (or loaded
 * from storage), then shared by the lws thread and the DA thread: everything
 * but refs, ns_json, json_bytes and txs_json is immutable once made; refs is
 * atomic; ns_json and json_bytes are touched by the lws thread only; txs_json
 * is written by the sealer before the block is handed over, then read and
 * freed by the lws thread only. txs are sorted by (ns, seq); ns_first[i]
 * is the index of namespace i's first transaction in txs.
 */
struct app_block {
	atomic_int refs;
	struct seq_block_hdr hdr;
	uint8_t sig[64];
	uint8_t hash[32];
	struct seq_block_ns *ns;
	size_t ns_count;
	size_t *ns_first;
	struct app_tx *txs;
	size_t n;
	struct app_json_part *ns_json; /* lazily built per-namespace JSON fragments */
	size_t bytes;		       /* approximate memory held, ns_json aside */
	size_t json_bytes; /* ns_json's total length; lws thread only, like ns_json */
	/* NULL, or per namespace the JSON of its transactions, comma-separated,
	 * rendered ahead by the sealer (app_block_render_txs) with room around
	 * it, so that its ns_json fragment is finished in place. Taken by
	 * ns_json, or freed by the live fan-out. */
	struct app_json_part *txs_json;
	/* What the sealer's rendering allocated (txs_json's buffers, which
	 * ns_json may take over): set once, before b is handed over, and
	 * counted with bytes against da.queue_mib. */
	size_t rendered_bytes;
};
/* Builds the namespace index (sorts txs). Takes ownership of txs and ns. */
int app_block_make(struct app_block **out, const struct seq_block_hdr *h,
		   const uint8_t sig[static 64], struct seq_block_ns *ns, size_t ns_count,
		   struct app_tx *txs, size_t n);
/* Renders b's txs_json for the namespaces fi says a subscription may want
 * (feed.c); any thread, before b is handed over. Returns how many it
 * rendered; APP_ENOMEM leaves b as it was: the lws thread renders it then. */
int app_block_render_txs(struct app_block *b, const struct app_feed_interest *fi);
/* Frees b->txs_json; the lws thread only, once b is handed over. */
void app_block_drop_rendered(struct app_block *b);
/* Loads a block and its transactions from storage. */
int app_block_load(struct app_block **out, struct app_store *s, uint64_t height);
void app_block_unref(struct app_block *b);
static inline struct app_block *app_block_ref(struct app_block *b)
{
	atomic_fetch_add(&b->refs, 1);
	return b;
}

/*
 * Commitment levels after `sealed` (see docs/API.md). Each is an event on
 * the feed for every block, in height order, after that block's `sealed`.
 */
enum app_level { APP_LEVEL_AVAILABLE, APP_LEVEL_POSTED, APP_LEVEL_FINALIZED, APP_LEVELS };
extern const char *const app_level_names[APP_LEVELS];
/* The level named name, or -1 (NULL too). */
int app_level_of(const char *name);

/* DONE_PENDING: a transaction held for a winner is durable; json is the
 * notification's result, height its pending ref, winner its address. */
enum app_done_kind { DONE_ANSWER, DONE_BLOCK, DONE_LEVEL, DONE_PENDING, DONE_PRECONF };

/*
 * A committed group as the `preconfirmed` feed event shows it: built by the
 * committer after the group's COMMIT (only while some subscription asks for
 * that level), owned by the lws thread once queued; app_preconf_free.
 */
struct app_preconf_tx {
	uint64_t ns, seq;
	uint8_t hash[32];
	const uint8_t *data; /* into bytes */
	uint32_t len;
};
struct app_preconf {
	struct seq_group_hdr hdr;
	uint8_t sig[64];
	size_t n;
	struct app_preconf_tx *tx; /* seq order */
	uint8_t *bytes;
};
void app_preconf_free(struct app_preconf *p); /* NULL-safe */

struct app_done {
	enum app_done_kind kind;
	struct app_req *req;
	uint32_t slot;
	enum app_level level; /* DONE_LEVEL: blocks up to `height` reached `level` */
	uint64_t height;
	int is_error;
	char *json; /* the "result" value, or the "error" object when is_error */
	size_t json_len; /* strlen(json) when its builder knew it; 0: not known */
	struct app_answer_buf *buf; /* json lies in it (not freed alone); else NULL */
	int brief; /* json is a brief batch entry (app_receipt_brief_put) */
	char *section; /* malloc'd batch section of the request in this group, or NULL */
	size_t section_len;
	struct app_block *block;
	struct app_preconf *pre; /* DONE_PRECONF */
	uint8_t winner[20];
	/* A preconfirmation's path (mezz_preconf_*_seconds): the committer took
	 * its item from the ingress queue at pop_ns, and its group was durable
	 * at durable_ns. 0 on answers that did not go through a group. */
	uint64_t pop_ns, durable_ns;
};

/* Counters the committer publishes for mezz_status and metrics. */
struct app_stats {
	atomic_uint_fast64_t next_seq;
	/* transactions below this seq are durable and answered (committer.c
	 * release); readers of stored receipts answer nothing above it */
	atomic_uint_fast64_t durable_seq;
	atomic_uint_fast64_t height;	/* last sealed height */
	atomic_uint_fast64_t has_block;
	atomic_uint_fast64_t open_slot;
	atomic_uint_fast64_t groups;
	atomic_uint_fast64_t txs;
	atomic_uint_fast64_t last_commit_us;
	/* highest height at each level after sealed (0: none yet) */
	atomic_uint_fast64_t level_tip[APP_LEVELS];
	atomic_int halted;
	atomic_int exited; /* the committer thread has returned */
	/* proposer-ordered slots (proposer.c) */
	atomic_uint_fast64_t prop_accepted; /* winners' sub-blocks accepted */
	atomic_uint_fast64_t prop_misses;   /* (winner, slot) decided by fallback */
	atomic_uint_fast64_t prop_pending;  /* transactions held for winners now */
};

/* A block's DA commitment, durable in the shard store, not yet in SQLite. */
struct app_da_rec {
	uint64_t height;
	uint8_t record[DA_RECORD_LEN];
	uint8_t sig[64];
};

/*
 * The DA stage (avail.c): the "mz-da" thread erasure-codes each sealed block
 * in height order, writes its shards durably and signs its commitment
 * record; the committer stores the record in its next transaction, after
 * which the block is `available`.
 */
struct app_avail {
	struct da_store *shards;
	struct da_code *code; /* for the configured k, m */
	struct da_bufs bufs;  /* mz-da: the last block's buffers, for the next */
	struct app_store *ro; /* mz-da's connection, for blocks not handed over */
	struct app_queue jobs; /* struct app_block * (one reference each) */
	atomic_size_t queued_bytes; /* what the blocks in jobs hold (b->bytes) */
	uint64_t next;	       /* mz-da: next height to code */
	pthread_mutex_t mu;
	struct app_da_rec *ready; /* coded, waiting for the committer to store */
	size_t ready_n, ready_cap;
	pthread_t thread;
	int started;
	uint64_t want_floor;	     /* under mu: shard floor to record (0: none) */
	atomic_uint_fast64_t floor;  /* recorded: shards below may be deleted */
	uint64_t removed_below;	     /* mz-da: shards below are deleted */
	atomic_int halted; /* a shard write failed: no retry, see the log */
	atomic_int stopping;
	int health; /* app_health component "da" */
};

/* A mezz_postStateRoot handed from the lws thread to mz-l1, which answers
 * through the done queue. locator is malloc'd and owned by the request. */
struct app_l1_req {
	struct app_req *req;
	uint32_t slot;
	char ns_name[64];
	struct l1_inbox_state_root sr;
	uint8_t *locator;
};

/*
 * The L1 stage (l1stage.c): the "mz-l1" thread builds batches from
 * available blocks and drives the outbox (l1bridge/outbox.c), whose journal
 * is its own database, data_dir/outbox.db. enabled = 0 when l1.rpc_urls is
 * empty: nothing runs and the posted/finalized levels never fire.
 */
struct app_l1 {
	int enabled;
	char db_path[600];
	struct l1_outbox *ob;	     /* mz-l1 only */
	struct l1_rpc *rpc;	     /* mz-l1 only */
	struct app_store *ro;	     /* mz-l1's read connection to mezzanine.db */
	struct app_queue reqs;	     /* struct app_l1_req */
	pthread_t thread;
	int started;
	atomic_int stopping;
	pthread_mutex_t mu;
	struct l1_outbox_info info;  /* copy for mezz_status, under mu */
	char address[43];	     /* the poster's address, 0x-hex */
	struct l1_outbox_reader *lws_reader; /* the lws thread's, opened lazily */
};

/*
 * Sequencing rights (rights.c, rightsreq.c): the lws thread parses a
 * mezz_setOffer / mezz_getSale / mezz_buyTickets / mezz_proposeAllocation
 * into an app_rights_req and queues it; the sales engine answers through
 * the done queue. rollups and alloc are malloc'd and owned by the request
 * (app_rights_req_free).
 */
enum app_rights_op {
	APP_RIGHTS_SET_OFFER,
	APP_RIGHTS_GET_SALE,
	APP_RIGHTS_BUY,
	APP_RIGHTS_PROPOSE
};
struct json_t;
struct app_rights_req {
	struct app_req *req;
	uint32_t slot;
	enum app_rights_op op;
	uint64_t sale;
	/* set offer (the namespace is resolved and authorised by rpc.c) */
	uint64_t ns;
	char ns_name[64];
	int opt_in;
	uint64_t reserve;
	/* buy: rollups strictly ascending, as signed */
	uint64_t *rollups;
	size_t n_rollups;
	uint64_t tickets, price_gwei, nonce;
	uint8_t sig[65];
	/* propose: bundle numbers strictly ascending */
	struct seq_alloc *alloc;
};
/* Decode params for op into out (zeroed first). 0, or -1 with a reason a
 * person can act on in why. Checks shapes and bounds only, never sales. */
int app_rights_parse(struct app_rights_req *out, enum app_rights_op op,
		     struct json_t *params, char *why, size_t whylen);
void app_rights_req_free(struct app_rights_req *r); /* NULL-safe; frees members */

struct app_rights; /* rights.c */

struct app_held; /* committer.c */

struct app_committer {
	const struct app_config *cfg;
	const struct app_identity *id;
	struct app_store *store;
	struct app_txindex *txi; /* opened before start (app_txindex_open) */
	struct app_queue *ingress;
	struct app_queue *done;
	struct lws_context *lws; /* set before start; for lws_cancel_service */
	struct app_stats stats;
	/* set by the lws thread: live subscriptions that asked for the
	 * `preconfirmed` level; the committer builds those events only then */
	atomic_uint_fast64_t preconf_subs;
	/* set by the lws thread: which namespaces block subscriptions may
	 * want; the sealer renders those namespaces' transactions for the
	 * feed (app_block_render_txs) so the lws thread does not */
	struct app_feed_interest interest;
	pthread_t thread;
	int started;
	/* committer-thread state */
	uint64_t next_seq, next_group, open_slot;
	uint64_t seal_next_seq; /* first seq of the next block handed to the sealer */
	/* the sealer thread: builds and signs blocks off the commit path */
	struct app_queue seal_jobs;
	pthread_t seal_thread;
	int seal_started;
	uint64_t seal_height;	/* sealer: height of the next block */
	uint8_t seal_parent[32]; /* sealer: hash of the previous block */
	pthread_mutex_t sealed_mu;
	struct app_block **sealed; /* built, waiting for the committer to store */
	size_t sealed_n, sealed_cap;
	struct app_store *ckpt_store; /* the checkpointer thread's connection */
	pthread_t ckpt_thread;
	int ckpt_started;
	pthread_mutex_t ckpt_mu;
	pthread_cond_t ckpt_cv;
	int ckpt_stop;
	struct app_tx *open_txs; /* transactions of the open slot, seq order */
	size_t open_n, open_cap;
	uint64_t txs_pruned_below; /* retention: payloads of blocks below are gone */
	struct app_avail avail;
	struct app_l1 l1;
	struct app_rights *rights; /* NULL when rights.enabled is 0 */
	struct app_prop *prop; /* proposer-ordered slots, committer thread only */
	/* Pipelined durability (storage.sync_pipeline, committer.c): what a
	 * COMMIT owes the world waits in `held` until mz-sync's fsync covers
	 * it. Tickets count COMMITs; all under sync_mu. */
	pthread_t sync_thread;
	int sync_started;
	pthread_mutex_t sync_mu;
	pthread_cond_t sync_cv;
	uint64_t sync_req, sync_done;
	int sync_stop;
	atomic_int sync_failed; /* sticky: see wal_sync */
	struct app_held *held_head, *held_tail;
};

/*
 * Proposer-ordered slots (proposer.c, docs/RIGHTS.md). Committer side:
 * start loads grants and recovers held transactions; intake removes from a
 * popped batch the items it holds for a winner (made durable in the pending
 * table before it returns) and the winners' sub-blocks (decided after the
 * batch's own group); tick decides every (winner, slot) whose deadline has
 * passed and returns the wall-clock ms of the next deadline (0: none).
 */
struct app_prop;
/* A winner's mezz_submitSlotBlock, built by the lws thread (proposer_rpc.c),
 * owned by the committer once queued. Items in the winner's order. */
struct app_sb_item {
	uint64_t ref; /* pendingRef, or 0: the winner's own transaction */
	/* the winner's own atomic bundle: its legs are consecutive items, the
	 * first with bundle_n = the number of legs, the others bundle_leg >= 1
	 * (as in struct app_sub); at = the index in the request's txs */
	uint16_t bundle_n, bundle_leg;
	uint32_t at;
	uint64_t ns;
	char ns_name[64];
	uint8_t hash[32];
	uint8_t *data; /* own transactions: malloc'd */
	size_t len;
};
struct app_slot_block {
	uint8_t winner[20];
	uint64_t slot;
	size_t n;
	struct app_sb_item items[];
};
int app__prop_start(struct app_committer *c, char *errbuf, size_t errlen);
void app__prop_stop(struct app_committer *c);
size_t app__prop_intake(struct app_committer *c, struct app_sub *items, size_t n);
void app__prop_blocks(struct app_committer *c);
uint64_t app__prop_tick(struct app_committer *c);
void app__prop_slot_rolled(struct app_committer *c);
/* What a proposer decision adds to its group's COMMIT: pending rows to
 * delete and at most one miss row. */
struct app_prop_rider {
	const uint64_t *del_refs;
	size_t n_del;
	int has_miss;
	uint64_t miss_slot;
	uint8_t miss_winner[20];
	const char *miss_reason;
	uint64_t miss_txs;
	int has_decided; /* (dec_slot, dec_winner) decided in the open slot */
	uint64_t dec_slot;
	uint8_t dec_winner[20];
};
int app__prop_rider_insert(struct app_committer *c, const struct app_prop_rider *pr, char *err,
			   size_t errlen);
/* committer.c: commit s[0..n) as one group carrying pr (n may be 0). */
void app__commit_decision(struct app_committer *c, struct app_sub *s, size_t n,
			  const struct app_prop_rider *pr);
/* committer.c: hand answers and notices to the lws thread (waits while
 * the done queue is full; takes every json). */
void app__post_done(struct app_committer *c, struct app_done *d, size_t n);
/* committer.c: post one answer (taken) once everything COMMITted so far is
 * durable: at once when each COMMIT fsyncs, else behind the WAL fsync of
 * the commits before it (with storage.sync_pipeline), failed with -32005 if
 * that fsync fails. */
void app__answer_durable(struct app_committer *c, struct app_req *req, uint32_t slot, char *json);
/* proposer.c: the sequencer halted: answer every held request (-32005). */
void app__prop_halted(struct app_committer *c);
/* COMMIT the committer's open transaction and return once it is durable
 * (with storage.sync_pipeline, by an fsync of the WAL here and now). */
int app__commit_durable(struct app_committer *c, char *err, size_t errlen);
/* Frees a submitted sub-block (NULL-safe). */
void app__slot_block_free(struct app_slot_block *b);

/* Recovers unsealed transactions and starts the thread. */
int app_committer_start(struct app_committer *c, char *errbuf, size_t errlen);
/* Closes ingress, waits for the thread to commit what it took, joins. */
void app_committer_stop(struct app_committer *c);

/* avail.c: open the shard store and start mz-da (after the committer's
 * recovery has sealed every complete slot); stop it (joins). */
int app_avail_start(struct app_committer *c, char *errbuf, size_t errlen);
void app_avail_stop(struct app_committer *c);
/* Committer: hand a stored block to mz-da (takes a reference of its own). */
void app_avail_submit(struct app_committer *c, struct app_block *b);
/* What the blocks handed to mz-da and not yet taken hold (any thread). */
size_t app_avail_queued_bytes(struct app_committer *c);
/* Committer: records whose shards are durable, in height order (*out
 * malloc'd), and the shard-retention floor mz-da wants recorded (0: none). */
size_t app_avail_take(struct app_committer *c, struct app_da_rec **out, uint64_t *shard_floor);
/* Committer, after the COMMIT that recorded a shard floor: mz-da may now
 * delete the shards below it. */
void app_avail_pruned(struct app_committer *c, uint64_t floor);

/* l1stage.c: load the key, open the outbox and start mz-l1 (after the
 * committer started); stop it (joins). No-ops when L1 is off. */
int app_l1_start(struct app_committer *c, char *errbuf, size_t errlen);
void app_l1_stop(struct app_committer *c);
/* lws thread: queue a state root (the request is answered later by mz-l1);
 * APP_EFULL, APP_ESTOPPED. */
int app_l1_submit(struct app_committer *c, const struct app_l1_req *r);

/* rights.c: open data_dir/rights.db, rebuild the sales, and start the
 * engine: on mz-l1 when L1 is on (app_rights_pass from its loop), else on
 * its own thread "mz-rights". Start after app_committer_start, before
 * app_l1_start; stop after app_l1_stop. No-ops when rights are off. */
int app_rights_start(struct app_committer *c, char *errbuf, size_t errlen);
void app_rights_stop(struct app_committer *c);
/* lws thread: hand a request over (taken on success); APP_EFULL, APP_ESTOPPED. */
int app_rights_submit(struct app_committer *c, const struct app_rights_req *r);
/* mz-l1: handle requests until deadline_ns, then drive the sales clock,
 * with the L1 client and outbox of that thread. */
void app_rights_pass(struct app_committer *c, uint64_t deadline_ns, struct l1_rpc *rpc,
		     struct l1_outbox *ob);

/* Receipts as JSON (receipt.c). The caller frees the string; *len (when
 * not NULL) is its strlen. */
char *app_receipt_json(const struct seq_receipt *r, const char *ns_name,
		       const uint8_t pk[static 32], size_t *len);
/* Bytes app_receipt_json_put may write (its NUL included) for a proof of
 * path_len elements and a namespace name of ns_len bytes. */
size_t app_receipt_json_cap(size_t path_len, size_t ns_len);
/* Writes r's JSON at w, NUL-terminated; returns the NUL's address. */
char *app_receipt_json_put(char *w, const struct seq_receipt *r, const char *ns_name,
			   const uint8_t pk[static 32]);

/*
 * Batch receipts (mezz_sendTransactions, docs/API.md): each transaction new
 * in a group is answered with {"hash","seq","group","index"} (at most
 * APP_RECEIPT_BRIEF_CAP bytes, NUL included), and the request gets one
 * section per group it landed in: the group's signed fields and one
 * multiproof for all of the request's transactions in it.
 */
#define APP_RECEIPT_BRIEF_CAP 192
char *app_receipt_brief_put(char *w, const struct seq_receipt *r);
/* The section for leaves idx[0..k) (sorted) of the group h/sig/t; malloc'd,
 * *len its strlen. NULL when out of memory. */
char *app_batch_section_json(const struct seq_group_hdr *h, const uint8_t sig[static 64],
			     const struct seq_merkle_tree *t, const size_t *idx, size_t k,
			     size_t *len);

/*
 * One allocation holding the answers of a group (receipt.c): the committer
 * writes its receipts one after another into it instead of a malloc each,
 * and every app_done whose json lies in it holds a reference (d->buf). The
 * lws thread drops them as it sends, and the last one frees the buffer: a
 * group of 1,600 answers is one malloc and one free across the threads,
 * not 1,600 of each.
 */
struct app_answer_buf {
	atomic_size_t refs;
	size_t cap, used;
	char data[];
};
/* A buffer of cap bytes holding one reference (the builder's); NULL when
 * out of memory. */
struct app_answer_buf *app_answer_buf_new(size_t cap);
/* Room for n bytes at its end, with a reference taken for them; NULL when
 * it has no room left. */
char *app_answer_buf_take(struct app_answer_buf *b, size_t n);
/* The bytes from the last take are used up to end (exclusive). */
void app_answer_buf_used(struct app_answer_buf *b, const char *end);
void app_answer_buf_put(struct app_answer_buf *b); /* NULL-safe */
/* Frees an answer: drops buf's reference when it lies in buf, else frees json. */
void app_answer_free(char *json, struct app_answer_buf *buf);
/* app_answer_free of d's answer; json and buf become NULL. */
void app_done_json_free(struct app_done *d);
/* Rebuild the receipt of a stored transaction (proof from its group). */
int app_receipt_load(struct app_store *s, const struct app_tx *tx, struct seq_receipt *r);
/* fastrpc.c: the length of the UTF-8 sequence at p (1..4, within avail),
 * 0 when it is not RFC 3629 UTF-8 or is cut off; 1 when all of p[0..n) is
 * UTF-8, else 0. */
size_t app_utf8_len(const unsigned char *p, size_t avail);
int app_utf8_valid(const unsigned char *p, size_t n);
/* Error object JSON: {"code":c,"message":"..."} (message escaped). */
char *app_error_json(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Rate-limit error object: {"code":c,"message":"...","data":{"retryAfterMs":N,"limit":"..."}}. */
char *app_error_data_json(int code, uint64_t retry_after_ms, const char *limit);

/* Fault hooks, compiled in only for test builds (see fault.c). */
#ifdef MEZZ_FAULT_HOOKS
int app_fault_install(void);
int app_fault_store_opened(struct app_store *s);
void app_fault_loop_point(void); /* lws loop: stalls while asked to */
void app_fault_seal_point(void); /* sealer thread: stalls while asked to */
void app_fault_sync_point(void); /* mz-sync: stalls while asked to */
void app_fault_da_point(void);	 /* mz-da, before coding a block: likewise */
void app_fault_da_durable(uint64_t height); /* mz-da, shards durable, record not queued */
void app_fault_da_store(struct da_store *s); /* mz-da's store: stall mid-put */
/* mz-sync's own fsync of the WAL counts as one of SQLite's: -EIO past the limit */
int app_fault_fsync(void);
/* A fan-out copy's write (fanout.c): len cut to MEZZ_FAULT_FANOUT_WRITE_MAX bytes */
size_t app_fault_fanout_cap(size_t len);
/* auth.c's re-read of the auth version: fails while MEZZ_FAULT_AUTH_READ_FILE exists */
int app_fault_auth_read(void);
#define APP_FAULT_AUTH_READ() app_fault_auth_read()
#define APP_FAULT_POINT(name) app_fault_##name##_point()
#define APP_FAULT_FSYNC() app_fault_fsync()
#define APP_FAULT_FANOUT_CAP(len) app_fault_fanout_cap(len)
#define APP_FAULT_DA_DURABLE(height) app_fault_da_durable(height)
#define APP_FAULT_DA_STORE(store) app_fault_da_store(store)
#else
#define APP_FAULT_AUTH_READ() 0
#define APP_FAULT_POINT(name) ((void)0)
#define APP_FAULT_FSYNC() 0
#define APP_FAULT_FANOUT_CAP(len) (len)
#define APP_FAULT_DA_DURABLE(height) ((void)0)
#define APP_FAULT_DA_STORE(store) ((void)0)
#endif

#endif /* MEZZ_DAEMON_H */
