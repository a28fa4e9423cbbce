/*
 * fault.c - fault hooks for tests (after SQLite's sqlite3FaultSim), compiled
 * only into the test build of the daemon (mezzanine-test, -DMEZZ_FAULT_HOOKS).
 *
 * A SQLite VFS that wraps the default one and fails xSync once the number of
 * syncs passes MEZZ_FAULT_FSYNC_AFTER (environment), so a test can watch the
 * sequencer halt on an fsync error instead of preconfirming. mz-sync's own
 * fsync of the WAL (storage.sync_pipeline) counts and fails alike.
 *
 * MEZZ_FAULT_MAX_PAGES caps the database at that many pages (PRAGMA
 * max_page_count), so an INSERT in the middle of a group fails with
 * SQLITE_FULL: the other way a group can fail before its COMMIT.
 *
 * Stalls, for the watchdog and health tests: while the file named by
 * MEZZ_FAULT_STALL_LOOP_FILE exists, the lws event loop sleeps instead of
 * serving (as a loop stuck in a callback would); while the file named by
 * MEZZ_FAULT_STALL_SEAL_FILE exists, the sealer thread builds no blocks (as
 * a stuck sealer would); while the file named by MEZZ_FAULT_STALL_SYNC_FILE
 * exists, mz-sync starts no fsync (as a slow disk would; only with
 * storage.sync_pipeline = 1, without it there is no mz-sync); while the file
 * named by MEZZ_FAULT_STALL_DA_FILE exists, mz-da codes no block. Removing
 * the file resumes. Two more stall mz-da inside a block's DA stage, for the
 * crash tests: MEZZ_FAULT_STALL_DA_PUT_FILE in the middle of the shard put,
 * after its first pack is renamed into place and before the others are
 * (da_store_set_put_hook), and MEZZ_FAULT_STALL_DA_DURABLE_FILE after the
 * put, every shard durable, before the block's record is queued to the
 * committer. Each logs fault_stall with the block's height.
 *
 * While the file named by MEZZ_FAULT_AUTH_READ_FILE exists, the lws
 * thread's re-read of the auth version fails (auth.c), as an unreadable
 * database would make it.
 *
 * MEZZ_FAULT_FANOUT_WRITE_MAX cuts every direct write of a live block's copy
 * (fanout.c) to at most that many bytes, as a full socket buffer would: 0
 * writes nothing (the copy is queued), more leaves a short write whose rest
 * lws finishes.
 */
#ifdef MEZZ_FAULT_HOOKS
#include <errno.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "appliance/daemon.h"
#include "appliance/vfsfwd.h"

static const char *stall_loop_file, *stall_seal_file, *stall_sync_file, *stall_da_file;
static const char *stall_da_put_file, *stall_da_durable_file, *auth_read_file;

/* height 0: none to name */
static void stall_while(const char *path, const char *what, uint64_t height)
{
	int logged = 0;

	while (path && access(path, F_OK) == 0) {
		struct timespec ts = {0, 20 * 1000000L};

		if (!logged++)
			app_warn("fault_stall", "what=%s height=%llu file=%s", what,
				 (unsigned long long)height, path);
		nanosleep(&ts, NULL);
	}
}

void app_fault_loop_point(void)
{
	stall_while(stall_loop_file, "loop", 0);
}

void app_fault_seal_point(void)
{
	stall_while(stall_seal_file, "seal", 0);
}

void app_fault_sync_point(void)
{
	stall_while(stall_sync_file, "sync", 0);
}

int app_fault_auth_read(void)
{
	return auth_read_file && access(auth_read_file, F_OK) == 0;
}

void app_fault_da_point(void)
{
	stall_while(stall_da_file, "da", 0);
}

void app_fault_da_durable(uint64_t height)
{
	stall_while(stall_da_durable_file, "da_durable", height);
}

static void da_put_hook(void *arg, uint64_t height, size_t renamed)
{
	(void)arg;
	if (renamed == 1)
		stall_while(stall_da_put_file, "da_put", height);
}

void app_fault_da_store(struct da_store *s)
{
	if (stall_da_put_file)
		da_store_set_put_hook(s, da_put_hook, NULL);
}

static sqlite3_vfs fault_vfs;
static sqlite3_vfs *base_vfs;
static long fail_after = -1;
static atomic_long syncs;

struct fault_file {
	sqlite3_file base; /* must be first */
	sqlite3_file *real;
};

static sqlite3_io_methods fault_io;

static int f_close(sqlite3_file *f)
{
	struct fault_file *ff = (struct fault_file *)f;
	int rc = ff->real->pMethods ? ff->real->pMethods->xClose(ff->real) : SQLITE_OK;

	sqlite3_free(ff->real);
	return rc;
}
APP_VFS_FWD_COMMON(struct fault_file, f_)
APP_VFS_FWD(struct fault_file, f_, Write, (sqlite3_file * f, const void *b, int n, sqlite3_int64 o),
	    (ff->real, b, n, o))
APP_VFS_FWD(struct fault_file, f_, Truncate, (sqlite3_file * f, sqlite3_int64 s), (ff->real, s))

static int sync_fails(void)
{
	return fail_after >= 0 && atomic_fetch_add(&syncs, 1) >= fail_after;
}

static int f_Sync(sqlite3_file *f, int flags)
{
	struct fault_file *ff = (struct fault_file *)f;

	if (sync_fails())
		return SQLITE_IOERR_FSYNC;
	return ff->real->pMethods->xSync(ff->real, flags);
}

int app_fault_fsync(void)
{
	return sync_fails() ? -EIO : 0;
}

static long fanout_write_max = -1;

size_t app_fault_fanout_cap(size_t len)
{
	return fanout_write_max >= 0 && len > (size_t)fanout_write_max ? (size_t)fanout_write_max
								   : len;
}

static int f_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out)
{
	struct fault_file *ff = (struct fault_file *)f;
	int rc;

	(void)vfs;
	ff->real = sqlite3_malloc(base_vfs->szOsFile);
	if (!ff->real)
		return SQLITE_NOMEM;
	memset(ff->real, 0, (size_t)base_vfs->szOsFile);
	rc = base_vfs->xOpen(base_vfs, name, ff->real, flags, out);
	if (rc != SQLITE_OK) {
		sqlite3_free(ff->real);
		ff->real = NULL;
		f->pMethods = NULL;
		return rc;
	}
	fault_io = *ff->real->pMethods;
	fault_io.xClose = f_close;
	fault_io.xRead = f_Read;
	fault_io.xWrite = f_Write;
	fault_io.xTruncate = f_Truncate;
	fault_io.xSync = f_Sync;
	fault_io.xFileSize = f_FileSize;
	fault_io.xLock = f_Lock;
	fault_io.xUnlock = f_Unlock;
	fault_io.xCheckReservedLock = f_CheckReservedLock;
	fault_io.xFileControl = f_FileControl;
	fault_io.xSectorSize = f_SectorSize;
	fault_io.xDeviceCharacteristics = f_DeviceCharacteristics;
	fault_io.xShmMap = f_ShmMap;
	fault_io.xShmLock = f_ShmLock;
	fault_io.xShmBarrier = f_ShmBarrier;
	fault_io.xShmUnmap = f_ShmUnmap;
	fault_io.xFetch = NULL;
	fault_io.xUnfetch = NULL;
	if (fault_io.iVersion > 2)
		fault_io.iVersion = 2;
	f->pMethods = &fault_io;
	return SQLITE_OK;
}

int app_fault_install(void)
{
	const char *e = getenv("MEZZ_FAULT_FSYNC_AFTER");
	const char *w = getenv("MEZZ_FAULT_FANOUT_WRITE_MAX");

	stall_loop_file = getenv("MEZZ_FAULT_STALL_LOOP_FILE");
	stall_seal_file = getenv("MEZZ_FAULT_STALL_SEAL_FILE");
	stall_sync_file = getenv("MEZZ_FAULT_STALL_SYNC_FILE");
	stall_da_file = getenv("MEZZ_FAULT_STALL_DA_FILE");
	stall_da_put_file = getenv("MEZZ_FAULT_STALL_DA_PUT_FILE");
	stall_da_durable_file = getenv("MEZZ_FAULT_STALL_DA_DURABLE_FILE");
	auth_read_file = getenv("MEZZ_FAULT_AUTH_READ_FILE");
	if (w)
		fanout_write_max = atol(w);
	if (!e)
		return 0;
	fail_after = atol(e);
	base_vfs = sqlite3_vfs_find(NULL);
	if (!base_vfs)
		return -1;
	fault_vfs = *base_vfs;
	fault_vfs.zName = "mezz-fault";
	fault_vfs.szOsFile = (int)sizeof(struct fault_file);
	fault_vfs.xOpen = f_open;
	return sqlite3_vfs_register(&fault_vfs, 1) == SQLITE_OK ? 0 : -1;
}

int app_fault_store_opened(struct app_store *s)
{
	const char *e = getenv("MEZZ_FAULT_MAX_PAGES");
	char sql[64];

	if (!e)
		return 0;
	snprintf(sql, sizeof(sql), "PRAGMA max_page_count=%ld", atol(e));
	return sqlite3_exec(app_store_db(s), sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}
#else
/* ISO C forbids an empty translation unit. */
typedef int mezz_fault_hooks_disabled;
#endif
