/*
 * test_outbox_tips.c - the posted and finalized heights the outbox reports,
 * from its journal: a failed batch stops both (its heights are not on
 * chain, whatever batches after it are), and it halts the outbox again at
 * every start, so that no later batch is queued past it.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <sqlite3.h>

#include "l1bridge/l1.h"
#include "tests/l1bridge/helpers.h"

static char path[64];

static struct l1_outbox *reopen(void)
{
	static const uint8_t key[32] = {[31] = 1};
	struct l1_outbox_opts o = {.chain_id = 31337, .key = key, .confirmations = 1,
				   .bump_after_blocks = 3, .max_fee_wei = 1000000000000ull,
				   .path = path};
	struct l1_outbox *ob;
	char err[160];

	cr_assert_eq(l1_outbox_open(&ob, &o, err, sizeof(err)), 0, "%s", err);
	return ob;
}

static void sql(const char *stmt)
{
	sqlite3 *db;

	cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
	cr_assert_eq(sqlite3_exec(db, stmt, NULL, NULL, NULL), SQLITE_OK, "%s",
		     sqlite3_errmsg(db));
	sqlite3_close(db);
}

static void cleanup(void)
{
	l1t_unlink_db(path);
}

Test(outbox_tips, a_failed_batch_stops_the_tips_and_halts_every_start, .fini = cleanup)
{
	struct l1_outbox_info info;
	struct l1_outbox *ob;
	size_t n = 0;

	l1t_temp_path(path, sizeof(path), "mezz-obtips");
	l1_outbox_close(reopen()); /* the schema */
	/* batches 0 and 2 posted, 1 failed between them (a revert: the
	 * contract's poster changed, gas ran out) */
	sql("INSERT INTO jobs(kind, state, batch_index, from_h, to_h, calldata, created_ms) VALUES"
	    " (1, 5, 0, 1, 3, x'', 0), (1, 6, 1, 4, 6, x'', 0), (1, 4, 2, 7, 9, x'', 0);"
	    "UPDATE jobs SET error = 'estimate reverted: NotPoster' WHERE batch_index = 1;");
	ob = reopen();
	l1_outbox_get_info(ob, &info);
	cr_assert_eq(info.posted_to, 3, "posted to %llu past the failed batch",
		     (unsigned long long)info.posted_to);
	cr_assert_eq(info.finalized_to, 3);
	cr_assert_eq(info.status, L1_OB_HALTED);
	cr_assert(strstr(info.last_error, "batch 1 (heights 4..6) failed: estimate reverted"),
		  "%s", info.last_error);
	l1_outbox_close(ob);

	/* queued again (`mezz l1 retry`): no longer halted */
	cr_assert_eq(l1_outbox_retry_failed(path, NULL, NULL, &n), 0);
	cr_assert_eq(n, 1, "one failed batch");
	ob = reopen();
	l1_outbox_get_info(ob, &info);
	cr_assert_neq(info.status, L1_OB_HALTED);
	cr_assert_eq(info.posted_to, 3);
	l1_outbox_close(ob);

	/* the same journal with batch 1 posted: everything up to 9 */
	sql("UPDATE jobs SET state = 4, error = NULL WHERE batch_index = 1");
	ob = reopen();
	l1_outbox_get_info(ob, &info);
	cr_assert_eq(info.posted_to, 9);
	cr_assert_eq(info.finalized_to, 3);
	cr_assert_neq(info.status, L1_OB_HALTED);
	l1_outbox_close(ob);
}
