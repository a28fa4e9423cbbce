/*
 * writebehind.c - an SQLite VFS that starts the write-back of what a
 * connection writes as it goes, instead of leaving it all to the fsync.
 *
 * Every file on the box shares one disk, and a flush carries whatever was
 * written before it. A checkpoint copies megabytes of WAL into mezzanine.db
 * with plain writes; the kernel kept those pages dirty (its own write-back
 * waits for 10% of memory dirty, or 30 s), so all of them went to the disk
 * in one burst at the checkpoint's fsync, and a group's WAL fsync queued
 * behind the burst waited for it. txindex.db's merges (synchronous=NORMAL:
 * their WAL is synced only by the checkpoint) did the same. In the peers'
 * closed loop (BENCHMARKS.md, six interleaved pairs), 78-82 of the
 * committer's fsyncs a run took over 5 ms before this, the longest 20-25
 * ms; 51-60 after, the longest 13-19 ms.
 *
 * Here the main database and WAL files of a connection opened with this VFS
 * hand each WB_BYTES (1 MiB) of written range to the kernel's write-back as it
 * is written (sync_file_range(SYNC_FILE_RANGE_WRITE): starts the I/O and
 * does not wait for it, unless the disk's queue is full; it does not flush
 * the disk's cache, so it promises nothing). The writer pays one system call
 * a MiB and submits the I/O its fsync would have submitted anyway. The fsync
 * that follows still makes it all durable and still flushes; it finds little
 * left to send. Durability is unchanged: what SQLite syncs, and when, is not
 * touched.
 *
 * Everything else is the default VFS ("unix", or in the test build the
 * mezz-fault VFS that fault.c registers at start, before the first store is
 * opened): every method and every file this does not track goes straight
 * to the VFS that was the default when this one was first asked for.
 */
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "appliance/app.h"
#include "appliance/ops.h"
#include "appliance/vfsfwd.h"

#define WB_VFS_NAME "mezz-writebehind"
#define WB_BYTES (1 << 20) /* written range handed to write-back at a time */

struct wb_file {
	sqlite3_file base; /* pMethods: wb_methods */
	int fd;		   /* a descriptor of the same file, for sync_file_range; -1: none */
	int own_fd;	   /* 1: ours to close (a WAL); 0: db_fds' (a database) */
	sqlite3_int64 lo, hi; /* the span written since the last hand-off or sync */
	sqlite3_int64 bytes;  /* and how much was written in it */
	sqlite3_file *real;   /* the default VFS's file, just past this struct */
};

static sqlite3_vfs wb_vfs;
static sqlite3_vfs *base_vfs;
static sqlite3_io_methods wb_methods[3]; /* [v - 1]: iVersion v, as the real file's */
static pthread_once_t wb_once = PTHREAD_ONCE_INIT;
static int wb_ok;

static void hand_off(struct wb_file *w)
{
	if (w->hi > w->lo &&
	    sync_file_range(w->fd, w->lo, w->hi - w->lo, SYNC_FILE_RANGE_WRITE) == 0)
		app_metric_add(APP_M_storage_writebehind_bytes_total, (uint64_t)w->bytes);
	w->lo = w->hi = w->bytes = 0; /* best effort: on an error the fsync sends it all */
}

static int wb_write(sqlite3_file *f, const void *buf, int n, sqlite3_int64 off)
{
	struct wb_file *w = (struct wb_file *)f;
	int rc = w->real->pMethods->xWrite(w->real, buf, n, off);

	if (rc != SQLITE_OK || w->fd < 0)
		return rc;
	if (!w->bytes) {
		w->lo = off;
		w->hi = off + n;
	} else {
		if (off < w->lo)
			w->lo = off;
		if (off + n > w->hi)
			w->hi = off + n;
	}
	/* One call a MiB written, however spread (a checkpoint writes pages
	 * in page order, an index merge pages all over): write-back looks up
	 * only the dirty pages of the span. */
	w->bytes += n;
	if (w->bytes >= WB_BYTES)
		hand_off(w);
	return rc;
}

static int wb_sync(sqlite3_file *f, int flags)
{
	struct wb_file *w = (struct wb_file *)f;

	w->lo = w->hi = w->bytes = 0; /* the sync sends the rest */
	return w->real->pMethods->xSync(w->real, flags);
}

static int wb_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	struct wb_file *w = (struct wb_file *)f;

	if (w->hi > size)
		w->hi = size > w->lo ? size : w->lo; /* an empty span sends nothing */
	return w->real->pMethods->xTruncate(w->real, size);
}

static int wb_close(sqlite3_file *f)
{
	struct wb_file *w = (struct wb_file *)f;
	int rc = w->real->pMethods->xClose(w->real);

	if (w->fd >= 0 && w->own_fd)
		close(w->fd);
	w->fd = -1;
	return rc;
}

/* The rest forward to the file of the VFS underneath. */
APP_VFS_FWD_COMMON(struct wb_file, wb_)
APP_VFS_FWD(struct wb_file, wb_, Fetch, (sqlite3_file * f, sqlite3_int64 o, int n, void **p),
	    (ff->real, o, n, p))
APP_VFS_FWD(struct wb_file, wb_, Unfetch, (sqlite3_file * f, sqlite3_int64 o, void *p),
	    (ff->real, o, p))

/*
 * A database file's descriptor is never closed. Closing any descriptor of a
 * file drops every POSIX lock the process holds on it, SQLite's included
 * (the unix VFS keeps its own descriptors open until no lock is left for
 * that reason), so one read-only descriptor per database file is opened at
 * its first open here and kept until the process exits; at most DB_FDS of
 * them, and a database past that is written without write-behind. A WAL
 * carries no locks (WAL mode locks the database and its -shm file), so a
 * WAL's descriptor is opened and closed with it.
 */
#define DB_FDS 16

struct db_fd {
	dev_t dev;
	ino_t ino;
	int fd;
};

static struct db_fd db_fds[DB_FDS];
static int n_db_fds;
static pthread_mutex_t db_fds_mu = PTHREAD_MUTEX_INITIALIZER;

static int db_fd(const char *name)
{
	struct stat st, fst = {0};
	int fd = -1;

	if (stat(name, &st) != 0)
		return -1;
	pthread_mutex_lock(&db_fds_mu);
	for (int i = 0; i < n_db_fds && fd < 0; i++)
		if (db_fds[i].dev == st.st_dev && db_fds[i].ino == st.st_ino)
			fd = db_fds[i].fd;
	if (fd < 0 && n_db_fds < DB_FDS) {
		int nfd = open(name, O_RDONLY | O_CLOEXEC);

		if (nfd >= 0) {
			/* Kept even if the name was replaced in between (then
			 * unused): closing it could drop a lock. */
			(void)fstat(nfd, &fst);
			db_fds[n_db_fds++] = (struct db_fd){fst.st_dev, fst.st_ino, nfd};
			if (fst.st_dev == st.st_dev && fst.st_ino == st.st_ino)
				fd = nfd;
		}
	}
	pthread_mutex_unlock(&db_fds_mu);
	return fd;
}

static int wb_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *f, int flags,
		   int *out_flags)
{
	struct wb_file *w = (struct wb_file *)f;
	int rc, v;

	(void)vfs;
	if (!name || !(flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_WAL)))
		return base_vfs->xOpen(base_vfs, name, f, flags, out_flags);
	memset(w, 0, sizeof(*w));
	w->fd = -1;
	w->real = (sqlite3_file *)(w + 1);
	w->real->pMethods = NULL;
	rc = base_vfs->xOpen(base_vfs, name, w->real, flags, out_flags);
	if (!w->real->pMethods)
		return rc; /* ours stays NULL too: nothing for SQLite to close */
	if (rc == SQLITE_OK && !(flags & SQLITE_OPEN_READONLY)) {
		w->own_fd = !!(flags & SQLITE_OPEN_WAL);
		w->fd = w->own_fd ? open(name, O_RDONLY | O_CLOEXEC) : db_fd(name);
	}
	/* No newer methods than the real file has: SQLite checks iVersion
	 * before calling xShmMap or xFetch. */
	v = w->real->pMethods->iVersion;
	w->base.pMethods = &wb_methods[(v < 1 ? 1 : v > 3 ? 3 : v) - 1];
	return rc;
}

static void wb_register(void)
{
	base_vfs = sqlite3_vfs_find(NULL);
	if (!base_vfs || base_vfs->iVersion < 1)
		return;
	wb_vfs = *base_vfs; /* same pAppData: the base's methods see what they expect */
	wb_vfs.pNext = NULL;
	wb_vfs.zName = WB_VFS_NAME;
	wb_vfs.szOsFile = (int)sizeof(struct wb_file) + base_vfs->szOsFile;
	wb_vfs.xOpen = wb_open;
	wb_methods[2] = (sqlite3_io_methods){
		.iVersion = 3,
		.xClose = wb_close,
		.xRead = wb_Read,
		.xWrite = wb_write,
		.xTruncate = wb_truncate,
		.xSync = wb_sync,
		.xFileSize = wb_FileSize,
		.xLock = wb_Lock,
		.xUnlock = wb_Unlock,
		.xCheckReservedLock = wb_CheckReservedLock,
		.xFileControl = wb_FileControl,
		.xSectorSize = wb_SectorSize,
		.xDeviceCharacteristics = wb_DeviceCharacteristics,
		.xShmMap = wb_ShmMap,
		.xShmLock = wb_ShmLock,
		.xShmBarrier = wb_ShmBarrier,
		.xShmUnmap = wb_ShmUnmap,
		.xFetch = wb_Fetch,
		.xUnfetch = wb_Unfetch,
	};
	wb_methods[0] = wb_methods[1] = wb_methods[2];
	wb_methods[0].iVersion = 1;
	wb_methods[1].iVersion = 2;
	wb_ok = sqlite3_vfs_register(&wb_vfs, 0) == SQLITE_OK;
}

const char *app_writebehind_vfs(void)
{
	pthread_once(&wb_once, wb_register);
	return wb_ok ? WB_VFS_NAME : NULL;
}
