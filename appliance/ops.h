/*
 * ops.h - the operations layer of the daemon (internal to the appliance):
 * systemd notification and watchdog (notify.c), health (health.c), metrics
 * (metrics.c). Everything here is safe to call from any thread unless a
 * function says otherwise.
 */
#ifndef MEZZ_OPS_H
#define MEZZ_OPS_H

#include <stddef.h>
#include <stdint.h>

struct lws_context;

/* ---- systemd (notify.c) ------------------------------------------------ */

/*
 * sd_notify wrappers. Without NOTIFY_SOCKET (not started by systemd) they do
 * nothing and return 0. app_notify_ready must be called only once the
 * database is open and every listener is bound: systemd starts dependants
 * the moment it arrives.
 */
int app_notify_ready(const char *status);
void app_notify_stopping(void);
/*
 * Arms the watchdog on the lws thread: when systemd set WATCHDOG_USEC (the
 * unit's WatchdogSec=), a timer on ctx's event loop sends WATCHDOG=1 every
 * third of that interval. The ping comes from the loop itself, so a loop
 * that stops turning stops the pings and systemd restarts the daemon.
 * Returns the ping interval in microseconds, or 0 when the watchdog is off.
 * Call on the lws thread; app_notify_watchdog_stop before destroying ctx.
 */
uint64_t app_notify_watchdog_start(struct lws_context *ctx);
void app_notify_watchdog_stop(void);

#endif /* MEZZ_OPS_H */
