/*
 * app.h - the appliance: config, storage, identity, tenants and keys, the
 * committer thread, the lws server, the block feed, and logging.
 *
 * Threads:
 *   - the lws thread owns every socket, the auth cache and the feed;
 *   - the committer thread owns the SQLite write connection and the
 *     sequencer state (next seq, open slot, chain tip).
 * They meet only in two bounded queues (struct app_queue): ingress
 * (lws -> committer) and completions (committer -> lws, followed by
 * lws_cancel_service()).
 *
 * Error space: 0 is success, negative is failure; -errno for system errors;
 * APP_E* in [-1499, -1400]. app_strerror() also names seq_, l1_ and SQLite
 * codes (SQLite codes are mapped to APP_ESQLITE with the text kept by the
 * caller's error buffer).
 */
#ifndef MEZZ_APP_H
#define MEZZ_APP_H

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define APP_ERRORS(X)                                                        \
	X(APP_EINVAL, -1401, "invalid argument")                             \
	X(APP_ENOMEM, -1402, "out of memory")                                \
	X(APP_ECONFIG, -1403, "invalid configuration")                       \
	X(APP_ESQLITE, -1404, "database error")                              \
	X(APP_EFULL, -1405, "queue full")                                    \
	X(APP_EHALTED, -1406, "sequencer halted after a storage failure")    \
	X(APP_ENOTFOUND, -1407, "not found")                                 \
	X(APP_EEXIST, -1408, "already exists")                               \
	X(APP_EKEYFILE, -1409, "identity key file is unreadable or malformed") \
	X(APP_ESTOPPED, -1410, "shutting down")                              \
	X(APP_ELOCKED, -1411, "a mezzanine daemon is running on this data directory")

enum {
#define APP_ERR_ENUM(name, code, msg) name = code,
	APP_ERRORS(APP_ERR_ENUM)
#undef APP_ERR_ENUM
};

/* Names any mezzanine error code (app_, seq_, l1_) or -errno. Never NULL. */
const char *app_strerror(int err);

/* ------------------------------------------------------------------ */
/* Logging: one line per event, "ts=... level=... msg=... key=value", to
 * stderr (journald). Only the appliance logs. */

enum app_log_level { APP_LOG_DEBUG, APP_LOG_INFO, APP_LOG_WARN, APP_LOG_ERROR };
void app_log_set_level(enum app_log_level lvl);
int app_log_level_parse(const char *s, enum app_log_level *out);
void app_log(enum app_log_level lvl, const char *msg, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
#define app_info(msg, ...) app_log(APP_LOG_INFO, msg, __VA_ARGS__)
#define app_warn(msg, ...) app_log(APP_LOG_WARN, msg, __VA_ARGS__)
#define app_error(msg, ...) app_log(APP_LOG_ERROR, msg, __VA_ARGS__)

/* Panics report file:line and abort. For invariants that must never fail. */
#define APP_PANIC(...) app__panic(__FILE__, __LINE__, __VA_ARGS__)
void app__panic(const char *file, int line, const char *fmt, ...)
	__attribute__((noreturn, format(printf, 3, 4)));

/* ------------------------------------------------------------------ */
/* Config: one table (config.c) drives parsing, defaults, bounds, the
 * commented default file and `mezz config check`. */

struct app_config {
	/* [server] */
	char listen_addr[64];
	int listen_port;
	long max_message_bytes;
	long max_tx_bytes;
	long max_batch_items;
	long ws_send_queue_bytes;
	long ws_sndbuf_bytes;
	/* [storage] */
	char data_dir[512];
	char da_dirs[4096]; /* comma-separated; see app_config_da_dirs */
	long tx_retention_blocks;
	long cache_mib;
	long sync_pipeline; /* committer.c: the WAL fsync on its own thread */
	/* [da] */
	long da_k, da_m;
	long da_retention_blocks;
	long da_queue_mib;
	/* [sequencer] */
	long slot_ms;
	long proposer_deadline_ms; /* a winner's sub-block is due this long before its slot ends */
	long group_max_txs;
	long group_linger_us;
	long background_nice;
	long network_cpu, commit_cpu; /* -1: not pinned (app_thread_pin) */
	long ingress_queue_max;
	/* [feed] */
	long feed_queue_max_blocks;
	long feed_cache_blocks;
	long feed_cache_mib;
	long feed_fanout_threads; /* 1..APP_FANOUT_MAX_THREADS */
	/* [log] */
	char log_level[16];
	/* operations: connection timeouts, TLS, limits, health (see docs/OPERATIONS.md) */
	long handshake_timeout_s;
	long idle_timeout_s;
	long ws_ping_s;
	char tls_cert[512];
	char tls_key[512];
	long limits_tenant_tx_per_s;
	long limits_tenant_bytes_per_s;
	long limits_ip_tx_per_s;
	long limits_ip_bytes_per_s;
	long limits_ip_max_connections;
	long limits_ip_table_entries;
	long limits_burst_ms;
	/* [l1] (empty rpc_urls: posting to L1 is off) */
	char l1_rpc_urls[1024];
	long l1_chain_id;
	char l1_inbox[64];
	char l1_keystore[512];
	char l1_keystore_password_file[512];
	long l1_post_interval_ms;
	long l1_max_blocks_per_batch;
	long l1_confirmations;
	long l1_bump_after_blocks;
	long l1_max_fee_gwei;
	long l1_timeout_ms;
	char l1_ca_file[512];
	/* [rights] execution-ticket sales (docs/RIGHTS.md, "In the daemon") */
	long rights_enabled;
	long rights_window_slots;
	long rights_close_lead;
	long rights_improve_lead;
	long rights_ahead_slots;
	long rights_price_gwei;
	long rights_floor_gwei;
	long rights_cap;
	long rights_target;
	long rights_burn_bps;
	long rights_l1_block_ms;
};

/* One entry of the config table, exposed for tests and `mezz config check`. */
enum app_cfg_type { APP_CFG_INT, APP_CFG_STR, APP_CFG_LISTEN, APP_CFG_DIRS };
struct app_cfg_entry {
	const char *section;
	const char *name;
	enum app_cfg_type type;
	long min, max;      /* APP_CFG_INT bounds; APP_CFG_STR max length */
	const char *dflt;   /* default, as text */
	size_t offset;      /* into struct app_config */
	const char *help;   /* one line, for errors and docs */
};
extern const struct app_cfg_entry app_cfg_table[];
extern const size_t app_cfg_table_len;

/* Defaults from the table. */
void app_config_defaults(struct app_config *c);
/*
 * Load a file over the defaults. Every error (unknown key, bad value, out of
 * bounds, syntax) is appended to err as "FILE:LINE: message\n" (up to
 * errlen bytes); returns the number of errors (0 on success) or -errno if
 * the file cannot be read to its end: -EISDIR for a directory, -EINVAL for
 * anything else that is not a regular file, the read's errno (or -EIO).
 */
int app_config_load(struct app_config *c, const char *path, char *err, size_t errlen);
/* Apply "section.key=value" (command-line --set). 0 or APP_ECONFIG with err. */
int app_config_set(struct app_config *c, const char *assignment, char *err, size_t errlen);
/*
 * Rules across keys (da.k + da.m <= 256), checked once every file and --set
 * has been applied. 0, or APP_ECONFIG with one line per broken rule in err.
 */
int app_config_validate(const struct app_config *c, char *err, size_t errlen);

#define APP_DA_MAX_DIRS 256
/*
 * The shard directories: storage.da_dirs split at commas, or
 * "<data_dir>/shards" when it is empty. Fills dirs[0..n) with malloc'd
 * strings (free with app_config_dirs_free); APP_ENOMEM or APP_ECONFIG.
 */
int app_config_da_dirs(const struct app_config *c, char ***dirs, size_t *n);
void app_config_dirs_free(char **dirs, size_t n);

/* ------------------------------------------------------------------ */
/* Identity: the ed25519 key (data_dir/identity.key, 0600, created on first
 * start) and the API-key hashing secret (data_dir/apikey.secret, 0600). */

struct app_identity {
	uint8_t sk[64];
	uint8_t pk[32];
	uint8_t key_secret[32]; /* BLAKE2b key for hashing API keys */
};
/* Loads both files, creating them if absent (create = 1). */
int app_identity_load(struct app_identity *id, const char *data_dir, int create);
/* The data directory's lock (data_dir/mezzanine.lock, an flock held for the
 * process's life): 0 with *fd (keep it open; closing releases it),
 * APP_ELOCKED with *pid the holder's (0 if unknown) when another process
 * has it, or -errno. The daemon takes it at start, so that two daemons
 * never sequence from one database under one key; the CLI's offline
 * commands take it to know the daemon is stopped. */
int app_data_dir_lock(const char *data_dir, int *fd, long *pid);
/* Keyed BLAKE2b-256 of an API key. */
void app_apikey_hash(uint8_t out[static 32], const struct app_identity *id,
		     const char *key, size_t len);

/* ------------------------------------------------------------------ */
/* Storage (store.c): SQLite, WAL, synchronous=FULL. */

struct app_store;
struct sqlite3_stmt;

/* writebehind.c: the name of an SQLite VFS ("unix" underneath) that hands
 * each MiB written to a database or WAL file to the kernel's write-back as
 * it goes, so that the fsync after it does not send it all at once; NULL if
 * it could not be registered (then use the default). What it hands off is
 * counted in mezz_storage_writebehind_bytes_total. */
const char *app_writebehind_vfs(void);

/* Opens (creating the schema if needed). readonly = 1 for the lws thread's
 * read connection. errbuf receives SQLite's message on failure. */
int app_store_open(struct app_store **out, const char *data_dir, int readonly,
		   char *errbuf, size_t errlen);
void app_store_close(struct app_store *s);
/* Checkpointing: the committer's connection turns automatic checkpoints off
 * (they would run inside its COMMIT, on the preconfirmation path) and a
 * separate connection runs PASSIVE checkpoints, which never block the
 * writer. *wal_frames and *done_frames report the WAL's size and progress. */
int app_store_set_autocheckpoint(struct app_store *s, int pages);
int app_store_set_cache(struct app_store *s, long mib);
/* With automatic checkpoints off: WAL frames after the last commit (any thread). */
int app_store_wal_frames(struct app_store *s);
int app_store_checkpoint(struct app_store *s, int *wal_frames, int *done_frames);
/* With automatic checkpoints off: read the WAL ahead of the writer into the
 * page cache, so that a commit never waits for a read of a page it only
 * partly overwrites (store.c). Cheap when nothing is missing; call it after
 * each commit, off the answer path. */
void app_store_wal_prefetch(struct app_store *s);
/* Pipelined durability (committer.c): this connection's COMMITs stop
 * fsyncing (synchronous=NORMAL); app_store_wal_sync (any thread) makes every
 * commit that returned before it durable. 0 or -errno. */
int app_store_set_wal_sync_external(struct app_store *s, char *errbuf, size_t errlen);
int app_store_wal_sync(struct app_store *s);
/* fdatasync of the WAL file by name (no descriptor needed; 0 if none) */
int app_store_wal_sync_file(struct app_store *s);
/* The underlying sqlite3 handle, for modules that keep their own statements. */
struct sqlite3 *app_store_db(struct app_store *s);
/* Prepares (persistent) `head` followed by `rows` copies of `tuple`, comma
 * separated: one INSERT carrying several rows. SQLite's result code. */
int app_sql_prepare_rows(struct sqlite3 *db, const char *head, const char *tuple, int rows,
			 struct sqlite3_stmt **st);
/* The first column of the first row of sql (a PRAGMA, a count), or dflt when
 * it cannot be prepared or returns no row. */
int64_t app_sql_int(struct sqlite3 *db, const char *sql, int64_t dflt);

/* Tenants, namespaces and API keys (used by the CLI; bumps auth_version). */
struct app_namespace {
	uint64_t chain_id;
	char name[64];
	int64_t tenant_id;
	int ingress_public;
	int feed_public;
};
int app_store_tenant_create(struct app_store *s, const char *name, int64_t *id);
int app_store_tenant_find(struct app_store *s, const char *name, int64_t *id);
int app_store_namespace_create(struct app_store *s, const struct app_namespace *ns);
int app_store_key_create(struct app_store *s, int64_t tenant_id,
			 const uint8_t hash[static 32], const char *prefix, int64_t *id);
int app_store_key_revoke(struct app_store *s, int64_t key_id);
/* Monotonic counter bumped by every tenant, namespace or key change. */
int app_store_auth_version(struct app_store *s, int64_t *version);
/*
 * The cheap "auth may have changed" signal (store.c says how): the shared
 * counter data_dir/auth.seq, created on first use. APP_ENOTFOUND when it
 * cannot be made or mapped (the caller then reads auth_version). The
 * functions above move it when they run in autocommit (every caller does);
 * a writer that changes these tables in its own transaction, or outside
 * them, calls app_store_auth_changed after its COMMIT.
 */
int app_store_auth_seq(struct app_store *s, uint64_t *seq);
void app_store_auth_changed(struct app_store *s);

/* ------------------------------------------------------------------ */
/* Bounded multi-producer queue of fixed-size items with a condvar. */

struct app_queue {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	size_t item_size, cap, head, len;
	uint8_t *buf;
	int closed;
};
int app_queue_init(struct app_queue *q, size_t item_size, size_t cap);
void app_queue_destroy(struct app_queue *q);
/* Push all n items or none: APP_EFULL if they do not fit, APP_ESTOPPED if closed. */
int app_queue_push(struct app_queue *q, const void *items, size_t n);
/* Pop up to max items; waits until at least one item is there, the queue is
 * closed, or deadline_ns (CLOCK_MONOTONIC, 0 = no wait) passes.
 * Returns the count popped (0 on timeout or closed-and-empty). */
size_t app_queue_pop(struct app_queue *q, void *items, size_t max, uint64_t deadline_ns);
size_t app_queue_len(struct app_queue *q);
void app_queue_close(struct app_queue *q);

uint64_t app_now_ns(void);	/* CLOCK_MONOTONIC */
uint64_t app_wall_ms(void);	/* CLOCK_REALTIME */

/* Lower the calling thread's CPU priority to `nice` (sequencer.background_nice;
 * <= 0, or a thread already at `nice` or lower priority, is left as it is).
 * 0, or -errno after logging thread_priority_unchanged. */
int app_thread_background(const char *name, int nice);

/* Pin thread t (named name, for messages) to CPU cpu (sequencer.network_cpu,
 * sequencer.commit_cpu; < 0 leaves it alone). 0, or -errno with errbuf
 * saying which CPU and which ones the process may use. */
int app_thread_pin(pthread_t t, const char *name, long cpu, char *errbuf, size_t errlen);


/* ------------------------------------------------------------------ */
/* Storage used by the committer and the readers. */

#include "sequencer/seq.h"

#define MEZZ_VERSION "0.1.0"

/* A transaction as stored. data is owned by whoever holds the struct. */
struct app_tx {
	uint64_t seq;
	uint64_t ns;
	uint64_t group_id;
	uint64_t slot;
	uint8_t hash[32];
	uint8_t *data;
	size_t len;
};

/* The tip of storage, read at start. has_block = 0 before the first seal. */
struct app_tip {
	uint64_t next_seq;
	uint64_t next_group;
	int has_block;
	struct seq_block_hdr last;
	uint8_t last_hash[32];
};
int app_store_tip(struct app_store *s, struct app_tip *tip);

/*
 * The (hash, ns) -> seq index (txindex.c): data_dir/txindex.db plus, in
 * memory, every transaction not merged into it yet. One per process.
 *   app_txindex_open    opens (creates) txindex.db, rebuilds it if it does
 *                       not match mezzanine.db, and indexes every stored
 *                       transaction it lacks; call before anything writes
 *                       transactions. app_txindex_next: the seq the first
 *                       app_txindex_add must start with.
 *   app_txindex_start   runs mz-index, which merges transactions below
 *                       *durable_seq into txindex.db in sorted batches, at
 *                       CPU priority `nice` (app_thread_background);
 *                       app_txindex_stop stops it (nothing is lost: the next
 *                       open catches up from mezzanine.db).
 *   app_txindex_add     the committer, after a COMMIT: its new transactions,
 *                       contiguous seqs from app_txindex_next on.
 *   app_txindex_prune   the committer, before BEGIN only: drops what
 *                       txindex.db holds now; waits while mz-index is
 *                       XI_MAX_LIVE transactions behind.
 *   app_txindex_find    the memory part of a lookup (app_store_tx_find does
 *                       both); 1 and *seq when found in the map, and
 *                       *maybe_db 0 when the filter (txindex.c) rules
 *                       txindex.db out, so that lookup can stop here.
 *   app_txindex_prefetch  a hint before a run of lookups (the committer's,
 *                       one per item of a group): starts loading the cache
 *                       lines they will read. Changes nothing.
 */
struct app_txindex;
/*
 * The hash filter's snapshot (txindex.c), data_dir/txindex.filter: written
 * by app_txindex_close when the filter is complete, taken (and deleted) by
 * the next app_txindex_open when it covers exactly the stored transactions.
 * app_txindex_snapshot_check: a file's header and its digest over the
 * header and bits; 0 and the fields, or APP_EINVAL and *why. (The fuzz
 * target's entry; app_txindex_open also checks the fields against the
 * database.)
 */
#define APP_XF_SNAPSHOT_HDR 120
struct app_xf_snapshot {
	uint64_t nbits, end; /* bit count; every seq below end is in the filter */
	uint8_t first_hash[32], last_hash[32]; /* of seq 1 and seq end - 1 */
};
int app_txindex_snapshot_check(const uint8_t *hdr, size_t hdr_len, const void *bits,
			       size_t bits_len, struct app_xf_snapshot *out, const char **why);
/*
 * The hash filter's sizing (txindex.c): at least min_bits (a power of two,
 * 512 to 2^31), with room for slack_rows more rows than stored whenever it
 * is sized (at open, and as it grows), and a failed growth tried again
 * after retry_rows more rows. For tests, whose filters must fill in
 * thousands of rows, not millions; call before app_txindex_open. 0, 0, 0
 * restores the defaults (8 MiB, 3M rows, 1M rows).
 */
void app_txindex_filter_sizing(uint64_t min_bits, uint64_t slack_rows, uint64_t retry_rows);
/* Tests: hold (1) makes a growing filter's thread wait before it reads
 * txindex.db, so that adds land while it grows; 1 once it waits there. 0
 * lets it go. */
int app_txindex_filter_hold(int hold);
/* Tests: the next growth of the filter fails where it reads txindex.db, as
 * a read error there would. */
void app_txindex_filter_fail_next(void);
/*
 * app_sort_by_be64 (txindex.c, mz-index's merge order): sorts n records of
 * `size` bytes (at most APP_SORT_RECORD_MAX) in place by the big-endian
 * 64-bit key at byte key_at of each, stably: a radix sort, O(n) whatever
 * the keys. scratch holds 2 * n pairs.
 */
#define APP_SORT_RECORD_MAX 64
struct app_sort_pair {
	uint64_t k, i;
};
void app_sort_by_be64(void *base, size_t n, size_t size, size_t key_at,
		      struct app_sort_pair *scratch);
/* Transactions the map holds unmerged before app_txindex_prune waits. */
#define APP_TXINDEX_MAX_LIVE (1u << 20)
#define APP_TXINDEX_PART_SHIFT 21 /* txindex.db: a partition per 2^21 seqs (txindex.c) */
#define APP_FANOUT_MAX_THREADS 8 /* feed.fanout_threads' bound */
int app_txindex_open(struct app_txindex **out, const char *data_dir, char *errbuf,
		     size_t errlen);
uint64_t app_txindex_next(const struct app_txindex *x);
int app_txindex_start(struct app_txindex *x, const atomic_uint_fast64_t *durable_seq, int nice);
void app_txindex_stop(struct app_txindex *x);
void app_txindex_close(struct app_txindex *x);
const char *app_txindex_path(const struct app_txindex *x);
void app_txindex_add(struct app_txindex *x, const struct app_tx *txs, size_t m);
void app_txindex_prune(struct app_txindex *x);
int app_txindex_find(struct app_txindex *x, uint64_t ns, const uint8_t hash[static 32],
		     uint64_t *seq, int *maybe_db);
void app_txindex_prefetch(struct app_txindex *x, const uint8_t *const *hashes, size_t n);

/* Lookups by hash on this connection go through x (ATTACHed as "xi"). */
int app_store_attach_txindex(struct app_store *s, struct app_txindex *x, char *errbuf,
			     size_t errlen);
/* Look up a stored transaction by (ns, hash). APP_ENOTFOUND if absent,
 * APP_EINVAL without app_store_attach_txindex. data is not loaded (NULL).
 * ns == 0 matches any namespace (the lowest seq). */
int app_store_tx_find(struct app_store *s, uint64_t ns, const uint8_t hash[static 32],
		      struct app_tx *tx);
/* Is (ns, hash) stored? 1 yes, 0 no, or an error code. */
int app_store_tx_known(struct app_store *s, uint64_t ns, const uint8_t hash[static 32]);
/* app_txindex_prefetch for the lookups of these n hashes, when attached. */
void app_store_tx_prefetch(struct app_store *s, const uint8_t *const *hashes, size_t n);
/* Load a group header, signature and its tx leaves (malloc'd, count entries). */
int app_store_group_load(struct app_store *s, uint64_t group_id, struct seq_group_hdr *h,
			 uint8_t sig[static 64], uint8_t (**leaves)[32]);
/*
 * A group is written as one SQLite transaction:
 *   app_store_begin, app_store_tx_insert for each transaction,
 *   app_store_group_insert, app_store_commit.
 * The COMMIT is the fsync (synchronous=FULL). app_store_tx_insert does not
 * check (ns, hash): the caller asks app_store_tx_known first and checks the
 * rows of its own open transaction itself. A failure leaves the transaction
 * to be rolled back with app_store_rollback. errbuf receives SQLite's
 * message.
 */
int app_store_begin(struct app_store *s, char *errbuf, size_t errlen);
int app_store_tx_insert(struct app_store *s, const struct app_tx *t, char *errbuf,
			size_t errlen);
/* As app_store_tx_insert for t[0..n), in order: fewer statements for a run. */
int app_store_txs_insert(struct app_store *s, const struct app_tx *t, size_t n, char *errbuf,
			 size_t errlen);
/* A savepoint inside the open transaction (one at a time): release keeps
 * what was inserted since, rollback undoes it. */
int app_store_savepoint(struct app_store *s, char *errbuf, size_t errlen);
int app_store_savepoint_release(struct app_store *s, char *errbuf, size_t errlen);
int app_store_savepoint_rollback(struct app_store *s, char *errbuf, size_t errlen);
int app_store_group_insert(struct app_store *s, const struct seq_group *g, char *errbuf,
			   size_t errlen);
int app_store_commit(struct app_store *s, char *errbuf, size_t errlen);
void app_store_rollback(struct app_store *s);
/* Transactions with seq in [first, last], in seq order, data loaded
 * (malloc'd per tx). *out is a malloc'd array of *n entries. */
int app_store_txs_range(struct app_store *s, uint64_t first, uint64_t last,
			struct app_tx **out, size_t *n);
void app_txs_free(struct app_tx *txs, size_t n);
/* Store a sealed block (header, signature, namespace table): _insert inside
 * a transaction begun with app_store_begin, _put as its own transaction. */
int app_store_block_insert(struct app_store *s, const struct seq_block_hdr *h,
			   const uint8_t sig[static 64], const struct seq_block_ns *ns,
			   size_t ns_count, char *errbuf, size_t errlen);
int app_store_block_put(struct app_store *s, const struct seq_block_hdr *h,
			const uint8_t sig[static 64], const struct seq_block_ns *ns,
			size_t ns_count, char *errbuf, size_t errlen);
int app_store_block_get(struct app_store *s, uint64_t height, struct seq_block_hdr *h,
			uint8_t sig[static 64], struct seq_block_ns **ns, size_t *ns_count);
/* Height of the highest sealed block; APP_ENOTFOUND if none. */
int app_store_block_tip(struct app_store *s, uint64_t *height);

/*
 * Data-availability commitments: one row per available block, the encoded
 * commitment record (da.h) and the appliance's ed25519 signature over it.
 * Insert runs inside a transaction begun with app_store_begin (the committer
 * adds it to the next group's COMMIT). Get copies exactly record_len bytes;
 * APP_ENOTFOUND if the block is not available (yet), APP_ESQLITE if the row
 * has another length. Tip: the highest available height, APP_ENOTFOUND if none.
 */
int app_store_da_insert(struct app_store *s, uint64_t height, const uint8_t *record,
			size_t record_len, const uint8_t sig[static 64], char *errbuf,
			size_t errlen);
int app_store_da_get(struct app_store *s, uint64_t height, uint8_t *record, size_t record_len,
		     uint8_t sig[static 64]);
int app_store_da_tip(struct app_store *s, uint64_t *height);

/* ------------------------------------------------------------------ */
/* Operator commands on data availability (cli_da.c), for `mezz`. Each
 * returns the process exit code and prints its own results. */
int app_cli_da(const struct app_config *cfg, int argc, char **argv);
/* `mezz l1 retry` (cli_l1.c): failed batches queued again, daemon stopped. */
int app_cli_l1(const struct app_config *cfg, int argc, char **argv);
/* dautil.c: a transaction's hash as the DA proofs use it (Keccak-256; a
 * da_hash_fn), and a code for (k, m) from a small cache of n slots (oldest
 * evicted; blocks coded under an older config keep their own k and m);
 * NULL if it cannot be made. Free the slots with da_code_free. */
struct da_code;
void app_tx_hash(uint8_t out[32], const uint8_t *data, size_t len, void *arg);
struct da_code *app_da_code_cached(struct da_code **codes, size_t n, unsigned k, unsigned m);
/* dautil.c: the configured shard directories opened (da_store_open_why);
 * on failure errbuf says which directory and why. */
struct da_store;
int app_da_store_open(const struct app_config *cfg, struct da_store **out, char *errbuf,
		      size_t errlen);
int app_cli_verify_shard(const char *path, const uint8_t pk[static 32]);
int app_cli_verify_nsproof(const char *path, const uint8_t pk[static 32]);

/* An integer from the meta table; APP_ENOTFOUND if absent. */
int app_store_meta_u64(struct app_store *s, const char *key, uint64_t *v);
/* Inside a transaction (app_store_begin): set a meta integer. */
int app_store_meta_set_u64(struct app_store *s, const char *key, uint64_t v, char *errbuf,
			   size_t errlen);
/*
 * Retention, inside a transaction: drop the payload bytes of seqs
 * [first_seq, last_seq] (rows, hashes and receipts stay, so resubmissions
 * are still recognised) and record that blocks below `below` are pruned.
 */
int app_store_prune_payloads(struct app_store *s, uint64_t first_seq, uint64_t last_seq,
			     uint64_t below, char *errbuf, size_t errlen);
/* 1 if the database still holds the transactions of the block at height
 * (retention has not pruned them), else 0: read the block from its shards. */
int app_store_block_has_txs(struct app_store *s, uint64_t height);
int app_store_namespaces(struct app_store *s, struct app_namespace **out, size_t *n);
/* Tenant owning a key hash, if the key exists and is not revoked. */
int app_store_key_lookup(struct app_store *s, const uint8_t hash[static 32],
			 int64_t *tenant_id);

/* Sequencing rights: open data_dir/rights.db (WAL, synchronous=FULL),
 * creating its schema (store.c documents the tables). The connection
 * belongs to the sales engine; sqlite3_close it. */
int app_store_rights_open(struct sqlite3 **db, const char *data_dir, char *errbuf,
			  size_t errlen);
/* Hash (and height) of the first sealed superblock with slot >= slot;
 * APP_ENOTFOUND while there is none. */
int app_store_block_hash_from_slot(struct app_store *s, uint64_t slot, uint8_t out[static 32],
				   uint64_t *height);

/* ------------------------------------------------------------------ */
/* Proposer-ordered slots (proposer.c, docs/RIGHTS.md). */

/*
 * Grants `winner` (an Ethereum address) the right to order `rollups`
 * (namespace chain ids) in every slot of [from_slot, to_slot]. One SQLite
 * transaction on s (a writable store: the daemon's caller's own connection or
 * the CLI's); a running daemon picks the grant up at its next slot boundary,
 * so grant slots in the future. Errors: APP_EINVAL (from > to, n == 0 or
 * over 256, a zero address, a rollup repeated), APP_ENOTFOUND (a rollup is
 * not a namespace), APP_EEXIST (a rollup already has a grant overlapping
 * the range: nothing is inserted), APP_ESQLITE.
 */
int app_rights_grant(struct app_store *s, uint64_t from_slot, uint64_t to_slot,
		     const uint64_t *rollups, size_t n, const uint8_t winner[static 20]);

/* `mezz rights ...` (cli in proposer.c); returns the exit code. */
int app_cli_rights(const struct app_config *cfg, int argc, char **argv);

#endif /* MEZZ_APP_H */
