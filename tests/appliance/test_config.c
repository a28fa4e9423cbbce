/* Config table, defaults, parsing errors with line numbers, and the check
 * that firmware-config/mezzanine.conf and the table agree key for key. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "appliance/app.h"

static char *write_tmp(const char *text)
{
	static char path[64];
	int fd;

	snprintf(path, sizeof(path), "/tmp/mezz-cfg-XXXXXX");
	fd = mkstemp(path);
	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

Test(config, defaults_match_table)
{
	struct app_config c;

	app_config_defaults(&c);
	cr_assert_str_eq(c.listen_addr, "127.0.0.1");
	cr_assert_eq(c.listen_port, 9545);
	cr_assert_eq(c.slot_ms, 250);
	cr_assert_eq(c.max_tx_bytes, 131072);
	cr_assert_str_eq(c.data_dir, "/var/lib/mezzanine");
	cr_assert_str_eq(c.log_level, "info");
}

/* Every key in the shipped file is in the table with the same default, and
 * every key in the table is in the file. */
Test(config, default_file_matches_table)
{
	FILE *f = fopen("firmware-config/mezzanine.conf", "r");
	char line[512], section[64] = "";
	int seen[64] = {0};
	struct app_config c;
	char err[4096];

	cr_assert_not_null(f, "run from the repository root");
	cr_assert(app_cfg_table_len < 64);
	while (fgets(line, sizeof(line), f)) {
		char key[64], val[256] = "";
		size_t i;

		if (line[0] == '#' || line[0] == ';' || line[0] == '\n')
			continue;
		if (sscanf(line, "[%63[^]]]", section) == 1)
			continue;
		val[0] = 0; /* "key =" is an empty value */
		cr_assert_geq(sscanf(line, "%63s = %255s", key, val), 1, "bad line: %s", line);
		cr_assert(strstr(line, " ="), "bad line: %s", line);
		for (i = 0; i < app_cfg_table_len; i++)
			if (!strcmp(app_cfg_table[i].section, section) &&
			    !strcmp(app_cfg_table[i].name, key))
				break;
		cr_assert_lt(i, app_cfg_table_len, "%s.%s is in the file but not the table",
			     section, key);
		cr_assert_str_eq(val, app_cfg_table[i].dflt, "%s.%s: file says %s, table %s",
				 section, key, val, app_cfg_table[i].dflt);
		seen[i]++;
	}
	fclose(f);
	for (size_t i = 0; i < app_cfg_table_len; i++)
		cr_assert_eq(seen[i], 1, "%s.%s appears %d times in the file", app_cfg_table[i].section,
			     app_cfg_table[i].name, seen[i]);
	app_config_defaults(&c);
	cr_assert_eq(app_config_load(&c, "firmware-config/mezzanine.conf", err, sizeof(err)), 0,
		     "%s", err);
}

Test(config, every_error_reported_with_its_line)
{
	struct app_config c;
	char err[4096];
	const char *p = write_tmp("[server]\n"
				  "listen = nonsense\n"	 /* line 2 */
				  "max_tx_bytes = 0\n"	 /* line 3: below min */
				  "bogus = 1\n"		 /* line 4: unknown */
				  "[sequencer]\n"
				  "slot_ms = fast\n"	 /* line 6: not int */
				  "[log]\n"
				  "level = loud\n");	 /* line 8 */

	app_config_defaults(&c);
	cr_assert_eq(app_config_load(&c, p, err, sizeof(err)), 5, "%s", err);
	cr_assert(strstr(err, ":2: "), "%s", err);
	cr_assert(strstr(err, ":3: server.max_tx_bytes: 0 is out of range"), "%s", err);
	cr_assert(strstr(err, ":4: unknown key 'bogus'"), "%s", err);
	cr_assert(strstr(err, ":6: sequencer.slot_ms: 'fast' is not an integer"), "%s", err);
	cr_assert(strstr(err, ":8: "), "%s", err);
	unlink(p);
}

Test(config, values_applied)
{
	struct app_config c;
	char err[1024];
	const char *p = write_tmp("[server]\nlisten = 0.0.0.0:19000\n[sequencer]\nslot_ms=100\n");

	app_config_defaults(&c);
	cr_assert_eq(app_config_load(&c, p, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(c.listen_addr, "0.0.0.0");
	cr_assert_eq(c.listen_port, 19000);
	cr_assert_eq(c.slot_ms, 100);
	unlink(p);
}

Test(config, da_shard_count_checked_across_keys)
{
	struct app_config c;
	char err[1024];
	const char *p = write_tmp("[da]\nk = 200\n\nm = 100\n");

	int rc;

	app_config_defaults(&c);
	rc = app_config_load(&c, p, err, sizeof(err));
	unlink(p);
	cr_assert_eq(rc, 1, "%s", err);
	cr_assert(strstr(err, ":4: da.k + da.m = 200 + 100 = 300"), "%s", err);
	app_config_defaults(&c);
	cr_assert_eq(app_config_set(&c, "da.k=255", err, sizeof(err)), 0);
	cr_assert_eq(app_config_validate(&c, err, sizeof(err)), APP_ECONFIG);
	cr_assert_eq(app_config_set(&c, "da.m=1", err, sizeof(err)), 0);
	cr_assert_eq(app_config_validate(&c, err, sizeof(err)), 0, "%s", err);
}

Test(config, da_dirs_split_and_checked)
{
	struct app_config c;
	char err[1024], **d;
	size_t n;

	app_config_defaults(&c);
	snprintf(c.data_dir, sizeof(c.data_dir), "/srv/mz");
	cr_assert_eq(app_config_da_dirs(&c, &d, &n), 0);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(d[0], "/srv/mz/shards");
	app_config_dirs_free(d, n);
	free(d);
	cr_assert_eq(app_config_set(&c, "storage.da_dirs= /a , /b,/c ", err, sizeof(err)), 0, "%s",
		     err);
	cr_assert_eq(app_config_da_dirs(&c, &d, &n), 0);
	cr_assert_eq(n, 3);
	cr_assert_str_eq(d[0], "/a");
	cr_assert_str_eq(d[1], "/b");
	cr_assert_str_eq(d[2], "/c");
	app_config_dirs_free(d, n);
	free(d);
	cr_assert_eq(app_config_set(&c, "storage.da_dirs=/a,,/b", err, sizeof(err)), APP_ECONFIG);
	cr_assert(strstr(err, "entry 2 is empty"), "%s", err);
	cr_assert_eq(app_config_set(&c, "storage.da_dirs=/a,/b,/a", err, sizeof(err)), APP_ECONFIG);
	cr_assert(strstr(err, "'/a' is listed twice"), "%s", err);
}

Test(config, syntax_error_has_line)
{
	struct app_config c;
	char err[1024];
	const char *p = write_tmp("[server]\nthis line has no equals sign\n");

	app_config_defaults(&c);
	cr_assert_eq(app_config_load(&c, p, err, sizeof(err)), 1);
	cr_assert(strstr(err, ":2: syntax error"), "%s", err);
	unlink(p);
}

/* Every syntax error is reported, not only the first one inih stops at,
 * together with the value errors around them, in line order. */
Test(config, every_syntax_error_reported)
{
	struct app_config c;
	char err[2048];
	const char *p = write_tmp("[server]\n"
				  "no equals here\n"	   /* line 2 */
				  "max_tx_bytes = 0\n"	   /* line 3 */
				  "[broken\n"		   /* line 4 */
				  "= 5\n"		   /* line 5 */
				  "[sequencer]\n"
				  "slot_ms fast\n"	   /* line 7 */
				  "slot_ms = 100\n");

	app_config_defaults(&c);
	cr_assert_eq(app_config_load(&c, p, err, sizeof(err)), 5, "%s", err);
	cr_assert(strstr(err, ":2: syntax error"), "%s", err);
	cr_assert(strstr(err, ":3: server.max_tx_bytes"), "%s", err);
	cr_assert(strstr(err, ":4: syntax error"), "%s", err);
	cr_assert(strstr(err, ":5: syntax error"), "%s", err);
	cr_assert(strstr(err, ":7: syntax error"), "%s", err);
	cr_assert(strstr(err, ":2:") < strstr(err, ":7:"), "errors out of line order: %s", err);
	unlink(p);
}

Test(config, missing_file_is_errno)
{
	struct app_config c;
	char err[64];

	app_config_defaults(&c);
	cr_assert_lt(app_config_load(&c, "/nonexistent/mezz.conf", err, sizeof(err)), 0);
}

Test(config, set_overrides)
{
	struct app_config c;
	char err[256];

	app_config_defaults(&c);
	cr_assert_eq(app_config_set(&c, "sequencer.slot_ms=500", err, sizeof(err)), 0);
	cr_assert_eq(c.slot_ms, 500);
	cr_assert_eq(app_config_set(&c, "sequencer.slot_ms=5", err, sizeof(err)), APP_ECONFIG);
	cr_assert(strstr(err, "out of range"), "%s", err);
	cr_assert_eq(app_config_set(&c, "nope", err, sizeof(err)), APP_ECONFIG);
	cr_assert_eq(app_config_set(&c, "a.b=1", err, sizeof(err)), APP_ECONFIG);
	cr_assert(strstr(err, "unknown key"), "%s", err);
}

/* With L1, the improvement lead must outlast the draw block and its
 * confirmations, or the winner's grant (made at settlement) comes after its
 * window began: the defaults hold; one slot less, or one confirmation more,
 * is refused with the lead needed. Without L1 (the seed is a local block)
 * the rule does not apply. */
Test(config, rights_lead_covers_the_draw_block_with_l1)
{
	struct app_config c;
	char err[1024];
	const char *l1[] = {"l1.rpc_urls=http://127.0.0.1:8545", "l1.inbox=0x" "00112233445566778899aabbccddeeff00112233",
			    "l1.keystore=/nonexistent/key.json", "rights.enabled=1"};

	app_config_defaults(&c);
	for (size_t i = 0; i < 4; i++)
		cr_assert_eq(app_config_set(&c, l1[i], err, sizeof(err)), 0, "%s: %s", l1[i], err);
	cr_assert_eq(app_config_validate(&c, err, sizeof(err)), 0, "defaults must hold: %s", err);
	cr_assert_eq(c.rights_improve_lead * c.slot_ms, 25000); /* 2 blocks of 12 s = 24000 */

	cr_assert_eq(app_config_set(&c, "rights.improve_lead=96", err, sizeof(err)), 0);
	cr_assert_eq(app_config_validate(&c, err, sizeof(err)), 0, "%s", err); /* 24000 */
	cr_assert_eq(app_config_set(&c, "rights.improve_lead=95", err, sizeof(err)), 0);
	cr_assert_eq(app_config_validate(&c, err, sizeof(err)), APP_ECONFIG);
	cr_assert(strstr(err, "rights.improve_lead (95 slots of 250 ms) must cover the draw block "
			      "and l1.confirmations (1) at rights.l1_block_ms (12000): at least "
			      "24000 ms, i.e. 96 slots"), "%s", err);

	app_config_defaults(&c);
	for (size_t i = 0; i < 4; i++)
		cr_assert_eq(app_config_set(&c, l1[i], err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(app_config_set(&c, "l1.confirmations=2", err, sizeof(err)), 0);
	cr_assert_eq(app_config_validate(&c, err, sizeof(err)), APP_ECONFIG);
	cr_assert(strstr(err, "at least 36000 ms, i.e. 144 slots"), "%s", err);

	/* the same lead without L1 is no error */
	cr_assert_eq(app_config_set(&c, "l1.rpc_urls=", err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(app_config_validate(&c, err, sizeof(err)), 0, "%s", err);
}

/* [rights] rules across keys hold only when sales are on; each broken one
 * is named, and a file names the line of the later key involved. */
Test(config, rights_rules_checked_across_keys)
{
	static const struct {
		const char *set, *says;
	} bad[] = {
		{"rights.improve_lead=120", "rights.improve_lead (120) must be below rights.close_lead"},
		{"rights.ahead_slots=120", "rights.ahead_slots (120) must be above"},
		{"rights.ahead_slots=361", "at most rights.window_slots + rights.close_lead (360)"},
		{"rights.target=1000", "rights.target (1000) must be below rights.cap (1000)"},
		{"rights.floor_gwei=1001", "rights.floor_gwei (1001) must not be above"},
	};
	struct app_config c;
	char err[1024];
	const char *p;

	app_config_defaults(&c);
	cr_assert_eq(app_config_validate(&c, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(app_config_set(&c, "rights.enabled=1", err, sizeof(err)), 0);
	cr_assert_eq(app_config_validate(&c, err, sizeof(err)), 0, "defaults must hold: %s", err);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		app_config_defaults(&c);
		cr_assert_eq(app_config_set(&c, bad[i].set, err, sizeof(err)), 0, "%s", err);
		cr_assert_eq(app_config_validate(&c, err, sizeof(err)), 0,
			     "%s with sales off is no error", bad[i].set);
		cr_assert_eq(app_config_set(&c, "rights.enabled=1", err, sizeof(err)), 0);
		cr_assert_eq(app_config_validate(&c, err, sizeof(err)), APP_ECONFIG, "%s", bad[i].set);
		cr_assert(strstr(err, bad[i].says), "%s: %s", bad[i].set, err);
	}
	p = write_tmp("[rights]\nenabled = 1\n\ncap = 10\n");
	app_config_defaults(&c);
	cr_assert_eq(app_config_load(&c, p, err, sizeof(err)), 1, "%s", err);
	cr_assert(strstr(err, ":4: rights.target (500) must be below rights.cap (10)"), "%s", err);
	unlink(p);
}
