/*
 * proposer.c - proposer-ordered slots, the committer's side (design in
 * docs/RIGHTS.md, "Proposer-ordered slots"): grants, transactions held for
 * a slot's winner, the winner's sub-block and the appliance's fallback.
 *
 * A (winner, slot) pair, for the open slot S:
 *
 *   UNDECIDED --(valid sub-block before the deadline)--> ACCEPTED
 *   UNDECIDED --(invalid sub-block)--> MISSED (reason "invalid")
 *   UNDECIDED --(deadline passes, or S ends)--> MISSED (reason "deadline")
 *   held for a slot already past at start --> MISSED (reason "restart")
 *
 *   transition              function         asserts
 *   UNDECIDED -> ACCEPTED   decide(block)    slot == open_slot, not decided
 *   UNDECIDED -> MISSED     decide(NULL)     not decided
 *
 * Either way decide() commits ONE group: on acceptance the winner's items in
 * its order, then the winner's held transactions it left out, in arrival
 * order; on a miss only the latter. The same COMMIT deletes their pending
 * rows (and writes the miss row), so after a crash a held transaction is
 * either still pending or sequenced, never both and never lost.
 *
 * Which submissions are held (intake, open slot S, namespace N): N granted
 * to W for S and (W, S) undecided: held for (W, S); else N granted to some
 * W' for S + 1: held for (W', S + 1); else sequenced as usual. A bundle is
 * held only if every leg is held for the same pair; a bundle that mixes is
 * refused (no single party may order it).
 *
 * Everything here runs on the committer thread, except app_rights_grant
 * and the CLI, which use their own connection.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/cli.h"
#include "appliance/daemon.h"
#include "appliance/ops.h"
#include "l1bridge/l1.h"

struct grant {
	uint64_t from, to, ns;
	uint8_t winner[20];
};

/* One held submission: a transaction or a whole bundle (legs in order). */
struct pend {
	uint64_t ref, slot;
	uint8_t winner[20];
	struct app_sub *legs;
	size_t n;
};


struct app_prop {
	struct grant *g;
	size_t gn;
	struct pend *p; /* arrival order (ascending ref) */
	size_t pn, pcap;
	uint64_t next_ref;
	uint8_t (*decided)[20]; /* winners decided for the open slot */
	size_t dn, dcap;
	struct app_sub *blocks; /* sub-blocks taken by intake, not yet decided */
	size_t bn, bcap;
	sqlite3_stmt *ins_pending, *del_pending, *ins_miss, *sel_grants;
	sqlite3_stmt *ins_decided, *del_decided;
};

void app__slot_block_free(struct app_slot_block *b)
{
	if (!b)
		return;
	for (size_t i = 0; i < b->n; i++)
		free(b->items[i].data);
	free(b);
}

/* ---- helpers ---------------------------------------------------------- */

static uint64_t deadline_ms(const struct app_committer *c, uint64_t slot)
{
	uint64_t end = seq_slot_start(slot + 1, 0, (uint32_t)c->cfg->slot_ms);
	uint64_t lead = (uint64_t)c->cfg->proposer_deadline_ms;

	if (lead >= (uint64_t)c->cfg->slot_ms)
		lead = (uint64_t)c->cfg->slot_ms / 5;
	return end - lead;
}

static const struct grant *grant_of(const struct app_prop *p, uint64_t ns, uint64_t slot)
{
	for (size_t i = 0; i < p->gn; i++)
		if (p->g[i].ns == ns && p->g[i].from <= slot && slot <= p->g[i].to)
			return &p->g[i];
	return NULL;
}

static int winner_granted(const struct app_prop *p, const uint8_t w[20], uint64_t slot)
{
	for (size_t i = 0; i < p->gn; i++)
		if (p->g[i].from <= slot && slot <= p->g[i].to && !memcmp(p->g[i].winner, w, 20))
			return 1;
	return 0;
}

static int is_decided(const struct app_prop *p, const uint8_t w[20])
{
	for (size_t i = 0; i < p->dn; i++)
		if (!memcmp(p->decided[i], w, 20))
			return 1;
	return 0;
}

static void mark_decided(struct app_prop *p, const uint8_t w[20])
{
	if (p->dn == p->dcap) {
		size_t cap = p->dcap ? p->dcap * 2 : 8;
		uint8_t(*v)[20] = realloc(p->decided, cap * 20);

		if (!v)
			APP_PANIC("out of memory recording a proposer decision");
		p->decided = v;
		p->dcap = cap;
	}
	memcpy(p->decided[p->dn++], w, 20);
}

/* Held for whom, if at all: 1 with (*slot, winner) or 0. */
static int held_for(const struct app_committer *c, uint64_t ns, uint64_t *slot, uint8_t w[20])
{
	const struct app_prop *p = c->prop;
	const struct grant *g = grant_of(p, ns, c->open_slot);

	if (g && !is_decided(p, g->winner)) {
		*slot = c->open_slot;
		memcpy(w, g->winner, 20);
		return 1;
	}
	g = grant_of(p, ns, c->open_slot + 1);
	if (g) {
		*slot = c->open_slot + 1;
		memcpy(w, g->winner, 20);
		return 1;
	}
	return 0;
}

static void answer_one(struct app_committer *c, struct app_req *req, uint32_t slot, int is_error,
		       char *json)
{
	struct app_done d = {.kind = DONE_ANSWER, .req = req, .slot = slot,
			     .is_error = is_error, .json = json};

	if (req)
		app__post_done(c, &d, 1);
	else
		free(json);
}

static void addr_hex(char out[43], const uint8_t a[20])
{
	l1_hex_encode(out, a, 20);
}

/* ---- storage ---------------------------------------------------------- */

/* The grants from the open slot on. On a read error the list loaded
 * before is kept whole (never a part of the new one). */
static int load_grants(struct app_committer *c)
{
	struct app_prop *p = c->prop;
	sqlite3_stmt *st = p->sel_grants;
	struct grant *v = NULL;
	size_t n = 0;
	int rc;

	sqlite3_bind_int64(st, 1, (sqlite3_int64)c->open_slot);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct grant *g;

		if (sqlite3_column_bytes(st, 3) != 20)
			continue; /* defensive: app_rights_grant writes 20 bytes */
		g = realloc(v, (n + 1) * sizeof(*g));
		if (!g) {
			rc = SQLITE_NOMEM;
			break;
		}
		v = g;
		g = &v[n++];
		g->from = (uint64_t)sqlite3_column_int64(st, 0);
		g->to = (uint64_t)sqlite3_column_int64(st, 1);
		g->ns = (uint64_t)sqlite3_column_int64(st, 2);
		memcpy(g->winner, sqlite3_column_blob(st, 3), 20);
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		free(v);
		return rc == SQLITE_NOMEM ? APP_ENOMEM : APP_ESQLITE;
	}
	free(p->g);
	p->g = v;
	p->gn = n;
	return 0;
}

/* The winners already decided for the open slot (before a restart). */
static int load_decided(struct app_committer *c, sqlite3 *db)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (sqlite3_prepare_v2(db, "SELECT winner FROM decided WHERE slot = ?", -1, &st, NULL))
		return APP_ESQLITE;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)c->open_slot);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if (sqlite3_column_bytes(st, 0) == 20)
			mark_decided(c->prop, sqlite3_column_blob(st, 0));
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : APP_ESQLITE;
}

static int step_done(sqlite3_stmt *st, char *err, size_t errlen)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	if (rc == SQLITE_DONE)
		return 0;
	snprintf(err, errlen, "%s", sqlite3_errmsg(sqlite3_db_handle(st)));
	return APP_ESQLITE;
}

int app__prop_rider_insert(struct app_committer *c, const struct app_prop_rider *pr, char *err,
			   size_t errlen)
{
	struct app_prop *p = c->prop;
	int rc = 0;

	for (size_t i = 0; !rc && i < pr->n_del; i++) {
		sqlite3_bind_int64(p->del_pending, 1, (sqlite3_int64)pr->del_refs[i]);
		rc = step_done(p->del_pending, err, errlen);
	}
	if (!rc && pr->has_miss) {
		sqlite3_stmt *st = p->ins_miss;

		sqlite3_bind_int64(st, 1, (sqlite3_int64)pr->miss_slot);
		sqlite3_bind_blob(st, 2, pr->miss_winner, 20, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, pr->miss_reason, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, (sqlite3_int64)pr->miss_txs);
		sqlite3_bind_int64(st, 5, (sqlite3_int64)app_wall_ms());
		rc = step_done(st, err, errlen);
	}
	if (!rc && pr->has_decided) { /* the table keeps the open slot's only */
		sqlite3_bind_int64(p->ins_decided, 1, (sqlite3_int64)pr->dec_slot);
		sqlite3_bind_blob(p->ins_decided, 2, pr->dec_winner, 20, SQLITE_STATIC);
		rc = step_done(p->ins_decided, err, errlen);
		if (!rc) {
			sqlite3_bind_int64(p->del_decided, 1, (sqlite3_int64)pr->dec_slot);
			rc = step_done(p->del_decided, err, errlen);
		}
	}
	return rc;
}

static int insert_pending(struct app_committer *c, const struct pend *e, char *err, size_t errlen)
{
	sqlite3_stmt *st = c->prop->ins_pending;
	int rc = 0;

	for (size_t k = 0; !rc && k < e->n; k++) {
		const struct app_sub *s = &e->legs[k];

		sqlite3_bind_int64(st, 1, (sqlite3_int64)e->ref);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)k);
		sqlite3_bind_int64(st, 3, (sqlite3_int64)e->n);
		sqlite3_bind_int64(st, 4, (sqlite3_int64)e->slot);
		sqlite3_bind_blob(st, 5, e->winner, 20, SQLITE_STATIC);
		sqlite3_bind_int64(st, 6, (sqlite3_int64)s->ns);
		sqlite3_bind_text(st, 7, s->ns_name, -1, SQLITE_STATIC);
		sqlite3_bind_blob(st, 8, s->hash, 32, SQLITE_STATIC);
		sqlite3_bind_blob(st, 9, s->data, (int)s->len, SQLITE_STATIC);
		sqlite3_bind_int(st, 10, s->want_hash);
		rc = step_done(st, err, errlen);
	}
	return rc;
}

static void pend_push(struct app_prop *p, const struct pend *e)
{
	if (p->pn == p->pcap) {
		size_t cap = p->pcap ? p->pcap * 2 : 64;
		struct pend *v = realloc(p->p, cap * sizeof(*v));

		if (!v)
			APP_PANIC("out of memory holding transactions for a winner");
		p->p = v;
		p->pcap = cap;
	}
	p->p[p->pn++] = *e;
}

/* Rebuild the held transactions after a restart: nobody waits for them. */
static int load_pending(struct app_committer *c)
{
	struct app_prop *p = c->prop;
	sqlite3_stmt *st;
	struct pend cur = {0};
	int rc;

	if (sqlite3_prepare_v2(app_store_db(c->store),
			       "SELECT ref, leg, legs, slot, winner, ns, ns_name, hash, data, want_hash"
			       " FROM pending ORDER BY ref, leg",
			       -1, &st, NULL) != SQLITE_OK)
		return APP_ESQLITE;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		uint64_t ref = (uint64_t)sqlite3_column_int64(st, 0);
		size_t leg = (size_t)sqlite3_column_int64(st, 1), legs = (size_t)sqlite3_column_int64(st, 2);
		struct app_sub *s;
		const void *data = sqlite3_column_blob(st, 8);
		size_t len = (size_t)sqlite3_column_bytes(st, 8);

		if (legs < 1 || legs > APP_BUNDLE_MAX_LEGS || leg >= legs ||
		    sqlite3_column_bytes(st, 4) != 20 || sqlite3_column_bytes(st, 7) != 32 || !len)
			continue; /* defensive: never written like this */
		if (leg == 0) {
			cur = (struct pend){.ref = ref, .slot = (uint64_t)sqlite3_column_int64(st, 3),
					    .legs = calloc(legs, sizeof(struct app_sub))};
			if (!cur.legs)
				APP_PANIC("out of memory recovering held transactions");
			memcpy(cur.winner, sqlite3_column_blob(st, 4), 20);
		} else if (cur.ref != ref || cur.n != leg) {
			continue; /* defensive: a bundle missing a leg */
		}
		s = &cur.legs[cur.n++];
		s->no_answer = 1;
		s->ns = (uint64_t)sqlite3_column_int64(st, 5);
		snprintf(s->ns_name, sizeof(s->ns_name), "%s", (const char *)sqlite3_column_text(st, 6));
		memcpy(s->hash, sqlite3_column_blob(st, 7), 32);
		s->data = malloc(len);
		if (!s->data)
			APP_PANIC("out of memory recovering held transactions");
		memcpy(s->data, data, len);
		s->len = len;
		s->want_hash = sqlite3_column_int(st, 9);
		s->bundle_leg = (uint16_t)leg;
		if (legs > 1 && leg == 0)
			s->bundle_n = (uint16_t)legs;
		if (cur.n == legs) {
			pend_push(p, &cur);
			memset(&cur, 0, sizeof(cur));
		}
		if (ref >= p->next_ref)
			p->next_ref = ref + 1;
	}
	sqlite3_finalize(st);
	atomic_store(&c->stats.prop_pending, p->pn);
	if (p->pn)
		app_info("proposer_recovered", "held=%zu", p->pn);
	return rc == SQLITE_DONE ? 0 : APP_ESQLITE;
}

int app__prop_start(struct app_committer *c, char *errbuf, size_t errlen)
{
	sqlite3 *db = app_store_db(c->store);
	struct app_prop *p = calloc(1, sizeof(*p));
	int rc;

	if (!p)
		return APP_ENOMEM;
	c->prop = p;
	p->next_ref = 1;
	if (sqlite3_prepare_v3(db,
			       "INSERT INTO pending(ref, leg, legs, slot, winner, ns, ns_name, hash,"
			       " data, want_hash) VALUES (?,?,?,?,?,?,?,?,?,?)",
			       -1, SQLITE_PREPARE_PERSISTENT, &p->ins_pending, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v3(db, "DELETE FROM pending WHERE ref = ?", -1,
			       SQLITE_PREPARE_PERSISTENT, &p->del_pending, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v3(db,
			       "INSERT INTO misses(slot, winner, reason, txs, at_ms)"
			       " VALUES (?,?,?,?,?)",
			       -1, SQLITE_PREPARE_PERSISTENT, &p->ins_miss, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v3(db,
			       "SELECT from_slot, to_slot, rollup, winner FROM grants"
			       " WHERE to_slot >= ?",
			       -1, SQLITE_PREPARE_PERSISTENT, &p->sel_grants, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v3(db, "INSERT OR IGNORE INTO decided(slot, winner) VALUES (?,?)", -1,
			       SQLITE_PREPARE_PERSISTENT, &p->ins_decided, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v3(db, "DELETE FROM decided WHERE slot < ?", -1,
			       SQLITE_PREPARE_PERSISTENT, &p->del_decided, NULL) != SQLITE_OK) {
		snprintf(errbuf, errlen, "proposer statements: %s", sqlite3_errmsg(db));
		return APP_ESQLITE;
	}
	rc = load_grants(c);
	if (!rc)
		rc = load_decided(c, db);
	if (!rc)
		rc = load_pending(c);
	if (rc)
		snprintf(errbuf, errlen, "loading grants, decisions and held transactions: %s",
			 sqlite3_errmsg(db));
	return rc;
}

void app__prop_stop(struct app_committer *c)
{
	struct app_prop *p = c->prop;

	if (!p)
		return;
	for (size_t i = 0; i < p->pn; i++) {
		for (size_t k = 0; k < p->p[i].n; k++)
			free(p->p[i].legs[k].data);
		free(p->p[i].legs);
	}
	for (size_t i = 0; i < p->bn; i++)
		app__slot_block_free(p->blocks[i].block);
	sqlite3_finalize(p->ins_pending);
	sqlite3_finalize(p->del_pending);
	sqlite3_finalize(p->ins_miss);
	sqlite3_finalize(p->sel_grants);
	sqlite3_finalize(p->ins_decided);
	sqlite3_finalize(p->del_decided);
	free(p->p);
	free(p->g);
	free(p->decided);
	free(p->blocks);
	free(p);
	c->prop = NULL;
}

void app__prop_slot_rolled(struct app_committer *c)
{
	struct app_prop *p = c->prop;

	p->dn = 0;
	if (load_grants(c))
		app_warn("proposer_grants_unreadable", "slot=%llu keeping=%zu",
			 (unsigned long long)c->open_slot, p->gn);
}

/* ---- intake ----------------------------------------------------------- */

/* {"ref":R,"slot":S,"deadlineMs":D,"bundle":B,"txs":[{...}]}: what the
 * winner's "pending" subscription receives. */
static char *pend_json(const struct app_committer *c, const struct pend *e)
{
	size_t cap = 160, w;
	char *out;

	for (size_t k = 0; k < e->n; k++)
		cap += 200 + 2 * e->legs[k].len;
	out = malloc(cap);
	if (!out)
		return NULL;
	w = (size_t)snprintf(out, cap,
			     "{\"ref\":%llu,\"slot\":%llu,\"deadlineMs\":%llu,\"bundle\":%s,\"txs\":[",
			     (unsigned long long)e->ref, (unsigned long long)e->slot,
			     (unsigned long long)deadline_ms(c, e->slot), e->n > 1 ? "true" : "false");
	for (size_t k = 0; k < e->n; k++) {
		const struct app_sub *s = &e->legs[k];

		w += (size_t)snprintf(out + w, cap - w,
				      "%s{\"namespace\":\"%s\",\"chainId\":%llu,\"hash\":\"",
				      k ? "," : "", s->ns_name, (unsigned long long)s->ns);
		l1_hex_encode(out + w, s->hash, 32);
		w += 66;
		w += (size_t)snprintf(out + w, cap - w, "\",\"data\":\"");
		l1_hex_encode(out + w, s->data, s->len);
		w += 2 + 2 * s->len;
		w += (size_t)snprintf(out + w, cap - w, "\"}");
	}
	snprintf(out + w, cap - w, "]}");
	return out;
}

size_t app__prop_intake(struct app_committer *c, struct app_sub *items, size_t n)
{
	struct app_prop *p = c->prop;
	struct pend *held = NULL;
	size_t nh = 0, w = 0, i = 0;
	char err[256];
	int rc = 0;

	if (!p->gn && !p->pn) {
		/* fast path: no grants at all; only stray sub-blocks leave */
		for (; i < n; i++) {
			if (items[i].block) {
				answer_one(c, items[i].req, items[i].slot, 1,
					   app_error_json(RPC_SLOT_BLOCK_REJECTED,
							  "no rollup is granted to any proposer now"));
				app__slot_block_free(items[i].block);
			} else {
				items[w++] = items[i];
			}
		}
		return w;
	}
	while (i < n) {
		size_t legs = items[i].bundle_n ? items[i].bundle_n : 1, nheld = 0;
		uint64_t slot0 = 0;
		uint8_t w0[20] = {0};
		int same = 1;

		if (items[i].block) {
			if (p->bn == p->bcap) {
				size_t cap = p->bcap ? p->bcap * 2 : 8;
				struct app_sub *v = realloc(p->blocks, cap * sizeof(*v));

				if (!v)
					APP_PANIC("out of memory queueing a sub-block");
				p->blocks = v;
				p->bcap = cap;
			}
			p->blocks[p->bn++] = items[i++];
			continue;
		}
		for (size_t k = 0; k < legs; k++) {
			uint64_t slot;
			uint8_t win[20];

			if (!held_for(c, items[i + k].ns, &slot, win))
				continue;
			if (nheld++ == 0) {
				slot0 = slot;
				memcpy(w0, win, 20);
			} else if (slot != slot0 || memcmp(win, w0, 20)) {
				same = 0;
			}
		}
		if (!nheld) {
			memmove(&items[w], &items[i], legs * sizeof(*items));
			w += legs;
		} else if (nheld != legs || !same) {
			answer_one(c, items[i].req, items[i].slot, 1,
				   app_error_json(RPC_BUNDLE_CONFLICT,
						  "bundle not sequenced: its rollups are ordered by "
						  "different parties in this slot (a slot winner orders "
						  "only its own rollups); nothing from it was stored"));
			for (size_t k = 0; k < legs; k++)
				free(items[i + k].data);
		} else {
			struct pend *e;

			held = realloc(held, (nh + 1) * sizeof(*held));
			if (!held)
				APP_PANIC("out of memory holding transactions");
			e = &held[nh++];
			*e = (struct pend){.ref = p->next_ref++, .slot = slot0, .n = legs,
					   .legs = malloc(legs * sizeof(struct app_sub))};
			if (!e->legs)
				APP_PANIC("out of memory holding transactions");
			memcpy(e->winner, w0, 20);
			memcpy(e->legs, &items[i], legs * sizeof(*items));
		}
		i += legs;
	}
	if (!nh)
		return w;
	/* Durable before the winner hears of them (one fsync for the batch). */
	rc = app_store_begin(c->store, err, sizeof(err));
	for (size_t k = 0; !rc && k < nh; k++)
		rc = insert_pending(c, &held[k], err, sizeof(err));
	if (!rc)
		rc = app__commit_durable(c, err, sizeof(err));
	if (rc) {
		app_store_rollback(c->store);
		atomic_store(&c->stats.halted, 1);
		app_error("sequencer_halted", "reason=\"holding transactions for a winner\" "
					      "sqlite=\"%s\"", err);
		for (size_t k = 0; k < nh; k++) {
			answer_one(c, held[k].legs[0].req, held[k].legs[0].slot, 1,
				   app_error_json(RPC_HALTED, "sequencer halted after a storage "
							      "failure while holding this request "
							      "for a slot's winner; after a restart, "
							      "mezz_getPreconfirmation says whether "
							      "it was stored"));
			for (size_t l = 0; l < held[k].n; l++)
				free(held[k].legs[l].data);
			free(held[k].legs);
		}
		free(held);
		return w;
	}
	for (size_t k = 0; k < nh; k++) {
		struct app_done d = {.kind = DONE_PENDING, .height = held[k].ref,
				     .json = pend_json(c, &held[k])};

		memcpy(d.winner, held[k].winner, 20);
		pend_push(p, &held[k]);
		if (d.json)
			app__post_done(c, &d, 1);
	}
	atomic_store(&c->stats.prop_pending, p->pn);
	free(held);
	return w;
}

/* ---- decisions -------------------------------------------------------- */

static struct pend *pend_find(struct app_prop *p, uint64_t ref)
{
	size_t lo = 0, hi = p->pn; /* ascending refs */

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (p->p[mid].ref < ref)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < p->pn && p->p[lo].ref == ref ? &p->p[lo] : NULL;
}

/* "txs[3]" or "txs[3].bundle[1]": how the winner named item i. */
static void sb_where(char *out, size_t len, const struct app_sb_item *it)
{
	if (it->bundle_n || it->bundle_leg)
		snprintf(out, len, "txs[%u].bundle[%u]", it->at, it->bundle_leg);
	else
		snprintf(out, len, "txs[%u]", it->at);
}

/*
 * A leg of the winner's own bundle must be new: not stored already and not
 * among the transactions held for (winner, slot), which go into the same
 * group. Otherwise the group's savepoint would drop the whole bundle
 * silently after the winner was told it was accepted.
 */
static int leg_is_new(struct app_committer *c, const struct app_slot_block *b,
		      const struct app_sb_item *it)
{
	const struct app_prop *p = c->prop;
	struct app_tx found;

	if (app_store_tx_find(c->store, it->ns, it->hash, &found) != APP_ENOTFOUND)
		return 0;
	for (size_t i = 0; i < p->pn; i++) {
		const struct pend *e = &p->p[i];

		if (e->slot != b->slot || memcmp(e->winner, b->winner, 20))
			continue;
		for (size_t k = 0; k < e->n; k++)
			if (e->legs[k].ns == it->ns && !memcmp(e->legs[k].hash, it->hash, 32))
				return 0;
	}
	return 1;
}

/*
 * The ref of a bundle (two legs or more) held for b's (winner, slot) with a
 * leg (ns, hash), other than `except`; 0 if none. A user's held bundle is
 * all-or-nothing: one of its legs sequenced ahead of it by the winner (its
 * own copy of the leg, or the same transaction held again as a single)
 * made the bundle fail while the rest of the block was accepted.
 */
static uint64_t held_bundle_with(const struct app_prop *p, const struct app_slot_block *b,
				 uint64_t ns, const uint8_t hash[32], uint64_t except)
{
	for (size_t i = 0; i < p->pn; i++) {
		const struct pend *e = &p->p[i];

		if (e->n < 2 || e->ref == except || e->slot != b->slot ||
		    memcmp(e->winner, b->winner, 20))
			continue;
		for (size_t k = 0; k < e->n; k++)
			if (e->legs[k].ns == ns && !memcmp(e->legs[k].hash, hash, 32))
				return e->ref;
	}
	return 0;
}

static int sb_validate(struct app_committer *c, const struct app_slot_block *b, char *why,
		       size_t whylen)
{
	struct app_prop *p = c->prop;
	char where[64], other[64];
	uint64_t bref;

	for (size_t i = 0; i < b->n; i++) {
		const struct app_sb_item *it = &b->items[i];

		if (it->ref) {
			struct pend *e = pend_find(p, it->ref);

			for (size_t j = 0; j < i; j++)
				if (b->items[j].ref == it->ref) {
					snprintf(why, whylen, "txs[%zu] repeats pendingRef %llu of txs[%zu]",
						 i, (unsigned long long)it->ref, j);
					return -1;
				}
			if (!e || e->slot != b->slot || memcmp(e->winner, b->winner, 20)) {
				snprintf(why, whylen,
					 "txs[%zu]: pendingRef %llu is not a transaction held for you "
					 "in slot %llu (unknown, already sequenced or another slot's)",
					 i, (unsigned long long)it->ref, (unsigned long long)b->slot);
				return -1;
			}
			if (e->n == 1 && (bref = held_bundle_with(p, b, e->legs[0].ns,
								   e->legs[0].hash, e->ref))) {
				snprintf(why, whylen,
					 "txs[%zu]: pendingRef %llu is also a leg of bundle pendingRef "
					 "%llu, which is all-or-nothing: include the bundle",
					 i, (unsigned long long)it->ref, (unsigned long long)bref);
				return -1;
			}
			continue;
		}
		sb_where(where, sizeof(where), it);
		bref = held_bundle_with(p, b, it->ns, it->hash, 0);
		if (bref) {
			snprintf(why, whylen,
				 "%s is a leg of bundle pendingRef %llu held for you, which is "
				 "all-or-nothing: include the bundle by its pendingRef",
				 where, (unsigned long long)bref);
			return -1;
		}
		{
			const struct grant *g = grant_of(p, it->ns, b->slot);

			if (!g || memcmp(g->winner, b->winner, 20)) {
				snprintf(why, whylen,
					 "%s: namespace '%s' is not granted to you for slot %llu", where,
					 it->ns_name, (unsigned long long)b->slot);
				return -1;
			}
		}
		for (size_t j = 0; j < i; j++)
			if (!b->items[j].ref && b->items[j].ns == it->ns &&
			    !memcmp(b->items[j].hash, it->hash, 32)) {
				sb_where(other, sizeof(other), &b->items[j]);
				snprintf(why, whylen, "%s repeats %s", where, other);
				return -1;
			}
		if ((it->bundle_n || it->bundle_leg) && !leg_is_new(c, b, it)) {
			snprintf(why, whylen,
				 "%s is already sequenced or held for this slot: a bundle is "
				 "all-or-nothing, so none of it would land", where);
			return -1;
		}
	}
	return 0;
}

/*
 * Decide (winner, slot): b == NULL is the fallback (a miss with `reason`).
 * Commits one group (see the top of the file); answers the winner on req.
 */
static void decide(struct app_committer *c, const uint8_t winner[20], uint64_t slot,
		   struct app_slot_block *b, const char *reason)
{
	struct app_prop *p = c->prop;
	struct app_sub *s = NULL;
	uint64_t *refs = NULL;
	size_t ns = 0, nrefs = 0, cap = 0, included = 0, own = 0, w = 0;
	uint8_t *used = calloc(p->pn ? p->pn : 1, 1);
	struct app_prop_rider pr = {0};
	char addr[43];

	if (!used)
		APP_PANIC("out of memory deciding a slot");
	for (size_t i = 0; i < p->pn; i++)
		if (p->p[i].slot == slot && !memcmp(p->p[i].winner, winner, 20))
			cap += p->p[i].n, nrefs++;
	cap += b ? b->n : 0;
	s = calloc(cap ? cap : 1, sizeof(*s));
	refs = calloc(nrefs ? nrefs : 1, sizeof(*refs));
	if (!s || !refs)
		APP_PANIC("out of memory deciding a slot");
	nrefs = 0;
	/* the winner's order first */
	for (size_t i = 0; b && i < b->n; i++) {
		struct app_sb_item *it = &b->items[i];

		if (it->ref) {
			struct pend *e = pend_find(p, it->ref);

			memcpy(&s[ns], e->legs, e->n * sizeof(*s));
			ns += e->n;
			used[e - p->p] = 1;
			refs[nrefs++] = e->ref;
			included++;
		} else {
			/* bundle legs keep their marks: commit_group stores all of
			 * them, contiguous, or none */
			s[ns] = (struct app_sub){.no_answer = 1, .ns = it->ns, .data = it->data,
						 .len = it->len, .bundle_n = it->bundle_n,
						 .bundle_leg = it->bundle_leg};
			snprintf(s[ns].ns_name, sizeof(s[ns].ns_name), "%s", it->ns_name);
			memcpy(s[ns].hash, it->hash, 32);
			it->data = NULL; /* the group owns it now */
			ns++;
			own++;
		}
	}
	/* then what it left out, in arrival order */
	for (size_t i = 0; i < p->pn; i++) {
		struct pend *e = &p->p[i];

		if (used[i] || e->slot != slot || memcmp(e->winner, winner, 20))
			continue;
		memcpy(&s[ns], e->legs, e->n * sizeof(*s));
		ns += e->n;
		used[i] = 1;
		refs[nrefs++] = e->ref;
	}
	for (size_t i = 0; i < p->pn; i++) {
		if (used[i])
			free(p->p[i].legs); /* the subs were copied into s */
		else
			p->p[w++] = p->p[i];
	}
	p->pn = w;
	atomic_store(&c->stats.prop_pending, p->pn);
	pr.del_refs = refs;
	pr.n_del = nrefs;
	if (!b) {
		pr.has_miss = 1;
		pr.miss_slot = slot;
		memcpy(pr.miss_winner, winner, 20);
		pr.miss_reason = reason;
		pr.miss_txs = nrefs;
	}
	if (slot == c->open_slot) {
		mark_decided(p, winner);
		pr.has_decided = 1;
		pr.dec_slot = slot;
		memcpy(pr.dec_winner, winner, 20);
	}
	/* Counted before the commit answers the senders, so a sender that has
	 * its receipt also sees the decision in mezz_status (a halt below
	 * stops everything anyway). */
	if (b) {
		atomic_fetch_add(&c->stats.prop_accepted, 1);
		app_metric_add(APP_M_proposer_blocks_total, 1);
	} else {
		atomic_fetch_add(&c->stats.prop_misses, 1);
		app_metric_add(APP_M_proposer_misses_total, 1);
	}
	app__commit_decision(c, s, ns, &pr);
	addr_hex(addr, winner);
	if (atomic_load(&c->stats.halted)) {
		/* the group's own items were answered by the halt */
	} else if (b) {
		app_info("proposer_block", "slot=%llu winner=%s own=%zu included=%zu fallback=%zu",
			 (unsigned long long)slot, addr, own, included, nrefs - included);
	} else {
		app_info("proposer_miss", "slot=%llu winner=%s reason=%s fallback=%zu",
			 (unsigned long long)slot, addr, reason, nrefs);
	}
	(void)included;
	free(s);
	free(refs);
	free(used);
}

void app__prop_halted(struct app_committer *c)
{
	struct app_prop *p = c->prop;

	if (!p || !p->pn)
		return;
	/* Their pending rows are durable: a restart sequences them. */
	for (size_t i = 0; i < p->pn; i++) {
		struct pend *e = &p->p[i];

		answer_one(c, e->legs[0].req, e->legs[0].slot, 1,
			   app_error_json(RPC_HALTED,
					  "sequencer halted after a storage failure; this request "
					  "is stored, held for slot %llu's winner, and is sequenced "
					  "when the daemon restarts",
					  (unsigned long long)e->slot));
		for (size_t l = 0; l < e->n; l++)
			free(e->legs[l].data);
		free(e->legs);
	}
	p->pn = 0;
	atomic_store(&c->stats.prop_pending, 0);
}

void app__prop_blocks(struct app_committer *c)
{
	struct app_prop *p = c->prop;

	for (size_t k = 0; k < p->bn; k++) {
		struct app_sub *sub = &p->blocks[k];
		struct app_slot_block *b = sub->block;
		char why[400];
		size_t included = 0, own = 0, bundles = 0;

		if (atomic_load(&c->stats.halted)) { /* e.g. by the intake just before */
			answer_one(c, sub->req, sub->slot, 1,
				   app_error_json(RPC_HALTED, "sequencer halted after a storage "
							      "failure; the sub-block was not taken"));
			app__slot_block_free(b);
			continue;
		}
		if (b->slot != c->open_slot || app_wall_ms() >= deadline_ms(c, b->slot)) {
			snprintf(why, sizeof(why),
				 "sub-block for slot %llu refused: the open slot is %llu and a slot's "
				 "sub-block is due %ld ms before it ends",
				 (unsigned long long)b->slot, (unsigned long long)c->open_slot,
				 c->cfg->proposer_deadline_ms);
		} else if (!winner_granted(p, b->winner, b->slot)) {
			snprintf(why, sizeof(why), "your address holds no grant for slot %llu",
				 (unsigned long long)b->slot);
		} else if (is_decided(p, b->winner)) {
			snprintf(why, sizeof(why),
				 "slot %llu is already decided for you (a sub-block was accepted or "
				 "the appliance ordered it)",
				 (unsigned long long)b->slot);
		} else if (sb_validate(c, b, why, sizeof(why))) {
			/* invalid: refused, and the appliance orders the slot */
			answer_one(c, sub->req, sub->slot, 1,
				   app_error_json(RPC_SLOT_BLOCK_REJECTED,
						  "sub-block rejected: %s; the appliance orders these "
						  "rollups for this slot",
						  why));
			decide(c, b->winner, b->slot, NULL, "invalid");
			app__slot_block_free(b);
			continue;
		} else {
			char ans[200];
			uint64_t slot = b->slot;

			for (size_t i = 0; i < b->n; i++) {
				b->items[i].ref ? included++ : own++;
				bundles += b->items[i].bundle_n != 0;
			}
			decide(c, b->winner, slot, b, NULL);
			app__slot_block_free(b);
			if (atomic_load(&c->stats.halted)) {
				answer_one(c, sub->req, sub->slot, 1,
					   app_error_json(RPC_HALTED, "sequencer halted after a "
								      "storage failure"));
				continue;
			}
			snprintf(ans, sizeof(ans),
				 "{\"slot\":%llu,\"accepted\":true,\"included\":%zu,\"own\":%zu,"
				 "\"bundles\":%zu}",
				 (unsigned long long)slot, included, own, bundles);
			/* the winner's own transactions have no other answer: it
			 * waits, like theirs, until the decision is durable */
			if (sub->req)
				app__answer_durable(c, sub->req, sub->slot, strdup(ans));
			continue;
		}
		answer_one(c, sub->req, sub->slot, 1,
			   app_error_json(RPC_SLOT_BLOCK_REJECTED, "%s", why));
		app__slot_block_free(b);
	}
	p->bn = 0;
}

uint64_t app__prop_tick(struct app_committer *c)
{
	struct app_prop *p = c->prop;
	uint64_t S = c->open_slot, dl = deadline_ms(c, S), next = 0;

	/* held for a slot already gone (a restart, or a clock that jumped) */
	while (!atomic_load(&c->stats.halted)) {
		size_t i = 0;

		while (i < p->pn && p->p[i].slot >= S)
			i++;
		if (i == p->pn)
			break;
		{
			uint8_t w[20];
			uint64_t slot = p->p[i].slot;

			memcpy(w, p->p[i].winner, 20);
			decide(c, w, slot, NULL, "restart");
		}
	}
	for (size_t i = 0; i < p->gn && !atomic_load(&c->stats.halted); i++) {
		const struct grant *g = &p->g[i];
		uint8_t w[20];

		if (g->from > S || S > g->to || is_decided(p, g->winner))
			continue;
		if (app_wall_ms() < dl) {
			next = dl;
			continue;
		}
		memcpy(w, g->winner, 20); /* decide() may not move grants, but be plain */
		decide(c, w, S, NULL, "deadline");
	}
	return next;
}

/* ---- grants ----------------------------------------------------------- */

int app_rights_grant(struct app_store *s, uint64_t from_slot, uint64_t to_slot,
		     const uint64_t *rollups, size_t n, const uint8_t winner[static 20])
{
	static const uint8_t zero[20];
	sqlite3 *db = app_store_db(s);
	sqlite3_stmt *ns = NULL, *ov = NULL, *ins = NULL;
	int rc = 0;

	if (from_slot > to_slot || !n || n > 256 || !memcmp(winner, zero, 20) ||
	    to_slot > (uint64_t)INT64_MAX)
		return APP_EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (!rollups[i])
			return APP_EINVAL;
		for (size_t j = 0; j < i; j++)
			if (rollups[i] == rollups[j])
				return APP_EINVAL;
	}
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return APP_ESQLITE;
	if (sqlite3_prepare_v2(db, "SELECT 1 FROM namespaces WHERE chain_id = ?", -1, &ns, NULL) ||
	    sqlite3_prepare_v2(db,
			       "SELECT 1 FROM grants WHERE rollup = ? AND from_slot <= ?"
			       " AND to_slot >= ?",
			       -1, &ov, NULL) ||
	    sqlite3_prepare_v2(db,
			       "INSERT INTO grants(from_slot, to_slot, rollup, winner, created_ms)"
			       " VALUES (?,?,?,?,?)",
			       -1, &ins, NULL)) {
		rc = APP_ESQLITE;
		goto out;
	}
	for (size_t i = 0; !rc && i < n; i++) {
		sqlite3_bind_int64(ns, 1, (sqlite3_int64)rollups[i]);
		if (sqlite3_step(ns) != SQLITE_ROW)
			rc = APP_ENOTFOUND;
		sqlite3_reset(ns);
		if (rc)
			break;
		sqlite3_bind_int64(ov, 1, (sqlite3_int64)rollups[i]);
		sqlite3_bind_int64(ov, 2, (sqlite3_int64)to_slot);
		sqlite3_bind_int64(ov, 3, (sqlite3_int64)from_slot);
		if (sqlite3_step(ov) == SQLITE_ROW)
			rc = APP_EEXIST;
		sqlite3_reset(ov);
		if (rc)
			break;
		sqlite3_bind_int64(ins, 1, (sqlite3_int64)from_slot);
		sqlite3_bind_int64(ins, 2, (sqlite3_int64)to_slot);
		sqlite3_bind_int64(ins, 3, (sqlite3_int64)rollups[i]);
		sqlite3_bind_blob(ins, 4, winner, 20, SQLITE_STATIC);
		sqlite3_bind_int64(ins, 5, (sqlite3_int64)app_wall_ms());
		if (sqlite3_step(ins) != SQLITE_DONE)
			rc = APP_ESQLITE;
		sqlite3_reset(ins);
	}
out:
	sqlite3_finalize(ns);
	sqlite3_finalize(ov);
	sqlite3_finalize(ins);
	if (!rc && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		rc = APP_ESQLITE;
	if (rc)
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}
