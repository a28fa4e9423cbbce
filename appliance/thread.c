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
 *
 * Pinning (sequencer.network_cpu, sequencer.commit_cpu; off by default)
 * keeps the two threads of the answer path on CPUs of their own choosing.
 * Unpinned, the kernel tends to wake mz-commit on the CPU of the lws thread
 * that woke it (its wake-affine rule), where it waits for that thread to
 * yield while the other core may be idle. A thread inherits its creator's
 * CPUs, so the lws thread is pinned only after every other thread has
 * started (mezzanine.c), and mz-commit starts none. The one exception: a
 * repair on read (dasrv.c) runs on the lws thread, and the threads the DA
 * store starts to write that block's packs share its CPU while they last.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
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

/* The CPUs this process may use, as a list ("0-3,6"), into buf. */
static void allowed_cpus(char *buf, size_t len)
{
	cpu_set_t set;
	size_t at = 0;

	buf[0] = 0;
	if (sched_getaffinity(0, sizeof(set), &set) != 0)
		return;
	for (int c = 0; c < CPU_SETSIZE && at + 16 < len; c++) {
		int e = c;

		if (!CPU_ISSET(c, &set))
			continue;
		while (e + 1 < CPU_SETSIZE && CPU_ISSET(e + 1, &set))
			e++;
		at += (size_t)snprintf(buf + at, len - at, e > c ? "%s%d-%d" : "%s%d",
				       at ? "," : "", c, e);
		c = e;
	}
}

int app_thread_pin(pthread_t t, const char *name, long cpu, char *errbuf, size_t errlen)
{
	cpu_set_t set;
	char allowed[128];
	int rc;

	if (cpu < 0)
		return 0;
	CPU_ZERO(&set);
	CPU_SET((int)cpu, &set);
	rc = pthread_setaffinity_np(t, sizeof(set), &set);
	if (rc == 0) {
		app_info("thread_pinned", "thread=%s cpu=%ld", name, cpu);
		return 0;
	}
	allowed_cpus(allowed, sizeof(allowed));
	snprintf(errbuf, errlen, "cannot pin %s to CPU %ld: %s (this process may use CPUs %s)",
		 name, cpu, strerror(rc), allowed[0] ? allowed : "?");
	return -rc;
}
