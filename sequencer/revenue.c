/*
 * revenue.c - settling a sale: the draw in each winning bundle, charges and
 * refunds per buyer, the burn, and each rollup's credit; plus the check and
 * the canonical encoding of the settlement a bridge posts to L1.
 *
 * Money rule: every ticket is paid into escrow when bought. Tickets on a
 * winning bundle are all spent (the bundle's revenue, tickets x price),
 * whether or not they hold the drawn ticket; the drawn ticket's buyer gets
 * the sequencing rights. Tickets on every other bundle are refunded in full,
 * by pull: the settlement lists what each buyer may withdraw.
 */
#include "sequencer/bytes.h"
#include "sequencer/rights.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#define SETTLE_MAGIC "MZST"
#define SETTLE_VERSION 1u

void seq_revenue_split(uint64_t revenue, uint32_t burn_bps, const uint64_t *weights, size_t n,
		       uint64_t *shares, uint64_t *burn)
{
	unsigned __int128 rem[SEQ_RIGHTS_MAX_ROLLUPS], total = 0;
	bool got[SEQ_RIGHTS_MAX_ROLLUPS] = {false};
	uint64_t dist, given = 0;
	bool equal;

	assert(n >= 1 && n <= SEQ_RIGHTS_MAX_ROLLUPS && burn_bps <= SEQ_RIGHTS_BPS);
	*burn = (uint64_t)((unsigned __int128)revenue * burn_bps / SEQ_RIGHTS_BPS);
	dist = revenue - *burn;
	for (size_t i = 0; i < n; i++)
		total += weights[i];
	equal = total == 0;
	if (equal)
		total = n;
	for (size_t i = 0; i < n; i++) {
		unsigned __int128 num = (unsigned __int128)dist * (equal ? 1 : weights[i]);

		shares[i] = (uint64_t)(num / total);
		rem[i] = num % total;
		given += shares[i];
	}
	/* Fewer than n gwei are left: one each to the largest remainders. */
	assert(dist - given < n);
	for (uint64_t left = dist - given; left > 0; left--) {
		size_t best = SIZE_MAX;

		for (size_t i = 0; i < n; i++)
			if (!got[i] && (best == SIZE_MAX || rem[i] > rem[best]))
				best = i;
		got[best] = true;
		shares[best]++;
	}
}

uint64_t seq_revenue_weight(const struct seq_sale *s, uint32_t r)
{
	/* The reserve, fixed in the rollup's offer before the sale opened and
	 * costly to inflate (a bundle that cannot pay it is invalid, and the
	 * rollup goes unsold). Not the tickets on the rollup's singleton: a
	 * rollup in a shared winning bundle never won its singleton, so those
	 * tickets are always refunded and free to place. Counted up to the
	 * reserve, they let a rollup raise its own share; counted below it,
	 * anyone lower a rival's (one refunded ticket each on three rivals'
	 * singletons took 69 of 90 instead of 23). docs/RIGHTS.md, "Shill
	 * bidding". */
	assert(r < s->n_rollups);
	return s->rollups[r].reserve;
}

struct row {
	uint8_t addr[SEQ_ADDR_LEN];
	uint64_t paid, charged;
};

static int row_cmp(const void *a, const void *b)
{
	return memcmp(a, b, SEQ_ADDR_LEN);
}

int seq_sale_settle(struct seq_sale *s, uint64_t now_slot, const uint8_t seed[static 32],
		    struct seq_settlement *out)
{
	const struct seq_alloc *a = &s->best;
	int32_t *winner_of = NULL; /* bundle -> index in winners, or -1 */
	struct row *rows = NULL;
	uint64_t *weights = NULL, *shares = NULL, *credit = NULL;
	int32_t *owner = NULL; /* rollup -> index in winners, or -1 */
	size_t np = s->n_purchases, k;
	int rc = SEQ_ENOMEM;

	if (s->state != SEQ_SALE_CLOSED)
		return SEQ_ESTATE;
	if (now_slot < seq_sale_deadline_slot(s))
		return SEQ_EEARLY;
	memset(out, 0, sizeof(*out));
	out->sale_id = s->p.sale_id;
	out->price = s->p.price;
	memcpy(out->seed, seed, 32);

	winner_of = malloc((s->n_bundles ? s->n_bundles : 1) * sizeof(*winner_of));
	rows = malloc((np ? np : 1) * sizeof(*rows));
	weights = malloc((s->n_rollups ? s->n_rollups : 1) * sizeof(*weights));
	shares = malloc((s->n_rollups ? s->n_rollups : 1) * sizeof(*shares));
	credit = malloc((s->n_rollups ? s->n_rollups : 1) * sizeof(*credit));
	owner = malloc((s->n_rollups ? s->n_rollups : 1) * sizeof(*owner));
	out->winners = malloc((a->n ? a->n : 1) * sizeof(*out->winners));
	out->credits = malloc((s->n_rollups ? s->n_rollups : 1) * sizeof(*out->credits));
	if (winner_of == NULL || rows == NULL || weights == NULL || shares == NULL ||
	    credit == NULL || owner == NULL || out->winners == NULL || out->credits == NULL)
		goto fail;
	for (size_t b = 0; b < s->n_bundles; b++)
		winner_of[b] = -1;
	for (size_t r = 0; r < s->n_rollups; r++)
		owner[r] = -1;

	/* The draw: one ticket per winning bundle, purchases in purchase order. */
	for (k = 0; k < a->n; k++) {
		uint32_t b = a->bundle[k];
		struct seq_settle_winner *w = &out->winners[k];
		uint64_t t = seq_draw_ticket(seed, s->p.sale_id, b, s->bundles[b].tickets);
		uint64_t seen = 0;

		winner_of[b] = (int32_t)k;
		w->bundle = b;
		w->ticket = t;
		w->revenue = seq__value(s, s->bundles[b].tickets);
		for (size_t i = 0; i < np; i++) {
			if (s->purchases[i].bundle != b)
				continue;
			seen += s->purchases[i].tickets;
			if (t < seen) {
				w->purchase = (uint32_t)i;
				memcpy(w->buyer, s->purchases[i].buyer, SEQ_ADDR_LEN);
				break;
			}
		}
		assert(t < seen);
		out->revenue += w->revenue;
	}
	out->n_winners = a->n;

	/* Credits: split each winning bundle among its rollups (ascending
	 * id). Bundles are disjoint, so each rollup is credited at most once;
	 * emitting by rollup index keeps the credits in ascending id. */
	for (k = 0; k < a->n; k++) {
		const struct seq_bundle *bu = &s->bundles[a->bundle[k]];
		size_t m = 0;
		uint64_t burn;

		for (uint32_t r = bu->low; r < s->n_rollups; r++)
			if (seq__bit(bu->bits, r))
				weights[m++] = seq_revenue_weight(s, r);
		seq_revenue_split(out->winners[k].revenue, s->p.burn_bps, weights, m, shares,
				  &burn);
		out->burn += burn;
		m = 0;
		for (uint32_t r = bu->low; r < s->n_rollups; r++) {
			if (!seq__bit(bu->bits, r))
				continue;
			credit[r] = shares[m++];
			owner[r] = (int32_t)k;
		}
	}
	for (uint32_t r = 0; r < s->n_rollups; r++) {
		if (owner[r] < 0)
			continue;
		out->credits[out->n_credits].rollup = s->rollups[r].id;
		out->credits[out->n_credits].winner = (uint32_t)owner[r];
		out->credits[out->n_credits].amount = credit[r];
		out->n_credits++;
	}

	/* Buyers: one row per purchase, sorted by address, then merged. */
	for (size_t i = 0; i < np; i++) {
		const struct seq_purchase *pu = &s->purchases[i];

		memcpy(rows[i].addr, pu->buyer, SEQ_ADDR_LEN);
		rows[i].paid = seq__value(s, pu->tickets);
		rows[i].charged = winner_of[pu->bundle] >= 0 ? rows[i].paid : 0;
	}
	qsort(rows, np, sizeof(*rows), row_cmp);
	out->buyers = malloc((np ? np : 1) * sizeof(*out->buyers));
	if (out->buyers == NULL)
		goto fail;
	for (size_t i = 0; i < np; i++) {
		struct seq_settle_buyer *by;

		/* A void purchase escrowed nothing: a buyer with nothing else
		 * is no buyer of the sale (the Inbox requires escrow > 0). */
		if (rows[i].paid == 0)
			continue;
		if (out->n_buyers == 0 ||
		    memcmp(out->buyers[out->n_buyers - 1].addr, rows[i].addr, SEQ_ADDR_LEN) != 0) {
			by = &out->buyers[out->n_buyers++];
			memcpy(by->addr, rows[i].addr, SEQ_ADDR_LEN);
			by->paid = by->charged = 0;
		}
		by = &out->buyers[out->n_buyers - 1];
		by->paid += rows[i].paid;
		by->charged += rows[i].charged;
		by->refund = by->paid - by->charged;
	}
	s->state = SEQ_SALE_SETTLED;
	rc = 0;
	goto out;
fail:
	seq_settlement_free(out);
out:
	free(winner_of);
	free(rows);
	free(weights);
	free(shares);
	free(credit);
	free(owner);
	return rc;
}

int seq_settlement_check(const struct seq_settlement *st)
{
	unsigned __int128 charged = 0, credited = 0, won = 0;

	for (size_t i = 0; i < st->n_winners; i++) {
		if (i > 0 && st->winners[i].bundle <= st->winners[i - 1].bundle)
			return SEQ_EBALANCE;
		won += st->winners[i].revenue;
	}
	for (size_t i = 0; i < st->n_buyers; i++) {
		const struct seq_settle_buyer *b = &st->buyers[i];

		/* Strictly ascending addresses: nobody appears, or pays, twice. */
		if (i > 0 && memcmp(st->buyers[i - 1].addr, b->addr, SEQ_ADDR_LEN) >= 0)
			return SEQ_EBALANCE;
		if (b->charged > b->paid || b->refund != b->paid - b->charged)
			return SEQ_EBALANCE;
		charged += b->charged;
	}
	for (size_t i = 0; i < st->n_credits; i++) {
		if (i > 0 && st->credits[i].rollup <= st->credits[i - 1].rollup)
			return SEQ_EBALANCE;
		if (st->credits[i].winner >= st->n_winners)
			return SEQ_EBALANCE;
		credited += st->credits[i].amount;
	}
	if (charged != won || won != st->revenue || charged != credited + st->burn)
		return SEQ_EBALANCE;
	return 0;
}

#define HDR_LEN (4 + 4 + 8 + 8 + 32 + 8 + 8)
#define WINNER_LEN (4 + 4 + 8 + SEQ_ADDR_LEN + 8)
#define BUYER_LEN (SEQ_ADDR_LEN + 8 + 8 + 8)
#define CREDIT_LEN (8 + 4 + 8)

size_t seq_settlement_encode(const struct seq_settlement *st, uint8_t *buf, size_t len)
{
	size_t need = HDR_LEN + 4 + st->n_winners * WINNER_LEN + 4 + st->n_buyers * BUYER_LEN +
		      4 + st->n_credits * CREDIT_LEN;
	uint8_t *p = buf;

	if (buf == NULL || len < need)
		return need;
	memcpy(p, SETTLE_MAGIC, 4);
	p = seq__put_u32(p + 4, SETTLE_VERSION);
	p = seq__put_u64(p, st->sale_id);
	p = seq__put_u64(p, st->price);
	memcpy(p, st->seed, 32);
	p = seq__put_u64(p + 32, st->revenue);
	p = seq__put_u64(p, st->burn);
	p = seq__put_u32(p, (uint32_t)st->n_winners);
	for (size_t i = 0; i < st->n_winners; i++) {
		const struct seq_settle_winner *w = &st->winners[i];

		p = seq__put_u32(p, w->bundle);
		p = seq__put_u32(p, w->purchase);
		p = seq__put_u64(p, w->ticket);
		memcpy(p, w->buyer, SEQ_ADDR_LEN);
		p = seq__put_u64(p + SEQ_ADDR_LEN, w->revenue);
	}
	p = seq__put_u32(p, (uint32_t)st->n_buyers);
	for (size_t i = 0; i < st->n_buyers; i++) {
		const struct seq_settle_buyer *b = &st->buyers[i];

		memcpy(p, b->addr, SEQ_ADDR_LEN);
		p = seq__put_u64(p + SEQ_ADDR_LEN, b->paid);
		p = seq__put_u64(p, b->charged);
		p = seq__put_u64(p, b->refund);
	}
	p = seq__put_u32(p, (uint32_t)st->n_credits);
	for (size_t i = 0; i < st->n_credits; i++) {
		p = seq__put_u64(p, st->credits[i].rollup);
		p = seq__put_u32(p, st->credits[i].winner);
		p = seq__put_u64(p, st->credits[i].amount);
	}
	assert((size_t)(p - buf) == need);
	return need;
}

/* A count of items of `each` bytes at p, if that many fit before end. */
static int take_count(const uint8_t **p, const uint8_t *end, size_t each, size_t *n)
{
	if (end - *p < 4)
		return SEQ_EDECODE;
	*n = seq__get_u32(*p);
	*p += 4;
	if (*n > (size_t)(end - *p) / each)
		return SEQ_EDECODE;
	return 0;
}

int seq_settlement_decode(const uint8_t *buf, size_t len, struct seq_settlement *out)
{
	const uint8_t *p = buf, *end = buf + len;
	struct seq_settlement st = {0};
	int rc = SEQ_EDECODE;

	memset(out, 0, sizeof(*out));
	if (buf == NULL || len < HDR_LEN || memcmp(p, SETTLE_MAGIC, 4) ||
	    seq__get_u32(p + 4) != SETTLE_VERSION)
		return SEQ_EDECODE;
	st.sale_id = seq__get_u64(p + 8);
	st.price = seq__get_u64(p + 16);
	memcpy(st.seed, p + 24, 32);
	st.revenue = seq__get_u64(p + 56);
	st.burn = seq__get_u64(p + 64);
	p += HDR_LEN;
	if (take_count(&p, end, WINNER_LEN, &st.n_winners))
		goto out;
	if (st.n_winners && !(st.winners = calloc(st.n_winners, sizeof(*st.winners)))) {
		rc = SEQ_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < st.n_winners; i++, p += WINNER_LEN) {
		struct seq_settle_winner *w = &st.winners[i];

		w->bundle = seq__get_u32(p);
		w->purchase = seq__get_u32(p + 4);
		w->ticket = seq__get_u64(p + 8);
		memcpy(w->buyer, p + 16, SEQ_ADDR_LEN);
		w->revenue = seq__get_u64(p + 16 + SEQ_ADDR_LEN);
	}
	if (take_count(&p, end, BUYER_LEN, &st.n_buyers))
		goto out;
	if (st.n_buyers && !(st.buyers = calloc(st.n_buyers, sizeof(*st.buyers)))) {
		rc = SEQ_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < st.n_buyers; i++, p += BUYER_LEN) {
		struct seq_settle_buyer *b = &st.buyers[i];

		memcpy(b->addr, p, SEQ_ADDR_LEN);
		b->paid = seq__get_u64(p + SEQ_ADDR_LEN);
		b->charged = seq__get_u64(p + SEQ_ADDR_LEN + 8);
		b->refund = seq__get_u64(p + SEQ_ADDR_LEN + 16);
	}
	if (take_count(&p, end, CREDIT_LEN, &st.n_credits))
		goto out;
	if (st.n_credits && !(st.credits = calloc(st.n_credits, sizeof(*st.credits)))) {
		rc = SEQ_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < st.n_credits; i++, p += CREDIT_LEN) {
		st.credits[i].rollup = seq__get_u64(p);
		st.credits[i].winner = seq__get_u32(p + 8);
		st.credits[i].amount = seq__get_u64(p + 12);
	}
	if (p != end)
		goto out; /* trailing bytes */
	rc = seq_settlement_check(&st);
	if (rc)
		goto out;
	*out = st;
	return 0;
out:
	seq_settlement_free(&st);
	return rc;
}

void seq_settlement_free(struct seq_settlement *st)
{
	if (st == NULL)
		return;
	free(st->winners);
	free(st->buyers);
	free(st->credits);
	st->winners = NULL;
	st->buyers = NULL;
	st->credits = NULL;
	st->n_winners = st->n_buyers = st->n_credits = 0;
}
