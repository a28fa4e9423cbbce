/*
 * store.c - shards on disk across D storage directories.
 *
 * Shard i of block h lives in dirs[i % D]. Each directory holds one file per
 * block, its pack <dir>/<h / 4096>/<h>: the shard records (shardfile.c) of
 * the block's shards in that directory, i = d, d + D, d + 2D, ..., in order,
 * dense or aligned (below, "The layout of a pack"). A record's offset follows
 * from the layout and (k, m, S, D), and every record keeps
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
 * removed with the block. Writers of one height (a put, a repair on read,
 * `mezz da repair`) take turns: an flock on "<dir>/.lock-<h mod 64>".
 * Packs are written past the page cache (O_DIRECT for whole blocks, see
 * plan_direct); the fsync is the same either way.
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
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
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
	void (*put_hook)(void *arg, uint64_t height, size_t renamed); /* crash tests */
	void *put_hook_arg;
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

/* why, when wanted: "'DIR': what went wrong". */
static void why_dir(char *why, size_t whylen, const char *dir, int err)
{
	if (why && whylen)
		snprintf(why, whylen, "'%s': %s", dir, da_strerror(err));
}

int da_store_open(const char *const *dirs, size_t D, struct da_store **out)
{
	return da_store_open_why(dirs, D, out, NULL, 0);
}

int da_store_open_why(const char *const *dirs, size_t D, struct da_store **out, char *why,
		      size_t whylen)
{
	struct da_store *s;
	struct stat *seen = NULL;
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
	seen = calloc(D, sizeof(*seen));
	if (seen == NULL) {
		rc = DA_ENOMEM;
		goto fail;
	}
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
		/* Only the last component: a missing parent is more likely a
		 * disk that is not mounted than a directory to make. */
		if (mkdir(dirs[i], 0700) != 0 && errno != EEXIST) {
			rc = -errno;
			why_dir(why, whylen, dirs[i], rc);
			goto fail;
		}
		s->dirfd[i] = open(dirs[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (s->dirfd[i] < 0 || fstat(s->dirfd[i], &seen[i]) != 0) {
			rc = -errno;
			why_dir(why, whylen, dirs[i], rc);
			goto fail;
		}
		/* One directory under two names (a trailing slash, a symlink,
		 * a bind mount) would hold two packs of a height at one path,
		 * and a put would wait on its own lock there forever. */
		for (size_t j = 0; j < i; j++)
			if (seen[j].st_dev == seen[i].st_dev && seen[j].st_ino == seen[i].st_ino) {
				rc = DA_ESAMEDIR;
				if (why && whylen)
					snprintf(why, whylen, "'%s' and '%s' are one directory",
						 dirs[j], dirs[i]);
				goto fail;
			}
	}
	free(seen);
	*out = s;
	return 0;
fail:
	free(seen);
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

/*
 * Write the n iovecs at off, all of them (short writes resumed, at most
 * IOV_MAX a call); the iovecs are used up. 0 or -errno.
 */
static int pwritev_all(int fd, struct iovec *iov, int n, off_t off)
{
	while (n > 0) {
		ssize_t w = pwritev(fd, iov, n > IOV_MAX ? IOV_MAX : n, off);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		off += w;
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
 * only pushed the database's pages out.
 *
 * O_DIRECT needs the memory, the file offset and the length aligned to a
 * block. An aligned pack (S >= DA_PACK_ALIGNED_FROM, layout below) puts
 * every shard at the same offset within a 4 KiB block on disk as in the
 * 4 KiB-aligned payload and parity buffers, so a shard's whole blocks are
 * written straight from those buffers. Everything else (pack header, record
 * heads, padding, CRCs, each shard's partial first and last block) is the
 * glue: laid out in the store's aligned bounce buffer, which for a dense
 * pack (small shards) holds the whole pack. The last partial block goes
 * through the page cache; the fsync after covers both.
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
 * Buffers that are not 4 KiB-aligned (a caller's own) only make more glue.
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

/* Take the bounce buffer with room for len bytes (every pack's glue, each
 * from a DIO_ALIGN boundary): 1 (release it with
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
 * The layout of a pack (docs/PROTOCOL.md, "Shard pack"). A dense pack is its
 * records back to back from offset 0. An aligned pack starts with
 * "MZPK" || version u32 (= 2), and zeros before each record put its shard's
 * first byte at the shard's residue: where the shard starts within a 4 KiB
 * block of the payload buffer (data shard i at i * S) or of the parity
 * buffer (parity shard i - k at (i - k) * S), both 4 KiB-aligned. The reader
 * tells the two apart by the first four bytes ("MZSH" starts a dense pack).
 */
#define PACK_MAGIC "MZPK"
#define PACK_VERSION 2
#define PACK_HDR_LEN 8

static const uint8_t zeros_block[DIO_ALIGN];

static const uint8_t pack_hdr[PACK_HDR_LEN] = {'M', 'Z', 'P', 'K', 0, 0, 0, PACK_VERSION};

static int pack_aligned(size_t S)
{
	return S >= DA_PACK_ALIGNED_FROM;
}

/* A pack's first bytes: the header of an aligned pack, nothing for a dense one. */
static struct iovec pack_prefix(int aligned)
{
	return (struct iovec){(void *)pack_hdr, aligned ? PACK_HDR_LEN : 0};
}

/* Zeros before shard i's record when its pack so far is pos bytes long. */
static size_t record_pad(int aligned, size_t pos, unsigned i, unsigned n, unsigned k,
			 size_t S)
{
	size_t at, want;

	if (!aligned)
		return 0;
	at = (pos + DA_SHARD_FILE_HDR_LEN + (size_t)da__path_depth(i, n) * 32) % DIO_ALIGN;
	want = (size_t)(i < k ? i : i - k) * S % DIO_ALIGN;
	return (want + DIO_ALIGN - at) % DIO_ALIGN;
}

/* Offset of shard i's record in its pack: after the lower members' records. */
static off_t member_offset(int aligned, unsigned i, unsigned n, unsigned k, size_t D, size_t S)
{
	size_t off = aligned ? PACK_HDR_LEN : 0;

	for (unsigned j = (unsigned)(i % D);; j += (unsigned)D) {
		off += record_pad(aligned, off, j, n, k, S);
		if (j == i)
			return (off_t)off;
		off += da_shard_file_len(j, n, S);
	}
}

/*
 * A pack given as iovecs, for writing: with CRCs to fill, a prefix (the pack
 * header, or nothing) and then (zeros, head, shard, CRC) per record, whose
 * CRC slot the writer fills; with CRCS_NONE, any bytes (records as they
 * are). CRCS_JOIN: each CRC slot holds its shard's own CRC-32C on the way
 * in, and the writer joins the head's to it (da__crc32c_join, with the
 * operator for S bytes) instead of reading the shard again.
 */
enum { CRCS_NONE, CRCS_FOLD, CRCS_JOIN };
enum { ROLE_BYTES = -1, ROLE_PAD, ROLE_HEAD, ROLE_SHARD, ROLE_CRC };

struct crcs {
	int mode;
	uint32_t op; /* CRCS_JOIN: da__crc32c_shift_op for S bytes */
};

static int iov_role(const struct crcs *c, int i)
{
	return c->mode != CRCS_NONE && i > 0 ? (i - 1) % 4 : ROLE_BYTES;
}

/* The record's CRC for its slot: crc is over what was folded (the head, and
 * with CRCS_FOLD the shard); slot holds the shard's with CRCS_JOIN. */
static uint32_t record_crc(const struct crcs *c, uint32_t crc, const void *slot)
{
	return c->mode == CRCS_JOIN ? da__crc32c_join(c->op, crc, da__get_u32(slot)) : crc;
}

/*
 * Records given with their CRC slots leave the CRC to the writer: it is
 * computed over bytes as they are copied, a chunk at a time while they are
 * in cache, and over the bytes written straight from memory in a pass of
 * their own (docs/BENCHMARKS.md, DA pipeline).
 */
#define CRC_CHUNK ((size_t)64 << 10)

/* Copy n bytes to dst, folding them into *crc (da__crc32c, chained) if crc. */
static void copy_crc(uint8_t *dst, const uint8_t *src, size_t n, uint32_t *crc)
{
	for (size_t at = 0; at < n; at += CRC_CHUNK) {
		size_t c = n - at < CRC_CHUNK ? n - at : CRC_CHUNK;

		memcpy(dst + at, src + at, c);
		if (crc != NULL)
			*crc = da__crc32c(*crc, dst + at, c);
	}
}

/* Fill the CRC slot of every record from its head and shard. */
static void fill_crcs(const struct crcs *c, struct iovec *iov, int n)
{
	if (c->mode == CRCS_NONE)
		return;
	for (int i = 1; i + 3 < n; i += 4) {
		uint32_t crc = da__crc32c(0, iov[i + 1].iov_base, iov[i + 1].iov_len);

		if (c->mode == CRCS_FOLD)
			crc = da__crc32c(crc, iov[i + 2].iov_base, iov[i + 2].iov_len);
		da__put_u32(iov[i + 3].iov_base, record_crc(c, crc, iov[i + 3].iov_base));
	}
}

/*
 * Split a pack (n iovecs, as above) into the segments of a direct write:
 * every whole 4 KiB block of an iovec that lies in memory at the offset
 * within a block it has in the file is written from where it is, and the
 * rest is copied into glue, in file order, each run of it starting on a
 * block boundary there as in the file. Without glue only plans: returns the
 * glue bytes needed. With glue (that many bytes, aligned), also copies,
 * fills the CRC slots (crcs), and writes the segments to seg (room for
 * 2 * n + 1), *nseg of them.
 */
static size_t plan_direct(struct iovec *iov, int n, const struct crcs *c, uint8_t *glue,
			  struct iovec *seg, int *nseg)
{
	size_t pos = 0, g = 0, run = 0; /* file offset; glue used; the open glue run's start */
	uint32_t crc = 0;
	int ns = 0;

	for (int i = 0; i < n; i++) {
		const uint8_t *p = iov[i].iov_base;
		size_t len = iov[i].iov_len, lead = (DIO_ALIGN - pos % DIO_ALIGN) % DIO_ALIGN;
		size_t mid = 0;
		int role = iov_role(c, i);
		uint32_t *fold = role == ROLE_HEAD || (role == ROLE_SHARD && c->mode == CRCS_FOLD)
					 ? &crc
					 : NULL;

		if (role == ROLE_CRC && glue != NULL) {
			da__put_u32(iov[i].iov_base, record_crc(c, crc, iov[i].iov_base));
			crc = 0;
		}
		if (len > lead && ((uintptr_t)p + lead) % DIO_ALIGN == 0)
			mid = (len - lead) & ~(size_t)(DIO_ALIGN - 1);
		if (mid == 0)
			lead = len;
		if (glue != NULL)
			copy_crc(glue + g, p, lead, fold);
		g += lead;
		pos += lead;
		if (mid == 0)
			continue;
		/* here pos, and so g, is on a block boundary: the glue run ends */
		if (g > run && glue != NULL)
			seg[ns] = (struct iovec){glue + run, g - run};
		ns += g > run;
		if (glue != NULL) {
			seg[ns] = (struct iovec){(void *)(p + lead), mid};
			if (fold != NULL)
				crc = da__crc32c(crc, p + lead, mid);
		}
		ns++;
		pos += mid;
		run = g;
		if (glue != NULL)
			copy_crc(glue + g, p + lead + mid, len - lead - mid, fold);
		g += len - lead - mid;
		pos += len - lead - mid;
	}
	if (g > run && glue != NULL)
		seg[ns] = (struct iovec){glue + run, g - run};
	ns += g > run;
	if (nseg != NULL)
		*nseg = ns;
	return g;
}

/*
 * Write segments seg (ns of them, len bytes in all, from offset 0) direct,
 * but for the last partial block, which goes through the page cache (the
 * descriptor's O_DIRECT is cleared for it). The segments are used up.
 */
static int write_segments(int fd, struct iovec *seg, int ns, size_t len)
{
	size_t whole = len & ~(size_t)(DIO_ALIGN - 1), tail = len - whole;
	const uint8_t *t;
	int rc, f;

	/* the tail is the end of the last segment, glue (direct parts are whole blocks) */
	t = ns > 0 ? (const uint8_t *)seg[ns - 1].iov_base + seg[ns - 1].iov_len - tail : NULL;
	if (tail > 0 && (seg[ns - 1].iov_len -= tail) == 0)
		ns--;
	rc = pwritev_all(fd, seg, ns, 0);
	if (rc != 0 || tail == 0)
		return rc;
	f = fcntl(fd, F_GETFL);
	if (f < 0 || fcntl(fd, F_SETFL, f & ~O_DIRECT) != 0)
		return -errno;
	return pwrite_all(fd, t, tail, (off_t)whole);
}

/* One directory's pack: written and fsync'd by pack_job_run, on its own thread. */
struct pack_job {
	struct da_store *s;
	size_t d;
	const char *tmp;
	struct iovec *iov;
	int n;
	size_t len;
	const struct crcs *crcs;
	size_t glue_len; /* bytes of glue a direct write needs (plan_direct) */
	uint8_t *glue;	 /* NULL: buffered */
	struct iovec *seg; /* room for 2 * n + 1 */
	int fd, rc;
	pthread_t thread;
	int started;
};

/*
 * Create tmp in directory j->d and write the pack into it, direct when
 * j->glue is not NULL. j->fd is the new file's descriptor (or -1); 0 or
 * -errno.
 */
static int write_pack(struct pack_job *j)
{
	const int fl = O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC;
	struct da_store *s = j->s;
	int rc, f, ns;

	if (j->glue && !atomic_load(&s->buffered[j->d])) {
		j->fd = openat(s->dirfd[j->d], j->tmp, fl | O_DIRECT, 0600);
		if (j->fd < 0 && errno != EINVAL)
			return -errno;
		if (j->fd >= 0) {
			plan_direct(j->iov, j->n, j->crcs, j->glue, j->seg, &ns);
			rc = write_segments(j->fd, j->seg, ns, j->len);
			if (rc != -EINVAL)
				return rc;
			/* refused: everything again through the page cache (CRCs are filled) */
			atomic_store(&s->buffered[j->d], 1);
			f = fcntl(j->fd, F_GETFL);
			if (f < 0 || fcntl(j->fd, F_SETFL, f & ~O_DIRECT) != 0)
				return -errno;
			return pwritev_all(j->fd, j->iov, j->n, 0);
		}
		atomic_store(&s->buffered[j->d], 1);
	}
	j->fd = openat(s->dirfd[j->d], j->tmp, fl, 0600);
	if (j->fd < 0)
		return -errno;
	fill_crcs(j->crcs, j->iov, j->n);
	return pwritev_all(j->fd, j->iov, j->n, 0);
}

static void *pack_job_run(void *arg)
{
	struct pack_job *j = arg;

	j->rc = write_pack(j);
	if (j->rc == 0 && fsync(j->fd) != 0)
		j->rc = -errno;
	return NULL;
}

/*
 * Durably write the packs of block h for directories d < D with niov[d] > 0:
 * pack d is the niov[d] entries at iov + d * stride, as a prefix and
 * (zeros, head, shard, CRC) records with the CRCs left to fill (crcs).
 * Every pack is written under <h>.tmp and fsync'd, in parallel (above);
 * then each is renamed into place, then the directories are fsync'd.
 */
static int commit_packs(struct da_store *s, uint64_t h, size_t D, struct iovec *iov,
			size_t stride, const int *niov, const struct crcs *crcs)
{
	char group[32], name[64], tmp[64], lockname[16];
	struct pack_job job[DA_MAX_SHARDS];
	int lockfd[DA_MAX_SHARDS];
	struct iovec *seg = NULL;
	size_t total = 0, off = 0, first = D, nseg = 0;
	int rc, have_bounce = 0;

	for (size_t d = 0; d < D; d++) {
		job[d] = (struct pack_job){.s = s, .d = d, .tmp = tmp, .iov = iov + d * stride,
					   .n = niov[d], .crcs = crcs, .fd = -1};
		for (int i = 0; i < niov[d]; i++)
			job[d].len += iov[d * stride + (size_t)i].iov_len;
		if (niov[d] > 0 && !atomic_load(&s->buffered[d])) {
			job[d].glue_len = plan_direct(job[d].iov, niov[d], crcs, NULL, NULL, NULL);
			total += dio_round_up(job[d].glue_len);
		}
		nseg += 2 * (size_t)niov[d] + 1;
		if (niov[d] > 0 && first == D)
			first = d;
	}
	rc = ensure_groups(s, h);
	if (rc != 0)
		return rc;
	/* One writer of a height's packs at a time, across processes and
	 * threads: the daemon's repair on read and `mezz da repair` may write
	 * the same height, and both write "<h>.tmp": one truncated the
	 * other's temp file, or found it renamed away. An flock on one of 64
	 * lock files of each directory (".lock-<h mod 64>", so puts of other
	 * heights go on beside it), taken in directory order, held to the
	 * last directory fsync. */
	snprintf(lockname, sizeof(lockname), ".lock-%02u", (unsigned)(h % 64));
	for (size_t d = 0; d < D; d++)
		lockfd[d] = -1;
	for (size_t d = 0; d < D && rc == 0; d++) {
		if (niov[d] == 0)
			continue;
		lockfd[d] = openat(s->dirfd[d], lockname, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (lockfd[d] < 0)
			rc = -errno;
		else
			while (flock(lockfd[d], LOCK_EX) != 0)
				if (errno != EINTR) {
					rc = -errno;
					break;
				}
	}
	if (rc != 0)
		goto unlock;
	path_names(group, sizeof(group), tmp, sizeof(tmp), h, ".tmp");
	path_names(group, sizeof(group), name, sizeof(name), h, "");
	seg = malloc(nseg * sizeof(*seg));
	have_bounce = seg != NULL && bounce_take(s, total);
	nseg = 0;
	for (size_t d = 0; d < D; d++) {
		if (job[d].n == 0)
			continue;
		if (have_bounce && !atomic_load(&s->buffered[d])) {
			job[d].glue = s->bounce + off;
			off += dio_round_up(job[d].glue_len);
			job[d].seg = seg + nseg;
			nseg += 2 * (size_t)job[d].n + 1;
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
	free(seg);
	for (size_t d = 0, renamed = 0; d < D && rc == 0; d++) {
		if (job[d].n == 0)
			continue;
		close(job[d].fd);
		job[d].fd = -1;
		if (renameat(s->dirfd[d], tmp, s->dirfd[d], name) != 0)
			rc = -errno;
		else if (s->put_hook)
			s->put_hook(s->put_hook_arg, h, ++renamed);
	}
	for (size_t d = 0; d < D && rc == 0; d++)
		if (niov[d] > 0)
			rc = fsync_at(s->dirfd[d], group);
	for (size_t d = 0; d < D; d++)
		if (job[d].fd >= 0)
			close(job[d].fd);
unlock:
	for (size_t d = 0; d < D; d++)
		if (lockfd[d] >= 0)
			close(lockfd[d]); /* releases the flock */
	return rc;
}

void da_store_set_put_hook(struct da_store *s, void (*fn)(void *arg, uint64_t height,
							   size_t renamed),
			   void *arg)
{
	if (s) {
		s->put_hook = fn;
		s->put_hook_arg = arg;
	}
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
 * from the whole tree over leaves. shard_crcs: each shard's CRC-32C if the
 * caller has them, or NULL to take them in the write. *written counts the
 * masked shards and *bytes adds the packs' bytes (both may be NULL).
 */
static int write_packs(struct da_store *s, const struct da_record *r, uint8_t *const *shards,
		       const uint8_t (*leaves)[32], const uint32_t *shard_crcs,
		       const uint8_t *mask, unsigned *written, uint64_t *bytes)
{
	struct crcs cm = {.mode = shard_crcs != NULL ? CRCS_JOIN : CRCS_FOLD};
	unsigned n = (unsigned)r->k + r->m, count = 0;
	size_t per, D = pack_dirs(s, n, &per), stride = 1 + 4 * per, pos[DA_MAX_SHARDS];
	struct seq_merkle_tree t;
	uint8_t want[DA_MAX_SHARDS] = {0}, *heads = NULL, (*crcs)[4] = NULL;
	int aligned = pack_aligned(r->S);
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
	/* a prefix and 4 per member: zeros, header and path, shard, CRC */
	iov = malloc(stride * D * sizeof(*iov));
	if (heads == NULL || crcs == NULL || iov == NULL) {
		rc = DA_ENOMEM;
		goto out;
	}
	for (size_t d = 0; d < D; d++) {
		if (!want[d])
			continue;
		iov[d * stride] = pack_prefix(aligned);
		pos[d] = iov[d * stride].iov_len;
		niov[d] = 1;
	}
	for (unsigned i = 0; i < n; i++) {
		struct da_shard_file f = {0};
		uint8_t *head = heads + (size_t)i * DA__SHARD_HEAD_MAX;
		struct iovec *v;
		size_t pl, hl, pad;

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
		pad = record_pad(aligned, pos[i % D], i, n, r->k, r->S);
		v = iov + (i % D) * stride + niov[i % D];
		v[0] = (struct iovec){(void *)zeros_block, pad};
		v[1] = (struct iovec){head, hl};
		v[2] = (struct iovec){shards[i], r->S};
		v[3] = (struct iovec){crcs[i], 4}; /* filled by the writer */
		if (shard_crcs != NULL)
			da__put_u32(crcs[i], shard_crcs[i]);
		niov[i % D] += 4;
		pos[i % D] += pad + hl + r->S + 4;
	}
	if (shard_crcs != NULL)
		cm.op = da__crc32c_shift_op(r->S);
	rc = commit_packs(s, r->height, D, iov, stride, niov, &cm);
	if (rc == 0 && written != NULL) {
		for (unsigned i = 0; i < n; i++)
			count += mask == NULL || mask[i];
		*written = count;
	}
	for (size_t d = 0; d < D && rc == 0 && bytes != NULL; d++)
		if (want[d])
			*bytes += pos[d];
out:
	free(heads);
	free(crcs);
	free(iov);
	seq_merkle_tree_free(&t);
	return rc;
}

static int put(struct da_store *s, const struct da_record *r, uint8_t *const *shards,
	       const uint8_t (*leaves)[32], const uint32_t *shard_crcs)
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
		rc = write_packs(s, r, shards, leaves, shard_crcs, NULL, NULL, NULL);
	free(own);
	return rc;
}

int da_store_put(struct da_store *s, const struct da_record *r, uint8_t *const *shards,
		 const uint8_t (*leaves)[32])
{
	return put(s, r, shards, leaves, NULL);
}

int da_store_put_block(struct da_store *s, const struct da_record *r, const struct da_block *b)
{
	if (b == NULL || r == NULL || b->k != r->k || b->m != r->m || b->S != r->S)
		return DA_EINVAL;
	return put(s, r, (uint8_t *const *)b->shard, (const uint8_t (*)[32])b->leaf, b->crc);
}

/* A block's pack in one directory, opened once per read. */
struct pack {
	int fd;      /* -1: not opened yet or absent */
	int err;     /* 0, or why the open failed (errno) */
	off_t size;
	int aligned; /* the layout (member_offset) */
};

/*
 * Open block h's pack in directory d. Its first bytes say its layout: "MZSH"
 * (a record) a dense pack, "MZPK" version 2 an aligned one; anything else
 * (a damaged header) is taken for the layout the writer uses for shards of
 * S bytes, and its records are checked as always.
 */
static void pack_open(struct da_store *s, uint64_t h, size_t d, size_t S, struct pack *p)
{
	char group[32], name[64];
	uint8_t hdr[PACK_HDR_LEN];
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
	p->aligned = pack_aligned(S);
	if (p->fd >= 0 && pread(p->fd, hdr, sizeof(hdr), 0) == (ssize_t)sizeof(hdr)) {
		if (memcmp(hdr, "MZSH", 4) == 0)
			p->aligned = 0;
		else if (memcmp(hdr, PACK_MAGIC, 4) == 0 && da__get_u32(hdr + 4) == PACK_VERSION)
			p->aligned = 1;
	}
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
	off_t off = member_offset(p->aligned, i, n, r->k, s->D, r->S);
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
		/* 4 KiB-aligned, as da_block's: a repair writes shards direct */
		if (posix_memalign((void **)&payload, DIO_ALIGN, S * k) != 0 ||
		    posix_memalign((void **)&parity, DIO_ALIGN, S * r->m) != 0)
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
			pack_open(s, r->height, i % s->D, S, &pack[i % s->D]);
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
		rc = write_packs(s, r, shard, (const uint8_t (*)[32])leaves, NULL, bad,
				 &rep->repaired, &rep->bytes_written);
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

		pack_open(s, r->height, index % s->D, r->S, &p);
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
	pack_open(s, r->height, index % s->D, r->S, &p);
	if (p.fd < 0)
		return p.err == ENOENT ? 0 : -p.err;
	close(p.fd);
	return p.size >= member_offset(p.aligned, index, n, r->k, s->D, r->S) +
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
	size_t D, per, stride;
	unsigned have = 0, count = 0;
	int aligned;
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
	aligned = pack_aligned(first.S); /* the layout da_store_put writes */
	/* zeros as long as the longest record */
	zeros = calloc(1, da_shard_file_len(0, n, first.S) + DA_SHARD_MAX_PATH * 32);
	stride = 1 + 2 * per; /* the prefix, then zeros and the record per member */
	iov = malloc(stride * D * sizeof(*iov));
	if (zeros == NULL || iov == NULL) {
		rc = DA_ENOMEM;
		goto out;
	}
	path_names(group, sizeof(group), name, sizeof(name), first.height, "");
	for (size_t d = 0; d < D; d++) {
		struct iovec *v = iov + d * stride;
		unsigned in_pack = 0;
		size_t pos;

		if (faccessat(s->dirfd[d], name, F_OK, 0) == 0)
			continue; /* an existing pack stays */
		v[niov[d]++] = pack_prefix(aligned);
		pos = v[0].iov_len;
		for (unsigned i = (unsigned)d; i < n; i += (unsigned)D) {
			size_t pad = record_pad(aligned, pos, i, n, first.k, first.S);
			size_t rl = da_shard_file_len(i, n, first.S);

			in_pack += rec[i] != NULL;
			v[niov[d]++] = (struct iovec){(void *)zeros_block, pad};
			/* an absent record is zeros of its length: read as corrupt, rebuilt by repair */
			v[niov[d]++] = rec[i] != NULL ? (struct iovec){(void *)rec[i], len[i]}
						      : (struct iovec){zeros, rl};
			pos += pad + rl;
		}
		if (in_pack == 0)
			niov[d] = 0;
		count += in_pack;
	}
	rc = commit_packs(s, first.height, D, iov, stride, niov, &(struct crcs){.mode = CRCS_NONE});
	if (rc == 0 && placed != NULL)
		*placed = count;
out:
	free(zeros);
	free(iov);
	return rc;
}
