/*
 * store.c - shards on disk across D storage directories.
 *
 * Shard i of block h lives in dirs[i % D]. Each directory holds one file per
 * block, its pack <dir>/<h / 4096>/<h>: the shard records (shardfile.c) of
 * the block's shards in that directory, i = d, d + D, d + 2D, ..., back to
 * back. A record's offset follows from (k, m, S, D), and every record keeps
 * its own CRC and Merkle path, so a shard is still checked on its own and a
 * damaged record costs only that shard. One file per directory rather than
 * one per shard: a block costs D file creations and fsyncs, not k + m, and
 * creating files is most of what a put costs (docs/BENCHMARKS.md).
 * Losing any set of directories that holds at most m shards of a block
 * loses nothing.
 *
 * Durability (what makes a block "available"): every pack is written under
 * a temp name, fsync'd, renamed into place, and then each directory that
 * received a rename is fsync'd, all before da_store_put returns. A crash
 * leaves at worst a stale "<h>.tmp", overwritten by the next put of h and
 * removed with the block. Packs are written past the page cache (O_DIRECT
 * for whole blocks, see write_pack); the fsync is the same either way.
 *
 * Reading checks each shard on its own (CRC, header fields against the
 * record, Merkle path against the record's shard root), rebuilds what is
 * missing or bad from any k good shards, and checks the root over all k + m
 * leaves again after decoding, so the bytes returned are the committed ones.
 * Repair rewrites the whole pack of every directory holding a bad shard.
 *
 * Shard states during a read (report.status):
 *
 *   UNCHECKED --read ok, path ok--> OK
 *       |--no pack--> MISSING                    (both rebuilt by decode;
 *       '--short pack/CRC/field/path--> CORRUPT   rewritten with DA_READ_REPAIR)
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "da/da.h"
#include "da/internal.h"

#define GROUP_HEIGHTS 4096

/*
 * dirfd[i] is reopened by path when its directory has been unlinked (a disk
 * replaced and mounted again, or a directory deleted by hand): writing into
 * an unlinked directory would lose every shard written there. Replaced
 * descriptors are kept open until da_store_close, because another thread
 * sharing the store may still be using one.
 */
struct da_store {
	size_t D;
	int *dirfd;
	char **path;
	pthread_mutex_t mu;
	int *stale; /* replaced descriptors */
	size_t n_stale, cap_stale;
	_Atomic unsigned char *buffered; /* [D]: 1 once O_DIRECT failed there */
	pthread_mutex_t bmu;	    /* owns bounce while a put writes its packs */
	uint8_t *bounce;		    /* DIO_ALIGN-aligned, bounce_cap bytes */
	size_t bounce_cap;
};

/* Reopen every storage directory whose descriptor points at an unlinked one. */
static int refresh_dirs(struct da_store *s)
{
	int rc = 0;

	pthread_mutex_lock(&s->mu);
	for (size_t i = 0; i < s->D && rc == 0; i++) {
		struct stat st;
		int fd;

		if (fstat(s->dirfd[i], &st) == 0 && st.st_nlink > 0)
			continue;
		if (mkdir(s->path[i], 0700) != 0 && errno != EEXIST) {
			rc = -errno;
			break;
		}
		fd = open(s->path[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0) {
			rc = -errno;
			break;
		}
		if (s->n_stale == s->cap_stale) {
			size_t cap = s->cap_stale ? 2 * s->cap_stale : 8;
			int *v = realloc(s->stale, cap * sizeof(*v));

			if (v == NULL) {
				close(fd);
				rc = DA_ENOMEM;
				break;
			}
			s->stale = v;
			s->cap_stale = cap;
		}
		s->stale[s->n_stale++] = s->dirfd[i];
		s->dirfd[i] = fd;
	}
	pthread_mutex_unlock(&s->mu);
	return rc;
}

static void path_names(char *group, size_t gl, char *name, size_t nl, uint64_t h,
		       const char *suffix)
{
	snprintf(group, gl, "%" PRIu64, h / GROUP_HEIGHTS);
	snprintf(name, nl, "%" PRIu64 "/%" PRIu64 "%s", h / GROUP_HEIGHTS, h, suffix);
}

int da_store_open(const char *const *dirs, size_t D, struct da_store **out)
{
	struct da_store *s;
	int rc = 0;

	if (out == NULL)
		return DA_EINVAL;
	*out = NULL;
	if (dirs == NULL || D == 0 || D > DA_MAX_SHARDS)
		return DA_EINVAL;
	s = calloc(1, sizeof(*s));
	if (s == NULL || (s->dirfd = malloc(D * sizeof(int))) == NULL ||
	    (s->path = calloc(D, sizeof(char *))) == NULL ||
	    (s->buffered = calloc(D, sizeof(*s->buffered))) == NULL) {
		if (s) {
			free(s->dirfd);
			free(s->path);
		}
		free(s);
		return DA_ENOMEM;
	}
	for (size_t i = 0; i < D; i++)
		s->dirfd[i] = -1;
	s->D = D;
	pthread_mutex_init(&s->mu, NULL);
	pthread_mutex_init(&s->bmu, NULL);
	for (size_t i = 0; i < D; i++) {
		if (dirs[i] == NULL) {
			rc = DA_EINVAL;
			goto fail;
		}
		s->path[i] = strdup(dirs[i]);
		if (s->path[i] == NULL) {
			rc = DA_ENOMEM;
			goto fail;
		}
		if (mkdir(dirs[i], 0700) != 0 && errno != EEXIST) {
			rc = -errno;
			goto fail;
		}
		s->dirfd[i] = open(dirs[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (s->dirfd[i] < 0) {
			rc = -errno;
			goto fail;
		}
	}
	*out = s;
	return 0;
fail:
	da_store_close(s);
	return rc;
}

void da_store_close(struct da_store *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->D; i++) {
		if (s->dirfd[i] >= 0)
			close(s->dirfd[i]);
		free(s->path[i]);
	}
	for (size_t i = 0; i < s->n_stale; i++)
		close(s->stale[i]);
	free(s->stale);
	free(s->path);
	free(s->dirfd);
	free(s->buffered);
	free(s->bounce);
	pthread_mutex_destroy(&s->mu);
	pthread_mutex_destroy(&s->bmu);
	free(s);
}

static int fsync_at(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) != 0)
		rc = -errno;
	close(fd);
	return rc;
}

/* The block's group directory in every storage directory; new ones made durable. */
static int ensure_groups(struct da_store *s, uint64_t h)
{
	char group[32], unused[64];

	path_names(group, sizeof(group), unused, sizeof(unused), h, "");
	for (size_t d = 0; d < s->D; d++) {
		if (mkdirat(s->dirfd[d], group, 0700) == 0) {
			if (fsync(s->dirfd[d]) != 0)
				return -errno;
		} else if (errno != EEXIST) {
			return -errno;
		}
	}
	return 0;
}

static int write_all(int fd, struct iovec *iov, int n)
{
	while (n > 0) {
		ssize_t w = writev(fd, iov, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		while (n > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

/*
 * Packs bypass the page cache (O_DIRECT). A pack is written once and read
 * back only for proofs, scrubs and repairs; copying it into fresh page-cache
 * pages was most of a put's CPU (docs/BENCHMARKS.md), and the cached copy
 * only pushed the database's pages out. O_DIRECT needs the buffer, offset
 * and length aligned and a pack's length is not: the pack is laid out in the
 * store's aligned bounce buffer, its whole blocks go out direct and the last
 * partial block through the page cache; the fsync after covers both.
 *
 * A direct write returns only once the device has the data, so the packs
 * of a block are written in parallel, one thread per directory (the calling
 * thread takes the first): with D directories on D disks the put waits for
 * the slowest disk, not for the sum of them, as the buffered writes did
 * when their writeback overlapped. Each thread also fsyncs its pack.
 *
 * Fallbacks, each to the plain buffered write (same bytes, same fsync): a
 * directory whose file system refuses O_DIRECT (EINVAL: tmpfs, some FUSE)
 * stays buffered from then on; a put that finds the bounce buffer in use by
 * another thread's put (a repair on read) or cannot grow it writes buffered;
 * a pack whose thread cannot be started is written by the calling thread.
 */
#define DIO_ALIGN 4096

static size_t dio_round_up(size_t n)
{
	return (n + DIO_ALIGN - 1) & ~(size_t)(DIO_ALIGN - 1);
}

static int pwrite_all(int fd, const uint8_t *p, size_t n, off_t off)
{
	while (n > 0) {
		ssize_t w = pwrite(fd, p, n, off);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
		off += w;
	}
	return 0;
}

/* Take the bounce buffer with room for len bytes (every pack of a block,
 * each from a DIO_ALIGN boundary): 1 (release it with
 * pthread_mutex_unlock(&s->bmu)), or 0 to write buffered. */
static int bounce_take(struct da_store *s, size_t len)
{
	if (pthread_mutex_trylock(&s->bmu) != 0)
		return 0;
	if (s->bounce_cap < len) {
		size_t cap = dio_round_up(len);
		void *b = NULL;

		if (posix_memalign(&b, DIO_ALIGN, cap) != 0) {
			pthread_mutex_unlock(&s->bmu);
			return 0;
		}
		free(s->bounce);
		s->bounce = b;
		s->bounce_cap = cap;
	}
	return 1;
}

/*
 * Records given as (head, shard, CRC) iovec triplets leave their CRC to the
 * writer: laid out in the bounce buffer, it is computed over the bytes just
 * copied, a chunk at a time while they are in cache, rather than in another
 * pass over the shard in memory (docs/BENCHMARKS.md, DA pipeline).
 */
#define CRC_CHUNK ((size_t)64 << 10)

/* Copy n bytes to dst, folding them into *crc (da__crc32c, chained). */
static void copy_crc(uint8_t *dst, const uint8_t *src, size_t n, uint32_t *crc)
{
	for (size_t at = 0; at < n; at += CRC_CHUNK) {
		size_t c = n - at < CRC_CHUNK ? n - at : CRC_CHUNK;

		memcpy(dst + at, src + at, c);
		*crc = da__crc32c(*crc, dst + at, c);
	}
}

/* Fill the CRC slot of every triplet from its head and shard. */
static void fill_crcs(struct iovec *iov, int n)
{
	for (int i = 0; i + 2 < n; i += 3)
		da__put_u32(iov[i + 2].iov_base,
			    da__crc32c(da__crc32c(0, iov[i].iov_base, iov[i].iov_len),
				       iov[i + 1].iov_base, iov[i + 1].iov_len));
}

/* Lay the n iovecs out at bounce, filling CRC slots if crcs (triplets). */
static void lay_out(uint8_t *bounce, const struct iovec *iov, int n, int crcs)
{
	size_t off = 0;
	uint32_t crc = 0;

	for (int i = 0; i < n; i++) {
		if (!crcs) {
			memcpy(bounce + off, iov[i].iov_base, iov[i].iov_len);
		} else if (i % 3 == 2) {
			da__put_u32(bounce + off, crc);
			crc = 0;
		} else {
			copy_crc(bounce + off, iov[i].iov_base, iov[i].iov_len, &crc);
		}
		off += iov[i].iov_len;
	}
}

/*
 * Create tmp in directory d and write the n iovecs of a pack (len bytes;
 * the iovecs are used up) into it, direct through bounce (aligned, room for
 * len) when it is not NULL; with crcs the iovecs are (head, shard, CRC)
 * triplets whose CRC slot is filled here. *fd is the new file's descriptor
 * (or -1); 0 or -errno.
 */
static int write_pack(struct da_store *s, size_t d, const char *tmp, struct iovec *iov, int n,
		      size_t len, int crcs, uint8_t *bounce, int *fd)
{
	const int fl = O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC;
	size_t whole = len & ~(size_t)(DIO_ALIGN - 1);
	int rc, f;

	if (bounce && !atomic_load(&s->buffered[d])) {
		*fd = openat(s->dirfd[d], tmp, fl | O_DIRECT, 0600);
		if (*fd < 0 && errno != EINVAL)
			return -errno;
		if (*fd >= 0) {
			lay_out(bounce, iov, n, crcs);
			rc = whole > 0 ? pwrite_all(*fd, bounce, whole, 0) : 0;
			if (rc == 0 || rc == -EINVAL) {
				/* The tail, or everything again if the direct write was refused. */
				size_t from = rc == 0 ? whole : 0;

				f = fcntl(*fd, F_GETFL);
				if (f < 0 || fcntl(*fd, F_SETFL, f & ~O_DIRECT) != 0)
					return -errno;
				if (rc == -EINVAL)
					atomic_store(&s->buffered[d], 1);
				rc = pwrite_all(*fd, bounce + from, len - from, (off_t)from);
			}
			return rc;
		}
		atomic_store(&s->buffered[d], 1);
	}
	*fd = openat(s->dirfd[d], tmp, fl, 0600);
	if (*fd < 0)
		return -errno;
	if (crcs)
		fill_crcs(iov, n);
	return write_all(*fd, iov, n);
}

/* One directory's pack: written and fsync'd by pack_job_run, on its own thread. */
struct pack_job {
	struct da_store *s;
	size_t d;
	const char *tmp;
	struct iovec *iov;
	int n;
	size_t len;
	int crcs;	 /* (head, shard, CRC) triplets: write_pack fills the CRCs */
	uint8_t *bounce; /* NULL: buffered */
	int fd, rc;
	pthread_t thread;
	int started;
};

static void *pack_job_run(void *arg)
{
	struct pack_job *j = arg;

	j->rc = write_pack(j->s, j->d, j->tmp, j->iov, j->n, j->len, j->crcs, j->bounce, &j->fd);
	if (j->rc == 0 && fsync(j->fd) != 0)
		j->rc = -errno;
	return NULL;
}

/* Offset of shard i in its pack: the records of the lower members before it. */
static off_t member_offset(unsigned i, unsigned n, size_t D, size_t S)
{
	off_t off = 0;

	for (unsigned j = (unsigned)(i % D); j < i; j += (unsigned)D)
		off += (off_t)da_shard_file_len(j, n, S);
	return off;
}

/*
 * Durably write the packs of block h for directories d < D with niov[d] > 0:
 * pack d is the niov[d] entries at iov + d * stride (at most IOV_MAX), as
 * (head, shard, CRC) triplets with the CRCs left to fill if crcs. Every
 * pack is written under <h>.tmp and fsync'd, in parallel (above); then each
 * is renamed into place, then the directories are fsync'd.
 */
static int commit_packs(struct da_store *s, uint64_t h, size_t D, struct iovec *iov,
			size_t stride, const int *niov, int crcs)
{
	char group[32], name[64], tmp[64];
	struct pack_job job[DA_MAX_SHARDS];
	size_t total = 0, off = 0, first = D;
	int rc, have_bounce;

	for (size_t d = 0; d < D; d++) {
		job[d] = (struct pack_job){.s = s, .d = d, .tmp = tmp, .iov = iov + d * stride,
					   .n = niov[d], .crcs = crcs, .fd = -1};
		for (int i = 0; i < niov[d]; i++)
			job[d].len += iov[d * stride + (size_t)i].iov_len;
		total += dio_round_up(job[d].len);
		if (niov[d] > 0 && first == D)
			first = d;
	}
	rc = ensure_groups(s, h);
	if (rc != 0)
		return rc;
	path_names(group, sizeof(group), tmp, sizeof(tmp), h, ".tmp");
	path_names(group, sizeof(group), name, sizeof(name), h, "");
	have_bounce = bounce_take(s, total);
	for (size_t d = 0; d < D; d++) {
		if (job[d].n == 0)
			continue;
		if (have_bounce) {
			job[d].bounce = s->bounce + off;
			off += dio_round_up(job[d].len);
		}
		if (d != first)
			job[d].started = pthread_create(&job[d].thread, NULL, pack_job_run, &job[d]) == 0;
	}
	for (size_t d = 0; d < D; d++)
		if (job[d].n > 0 && !job[d].started)
			pack_job_run(&job[d]);
	for (size_t d = 0; d < D; d++) {
		if (job[d].started)
			pthread_join(job[d].thread, NULL);
		if (job[d].n > 0 && rc == 0)
			rc = job[d].rc;
	}
	if (have_bounce)
		pthread_mutex_unlock(&s->bmu);
	for (size_t d = 0; d < D && rc == 0; d++) {
		if (job[d].n == 0)
			continue;
		close(job[d].fd);
		job[d].fd = -1;
		if (renameat(s->dirfd[d], tmp, s->dirfd[d], name) != 0)
			rc = -errno;
	}
	for (size_t d = 0; d < D && rc == 0; d++)
		if (niov[d] > 0)
			rc = fsync_at(s->dirfd[d], group);
	for (size_t d = 0; d < D; d++)
		if (job[d].fd >= 0)
			close(job[d].fd);
	return rc;
}

/* Directories a block's packs use, and the most members one pack holds. */
static size_t pack_dirs(const struct da_store *s, unsigned n, size_t *per)
{
	size_t D = s->D < n ? s->D : n;

	*per = ((size_t)n + D - 1) / D;
	return D;
}

/*
 * Durably write the packs of the directories holding a shard i with
 * (mask == NULL || mask[i]); a pack always gets all its members. Paths come
 * from the whole tree over leaves. *written counts the masked shards.
 */
static int write_packs(struct da_store *s, const struct da_record *r, uint8_t *const *shards,
		       const uint8_t (*leaves)[32], const uint8_t *mask, unsigned *written)
{
	unsigned n = (unsigned)r->k + r->m, count = 0;
	size_t per, D = pack_dirs(s, n, &per);
	struct seq_merkle_tree t;
	uint8_t want[DA_MAX_SHARDS] = {0}, *heads = NULL, (*crcs)[4] = NULL;
	struct iovec *iov = NULL;
	int niov[DA_MAX_SHARDS] = {0};
	int rc;

	for (unsigned i = 0; i < n; i++)
		if (mask == NULL || mask[i])
			want[i % D] = 1;
	rc = seq_merkle_tree_build(&t, leaves, n) ? DA_ENOMEM : 0;
	if (rc != 0)
		return rc;
	heads = malloc((size_t)n * DA__SHARD_HEAD_MAX);
	crcs = malloc((size_t)n * sizeof(*crcs));
	/* 3 per member: header and path, shard, CRC; 3 * 256 < IOV_MAX */
	iov = malloc(3 * per * D * sizeof(*iov));
	if (heads == NULL || crcs == NULL || iov == NULL) {
		rc = DA_ENOMEM;
		goto out;
	}
	for (unsigned i = 0; i < n; i++) {
		struct da_shard_file f = {0};
		uint8_t *head = heads + (size_t)i * DA__SHARD_HEAD_MAX;
		struct iovec *v;
		size_t pl, hl;

		if (!want[i % D])
			continue;
		f.height = r->height;
		f.index = (uint16_t)i;
		f.k = r->k;
		f.m = r->m;
		f.S = r->S;
		f.payload_len = r->payload_len;
		memcpy(f.shard_root, r->shard_root, 32);
		seq_merkle_tree_path(&t, i, f.path, &pl);
		f.path_len = (uint8_t)pl;
		hl = da__shard_file_head(head, &f);
		v = iov + (i % D) * 3 * per + niov[i % D];
		v[0] = (struct iovec){head, hl};
		v[1] = (struct iovec){shards[i], r->S};
		v[2] = (struct iovec){crcs[i], 4}; /* filled by write_pack */
		niov[i % D] += 3;
	}
	rc = commit_packs(s, r->height, D, iov, 3 * per, niov, 1);
	if (rc == 0 && written != NULL) {
		for (unsigned i = 0; i < n; i++)
			count += mask == NULL || mask[i];
		*written = count;
	}
out:
	free(heads);
	free(crcs);
	free(iov);
	seq_merkle_tree_free(&t);
	return rc;
}

int da_store_put(struct da_store *s, const struct da_record *r, uint8_t *const *shards,
		 const uint8_t (*leaves)[32])
{
	uint8_t (*own)[32] = NULL, root[32];
	unsigned n;
	int rc;

	if (s == NULL || r == NULL || shards == NULL || da_record_check(r) != 0)
		return DA_EINVAL;
	n = (unsigned)r->k + r->m;
	if (leaves == NULL) {
		own = malloc(n * sizeof(*own));
		if (own == NULL)
			return DA_ENOMEM;
		for (unsigned i = 0; i < n; i++)
			da_shard_leaf(own[i], i, shards[i], r->S);
		leaves = (const uint8_t (*)[32])own;
	}
	rc = seq_merkle_root(root, leaves, n) ? DA_ENOMEM : 0;
	if (rc == 0 && memcmp(root, r->shard_root, 32) != 0)
		rc = DA_EMISMATCH;
	if (rc == 0)
		rc = refresh_dirs(s);
	if (rc == 0)
		rc = write_packs(s, r, shards, leaves, NULL, NULL);
	free(own);
	return rc;
}

/* A block's pack in one directory, opened once per read. */
struct pack {
	int fd;      /* -1: not opened yet or absent */
	int err;     /* 0, or why the open failed (errno) */
	off_t size;
};

static void pack_open(struct da_store *s, uint64_t h, size_t d, struct pack *p)
{
	char group[32], name[64];
	struct stat st;

	path_names(group, sizeof(group), name, sizeof(name), h, "");
	p->fd = openat(s->dirfd[d], name, O_RDONLY | O_CLOEXEC);
	p->err = p->fd < 0 ? errno : 0;
	if (p->fd >= 0 && fstat(p->fd, &st) != 0) {
		p->err = errno;
		close(p->fd);
		p->fd = -1;
	}
	p->size = p->fd >= 0 ? st.st_size : 0;
}

/*
 * Read shard i from its pack into dst (S bytes) and check it on its own.
 * Returns the status; fills leaf when OK. scratch holds da_shard_file_len
 * bytes. A pack too short for the shard's record makes it CORRUPT.
 */
static int read_shard(struct da_store *s, const struct da_record *r, unsigned i,
		      const struct pack *p, uint8_t *dst, uint8_t *scratch, uint8_t leaf[32],
		      uint64_t *bytes)
{
	unsigned n = (unsigned)r->k + r->m;
	size_t flen = da_shard_file_len(i, n, r->S), got = 0;
	off_t off = member_offset(i, n, s->D, r->S);
	struct da_shard_file f;

	if (p->fd < 0)
		return p->err == ENOENT ? DA_SHARD_MISSING : DA_SHARD_CORRUPT;
	if (p->size < off + (off_t)flen)
		return DA_SHARD_CORRUPT;
	while (got < flen) {
		ssize_t k = pread(p->fd, scratch + got, flen - got, off + (off_t)got);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	*bytes += got;
	if (got != flen || da_shard_file_decode(&f, scratch, flen) != 0 ||
	    f.height != r->height || f.index != i || f.k != r->k || f.m != r->m ||
	    f.S != r->S || f.payload_len != r->payload_len ||
	    memcmp(f.shard_root, r->shard_root, 32) != 0)
		return DA_SHARD_CORRUPT;
	da_shard_leaf(leaf, i, f.shard, f.S);
	if (seq_merkle_verify(leaf, i, n, (const uint8_t (*)[32])f.path, f.path_len,
			      r->shard_root) != 0)
		return DA_SHARD_CORRUPT;
	if (dst != NULL)
		memcpy(dst, f.shard, f.S);
	return DA_SHARD_OK;
}

enum load_mode { LOAD_READ, LOAD_SCRUB, LOAD_REPAIR };

/*
 * The one path behind read, scrub and repair. LOAD_READ reads the data
 * shards first and stops there if they are all good (unless repair is
 * asked); otherwise every shard is read and the missing ones rebuilt.
 */
static int load(struct da_store *s, struct da_code *c, const struct da_record *r,
		enum load_mode mode, int repair, uint8_t **payload_out, struct da_report *rep)
{
	unsigned k, n, good = 0;
	uint8_t *payload = NULL, *parity = NULL, *scratch = NULL;
	uint8_t *shard[DA_MAX_SHARDS], present[DA_MAX_SHARDS] = {0}, bad[DA_MAX_SHARDS] = {0};
	uint8_t (*leaves)[32] = NULL, root[32];
	struct pack pack[DA_MAX_SHARDS];
	size_t S, flen_max;
	int rc = DA_ENOMEM;

	if (s == NULL || r == NULL || rep == NULL || da_record_check(r) != 0 ||
	    (mode != LOAD_SCRUB && (c == NULL || da_code_k(c) != r->k || da_code_m(c) != r->m)))
		return DA_EINVAL;
	rc = refresh_dirs(s);
	if (rc != 0)
		return rc;
	for (size_t d = 0; d < s->D && d < DA_MAX_SHARDS; d++)
		pack[d] = (struct pack){.fd = -1, .err = -1};
	rc = DA_ENOMEM;
	k = r->k;
	n = k + r->m;
	S = r->S;
	memset(rep, 0, sizeof(*rep));
	rep->n = n;
	memset(rep->status, DA_SHARD_UNCHECKED, n);
	flen_max = da_shard_file_len(0, n, S) + DA_SHARD_MAX_PATH * 32;
	scratch = malloc(flen_max);
	leaves = malloc(n * sizeof(*leaves));
	if (scratch == NULL || leaves == NULL)
		goto out;
	if (mode != LOAD_SCRUB) {
		payload = aligned_alloc(64, S * k);
		parity = aligned_alloc(64, S * r->m);
		if (payload == NULL || parity == NULL)
			goto out;
		for (unsigned i = 0; i < n; i++)
			shard[i] = i < k ? payload + (size_t)i * S : parity + (size_t)(i - k) * S;
	}
	for (unsigned i = 0; i < n; i++) {
		int st;

		/* Fast path: k good data shards are the payload; parity unread. */
		if (mode == LOAD_READ && !repair && i == k && good == k)
			break;
		if (pack[i % s->D].err == -1)
			pack_open(s, r->height, i % s->D, &pack[i % s->D]);
		st = read_shard(s, r, i, &pack[i % s->D], mode == LOAD_SCRUB ? NULL : shard[i],
				scratch, leaves[i], &rep->bytes_read);
		rep->status[i] = (uint8_t)st;
		if (st == DA_SHARD_OK) {
			present[i] = 1;
			good++;
			rep->ok++;
		} else {
			bad[i] = 1;
			if (st == DA_SHARD_MISSING)
				rep->missing++;
			else
				rep->corrupt++;
		}
	}
	rc = 0;
	if (mode == LOAD_SCRUB || rep->missing + rep->corrupt == 0)
		goto done;
	if (good < k) {
		rc = DA_EUNAVAILABLE;
		goto out;
	}
	rc = da_decode(c, shard, present, S);
	if (rc != 0)
		goto out;
	rep->decoded = 1;
	for (unsigned i = 0; i < n; i++)
		if (!present[i])
			da_shard_leaf(leaves[i], i, shard[i], S);
	/* Every leaf now belongs to the committed tree, or the decode is wrong. */
	if (seq_merkle_root(root, (const uint8_t (*)[32])leaves, n) != 0) {
		rc = DA_ENOMEM;
		goto out;
	}
	if (memcmp(root, r->shard_root, 32) != 0) {
		rc = DA_EMISMATCH;
		goto out;
	}
	if (repair) {
		rc = write_packs(s, r, shard, (const uint8_t (*)[32])leaves, bad, &rep->repaired);
		if (rc != 0)
			goto out;
	}
done:
	if (payload_out != NULL) {
		*payload_out = payload;
		payload = NULL;
	}
out:
	for (size_t d = 0; d < s->D && d < DA_MAX_SHARDS; d++)
		if (pack[d].fd >= 0)
			close(pack[d].fd);
	free(payload);
	free(parity);
	free(scratch);
	free(leaves);
	return rc;
}

int da_store_read_block(struct da_store *s, struct da_code *c, const struct da_record *r,
			unsigned flags, uint8_t **payload_out, struct da_report *report)
{
	struct da_report local;

	if (payload_out == NULL)
		return DA_EINVAL;
	*payload_out = NULL;
	return load(s, c, r, LOAD_READ, (flags & DA_READ_REPAIR) != 0, payload_out,
		    report != NULL ? report : &local);
}

int da_store_scrub_block(struct da_store *s, const struct da_record *r,
			 struct da_report *report)
{
	return load(s, NULL, r, LOAD_SCRUB, 0, NULL, report);
}

int da_store_repair_block(struct da_store *s, struct da_code *c, const struct da_record *r,
			  struct da_report *report)
{
	struct da_report local;

	return load(s, c, r, LOAD_REPAIR, 1, NULL, report != NULL ? report : &local);
}

int da_store_remove_block(struct da_store *s, uint64_t height, unsigned n_shards)
{
	char group[32], name[64], tmp[64];
	int rc = 0;

	if (s == NULL || n_shards > DA_MAX_SHARDS)
		return DA_EINVAL;
	rc = refresh_dirs(s);
	if (rc != 0)
		return rc;
	path_names(group, sizeof(group), name, sizeof(name), height, "");
	path_names(group, sizeof(group), tmp, sizeof(tmp), height, ".tmp");
	for (size_t d = 0; d < s->D && d < n_shards; d++) {
		int dirty = 0, e;

		if (unlinkat(s->dirfd[d], name, 0) == 0)
			dirty = 1;
		else if (errno != ENOENT && rc == 0)
			rc = -errno;
		/* a put cut short by a crash leaves its temp file */
		if (unlinkat(s->dirfd[d], tmp, 0) == 0)
			dirty = 1;
		if (!dirty)
			continue;
		e = fsync_at(s->dirfd[d], group);
		if (e != 0 && rc == 0)
			rc = e;
	}
	return rc;
}

int da_store_read_shard(struct da_store *s, const struct da_record *r, unsigned index,
			uint8_t **buf_out, struct da_shard_file *f)
{
	size_t flen;
	uint8_t *buf, leaf[32];
	uint64_t bytes = 0;
	int st;

	*buf_out = NULL;
	if (!s || !r || !f || index >= (unsigned)r->k + r->m)
		return DA_EINVAL;
	st = refresh_dirs(s);
	if (st != 0)
		return st;
	flen = da_shard_file_len(index, (unsigned)r->k + r->m, r->S);
	buf = malloc(flen);
	if (!buf)
		return DA_ENOMEM;
	{
		struct pack p;

		pack_open(s, r->height, index % s->D, &p);
		st = read_shard(s, r, index, &p, NULL, buf, leaf, &bytes);
		if (p.fd >= 0)
			close(p.fd);
	}
	if (st != DA_SHARD_OK) {
		free(buf);
		return st == DA_SHARD_MISSING ? -ENOENT : DA_EMISMATCH;
	}
	/* read_shard checked it; decoding again only fills f, pointing into buf */
	if (da_shard_file_decode(f, buf, flen) != 0) {
		free(buf);
		return DA_EMISMATCH;
	}
	*buf_out = buf;
	return 0;
}

int da_store_has_shard(struct da_store *s, const struct da_record *r, unsigned index)
{
	unsigned n;
	struct pack p;
	int rc;

	if (s == NULL || r == NULL || da_record_check(r) != 0 || index >= (unsigned)r->k + r->m)
		return DA_EINVAL;
	n = (unsigned)r->k + r->m;
	rc = refresh_dirs(s);
	if (rc != 0)
		return rc;
	pack_open(s, r->height, index % s->D, &p);
	if (p.fd < 0)
		return p.err == ENOENT ? 0 : -p.err;
	close(p.fd);
	return p.size >= member_offset(index, n, s->D, r->S) +
				 (off_t)da_shard_file_len(index, n, r->S);
}

int da_store_place_records(struct da_store *s, unsigned n, const uint8_t *const *rec,
			   const size_t *len, unsigned *placed)
{
	struct da_shard_file first = {0}, f;
	char group[32], name[64];
	uint8_t *zeros = NULL;
	struct iovec *iov = NULL;
	int niov[DA_MAX_SHARDS] = {0};
	size_t D, per;
	unsigned have = 0, count = 0;
	int rc = 0;

	if (placed != NULL)
		*placed = 0;
	if (s == NULL || rec == NULL || len == NULL || n == 0 || n > DA_MAX_SHARDS)
		return DA_EINVAL;
	for (unsigned i = 0; i < n; i++) {
		if (rec[i] == NULL)
			continue;
		if (da_shard_file_decode(&f, rec[i], len[i]) != 0 || f.index != i)
			return DA_EMISMATCH;
		if (have++ == 0)
			first = f;
		else if (f.height != first.height || f.k != first.k || f.m != first.m ||
			 f.S != first.S || f.payload_len != first.payload_len ||
			 memcmp(f.shard_root, first.shard_root, 32) != 0)
			return DA_EMISMATCH;
	}
	if (have == 0)
		return 0;
	if ((unsigned)first.k + first.m != n)
		return DA_EMISMATCH;
	rc = refresh_dirs(s);
	if (rc != 0)
		return rc;
	D = pack_dirs(s, n, &per);
	/* zeros as long as the longest record */
	zeros = calloc(1, da_shard_file_len(0, n, first.S) + DA_SHARD_MAX_PATH * 32);
	iov = malloc(per * D * sizeof(*iov));
	if (zeros == NULL || iov == NULL) {
		rc = DA_ENOMEM;
		goto out;
	}
	path_names(group, sizeof(group), name, sizeof(name), first.height, "");
	for (size_t d = 0; d < D; d++) {
		unsigned in_pack = 0;

		if (faccessat(s->dirfd[d], name, F_OK, 0) == 0)
			continue; /* an existing pack stays */
		for (unsigned i = (unsigned)d; i < n; i += (unsigned)D) {
			in_pack += rec[i] != NULL;
			/* an absent record is zeros of its length: read as corrupt, rebuilt by repair */
			iov[d * per + (size_t)niov[d]++] =
				rec[i] != NULL ? (struct iovec){(void *)rec[i], len[i]}
					       : (struct iovec){zeros, da_shard_file_len(i, n, first.S)};
		}
		if (in_pack == 0)
			niov[d] = 0;
		count += in_pack;
	}
	rc = commit_packs(s, first.height, D, iov, per, niov, 0);
	if (rc == 0 && placed != NULL)
		*placed = count;
out:
	free(zeros);
	free(iov);
	return rc;
}
