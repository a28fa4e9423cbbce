/*
 * cli_rights.c - `mezz rights ...`: grant proposer-ordered slots and show
 * grants and misses, on the data directory (like `mezz namespace`). A
 * running daemon picks a grant up at its next slot boundary.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/cli.h"
#include "l1bridge/l1.h"

/* No check that --from is in the future: the CLI may not share the
 * daemon's sequencer.slot_ms. A grant for a slot already open or past has
 * no effect on it (the daemon loads grants at slot boundaries). */
static int grant(struct app_store *s, int argc, char **argv)
{
	uint64_t from = 0, to = 0, rollups[256];
	size_t n = 0, alen = 0;
	uint8_t winner[20];
	const char *wtext = "";
	int have_from = 0, have_to = 0, have_w = 0, rc;

	for (int i = 0; i < argc; i += 2) {
		if (i + 1 >= argc)
			return app_cli_fail("rights grant: %s needs a value", argv[i]);
		if (!strcmp(argv[i], "--from")) {
			have_from = !app_cli_parse_u64(argv[i + 1], &from);
		} else if (!strcmp(argv[i], "--to")) {
			have_to = !app_cli_parse_u64(argv[i + 1], &to);
		} else if (!strcmp(argv[i], "--winner")) {
			const char *h = wtext = argv[i + 1];

			have_w = strlen(h) == 42 && h[0] == '0' && (h[1] == 'x' || h[1] == 'X') &&
				 !l1_hex_decode(winner, 20, &alen, h, 42) && alen == 20;
		} else if (!strcmp(argv[i], "--rollups")) {
			char *list = strdup(argv[i + 1]), *save = NULL, *tok;

			if (!list)
				return app_cli_fail("out of memory");
			for (tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
				if (n == 256 || app_cli_parse_u64(tok, &rollups[n])) {
					free(list);
					return app_cli_fail("--rollups: '%s' is not a chain id (at most "
							    "256, comma-separated)", tok);
				}
				n++;
			}
			free(list);
		} else {
			return app_cli_fail("rights grant: unknown option '%s'", argv[i]);
		}
	}
	if (!have_from || !have_to || !have_w || !n)
		return app_cli_fail("usage: mezz rights grant --from SLOT --to SLOT "
				    "--rollups ID[,ID...] --winner 0xADDRESS (40 hex digits)");
	rc = app_rights_grant(s, from, to, rollups, n, winner);
	if (rc == APP_EEXIST)
		return app_cli_fail("a rollup already has a grant overlapping slots %llu..%llu; "
				    "nothing was granted", (unsigned long long)from,
				    (unsigned long long)to);
	if (rc == APP_ENOTFOUND)
		return app_cli_fail("a rollup is not a namespace on this appliance (see mezz "
				    "namespace list); nothing was granted");
	if (rc == APP_EINVAL)
		return app_cli_fail("invalid grant: --from must be <= --to, rollups distinct and "
				    "non-zero, the winner not the zero address");
	if (rc)
		return app_cli_fail("granting: %s (%s)", app_strerror(rc),
				    sqlite3_errmsg(app_store_db(s)));
	printf("granted slots %llu..%llu of %zu rollup(s) to %s\n", (unsigned long long)from,
	       (unsigned long long)to, n, wtext);
	return 0;
}

int app_cli_rights(const struct app_config *cfg, int argc, char **argv)
{
	struct app_store *s;
	int rc;

	if (argc < 1 || (strcmp(argv[0], "grant") && strcmp(argv[0], "list") &&
			 strcmp(argv[0], "misses")))
		return app_cli_fail("usage: mezz rights grant --from SLOT --to SLOT --rollups ID,... "
				    "--winner 0xADDR | mezz rights list | mezz rights misses");
	if (!(s = app_cli_store_open(cfg->data_dir, 0, 0)))
		return 1;
	if (!strcmp(argv[0], "grant"))
		rc = grant(s, argc - 1, argv + 1);
	else if (!strcmp(argv[0], "list"))
		rc = app_cli_print_rows(s, "SELECT from_slot, to_slot, rollup, '0x' || lower(hex(winner))"
				   " AS winner FROM grants ORDER BY from_slot, rollup");
	else
		rc = app_cli_print_rows(s, "SELECT slot, '0x' || lower(hex(winner)) AS winner, reason, txs,"
				   " at_ms FROM misses ORDER BY id");
	app_store_close(s);
	return rc;
}
