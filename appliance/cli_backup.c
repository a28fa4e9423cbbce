/*
 * cli_backup.c - `mezz backup DIR` and `mezz restore DIR`.
 *
 * A backup directory holds:
 *   mezzanine.db      a consistent copy made with SQLite's online backup API
 *                     from one read snapshot (the daemon keeps writing; WAL
 *                     readers never block it), rollback-journal mode, so it
 *                     is a single self-contained file
 *   rights.db,        the same, when the data dir has them (sales, purchases
 *   outbox.db         and settlements; the L1 outbox journal), copied
 *                     before mezzanine.db: each is then no newer than it,
 *                     so nothing they record (a grant done, a batch posted)
 *                     is missing from the main copy; what happened after
 *                     their snapshot is redone from it
 *   identity.key      the ed25519 identity (0600)
 *   apikey.secret     the API-key hashing secret (0600)
 *   shards.manifest   for every available block of the copy, from the prune
 *                     floor to its tip: one line
 *                       <height> <sha256 of record> <k> <m> <name>:<size> ...
 *                     with name <h/4096>/<h>-<i> (shard i) and the size of
 *                     its record in bytes, "-" if it was missing (or, with
 *                     --with-shards, failed its check) when the backup was
 *                     taken
 *   shards/           with --with-shards: every shard's record (the shard
 *                     file format of docs/PROTOCOL.md), by that name, each
 *                     checked against its block's commitment as it is copied
 *   MANIFEST          "<sha256> <size> <name>" for each file above except
 *                     shards/ (shard records carry their own CRC and Merkle
 *                     path); written last, so a backup without it is
 *                     incomplete
 *
 * A backup keeps one file per shard, not the store's packs (one file per
 * block and directory), so it restores into any number of shard directories.
 *
 * Restore refuses a non-empty data directory, checks every file against
 * MANIFEST, copies, runs PRAGMA integrity_check on the restored database,
 * packs copied shards into the configured shard directories and then scrubs
 * every block of the manifest there against the restored commitments. A
 * failure before the database is in place removes what it wrote. The
 * restored database carries meta.restored_next_seq, the first seq the
 * backup does not hold: the daemon refuses to start on it until the
 * operator runs `mezz restore --accept-loss` (the old node may have
 * receipted transactions at those seqs, which this one would give to
 * others under the same key).
 * Exit codes: 0 restored (shards may be missing within m: `mezz da repair`
 * rebuilds them), 1 failed, 3 restored but some blocks have more than m
 * shards missing or damaged.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "appliance/cli.h"
#include "da/da.h"

#define STEP_PAGES 1024
#define GROUP_HEIGHTS 4096

static const char *const key_files[] = {"identity.key", "apikey.secret"};
/* Backed up when present, before mezzanine.db (see above). */
static const char *const side_dbs[] = {"rights.db", "outbox.db"};


static void join(char *out, size_t len, const char *dir, const char *name)
{
	snprintf(out, len, "%s/%s", dir, name);
}

static int fsync_path(const char *path, int dir)
{
	int fd = open(path, (dir ? O_DIRECTORY : 0) | O_RDONLY | O_CLOEXEC), rc = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd))
		rc = -errno;
	close(fd);
	return rc;
}

/* 1 when path is missing or an empty directory; 0 when it has entries; -errno. */
static int dir_is_empty(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	int empty = 1;

	if (!d)
		return errno == ENOENT ? 1 : -errno;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			empty = 0;
			break;
		}
	closedir(d);
	return empty;
}

/* mkdir -p with mode for every directory it creates. */
static int mkdirs(const char *path, mode_t mode)
{
	char tmp[1024];

	snprintf(tmp, sizeof(tmp), "%s", path);
	for (char *p = tmp + 1; *p; p++)
		if (*p == '/') {
			*p = 0;
			if (mkdir(tmp, mode) && errno != EEXIST)
				return -errno;
			*p = '/';
		}
	if (mkdir(tmp, mode) && errno != EEXIST)
		return -errno;
	return 0;
}

/* Copies src to dst (created O_EXCL with mode), fsynced; adds to *bytes. */
static int copy_file(const char *src, const char *dst, mode_t mode, uint64_t *bytes)
{
	char buf[1 << 16];
	int in = open(src, O_RDONLY | O_CLOEXEC), out = -1, rc = 0;
	ssize_t n;

	if (in < 0)
		return -errno;
	out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (out < 0) {
		rc = -errno;
		goto out;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0) {
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(out, buf + off, (size_t)(n - off));

			if (w < 0) {
				rc = -errno;
				goto out;
			}
			off += w;
		}
		if (bytes)
			*bytes += (uint64_t)n;
	}
	if (n < 0 || fsync(out))
		rc = -errno;
out:
	if (out >= 0)
		close(out);
	close(in);
	return rc;
}

/* Writes buf to dst (created O_EXCL with mode), fsynced. */
static int write_new_file(const char *dst, const uint8_t *buf, size_t len, mode_t mode)
{
	int fd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode), rc = 0;

	if (fd < 0)
		return -errno;
	for (size_t off = 0; off < len;) {
		ssize_t w = write(fd, buf + off, len - off);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			break;
		}
		off += (size_t)w;
	}
	if (rc == 0 && fsync(fd))
		rc = -errno;
	close(fd);
	return rc;
}

static int sha256_file(const char *path, char hex[65], uint64_t *size)
{
	crypto_hash_sha256_state st;
	unsigned char buf[1 << 16], d[32];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	*size = 0;
	crypto_hash_sha256_init(&st);
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		crypto_hash_sha256_update(&st, buf, (size_t)n);
		*size += (uint64_t)n;
	}
	close(fd);
	if (n < 0)
		return -EIO;
	crypto_hash_sha256_final(&st, d);
	sodium_bin2hex(hex, 65, d, 32);
	return 0;
}

static void shard_name(char *out, size_t len, uint64_t h, unsigned i)
{
	snprintf(out, len, "%llu/%llu-%u", (unsigned long long)(h / GROUP_HEIGHTS),
		 (unsigned long long)h, i);
}

/* ---- backup ------------------------------------------------------------ */

/*
 * The online copy. The source connection holds one read transaction for the
 * whole copy, so every step reads the same WAL snapshot and a busy writer
 * never forces the backup to restart.
 */
static int backup_db(const char *src_path, const char *dst_path)
{
	sqlite3 *src = NULL, *dst = NULL;
	sqlite3_backup *b = NULL;
	struct app_progress pg;
	int rc, ret = 1, page;

	if (sqlite3_open_v2(src_path, &src, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		app_cli_fail("cannot open %s: %s", src_path, sqlite3_errmsg(src));
		goto out;
	}
	sqlite3_busy_timeout(src, 10000);
	if (sqlite3_exec(src, "BEGIN; SELECT count(*) FROM sqlite_schema;", NULL, NULL, NULL)) {
		app_cli_fail("cannot read %s: %s", src_path, sqlite3_errmsg(src));
		goto out;
	}
	if (sqlite3_open_v2(dst_path, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL)) {
		app_cli_fail("cannot create %s: %s", dst_path, sqlite3_errmsg(dst));
		goto out;
	}
	b = sqlite3_backup_init(dst, "main", src, "main");
	if (!b) {
		app_cli_fail("cannot start the backup: %s", sqlite3_errmsg(dst));
		goto out;
	}
	page = (int)app_sql_int(src, "PRAGMA page_size", 4096);
	app_progress_start(&pg, "backup", "pages", 0);
	do {
		rc = sqlite3_backup_step(b, STEP_PAGES);
		pg.total = (uint64_t)sqlite3_backup_pagecount(b);
		pg.done = pg.total - (uint64_t)sqlite3_backup_remaining(b);
		pg.bytes = pg.done * (uint64_t)page;
		app_progress_show(&pg, 0);
		if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
			sqlite3_sleep(20);
	} while (rc == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED);
	app_progress_show(&pg, 1);
	rc = sqlite3_backup_finish(b);
	b = NULL;
	if (rc != SQLITE_OK) {
		app_cli_fail("backup failed: %s", sqlite3_errmsg(dst));
		goto out;
	}
	/* One self-contained file: no -wal beside it to lose. */
	if (sqlite3_exec(dst, "PRAGMA journal_mode=DELETE;", NULL, NULL, NULL)) {
		app_cli_fail("finishing the copy: %s", sqlite3_errmsg(dst));
		goto out;
	}
	ret = 0;
out:
	if (b)
		sqlite3_backup_finish(b);
	if (src)
		sqlite3_exec(src, "COMMIT", NULL, NULL, NULL);
	sqlite3_close(src);
	sqlite3_close(dst);
	return ret;
}

/* Writes shards.manifest from the copy's da_blocks; copies shards when asked. */
static int write_manifest(const struct app_config *cfg, const char *dir, int with_shards,
			  uint64_t *blocks_out)
{
	char path[1200], tmp[1300], db_path[1200], name[64], dst[1400], why[600] = "";
	char **dirs = NULL;
	size_t nd = 0;
	struct da_store *store = NULL;
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	uint64_t floor = 0, tip = 0, missing = 0;
	struct app_progress pg;
	FILE *f = NULL;
	int rc, ret = 1;

	join(db_path, sizeof(db_path), dir, "mezzanine.db");
	join(path, sizeof(path), dir, "shards.manifest");
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if ((rc = app_config_da_dirs(cfg, &dirs, &nd)) ||
	    (rc = da_store_open_why((const char *const *)dirs, nd, &store, why, sizeof(why)))) {
		app_cli_fail("shard directories: %s", why[0] ? why : app_strerror(rc));
		goto out;
	}
	if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL)) {
		app_cli_fail("cannot reopen the copy: %s", sqlite3_errmsg(db));
		goto out;
	}
	if (sqlite3_prepare_v2(db, "SELECT v FROM meta WHERE k = 'shards_pruned_below'", -1, &st,
			       NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		floor = (uint64_t)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	st = NULL;
	if (sqlite3_prepare_v2(db, "SELECT max(height) FROM da_blocks", -1, &st, NULL) ==
		    SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		tip = (uint64_t)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	st = NULL;
	if (sqlite3_prepare_v2(db,
			       "SELECT height, record FROM da_blocks WHERE height >= ?"
			       " ORDER BY height",
			       -1, &st, NULL) != SQLITE_OK) {
		app_cli_fail("reading da_blocks: %s", sqlite3_errmsg(db));
		goto out;
	}
	sqlite3_bind_int64(st, 1, (sqlite3_int64)floor);
	f = fopen(tmp, "wx");
	if (!f) {
		app_cli_fail("cannot create %s: %s", tmp, strerror(errno));
		goto out;
	}
	fprintf(f, "# mezzanine shards manifest v1: available blocks %llu..%llu, %zu shard "
		   "directories at backup time\n"
		   "# <height> <sha256 of record> <k> <m> <h/4096>/<h>-<i>:<bytes or ->...\n",
		(unsigned long long)(floor > 1 ? floor : 1), (unsigned long long)tip, nd);
	app_progress_start(&pg, with_shards ? "shards" : "manifest", "blocks",
			   tip >= floor ? tip - (floor > 1 ? floor : 1) + 1 : 0);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		uint64_t h = (uint64_t)sqlite3_column_int64(st, 0);
		const void *rec = sqlite3_column_blob(st, 1);
		int rlen = sqlite3_column_bytes(st, 1);
		unsigned char digest[32];
		char hex[65];
		struct da_record r;

		if (!rec || da_record_decode(&r, rec, (size_t)rlen)) {
			app_cli_fail("height %llu: the commitment record in the copy does not decode",
			     (unsigned long long)h);
			goto out;
		}
		crypto_hash_sha256(digest, rec, (unsigned long long)rlen);
		sodium_bin2hex(hex, sizeof(hex), digest, 32);
		fprintf(f, "%llu %s %u %u", (unsigned long long)h, hex, r.k, r.m);
		for (unsigned i = 0; i < (unsigned)r.k + r.m; i++) {
			struct da_shard_file sf;
			uint8_t *buf = NULL;
			size_t len = da_shard_file_len(i, (unsigned)r.k + r.m, r.S);

			shard_name(name, sizeof(name), h, i);
			if (!with_shards) {
				/* an inventory: present, not checked */
				rc = da_store_has_shard(store, &r, i);
			} else {
				/* -ENOENT, or DA_EMISMATCH if it fails its checks */
				rc = da_store_read_shard(store, &r, i, &buf, &sf);
				if (rc == 0) {
					snprintf(dst, sizeof(dst), "%s/shards/%llu", dir,
						 (unsigned long long)(h / GROUP_HEIGHTS));
					if ((rc = mkdirs(dst, 0700)) == 0) {
						snprintf(dst, sizeof(dst), "%s/shards/%s", dir, name);
						rc = write_new_file(dst, buf, len, 0600);
					}
					free(buf);
					if (rc) {
						app_cli_fail("writing %s: %s", dst, strerror(-rc));
						goto out;
					}
					pg.bytes += len;
					rc = 1;
				} else if (rc == -ENOENT || rc == DA_EMISMATCH) {
					rc = 0;
				}
			}
			if (rc < 0) {
				app_cli_fail("height %llu shard %u: %s", (unsigned long long)h, i,
					     app_strerror(rc));
				goto out;
			}
			if (rc == 0) {
				fprintf(f, " %s:-", name);
				missing++;
			} else {
				fprintf(f, " %s:%zu", name, len);
			}
		}
		fputc('\n', f);
		pg.done++;
		app_progress_show(&pg, 0);
	}
	app_progress_show(&pg, 1);
	if (rc != SQLITE_DONE) {
		app_cli_fail("reading da_blocks: %s", sqlite3_errmsg(db));
		goto out;
	}
	if (fflush(f) || fsync(fileno(f))) {
		app_cli_fail("writing %s: %s", tmp, strerror(errno));
		goto out;
	}
	fclose(f);
	f = NULL;
	if (rename(tmp, path)) {
		app_cli_fail("renaming %s: %s", tmp, strerror(errno));
		goto out;
	}
	if (missing)
		fprintf(stderr, "mezz: note: %llu shards were missing%s when the backup was "
				"taken (run mezz da scrub)\n",
			(unsigned long long)missing, with_shards ? " or damaged" : "");
	*blocks_out = pg.done;
	ret = 0;
out:
	if (f)
		fclose(f);
	sqlite3_finalize(st);
	sqlite3_close(db);
	da_store_close(store);
	app_config_dirs_free(dirs, nd);
	free(dirs);
	return ret;
}

static const char *const listed[] = {"mezzanine.db", "identity.key", "apikey.secret",
				     "shards.manifest"};

static int write_checksums(const char *dir)
{
	char path[1200], tmp[1300], file[1200], hex[65];
	FILE *f;
	uint64_t size;
	int rc;

	join(path, sizeof(path), dir, "MANIFEST");
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "wx");
	if (!f)
		return app_cli_fail("cannot create %s: %s", tmp, strerror(errno));
	fprintf(f, "# mezzanine backup v1: <sha256> <bytes> <file>\n");
	for (size_t i = 0; i < sizeof(listed) / sizeof(listed[0]); i++) {
		join(file, sizeof(file), dir, listed[i]);
		if ((rc = sha256_file(file, hex, &size))) {
			fclose(f);
			return app_cli_fail("hashing %s: %s", file, strerror(-rc));
		}
		fprintf(f, "%s %llu %s\n", hex, (unsigned long long)size, listed[i]);
	}
	for (size_t i = 0; i < sizeof(side_dbs) / sizeof(side_dbs[0]); i++) {
		join(file, sizeof(file), dir, side_dbs[i]);
		if (access(file, F_OK))
			continue;
		if ((rc = sha256_file(file, hex, &size))) {
			fclose(f);
			return app_cli_fail("hashing %s: %s", file, strerror(-rc));
		}
		fprintf(f, "%s %llu %s\n", hex, (unsigned long long)size, side_dbs[i]);
	}
	if (fflush(f) || fsync(fileno(f))) {
		fclose(f);
		return app_cli_fail("writing %s: %s", tmp, strerror(errno));
	}
	fclose(f);
	if (rename(tmp, path))
		return app_cli_fail("renaming %s: %s", tmp, strerror(errno));
	return fsync_path(dir, 1) ? app_cli_fail("fsync %s: %s", dir, strerror(errno)) : 0;
}

int app_cli_backup(const struct app_config *cfg, int argc, char **argv)
{
	char src[1200], dst[1200], tmp[1200], side[64] = "";
	uint64_t blocks = 0;
	int with_shards = 0, rc;
	const char *dir = NULL;

	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--with-shards"))
			with_shards = 1;
		else if (argv[i][0] != '-' && !dir)
			dir = argv[i];
		else
			goto usage;
	}
	if (!dir)
		goto usage;
	join(src, sizeof(src), cfg->data_dir, "mezzanine.db");
	if (access(src, R_OK))
		return app_cli_fail("no database at %s (use --data-dir or -c)", src);
	rc = dir_is_empty(dir);
	if (rc < 0)
		return app_cli_fail("%s: %s", dir, strerror(-rc));
	if (rc == 0)
		return app_cli_fail("%s is not empty: back up into a new directory", dir);
	if ((rc = mkdirs(dir, 0700)))
		return app_cli_fail("cannot create %s: %s", dir, strerror(-rc));
	chmod(dir, 0700);
	for (size_t i = 0; i < sizeof(side_dbs) / sizeof(side_dbs[0]); i++) {
		char side_src[1200];

		join(side_src, sizeof(side_src), cfg->data_dir, side_dbs[i]);
		if (access(side_src, F_OK))
			continue;
		join(tmp, sizeof(tmp), dir, side_dbs[i]);
		strncat(tmp, ".tmp", sizeof(tmp) - strlen(tmp) - 1);
		join(dst, sizeof(dst), dir, side_dbs[i]);
		if (backup_db(side_src, tmp))
			return 1;
		if ((rc = fsync_path(tmp, 0)) || rename(tmp, dst))
			return app_cli_fail("finishing %s: %s", dst, strerror(rc ? -rc : errno));
		snprintf(side + strlen(side), sizeof(side) - strlen(side), ", %s", side_dbs[i]);
	}
	join(tmp, sizeof(tmp), dir, "mezzanine.db.tmp");
	join(dst, sizeof(dst), dir, "mezzanine.db");
	if (backup_db(src, tmp))
		return 1;
	if ((rc = fsync_path(tmp, 0)) || rename(tmp, dst))
		return app_cli_fail("finishing %s: %s", dst, strerror(rc ? -rc : errno));
	for (size_t i = 0; i < sizeof(key_files) / sizeof(key_files[0]); i++) {
		join(src, sizeof(src), cfg->data_dir, key_files[i]);
		join(dst, sizeof(dst), dir, key_files[i]);
		if ((rc = copy_file(src, dst, 0600, NULL)))
			return app_cli_fail("copying %s: %s", src, strerror(-rc));
	}
	if (write_manifest(cfg, dir, with_shards, &blocks) || write_checksums(dir))
		return 1;
	printf("backup of %s written to %s: database%s, identity key, API-key secret, manifest of "
	       "%llu available blocks%s\n",
	       cfg->data_dir, dir, side, (unsigned long long)blocks,
	       with_shards ? " and their shard files" : "");
	return 0;
usage:
	fprintf(stderr, "usage: mezz [--data-dir DIR | -c CONFIG] backup DIR [--with-shards]\n");
	return 2;
}

/* ---- restore ----------------------------------------------------------- */

/* Every file listed in MANIFEST has its size and hash; *side: bit i set
 * for side_dbs[i] listed (and so checked). */
static int check_checksums(const char *dir, unsigned *side)
{
	char path[1200], line[1400], file[1200], hex[65], want[65], name[256];
	unsigned long long want_size;
	uint64_t size;
	unsigned seen = 0;
	FILE *f;
	int rc = 0;

	join(path, sizeof(path), dir, "MANIFEST");
	f = fopen(path, "r");
	if (!f)
		return app_cli_fail("%s: %s (an incomplete or not a mezz backup)", path, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		if (line[0] == '#')
			continue;
		if (sscanf(line, "%64s %llu %255s", want, &want_size, name) != 3 ||
		    strchr(name, '/')) {
			rc = app_cli_fail("%s: malformed line: %s", path, line);
			break;
		}
		join(file, sizeof(file), dir, name);
		if (sha256_file(file, hex, &size)) {
			rc = app_cli_fail("backup file %s is missing", file);
			break;
		}
		if (size != want_size) {
			rc = app_cli_fail("backup file %s is %llu bytes, the manifest says %llu "
				  "(truncated or damaged)",
				  file, (unsigned long long)size, want_size);
			break;
		}
		if (strcmp(hex, want)) {
			rc = app_cli_fail("backup file %s does not match its SHA-256 in MANIFEST (damaged)",
				  file);
			break;
		}
		for (size_t i = 0; i < sizeof(listed) / sizeof(listed[0]); i++)
			if (!strcmp(name, listed[i]))
				seen |= 1u << i;
		for (size_t i = 0; i < sizeof(side_dbs) / sizeof(side_dbs[0]); i++)
			if (!strcmp(name, side_dbs[i]))
				*side |= 1u << i;
	}
	fclose(f);
	if (!rc && seen != (1u << (sizeof(listed) / sizeof(listed[0]))) - 1)
		rc = app_cli_fail("%s does not list every backup file", path);
	return rc;
}

static int integrity_check(const char *db_path)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int rc = 1;

	if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) ||
	    sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL)) {
		app_cli_fail("%s: %s", db_path, sqlite3_errmsg(db));
		goto out;
	}
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *t = (const char *)sqlite3_column_text(st, 0);

		if (t && !strcmp(t, "ok")) {
			rc = 0;
			break;
		}
		app_cli_fail("integrity_check: %s", t ? t : "?");
	}
	if (rc && sqlite3_errcode(db) != SQLITE_OK && sqlite3_errcode(db) != SQLITE_ROW &&
	    sqlite3_errcode(db) != SQLITE_DONE)
		app_cli_fail("integrity_check: %s", sqlite3_errmsg(db));
out:
	sqlite3_finalize(st);
	sqlite3_close(db);
	return rc;
}

/* The whole of a backup's shard record file into *out (free()). */
static int read_small_file(const char *path, uint8_t **out, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;
	struct stat sb;
	uint8_t *buf = NULL;
	size_t got = 0;

	*out = NULL;
	if (fd < 0)
		return -errno;
	if (fstat(fd, &sb)) {
		rc = -errno;
		goto out;
	}
	buf = malloc(sb.st_size > 0 ? (size_t)sb.st_size : 1);
	if (!buf) {
		rc = -ENOMEM;
		goto out;
	}
	while (got < (size_t)sb.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)sb.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n < 0 ? -errno : -EIO;
			goto out;
		}
		got += (size_t)n;
	}
	*out = buf;
	*len = got;
	buf = NULL;
out:
	free(buf);
	close(fd);
	return rc;
}

struct shard_ref {
	unsigned long long h;
	unsigned i;
};

static int shard_ref_cmp(const void *a, const void *b)
{
	const struct shard_ref *x = a, *y = b;

	if (x->h != y->h)
		return x->h < y->h ? -1 : 1;
	return (x->i > y->i) - (x->i < y->i);
}

/*
 * Packs one block's records from the backup (refs[0..n), same height) into
 * the store. A damaged record is left out (the check after it reports the
 * shard); only failing to write the shard directories is an error.
 */
static int place_block(struct da_store *store, const char *gdir, const struct shard_ref *refs,
		       size_t n, uint64_t *placed, uint64_t *skipped, struct app_progress *pg)
{
	uint8_t *rec[DA_MAX_SHARDS] = {0};
	size_t len[DA_MAX_SHARDS] = {0};
	unsigned count = 0, total = 0;
	char path[2400];
	int rc = 0;

	for (size_t j = 0; j < n; j++) {
		struct da_shard_file f;
		unsigned i = refs[j].i;

		snprintf(path, sizeof(path), "%s/%llu-%u", gdir, refs[j].h, i);
		if (i >= DA_MAX_SHARDS || read_small_file(path, &rec[i], &len[i]) ||
		    da_shard_file_decode(&f, rec[i], len[i]) || f.height != refs[j].h ||
		    f.index != i || (total && total != (unsigned)f.k + f.m)) {
			fprintf(stderr, "mezz: %s: not a shard of block %llu, or damaged: left out\n",
				path, refs[j].h);
			if (i < DA_MAX_SHARDS) {
				free(rec[i]);
				rec[i] = NULL;
			}
			(*skipped)++;
			continue;
		}
		pg->bytes += len[i];
		total = (unsigned)f.k + f.m;
	}
	if (total)
		rc = da_store_place_records(store, total, (const uint8_t *const *)rec, len, &count);
	if (rc == DA_EMISMATCH) { /* the block's records disagree (k, m, S or root) */
		fprintf(stderr, "mezz: height %llu: the backup's shards disagree with each other: "
				"left out\n", refs[0].h);
		rc = 0;
	} else if (rc) {
		app_cli_fail("height %llu: placing shards: %s", refs[0].h, app_strerror(rc));
	}
	*placed += count;
	for (unsigned i = 0; i < DA_MAX_SHARDS; i++)
		free(rec[i]);
	return rc;
}

/*
 * Packs DIR/shards/<g>/<h>-<i> into the store's layout for its directories;
 * packs that already exist stay.
 */
static int place_shards(const char *dir, struct da_store *store)
{
	char path[1200], gdir[1600];
	struct app_progress pg;
	struct shard_ref *refs = NULL;
	size_t nrefs = 0, cap = 0;
	uint64_t placed = 0, skipped = 0;
	DIR *top, *g;
	struct dirent *e, *f;
	int rc = 0;

	join(path, sizeof(path), dir, "shards");
	top = opendir(path);
	if (!top)
		return 0; /* a backup without --with-shards */
	app_progress_start(&pg, "shards", "blocks", 0);
	while (rc == 0 && (e = readdir(top))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(gdir, sizeof(gdir), "%s/%s", path, e->d_name);
		if (!(g = opendir(gdir)))
			continue;
		nrefs = 0;
		while ((f = readdir(g))) {
			struct shard_ref r;

			if (sscanf(f->d_name, "%llu-%u", &r.h, &r.i) != 2)
				continue;
			if (nrefs == cap) {
				size_t nc = cap ? 2 * cap : 1024;
				struct shard_ref *v = realloc(refs, nc * sizeof(*v));

				if (!v) {
					rc = app_cli_fail("out of memory");
					break;
				}
				refs = v;
				cap = nc;
			}
			refs[nrefs++] = r;
		}
		closedir(g);
		qsort(refs, nrefs, sizeof(*refs), shard_ref_cmp);
		for (size_t a = 0, b; rc == 0 && a < nrefs; a = b) {
			for (b = a; b < nrefs && refs[b].h == refs[a].h; b++)
				;
			rc = place_block(store, gdir, refs + a, b - a, &placed, &skipped, &pg) ? 1 : 0;
			pg.done++;
			pg.total = pg.done;
			app_progress_show(&pg, 0);
		}
	}
	closedir(top);
	free(refs);
	app_progress_show(&pg, 1);
	if (rc == 0)
		printf("placed %llu shards of %llu blocks into the shard directories "
		       "(%llu damaged shard files left out)\n",
		       (unsigned long long)placed, (unsigned long long)pg.done,
		       (unsigned long long)skipped);
	return rc;
}

/*
 * Every block of the manifest scrubbed in the shard directories against the
 * restored database's commitments: 0 all there, 1 some missing or damaged
 * but every block within m, 3 some block beyond m, -1 unreadable.
 */
static int check_shards(const char *dir, const char *db_path, struct da_store *store)
{
	char path[1200], *line = NULL;
	size_t cap = 0;
	ssize_t n;
	uint64_t blocks = 0, present = 0, absent = 0, damaged = 0, lost = 0;
	struct app_progress pg;
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	FILE *f;
	int ret = -1;

	join(path, sizeof(path), dir, "shards.manifest");
	f = fopen(path, "r");
	if (!f) {
		app_cli_fail("%s: %s", path, strerror(errno));
		return -1;
	}
	if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) ||
	    sqlite3_prepare_v2(db, "SELECT record FROM da_blocks WHERE height = ?", -1, &st,
			       NULL)) {
		app_cli_fail("reading the restored database: %s", sqlite3_errmsg(db));
		goto out;
	}
	app_progress_start(&pg, "check", "blocks", 0);
	while ((n = getline(&line, &cap, f)) > 0) {
		unsigned long long h;
		unsigned k, m, bad;
		struct da_record r;
		struct da_report rep;
		const void *rec;
		int rc;

		if (line[0] == '#' || sscanf(line, "%llu %*64s %u %u", &h, &k, &m) != 3)
			continue;
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, (sqlite3_int64)h);
		if (sqlite3_step(st) != SQLITE_ROW || !(rec = sqlite3_column_blob(st, 0)) ||
		    da_record_decode(&r, rec, (size_t)sqlite3_column_bytes(st, 0))) {
			app_cli_fail("height %llu is in the manifest but its commitment is not in "
				     "the restored database", h);
			goto out;
		}
		if ((rc = da_store_scrub_block(store, &r, &rep))) {
			app_cli_fail("height %llu: scrub: %s", h, app_strerror(rc));
			goto out;
		}
		bad = rep.missing + rep.corrupt;
		present += rep.ok;
		absent += rep.missing;
		damaged += rep.corrupt;
		blocks++;
		if (bad > r.m) {
			lost++;
			printf("height %llu: %u of %u shards missing or damaged (more than m=%u): "
			       "cannot be rebuilt from these directories\n",
			       h, bad, rep.n, (unsigned)r.m);
		}
		pg.done = pg.total = blocks;
		app_progress_show(&pg, 0);
	}
	app_progress_show(&pg, 1);
	printf("shards: %llu blocks in the manifest, %llu shards present and valid, %llu missing, "
	       "%llu damaged\n",
	       (unsigned long long)blocks, (unsigned long long)present,
	       (unsigned long long)absent, (unsigned long long)damaged);
	if (lost) {
		printf("%llu blocks cannot be rebuilt: copy their shard files into the shard "
		       "directories (mezz backup --with-shards) and run mezz da repair\n",
		       (unsigned long long)lost);
		ret = 3;
	} else if (absent || damaged) {
		printf("every block has at least k shards: run mezz da repair to rebuild the rest\n");
		ret = 1;
	} else {
		ret = 0;
	}
out:
	sqlite3_finalize(st);
	sqlite3_close(db);
	free(line);
	fclose(f);
	return ret;
}

/* The first seq the restored database does not hold, kept in its meta
 * table until the operator accepts what the backup lacks. */
static int mark_restored(const char *db_path, uint64_t *next_seq)
{
	sqlite3 *db = NULL;
	int ret = -1;

	if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK &&
	    sqlite3_exec(db,
			 "INSERT OR REPLACE INTO meta(k, v) VALUES ('restored_next_seq',"
			 " (SELECT coalesce(max(seq), 0) + 1 FROM txs))",
			 NULL, NULL, NULL) == SQLITE_OK) {
		*next_seq = (uint64_t)app_sql_int(
			db, "SELECT v FROM meta WHERE k = 'restored_next_seq'", 0);
		ret = 0;
	} else {
		app_cli_fail("marking %s as restored: %s", db_path, sqlite3_errmsg(db));
	}
	sqlite3_close(db);
	return ret;
}

/* `mezz restore --accept-loss`: the restored data dir may sequence. */
static int accept_loss(const struct app_config *cfg)
{
	char path[1200];
	sqlite3 *db = NULL;
	int64_t next;
	int ret = 1;

	join(path, sizeof(path), cfg->data_dir, "mezzanine.db");
	if (access(path, F_OK))
		return app_cli_fail("no database at %s", path);
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
		app_cli_fail("cannot open %s: %s", path, sqlite3_errmsg(db));
		goto out;
	}
	sqlite3_busy_timeout(db, 5000);
	next = app_sql_int(db, "SELECT v FROM meta WHERE k = 'restored_next_seq'", -1);
	if (next < 0) {
		printf("%s is not waiting for a restore to be accepted\n", cfg->data_dir);
		ret = 0;
		goto out;
	}
	if (sqlite3_exec(db, "DELETE FROM meta WHERE k = 'restored_next_seq'", NULL, NULL, NULL)) {
		app_cli_fail("updating %s: %s", path, sqlite3_errmsg(db));
		goto out;
	}
	printf("accepted: %s sequences from seq %lld on, under the restored identity; whatever the "
	       "old node receipted from that seq on is not in it\n",
	       cfg->data_dir, (long long)next);
	ret = 0;
out:
	sqlite3_close(db);
	return ret;
}

int app_cli_restore(struct app_config *cfg, int data_dir_given, int argc, char **argv)
{
	char src[1200], dst[1200], tmp[1200], made[8][1200], why[600] = "";
	const char *dir = NULL;
	char **dirs = NULL;
	size_t nd = 0, nmade = 0;
	struct da_store *store = NULL;
	uint64_t bytes = 0, next_seq = 0;
	int rc, ret = 1, placed = 0, accept = 0;
	unsigned side = 0;

	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--data-dir") && i + 1 < argc) {
			snprintf(cfg->data_dir, sizeof(cfg->data_dir), "%s", argv[++i]);
			data_dir_given = 1;
		} else if (!strcmp(argv[i], "--accept-loss")) {
			accept = 1;
		} else if (argv[i][0] != '-' && !dir) {
			dir = argv[i];
		} else {
			goto usage;
		}
	}
	/* The configured data dir is the live node's (or, on a fresh box,
	 * /var/lib/mezzanine): filling it, or letting it sequence, must be
	 * asked for by name. */
	if (!data_dir_given && (dir || accept)) {
		fprintf(stderr, "mezz: restore: name the data directory with --data-dir (the "
				"configured %s is not used implicitly)\n", cfg->data_dir);
		goto usage;
	}
	if (accept && !dir)
		return accept_loss(cfg);
	if (!dir || accept)
		goto usage;
	rc = dir_is_empty(cfg->data_dir);
	if (rc < 0)
		return app_cli_fail("%s: %s", cfg->data_dir, strerror(-rc));
	if (rc == 0)
		return app_cli_fail("%s is not empty: restore only into a new or empty data directory",
			    cfg->data_dir);
	if (check_checksums(dir, &side))
		return 1;
	if ((rc = mkdirs(cfg->data_dir, 0700)))
		return app_cli_fail("cannot create %s: %s", cfg->data_dir, strerror(-rc));
	join(src, sizeof(src), dir, "mezzanine.db");
	join(tmp, sizeof(tmp), cfg->data_dir, "mezzanine.db.restore");
	join(dst, sizeof(dst), cfg->data_dir, "mezzanine.db");
	snprintf(made[nmade++], sizeof(made[0]), "%s", tmp);
	if ((rc = copy_file(src, tmp, 0600, &bytes))) {
		app_cli_fail("copying %s: %s", src, strerror(-rc));
		goto out;
	}
	if (integrity_check(tmp)) {
		app_cli_fail("the restored database failed PRAGMA integrity_check; nothing restored");
		goto out;
	}
	if (mark_restored(tmp, &next_seq))
		goto out;
	for (size_t i = 0; i < sizeof(key_files) / sizeof(key_files[0]); i++) {
		char ks[1200];

		join(ks, sizeof(ks), dir, key_files[i]);
		join(made[nmade], sizeof(made[0]), cfg->data_dir, key_files[i]);
		if ((rc = copy_file(ks, made[nmade++], 0600, NULL))) {
			app_cli_fail("copying %s: %s", ks, strerror(-rc));
			goto out;
		}
	}
	for (size_t i = 0; i < sizeof(side_dbs) / sizeof(side_dbs[0]); i++) {
		char ks[1200];

		if (!(side & (1u << i)))
			continue; /* only what MANIFEST lists, and so was checked */
		join(ks, sizeof(ks), dir, side_dbs[i]);
		join(made[nmade], sizeof(made[0]), cfg->data_dir, side_dbs[i]);
		if ((rc = copy_file(ks, made[nmade++], 0600, NULL))) {
			app_cli_fail("copying %s: %s", ks, strerror(-rc));
			goto out;
		}
	}
	/* The database last: a data dir with a database is a restored one. */
	if (fsync_path(tmp, 0) || rename(tmp, dst) || fsync_path(cfg->data_dir, 1)) {
		app_cli_fail("finishing %s: %s", dst, strerror(errno));
		goto out;
	}
	placed = 1;
	printf("restored database (%.1f MiB, integrity ok), identity key and API-key secret into "
	       "%s\n",
	       (double)bytes / 1048576.0, cfg->data_dir);
	printf("the backup ends before seq %llu: the daemon will not start on %s until you run\n"
	       "  mezz --data-dir %s restore --accept-loss\n"
	       "once the node it was taken from is stopped for good (it may have receipted "
	       "transactions from that seq on, and this node would sequence others there "
	       "under the same key)\n",
	       (unsigned long long)next_seq, cfg->data_dir, cfg->data_dir);
	if ((rc = app_config_da_dirs(cfg, &dirs, &nd))) {
		app_cli_fail("shard directories: %s", app_strerror(rc));
		goto out;
	}
	for (size_t i = 0; i < nd; i++)
		if ((rc = mkdirs(dirs[i], 0700))) {
			app_cli_fail("cannot create %s: %s", dirs[i], strerror(-rc));
			goto out;
		}
	if ((rc = da_store_open_why((const char *const *)dirs, nd, &store, why, sizeof(why)))) {
		app_cli_fail("shard directories: %s", why[0] ? why : app_strerror(rc));
		goto out;
	}
	if (place_shards(dir, store))
		goto out;
	rc = check_shards(dir, dst, store);
	ret = rc < 0 ? 1 : rc == 3 ? 3 : 0;
out:
	/* Failed before the database was in place: leave the dir as found
	 * (keys without their database would start a fresh chain under the
	 * production identity). */
	for (size_t i = 0; !placed && i < nmade; i++)
		unlink(made[i]);
	da_store_close(store);
	app_config_dirs_free(dirs, nd);
	free(dirs);
	return ret;
usage:
	fprintf(stderr, "usage: mezz [-c CONFIG] restore BACKUP_DIR --data-dir NEW_DATA_DIR\n"
			"       mezz --data-dir DATA_DIR restore --accept-loss\n");
	return 2;
}
