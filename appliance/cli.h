/*
 * cli.h - pieces shared by the operator CLI's commands (internal to mezz):
 * the terminal progress line, a bounded WebSocket client, and the command
 * entry points that live outside mezz.c. None of this runs in the daemon.
 */
#ifndef MEZZ_CLI_H
#define MEZZ_CLI_H

#include <stddef.h>
#include <stdint.h>

#include "appliance/app.h"

/* ---- progress line (cli_progress.c) ------------------------------------ */

/*
 * One self-overwriting line on stderr for long operations, redrawn at most
 * five times a second and only when stderr is a terminal:
 *     backup: 1200/4096 pages  4.7 MiB  23.1 MiB/s  1 s left
 * The caller fills what, unit and total, calls app_progress_start, updates
 * done and bytes, calls app_progress_show(p, 0) in its loop and
 * app_progress_show(p, 1) once at the end (which ends the line).
 */
struct app_progress {
	int tty;
	const char *what; /* "scrub", "backup" */
	const char *unit; /* "blocks", "pages", "files" */
	uint64_t total, done, bytes;
	uint64_t t0, last;
};

void app_progress_start(struct app_progress *p, const char *what, const char *unit,
			uint64_t total);
void app_progress_show(struct app_progress *p, int final);
/* Erase a drawn progress line (stderr) before a line goes to stdout, so the
 * two do not share one screen line; the next show draws it again. */
void app_progress_clear(struct app_progress *p);

/* ---- WebSocket client (wsclient.c) ------------------------------------- */

/*
 * A minimal RFC 6455 client for ws:// and wss:// (OpenSSL, peer verified
 * against the system CAs and the host name). Bounded: the handshake answer
 * is at most 8 KiB, a message at most max_message bytes (longer ones fail
 * with -EMSGSIZE before anything is allocated for them). Pings are
 * answered inside app_ws_recv. One thread per client.
 *
 * app_ws_connect takes an http(s):// or ws(s):// URL; bearer may be NULL.
 * The client is freed by app_ws_close (NULL-safe), which sends a close
 * frame when the connection is still open.
 */
struct app_ws;

int app_ws_connect(struct app_ws **out, const char *url, const char *bearer,
		   size_t max_message, char *err, size_t errlen);
int app_ws_send_text(struct app_ws *ws, const char *text, size_t len);
/*
 * Waits for the next text or binary message. On 0, *msg (malloc'd,
 * NUL-terminated, owned by the caller) holds *len bytes. Returns 1 when
 * *stop became non-zero while waiting (poll wakes every 200 ms), -ECONNRESET
 * when the server closed, -EMSGSIZE for an oversized message, -EPROTO for a
 * protocol violation, or another -errno.
 */
int app_ws_recv(struct app_ws *ws, char **msg, size_t *len, volatile int *stop);
/* The server's close code and reason ("1008: send queue full; ..."), or "". */
const char *app_ws_close_reason(const struct app_ws *ws);
void app_ws_close(struct app_ws *ws);

/* ---- shared helpers (cli_progress.c, cli_ops.c) ----------------------- */

/* "mezz: <message>" on stderr; returns 1 (the failing exit code). */
int app_cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print the rows of `sql` on s, tab-separated under a header line, NULL as "-".
 * 0, or 1 after printing why the query failed (at prepare or at any step:
 * a damaged database is an error, not a short list). */
struct app_store;
int app_cli_print_rows(struct app_store *s, const char *sql);
/*
 * Open data_dir's database for a command (readonly: a read-only
 * connection). Only `tenant create`, the first step on a new data
 * directory, passes create = 1: for every other command a missing
 * database means a wrong --data-dir, reported as "no database in DIR"
 * with nothing created there. Close with app_store_close; NULL after
 * printing why.
 */
struct app_store *app_cli_store_open(const char *data_dir, int readonly, int create);
/*
 * The one parser of the CLI's unsigned arguments (heights, slots, chain and
 * key ids, rates): decimal, or hex with an explicit 0x/0X prefix; never
 * octal (so "010" is ten). No sign, no blanks, nothing after the digits, no
 * overflow. 0 with *out set, or -1.
 */
int app_cli_parse_u64(const char *v, uint64_t *out);

/* An HTTP answer body, NUL-terminated; at most 16 MiB (too_big). Caller frees p. */
struct app_cli_body {
	char *p;
	size_t len;
	int too_big;
};
/* GET (post == NULL) or POST JSON, 10 s timeout. The HTTP status, or -1
 * with the reason printed. */
long app_cli_http(const char *url, const char *post, struct app_cli_body *b);

/* ---- commands ---------------------------------------------------------- */

/* Every command returns the process exit code: 0 ok, 1 failed, 2 usage. */
int app_cli_status(const struct app_config *cfg, const char *url);
int app_cli_tail(const char *url, int argc, char **argv);
int app_cli_backup(const struct app_config *cfg, int argc, char **argv);
/* data_dir_given: mezz had --data-dir; restore writes only into a data
 * directory named on the command line, never the configured default. */
int app_cli_restore(struct app_config *cfg, int data_dir_given, int argc, char **argv);

#endif /* MEZZ_CLI_H */
