/* The component table behind /healthz (health.c). */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

#include "appliance/ops.h"

static atomic_int stop;

static void *beat_nonstop(void *arg)
{
	int id = *(int *)arg;

	while (!atomic_load(&stop))
		app_health_beat(id);
	return NULL;
}

/* app_health_check reads the clock once, then each component's last beat:
 * a beat stored by another thread in between is newer than that reading,
 * and is as fresh as a beat can be, not 2^64 ns old. */
Test(health, a_beat_newer_than_the_check_is_fresh)
{
	char why[256], first[256] = "";
	int id, bad = 0;
	pthread_t t;

	app_health_reset();
	id = app_health_register("da", 60000);
	cr_assert_geq(id, 0);
	atomic_store(&stop, 0);
	cr_assert_eq(pthread_create(&t, NULL, beat_nonstop, &id), 0);
	for (int i = 0; i < 200000; i++) {
		if (app_health_check(why, sizeof(why)) && !bad++)
			snprintf(first, sizeof(first), "%s", why);
	}
	atomic_store(&stop, 1);
	pthread_join(t, NULL);
	app_health_reset();
	cr_assert_eq(bad, 0, "%d of 200000 checks unhealthy, the first: %s", bad, first);
}
