/*
 * log.c - structured logging: one line per event, key=value, to stderr so
 * journald keeps it. Callers pass the event name and a printf-style list of
 * key=value pairs; values with spaces should be quoted by the caller.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "appliance/app.h"

static enum app_log_level min_level = APP_LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void app_log_set_level(enum app_log_level lvl)
{
	min_level = lvl;
}

int app_log_level_parse(const char *s, enum app_log_level *out)
{
	for (int i = 0; i < 4; i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum app_log_level)i;
			return 0;
		}
	}
	return APP_EINVAL;
}

static void vlog(enum app_log_level lvl, const char *msg, const char *fmt, va_list ap)
{
	char line[2048];
	struct timespec ts;
	struct tm tm;
	int n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof(line),
		     "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s event=%s ",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		     tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, level_names[lvl], msg);
	if (n < 0 || (size_t)n >= sizeof(line))
		n = 0;
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	/* One write per line so concurrent threads do not interleave. */
	fprintf(stderr, "%s\n", line);
}

void app_log(enum app_log_level lvl, const char *msg, const char *fmt, ...)
{
	va_list ap;

	if (lvl < min_level)
		return;
	va_start(ap, fmt);
	vlog(lvl, msg, fmt, ap);
	va_end(ap);
}

void app__panic(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "level=error event=panic at=%s:%d detail=\"", file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\"\n");
	abort();
}
