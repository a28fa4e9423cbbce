/*
 * dbfill: populate a data directory with N stored transactions, as if the
 * daemon had sequenced them, so benchmarks can measure a daemon whose
 * database already holds 10^5..10^8 transactions without submitting them
 * one by one through the daemon (~30k tx/s here: 10^8 would take an hour).
 *
 *   build/bench/dbfill --data-dir DIR --txs N [--size B] [--block-txs T]
 *                      [--slot-ms MS] [--empty]
 *
 * DIR must hold at least one namespace (`mezz namespace create ...`) and no
 * transactions. Every row is what the daemon itself would have written:
 *   - txs: contiguous seq 1..N, payload = 8-byte counter + random bytes
 *     (B bytes, default 200), hash = Keccak-256 of the payload, namespaces
 *     assigned in contiguous runs inside each block (so seq order is also
 *     the (ns, seq) order DA payloads need), one group per block;
 *   - groups: Merkle root of the group's leaves, signed with the data
 *     directory's identity key (created if absent, as the daemon does);
 *   - blocks + block_ns: one superblock per T transactions (default 1000),
 *     built by seq_block_build, hash-chained, signed, in consecutive slots
 *     that end well before now, so the daemon's next slot follows them;
 *   - da_blocks: the real DA commitment record of every block (payload laid
 *     out and erasure-coded with da.k = da.m = 16, the defaults), signed.
 *     Shard files are NOT written: meta shards_pruned_below is set past the
 *     tip, which is what shard retention leaves behind, so the daemon does
 *     not try to code the history again and `mezz da` commands treat the
 *     shards as pruned.
 * --empty stores x'' as every payload (what transaction retention leaves)
 * and sets txs_pruned_below past the tip: hashes, groups, blocks and the
 * (hash, ns) index are full size, the payload bytes are not. This measures
 * the cost of the index at sizes whose payloads would not fit on the disk.
 *
 * Speed: rows go in with journal_mode=OFF and synchronous=OFF in large
 * transactions; the database is put back into WAL mode at the end, and the
 * (hash, ns) index, txindex.db, is built after the last row by the daemon's
 * own app_txindex_open (one sort instead of N random B-tree inserts). A crash during the fill leaves a database
 * to throw away. The last line on stdout is a JSON object with the timings.
 */
#include <getopt.h>
#include <inttypes.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "appliance/app.h"
#include "da/da.h"
#include "l1bridge/l1.h"
#include "sequencer/seq.h"

#define DA_K 16
#define DA_M 16

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	uint64_t z = (rng += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void usage(void)
{
	fprintf(stderr, "usage: dbfill --data-dir DIR --txs N [--size B] [--block-txs T]"
			" [--slot-ms MS] [--empty]\n");
	exit(2);
}

static int sql(sqlite3 *db, const char *q)
{
	char *err = NULL;

	if (sqlite3_exec(db, q, NULL, NULL, &err) != SQLITE_OK) {
		fprintf(stderr, "dbfill: %s: %s\n", q, err ? err : sqlite3_errmsg(db));
		sqlite3_free(err);
		return -1;
	}
	return 0;
}

static int step_reset(sqlite3 *db, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		fprintf(stderr, "dbfill: insert: %s\n", sqlite3_errmsg(db));
		return -1;
	}
	return 0;
}

enum { S_TX, S_GROUP, S_BLOCK, S_BLOCKNS, S_DA, S_N };

static const char *const ins_sql[S_N] = {
	[S_TX] = "INSERT INTO txs(seq, ns, hash, grp, slot, data) VALUES (?,?,?,?,?,?)",
	[S_GROUP] = "INSERT INTO groups(id, slot, first_seq, count, root, sig) VALUES (?,?,?,?,?,?)",
	[S_BLOCK] = "INSERT INTO blocks(height, slot, first_seq, tx_count, header, sig, hash)"
		    " VALUES (?,?,?,?,?,?,?)",
	[S_BLOCKNS] = "INSERT INTO block_ns(height, ns, count, root) VALUES (?,?,?,?)",
	[S_DA] = "INSERT INTO da_blocks(height, record, sig) VALUES (?,?,?)",
};

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{"data-dir", 1, 0, 'd'}, {"txs", 1, 0, 'n'},	 {"size", 1, 0, 's'},
		{"block-txs", 1, 0, 'b'}, {"slot-ms", 1, 0, 'l'}, {"empty", 0, 0, 'e'},
		{0, 0, 0, 0},
	};
	const char *dir = NULL;
	uint64_t ntx = 0, bt = 1000, slot_ms = 250, nblocks, slot0, height;
	int size = 200, empty = 0, ch, rc = 1;
	struct app_identity id;
	struct app_store *s = NULL;
	struct app_namespace *nsv = NULL;
	size_t nns = 0;
	sqlite3 *db = NULL;
	sqlite3_stmt *st[S_N] = {0};
	struct da_code *code = NULL;
	char path[4096], err[256];
	uint8_t *data = NULL, (*hashes)[32] = NULL, parent[32] = {0};
	uint64_t *tx_ns = NULL;
	struct seq_tx *stx = NULL;
	struct da_tx *dtx = NULL;
	double t0, t_rows, t_index, t_hash = 0, t_da = 0, t_sql = 0;
	uint64_t payload_bytes = 0;

	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (ch) {
		case 'd': dir = optarg; break;
		case 'n': ntx = strtoull(optarg, NULL, 10); break;
		case 's': size = atoi(optarg); break;
		case 'b': bt = strtoull(optarg, NULL, 10); break;
		case 'l': slot_ms = strtoull(optarg, NULL, 10); break;
		case 'e': empty = 1; break;
		default: usage();
		}
	}
	if (!dir || !ntx || size < 8 || size > (1 << 20) || bt < 1 || bt > 65536 || !slot_ms)
		usage();
	if (sodium_init() < 0 || app_identity_load(&id, dir, 1)) {
		fprintf(stderr, "dbfill: cannot load or create the identity in %s\n", dir);
		return 1;
	}
	/* The daemon's own code creates the schema; its namespaces are read here. */
	if (app_store_open(&s, dir, 0, err, sizeof(err))) {
		fprintf(stderr, "dbfill: %s\n", err);
		return 1;
	}
	if (app_store_namespaces(s, &nsv, &nns) || !nns) {
		fprintf(stderr, "dbfill: no namespaces in %s (mezz namespace create first)\n", dir);
		goto out;
	}
	app_store_close(s);
	s = NULL;

	snprintf(path, sizeof(path), "%s/mezzanine.db", dir);
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
		fprintf(stderr, "dbfill: open %s: %s\n", path, sqlite3_errmsg(db));
		goto out;
	}
	{
		sqlite3_stmt *q;
		int have = 1;

		if (sqlite3_prepare_v2(db, "SELECT (SELECT count(*) FROM txs) + (SELECT count(*)"
					   " FROM blocks)", -1, &q, NULL) == SQLITE_OK &&
		    sqlite3_step(q) == SQLITE_ROW)
			have = sqlite3_column_int64(q, 0) != 0;
		sqlite3_finalize(q);
		if (have) {
			fprintf(stderr, "dbfill: %s already holds transactions or blocks\n", path);
			goto out;
		}
	}
	if (sql(db, "PRAGMA journal_mode=DELETE") || sql(db, "PRAGMA journal_mode=OFF") ||
	    sql(db, "PRAGMA synchronous=OFF") || sql(db, "PRAGMA cache_size=-262144") ||
	    sql(db, "PRAGMA temp_store=FILE"))
		goto out;
	for (int i = 0; i < S_N; i++)
		if (sqlite3_prepare_v2(db, ins_sql[i], -1, &st[i], NULL) != SQLITE_OK) {
			fprintf(stderr, "dbfill: prepare: %s\n", sqlite3_errmsg(db));
			goto out;
		}
	if (da_code_new(DA_K, DA_M, &code)) {
		fprintf(stderr, "dbfill: da_code_new failed\n");
		goto out;
	}
	data = malloc((size_t)bt * (size_t)size);
	hashes = malloc((size_t)bt * 32);
	tx_ns = malloc((size_t)bt * sizeof(*tx_ns));
	stx = malloc((size_t)bt * sizeof(*stx));
	dtx = malloc((size_t)bt * sizeof(*dtx));
	if (!data || !hashes || !tx_ns || !stx || !dtx) {
		fprintf(stderr, "dbfill: out of memory\n");
		goto out;
	}

	nblocks = (ntx + bt - 1) / bt;
	/* The history ends 40 slots (10 s at 250 ms) before now: the daemon's
	 * first own slot is strictly greater than the last stored one. */
	{
		struct timespec ts;
		uint64_t now_ms, cur;

		clock_gettime(CLOCK_REALTIME, &ts);
		now_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
		cur = seq_slot_at(now_ms, 0, (uint32_t)slot_ms);
		if (cur < nblocks + 41) {
			fprintf(stderr, "dbfill: too many blocks for the clock\n");
			goto out;
		}
		slot0 = cur - nblocks - 40;
	}

	t0 = now_s();
	if (sql(db, "BEGIN"))
		goto out;
	for (height = 1; height <= nblocks; height++) {
		uint64_t first = (height - 1) * bt + 1;
		size_t n = (size_t)(height == nblocks ? ntx - (height - 1) * bt : bt);
		uint64_t slot = slot0 + height;
		struct seq_block_hdr h;
		struct seq_block_ns *table = NULL;
		struct seq_group g = {0};
		uint8_t bsig[64], bhash[32], enc[SEQ_BLOCK_HDR_LEN];
		double a = now_s(), b;

		for (size_t i = 0; i < n; i++) {
			uint8_t *p = data + i * (size_t)size;
			uint64_t ctr = first + i;

			for (int k = 0; k < 8; k++)
				p[k] = (uint8_t)(ctr >> (56 - 8 * k));
			for (int k = 8; k < size; k += 8) {
				uint64_t r = rnd();

				memcpy(p + k, &r, (size_t)(size - k) < 8 ? (size_t)(size - k) : 8);
			}
			l1_keccak256(hashes[i], p, (size_t)size);
			/* Namespaces in contiguous runs: seq order == (ns, seq) order. */
			tx_ns[i] = nsv[i * nns / n].chain_id;
			stx[i].seq = first + i;
			stx[i].ns = tx_ns[i];
			memcpy(stx[i].hash, hashes[i], 32);
			dtx[i] = (struct da_tx){.seq = first + i, .ns = tx_ns[i], .data = p,
						.len = (uint32_t)size};
		}
		if (seq_group_build(&g, height, slot, first, tx_ns, (const uint8_t (*)[32])hashes,
				    n, id.sk) ||
		    seq_block_build(&h, &table, stx, n, first, height, slot,
				    seq_slot_start(slot, 0, (uint32_t)slot_ms), parent)) {
			fprintf(stderr, "dbfill: building block %" PRIu64 " failed\n", height);
			seq_group_free(&g);
			goto out;
		}
		seq_block_sign(bsig, &h, id.sk);
		seq_block_hash(bhash, &h);
		seq_block_hdr_encode(enc, &h);
		b = now_s();
		t_hash += b - a;

		/* DA record: the same payload and code the daemon's mz-da uses. */
		{
			uint8_t *buf = NULL, raw[DA_RECORD_LEN], rsig[64];
			size_t plen, S;
			struct da_block blk = {0};
			struct da_record rec;

			if (da_payload_build(&h, bsig, table, dtx, DA_K, &buf, &plen, &S) ||
			    da_block_encode(&blk, &rec, code, buf, plen, S, height, bhash)) {
				fprintf(stderr, "dbfill: DA coding of block %" PRIu64 " failed\n",
					height);
				free(table);
				seq_group_free(&g);
				goto out;
			}
			payload_bytes += plen;
			da_block_free(&blk);
			da_record_encode(raw, &rec);
			crypto_sign_detached(rsig, NULL, raw, DA_RECORD_LEN, id.sk);
			a = now_s();
			t_da += a - b;
			sqlite3_bind_int64(st[S_DA], 1, (int64_t)height);
			sqlite3_bind_blob(st[S_DA], 2, raw, DA_RECORD_LEN, SQLITE_TRANSIENT);
			sqlite3_bind_blob(st[S_DA], 3, rsig, 64, SQLITE_TRANSIENT);
			if (step_reset(db, st[S_DA])) {
				free(table);
				seq_group_free(&g);
				goto out;
			}
		}
		for (size_t i = 0; i < n; i++) {
			sqlite3_stmt *t = st[S_TX];

			sqlite3_bind_int64(t, 1, (int64_t)(first + i));
			sqlite3_bind_int64(t, 2, (int64_t)tx_ns[i]);
			sqlite3_bind_blob(t, 3, hashes[i], 32, SQLITE_STATIC);
			sqlite3_bind_int64(t, 4, (int64_t)height);
			sqlite3_bind_int64(t, 5, (int64_t)slot);
			sqlite3_bind_blob(t, 6, data + i * (size_t)size, empty ? 0 : size,
					  SQLITE_STATIC);
			if (step_reset(db, t))
				goto block_fail;
		}
		sqlite3_bind_int64(st[S_GROUP], 1, (int64_t)height);
		sqlite3_bind_int64(st[S_GROUP], 2, (int64_t)slot);
		sqlite3_bind_int64(st[S_GROUP], 3, (int64_t)first);
		sqlite3_bind_int64(st[S_GROUP], 4, (int64_t)n);
		sqlite3_bind_blob(st[S_GROUP], 5, g.hdr.root, 32, SQLITE_STATIC);
		sqlite3_bind_blob(st[S_GROUP], 6, g.sig, 64, SQLITE_STATIC);
		if (step_reset(db, st[S_GROUP]))
			goto block_fail;
		sqlite3_bind_int64(st[S_BLOCK], 1, (int64_t)height);
		sqlite3_bind_int64(st[S_BLOCK], 2, (int64_t)slot);
		sqlite3_bind_int64(st[S_BLOCK], 3, (int64_t)first);
		sqlite3_bind_int64(st[S_BLOCK], 4, (int64_t)n);
		sqlite3_bind_blob(st[S_BLOCK], 5, enc, sizeof(enc), SQLITE_STATIC);
		sqlite3_bind_blob(st[S_BLOCK], 6, bsig, 64, SQLITE_STATIC);
		sqlite3_bind_blob(st[S_BLOCK], 7, bhash, 32, SQLITE_STATIC);
		if (step_reset(db, st[S_BLOCK]))
			goto block_fail;
		for (uint32_t i = 0; i < h.ns_count; i++) {
			sqlite3_bind_int64(st[S_BLOCKNS], 1, (int64_t)height);
			sqlite3_bind_int64(st[S_BLOCKNS], 2, (int64_t)table[i].ns);
			sqlite3_bind_int64(st[S_BLOCKNS], 3, (int64_t)table[i].count);
			sqlite3_bind_blob(st[S_BLOCKNS], 4, table[i].root, 32, SQLITE_STATIC);
			if (step_reset(db, st[S_BLOCKNS]))
				goto block_fail;
		}
		free(table);
		seq_group_free(&g);
		memcpy(parent, bhash, 32);
		if (height % 1000 == 0 && (sql(db, "COMMIT") || sql(db, "BEGIN")))
			goto out;
		t_sql += now_s() - a;
		if (height % 10000 == 0)
			fprintf(stderr, "dbfill: %" PRIu64 " / %" PRIu64 " blocks, %.0f tx/s\n",
				height, nblocks, (double)(height * bt) / (now_s() - t0));
		continue;
block_fail:
		free(table);
		seq_group_free(&g);
		goto out;
	}
	{
		char q[256];

		snprintf(q, sizeof(q),
			 "INSERT OR REPLACE INTO meta(k, v) VALUES ('shards_pruned_below', %" PRIu64
			 ")", nblocks + 1);
		if (sql(db, q))
			goto out;
		if (empty) {
			snprintf(q, sizeof(q),
				 "INSERT OR REPLACE INTO meta(k, v) VALUES ('txs_pruned_below', %" PRIu64
				 ")", nblocks + 1);
			if (sql(db, q))
				goto out;
		}
	}
	if (sql(db, "COMMIT"))
		goto out;
	t_rows = now_s();
	for (int i = 0; i < S_N; i++) {
		sqlite3_finalize(st[i]);
		st[i] = NULL;
	}
	if (sql(db, "PRAGMA journal_mode=WAL"))
		goto out;
	{
		/* txindex.db, built as the daemon builds it at start: one sorted
		 * INSERT ... SELECT over every row */
		struct app_txindex *xi;
		char xerr[512];

		if (app_txindex_open(&xi, dir, xerr, sizeof(xerr))) {
			fprintf(stderr, "dbfill: %s\n", xerr);
			goto out;
		}
		app_txindex_close(xi);
	}
	t_index = now_s();
	printf("{\"txs\":%" PRIu64 ",\"blocks\":%" PRIu64 ",\"size\":%d,\"empty\":%d,"
	       "\"namespaces\":%zu,\"payload_bytes\":%" PRIu64 ",\"rows_s\":%.2f,"
	       "\"hash_s\":%.2f,\"da_s\":%.2f,\"sql_s\":%.2f,\"index_s\":%.2f,"
	       "\"total_s\":%.2f,\"fill_tps\":%.0f}\n",
	       ntx, nblocks, size, empty, nns, payload_bytes, t_rows - t0, t_hash, t_da, t_sql,
	       t_index - t_rows, t_index - t0, (double)ntx / (t_index - t0));
	rc = 0;
out:
	for (int i = 0; i < S_N; i++)
		sqlite3_finalize(st[i]);
	sqlite3_close(db);
	app_store_close(s);
	da_code_free(code);
	free(nsv);
	free(data);
	free(hashes);
	free(tx_ns);
	free(stx);
	free(dtx);
	return rc;
}
