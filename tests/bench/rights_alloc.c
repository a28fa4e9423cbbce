/*
 * rights_alloc: how long allocating a sale of sequencing rights takes.
 *
 *   build/bench/rights_alloc [reps]      (default 7 repetitions)
 *
 * Scenarios: 20 rollups x 1,000 bids with the exact DP (random bundle
 * shapes, and the DP's worst shape: every bid small and on the lowest
 * rollup); 200 rollups x 10,000 bids with the heuristic. Prints the median
 * and range of wall time per scenario, then a markdown table.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sequencer/seq.h"

static uint64_t rng = 1;

static uint64_t rnd(void)
{
	uint64_t z = (rng += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

enum shape { RANDOM, WORST };

static int build(struct seq_sale *s, size_t n, size_t bids, enum shape shape)
{
	struct seq_offer *o = calloc(n, sizeof(*o));
	struct seq_sale_params p = {
		.sale_id = 1, .start_slot = 1000, .end_slot = 1032, .close_lead = 100,
		.improve_lead = 50, .price = 1000, .cap = SEQ_RIGHTS_TICKETS_MAX,
		.target = SEQ_RIGHTS_TICKETS_MAX / 2, .burn_bps = 1000, .offers = o, .n_offers = n,
	};
	uint64_t ids[SEQ_RIGHTS_MAX_ROLLUPS];
	uint8_t a[20] = {0};
	int rc;

	for (size_t i = 0; i < n; i++) {
		o[i].rollup = i + 1;
		o[i].opt_in = true;
		o[i].reserve = rnd() % 20000;
	}
	rc = seq_sale_create(s, &p);
	free(o);
	if (rc != 0)
		return rc;
	for (size_t k = 0; k < bids; k++) {
		size_t m = 0, size;

		if (shape == WORST) {
			/* Bundles {1} u (2 or 3 others), all distinct-ish: each
			 * costs the DP up to 2^(n - size) pushes. */
			ids[m++] = 1;
			size = 2 + rnd() % 3;
			while (m < size) {
				uint64_t id = 2 + rnd() % (n - 1);
				size_t j;

				for (j = 1; j < m && ids[j] != id; j++)
					;
				if (j == m)
					ids[m++] = id;
			}
		} else {
			size = 1 + rnd() % 8;
			if (size > n)
				size = n;
			while (m < size) {
				uint64_t id = 1 + rnd() % n;
				size_t j;

				for (j = 0; j < m && ids[j] != id; j++)
					;
				if (j == m)
					ids[m++] = id;
			}
		}
		/* ascending */
		for (size_t i = 1; i < m; i++)
			for (size_t j = i; j > 0 && ids[j - 1] > ids[j]; j--) {
				uint64_t t = ids[j];

				ids[j] = ids[j - 1];
				ids[j - 1] = t;
			}
		a[19] = (uint8_t)k;
		/* Demand grows with the bundle: k rollups draw about k times
		 * the tickets, so bundles of every size compete. */
		rc = seq_sale_buy(s, 0, a, ids, m, m * (1 + rnd() % 100));
		if (rc != 0)
			return rc;
	}
	return 0;
}

static double now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int dcmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

struct result {
	const char *name;
	size_t rollups, bids, bundles, winners;
	double med, lo, hi;
	unsigned long long revenue;
};

static int run(struct result *r, const char *name, size_t n, size_t bids, enum shape shape,
	       int (*alloc)(const struct seq_sale *, struct seq_alloc *), int reps)
{
	struct seq_sale s;
	static struct seq_alloc a;
	double t[64];

	rng = 12345;
	if (build(&s, n, bids, shape) != 0)
		return -1;
	for (int i = 0; i < reps; i++) {
		double t0 = now_ms();

		if (alloc(&s, &a) != 0)
			return -1;
		t[i] = now_ms() - t0;
	}
	qsort(t, (size_t)reps, sizeof(t[0]), dcmp);
	*r = (struct result){name, n, bids, s.n_bundles, a.n, t[reps / 2], t[0], t[reps - 1],
			     (unsigned long long)a.revenue};
	printf("%-28s rollups %3zu bids %5zu bundles %5zu winners %3zu revenue %llu  median %.2f ms (min %.2f, max %.2f)\n",
	       name, n, bids, s.n_bundles, r->winners, r->revenue, r->med, r->lo, r->hi);
	seq_sale_destroy(&s);
	return 0;
}

int main(int argc, char **argv)
{
	int reps = argc > 1 ? atoi(argv[1]) : 7;
	struct result r[4];

	if (reps < 1 || reps > 64)
		reps = 7;
	if (run(&r[0], "exact, random bundles", 20, 1000, RANDOM, seq_alloc_exact, reps) ||
	    run(&r[1], "exact, worst-case shapes", 20, 1000, WORST, seq_alloc_exact, reps) ||
	    run(&r[2], "heuristic, random bundles", 200, 10000, RANDOM, seq_alloc_heuristic, reps) ||
	    run(&r[3], "heuristic on 20 x 1,000", 20, 1000, RANDOM, seq_alloc_heuristic, reps)) {
		fprintf(stderr, "rights_alloc: setup or allocation failed\n");
		return 1;
	}
	printf("\n| scenario | rollups | bids | distinct bundles | winners | median ms | min ms | max ms |\n");
	printf("|---|---:|---:|---:|---:|---:|---:|---:|\n");
	for (int i = 0; i < 4; i++)
		printf("| %s | %zu | %zu | %zu | %zu | %.2f | %.2f | %.2f |\n", r[i].name, r[i].rollups,
		       r[i].bids, r[i].bundles, r[i].winners, r[i].med, r[i].lo, r[i].hi);
	printf("\nexact/heuristic revenue on the 20 x 1,000 sale: %llu / %llu\n", r[0].revenue,
	       r[3].revenue);
	return 0;
}
