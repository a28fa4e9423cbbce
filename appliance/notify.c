/*
 * notify.c - the systemd service protocol: READY=1 once the daemon can serve,
 * WATCHDOG=1 from the lws event loop, STOPPING=1 when an orderly stop begins,
 * EXTEND_TIMEOUT_USEC while a long start-up step (an index rebuild) runs.
 * See systemd/mezzanine.service (Type=notify, WatchdogSec=).
 */
#include <libwebsockets.h>
#include <systemd/sd-daemon.h>
#include <string.h>

#include "appliance/app.h"
#include "appliance/ops.h"

/* The lws thread owns these (one event loop per process). */
static lws_sorted_usec_list_t wd_sul;
static struct lws_context *wd_ctx;
static uint64_t wd_every_us;

int app_notify_ready(const char *status)
{
	int rc = sd_notifyf(0, "READY=1\nSTATUS=%s", status ? status : "serving");

	return rc < 0 ? rc : 0;
}

void app_notify_extend(unsigned seconds, const char *status)
{
	sd_notifyf(0, "EXTEND_TIMEOUT_USEC=%llu\nSTATUS=%s",
		   (unsigned long long)seconds * 1000000ull, status);
}

void app_notify_stopping(void)
{
	sd_notify(0, "STOPPING=1\nSTATUS=stopping");
}

static void wd_tick(lws_sorted_usec_list_t *sul)
{
	(void)sul;
	sd_notify(0, "WATCHDOG=1");
	lws_sul_schedule(wd_ctx, 0, &wd_sul, wd_tick, (lws_usec_t)wd_every_us);
}

uint64_t app_notify_watchdog_start(struct lws_context *ctx)
{
	uint64_t usec = 0;

	/* > 0 only when WATCHDOG_USEC is set (and WATCHDOG_PID, if set, is us). */
	if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0)
		return 0;
	wd_ctx = ctx;
	wd_every_us = usec / 3 ? usec / 3 : 1;
	memset(&wd_sul, 0, sizeof(wd_sul));
	sd_notify(0, "WATCHDOG=1");
	lws_sul_schedule(ctx, 0, &wd_sul, wd_tick, (lws_usec_t)wd_every_us);
	app_info("watchdog_armed", "interval_us=%llu ping_us=%llu", (unsigned long long)usec,
		 (unsigned long long)wd_every_us);
	return wd_every_us;
}

void app_notify_watchdog_stop(void)
{
	if (wd_ctx)
		lws_sul_cancel(&wd_sul);
	wd_ctx = NULL;
}
