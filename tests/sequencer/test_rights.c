/*
 * Sequencing rights: property tests over random sales (seeded; the seed is
 * printed on failure), brute-force optimality for small sales, the
 * improvement window, the draw, the price rule, revenue split, settlement
 * balance, and the shill-bidding scenario of docs/RIGHTS.md.
 */
#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sequencer/seq.h"

static uint64_t rng_state;

static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t below(uint64_t n)
{
	return rnd() % n;
}

static void addr(uint8_t out[20], unsigned who)
{
	memset(out, 0, 20);
	out[0] = 0xaa;
	out[19] = (uint8_t)who;
}

#define START 1000
#define CLOSE_LEAD 100
#define IMPROVE_LEAD 50

static struct seq_sale_params params(uint64_t id, const struct seq_offer *o, size_t n)
{
	struct seq_sale_params p = {
		.sale_id = id,
		.start_slot = START,
		.end_slot = START + 32,
		.close_lead = CLOSE_LEAD,
		.improve_lead = IMPROVE_LEAD,
		.draw_block = 12345,
		.price = 1000,
		.cap = 1u << 20,
		.target = 1u << 19,
		.burn_bps = 1000,
		.offers = o,
		.n_offers = n,
	};
	return p;
}

/*
 * A random sale over n opted-in rollups (ids 10, 20, ...) plus one that
 * opted out, with `bids` purchases on random bundles from 8 buyers.
 */
static void random_sale(struct seq_sale *s, uint64_t id, size_t n, size_t bids)
{
	struct seq_offer o[SEQ_RIGHTS_MAX_ROLLUPS + 1];
	struct seq_sale_params p;

	for (size_t i = 0; i < n; i++) {
		o[i].rollup = 10 * (i + 1);
		o[i].opt_in = true;
		o[i].reserve = below(4) ? below(5000) : 0;
	}
	o[n].rollup = 7;
	o[n].opt_in = false;
	o[n].reserve = 0;
	p = params(id, o, n + 1);
	p.burn_bps = (uint32_t)below(SEQ_RIGHTS_BPS + 1);
	p.price = 1 + below(3000);
	cr_assert_eq(seq_sale_create(s, &p), 0);
	for (size_t k = 0; k < bids; k++) {
		uint64_t ids[SEQ_RIGHTS_MAX_ROLLUPS];
		size_t m = 0;
		uint8_t a[20];
		/* Mostly small bundles, sometimes singletons, sometimes big. */
		unsigned shape = (unsigned)below(3);

		for (size_t i = 0; i < n; i++) {
			bool in = shape == 0 ? below(n) == 0 : shape == 1 ? below(3) == 0 : below(4) != 0;

			if (in)
				ids[m++] = 10 * (i + 1);
		}
		if (m == 0)
			ids[m++] = 10 * (1 + below(n));
		addr(a, (unsigned)below(8));
		cr_assert_eq(seq_sale_buy(s, 0, a, ids, m, 1 + below(9)), 0);
	}
}

/* Independent brute force: every packing of valid bundles. */
static uint64_t brute(const struct seq_sale *s, uint32_t from, uint64_t used)
{
	uint64_t best = 0;

	for (uint32_t b = from; b < s->n_bundles; b++) {
		const struct seq_bundle *bu = &s->bundles[b];
		uint64_t v = seq_sale_bundle_value(s, b);

		if ((bu->bits[0] & used) || v < bu->reserve)
			continue;
		uint64_t r = v + brute(s, b + 1, used | bu->bits[0]);

		if (r > best)
			best = r;
	}
	return best;
}

static uint64_t reserve_sum(const struct seq_sale *s, uint32_t b)
{
	uint64_t ids[SEQ_RIGHTS_MAX_ROLLUPS], sum = 0;
	int m = seq_sale_bundle_ids(s, b, ids, SEQ_RIGHTS_MAX_ROLLUPS);

	cr_assert_gt(m, 0);
	for (int i = 0; i < m; i++)
		for (size_t r = 0; r < s->n_rollups; r++)
			if (s->rollups[r].id == ids[i])
				sum += s->rollups[r].reserve;
	return sum;
}

/* Disjointness and reserves checked from the ids, not from the bitmaps. */
static void check_alloc(const struct seq_sale *s, const struct seq_alloc *a, uint64_t seed)
{
	uint64_t seen[SEQ_RIGHTS_MAX_ROLLUPS], rev = 0;
	size_t ns = 0;

	cr_assert_eq(seq_alloc_validate(s, a, NULL), 0, "seed %llu", (unsigned long long)seed);
	for (uint32_t k = 0; k < a->n; k++) {
		uint64_t ids[SEQ_RIGHTS_MAX_ROLLUPS];
		int m = seq_sale_bundle_ids(s, a->bundle[k], ids, SEQ_RIGHTS_MAX_ROLLUPS);
		uint64_t v = seq_sale_bundle_value(s, a->bundle[k]);

		cr_assert(v >= reserve_sum(s, a->bundle[k]), "reserve, seed %llu",
			  (unsigned long long)seed);
		for (int i = 0; i < m; i++) {
			for (size_t j = 0; j < ns; j++)
				cr_assert_neq(seen[j], ids[i], "overlap, seed %llu",
					      (unsigned long long)seed);
			seen[ns++] = ids[i];
		}
		rev += v;
	}
	cr_assert_eq(rev, a->revenue, "seed %llu", (unsigned long long)seed);
	for (uint32_t b = 0; b < s->n_bundles; b++) {
		uint64_t v = seq_sale_bundle_value(s, b);

		if (v >= reserve_sum(s, b))
			cr_assert_geq(a->revenue, v, "below best single bundle, seed %llu",
				      (unsigned long long)seed);
	}
}

Test(rights, alloc_small_matches_brute_force)
{
	for (uint64_t seed = 1; seed <= 3000; seed++) {
		struct seq_sale s;
		struct seq_alloc ex, ex2, he;

		rng_state = seed;
		random_sale(&s, seed, 1 + below(8), 1 + below(16));
		cr_assert_eq(seq_alloc_exact(&s, &ex), 0);
		cr_assert_eq(seq_alloc_exact(&s, &ex2), 0);
		cr_assert_eq(memcmp(&ex, &ex2, sizeof(ex)), 0, "not deterministic, seed %llu",
			     (unsigned long long)seed);
		check_alloc(&s, &ex, seed);
		cr_assert_eq(ex.revenue, brute(&s, 0, 0), "not optimal, seed %llu",
			     (unsigned long long)seed);
		cr_assert_eq(seq_alloc_heuristic(&s, &he), 0);
		check_alloc(&s, &he, seed);
		cr_assert_leq(he.revenue, ex.revenue, "seed %llu", (unsigned long long)seed);
		seq_sale_destroy(&s);
	}
}

Test(rights, alloc_larger_exact_and_heuristic)
{
	for (uint64_t seed = 1; seed <= 300; seed++) {
		struct seq_sale s;
		struct seq_alloc ex, he, he2;

		rng_state = seed * 7919;
		random_sale(&s, seed, 9 + below(12), 20 + below(200));
		cr_assert_eq(seq_alloc_compute(&s, &ex), 0);
		check_alloc(&s, &ex, seed);
		cr_assert_eq(seq_alloc_heuristic(&s, &he), 0);
		cr_assert_eq(seq_alloc_heuristic(&s, &he2), 0);
		cr_assert_eq(memcmp(&he, &he2, sizeof(he)), 0, "seed %llu", (unsigned long long)seed);
		check_alloc(&s, &he, seed);
		cr_assert_leq(he.revenue, ex.revenue, "seed %llu", (unsigned long long)seed);
		seq_sale_destroy(&s);
	}
	/* Above the exact limit compute falls back to the heuristic. */
	for (uint64_t seed = 1; seed <= 30; seed++) {
		struct seq_sale s;
		struct seq_alloc a;

		rng_state = seed * 104729;
		random_sale(&s, seed, 21 + below(200), 50 + below(500));
		cr_assert_eq(seq_alloc_exact(&s, &a), SEQ_EINVAL);
		cr_assert_eq(seq_alloc_compute(&s, &a), 0);
		check_alloc(&s, &a, seed);
		seq_sale_destroy(&s);
	}
}

/* Greedy by value picks {A,B} (10) and blocks {A},{B} (6 + 6): exact wins. */
Test(rights, heuristic_never_beats_exact_on_known_trap)
{
	struct seq_offer o[3] = {{1, 0, true}, {2, 0, true}, {3, 0, true}};
	struct seq_sale_params p = params(9, o, 3);
	struct seq_sale s;
	struct seq_alloc ex;
	uint8_t a[20];

	p.price = 1;
	addr(a, 1);
	cr_assert_eq(seq_sale_create(&s, &p), 0);
	cr_assert_eq(seq_sale_buy(&s, 0, a, (uint64_t[]){1, 2}, 2, 10), 0);
	cr_assert_eq(seq_sale_buy(&s, 0, a, (uint64_t[]){1}, 1, 6), 0);
	cr_assert_eq(seq_sale_buy(&s, 0, a, (uint64_t[]){2}, 1, 6), 0);
	cr_assert_eq(seq_alloc_exact(&s, &ex), 0);
	cr_assert_eq(ex.revenue, 12);
	cr_assert_eq(ex.n, 2);
	cr_assert_eq(ex.bundle[0], 1);
	cr_assert_eq(ex.bundle[1], 2);
	seq_sale_destroy(&s);
}

Test(rights, settlement_balances_and_refunds_losers)
{
	for (uint64_t seed = 1; seed <= 1500; seed++) {
		struct seq_sale s, s2;
		struct seq_settlement st, st2;
		uint8_t rs[32], *e1, *e2;
		size_t n1, n2;
		uint64_t credits = 0;

		rng_state = seed * 31;
		size_t n = 1 + below(SEQ_RIGHTS_EXACT_MAX), bids = 1 + below(40);
		uint64_t again = rng_state;

		random_sale(&s, seed, n, bids);
		rng_state = again;
		random_sale(&s2, seed, n, bids);
		for (int i = 0; i < 32; i++)
			rs[i] = (uint8_t)rnd();
		cr_assert_eq(seq_sale_close(&s, START - CLOSE_LEAD), 0);
		cr_assert_eq(seq_sale_close(&s2, START - CLOSE_LEAD), 0);
		cr_assert_eq(seq_sale_settle(&s, START - IMPROVE_LEAD, rs, &st), 0);
		cr_assert_eq(seq_sale_settle(&s2, START - IMPROVE_LEAD, rs, &st2), 0);
		cr_assert_eq(seq_settlement_check(&st), 0, "seed %llu", (unsigned long long)seed);

		/* Refund per buyer recomputed from the purchases. */
		for (size_t b = 0; b < st.n_buyers; b++) {
			uint64_t lost = 0, paid = 0;

			for (size_t i = 0; i < s.n_purchases; i++) {
				const struct seq_purchase *pu = &s.purchases[i];
				bool won = false;

				if (memcmp(pu->buyer, st.buyers[b].addr, 20) != 0)
					continue;
				for (uint32_t k = 0; k < s.best.n; k++)
					won |= s.best.bundle[k] == pu->bundle;
				paid += pu->tickets * s.p.price;
				if (!won)
					lost += pu->tickets * s.p.price;
			}
			cr_assert_eq(st.buyers[b].refund, lost, "seed %llu", (unsigned long long)seed);
			cr_assert_eq(st.buyers[b].paid, paid);
		}
		for (size_t c = 0; c < st.n_credits; c++)
			credits += st.credits[c].amount;
		cr_assert_eq(credits, st.revenue - st.burn, "seed %llu", (unsigned long long)seed);
		cr_assert_eq(st.revenue, s.best.revenue);

		/* Same inputs, same bytes. */
		n1 = seq_settlement_encode(&st, NULL, 0);
		n2 = seq_settlement_encode(&st2, NULL, 0);
		cr_assert_eq(n1, n2);
		e1 = malloc(n1);
		e2 = malloc(n2);
		cr_assert_eq(seq_settlement_encode(&st, e1, n1), n1);
		cr_assert_eq(seq_settlement_encode(&st2, e2, n2), n2);
		cr_assert_eq(memcmp(e1, e2, n1), 0, "seed %llu", (unsigned long long)seed);

		/* The bytes decode back to the same settlement, and only whole. */
		{
			struct seq_settlement d;
			uint8_t *e3 = malloc(n1);

			cr_assert_eq(seq_settlement_decode(e1, n1, &d), 0, "seed %llu",
				     (unsigned long long)seed);
			cr_assert_eq(seq_settlement_encode(&d, e3, n1), n1);
			cr_assert_eq(memcmp(e1, e3, n1), 0);
			cr_assert_eq(d.n_winners, st.n_winners);
			cr_assert_eq(d.n_buyers, st.n_buyers);
			cr_assert_eq(d.n_credits, st.n_credits);
			seq_settlement_free(&d);
			cr_assert_eq(seq_settlement_decode(e1, n1 - 1 - below(n1), &d), SEQ_EDECODE);
			cr_assert_null(d.winners);
			free(e3);
		}

		/* Tampering is caught. */
		if (st.n_credits > 0) {
			st.credits[0].amount++;
			cr_assert_eq(seq_settlement_check(&st), SEQ_EBALANCE);
			st.credits[0].amount--;
		}
		if (st.n_buyers > 1) {
			memcpy(st.buyers[1].addr, st.buyers[0].addr, 20);
			cr_assert_eq(seq_settlement_check(&st), SEQ_EBALANCE);
		}
		free(e1);
		free(e2);
		seq_settlement_free(&st);
		seq_settlement_free(&st2);
		seq_sale_destroy(&s);
		seq_sale_destroy(&s2);
	}
}

/* Malformed settlement bytes: each refused, none read past its end. */
Test(rights, settlement_decode_refuses_malformed)
{
	struct seq_sale s;
	struct seq_settlement st, d;
	uint8_t rs[32] = {7}, *e, *x;
	size_t n;

	rng_state = 99;
	random_sale(&s, 9, 4, 20);
	cr_assert_eq(seq_sale_close(&s, START - CLOSE_LEAD), 0);
	cr_assert_eq(seq_sale_settle(&s, START - IMPROVE_LEAD, rs, &st), 0);
	cr_assert_gt(st.n_buyers, 1);
	n = seq_settlement_encode(&st, NULL, 0);
	e = malloc(n + 1);
	x = malloc(n + 1);
	cr_assert_eq(seq_settlement_encode(&st, e, n), n);
	for (size_t cut = 0; cut < n; cut++) { /* every truncation, in its own buffer */
		uint8_t *t = malloc(cut ? cut : 1);

		memcpy(t, e, cut);
		cr_assert_eq(seq_settlement_decode(t, cut, &d), SEQ_EDECODE, "cut at %zu", cut);
		free(t);
	}
	e[n] = 0;
	cr_assert_eq(seq_settlement_decode(e, n + 1, &d), SEQ_EDECODE, "trailing byte");
	memcpy(x, e, n);
	x[0] ^= 1;
	cr_assert_eq(seq_settlement_decode(x, n, &d), SEQ_EDECODE, "magic");
	memcpy(x, e, n);
	x[7] ^= 2;
	cr_assert_eq(seq_settlement_decode(x, n, &d), SEQ_EDECODE, "version");
	memcpy(x, e, n);
	memset(x + 72, 0xff, 4); /* n_winners = 2^32 - 1 */
	cr_assert_eq(seq_settlement_decode(x, n, &d), SEQ_EDECODE, "count past the end");
	memcpy(x, e, n);
	x[56 + 7] ^= 1; /* revenue */
	cr_assert_eq(seq_settlement_decode(x, n, &d), SEQ_EBALANCE, "unbalanced");
	cr_assert_eq(seq_settlement_decode(NULL, 0, &d), SEQ_EDECODE);
	free(e);
	free(x);
	seq_settlement_free(&st);
	seq_sale_destroy(&s);
}

Test(rights, improvement_window)
{
	for (uint64_t seed = 1; seed <= 1000; seed++) {
		struct seq_sale s;
		struct seq_alloc best, worse, bad;

		rng_state = seed * 131;
		random_sale(&s, seed, 2 + below(10), 2 + below(30));
		cr_assert_eq(seq_sale_propose(&s, 0, &s.best), SEQ_ESTATE);
		cr_assert_eq(seq_sale_close(&s, START - CLOSE_LEAD), 0);
		best = s.best;
		/* The incumbent itself is not strictly better. */
		cr_assert_eq(seq_sale_propose(&s, START - CLOSE_LEAD, &best), SEQ_ENOTBETTER);
		/* Out-of-range, repeated and overlapping bundles. */
		bad = best;
		bad.bundle[0] = (uint32_t)s.n_bundles;
		if (bad.n > 0)
			cr_assert_eq(seq_alloc_check(&s, &bad), SEQ_ENOBID);
		if (best.n > 0) {
			bad = best;
			bad.bundle[bad.n++] = best.bundle[0];
			cr_assert_eq(seq_alloc_check(&s, &bad), SEQ_EOVERLAP);
		}
		for (uint32_t b = 0; b < s.n_bundles; b++) {
			struct seq_alloc one = {.n = 1, .bundle = {b}};
			uint64_t v = seq_sale_bundle_value(&s, b);
			int rc = seq_alloc_check(&s, &one);

			if (v < s.bundles[b].reserve)
				cr_assert_eq(rc, SEQ_ERESERVE, "seed %llu", (unsigned long long)seed);
			else if (v <= best.revenue)
				cr_assert_eq(rc, SEQ_ENOTBETTER, "seed %llu", (unsigned long long)seed);
			for (uint32_t c = 0; c < s.n_bundles; c++) {
				struct seq_alloc two = {.n = 2, .bundle = {b, c}};

				if (c <= b || !(s.bundles[b].bits[0] & s.bundles[c].bits[0]))
					continue;
				rc = seq_alloc_check(&s, &two);
				if (v >= s.bundles[b].reserve)
					cr_assert_eq(rc, SEQ_EOVERLAP);
				else
					cr_assert_eq(rc, SEQ_ERESERVE); /* checked in order */
			}
		}
		/* Pretend the closing allocation was worse (drop a bundle): the
		 * optimum is then a strictly better proposal and is accepted. */
		if (best.n > 0) {
			worse = best;
			worse.n--;
			cr_assert_eq(seq_alloc_validate(&s, &worse, &worse.revenue), 0);
			s.best = worse;
			cr_assert_eq(seq_sale_propose(&s, START - IMPROVE_LEAD, &best), SEQ_ELATE);
			cr_assert_eq(seq_sale_propose(&s, START - IMPROVE_LEAD - 1, &best), 0);
			cr_assert_eq(s.best.revenue, best.revenue);
			cr_assert_eq(s.best_proposals, 1);
			cr_assert_eq(seq_sale_propose(&s, START - IMPROVE_LEAD - 1, &worse),
				     SEQ_ENOTBETTER);
		}
		seq_sale_destroy(&s);
	}
}

/*
 * Void purchases (docs/RIGHTS.md): rollups 10 and 20, price 1000. Buyer 1
 * buys 3 on {10,20}, buyer 2 buys 5 on {10}: {10} wins. Voiding buyer 2's
 * purchase leaves {10} with no tickets, so the allocation is recomputed and
 * {10,20} wins; buyer 2 is no buyer of the settlement. Voiding again is a
 * no-op; a standing allocation that stays valid and best is kept.
 */
Test(rights, void_purchases_reallocate_and_drop_the_buyer)
{
	struct seq_offer o[] = {{10, 0, true}, {20, 0, true}};
	struct seq_sale_params p = params(9, o, 2);
	uint64_t pair[] = {10, 20}, one[] = {10}, two[] = {20};
	uint8_t b1[20], b2[20], seed[32] = {7};
	struct seq_settlement st;
	struct seq_sale s;
	uint32_t v2 = 1, bad = 3;

	addr(b1, 1);
	addr(b2, 2);
	cr_assert_eq(seq_sale_create(&s, &p), 0);
	cr_assert_eq(seq_sale_buy(&s, 0, b1, pair, 2, 3), 0);
	cr_assert_eq(seq_sale_buy(&s, 0, b2, one, 1, 5), 0);
	cr_assert_eq(seq_sale_void(&s, &v2, 1), SEQ_ESTATE, "only once closed");
	cr_assert_eq(seq_sale_close(&s, START - CLOSE_LEAD), 0);
	cr_assert_eq(s.best.n, 1);
	cr_assert_eq(s.best.bundle[0], 1);
	cr_assert_eq(seq_sale_void(&s, &bad, 1), SEQ_EINVAL);
	cr_assert_eq(seq_sale_void(&s, &v2, 1), 0);
	cr_assert_eq(s.sold, 3);
	cr_assert_eq(s.purchases[1].tickets, 0);
	cr_assert_eq(s.bundles[1].tickets, 0);
	cr_assert_eq(s.best.n, 1);
	cr_assert_eq(s.best.bundle[0], 0);
	cr_assert_eq(s.best.revenue, 3000);
	cr_assert_eq(seq_sale_void(&s, &v2, 1), 0);
	cr_assert_eq(s.best.bundle[0], 0);
	cr_assert_eq(s.sold, 3);
	cr_assert_eq(seq_sale_settle(&s, START - IMPROVE_LEAD, seed, &st), 0);
	cr_assert_eq(seq_settlement_check(&st), 0);
	cr_assert_eq(st.n_buyers, 1, "the voided buyer escrowed nothing");
	cr_assert_eq(memcmp(st.buyers[0].addr, b1, 20), 0);
	cr_assert_eq(st.buyers[0].paid, 3000);
	cr_assert_eq(st.buyers[0].charged, 3000);
	cr_assert_eq(st.revenue, 3000);
	cr_assert_eq(st.winners[0].purchase, 0);
	seq_settlement_free(&st);
	seq_sale_destroy(&s);

	/* A standing allocation that stays valid and best is kept, re-valued:
	 * {10} (5 + 4 tickets) and {20} (2) win; voiding 4 on {10} leaves 5 on
	 * {10} + 2 on {20} = 7 > 3 on {10,20}. */
	cr_assert_eq(seq_sale_create(&s, &p), 0);
	cr_assert_eq(seq_sale_buy(&s, 0, b1, pair, 2, 3), 0);
	cr_assert_eq(seq_sale_buy(&s, 0, b2, one, 1, 5), 0);
	cr_assert_eq(seq_sale_buy(&s, 0, b1, one, 1, 4), 0);
	cr_assert_eq(seq_sale_buy(&s, 0, b2, two, 1, 2), 0);
	cr_assert_eq(seq_sale_close(&s, START - CLOSE_LEAD), 0);
	cr_assert_eq(s.best.n, 2);
	cr_assert_eq(s.best.revenue, 11000);
	v2 = 2;
	cr_assert_eq(seq_sale_void(&s, &v2, 1), 0);
	cr_assert_eq(s.best.n, 2);
	cr_assert_eq(s.best.bundle[0], 1);
	cr_assert_eq(s.best.bundle[1], 2);
	cr_assert_eq(s.best.revenue, 7000);
	seq_sale_destroy(&s);
}

Test(rights, sale_api_errors)
{
	struct seq_offer o[4] = {{10, 5, true}, {20, 0, true}, {30, 0, false}, {40, 7, true}};
	struct seq_sale_params p = params(1, o, 4);
	struct seq_sale s;
	uint8_t a[20];
	uint32_t b;

	addr(a, 1);
	p.cap = 10;
	p.target = 5;
	cr_assert_eq(seq_sale_create(&s, &p), 0);
	cr_assert_eq(s.n_rollups, 3);
	cr_assert_eq(seq_sale_buy(&s, 0, a, (uint64_t[]){10}, 0, 1), SEQ_EBUNDLE);
	cr_assert_eq(seq_sale_buy(&s, 0, a, (uint64_t[]){20, 10}, 2, 1), SEQ_EBUNDLE);
	cr_assert_eq(seq_sale_buy(&s, 0, a, (uint64_t[]){10, 10}, 2, 1), SEQ_EBUNDLE);
	cr_assert_eq(seq_sale_buy(&s, 0, a, (uint64_t[]){30}, 1, 1), SEQ_EBUNDLE);
	cr_assert_eq(seq_sale_buy(&s, 0, a, (uint64_t[]){11}, 1, 1), SEQ_EBUNDLE);
	cr_assert_eq(seq_sale_buy(&s, 0, a, (uint64_t[]){10}, 1, 0), SEQ_EINVAL);
	cr_assert_eq(seq_sale_buy(&s, 0, a, (uint64_t[]){10, 40}, 2, 8), 0);
	cr_assert_eq(seq_sale_buy(&s, 0, a, (uint64_t[]){10}, 1, 3), SEQ_ESOLDOUT);
	cr_assert_eq(seq_sale_buy(&s, 0, a, (uint64_t[]){10, 40}, 2, 2), 0);
	cr_assert_eq(s.n_bundles, 1);
	cr_assert_eq(s.bundles[0].tickets, 10);
	cr_assert_eq(s.bundles[0].reserve, 12);
	cr_assert_eq(seq_sale_bundle_find(&s, (uint64_t[]){10, 40}, 2, &b), 0);
	cr_assert_eq(b, 0);
	cr_assert_eq(seq_sale_bundle_find(&s, (uint64_t[]){10}, 1, &b), SEQ_ENOBID);
	cr_assert_eq(seq_sale_close(&s, START - CLOSE_LEAD - 1), SEQ_EEARLY);
	cr_assert_eq(seq_sale_buy(&s, START - CLOSE_LEAD, a, (uint64_t[]){20}, 1, 1),
		     SEQ_ECLOSED);
	cr_assert_eq(seq_sale_close(&s, START - CLOSE_LEAD), 0);
	cr_assert_eq(seq_sale_close(&s, START - CLOSE_LEAD), SEQ_ESTATE);
	cr_assert_eq(seq_sale_buy(&s, 0, a, (uint64_t[]){20}, 1, 1), SEQ_ECLOSED);
	seq_sale_destroy(&s);
	seq_sale_destroy(&s);
	seq_sale_destroy(NULL);

	p = params(1, o, 4);
	p.close_lead = p.improve_lead;
	cr_assert_eq(seq_sale_create(&s, &p), SEQ_EINVAL);
	p = params(1, o, 4);
	p.target = p.cap;
	cr_assert_eq(seq_sale_create(&s, &p), SEQ_EINVAL);
	p = params(1, o, 4);
	p.price = SEQ_RIGHTS_PRICE_MAX + 1;
	cr_assert_eq(seq_sale_create(&s, &p), SEQ_EINVAL);
	p = params(1, o, 4);
	p.burn_bps = SEQ_RIGHTS_BPS + 1;
	cr_assert_eq(seq_sale_create(&s, &p), SEQ_EINVAL);
	o[2].rollup = 10; /* duplicate id, even though opted out */
	p = params(1, o, 4);
	cr_assert_eq(seq_sale_create(&s, &p), SEQ_EINVAL);
}

Test(rights, draw_frequencies_and_determinism)
{
	static const uint64_t tickets[4] = {1, 2, 3, 4}; /* T = 10 */
	uint64_t hits[4] = {0};
	const int N = 40000;
	uint8_t seed[32] = {0};

	for (int i = 0; i < N; i++) {
		seed[0] = (uint8_t)i;
		seed[1] = (uint8_t)(i >> 8);
		seed[2] = (uint8_t)(i >> 16);
		uint64_t t = seq_draw_ticket(seed, 77, 3, 10);

		cr_assert_lt(t, 10);
		cr_assert_eq(seq_draw_ticket(seed, 77, 3, 10), t);
		for (int k = 0, acc = 0; k < 4; k++) {
			acc += (int)tickets[k];
			if (t < (uint64_t)acc) {
				hits[k]++;
				break;
			}
		}
	}
	for (int k = 0; k < 4; k++) {
		double pk = tickets[k] / 10.0, mean = N * pk, sd = sqrt(N * pk * (1 - pk));

		cr_assert(fabs((double)hits[k] - mean) < 5 * sd, "k %d hits %llu mean %.0f", k,
			  (unsigned long long)hits[k], mean);
	}
	/* Sale id and bundle index both change the draw. */
	int diff_sale = 0, diff_bundle = 0;

	for (int i = 0; i < 100; i++) {
		seed[0] = (uint8_t)i;
		diff_sale += seq_draw_ticket(seed, 1, 0, 1000000) != seq_draw_ticket(seed, 2, 0, 1000000);
		diff_bundle += seq_draw_ticket(seed, 1, 0, 1000000) != seq_draw_ticket(seed, 1, 1, 1000000);
	}
	cr_assert_gt(diff_sale, 90);
	cr_assert_gt(diff_bundle, 90);
	/* A huge odd count rejects about half the draws and stays in range. */
	for (int i = 0; i < 200; i++) {
		seed[5] = (uint8_t)i;
		cr_assert_lt(seq_draw_ticket(seed, 1, 0, (UINT64_C(1) << 63) + 1),
			     (UINT64_C(1) << 63) + 1);
	}
	cr_assert_eq(seq_draw_ticket(seed, 1, 0, 1), 0);
}

/* Known answer, so the layout is pinned down for other implementations. */
Test(rights, draw_known_answer)
{
	uint8_t seed[32];

	for (int i = 0; i < 32; i++)
		seed[i] = (uint8_t)i;
	/* python3: int.from_bytes(sha256(bytes(range(32)) + (5).to_bytes(8,'big')
	 * + (2).to_bytes(4,'big') + (0).to_bytes(4,'big')).digest()[:8],'big') % 1000 */
	cr_assert_eq(seq_draw_ticket(seed, 5, 2, 1000), 250);
}

Test(rights, price_rule)
{
	const uint64_t cap = 1000, target = 500, floor = 100;

	cr_assert_eq(seq_price_next(800, 1000, cap, target, floor), 900);
	cr_assert_eq(seq_price_next(800, 500, cap, target, floor), 800);
	cr_assert_eq(seq_price_next(800, 0, cap, target, floor), 700);
	cr_assert_eq(seq_price_next(800, 250, cap, target, floor), 750);
	cr_assert_eq(seq_price_next(800, 750, cap, target, floor), 850);
	cr_assert_eq(seq_price_next(105, 0, cap, target, floor), 100);
	cr_assert_eq(seq_price_next(5, 1000, cap, target, 0), 6); /* at least 1 gwei up */
	cr_assert_eq(seq_price_next(SEQ_RIGHTS_PRICE_MAX, 1000, cap, target, 0),
		     SEQ_RIGHTS_PRICE_MAX);
	rng_state = 99;
	for (int i = 0; i < 100000; i++) {
		uint64_t c = 2 + below(1u << 20), t = 1 + below(c - 1), p = 1 + below(1ull << 38);
		uint64_t f = below(4) ? below(p) : below(1ull << 30);
		uint64_t sold = below(c + 2), next = seq_price_next(p, sold, c, t, f);
		uint64_t step = p / 8 ? p / 8 : 1;

		cr_assert_geq(next, f);
		if (next != f) {
			cr_assert_leq(next, p + step, "p %llu sold %llu", (unsigned long long)p,
				      (unsigned long long)sold);
			cr_assert_geq(next + step, p);
		}
		if (sold >= c)
			cr_assert(next > p || next == SEQ_RIGHTS_PRICE_MAX || (next == f && f > p));
		else if (sold < t)
			cr_assert(next <= p || next == f);
		else
			cr_assert(next >= p);
	}
}

Test(rights, revenue_split_exact_to_the_gwei)
{
	uint64_t shares[SEQ_RIGHTS_MAX_ROLLUPS], w[SEQ_RIGHTS_MAX_ROLLUPS], burn;

	seq_revenue_split(10, 0, (uint64_t[]){1, 1, 1}, 3, shares, &burn);
	cr_assert_eq(burn, 0);
	cr_assert_eq(shares[0], 4); /* tie on remainders: lower id gets it */
	cr_assert_eq(shares[1], 3);
	cr_assert_eq(shares[2], 3);
	seq_revenue_split(100, 1000, (uint64_t[]){1, 2}, 2, shares, &burn);
	cr_assert_eq(burn, 10);
	cr_assert_eq(shares[0], 30);
	cr_assert_eq(shares[1], 60);
	seq_revenue_split(11, 0, (uint64_t[]){1, 2}, 2, shares, &burn);
	cr_assert_eq(shares[0], 4); /* 3.67 and 7.33: largest remainder is 2/3 */
	cr_assert_eq(shares[1], 7);
	seq_revenue_split(7, 0, (uint64_t[]){0, 0}, 2, shares, &burn);
	cr_assert_eq(shares[0], 4);
	cr_assert_eq(shares[1], 3);
	rng_state = 7;
	for (int i = 0; i < 20000; i++) {
		size_t n = 1 + below(SEQ_RIGHTS_MAX_ROLLUPS);
		uint64_t rev = below(1ull << 62), sum = 0;
		uint32_t bps = (uint32_t)below(SEQ_RIGHTS_BPS + 1);

		for (size_t k = 0; k < n; k++)
			w[k] = below(3) ? below(1ull << 62) : below(3);
		seq_revenue_split(rev, bps, w, n, shares, &burn);
		for (size_t k = 0; k < n; k++)
			sum += shares[k];
		cr_assert_eq(sum + burn, rev, "i %d", i);
		cr_assert_eq(burn, (uint64_t)((unsigned __int128)rev * bps / SEQ_RIGHTS_BPS));
	}
}

/*
 * Shill bidding (docs/RIGHTS.md "Shill bidding"). Rollups A=1, B=2, C=3,
 * D=4, reserve 10 each, price 1 gwei, burn 10%. Honest demand: 100 tickets
 * on {A,B,C,D}, 35 on {C,D}, 15 on {C}, 15 on {D}. A and B then buy k
 * tickets each on their own singletons to inflate their standalone value.
 */
struct shill {
	struct seq_sale s;
	struct seq_settlement st;
};

static void shill_run(struct shill *x, uint64_t k)
{
	struct seq_offer o[4] = {{1, 10, true}, {2, 10, true}, {3, 10, true}, {4, 10, true}};
	struct seq_sale_params p = params(42, o, 4);
	uint8_t h1[20], h2[20], h3[20], ra[20], rb[20], seed[32] = {7};

	p.price = 1;
	addr(h1, 1);
	addr(h2, 2);
	addr(h3, 3);
	addr(ra, 0xa);
	addr(rb, 0xb);
	cr_assert_eq(seq_sale_create(&x->s, &p), 0);
	cr_assert_eq(seq_sale_buy(&x->s, 0, h1, (uint64_t[]){1, 2, 3, 4}, 4, 100), 0);
	cr_assert_eq(seq_sale_buy(&x->s, 0, h2, (uint64_t[]){3, 4}, 2, 35), 0);
	cr_assert_eq(seq_sale_buy(&x->s, 0, h3, (uint64_t[]){3}, 1, 15), 0);
	cr_assert_eq(seq_sale_buy(&x->s, 0, h3, (uint64_t[]){4}, 1, 15), 0);
	if (k > 0) {
		cr_assert_eq(seq_sale_buy(&x->s, 0, ra, (uint64_t[]){1}, 1, k), 0);
		cr_assert_eq(seq_sale_buy(&x->s, 0, rb, (uint64_t[]){2}, 1, k), 0);
	}
	cr_assert_eq(seq_sale_close(&x->s, START - CLOSE_LEAD), 0);
	cr_assert_eq(seq_sale_settle(&x->s, START - IMPROVE_LEAD, seed, &x->st), 0);
	cr_assert_eq(seq_settlement_check(&x->st), 0);
}

static uint64_t credit_of(const struct shill *x, uint64_t rollup)
{
	for (size_t i = 0; i < x->st.n_credits; i++)
		if (x->st.credits[i].rollup == rollup)
			return x->st.credits[i].amount;
	return 0;
}

static const struct seq_settle_buyer *buyer_of(const struct shill *x, unsigned who)
{
	uint8_t a[20];

	addr(a, who);
	for (size_t i = 0; i < x->st.n_buyers; i++)
		if (memcmp(x->st.buyers[i].addr, a, 20) == 0)
			return &x->st.buyers[i];
	return NULL;
}

static uint64_t winner_of(const struct shill *x, uint64_t rollup)
{
	for (size_t i = 0; i < x->st.n_credits; i++)
		if (x->st.credits[i].rollup == rollup)
			return x->st.credits[i].winner;
	return UINT64_MAX;
}

static void shill_free(struct shill *x)
{
	seq_settlement_free(&x->st);
	seq_sale_destroy(&x->s);
}

Test(rights, shill_bidding)
{
	struct shill honest, mild, heavy;

	/* Honest: {A,B,C,D} wins (100 > 35 and > 15 + 15); 90 after burn.
	 * Weights are the reserves, 10 each (C's and D's singleton tickets do
	 * not count): 22.5 each,
	 * the two leftover gwei to the lower ids: 23, 23, 22, 22. */
	shill_run(&honest, 0);
	cr_assert_eq(honest.st.n_winners, 1);
	cr_assert_eq(honest.st.burn, 10);
	cr_assert_eq(credit_of(&honest, 1), 23);
	cr_assert_eq(credit_of(&honest, 2), 23);
	cr_assert_eq(credit_of(&honest, 3), 22);
	cr_assert_eq(credit_of(&honest, 4), 22);

	/* Heavy shill (k = 33): {A} + {B} + {C,D} = 33 + 33 + 35 = 101 > 100,
	 * so A and B win their own singletons and leave the shared bundle.
	 * Each pays 33 for its own slot and is credited 33 minus the burn
	 * (floor(3.3) = 3): a pure loss. C and D still share one sequencer. */
	shill_run(&heavy, 33);
	cr_assert_eq(heavy.st.n_winners, 3);
	cr_assert_eq(heavy.st.revenue, 101);
	cr_assert_neq(winner_of(&heavy, 1), winner_of(&heavy, 2));
	cr_assert_eq(winner_of(&heavy, 3), winner_of(&heavy, 4)); /* shared sequencing */
	cr_assert_neq(winner_of(&heavy, 1), winner_of(&heavy, 3));
	for (unsigned who = 0xa; who <= 0xb; who++) {
		const struct seq_settle_buyer *b = buyer_of(&heavy, who);
		uint64_t credit = credit_of(&heavy, who == 0xa ? 1 : 2);

		cr_assert_eq(b->charged, 33);
		cr_assert_eq(credit, 33 - 33 * 1000 / 10000); /* 30: the burn (3) is lost */
		cr_assert_lt(credit, b->charged);
	}
	cr_assert_eq(buyer_of(&heavy, 1)->refund, 100); /* the grand bundle lost */

	/* Mild shill (k = 32): 32 + 32 + 35 = 99 < 100, the grand bundle still
	 * wins and the shill tickets are refunded. Under the standalone rule the
	 * weights would be 32, 32, 15, 15 and A and B would take 31 each
	 * instead of their share; at the reserves the weights stay 10
	 * each and nobody's credit moves. */
	shill_run(&mild, 32);
	cr_assert_eq(mild.st.n_winners, 1);
	cr_assert_eq(buyer_of(&mild, 0xa)->refund, 32);
	cr_assert_eq(buyer_of(&mild, 0xa)->charged, 0);
	for (uint64_t r = 1; r <= 4; r++)
		cr_assert_eq(credit_of(&mild, r), credit_of(&honest, r), "rollup %llu",
			     (unsigned long long)r);
	cr_assert_leq(credit_of(&mild, 1), credit_of(&honest, 1)); /* no more than its share */
	cr_assert_eq(winner_of(&mild, 1), winner_of(&mild, 3));	 /* others still shared */
	shill_free(&honest);
	shill_free(&mild);
	shill_free(&heavy);
}

/*
 * The property behind the rule, over random sales: a rollup that ends up in
 * a shared winning bundle cannot raise its credit by buying tickets on its
 * own singleton above what its reserve (fixed before the sale opened)
 * entitles it to: the credit it would get with weight = reserve.
 */
static uint64_t credit_at_reserve(const struct shill *x, size_t vi)
{
	const struct seq_settle_winner *wn = &x->st.winners[x->st.credits[vi].winner];
	uint64_t ids[SEQ_RIGHTS_MAX_ROLLUPS], w[SEQ_RIGHTS_MAX_ROLLUPS], sh[SEQ_RIGHTS_MAX_ROLLUPS];
	uint64_t burn, out = UINT64_MAX;
	int m = seq_sale_bundle_ids(&x->s, wn->bundle, ids, SEQ_RIGHTS_MAX_ROLLUPS);

	cr_assert_gt(m, 1);
	for (int i = 0; i < m; i++)
		for (uint32_t r = 0; r < x->s.n_rollups; r++)
			if (x->s.rollups[r].id == ids[i])
				w[i] = ids[i] == x->st.credits[vi].rollup ? x->s.rollups[r].reserve
									  : seq_revenue_weight(&x->s, r);
	seq_revenue_split(wn->revenue, x->s.p.burn_bps, w, (size_t)m, sh, &burn);
	for (int i = 0; i < m; i++)
		if (ids[i] == x->st.credits[vi].rollup)
			out = sh[i];
	return out;
}

/*
 * A rival lowering others' weights: bids that cannot win are refunded in
 * full, so one ticket on each rival's singleton cost buyer A nothing, and
 * while a singleton bid below the reserve set the weight, it took 69 of
 * the 90 to share (B, C and D 7 each) instead of 23. Weights are the
 * reserves: no bid moves them.
 */
static void grief_run(struct shill *x, bool grief)
{
	struct seq_offer o[4] = {{1, 10, true}, {2, 10, true}, {3, 10, true}, {4, 10, true}};
	struct seq_sale_params p = params(43, o, 4);
	uint8_t h1[20], ra[20], seed[32] = {9};

	p.price = 1;
	addr(h1, 1);
	addr(ra, 0xa);
	cr_assert_eq(seq_sale_create(&x->s, &p), 0);
	cr_assert_eq(seq_sale_buy(&x->s, 0, h1, (uint64_t[]){1, 2, 3, 4}, 4, 100), 0);
	if (grief)
		for (uint64_t r = 2; r <= 4; r++)
			cr_assert_eq(seq_sale_buy(&x->s, 0, ra, (uint64_t[]){r}, 1, 1), 0);
	cr_assert_eq(seq_sale_close(&x->s, START - CLOSE_LEAD), 0);
	cr_assert_eq(seq_sale_settle(&x->s, START - IMPROVE_LEAD, seed, &x->st), 0);
	cr_assert_eq(seq_settlement_check(&x->st), 0);
}

Test(rights, singleton_bids_cannot_lower_a_rivals_share)
{
	struct shill honest, grief;

	grief_run(&honest, false);
	grief_run(&grief, true);
	cr_assert_eq(grief.st.n_winners, 1);
	cr_assert_eq(buyer_of(&grief, 0xa)->refund, 3, "the griefing tickets were free");
	for (uint64_t r = 1; r <= 4; r++)
		cr_assert_eq(credit_of(&grief, r), credit_of(&honest, r),
			     "rollup %llu: %llu with the rival's bids, %llu without",
			     (unsigned long long)r, (unsigned long long)credit_of(&grief, r),
			     (unsigned long long)credit_of(&honest, r));
	shill_free(&honest);
	shill_free(&grief);
}

Test(rights, shill_never_raises_a_shared_rollups_credit)
{
	unsigned checked = 0;

	for (uint64_t seed = 1; seed <= 400; seed++) {
		struct seq_offer o[6];
		size_t n = 3 + (size_t)(seed % 4);
		struct shill base, sh;
		uint8_t buyer[20], shill_addr[20], seed32[32] = {(uint8_t)seed};
		uint64_t victim, k;
		int32_t vi = -1;

		rng_state = seed * 31337;
		for (size_t i = 0; i < n; i++)
			o[i] = (struct seq_offer){.rollup = i + 1, .reserve = below(20), .opt_in = true};
		struct seq_sale_params p = params(seed, o, n);

		p.price = 1;
		for (int pass = 0; pass < 2; pass++) {
			struct shill *x = pass ? &sh : &base;

			rng_state = seed * 7777; /* same honest purchases in both runs */
			cr_assert_eq(seq_sale_create(&x->s, &p), 0);
			for (unsigned b = 0; b < 8; b++) {
				uint64_t ids[6];
				size_t m = 0;
				uint64_t mask = 1 + below((UINT64_C(1) << n) - 1);

				for (size_t i = 0; i < n; i++)
					if (mask >> i & 1)
						ids[m++] = i + 1;
				addr(buyer, b + 1);
				cr_assert_eq(seq_sale_buy(&x->s, 0, buyer, ids, m, 1 + below(60)), 0);
			}
			if (pass == 0) {
				cr_assert_eq(seq_sale_close(&x->s, START - CLOSE_LEAD), 0);
				cr_assert_eq(seq_sale_settle(&x->s, START - IMPROVE_LEAD, seed32,
							     &x->st), 0);
				/* a rollup credited from a bundle of two or more */
				for (size_t c = 0; c < x->st.n_credits && vi < 0; c++) {
					uint32_t w = x->st.credits[c].winner, same = 0;

					for (size_t d = 0; d < x->st.n_credits; d++)
						same += x->st.credits[d].winner == w;
					if (same >= 2)
						vi = (int32_t)c;
				}
				if (vi < 0)
					break;
				victim = x->st.credits[vi].rollup;
				k = 1 + below(80);
			} else {
				addr(shill_addr, 0xee);
				cr_assert_eq(seq_sale_buy(&x->s, 0, shill_addr, &victim, 1, k), 0);
				cr_assert_eq(seq_sale_close(&x->s, START - CLOSE_LEAD), 0);
				cr_assert_eq(seq_sale_settle(&x->s, START - IMPROVE_LEAD, seed32,
							     &x->st), 0);
			}
		}
		if (vi < 0) {
			shill_free(&base);
			continue;
		}
		/* still in a shared bundle after shilling? then no gain */
		uint64_t w = UINT64_MAX, same = 0, after = 0;

		for (size_t d = 0; d < sh.st.n_credits; d++)
			if (sh.st.credits[d].rollup == victim) {
				w = sh.st.credits[d].winner;
				after = sh.st.credits[d].amount;
			}
		for (size_t d = 0; d < sh.st.n_credits; d++)
			same += sh.st.credits[d].winner == w;
		if (w != UINT64_MAX && same >= 2 &&
		    sh.st.winners[w].revenue == base.st.winners[base.st.credits[vi].winner].revenue) {
			uint64_t cap = credit_at_reserve(&base, (size_t)vi);

			cr_assert_leq(after, cap > base.st.credits[vi].amount ? cap
					     : base.st.credits[vi].amount,
				      "seed %llu: rollup %llu shilled %llu tickets: %llu -> %llu, "
				      "reserve entitles it to %llu",
				      (unsigned long long)seed, (unsigned long long)victim,
				      (unsigned long long)k,
				      (unsigned long long)base.st.credits[vi].amount,
				      (unsigned long long)after, (unsigned long long)cap);
			checked++;
		}
		shill_free(&base);
		shill_free(&sh);
	}
	cr_assert_gt(checked, 50, "only %u sales exercised the property", checked);
}
