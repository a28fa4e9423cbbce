/*
 * metrics.c - the process-wide metrics of ops.h's APP_METRICS table, kept in
 * relaxed atomics (a scrape may see a histogram's count a few observations
 * apart from its buckets; Prometheus tolerates that, and the hot paths pay
 * one uncontended atomic add), rendered in Prometheus text format 0.0.4.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/ops.h"

enum kind { COUNTER, GAUGE, HISTOGRAM };

struct bucket_set {
	const uint64_t *le; /* upper bounds, ascending, in observed units */
	size_t n;
	double scale; /* exported value = observed * scale */
};

static const uint64_t lat_us[] = {100,   250,   500,    1000,   2000,   5000,   10000,
				  25000, 50000, 100000, 250000, 500000, 1000000, 5000000};
/* finer under 5 ms, for the preconfirmation path and its three parts */
static const uint64_t step_us[] = {25,   50,   100,  200,  300,   500,    750,    1000,
				   1500, 2000, 3000, 5000, 10000, 50000, 250000, 1000000};
static const uint64_t counts[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384, 65536};
static const struct bucket_set NONE = {NULL, 0, 1};
static const struct bucket_set LAT_US = {lat_us, sizeof(lat_us) / sizeof(lat_us[0]), 1e-6};
static const struct bucket_set STEP_US = {step_us, sizeof(step_us) / sizeof(step_us[0]), 1e-6};
static const struct bucket_set COUNT = {counts, sizeof(counts) / sizeof(counts[0]), 1};
#define MAX_BUCKETS 16
_Static_assert(sizeof(lat_us) / sizeof(lat_us[0]) <= MAX_BUCKETS, "too many LAT_US buckets");
_Static_assert(sizeof(step_us) / sizeof(step_us[0]) <= MAX_BUCKETS, "too many STEP_US buckets");
_Static_assert(sizeof(counts) / sizeof(counts[0]) <= MAX_BUCKETS, "too many COUNT buckets");

struct def {
	enum kind kind;
	const char *name, *help;
	const struct bucket_set *b;
};

static const struct def defs[APP_M__COUNT] = {
#define APP_M_DEF(kind, name, help, b) {kind, #name, help, &b},
	APP_METRICS(APP_M_DEF)
#undef APP_M_DEF
};

static struct {
	atomic_uint_fast64_t v; /* counter/gauge value; histogram count */
	atomic_uint_fast64_t sum;
	atomic_uint_fast64_t b[MAX_BUCKETS];
} vals[APP_M__COUNT];

void app_metric_add(enum app_metric m, uint64_t n)
{
	atomic_fetch_add_explicit(&vals[m].v, n, memory_order_relaxed);
}

void app_metric_set(enum app_metric m, uint64_t v)
{
	atomic_store_explicit(&vals[m].v, v, memory_order_relaxed);
}

uint64_t app_metric_get(enum app_metric m)
{
	return atomic_load_explicit(&vals[m].v, memory_order_relaxed);
}

void app_metric_observe(enum app_metric m, uint64_t v)
{
	const struct bucket_set *b = defs[m].b;
	size_t i = 0;

	while (i < b->n && v > b->le[i])
		i++;
	if (i < b->n) /* the +Inf bucket is the count */
		atomic_fetch_add_explicit(&vals[m].b[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&vals[m].sum, v, memory_order_relaxed);
	atomic_fetch_add_explicit(&vals[m].v, 1, memory_order_relaxed);
}

void app_text_printf(struct app_text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (int pass = 0; pass < 2 && !t->oom; pass++) {
		size_t room = t->cap - t->len;

		va_start(ap, fmt);
		n = vsnprintf(t->p ? t->p + t->len : NULL, t->p ? room : 0, fmt, ap);
		va_end(ap);
		if (n < 0) {
			t->oom = 1;
			return;
		}
		if (t->p && (size_t)n < room) {
			t->len += (size_t)n;
			return;
		}
		size_t cap = t->cap ? t->cap : 4096;
		while (cap < t->len + (size_t)n + 1)
			cap *= 2;
		char *np = realloc(t->p, cap);

		if (!np) {
			t->oom = 1;
			return;
		}
		t->p = np;
		t->cap = cap;
	}
}

/* Prometheus float formatting: integers stay integers. */
static void num(char *out, size_t len, double v)
{
	snprintf(out, len, "%.9g", v);
}

void app_metrics_render(struct app_text *t)
{
	static const char *const kinds[] = {"counter", "gauge", "histogram"};

	for (size_t m = 0; m < APP_M__COUNT; m++) {
		const struct def *d = &defs[m];
		uint64_t cum = 0;
		char le[32], sum[40];

		app_text_printf(t, "# HELP mezz_%s %s\n# TYPE mezz_%s %s\n", d->name, d->help,
				d->name, kinds[d->kind]);
		if (d->kind != HISTOGRAM) {
			app_text_printf(t, "mezz_%s %llu\n", d->name,
					(unsigned long long)app_metric_get((enum app_metric)m));
			continue;
		}
		/* Read the count first: buckets can then only be ahead of it, and
		 * cumulative bucket counts are clamped so they never exceed it. */
		uint64_t count = atomic_load_explicit(&vals[m].v, memory_order_relaxed);

		for (size_t i = 0; i < d->b->n; i++) {
			cum += atomic_load_explicit(&vals[m].b[i], memory_order_relaxed);
			num(le, sizeof(le), (double)d->b->le[i] * d->b->scale);
			app_text_printf(t, "mezz_%s_bucket{le=\"%s\"} %llu\n", d->name, le,
					(unsigned long long)(cum < count ? cum : count));
		}
		num(sum, sizeof(sum),
		    (double)atomic_load_explicit(&vals[m].sum, memory_order_relaxed) * d->b->scale);
		app_text_printf(t, "mezz_%s_bucket{le=\"+Inf\"} %llu\nmezz_%s_sum %s\nmezz_%s_count %llu\n",
				d->name, (unsigned long long)count, d->name, sum, d->name,
				(unsigned long long)count);
	}
}
