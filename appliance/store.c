/*
 * store.c - SQLite storage. WAL with synchronous=FULL: a COMMIT returns only
 * after the WAL is fsynced, which is what a preconfirmation promises. The
 * committer's connection may instead commit without the fsync
 * (app_store_set_wal_sync_external) and make the WAL durable itself with
 * app_store_wal_sync, from another thread, before it answers anyone.
 *
 * Every statement is prepared once per connection. The write connection
 * belongs to the committer thread (and to the CLI); read-only connections
 * belong to the lws thread. SQLite's own locking lets them run concurrently.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <unistd.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "appliance/app.h"
#include "appliance/ops.h"

#define TX_ROWS_PER_INSERT 16 /* rows app_store_txs_insert's long statement carries */

enum {
	ST_TX_INSERT,
	ST_GROUP_INSERT,
	ST_TX_BY_SEQ,
	ST_GROUP_GET,
	ST_GROUP_LEAVES,
	ST_TXS_RANGE,
	ST_BLOCK_INSERT,
	ST_BLOCKNS_INSERT,
	ST_BLOCK_GET,
	ST_BLOCKNS_GET,
	ST_BLOCK_TIP,
	ST_KEY_LOOKUP,
	ST_AUTH_VERSION,
	ST_DA_INSERT,
	ST_DA_GET,
	ST_DA_TIP,
	ST_META_GET,
	ST_META_SET,
	ST_PRUNE_TXS,
	ST_COUNT
};

static const char *const sql_text[ST_COUNT] = {
	[ST_TX_INSERT] = "INSERT INTO txs(seq, ns, hash, grp, slot, data) VALUES (?,?,?,?,?,?)",
	[ST_GROUP_INSERT] = "INSERT INTO groups(id, slot, first_seq, count, root, sig) VALUES (?,?,?,?,?,?)",
	[ST_TX_BY_SEQ] = "SELECT ns, grp, slot FROM txs WHERE seq = ?",
	[ST_GROUP_GET] = "SELECT slot, first_seq, count, root, sig FROM groups WHERE id = ?",
	[ST_GROUP_LEAVES] = "SELECT seq, ns, hash FROM txs WHERE seq >= ? AND seq < ? ORDER BY seq",
	[ST_TXS_RANGE] = "SELECT seq, ns, hash, grp, slot, data FROM txs WHERE seq >= ? AND seq <= ? ORDER BY seq",
	[ST_BLOCK_INSERT] = "INSERT INTO blocks(height, slot, first_seq, tx_count, header, sig, hash) VALUES (?,?,?,?,?,?,?)",
	[ST_BLOCKNS_INSERT] = "INSERT INTO block_ns(height, ns, count, root) VALUES (?,?,?,?)",
	[ST_BLOCK_GET] = "SELECT header, sig FROM blocks WHERE height = ?",
	[ST_BLOCKNS_GET] = "SELECT ns, count, root FROM block_ns WHERE height = ? ORDER BY ns",
	[ST_BLOCK_TIP] = "SELECT max(height) FROM blocks",
	[ST_KEY_LOOKUP] = "SELECT tenant_id FROM api_keys WHERE hash = ? AND revoked_ms IS NULL",
	[ST_AUTH_VERSION] = "SELECT v FROM meta WHERE k = 'auth_version'",
	[ST_DA_INSERT] = "INSERT OR REPLACE INTO da_blocks(height, record, sig) VALUES (?,?,?)",
	[ST_DA_GET] = "SELECT record, sig FROM da_blocks WHERE height = ?",
	[ST_DA_TIP] = "SELECT max(height) FROM da_blocks",
	[ST_META_GET] = "SELECT v FROM meta WHERE k = ?",
	[ST_META_SET] = "INSERT OR REPLACE INTO meta(k, v) VALUES (?, ?)",
	[ST_PRUNE_TXS] = "UPDATE txs SET data = x'' WHERE seq >= ? AND seq <= ?",
};

static const char schema[] =
	"CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v) WITHOUT ROWID;"
	"INSERT OR IGNORE INTO meta(k, v) VALUES ('schema', 1), ('auth_version', 0);"
	"CREATE TABLE IF NOT EXISTS tenants(id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL,"
	"  created_ms INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS namespaces(chain_id INTEGER PRIMARY KEY,"
	"  name TEXT UNIQUE NOT NULL, tenant_id INTEGER NOT NULL REFERENCES tenants(id),"
	"  ingress_public INTEGER NOT NULL, feed_public INTEGER NOT NULL,"
	"  created_ms INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS api_keys(id INTEGER PRIMARY KEY,"
	"  tenant_id INTEGER NOT NULL REFERENCES tenants(id), hash BLOB UNIQUE NOT NULL,"
	"  prefix TEXT NOT NULL, created_ms INTEGER NOT NULL, revoked_ms INTEGER);"
	"CREATE TABLE IF NOT EXISTS txs(seq INTEGER PRIMARY KEY, ns INTEGER NOT NULL,"
	"  hash BLOB NOT NULL, grp INTEGER NOT NULL, slot INTEGER NOT NULL, data BLOB NOT NULL);"
	/* (hash, ns) -> seq lives in txindex.db (txindex.c), off the commit path */
	"CREATE TABLE IF NOT EXISTS groups(id INTEGER PRIMARY KEY, slot INTEGER NOT NULL,"
	"  first_seq INTEGER NOT NULL, count INTEGER NOT NULL, root BLOB NOT NULL,"
	"  sig BLOB NOT NULL);"
	"CREATE TABLE IF NOT EXISTS blocks(height INTEGER PRIMARY KEY, slot INTEGER UNIQUE NOT NULL,"
	"  first_seq INTEGER NOT NULL, tx_count INTEGER NOT NULL, header BLOB NOT NULL,"
	"  sig BLOB NOT NULL, hash BLOB NOT NULL);"
	"CREATE TABLE IF NOT EXISTS block_ns(height INTEGER NOT NULL, ns INTEGER NOT NULL,"
	"  count INTEGER NOT NULL, root BLOB NOT NULL, PRIMARY KEY(height, ns)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS da_blocks(height INTEGER PRIMARY KEY, record BLOB NOT NULL,"
	"  sig BLOB NOT NULL);"
	/* proposer-ordered slots (proposer.c) */
	"CREATE TABLE IF NOT EXISTS grants(from_slot INTEGER NOT NULL, to_slot INTEGER NOT NULL,"
	"  rollup INTEGER NOT NULL, winner BLOB NOT NULL, created_ms INTEGER NOT NULL);"
	"CREATE INDEX IF NOT EXISTS grants_rollup ON grants(rollup, from_slot);"
	"CREATE TABLE IF NOT EXISTS pending(ref INTEGER NOT NULL, leg INTEGER NOT NULL,"
	"  legs INTEGER NOT NULL, slot INTEGER NOT NULL, winner BLOB NOT NULL,"
	"  ns INTEGER NOT NULL, ns_name TEXT NOT NULL, hash BLOB NOT NULL, data BLOB NOT NULL,"
	"  want_hash INTEGER NOT NULL, PRIMARY KEY(ref, leg)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS misses(id INTEGER PRIMARY KEY, slot INTEGER NOT NULL,"
	"  winner BLOB NOT NULL, reason TEXT NOT NULL, txs INTEGER NOT NULL,"
	"  at_ms INTEGER NOT NULL);"
	/* the winners decided for the open slot, so a restart inside it
	 * neither takes a second sub-block nor records a miss for one taken */
	"CREATE TABLE IF NOT EXISTS decided(slot INTEGER NOT NULL, winner BLOB NOT NULL,"
	"  PRIMARY KEY(slot, winner)) WITHOUT ROWID;";

struct app_store {
	sqlite3 *db;
	sqlite3_stmt *st[ST_COUNT];
	sqlite3_stmt *tx_insert_many; /* TX_ROWS_PER_INSERT rows (write connection) */
	int readonly;
	atomic_int wal_frames; /* WAL size after this connection's last commit */
	int wal_fd;	       /* -1, or the WAL file (app_store_wal_sync, _wal_prefetch) */
	long wal_ra_mib;       /* app_store_wal_prefetch: the MiB it last read ahead from */
	int page_size;	       /* of the database, read at open: a WAL frame's size */
	struct app_txindex *xi;		/* app_store_attach_txindex */
	sqlite3_stmt *xi_find, *xi_find_any;
	char seq_path[PATH_MAX];	/* data_dir/auth.seq (app_store_auth_seq) */
	_Atomic uint64_t *auth_seq;	/* its mapping, once app_store_auth_seq made it */
	int auth_seq_failed;
};

static int on_wal_commit(void *arg, sqlite3 *db, const char *name, int frames)
{
	struct app_store *s = arg;

	(void)db;
	(void)name;
	atomic_store(&s->wal_frames, frames);
	return SQLITE_OK;
}

static void set_err(char *errbuf, size_t errlen, sqlite3 *db)
{
	if (errbuf && errlen)
		snprintf(errbuf, errlen, "%s", db ? sqlite3_errmsg(db) : "cannot open database");
}

int app_store_set_autocheckpoint(struct app_store *s, int pages)
{
	if (pages > 0)
		return sqlite3_wal_autocheckpoint(s->db, pages) == SQLITE_OK ? 0 : APP_ESQLITE;
	/* Off: watch the WAL's size instead (replaces the autocheckpoint hook). */
	sqlite3_wal_hook(s->db, on_wal_commit, s);
	return 0;
}

/*
 * The page cache of one connection (main; app_store_attach_txindex gives
 * txindex.db the same). SQLite's default (2 MiB) is smaller than the
 * (hash, ns) index of a few hundred thousand transactions; each probe then
 * re-read its index page from the OS: 18% of the committer's samples in
 * pread at 40k tx/s (perf, tests/bench b', when that index was in
 * mezzanine.db), 1.5% with 128 MiB. Pages are allocated as they are used,
 * so the setting is a ceiling.
 */
int app_store_set_cache(struct app_store *s, long mib)
{
	char sql[64];

	snprintf(sql, sizeof(sql), "PRAGMA cache_size=-%ld;", mib * 1024);
	return sqlite3_exec(s->db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : APP_ESQLITE;
}

int app_store_wal_frames(struct app_store *s)
{
	return atomic_load(&s->wal_frames);
}

int app_store_checkpoint(struct app_store *s, int *wal_frames, int *done_frames)
{
	int rc = sqlite3_wal_checkpoint_v2(s->db, "main", SQLITE_CHECKPOINT_PASSIVE, wal_frames,
					   done_frames);

	return rc == SQLITE_OK || rc == SQLITE_BUSY ? 0 : APP_ESQLITE;
}

int app_sql_prepare_rows(sqlite3 *db, const char *head, const char *tuple, int rows,
			 sqlite3_stmt **st)
{
	sqlite3_str *q = sqlite3_str_new(db);
	char *sql;
	int rc;

	sqlite3_str_appendall(q, head);
	for (int i = 0; i < rows; i++) {
		if (i)
			sqlite3_str_appendchar(q, 1, ',');
		sqlite3_str_appendall(q, tuple);
	}
	sql = sqlite3_str_finish(q);
	if (!sql)
		return SQLITE_NOMEM;
	rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
	sqlite3_free(sql);
	return rc;
}

int64_t app_sql_int(sqlite3 *db, const char *sql, int64_t dflt)
{
	sqlite3_stmt *st = NULL;
	int64_t v = dflt;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

struct sqlite3 *app_store_db(struct app_store *s)
{
	return s->db;
}

int app_store_open(struct app_store **out, const char *data_dir, int readonly,
		   char *errbuf, size_t errlen)
{
	char path[PATH_MAX];
	struct app_store *s = calloc(1, sizeof(*s));
	int flags = readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;

	*out = NULL;
	if (!s)
		return APP_ENOMEM;
	s->readonly = readonly;
	s->wal_fd = -1;
	s->wal_ra_mib = -1;
	snprintf(path, sizeof(path), "%s/mezzanine.db", data_dir);
	snprintf(s->seq_path, sizeof(s->seq_path), "%s/auth.seq", data_dir);
	/* URI: so that txindex.db can be attached read-only (below) */
	if (sqlite3_open_v2(path, &s->db, flags | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI,
			    readonly ? NULL : app_writebehind_vfs()) != SQLITE_OK)
		goto fail;
	sqlite3_busy_timeout(s->db, 5000);
	if (!readonly) {
		if (sqlite3_exec(s->db,
				 "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
				 "PRAGMA foreign_keys=ON; PRAGMA wal_autocheckpoint=4096;",
				 NULL, NULL, NULL) != SQLITE_OK ||
		    sqlite3_exec(s->db, schema, NULL, NULL, NULL) != SQLITE_OK)
			goto fail;
	}
	for (int i = 0; i < ST_COUNT; i++) {
		if (readonly && (i == ST_TX_INSERT || i == ST_GROUP_INSERT ||
				 i == ST_BLOCK_INSERT || i == ST_BLOCKNS_INSERT))
			continue;
		if (sqlite3_prepare_v3(s->db, sql_text[i], -1, SQLITE_PREPARE_PERSISTENT,
				       &s->st[i], NULL) != SQLITE_OK)
			goto fail;
	}
	if (!readonly &&
	    app_sql_prepare_rows(s->db, "INSERT INTO txs(seq, ns, hash, grp, slot, data) VALUES ",
				 "(?,?,?,?,?,?)", TX_ROWS_PER_INSERT,
				 &s->tx_insert_many) != SQLITE_OK)
		goto fail;
	s->page_size = (int)app_sql_int(s->db, "PRAGMA page_size", 0);
	*out = s;
	return 0;
fail:
	set_err(errbuf, errlen, s->db);
	app_store_close(s);
	return APP_ESQLITE;
}

/*
 * Sequencing rights live in their own file, data_dir/rights.db, written only
 * by the sales engine (rights.c): a purchase's fsync then never holds the
 * write lock the committer needs for a group commit. Every row is the
 * public record of a sale; replaying a sale's purchases in id order, then
 * its accepted proposals, through sequencer/ rebuilds it exactly.
 *   sales:       one row per sale (params, state 0 open / 1 closed /
 *                2 settled, the seed once drawn)
 *   sale_offers: the offers a sale was created with (snapshot of offers)
 *   offers:      each namespace's standing offer, for sales not yet open
 *   purchases:   in order; buyer recovered from sig; l1_queued once handed
 *                to the outbox (2: refused by it), l1_job = which of the
 *                sale's postPurchases jobs carries it
 *   purchase_voids: purchases the chain did not escrow (PurchaseRejected,
 *                or their postPurchases failed), found before the sale
 *                settles; replayed after its proposals (seq_sale_void)
 *   proposals:   every proposal judged, accepted or not, with the reason
 *   settlements: seq_settlement_encode bytes; l1_queued, granted
 */
static const char rights_schema[] =
	"CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v) WITHOUT ROWID;"
	"INSERT OR IGNORE INTO meta(k, v) VALUES ('schema', 1);"
	"CREATE TABLE IF NOT EXISTS offers(ns INTEGER PRIMARY KEY, opt_in INTEGER NOT NULL,"
	"  reserve INTEGER NOT NULL, updated_ms INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS sales(id INTEGER PRIMARY KEY, start_slot INTEGER NOT NULL,"
	"  end_slot INTEGER NOT NULL, close_lead INTEGER NOT NULL, improve_lead INTEGER NOT NULL,"
	"  draw_block INTEGER NOT NULL, draw_l1 INTEGER NOT NULL, price INTEGER NOT NULL,"
	"  cap INTEGER NOT NULL, target INTEGER NOT NULL, burn_bps INTEGER NOT NULL,"
	"  floor INTEGER NOT NULL, opened_slot INTEGER NOT NULL, state INTEGER NOT NULL,"
	"  seed BLOB, created_ms INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS sale_offers(sale INTEGER NOT NULL REFERENCES sales(id),"
	"  ns INTEGER NOT NULL, opt_in INTEGER NOT NULL, reserve INTEGER NOT NULL,"
	"  PRIMARY KEY(sale, ns)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS purchases(id INTEGER PRIMARY KEY,"
	"  sale INTEGER NOT NULL REFERENCES sales(id), buyer BLOB NOT NULL,"
	"  rollups TEXT NOT NULL, tickets INTEGER NOT NULL, price INTEGER NOT NULL,"
	"  nonce INTEGER NOT NULL, sig BLOB NOT NULL, slot INTEGER NOT NULL,"
	"  l1_queued INTEGER NOT NULL DEFAULT 0, l1_job INTEGER, created_ms INTEGER NOT NULL,"
	"  UNIQUE(buyer, nonce));"
	"CREATE INDEX IF NOT EXISTS purchases_sale ON purchases(sale, id);"
	"CREATE TABLE IF NOT EXISTS purchase_voids(purchase INTEGER PRIMARY KEY"
	"  REFERENCES purchases(id), sale INTEGER NOT NULL REFERENCES sales(id),"
	"  reason INTEGER NOT NULL, created_ms INTEGER NOT NULL);"
	"CREATE INDEX IF NOT EXISTS purchase_voids_sale ON purchase_voids(sale);"
	"CREATE TABLE IF NOT EXISTS proposals(id INTEGER PRIMARY KEY,"
	"  sale INTEGER NOT NULL REFERENCES sales(id), bundles TEXT NOT NULL,"
	"  revenue INTEGER NOT NULL, slot INTEGER NOT NULL, accepted INTEGER NOT NULL,"
	"  reason TEXT NOT NULL, created_ms INTEGER NOT NULL);"
	"CREATE INDEX IF NOT EXISTS proposals_sale ON proposals(sale, id);"
	"CREATE TABLE IF NOT EXISTS settlements(sale INTEGER PRIMARY KEY REFERENCES sales(id),"
	"  encoding BLOB NOT NULL, slot INTEGER NOT NULL, l1_queued INTEGER NOT NULL DEFAULT 0,"
	"  granted INTEGER NOT NULL DEFAULT 0, created_ms INTEGER NOT NULL);";

int app_store_rights_open(struct sqlite3 **out, const char *data_dir, char *errbuf,
			  size_t errlen)
{
	char path[PATH_MAX];
	sqlite3 *db = NULL;

	*out = NULL;
	snprintf(path, sizeof(path), "%s/rights.db", data_dir);
	if (sqlite3_open_v2(path, &db,
			    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
			    NULL) != SQLITE_OK)
		goto fail;
	sqlite3_busy_timeout(db, 5000);
	if (sqlite3_exec(db,
			 "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;",
			 NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_exec(db, rights_schema, NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	*out = db;
	return 0;
fail:
	set_err(errbuf, errlen, db);
	sqlite3_close(db);
	return APP_ESQLITE;
}

/* Hash of the first sealed superblock at or after slot: the seed of a sale
 * drawn without L1. APP_ENOTFOUND until one is sealed. */
int app_store_block_hash_from_slot(struct app_store *s, uint64_t slot, uint8_t out[static 32],
				   uint64_t *height)
{
	sqlite3_stmt *st = NULL;
	int rc = APP_ESQLITE;

	if (sqlite3_prepare_v2(s->db,
			       "SELECT hash, height FROM blocks WHERE slot >= ? ORDER BY slot LIMIT 1",
			       -1, &st, NULL) != SQLITE_OK)
		return APP_ESQLITE;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)slot);
	switch (sqlite3_step(st)) {
	case SQLITE_ROW:
		if (sqlite3_column_bytes(st, 0) == 32) {
			memcpy(out, sqlite3_column_blob(st, 0), 32);
			*height = (uint64_t)sqlite3_column_int64(st, 1);
			rc = 0;
		}
		break;
	case SQLITE_DONE:
		rc = APP_ENOTFOUND;
		break;
	}
	sqlite3_finalize(st);
	return rc;
}

void app_store_close(struct app_store *s)
{
	if (!s)
		return;
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(s->st[i]);
	sqlite3_finalize(s->tx_insert_many);
	sqlite3_finalize(s->xi_find);
	sqlite3_finalize(s->xi_find_any);
	if (s->wal_fd >= 0)
		close(s->wal_fd);
	if (s->auth_seq)
		munmap((void *)s->auth_seq, sizeof(*s->auth_seq));
	sqlite3_close(s->db);
	free(s);
}

/*
 * synchronous=NORMAL on this connection: a COMMIT writes its WAL frames and
 * returns without an fsync. What it wrote is durable once app_store_wal_sync
 * returns. A crash before that loses a suffix of such commits, never a
 * middle one: SQLite's recovery stops at the first WAL frame whose
 * cumulative checksum fails. NORMAL still syncs the WAL before every
 * checkpoint and the database after it, and the WAL header before the WAL
 * is reused, so nothing made durable here is lost to a later checkpoint.
 */
static int exec_sql_err(struct app_store *s, const char *sql, char *errbuf, size_t errlen);

int app_store_set_wal_sync_external(struct app_store *s, char *errbuf, size_t errlen)
{
	const char *wal = sqlite3_filename_wal(sqlite3_db_filename(s->db, "main"));

	if (s->wal_fd < 0) {
		/* The WAL exists from the first read of a WAL-mode database on. */
		s->wal_fd = wal ? open(wal, O_RDONLY | O_CLOEXEC) : -1;
		if (s->wal_fd < 0) {
			int e = errno;

			snprintf(errbuf, errlen, "opening the WAL %s: %s", wal ? wal : "(none)",
				 strerror(e));
			return -e;
		}
	}
	return exec_sql_err(s, "PRAGMA synchronous=NORMAL", errbuf, errlen);
}

int app_store_wal_sync_file(struct app_store *s)
{
	const char *wal = sqlite3_filename_wal(sqlite3_db_filename(s->db, "main"));
	int fd = wal ? open(wal, O_RDONLY | O_CLOEXEC) : -1, rc = 0;

	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (fdatasync(fd))
		rc = -errno;
	close(fd);
	return rc;
}

int app_store_wal_sync(struct app_store *s)
{
	/* fdatasync covers the file, not the descriptor: every frame any
	 * connection wrote before this call. */
	return fdatasync(s->wal_fd) ? -errno : 0;
}

/*
 * The WAL is rewound after each complete checkpoint and then overwritten in
 * place, frame by frame. A frame is a page plus a 24-byte header, so a
 * group's last frame ends inside a 4 KiB page of the file; when that page is
 * no longer in the page cache the kernel reads it from disk before the write
 * returns, inside the group's commit. Pages of a file written only through
 * write(2) do leave the cache while the WAL goes round: under memory
 * pressure, or, on the benchmark's VM, to proactive reclaim (DAMON pageout of
 * unmapped file pages), which put 25-900 synchronous 4 KiB reads of the WAL
 * on the committer per 15-20 s at 10k tx/s (perf, block:block_rq_issue).
 *
 * So, once the writer enters a new MiB of the WAL, ask for that MiB and the
 * next one (POSIX_FADV_WILLNEED: readahead submitted, not waited for; pages
 * already cached cost a lookup). The reads then happen about a MiB ahead of
 * the writer, off the commit path. Best effort: an error changes nothing but
 * the timing, so it is ignored.
 */
void app_store_wal_prefetch(struct app_store *s)
{
	long frame = s->page_size + 24;
	long mib = (32 + (long)atomic_load(&s->wal_frames) * frame) >> 20;

	if (mib == s->wal_ra_mib || s->page_size <= 0)
		return;
	if (s->wal_fd < 0) {
		const char *wal = sqlite3_filename_wal(sqlite3_db_filename(s->db, "main"));

		s->wal_fd = wal ? open(wal, O_RDONLY | O_CLOEXEC) : -1;
		if (s->wal_fd < 0)
			return;
	}
	s->wal_ra_mib = mib;
	(void)posix_fadvise(s->wal_fd, (off_t)mib << 20, 2 << 20, POSIX_FADV_WILLNEED);
}

/* Run a statement that returns no rows. */
static int exec_stmt(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : APP_ESQLITE;
}

static int exec_sql(struct app_store *s, const char *sql)
{
	return sqlite3_exec(s->db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : APP_ESQLITE;
}

/*
 * The auth change counter, data_dir/auth.seq: 8 bytes, mapped shared by the
 * daemon and by every CLI process that changes tenants, namespaces, keys or
 * limits. A writer adds one after its change is committed; the daemon's lws
 * thread compares it with the value it last saw before every message
 * (auth.c), an atomic load where reading meta.auth_version cost a SQLite
 * read transaction (two fcntl locks on the -shm file, ~14% of the lws
 * thread at 10k tx/s). The counter only says "look again": the database
 * stays the truth, and auth.c still reads it once a second in case a writer
 * could not reach the file (or died between its commit and the add).
 */
static _Atomic uint64_t *seq_map(const char *path, int create)
{
	struct stat st;
	void *p;
	int fd = open(path, O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0644);

	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) || (st.st_size < (off_t)sizeof(uint64_t) &&
			       (!create || ftruncate(fd, sizeof(uint64_t))))) {
		close(fd);
		return NULL;
	}
	p = mmap(NULL, sizeof(uint64_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	return p == MAP_FAILED ? NULL : p;
}

void app_store_auth_changed(struct app_store *s)
{
	_Atomic uint64_t *c = s->auth_seq ? s->auth_seq : seq_map(s->seq_path, 0);

	if (!c) {
		/* ENOENT: no daemon has made the file, and one reads the database
		 * at start. Anything else: a running daemon notices within its
		 * once-a-second read (auth.c), not on the next request. */
		if (errno != ENOENT)
			app_warn("auth_seq", "path=\"%s\" error=\"%s\" effect=\"a running daemon "
				 "notices this change within a second, not on its next request\"",
				 s->seq_path, strerror(errno));
		return;
	}
	atomic_fetch_add_explicit(c, 1, memory_order_release);
	if (c != s->auth_seq)
		munmap((void *)c, sizeof(*c));
}

int app_store_auth_seq(struct app_store *s, uint64_t *seq)
{
	if (!s->auth_seq && !s->auth_seq_failed) {
		s->auth_seq = seq_map(s->seq_path, 1);
		s->auth_seq_failed = !s->auth_seq;
		if (s->auth_seq_failed)
			app_warn("auth_seq", "path=\"%s\" error=\"%s\" effect=\"tenant, namespace "
				 "and key changes are read from the database on every message\"",
				 s->seq_path, strerror(errno));
	}
	if (!s->auth_seq)
		return APP_ENOTFOUND;
	*seq = atomic_load_explicit(s->auth_seq, memory_order_acquire);
	return 0;
}

/* Autocommit (every caller's case): committed when it returns, so the
 * counter moves after the change is visible. */
static int bump_auth_version(struct app_store *s)
{
	int rc = exec_sql(s, "UPDATE meta SET v = v + 1 WHERE k = 'auth_version'");

	if (!rc && sqlite3_get_autocommit(s->db))
		app_store_auth_changed(s);
	return rc;
}

int app_store_auth_version(struct app_store *s, int64_t *version)
{
	sqlite3_stmt *st = s->st[ST_AUTH_VERSION];
	int rc = APP_ESQLITE;

	if (sqlite3_step(st) == SQLITE_ROW) {
		*version = sqlite3_column_int64(st, 0);
		rc = 0;
	}
	sqlite3_reset(st);
	return rc;
}

int app_store_tenant_create(struct app_store *s, const char *name, int64_t *id)
{
	sqlite3_stmt *st = NULL;
	int rc = APP_ESQLITE;

	if (sqlite3_prepare_v2(s->db, "INSERT INTO tenants(name, created_ms) VALUES (?, ?)", -1,
			       &st, NULL) != SQLITE_OK)
		return APP_ESQLITE;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (int64_t)app_wall_ms());
	switch (sqlite3_step(st)) {
	case SQLITE_DONE:
		*id = sqlite3_last_insert_rowid(s->db);
		rc = bump_auth_version(s);
		break;
	case SQLITE_CONSTRAINT:
		rc = APP_EEXIST;
		break;
	}
	sqlite3_finalize(st);
	return rc;
}

int app_store_tenant_find(struct app_store *s, const char *name, int64_t *id)
{
	sqlite3_stmt *st = NULL;
	int rc = APP_ENOTFOUND;

	if (sqlite3_prepare_v2(s->db, "SELECT id FROM tenants WHERE name = ?", -1, &st, NULL))
		return APP_ESQLITE;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		*id = sqlite3_column_int64(st, 0);
		rc = 0;
	}
	sqlite3_finalize(st);
	return rc;
}

int app_store_namespace_create(struct app_store *s, const struct app_namespace *ns)
{
	sqlite3_stmt *st = NULL;
	int rc = APP_ESQLITE;

	if (sqlite3_prepare_v2(s->db,
			       "INSERT INTO namespaces(chain_id, name, tenant_id, ingress_public,"
			       " feed_public, created_ms) VALUES (?,?,?,?,?,?)",
			       -1, &st, NULL) != SQLITE_OK)
		return APP_ESQLITE;
	sqlite3_bind_int64(st, 1, (int64_t)ns->chain_id);
	sqlite3_bind_text(st, 2, ns->name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, ns->tenant_id);
	sqlite3_bind_int(st, 4, ns->ingress_public);
	sqlite3_bind_int(st, 5, ns->feed_public);
	sqlite3_bind_int64(st, 6, (int64_t)app_wall_ms());
	switch (sqlite3_step(st)) {
	case SQLITE_DONE:
		rc = bump_auth_version(s);
		break;
	case SQLITE_CONSTRAINT:
		rc = APP_EEXIST;
		break;
	}
	sqlite3_finalize(st);
	return rc;
}

int app_store_key_create(struct app_store *s, int64_t tenant_id,
			 const uint8_t hash[static 32], const char *prefix, int64_t *id)
{
	sqlite3_stmt *st = NULL;
	int rc = APP_ESQLITE;

	if (sqlite3_prepare_v2(s->db,
			       "INSERT INTO api_keys(tenant_id, hash, prefix, created_ms)"
			       " VALUES (?,?,?,?)",
			       -1, &st, NULL) != SQLITE_OK)
		return APP_ESQLITE;
	sqlite3_bind_int64(st, 1, tenant_id);
	sqlite3_bind_blob(st, 2, hash, 32, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, prefix, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, (int64_t)app_wall_ms());
	if (sqlite3_step(st) == SQLITE_DONE) {
		*id = sqlite3_last_insert_rowid(s->db);
		rc = bump_auth_version(s);
	}
	sqlite3_finalize(st);
	return rc;
}

/*
 * One transaction: the revocation and the version bump that makes the
 * daemon drop its cached answers for the key land together or not at all.
 * Apart, a failed bump left the key revoked in the table but accepted on
 * the sockets that had it, and a retry found nothing left to revoke.
 */
int app_store_key_revoke(struct app_store *s, int64_t key_id)
{
	sqlite3_stmt *st = NULL;
	int rc = APP_ESQLITE;

	if (exec_sql(s, "BEGIN IMMEDIATE"))
		return APP_ESQLITE;
	if (sqlite3_prepare_v2(s->db,
			       "UPDATE api_keys SET revoked_ms = ? WHERE id = ? AND revoked_ms IS NULL",
			       -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, (int64_t)app_wall_ms());
		sqlite3_bind_int64(st, 2, key_id);
		if (sqlite3_step(st) == SQLITE_DONE)
			rc = sqlite3_changes(s->db) == 1 ? bump_auth_version(s) : APP_ENOTFOUND;
		sqlite3_finalize(st);
	}
	if (!rc)
		rc = exec_sql(s, "COMMIT");
	if (rc) {
		exec_sql(s, "ROLLBACK");
		return rc;
	}
	app_store_auth_changed(s);
	return 0;
}

int app_store_key_lookup(struct app_store *s, const uint8_t hash[static 32],
			 int64_t *tenant_id)
{
	sqlite3_stmt *st = s->st[ST_KEY_LOOKUP];
	int rc = APP_ENOTFOUND;

	sqlite3_bind_blob(st, 1, hash, 32, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		*tenant_id = sqlite3_column_int64(st, 0);
		rc = 0;
	}
	sqlite3_reset(st);
	return rc;
}

int app_store_namespaces(struct app_store *s, struct app_namespace **out, size_t *n)
{
	sqlite3_stmt *st = NULL;
	struct app_namespace *v = NULL;
	size_t len = 0, cap = 0;
	int rc = 0, step;

	if (sqlite3_prepare_v2(s->db,
			       "SELECT chain_id, name, tenant_id, ingress_public, feed_public"
			       " FROM namespaces ORDER BY chain_id",
			       -1, &st, NULL) != SQLITE_OK)
		return APP_ESQLITE;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		if (len == cap) {
			struct app_namespace *nv;

			cap = cap ? cap * 2 : 16;
			nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				rc = APP_ENOMEM;
				goto out;
			}
			v = nv;
		}
		memset(&v[len], 0, sizeof(v[len]));
		v[len].chain_id = (uint64_t)sqlite3_column_int64(st, 0);
		snprintf(v[len].name, sizeof(v[len].name), "%s",
			 (const char *)sqlite3_column_text(st, 1));
		v[len].tenant_id = sqlite3_column_int64(st, 2);
		v[len].ingress_public = sqlite3_column_int(st, 3);
		v[len].feed_public = sqlite3_column_int(st, 4);
		len++;
	}
	if (step != SQLITE_DONE)
		rc = APP_ESQLITE;
out:
	sqlite3_finalize(st);
	if (rc) {
		free(v);
		return rc;
	}
	*out = v;
	*n = len;
	return 0;
}

int app_store_tip(struct app_store *s, struct app_tip *tip)
{
	sqlite3_stmt *st = NULL;
	uint64_t h;
	int rc;

	memset(tip, 0, sizeof(*tip));
	tip->next_seq = 1;
	tip->next_group = 1;
	if (sqlite3_prepare_v2(s->db, "SELECT (SELECT max(seq) FROM txs), (SELECT max(id) FROM groups)",
			       -1, &st, NULL) != SQLITE_OK)
		return APP_ESQLITE;
	if (sqlite3_step(st) == SQLITE_ROW) {
		if (sqlite3_column_type(st, 0) != SQLITE_NULL)
			tip->next_seq = (uint64_t)sqlite3_column_int64(st, 0) + 1;
		if (sqlite3_column_type(st, 1) != SQLITE_NULL)
			tip->next_group = (uint64_t)sqlite3_column_int64(st, 1) + 1;
	}
	sqlite3_finalize(st);
	rc = app_store_block_tip(s, &h);
	if (rc == APP_ENOTFOUND)
		return 0;
	if (rc)
		return rc;
	{
		uint8_t sig[64];
		struct seq_block_ns *ns = NULL;
		size_t nn;

		rc = app_store_block_get(s, h, &tip->last, sig, &ns, &nn);
		free(ns);
		if (rc)
			return rc;
	}
	tip->has_block = 1;
	seq_block_hash(tip->last_hash, &tip->last);
	return 0;
}

/* Every partition of txindex.db (the answer is the lowest seq, so none is
 * skipped) and a probe of each: the CROSS JOINs keep the loop order (a seek
 * on (p, k) per partition, then txs by seq), where the planner could
 * otherwise scan tx_hash. */
#define XI_PARTS                                                                  \
	"WITH RECURSIVE ps(p) AS (SELECT max(p) FROM xi.tx_hash"                  \
	" UNION ALL SELECT p - 1 FROM ps WHERE p > 0) "
#define XI_PROBE                                                                  \
	" ps CROSS JOIN xi.tx_hash AS x CROSS JOIN main.txs AS t ON t.seq = x.seq" \
	" WHERE x.p = ps.p AND x.k = substr(?1, 1, 8)"

/* "file:<path>?mode=ro", the path percent-encoded where a URI needs it. */
static int ro_uri(char *out, size_t cap, const char *path)
{
	size_t w = (size_t)snprintf(out, cap, "file:");

	for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
		if (w + 4 >= cap)
			return -1;
		if (*p == '%' || *p == '?' || *p == '#' || *p <= ' ' || *p >= 0x7f)
			w += (size_t)snprintf(out + w, cap - w, "%%%02X", *p);
		else
			out[w++] = (char)*p;
	}
	return w + sizeof("?mode=ro") <= cap ? (snprintf(out + w, cap - w, "?mode=ro"), 0) : -1;
}

int app_store_attach_txindex(struct app_store *s, struct app_txindex *x, char *errbuf,
			      size_t errlen)
{
	char sql[3 * PATH_MAX + 96], uri[3 * PATH_MAX + 32];
	/* xi gets main's page cache: the committer probes it for every new
	 * transaction, and the default (-2000: 2 MiB) would re-read its pages
	 * from the OS. */
	int64_t cache = app_sql_int(s->db, "PRAGMA main.cache_size", -2000);

	/* Read-only: the committer only reads it, and a group's BEGIN
	 * IMMEDIATE takes the write lock of every database attached writable,
	 * which made it wait on (and, past the busy timeout, halt behind)
	 * mz-index's merges into txindex.db. */
	if (ro_uri(uri, sizeof(uri), app_txindex_path(x))) {
		snprintf(errbuf, errlen, "txindex path too long: %s", app_txindex_path(x));
		return APP_EINVAL;
	}
	sqlite3_snprintf(sizeof(sql), sql, "ATTACH DATABASE %Q AS xi; PRAGMA xi.cache_size=%lld;",
			 uri, (long long)cache);
	if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK ||
	    /* txindex.db keeps the hash's first 8 bytes, txs all 32; a seek in
	     * each partition (txindex.c, "Partitions") */
	    sqlite3_prepare_v3(s->db, XI_PARTS "SELECT min(x.seq) FROM" XI_PROBE
			       " AND x.ns = ?2 AND t.hash = ?1",
			       -1, SQLITE_PREPARE_PERSISTENT, &s->xi_find, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v3(s->db, XI_PARTS "SELECT min(x.seq) FROM" XI_PROBE
			       " AND t.hash = ?1",
			       -1, SQLITE_PREPARE_PERSISTENT, &s->xi_find_any, NULL) != SQLITE_OK) {
		set_err(errbuf, errlen, s->db);
		return APP_ESQLITE;
	}
	s->xi = x;
	return 0;
}

/*
 * (ns, hash) -> seq: the memory map first, then txindex.db (txindex.c says
 * why this order cannot miss an entry moving between them). ns == 0: the
 * lowest seq of that hash in any namespace. 1 found, 0 not, or an error.
 */
static int seq_of(struct app_store *s, uint64_t ns, const uint8_t hash[static 32],
		  uint64_t *seq)
{
	sqlite3_stmt *st = ns ? s->xi_find : s->xi_find_any;
	int found, step, maybe_db;

	if (!s->xi)
		return APP_EINVAL;
	found = app_txindex_find(s->xi, ns, hash, seq, &maybe_db);
	if (found && ns)
		return 1;
	if (!maybe_db) {
		app_metric_add(APP_M_txindex_filter_skips_total, 1);
		return found;
	}
	sqlite3_bind_blob(st, 1, hash, 32, SQLITE_STATIC);
	if (ns)
		sqlite3_bind_int64(st, 2, (int64_t)ns);
	step = sqlite3_step(st);
	if (step == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
		uint64_t v = (uint64_t)sqlite3_column_int64(st, 0);

		if (!found || v < *seq)
			*seq = v;
		found = 1;
	}
	sqlite3_reset(st);
	return step == SQLITE_ROW || step == SQLITE_DONE ? found : APP_ESQLITE;
}

int app_store_tx_known(struct app_store *s, uint64_t ns, const uint8_t hash[static 32])
{
	uint64_t seq;

	return seq_of(s, ns, hash, &seq);
}

void app_store_tx_prefetch(struct app_store *s, const uint8_t *const *hashes, size_t n)
{
	if (s->xi)
		app_txindex_prefetch(s->xi, hashes, n);
}

int app_store_tx_find(struct app_store *s, uint64_t ns, const uint8_t hash[static 32],
		      struct app_tx *tx)
{
	sqlite3_stmt *st = s->st[ST_TX_BY_SEQ];
	uint64_t seq = 0;
	int rc = seq_of(s, ns, hash, &seq);

	if (rc <= 0)
		return rc ? rc : APP_ENOTFOUND;
	rc = APP_ESQLITE; /* indexed but absent: the index does not match txs */
	sqlite3_bind_int64(st, 1, (int64_t)seq);
	if (sqlite3_step(st) == SQLITE_ROW) {
		memset(tx, 0, sizeof(*tx));
		tx->seq = seq;
		tx->ns = (uint64_t)sqlite3_column_int64(st, 0);
		tx->group_id = (uint64_t)sqlite3_column_int64(st, 1);
		tx->slot = (uint64_t)sqlite3_column_int64(st, 2);
		memcpy(tx->hash, hash, 32);
		rc = 0;
	}
	sqlite3_reset(st);
	return rc;
}

static int copy_blob(uint8_t *dst, size_t len, sqlite3_stmt *st, int col)
{
	if ((size_t)sqlite3_column_bytes(st, col) != len)
		return APP_ESQLITE;
	memcpy(dst, sqlite3_column_blob(st, col), len);
	return 0;
}

int app_store_group_load(struct app_store *s, uint64_t group_id, struct seq_group_hdr *h,
			 uint8_t sig[static 64], uint8_t (**leaves)[32])
{
	sqlite3_stmt *st = s->st[ST_GROUP_GET];
	uint8_t (*lv)[32] = NULL;
	int rc = APP_ENOTFOUND;
	size_t i = 0;

	*leaves = NULL;
	sqlite3_bind_int64(st, 1, (int64_t)group_id);
	if (sqlite3_step(st) == SQLITE_ROW) {
		h->group_id = group_id;
		h->slot = (uint64_t)sqlite3_column_int64(st, 0);
		h->first_seq = (uint64_t)sqlite3_column_int64(st, 1);
		h->count = (uint32_t)sqlite3_column_int64(st, 2);
		rc = copy_blob(h->root, 32, st, 3);
		if (!rc)
			rc = copy_blob(sig, 64, st, 4);
	}
	sqlite3_reset(st);
	if (rc)
		return rc;
	lv = malloc((size_t)h->count * 32);
	if (!lv)
		return APP_ENOMEM;
	st = s->st[ST_GROUP_LEAVES];
	sqlite3_bind_int64(st, 1, (int64_t)h->first_seq);
	sqlite3_bind_int64(st, 2, (int64_t)(h->first_seq + h->count));
	while (sqlite3_step(st) == SQLITE_ROW && i < h->count) {
		uint8_t th[32];

		if (copy_blob(th, 32, st, 2))
			break;
		seq_merkle_tx_leaf(lv[i], (uint64_t)sqlite3_column_int64(st, 0),
				   (uint64_t)sqlite3_column_int64(st, 1), th);
		i++;
	}
	sqlite3_reset(st);
	if (i != h->count) {
		free(lv);
		return APP_ESQLITE;
	}
	*leaves = lv;
	return 0;
}

/* exec_sql that also reports SQLite's message. */
static int exec_sql_err(struct app_store *s, const char *sql, char *errbuf, size_t errlen)
{
	if (exec_sql(s, sql)) {
		set_err(errbuf, errlen, s->db);
		return APP_ESQLITE;
	}
	return 0;
}

int app_store_begin(struct app_store *s, char *errbuf, size_t errlen)
{
	/* IMMEDIATE: the write lock is taken here, under the busy timeout. A
	 * deferred BEGIN whose first statement reads (a txindex probe of txs)
	 * upgrades to a writer later, and an upgrade meeting another writer (the
	 * CLI) fails at once with SQLITE_BUSY, no busy handler: a halt. */
	return exec_sql_err(s, "BEGIN IMMEDIATE", errbuf, errlen);
}

/* Binds t as the row whose first parameter is `at`. */
static void bind_tx(sqlite3_stmt *st, int at, const struct app_tx *t)
{
	sqlite3_bind_int64(st, at, (int64_t)t->seq);
	sqlite3_bind_int64(st, at + 1, (int64_t)t->ns);
	sqlite3_bind_blob(st, at + 2, t->hash, 32, SQLITE_STATIC);
	sqlite3_bind_int64(st, at + 3, (int64_t)t->group_id);
	sqlite3_bind_int64(st, at + 4, (int64_t)t->slot);
	sqlite3_bind_blob(st, at + 5, t->data, (int)t->len, SQLITE_STATIC);
}

int app_store_tx_insert(struct app_store *s, const struct app_tx *t, char *errbuf,
			size_t errlen)
{
	return app_store_txs_insert(s, t, 1, errbuf, errlen);
}

/*
 * TX_ROWS_PER_INSERT rows a statement while they last, then the rest one at
 * a time: SQLite's per-statement work (reset, the program's prologue, the
 * cursor's open) was a fifth of a row's insert (1.0 against 0.82 us a row
 * in a standalone run of 1,600-row transactions).
 */
int app_store_txs_insert(struct app_store *s, const struct app_tx *t, size_t n, char *errbuf,
			 size_t errlen)
{
	for (size_t i = 0; i < n;) {
		int many = n - i >= TX_ROWS_PER_INSERT;
		sqlite3_stmt *st = many ? s->tx_insert_many : s->st[ST_TX_INSERT];
		size_t k = many ? TX_ROWS_PER_INSERT : 1;

		for (size_t j = 0; j < k; j++)
			bind_tx(st, 1 + 6 * (int)j, &t[i + j]);
		if (exec_stmt(st)) {
			set_err(errbuf, errlen, s->db);
			return APP_ESQLITE;
		}
		i += k;
	}
	return 0;
}

int app_store_group_insert(struct app_store *s, const struct seq_group *g, char *errbuf,
			   size_t errlen)
{
	sqlite3_stmt *st = s->st[ST_GROUP_INSERT];

	sqlite3_bind_int64(st, 1, (int64_t)g->hdr.group_id);
	sqlite3_bind_int64(st, 2, (int64_t)g->hdr.slot);
	sqlite3_bind_int64(st, 3, (int64_t)g->hdr.first_seq);
	sqlite3_bind_int64(st, 4, g->hdr.count);
	sqlite3_bind_blob(st, 5, g->hdr.root, 32, SQLITE_STATIC);
	sqlite3_bind_blob(st, 6, g->sig, 64, SQLITE_STATIC);
	if (exec_stmt(st)) {
		set_err(errbuf, errlen, s->db);
		return APP_ESQLITE;
	}
	return 0;
}

int app_store_commit(struct app_store *s, char *errbuf, size_t errlen)
{
	return exec_sql_err(s, "COMMIT", errbuf, errlen);
}

void app_store_rollback(struct app_store *s)
{
	if (!sqlite3_get_autocommit(s->db))
		exec_sql(s, "ROLLBACK");
}

void app_txs_free(struct app_tx *txs, size_t n)
{
	if (!txs)
		return;
	for (size_t i = 0; i < n; i++)
		free(txs[i].data);
	free(txs);
}

int app_store_txs_range(struct app_store *s, uint64_t first, uint64_t last,
			struct app_tx **out, size_t *n)
{
	sqlite3_stmt *st = s->st[ST_TXS_RANGE];
	struct app_tx *v = NULL;
	size_t len = 0, cap = 0;
	int rc = 0, step;

	*out = NULL;
	*n = 0;
	if (last < first)
		return 0;
	sqlite3_bind_int64(st, 1, (int64_t)first);
	sqlite3_bind_int64(st, 2, (int64_t)last);
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		struct app_tx *t;
		size_t dlen = (size_t)sqlite3_column_bytes(st, 5);

		if (len == cap) {
			struct app_tx *nv;

			cap = cap ? cap * 2 : 64;
			nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				rc = APP_ENOMEM;
				break;
			}
			v = nv;
		}
		t = &v[len];
		memset(t, 0, sizeof(*t));
		t->seq = (uint64_t)sqlite3_column_int64(st, 0);
		t->ns = (uint64_t)sqlite3_column_int64(st, 1);
		t->group_id = (uint64_t)sqlite3_column_int64(st, 3);
		t->slot = (uint64_t)sqlite3_column_int64(st, 4);
		if (copy_blob(t->hash, 32, st, 2)) {
			rc = APP_ESQLITE;
			break;
		}
		t->data = malloc(dlen ? dlen : 1);
		if (!t->data) {
			rc = APP_ENOMEM;
			break;
		}
		memcpy(t->data, sqlite3_column_blob(st, 5), dlen);
		t->len = dlen;
		len++;
	}
	if (!rc && step != SQLITE_DONE)
		rc = APP_ESQLITE;
	sqlite3_reset(st);
	if (rc) {
		app_txs_free(v, len);
		return rc;
	}
	*out = v;
	*n = len;
	return 0;
}

int app_store_block_insert(struct app_store *s, const struct seq_block_hdr *h,
			   const uint8_t sig[static 64], const struct seq_block_ns *ns,
			   size_t ns_count, char *errbuf, size_t errlen)
{
	uint8_t enc[SEQ_BLOCK_HDR_LEN], hash[32];
	sqlite3_stmt *st = s->st[ST_BLOCK_INSERT];

	seq_block_hdr_encode(enc, h);
	seq_block_hash(hash, h);
	sqlite3_bind_int64(st, 1, (int64_t)h->height);
	sqlite3_bind_int64(st, 2, (int64_t)h->slot);
	sqlite3_bind_int64(st, 3, (int64_t)h->first_seq);
	sqlite3_bind_int64(st, 4, (int64_t)h->tx_count);
	sqlite3_bind_blob(st, 5, enc, sizeof(enc), SQLITE_STATIC);
	sqlite3_bind_blob(st, 6, sig, 64, SQLITE_STATIC);
	sqlite3_bind_blob(st, 7, hash, 32, SQLITE_STATIC);
	if (exec_stmt(st))
		goto fail;
	st = s->st[ST_BLOCKNS_INSERT];
	for (size_t i = 0; i < ns_count; i++) {
		sqlite3_bind_int64(st, 1, (int64_t)h->height);
		sqlite3_bind_int64(st, 2, (int64_t)ns[i].ns);
		sqlite3_bind_int64(st, 3, (int64_t)ns[i].count);
		sqlite3_bind_blob(st, 4, ns[i].root, 32, SQLITE_STATIC);
		if (exec_stmt(st))
			goto fail;
	}
	return 0;
fail:
	set_err(errbuf, errlen, s->db);
	return APP_ESQLITE;
}

int app_store_block_put(struct app_store *s, const struct seq_block_hdr *h,
			const uint8_t sig[static 64], const struct seq_block_ns *ns,
			size_t ns_count, char *errbuf, size_t errlen)
{
	int rc = app_store_begin(s, errbuf, errlen);

	if (!rc)
		rc = app_store_block_insert(s, h, sig, ns, ns_count, errbuf, errlen);
	if (!rc)
		rc = app_store_commit(s, errbuf, errlen);
	if (rc)
		app_store_rollback(s);
	return rc;
}

int app_store_block_get(struct app_store *s, uint64_t height, struct seq_block_hdr *h,
			uint8_t sig[static 64], struct seq_block_ns **ns, size_t *ns_count)
{
	sqlite3_stmt *st = s->st[ST_BLOCK_GET];
	struct seq_block_ns *v = NULL;
	size_t len = 0;
	int rc = APP_ENOTFOUND;

	*ns = NULL;
	*ns_count = 0;
	sqlite3_bind_int64(st, 1, (int64_t)height);
	if (sqlite3_step(st) == SQLITE_ROW) {
		rc = seq_block_hdr_decode(h, sqlite3_column_blob(st, 0),
					  (size_t)sqlite3_column_bytes(st, 0));
		if (!rc)
			rc = copy_blob(sig, 64, st, 1);
	}
	sqlite3_reset(st);
	if (rc)
		return rc;
	if (h->ns_count) {
		v = calloc(h->ns_count, sizeof(*v));
		if (!v)
			return APP_ENOMEM;
	}
	st = s->st[ST_BLOCKNS_GET];
	sqlite3_bind_int64(st, 1, (int64_t)height);
	while (len < h->ns_count && sqlite3_step(st) == SQLITE_ROW) {
		v[len].ns = (uint64_t)sqlite3_column_int64(st, 0);
		v[len].count = (uint64_t)sqlite3_column_int64(st, 1);
		if (copy_blob(v[len].root, 32, st, 2))
			break;
		len++;
	}
	sqlite3_reset(st);
	if (len != h->ns_count) {
		free(v);
		return APP_ESQLITE;
	}
	*ns = v;
	*ns_count = len;
	return 0;
}

int app_store_block_tip(struct app_store *s, uint64_t *height)
{
	sqlite3_stmt *st = s->st[ST_BLOCK_TIP];
	int rc = APP_ENOTFOUND;

	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
		*height = (uint64_t)sqlite3_column_int64(st, 0);
		rc = 0;
	}
	sqlite3_reset(st);
	return rc;
}

int app_store_da_insert(struct app_store *s, uint64_t height, const uint8_t *record,
			size_t record_len, const uint8_t sig[static 64], char *errbuf,
			size_t errlen)
{
	sqlite3_stmt *st = s->st[ST_DA_INSERT];

	sqlite3_bind_int64(st, 1, (int64_t)height);
	sqlite3_bind_blob(st, 2, record, (int)record_len, SQLITE_STATIC);
	sqlite3_bind_blob(st, 3, sig, 64, SQLITE_STATIC);
	if (exec_stmt(st)) {
		set_err(errbuf, errlen, s->db);
		return APP_ESQLITE;
	}
	return 0;
}

int app_store_da_get(struct app_store *s, uint64_t height, uint8_t *record, size_t record_len,
		     uint8_t sig[static 64])
{
	sqlite3_stmt *st = s->st[ST_DA_GET];
	int rc = APP_ENOTFOUND;

	sqlite3_bind_int64(st, 1, (int64_t)height);
	if (sqlite3_step(st) == SQLITE_ROW) {
		rc = copy_blob(record, record_len, st, 0);
		if (!rc)
			rc = copy_blob(sig, 64, st, 1);
	}
	sqlite3_reset(st);
	return rc;
}

int app_store_da_tip(struct app_store *s, uint64_t *height)
{
	sqlite3_stmt *st = s->st[ST_DA_TIP];
	int rc = APP_ENOTFOUND;

	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
		*height = (uint64_t)sqlite3_column_int64(st, 0);
		rc = 0;
	}
	sqlite3_reset(st);
	return rc;
}

int app_store_meta_u64(struct app_store *s, const char *key, uint64_t *v)
{
	sqlite3_stmt *st = s->st[ST_META_GET];
	int rc = APP_ENOTFOUND;

	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) == SQLITE_INTEGER) {
		*v = (uint64_t)sqlite3_column_int64(st, 0);
		rc = 0;
	}
	sqlite3_reset(st);
	return rc;
}

int app_store_block_has_txs(struct app_store *s, uint64_t height)
{
	uint64_t below = 0;

	app_store_meta_u64(s, "txs_pruned_below", &below);
	return height >= below;
}

int app_store_meta_set_u64(struct app_store *s, const char *key, uint64_t v, char *errbuf,
			   size_t errlen)
{
	sqlite3_stmt *st = s->st[ST_META_SET];

	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (int64_t)v);
	if (exec_stmt(st)) {
		set_err(errbuf, errlen, s->db);
		return APP_ESQLITE;
	}
	return 0;
}

int app_store_prune_payloads(struct app_store *s, uint64_t first_seq, uint64_t last_seq,
			     uint64_t below, char *errbuf, size_t errlen)
{
	sqlite3_stmt *st = s->st[ST_PRUNE_TXS];

	if (last_seq >= first_seq) {
		sqlite3_bind_int64(st, 1, (int64_t)first_seq);
		sqlite3_bind_int64(st, 2, (int64_t)last_seq);
		if (exec_stmt(st)) {
			set_err(errbuf, errlen, s->db);
			return APP_ESQLITE;
		}
	}
	return app_store_meta_set_u64(s, "txs_pruned_below", below, errbuf, errlen);
}

/* Savepoints inside the group's transaction: one bundle's inserts are undone
 * together when any of its legs cannot be inserted. */
int app_store_savepoint(struct app_store *s, char *errbuf, size_t errlen)
{
	return exec_sql_err(s, "SAVEPOINT bundle", errbuf, errlen);
}

int app_store_savepoint_release(struct app_store *s, char *errbuf, size_t errlen)
{
	return exec_sql_err(s, "RELEASE bundle", errbuf, errlen);
}

int app_store_savepoint_rollback(struct app_store *s, char *errbuf, size_t errlen)
{
	int rc = exec_sql_err(s, "ROLLBACK TO bundle", errbuf, errlen);

	return rc ? rc : exec_sql_err(s, "RELEASE bundle", errbuf, errlen);
}
