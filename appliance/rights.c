/*
 * rights.c - the sales engine: execution-ticket sales driven by the slot
 * clock (docs/RIGHTS.md, "In the daemon"; the mechanism is sequencer/).
 *
 * One thread runs it: mz-l1 when L1 is on (app_rights_pass from its loop,
 * so the L1 client and the outbox stay that thread's), else "mz-rights". It
 * owns data_dir/rights.db (store.c has the schema) and the live sales in
 * memory; requests arrive on a bounded queue from the lws thread and are
 * answered through the done queue. Nothing else touches a sale.
 *
 * Sale n sells window n. Each pass, with now = the current slot:
 *
 *   (none open) --open_next--> OPEN --close (now >= close slot)--> CLOSED
 *        ^                       |                                   |
 *        +-----------------------+ (the close opens the next sale,   |
 *                                   priced by seq_price_next)        |
 *   SETTLED <--settle (now >= deadline and the seed is known)--------+
 *
 *   transition   function    persisted as
 *   open         sale_open   sales + sale_offers rows (state 0)
 *   buy          do_buy      purchases row, committed before the answer
 *   close        tick        sales.state = 1 (allocation recomputed on load)
 *   propose      do_propose  proposals row (accepted or not)
 *   (L1 sales)   reconcile   purchase_voids rows: purchases the chain skipped
 *   settle       settle      sales.state = 2 + seed, settlements row, one txn
 *
 * Restart: every unsettled sale is rebuilt by replaying its purchases in id
 * order, closing at its close slot, replaying accepted proposals and then
 * the voids (seq_sale_void): the sequencer's logic is deterministic, so
 * this is the same sale. Settled
 * sales are rebuilt the same way on demand (mezz_getSale) and their
 * settlement bytes compared with the stored ones.
 *
 * The seed: with L1, the hash of L1 block draw_block, chosen at open as the
 * first block expected after the deadline (rights.l1_block_ms). Without L1,
 * the hash of this appliance's first superblock at or after the deadline
 * slot; the operator seals that block, so it could grind the seed: dev only.
 */
#include <jansson.h>
#include <libwebsockets.h>
#include <sqlite3.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "appliance/daemon.h"

#define RIGHTS_QUEUE_MAX 1024
#define LIVE_MAX 8

/* What the sequencer does not keep of a purchase: its nonce, the tickets
 * signed for (a void purchase has none left in the sale) and whether the
 * chain escrowed it (purchase_voids). */
struct rpur {
	uint64_t nonce, tickets;
	int voided;
};

struct rsale {
	struct seq_sale s;
	int draw_l1;
	uint64_t floor;
	uint64_t opened_slot;
	struct rpur *pur; /* per purchase, parallel to s.purchases */
	size_t pur_cap;
	int has_st;
	struct seq_settlement st;
	uint8_t seed[32];
};

struct app_rights {
	struct app_committer *c;
	const struct app_config *cfg;
	sqlite3 *db;
	struct app_store *ro; /* mezzanine.db: superblock hashes for local seeds */
	struct app_store *rw; /* mezzanine.db: grants (app_rights_grant) */
	struct l1_outbox_reader *obr; /* outbox.db: are purchase jobs mined? */
	struct app_queue reqs;
	struct rsale *live[LIVE_MAX]; /* unsettled sales, ascending id */
	size_t n_live;
	uint64_t last_id; /* highest sale id opened */
	uint64_t last_price, last_sold, last_cap, last_target; /* of sale last_id */
	uint64_t chain_id;
	uint8_t inbox[20];
	int on_l1;
	pthread_t thread;
	int started;
	atomic_int stopping;
};

static uint64_t now_slot(const struct app_rights *r)
{
	return seq_slot_at(app_wall_ms(), 0, (uint32_t)r->cfg->slot_ms);
}

/* ------------------------------------------------------------------ */
/* SQL helpers                                                          */

static int sql_exec(struct app_rights *r, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(r->db, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK) {
		app_error("rights_sql_failed", "sql=\"%.40s\" err=\"%s\"", sql, msg ? msg : "");
		sqlite3_free(msg);
		return APP_ESQLITE;
	}
	return 0;
}

static sqlite3_stmt *prep(struct app_rights *r, const char *sql)
{
	sqlite3_stmt *st = NULL;

	if (sqlite3_prepare_v2(r->db, sql, -1, &st, NULL) != SQLITE_OK) {
		app_error("rights_sql_failed", "sql=\"%.40s\" err=\"%s\"", sql, sqlite3_errmsg(r->db));
		return NULL;
	}
	return st;
}

/* prep, with ?1 bound to id (a sale's id: most queries here are per sale). */
static sqlite3_stmt *prep_id(struct app_rights *r, const char *sql, uint64_t id)
{
	sqlite3_stmt *st = prep(r, sql);

	if (st)
		sqlite3_bind_int64(st, 1, (sqlite3_int64)id);
	return st;
}

/* Step a statement that returns no rows, then finalize it. */
static int step_done(sqlite3_stmt *st)
{
	int rc;

	if (!st)
		return APP_ESQLITE;
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : rc == SQLITE_CONSTRAINT ? APP_EEXIST : APP_ESQLITE;
}

static void ids_text(char *out, size_t cap, const uint64_t *ids, size_t n)
{
	size_t k = 0;

	out[0] = 0;
	for (size_t i = 0; i < n && k < cap; i++)
		k += (size_t)snprintf(out + k, cap - k, "%s%llu", i ? "," : "",
				      (unsigned long long)ids[i]);
}

static size_t ids_parse(const char *t, uint64_t *ids, size_t cap)
{
	size_t n = 0;

	while (t && *t && n < cap) {
		char *end;

		ids[n++] = strtoull(t, &end, 10);
		t = *end == ',' ? end + 1 : NULL;
	}
	return n;
}

/* ------------------------------------------------------------------ */
/* Sales in memory                                                      */

static void rsale_free(struct rsale *rs)
{
	if (!rs)
		return;
	seq_sale_destroy(&rs->s);
	seq_settlement_free(&rs->st);
	free(rs->pur);
	free(rs);
}

static int rsale_note_nonce(struct rsale *rs, uint64_t nonce)
{
	size_t i = rs->s.n_purchases - 1;

	if (i >= rs->pur_cap) {
		size_t cap = rs->pur_cap ? rs->pur_cap * 2 : 64;
		struct rpur *v = realloc(rs->pur, cap * sizeof(*v));

		if (!v)
			return APP_ENOMEM;
		rs->pur = v;
		rs->pur_cap = cap;
	}
	rs->pur[i].nonce = nonce;
	rs->pur[i].tickets = rs->s.purchases[i].tickets;
	rs->pur[i].voided = 0;
	return 0;
}

/*
 * Apply the purchases rights.db holds as void (purchase_voids) to a closed
 * sale, all at once, after its accepted proposals: the order settle() used
 * when it voided them, so a rebuild is the same sale.
 */
static int rsale_apply_voids(struct app_rights *r, struct rsale *rs)
{
	sqlite3_stmt *st = prep(r, "SELECT p.id, (SELECT count(*) FROM purchases q"
				   " WHERE q.sale = p.sale AND q.id < p.id) FROM purchase_voids v"
				   " JOIN purchases p ON p.id = v.purchase WHERE v.sale = ?"
				   " ORDER BY p.id");
	uint32_t *idx = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;

	if (!st)
		return APP_ESQLITE;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)rs->s.p.sale_id);
	while (!rc && sqlite3_step(st) == SQLITE_ROW) {
		uint64_t i = (uint64_t)sqlite3_column_int64(st, 1);

		if (n == cap) {
			uint32_t *v;

			cap = cap ? cap * 2 : 16;
			v = realloc(idx, cap * sizeof(*v));
			if (!v) {
				rc = APP_ENOMEM;
				break;
			}
			idx = v;
		}
		if (i >= rs->s.n_purchases)
			rc = APP_ESQLITE; /* a void row for a purchase not replayed */
		else
			idx[n++] = (uint32_t)i;
	}
	sqlite3_finalize(st);
	if (!rc && n)
		rc = seq_sale_void(&rs->s, idx, n);
	for (size_t k = 0; !rc && k < n; k++)
		rs->pur[idx[k]].voided = 1;
	free(idx);
	return rc;
}

/*
 * Rebuild sale `id` from rights.db: create, replay purchases, close,
 * replay accepted proposals, settle with the stored seed. The sequencer is
 * deterministic, so this is the sale that was answered from before.
 */
/*
 * The settlement as stored when the sale settled (settlements.encoding) is
 * what was granted and what is posted: a settled sale rebuilt from its rows
 * by a later build (another draw or split) must not post something else.
 * rs->st, just rebuilt, is replaced by it; a difference is logged. A row
 * that does not decode is logged and the rebuilt one kept.
 */
static int stored_settlement(struct app_rights *r, struct rsale *rs)
{
	sqlite3_stmt *st = prep_id(r, "SELECT encoding FROM settlements WHERE sale = ?",
				   rs->s.p.sale_id);
	struct seq_settlement d;
	uint8_t *enc = NULL;
	size_t len;
	int rc;

	if (!st)
		return APP_ESQLITE;
	if (sqlite3_step(st) != SQLITE_ROW) { /* settled before the row existed */
		sqlite3_finalize(st);
		return 0;
	}
	rc = seq_settlement_decode(sqlite3_column_blob(st, 0),
				   (size_t)sqlite3_column_bytes(st, 0), &d);
	if (rc) {
		app_error("rights_settlement_unreadable", "sale=%llu err=\"%s\" using=rebuilt",
			  (unsigned long long)rs->s.p.sale_id, seq_strerror(rc));
		sqlite3_finalize(st);
		return 0;
	}
	len = seq_settlement_encode(&rs->st, NULL, 0);
	enc = malloc(len);
	if (!enc) {
		sqlite3_finalize(st);
		seq_settlement_free(&d);
		return APP_ENOMEM;
	}
	seq_settlement_encode(&rs->st, enc, len);
	if (len != (size_t)sqlite3_column_bytes(st, 0) ||
	    memcmp(enc, sqlite3_column_blob(st, 0), len))
		app_warn("rights_settlement_rebuilt_differs",
			 "sale=%llu stored_revenue_gwei=%llu rebuilt_revenue_gwei=%llu "
			 "using=stored",
			 (unsigned long long)rs->s.p.sale_id, (unsigned long long)d.revenue,
			 (unsigned long long)rs->st.revenue);
	free(enc);
	sqlite3_finalize(st);
	seq_settlement_free(&rs->st);
	rs->st = d;
	return 0;
}

static int sale_load(struct app_rights *r, uint64_t id, struct rsale **out)
{
	struct rsale *rs = calloc(1, sizeof(*rs));
	struct seq_sale_params p = {.sale_id = id};
	struct seq_offer *offers = NULL;
	size_t n_off = 0, cap_off = 0;
	sqlite3_stmt *st;
	int state = 0, rc = APP_ESQLITE;

	*out = NULL;
	if (!rs)
		return APP_ENOMEM;
	st = prep_id(r, "SELECT start_slot, end_slot, close_lead, improve_lead, draw_block, draw_l1,"
			" price, cap, target, burn_bps, floor, opened_slot, state, seed FROM sales"
			" WHERE id = ?", id);
	if (!st)
		goto out;
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_finalize(st);
		rc = APP_ENOTFOUND;
		goto out;
	}
	p.start_slot = (uint64_t)sqlite3_column_int64(st, 0);
	p.end_slot = (uint64_t)sqlite3_column_int64(st, 1);
	p.close_lead = (uint64_t)sqlite3_column_int64(st, 2);
	p.improve_lead = (uint64_t)sqlite3_column_int64(st, 3);
	p.draw_block = (uint64_t)sqlite3_column_int64(st, 4);
	rs->draw_l1 = sqlite3_column_int(st, 5);
	p.price = (uint64_t)sqlite3_column_int64(st, 6);
	p.cap = (uint64_t)sqlite3_column_int64(st, 7);
	p.target = (uint64_t)sqlite3_column_int64(st, 8);
	p.burn_bps = (uint32_t)sqlite3_column_int64(st, 9);
	rs->floor = (uint64_t)sqlite3_column_int64(st, 10);
	rs->opened_slot = (uint64_t)sqlite3_column_int64(st, 11);
	state = sqlite3_column_int(st, 12);
	if (state == 2 && sqlite3_column_bytes(st, 13) == 32)
		memcpy(rs->seed, sqlite3_column_blob(st, 13), 32);
	sqlite3_finalize(st);

	st = prep_id(r, "SELECT ns, opt_in, reserve FROM sale_offers WHERE sale = ? ORDER BY ns", id);
	if (!st)
		goto out;
	while (sqlite3_step(st) == SQLITE_ROW) {
		if (n_off == cap_off) {
			struct seq_offer *v;

			cap_off = cap_off ? cap_off * 2 : 16;
			v = realloc(offers, cap_off * sizeof(*v));
			if (!v) {
				sqlite3_finalize(st);
				rc = APP_ENOMEM;
				goto out;
			}
			offers = v;
		}
		offers[n_off].rollup = (uint64_t)sqlite3_column_int64(st, 0);
		offers[n_off].opt_in = sqlite3_column_int(st, 1) != 0;
		offers[n_off].reserve = (uint64_t)sqlite3_column_int64(st, 2);
		n_off++;
	}
	sqlite3_finalize(st);
	p.offers = offers;
	p.n_offers = n_off;
	rc = seq_sale_create(&rs->s, &p);
	if (rc)
		goto out;

	st = prep_id(r, "SELECT buyer, rollups, tickets, nonce, slot FROM purchases WHERE sale = ?"
			" ORDER BY id", id);
	if (!st) {
		rc = APP_ESQLITE;
		goto out;
	}
	while (!rc && sqlite3_step(st) == SQLITE_ROW) {
		uint64_t ids[SEQ_RIGHTS_MAX_ROLLUPS];
		size_t n = ids_parse((const char *)sqlite3_column_text(st, 1), ids,
				     SEQ_RIGHTS_MAX_ROLLUPS);

		if (sqlite3_column_bytes(st, 0) != SEQ_ADDR_LEN) {
			rc = APP_ESQLITE;
			break;
		}
		rc = seq_sale_buy(&rs->s, (uint64_t)sqlite3_column_int64(st, 4),
				  sqlite3_column_blob(st, 0), ids, n,
				  (uint64_t)sqlite3_column_int64(st, 2));
		if (!rc)
			rc = rsale_note_nonce(rs, (uint64_t)sqlite3_column_int64(st, 3));
	}
	sqlite3_finalize(st);
	if (rc || state == 0)
		goto out;
	rc = seq_sale_close(&rs->s, seq_sale_close_slot(&rs->s));
	if (rc)
		goto out;
	st = prep_id(r, "SELECT bundles, slot FROM proposals WHERE sale = ? AND accepted = 1"
			" ORDER BY id", id);
	if (!st) {
		rc = APP_ESQLITE;
		goto out;
	}
	while (!rc && sqlite3_step(st) == SQLITE_ROW) {
		struct seq_alloc a = {0};
		uint64_t b[SEQ_RIGHTS_MAX_ROLLUPS];

		a.n = (uint32_t)ids_parse((const char *)sqlite3_column_text(st, 0), b,
					  SEQ_RIGHTS_MAX_ROLLUPS);
		for (uint32_t k = 0; k < a.n; k++)
			a.bundle[k] = (uint32_t)b[k];
		rc = seq_sale_propose(&rs->s, (uint64_t)sqlite3_column_int64(st, 1), &a);
	}
	sqlite3_finalize(st);
	if (!rc)
		rc = rsale_apply_voids(r, rs);
	if (rc || state == 1)
		goto out;
	rc = seq_sale_settle(&rs->s, seq_sale_deadline_slot(&rs->s), rs->seed, &rs->st);
	if (!rc) {
		rs->has_st = 1;
		rc = stored_settlement(r, rs);
	}
out:
	free(offers);
	if (rc) {
		rsale_free(rs);
		return rc;
	}
	*out = rs;
	return 0;
}

static struct rsale *live_find(struct app_rights *r, uint64_t id)
{
	for (size_t i = 0; i < r->n_live; i++)
		if (r->live[i]->s.p.sale_id == id)
			return r->live[i];
	return NULL;
}

static void live_remove(struct app_rights *r, size_t i)
{
	rsale_free(r->live[i]);
	memmove(&r->live[i], &r->live[i + 1], (r->n_live - i - 1) * sizeof(r->live[0]));
	r->n_live--;
}

/* ------------------------------------------------------------------ */
/* Opening sales                                                        */

/*
 * Open sale last_id + 1. Its window follows the last one's when that still
 * leaves it open for a slot; otherwise (first sale, or after downtime) it
 * starts rights.ahead_slots from now. The price follows the last sale's
 * outcome (seq_price_next); the offers are the namespaces' standing ones.
 */
static int sale_open(struct app_rights *r, uint64_t now, uint64_t last_end, struct l1_rpc *rpc)
{
	const struct app_config *cfg = r->cfg;
	uint64_t id = r->last_id + 1, start = last_end, price = (uint64_t)cfg->rights_price_gwei;
	uint64_t deadline, draw;
	sqlite3_stmt *st;
	struct rsale *rs;
	int rc;

	if (r->n_live >= LIVE_MAX)
		return APP_EFULL;
	if (start < now + (uint64_t)cfg->rights_close_lead + 1)
		start = now + (uint64_t)cfg->rights_ahead_slots;
	if (r->last_id)
		price = seq_price_next(r->last_price, r->last_sold, r->last_cap, r->last_target,
				       (uint64_t)cfg->rights_floor_gwei);
	deadline = start - (uint64_t)cfg->rights_improve_lead;
	draw = deadline;
	if (r->on_l1) {
		struct l1_block head;
		uint64_t ms = (deadline - now) * (uint64_t)cfg->slot_ms;

		if (!rpc || l1_rpc_get_block(rpc, "latest", 0, &head))
			return APP_ENOTFOUND; /* retried next pass */
		draw = head.number + (ms + (uint64_t)cfg->rights_l1_block_ms - 1) /
					     (uint64_t)cfg->rights_l1_block_ms + 1;
	}
	if (sql_exec(r, "BEGIN IMMEDIATE"))
		return APP_ESQLITE;
	st = prep(r, "INSERT INTO sales(id, start_slot, end_slot, close_lead, improve_lead,"
		     " draw_block, draw_l1, price, cap, target, burn_bps, floor, opened_slot, state,"
		     " created_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,0,?)");
	if (st) {
		sqlite3_int64 v[] = {(sqlite3_int64)id, (sqlite3_int64)start,
				     (sqlite3_int64)(start + (uint64_t)cfg->rights_window_slots),
				     cfg->rights_close_lead, cfg->rights_improve_lead,
				     (sqlite3_int64)draw, r->on_l1, (sqlite3_int64)price,
				     cfg->rights_cap, cfg->rights_target, cfg->rights_burn_bps,
				     cfg->rights_floor_gwei, (sqlite3_int64)now,
				     (sqlite3_int64)app_wall_ms()};

		for (int k = 0; k < (int)(sizeof(v) / sizeof(v[0])); k++)
			sqlite3_bind_int64(st, k + 1, v[k]);
	}
	rc = step_done(st);
	if (!rc) {
		st = prep_id(r, "INSERT INTO sale_offers(sale, ns, opt_in, reserve)"
				" SELECT ?, ns, opt_in, reserve FROM offers", id);
		rc = step_done(st);
	}
	if (rc || sql_exec(r, "COMMIT")) {
		sql_exec(r, "ROLLBACK");
		return rc ? rc : APP_ESQLITE;
	}
	rc = sale_load(r, id, &rs);
	if (rc) {
		app_error("rights_sale_load_failed", "sale=%llu err=\"%s\"", (unsigned long long)id,
			  app_strerror(rc));
		return rc;
	}
	r->live[r->n_live++] = rs;
	r->last_id = id;
	r->last_price = price;
	app_info("rights_sale_opened",
		 "sale=%llu start_slot=%llu end_slot=%llu close_slot=%llu deadline_slot=%llu "
		 "price_gwei=%llu participants=%zu draw=%s:%llu",
		 (unsigned long long)id, (unsigned long long)start,
		 (unsigned long long)rs->s.p.end_slot,
		 (unsigned long long)seq_sale_close_slot(&rs->s), (unsigned long long)deadline,
		 (unsigned long long)price, rs->s.n_rollups, r->on_l1 ? "l1_block" : "slot",
		 (unsigned long long)draw);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Answers                                                              */

static void answer(struct app_rights *r, const struct app_rights_req *q, int is_error,
		   char *json)
{
	struct app_done d = {.kind = DONE_ANSWER, .req = q->req, .slot = q->slot,
			     .is_error = is_error, .json = json};

	while (app_queue_push(r->c->done, &d, 1) == APP_EFULL) {
		lws_cancel_service(r->c->lws);
		usleep(200);
	}
	lws_cancel_service(r->c->lws);
}

#define ANSWER_ERR(r, q, code, ...) answer(r, q, 1, app_error_json(code, __VA_ARGS__))

static char *dump(json_t *j)
{
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;

	json_decref(j);
	return s;
}

static json_t *hexj(const uint8_t *b, size_t n)
{
	char *buf = malloc(2 * n + 3);
	json_t *j;

	if (!buf)
		return json_null();
	l1_hex_encode(buf, b, n);
	j = json_string(buf);
	free(buf);
	return j;
}

static json_t *bundle_ids_json(const struct seq_sale *s, uint32_t b)
{
	uint64_t ids[SEQ_RIGHTS_MAX_ROLLUPS];
	int n = seq_sale_bundle_ids(s, b, ids, SEQ_RIGHTS_MAX_ROLLUPS);
	json_t *a = json_array();

	for (int k = 0; k < n; k++)
		json_array_append_new(a, json_integer((json_int_t)ids[k]));
	return a;
}

static const char *const state_names[] = {"open", "closed", "settled"};

static json_t *settlement_json(const struct seq_sale *s, const struct seq_settlement *st)
{
	json_t *o = json_object(), *w = json_array(), *b = json_array(), *cr = json_array();
	size_t len = seq_settlement_encode(st, NULL, 0);
	uint8_t *enc = malloc(len ? len : 1);
	uint64_t credited = 0;

	for (size_t i = 0; i < st->n_winners; i++)
		json_array_append_new(
			w, json_pack("{s:I,s:o,s:I,s:I,s:o,s:I}", "bundle",
				     (json_int_t)st->winners[i].bundle, "rollups",
				     bundle_ids_json(s, st->winners[i].bundle), "purchase",
				     (json_int_t)st->winners[i].purchase, "ticket",
				     (json_int_t)st->winners[i].ticket, "buyer",
				     hexj(st->winners[i].buyer, SEQ_ADDR_LEN), "revenueGwei",
				     (json_int_t)st->winners[i].revenue));
	for (size_t i = 0; i < st->n_buyers; i++)
		json_array_append_new(
			b, json_pack("{s:o,s:I,s:I,s:I}", "address",
				     hexj(st->buyers[i].addr, SEQ_ADDR_LEN), "paidGwei",
				     (json_int_t)st->buyers[i].paid, "chargedGwei",
				     (json_int_t)st->buyers[i].charged, "refundGwei",
				     (json_int_t)st->buyers[i].refund));
	for (size_t i = 0; i < st->n_credits; i++) {
		credited += st->credits[i].amount;
		json_array_append_new(cr, json_pack("{s:I,s:I,s:I}", "rollup",
						    (json_int_t)st->credits[i].rollup, "winner",
						    (json_int_t)st->credits[i].winner, "amountGwei",
						    (json_int_t)st->credits[i].amount));
	}
	json_object_set_new(o, "seed", hexj(st->seed, 32));
	json_object_set_new(o, "revenueGwei", json_integer((json_int_t)st->revenue));
	json_object_set_new(o, "burnGwei", json_integer((json_int_t)st->burn));
	json_object_set_new(o, "creditedGwei", json_integer((json_int_t)credited));
	json_object_set_new(o, "winners", w);
	json_object_set_new(o, "buyers", b);
	json_object_set_new(o, "credits", cr);
	if (enc && seq_settlement_encode(st, enc, len) == len)
		json_object_set_new(o, "encoding", hexj(enc, len));
	free(enc);
	return o;
}

static char *sale_json(const struct rsale *rs)
{
	const struct seq_sale *s = &rs->s;
	json_t *o = json_object(), *rol = json_array(), *pur = json_array(), *bun = json_array();
	json_t *best = json_array();

	json_object_set_new(o, "sale", json_integer((json_int_t)s->p.sale_id));
	json_object_set_new(o, "state", json_string(state_names[s->state]));
	json_object_set_new(o, "startSlot", json_integer((json_int_t)s->p.start_slot));
	json_object_set_new(o, "endSlot", json_integer((json_int_t)s->p.end_slot));
	json_object_set_new(o, "closeSlot", json_integer((json_int_t)seq_sale_close_slot(s)));
	json_object_set_new(o, "deadlineSlot",
			    json_integer((json_int_t)seq_sale_deadline_slot(s)));
	json_object_set_new(o, "openedSlot", json_integer((json_int_t)rs->opened_slot));
	json_object_set_new(o, "drawSource", json_string(rs->draw_l1 ? "l1Block" : "superblock"));
	json_object_set_new(o, rs->draw_l1 ? "drawBlock" : "drawSlot",
			    json_integer((json_int_t)s->p.draw_block));
	json_object_set_new(o, "priceGwei", json_integer((json_int_t)s->p.price));
	json_object_set_new(o, "cap", json_integer((json_int_t)s->p.cap));
	json_object_set_new(o, "target", json_integer((json_int_t)s->p.target));
	json_object_set_new(o, "burnBps", json_integer((json_int_t)s->p.burn_bps));
	json_object_set_new(o, "sold", json_integer((json_int_t)s->sold));
	for (size_t i = 0; i < s->n_rollups; i++)
		json_array_append_new(rol, json_pack("{s:I,s:I}", "chainId",
						     (json_int_t)s->rollups[i].id, "reserveGwei",
						     (json_int_t)s->rollups[i].reserve));
	json_object_set_new(o, "rollups", rol);
	for (size_t i = 0; i < s->n_purchases; i++)
		json_array_append_new(
			pur, json_pack("{s:I,s:o,s:I,s:o,s:I,s:I,s:b}", "purchase", (json_int_t)i,
				       "buyer", hexj(s->purchases[i].buyer, SEQ_ADDR_LEN), "bundle",
				       (json_int_t)s->purchases[i].bundle, "rollups",
				       bundle_ids_json(s, s->purchases[i].bundle), "tickets",
				       (json_int_t)rs->pur[i].tickets, "nonce",
				       (json_int_t)rs->pur[i].nonce, "void", rs->pur[i].voided));
	json_object_set_new(o, "purchases", pur);
	for (size_t i = 0; i < s->n_bundles; i++)
		json_array_append_new(
			bun, json_pack("{s:I,s:o,s:I,s:I,s:I}", "bundle", (json_int_t)i, "rollups",
				       bundle_ids_json(s, (uint32_t)i), "tickets",
				       (json_int_t)s->bundles[i].tickets, "valueGwei",
				       (json_int_t)seq_sale_bundle_value(s, (uint32_t)i),
				       "reserveGwei", (json_int_t)s->bundles[i].reserve));
	json_object_set_new(o, "bundles", bun);
	if (s->state != SEQ_SALE_OPEN) {
		for (uint32_t k = 0; k < s->best.n; k++)
			json_array_append_new(best, json_integer(s->best.bundle[k]));
		json_object_set_new(o, "best",
				    json_pack("{s:o,s:I,s:I}", "bundles", best, "revenueGwei",
					      (json_int_t)s->best.revenue, "proposalsAccepted",
					      (json_int_t)s->best_proposals));
	} else {
		json_decref(best);
		json_object_set_new(o, "best", json_null());
	}
	json_object_set_new(o, "settlement", rs->has_st ? settlement_json(s, &rs->st) : json_null());
	return dump(o);
}

/* ------------------------------------------------------------------ */
/* Requests                                                             */

static void do_set_offer(struct app_rights *r, const struct app_rights_req *q)
{
	sqlite3_stmt *st = prep(r, "INSERT OR REPLACE INTO offers(ns, opt_in, reserve, updated_ms)"
				   " VALUES (?,?,?,?)");
	int rc;

	if (st) {
		sqlite3_bind_int64(st, 1, (sqlite3_int64)q->ns);
		sqlite3_bind_int(st, 2, q->opt_in);
		sqlite3_bind_int64(st, 3, (sqlite3_int64)q->reserve);
		sqlite3_bind_int64(st, 4, (sqlite3_int64)app_wall_ms());
	}
	rc = step_done(st);
	if (rc) {
		ANSWER_ERR(r, q, RPC_INTERNAL, "cannot store the offer: %s", app_strerror(rc));
		return;
	}
	app_info("rights_offer_set", "namespace=%s opt_in=%d reserve_gwei=%llu from_sale=%llu",
		 q->ns_name, q->opt_in, (unsigned long long)q->reserve,
		 (unsigned long long)(r->last_id + 1));
	answer(r, q, 0,
	       dump(json_pack("{s:s,s:I,s:b,s:I,s:I}", "namespace", q->ns_name, "chainId",
			      (json_int_t)q->ns, "optIn", q->opt_in, "reserveGwei",
			      (json_int_t)q->reserve, "fromSale", (json_int_t)(r->last_id + 1))));
}

static void do_get_sale(struct app_rights *r, const struct app_rights_req *q)
{
	uint64_t id = q->sale ? q->sale : r->last_id;
	struct rsale *rs = live_find(r, id), *tmp = NULL;
	int rc = id ? 0 : APP_ENOTFOUND;

	if (!rs && !rc) {
		rc = sale_load(r, id, &tmp);
		rs = tmp;
	}
	if (rc == APP_ENOTFOUND)
		ANSWER_ERR(r, q, RPC_NOT_FOUND, "no sale %llu (the last one opened is %llu)",
			   (unsigned long long)id, (unsigned long long)r->last_id);
	else if (rc)
		ANSWER_ERR(r, q, RPC_INTERNAL, "cannot rebuild sale %llu: %s",
			   (unsigned long long)q->sale, app_strerror(rc));
	else
		answer(r, q, 0, sale_json(rs));
	rsale_free(tmp);
}

static int buy_error_code(int rc)
{
	switch (rc) {
	case SEQ_ECLOSED:
		return RPC_SALE_CLOSED;
	case SEQ_ESOLDOUT:
		return RPC_SOLD_OUT;
	case SEQ_EBUNDLE:
		return RPC_BAD_BUNDLE;
	default:
		return RPC_INVALID_PARAMS;
	}
}

/*
 * A purchase: the EIP-712 signature names the buyer; the sale must be open
 * at the sale's price; the row is committed (fsync) before the answer, and
 * only then does the sale in memory count it. With L1 the buyer's free
 * deposit must cover it too (check_deposit).
 */
static int check_deposit(struct app_rights *r, struct l1_rpc *rpc, const uint8_t buyer[20],
			 uint64_t cost, char *why, size_t whylen);

/* The answer to a stored purchase: index `i` of sale rs. */
static void answer_stored(struct app_rights *r, const struct app_rights_req *q,
			  const struct rsale *rs, const char *addr, size_t i)
{
	answer(r, q, 0,
	       dump(json_pack("{s:I,s:I,s:s,s:I,s:I,s:I,s:I,s:I,s:s}", "sale",
			      (json_int_t)q->sale, "purchase", (json_int_t)i, "buyer", addr, "bundle",
			      (json_int_t)rs->s.purchases[i].bundle, "tickets",
			      (json_int_t)q->tickets, "paidGwei",
			      (json_int_t)(q->tickets * q->price_gwei), "nonce",
			      (json_int_t)q->nonce, "sold", (json_int_t)rs->s.sold, "status",
			      "stored")));
}

/*
 * 1 with *index if (buyer, nonce) is already this very purchase in this
 * sale (same rollups, tickets, price and signature): a retry whose first
 * answer was lost. It gets the first answer again; telling it to sign with
 * a fresh nonce would have had it buy, and escrow, twice.
 */
static int same_purchase(struct app_rights *r, const struct app_rights_req *q,
			 const struct rsale *rs, const uint8_t buyer[20], const char *ids,
			 const uint8_t sig[65], size_t *index)
{
	sqlite3_stmt *st = prep(r, "SELECT (SELECT count(*) FROM purchases q WHERE q.sale = p.sale"
				   " AND q.id < p.id), sale, rollups, tickets, price, sig"
				   " FROM purchases p WHERE buyer = ? AND nonce = ?");
	int same = 0;

	if (!st)
		return 0;
	sqlite3_bind_blob(st, 1, buyer, 20, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)q->nonce);
	if (sqlite3_step(st) == SQLITE_ROW) {
		const char *have = (const char *)sqlite3_column_text(st, 2);

		*index = (size_t)sqlite3_column_int64(st, 0);
		same = (uint64_t)sqlite3_column_int64(st, 1) == q->sale && have &&
		       !strcmp(have, ids) && (uint64_t)sqlite3_column_int64(st, 3) == q->tickets &&
		       (uint64_t)sqlite3_column_int64(st, 4) == q->price_gwei &&
		       sqlite3_column_bytes(st, 5) == 65 &&
		       !memcmp(sqlite3_column_blob(st, 5), sig, 65) &&
		       *index < rs->s.n_purchases;
	}
	sqlite3_finalize(st);
	return same;
}

static void do_buy(struct app_rights *r, const struct app_rights_req *q, struct l1_rpc *rpc)
{
	struct rsale *rs = live_find(r, q->sale);
	uint64_t now = now_slot(r);
	uint8_t buyer[20], digest[32], sig[65];
	char ids[SEQ_RIGHTS_MAX_ROLLUPS * 21], why[256], addr[43];
	sqlite3_stmt *st;
	int rc;

	if (!rs) {
		ANSWER_ERR(r, q, q->sale <= r->last_id ? RPC_SALE_CLOSED : RPC_NOT_FOUND,
			   q->sale <= r->last_id ? "sale %llu is settled" : "no sale %llu yet",
			   (unsigned long long)q->sale);
		return;
	}
	if (rs->s.state != SEQ_SALE_OPEN || now >= seq_sale_close_slot(&rs->s)) {
		ANSWER_ERR(r, q, RPC_SALE_CLOSED,
			   "sale %llu closed to purchases at slot %llu (now %llu); buy in sale %llu",
			   (unsigned long long)q->sale,
			   (unsigned long long)seq_sale_close_slot(&rs->s), (unsigned long long)now,
			   (unsigned long long)r->last_id + (rs->s.state == SEQ_SALE_OPEN));
		return;
	}
	if (q->price_gwei != rs->s.p.price) {
		ANSWER_ERR(r, q, RPC_WRONG_PRICE,
			   "priceGwei %llu is not sale %llu's price %llu; sign again at that price",
			   (unsigned long long)q->price_gwei, (unsigned long long)q->sale,
			   (unsigned long long)rs->s.p.price);
		return;
	}
	{
		struct l1_purchase lp = {.sale_id = q->sale, .rollups = q->rollups,
					 .n_rollups = q->n_rollups, .tickets = q->tickets,
					 .price_gwei = q->price_gwei, .nonce = q->nonce};

		rc = l1_eip712_purchase_digest(digest, &lp, r->chain_id, r->inbox);
		if (!rc)
			rc = l1_recover_address(buyer, digest, q->sig);
	}
	if (rc) {
		ANSWER_ERR(r, q, RPC_BAD_SIGNATURE,
			   "signature does not recover to a buyer (%s): sign the EIP-712 Purchase "
			   "with domain mezzanine/1, chainId %llu and this appliance's inbox",
			   app_strerror(rc), (unsigned long long)r->chain_id);
		return;
	}
	/* Stored and posted with v = 27/28, the only form the Inbox's _recover
	 * takes: a v of 0/1 recovers here (wallets differ) but would make the
	 * whole postPurchases call revert, voiding every other buyer in it. */
	memcpy(sig, q->sig, sizeof(sig));
	if (sig[64] < 27)
		sig[64] = (uint8_t)(sig[64] + 27);
	l1_hex_encode(addr, buyer, 20);
	ids_text(ids, sizeof(ids), q->rollups, q->n_rollups);
	{
		size_t index;

		/* before the deposit check, which counts the stored one too */
		if (same_purchase(r, q, rs, buyer, ids, sig, &index)) {
			answer_stored(r, q, rs, addr, index);
			return;
		}
	}
	/* -1: not covered; -2: could not be checked now (RPC_BUSY, retry). */
	rc = r->on_l1 ? check_deposit(r, rpc, buyer, q->tickets * rs->s.p.price, why, sizeof(why))
		      : 0;
	if (rc) {
		ANSWER_ERR(r, q, rc == -1 ? RPC_NO_DEPOSIT : RPC_BUSY, "%s", why);
		return;
	}
	if (sql_exec(r, "BEGIN IMMEDIATE")) {
		ANSWER_ERR(r, q, RPC_INTERNAL, "database error");
		return;
	}
	st = prep(r, "INSERT INTO purchases(sale, buyer, rollups, tickets, price, nonce, sig, slot,"
		     " created_ms) VALUES (?,?,?,?,?,?,?,?,?)");
	if (st) {
		sqlite3_bind_int64(st, 1, (sqlite3_int64)q->sale);
		sqlite3_bind_blob(st, 2, buyer, 20, SQLITE_TRANSIENT);
		sqlite3_bind_text(st, 3, ids, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(st, 4, (sqlite3_int64)q->tickets);
		sqlite3_bind_int64(st, 5, (sqlite3_int64)q->price_gwei);
		sqlite3_bind_int64(st, 6, (sqlite3_int64)q->nonce);
		sqlite3_bind_blob(st, 7, sig, 65, SQLITE_TRANSIENT);
		sqlite3_bind_int64(st, 8, (sqlite3_int64)now);
		sqlite3_bind_int64(st, 9, (sqlite3_int64)app_wall_ms());
	}
	rc = step_done(st);
	if (rc == APP_EEXIST) {
		sql_exec(r, "ROLLBACK");
		ANSWER_ERR(r, q, RPC_NONCE_USED,
			   "buyer %s already used nonce %llu; sign with a fresh nonce", addr,
			   (unsigned long long)q->nonce);
		return;
	}
	/* The sequencer judges the bundle and the cap; on error the sale is
	 * unchanged and the row is rolled back. */
	if (!rc)
		rc = seq_sale_buy(&rs->s, now, buyer, q->rollups, q->n_rollups, q->tickets);
	if (rc) {
		sql_exec(r, "ROLLBACK");
		if (rc == APP_ESQLITE)
			ANSWER_ERR(r, q, RPC_INTERNAL, "database error");
		else
			ANSWER_ERR(r, q, buy_error_code(rc), "%s (sale %llu: %llu of %llu tickets sold)",
				   rc == SEQ_EBUNDLE ? "rollups are not all opted in to this sale"
						     : app_strerror(rc),
				   (unsigned long long)q->sale, (unsigned long long)rs->s.sold,
				   (unsigned long long)rs->s.p.cap);
		return;
	}
	if (sql_exec(r, "COMMIT") || rsale_note_nonce(rs, q->nonce)) {
		struct rsale *fresh;

		/* Memory may now count a purchase the disk does not: rebuild. */
		sql_exec(r, "ROLLBACK");
		ANSWER_ERR(r, q, RPC_INTERNAL, "the purchase could not be stored; retry");
		for (size_t i = 0; i < r->n_live; i++)
			if (r->live[i] == rs && !sale_load(r, q->sale, &fresh)) {
				rsale_free(rs);
				r->live[i] = fresh;
			}
		return;
	}
	app_info("rights_purchase", "sale=%llu buyer=%s rollups=%s tickets=%llu nonce=%llu",
		 (unsigned long long)q->sale, addr, ids, (unsigned long long)q->tickets,
		 (unsigned long long)q->nonce);
	answer_stored(r, q, rs, addr, rs->s.n_purchases - 1);
}

static const char *reject_reason(int rc)
{
	switch (rc) {
	case SEQ_ENOTBETTER:
		return "notBetter";
	case SEQ_EOVERLAP:
		return "overlap";
	case SEQ_ERESERVE:
		return "belowReserve";
	case SEQ_ENOBID:
		return "noSuchBundle";
	default:
		return "invalid";
	}
}

static void do_propose(struct app_rights *r, const struct app_rights_req *q)
{
	struct rsale *rs = live_find(r, q->sale);
	uint64_t now = now_slot(r), prev, revenue = 0;
	char text[SEQ_RIGHTS_MAX_ROLLUPS * 11];
	uint64_t b[SEQ_RIGHTS_MAX_ROLLUPS];
	sqlite3_stmt *st;
	int rc;

	if (!rs || rs->s.state != SEQ_SALE_CLOSED || now >= seq_sale_deadline_slot(&rs->s)) {
		if (!rs && q->sale > r->last_id)
			ANSWER_ERR(r, q, RPC_NOT_FOUND, "no sale %llu yet", (unsigned long long)q->sale);
		else if (rs && rs->s.state == SEQ_SALE_OPEN)
			ANSWER_ERR(r, q, RPC_SALE_CLOSED,
				   "sale %llu is still taking purchases; proposals are taken from "
				   "slot %llu to %llu",
				   (unsigned long long)q->sale,
				   (unsigned long long)seq_sale_close_slot(&rs->s),
				   (unsigned long long)seq_sale_deadline_slot(&rs->s));
		else
			ANSWER_ERR(r, q, RPC_SALE_CLOSED,
				   "sale %llu's improvement window has ended", (unsigned long long)q->sale);
		return;
	}
	prev = rs->s.best.revenue;
	rc = seq_alloc_check(&rs->s, q->alloc);
	if (rc == 0 || rc == SEQ_ENOTBETTER)
		seq_alloc_validate(&rs->s, q->alloc, &revenue);
	for (uint32_t k = 0; k < q->alloc->n; k++)
		b[k] = q->alloc->bundle[k];
	ids_text(text, sizeof(text), b, q->alloc->n);
	/* Judged proposals are the public record; an accepted one must be on
	 * disk before the sale in memory moves (a restart replays it). */
	st = prep(r, "INSERT INTO proposals(sale, bundles, revenue, slot, accepted, reason,"
		     " created_ms) VALUES (?,?,?,?,?,?,?)");
	if (st) {
		sqlite3_bind_int64(st, 1, (sqlite3_int64)q->sale);
		sqlite3_bind_text(st, 2, text, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(st, 3, (sqlite3_int64)revenue);
		sqlite3_bind_int64(st, 4, (sqlite3_int64)now);
		sqlite3_bind_int(st, 5, rc == 0);
		sqlite3_bind_text(st, 6, rc ? reject_reason(rc) : "accepted", -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 7, (sqlite3_int64)app_wall_ms());
	}
	if (step_done(st)) {
		ANSWER_ERR(r, q, RPC_INTERNAL, "cannot store the proposal; retry");
		return;
	}
	if (!rc)
		rc = seq_sale_propose(&rs->s, now, q->alloc);
	app_info("rights_proposal", "sale=%llu bundles=%s revenue_gwei=%llu standing_gwei=%llu "
		 "accepted=%d reason=%s",
		 (unsigned long long)q->sale, text, (unsigned long long)revenue,
		 (unsigned long long)prev, rc == 0, rc ? reject_reason(rc) : "accepted");
	if (rc)
		answer(r, q, 0,
		       dump(json_pack("{s:b,s:s,s:s,s:I,s:I}", "accepted", 0, "reason",
				      reject_reason(rc), "message", app_strerror(rc), "revenueGwei",
				      (json_int_t)revenue, "standingRevenueGwei", (json_int_t)prev)));
	else
		answer(r, q, 0,
		       dump(json_pack("{s:b,s:I,s:I}", "accepted", 1, "revenueGwei",
				      (json_int_t)rs->s.best.revenue, "previousRevenueGwei",
				      (json_int_t)prev)));
}

static void handle(struct app_rights *r, struct app_rights_req *q, struct l1_rpc *rpc)
{
	switch (q->op) {
	case APP_RIGHTS_SET_OFFER:
		do_set_offer(r, q);
		break;
	case APP_RIGHTS_GET_SALE:
		do_get_sale(r, q);
		break;
	case APP_RIGHTS_BUY:
		do_buy(r, q, rpc);
		break;
	case APP_RIGHTS_PROPOSE:
		do_propose(r, q);
		break;
	}
	app_rights_req_free(q);
}

/* ------------------------------------------------------------------ */
/* L1: deposits, purchases and settlements to the outbox                */

/*
 * With L1, a purchase must be covered by the buyer's free balance on the
 * Inbox (freeBalance(address), wei) minus what this appliance already took
 * from that buyer and the chain has not escrowed yet: purchases not handed
 * to the outbox, or in a postPurchases job not mined. The chain checks
 * again (a buyer may withdraw meanwhile: PurchaseRejected, see
 * docs/RIGHTS.md for what that does to the settlement).
 */
static int job_on_chain(struct app_rights *r, uint64_t sale, uint64_t job)
{
	struct l1_job_view v;

	if (!r->obr && l1_outbox_reader_open(&r->obr, r->c->l1.db_path))
		return 0;
	if (l1_outbox_reader_purchases(r->obr, sale, job, &v))
		return 0;
	return v.state >= L1_JOB_MINED && v.state != L1_JOB_FAILED;
}

static int check_deposit(struct app_rights *r, struct l1_rpc *rpc, const uint8_t buyer[20],
			 uint64_t cost, char *why, size_t whylen)
{
	static const char sig[] = "freeBalance(address)";
	uint8_t data[36] = {0}, out[64], sel[32];
	struct l1_call call = {.data = data, .data_len = sizeof(data)};
	unsigned __int128 free_wei = 0, need;
	uint64_t pending = 0;
	sqlite3_stmt *st;
	size_t len = 0;
	char addr[43];
	int rc;

	l1_hex_encode(addr, buyer, 20);
	if (!rpc) {
		snprintf(why, whylen, "the L1 node is not reachable; retry");
		return -2;
	}
	l1_keccak256(sel, sig, sizeof(sig) - 1);
	memcpy(data, sel, 4);
	memcpy(data + 16, buyer, 20);
	memcpy(call.to, r->inbox, 20);
	rc = l1_rpc_eth_call(rpc, &call, "latest", out, sizeof(out), &len);
	if (rc || len != 32) {
		snprintf(why, whylen, "cannot read %s's deposit on L1 (%s); retry", addr,
			 rc ? app_strerror(rc) : "short answer");
		return -2;
	}
	for (int k = 0; k < 16; k++)
		if (out[k]) /* above 2^128 wei: plenty */
			return 0;
	for (int k = 16; k < 32; k++)
		free_wei = free_wei << 8 | out[k];
	st = prep(r, "SELECT sale, l1_queued, l1_job, tickets * price FROM purchases"
		     " WHERE buyer = ? AND l1_queued < 2 AND sale >= ?");
	if (!st) {
		snprintf(why, whylen, "database error; retry");
		return -2;
	}
	sqlite3_bind_blob(st, 1, buyer, 20, SQLITE_TRANSIENT);
	/* Older sales' jobs are long mined: LIVE_MAX bounds the scan. */
	sqlite3_bind_int64(st, 2, (sqlite3_int64)(r->last_id > LIVE_MAX ? r->last_id - LIVE_MAX : 0));
	while (sqlite3_step(st) == SQLITE_ROW)
		if (!sqlite3_column_int(st, 1) ||
		    !job_on_chain(r, (uint64_t)sqlite3_column_int64(st, 0),
				  (uint64_t)sqlite3_column_int64(st, 2)))
			pending += (uint64_t)sqlite3_column_int64(st, 3);
	sqlite3_finalize(st);
	need = ((unsigned __int128)pending + cost) * 1000000000u;
	if (free_wei >= need)
		return 0;
	snprintf(why, whylen,
		 "%s's free deposit on the Inbox is %llu gwei; this purchase costs %llu gwei and "
		 "%llu gwei are already committed to purchases not yet escrowed; deposit() more",
		 addr, (unsigned long long)(free_wei / 1000000000u), (unsigned long long)cost,
		 (unsigned long long)pending);
	return -1;
}

/*
 * Hand what is durable here to the outbox, in order: every purchase not yet
 * handed, one postPurchases per sale and at most L1_OUTBOX_MAX_PURCHASES at
 * a time (so purchases arriving between two passes go together), then
 * every settlement not yet handed (after its sale's purchases: the outbox
 * posts in queue order). A crash between the outbox's journal and our mark
 * hands a job again: a repeated purchase is skipped on chain (nonce used;
 * reconcile() counts it once, by its Purchased event), a repeated
 * settlement is refused by the outbox (L1_EDUP) and marked.
 */
static void flush_purchases(struct app_rights *r, struct l1_outbox *ob, uint64_t sale)
{
	struct l1_purchase p[L1_OUTBOX_MAX_PURCHASES];
	uint64_t ids[L1_OUTBOX_MAX_PURCHASES], job = 0;
	uint64_t (*rollups)[SEQ_RIGHTS_MAX_ROLLUPS] = malloc(sizeof(*rollups) * L1_OUTBOX_MAX_PURCHASES);
	uint8_t (*sigs)[65] = malloc(65 * L1_OUTBOX_MAX_PURCHASES);
	size_t n = 0;
	sqlite3_stmt *st;
	char sql[160];
	int rc;

	if (!rollups || !sigs)
		goto out;
	/* The job's index among the sale's postPurchases, counted in the
	 * outbox itself: a job handed again after a crash (below) is a job of
	 * its own there, and the deposit check must look at the right one. */
	if ((!r->obr && l1_outbox_reader_open(&r->obr, r->c->l1.db_path)) ||
	    l1_outbox_reader_purchases_count(r->obr, sale, &job))
		goto out;
	st = prep(r, "SELECT id, rollups, tickets, price, nonce, sig FROM purchases"
		     " WHERE sale = ? AND l1_queued = 0 ORDER BY id LIMIT ?");
	if (!st)
		goto out;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)sale);
	sqlite3_bind_int(st, 2, L1_OUTBOX_MAX_PURCHASES);
	while (sqlite3_step(st) == SQLITE_ROW && n < L1_OUTBOX_MAX_PURCHASES) {
		if (sqlite3_column_bytes(st, 5) != 65)
			continue;
		ids[n] = (uint64_t)sqlite3_column_int64(st, 0);
		p[n].sale_id = sale;
		p[n].rollups = rollups[n];
		p[n].n_rollups = ids_parse((const char *)sqlite3_column_text(st, 1), rollups[n],
					   SEQ_RIGHTS_MAX_ROLLUPS);
		p[n].tickets = (uint64_t)sqlite3_column_int64(st, 2);
		p[n].price_gwei = (uint64_t)sqlite3_column_int64(st, 3);
		p[n].nonce = (uint64_t)sqlite3_column_int64(st, 4);
		memcpy(sigs[n], sqlite3_column_blob(st, 5), 65);
		if (sigs[n][64] < 27) /* a row stored before v was normalised (do_buy) */
			sigs[n][64] = (uint8_t)(sigs[n][64] + 27);
		n++;
	}
	sqlite3_finalize(st);
	if (!n)
		goto out;
	rc = l1_outbox_queue_purchases(ob, sale, p, (const uint8_t (*)[65])sigs, n);
	if (rc && rc != L1_EDUP) {
		app_warn("rights_l1_purchases_failed", "sale=%llu n=%zu err=\"%s\"",
			 (unsigned long long)sale, n, app_strerror(rc));
		goto out;
	}
	if (rc == L1_EDUP)
		app_error("rights_l1_purchases_refused",
			  "sale=%llu n=%zu err=\"%s\" (stored here but never escrowed on L1)",
			  (unsigned long long)sale, n, app_strerror(rc));
	else
		app_info("rights_l1_purchases_queued", "sale=%llu n=%zu job=%llu",
			 (unsigned long long)sale, n, (unsigned long long)job);
	if (sql_exec(r, "BEGIN IMMEDIATE"))
		goto out;
	for (size_t i = 0; i < n; i++) {
		snprintf(sql, sizeof(sql),
			 "UPDATE purchases SET l1_queued = %d, l1_job = %llu WHERE id = %llu",
			 rc ? 2 : 1, (unsigned long long)job, (unsigned long long)ids[i]);
		sql_exec(r, sql);
	}
	if (sql_exec(r, "COMMIT"))
		sql_exec(r, "ROLLBACK");
out:
	free(rollups);
	free(sigs);
}

static void l1_flush(struct app_rights *r, struct l1_outbox *ob)
{
	uint64_t sales[LIVE_MAX * 4];
	size_t ns = 0;
	sqlite3_stmt *st = prep(r, "SELECT DISTINCT sale FROM purchases WHERE l1_queued = 0"
				   " ORDER BY sale LIMIT ?");

	if (!st)
		return;
	sqlite3_bind_int(st, 1, (int)(sizeof(sales) / sizeof(sales[0])));
	while (sqlite3_step(st) == SQLITE_ROW)
		sales[ns++] = (uint64_t)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	for (size_t i = 0; i < ns; i++)
		flush_purchases(r, ob, sales[i]);

	st = prep(r, "SELECT sale FROM settlements WHERE l1_queued = 0 ORDER BY sale LIMIT ?");
	if (!st)
		return;
	sqlite3_bind_int(st, 1, (int)(sizeof(sales) / sizeof(sales[0])));
	ns = 0;
	while (sqlite3_step(st) == SQLITE_ROW)
		sales[ns++] = (uint64_t)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	for (size_t i = 0; i < ns; i++) {
		struct rsale *rs = live_find(r, sales[i]), *tmp = NULL;
		char sql[96];
		int rc;

		if (!rs || !rs->has_st) {
			if (sale_load(r, sales[i], &tmp))
				continue;
			rs = tmp;
		}
		/* A sale nobody bought in holds no escrow: nothing to post. */
		rc = rs->st.n_buyers ? l1_outbox_queue_settlement(ob, &rs->st) : 0;
		app_log(rc && rc != L1_EDUP ? APP_LOG_WARN : APP_LOG_INFO, "rights_l1_settlement",
			"sale=%llu revenue_gwei=%llu burn_gwei=%llu buyers=%zu credits=%zu err=\"%s\"",
			(unsigned long long)sales[i], (unsigned long long)rs->st.revenue,
			(unsigned long long)rs->st.burn, rs->st.n_buyers, rs->st.n_credits,
			rc ? app_strerror(rc) : rs->st.n_buyers ? "queued" : "no buyers, not posted");
		rsale_free(tmp);
		if (rc && rc != L1_EDUP)
			continue; /* retried next pass */
		snprintf(sql, sizeof(sql), "UPDATE settlements SET l1_queued = 1 WHERE sale = %llu",
			 (unsigned long long)sales[i]);
		sql_exec(r, sql);
	}
}

/* ------------------------------------------------------------------ */
/* Reconciling an L1 sale with what the chain escrowed                  */

/* One purchase event of a sale: reason 0 for Purchased, else the
 * PurchaseRejected reason. Sorted by (buyer, nonce, reason), so a
 * Purchased sorts before any rejection of the same purchase. */
struct onchain {
	uint8_t buyer[20];
	uint64_t nonce;
	uint8_t reason;
};

static int onchain_cmp(const void *a, const void *b)
{
	const struct onchain *x = a, *y = b;
	int c = memcmp(x->buyer, y->buyer, 20);

	if (c)
		return c;
	if (x->nonce != y->nonce)
		return x->nonce < y->nonce ? -1 : 1;
	return (int)x->reason - (int)y->reason;
}

/* The first event of (buyer, nonce) in sorted v, or NULL. */
static const struct onchain *onchain_find(const struct onchain *v, size_t n,
					  const uint8_t buyer[20], uint64_t nonce)
{
	struct onchain key = {.nonce = nonce, .reason = 0};
	size_t lo = 0, hi = n;

	memcpy(key.buyer, buyer, 20);
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (onchain_cmp(&v[mid], &key) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && !memcmp(v[lo].buyer, buyer, 20) && v[lo].nonce == nonce ? &v[lo] : NULL;
}

/* The Purchased and PurchaseRejected events of `sale` in one receipt. */
static int onchain_collect(const struct app_rights *r, const struct l1_receipt *rc, uint64_t sale,
			   struct onchain **v, size_t *n, size_t *cap)
{
	for (size_t i = 0; i < rc->logs.n; i++) {
		const struct l1_log *lg = &rc->logs.v[i];
		struct l1_inbox_event ev;

		if (memcmp(lg->address, r->inbox, 20) ||
		    l1_inbox_decode_log(&ev, (const uint8_t (*)[32])lg->topics, lg->ntopics,
					lg->data, lg->data_len) ||
		    (ev.kind != L1_EV_PURCHASED && ev.kind != L1_EV_PURCHASE_REJECTED) ||
		    ev.u.purchase.sale_id != sale)
			continue;
		if (*n == *cap) {
			size_t c = *cap ? *cap * 2 : 64;
			struct onchain *nv = realloc(*v, c * sizeof(*nv));

			if (!nv)
				return APP_ENOMEM;
			*v = nv;
			*cap = c;
		}
		memcpy((*v)[*n].buyer, ev.u.purchase.buyer, 20);
		(*v)[*n].nonce = ev.u.purchase.nonce;
		/* A rejection never has reason 0 (REJECT_* start at 1); 255 keeps
		 * an unknown one from reading as "escrowed". */
		(*v)[*n].reason = ev.kind == L1_EV_PURCHASED ? 0
				  : ev.u.purchase.reason ? ev.u.purchase.reason : 255;
		(*n)++;
	}
	return 0;
}

static const char *void_reason(int reason)
{
	switch (reason) {
	case L1_REJECT_NONCE_USED:
		return "rejected_nonce_used";
	case L1_REJECT_UNFUNDED:
		return "rejected_unfunded";
	case 0:
		return "not_escrowed";
	default:
		return "rejected";
	}
}

/*
 * Before an L1 sale settles, find which of its purchases the chain
 * escrowed. Not yet (APP_ENOTFOUND, retried next pass) while a purchase is
 * not handed to the outbox or one of the sale's postPurchases jobs is
 * neither posted (l1.confirmations deep) nor failed, or its receipt cannot
 * be read or is in another block than the one the outbox confirmed. Then a
 * purchase is escrowed when a Purchased event of this sale names its buyer
 * and nonce in any of those receipts (a purchase handed twice after a crash
 * is rejected the second time, nonce used, and counts once). Every other
 * purchase is void: rejected by the chain (the reason is kept), in a job
 * that reverted, or refused by the outbox. The voids are committed here,
 * before the settlement is computed over the rest.
 */
static int reconcile(struct app_rights *r, const struct rsale *rs, struct l1_rpc *rpc)
{
	uint64_t sale = rs->s.p.sale_id, jobs = 0;
	struct onchain *ev = NULL;
	size_t nev = 0, cap = 0, nvoid = 0;
	sqlite3_stmt *st;
	int rc = APP_ENOTFOUND;

	if (!rpc || (!r->obr && l1_outbox_reader_open(&r->obr, r->c->l1.db_path)))
		return APP_ENOTFOUND;
	st = prep(r, "SELECT count(*) FROM purchases WHERE sale = ? AND l1_queued = 0");
	if (!st)
		return APP_ESQLITE;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)sale);
	if (sqlite3_step(st) != SQLITE_ROW || sqlite3_column_int64(st, 0) != 0) {
		sqlite3_finalize(st);
		return APP_ENOTFOUND;
	}
	sqlite3_finalize(st);
	if (l1_outbox_reader_purchases_count(r->obr, sale, &jobs))
		return APP_ENOTFOUND;
	for (uint64_t i = 0; i < jobs; i++) {
		struct l1_job_view v;
		struct l1_receipt rcpt = {0};
		int e;

		if (l1_outbox_reader_purchases(r->obr, sale, i, &v))
			goto out;
		if (v.state == L1_JOB_FAILED)
			continue; /* reverted (or never sent): escrowed nothing */
		if ((v.state != L1_JOB_POSTED && v.state != L1_JOB_FINALIZED) || !v.has_tx ||
		    !v.mined || l1_rpc_get_receipt(rpc, v.tx_hash, &rcpt))
			goto out;
		e = memcmp(rcpt.block_hash, v.block_hash, 32) ? APP_ENOTFOUND
			: rcpt.status == 1 ? onchain_collect(r, &rcpt, sale, &ev, &nev, &cap) : 0;
		l1_receipt_free(&rcpt);
		if (e) {
			rc = e;
			goto out;
		}
	}
	if (nev)
		qsort(ev, nev, sizeof(*ev), onchain_cmp);
	st = prep(r, "SELECT id, buyer, nonce, l1_queued FROM purchases p WHERE sale = ? AND NOT"
		     " EXISTS (SELECT 1 FROM purchase_voids v WHERE v.purchase = p.id) ORDER BY id");
	if (!st || sql_exec(r, "BEGIN IMMEDIATE")) {
		sqlite3_finalize(st);
		rc = APP_ESQLITE;
		goto out;
	}
	sqlite3_bind_int64(st, 1, (sqlite3_int64)sale);
	rc = 0;
	while (!rc && sqlite3_step(st) == SQLITE_ROW) {
		const struct onchain *o;
		uint64_t nonce = (uint64_t)sqlite3_column_int64(st, 2);
		char addr[43], sql[160];
		int reason;

		if (sqlite3_column_bytes(st, 1) != 20)
			continue;
		o = onchain_find(ev, nev, sqlite3_column_blob(st, 1), nonce);
		if (o && o->reason == 0)
			continue; /* escrowed */
		reason = o ? o->reason : 0;
		snprintf(sql, sizeof(sql), "INSERT OR IGNORE INTO purchase_voids(purchase, sale, reason,"
			 " created_ms) VALUES (%lld, %llu, %d, %lld)", sqlite3_column_int64(st, 0),
			 (unsigned long long)sale, reason, (long long)app_wall_ms());
		rc = sql_exec(r, sql);
		l1_hex_encode(addr, sqlite3_column_blob(st, 1), 20);
		app_warn("rights_purchase_void", "sale=%llu buyer=%s nonce=%llu reason=%s",
			 (unsigned long long)sale, addr, (unsigned long long)nonce,
			 void_reason(reason));
		nvoid++;
	}
	sqlite3_finalize(st);
	if (rc || sql_exec(r, "COMMIT")) {
		sql_exec(r, "ROLLBACK");
		rc = rc ? rc : APP_ESQLITE;
	}
	if (!rc && nvoid)
		app_info("rights_sale_reconciled", "sale=%llu jobs=%llu events=%zu voided=%zu",
			 (unsigned long long)sale, (unsigned long long)jobs, nev, nvoid);
out:
	free(ev);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Settlement                                                           */

static int find_seed(struct app_rights *r, const struct rsale *rs, struct l1_rpc *rpc,
		     uint8_t seed[32])
{
	uint64_t height;

	if (rs->draw_l1) {
		struct l1_block head, b;

		if (!rpc || l1_rpc_get_block(rpc, "latest", 0, &head))
			return APP_ENOTFOUND;
		if (head.number < rs->s.p.draw_block + (uint64_t)r->cfg->l1_confirmations - 1)
			return APP_ENOTFOUND;
		if (l1_rpc_get_block(rpc, NULL, rs->s.p.draw_block, &b))
			return APP_ENOTFOUND;
		/* prevrandao: its proposer can only withhold the block (one bit
		 * of influence). The block hash it could grind freely, over
		 * transaction order and extra data. A chain without it (zero, or
		 * before the Merge) leaves the hash. */
		if (b.has_mix_hash && !sodium_is_zero(b.mix_hash, 32))
			memcpy(seed, b.mix_hash, 32);
		else
			memcpy(seed, b.hash, 32);
		return 0;
	}
	return app_store_block_hash_from_slot(r->ro, rs->s.p.draw_block, seed, &height);
}

/*
 * Each winner orders its bundle's rollups over the sale's window
 * [start_slot, end_slot) (app_rights_grant takes an inclusive range). The
 * grant runs after the settlement is durable; settlements.granted records
 * it, and a restart grants what is left (grant_pending). A grant refused
 * with APP_EEXIST (an overlapping grant, e.g. made by hand with `mezz
 * rights`) or APP_ENOTFOUND (a namespace since removed) is logged and not
 * retried: the settlement stands, the winner does not order that window.
 */
static void grant(struct app_rights *r, const struct rsale *rs)
{
	const struct seq_sale *s = &rs->s;
	int all = 1;
	char sql[96];

	for (size_t w = 0; w < rs->st.n_winners; w++) {
		const struct seq_settle_winner *wn = &rs->st.winners[w];
		uint64_t ids[SEQ_RIGHTS_MAX_ROLLUPS];
		int n = seq_sale_bundle_ids(s, wn->bundle, ids, SEQ_RIGHTS_MAX_ROLLUPS);
		char addr[43];
		int rc;

		l1_hex_encode(addr, wn->buyer, 20);
		rc = n > 0 ? app_rights_grant(r->rw, s->p.start_slot, s->p.end_slot - 1, ids,
					      (size_t)n, wn->buyer)
			   : APP_EINVAL;
		if (rc == APP_ESQLITE)
			all = 0;
		app_log(rc ? APP_LOG_WARN : APP_LOG_INFO, "rights_granted",
			"sale=%llu bundle=%u buyer=%s rollups=%d from_slot=%llu to_slot=%llu "
			"err=\"%s\"",
			(unsigned long long)s->p.sale_id, wn->bundle, addr, n,
			(unsigned long long)s->p.start_slot, (unsigned long long)s->p.end_slot - 1,
			rc ? app_strerror(rc) : "ok");
	}
	if (!all)
		return; /* retried by grant_pending */
	snprintf(sql, sizeof(sql), "UPDATE settlements SET granted = 1 WHERE sale = %llu",
		 (unsigned long long)s->p.sale_id);
	sql_exec(r, sql);
}

static int settle(struct app_rights *r, struct rsale *rs, uint64_t now, struct l1_rpc *rpc)
{
	struct seq_settlement st = {0};
	struct rsale *copy = NULL;
	uint8_t seed[32], *enc = NULL;
	size_t len, voided = 0;
	sqlite3_stmt *q;
	int rc;

	rc = find_seed(r, rs, rpc, seed);
	if (!rc && rs->draw_l1)
		rc = reconcile(r, rs, rpc);
	if (rc)
		return rc;
	/* Settle a copy rebuilt from disk (with the voids reconcile() just
	 * stored): the live sale is replaced by it only once the settlement is
	 * durable. */
	rc = sale_load(r, rs->s.p.sale_id, &copy);
	if (rc)
		return rc;
	rc = seq_sale_settle(&copy->s, now, seed, &st);
	if (rc)
		goto out;
	len = seq_settlement_encode(&st, NULL, 0);
	enc = malloc(len);
	if (!enc || seq_settlement_encode(&st, enc, len) != len) {
		rc = APP_ENOMEM;
		goto out;
	}
	if (sql_exec(r, "BEGIN IMMEDIATE")) {
		rc = APP_ESQLITE;
		goto out;
	}
	q = prep(r, "UPDATE sales SET state = 2, seed = ? WHERE id = ?");
	if (q) {
		sqlite3_bind_blob(q, 1, seed, 32, SQLITE_TRANSIENT);
		sqlite3_bind_int64(q, 2, (sqlite3_int64)rs->s.p.sale_id);
	}
	rc = step_done(q);
	if (!rc) {
		q = prep(r, "INSERT INTO settlements(sale, encoding, slot, created_ms)"
			    " VALUES (?,?,?,?)");
		if (q) {
			sqlite3_bind_int64(q, 1, (sqlite3_int64)rs->s.p.sale_id);
			sqlite3_bind_blob(q, 2, enc, (int)len, SQLITE_TRANSIENT);
			sqlite3_bind_int64(q, 3, (sqlite3_int64)now);
			sqlite3_bind_int64(q, 4, (sqlite3_int64)app_wall_ms());
		}
		rc = step_done(q);
	}
	if (rc || sql_exec(r, "COMMIT")) {
		sql_exec(r, "ROLLBACK");
		rc = rc ? rc : APP_ESQLITE;
		goto out;
	}
	/* The copy becomes the live sale (the old contents go with copy). */
	{
		struct rsale t = *rs;

		*rs = *copy;
		*copy = t;
	}
	rs->st = st;
	memset(&st, 0, sizeof(st));
	rs->has_st = 1;
	memcpy(rs->seed, seed, 32);
	for (size_t i = 0; i < rs->s.n_purchases; i++)
		voided += rs->pur[i].voided != 0;
	app_info("rights_sale_settled",
		 "sale=%llu revenue_gwei=%llu burn_gwei=%llu winners=%zu buyers=%zu credits=%zu "
		 "sold=%llu voided=%zu",
		 (unsigned long long)rs->s.p.sale_id, (unsigned long long)rs->st.revenue,
		 (unsigned long long)rs->st.burn, rs->st.n_winners, rs->st.n_buyers,
		 rs->st.n_credits, (unsigned long long)rs->s.sold, voided);
	grant(r, rs);
out:
	rsale_free(copy);
	seq_settlement_free(&st);
	free(enc);
	return rc;
}

/* ------------------------------------------------------------------ */
/* The clock                                                            */

static void tick(struct app_rights *r, struct l1_rpc *rpc, struct l1_outbox *ob)
{
	uint64_t now = now_slot(r);
	int have_open = 0;

	for (size_t i = 0; i < r->n_live; i++) {
		struct rsale *rs = r->live[i];

		if (rs->s.state == SEQ_SALE_OPEN && now >= seq_sale_close_slot(&rs->s)) {
			char sql[96];

			snprintf(sql, sizeof(sql), "UPDATE sales SET state = 1 WHERE id = %llu",
				 (unsigned long long)rs->s.p.sale_id);
			if (sql_exec(r, sql))
				continue;
			seq_sale_close(&rs->s, now);
			if (rs->s.p.sale_id == r->last_id) {
				r->last_sold = rs->s.sold;
				r->last_cap = rs->s.p.cap;
				r->last_target = rs->s.p.target;
			}
			app_info("rights_sale_closed", "sale=%llu sold=%llu bundles=%zu "
				 "best_revenue_gwei=%llu",
				 (unsigned long long)rs->s.p.sale_id, (unsigned long long)rs->s.sold,
				 rs->s.n_bundles, (unsigned long long)rs->s.best.revenue);
		}
		if (rs->s.state == SEQ_SALE_OPEN)
			have_open = 1;
	}
	for (size_t i = 0; i < r->n_live;) {
		struct rsale *rs = r->live[i];
		int rc;

		if (rs->s.state != SEQ_SALE_CLOSED || now < seq_sale_deadline_slot(&rs->s)) {
			i++;
			continue;
		}
		rc = settle(r, rs, now, rpc);
		if (rc && rc != APP_ENOTFOUND)
			app_error("rights_settle_failed", "sale=%llu err=\"%s\"",
				  (unsigned long long)rs->s.p.sale_id, app_strerror(rc));
		if (!rc && r->live[i]->s.p.sale_id != r->last_id)
			live_remove(r, i);
		else
			i++;
	}
	/* Keep at most the last opened sale once it is settled. */
	for (size_t i = 0; i < r->n_live;)
		if (r->live[i]->s.state == SEQ_SALE_SETTLED && r->live[i]->s.p.sale_id != r->last_id)
			live_remove(r, i);
		else
			i++;
	if (!have_open) {
		struct rsale *last = live_find(r, r->last_id);
		uint64_t last_end = last ? last->s.p.end_slot : 0;
		int rc = sale_open(r, now, last_end, rpc);

		if (rc == 0 && last && last->s.state == SEQ_SALE_SETTLED)
			for (size_t i = 0; i < r->n_live; i++)
				if (r->live[i] == last)
					live_remove(r, i);
	}
	if (ob)
		l1_flush(r, ob);
}

void app_rights_pass(struct app_committer *c, uint64_t deadline_ns, struct l1_rpc *rpc,
		     struct l1_outbox *ob)
{
	struct app_rights *r = c->rights;
	struct app_rights_req q[16];
	size_t n;

	if (!r)
		return;
	do {
		n = app_queue_pop(&r->reqs, q, 16, deadline_ns);
		for (size_t i = 0; i < n; i++)
			handle(r, &q[i], rpc);
		if (n)
			tick(r, rpc, ob); /* a request may have come at a boundary */
	} while (n && app_now_ns() < deadline_ns && !atomic_load(&r->stopping));
	tick(r, rpc, ob);
}

static void *run(void *arg)
{
	struct app_committer *c = arg;
	struct app_rights *r = c->rights;

	pthread_setname_np(pthread_self(), "mz-rights");
	while (!atomic_load(&r->stopping)) {
		uint64_t wait = (uint64_t)c->cfg->slot_ms * 1000000ull / 2;

		if (wait > 50000000ull)
			wait = 50000000ull;
		app_rights_pass(c, app_now_ns() + wait, NULL, NULL);
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Start / stop                                                         */

static int load_state(struct app_rights *r)
{
	sqlite3_stmt *st = prep(r, "SELECT id, state FROM sales WHERE state < 2 OR id ="
				   " (SELECT max(id) FROM sales) ORDER BY id");
	int rc = 0;

	if (!st)
		return APP_ESQLITE;
	while (!rc && sqlite3_step(st) == SQLITE_ROW) {
		uint64_t id = (uint64_t)sqlite3_column_int64(st, 0);
		struct rsale *rs;

		if (r->n_live == LIVE_MAX)
			break;
		rc = sale_load(r, id, &rs);
		if (rc)
			break;
		r->live[r->n_live++] = rs;
		r->last_id = id;
		r->last_price = rs->s.p.price;
		r->last_sold = rs->s.sold;
		r->last_cap = rs->s.p.cap;
		r->last_target = rs->s.p.target;
	}
	sqlite3_finalize(st);
	if (rc)
		return rc;
	/* Settlements whose grants did not all go through (grant()). */
	st = prep(r, "SELECT sale FROM settlements WHERE granted = 0 ORDER BY sale");
	if (!st)
		return APP_ESQLITE;
	while (sqlite3_step(st) == SQLITE_ROW) {
		struct rsale *rs;

		if (!sale_load(r, (uint64_t)sqlite3_column_int64(st, 0), &rs)) {
			grant(r, rs);
			rsale_free(rs);
		}
	}
	sqlite3_finalize(st);
	return 0;
}

int app_rights_start(struct app_committer *c, char *errbuf, size_t errlen)
{
	const struct app_config *cfg = c->cfg;
	struct app_rights *r;
	size_t len = 0;
	int rc;

	if (!cfg->rights_enabled)
		return 0;
	r = calloc(1, sizeof(*r));
	if (!r)
		return APP_ENOMEM;
	r->c = c;
	r->cfg = cfg;
	r->on_l1 = c->l1.enabled;
	r->chain_id = (uint64_t)cfg->l1_chain_id;
	if (cfg->l1_inbox[0] &&
	    (l1_hex_decode(r->inbox, 20, &len, cfg->l1_inbox, strlen(cfg->l1_inbox)) || len != 20)) {
		snprintf(errbuf, errlen, "l1.inbox '%s' is not a 20-byte 0x address", cfg->l1_inbox);
		free(r);
		return APP_ECONFIG;
	}
	rc = app_store_rights_open(&r->db, cfg->data_dir, errbuf, errlen);
	if (!rc)
		rc = app_store_open(&r->ro, cfg->data_dir, 1, errbuf, errlen);
	if (!rc)
		rc = app_store_open(&r->rw, cfg->data_dir, 0, errbuf, errlen);
	if (!rc)
		rc = app_queue_init(&r->reqs, sizeof(struct app_rights_req), RIGHTS_QUEUE_MAX);
	if (!rc) {
		rc = load_state(r);
		if (rc)
			snprintf(errbuf, errlen, "cannot rebuild the sales from rights.db: %s",
				 app_strerror(rc));
	}
	if (rc) {
		c->rights = r;
		app_rights_stop(c);
		return rc;
	}
	c->rights = r;
	app_info("rights_started", "sales=%zu last_sale=%llu engine=%s seed=%s", r->n_live,
		 (unsigned long long)r->last_id, r->on_l1 ? "mz-l1" : "mz-rights",
		 r->on_l1 ? "l1_block_hash" : "superblock_hash(dev only)");
	if (!r->on_l1) {
		if (pthread_create(&r->thread, NULL, run, c)) {
			snprintf(errbuf, errlen, "cannot start the mz-rights thread");
			app_rights_stop(c);
			return APP_ENOMEM;
		}
		r->started = 1;
	}
	return 0;
}

void app_rights_stop(struct app_committer *c)
{
	struct app_rights *r = c->rights;
	struct app_rights_req q;

	if (!r)
		return;
	atomic_store(&r->stopping, 1);
	if (r->reqs.buf)
		app_queue_close(&r->reqs);
	if (r->started)
		pthread_join(r->thread, NULL);
	/* Requests never taken: their answers are dropped with the process. */
	while (r->reqs.buf && app_queue_pop(&r->reqs, &q, 1, 0) == 1)
		app_rights_req_free(&q);
	for (size_t i = 0; i < r->n_live; i++)
		rsale_free(r->live[i]);
	if (r->reqs.buf)
		app_queue_destroy(&r->reqs);
	app_store_close(r->ro);
	app_store_close(r->rw);
	l1_outbox_reader_close(r->obr);
	sqlite3_close(r->db);
	free(r);
	c->rights = NULL;
}

int app_rights_submit(struct app_committer *c, const struct app_rights_req *q)
{
	if (!c->rights)
		return APP_ESTOPPED;
	return app_queue_push(&c->rights->reqs, q, 1);
}
