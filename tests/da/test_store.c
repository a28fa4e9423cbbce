/*
 * The shard store in a temp directory: put and read back, lose whole
 * directories, flip bytes, copy a shard of another block over one (a
 * CRC-valid file with the wrong contents), repair, scrub, remove; packs
 * written direct (O_DIRECT) and the buffered fallback when a file system
 * refuses it.
 */
#include <criterion/criterion.h>

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "tests/da/helpers.h"

#define D 6

static const uint64_t NS[] = {1, 2, 1, 3, 2, 1};
static const uint32_t LEN[] = {1000, 2000, 3000, 500, 4000, 7};
/* Transactions long enough for packs of several 4 KiB blocks plus a tail. */
static const uint32_t LEN_BIG[] = {9000, 20011, 3000, 500, 40000, 7};
/* Shards of about 100 KiB: more than one of the writer's 64 KiB CRC chunks, and a tail. */
static const uint32_t LEN_HUGE[] = {300000, 250001, 170000, 64, 90000, 3};
static const uint32_t *fx_len = LEN; /* the next fx_block's (each test is its own process) */

/*
 * The fault a real file system here cannot give: this kernel's ext4 and
 * tmpfs both take O_DIRECT, so a directory that refuses it is injected by
 * wrapping openat (refuse_direct = REFUSE_OPEN: an O_DIRECT open fails with
 * EINVAL) and pwrite (REFUSE_WRITE: a write through an O_DIRECT descriptor
 * fails with EINVAL, as on a file system that opens but cannot do it). The
 * store is linked into this binary, so its calls come here first.
 */
enum { REFUSE_NONE, REFUSE_OPEN, REFUSE_WRITE };
static int refuse_direct;

/* While hold_direct is set, every direct write waits for it to clear: a put
 * held in the middle of its packs, owning the store's bounce buffer. held
 * counts the writes waiting. */
static pthread_mutex_t hold_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hold_cv = PTHREAD_COND_INITIALIZER;
static int hold_direct, held;

static void hold_point(void)
{
	pthread_mutex_lock(&hold_mu);
	if (hold_direct) {
		held++;
		pthread_cond_broadcast(&hold_cv);
		while (hold_direct)
			pthread_cond_wait(&hold_cv, &hold_mu);
		held--;
	}
	pthread_mutex_unlock(&hold_mu);
}
/* O_DIRECT opens tried, writes done direct: the store writes packs from one
 * thread per directory. */
static _Atomic int direct_opens, direct_writes;

int openat(int dirfd, const char *path, int flags, ...)
{
	static int (*real)(int, const char *, int, ...);
	mode_t mode = 0;

	if (flags & (O_CREAT | O_TMPFILE)) {
		va_list ap;

		va_start(ap, flags);
		mode = va_arg(ap, mode_t);
		va_end(ap);
	}
	if (real == NULL)
		*(void **)&real = dlsym(RTLD_NEXT, "openat");
	if (flags & O_DIRECT) {
		direct_opens++;
		if (refuse_direct == REFUSE_OPEN) {
			errno = EINVAL;
			return -1;
		}
	}
	return real(dirfd, path, flags, mode);
}

/*
 * Bytes written direct from inside shard_mem[0..n_shard_mem) (the block's own
 * shard buffers), and in all: the store writes a big shard's whole blocks
 * from where it lies rather than copying it.
 */
static const uint8_t *shard_mem[256];
static size_t shard_mem_len, n_shard_mem;
static _Atomic size_t direct_from_shards, direct_bytes;

static void count_direct(const void *buf, size_t n)
{
	const uint8_t *p = buf;

	direct_bytes += n;
	for (size_t i = 0; i < n_shard_mem; i++)
		if (p >= shard_mem[i] && p + n <= shard_mem[i] + shard_mem_len)
			direct_from_shards += n;
}

/* A write through an O_DIRECT descriptor: refused (-1) or let through (0). */
static int direct_write_hook(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || !(fl & O_DIRECT))
		return 0;
	if (refuse_direct == REFUSE_WRITE) {
		errno = EINVAL;
		return -1;
	}
	direct_writes++;
	hold_point();
	return 0;
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	static ssize_t (*real)(int, const void *, size_t, off_t);
	int fl = fcntl(fd, F_GETFL);

	if (real == NULL)
		*(void **)&real = dlsym(RTLD_NEXT, "pwrite");
	if (direct_write_hook(fd) != 0)
		return -1;
	if (fl >= 0 && (fl & O_DIRECT))
		count_direct(buf, n);
	return real(fd, buf, n, off);
}

ssize_t pwritev(int fd, const struct iovec *iov, int n, off_t off)
{
	static ssize_t (*real)(int, const struct iovec *, int, off_t);
	int fl = fcntl(fd, F_GETFL);

	if (real == NULL)
		*(void **)&real = dlsym(RTLD_NEXT, "pwritev");
	if (direct_write_hook(fd) != 0)
		return -1;
	if (fl >= 0 && (fl & O_DIRECT))
		for (int i = 0; i < n; i++)
			count_direct(iov[i].iov_base, iov[i].iov_len);
	return real(fd, iov, n, off);
}

/*
 * The store writes a block's packs on one thread per directory after the
 * first; refuse_threads makes pthread_create fail (EAGAIN, as under a
 * thread limit) and counts the tries.
 */
static _Atomic int refuse_threads, threads_refused;

int pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
	static int (*real)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);

	if (real == NULL)
		*(void **)&real = dlsym(RTLD_NEXT, "pthread_create");
	if (refuse_threads) {
		threads_refused++;
		return EAGAIN;
	}
	return real(t, attr, fn, arg);
}

struct fx {
	char root[256];
	char dirs[D][300];
	const char *dirp[D];
	struct da_store *st;
	struct da_code *c;
	struct t_block b;
	struct da_block blk;
	struct da_record r;
	uint8_t *orig; /* payload copy */
};

static void fx_block(struct fx *f, uint64_t height, uint64_t seed, struct da_block *blk,
		     struct da_record *r, struct t_block *b)
{
	uint8_t bh[32];

	t_block_make(b, NS, fx_len, 6, da_code_k(f->c), seed);
	b->hdr.height = height;
	seq_block_hash(bh, &b->hdr);
	cr_assert_eq(da_block_encode(blk, r, f->c, b->buf, b->payload_len, b->S, height, bh), 0);
	b->buf = NULL;
}

static void fx_setup(struct fx *f, unsigned k, unsigned m)
{
	memset(f, 0, sizeof(*f));
	t_tmpdir(f->root, sizeof(f->root));
	for (int i = 0; i < D; i++) {
		int n = snprintf(f->dirs[i], sizeof(f->dirs[i]), "%s/disk%d", f->root, i);

		cr_assert(n > 0 && (size_t)n < sizeof(f->dirs[i]));
		f->dirp[i] = f->dirs[i];
	}
	cr_assert_eq(da_store_open(f->dirp, D, &f->st), 0);
	cr_assert_eq(da_code_new(k, m, &f->c), 0);
	fx_block(f, 4097, 21, &f->blk, &f->r, &f->b);
	f->orig = malloc(f->blk.S * k);
	memcpy(f->orig, f->blk.payload, f->blk.S * k);
	n_shard_mem = (size_t)k + m;
	shard_mem_len = f->blk.S;
	memcpy(shard_mem, f->blk.shard, n_shard_mem * sizeof(shard_mem[0]));
	/* as mz-da puts a block: its shards, leaves and shard CRCs */
	cr_assert_eq(da_store_put_block(f->st, &f->r, &f->blk), 0);
	n_shard_mem = 0;
}

static void fx_teardown(struct fx *f)
{
	da_store_close(f->st);
	da_code_free(f->c);
	da_block_free(&f->blk);
	t_block_free(&f->b);
	free(f->orig);
	t_rmtree(f->root);
}

/* The pack of directory d: every shard i with i % D == d, in order. */
static void pack_path(struct fx *f, unsigned d, char *out, size_t cap)
{
	int n = snprintf(out, cap, "%s/%llu/%llu", f->dirs[d],
			 (unsigned long long)(f->r.height / 4096),
			 (unsigned long long)f->r.height);

	cr_assert(n > 0 && (size_t)n < cap);
}

/*
 * Where the record of shard i of pack d starts, or with i past the last
 * member the pack's length: the layout in docs/PROTOCOL.md, written out
 * again here. Dense: records back to back. Aligned (shards of
 * DA_PACK_ALIGNED_FROM bytes or more): "MZPK" || 2 (u32), then before each
 * record the zeros that start its shard at ((i < k ? i : i - k) * S) mod 4096.
 */
static long layout_off(const struct da_record *r, unsigned d, unsigned i, int aligned)
{
	unsigned n = (unsigned)r->k + r->m;
	long off = aligned ? 8 : 0;

	for (unsigned j = d; j < n; j += D) {
		long rl = (long)da_shard_file_len(j, n, r->S), hl = rl - (long)r->S - 4;
		long res = (long)(((j < r->k ? j : j - r->k) * (size_t)r->S) % 4096);

		if (aligned)
			off += ((res - (off + hl)) % 4096 + 4096) % 4096;
		if (j == i)
			return off;
		off += rl;
	}
	return off;
}

static long member_off(struct fx *f, unsigned i)
{
	return layout_off(&f->r, i % D, i, f->r.S >= DA_PACK_ALIGNED_FROM);
}

static void rec_io(const char *path, long off, uint8_t *buf, size_t len, int write)
{
	int fd = open(path, write ? O_WRONLY : O_RDONLY);

	cr_assert_geq(fd, 0, "%s", path);
	if (write)
		cr_assert_eq(pwrite(fd, buf, len, off), (ssize_t)len);
	else
		cr_assert_eq(pread(fd, buf, len, off), (ssize_t)len);
	close(fd);
}

static int read_ok(struct fx *f, unsigned flags, struct da_report *rep)
{
	uint8_t *p = NULL;
	int rc = da_store_read_block(f->st, f->c, &f->r, flags, &p, rep);

	if (rc == 0) {
		cr_assert_eq(memcmp(p, f->orig, f->blk.S * f->r.k), 0, "payload differs");
		free(p);
	}
	return rc;
}

static void rm_dir_files(struct fx *f, int d)
{
	char p[400];

	pack_path(f, (unsigned)d, p, sizeof(p));
	cr_assert_eq(unlink(p), 0, "%s", p);
}

static void flip(struct fx *f, unsigned i, long off)
{
	char p[400];
	uint8_t c;
	int fd;

	pack_path(f, i % D, p, sizeof(p));
	fd = open(p, O_RDWR);
	cr_assert_geq(fd, 0);
	off += member_off(f, i);
	cr_assert_eq(pread(fd, &c, 1, off), 1);
	c ^= 0x10;
	cr_assert_eq(pwrite(fd, &c, 1, off), 1);
	close(fd);
}

Test(store, put_read_fast_path)
{
	struct fx f;
	struct da_report rep;
	struct stat st;
	char p[400];

	fx_setup(&f, 8, 4);
	/* One pack per directory: shards 5 and 11 back to back in disk5. */
	pack_path(&f, 5, p, sizeof(p));
	cr_assert_eq(stat(p, &st), 0);
	cr_assert_eq((size_t)st.st_size,
		     da_shard_file_len(5, 12, f.r.S) + da_shard_file_len(11, 12, f.r.S));
	cr_assert_eq(member_off(&f, 11), (long)da_shard_file_len(5, 12, f.r.S));
	for (unsigned i = 0; i < 12; i++) { /* each record where the layout says */
		size_t len = da_shard_file_len(i, 12, f.r.S);
		uint8_t *rec = malloc(len);
		struct da_shard_file sf;

		pack_path(&f, i % D, p, sizeof(p));
		rec_io(p, member_off(&f, i), rec, len, 0);
		cr_assert_eq(da_shard_file_decode(&sf, rec, len), 0, "shard %u", i);
		cr_assert_eq(sf.index, i);
		cr_assert_eq(memcmp(sf.shard, f.blk.shard[i], f.r.S), 0);
		free(rec);
	}
	cr_assert_eq(read_ok(&f, 0, &rep), 0);
	cr_assert_eq(rep.ok, 8);
	cr_assert_eq(rep.decoded, 0);
	cr_assert_eq(rep.status[8], DA_SHARD_UNCHECKED);
	/* The returned payload parses and its roots match. */
	{
		struct da_payload pl;
		uint8_t *buf;

		cr_assert_eq(da_store_read_block(f.st, f.c, &f.r, 0, &buf, NULL), 0);
		cr_assert_eq(da_payload_parse(&pl, buf, f.r.S * f.r.k, f.r.payload_len), 0);
		cr_assert_eq(da_payload_check_roots(&pl, t_hash, NULL), 0);
		da_payload_free(&pl);
		free(buf);
	}
	fx_teardown(&f);
}

/* With D = 6 and 12 shards each directory holds 2: losing 2 directories loses 4 = m. */
Test(store, lose_directories)
{
	struct fx f;
	struct da_report rep;

	fx_setup(&f, 8, 4);
	t_rmtree(f.dirs[0]);
	t_rmtree(f.dirs[3]);
	cr_assert_eq(read_ok(&f, 0, &rep), 0);
	cr_assert_eq(rep.missing, 4);
	cr_assert_eq(rep.decoded, 1);
	/* A third directory: 6 lost > m. */
	rm_dir_files(&f, 5);
	cr_assert_eq(read_ok(&f, 0, &rep), DA_EUNAVAILABLE);
	fx_teardown(&f);
}

Test(store, lose_directories_reopen_and_repair)
{
	struct fx f;
	struct da_report rep;

	fx_setup(&f, 8, 4);
	t_rmtree(f.dirs[1]);
	t_rmtree(f.dirs[2]);
	da_store_close(f.st);
	/* Reopening recreates the directories (replacement disks). */
	cr_assert_eq(da_store_open(f.dirp, D, &f.st), 0);
	cr_assert_eq(da_store_repair_block(f.st, f.c, &f.r, &rep), 0);
	cr_assert_eq(rep.missing, 4);
	cr_assert_eq(rep.repaired, 4);
	{ /* the two packs rewritten, whole; nothing written elsewhere */
		uint64_t packs = 0;
		struct stat st;
		char p[400];

		for (unsigned d = 1; d <= 2; d++) {
			pack_path(&f, d, p, sizeof(p));
			cr_assert_eq(stat(p, &st), 0);
			packs += (uint64_t)st.st_size;
		}
		cr_assert_gt(packs, 0);
		cr_assert_eq(rep.bytes_written, packs);
	}
	cr_assert_eq(da_store_scrub_block(f.st, &f.r, &rep), 0);
	cr_assert_eq(rep.ok, 12);
	cr_assert_eq(rep.bytes_written, 0);
	{
		uint64_t all = 0;

		for (unsigned i = 0; i < 12; i++)
			all += da_shard_file_len(i, 12, f.r.S);
		cr_assert_eq(rep.bytes_read, all); /* every byte of every file */
	}
	fx_teardown(&f);
}

Test(store, flipped_bytes_detected_and_repaired)
{
	struct fx f;
	struct da_report rep;

	fx_setup(&f, 8, 4);
	flip(&f, 0, 100);               /* data shard bytes */
	flip(&f, 3, 10);                /* header: height */
	flip(&f, 9, 70);                /* path */
	cr_assert_eq(da_store_scrub_block(f.st, &f.r, &rep), 0);
	cr_assert_eq(rep.corrupt, 3);
	cr_assert_eq(rep.status[0], DA_SHARD_CORRUPT);
	cr_assert_eq(rep.status[3], DA_SHARD_CORRUPT);
	cr_assert_eq(rep.status[9], DA_SHARD_CORRUPT);
	cr_assert_eq(read_ok(&f, DA_READ_REPAIR, &rep), 0);
	cr_assert_eq(rep.corrupt, 3);
	cr_assert_eq(rep.repaired, 3);
	cr_assert_eq(da_store_scrub_block(f.st, &f.r, &rep), 0);
	cr_assert_eq(rep.ok, 12);
	cr_assert_eq(rep.corrupt + rep.missing, 0);
	cr_assert_eq(read_ok(&f, 0, &rep), 0);
	cr_assert_eq(rep.decoded, 0);
	fx_teardown(&f);
}

/*
 * Shard 2 of another block at the same height and index, copied over ours:
 * the file is well formed and its CRC is right, but the record's root is not
 * what it was written under.
 */
/* What the put hook sees: each call, which directories hold the block's
 * pack under its name and which under <h>.tmp. */
struct hook_seen {
	struct fx *f;
	uint64_t height;
	unsigned calls;
	int named[D][D], tmp[D][D]; /* [call][directory] */
};

static void put_hook(void *arg, uint64_t height, size_t renamed)
{
	struct hook_seen *hs = arg;
	char p[400];

	cr_assert_eq(height, hs->height);
	cr_assert_eq(renamed, hs->calls + 1, "renamed %zu on call %u", renamed, hs->calls);
	cr_assert_lt(hs->calls, D);
	for (unsigned d = 0; d < D; d++) {
		int n = snprintf(p, sizeof(p), "%s/%llu/%llu", hs->f->dirs[d],
				 (unsigned long long)(height / 4096), (unsigned long long)height);

		cr_assert(n > 0 && (size_t)n < sizeof(p));
		hs->named[hs->calls][d] = access(p, F_OK) == 0;
		cr_assert((size_t)n + 4 < sizeof(p));
		memcpy(p + n, ".tmp", 5);
		hs->tmp[hs->calls][d] = access(p, F_OK) == 0;
	}
	hs->calls++;
}

/* The crash tests' hook (test_crash.DaCrashTest): called after each pack is
 * renamed into place, in directory order, while the later ones are still
 * temp files; never once it is unset. */
Test(store, put_hook_after_each_rename)
{
	struct fx f;
	struct hook_seen hs = {0};
	struct da_block blk;
	struct da_record r;
	struct t_block b;

	fx_setup(&f, 8, 4); /* 12 shards over D = 6 directories: every one has a pack */
	hs.f = &f;
	hs.height = 4098;
	da_store_set_put_hook(f.st, put_hook, &hs);
	fx_block(&f, 4098, 22, &blk, &r, &b);
	cr_assert_eq(da_store_put_block(f.st, &r, &blk), 0);
	cr_assert_eq(hs.calls, D);
	for (unsigned c = 0; c < D; c++)
		for (unsigned d = 0; d < D; d++) {
			cr_assert_eq(hs.named[c][d], d <= c, "call %u, directory %u", c, d);
			cr_assert_eq(hs.tmp[c][d], d > c, "call %u, directory %u", c, d);
		}
	da_block_free(&blk);
	t_block_free(&b);
	da_store_set_put_hook(f.st, NULL, NULL);
	hs.calls = 0;
	fx_block(&f, 4099, 23, &blk, &r, &b);
	cr_assert_eq(da_store_put_block(f.st, &r, &blk), 0);
	cr_assert_eq(hs.calls, 0);
	da_block_free(&blk);
	t_block_free(&b);
	fx_teardown(&f);
}

Test(store, crc_valid_wrong_contents)
{
	struct fx f;
	struct da_report rep;
	struct t_block b2;
	struct da_block blk2;
	struct da_record r2;
	char root2[256], dir2[300], src[400], dst[400];
	const char *dp[1];
	struct da_store *s2;
	size_t len = da_shard_file_len(2, 12, 0);
	long off2 = 0;
	uint8_t *rec;

	fx_setup(&f, 8, 4);
	fx_block(&f, f.r.height, 99, &blk2, &r2, &b2);
	cr_assert_eq(r2.S, f.r.S); /* same geometry, other bytes */
	t_tmpdir(root2, sizeof(root2));
	cr_assert_lt(snprintf(dir2, sizeof(dir2), "%s/d", root2), (int)sizeof(dir2));
	dp[0] = dir2;
	cr_assert_eq(da_store_open(dp, 1, &s2), 0);
	cr_assert_eq(da_store_put(s2, &r2, blk2.shard, NULL), 0);
	/* one directory: one pack holding shards 0..11 */
	cr_assert_lt(snprintf(src, sizeof(src), "%s/1/4097", dir2), (int)sizeof(src));
	for (unsigned j = 0; j < 2; j++)
		off2 += (long)da_shard_file_len(j, 12, r2.S);
	len = da_shard_file_len(2, 12, r2.S);
	rec = malloc(len);
	rec_io(src, off2, rec, len, 0);
	pack_path(&f, 2, dst, sizeof(dst));
	rec_io(dst, member_off(&f, 2), rec, len, 1);
	free(rec);
	/* The copy names the other block's root in its header; the forged-file
	 * test below covers a file whose header matches ours byte for byte. */
	cr_assert_eq(da_store_scrub_block(f.st, &f.r, &rep), 0);
	cr_assert_eq(rep.status[2], DA_SHARD_CORRUPT);
	cr_assert_eq(read_ok(&f, 0, &rep), 0);
	cr_assert_eq(rep.corrupt, 1);
	cr_assert_eq(rep.decoded, 1);
	da_store_close(s2);
	t_rmtree(root2);
	da_block_free(&blk2);
	t_block_free(&b2);
	fx_teardown(&f);
}

/* A forged file: our header and path, other bytes, CRC recomputed. */
Test(store, forged_file_with_valid_crc)
{
	struct fx f;
	struct da_report rep;
	struct da_shard_file sf;
	char p[400];
	uint8_t *buf, *shard;
	size_t len = da_shard_file_len(1, 12, 0);

	fx_setup(&f, 8, 4);
	len = da_shard_file_len(1, 12, f.r.S);
	buf = malloc(len);
	pack_path(&f, 1, p, sizeof(p));
	rec_io(p, member_off(&f, 1), buf, len, 0);
	cr_assert_eq(da_shard_file_decode(&sf, buf, len), 0);
	shard = malloc(f.r.S);
	memcpy(shard, sf.shard, f.r.S);
	shard[5] ^= 0xff;
	sf.shard = shard;
	da_shard_file_encode(buf, &sf);
	cr_assert_eq(da_shard_file_decode(&sf, buf, len), 0); /* CRC is valid */
	rec_io(p, member_off(&f, 1), buf, len, 1);
	cr_assert_eq(da_store_scrub_block(f.st, &f.r, &rep), 0);
	cr_assert_eq(rep.status[1], DA_SHARD_CORRUPT);
	cr_assert_eq(read_ok(&f, DA_READ_REPAIR, &rep), 0);
	cr_assert_eq(rep.repaired, 1);
	cr_assert_eq(da_store_scrub_block(f.st, &f.r, &rep), 0);
	cr_assert_eq(rep.ok, 12);
	free(shard);
	free(buf);
	fx_teardown(&f);
}

Test(store, put_checks_root_and_remove)
{
	struct fx f;
	struct da_report rep;
	struct da_record bad;
	char p[400];

	fx_setup(&f, 8, 4);
	bad = f.r;
	bad.shard_root[0] ^= 1;
	cr_assert_eq(da_store_put(f.st, &bad, f.blk.shard, NULL), DA_EMISMATCH);
	cr_assert_eq(da_store_put(f.st, &f.r, f.blk.shard, NULL), 0); /* idempotent */
	/* the temp file a put cut short by a crash leaves goes with the block */
	pack_path(&f, 3, p, sizeof(p));
	strcat(p, ".tmp");
	{
		FILE *fp = fopen(p, "w");

		cr_assert_not_null(fp);
		fclose(fp);
	}
	cr_assert_eq(da_store_remove_block(f.st, f.r.height, 12), 0);
	cr_assert_neq(access(p, F_OK), 0, "%s stayed", p);
	for (unsigned d = 0; d < D; d++) {
		pack_path(&f, d, p, sizeof(p));
		cr_assert_neq(access(p, F_OK), 0, "%s", p);
	}
	cr_assert_eq(da_store_scrub_block(f.st, &f.r, &rep), 0);
	cr_assert_eq(rep.missing, 12);
	cr_assert_eq(read_ok(&f, 0, &rep), DA_EUNAVAILABLE);
	cr_assert_eq(da_store_remove_block(f.st, f.r.height, 12), 0); /* already gone */
	fx_teardown(&f);
}

Test(store, odd_geometry)
{
	/* k = 1 and a single directory; k + m larger than D. */
	static const unsigned km[][2] = {{1, 1}, {16, 16}, {3, 9}};

	for (size_t i = 0; i < 3; i++) {
		struct fx f;
		struct da_report rep;

		unsigned n = km[i][0] + km[i][1], lost = 0;

		fx_setup(&f, km[i][0], km[i][1]);
		/* lose whole packs while at most m shards are gone */
		for (unsigned d = 0; d < D && d < n; d++) {
			unsigned in_d = (n - d + D - 1) / D;

			if (lost + in_d > km[i][1])
				break;
			rm_dir_files(&f, (int)d);
			lost += in_d;
		}
		cr_assert_gt(lost, 0);
		cr_assert_eq(read_ok(&f, DA_READ_REPAIR, &rep), 0);
		cr_assert_eq(rep.missing, lost);
		cr_assert_eq(rep.repaired, lost);
		fx_teardown(&f);
	}
}

/*
 * Scrub finds shard bad corrupt and nothing else (good_a and good_b read
 * OK), repair rewrites it, and scrub is clean after (a 12-shard block).
 */
static void only_shard_corrupt_then_repaired(struct fx *f, unsigned bad, unsigned good_a,
					     unsigned good_b)
{
	struct da_report rep;

	cr_assert_eq(da_store_scrub_block(f->st, &f->r, &rep), 0);
	cr_assert_eq(rep.corrupt, 1);
	cr_assert_eq(rep.missing, 0);
	cr_assert_eq(rep.status[bad], DA_SHARD_CORRUPT);
	cr_assert_eq(rep.status[good_a], DA_SHARD_OK);
	cr_assert_eq(rep.status[good_b], DA_SHARD_OK);
	cr_assert_eq(da_store_repair_block(f->st, f->c, &f->r, &rep), 0);
	cr_assert_eq(rep.repaired, 1);
	cr_assert_eq(da_store_scrub_block(f->st, &f->r, &rep), 0);
	cr_assert_eq(rep.ok, 12);
}

/*
 * A pack cut short loses only the records past the cut: shard 0 (first in
 * disk0) still reads, shard 6 (second) is corrupt, and repair rewrites the
 * pack whole.
 */
Test(store, truncated_pack_costs_only_the_records_past_the_cut)
{
	struct fx f;
	char p[400];

	fx_setup(&f, 8, 4);
	pack_path(&f, 0, p, sizeof(p));
	cr_assert_eq(truncate(p, member_off(&f, 6) + 10), 0);
	only_shard_corrupt_then_repaired(&f, 6, 0, 0);
	fx_teardown(&f);
}

/* A second store of nd (<= D) directories <root>/d0, ... in a fresh temp directory root. */
static struct da_store *other_store(char root[256], char dirs[][300], int nd)
{
	const char *dp[D];
	struct da_store *s;

	t_tmpdir(root, 256);
	for (int d = 0; d < nd; d++) {
		cr_assert_lt(snprintf(dirs[d], 300, "%s/d%d", root, d), 300);
		dp[d] = dirs[d];
	}
	cr_assert_eq(da_store_open(dp, (size_t)nd, &s), 0);
	return s;
}

/*
 * A backup's loose records packed into a store of another D: shard 4 left
 * out reads as corrupt (zeros), the rest verify, repair restores it; an
 * existing pack is not overwritten, and records of two blocks are refused.
 */
Test(store, place_records_into_another_layout)
{
	struct fx f;
	struct da_report rep;
	char root2[256], dirs2[4][300], p[400];
	struct da_store *s2;
	uint8_t *rec[13] = {0}; /* [12] stays NULL: room for the n = 13 call */
	size_t len[13] = {0};
	unsigned placed = 0;
	struct stat st1, st2;

	fx_setup(&f, 8, 4);
	s2 = other_store(root2, dirs2, 4);
	for (unsigned i = 0; i < 12; i++) {
		struct da_shard_file sf;

		cr_assert_eq(da_store_has_shard(f.st, &f.r, i), 1);
		cr_assert_eq(da_store_has_shard(s2, &f.r, i), 0);
		if (i != 4)
			cr_assert_eq(da_store_read_shard(f.st, &f.r, i, &rec[i], &sf), 0);
		len[i] = da_shard_file_len(i, 12, f.r.S);
	}
	cr_assert_eq(da_store_place_records(s2, 12, (const uint8_t *const *)rec, len, &placed), 0);
	cr_assert_eq(placed, 11);
	cr_assert_eq(da_store_scrub_block(s2, &f.r, &rep), 0);
	cr_assert_eq(rep.ok, 11);
	cr_assert_eq(rep.status[4], DA_SHARD_CORRUPT);
	cr_assert_eq(da_store_repair_block(s2, f.c, &f.r, &rep), 0);
	cr_assert_eq(rep.repaired, 1);
	{
		uint8_t *pl = NULL;

		cr_assert_eq(da_store_read_block(s2, f.c, &f.r, 0, &pl, &rep), 0);
		cr_assert_eq(rep.decoded, 0);
		cr_assert_eq(memcmp(pl, f.orig, f.blk.S * f.r.k), 0);
		free(pl);
	}
	/* existing packs stay: placing again writes nothing */
	cr_assert_lt(snprintf(p, sizeof(p), "%s/1/4097", dirs2[0]), (int)sizeof(p));
	cr_assert_eq(stat(p, &st1), 0);
	cr_assert_eq(da_store_place_records(s2, 12, (const uint8_t *const *)rec, len, &placed), 0);
	cr_assert_eq(placed, 0);
	cr_assert_eq(stat(p, &st2), 0);
	cr_assert_eq(st1.st_ino, st2.st_ino);
	/* a record under the wrong index, or of another geometry, is refused */
	{
		uint8_t *sw = rec[0];

		rec[0] = rec[1];
		cr_assert_eq(da_store_place_records(s2, 12, (const uint8_t *const *)rec, len, NULL),
			     DA_EMISMATCH);
		rec[0] = sw;
		cr_assert_eq(da_store_place_records(s2, 13, (const uint8_t *const *)rec, len, NULL),
			     DA_EMISMATCH);
	}
	for (unsigned i = 0; i < 12; i++)
		free(rec[i]);
	da_store_close(s2);
	t_rmtree(root2);
	fx_teardown(&f);
}

/*
 * A backup's records of big shards placed into a store of another D (a
 * restore) go in aligned packs, as a put would write them, and read back
 * whole.
 */
Test(store, place_records_of_big_shards_written_aligned)
{
	struct fx f;
	struct da_report rep;
	char root2[256], dirs2[4][300], p[400];
	struct da_store *s2;
	uint8_t *rec[12] = {0}, *pl = NULL, head[4];
	size_t len[12];
	unsigned placed = 0;

	fx_len = LEN_HUGE;
	fx_setup(&f, 8, 4);
	cr_assert_geq(f.r.S, DA_PACK_ALIGNED_FROM);
	s2 = other_store(root2, dirs2, 4);
	for (unsigned i = 0; i < 12; i++) {
		struct da_shard_file sf;

		cr_assert_eq(da_store_read_shard(f.st, &f.r, i, &rec[i], &sf), 0);
		len[i] = da_shard_file_len(i, 12, f.r.S);
	}
	cr_assert_eq(da_store_place_records(s2, 12, (const uint8_t *const *)rec, len, &placed), 0);
	cr_assert_eq(placed, 12);
	for (int d = 0; d < 4; d++) {
		cr_assert_lt(snprintf(p, sizeof(p), "%s/1/4097", dirs2[d]), (int)sizeof(p));
		rec_io(p, 0, head, 4, 0);
		cr_assert_eq(memcmp(head, "MZPK", 4), 0, "pack %d is not aligned", d);
	}
	cr_assert_eq(da_store_scrub_block(s2, &f.r, &rep), 0);
	cr_assert_eq(rep.ok, 12);
	cr_assert_eq(da_store_read_block(s2, f.c, &f.r, 0, &pl, &rep), 0);
	cr_assert_eq(memcmp(pl, f.orig, f.blk.S * f.r.k), 0);
	free(pl);
	for (unsigned i = 0; i < 12; i++)
		free(rec[i]);
	da_store_close(s2);
	t_rmtree(root2);
	fx_teardown(&f);
}

/* Pack d of f's block, read whole: *len bytes, caller frees. */
static uint8_t *pack_bytes(struct fx *f, unsigned d, size_t *len)
{
	struct stat st;
	uint8_t *b;
	char p[400];

	pack_path(f, d, p, sizeof(p));
	cr_assert_eq(stat(p, &st), 0, "%s", p);
	*len = (size_t)st.st_size;
	b = malloc(*len + 1);
	rec_io(p, 0, b, *len, 0);
	return b;
}

/*
 * Every pack holds exactly its records where the layout puts them, each
 * decoding to the shard put, and zeros between them (after the header of
 * an aligned pack).
 */
static void check_packs(struct fx *f, int *partial)
{
	unsigned n = (unsigned)f->r.k + f->r.m;
	int aligned = f->r.S >= DA_PACK_ALIGNED_FROM;

	*partial = 0;
	for (unsigned d = 0; d < D; d++) {
		size_t want = (size_t)layout_off(&f->r, d, n, aligned), len, at = 0;
		uint8_t *b = pack_bytes(f, d, &len);

		cr_assert_eq(len, want, "pack %u: %zu bytes, layout says %zu", d, len, want);
		if (aligned) {
			cr_assert_eq(memcmp(b, "MZPK\0\0\0\2", 8), 0, "pack %u header", d);
			at = 8;
		}
		for (unsigned i = d; i < n; i += D) {
			size_t rl = da_shard_file_len(i, n, f->r.S), off = (size_t)member_off(f, i);
			struct da_shard_file sf;

			for (; at < off; at++)
				cr_assert_eq(b[at], 0, "pack %u: byte %zu before shard %u", d, at, i);
			cr_assert_eq(da_shard_file_decode(&sf, b + off, rl), 0, "shard %u", i);
			cr_assert_eq(sf.index, i);
			cr_assert_eq(memcmp(sf.shard, f->blk.shard[i], f->r.S), 0, "shard %u", i);
			at = off + rl;
		}
		free(b);
		*partial += want > 4096 && want % 4096 != 0;
	}
}

/* A second block at the next height, put and read back, then dropped. */
static void put_another(struct fx *f)
{
	struct t_block b2;
	struct da_block blk2;
	struct da_record r2;
	uint8_t *p = NULL;

	fx_block(f, f->r.height + 1, 77, &blk2, &r2, &b2);
	cr_assert_eq(da_store_put(f->st, &r2, blk2.shard, (const uint8_t (*)[32])blk2.leaf), 0);
	cr_assert_eq(da_store_read_block(f->st, f->c, &r2, 0, &p, NULL), 0);
	cr_assert_eq(memcmp(p, blk2.payload, blk2.S * r2.k), 0);
	free(p);
	da_block_free(&blk2);
	t_block_free(&b2);
}

/*
 * The writer computes each record's CRC as it copies the record, 64 KiB at
 * a time (direct), or from the record in place (buffered). LEN_HUGE's
 * shards are over a chunk and not a multiple of one.
 */
static void check_shards_over_a_crc_chunk(const struct fx *f)
{
	if (fx_len != LEN_HUGE)
		return;
	cr_assert_gt(f->r.S, 64 * 1024);
	cr_assert_neq(f->r.S % (64 * 1024), 0);
}

/* Packs of several 4 KiB blocks and a partial one: whole blocks go out
 * direct, the tail through the page cache, and the file is the records. */
static void put_direct(const uint32_t *lens)
{
	struct fx f;
	struct da_report rep;
	int partial;

	fx_len = lens;
	fx_setup(&f, 8, 4);
	check_shards_over_a_crc_chunk(&f);
	cr_assert_eq(direct_opens, D);
	cr_assert_geq(direct_writes, D, "every pack's whole blocks written direct");
	check_packs(&f, &partial);
	cr_assert_gt(partial, 0, "no pack with a partial last block: the tail path did not run");
	cr_assert_eq(read_ok(&f, 0, &rep), 0);
	cr_assert_eq(rep.ok, 8);
	put_another(&f);
	cr_assert_eq(direct_opens, 2 * D);
	fx_teardown(&f);
}

Test(store, packs_written_direct_read_back)
{
	put_direct(LEN_BIG);
}

Test(store, records_over_a_crc_chunk_written_direct)
{
	put_direct(LEN_HUGE);
}

/*
 * Aligned packs (shards of DA_PACK_ALIGNED_FROM bytes or more): every
 * shard's whole 4 KiB blocks are written straight from the block's own
 * buffers, none of them copied, even though S is not a multiple of 4 KiB;
 * the packs are as the layout says, and read back.
 */
Test(store, aligned_packs_write_big_shards_from_their_buffers)
{
	struct fx f;
	struct da_report rep;
	int partial;
	size_t n;

	fx_len = LEN_HUGE;
	fx_setup(&f, 8, 4);
	n = (size_t)f.r.k + f.r.m;
	cr_assert_geq(f.r.S, DA_PACK_ALIGNED_FROM);
	cr_assert_neq(f.r.S % 4096, 0, "S a multiple of 4 KiB would not test the residues");
	/* each shard but its first and last partial block */
	cr_assert_geq(direct_from_shards, n * (f.r.S - 2 * 4096), "%zu of %zu shard bytes direct",
		      (size_t)direct_from_shards, n * f.r.S);
	check_packs(&f, &partial);
	cr_assert_eq(read_ok(&f, 0, &rep), 0);
	cr_assert_eq(rep.ok, 8);
	fx_teardown(&f);
}

/*
 * The same block put from shard buffers that are not 4 KiB-aligned (a
 * caller's own) and without their CRCs (da_store_put): nothing can be
 * written from them direct, so all of it is copied and every CRC taken in
 * the copy, and the packs are byte for byte the ones da_store_put_block
 * wrote from the block's aligned buffers with the CRCs joined.
 */
Test(store, aligned_pack_same_bytes_from_unaligned_buffers)
{
	struct fx f;
	struct da_store *s2;
	char root2[256], dirs2[D][300];
	uint8_t *mem, *sh[DA_MAX_SHARDS];
	size_t n;

	fx_len = LEN_HUGE;
	fx_setup(&f, 8, 4);
	n = (size_t)f.r.k + f.r.m;
	s2 = other_store(root2, dirs2, D);
	cr_assert_eq(posix_memalign((void **)&mem, 4096, n * f.r.S + 64), 0);
	for (size_t i = 0; i < n; i++) {
		sh[i] = mem + 64 + i * f.r.S;
		memcpy(sh[i], f.blk.shard[i], f.r.S);
		shard_mem[i] = sh[i];
	}
	shard_mem_len = f.r.S;
	n_shard_mem = n;
	direct_from_shards = 0;
	direct_bytes = 0;
	cr_assert_eq(da_store_put(s2, &f.r, sh, (const uint8_t (*)[32])f.blk.leaf), 0);
	n_shard_mem = 0;
	cr_assert_eq(direct_from_shards, 0);
	cr_assert_gt(direct_bytes, n * f.r.S - D * 4096, "the copies were not written direct");
	for (unsigned d = 0; d < D; d++) {
		size_t l1, l2;
		uint8_t *a = pack_bytes(&f, d, &l1), *b;
		char p[400];
		struct stat st;

		cr_assert_lt(snprintf(p, sizeof(p), "%s/1/4097", dirs2[d]), (int)sizeof(p));
		cr_assert_eq(stat(p, &st), 0, "%s", p);
		l2 = (size_t)st.st_size;
		cr_assert_eq(l1, l2, "pack %u", d);
		b = malloc(l2);
		rec_io(p, 0, b, l2, 0);
		cr_assert_eq(memcmp(a, b, l1), 0, "pack %u differs", d);
		free(a);
		free(b);
	}
	free(mem);
	da_store_close(s2);
	t_rmtree(root2);
	fx_teardown(&f);
}

/*
 * Damage to an aligned pack costs only the records it hits: a damaged pack
 * header still reads as aligned (the layout for its S), a flipped zero
 * between records loses nothing, and a flipped byte in a record makes that
 * shard corrupt, and only it.
 */
Test(store, aligned_pack_damage_costs_only_the_records_hit)
{
	struct fx f;
	char p[400];
	uint8_t c = 'X';
	long gap;

	fx_len = LEN_HUGE;
	fx_setup(&f, 8, 4);
	pack_path(&f, 1, p, sizeof(p));
	rec_io(p, 0, &c, 1, 1); /* "MZPK" -> "XZPK" */
	gap = member_off(&f, 7) - 1; /* the last zero before shard 7's record */
	cr_assert_gt(gap, member_off(&f, 1) + (long)da_shard_file_len(1, 12, f.r.S) - 1,
		     "no zeros between the records of pack 1");
	rec_io(p, gap, &c, 1, 1);
	flip(&f, 8, 5000); /* in shard 8's bytes */
	only_shard_corrupt_then_repaired(&f, 8, 1, 7);
	fx_teardown(&f);
}

/*
 * Packs of big shards written dense (records back to back, as before
 * aligned packs) still read, scrub and answer has_shard: the reader goes by
 * a pack's first bytes, not by S.
 */
Test(store, dense_packs_of_big_shards_still_read)
{
	struct fx f;
	struct da_report rep;
	unsigned n;

	fx_len = LEN_HUGE;
	fx_setup(&f, 8, 4);
	n = (unsigned)f.r.k + f.r.m;
	for (unsigned d = 0; d < D; d++) {
		size_t len = 0;
		uint8_t *dense = malloc(n * da_shard_file_len(0, n, f.r.S) + 4096);
		char p[400];
		int fd;

		for (unsigned i = d; i < n; i += D) {
			size_t rl = da_shard_file_len(i, n, f.r.S);
			uint8_t *rec = NULL;
			struct da_shard_file sf;

			cr_assert_eq(da_store_read_shard(f.st, &f.r, i, &rec, &sf), 0);
			memcpy(dense + len, rec, rl);
			len += rl;
			free(rec);
		}
		pack_path(&f, d, p, sizeof(p));
		fd = open(p, O_WRONLY | O_TRUNC);
		cr_assert_geq(fd, 0);
		cr_assert_eq(write(fd, dense, len), (ssize_t)len);
		close(fd);
		free(dense);
	}
	cr_assert_eq(da_store_scrub_block(f.st, &f.r, &rep), 0);
	cr_assert_eq(rep.ok, n);
	for (unsigned i = 0; i < n; i++)
		cr_assert_eq(da_store_has_shard(f.st, &f.r, i), 1);
	cr_assert_eq(read_ok(&f, 0, &rep), 0);
	cr_assert_eq(rep.decoded, 0);
	/* shard 6, second in pack 0, damaged where the dense layout has it */
	{
		char p[400];
		uint8_t c;
		long at = (long)da_shard_file_len(0, n, f.r.S) + 200;

		pack_path(&f, 0, p, sizeof(p));
		rec_io(p, at, &c, 1, 0);
		c ^= 0x01;
		rec_io(p, at, &c, 1, 1);
	}
	cr_assert_eq(da_store_scrub_block(f.st, &f.r, &rep), 0);
	cr_assert_eq(rep.corrupt, 1);
	cr_assert_eq(rep.status[6], DA_SHARD_CORRUPT);
	/* repair writes that pack again, aligned; the others stay dense */
	cr_assert_eq(da_store_repair_block(f.st, f.c, &f.r, &rep), 0);
	cr_assert_eq(rep.repaired, 1);
	for (unsigned d = 0; d < 2; d++) {
		size_t len;
		uint8_t *b = pack_bytes(&f, d, &len);

		cr_assert_eq(memcmp(b, d == 0 ? "MZPK" : "MZSH", 4), 0, "pack %u", d);
		cr_assert_eq(len, (size_t)layout_off(&f.r, d, n, d == 0), "pack %u", d);
		free(b);
	}
	cr_assert_eq(da_store_scrub_block(f.st, &f.r, &rep), 0);
	cr_assert_eq(rep.ok, n);
	cr_assert_eq(read_ok(&f, 0, &rep), 0);
	fx_teardown(&f);
}

/*
 * A directory that refuses O_DIRECT (mode): every pack is written through
 * the page cache instead, whole and byte-identical, each directory is asked
 * once, and a refusing directory is not asked again.
 */
static void put_refused(int mode, const uint32_t *lens)
{
	struct fx f;
	struct da_report rep;
	int partial;

	refuse_direct = mode;
	fx_len = lens;
	fx_setup(&f, 8, 4);
	check_shards_over_a_crc_chunk(&f);
	cr_assert_eq(direct_opens, D, "each directory tried once");
	cr_assert_eq(direct_writes, 0);
	check_packs(&f, &partial);
	cr_assert_gt(partial, 0);
	cr_assert_eq(read_ok(&f, 0, &rep), 0);
	put_another(&f);
	cr_assert_eq(direct_opens, D, "a refusing directory is not asked again");
	fx_teardown(&f);
}

/* A file system that refuses an O_DIRECT open. */
Test(store, directory_refusing_direct_open_written_buffered)
{
	put_refused(REFUSE_OPEN, LEN_BIG);
}

/* One that opens with O_DIRECT but refuses the write: the pack is written
 * again from its start through the page cache. */
Test(store, directory_refusing_direct_write_written_buffered)
{
	put_refused(REFUSE_WRITE, LEN_BIG);
}

Test(store, records_over_a_crc_chunk_written_buffered)
{
	put_refused(REFUSE_OPEN, LEN_HUGE);
}

/* An aligned pack whose direct write is refused after its glue was laid
 * out and its CRCs joined: written again whole through the page cache. */
Test(store, aligned_pack_refused_direct_write_written_buffered)
{
	put_refused(REFUSE_WRITE, LEN_HUGE);
}

/* No thread for the other directories' packs (pthread_create fails): the
 * calling thread writes every pack itself, still direct, and the block is
 * whole. */
Test(store, pack_threads_refused_written_by_the_caller)
{
	struct fx f;
	struct da_report rep;
	int partial;

	fx_len = LEN_BIG;
	refuse_threads = 1;
	fx_setup(&f, 8, 4);
	refuse_threads = 0;
	cr_assert_eq(threads_refused, D - 1, "%d thread(s) asked for", threads_refused);
	cr_assert_geq(direct_writes, D, "the packs were not written direct");
	check_packs(&f, &partial);
	cr_assert_eq(read_ok(&f, 0, &rep), 0);
	cr_assert_eq(rep.ok, 8);
	fx_teardown(&f);
}

struct put_arg {
	struct fx *f;
	struct t_block b;
	struct da_block blk;
	struct da_record r;
	int rc;
	atomic_int done;
};

static void *put_run(void *p)
{
	struct put_arg *a = p;

	a->rc = da_store_put(a->f->st, &a->r, a->blk.shard, (const uint8_t (*)[32])a->blk.leaf);
	atomic_store(&a->done, 1);
	return NULL;
}

/* Up to 10 s for *flag to become nonzero (a hang fails the test, it does
 * not time anything). */
static int wait_flag(atomic_int *flag)
{
	for (int i = 0; i < 1000 && !atomic_load(flag); i++)
		usleep(10 * 1000);
	return atomic_load(flag);
}

static void check_block(struct fx *f, struct put_arg *a)
{
	uint8_t *p = NULL;

	cr_assert_eq(da_store_read_block(f->st, f->c, &a->r, 0, &p, NULL), 0);
	cr_assert_eq(memcmp(p, a->blk.payload, a->blk.S * a->r.k), 0);
	free(p);
	da_block_free(&a->blk);
	t_block_free(&a->b);
}

/*
 * A put that finds the bounce buffer taken by another thread's put (here
 * one held in its direct writes) does not wait for it: it writes its packs
 * through the page cache, and both blocks are whole once the first goes on.
 */
Test(store, bounce_buffer_busy_put_written_buffered)
{
	static struct put_arg a1, a2;
	struct fx f;
	int any_held = 0;
	pthread_t t1, t2;

	fx_len = LEN_BIG;
	fx_setup(&f, 8, 4);
	a1.f = a2.f = &f;
	fx_block(&f, f.r.height + 1, 77, &a1.blk, &a1.r, &a1.b);
	fx_block(&f, f.r.height + 2, 78, &a2.blk, &a2.r, &a2.b);

	hold_direct = 1;
	cr_assert_eq(pthread_create(&t1, NULL, put_run, &a1), 0);
	for (int i = 0; i < 1000 && !any_held; i++) {
		pthread_mutex_lock(&hold_mu);
		any_held = held > 0;
		pthread_mutex_unlock(&hold_mu);
		if (!any_held)
			usleep(10 * 1000);
	}
	cr_assert(any_held, "the first put never reached a direct write");

	cr_assert_eq(pthread_create(&t2, NULL, put_run, &a2), 0);
	cr_assert(wait_flag(&a2.done), "the second put waited for the first one's bounce buffer");
	cr_assert_eq(a2.rc, 0);
	cr_assert_eq(atomic_load(&a1.done), 0, "the first put was not held");

	pthread_mutex_lock(&hold_mu);
	hold_direct = 0;
	pthread_cond_broadcast(&hold_cv);
	pthread_mutex_unlock(&hold_mu);
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	cr_assert_eq(a1.rc, 0);
	check_block(&f, &a1);
	check_block(&f, &a2);
	fx_teardown(&f);
}

struct repairer {
	struct da_store *st;
	struct da_code *c;
	const struct da_record *r;
	pthread_barrier_t *go;
	int rc;
};

static void *repair_thread(void *arg)
{
	struct repairer *x = arg;
	struct da_report rep;

	pthread_barrier_wait(x->go);
	x->rc = da_store_repair_block(x->st, x->c, x->r, &rep);
	return NULL;
}

/*
 * Two writers repairing one height at once, each with its own store as the
 * daemon's repair on read and `mezz da repair` have: both succeed and the
 * block is whole. They shared "<h>.tmp": one truncated the other's temp
 * file, or found it renamed away (ENOENT) in every round.
 */
Test(store, concurrent_repairs_of_one_height_both_succeed)
{
	struct fx f;
	struct da_store *other;
	struct da_report rep;
	pthread_barrier_t go;
	char p[400];

	fx_setup(&f, 8, 4);
	cr_assert_eq(da_store_open(f.dirp, D, &other), 0);
	cr_assert_eq(pthread_barrier_init(&go, NULL, 2), 0);
	for (int round = 0; round < 20; round++) {
		struct repairer a = {f.st, f.c, &f.r, &go, -1}, b = {other, f.c, &f.r, &go, -1};
		pthread_t ta, tb;

		pack_path(&f, (unsigned)round % D, p, sizeof(p));
		cr_assert_eq(unlink(p), 0);
		cr_assert_eq(pthread_create(&ta, NULL, repair_thread, &a), 0);
		cr_assert_eq(pthread_create(&tb, NULL, repair_thread, &b), 0);
		pthread_join(ta, NULL);
		pthread_join(tb, NULL);
		cr_assert_eq(a.rc, 0, "round %d: %d", round, a.rc);
		cr_assert_eq(b.rc, 0, "round %d: %d", round, b.rc);
		cr_assert_eq(da_store_scrub_block(f.st, &f.r, &rep), 0);
		cr_assert_eq(rep.ok, 12, "round %d", round);
	}
	pthread_barrier_destroy(&go);
	da_store_close(other);
	fx_teardown(&f);
}
