/*
 * test_outbox_sales.c - queuing ticket purchases and settlements in the
 * outbox: what is refused, what a reader sees, and that the stored calldata
 * is the wei-converted settlement. (Posting them is the same state machine
 * as batches and state roots; that path is not exercised here.)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <sqlite3.h>

#include "l1bridge/l1.h"
#include "tests/l1bridge/helpers.h"
#include "sequencer/seq.h"

static char path[64];

static struct l1_outbox *open_outbox(void)
{
	static const uint8_t key[32] = {[31] = 1};
	struct l1_outbox_opts o = {.chain_id = 31337, .key = key, .confirmations = 1,
				   .bump_after_blocks = 3, .max_fee_wei = 1000000000000ull};
	struct l1_outbox *ob;
	char err[160];

	l1t_temp_path(path, sizeof(path), "mezz-obsales");
	o.path = path;
	cr_assert_eq(l1_outbox_open(&ob, &o, err, sizeof(err)), 0, "%s", err);
	return ob;
}

static void cleanup(void)
{
	l1t_unlink_db(path);
}

/* The calldata column of the newest job. */
static size_t last_calldata(uint8_t *out, size_t cap)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	size_t n;

	cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
	cr_assert_eq(sqlite3_prepare_v2(db, "SELECT calldata FROM jobs ORDER BY id DESC LIMIT 1",
					-1, &st, NULL), SQLITE_OK);
	cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
	n = (size_t)sqlite3_column_bytes(st, 0);
	cr_assert(n <= cap);
	memcpy(out, sqlite3_column_blob(st, 0), n);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

Test(outbox_sales, queue_purchases_then_settlement, .fini = cleanup)
{
	struct l1_outbox *ob = open_outbox();
	struct l1_outbox_reader *r;
	struct l1_job_view v;
	uint64_t ids[2] = {10, 20}, ids2[1] = {20};
	struct l1_purchase p[2] = {{7, ids, 2, 3, 10, 1}, {7, ids2, 1, 2, 10, 1}};
	uint8_t sigs[2][65] = {{1}, {2}}, got[4096], want[4096];
	struct seq_settle_buyer b[2] = {{.addr = {0x11}, .paid = 30, .charged = 30, .refund = 0},
					{.addr = {0x22}, .paid = 20, .charged = 0, .refund = 20}};
	struct seq_settle_credit c[2] = {{.rollup = 10, .amount = 18}, {.rollup = 20, .amount = 9}};
	struct seq_settlement st = {.sale_id = 7, .price = 10, .revenue = 30, .burn = 3,
				    .buyers = b, .n_buyers = 2, .credits = c, .n_credits = 2};
	struct l1_settle_buyer lb[2];
	struct l1_settle_credit lc[2];
	struct l1_inbox_settlement is = {.sale_id = 7, .buyers = lb, .n_buyers = 2,
					 .credits = lc, .n_credits = 2};
	size_t n, wn;

	/* refused: empty, another sale's purchase in the list */
	cr_assert_eq(l1_outbox_queue_purchases(ob, 7, p, sigs, 0), L1_EINVAL);
	cr_assert_eq(l1_outbox_queue_purchases(ob, 8, p, sigs, 2), L1_EINVAL);
	cr_assert_eq(l1_outbox_queue_purchases(ob, 7, p, sigs, 2), 0);
	cr_assert_eq(l1_outbox_queue_purchases(ob, 7, p + 1, sigs + 1, 1), 0);
	n = last_calldata(got, sizeof(got));
	cr_assert_eq(l1_inbox_post_purchases_calldata(want, sizeof(want), &wn, 7, p + 1, sigs + 1,
						      1), 0);
	cr_assert_eq(n, wn);
	cr_assert_eq(memcmp(got, want, n), 0);

	/* settlements that would revert on chain are refused here */
	st.burn = 4;
	cr_assert_eq(l1_outbox_queue_settlement(ob, &st), L1_EINVAL);
	st.burn = 3;
	c[0].rollup = 30;
	cr_assert_eq(l1_outbox_queue_settlement(ob, &st), L1_EINVAL);
	c[0].rollup = 10;
	b[0].addr[0] = 0x33;
	cr_assert_eq(l1_outbox_queue_settlement(ob, &st), L1_EINVAL);
	b[0].addr[0] = 0x11;
	cr_assert_eq(l1_outbox_queue_settlement(ob, &st), 0);
	/* the stored calldata carries wei */
	for (int i = 0; i < 2; i++) {
		memcpy(lb[i].addr, b[i].addr, 20);
		l1_u256_from_gwei(lb[i].charged, b[i].charged);
		l1_u256_from_gwei(lb[i].refund, b[i].refund);
		lc[i].rollup_id = c[i].rollup;
		l1_u256_from_gwei(lc[i].amount, c[i].amount);
	}
	l1_u256_from_gwei(is.burn, 3);
	n = last_calldata(got, sizeof(got));
	cr_assert_eq(l1_inbox_settle_sale_calldata(want, sizeof(want), &wn, &is), 0);
	cr_assert_eq(n, wn);
	cr_assert_eq(memcmp(got, want, n), 0);
	/* once settled: no second settlement, no more purchases */
	cr_assert_eq(l1_outbox_queue_settlement(ob, &st), L1_EDUP);
	cr_assert_eq(l1_outbox_queue_purchases(ob, 7, p, sigs, 1), L1_EDUP);

	cr_assert_eq(l1_outbox_reader_open(&r, path), 0);
	cr_assert_eq(l1_outbox_reader_purchases(r, 7, 0, &v), 0);
	cr_assert_eq(v.state, L1_JOB_QUEUED);
	cr_assert_eq(v.sale_id, 7);
	cr_assert_eq(v.n_items, 2);
	cr_assert_not(v.has_tx);
	cr_assert_eq(l1_outbox_reader_purchases(r, 7, 1, &v), 0);
	cr_assert_eq(v.n_items, 1);
	cr_assert_eq(l1_outbox_reader_purchases(r, 7, 2, &v), L1_ENOTFOUND);
	cr_assert_eq(l1_outbox_reader_purchases(r, 8, 0, &v), L1_ENOTFOUND);
	cr_assert_eq(l1_outbox_reader_settlement(r, 7, &v), 0);
	cr_assert_eq(v.state, L1_JOB_QUEUED);
	cr_assert_eq(v.n_items, 2);
	cr_assert_eq(l1_outbox_reader_settlement(r, 8, &v), L1_ENOTFOUND);
	l1_outbox_reader_close(r);
	l1_outbox_close(ob);
}
