/*
 * thread.c - the CPU priority of the daemon's background threads.
 *
 * On a small box every thread shares a couple of cores. The preconfirmation
 * path (the lws thread, mz-commit, mz-sync) must not queue behind bulk work
 * whose only deadline is a later commitment level: mz-da (coding and writing
 * a block's shards, a burst of tens of milliseconds of CPU at every slot end)
 * and mz-index (merging a batch into txindex.db). Those threads lower their
 * own priority with setpriority(2), which on Linux acts on the calling thread
 * alone. Lowering it needs no privilege; the unit's SystemCallFilter allows
 * setpriority for this (systemd/mezzanine.service).
 *
 * A lower priority only orders who runs first when the cores are busy: the
 * threads still get CPU (nice 10 weighs about a tenth of nice 0), and their
 * backlogs stay bounded as before (mz-da's queue, the index's live map).
 */
#include <errno.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "appliance/app.h"

int app_thread_background(const char *name, int nice)
{
	pid_t tid = (pid_t)syscall(SYS_gettid);
	int cur;

	errno = 0;
	cur = getpriority(PRIO_PROCESS, (id_t)tid);
	if (nice <= 0 || (errno == 0 && cur >= nice))
		return 0; /* never raise a priority the service was started with */
	if (setpriority(PRIO_PROCESS, (id_t)tid, nice) != 0) {
		int e = errno;

		app_warn("thread_priority_unchanged", "thread=%s nice=%d err=\"%s\"", name, nice,
			 strerror(e));
		return -e;
	}
	return 0;
}
