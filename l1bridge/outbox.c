/*
 * outbox.c - the persisted poster: batches, state roots, ticket purchases
 * and sale settlements to the Inbox.
 *
 * A job is one contract call (a batch, a state root, a postPurchases of one
 * sale or a settleSale) whose calldata is fixed when it is queued. Jobs are
 * signed in queue order, one past the mined ones at a time, so a sale's
 * settlement queued after its purchases is mined after them. Only a batch
 * halts the outbox when it reverts; the other kinds go to FAILED and the
 * outbox moves on. Job lifecycle (one row in `jobs`):
 *
 *             sign_job                send_job              mine_job
 *   QUEUED -----------------> SIGNED -----------> SENT -----------------> MINED
 *     |  (nonce, fees; tx       ^  (eth_send-      |  (a receipt of any    |
 *     |   journaled, COMMIT)    |   RawTx)         |   of its txs)         | confirm_job
 *     |                         +---- bump_job ----+                       v
 *     |                    (same nonce, fees +12.5%,            POSTED (feed: posted)
 *     |                     journaled, COMMIT)                          |
 *     |                                                                 | finalize_job
 *     | land_elsewhere (WrongIndex and batchHash(i)                     v
 *     +--- equals ours: it landed, found by its log) ---> MINED   FINALIZED (feed: finalized)
 *
 *   MINED/POSTED --reorg_job (its block is no longer canonical)--> SIGNED
 *       (the mined transaction's raw bytes are sent again: same nonce, same
 *        index; the contract rejects anything else. land_elsewhere journals
 *        the bytes that landed, asked of the node; without them a reorg
 *        halts: FAILED)
 *   SENT --fail_job (receipt with status 0, or a revert at estimation
 *       that is not WrongIndex-already-landed)--> FAILED
 *   SENT --requeue_if_spent (its nonce spent at a settled block by a
 *       transaction the journal does not hold)--> QUEUED (signed again
 *       with the next free nonce)
 *
 *   transition            function          asserts (state before)
 *   QUEUED -> SIGNED      sign_job          QUEUED, nothing else in flight
 *   SIGNED -> SENT        send_job          SIGNED
 *   SENT -> SIGNED        bump_job          SENT
 *   SENT -> MINED         mine_job          SIGNED or SENT
 *   QUEUED -> MINED       land_elsewhere    QUEUED (a batch)
 *   MINED -> POSTED       confirm_job       MINED
 *   POSTED -> FINALIZED   finalize_job      POSTED
 *   MINED|POSTED -> SIGNED  reorg_job       MINED or POSTED
 *   SENT -> QUEUED        requeue_if_spent  SENT
 *   * -> FAILED           fail_job          not FINALIZED
 *
 * Invariants, all from the journal being written before any send:
 *   - a nonce is allocated once (meta next_nonce, in the same COMMIT as the
 *     first transaction that uses it) and every transaction of a job shares
 *     the job's nonce: nonces are never reused across jobs nor skipped
 *     (a job requeued because a foreign transaction spent its nonce gets
 *     a new one; its old transactions can never be mined);
 *   - a crash after signing re-sends the journaled bytes; a crash after
 *     sending finds the receipt by the journaled hashes;
 *   - at most one job is signed at a time past the mined ones, so a batch is
 *     built and signed only once the previous one is mined, and the
 *     contract's expectedIndex makes any second landing of a batch revert.
 */
#include <assert.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "l1bridge/internal.h"
#include "l1bridge/l1.h"
#include "sequencer/seq.h"

#define KIND_BATCH 1
#define KIND_STATE_ROOT 2
#define KIND_PURCHASES 3
#define KIND_SETTLEMENT 4

const char *const l1_job_state_names[L1_JOB_STATES] = {
	"queued", "signed", "sent", "mined", "posted", "finalized", "failed"};
const char *const l1_outbox_status_names[] = {"syncing",     "idle",   "inflight",
					      "fee_capped", "rpc_down", "halted"};

struct l1_outbox {
	sqlite3 *db;
	struct l1_outbox_opts o;
	uint8_t key[32];
	uint8_t addr[20];
	int synced;
	struct l1_outbox_info info;
};

static const char schema[] =
	"PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=5000;"
	"CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS jobs(id INTEGER PRIMARY KEY, kind INTEGER NOT NULL,"
	"  state INTEGER NOT NULL, batch_index INTEGER, from_h INTEGER, to_h INTEGER,"
	"  da_root BLOB, ns_ids BLOB, ns_roots BLOB, rollup INTEGER, l2_block INTEGER,"
	"  state_root BLOB, proof_kind INTEGER, locator BLOB, calldata BLOB NOT NULL,"
	"  nonce INTEGER, tx_hash BLOB, sent_block INTEGER, block_number INTEGER,"
	"  block_hash BLOB, error TEXT, created_ms INTEGER NOT NULL);"
	"CREATE UNIQUE INDEX IF NOT EXISTS jobs_batch ON jobs(batch_index) WHERE kind = 1;"
	"CREATE INDEX IF NOT EXISTS jobs_to ON jobs(to_h) WHERE kind = 1;"
	/* the jobs still moving are few; the journal keeps every job */
	"CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);"
	"CREATE UNIQUE INDEX IF NOT EXISTS jobs_sr ON jobs(rollup, l2_block) WHERE kind = 2;"
	"CREATE TABLE IF NOT EXISTS txs(hash BLOB PRIMARY KEY, job INTEGER NOT NULL,"
	"  nonce INTEGER NOT NULL, tip INTEGER NOT NULL, max_fee INTEGER NOT NULL,"
	"  gas INTEGER NOT NULL, raw BLOB NOT NULL, created_ms INTEGER NOT NULL);"
	"CREATE INDEX IF NOT EXISTS txs_job ON txs(job);";

/* Added with ticket sales: databases written before get the columns on open. */
static const char schema_sales[] =
	"ALTER TABLE jobs ADD COLUMN sale_id INTEGER;"
	"ALTER TABLE jobs ADD COLUMN n_items INTEGER;";
static const char schema_sales_index[] =
	"CREATE INDEX IF NOT EXISTS jobs_sale ON jobs(sale_id, id) WHERE kind = 3;"
	"CREATE UNIQUE INDEX IF NOT EXISTS jobs_settle ON jobs(sale_id) WHERE kind = 4;";

static uint64_t wall_ms(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

/* ------------------------------------------------------------------ */
/* Batch roots                                                          */

int l1_batch_root(uint8_t out[static 32], const uint64_t *heights, const uint8_t (*values)[32],
		  size_t n)
{
	uint8_t (*lv)[32], buf[65];
	size_t m = n;

	if (!n || !heights || !values)
		return L1_EINVAL;
	lv = malloc(n * 32);
	if (!lv)
		return L1_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		buf[0] = 0x00;
		for (int b = 0; b < 8; b++)
			buf[1 + b] = (uint8_t)(heights[i] >> (56 - 8 * b));
		memcpy(buf + 9, values[i], 32);
		l1_keccak256(lv[i], buf, 41);
	}
	while (m > 1) {
		size_t k = 0;

		for (size_t i = 0; i + 1 < m; i += 2) {
			buf[0] = 0x01;
			memcpy(buf + 1, lv[i], 32);
			memcpy(buf + 33, lv[i + 1], 32);
			l1_keccak256(lv[k++], buf, 65);
		}
		if (m & 1)
			memmove(lv[k++], lv[m - 1], 32);
		m = k;
	}
	memcpy(out, lv[0], 32);
	free(lv);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Database helpers                                                     */

static sqlite3_stmt *prep(struct l1_outbox *ob, const char *sql)
{
	sqlite3_stmt *st = NULL;

	if (sqlite3_prepare_v2(ob->db, sql, -1, &st, NULL) != SQLITE_OK) {
		snprintf(ob->info.last_error, sizeof(ob->info.last_error), "sqlite: %s",
			 sqlite3_errmsg(ob->db));
		return NULL;
	}
	return st;
}

static int exec(struct l1_outbox *ob, const char *sql)
{
	if (sqlite3_exec(ob->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
		snprintf(ob->info.last_error, sizeof(ob->info.last_error), "sqlite: %s",
			 sqlite3_errmsg(ob->db));
		return L1_EDB;
	}
	return 0;
}

static int meta_get(struct l1_outbox *ob, const char *k, uint64_t *v)
{
	sqlite3_stmt *st = prep(ob, "SELECT v FROM meta WHERE k = ?");
	int rc;

	if (!st)
		return L1_EDB;
	sqlite3_bind_text(st, 1, k, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*v = (uint64_t)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? L1_ENOTFOUND : L1_EDB;
}

static int meta_set(struct l1_outbox *ob, const char *k, uint64_t v)
{
	sqlite3_stmt *st = prep(ob, "INSERT OR REPLACE INTO meta(k, v) VALUES (?, ?)");
	int rc;

	if (!st)
		return L1_EDB;
	sqlite3_bind_text(st, 1, k, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)v);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : L1_EDB;
}

/* One job as the state machine needs it. calldata is malloc'd. */
struct job {
	int64_t id;
	int kind;
	enum l1_job_state state;
	uint64_t index, from_h, to_h, rollup, l2_block;
	uint8_t *calldata;
	size_t calldata_len;
	uint64_t nonce;
	int has_tx;
	uint8_t tx_hash[32];
	uint64_t sent_block, block_number;
	uint8_t block_hash[32];
};

#define JOB_COLS                                                                           \
	"id, kind, state, batch_index, from_h, to_h, rollup, l2_block, calldata, nonce, tx_hash," \
	" sent_block, block_number, block_hash"

static int job_read(sqlite3_stmt *st, struct job *j)
{
	const void *p;

	memset(j, 0, sizeof(*j));
	j->id = sqlite3_column_int64(st, 0);
	j->kind = sqlite3_column_int(st, 1);
	j->state = (enum l1_job_state)sqlite3_column_int(st, 2);
	j->index = (uint64_t)sqlite3_column_int64(st, 3);
	j->from_h = (uint64_t)sqlite3_column_int64(st, 4);
	j->to_h = (uint64_t)sqlite3_column_int64(st, 5);
	j->rollup = (uint64_t)sqlite3_column_int64(st, 6);
	j->l2_block = (uint64_t)sqlite3_column_int64(st, 7);
	j->calldata_len = (size_t)sqlite3_column_bytes(st, 8);
	j->calldata = malloc(j->calldata_len ? j->calldata_len : 1);
	if (!j->calldata)
		return L1_ENOMEM;
	if (j->calldata_len)
		memcpy(j->calldata, sqlite3_column_blob(st, 8), j->calldata_len);
	j->nonce = (uint64_t)sqlite3_column_int64(st, 9);
	p = sqlite3_column_blob(st, 10);
	if (p && sqlite3_column_bytes(st, 10) == 32) {
		j->has_tx = 1;
		memcpy(j->tx_hash, p, 32);
	}
	j->sent_block = (uint64_t)sqlite3_column_int64(st, 11);
	j->block_number = (uint64_t)sqlite3_column_int64(st, 12);
	p = sqlite3_column_blob(st, 13);
	if (p && sqlite3_column_bytes(st, 13) == 32)
		memcpy(j->block_hash, p, 32);
	return 0;
}

static void jobs_free(struct job *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].calldata);
	free(v);
}

/* Jobs whose state is in [lo, hi], by nonce then id. *out malloc'd. */
static int jobs_in(struct l1_outbox *ob, int lo, int hi, struct job **out, size_t *n)
{
	sqlite3_stmt *st = prep(ob, "SELECT " JOB_COLS " FROM jobs WHERE state BETWEEN ? AND ?"
				    " ORDER BY nonce IS NULL, nonce, id");
	struct job *v = NULL;
	size_t cap = 0;
	int rc = 0;

	*out = NULL;
	*n = 0;
	if (!st)
		return L1_EDB;
	sqlite3_bind_int(st, 1, lo);
	sqlite3_bind_int(st, 2, hi);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (*n == cap) {
			struct job *nv = realloc(v, (cap = cap ? cap * 2 : 8) * sizeof(*v));

			if (!nv) {
				rc = L1_ENOMEM;
				goto out;
			}
			v = nv;
		}
		rc = job_read(st, &v[*n]);
		(*n)++;
		if (rc)
			goto out;
	}
	rc = rc == SQLITE_DONE ? 0 : L1_EDB;
out:
	sqlite3_finalize(st);
	if (rc) {
		jobs_free(v, *n);
		v = NULL;
		*n = 0;
	}
	*out = v;
	return rc;
}

static int job_state_get(struct l1_outbox *ob, int64_t id)
{
	sqlite3_stmt *st = prep(ob, "SELECT state FROM jobs WHERE id = ?");
	int s = -1;

	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	if (sqlite3_step(st) == SQLITE_ROW)
		s = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return s;
}

/* Asserts the stored state is one of `from` (bit mask) before moving. */
#define FROM(s) (1u << (s))
static void assert_state(struct l1_outbox *ob, int64_t id, unsigned from)
{
	int s = job_state_get(ob, id);

	(void)from;
	assert(s >= 0 && (from & (1u << s)));
	(void)s;
}

/* UPDATE jobs SET state = to (and the mined block when set) WHERE id. */
static int job_set(struct l1_outbox *ob, int64_t id, enum l1_job_state to, const uint8_t *tx,
		   const uint64_t *block_number, const uint8_t *block_hash, const char *error)
{
	sqlite3_stmt *st = prep(ob, "UPDATE jobs SET state = ?, tx_hash = coalesce(?, tx_hash),"
				    " block_number = CASE WHEN ?3 THEN ?4 ELSE block_number END,"
				    " block_hash = CASE WHEN ?3 THEN ?5 ELSE block_hash END,"
				    " error = coalesce(?6, error) WHERE id = ?7");
	int rc;

	if (!st)
		return L1_EDB;
	sqlite3_bind_int(st, 1, to);
	if (tx)
		sqlite3_bind_blob(st, 2, tx, 32, SQLITE_TRANSIENT);
	sqlite3_bind_int(st, 3, block_number != NULL);
	if (block_number) {
		sqlite3_bind_int64(st, 4, (sqlite3_int64)*block_number);
		if (block_hash)
			sqlite3_bind_blob(st, 5, block_hash, 32, SQLITE_TRANSIENT);
	}
	if (error)
		sqlite3_bind_text(st, 6, error, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 7, id);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : L1_EDB;
}

/* ------------------------------------------------------------------ */
/* Open / close                                                         */

static void tips(struct l1_outbox *ob);

int l1_outbox_open(struct l1_outbox **out, const struct l1_outbox_opts *o, char *err,
		   size_t errlen)
{
	struct l1_outbox *ob;
	int rc;

	*out = NULL;
	if (!o || !o->path || !o->key || !o->confirmations || !o->bump_after_blocks)
		return L1_EINVAL;
	ob = calloc(1, sizeof(*ob));
	if (!ob)
		return L1_ENOMEM;
	ob->o = *o;
	memcpy(ob->key, o->key, 32);
	ob->o.key = ob->key;
	ob->o.path = NULL;
	rc = l1_key_address(ob->key, ob->addr);
	if (rc) {
		l1__errf(err, errlen, "the signing key is not a valid secp256k1 key");
		goto fail;
	}
	if (sqlite3_open_v2(o->path, &ob->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
						     SQLITE_OPEN_NOMUTEX,
			    NULL) != SQLITE_OK ||
	    sqlite3_exec(ob->db, schema, NULL, NULL, NULL) != SQLITE_OK ||
	    (sqlite3_exec(ob->db, "SELECT sale_id FROM jobs LIMIT 0", NULL, NULL, NULL) !=
		     SQLITE_OK &&
	     sqlite3_exec(ob->db, schema_sales, NULL, NULL, NULL) != SQLITE_OK) ||
	    sqlite3_exec(ob->db, schema_sales_index, NULL, NULL, NULL) != SQLITE_OK) {
		l1__errf(err, errlen, "%s: %s", o->path,
			 ob->db ? sqlite3_errmsg(ob->db) : "cannot open");
		rc = L1_EDB;
		goto fail;
	}
	ob->info.status = L1_OB_SYNCING;
	{
		/* A failed batch halts posting for good, not until the next start:
		 * a start that went on would queue the next index past heights
		 * that are not on chain. */
		sqlite3_stmt *st = NULL;

		if (sqlite3_prepare_v2(ob->db,
				       "SELECT batch_index, from_h, to_h, coalesce(error, '') FROM jobs"
				       " WHERE kind = 1 AND state = 6 ORDER BY batch_index LIMIT 1",
				       -1, &st, NULL) == SQLITE_OK &&
		    sqlite3_step(st) == SQLITE_ROW) {
			ob->info.status = L1_OB_HALTED;
			snprintf(ob->info.last_error, sizeof(ob->info.last_error),
				 "batch %lld (heights %lld..%lld) failed: %.120s",
				 (long long)sqlite3_column_int64(st, 0),
				 (long long)sqlite3_column_int64(st, 1),
				 (long long)sqlite3_column_int64(st, 2),
				 (const char *)sqlite3_column_text(st, 3));
		}
		sqlite3_finalize(st);
	}
	tips(ob);
	*out = ob;
	return 0;
fail:
	l1_outbox_close(ob);
	return rc;
}

void l1_outbox_close(struct l1_outbox *ob)
{
	if (!ob)
		return;
	sqlite3_close(ob->db);
	memset(ob->key, 0, sizeof(ob->key));
	free(ob);
}

void l1_outbox_address(const struct l1_outbox *ob, uint8_t addr[static 20])
{
	memcpy(addr, ob->addr, 20);
}

void l1_outbox_get_info(struct l1_outbox *ob, struct l1_outbox_info *info)
{
	*info = ob->info;
}

/* ------------------------------------------------------------------ */
/* Contract reads                                                       */

static int call_u256(struct l1_outbox *ob, struct l1_rpc *rpc, const char *sig,
		     const uint64_t *arg, uint8_t word[static 32])
{
	uint8_t data[36], ret[64], sel[4];
	struct l1_abi_arg a = {.kind = L1_ABI_UINT64};
	struct l1_call call = {0};
	size_t len, rl;
	int rc;

	l1_abi_selector(sel, sig);
	if (arg)
		a.u64 = *arg;
	rc = l1_abi_encode(data, sizeof(data), &len, sel, &a, arg ? 1 : 0);
	if (rc)
		return rc;
	memcpy(call.to, ob->o.inbox, 20);
	call.data = data;
	call.data_len = len;
	rc = l1_rpc_eth_call(rpc, &call, "latest", ret, sizeof(ret), &rl);
	if (rc)
		return rc;
	if (rl != 32)
		return L1_EABI;
	memcpy(word, ret, 32);
	return 0;
}

static int call_u64(struct l1_outbox *ob, struct l1_rpc *rpc, const char *sig, uint64_t *v)
{
	uint8_t w[32];
	int rc = call_u256(ob, rpc, sig, NULL, w);

	return rc ? rc : l1_u256_to_u64(w, v);
}

/* ------------------------------------------------------------------ */
/* Reconciliation with the chain                                        */

static int has_batches(struct l1_outbox *ob, uint64_t *next_index, uint64_t *next_height)
{
	sqlite3_stmt *st = prep(ob, "SELECT batch_index, to_h FROM jobs WHERE kind = 1"
				    " ORDER BY batch_index DESC LIMIT 1");
	int rc;

	if (!st)
		return L1_EDB;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*next_index = (uint64_t)sqlite3_column_int64(st, 0) + 1;
		*next_height = (uint64_t)sqlite3_column_int64(st, 1) + 1;
	}
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : L1_EDB;
}

static int sync_chain(struct l1_outbox *ob, struct l1_rpc *rpc)
{
	uint64_t chain_id, latest, next_nonce = 0, idx, h;
	int rc;

	rc = l1_rpc_chain_id(rpc, &chain_id);
	if (rc)
		return rc;
	if (chain_id != ob->o.chain_id) {
		snprintf(ob->info.last_error, sizeof(ob->info.last_error),
			 "the L1 node's chain id is %llu, l1.chain_id is %llu",
			 (unsigned long long)chain_id, (unsigned long long)ob->o.chain_id);
		return L1_EHALTED;
	}
	rc = l1_rpc_get_transaction_count(rpc, ob->addr, "latest", &latest);
	if (rc)
		return rc;
	meta_get(ob, "next_nonce", &next_nonce);
	/*
	 * Nonces the chain has used that the journal never allocated: the key
	 * was used elsewhere, or the journal is new. Adopting them skips none
	 * (they are spent on chain). A chain behind the journal is a reorg or a
	 * lost mempool: the journaled transactions are sent again by step.
	 */
	if (latest > next_nonce) {
		rc = meta_set(ob, "next_nonce", latest);
		if (rc)
			return rc;
		next_nonce = latest;
	}
	ob->info.next_nonce = next_nonce;
	rc = has_batches(ob, &idx, &h);
	if (rc < 0)
		return rc;
	if (!rc) { /* a new journal: continue the contract's chain of batches */
		rc = call_u64(ob, rpc, "batchCount()", &idx);
		if (!rc)
			rc = call_u64(ob, rpc, "nextHeight()", &h);
		if (rc)
			return rc;
	}
	ob->info.next_index = idx;
	ob->info.next_height = h;
	ob->synced = 1;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Queueing                                                             */

static int unmined_batches(struct l1_outbox *ob)
{
	sqlite3_stmt *st = prep(ob, "SELECT count(*) FROM jobs WHERE kind = 1 AND state < ?");
	int n = -1;

	if (!st)
		return -1;
	sqlite3_bind_int(st, 1, L1_JOB_MINED);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return n;
}

int l1_outbox_batch_wanted(struct l1_outbox *ob, uint64_t *index, uint64_t *from_height)
{
	if (!ob->synced || ob->info.status == L1_OB_HALTED || unmined_batches(ob) != 0)
		return 0;
	*index = ob->info.next_index;
	*from_height = ob->info.next_height;
	return 1;
}

int l1_outbox_queue_batch(struct l1_outbox *ob, const struct l1_inbox_batch *b)
{
	size_t cap = 4 + 32 * (8 + 2 * b->n_namespaces), len;
	uint8_t *cd = malloc(cap), *ids = malloc(8 * b->n_namespaces + 1);
	sqlite3_stmt *st = NULL;
	int rc;

	if (!cd || !ids) {
		rc = L1_ENOMEM;
		goto out;
	}
	if (!ob->synced || b->index != ob->info.next_index ||
	    b->from_height != ob->info.next_height || unmined_batches(ob) != 0) {
		rc = L1_EBUSY;
		goto out;
	}
	rc = l1_inbox_post_batch_calldata(cd, cap, &len, b);
	if (rc)
		goto out;
	for (size_t i = 0; i < b->n_namespaces; i++)
		for (int k = 0; k < 8; k++)
			ids[8 * i + k] = (uint8_t)(b->namespace_ids[i] >> (56 - 8 * k));
	st = prep(ob, "INSERT INTO jobs(kind, state, batch_index, from_h, to_h, da_root, ns_ids,"
		      " ns_roots, calldata, created_ms) VALUES (1, 0, ?, ?, ?, ?, ?, ?, ?, ?)");
	if (!st) {
		rc = L1_EDB;
		goto out;
	}
	sqlite3_bind_int64(st, 1, (sqlite3_int64)b->index);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)b->from_height);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)b->to_height);
	sqlite3_bind_blob(st, 4, b->da_root, 32, SQLITE_STATIC);
	sqlite3_bind_blob(st, 5, ids, (int)(8 * b->n_namespaces), SQLITE_STATIC);
	sqlite3_bind_blob(st, 6, b->namespace_roots, (int)(32 * b->n_namespaces), SQLITE_STATIC);
	sqlite3_bind_blob(st, 7, cd, (int)len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 8, (sqlite3_int64)wall_ms());
	rc = sqlite3_step(st) == SQLITE_DONE ? 0 : L1_EDB;
	if (!rc) {
		ob->info.next_index = b->index + 1;
		ob->info.next_height = b->to_height + 1;
	}
out:
	sqlite3_finalize(st);
	free(cd);
	free(ids);
	return rc;
}

int l1_outbox_queue_state_root(struct l1_outbox *ob, const struct l1_inbox_state_root *s)
{
	size_t cap = 4 + 32 * (6 + (s->proof_locator_len + 31) / 32), len;
	uint8_t *cd;
	sqlite3_stmt *st;
	int rc;

	if (s->proof_locator_len > L1_INBOX_MAX_LOCATOR)
		return L1_ETOOBIG;
	st = prep(ob, "SELECT max(l2_block) FROM jobs WHERE kind = 2 AND rollup = ?"
		      " AND state != 6");
	if (!st)
		return L1_EDB;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)s->rollup_id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL &&
	    (uint64_t)sqlite3_column_int64(st, 0) >= s->l2_block)
		rc = L1_ESTALE;
	else
		rc = rc == SQLITE_ROW ? 0 : L1_EDB;
	sqlite3_finalize(st);
	if (rc)
		return rc;
	cd = malloc(cap);
	if (!cd)
		return L1_ENOMEM;
	rc = l1_inbox_post_state_root_calldata(cd, cap, &len, s);
	if (rc)
		goto out;
	st = prep(ob, "INSERT INTO jobs(kind, state, rollup, l2_block, state_root, proof_kind,"
		      " locator, calldata, created_ms) VALUES (2, 0, ?, ?, ?, ?, ?, ?, ?)");
	if (!st) {
		rc = L1_EDB;
		goto out;
	}
	sqlite3_bind_int64(st, 1, (sqlite3_int64)s->rollup_id);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)s->l2_block);
	sqlite3_bind_blob(st, 3, s->state_root, 32, SQLITE_STATIC);
	sqlite3_bind_int(st, 4, s->proof_kind);
	sqlite3_bind_blob(st, 5, s->proof_locator ? (const void *)s->proof_locator : "",
			  (int)s->proof_locator_len, SQLITE_STATIC);
	sqlite3_bind_blob(st, 6, cd, (int)len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 7, (sqlite3_int64)wall_ms());
	rc = sqlite3_step(st) == SQLITE_DONE ? 0 : L1_EDB;
	sqlite3_finalize(st);
out:
	free(cd);
	return rc;
}

/* Inserts a sale job (purchases or settlement) with its calldata. */
static int insert_sale_job(struct l1_outbox *ob, int kind, uint64_t sale_id, size_t n_items,
			   const uint8_t *cd, size_t len)
{
	sqlite3_stmt *st = prep(ob, "INSERT INTO jobs(kind, state, sale_id, n_items, calldata,"
				    " created_ms) VALUES (?, 0, ?, ?, ?, ?)");
	int rc;

	if (!st)
		return L1_EDB;
	sqlite3_bind_int(st, 1, kind);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)sale_id);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)n_items);
	sqlite3_bind_blob(st, 4, cd, (int)len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)wall_ms());
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc == SQLITE_CONSTRAINT)
		return L1_EDUP;
	return rc == SQLITE_DONE ? 0 : L1_EDB;
}

/* 1 when the sale has a settlement job, in any state (even FAILED: a
 * settlement is queued once; a failed one needs an operator). */
static int sale_settled(struct l1_outbox *ob, uint64_t sale_id)
{
	sqlite3_stmt *st = prep(ob, "SELECT count(*) FROM jobs WHERE kind = 4 AND sale_id = ?");
	int rc;

	if (!st)
		return L1_EDB;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)sale_id);
	rc = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) > 0 : L1_EDB;
	sqlite3_finalize(st);
	return rc;
}

int l1_outbox_queue_purchases(struct l1_outbox *ob, uint64_t sale_id, const struct l1_purchase *p,
			      const uint8_t (*sigs)[65], size_t n)
{
	size_t cap, len;
	uint8_t *cd;
	int rc;

	if (!ob || !p || !sigs || n == 0 || n > L1_OUTBOX_MAX_PURCHASES)
		return L1_EINVAL;
	for (size_t i = 0; i < n; i++)
		if (p[i].sale_id != sale_id || p[i].n_rollups > L1_PURCHASE_MAX_ROLLUPS)
			return L1_EINVAL;
	/* After its settlement the contract refuses purchases of a sale. */
	if ((rc = sale_settled(ob, sale_id)) != 0)
		return rc < 0 ? rc : L1_EDUP;
	cap = l1_inbox_post_purchases_size(p, n);
	cd = malloc(cap);
	if (!cd)
		return L1_ENOMEM;
	rc = l1_inbox_post_purchases_calldata(cd, cap, &len, sale_id, p, sigs, n);
	if (!rc)
		rc = insert_sale_job(ob, KIND_PURCHASES, sale_id, n, cd, len);
	free(cd);
	return rc;
}

int l1_outbox_queue_settlement(struct l1_outbox *ob, const struct seq_settlement *st)
{
	struct l1_settle_buyer *b = NULL;
	struct l1_settle_credit *c = NULL;
	struct l1_inbox_settlement is;
	uint64_t charged = 0, credited = 0;
	uint8_t *cd = NULL;
	size_t cap, len;
	int rc = L1_EINVAL;

	if (!ob || !st || (st->n_buyers && !st->buyers) || (st->n_credits && !st->credits) ||
	    st->n_buyers > L1_OUTBOX_MAX_SETTLE || st->n_credits > L1_OUTBOX_MAX_SETTLE)
		return L1_EINVAL;
	/* What the contract would revert on, refused here instead: ascending
	 * buyers and credits, and charged == credits + burn (amounts are below
	 * 2^62 gwei each, so the sums cannot overflow). */
	for (size_t i = 0; i < st->n_buyers; i++) {
		if (i && memcmp(st->buyers[i - 1].addr, st->buyers[i].addr, 20) >= 0)
			return L1_EINVAL;
		charged += st->buyers[i].charged;
	}
	for (size_t i = 0; i < st->n_credits; i++) {
		if (i && st->credits[i - 1].rollup >= st->credits[i].rollup)
			return L1_EINVAL;
		credited += st->credits[i].amount;
	}
	if (charged != credited + st->burn)
		return L1_EINVAL;
	b = calloc(st->n_buyers ? st->n_buyers : 1, sizeof(*b));
	c = calloc(st->n_credits ? st->n_credits : 1, sizeof(*c));
	if (!b || !c) {
		rc = L1_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < st->n_buyers; i++) {
		memcpy(b[i].addr, st->buyers[i].addr, 20);
		l1_u256_from_gwei(b[i].charged, st->buyers[i].charged);
		l1_u256_from_gwei(b[i].refund, st->buyers[i].refund);
	}
	for (size_t i = 0; i < st->n_credits; i++) {
		c[i].rollup_id = st->credits[i].rollup;
		l1_u256_from_gwei(c[i].amount, st->credits[i].amount);
	}
	is = (struct l1_inbox_settlement){.sale_id = st->sale_id, .buyers = b,
					  .n_buyers = st->n_buyers, .credits = c,
					  .n_credits = st->n_credits};
	l1_u256_from_gwei(is.burn, st->burn);
	cap = l1_inbox_settle_sale_size(&is);
	cd = malloc(cap);
	if (!cd) {
		rc = L1_ENOMEM;
		goto out;
	}
	rc = l1_inbox_settle_sale_calldata(cd, cap, &len, &is);
	if (!rc)
		rc = insert_sale_job(ob, KIND_SETTLEMENT, st->sale_id, st->n_buyers, cd, len);
out:
	free(cd);
	free(c);
	free(b);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Fees                                                                 */

struct fees {
	uint64_t base, tip, max_fee;
};

static int u256_u64(const uint8_t w[static 32], uint64_t *v)
{
	return l1_u256_to_u64(w, v) ? L1_ETX_INT : 0;
}

/* Fees for a new transaction: tip from the node, maxFee = 2 * next base fee
 * + tip, both under the cap. 1 when the cap is below the base fee: wait. */
static int fees_now(struct l1_outbox *ob, struct l1_rpc *rpc, struct fees *f)
{
	uint8_t base[32], tip[32];
	int rc = l1_rpc_fee_history(rpc, 4, 50, base, tip);

	if (!rc)
		rc = u256_u64(base, &f->base);
	if (!rc && !l1_rpc_max_priority_fee(rpc, tip))
		rc = u256_u64(tip, &f->tip);
	if (rc)
		return rc;
	if (f->tip == 0)
		f->tip = 1;
	if (f->base >= ob->o.max_fee_wei)
		return 1;
	if (f->tip > ob->o.max_fee_wei - f->base)
		f->tip = ob->o.max_fee_wei - f->base;
	f->max_fee = 2 * f->base + f->tip;
	if (f->max_fee > ob->o.max_fee_wei)
		f->max_fee = ob->o.max_fee_wei;
	return 0;
}

static uint64_t bump(uint64_t v)
{
	return v + (v + 7) / 8; /* +12.5%, rounded up: over the 10% nodes require */
}

/* ------------------------------------------------------------------ */
/* Signing and sending                                                  */

/* One journal row: a signed transaction of job `job`, inside the caller's
 * transaction. */
static int journal_tx(struct l1_outbox *ob, const uint8_t hash[static 32], int64_t job,
		      uint64_t nonce, const struct fees *f, uint64_t gas, const uint8_t *raw,
		      size_t len)
{
	sqlite3_stmt *st = prep(ob, "INSERT INTO txs(hash, job, nonce, tip, max_fee, gas, raw,"
				    " created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
	int rc;

	if (!st)
		return L1_EDB;
	sqlite3_bind_blob(st, 1, hash, 32, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, job);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)nonce);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)f->tip);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)f->max_fee);
	sqlite3_bind_int64(st, 6, (sqlite3_int64)gas);
	sqlite3_bind_blob(st, 7, raw, (int)len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 8, (sqlite3_int64)wall_ms());
	rc = sqlite3_step(st) == SQLITE_DONE ? 0 : L1_EDB;
	sqlite3_finalize(st);
	return rc;
}

/* Sign a transaction for job j with nonce and fees, journal it and point
 * the job at it (state SIGNED), all in one COMMIT; then the fault point. */
static int sign_and_journal(struct l1_outbox *ob, const struct job *j, uint64_t nonce,
			    uint64_t gas, const struct fees *f, int new_nonce)
{
	struct l1_tx1559 tx = {.chain_id = ob->o.chain_id, .nonce = nonce, .gas_limit = gas,
			       .has_to = 1, .data = j->calldata, .data_len = j->calldata_len};
	size_t cap = L1_TX1559_MAX_RAW(j->calldata_len), len;
	uint8_t *raw = malloc(cap), hash[32];
	sqlite3_stmt *st = NULL;
	int rc;

	if (!raw)
		return L1_ENOMEM;
	memcpy(tx.to, ob->o.inbox, 20);
	l1_u256_from_u64(tx.max_priority_fee, f->tip);
	l1_u256_from_u64(tx.max_fee, f->max_fee);
	rc = l1_tx1559_sign(&tx, ob->key, raw, cap, &len, hash);
	if (rc)
		goto out;
	rc = exec(ob, "BEGIN IMMEDIATE");
	if (rc)
		goto out;
	rc = journal_tx(ob, hash, j->id, nonce, f, gas, raw, len);
	if (!rc) {
		st = prep(ob, "UPDATE jobs SET state = 1, nonce = ?, tx_hash = ?, sent_block = NULL"
			      " WHERE id = ?");
		if (!st)
			rc = L1_EDB;
		else {
			sqlite3_bind_int64(st, 1, (sqlite3_int64)nonce);
			sqlite3_bind_blob(st, 2, hash, 32, SQLITE_STATIC);
			sqlite3_bind_int64(st, 3, j->id);
			rc = sqlite3_step(st) == SQLITE_DONE ? 0 : L1_EDB;
		}
	}
	if (!rc && new_nonce)
		rc = meta_set(ob, "next_nonce", nonce + 1);
	if (!rc)
		rc = exec(ob, "COMMIT");
	if (rc)
		goto rollback;
	if (new_nonce)
		ob->info.next_nonce = nonce + 1;
	if (ob->o.fault)
		ob->o.fault(ob->o.fault_arg, L1_OB_FAULT_SIGNED);
	goto out;
rollback:
	sqlite3_exec(ob->db, "ROLLBACK", NULL, NULL, NULL);
out:
	sqlite3_finalize(st);
	free(raw);
	return rc;
}

/* Receipt of any journaled transaction of job j (at most one can be mined:
 * they share a nonce, or an older one is spent). 0 with r filled, L1_ENOTFOUND, or an RPC error. */
static int job_receipt(struct l1_outbox *ob, struct l1_rpc *rpc, const struct job *j,
		       struct l1_receipt *r)
{
	sqlite3_stmt *st = prep(ob, "SELECT hash FROM txs WHERE job = ? ORDER BY created_ms DESC");
	int rc = L1_ENOTFOUND;

	memset(r, 0, sizeof(*r));
	if (!st)
		return L1_EDB;
	sqlite3_bind_int64(st, 1, j->id);
	while (rc == L1_ENOTFOUND && sqlite3_step(st) == SQLITE_ROW) {
		uint8_t h[32];

		if (sqlite3_column_bytes(st, 0) != 32)
			continue;
		memcpy(h, sqlite3_column_blob(st, 0), 32);
		rc = l1_rpc_get_receipt(rpc, h, r);
	}
	sqlite3_finalize(st);
	return rc;
}

/* SIGNED -> SENT: send the journaled bytes of the job's current tx. A node
 * that already has them, or already mined them, is not an error: receipts
 * are looked up by hash on the next pass. */
static int send_job(struct l1_outbox *ob, struct l1_rpc *rpc, const struct job *j,
		    uint64_t latest)
{
	sqlite3_stmt *st = prep(ob, "SELECT raw FROM txs WHERE hash = ?");
	uint8_t *raw = NULL, got[32];
	size_t len = 0;
	int rc;

	assert_state(ob, j->id, FROM(L1_JOB_SIGNED) | FROM(L1_JOB_SENT));
	if (!st)
		return L1_EDB;
	sqlite3_bind_blob(st, 1, j->tx_hash, 32, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		len = (size_t)sqlite3_column_bytes(st, 0);
		raw = malloc(len);
		if (raw)
			memcpy(raw, sqlite3_column_blob(st, 0), len);
	}
	sqlite3_finalize(st);
	if (!raw)
		return L1_EDB;
	rc = l1_rpc_send_raw_transaction(rpc, raw, len, got);
	free(raw);
	if (rc == L1_ERPC_ERROR) {
		/* "already known", "nonce too low" (mined), "replacement
		 * underpriced" (an earlier tx of this job is pending): the
		 * receipt lookup decides. Remember the node's words. */
		snprintf(ob->info.last_error, sizeof(ob->info.last_error), "send: %.150s",
			 l1_rpc_last_error(rpc)->message);
		rc = 0;
	}
	if (rc)
		return rc;
	ob->info.sent++;
	st = prep(ob, "UPDATE jobs SET state = 2, sent_block = ? WHERE id = ?");
	if (!st)
		return L1_EDB;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)latest);
	sqlite3_bind_int64(st, 2, j->id);
	rc = sqlite3_step(st) == SQLITE_DONE ? 0 : L1_EDB;
	sqlite3_finalize(st);
	if (!rc && ob->o.fault)
		ob->o.fault(ob->o.fault_arg, L1_OB_FAULT_SENT);
	return rc;
}

/* SENT -> SIGNED with a replacement: same nonce, both fees +12.5% (and at
 * least what the market asks now), under the cap. 1 if capped: the old
 * transaction is sent again instead. */
static int bump_job(struct l1_outbox *ob, struct l1_rpc *rpc, const struct job *j)
{
	sqlite3_stmt *st = prep(ob, "SELECT tip, max_fee, gas FROM txs WHERE hash = ?");
	struct fees now, f;
	uint64_t gas = 0;
	int rc;

	assert_state(ob, j->id, FROM(L1_JOB_SENT));
	if (!st)
		return L1_EDB;
	sqlite3_bind_blob(st, 1, j->tx_hash, 32, SQLITE_STATIC);
	rc = sqlite3_step(st) == SQLITE_ROW ? 0 : L1_EDB;
	if (!rc) {
		f.tip = (uint64_t)sqlite3_column_int64(st, 0);
		f.max_fee = (uint64_t)sqlite3_column_int64(st, 1);
		gas = (uint64_t)sqlite3_column_int64(st, 2);
	}
	sqlite3_finalize(st);
	if (rc)
		return rc;
	rc = fees_now(ob, rpc, &now);
	if (rc < 0)
		return rc;
	f.tip = bump(f.tip);
	f.max_fee = bump(f.max_fee);
	if (rc == 0) {
		if (now.tip > f.tip)
			f.tip = now.tip;
		if (2 * now.base + f.tip > f.max_fee)
			f.max_fee = 2 * now.base + f.tip;
	}
	if (f.max_fee > ob->o.max_fee_wei || f.tip > f.max_fee)
		return 1;
	rc = sign_and_journal(ob, j, j->nonce, gas, &f, 0);
	if (!rc)
		ob->info.bumps++;
	return rc;
}

/* ------------------------------------------------------------------ */
/* Landing                                                              */

/* SIGNED|SENT -> MINED (or QUEUED -> MINED for a batch that landed
 * through a transaction the journal does not hold). */
static int mine_job(struct l1_outbox *ob, const struct job *j, const uint8_t tx[static 32],
		    uint64_t bn, const uint8_t bh[static 32])
{
	assert_state(ob, j->id, FROM(L1_JOB_SIGNED) | FROM(L1_JOB_SENT) | FROM(L1_JOB_QUEUED));
	return job_set(ob, j->id, L1_JOB_MINED, tx, &bn, bh, NULL);
}

static int fail_job(struct l1_outbox *ob, const struct job *j, const char *why)
{
	assert_state(ob, j->id, ~FROM(L1_JOB_FINALIZED));
	snprintf(ob->info.last_error, sizeof(ob->info.last_error), "job %lld: %.130s",
		 (long long)j->id, why);
	return job_set(ob, j->id, L1_JOB_FAILED, NULL, NULL, NULL, why);
}

/* The batch hash the contract would store for job j at its index. */
static int our_batch_hash(struct l1_outbox *ob, struct l1_rpc *rpc, const struct job *j,
			  uint8_t out[static 32])
{
	sqlite3_stmt *st = prep(ob, "SELECT da_root, ns_ids, ns_roots FROM jobs WHERE id = ?");
	uint8_t prev[32] = {0};
	struct l1_inbox_batch b = {.index = j->index, .from_height = j->from_h,
				   .to_height = j->to_h};
	uint64_t *ids = NULL;
	int rc = 0;

	if (!st)
		return L1_EDB;
	if (j->index > 0) {
		uint64_t p = j->index - 1;

		rc = call_u256(ob, rpc, "batchHash(uint64)", &p, prev);
	}
	sqlite3_bind_int64(st, 1, j->id);
	if (!rc && sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 0) == 32) {
		size_t n = (size_t)sqlite3_column_bytes(st, 1) / 8;
		const uint8_t *ib = sqlite3_column_blob(st, 1);

		memcpy(b.da_root, sqlite3_column_blob(st, 0), 32);
		ids = malloc((n ? n : 1) * 8);
		if (!ids) {
			rc = L1_ENOMEM;
		} else {
			for (size_t i = 0; i < n; i++) {
				ids[i] = 0;
				for (int k = 0; k < 8; k++)
					ids[i] = ids[i] << 8 | ib[8 * i + k];
			}
			b.n_namespaces = n;
			b.namespace_ids = ids;
			b.namespace_roots = (const uint8_t (*)[32])sqlite3_column_blob(st, 2);
			l1_inbox_batch_hash(out, prev, &b);
		}
	} else if (!rc) {
		rc = L1_EDB;
	}
	sqlite3_finalize(st);
	free(ids);
	return rc;
}

/*
 * QUEUED -> MINED for a batch that landed by a transaction the journal does
 * not hold (land_elsewhere; lg is its log). Its signed bytes, asked of the
 * node, are journaled with the job's nonce in the same COMMIT, so a reorg
 * that drops them sends them again like any journaled transaction's. A node
 * that does not answer is asked again next pass; bytes it refuses or does
 * not have, or that are not this key's EIP-1559 transaction with that hash,
 * are left out: the job is mined all the same, and a reorg of it then halts
 * (reorg_job).
 */
static int mine_landed(struct l1_outbox *ob, struct l1_rpc *rpc, const struct job *j,
		       const struct l1_log *lg)
{
	uint8_t *raw = NULL;
	size_t len = 0;
	struct l1_tx tx;
	struct fees f = {0};
	int rc, keep;

	rc = l1_rpc_get_raw_transaction(rpc, lg->tx_hash, &raw, &len);
	if (rc == L1_ERPC_TRANSPORT || rc == L1_ERPC_TIMEOUT || rc == L1_ENOMEM)
		return rc; /* asked again next pass */
	keep = !rc && !l1_tx_decode(&tx, raw, len, ob->o.chain_id, len) &&
	       tx.type == L1_TX_1559 && !memcmp(tx.hash, lg->tx_hash, 32) &&
	       !memcmp(tx.from, ob->addr, 20) &&
	       !u256_u64(tx.max_priority_fee, &f.tip) && !u256_u64(tx.gas_price, &f.max_fee);
	rc = exec(ob, "BEGIN IMMEDIATE");
	if (rc)
		goto out;
	if (keep)
		rc = journal_tx(ob, lg->tx_hash, j->id, tx.nonce, &f, tx.gas_limit, raw, len);
	if (!rc && keep) {
		sqlite3_stmt *st = prep(ob, "UPDATE jobs SET nonce = ? WHERE id = ?");

		rc = st ? 0 : L1_EDB;
		if (st) {
			sqlite3_bind_int64(st, 1, (sqlite3_int64)tx.nonce);
			sqlite3_bind_int64(st, 2, j->id);
			rc = sqlite3_step(st) == SQLITE_DONE ? 0 : L1_EDB;
			sqlite3_finalize(st);
		}
	}
	if (!rc)
		rc = mine_job(ob, j, lg->tx_hash, lg->block_number, lg->block_hash);
	if (!rc)
		rc = exec(ob, "COMMIT");
	if (rc)
		sqlite3_exec(ob->db, "ROLLBACK", NULL, NULL, NULL);
out:
	free(raw);
	return rc;
}

/*
 * The contract says batch j->index already exists. If its hash is ours,
 * the batch landed (a journal lost or restored from backup): find its log
 * and take it as mined. Otherwise the chain holds a different batch at our
 * index and only an operator can sort that out.
 */
static int land_elsewhere(struct l1_outbox *ob, struct l1_rpc *rpc, const struct job *j)
{
	uint8_t ours[32], theirs[32];
	uint64_t idx = j->index;
	struct l1_log_filter f = {.has_topic0 = 1};
	struct l1_log_list logs = {0};
	int rc;

	rc = our_batch_hash(ob, rpc, j, ours);
	if (!rc)
		rc = call_u256(ob, rpc, "batchHash(uint64)", &idx, theirs);
	if (rc)
		return rc;
	if (memcmp(ours, theirs, 32)) {
		fail_job(ob, j, "the contract holds a different batch at this index");
		return L1_EHALTED;
	}
	memcpy(f.address, ob->o.inbox, 20);
	memcpy(f.topic0, l1_inbox_event_topic(L1_EV_BATCH_POSTED), 32);
	/* index is indexed: the node returns this batch's log, not every
	 * batch's since the contract's deployment (providers cap results) */
	f.has_topic1 = 1;
	for (int b = 0; b < 8; b++)
		f.topic1[31 - b] = (uint8_t)(j->index >> (8 * b));
	rc = l1_rpc_get_logs(rpc, &f, &logs);
	if (rc)
		return rc;
	rc = L1_ENOTFOUND;
	for (size_t i = 0; i < logs.n; i++) {
		struct l1_inbox_event ev;

		if (!logs.v[i].removed &&
		    !l1_inbox_decode_log(&ev, (const uint8_t (*)[32])logs.v[i].topics,
					 logs.v[i].ntopics, logs.v[i].data, logs.v[i].data_len) &&
		    ev.u.batch.index == j->index) {
			rc = mine_landed(ob, rpc, j, &logs.v[i]);
			break;
		}
	}
	l1_log_list_free(&logs);
	return rc;
}

/* QUEUED -> SIGNED -> SENT, unless the fee cap says wait (returns 1). */
static int sign_job(struct l1_outbox *ob, struct l1_rpc *rpc, const struct job *j,
		    uint64_t latest)
{
	struct l1_call call = {.has_from = 1, .data = j->calldata, .data_len = j->calldata_len};
	struct fees f;
	uint64_t gas;
	int rc;

	assert_state(ob, j->id, FROM(L1_JOB_QUEUED));
	rc = fees_now(ob, rpc, &f);
	if (rc)
		return rc;
	memcpy(call.from, ob->addr, 20);
	memcpy(call.to, ob->o.inbox, 20);
	rc = l1_rpc_estimate_gas(rpc, &call, &gas);
	if (rc == L1_ERPC_ERROR) {
		const struct l1_rpc_error *e = l1_rpc_last_error(rpc);
		uint8_t wrong_index[4];
		char why[200];

		l1_abi_selector(wrong_index, "WrongIndex(uint64,uint64)");
		if (e->data_len >= 4 && !memcmp(e->data, wrong_index, 4) && j->kind == KIND_BATCH)
			return land_elsewhere(ob, rpc, j);
		if (e->data_len < 4) /* no revert data: the node's own trouble */
			return rc;
		snprintf(why, sizeof(why), "reverts at estimation: %.160s", e->message);
		rc = fail_job(ob, j, why);
		return rc ? rc : (j->kind == KIND_BATCH ? L1_EHALTED : 0);
	}
	if (rc)
		return rc;
	gas += gas / 4 + 5000; /* storage costs move with the chain's state */
	rc = sign_and_journal(ob, j, ob->info.next_nonce, gas, &f, 1);
	if (rc)
		return rc;
	{
		struct job s = *j;

		/* send what was journaled: reload its tx hash */
		sqlite3_stmt *st = prep(ob, "SELECT tx_hash, nonce FROM jobs WHERE id = ?");

		if (!st)
			return L1_EDB;
		sqlite3_bind_int64(st, 1, j->id);
		if (sqlite3_step(st) == SQLITE_ROW) {
			memcpy(s.tx_hash, sqlite3_column_blob(st, 0), 32);
			s.nonce = (uint64_t)sqlite3_column_int64(st, 1);
		}
		sqlite3_finalize(st);
		return send_job(ob, rpc, &s, latest);
	}
}

/* ------------------------------------------------------------------ */
/* Watching mined jobs                                                  */

static int reorg_job(struct l1_outbox *ob, const struct job *j)
{
	sqlite3_stmt *st = prep(ob, "SELECT 1 FROM txs WHERE hash = ?");
	int held;

	assert_state(ob, j->id, FROM(L1_JOB_MINED) | FROM(L1_JOB_POSTED));
	if (!st)
		return L1_EDB;
	sqlite3_bind_blob(st, 1, j->tx_hash, 32, SQLITE_STATIC);
	held = sqlite3_step(st);
	sqlite3_finalize(st);
	if (held != SQLITE_ROW && held != SQLITE_DONE)
		return L1_EDB;
	ob->info.reorgs++;
	if (held == SQLITE_DONE) { /* landed elsewhere, its bytes not journaled */
		int rc = fail_job(ob, j, "reorged out, and the transaction that had landed it "
					 "is not in the journal to send again");

		return rc ? rc : (j->kind == KIND_BATCH ? L1_EHALTED : 0);
	}
	/* tx_hash is the mined transaction: send_job sends its bytes again */
	return job_set(ob, j->id, L1_JOB_SIGNED, NULL, NULL, NULL, NULL);
}

static int confirm_job(struct l1_outbox *ob, const struct job *j)
{
	assert_state(ob, j->id, FROM(L1_JOB_MINED));
	return job_set(ob, j->id, L1_JOB_POSTED, NULL, NULL, NULL, NULL);
}

static int finalize_job(struct l1_outbox *ob, const struct job *j)
{
	assert_state(ob, j->id, FROM(L1_JOB_POSTED));
	return job_set(ob, j->id, L1_JOB_FINALIZED, NULL, NULL, NULL, NULL);
}

static int watch_mined(struct l1_outbox *ob, struct l1_rpc *rpc, uint64_t latest,
		       uint64_t finalized)
{
	struct job *v;
	size_t n;
	int rc = jobs_in(ob, L1_JOB_MINED, L1_JOB_POSTED, &v, &n);

	for (size_t i = 0; !rc && i < n; i++) {
		struct l1_block b;

		rc = l1_rpc_get_block(rpc, NULL, v[i].block_number, &b);
		if (rc == L1_ENOTFOUND || (!rc && memcmp(b.hash, v[i].block_hash, 32))) {
			rc = reorg_job(ob, &v[i]);
			continue;
		}
		if (rc)
			break;
		if (v[i].state == L1_JOB_MINED &&
		    latest + 1 >= v[i].block_number + ob->o.confirmations) {
			rc = confirm_job(ob, &v[i]);
			v[i].state = L1_JOB_POSTED;
		}
		if (!rc && v[i].state == L1_JOB_POSTED && v[i].block_number <= finalized)
			rc = finalize_job(ob, &v[i]);
	}
	jobs_free(v, n);
	return rc;
}

/*
 * SENT -> QUEUED when the job's nonce was spent on chain by a transaction
 * the journal does not hold (the key used elsewhere, a journal restored
 * from an older backup): none of its transactions can be mined any more,
 * and bumping them only gets "nonce too low" forever. Spent means: the
 * account's nonce at a settled block (the node's finalized one, or
 * l1.confirmations below the head when it has none yet) is past the job's,
 * and, asked after that, no journaled transaction of the job has a receipt.
 * A settled block cannot be reorged, so the old transactions stay unmined
 * and the job, signed again with the next free nonce, lands once. A batch
 * the foreign transaction itself posted is found by the estimation of the
 * new one (WrongIndex: land_elsewhere). 1 if requeued, 0 if not spent.
 */
static int requeue_if_spent(struct l1_outbox *ob, struct l1_rpc *rpc, const struct job *j,
			    uint64_t latest, uint64_t fin)
{
	uint64_t at = fin ? fin : latest > ob->o.confirmations ? latest - ob->o.confirmations : 0;
	uint64_t settled, head;
	struct l1_receipt r;
	char tag[24], why[120];
	sqlite3_stmt *st;
	int rc;

	snprintf(tag, sizeof(tag), "0x%llx", (unsigned long long)at);
	rc = l1_rpc_get_transaction_count(rpc, ob->addr, tag, &settled);
	if (rc || settled <= j->nonce)
		return rc;
	rc = job_receipt(ob, rpc, j, &r);
	if (rc != L1_ENOTFOUND) {
		if (!rc)
			l1_receipt_free(&r); /* mined after all: the next pass takes it */
		return rc;
	}
	rc = l1_rpc_get_transaction_count(rpc, ob->addr, "latest", &head);
	if (rc)
		return rc;
	if (head < settled)
		head = settled;
	assert_state(ob, j->id, FROM(L1_JOB_SENT));
	snprintf(why, sizeof(why), "nonce %llu spent by a transaction not in the journal",
		 (unsigned long long)j->nonce);
	rc = exec(ob, "BEGIN IMMEDIATE");
	if (rc)
		return rc;
	st = prep(ob, "UPDATE jobs SET state = 0, nonce = NULL, tx_hash = NULL, sent_block = NULL,"
		      " error = ? WHERE id = ?");
	rc = st ? 0 : L1_EDB;
	if (st) {
		sqlite3_bind_text(st, 1, why, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(st, 2, j->id);
		rc = sqlite3_step(st) == SQLITE_DONE ? 0 : L1_EDB;
		sqlite3_finalize(st);
	}
	if (!rc && head > ob->info.next_nonce)
		rc = meta_set(ob, "next_nonce", head);
	if (!rc)
		rc = exec(ob, "COMMIT");
	if (rc) {
		sqlite3_exec(ob->db, "ROLLBACK", NULL, NULL, NULL);
		return rc;
	}
	if (head > ob->info.next_nonce)
		ob->info.next_nonce = head;
	ob->info.requeued++;
	snprintf(ob->info.last_error, sizeof(ob->info.last_error), "job %lld: %s; queued again",
		 (long long)j->id, why);
	return 1;
}

/* SIGNED/SENT jobs: receipts, (re)sends, bumps. *inflight = jobs left. */
static int watch_inflight(struct l1_outbox *ob, struct l1_rpc *rpc, uint64_t latest,
			  uint64_t fin, size_t *inflight, int *capped)
{
	struct job *v;
	size_t n;
	int rc = jobs_in(ob, L1_JOB_SIGNED, L1_JOB_SENT, &v, &n);

	*inflight = 0;
	for (size_t i = 0; !rc && i < n; i++) {
		struct l1_receipt r;

		rc = job_receipt(ob, rpc, &v[i], &r);
		if (!rc) {
			if (r.status == 1)
				rc = mine_job(ob, &v[i], r.tx_hash, r.block_number, r.block_hash);
			else if (v[i].kind == KIND_BATCH && !(rc = fail_job(ob, &v[i], "reverted")))
				rc = L1_EHALTED;
			else
				rc = fail_job(ob, &v[i], "reverted");
			l1_receipt_free(&r);
			continue;
		}
		if (rc != L1_ENOTFOUND)
			break;
		rc = 0;
		if (v[i].state == L1_JOB_SENT &&
		    latest >= v[i].sent_block + ob->o.bump_after_blocks) {
			rc = requeue_if_spent(ob, rpc, &v[i], latest, fin);
			if (rc) {
				if (rc == 1)
					rc = 0; /* not in flight: signed again below */
				continue;
			}
		}
		(*inflight)++;
		if (v[i].state == L1_JOB_SIGNED) {
			rc = send_job(ob, rpc, &v[i], latest);
		} else if (latest >= v[i].sent_block + ob->o.bump_after_blocks) {
			/* stuck: replace with higher fees, or, capped, send it again
			 * (a node that restarted may have lost its mempool) */
			rc = bump_job(ob, rpc, &v[i]);
			if (rc == 1) {
				*capped = 1;
				rc = send_job(ob, rpc, &v[i], latest);
			} else if (!rc) {
				sqlite3_stmt *st = prep(ob, "SELECT tx_hash FROM jobs WHERE id = ?");

				if (!st) {
					rc = L1_EDB;
					break;
				}
				sqlite3_bind_int64(st, 1, v[i].id);
				if (sqlite3_step(st) == SQLITE_ROW)
					memcpy(v[i].tx_hash, sqlite3_column_blob(st, 0), 32);
				sqlite3_finalize(st);
				rc = send_job(ob, rpc, &v[i], latest);
			}
		}
	}
	jobs_free(v, n);
	return rc;
}

/* posted_to / finalized_to: the highest height such that every batch up to
 * it reached the state. A failed batch (6) is as far from it as a queued
 * one: its heights are not on chain, whatever batches after it are. */
static void tips(struct l1_outbox *ob)
{
	/* The first column, when not NULL, is the answer; the second counts
	 * only when no batch is short of the state, so it can be the newest
	 * batch's end (jobs_to), and the first is a walk of jobs_state. Both
	 * were scans of every job ever journaled: 150 ms each, per pass, at
	 * 500k batches. */
	static const char *q[2] = {
		"SELECT (SELECT min(from_h) FROM jobs WHERE kind = 1 AND state IN (0, 1, 2, 3, 6)),"
		" (SELECT max(to_h) FROM jobs WHERE kind = 1)",
		"SELECT (SELECT min(from_h) FROM jobs WHERE kind = 1 AND state IN (0, 1, 2, 3, 4, 6)),"
		" (SELECT max(to_h) FROM jobs WHERE kind = 1)"};
	uint64_t *out[2] = {&ob->info.posted_to, &ob->info.finalized_to};

	for (int k = 0; k < 2; k++) {
		sqlite3_stmt *st = prep(ob, q[k]);

		if (!st)
			continue;
		if (sqlite3_step(st) == SQLITE_ROW) {
			if (sqlite3_column_type(st, 0) != SQLITE_NULL)
				*out[k] = (uint64_t)sqlite3_column_int64(st, 0) - 1;
			else if (sqlite3_column_type(st, 1) != SQLITE_NULL)
				*out[k] = (uint64_t)sqlite3_column_int64(st, 1);
			else
				*out[k] = 0;
		}
		sqlite3_finalize(st);
	}
}

int l1_outbox_step(struct l1_outbox *ob, struct l1_rpc *rpc)
{
	struct l1_block latest, fin;
	struct job *q = NULL;
	size_t inflight = 0, nq = 0;
	int rc, capped = 0;

	if (ob->info.status == L1_OB_HALTED)
		return L1_EHALTED;
	if (!ob->synced) {
		rc = sync_chain(ob, rpc);
		if (rc)
			goto out;
	}
	rc = l1_rpc_get_block(rpc, "latest", 0, &latest);
	if (rc)
		goto out;
	rc = l1_rpc_get_block(rpc, "finalized", 0, &fin);
	if (rc == L1_ENOTFOUND || rc == L1_ERPC_ERROR)
		fin.number = 0, rc = 0;
	if (rc)
		goto out;
	ob->info.l1_block = latest.number;
	ob->info.l1_finalized = fin.number;
	rc = watch_mined(ob, rpc, latest.number, fin.number);
	if (!rc)
		rc = watch_inflight(ob, rpc, latest.number, fin.number, &inflight, &capped);
	if (!rc && !inflight) {
		rc = jobs_in(ob, L1_JOB_QUEUED, L1_JOB_QUEUED, &q, &nq);
		if (!rc && nq) {
			/* the lowest job first: batches keep their index order */
			rc = sign_job(ob, rpc, &q[0], latest.number);
			if (rc == 1)
				capped = 1, rc = 0;
			else if (!rc)
				inflight = 1;
		}
		jobs_free(q, nq);
	}
	if (!rc)
		rc = watch_mined(ob, rpc, latest.number, fin.number); /* just mined */
out:
	tips(ob);
	if (rc == L1_EHALTED)
		ob->info.status = L1_OB_HALTED;
	else if (rc == L1_ERPC_TRANSPORT || rc == L1_ERPC_TIMEOUT || rc == L1_ERPC_RESPONSE)
		ob->info.status = ob->synced ? L1_OB_RPC_DOWN : L1_OB_SYNCING;
	else if (capped)
		ob->info.status = L1_OB_FEE_CAPPED;
	else if (inflight)
		ob->info.status = L1_OB_INFLIGHT;
	else if (ob->synced)
		ob->info.status = L1_OB_IDLE;
	if (rc && rc != L1_EHALTED && !ob->info.last_error[0]) {
		const struct l1_rpc_error *e = l1_rpc_last_error(rpc);

		/* what the transport said (curl: a refused certificate, a timeout) */
		if ((rc == L1_ERPC_TRANSPORT || rc == L1_ERPC_TIMEOUT || rc == L1_ERPC_RESPONSE) &&
		    e->message[0])
			snprintf(ob->info.last_error, sizeof(ob->info.last_error),
				 "%s: %.100s (url %zu)", l1_strerror(rc), e->message,
				 e->url_index + 1);
		else
			snprintf(ob->info.last_error, sizeof(ob->info.last_error), "%s",
				 l1_strerror(rc) ? l1_strerror(rc) : "error");
	}
	return rc;
}

/*
 * Failed batches back to QUEUED, for an operator who fixed the cause (the
 * Inbox's poster set back, gas): their transactions leave the journal (a
 * revert was mined or none was) and they are signed again under the next
 * nonce on the next start. One COMMIT; the daemon must not run (the caller
 * holds the data directory's lock).
 */
int l1_outbox_retry_failed(const char *path, l1_retry_fn each, void *arg, size_t *n)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int rc = L1_EDB, step;

	*n = 0;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK ||
	    sqlite3_exec(db, "PRAGMA busy_timeout=5000; BEGIN IMMEDIATE", NULL, NULL, NULL) !=
		    SQLITE_OK)
		goto out;
	if (sqlite3_prepare_v2(db, "SELECT batch_index, from_h, to_h, coalesce(error, '')"
				   " FROM jobs WHERE kind = ?1 AND state = ?2 ORDER BY batch_index",
			       -1, &st, NULL) != SQLITE_OK)
		goto rollback;
	sqlite3_bind_int(st, 1, KIND_BATCH);
	sqlite3_bind_int(st, 2, L1_JOB_FAILED);
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		(*n)++;
		if (each)
			each(arg, (uint64_t)sqlite3_column_int64(st, 0),
			     (uint64_t)sqlite3_column_int64(st, 1), (uint64_t)sqlite3_column_int64(st, 2),
			     (const char *)sqlite3_column_text(st, 3));
	}
	sqlite3_finalize(st);
	st = NULL;
	if (step != SQLITE_DONE)
		goto rollback;
	{
		char sql[512];

		snprintf(sql, sizeof(sql),
			 "DELETE FROM txs WHERE job IN (SELECT id FROM jobs WHERE kind = %d AND"
			 " state = %d);"
			 "UPDATE jobs SET state = %d, error = NULL, nonce = NULL, tx_hash = NULL,"
			 " sent_block = NULL, block_number = NULL, block_hash = NULL"
			 " WHERE kind = %d AND state = %d; COMMIT",
			 KIND_BATCH, L1_JOB_FAILED, L1_JOB_QUEUED, KIND_BATCH, L1_JOB_FAILED);
		if (sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK) {
			rc = 0;
			goto out;
		}
	}
rollback:
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
out:
	sqlite3_finalize(st);
	sqlite3_close(db);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Readers                                                              */

struct l1_outbox_reader {
	sqlite3 *db;
};

int l1_outbox_reader_open(struct l1_outbox_reader **out, const char *path)
{
	struct l1_outbox_reader *r = calloc(1, sizeof(*r));

	*out = NULL;
	if (!r)
		return L1_ENOMEM;
	if (sqlite3_open_v2(path, &r->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) !=
		    SQLITE_OK ||
	    sqlite3_exec(r->db, "PRAGMA busy_timeout=1000; SELECT 1 FROM jobs LIMIT 1", NULL, NULL,
			 NULL) != SQLITE_OK) {
		l1_outbox_reader_close(r);
		return L1_ENOTFOUND;
	}
	*out = r;
	return 0;
}

void l1_outbox_reader_close(struct l1_outbox_reader *r)
{
	if (!r)
		return;
	sqlite3_close(r->db);
	free(r);
}

static int view_query(struct l1_outbox_reader *r, const char *sql, uint64_t a, uint64_t b,
		      struct l1_job_view *v)
{
	sqlite3_stmt *st = NULL;
	const void *p;
	int rc;

	memset(v, 0, sizeof(*v));
	if (sqlite3_prepare_v2(r->db, sql, -1, &st, NULL) != SQLITE_OK)
		return L1_EDB;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)a);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)b);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		sqlite3_finalize(st);
		return rc == SQLITE_DONE ? L1_ENOTFOUND : L1_EDB;
	}
	v->state = (enum l1_job_state)sqlite3_column_int(st, 0);
	v->index = (uint64_t)sqlite3_column_int64(st, 1);
	v->from_height = (uint64_t)sqlite3_column_int64(st, 2);
	v->to_height = (uint64_t)sqlite3_column_int64(st, 3);
	v->rollup_id = (uint64_t)sqlite3_column_int64(st, 4);
	v->l2_block = (uint64_t)sqlite3_column_int64(st, 5);
	if ((p = sqlite3_column_blob(st, 6)) && sqlite3_column_bytes(st, 6) == 32)
		memcpy(v->state_root, p, 32);
	v->proof_kind = (uint8_t)sqlite3_column_int(st, 7);
	v->locator_len = (size_t)sqlite3_column_bytes(st, 8);
	if (v->locator_len > sizeof(v->locator))
		v->locator_len = sizeof(v->locator);
	if (v->locator_len)
		memcpy(v->locator, sqlite3_column_blob(st, 8), v->locator_len);
	if ((p = sqlite3_column_blob(st, 9)) && sqlite3_column_bytes(st, 9) == 32) {
		v->has_tx = 1;
		memcpy(v->tx_hash, p, 32);
	}
	v->nonce = (uint64_t)sqlite3_column_int64(st, 10);
	v->block_number = (uint64_t)sqlite3_column_int64(st, 11);
	if ((p = sqlite3_column_blob(st, 12)) && sqlite3_column_bytes(st, 12) == 32)
		memcpy(v->block_hash, p, 32);
	v->mined = v->state >= L1_JOB_MINED && v->state <= L1_JOB_FINALIZED;
	if ((p = sqlite3_column_text(st, 13)))
		snprintf(v->error, sizeof(v->error), "%s", (const char *)p);
	v->sale_id = (uint64_t)sqlite3_column_int64(st, 14);
	v->n_items = (size_t)sqlite3_column_int64(st, 15);
	sqlite3_finalize(st);
	return 0;
}

#define VIEW_COLS                                                                         \
	"SELECT state, batch_index, from_h, to_h, rollup, l2_block, state_root, proof_kind," \
	" locator, tx_hash, nonce, block_number, block_hash, error, sale_id, n_items FROM jobs "

int l1_outbox_reader_batch(struct l1_outbox_reader *r, uint64_t height, struct l1_job_view *v)
{
	return view_query(r, VIEW_COLS "WHERE kind = 1 AND to_h >= ? AND from_h <= ?2"
				       " ORDER BY to_h LIMIT 1",
			  height, height, v);
}

int l1_outbox_reader_state_root(struct l1_outbox_reader *r, uint64_t rollup_id,
				uint64_t l2_block, struct l1_job_view *v)
{
	return view_query(r, VIEW_COLS "WHERE kind = 2 AND rollup = ? AND l2_block = ?",
			  rollup_id, l2_block, v);
}

int l1_outbox_reader_purchases(struct l1_outbox_reader *r, uint64_t sale_id, uint64_t i,
			       struct l1_job_view *v)
{
	return view_query(r, VIEW_COLS "WHERE kind = 3 AND sale_id = ? ORDER BY id LIMIT 1 OFFSET ?",
			  sale_id, i, v);
}

int l1_outbox_reader_purchases_count(struct l1_outbox_reader *r, uint64_t sale_id, uint64_t *n)
{
	sqlite3_stmt *st = NULL;
	int rc = L1_EDB;

	if (sqlite3_prepare_v2(r->db, "SELECT count(*) FROM jobs WHERE kind = 3 AND sale_id = ?",
			       -1, &st, NULL) != SQLITE_OK)
		return L1_EDB;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)sale_id);
	if (sqlite3_step(st) == SQLITE_ROW) {
		*n = (uint64_t)sqlite3_column_int64(st, 0);
		rc = 0;
	}
	sqlite3_finalize(st);
	return rc;
}

int l1_outbox_reader_settlement(struct l1_outbox_reader *r, uint64_t sale_id,
				struct l1_job_view *v)
{
	return view_query(r, VIEW_COLS "WHERE kind = 4 AND sale_id = ? AND ?2 = ?2", sale_id, 0,
			  v);
}
