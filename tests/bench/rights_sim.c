/*
 * rights_sim: 100 sales of sequencing rights with random demand, showing
 * the ticket price rule (seq_price_next) settle where sales meet the target.
 *
 *   build/bench/rights_sim [svg-path]     (default docs/rights-price.svg)
 *
 * Demand model: buyers value a ticket at V = 5,000 gwei times a lognormal-
 * ish factor that changes every sale (0.6x..1.4x); at price p a sale
 * attracts D(p) = target * (V / p) tickets, give or take 20%, bought in
 * lots of 1..20 on random bundles of 8 rollups until the demand or the cap
 * is used up. Every sale runs through the real API: create, buy, close,
 * settle (with a per-sale seed), and its settlement is checked. The price
 * should climb from its start of 1,000 gwei and then hover around the value
 * buyers put on a ticket. Prints one line per sale and writes an SVG plot.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sequencer/seq.h"

#define SALES 100
#define ROLLUPS 8
#define CAP 2000
#define TARGET 1000
#define FLOOR 100
#define VALUE 5000.0

static uint64_t rng = 2024;

static uint64_t rnd(void)
{
	uint64_t z = (rng += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static double unit(void)
{
	return (double)(rnd() >> 11) / 9007199254740992.0;
}

static int run_sale(uint64_t id, uint64_t price, double value, uint64_t *sold)
{
	struct seq_offer o[ROLLUPS];
	struct seq_sale_params p = {
		.sale_id = id, .start_slot = 1000 * (id + 1), .end_slot = 1000 * (id + 1) + 32,
		.close_lead = 64, .improve_lead = 32, .draw_block = 100 + id, .price = price,
		.cap = CAP, .target = TARGET, .burn_bps = 500, .offers = o, .n_offers = ROLLUPS,
	};
	struct seq_sale s;
	struct seq_settlement st;
	uint8_t seed[32] = {0}, buyer[20] = {0};
	double want = TARGET * (value / (double)price) * (0.8 + 0.4 * unit());
	uint64_t left = want > 4.0 * CAP ? 4 * CAP : (uint64_t)want;
	int rc;

	for (int i = 0; i < ROLLUPS; i++) {
		o[i].rollup = (uint64_t)i + 1;
		o[i].opt_in = rnd() % 8 != 0 || i == 0; /* some sit a sale out */
		o[i].reserve = 500 * (rnd() % 4);
	}
	rc = seq_sale_create(&s, &p);
	if (rc != 0)
		return rc;
	while (left > 0) {
		uint64_t ids[ROLLUPS], lot = 1 + rnd() % 20;
		size_t m = 0;

		for (size_t r = 0; r < s.n_rollups; r++)
			if (rnd() % 3 == 0)
				ids[m++] = s.rollups[r].id;
		if (m == 0)
			ids[m++] = s.rollups[rnd() % s.n_rollups].id;
		if (lot > left)
			lot = left;
		buyer[19] = (uint8_t)rnd();
		rc = seq_sale_buy(&s, 0, buyer, ids, m, lot);
		if (rc == SEQ_ESOLDOUT)
			lot = CAP - s.sold, rc = lot ? seq_sale_buy(&s, 0, buyer, ids, m, lot) : 0;
		if (rc != 0 || s.sold == CAP)
			break;
		left -= lot;
	}
	*sold = s.sold;
	for (int i = 0; i < 8; i++)
		seed[i] = (uint8_t)(id >> (8 * i));
	rc = seq_sale_close(&s, seq_sale_close_slot(&s));
	if (rc == 0)
		rc = seq_sale_settle(&s, seq_sale_deadline_slot(&s), seed, &st);
	if (rc == 0) {
		rc = seq_settlement_check(&st);
		seq_settlement_free(&st);
	}
	seq_sale_destroy(&s);
	return rc;
}

static void svg(const char *path, const uint64_t *price, const uint64_t *sold, const double *value)
{
	const double W = 720, H = 420, L = 70, R = 20, T = 40, B = 50;
	double ymax = 0;
	FILE *f = fopen(path, "w");

	if (f == NULL) {
		perror(path);
		return;
	}
	for (int i = 0; i < SALES; i++) {
		if (price[i] > ymax)
			ymax = (double)price[i];
		if (value[i] > ymax)
			ymax = value[i];
	}
	ymax = ceil(ymax / 1000.0) * 1000.0;
#define X(i) (L + (W - L - R) * (double)(i) / (SALES - 1))
#define Y(v) (H - B - (H - T - B) * (v) / ymax)
	fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
		   "font-family=\"sans-serif\" font-size=\"12\">\n", W, H);
	fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
	fprintf(f, "<text x=\"%.0f\" y=\"22\" font-size=\"15\">Ticket price per sale "
		   "(seq_price_next, step &lt;= 12.5%%)</text>\n", L);
	for (int k = 0; k <= 5; k++) {
		double v = ymax * k / 5;

		fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n",
			L, Y(v), W - R, Y(v));
		fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.0f</text>\n", L - 6,
			Y(v) + 4, v);
	}
	for (int i = 0; i < SALES; i += 10)
		fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%d</text>\n", X(i),
			H - B + 18, i);
	fprintf(f, "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"black\"/>\n", L,
		H - B, W - R, H - B);
	fprintf(f, "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"black\"/>\n", L, T,
		L, H - B);
	fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">sale</text>\n",
		(L + W - R) / 2, H - 12);
	fprintf(f, "<text transform=\"translate(16 %.0f) rotate(-90)\" text-anchor=\"middle\">"
		   "gwei per ticket</text>\n", (T + H - B) / 2);
	fprintf(f, "<polyline fill=\"none\" stroke=\"#bbb\" stroke-dasharray=\"4 3\" points=\"");
	for (int i = 0; i < SALES; i++)
		fprintf(f, "%.1f,%.1f ", X(i), Y(value[i]));
	fprintf(f, "\"/>\n<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\" points=\"");
	for (int i = 0; i < SALES; i++)
		fprintf(f, "%.1f,%.1f ", X(i), Y((double)price[i]));
	fprintf(f, "\"/>\n");
	for (int i = 0; i < SALES; i++)
		if (sold[i] >= CAP)
			fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"#d62728\"/>\n",
				X(i), Y((double)price[i]));
	fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" fill=\"#1f77b4\">price</text>\n", W - R - 230, T + 14);
	fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" fill=\"#888\">buyers' value (price where demand = "
		   "target)</text>\n", W - R - 230, T + 30);
	fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" fill=\"#d62728\">sold out (cap %d)</text>\n",
		W - R - 230, T + 46, CAP);
	fprintf(f, "</svg>\n");
#undef X
#undef Y
	fclose(f);
}

int main(int argc, char **argv)
{
	const char *path = argc > 1 ? argv[1] : "docs/rights-price.svg";
	uint64_t price[SALES], sold[SALES], p = 1000;
	double value[SALES], err = 0;

	printf("sale  price_gwei  value_gwei  sold  (target %d, cap %d, floor %d)\n", TARGET, CAP,
	       FLOOR);
	for (int i = 0; i < SALES; i++) {
		int rc;

		value[i] = VALUE * (0.6 + 0.8 * unit());
		/* Demand drifts slowly: half the new draw, half the last value. */
		if (i > 0)
			value[i] = 0.8 * value[i - 1] + 0.2 * value[i];
		price[i] = p;
		rc = run_sale((uint64_t)i, p, value[i], &sold[i]);
		if (rc != 0) {
			fprintf(stderr, "sale %d: %s\n", i, seq_strerror(rc));
			return 1;
		}
		printf("%4d  %10llu  %10.0f  %4llu%s\n", i, (unsigned long long)p, value[i],
		       (unsigned long long)sold[i], sold[i] >= CAP ? "  sold out" : "");
		if (i >= SALES / 2)
			err += fabs((double)p - value[i]) / value[i];
		p = seq_price_next(p, sold[i], CAP, TARGET, FLOOR);
	}
	printf("mean |price - value| / value over the last %d sales: %.1f%%\n", SALES / 2,
	       100 * err / (SALES / 2));
	svg(path, price, sold, value);
	printf("wrote %s\n", path);
	return 0;
}
