/*
 * health.c - the component table behind /healthz (see ops.h). Beats are
 * atomic stores of a monotonic timestamp; failure reasons are rare and take
 * a mutex. Components are registered at start-up only, so the table's
 * length never changes while threads read it.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "appliance/app.h"
#include "appliance/ops.h"

struct component {
	char name[24];
	uint64_t max_age_ms;
	atomic_uint_fast64_t last_beat_ns;
	atomic_int failed;
	char reason[160]; /* under mu */
};

static struct component comps[APP_HEALTH_MAX];
static atomic_int ncomps;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

int app_health_register(const char *name, uint64_t max_age_ms)
{
	int id = atomic_load(&ncomps);

	if (id >= APP_HEALTH_MAX)
		return APP_EFULL;
	snprintf(comps[id].name, sizeof(comps[id].name), "%s", name);
	comps[id].max_age_ms = max_age_ms;
	atomic_store(&comps[id].last_beat_ns, app_now_ns());
	atomic_store(&comps[id].failed, 0);
	atomic_store(&ncomps, id + 1);
	return id;
}

void app_health_beat(int id)
{
	if (id < 0 || id >= atomic_load(&ncomps))
		return;
	atomic_store(&comps[id].last_beat_ns, app_now_ns());
	if (atomic_load(&comps[id].failed))
		atomic_store(&comps[id].failed, 0);
}

void app_health_fail(int id, const char *reason)
{
	if (id < 0 || id >= atomic_load(&ncomps))
		return;
	pthread_mutex_lock(&mu);
	snprintf(comps[id].reason, sizeof(comps[id].reason), "%s", reason);
	atomic_store(&comps[id].failed, 1);
	pthread_mutex_unlock(&mu);
}

int app_health_check(char *out, size_t len)
{
	uint64_t now = app_now_ns();
	size_t used = 0;
	int bad = 0, n = atomic_load(&ncomps);

	if (len)
		out[0] = 0;
	for (int i = 0; i < n; i++) {
		struct component *c = &comps[i];
		uint64_t beat = atomic_load(&c->last_beat_ns);
		/* A thread may beat between the clock read above and this load:
		 * such a beat is newer than now and counts as age 0. */
		uint64_t age_ms = beat < now ? (now - beat) / 1000000 : 0;
		char why[200];

		if (atomic_load(&c->failed)) {
			pthread_mutex_lock(&mu);
			snprintf(why, sizeof(why), "%.23s: %.159s", c->name, c->reason);
			pthread_mutex_unlock(&mu);
		} else if (c->max_age_ms && age_ms > c->max_age_ms) {
			snprintf(why, sizeof(why), "%.23s: no progress for %llu ms (limit %llu ms)",
				 c->name, (unsigned long long)age_ms,
				 (unsigned long long)c->max_age_ms);
		} else {
			continue;
		}
		if (used < len) {
			int k = snprintf(out + used, len - used, "%s%s", bad ? "; " : "", why);

			if (k > 0)
				used += (size_t)k;
		}
		bad = 1;
	}
	return bad;
}

void app_health_reset(void)
{
	atomic_store(&ncomps, 0);
}
