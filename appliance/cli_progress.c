/*
 * cli_progress.c - the terminal progress line shared by the CLI's long
 * commands (da scrub/repair, backup, restore), and the small helpers every
 * command uses (failing, printing rows, parsing numbers). See cli.h.
 */
#include <ctype.h>
#include <errno.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "appliance/cli.h"

void app_progress_start(struct app_progress *p, const char *what, const char *unit,
			uint64_t total)
{
	p->tty = isatty(STDERR_FILENO);
	p->what = what;
	p->unit = unit;
	p->total = total;
	p->done = p->bytes = 0;
	p->t0 = app_now_ns();
	p->last = 0;
}

void app_progress_show(struct app_progress *p, int final)
{
	uint64_t now = app_now_ns();
	double secs, rate, left;

	if (!p->tty || (!final && now - p->last < 200000000ull))
		return;
	p->last = now;
	secs = (double)(now - p->t0) / 1e9;
	rate = secs > 0 ? (double)p->bytes / secs : 0;
	left = p->done && p->total > p->done
		       ? secs * (double)(p->total - p->done) / (double)p->done
		       : 0;
	fprintf(stderr, "\r%s: %llu/%llu %s  %.1f MiB  %.1f MiB/s  %.0f s left   %s", p->what,
		(unsigned long long)p->done, (unsigned long long)p->total, p->unit,
		(double)p->bytes / 1048576.0, rate / 1048576.0, left, final ? "\n" : "");
	fflush(stderr);
}

void app_progress_clear(struct app_progress *p)
{
	if (p->tty && p->last) {
		fputs("\r\033[K", stderr);
		p->last = 0; /* the next app_progress_show draws it again at once */
	}
}

int app_cli_fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "mezz: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	return 1;
}

int app_cli_print_rows(struct app_store *s, const char *sql)
{
	sqlite3_stmt *st;
	int rc, ret = 0;

	if (sqlite3_prepare_v2(app_store_db(s), sql, -1, &st, NULL) != SQLITE_OK)
		return app_cli_fail("query failed: %s", sqlite3_errmsg(app_store_db(s)));
	for (int i = 0; i < sqlite3_column_count(st); i++)
		printf("%s%s", i ? "\t" : "", sqlite3_column_name(st, i));
	printf("\n");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		for (int i = 0; i < sqlite3_column_count(st); i++) {
			const unsigned char *t = sqlite3_column_text(st, i);

			printf("%s%s", i ? "\t" : "", t ? (const char *)t : "-");
		}
		printf("\n");
	}
	/* Anything but DONE (a damaged page, an I/O error) means the list
	 * above is short: say so and fail rather than exit 0 on part of it. */
	if (rc != SQLITE_DONE) {
		fflush(stdout);
		ret = app_cli_fail("query failed after the rows above: %s",
				   sqlite3_errmsg(app_store_db(s)));
	}
	sqlite3_finalize(st);
	return ret;
}

struct app_store *app_cli_store_open(const char *data_dir, int readonly, int create)
{
	struct app_store *s;
	char path[1100], err[256];

	snprintf(path, sizeof(path), "%s/mezzanine.db", data_dir);
	if (!create && access(path, F_OK)) {
		if (errno == ENOENT)
			app_cli_fail("no database in %s (is --data-dir right? `mezz tenant create` "
				     "starts one in a new data directory)", data_dir);
		else
			app_cli_fail("cannot open the database in %s: %s", data_dir, strerror(errno));
		return NULL;
	}
	if (app_store_open(&s, data_dir, readonly, err, sizeof(err))) {
		app_cli_fail("cannot open the database in %s: %s", data_dir, err);
		return NULL;
	}
	return s;
}

int app_cli_parse_u64(const char *v, uint64_t *out)
{
	unsigned long long n;
	int base = 10;
	char *end;

	if (v[0] == '0' && (v[1] == 'x' || v[1] == 'X')) {
		base = 16;
		v += 2;
	}
	/* Only digits of the base: strtoull alone would take blanks, a sign
	 * (negating the value) and, in base 16, a second "0x". */
	if (!*v)
		return -1;
	for (const char *p = v; *p; p++)
		if (base == 16 ? !isxdigit((unsigned char)*p) : !isdigit((unsigned char)*p))
			return -1;
	errno = 0;
	n = strtoull(v, &end, base);
	if (errno || *end)
		return -1;
	*out = n;
	return 0;
}
