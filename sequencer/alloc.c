/*
 * alloc.c - choosing the winning bundles of a sale.
 *
 * The problem is weighted set packing: bundles are sets of rollups with a
 * value (tickets x price); pick pairwise disjoint bundles, each worth at
 * least its rollups' reserves, maximising the total. It is NP-hard in
 * general, so:
 *
 * Exact (n <= SEQ_RIGHTS_EXACT_MAX rollups): f[m] is the best revenue using
 * only bundles inside the rollup set m. With i the lowest rollup in m,
 * either i stays unsold, f[m] = f[m \ {i}], or it is sold in a bundle b
 * whose lowest rollup is i, f[m] = v(b) + f[m \ b]. Phases run i from n-1
 * down to 0, so m \ b (whose lowest rollup is above i) is already final;
 * within a phase each bundle b pushes v(b) + f[t] into f[b | t] for every t
 * among the rollups above i outside b. Cost: 2^n for the skips plus
 * 2^(n - low(b) - size(b)) per bundle, at most 2^(n-1) for a singleton on
 * the lowest rollup; bundles of random shape cost far less.
 *
 * Heuristic (more rollups): greedy in two orders (value; value per rollup),
 * each improved by 1-for-k swaps (add an unchosen bundle, drop the chosen
 * ones it overlaps, when that strictly gains, then refill greedily), keeping
 * the better. It always contains the best single valid bundle's value.
 *
 * Ties: strict comparisons everywhere, so for equal revenue an unsold
 * rollup is preferred to a sold one and an earlier bundle index (earlier
 * first purchase) to a later one; between the two greedy orders the value
 * order wins ties. The result is a function of the sale's public data only.
 */
#include "sequencer/rights.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

static bool valid_bundle(const struct seq_sale *s, uint32_t b)
{
	/* A bundle whose purchases were all voided has nothing to draw from. */
	return s->bundles[b].tickets > 0 &&
	       seq__value(s, s->bundles[b].tickets) >= s->bundles[b].reserve;
}

static int u32_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static void alloc_finish(const struct seq_sale *s, struct seq_alloc *out)
{
	qsort(out->bundle, out->n, sizeof(out->bundle[0]), u32_cmp);
	out->revenue = 0;
	for (uint32_t k = 0; k < out->n; k++)
		out->revenue += seq__value(s, s->bundles[out->bundle[k]].tickets);
}

int seq_alloc_exact(const struct seq_sale *s, struct seq_alloc *out)
{
	size_t n = s->n_rollups, full, nb = s->n_bundles;
	uint64_t *f = NULL;
	int32_t *choice = NULL;
	uint32_t *order = NULL, *start = NULL;
	int rc = SEQ_ENOMEM;

	if (n > SEQ_RIGHTS_EXACT_MAX)
		return SEQ_EINVAL;
	memset(out, 0, sizeof(*out));
	full = (size_t)1 << n;
	f = malloc(full * sizeof(*f));
	choice = malloc(full * sizeof(*choice));
	order = malloc((nb ? nb : 1) * sizeof(*order));
	start = calloc(n + 1, sizeof(*start));
	if (f == NULL || choice == NULL || order == NULL || start == NULL)
		goto out;

	/* Valid bundles grouped by lowest rollup, bundle order kept inside. */
	for (size_t b = 0; b < nb; b++)
		if (valid_bundle(s, (uint32_t)b))
			start[s->bundles[b].low + 1]++;
	for (size_t i = 0; i < n; i++)
		start[i + 1] += start[i];
	{
		uint32_t fill[SEQ_RIGHTS_EXACT_MAX + 1];

		memcpy(fill, start, (n + 1) * sizeof(*fill));
		for (size_t b = 0; b < nb; b++)
			if (valid_bundle(s, (uint32_t)b))
				order[fill[s->bundles[b].low]++] = (uint32_t)b;
	}

	f[0] = 0;
	choice[0] = -1;
	for (size_t i = n; i-- > 0;) {
		uint64_t bit = (uint64_t)1 << i;
		uint64_t above = (full - 1) & ~((bit << 1) - 1);

		/* Masks whose lowest rollup is i: bit | t, t inside `above`. */
		for (uint64_t t = 0;; t = (t - above) & above) {
			f[bit | t] = f[t];
			choice[bit | t] = -1;
			if (((t - above) & above) == 0)
				break;
		}
		for (uint32_t k = start[i]; k < start[i + 1]; k++) {
			uint32_t b = order[k];
			uint64_t bm = s->bundles[b].bits[0];
			uint64_t free_ = above & ~bm;
			uint64_t v = seq__value(s, s->bundles[b].tickets);

			for (uint64_t t = 0;; t = (t - free_) & free_) {
				uint64_t c = v + f[t];

				if (c > f[bm | t]) {
					f[bm | t] = c;
					choice[bm | t] = (int32_t)b;
				}
				if (((t - free_) & free_) == 0)
					break;
			}
		}
	}

	for (uint64_t m = full - 1; m != 0;) {
		uint64_t low = m & -m;

		if (choice[m] < 0) {
			m &= ~low;
		} else {
			out->bundle[out->n++] = (uint32_t)choice[m];
			m &= ~s->bundles[choice[m]].bits[0];
		}
	}
	alloc_finish(s, out);
	assert(out->revenue == f[full - 1]);
	rc = 0;
out:
	free(f);
	free(choice);
	free(order);
	free(start);
	return rc;
}

/* ---- heuristic ---- */

struct heur {
	const struct seq_sale *s;
	uint32_t *valid; /* valid bundles in the current greedy order */
	size_t n_valid;
	int32_t *owner; /* rollup index -> chosen bundle or -1 */
	bool *chosen;   /* bundle -> in the allocation */
	uint64_t revenue;
};

/* Every rollup index set in bundle bu, ascending, as `i`. */
#define FOR_EACH_ROLLUP(bu, i)                                                        \
	for (uint32_t w_ = 0, i = 0; w_ < SEQ__WORDS; w_++)                         \
		for (uint64_t x_ = (bu)->bits[w_];                                  \
		     x_ != 0 && (i = w_ * 64 + (uint32_t)__builtin_ctzll(x_), 1);    \
		     x_ &= x_ - 1)

static int by_value(const void *a, const void *b, void *ctx)
{
	const struct seq_sale *s = ctx;
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	uint64_t vx = s->bundles[x].tickets, vy = s->bundles[y].tickets;

	if (vx != vy)
		return vx > vy ? -1 : 1;
	return x < y ? -1 : x > y;
}

static int by_density(const void *a, const void *b, void *ctx)
{
	const struct seq_sale *s = ctx;
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	const struct seq_bundle *bx = &s->bundles[x], *by = &s->bundles[y];
	/* tickets_x / size_x vs tickets_y / size_y, cross-multiplied. */
	unsigned __int128 dx = (unsigned __int128)bx->tickets * by->size;
	unsigned __int128 dy = (unsigned __int128)by->tickets * bx->size;

	if (dx != dy)
		return dx > dy ? -1 : 1;
	return by_value(a, b, ctx);
}

static void take(struct heur *h, uint32_t b)
{
	const struct seq_bundle *bu = &h->s->bundles[b];

	FOR_EACH_ROLLUP(bu, i)
		h->owner[i] = (int32_t)b;
	h->chosen[b] = true;
	h->revenue += seq__value(h->s, bu->tickets);
}

static void drop(struct heur *h, uint32_t b)
{
	const struct seq_bundle *bu = &h->s->bundles[b];

	FOR_EACH_ROLLUP(bu, i)
		h->owner[i] = -1;
	h->chosen[b] = false;
	h->revenue -= seq__value(h->s, bu->tickets);
}

static bool fits(const struct heur *h, uint32_t b)
{
	const struct seq_bundle *bu = &h->s->bundles[b];

	FOR_EACH_ROLLUP(bu, i)
		if (h->owner[i] >= 0)
			return false;
	return true;
}

static void refill(struct heur *h)
{
	for (size_t k = 0; k < h->n_valid; k++)
		if (!h->chosen[h->valid[k]] && fits(h, h->valid[k]))
			take(h, h->valid[k]);
}

/* One pass of 1-for-k swaps; true if anything improved. */
static bool improve(struct heur *h, uint32_t *conf)
{
	const struct seq_sale *s = h->s;
	bool any = false;

	for (size_t k = 0; k < h->n_valid; k++) {
		uint32_t b = h->valid[k], nc = 0;
		const struct seq_bundle *bu = &s->bundles[b];
		uint64_t lost = 0;

		if (h->chosen[b])
			continue;
		FOR_EACH_ROLLUP(bu, i) {
			if (h->owner[i] < 0)
				continue;
			uint32_t c = (uint32_t)h->owner[i];
			uint32_t j;

			for (j = 0; j < nc && conf[j] != c; j++)
				;
			if (j == nc) {
				conf[nc++] = c;
				lost += seq__value(s, s->bundles[c].tickets);
			}
		}
		if (seq__value(s, bu->tickets) <= lost)
			continue;
		for (uint32_t j = 0; j < nc; j++)
			drop(h, conf[j]);
		take(h, b);
		refill(h);
		any = true;
	}
	return any;
}

#define HEUR_MAX_PASSES 16

static void run_order(struct heur *h, int (*cmp)(const void *, const void *, void *),
		      uint32_t *conf, struct seq_alloc *out)
{
	const struct seq_sale *s = h->s;

	qsort_r(h->valid, h->n_valid, sizeof(*h->valid), cmp, (void *)s);
	for (size_t i = 0; i < s->n_rollups; i++)
		h->owner[i] = -1;
	memset(h->chosen, 0, s->n_bundles * sizeof(*h->chosen));
	h->revenue = 0;
	refill(h);
	for (int pass = 0; pass < HEUR_MAX_PASSES && improve(h, conf); pass++)
		;
	memset(out, 0, sizeof(*out));
	for (size_t b = 0; b < s->n_bundles; b++)
		if (h->chosen[b])
			out->bundle[out->n++] = (uint32_t)b;
	alloc_finish(s, out);
	assert(out->revenue == h->revenue);
}

int seq_alloc_heuristic(const struct seq_sale *s, struct seq_alloc *out)
{
	struct heur h = {.s = s};
	struct seq_alloc *second = NULL;
	uint32_t *conf = NULL;
	int rc = SEQ_ENOMEM;

	h.valid = malloc((s->n_bundles ? s->n_bundles : 1) * sizeof(*h.valid));
	h.owner = malloc((s->n_rollups ? s->n_rollups : 1) * sizeof(*h.owner));
	h.chosen = malloc(s->n_bundles ? s->n_bundles : 1);
	conf = malloc((s->n_rollups ? s->n_rollups : 1) * sizeof(*conf));
	second = malloc(sizeof(*second));
	if (h.valid == NULL || h.owner == NULL || h.chosen == NULL || conf == NULL ||
	    second == NULL)
		goto out;
	for (size_t b = 0; b < s->n_bundles; b++)
		if (valid_bundle(s, (uint32_t)b))
			h.valid[h.n_valid++] = (uint32_t)b;
	run_order(&h, by_value, conf, out);
	run_order(&h, by_density, conf, second);
	if (second->revenue > out->revenue)
		*out = *second;
	rc = 0;
out:
	free(h.valid);
	free(h.owner);
	free(h.chosen);
	free(conf);
	free(second);
	return rc;
}

int seq_alloc_compute(const struct seq_sale *s, struct seq_alloc *out)
{
	if (s->n_rollups <= SEQ_RIGHTS_EXACT_MAX)
		return seq_alloc_exact(s, out);
	return seq_alloc_heuristic(s, out);
}

int seq_alloc_validate(const struct seq_sale *s, const struct seq_alloc *a, uint64_t *revenue)
{
	uint64_t used[SEQ__WORDS] = {0}, rev = 0;

	if (a->n > SEQ_RIGHTS_MAX_ROLLUPS)
		return SEQ_EINVAL;
	for (uint32_t k = 0; k < a->n; k++) {
		uint32_t b = a->bundle[k];

		if (b >= s->n_bundles || s->bundles[b].tickets == 0)
			return SEQ_ENOBID;
		if (k > 0 && b <= a->bundle[k - 1])
			return SEQ_EOVERLAP; /* repeated or not canonical */
		if (!seq__bits_disjoint(used, s->bundles[b].bits))
			return SEQ_EOVERLAP;
		if (!valid_bundle(s, b))
			return SEQ_ERESERVE;
		seq__bits_or(used, s->bundles[b].bits);
		rev += seq__value(s, s->bundles[b].tickets);
	}
	if (revenue != NULL)
		*revenue = rev;
	return 0;
}

int seq_alloc_check(const struct seq_sale *s, const struct seq_alloc *a)
{
	uint64_t rev;
	int rc = seq_alloc_validate(s, a, &rev);

	if (rc != 0)
		return rc;
	return rev > s->best.revenue ? 0 : SEQ_ENOTBETTER;
}
