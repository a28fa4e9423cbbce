/* Storage and identity against real SQLite and a real directory. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "appliance/app.h"
#include "appliance/limits.h"
#include "appliance/ops.h"

static char dir[64];

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/mezz-store-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	cr_assert_geq(sodium_init(), 0);
}

static void teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(store, .init = setup, .fini = teardown);

Test(store, identity_created_0600_and_stable)
{
	struct app_identity a, b;
	struct stat st;
	char path[128];

	cr_assert_eq(app_identity_load(&a, dir, 1), 0);
	snprintf(path, sizeof(path), "%s/identity.key", dir);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600);
	cr_assert_eq(app_identity_load(&b, dir, 0), 0);
	cr_assert_arr_eq(a.pk, b.pk, 32);
	cr_assert_arr_eq(a.key_secret, b.key_secret, 32);
}

Test(store, damaged_identity_rejected)
{
	struct app_identity a;
	char path[128];
	FILE *f;

	cr_assert_eq(app_identity_load(&a, dir, 1), 0);
	snprintf(path, sizeof(path), "%s/identity.key", dir);
	f = fopen(path, "r+b");
	cr_assert_not_null(f);
	fseek(f, 40, SEEK_SET); /* inside the embedded public key */
	fputc(0x55 ^ a.sk[40], f);
	fclose(f);
	cr_assert_eq(app_identity_load(&a, dir, 0), APP_EKEYFILE);
}

Test(store, tenant_namespace_key_lifecycle)
{
	struct app_identity id;
	struct app_store *s;
	struct app_namespace ns = {.chain_id = 31337, .ingress_public = 0, .feed_public = 1};
	struct app_namespace *list;
	uint8_t h[32];
	int64_t t, k, tenant, v0, v1;
	size_t n;
	char err[256];

	cr_assert_eq(app_identity_load(&id, dir, 1), 0);
	cr_assert_eq(app_store_open(&s, dir, 0, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(app_store_auth_version(s, &v0), 0);
	cr_assert_eq(app_store_tenant_create(s, "acme", &t), 0);
	cr_assert_eq(app_store_tenant_create(s, "acme", &t), APP_EEXIST);
	ns.tenant_id = t;
	snprintf(ns.name, sizeof(ns.name), "demo");
	cr_assert_eq(app_store_namespace_create(s, &ns), 0);
	cr_assert_eq(app_store_namespace_create(s, &ns), APP_EEXIST);
	app_apikey_hash(h, &id, "mz_secret", 9);
	cr_assert_eq(app_store_key_create(s, t, h, "mz_secret", &k), 0);
	cr_assert_eq(app_store_key_lookup(s, h, &tenant), 0);
	cr_assert_eq(tenant, t);
	cr_assert_eq(app_store_key_revoke(s, k), 0);
	cr_assert_eq(app_store_key_lookup(s, h, &tenant), APP_ENOTFOUND);
	cr_assert_eq(app_store_key_revoke(s, k), APP_ENOTFOUND);
	cr_assert_eq(app_store_auth_version(s, &v1), 0);
	cr_assert_eq(v1, v0 + 4, "every change bumps the auth version");
	cr_assert_eq(app_store_namespaces(s, &list, &n), 0);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(list[0].name, "demo");
	cr_assert_eq(list[0].ingress_public, 0);
	free(list);
	app_store_close(s);
}

/* The shared counter (auth.seq) moves with every committed change, made by
 * another connection (the CLI's), and not for a refused one; the limits
 * writer, which commits by itself, moves it too. */
Test(store, auth_seq_moves_after_every_committed_change)
{
	struct app_store *daemon, *cli;
	struct app_namespace ns = {.chain_id = 7, .feed_public = 1};
	uint64_t a, b;
	int64_t t;
	char err[256];

	cr_assert_eq(app_store_open(&cli, dir, 0, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(app_store_tenant_create(cli, "before", &t), 0,
		     "a change with no counter file yet is not an error");
	cr_assert_eq(app_store_open(&daemon, dir, 1, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(app_store_auth_seq(daemon, &a), 0, "the daemon makes the file");
	cr_assert_eq(app_store_tenant_create(cli, "acme", &t), 0);
	cr_assert_eq(app_store_auth_seq(daemon, &b), 0);
	cr_assert_eq(b, a + 1, "tenant create");
	cr_assert_eq(app_store_tenant_create(cli, "acme", &t), APP_EEXIST);
	cr_assert_eq(app_store_auth_seq(daemon, &a), 0);
	cr_assert_eq(a, b, "a refused change does not move it");
	ns.tenant_id = t;
	snprintf(ns.name, sizeof(ns.name), "demo");
	cr_assert_eq(app_store_namespace_create(cli, &ns), 0);
	cr_assert_eq(app_limits_store_set(cli, t, 100, -1), 0);
	cr_assert_eq(app_store_auth_seq(daemon, &b), 0);
	cr_assert_eq(b, a + 2, "namespace create and limits set");
	app_store_close(cli);
	app_store_close(daemon);
}

/* Runs of rows go in several to a statement (store.c): every field of
 * every row must land in its own row, the rest of a run one at a time. */
Test(store, txs_inserted_in_runs_read_back_whole)
{
	enum { N = 16 * 3 + 5 };
	struct app_store *s;
	struct app_tx txs[N], *range;
	uint8_t data[N][N + 1];
	size_t n;
	char err[256];

	cr_assert_eq(app_store_open(&s, dir, 0, err, sizeof(err)), 0);
	for (size_t i = 0; i < N; i++) {
		memset(data[i], (int)(0x40 + i), sizeof(data[i]));
		txs[i] = (struct app_tx){.seq = 1 + i, .ns = 100 + i, .group_id = 1 + i / 7,
					 .slot = 1000 + i, .data = data[i], .len = i + 1};
		memset(txs[i].hash, (int)i, 32);
		txs[i].hash[31] = 0xee;
	}
	cr_assert_eq(app_store_begin(s, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(app_store_txs_insert(s, txs, 1, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(app_store_txs_insert(s, txs + 1, N - 1, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(app_store_commit(s, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(app_store_txs_range(s, 1, N, &range, &n), 0);
	cr_assert_eq(n, N);
	for (size_t i = 0; i < N; i++) {
		cr_assert_eq(range[i].seq, txs[i].seq, "row %zu", i);
		cr_assert_eq(range[i].ns, txs[i].ns, "row %zu", i);
		cr_assert_eq(range[i].group_id, txs[i].group_id, "row %zu", i);
		cr_assert_eq(range[i].slot, txs[i].slot, "row %zu", i);
		cr_assert_arr_eq(range[i].hash, txs[i].hash, 32, "row %zu", i);
		cr_assert_eq(range[i].len, txs[i].len, "row %zu", i);
		cr_assert_arr_eq(range[i].data, txs[i].data, txs[i].len, "row %zu", i);
	}
	app_txs_free(range, n);
	/* a seq taken already fails the run, whichever statement carries it */
	cr_assert_eq(app_store_begin(s, err, sizeof(err)), 0, "%s", err);
	txs[20].seq = N + 1;
	cr_assert_eq(app_store_txs_insert(s, txs + 20, 16, err, sizeof(err)), APP_ESQLITE);
	cr_assert(strstr(err, "UNIQUE") || strstr(err, "constraint"), "%s", err);
	app_store_rollback(s);
	app_store_close(s);
}

/* Is the page of fd at off in the page cache? */
static int resident(int fd, off_t off)
{
	long pg = sysconf(_SC_PAGESIZE);
	off_t at = off / pg * pg;
	unsigned char v = 0;
	void *p = mmap(NULL, (size_t)pg, PROT_READ, MAP_SHARED, fd, at);

	cr_assert_neq(p, MAP_FAILED);
	cr_assert_eq(mincore(p, (size_t)pg, &v), 0);
	munmap(p, (size_t)pg);
	return v & 1;
}

/* Commit n transactions of len bytes each, seqs from *seq on. */
static void put_rows(struct app_store *s, uint64_t *seq, int n, size_t len)
{
	uint8_t *data = malloc(len);
	char err[256];

	cr_assert_not_null(data);
	cr_assert_eq(app_store_begin(s, err, sizeof(err)), 0, "%s", err);
	for (int i = 0; i < n; i++, (*seq)++) {
		struct app_tx t = {.seq = *seq, .ns = 1, .group_id = *seq, .slot = 1,
				   .data = data, .len = len};

		memset(data, (int)*seq, len);
		memset(t.hash, 0, 32);
		memcpy(t.hash, seq, sizeof(*seq));
		cr_assert_eq(app_store_txs_insert(s, &t, 1, err, sizeof(err)), 0, "%s", err);
	}
	cr_assert_eq(app_store_commit(s, err, sizeof(err)), 0, "%s", err);
	free(data);
}

/*
 * After a checkpoint the WAL is rewound and overwritten in place; pages of it
 * that left the page cache would be read back inside a commit. The
 * committer's app_store_wal_prefetch reads the writer's MiB and the next one
 * ahead of it. Eviction is forced with POSIX_FADV_DONTNEED (a fault the
 * real cache gives only under memory pressure or proactive reclaim).
 */
Test(store, wal_prefetch_reads_ahead_of_the_writer)
{
	struct app_store *s;
	char err[256], wal[128];
	uint64_t seq = 1;
	int fd, frames = 0, done = 0;

	cr_assert_eq(app_store_open(&s, dir, 0, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(app_store_set_autocheckpoint(s, 0), 0);
	for (int i = 0; i < 3; i++)
		put_rows(s, &seq, 300, 3000); /* about 4 MiB of WAL */
	cr_assert_gt(app_store_wal_frames(s), 900);
	cr_assert_eq(app_store_checkpoint(s, &frames, &done), 0);
	cr_assert_eq(done, frames, "the checkpoint copied every frame back");

	snprintf(wal, sizeof(wal), "%s/mezzanine.db-wal", dir);
	fd = open(wal, O_RDONLY);
	cr_assert_geq(fd, 0);
	cr_assert_eq(fdatasync(fd), 0);
	cr_assert_eq(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
	if (resident(fd, 3 << 19)) {
		close(fd);
		app_store_close(s);
		cr_skip_test("this file system keeps the WAL's pages cached (tmpfs?)");
	}
	put_rows(s, &seq, 1, 100); /* the WAL rewinds: this writer is in its first MiB */
	cr_assert_lt(app_store_wal_frames(s), 10);
	cr_assert_not(resident(fd, 3 << 19), "nothing has read 1.5 MiB in yet");
	cr_assert_not(resident(fd, 5 << 19), "nor 2.5 MiB");

	app_store_wal_prefetch(s);
	for (int i = 0; i < 200 && !resident(fd, 3 << 19); i++)
		usleep(10000);
	cr_assert(resident(fd, 3 << 19), "the MiB after the writer's was read ahead");
	cr_assert_not(resident(fd, 5 << 19), "two MiB ahead, no further");
	close(fd);
	app_store_close(s);
}

/* Pages of fd the kernel holds dirty (not yet sent to the disk), by
 * cachestat(2) (Linux 6.5); -1 where the kernel has no such call. */
static long dirty_pages(int fd)
{
	struct {
		uint64_t off, len;
	} range = {0, 0};
	struct {
		uint64_t cache, dirty, writeback, evicted, recently_evicted;
	} cs;

	if (syscall(451 /* __NR_cachestat, x86_64 */, fd, &range, &cs, 0) != 0)
		return -1;
	return (long)cs.dirty;
}

/* 4 MiB of rows into a new database under dir, with no sync at all
 * (synchronous=OFF, no journal), through vfs (NULL: the default); returns
 * how many of its pages the kernel still holds dirty just after. */
static long dirty_after_writing(const char *name, const char *vfs)
{
	char path[128];
	sqlite3 *db;
	sqlite3_stmt *st;
	uint8_t blob[4000];
	long dirty;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs),
		     SQLITE_OK);
	cr_assert_eq(sqlite3_exec(db,
				  "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;"
				  "CREATE TABLE t(b BLOB); BEGIN;",
				  NULL, NULL, NULL),
		     SQLITE_OK, "%s", sqlite3_errmsg(db));
	cr_assert_eq(sqlite3_prepare_v2(db, "INSERT INTO t(b) VALUES (?)", -1, &st, NULL),
		     SQLITE_OK);
	for (int i = 0; i < 1024; i++) {
		memset(blob, i, sizeof(blob));
		sqlite3_bind_blob(st, 1, blob, sizeof(blob), SQLITE_STATIC);
		cr_assert_eq(sqlite3_step(st), SQLITE_DONE);
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	cr_assert_eq(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	fd = open(path, O_RDONLY);
	cr_assert_geq(fd, 0);
	dirty = dirty_pages(fd);
	close(fd);
	sqlite3_close(db);
	return dirty;
}

/*
 * The stores' connections write through writebehind.c's VFS, which hands
 * every MiB written to the kernel's write-back as it goes, so a later fsync
 * (a checkpoint's, with a group's WAL fsync behind it on the same disk)
 * does not send megabytes at once. Seen here without any fsync: after 4 MiB
 * written through the VFS, few of the file's pages are still dirty; through
 * the default VFS, nearly all are (the kernel's own write-back waits 30 s or
 * for 10% of memory), which is what makes this test able to fail.
 */
Test(store, writes_go_to_the_disk_as_they_are_made)
{
	const char *vfs = app_writebehind_vfs();
	uint64_t before = app_metric_get(APP_M_storage_writebehind_bytes_total);
	struct statfs fs;
	long plain, behind;

	cr_assert_not_null(vfs, "the write-behind VFS registered");
	cr_assert_eq(statfs(dir, &fs), 0);
	if (fs.f_type == 0x01021994 /* TMPFS_MAGIC */)
		cr_skip_test("tmpfs has no disk to write back to");
	plain = dirty_after_writing("plain.db", NULL);
	if (plain < 0)
		cr_skip_test("no cachestat(2) in this kernel");
	if (plain < 768)
		cr_skip_test("the kernel wrote back on its own (%ld dirty pages)", plain);
	behind = dirty_after_writing("behind.db", vfs);
	cr_assert_geq(app_metric_get(APP_M_storage_writebehind_bytes_total) - before, 3u << 20,
		      "at least three of the four MiB were handed to write-back");
	cr_assert_lt(behind, 384, "%ld pages still dirty through the VFS, %ld without it", behind,
		     plain);
}

/* count(*) of txs as another process sees it: a fresh connection, closed
 * again (python3's sqlite3 module; a fork of this process would inherit its
 * SQLite's lock bookkeeping and not be another process to SQLite). -1 on an
 * error. */
static long txs_seen_by_another_process(void)
{
	char cmd[256];
	long n = -1;
	FILE *p;

	snprintf(cmd, sizeof(cmd),
		 "python3 -c 'import sqlite3; c = sqlite3.connect(\"%s/mezzanine.db\"); "
		 "print(c.execute(\"SELECT count(*) FROM txs\").fetchone()[0]); c.close()'",
		 dir);
	p = popen(cmd, "r");
	cr_assert_not_null(p);
	if (fscanf(p, "%ld", &n) != 1)
		n = -1;
	cr_assert_eq(pclose(p), 0);
	return n;
}

/*
 * Closing any descriptor of a file drops every POSIX lock the process holds
 * on it. If the write-behind VFS closed its own descriptor of mezzanine.db
 * with a connection, the other connections of the daemon would lose their
 * locks; the next process to close the database (the CLI creating a key)
 * would then find itself the last user, checkpoint and delete the WAL under
 * the daemon, whose later commits would go to an unlinked file.
 */
Test(store, closing_a_connection_keeps_the_others_locks)
{
	struct app_store *a, *b;
	char err[256], wal[128];
	uint64_t seq = 1;

	cr_assert_eq(app_store_open(&a, dir, 0, err, sizeof(err)), 0, "%s", err);
	put_rows(a, &seq, 10, 100);
	cr_assert_eq(app_store_open(&b, dir, 0, err, sizeof(err)), 0, "%s", err);
	app_store_close(b);
	cr_assert_eq(txs_seen_by_another_process(), 10);
	snprintf(wal, sizeof(wal), "%s/mezzanine.db-wal", dir);
	cr_assert_eq(access(wal, F_OK), 0, "the other process left the WAL to its users");
	put_rows(a, &seq, 10, 100);
	cr_assert_eq(txs_seen_by_another_process(), 20, "later commits are in the live WAL");
	app_store_close(a);
}

Test(store, group_commit_and_reload)
{
	struct app_identity id;
	struct app_store *s;
	struct seq_group g;
	struct app_tx txs[3];
	uint64_t ns[3] = {7, 7, 9};
	uint8_t hashes[3][32], sig[64], (*leaves)[32];
	struct seq_group_hdr h;
	struct app_tip tip;
	struct app_tx found, *range;
	size_t n;
	char err[256];

	cr_assert_eq(app_identity_load(&id, dir, 1), 0);
	cr_assert_eq(app_store_open(&s, dir, 0, err, sizeof(err)), 0);
	for (int i = 0; i < 3; i++) {
		memset(hashes[i], i + 1, 32);
		txs[i] = (struct app_tx){.seq = 1 + (uint64_t)i, .ns = ns[i], .group_id = 1,
					 .slot = 5, .data = (uint8_t *)"abc", .len = 3};
		memcpy(txs[i].hash, hashes[i], 32);
	}
	cr_assert_eq(seq_group_build(&g, 1, 5, 1, ns, (const uint8_t(*)[32])hashes, 3, id.sk), 0);
	cr_assert_eq(app_store_begin(s, err, sizeof(err)), 0, "%s", err);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(app_store_tx_insert(s, &txs[i], err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(app_store_group_insert(s, &g, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(app_store_commit(s, err, sizeof(err)), 0, "%s", err);
	/* the same group id again fails, and the rollback leaves nothing behind */
	cr_assert_eq(app_store_begin(s, err, sizeof(err)), 0, "%s", err);
	txs[0].seq = 4;
	cr_assert_eq(app_store_tx_insert(s, &txs[0], err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(app_store_group_insert(s, &g, err, sizeof(err)), APP_ESQLITE);
	app_store_rollback(s);
	txs[0].seq = 1;
	cr_assert_eq(app_store_tip(s, &tip), 0);
	cr_assert_eq(tip.next_seq, 4);
	cr_assert_eq(tip.next_group, 2);
	cr_assert_eq(tip.has_block, 0);
	/* lookups by hash need the transaction index: built from the rows */
	cr_assert_eq(app_store_tx_find(s, 9, hashes[2], &found), APP_EINVAL);
	{
		struct app_txindex *xi;

		cr_assert_eq(app_txindex_open(&xi, dir, err, sizeof(err)), 0, "%s", err);
		cr_assert_eq(app_txindex_next(xi), 4);
		cr_assert_eq(app_store_attach_txindex(s, xi, err, sizeof(err)), 0, "%s", err);
		cr_assert_eq(app_store_tx_find(s, 9, hashes[2], &found), 0);
		cr_assert_eq(found.seq, 3);
		cr_assert_eq(found.group_id, 1);
		cr_assert_eq(app_store_tx_find(s, 7, hashes[2], &found), APP_ENOTFOUND);
		cr_assert_eq(app_store_tx_known(s, 7, hashes[0]), 1);
		cr_assert_eq(app_store_tx_known(s, 9, hashes[0]), 0);
		app_store_close(s);
		s = NULL;
		app_txindex_close(xi);
	}
	cr_assert_eq(app_store_open(&s, dir, 0, err, sizeof(err)), 0);
	cr_assert_eq(app_store_group_load(s, 1, &h, sig, &leaves), 0);
	cr_assert_arr_eq(h.root, g.hdr.root, 32);
	cr_assert_arr_eq(sig, g.sig, 64);
	cr_assert_arr_eq(leaves, g.leaves, 3 * 32);
	free(leaves);
	cr_assert_eq(app_store_txs_range(s, 2, 3, &range, &n), 0);
	cr_assert_eq(n, 2);
	cr_assert_eq(range[0].seq, 2);
	cr_assert_eq(range[1].len, 3);
	app_txs_free(range, n);
	seq_group_free(&g);
	app_store_close(s);
}

Test(store, block_put_get)
{
	struct app_identity id;
	struct app_store *s;
	struct seq_block_hdr h, got;
	struct seq_block_ns *ns = NULL, *gns;
	struct seq_tx tx = {.seq = 1, .ns = 5};
	uint8_t zero[32] = {0}, sig[64], gsig[64];
	size_t gn;
	uint64_t tipv;
	char err[256];

	cr_assert_eq(app_identity_load(&id, dir, 1), 0);
	cr_assert_eq(app_store_open(&s, dir, 0, err, sizeof(err)), 0);
	cr_assert_eq(app_store_block_tip(s, &tipv), APP_ENOTFOUND);
	memset(tx.hash, 3, 32);
	cr_assert_eq(seq_block_build(&h, &ns, &tx, 1, 1, 1, 10, 2500, zero), 0);
	seq_block_sign(sig, &h, id.sk);
	cr_assert_eq(app_store_block_put(s, &h, sig, ns, h.ns_count, err, sizeof(err)), 0);
	cr_assert_eq(app_store_block_get(s, 1, &got, gsig, &gns, &gn), 0);
	{
		uint8_t a[SEQ_BLOCK_HDR_LEN], b[SEQ_BLOCK_HDR_LEN];

		seq_block_hdr_encode(a, &h);
		seq_block_hdr_encode(b, &got);
		cr_assert_arr_eq(a, b, sizeof(a)); /* struct padding makes memcmp unfit */
	}
	cr_assert_eq(gn, 1);
	cr_assert_eq(gns[0].ns, 5);
	cr_assert_eq(seq_block_verify(&got, gsig, id.pk), 0);
	cr_assert_eq(app_store_block_tip(s, &tipv), 0);
	cr_assert_eq(tipv, 1);
	free(ns);
	free(gns);
	app_store_close(s);
}

/*
 * The transaction index (txindex.c): a transaction is found through the
 * memory map as soon as it is added, through txindex.db once mz-index merged
 * it, and after a restart; a txindex.db that is missing, from another
 * history or ahead of the database is rebuilt; a database from before
 * txindex.db loses its old unique index.
 */
static void put_txs(struct app_store *s, struct app_tx *txs, size_t n, uint64_t first)
{
	char err[256];

	cr_assert_eq(app_store_begin(s, err, sizeof(err)), 0, "%s", err);
	for (size_t i = 0; i < n; i++) {
		txs[i] = (struct app_tx){.seq = first + i, .ns = 7 + (i & 1), .group_id = first,
					 .slot = 5, .data = (uint8_t *)"abc", .len = 3};
		randombytes_buf(txs[i].hash, 32);
		cr_assert_eq(app_store_tx_insert(s, &txs[i], err, sizeof(err)), 0, "%s", err);
	}
	cr_assert_eq(app_store_commit(s, err, sizeof(err)), 0, "%s", err);
}

static void expect_found(struct app_store *s, const struct app_tx *txs, size_t n)
{
	struct app_tx f;

	for (size_t i = 0; i < n; i++) {
		cr_assert_eq(app_store_tx_find(s, txs[i].ns, txs[i].hash, &f), 0, "seq %llu",
			     (unsigned long long)txs[i].seq);
		cr_assert_eq(f.seq, txs[i].seq);
		cr_assert_eq(app_store_tx_find(s, 0, txs[i].hash, &f), 0);
		cr_assert_eq(f.seq, txs[i].seq);
		cr_assert_eq(app_store_tx_known(s, txs[i].ns ^ 0xf0, txs[i].hash), 0);
	}
}

/* The store and its txindex, attached (not started). */
static struct app_txindex *open_indexed(struct app_store **s)
{
	struct app_txindex *xi;
	char err[256];

	cr_assert_eq(app_store_open(s, dir, 0, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(app_txindex_open(&xi, dir, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(app_store_attach_txindex(*s, xi, err, sizeof(err)), 0, "%s", err);
	return xi;
}

static struct app_txindex *reopen(struct app_store **s, struct app_txindex *old)
{
	app_store_close(*s);
	app_txindex_close(old);
	return open_indexed(s);
}

static void xi_sql(const char *q)
{
	char path[128];
	sqlite3 *db;

	snprintf(path, sizeof(path), "%s/txindex.db", dir);
	cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
	cr_assert_eq(sqlite3_exec(db, q, NULL, NULL, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
	sqlite3_close(db);
}

/* mz-index merges exactly one batch after the merge count `merges`, within
 * 20 s (a hang fails the test; nothing here is timed). */
static void wait_one_merge(uint64_t merges)
{
	for (int i = 0; i < 400 && app_metric_get(APP_M_txindex_merges_total) == merges; i++)
		usleep(50 * 1000);
	cr_assert_eq(app_metric_get(APP_M_txindex_merges_total), merges + 1, "no merge in 20 s");
}

/* txs[0..n) into the map, durable, merged (mz-index started here if
 * `start`) and pruned from the map: from here every lookup of them reads
 * txindex.db. */
static void merge_now(struct app_txindex *xi, const struct app_tx *txs, size_t n,
		      atomic_uint_fast64_t *durable, int start)
{
	uint64_t merges = app_metric_get(APP_M_txindex_merges_total);

	app_txindex_add(xi, txs, n);
	atomic_store(durable, txs[n - 1].seq + 1);
	if (start)
		cr_assert_eq(app_txindex_start(xi, durable, 0), 0);
	wait_one_merge(merges);
	app_txindex_prune(xi);
	cr_assert_eq(app_metric_get(APP_M_txindex_unindexed), 0);
}

/* One number from txindex.db, read past the daemon's own connections. */
static long long xi_int(const char *q)
{
	char path[128];
	sqlite3 *db;
	sqlite3_stmt *st;
	long long v = -1;

	snprintf(path, sizeof(path), "%s/txindex.db", dir);
	cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
	cr_assert_eq(sqlite3_prepare_v2(db, q, -1, &st, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

Test(store, txindex_map_merge_restart_rebuild)
{
	static struct app_tx a[300], b[200];
	struct app_store *s;
	struct app_txindex *xi;
	atomic_uint_fast64_t durable = 1;
	uint64_t merges;
	char err[256], cmd[256];

	cr_assert_eq(app_store_open(&s, dir, 0, err, sizeof(err)), 0, "%s", err);
	/* a database from before txindex.db: the old unique index goes */
	cr_assert_eq(sqlite3_exec(app_store_db(s), "CREATE UNIQUE INDEX txs_hash_ns ON txs(hash, ns)",
				  NULL, NULL, NULL), SQLITE_OK);
	put_txs(s, a, 300, 1);
	cr_assert_eq(app_txindex_open(&xi, dir, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(app_txindex_next(xi), 301);
	cr_assert_eq(app_store_attach_txindex(s, xi, err, sizeof(err)), 0, "%s", err);
	{
		sqlite3_stmt *st;

		cr_assert_eq(sqlite3_prepare_v2(app_store_db(s),
						"SELECT count(*) FROM sqlite_master WHERE name = 'txs_hash_ns'",
						-1, &st, NULL), SQLITE_OK);
		cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
		cr_assert_eq(sqlite3_column_int(st, 0), 0, "the old index is still there");
		sqlite3_finalize(st);
	}
	expect_found(s, a, 300);

	/* new rows: found through the map at once, before any merge */
	put_txs(s, b, 200, 301);
	cr_assert_eq(app_store_tx_known(s, b[0].ns, b[0].hash), 0);
	app_txindex_add(xi, b, 200);
	expect_found(s, b, 200);
	cr_assert_eq(app_metric_get(APP_M_txindex_unindexed), 200);

	/* mz-index merges only what is durable: the first 150 */
	merges = app_metric_get(APP_M_txindex_merges_total);
	atomic_store(&durable, 451);
	cr_assert_eq(app_txindex_start(xi, &durable, 0), 0);
	wait_one_merge(merges);
	cr_assert_eq(app_metric_get(APP_M_txindex_unindexed), 50);
	app_txindex_prune(xi); /* the merged 150 leave the map; txindex.db has them */
	expect_found(s, b, 200);
	app_txindex_stop(xi);

	/* restart: the 50 never merged are indexed from mezzanine.db */
	xi = reopen(&s, xi);
	cr_assert_eq(app_txindex_next(xi), 501);
	expect_found(s, a, 300);
	expect_found(s, b, 200);

	/* txindex.db from another history (its last hash differs): rebuilt */
	xi_sql("UPDATE meta SET v = zeroblob(32) WHERE k = 'last_hash';"
	       "DELETE FROM tx_hash WHERE seq % 2 = 0");
	xi = reopen(&s, xi);
	expect_found(s, a, 300);
	expect_found(s, b, 200);

	/* txindex.db ahead of the database (an older database restored): rebuilt */
	xi_sql("UPDATE meta SET v = 900 WHERE k = 'indexed';"
	       "INSERT INTO tx_hash VALUES (0, zeroblob(8), 7, 600)");
	xi = reopen(&s, xi);
	cr_assert_eq(app_txindex_next(xi), 501);
	cr_assert_eq(xi_int("SELECT count(*) FROM tx_hash WHERE seq >= 501"), 0);
	cr_assert_eq(app_store_tx_known(s, 7, (const uint8_t[32]){0}), 0);
	expect_found(s, a, 300);

	/* rows without a mark (the meta table lost): cleared and rebuilt, not
	 * a duplicate-key failure at start */
	xi_sql("DELETE FROM meta");
	xi = reopen(&s, xi);
	expect_found(s, a, 300);
	expect_found(s, b, 200);

	/* txindex.db deleted: rebuilt */
	app_store_close(s);
	s = NULL;
	app_txindex_close(xi);
	snprintf(cmd, sizeof(cmd), "rm -f %s/txindex.db*", dir);
	cr_assert_eq(system(cmd), 0);
	xi = reopen(&s, NULL);
	expect_found(s, a, 300);
	expect_found(s, b, 200);
	app_store_close(s);
	app_txindex_close(xi);
}

static const char *snap_path(void)
{
	static char p[128];

	snprintf(p, sizeof(p), "%s/txindex.filter", dir);
	return p;
}

static void wait_filter_ready(void)
{
	for (int i = 0; i < 200 && !app_metric_get(APP_M_txindex_filter_ready); i++)
		usleep(50 * 1000);
	cr_assert_eq(app_metric_get(APP_M_txindex_filter_ready), 1, "filter not ready in 10 s");
}

/* Filter misses (answered without txindex.db) among 1000 new hashes. */
static uint64_t filter_skips_of_new(struct app_store *s)
{
	uint64_t skips = app_metric_get(APP_M_txindex_filter_skips_total);
	uint8_t h[32];

	for (int i = 0; i < 1000; i++) {
		randombytes_buf(h, 32);
		cr_assert_eq(app_store_tx_known(s, 7, h), 0);
	}
	return app_metric_get(APP_M_txindex_filter_skips_total) - skips;
}

/* The hash filter in front of txindex.db: new hashes are answered without
 * reading it, and every hash it held before a restart is still found
 * (mz-xfilter loads them), as is every hash added since. */
Test(store, txindex_filter_skips_new_hashes_and_keeps_old_ones)
{
	static struct app_tx a[3000], b[100];
	struct app_store *s;
	struct app_txindex *xi;
	atomic_uint_fast64_t durable = 3001;
	uint64_t skips;
	char err[256];

	cr_assert_eq(app_store_open(&s, dir, 0, err, sizeof(err)), 0, "%s", err);
	put_txs(s, a, 3000, 1);
	cr_assert_eq(app_txindex_open(&xi, dir, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(app_store_attach_txindex(s, xi, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(app_txindex_start(xi, &durable, 0), 0);
	wait_filter_ready();
	expect_found(s, a, 3000); /* txindex.db's rows at start: loaded */

	skips = filter_skips_of_new(s);
	cr_assert_geq(skips, 990, "the filter answered %llu of 1000 new hashes",
		      (unsigned long long)skips);

	/* added after start: in the filter before they reach txindex.db */
	put_txs(s, b, 100, 3001);
	app_txindex_add(xi, b, 100);
	atomic_store(&durable, 3101);
	expect_found(s, b, 100);
	for (int i = 0; i < 200 && app_metric_get(APP_M_txindex_unindexed); i++)
		usleep(50 * 1000);
	app_txindex_prune(xi); /* merged: only txindex.db has them now */
	expect_found(s, b, 100);
	app_txindex_stop(xi);

	/* restart: everything from before is found once mz-xfilter has loaded
	 * the filter (the close's snapshot removed, so that it has to) */
	app_store_close(s);
	s = NULL;
	app_txindex_close(xi);
	cr_assert_eq(unlink(snap_path()), 0, "a clean close left no filter snapshot");
	xi = reopen(&s, NULL);
	cr_assert_eq(app_metric_get(APP_M_txindex_filter_ready), 0);
	cr_assert_eq(app_txindex_start(xi, &durable, 0), 0);
	wait_filter_ready();
	expect_found(s, a, 3000);
	expect_found(s, b, 100);
	app_txindex_stop(xi);
	app_store_close(s);
	app_txindex_close(xi);
}

/*
 * The filter's snapshot: a clean close writes it, the next open takes it
 * (ready at once, no mz-xfilter) and deletes it, and every hash is still
 * found, which an incomplete filter would not do (a lookup it rules out
 * stops there). A snapshot that does not end where the stored rows do, or
 * whose bytes changed, is refused and the loader runs; an incomplete
 * filter is not saved.
 */
Test(store, txindex_filter_snapshot_at_restart)
{
	static struct app_tx a[3000], b[100], c[50];
	struct app_store *s;
	struct app_txindex *xi;
	atomic_uint_fast64_t durable = 3001;
	char err[256], cmd[512];

	cr_assert_eq(app_store_open(&s, dir, 0, err, sizeof(err)), 0, "%s", err);
	put_txs(s, a, 3000, 1);
	cr_assert_eq(app_txindex_open(&xi, dir, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(app_store_attach_txindex(s, xi, err, sizeof(err)), 0, "%s", err);
	/* never ready (not started): nothing to save */
	app_store_close(s);
	s = NULL;
	app_txindex_close(xi);
	cr_assert_neq(access(snap_path(), F_OK), 0, "an incomplete filter was saved");

	xi = reopen(&s, NULL);
	cr_assert_eq(app_txindex_start(xi, &durable, 0), 0);
	wait_filter_ready();
	put_txs(s, b, 100, 3001);
	app_txindex_add(xi, b, 100); /* in the map only: never merged (durable) */
	app_store_close(s);
	s = NULL;
	app_txindex_close(xi);
	cr_assert_eq(access(snap_path(), F_OK), 0, "a clean close left no filter snapshot");
	snprintf(cmd, sizeof(cmd), "cp %s %s.keep", snap_path(), snap_path());
	cr_assert_eq(system(cmd), 0);

	/* taken: ready at open, before any thread runs, and deleted */
	xi = reopen(&s, NULL);
	cr_assert_eq(app_metric_get(APP_M_txindex_filter_ready), 1, "the snapshot was not taken");
	cr_assert_neq(access(snap_path(), F_OK), 0, "the snapshot outlived its open");
	expect_found(s, a, 3000);
	expect_found(s, b, 100);
	cr_assert_geq(filter_skips_of_new(s), 990);

	/* rows stored after the kept snapshot: it is refused */
	put_txs(s, c, 50, 3101);
	app_txindex_add(xi, c, 50);
	app_store_close(s);
	s = NULL;
	app_txindex_close(xi);
	snprintf(cmd, sizeof(cmd), "mv %s.keep %s", snap_path(), snap_path());
	cr_assert_eq(system(cmd), 0);
	xi = reopen(&s, NULL);
	cr_assert_eq(app_metric_get(APP_M_txindex_filter_ready), 0, "a stale snapshot was taken");
	cr_assert_neq(access(snap_path(), F_OK), 0, "a refused snapshot was kept");
	cr_assert_eq(app_txindex_start(xi, &durable, 0), 0);
	wait_filter_ready();
	expect_found(s, c, 50);

	/* one bit of the filter changed on disk: refused */
	app_store_close(s);
	s = NULL;
	app_txindex_close(xi);
	{
		FILE *f = fopen(snap_path(), "r+b");
		int ch;

		cr_assert_not_null(f, "a clean close left no filter snapshot");
		cr_assert_eq(fseek(f, APP_XF_SNAPSHOT_HDR + 4096, SEEK_SET), 0);
		ch = fgetc(f);
		cr_assert_eq(fseek(f, APP_XF_SNAPSHOT_HDR + 4096, SEEK_SET), 0);
		fputc(ch ^ 0x10, f);
		fclose(f);
	}
	xi = reopen(&s, NULL);
	cr_assert_eq(app_metric_get(APP_M_txindex_filter_ready), 0, "a damaged snapshot was taken");
	cr_assert_eq(app_txindex_start(xi, &durable, 0), 0);
	wait_filter_ready();
	expect_found(s, a, 3000);
	expect_found(s, b, 100);
	expect_found(s, c, 50);
	app_store_close(s);
	app_txindex_close(xi);
}

/* mz-xfilter reads txindex.db a piece at a time (65,536 keys, each piece
 * its own read transaction): with more rows than a piece, every one is in
 * the filter once it is ready, and new hashes are still ruled out. */
Test(store, txindex_filter_loads_txindex_db_in_pieces)
{
	static struct app_tx a[70000];
	struct app_store *s;
	struct app_txindex *xi;
	atomic_uint_fast64_t durable = 70001;
	char err[256];

	cr_assert_eq(app_store_open(&s, dir, 0, err, sizeof(err)), 0, "%s", err);
	put_txs(s, a, 70000, 1);
	xi = reopen(&s, NULL); /* indexed into txindex.db at open */
	cr_assert_eq(app_metric_get(APP_M_txindex_filter_ready), 0);
	cr_assert_eq(app_txindex_start(xi, &durable, 0), 0);
	wait_filter_ready();
	expect_found(s, a, 70000);
	cr_assert_geq(filter_skips_of_new(s), 990);
	app_store_close(s);
	app_txindex_close(xi);
}

/* Every row added so far merged into txindex.db; mz-index checked the
 * filter's size on the way (it does before each merge). */
static void wait_all_merged(void)
{
	for (int i = 0; i < 400 && app_metric_get(APP_M_txindex_unindexed); i++)
		usleep(50 * 1000);
	cr_assert_eq(app_metric_get(APP_M_txindex_unindexed), 0, "rows left unmerged for 20 s");
}

/* Store rows a[from .. from + n) (seqs from + 1 on), add them to the map
 * and make them durable, so mz-index may merge them. */
static void add_round(struct app_store *s, struct app_txindex *xi, struct app_tx *a, size_t from,
		      size_t n, atomic_uint_fast64_t *durable)
{
	put_txs(s, a + from, n, 1 + from);
	app_txindex_add(xi, a + from, n);
	atomic_store(durable, 1 + from + n);
}

/*
 * The filter grows with the rows (mz-xgrow): sized for none at the start
 * (4096 bits here, for 256 rows), it ends at the size open would give the
 * rows stored, every hash is still found however it was held while the
 * filter grew (merged into txindex.db, or only in the map), new hashes are
 * ruled out as at the start, hashes added while it grows are in the new
 * one, and the next open takes its snapshot at the size it grew to (open
 * alone would choose another).
 */
Test(store, txindex_filter_grows_with_the_rows)
{
	static struct app_tx a[34000];
	struct app_store *s;
	struct app_txindex *xi;
	atomic_uint_fast64_t durable = 1;
	uint64_t skips;

	app_txindex_filter_sizing(4096, 0, 0);
	xi = open_indexed(&s);
	cr_assert_eq(app_metric_get(APP_M_txindex_filter_bytes), 512);
	cr_assert_eq(app_txindex_start(xi, &durable, 0), 0);
	wait_filter_ready();
	for (size_t k = 0; k < 24; k++) {
		add_round(s, xi, a, 1000 * k, 1000, &durable);
		if (k == 7) { /* the first 8000 merged (idle) and gone from the map */
			wait_all_merged();
			app_txindex_prune(xi);
		}
		expect_found(s, a, 1000 * (k + 1)); /* while it grows, too */
	}
	/* 16 bits a row for 24000 rows: 2^19 bits */
	for (int i = 0; i < 400 && app_metric_get(APP_M_txindex_filter_bytes) < 65536; i++)
		usleep(50 * 1000);
	cr_assert_eq(app_metric_get(APP_M_txindex_filter_bytes), 65536, "the filter did not grow");
	expect_found(s, a, 24000);
	skips = filter_skips_of_new(s);
	cr_assert_geq(skips, 990, "the grown filter ruled out %llu of 1000 new hashes",
		      (unsigned long long)skips);

	/* hashes added while it grows (held before it reads txindex.db) are
	 * in the new filter: found once merged, when only the filter and
	 * txindex.db know them */
	app_txindex_filter_hold(1);
	add_round(s, xi, a, 24000, 9000, &durable); /* past 2^19 / 16 rows */
	for (int i = 0; i < 400 && !app_txindex_filter_hold(1); i++)
		usleep(50 * 1000);
	cr_assert(app_txindex_filter_hold(1), "the filter did not start growing");
	add_round(s, xi, a, 33000, 1000, &durable);
	app_txindex_filter_hold(0);
	for (int i = 0; i < 400 && app_metric_get(APP_M_txindex_filter_bytes) < 131072; i++)
		usleep(50 * 1000);
	cr_assert_eq(app_metric_get(APP_M_txindex_filter_bytes), 131072);
	wait_all_merged();
	app_txindex_prune(xi);
	expect_found(s, a, 34000);

	app_txindex_filter_sizing(1u << 22, 0, 0);
	xi = reopen(&s, xi);
	cr_assert_eq(app_metric_get(APP_M_txindex_filter_ready), 1, "the snapshot was not taken");
	cr_assert_eq(app_metric_get(APP_M_txindex_filter_bytes), 131072);
	expect_found(s, a, 34000);
	cr_assert_geq(filter_skips_of_new(s), 990);
	app_store_close(s);
	app_txindex_close(xi);
	app_txindex_filter_sizing(0, 0, 0);
}

/*
 * A growth that fails (here a fault where mz-xgrow reads txindex.db) loses
 * nothing: the old filter stays in use with every hash, those added while
 * the doomed growth ran included, and the growth is tried again only after
 * the retry rows (3000 here), then succeeds.
 */
Test(store, txindex_filter_growth_fails_and_is_retried)
{
	static struct app_tx a[6000];
	struct app_store *s;
	struct app_txindex *xi;
	atomic_uint_fast64_t durable = 1;
	uint64_t failed = app_metric_get(APP_M_txindex_filter_growth_failures_total), skips;

	app_txindex_filter_sizing(4096, 0, 3000);
	xi = open_indexed(&s);
	cr_assert_eq(app_txindex_start(xi, &durable, 0), 0);
	wait_filter_ready();
	app_txindex_filter_fail_next();
	app_txindex_filter_hold(1);
	add_round(s, xi, a, 0, 1000, &durable); /* past 4096 / 16 rows: it grows */
	for (int i = 0; i < 400 && !app_txindex_filter_hold(1); i++)
		usleep(50 * 1000);
	cr_assert(app_txindex_filter_hold(1), "the filter did not start growing");
	add_round(s, xi, a, 1000, 1000, &durable); /* while the doomed growth runs */
	app_txindex_filter_hold(0);
	for (int i = 0; i < 400 && app_metric_get(APP_M_txindex_filter_growth_failures_total) ==
					   failed; i++)
		usleep(50 * 1000);
	cr_assert_eq(app_metric_get(APP_M_txindex_filter_growth_failures_total), failed + 1);
	cr_assert_eq(app_metric_get(APP_M_txindex_filter_bytes), 512, "the failed filter is in use");
	wait_all_merged();
	app_txindex_prune(xi); /* only the old filter and txindex.db know them now */
	expect_found(s, a, 2000);

	/* 1000 more rows: short of the retry, so no growth yet */
	add_round(s, xi, a, 2000, 1000, &durable);
	wait_all_merged();
	cr_assert_eq(app_metric_get(APP_M_txindex_filter_bytes), 512,
		     "the growth was retried before its retry rows");
	/* past them: it grows, and every hash is found in the grown filter */
	add_round(s, xi, a, 3000, 3000, &durable);
	for (int i = 0; i < 400 && app_metric_get(APP_M_txindex_filter_bytes) == 512; i++)
		usleep(50 * 1000);
	cr_assert_gt(app_metric_get(APP_M_txindex_filter_bytes), 512, "the growth was not retried");
	cr_assert_eq(app_metric_get(APP_M_txindex_filter_growth_failures_total), failed + 1);
	wait_all_merged();
	app_txindex_prune(xi);
	expect_found(s, a, 6000);
	skips = filter_skips_of_new(s);
	cr_assert_geq(skips, 990, "the grown filter ruled out %llu of 1000 new hashes",
		      (unsigned long long)skips);
	app_store_close(s);
	app_txindex_close(xi);
	app_txindex_filter_sizing(0, 0, 0);
}

/* Rows of tx_hash as SQL values, for a txindex.db as a crash leaves it. */
static void xi_rows(char *sql, size_t len, const struct app_tx *t, size_t n)
{
	size_t o = strlen(sql);

	for (size_t i = 0; i < n; i++) {
		o += (size_t)snprintf(sql + o, len - o, "%s(%llu, X'", i ? "," : "",
				      (unsigned long long)(t[i].seq >> APP_TXINDEX_PART_SHIFT));
		for (int j = 0; j < 8; j++) /* txindex.db keeps the first 8 bytes */
			o += (size_t)snprintf(sql + o, len - o, "%02x", t[i].hash[j]);
		o += (size_t)snprintf(sql + o, len - o, "', %llu, %llu)",
				      (unsigned long long)t[i].ns, (unsigned long long)t[i].seq);
		cr_assert_lt(o, len);
	}
}

/* A merge goes to txindex.db in pieces (txindex.c). A crash between two
 * pieces leaves rows past the `indexed` mark: the next start indexes the
 * rest around them. And a `pending` batch end past the database's end (an
 * older database restored under it) rebuilds txindex.db. */
Test(store, txindex_merge_in_pieces_and_a_crash_between_them)
{
	static struct app_tx a[300], b[20000], c[100];
	static char sql[100 * 160];
	struct app_store *s;
	struct app_txindex *xi;
	atomic_uint_fast64_t durable = 301;
	uint64_t merges, pieces, pauses;
	char err[256];

	cr_assert_eq(app_store_open(&s, dir, 0, err, sizeof(err)), 0, "%s", err);
	put_txs(s, a, 300, 1);
	cr_assert_eq(app_txindex_open(&xi, dir, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(app_store_attach_txindex(s, xi, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(app_txindex_start(xi, &durable, 0), 0);

	merges = app_metric_get(APP_M_txindex_merges_total);
	pieces = app_metric_get(APP_M_txindex_merge_pieces_total);
	pauses = app_metric_get(APP_M_txindex_merge_pauses_total);
	for (size_t i = 0; i < 20000; i += 1000) {
		put_txs(s, b + i, 1000, 301 + i);
		app_txindex_add(xi, b + i, 1000);
	}
	atomic_store(&durable, 20301);
	wait_one_merge(merges);
	cr_assert_geq(app_metric_get(APP_M_txindex_merge_pieces_total) - pieces, 2,
		      "20,000 rows merged in %llu piece(s)",
		      (unsigned long long)(app_metric_get(APP_M_txindex_merge_pieces_total) - pieces));
	/* the map has room and no batch waits: mz-index paused between them */
	cr_assert_geq(app_metric_get(APP_M_txindex_merge_pauses_total) - pauses, 1,
		      "no pause between the pieces of a merge with room in the map");
	cr_assert_eq(app_metric_get(APP_M_txindex_unindexed), 0);
	app_txindex_prune(xi);
	expect_found(s, b, 20000);
	app_txindex_stop(xi);

	/* a crash after the first piece of c's batch: half its rows, no mark */
	put_txs(s, c, 100, 20301);
	snprintf(sql, sizeof(sql), "INSERT OR REPLACE INTO meta VALUES ('pending', 20401);"
				   "INSERT INTO tx_hash VALUES ");
	xi_rows(sql, sizeof(sql), c, 50);
	xi_sql(sql);
	xi = reopen(&s, xi);
	cr_assert_eq(app_txindex_next(xi), 20401);
	expect_found(s, a, 300);
	expect_found(s, b, 20000);
	expect_found(s, c, 100);

	/* a batch pending past the database's end: rebuilt, the stray row gone */
	xi_sql("INSERT OR REPLACE INTO meta VALUES ('pending', 30000);"
	       "INSERT INTO tx_hash VALUES (0, zeroblob(8), 7, 20500)");
	xi = reopen(&s, xi);
	cr_assert_eq(xi_int("SELECT count(*) FROM tx_hash WHERE seq >= 20401"), 0);
	cr_assert_eq(app_store_tx_known(s, 7, (const uint8_t[32]){0}), 0);
	expect_found(s, c, 100);
	app_store_close(s);
	app_txindex_close(xi);
}

/* txindex.db keeps 8 bytes of each hash (txindex.c, format 3). Hashes that
 * share them, in one namespace and across two, are each found with their
 * own seq once merged, and again after a rebuild (the catch-up's SQL keys
 * rows as the merge does); a hash that shares them but is not stored is not
 * found. */
Test(store, txindex_hashes_sharing_a_prefix)
{
	static struct app_tx t[4];
	struct app_store *s;
	struct app_txindex *xi;
	atomic_uint_fast64_t durable = 1;
	uint8_t other[32];
	char err[256];

	cr_assert_eq(app_store_open(&s, dir, 0, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(app_txindex_open(&xi, dir, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(app_store_attach_txindex(s, xi, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(app_store_begin(s, err, sizeof(err)), 0, "%s", err);
	for (size_t i = 0; i < 4; i++) {
		t[i] = (struct app_tx){.seq = 1 + i, .ns = i < 3 ? 7 : 8, .group_id = 1,
				       .slot = 5, .data = (uint8_t *)"abc", .len = 3};
		randombytes_buf(t[i].hash, 32);
		memcpy(t[i].hash, t[0].hash, 8);
		cr_assert_eq(app_store_tx_insert(s, &t[i], err, sizeof(err)), 0, "%s", err);
	}
	cr_assert_eq(app_store_commit(s, err, sizeof(err)), 0, "%s", err);
	memcpy(other, t[0].hash, 32);
	other[31] ^= 1;

	merge_now(xi, t, 4, &durable, 1);
	cr_assert_eq(xi_int("SELECT count(*) FROM tx_hash"), 4);
	cr_assert_eq(xi_int("SELECT count(DISTINCT k) FROM tx_hash"), 1);
	expect_found(s, t, 4);
	cr_assert_eq(app_store_tx_known(s, 7, other), 0);
	cr_assert_eq(app_store_tx_known(s, 0, other), 0);
	app_txindex_stop(xi);

	xi_sql("DELETE FROM tx_hash; DELETE FROM meta");
	xi = reopen(&s, xi);
	cr_assert_eq(xi_int("SELECT count(*) FROM tx_hash"), 4);
	expect_found(s, t, 4);
	cr_assert_eq(app_store_tx_known(s, 0, other), 0);
	app_store_close(s);
	app_txindex_close(xi);
}

/* mz-index's merge order (app_sort_by_be64): records sorted by a big-endian
 * key at an offset, equal keys in their first order, every record kept
 * exactly once and moved whole, a sorted input left as it is; for keys that share all but one byte, every byte, and for
 * inputs already sorted, reversed or all equal. */
struct sort_rec {
	uint8_t pad[5];
	uint8_t key[8];
	uint8_t pad2[3];
	uint32_t id;
};

/* Record i of an input: its id, and bytes around the key that must move with it. */
static void set_id(struct sort_rec *r, uint32_t i)
{
	r->id = i;
	r->pad[0] = (uint8_t)i;
	r->pad2[2] = (uint8_t)(i >> 8);
}

static void check_sorted(struct sort_rec *r, size_t n)
{
	static struct app_sort_pair scratch[2 * 6000];
	static uint8_t seen[6000];

	cr_assert_leq(n, 6000);
	app_sort_by_be64(r, n, sizeof(*r), offsetof(struct sort_rec, key), scratch);
	memset(seen, 0, n);
	for (size_t i = 0; i < n; i++) {
		cr_assert_lt(r[i].id, n, "record %zu: id %u is not one of the input", i, r[i].id);
		cr_assert_eq(seen[r[i].id], 0, "id %u twice", r[i].id);
		cr_assert(r[i].pad[0] == (uint8_t)r[i].id && r[i].pad2[2] == (uint8_t)(r[i].id >> 8),
			  "record %zu moved in part", i);
		seen[r[i].id] = 1;
		if (i == 0)
			continue;
		int c = memcmp(r[i - 1].key, r[i].key, 8);

		cr_assert_leq(c, 0, "records %zu and %zu out of order", i - 1, i);
		if (c == 0)
			cr_assert_lt(r[i - 1].id, r[i].id, "equal keys reordered at %zu", i);
	}
}

Test(store, sort_by_be64_orders_stably_whatever_the_keys)
{
	static struct sort_rec r[6000];
	size_t n = 6000;

	/* 40 distinct keys, most differing in one byte only, so each of the
	 * eight passes decides some pairs; many repeats test stability */
	for (size_t i = 0; i < n; i++) {
		uint32_t v = randombytes_uniform(40);

		memset(&r[i], 0xa5, sizeof(r[i]));
		memset(r[i].key, 0x80, 8);
		r[i].key[v % 8] = (uint8_t)(v * 37);
		set_id(&r[i], (uint32_t)i);
	}
	check_sorted(r, n);
	{ /* already sorted: unchanged */
		static struct sort_rec before[6000];

		memcpy(before, r, sizeof(r));
		check_sorted(r, n);
		cr_assert_eq(memcmp(before, r, sizeof(r)), 0, "a sorted input was reordered");
	}
	for (size_t i = 0; i < n; i++) {
		randombytes_buf(r[i].key, 8);
		set_id(&r[i], (uint32_t)i);
	}
	check_sorted(r, n);
	for (size_t i = 0; i < n / 2; i++) { /* reversed */
		struct sort_rec t = r[i];

		r[i] = r[n - 1 - i];
		r[n - 1 - i] = t;
	}
	for (size_t i = 0; i < n; i++)
		set_id(&r[i], (uint32_t)i);
	check_sorted(r, n);
	for (size_t i = 0; i < n; i++) { /* all equal */
		memset(r[i].key, 7, 8);
		set_id(&r[i], (uint32_t)i);
	}
	check_sorted(r, n);
	check_sorted(r, 1);
	check_sorted(r, 0);
}

/* txindex.db is partitioned by seq (txindex.c, "Partitions"). Rows indexed
 * at open and rows merged from the map, in a batch that crosses a partition
 * boundary, each land in their seq's partition; every partition is probed:
 * a hash is found in the older one, and a hash stored in both (two
 * namespaces) is found by namespace in each, and by hash alone at its
 * lowest seq. */
Test(store, txindex_partitions)
{
	static struct app_tx a[300], b[300], c[300];
	const uint64_t edge = 1ull << APP_TXINDEX_PART_SHIFT;
	struct app_store *s;
	struct app_txindex *xi;
	atomic_uint_fast64_t durable = 1;
	struct app_tx e, f;
	char err[256], q[128];

	cr_assert_eq(app_store_open(&s, dir, 0, err, sizeof(err)), 0, "%s", err);
	put_txs(s, a, 300, 1);
	put_txs(s, b, 300, edge - 450); /* partition 0 ends at edge - 1 */
	cr_assert_eq(app_txindex_open(&xi, dir, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(app_store_attach_txindex(s, xi, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(app_txindex_next(xi), edge - 150);
	cr_assert_eq(xi_int("SELECT count(*) FROM tx_hash WHERE p = 0"), 600);

	/* c: seqs edge - 150 .. edge + 149, one batch over the boundary */
	put_txs(s, c, 300, edge - 150);
	merge_now(xi, c, 300, &durable, 1);
	cr_assert_eq(xi_int("SELECT count(*) FROM tx_hash WHERE p = 0"), 750);
	cr_assert_eq(xi_int("SELECT count(*) FROM tx_hash WHERE p = 1"), 150);
	snprintf(q, sizeof(q), "SELECT count(*) FROM tx_hash WHERE p != seq >> %d",
		 APP_TXINDEX_PART_SHIFT);
	cr_assert_eq(xi_int(q), 0);
	expect_found(s, a, 300);
	expect_found(s, b, 300);
	expect_found(s, c, 300);

	/* a[0]'s hash again, in another namespace, in partition 1 */
	e = (struct app_tx){.seq = edge + 150, .ns = a[0].ns + 100, .group_id = edge + 150,
			    .slot = 5, .data = (uint8_t *)"abc", .len = 3};
	memcpy(e.hash, a[0].hash, 32);
	cr_assert_eq(app_store_begin(s, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(app_store_tx_insert(s, &e, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(app_store_commit(s, err, sizeof(err)), 0, "%s", err);
	merge_now(xi, &e, 1, &durable, 0);
	snprintf(q, sizeof(q), "SELECT p FROM tx_hash WHERE seq = %llu", (unsigned long long)e.seq);
	cr_assert_eq(xi_int(q), 1);
	cr_assert_eq(app_store_tx_find(s, e.ns, e.hash, &f), 0);
	cr_assert_eq(f.seq, e.seq);
	cr_assert_eq(app_store_tx_find(s, a[0].ns, e.hash, &f), 0);
	cr_assert_eq(f.seq, 1);
	cr_assert_eq(app_store_tx_find(s, 0, e.hash, &f), 0);
	cr_assert_eq(f.seq, 1, "lowest seq of the hash in any namespace");
	app_store_close(s);
	app_txindex_close(xi);
}

/* Open txindex.db and find it rebuilt in this version's format, every one
 * of txs[0..n) (seqs 1..n) in partition 0 with an 8-byte key, and found. */
static void expect_rebuilt(const struct app_tx *txs, size_t n)
{
	struct app_store *s;
	struct app_txindex *xi;
	char err[256];

	cr_assert_eq(app_store_open(&s, dir, 0, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(app_txindex_open(&xi, dir, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(xi_int("PRAGMA user_version"), 3);
	cr_assert_eq(xi_int("SELECT count(*) FROM tx_hash WHERE p = 0 AND length(k) = 8"),
		     (long long)n);
	cr_assert_eq(app_store_attach_txindex(s, xi, err, sizeof(err)), 0, "%s", err);
	expect_found(s, txs, n);
	app_store_close(s);
	app_txindex_close(xi);
}

/* A txindex.db of format 1 (whole 32-byte hashes as keys, user_version 0)
 * or of format 2 (8-byte keys, no partitions), complete and matching, is
 * rebuilt at open in this version's format. */
Test(store, txindex_older_format_rebuilt)
{
	static struct app_tx a[300];
	struct app_store *s;
	char err[256], sql[512];

	cr_assert_eq(app_store_open(&s, dir, 0, err, sizeof(err)), 0, "%s", err);
	put_txs(s, a, 300, 1);
	snprintf(sql, sizeof(sql),
		 "ATTACH DATABASE '%s/mezzanine.db' AS m;"
		 "CREATE TABLE meta(k TEXT PRIMARY KEY, v) WITHOUT ROWID;"
		 "CREATE TABLE tx_hash(hash BLOB NOT NULL, ns INTEGER NOT NULL,"
		 "  seq INTEGER NOT NULL, PRIMARY KEY(hash, ns)) WITHOUT ROWID;"
		 "INSERT INTO tx_hash SELECT hash, ns, seq FROM m.txs;"
		 "INSERT INTO meta VALUES ('indexed', 301),"
		 "  ('last_hash', (SELECT hash FROM m.txs WHERE seq = 300));",
		 dir);
	xi_sql(sql);
	cr_assert_eq(xi_int("PRAGMA user_version"), 0);
	app_store_close(s);
	expect_rebuilt(a, 300);

	snprintf(sql, sizeof(sql),
		 "DROP TABLE tx_hash;"
		 "CREATE TABLE tx_hash(k BLOB NOT NULL, ns INTEGER NOT NULL,"
		 "  seq INTEGER NOT NULL, PRIMARY KEY(k, ns, seq)) WITHOUT ROWID;"
		 "ATTACH DATABASE '%s/mezzanine.db' AS m;"
		 "INSERT INTO tx_hash SELECT substr(hash, 1, 8), ns, seq FROM m.txs;"
		 "PRAGMA user_version = 2;",
		 dir);
	xi_sql(sql);
	cr_assert_eq(xi_int("PRAGMA user_version"), 2);
	expect_rebuilt(a, 300);
}

struct prune_arg {
	struct app_txindex *xi;
	atomic_int done;
};

/* Random hashes in namespace 7 into the map, seqs *seq up to `last`, in
 * runs of 4096 through t (which ends holding the last run). */
static void add_random_rows(struct app_txindex *xi, struct app_tx t[static 4096], uint64_t *seq,
			    uint64_t last)
{
	while (*seq <= last) {
		size_t n = last - *seq + 1 < 4096 ? (size_t)(last - *seq + 1) : 4096;

		for (size_t i = 0; i < n; i++) {
			t[i] = (struct app_tx){.seq = (*seq)++, .ns = 7};
			randombytes_buf(t[i].hash, 32);
		}
		app_txindex_add(xi, t, n);
	}
}

static void *prune_thread(void *p)
{
	struct prune_arg *a = p;

	app_txindex_prune(a->xi);
	atomic_store(&a->done, 1);
	return NULL;
}

/* The map is bounded: with APP_TXINDEX_MAX_LIVE transactions unmerged, the
 * committer's prune waits until mz-index has merged some. */
Test(store, txindex_map_bounded_prune_waits_for_a_merge)
{
	static struct app_tx t[4096];
	struct app_store *s;
	struct app_txindex *xi;
	atomic_uint_fast64_t durable = 1;
	struct prune_arg a = {0};
	pthread_t th;
	char err[256];
	uint64_t seq = 1, waits;
	int maybe;

	cr_assert_eq(app_store_open(&s, dir, 0, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(app_txindex_open(&xi, dir, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(app_txindex_start(xi, &durable, 0), 0); /* nothing durable yet */
	add_random_rows(xi, t, &seq, APP_TXINDEX_MAX_LIVE); /* a multiple of 4096 */
	a.xi = xi;
	waits = app_metric_get(APP_M_txindex_full_wait_seconds);
	cr_assert_eq(pthread_create(&th, NULL, prune_thread, &a), 0);
	usleep(300 * 1000);
	cr_assert_eq(atomic_load(&a.done), 0, "prune returned with the map full and nothing merged");
	atomic_store(&durable, seq); /* all durable: mz-index merges, prune returns */
	for (int i = 0; i < 1200 && !atomic_load(&a.done); i++)
		usleep(50 * 1000);
	cr_assert_eq(atomic_load(&a.done), 1, "prune still waiting 60 s after the merge could run");
	pthread_join(th, NULL);
	cr_assert_eq(app_metric_get(APP_M_txindex_full_wait_seconds) - waits, 1,
		     "the wait is not in mezz_txindex_full_wait_seconds");
	cr_assert_eq(app_metric_get(APP_M_txindex_unindexed), 0);
	cr_assert_eq(app_txindex_find(xi, 7, t[4095].hash, &seq, &maybe), 0, "pruned from the map");
	app_txindex_close(xi);
	app_store_close(s);
}

/* Near its cap the map is not left to fill while a merge pauses: the
 * committer can drop nothing until the whole batch is merged, so mz-index
 * stops pausing between pieces once the map is within a quarter of
 * APP_TXINDEX_MAX_LIVE (txindex.c, XI_PACE_ROOM). Without that, a batch of
 * most of the map was paced while the committer waited at the cap. */
Test(store, txindex_merge_not_paused_near_the_map_cap)
{
	static struct app_tx t[4096];
	struct app_store *s;
	struct app_txindex *xi;
	atomic_uint_fast64_t durable = 1;
	const uint64_t rows = APP_TXINDEX_MAX_LIVE - APP_TXINDEX_MAX_LIVE / 8;
	uint64_t seq = 1, merges, pieces, pauses;
	char err[256];
	int maybe;

	cr_assert_eq(app_store_open(&s, dir, 0, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(app_txindex_open(&xi, dir, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(app_txindex_start(xi, &durable, 0), 0); /* nothing durable yet */
	add_random_rows(xi, t, &seq, rows);
	merges = app_metric_get(APP_M_txindex_merges_total);
	pieces = app_metric_get(APP_M_txindex_merge_pieces_total);
	pauses = app_metric_get(APP_M_txindex_merge_pauses_total);
	atomic_store(&durable, seq); /* one batch of 7/8 of the cap */
	wait_one_merge(merges);
	cr_assert_geq(app_metric_get(APP_M_txindex_merge_pieces_total) - pieces, 2,
		      "the batch went in one piece: nothing to pause between");
	cr_assert_eq(app_metric_get(APP_M_txindex_merge_pauses_total) - pauses, 0,
		     "mz-index paused %llu time(s) with the map at 7/8 of its cap",
		     (unsigned long long)(app_metric_get(APP_M_txindex_merge_pauses_total) -
					  pauses));
	app_txindex_prune(xi);
	cr_assert_eq(app_metric_get(APP_M_txindex_unindexed), 0);
	cr_assert_eq(app_txindex_find(xi, 7, t[0].hash, &seq, &maybe), 0, "pruned from the map");
	cr_assert_eq(maybe, 1, "a merged hash is not in the filter");
	app_txindex_close(xi);
	app_store_close(s);
}
