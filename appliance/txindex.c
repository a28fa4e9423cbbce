/*
 * txindex.c - the (hash, namespace) -> seq index, kept off the commit path.
 *
 * Why not a unique index on txs(hash, ns): its keys are Keccak hashes, so each
 * transaction of a group lands on a different 4 KiB index page, and every
 * group's COMMIT wrote one index page per transaction into the WAL (4.6 KB
 * of WAL per 200-byte transaction; pwrite plus its writeback were 30% of the
 * committer's samples at 44k tx/s). Now:
 *
 *   txs (mezzanine.db)   the truth, appended in seq order; no hash index.
 *   txindex.db           tx_hash(k, ns, seq) for every seq below its
 *                        `indexed` mark. Derived data: rebuilt from txs when
 *                        it is missing or does not match (app_txindex_open).
 *   the map (memory)     every transaction from `floor` on, added by the
 *                        committer right after its group's COMMIT, in seq
 *                        order; floor <= indexed.
 *   mz-index (thread)    moves durable transactions (below stats.durable_seq)
 *                        from the map into txindex.db, sorted by key, a
 *                        batch at a time (a size that grows with the index,
 *                        below; or whatever is left once arrivals pause),
 *                        in paced pieces of consecutive keys (below): an
 *                        index page is written once per batch instead of
 *                        once per transaction.
 *
 * A lookup reads the map, then txindex.db. The map holds a transaction until
 * txindex.db has committed it, and entries leave the map only on the
 * committer thread, before it opens a group's transaction
 * (app_txindex_prune). So a lookup that misses the map starts its read of
 * txindex.db after the commit that justified the removal, whichever thread
 * it runs on: the committer's reads of txindex.db inside a group see a
 * snapshot taken after its last prune, and other threads read in autocommit.
 *
 * A row keeps 8 bytes of the hash, not 32 (format 2, below): a lookup that
 * finds the prefix checks the whole hash in txs, by seq.
 *
 * Only durable transactions are indexed, so txindex.db never names a seq a
 * crash could take back. Its own writes are synchronous=NORMAL: a crash may
 * roll txindex.db back to an earlier batch, never tear one (WAL), and the
 * next start catches up from its `indexed` mark.
 *
 * Partitions (format 3): a row also carries p = seq >> XI_PART_SHIFT, first
 * in its key, so txindex.db is a run of partitions of 2M consecutive seqs,
 * each its own key range, and a merge writes into the newest one (two, when
 * a batch crosses a boundary) instead of into one B-tree of every row. Its
 * keys are random, so a batch of B keys into P pages writes about
 * P * (1 - e^(-B/P)) pages: with one tree P grew with every row stored, and
 * so did the merge's CPU per key (0.8 us at 1M rows, 3.6 us at 11.5M in a
 * bare SQLite loop of this merge, and mz-index fell behind a minute of
 * batched load: BENCHMARKS.md). A partition stops at about 12k pages
 * (50 MB), inside mz-index's 64 MiB page cache: 1.0-1.4 us a key however
 * many rows are stored. A lookup that the filter lets through probes every
 * partition (store.c): a seek each, on the rare path.
 *
 * Memory: the map holds what mz-index has not merged yet; past XI_MAX_LIVE
 * entries the committer waits for a merge before its next group.
 *
 * The filter: almost every lookup is of a new transaction, which the map
 * misses and txindex.db then misses too, after a B-tree descent (41% of
 * the committer's samples under batched load, perf). A Bloom filter over
 * every hash in the map or txindex.db answers most of those misses from
 * memory. Hashes enter it in app_txindex_add, under the mutex, before they
 * can reach txindex.db; what txindex.db held at start is read into it by
 * mz-xfilter, a thread that runs once at start (a read snapshot of its
 * own), and until that is done every lookup goes on to txindex.db. Bits are
 * never cleared, so a pruned or reverted hash only costs a lookup. It is
 * sized for the rows there are, 16 bits a row and 3M rows to grow (8 to
 * 256 MiB), at open and again whenever the rows pass a sixteenth of its bits
 * (mz-xgrow, "Growing the filter" below). Past its size its false positives
 * rise, and each sends a lookup on to txindex.db (a seek per partition),
 * never fewer answers.
 *
 * The filter's snapshot: mz-xfilter reads every row of txindex.db, 26 s at
 * 10^8 rows (BENCHMARKS.md), a core's worth of work during which every new
 * transaction's lookup reads txindex.db. So a clean close writes the filter
 * to data_dir/txindex.filter (snapshot_save), and the next open takes it
 * instead (snapshot_load) if it covers exactly the transactions stored: its
 * end is mezzanine.db's next seq, and the hashes of seq 1 and of its last
 * seq are the database's (another or a restored history fails that). A
 * BLAKE2b digest covers the file, so a torn or damaged one is refused, and
 * open deletes it once read, used or not: a file on disk is always the last
 * clean close's, never one a crash left behind with rows stored after it.
 * Anything refused means the loader runs, as without a snapshot. A wrong
 * snapshot could only hide hashes (a duplicate let through), which is why
 * every check is on the side of refusing it.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <pthread.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "appliance/app.h"
#include "appliance/ops.h"

/*
 * When to merge. Merging B random keys into P pages writes one page per key
 * while B << P, P in all once B >> P (above). So a batch grows with the
 * index (a sixteenth of its rows: at ~170 rows a page, ten times the pages
 * of an index in one partition, and 40 times a full partition's ~12k pages
 * at the cap), from XI_BATCH up to half of XI_MAX_LIVE; and whatever is
 * left merges once no transaction has arrived for XI_IDLE_MS.
 *
 * XI_BATCH is for a young index, where B >> P and every merge rewrites the
 * whole newest partition: the fewer merges, the fewer pages. At 64k a batch,
 * from an empty database at 110-120k tx/s, mz-index wrote 379-419 bytes a
 * transaction (its WAL and their checkpoints, 20 times a row's 21 bytes); at
 * 256k, 92-139 bytes (three interleaved 10 s pairs of the peers' closed
 * loop). Its CPU, with the radix sort below on both sides: 1.47-1.59 us a
 * transaction at 64k, 1.11-1.16 us at 256k (three pairs of the batched
 * closed loop at 180-200k tx/s). What it costs: up to 256k more
 * entries in the map before a merge (12 MB; the map's cap is XI_MAX_LIVE
 * either way) and as many rows more for the catch-up after a crash.
 */
#define XI_BATCH (1u << 18)
#define XI_IDLE_MS 1000
#define XI_MAX_LIVE APP_TXINDEX_MAX_LIVE /* map entries before the committer waits */
#define XI_INITIAL_CAP (1u << 12)

/*
 * The merge goes to disk in pieces. One batch in one COMMIT wrote, into a
 * small index, ~3,000 pages at once: 12 MB of WAL, then a checkpoint that
 * fsynced it and 12 MB more, on the disk the committer fsyncs every group
 * on; at 10k tx/s the slow preconfirmations came in clusters around those
 * merges (BENCHMARKS.md). Now the sorted batch goes in consecutive key
 * ranges, each its own transaction. Key ranges keep the merge's economy: a
 * page is still written once per batch. SQLite's own checkpoint (every
 * 1,000 pages of WAL) then comes every few pieces, a few MB at a time. A
 * checkpoint after every piece (two fsyncs each) was tried and was worse:
 * 1.6 to 3.8 times the preconfirmations slower than 4 ms, in three
 * interleaved pairs at 10k tx/s.
 *
 * A piece aims at XI_PIECE_PAGES pages written (the next piece's row count
 * follows what the last one wrote, starting at XI_PIECE_ROWS), and between
 * pieces mz-index pauses XI_PACE times as long as the piece took (at most
 * XI_PACE_MAX_MS), unless the next batch is already waiting or the map is
 * within XI_PACE_ROOM of its cap: the disk is never the merge's for long,
 * and pacing never makes mz-index fall behind. The cap matters because the
 * committer can drop nothing from the map until the whole batch is merged
 * (entries leave in seq order; pieces go in key order). Without the room
 * check a batch larger than the cap's half (all that was durable when the
 * merge began) left the next batch never "ready": at 200k tx/s past 8M rows
 * the map filled during paced merges and the committer waited for them,
 * 0.3-1.1 s at a time, with both cores idle (peerload --trace against
 * sched_switch and tcp_probe; BENCHMARKS.md).
 *
 * A crash between pieces leaves rows for seqs at or above `indexed` without
 * the mark. They are true (only durable transactions merge), so the
 * catch-up and a retried merge insert OR IGNORE; and the first piece of
 * several records `pending` (the batch's end), so that a database restored
 * to before it is caught by matches() as a mark past its end would be.
 */
#define XI_PIECE_PAGES 256
#define XI_PIECE_ROWS 4096
#define XI_PIECE_MIN 256
#define XI_PACE 3
#define XI_PACE_MAX_MS 50
#define XI_PACE_ROOM (XI_MAX_LIVE / 4) /* map entries left below the cap: no pause */
#define XF_MIN_BITS (1ull << 26) /* 8 MiB */
#define XF_MAX_BITS (1ull << 31) /* 256 MiB */
#define XF_SLACK_ROWS (3ull << 20) /* rows to grow by, whenever it is sized */
#define XF_PROBES 4
#define XF_GROW_SLICE 4096	  /* map entries mz-xgrow copies per hold of the mutex */
#define XF_RETRY_ROWS (1ull << 20) /* after a growth failed: rows before the next try */
#define XF_FILL_ROWS 65536 /* keys read per read transaction (filter_fill) */
#define XF_FILL_GAP_MS 100 /* mz-xgrow's pause between two of those, no read open */

/*
 * Format 3: a row is (p, k, ns, seq), p its partition (above), k the hash's
 * first 8 bytes. Format 2 was the same rows without p. Keccak output
 * is uniform, so two stored hashes share k about once in 2^64 / N lookups
 * (5e-12 at N = 10^8); when they do, both rows are kept (seq is in the key)
 * and the lookup's join on txs picks the one whose whole hash matches. The
 * 32-byte key of format 1 made a row 45 bytes of a page against 21: twice
 * the pages for the same rows, and so twice the pages a merge writes, the
 * WAL it fills and the checkpoints behind it, on the committer's disk. A
 * txindex.db of another format is rebuilt at open (PRAGMA user_version).
 */
#define XI_FORMAT 3
#define XI_PART_SHIFT APP_TXINDEX_PART_SHIFT /* 2,097,152 seqs a partition */
#define XI_STR_(x) #x
#define XI_STR(x) XI_STR_(x)
#define XI_KEY 8
#define XI_ROWS_PER_INSERT 64 /* rows one INSERT statement carries in a merge */

struct xent {
	uint8_t hash[32];
	uint64_t ns;
	uint64_t seq;
};

static uint64_t part_of(uint64_t seq)
{
	return seq >> XI_PART_SHIFT;
}

/* A Bloom filter's bit words: a power of two of them, in 512-bit blocks. */
struct xfilter {
	_Atomic uint64_t *bits;
	uint64_t mask;	/* bit count - 1 */
	unsigned shift; /* log2 of the number of blocks */
};

struct app_txindex {
	pthread_mutex_t mu;
	pthread_cond_t cv; /* mz-index: work or stop; the committer: a merge happened */
	struct xent *ent;  /* ent[i].seq == floor + i */
	size_t n, cap;
	uint32_t *slot; /* open addressing over ent; UINT32_MAX is empty */
	size_t nslot;	/* a power of two, 2 * cap */
	uint64_t floor;
	uint64_t indexed; /* txindex.db holds every seq below */
	uint64_t last_add_ns;
	const atomic_uint_fast64_t *durable;
	sqlite3 *db; /* mz-index's connection (and app_txindex_open's) */
	sqlite3_stmt *ins, *ins_many, *mark, *pending;
	size_t piece_rows; /* rows in a merge's next piece (mz-index's) */
	char path[PATH_MAX];
	pthread_t thread;
	int started, stop;
	int nice; /* mz-index's background priority */
	/* the filter (above); fnext: its successor while mz-xgrow builds it
	 * (bits NULL otherwise). Both change under mu only. */
	struct xfilter f, fnext;
	atomic_int fready;
	pthread_t fthread; /* mz-xfilter */
	int fstarted;
	atomic_int fstop;   /* mz-xfilter and mz-xgrow: stop */
	pthread_t gthread; /* mz-xgrow, started by mz-index */
	int gstarted;
	atomic_int gdone;
	uint64_t gbits;	 /* the size mz-xgrow builds */
	uint64_t gretry; /* no growth before this many rows (after a failure) */
	char fpath[PATH_MAX];	/* the filter's snapshot (above) */
	uint8_t first_hash[32]; /* seq 1's, for the snapshot: read at open, or taken
				 * when seq 1 is added; zero before (refused then) */
};

static const char xi_schema[] =
	"CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS tx_hash(p INTEGER NOT NULL, k BLOB NOT NULL,"
	"  ns INTEGER NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY(p, k, ns, seq)) WITHOUT ROWID;";

static uint64_t key_of(const uint8_t hash[32])
{
	uint64_t h;

	memcpy(&h, hash, 8); /* Keccak output: already uniform */
	return h;
}

/* Sizes for tests (app_txindex_filter_sizing); set before any open. */
static uint64_t xf_min_bits = XF_MIN_BITS, xf_slack_rows = XF_SLACK_ROWS,
		xf_retry_rows = XF_RETRY_ROWS;
/* Tests (app_txindex_filter_hold): 1 holds mz-xgrow before it reads
 * txindex.db, 2 while it waits there, 0 lets it go. xf_fail
 * (app_txindex_filter_fail_next): the next growth fails there. */
static atomic_int xf_hold, xf_fail;

void app_txindex_filter_fail_next(void)
{
	atomic_store(&xf_fail, 1);
}

int app_txindex_filter_hold(int hold)
{
	if (!hold)
		atomic_store(&xf_hold, 0);
	else
		atomic_compare_exchange_strong(&xf_hold, &(int){0}, 1);
	return atomic_load(&xf_hold) == 2;
}

void app_txindex_filter_sizing(uint64_t min_bits, uint64_t slack_rows, uint64_t retry_rows)
{
	if (min_bits && (min_bits < 512 || min_bits > XF_MAX_BITS || (min_bits & (min_bits - 1))))
		APP_PANIC("txindex: a filter of %llu bits", (unsigned long long)min_bits);
	xf_min_bits = min_bits ? min_bits : XF_MIN_BITS;
	xf_slack_rows = min_bits || slack_rows ? slack_rows : XF_SLACK_ROWS;
	xf_retry_rows = retry_rows ? retry_rows : XF_RETRY_ROWS;
}

/* The filter's size for `rows` stored: 16 bits a row and room to grow. */
static uint64_t filter_bits_for(uint64_t rows)
{
	uint64_t bits = xf_min_bits;

	while (bits < XF_MAX_BITS && bits < 16 * (rows + xf_slack_rows))
		bits *= 2;
	return bits;
}

/*
 * Zeroed words for nbits bits. With touch, every page is faulted in here,
 * so that mz-xgrow pays for the pages, not the adds under the mutex: one
 * write a page, not MAP_POPULATE, which holds the process's mmap lock for
 * the whole range (32 MiB of new pages on the benchmark's VM: tens to
 * hundreds of ms during which no other thread can mmap or munmap).
 */
static int filter_alloc(struct xfilter *f, uint64_t nbits, int touch)
{
	void *p = mmap(NULL, nbits / 8, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return APP_ENOMEM;
	for (uint64_t off = 0; touch && off < nbits / 8; off += 4096)
		((volatile char *)p)[off] = 0;
	f->bits = p;
	f->mask = nbits - 1;
	f->shift = (unsigned)__builtin_ctzll(nbits >> 9);
	return 0;
}

static void filter_free(struct xfilter *f)
{
	if (f->bits)
		munmap((void *)f->bits, (f->mask + 1) / 8);
	*f = (struct xfilter){0};
}

static void set_filter_gauge(const struct xfilter *f)
{
	app_metric_set(APP_M_txindex_filter_bytes, f->bits ? (f->mask + 1) / 8 : 0);
}

/*
 * The filter is blocked: a hash's XF_PROBES bits all lie in one 64-byte
 * block (8 words), so a lookup costs one cache miss, not one per probe. All
 * of it comes from the hash's first 8 bytes, the part txindex.db keeps (so
 * mz-xfilter can load it from there): the block from the top `shift` bits,
 * the probes from the low 36 (9 bits each); Keccak output is uniform.
 */
static _Atomic uint64_t *filter_block(const struct xfilter *f, const uint8_t hash[32],
				      uint64_t *bits)
{
	uint64_t h = key_of(hash);

	*bits = h;
	return &f->bits[(f->shift ? h >> (64 - f->shift) : 0) << 3];
}

static void filter_put(const struct xfilter *f, const uint8_t hash[32])
{
	uint64_t bits;
	_Atomic uint64_t *blk = filter_block(f, hash, &bits);

	for (int i = 0; i < XF_PROBES; i++, bits >>= 9)
		atomic_fetch_or_explicit(&blk[(bits & 511) >> 6], 1ull << (bits & 63),
					 memory_order_relaxed);
}

/* A hash entering the map, under x->mu: into the filter and its successor. */
static void filter_add(struct app_txindex *x, const uint8_t hash[32])
{
	filter_put(&x->f, hash);
	if (x->fnext.bits)
		filter_put(&x->fnext, hash);
}

/* 0: hash is in neither the map nor txindex.db. 1: it may be. Under x->mu,
 * taken after any add it must see (app_txindex_find does). */
static int filter_maybe(struct app_txindex *x, const uint8_t hash[32])
{
	uint64_t bits;
	_Atomic uint64_t *blk;

	if (!atomic_load_explicit(&x->fready, memory_order_acquire))
		return 1;
	blk = filter_block(&x->f, hash, &bits);
	for (int i = 0; i < XF_PROBES; i++, bits >>= 9)
		if (!(atomic_load_explicit(&blk[(bits & 511) >> 6], memory_order_relaxed) &
		      (1ull << (bits & 63))))
			return 0;
	return 1;
}

/*
 * Every key txindex.db holds into f, on a connection of its own. 0 when all
 * are in, 1 when stopped (fstop) first, else APP_ESQLITE and the reason in
 * err. *rows: the keys read.
 *
 * In key order, XF_FILL_ROWS at a time, each its own read transaction (a
 * seek on the primary key, (p, k) > the last piece's last; an OR in that
 * WHERE made every piece a scan of the table). SQLite rewinds a WAL only
 * when no reader holds a snapshot in it: one read of the whole table
 * (seconds, at background priority), or pieces back to back, let
 * txindex.db's WAL grow from 8 to 50-75 MB while mz-xgrow read 4-9M rows.
 * With gaps (XF_FILL_GAP_MS between pieces, mz-xgrow only: the loader at
 * start is waited for) it stayed at 16-20 MB, and a growth took 14-30 s
 * instead of 2-5. Between two pieces, rows may be merged behind the read;
 * their hashes were in the map when they were added, so they are in the
 * filter already (app_txindex_add; mz-xgrow's steps 1 and 2), and rows are
 * never deleted while it runs. A key stored twice (two rows, the same first
 * 8 bytes) may be read once: it sets the same bits.
 */
static int filter_fill(struct app_txindex *x, const struct xfilter *f, int gaps, uint64_t *rows,
		       char *err, size_t errlen)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	sqlite3_value *last[2] = {NULL, NULL}; /* the (p, k) a piece ended at, as stored */
	int step = SQLITE_ERROR, rc;
	size_t got = XF_FILL_ROWS;

	*rows = 0;
	if (sqlite3_open_v2(x->path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) ==
		    SQLITE_OK &&
	    sqlite3_prepare_v2(db,
			       "SELECT p, k FROM tx_hash WHERE (p, k) > (?1, ?2)"
			       " ORDER BY p, k LIMIT " XI_STR(XF_FILL_ROWS),
			       -1, &st, NULL) == SQLITE_OK) {
		while (got == XF_FILL_ROWS && !atomic_load(&x->fstop)) {
			for (int i = 0; i < 2; i++) {
				if (last[i])
					sqlite3_bind_value(st, i + 1, last[i]);
				else if (i == 0) /* the first piece: below every row */
					sqlite3_bind_int64(st, 1, -1);
				else
					sqlite3_bind_zeroblob(st, 2, 0);
				sqlite3_value_free(last[i]);
				last[i] = NULL;
			}
			for (got = 0; (step = sqlite3_step(st)) == SQLITE_ROW; got++) {
				if (sqlite3_column_bytes(st, 1) == XI_KEY) {
					uint8_t h[32] = {0};

					memcpy(h, sqlite3_column_blob(st, 1), XI_KEY);
					filter_put(f, h);
				}
				++*rows;
				if (got + 1 == XF_FILL_ROWS)
					for (int i = 0; i < 2; i++)
						last[i] = sqlite3_value_dup(sqlite3_column_value(st, i));
			}
			sqlite3_reset(st); /* ends this piece's read transaction */
			if (step != SQLITE_DONE)
				break;
			if (got == XF_FILL_ROWS && (!last[0] || !last[1])) {
				step = SQLITE_NOMEM;
				break;
			}
			if (gaps && got == XF_FILL_ROWS)
				usleep(XF_FILL_GAP_MS * 1000);
		}
	}
	rc = step == SQLITE_DONE ? (got == XF_FILL_ROWS ? 1 : 0) : APP_ESQLITE;
	if (rc == APP_ESQLITE)
		snprintf(err, errlen, "%s",
			 !db ? "cannot open" : step == SQLITE_NOMEM ? "out of memory" : sqlite3_errmsg(db));
	sqlite3_value_free(last[0]);
	sqlite3_value_free(last[1]);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return rc;
}

/* mz-xfilter: every hash txindex.db held at start, into the filter. No
 * growth starts before it is done (fready), so x->f stays put meanwhile. */
static void *filter_loader(void *arg)
{
	struct app_txindex *x = arg;
	uint64_t t0 = app_now_ns(), rows;
	char err[256];
	int rc;

	pthread_setname_np(pthread_self(), "mz-xfilter");
	app_thread_background("mz-xfilter", x->nice);
	rc = filter_fill(x, &x->f, 0, &rows, err, sizeof(err));
	if (rc == 0) {
		atomic_store_explicit(&x->fready, 1, memory_order_release);
		app_metric_set(APP_M_txindex_filter_ready, 1);
		app_info("txindex_filter_ready", "from=txindex.db rows=%llu seconds=%.1f mib=%llu",
			 (unsigned long long)rows, (double)(app_now_ns() - t0) / 1e9,
			 (unsigned long long)((x->f.mask + 1) >> 23));
	} else if (rc < 0) {
		/* not fatal: every lookup goes on to txindex.db, as without it */
		app_warn("txindex_filter_unavailable", "file=%s reason=\"%s\"", x->path, err);
	}
	return NULL;
}

/*
 * Growing the filter. Sized at open for the rows stored and XF_SLACK_ROWS
 * more, it would fill in a long run: a daemon that adds 10M transactions
 * from an empty database ends at 6 bits a row, and one that adds 100M at
 * under 1, where nearly every new transaction's lookup seeks every
 * partition of txindex.db on the commit path (in a 60 s batched run from
 * empty, 11.8M transactions, those seeks were 42% of the committer's
 * samples by its end; its CPU a transaction 2.75-2.88 us against 2.10-2.30
 * with the filter grown, three interleaved pairs). So
 * once the rows pass a sixteenth of its bits, mz-index starts mz-xgrow,
 * which builds the filter open would choose now (filter_bits_for) beside
 * the old one:
 *   1. under the mutex, the new one becomes fnext, so every hash added
 *      from then on goes into both, and upto is the next seq;
 *   2. the map's entries below upto go in, XF_GROW_SLICE at a time under
 *      the mutex; one pruned from the map before its slice came was merged
 *      into txindex.db before step 3 begins;
 *   3. every key of txindex.db goes in (filter_fill, read after step 2, so
 *      it holds whatever step 2 did not find in the map);
 *   4. under the mutex, it replaces the old one, which is freed.
 * Lookups use the old filter, complete all along, until step 4; a stop
 * before it, or a failure, drops the new one (a failure is retried after
 * XF_RETRY_ROWS more rows). Memory: both filters while it runs, at most
 * 128 + 256 MiB. The close's snapshot is whichever filter is current.
 */
static void *filter_grower(void *arg)
{
	struct app_txindex *x = arg;
	struct xfilter nf = {0};
	uint64_t t0 = app_now_ns(), upto = 0, seq = 0, rows = 0;
	char err[256] = "out of memory";
	int rc;

	pthread_setname_np(pthread_self(), "mz-xgrow");
	app_thread_background("mz-xgrow", x->nice);
	rc = filter_alloc(&nf, x->gbits, 1);
	if (!rc) {
		pthread_mutex_lock(&x->mu);
		x->fnext = nf;
		upto = x->floor + x->n;
		pthread_mutex_unlock(&x->mu);
		while (seq < upto && !atomic_load(&x->fstop)) {
			pthread_mutex_lock(&x->mu);
			if (seq < x->floor)
				seq = x->floor; /* pruned: in txindex.db (above) */
			for (size_t i = 0; i < XF_GROW_SLICE && seq < upto; i++, seq++)
				filter_put(&nf, x->ent[seq - x->floor].hash);
			pthread_mutex_unlock(&x->mu);
		}
		if (atomic_load(&xf_hold)) { /* tests only */
			atomic_compare_exchange_strong(&xf_hold, &(int){1}, 2);
			while (atomic_load(&xf_hold) && !atomic_load(&x->fstop))
				usleep(1000);
		}
		if (atomic_exchange(&xf_fail, 0)) { /* tests only */
			snprintf(err, sizeof(err), "a fault injected by a test");
			rc = -1;
		} else {
			rc = atomic_load(&x->fstop) ? 1
						    : filter_fill(x, &nf, 1, &rows, err, sizeof(err));
		}
	}
	pthread_mutex_lock(&x->mu);
	x->fnext = (struct xfilter){0};
	if (rc == 0) {
		struct xfilter old = x->f;

		x->f = nf;
		nf = old;
		set_filter_gauge(&x->f);
	} else {
		x->gretry = x->floor + x->n + xf_retry_rows;
	}
	pthread_mutex_unlock(&x->mu);
	filter_free(&nf); /* the old filter, or the new one dropped */
	if (rc == 0) {
		app_info("txindex_filter_grown", "mib=%llu rows=%llu seconds=%.1f",
			 (unsigned long long)(x->gbits >> 23), (unsigned long long)(upto - 1),
			 (double)(app_now_ns() - t0) / 1e9);
	} else if (rc < 0) {
		app_metric_add(APP_M_txindex_filter_growth_failures_total, 1);
		app_warn("txindex_filter_growth_failed", "mib=%llu reason=\"%s\" retry_after_rows=%llu",
			 (unsigned long long)(x->gbits >> 23), err,
			 (unsigned long long)xf_retry_rows);
	}
	atomic_store(&x->gdone, 1);
	return NULL;
}

/* mz-index, under x->mu: start mz-xgrow when the rows have passed a
 * sixteenth of the filter's bits (above). */
static void filter_grow_check(struct app_txindex *x)
{
	uint64_t rows = x->floor + x->n - 1, bits = x->f.mask + 1;

	if (!atomic_load(&x->fready) || bits >= XF_MAX_BITS || 16 * rows <= bits ||
	    rows < x->gretry)
		return;
	if (x->gstarted) {
		if (!atomic_load(&x->gdone))
			return;
		pthread_join(x->gthread, NULL); /* done: it holds nothing */
		x->gstarted = 0;
	}
	x->gbits = filter_bits_for(rows);
	atomic_store(&x->gdone, 0);
	if (pthread_create(&x->gthread, NULL, filter_grower, x) == 0) {
		x->gstarted = 1;
		return;
	}
	x->gretry = rows + xf_retry_rows;
	app_metric_add(APP_M_txindex_filter_growth_failures_total, 1);
	app_warn("txindex_filter_growth_failed",
		 "mib=%llu reason=\"cannot start mz-xgrow\" retry_after_rows=%llu",
		 (unsigned long long)(x->gbits >> 23), (unsigned long long)xf_retry_rows);
}

static void slot_put(struct app_txindex *x, uint32_t i)
{
	size_t k = key_of(x->ent[i].hash) & (x->nslot - 1);

	while (x->slot[k] != UINT32_MAX)
		k = (k + 1) & (x->nslot - 1);
	x->slot[k] = i;
}

static void slots_rebuild(struct app_txindex *x)
{
	memset(x->slot, 0xff, x->nslot * sizeof(*x->slot));
	for (size_t i = 0; i < x->n; i++)
		slot_put(x, (uint32_t)i);
}

static int grow(struct app_txindex *x, size_t need)
{
	size_t cap = x->cap ? x->cap : XI_INITIAL_CAP;
	struct xent *e;
	uint32_t *s;

	while (cap < need)
		cap *= 2;
	if (cap == x->cap)
		return 0;
	e = realloc(x->ent, cap * sizeof(*e));
	if (!e)
		return APP_ENOMEM;
	x->ent = e;
	s = malloc(2 * cap * sizeof(*s));
	if (!s)
		return APP_ENOMEM;
	free(x->slot);
	x->slot = s;
	x->cap = cap;
	x->nslot = 2 * cap;
	slots_rebuild(x);
	return 0;
}

static int exec(sqlite3 *db, const char *sql, char *errbuf, size_t errlen)
{
	if (sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK)
		return 0;
	if (errbuf && errlen)
		snprintf(errbuf, errlen, "txindex.db: %s", sqlite3_errmsg(db));
	return APP_ESQLITE;
}

static int meta_u64(sqlite3 *db, const char *k, uint64_t *v)
{
	sqlite3_stmt *st;
	int rc = APP_ENOTFOUND;

	if (sqlite3_prepare_v2(db, "SELECT v FROM meta WHERE k = ?", -1, &st, NULL) != SQLITE_OK)
		return APP_ESQLITE;
	sqlite3_bind_text(st, 1, k, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		*v = (uint64_t)sqlite3_column_int64(st, 0);
		rc = 0;
	}
	sqlite3_finalize(st);
	return rc;
}

/* The hash stored under meta k (txindex.db) or of txs row seq (main), 32 bytes. */
static int hash_of(sqlite3 *db, const char *sql, const char *k, uint64_t seq, uint8_t out[32])
{
	sqlite3_stmt *st;
	int rc = APP_ENOTFOUND;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return APP_ESQLITE;
	if (k)
		sqlite3_bind_text(st, 1, k, -1, SQLITE_STATIC);
	else
		sqlite3_bind_int64(st, 1, (int64_t)seq);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 0) == 32) {
		memcpy(out, sqlite3_column_blob(st, 0), 32);
		rc = 0;
	}
	sqlite3_finalize(st);
	return rc;
}

/*
 * The snapshot file (above): a 120-byte header, then the filter's words as
 * they are in memory. Header: magic u32 and version u32 (in this host's
 * byte order, so a file from a host of the other order fails the magic),
 * bit count u64, end u64 (every seq below it is in the filter), the hashes
 * of seq 1 and of seq end - 1, and BLAKE2b-256 of the 88 bytes before it
 * and of the words.
 */
#define XF_SNAP_MAGIC 0x46585a4du /* "MZXF" little-endian */
#define XF_SNAP_VERSION 1u
#define XF_SNAP_DIGESTED 88

static void snap_digest(const uint8_t *hdr, const void *bits, size_t len, uint8_t out[32])
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, NULL, 0, 32);
	crypto_generichash_update(&st, hdr, XF_SNAP_DIGESTED);
	crypto_generichash_update(&st, bits, len);
	crypto_generichash_final(&st, out, 32);
}

static int snap_header(const uint8_t *h, struct app_xf_snapshot *o, const char **why)
{
	uint32_t magic, version;

	memcpy(&magic, h, 4);
	memcpy(&version, h + 4, 4);
	memcpy(&o->nbits, h + 8, 8);
	memcpy(&o->end, h + 16, 8);
	memcpy(o->first_hash, h + 24, 32);
	memcpy(o->last_hash, h + 56, 32);
	if (magic != XF_SNAP_MAGIC)
		*why = "not a filter snapshot of this byte order";
	else if (version != XF_SNAP_VERSION)
		*why = "a snapshot version this daemon does not read";
	else if (o->nbits < 512 || o->nbits > XF_MAX_BITS || (o->nbits & (o->nbits - 1)))
		*why = "a bit count no filter has";
	else if (o->end < 2)
		*why = "it covers no transaction";
	else
		return 0;
	return APP_EINVAL;
}

int app_txindex_snapshot_check(const uint8_t *hdr, size_t hdr_len, const void *bits,
			       size_t bits_len, struct app_xf_snapshot *out, const char **why)
{
	uint8_t d[32];

	if (hdr_len != APP_XF_SNAPSHOT_HDR) {
		*why = "shorter than its header";
		return APP_EINVAL;
	}
	if (snap_header(hdr, out, why))
		return APP_EINVAL;
	if (bits_len != out->nbits / 8) {
		*why = "its length is not its bit count's";
		return APP_EINVAL;
	}
	snap_digest(hdr, bits, bits_len, d);
	if (crypto_verify_32(d, hdr + XF_SNAP_DIGESTED)) {
		*why = "its digest does not match (torn or damaged)";
		return APP_EINVAL;
	}
	return 0;
}

/* read(2) (out 0) or write(2) (out 1) until len bytes have moved; -1 on an
 * error or an early end of file. */
static int move_all(int fd, void *buf, size_t len, int out)
{
	for (size_t done = 0; done < len;) {
		char *p = (char *)buf + done;
		ssize_t n = out ? write(fd, p, len - done) : read(fd, p, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		done += (size_t)n;
	}
	return 0;
}

/*
 * At open, m attached and txindex.db caught up to next: the snapshot, if
 * there is one and it covers exactly seqs 1 .. next - 1 of this database,
 * becomes the filter (ready at once), at its own size: one smaller than
 * open would choose grows later (mz-xgrow), as a filter that filled up in
 * a run does. Deleted once read, used or not.
 */
static void snapshot_load(struct app_txindex *x, uint64_t next, const uint8_t *last)
{
	uint8_t hdr[APP_XF_SNAPSHOT_HDR], extra;
	struct app_xf_snapshot sn;
	struct xfilter f = {0};
	const char *why = NULL;
	uint64_t t0 = app_now_ns();
	int fd = open(x->fpath, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		if (errno != ENOENT)
			app_warn("txindex_filter_snapshot_refused", "file=%s reason=\"%s\"", x->fpath,
				 strerror(errno));
		return;
	}
	if (move_all(fd, hdr, sizeof(hdr), 0))
		why = "shorter than its header";
	else if (snap_header(hdr, &sn, &why))
		;
	else if (sn.end != next)
		why = "it does not end where the stored transactions do";
	else if (!last || memcmp(x->first_hash, sn.first_hash, 32) ||
		 memcmp(last, sn.last_hash, 32))
		why = "its first or last transaction is not the database's";
	else if (filter_alloc(&f, sn.nbits, 0))
		why = "no memory for its bit count";
	else if (move_all(fd, (void *)f.bits, sn.nbits / 8, 0) || read(fd, &extra, 1) != 0)
		why = "its length is not its bit count's";
	else
		app_txindex_snapshot_check(hdr, sizeof(hdr), (const void *)f.bits, sn.nbits / 8,
					   &sn, &why);
	close(fd);
	if (unlink(x->fpath) && errno != ENOENT && !why)
		why = "it cannot be deleted (it would outlive the rows stored after it)";
	if (why) {
		filter_free(&f);
		app_warn("txindex_filter_snapshot_refused", "file=%s reason=\"%s\"", x->fpath, why);
		return;
	}
	filter_free(&x->f);
	x->f = f;
	atomic_store_explicit(&x->fready, 1, memory_order_release);
	app_metric_set(APP_M_txindex_filter_ready, 1);
	app_info("txindex_filter_ready", "from=snapshot end=%llu seconds=%.2f mib=%llu",
		 (unsigned long long)next, (double)(app_now_ns() - t0) / 1e9,
		 (unsigned long long)(sn.nbits >> 23));
}

/*
 * At a clean close, every thread stopped: the filter, if it is complete,
 * for the next open. Not fsynced: a file a crash tore fails its digest.
 */
static void snapshot_save(struct app_txindex *x)
{
	uint8_t hdr[APP_XF_SNAPSHOT_HDR] = {0};
	uint32_t magic = XF_SNAP_MAGIC, version = XF_SNAP_VERSION;
	uint64_t nbits = x->f.mask + 1, end = x->floor + x->n, t0 = app_now_ns();
	size_t len = nbits / 8;
	char tmp[PATH_MAX + 8];
	int fd, ok;

	if (!atomic_load(&x->fready) || end <= 1)
		return;
	memcpy(hdr, &magic, 4);
	memcpy(hdr + 4, &version, 4);
	memcpy(hdr + 8, &nbits, 8);
	memcpy(hdr + 16, &end, 8);
	memcpy(hdr + 24, x->first_hash, 32);
	if (x->n)
		memcpy(hdr + 56, x->ent[x->n - 1].hash, 32);
	else if (hash_of(x->db, "SELECT v FROM meta WHERE k = ?", "last_hash", 0, hdr + 56))
		return; /* no mark to end at */
	snap_digest(hdr, (const void *)x->f.bits, len, hdr + XF_SNAP_DIGESTED);
	snprintf(tmp, sizeof(tmp), "%s.tmp", x->fpath);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ok = fd >= 0 && !move_all(fd, hdr, sizeof(hdr), 1) &&
	     !move_all(fd, (void *)x->f.bits, len, 1);
	if (fd >= 0 && close(fd))
		ok = 0;
	if (ok && rename(tmp, x->fpath) == 0) {
		app_info("txindex_filter_saved", "end=%llu seconds=%.2f mib=%llu",
			 (unsigned long long)end, (double)(app_now_ns() - t0) / 1e9,
			 (unsigned long long)(len >> 20));
		return;
	}
	app_warn("txindex_filter_save_failed", "file=%s reason=\"%s\"", x->fpath, strerror(errno));
	unlink(tmp);
}

/*
 * Does txindex.db belong to this mezzanine.db? Its mark must not pass the
 * main database's end (a restored or older database), and the last seq it
 * indexed must have the hash it recorded (a different history). Any doubt
 * rebuilds it: it is derived data.
 */
static int matches(struct app_txindex *x, uint64_t next, const char **why)
{
	uint8_t want[32], have[32];
	uint64_t pending = 0;

	meta_u64(x->db, "pending", &pending);
	if (x->indexed > next || pending > next) {
		*why = "it indexes transactions the database does not hold";
		return 0;
	}
	if (x->indexed <= 1)
		return 1;
	if (hash_of(x->db, "SELECT v FROM meta WHERE k = ?", "last_hash", 0, want) ||
	    hash_of(x->db, "SELECT hash FROM m.txs WHERE seq = ?", NULL, x->indexed - 1, have) ||
	    memcmp(want, have, 32)) {
		*why = "its last indexed transaction is not the database's";
		return 0;
	}
	return 1;
}

/* SQLite's progress callback during a catch-up: every 10 s, ask systemd for
 * another minute of start-up time (a rebuild of 10^8 transactions takes
 * longer than TimeoutStartSec). */
static int still_building(void *arg)
{
	uint64_t *next_ns = arg, now = app_now_ns();

	if (now >= *next_ns) {
		app_notify_extend(60, "building the transaction index (txindex.db)");
		*next_ns = now + 10000000000ull;
	}
	return 0;
}

/*
 * Index every row of m.txs from x->indexed on, in one transaction: SQLite
 * sorts them by key first, so a large catch-up (a rebuild, the first start
 * after an upgrade) appends to the B-tree instead of inserting at random.
 */
static int catch_up(struct app_txindex *x, uint64_t next, char *errbuf, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	uint64_t t0 = app_now_ns();
	int rc;

	uint64_t notify_ns = t0;

	if (next <= x->indexed)
		return 0;
	if (next - x->indexed >= XI_BATCH)
		app_info("txindex_building", "txs=%llu", (unsigned long long)(next - x->indexed));
	sqlite3_progress_handler(x->db, 1 << 20, still_building, &notify_ns);
	rc = exec(x->db, "BEGIN", errbuf, errlen);
	if (!rc && sqlite3_prepare_v2(x->db,
				      "INSERT OR IGNORE INTO tx_hash(p, k, ns, seq)"
				      " SELECT seq >> " XI_STR(XI_PART_SHIFT) ", substr(hash, 1, 8), ns, seq"
				      " FROM m.txs WHERE seq >= ? AND seq < ? ORDER BY 1, 2, 3, 4",
				      -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, (int64_t)x->indexed);
		sqlite3_bind_int64(st, 2, (int64_t)next);
		if (sqlite3_step(st) != SQLITE_DONE)
			rc = APP_ESQLITE;
	} else if (!rc) {
		rc = APP_ESQLITE;
	}
	sqlite3_finalize(st);
	sqlite3_progress_handler(x->db, 0, NULL, NULL);
	if (!rc && (sqlite3_prepare_v2(x->db,
				       "INSERT OR REPLACE INTO meta(k, v) VALUES ('indexed', ?),"
				       " ('last_hash', (SELECT hash FROM m.txs WHERE seq = ?))",
				       -1, &st, NULL) != SQLITE_OK))
		rc = APP_ESQLITE;
	if (!rc) {
		sqlite3_bind_int64(st, 1, (int64_t)next);
		sqlite3_bind_int64(st, 2, (int64_t)next - 1);
		if (sqlite3_step(st) != SQLITE_DONE)
			rc = APP_ESQLITE;
		sqlite3_finalize(st);
	}
	if (rc) {
		snprintf(errbuf, errlen, "txindex.db: indexing seq %llu..%llu: %s",
			 (unsigned long long)x->indexed, (unsigned long long)next - 1,
			 sqlite3_errmsg(x->db));
		exec(x->db, "ROLLBACK", NULL, 0);
		return rc;
	}
	rc = exec(x->db, "COMMIT", errbuf, errlen);
	if (rc)
		return rc;
	if (next - x->indexed >= XI_BATCH)
		app_info("txindex_built", "txs=%llu seconds=%.1f",
			 (unsigned long long)(next - x->indexed), (double)(app_now_ns() - t0) / 1e9);
	x->indexed = next;
	return 0;
}

static const char *const xi_files[] = {"", "-wal", "-shm"};

/*
 * The file's format: its user_version, or XI_FORMAT for a file with no
 * tables yet (new: stamped here). Format 1 (32-byte keys) left user_version
 * at 0.
 */
static int format_of(sqlite3 *db, int *format, char *errbuf, size_t errlen)
{
	sqlite3_stmt *st;
	int tables = 0;

	*format = 0;
	if (sqlite3_prepare_v2(db, "SELECT (SELECT user_version FROM pragma_user_version),"
				   " (SELECT count(*) FROM sqlite_schema)",
			       -1, &st, NULL) != SQLITE_OK)
		return exec(db, "SELECT 1 FROM pragma_user_version", errbuf, errlen);
	if (sqlite3_step(st) == SQLITE_ROW) {
		*format = sqlite3_column_int(st, 0);
		tables = sqlite3_column_int(st, 1);
	}
	sqlite3_finalize(st);
	if (tables && *format == 0)
		*format = 1; /* format 1 did not stamp user_version */
	if (tables == 0 && *format == 0) {
		char sql[64];

		snprintf(sql, sizeof(sql), "PRAGMA user_version=%d", XI_FORMAT);
		*format = XI_FORMAT;
		return exec(db, sql, errbuf, errlen);
	}
	return 0;
}

/* Open and set up txindex.db; APP_EEXIST if the file is there but is not a
 * usable database (SQLITE_NOTADB, SQLITE_CORRUPT) or is of another format. */
static int open_db(struct app_txindex *x, char *errbuf, size_t errlen)
{
	int rc, format;

	if (sqlite3_open_v2(x->path, &x->db,
			    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
			    app_writebehind_vfs()) != SQLITE_OK) {
		snprintf(errbuf, errlen, "%s: %s", x->path,
			 x->db ? sqlite3_errmsg(x->db) : "cannot open");
		return APP_ESQLITE;
	}
	sqlite3_busy_timeout(x->db, 5000);
	rc = exec(x->db,
		  "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-65536;",
		  errbuf, errlen);
	if (!rc)
		rc = format_of(x->db, &format, errbuf, errlen);
	if (!rc && format != XI_FORMAT) {
		snprintf(errbuf, errlen, "txindex.db is format %d, this version writes %d", format,
			 XI_FORMAT);
		return APP_EEXIST;
	}
	if (!rc)
		rc = exec(x->db, xi_schema, errbuf, errlen);
	if (!rc)
		rc = exec(x->db, "SELECT count(*) FROM meta; SELECT 1 FROM tx_hash LIMIT 1", errbuf,
			  errlen);
	if (rc) {
		int e = sqlite3_errcode(x->db);

		return e == SQLITE_NOTADB || e == SQLITE_CORRUPT ? APP_EEXIST : rc;
	}
	return 0;
}

int app_txindex_open(struct app_txindex **out, const char *data_dir, char *errbuf,
		     size_t errlen)
{
	struct app_txindex *x = calloc(1, sizeof(*x));
	char main_path[PATH_MAX + 32], sql[PATH_MAX + 64];
	uint64_t next = 1;
	const char *why = NULL;
	sqlite3_stmt *st;
	uint8_t last[32];
	int rc, have_ends = 1;

	*out = NULL;
	if (!x)
		return APP_ENOMEM;
	snprintf(x->path, sizeof(x->path), "%s/txindex.db", data_dir);
	snprintf(x->fpath, sizeof(x->fpath), "%s/txindex.filter", data_dir);
	snprintf(main_path, sizeof(main_path), "%s/mezzanine.db", data_dir);
	rc = open_db(x, errbuf, errlen);
	if (rc == APP_EEXIST) { /* not a database, a damaged one or an older format:
				 * derived, so rebuilt */
		app_warn("txindex_rebuild", "file=%s reason=\"%s\"", x->path, errbuf);
		sqlite3_close(x->db);
		x->db = NULL;
		for (size_t i = 0; i < sizeof(xi_files) / sizeof(xi_files[0]); i++) {
			snprintf(sql, sizeof(sql), "%s%s", x->path, xi_files[i]);
			if (unlink(sql) && errno != ENOENT) {
				snprintf(errbuf, errlen, "%s: %s", sql, strerror(errno));
				rc = APP_ESQLITE;
				goto fail;
			}
		}
		rc = open_db(x, errbuf, errlen);
	}
	if (rc)
		goto fail;
	/* The main database, on this connection for the check, the catch-up
	 * and the old index's removal; detached before mz-index runs. */
	sqlite3_snprintf(sizeof(sql), sql, "ATTACH DATABASE %Q AS m", main_path);
	rc = exec(x->db, sql, errbuf, errlen);
	if (rc)
		goto fail;
	if (sqlite3_prepare_v2(x->db, "SELECT max(seq) FROM m.txs", -1, &st, NULL) != SQLITE_OK) {
		rc = exec(x->db, "SELECT max(seq) FROM m.txs", errbuf, errlen);
		goto fail;
	}
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
		next = (uint64_t)sqlite3_column_int64(st, 0) + 1;
	sqlite3_finalize(st);
	x->indexed = 1;
	meta_u64(x->db, "indexed", &x->indexed);
	if (!matches(x, next, &why) || x->indexed <= 1) {
		/* one transaction: a crash in between must not leave the mark
		 * without the rows (or rows without a mark) */
		if (why)
			app_warn("txindex_rebuild", "file=%s reason=\"%s\"", x->path, why);
		rc = exec(x->db, "BEGIN; DELETE FROM tx_hash; DELETE FROM meta; COMMIT;", errbuf,
			  errlen);
		if (rc) {
			exec(x->db, "ROLLBACK", NULL, 0);
			goto fail;
		}
		x->indexed = 1;
	}
	rc = catch_up(x, next, errbuf, errlen);
	/* For the filter's snapshot: no row there (none should be missing)
	 * only means a snapshot is refused. */
	if (!rc && next > 1 &&
	    (hash_of(x->db, "SELECT hash FROM m.txs WHERE seq = ?", NULL, 1, x->first_hash) ||
	     hash_of(x->db, "SELECT hash FROM m.txs WHERE seq = ?", NULL, next - 1, last)))
		have_ends = 0;
	/* Databases from before txindex.db carry the old unique index: every
	 * row is indexed here now, so it goes (once; its pages are reused). */
	if (!rc)
		rc = exec(x->db, "DROP INDEX IF EXISTS m.txs_hash_ns", errbuf, errlen);
	if (!rc)
		rc = exec(x->db, "DETACH DATABASE m", errbuf, errlen);
	if (rc)
		goto fail;
	/* merge_piece's statement for XI_ROWS_PER_INSERT rows at a time */
	if (app_sql_prepare_rows(x->db, "INSERT OR IGNORE INTO tx_hash(p, k, ns, seq) VALUES ",
				 "(?,?,?,?)", XI_ROWS_PER_INSERT, &x->ins_many) != SQLITE_OK) {
		snprintf(errbuf, errlen, "txindex.db: %s", sqlite3_errmsg(x->db));
		rc = APP_ESQLITE;
		goto fail;
	}
	if (sqlite3_prepare_v3(x->db,
			       "INSERT OR IGNORE INTO tx_hash(p, k, ns, seq) VALUES (?,?,?,?)",
			       -1, SQLITE_PREPARE_PERSISTENT, &x->ins, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v3(x->db,
			       "INSERT OR REPLACE INTO meta(k, v) VALUES ('indexed', ?), ('last_hash', ?)",
			       -1, SQLITE_PREPARE_PERSISTENT, &x->mark, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v3(x->db, "INSERT OR REPLACE INTO meta(k, v) VALUES ('pending', ?)", -1,
			       SQLITE_PREPARE_PERSISTENT, &x->pending, NULL) != SQLITE_OK) {
		rc = exec(x->db, "SELECT 1 FROM tx_hash, meta", errbuf, errlen);
		goto fail;
	}
	x->floor = x->indexed;
	x->piece_rows = XI_PIECE_ROWS;
	rc = grow(x, XI_INITIAL_CAP);
	if (rc)
		goto fail;
	rc = filter_alloc(&x->f, filter_bits_for(next - 1), 0);
	if (rc)
		goto fail;
	app_metric_set(APP_M_txindex_filter_ready, 0);
	snapshot_load(x, next, have_ends && next > 1 ? last : NULL);
	set_filter_gauge(&x->f);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&x->cv, &ca);
		pthread_condattr_destroy(&ca);
	}
	pthread_mutex_init(&x->mu, NULL);
	*out = x;
	return 0;
fail:
	if (!rc)
		rc = APP_ESQLITE;
	sqlite3_finalize(x->ins);
	sqlite3_finalize(x->ins_many);
	sqlite3_finalize(x->mark);
	sqlite3_finalize(x->pending);
	sqlite3_close(x->db);
	free(x->ent);
	free(x->slot);
	filter_free(&x->f);
	free(x);
	return rc;
}

uint64_t app_txindex_next(const struct app_txindex *x)
{
	return x->floor; /* before any add: the first seq the map expects */
}

/*
 * The merge's order. A batch arrives in seq order, so each partition is one
 * run of it; within a run the rows go in the order of k, the first 8 bytes of
 * the hash as memcmp orders them (big-endian), and rows with equal k keep
 * their seq order (stable). That is the table's key order up to ns, which
 * only a repeated k can reorder: a piece is still a run of consecutive keys,
 * and a row's place in the B-tree does not depend on the order it went in.
 *
 * qsort with a memcmp comparator moved the 48-byte entries 17 times each
 * and took 283 ns a key at 64k keys and 686 at 512k (glibc, a bare loop on
 * this machine; BENCHMARKS.md): a fifth of mz-index's CPU. app_sort_by_be64 takes 89-163
 * ns a key at those sizes, whatever the keys are.
 */
static void sort_by_key(struct xent *e, size_t n, struct app_sort_pair *scratch)
{
	_Static_assert(sizeof(struct xent) <= APP_SORT_RECORD_MAX, "xent too large to sort");
	for (size_t a = 0, b; a < n; a = b) {
		uint64_t p = part_of(e[a].seq);

		for (b = a + 1; b < n && part_of(e[b].seq) == p; b++)
			;
		app_sort_by_be64(e + a, b - a, sizeof(*e), offsetof(struct xent, hash), scratch);
	}
}

/* A radix sort of (key, index) pairs, a byte a pass, then one permutation of
 * the records in place, a cycle at a time. */
void app_sort_by_be64(void *base, size_t n, size_t size, size_t key_at,
		      struct app_sort_pair *scratch)
{
	unsigned char *r = base, hold[APP_SORT_RECORD_MAX];
	struct app_sort_pair *ord = scratch, *tmp = scratch + n;

	if (size > APP_SORT_RECORD_MAX || key_at + 8 > size)
		abort(); /* a caller's bug, caught by its first test */
	for (size_t i = 0; i < n; i++) {
		uint64_t k;

		memcpy(&k, r + i * size + key_at, sizeof(k));
		ord[i] = (struct app_sort_pair){.k = be64toh(k), .i = i};
	}
	for (unsigned shift = 0; shift < 64; shift += 8) {
		size_t at[256] = {0}, sum = 0;
		struct app_sort_pair *t;

		for (size_t i = 0; i < n; i++)
			at[(ord[i].k >> shift) & 0xff]++;
		for (size_t v = 0; v < 256; v++) {
			size_t c = at[v];

			at[v] = sum;
			sum += c;
		}
		for (size_t i = 0; i < n; i++)
			tmp[at[(ord[i].k >> shift) & 0xff]++] = ord[i];
		t = ord;
		ord = tmp;
		tmp = t;
	} /* an even number of passes: the sorted pairs are in scratch[0..n) */
	/* record j takes the one at ord[j].i; a placed j has ord[j].i == j */
	for (size_t j = 0; j < n; j++) {
		size_t at = j;

		if (ord[j].i == j)
			continue;
		memcpy(hold, r + j * size, size);
		for (;;) {
			size_t src = ord[at].i;

			ord[at].i = at;
			if (src == j) {
				memcpy(r + at * size, hold, size);
				break;
			}
			memcpy(r + at * size, r + src * size, size);
			at = src;
		}
	}
}

/* Wait on x->cv until the monotonic time at (x->mu held). */
static void wait_until(struct app_txindex *x, uint64_t at)
{
	struct timespec ts = {.tv_sec = (time_t)(at / 1000000000ull),
			      .tv_nsec = (long)(at % 1000000000ull)};

	pthread_cond_timedwait(&x->cv, &x->mu, &ts);
}

static void wait_ms(struct app_txindex *x, unsigned ms)
{
	wait_until(x, app_now_ns() + (uint64_t)ms * 1000000ull);
}

static uint64_t batch_size(const struct app_txindex *x)
{
	uint64_t b = x->indexed / 16;

	return b < XI_BATCH ? XI_BATCH : b > XI_MAX_LIVE / 2 ? XI_MAX_LIVE / 2 : b;
}

/* One piece of a merge: rows buf[0..n) in one transaction. The last piece
 * moves the mark (upto, last); a first piece of several records `pending`. */
static int merge_piece(struct app_txindex *x, const struct xent *buf, size_t n, uint64_t upto,
		       const uint8_t *last, int first)
{
	int rc = 0;

	if (sqlite3_exec(x->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
		return APP_ESQLITE;
	/* XI_ROWS_PER_INSERT rows a statement while they last: one step, not
	 * one per row; then the rest one at a time */
	for (size_t i = 0; i < n && !rc;) {
		int many = n - i >= XI_ROWS_PER_INSERT;
		sqlite3_stmt *st = many ? x->ins_many : x->ins;
		size_t rows = many ? XI_ROWS_PER_INSERT : 1;

		for (size_t r = 0; r < rows; r++, i++) {
			sqlite3_bind_int64(st, (int)(4 * r + 1), (int64_t)part_of(buf[i].seq));
			sqlite3_bind_blob(st, (int)(4 * r + 2), buf[i].hash, XI_KEY, SQLITE_STATIC);
			sqlite3_bind_int64(st, (int)(4 * r + 3), (int64_t)buf[i].ns);
			sqlite3_bind_int64(st, (int)(4 * r + 4), (int64_t)buf[i].seq);
		}
		if (sqlite3_step(st) != SQLITE_DONE)
			rc = APP_ESQLITE;
		sqlite3_reset(st);
	}
	if (!rc && last) {
		sqlite3_bind_int64(x->mark, 1, (int64_t)upto);
		sqlite3_bind_blob(x->mark, 2, last, 32, SQLITE_STATIC);
		if (sqlite3_step(x->mark) != SQLITE_DONE)
			rc = APP_ESQLITE;
		sqlite3_reset(x->mark);
	} else if (!rc && first) {
		sqlite3_bind_int64(x->pending, 1, (int64_t)upto);
		if (sqlite3_step(x->pending) != SQLITE_DONE)
			rc = APP_ESQLITE;
		sqlite3_reset(x->pending);
	}
	if (!rc && sqlite3_exec(x->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		rc = APP_ESQLITE;
	return rc; /* on failure the caller logs, then rolls back */
}

/* Between pieces: XI_PACE times as long as the piece took (at most
 * XI_PACE_MAX_MS), cut short by a stop, by the next batch being ready, or by
 * the map coming within XI_PACE_ROOM of its cap (each add wakes it). */
static void pace(struct app_txindex *x, uint64_t spent_ns, uint64_t upto)
{
	uint64_t pause = spent_ns * XI_PACE, at;
	int paused = 0;

	if (pause > XI_PACE_MAX_MS * 1000000ull)
		pause = XI_PACE_MAX_MS * 1000000ull;
	at = app_now_ns() + pause;
	pthread_mutex_lock(&x->mu);
	for (;;) {
		uint64_t ready = atomic_load(x->durable);

		if (ready > x->floor + x->n)
			ready = x->floor + x->n;
		if (x->stop || ready - upto >= batch_size(x) ||
		    x->n + XI_PACE_ROOM >= XI_MAX_LIVE || app_now_ns() >= at)
			break;
		if (!paused++)
			app_metric_add(APP_M_txindex_merge_pauses_total, 1);
		wait_until(x, at);
	}
	pthread_mutex_unlock(&x->mu);
}

/* The merge: durable entries buf[0..nb), seq order, into txindex.db, in
 * pieces (at the top of this file, "The merge goes to disk in pieces"). */
static int merge(struct app_txindex *x, struct xent *buf, size_t nb, struct app_sort_pair *ord)
{
	uint64_t from = buf[0].seq, upto = buf[nb - 1].seq + 1, t0 = app_now_ns();
	uint8_t last[32];
	size_t done = 0, piece = x->piece_rows;
	int rc = 0;

	memcpy(last, buf[nb - 1].hash, 32);
	sort_by_key(buf, nb, ord);
	while (done < nb) {
		size_t n = nb - done < piece ? nb - done : piece;
		int is_last = done + n == nb, cur, hi;
		uint64_t p0 = app_now_ns();

		sqlite3_db_status(x->db, SQLITE_DBSTATUS_CACHE_WRITE, &cur, &hi, 1);
		rc = merge_piece(x, buf + done, n, upto, is_last ? last : NULL, done == 0);
		if (rc)
			break;
		/* the pages this piece wrote into the WAL steer the next one */
		sqlite3_db_status(x->db, SQLITE_DBSTATUS_CACHE_WRITE, &cur, &hi, 0);
		if (cur > 0) {
			uint64_t want = (uint64_t)n * XI_PIECE_PAGES / (uint64_t)cur;

			piece = want < XI_PIECE_MIN ? XI_PIECE_MIN
				: want > XI_MAX_LIVE ? XI_MAX_LIVE : (size_t)want;
		}
		done += n;
		app_metric_add(APP_M_txindex_merge_pieces_total, 1);
		if (!is_last)
			pace(x, app_now_ns() - p0, upto);
	}
	x->piece_rows = piece;
	if (rc) {
		app_error("txindex_merge_failed", "seqs=%llu..%llu merged=%zu sqlite=\"%s\"",
			  (unsigned long long)from, (unsigned long long)upto - 1, done,
			  sqlite3_errmsg(x->db));
		sqlite3_exec(x->db, "ROLLBACK", NULL, NULL, NULL);
		return rc;
	}
	app_metric_add(APP_M_txindex_merges_total, 1);
	app_metric_observe(APP_M_txindex_merge_seconds, (app_now_ns() - t0) / 1000);
	return 0;
}

static void publish_gauge(const struct app_txindex *x)
{
	app_metric_set(APP_M_txindex_unindexed, x->floor + x->n - x->indexed);
}

static void *indexer(void *arg)
{
	struct app_txindex *x = arg;
	struct xent *buf = NULL;
	struct app_sort_pair *ord = NULL;
	size_t bcap = 0;
	pthread_setname_np(pthread_self(), "mz-index");
	app_thread_background("mz-index", x->nice);
	pthread_mutex_lock(&x->mu);
	while (!x->stop) {
		uint64_t upto = atomic_load(x->durable), from = x->indexed;
		size_t nb;

		filter_grow_check(x);
		if (upto > x->floor + x->n)
			upto = x->floor + x->n;
		nb = upto > from ? (size_t)(upto - from) : 0;
		if (nb == 0 || (nb < batch_size(x) &&
				app_now_ns() - x->last_add_ns < XI_IDLE_MS * 1000000ull)) {
			wait_ms(x, 50);
			continue;
		}
		if (nb > bcap) { /* the copy, and the sort's 2 * nb pairs */
			struct xent *b = realloc(buf, nb * sizeof(*b));
			struct app_sort_pair *o = b ? realloc(ord, 2 * nb * sizeof(*o)) : NULL;

			if (b)
				buf = b;
			if (o)
				ord = o;
			if (!b || !o) {
				app_error("txindex_merge_failed", "reason=\"out of memory\" txs=%zu", nb);
				wait_ms(x, 1000);
				continue;
			}
			bcap = nb;
		}
		memcpy(buf, x->ent + (from - x->floor), nb * sizeof(*buf));
		pthread_mutex_unlock(&x->mu);
		/* entries at or above `indexed` stay put until this returns */
		if (merge(x, buf, nb, ord)) {
			pthread_mutex_lock(&x->mu);
			wait_ms(x, 1000); /* the map keeps them; the committer waits past XI_MAX_LIVE */
			continue;
		}
		pthread_mutex_lock(&x->mu);
		x->indexed = upto;
		publish_gauge(x);
		pthread_cond_broadcast(&x->cv);
	}
	pthread_mutex_unlock(&x->mu);
	free(buf);
	free(ord);
	return NULL;
}

int app_txindex_start(struct app_txindex *x, const atomic_uint_fast64_t *durable_seq, int nice)
{
	int rc;

	x->durable = durable_seq;
	x->nice = nice;
	x->stop = 0;
	atomic_store(&x->fstop, 0);
	rc = pthread_create(&x->thread, NULL, indexer, x);
	if (rc)
		return -rc;
	x->started = 1;
	/* Until it has finished once; stopped early, it leaves fready 0 (every
	 * lookup reads txindex.db) and the next start runs it again. */
	if (!x->fstarted && !atomic_load(&x->fready)) {
		if (pthread_create(&x->fthread, NULL, filter_loader, x) == 0)
			x->fstarted = 1;
	}
	return 0;
}

void app_txindex_stop(struct app_txindex *x)
{
	if (!x || !x->started)
		return;
	pthread_mutex_lock(&x->mu);
	x->stop = 1;
	pthread_cond_broadcast(&x->cv);
	pthread_mutex_unlock(&x->mu);
	pthread_join(x->thread, NULL); /* mz-index: it starts mz-xgrow */
	x->started = 0;
	atomic_store(&x->fstop, 1);
	if (x->fstarted) {
		pthread_join(x->fthread, NULL);
		x->fstarted = 0;
	}
	if (x->gstarted) {
		pthread_join(x->gthread, NULL);
		x->gstarted = 0;
	}
}

void app_txindex_close(struct app_txindex *x)
{
	if (!x)
		return;
	app_txindex_stop(x);
	snapshot_save(x);
	sqlite3_finalize(x->ins);
	sqlite3_finalize(x->ins_many);
	sqlite3_finalize(x->mark);
	sqlite3_finalize(x->pending);
	sqlite3_close(x->db);
	pthread_cond_destroy(&x->cv);
	pthread_mutex_destroy(&x->mu);
	free(x->ent);
	free(x->slot);
	filter_free(&x->f);
	free(x);
}

const char *app_txindex_path(const struct app_txindex *x)
{
	return x->path;
}

void app_txindex_add(struct app_txindex *x, const struct app_tx *txs, size_t m)
{
	if (!m)
		return;
	pthread_mutex_lock(&x->mu);
	if (txs[0].seq != x->floor + x->n)
		APP_PANIC("txindex: seq %llu added after %llu", (unsigned long long)txs[0].seq,
			  (unsigned long long)(x->floor + x->n));
	if (x->n + m > x->cap && grow(x, x->n + m))
		APP_PANIC("out of memory indexing %zu transactions", x->n + m);
	for (size_t i = 0; i < m; i++) {
		struct xent *e = &x->ent[x->n];

		memcpy(e->hash, txs[i].hash, 32);
		e->ns = txs[i].ns;
		e->seq = x->floor + x->n;
		if (e->seq == 1)
			memcpy(x->first_hash, e->hash, 32); /* for the snapshot */
		filter_add(x, e->hash);
		slot_put(x, (uint32_t)x->n++);
	}
	x->last_add_ns = app_now_ns();
	if (x->floor + x->n - x->indexed >= batch_size(x))
		pthread_cond_broadcast(&x->cv);
	publish_gauge(x);
	pthread_mutex_unlock(&x->mu);
}

void app_txindex_prune(struct app_txindex *x)
{
	uint64_t waited_us = 0;
	size_t k, held = 0;

	pthread_mutex_lock(&x->mu);
	if (x->n >= XI_MAX_LIVE && x->indexed == x->floor && x->started && !x->stop) {
		uint64_t t0 = app_now_ns();

		held = x->n;
		while (x->n >= XI_MAX_LIVE && x->indexed == x->floor && x->started && !x->stop)
			wait_ms(x, 100); /* backpressure: mz-index is behind */
		waited_us = (app_now_ns() - t0) / 1000;
		app_metric_observe(APP_M_txindex_full_wait_seconds, waited_us);
	}
	k = (size_t)(x->indexed - x->floor);
	if (k) {
		memmove(x->ent, x->ent + k, (x->n - k) * sizeof(*x->ent));
		x->n -= k;
		x->floor += k;
		slots_rebuild(x);
	}
	pthread_mutex_unlock(&x->mu);
	if (held) /* ingest stopped meanwhile: say so where an operator looks */
		app_warn("txindex_behind", "waited_ms=%.1f unmerged=%zu",
			 (double)waited_us / 1000, held);
}

/*
 * A lookup reads three cache lines nothing else brought in: the map slot its
 * probe starts at, the entry that slot names and the hash's filter block,
 * each a miss in maps and filters this size. The committer looks up every
 * item of a group in a row, so it first asks for all of them here: the slot
 * lines and filter blocks in one pass, the entries in a second (once the
 * slots have arrived), and the misses overlap instead of following each
 * other. The filter block is read before the filter is ready too: a line
 * too many, never a wrong answer.
 */
void app_txindex_prefetch(struct app_txindex *x, const uint8_t *const *hashes, size_t n)
{
	uint64_t bits;

	pthread_mutex_lock(&x->mu);
	for (size_t i = 0; i < n; i++) {
		__builtin_prefetch(&x->slot[key_of(hashes[i]) & (x->nslot - 1)]);
		__builtin_prefetch((const void *)filter_block(&x->f, hashes[i], &bits));
	}
	for (size_t i = 0; i < n; i++) {
		uint32_t k = x->slot[key_of(hashes[i]) & (x->nslot - 1)];

		if (k != UINT32_MAX)
			__builtin_prefetch(&x->ent[k]);
	}
	pthread_mutex_unlock(&x->mu);
}

int app_txindex_find(struct app_txindex *x, uint64_t ns, const uint8_t hash[static 32],
		     uint64_t *seq, int *maybe_db)
{
	int found = 0;

	pthread_mutex_lock(&x->mu);
	for (size_t k = key_of(hash) & (x->nslot - 1); x->slot[k] != UINT32_MAX;
	     k = (k + 1) & (x->nslot - 1)) {
		const struct xent *e = &x->ent[x->slot[k]];

		if (memcmp(e->hash, hash, 32) || (ns && e->ns != ns))
			continue;
		if (!found || e->seq < *seq)
			*seq = e->seq;
		found = 1;
		if (ns)
			break;
	}
	/* Under the mutex: every add that came before it is seen, and the
	 * filter is not swapped meanwhile (mz-xgrow). A lookup by namespace
	 * that the map answered needs no more. */
	*maybe_db = found && ns ? 1 : filter_maybe(x, hash);
	pthread_mutex_unlock(&x->mu);
	return found;
}
