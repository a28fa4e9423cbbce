/*
 * The coder: differential against ISA-L's portable _base functions, every
 * erasure pattern of up to m lost shards for small codes, random patterns
 * for large ones, odd shard sizes, and decode from two threads at once.
 */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <isa-l/crc.h>
#include <isa-l/erasure_code.h>
#if defined(__x86_64__)
#include <cpuid.h>
#endif

#include "da/internal.h"
#include "tests/da/helpers.h"

struct shards {
	unsigned k, m;
	size_t S;
	uint8_t *mem, *orig;
	uint8_t *p[DA_MAX_SHARDS];
};

static void shards_new(struct shards *s, unsigned k, unsigned m, size_t S, uint64_t seed)
{
	uint64_t st = seed | 1;

	s->k = k;
	s->m = m;
	s->S = S;
	s->mem = malloc((k + m) * S);
	s->orig = malloc((k + m) * S);
	cr_assert(s->mem && s->orig);
	for (unsigned i = 0; i < k + m; i++)
		s->p[i] = s->mem + (size_t)i * S;
	t_fill(s->mem, k * S, &st);
}

static void shards_free(struct shards *s)
{
	free(s->mem);
	free(s->orig);
}

/* Our encode against ec_encode_data_base over tables built here. */
static void check_encode_base(unsigned k, unsigned m, size_t S, uint64_t seed)
{
	struct da_code *c;
	struct shards s;
	uint8_t *a = malloc((k + m) * k), *tbl = malloc(32 * k * m), *ref = malloc(m * S);
	uint8_t *refp[DA_MAX_SHARDS];

	cr_assert(a && tbl && ref);
	shards_new(&s, k, m, S, seed);
	cr_assert_eq(da_code_new(k, m, &c), 0);
	cr_assert_eq(da_encode(c, s.p, s.p + k, S), 0);
	gf_gen_cauchy1_matrix(a, (int)(k + m), (int)k);
	ec_init_tables((int)k, (int)m, a + k * k, tbl);
	for (unsigned i = 0; i < m; i++)
		refp[i] = ref + i * S;
	ec_encode_data_base((int)S, (int)k, (int)m, tbl, s.p, refp);
	cr_assert_eq(memcmp(s.p[k], ref, m * S), 0, "k=%u m=%u S=%zu", k, m, S);
	da_code_free(c);
	shards_free(&s);
	free(a);
	free(tbl);
	free(ref);
}

Test(code, encode_matches_base)
{
	static const size_t sizes[] = {1, 2, 31, 32, 33, 63, 64, 65, 100, 1000, 4096,
				       32 * 1024 - 1, 32 * 1024 + 63, 32 * 1024 + 64,
				       3 * 32 * 1024 + 17};
	static const unsigned km[][2] = {{1, 1}, {4, 2}, {16, 16}, {10, 4}, {32, 8}, {3, 7}};

	for (size_t i = 0; i < sizeof(km) / sizeof(km[0]); i++)
		for (size_t j = 0; j < sizeof(sizes) / sizeof(sizes[0]); j++)
			check_encode_base(km[i][0], km[i][1], sizes[j], i * 100 + j + 1);
}

/* What da_encode_each's callback saw: each slice, and whether every data
 * and parity column of it was final by then. */
struct seen {
	const struct shards *s;
	const uint8_t *ref; /* the finished shards, as da_encode wrote them */
	size_t off[256], n[256];
	unsigned count, not_final;
};

static void seen_slice(void *arg, size_t off, size_t n)
{
	struct seen *v = arg;

	if (v->count < 256) {
		v->off[v->count] = off;
		v->n[v->count] = n;
	}
	v->count++;
	for (unsigned i = 0; i < v->s->k + v->s->m; i++)
		if (memcmp(v->s->p[i] + off, v->ref + i * v->s->S + off, n) != 0)
			v->not_final++;
}

/*
 * da_encode_each codes exactly what da_encode does, and calls back once per
 * slice, in order, over [0, S) with no gap or overlap, each slice a multiple
 * of 64 but the last, and every column of the slice final when it is called:
 * one call while the k + m shards fit in half of L2, 16 KiB slices (tail
 * joined) above that.
 */
Test(code, encode_each_calls_back_per_finished_slice)
{
	static const struct { unsigned k, m; size_t S, slices; } cs[] = {
		{4, 2, 1000, 1},
		{16, 16, 32768, 1},               /* 1 MiB of shards: one call */
		{16, 16, 65536, 4},               /* 2 MiB: 16 KiB slices */
		{16, 16, 8 * 16384 + 100, 9},     /* a 100-byte last slice */
		{16, 4, 5 * 16384 + 32, 5},       /* a tail under 64 joins the last slice */
		{20, 3, 4 * 32768, 8},
	};

	for (size_t t = 0; t < sizeof(cs) / sizeof(cs[0]); t++) {
		unsigned k = cs[t].k, m = cs[t].m;
		size_t S = cs[t].S, at = 0;
		struct da_code *c;
		struct shards s;
		struct seen v = {.s = &s};

		shards_new(&s, k, m, S, t + 7);
		cr_assert_eq(da_code_new(k, m, &c), 0);
		cr_assert_eq(da_encode(c, s.p, s.p + k, S), 0);
		memcpy(s.orig, s.mem, (k + m) * S);
		v.ref = s.orig;
		memset(s.mem + k * S, 0xA5, m * S); /* parity not yet coded */
		cr_assert_eq(da_encode_each(c, s.p, s.p + k, S, seen_slice, &v), 0);
		cr_assert_eq(memcmp(s.mem, s.orig, (k + m) * S), 0, "case %zu", t);
		cr_assert_eq(v.not_final, 0, "case %zu: a column was not final at its call", t);
		cr_assert_eq(v.count, cs[t].slices, "case %zu: %u slices", t, v.count);
		for (unsigned i = 0; i < v.count; i++) {
			cr_assert_eq(v.off[i], at, "case %zu slice %u", t, i);
			if (i + 1 < v.count)
				cr_assert_eq(v.n[i] % 64, 0, "case %zu slice %u", t, i);
			at += v.n[i];
		}
		cr_assert_eq(at, S, "case %zu: the slices cover S", t);
		cr_assert_eq(da_encode_each(c, s.p, s.p + k, S, NULL, NULL), DA_EINVAL);
		da_code_free(c);
		shards_free(&s);
	}
}

/* Decode with present[] and compare every shard with the original. */
static void decode_and_check(struct da_code *c, struct shards *s, const uint8_t *present)
{
	unsigned n = s->k + s->m;

	for (unsigned i = 0; i < n; i++)
		if (!present[i])
			memset(s->p[i], 0xA5, s->S);
	cr_assert_eq(da_decode(c, s->p, present, s->S), 0);
	cr_assert_eq(memcmp(s->mem, s->orig, n * s->S), 0, "k=%u m=%u S=%zu", s->k, s->m, s->S);
}

/* Every subset of at most m lost shards, by walking all bitmasks of n bits. */
static void all_patterns(unsigned k, unsigned m, size_t S)
{
	unsigned n = k + m, tested = 0;
	uint8_t present[DA_MAX_SHARDS];
	struct da_code *c;
	struct shards s;

	shards_new(&s, k, m, S, k * 31 + m);
	cr_assert_eq(da_code_new(k, m, &c), 0);
	cr_assert_eq(da_encode(c, s.p, s.p + k, S), 0);
	memcpy(s.orig, s.mem, n * S);
	for (uint32_t mask = 0; mask < (1u << n); mask++) {
		if ((unsigned)__builtin_popcount(mask) > m)
			continue;
		for (unsigned i = 0; i < n; i++)
			present[i] = !(mask & (1u << i));
		decode_and_check(c, &s, present);
		tested++;
	}
	cr_assert_gt(tested, 0);
	da_code_free(c);
	shards_free(&s);
}

Test(code, every_pattern_4_2) { all_patterns(4, 2, 65); }
Test(code, every_pattern_6_3) { all_patterns(6, 3, 63); }
Test(code, every_pattern_10_4) { all_patterns(10, 4, 100); }

/* Random patterns of up to m lost shards for larger codes. */
static void random_patterns(unsigned k, unsigned m, size_t S, unsigned rounds, uint64_t seed)
{
	uint8_t present[DA_MAX_SHARDS];
	unsigned n = k + m, idx[DA_MAX_SHARDS];
	uint64_t st = seed | 1;
	struct da_code *c;
	struct shards s;

	shards_new(&s, k, m, S, seed);
	cr_assert_eq(da_code_new(k, m, &c), 0);
	cr_assert_eq(da_encode(c, s.p, s.p + k, S), 0);
	memcpy(s.orig, s.mem, n * S);
	for (unsigned r = 0; r < rounds; r++) {
		unsigned lost = (unsigned)(t_rand(&st) % (m + 1));

		if (r == 0)
			lost = m;
		for (unsigned i = 0; i < n; i++)
			idx[i] = i;
		for (unsigned i = 0; i < n; i++) { /* Fisher-Yates */
			unsigned j = i + (unsigned)(t_rand(&st) % (n - i)), t = idx[i];

			idx[i] = idx[j];
			idx[j] = t;
		}
		memset(present, 1, n);
		for (unsigned i = 0; i < lost; i++)
			present[idx[i]] = 0;
		decode_and_check(c, &s, present);
	}
	da_code_free(c);
	shards_free(&s);
}

Test(code, random_16_16) { random_patterns(16, 16, 1000, 60, 1); }
Test(code, random_32_8) { random_patterns(32, 8, 65, 60, 2); }
Test(code, random_100_28) { random_patterns(100, 28, 64, 40, 3); }
Test(code, random_200_56) { random_patterns(200, 56, 33, 30, 4); }
Test(code, random_edges)
{
	random_patterns(1, 1, 1, 5, 5);
	random_patterns(1, 255, 17, 10, 6);
	random_patterns(255, 1, 5, 10, 7);
	random_patterns(16, 16, 3 * 32 * 1024 + 17, 5, 8); /* several slices */
}

/* Data shards rebuilt by a decode matrix computed here and ec_encode_data_base. */
Test(code, decode_matches_base)
{
	unsigned k = 10, m = 4, n = 14;
	size_t S = 257;
	uint8_t a[14 * 10], b[10 * 10], inv[10 * 10], tbl[32 * 10 * 10];
	uint8_t present[14] = {0, 1, 1, 0, 1, 1, 1, 1, 0, 1, 1, 1, 0, 1};
	uint8_t *src[10], *out[10], *ref = malloc(k * S);
	struct da_code *c;
	struct shards s;
	unsigned ns = 0;

	shards_new(&s, k, m, S, 99);
	cr_assert_eq(da_code_new(k, m, &c), 0);
	cr_assert_eq(da_encode(c, s.p, s.p + k, S), 0);
	memcpy(s.orig, s.mem, n * S);
	gf_gen_cauchy1_matrix(a, (int)n, (int)k);
	for (unsigned i = 0; i < n && ns < k; i++)
		if (present[i]) {
			memcpy(b + ns * k, a + i * k, k);
			src[ns++] = s.orig + i * S;
		}
	cr_assert_eq(gf_invert_matrix(b, inv, (int)k), 0);
	ec_init_tables((int)k, (int)k, inv, tbl);
	for (unsigned i = 0; i < k; i++)
		out[i] = ref + i * S;
	ec_encode_data_base((int)S, (int)k, (int)k, tbl, src, out);
	cr_assert_eq(memcmp(ref, s.orig, k * S), 0, "base decode disagrees with the data");
	decode_and_check(c, &s, present);
	da_code_free(c);
	shards_free(&s);
	free(ref);
}

/*
 * XINUSE (XGETBV with ECX = 1): bit 2 is set while the upper halves of the
 * YMM registers are not in their initial state, bit 6 the same for ZMM.
 * Dirty, they slow every legacy-SSE instruction the thread runs next, among
 * them OpenSSL's SHA-NI SHA-256 that hashes the leaves (da/code.c).
 */
#define UPPER_DIRTY ((1u << 2) | (1u << 6))

#if defined(__x86_64__)
static int xinuse_supported(void)
{
	unsigned a, b, c, d;

	if (!__get_cpuid_count(0xd, 1, &a, &b, &c, &d) || !(a & (1u << 2)))
		return 0;
	return __builtin_cpu_supports("avx");
}

static unsigned xinuse(void)
{
	uint32_t lo, hi;

	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(1));
	return lo;
}
#else
static int xinuse_supported(void)
{
	return 0;
}

static unsigned xinuse(void)
{
	return 0;
}
#endif

static void check_clean_slice(void *arg, size_t off, size_t len)
{
	unsigned *calls = arg;

	(void)off;
	(void)len;
	cr_expect_eq(xinuse() & UPPER_DIRTY, 0, "dirty vector state in the slice callback");
	(*calls)++;
}

Test(code, isal_calls_leave_the_vector_state_clean)
{
	unsigned k = 16, m = 16, calls = 0;
	size_t S = 64 * 1024;
	uint8_t present[32], buf[4096] = {0};
	struct da_code *c;
	struct shards s;

	if (!xinuse_supported())
		cr_skip_test("no XGETBV(1) or no AVX on this CPU");
	shards_new(&s, k, m, S, 7);
	cr_assert_eq(da_code_new(k, m, &c), 0);
	/* the precondition: this CPU's ISA-L kernels do leave the state dirty */
	(void)crc32_iscsi(buf, sizeof(buf), 0);
	if (!(xinuse() & UPPER_DIRTY)) {
		da_code_free(c);
		shards_free(&s);
		cr_skip_test("ISA-L's kernels on this CPU leave no dirty upper state");
	}
	(void)da__crc32c(0, buf, sizeof(buf));
	cr_expect_eq(xinuse() & UPPER_DIRTY, 0, "dirty after da__crc32c");
	cr_assert_eq(da_encode(c, s.p, s.p + k, S), 0);
	cr_expect_eq(xinuse() & UPPER_DIRTY, 0, "dirty after da_encode");
	cr_assert_eq(da_encode_each(c, s.p, s.p + k, S, check_clean_slice, &calls), 0);
	cr_expect_gt(calls, 1, "the encode was not sliced");
	memcpy(s.orig, s.mem, (k + m) * S);
	memset(present, 1, sizeof(present));
	for (unsigned i = 0; i < m; i++) {
		present[i] = 0;
		memset(s.p[i], 0, S);
	}
	cr_assert_eq(da_decode(c, s.p, present, S), 0);
	cr_expect_eq(xinuse() & UPPER_DIRTY, 0, "dirty after da_decode");
	cr_expect_eq(memcmp(s.mem, s.orig, (k + m) * S), 0);
	da_code_free(c);
	shards_free(&s);
}

Test(code, params_and_too_few)
{
	struct da_code *c;
	uint8_t present[6] = {1, 1, 1, 0, 0, 0};
	uint8_t buf[6][64], *p[6];

	cr_assert_eq(da_code_new(0, 1, &c), DA_EPARAM);
	cr_assert_eq(da_code_new(1, 0, &c), DA_EPARAM);
	cr_assert_eq(da_code_new(200, 57, &c), DA_EPARAM);
	cr_assert_null(c);
	cr_assert_eq(da_code_new(255, 1, &c), 0);
	da_code_free(c);
	da_code_free(NULL);
	cr_assert_eq(da_code_new(4, 2, &c), 0);
	for (int i = 0; i < 6; i++)
		p[i] = buf[i];
	cr_assert_eq(da_decode(c, p, present, 64), DA_ETOOFEW);
	cr_assert_eq(da_encode(c, p, p + 4, 0), DA_EINVAL);
	cr_assert_str_eq(da_strerror(DA_ETOOFEW), "fewer than k shards present");
	cr_assert_not_null(da_strerror(-2));
	da_code_free(c);
}

/*
 * Every call of ec_init_tables in this binary comes here: the Makefile links
 * test_da with -Wl,--wrap=ec_init_tables, so the coder's table builds can be
 * counted. The product links the real function directly.
 */
void __real_ec_init_tables(int k, int rows, unsigned char *a, unsigned char *gftbls);
void __wrap_ec_init_tables(int k, int rows, unsigned char *a, unsigned char *gftbls);

static unsigned table_builds;

void __wrap_ec_init_tables(int k, int rows, unsigned char *a, unsigned char *gftbls)
{
	table_builds++;
	__real_ec_init_tables(k, rows, a, gftbls);
}

/* The decode-table cache's size, CACHE_SLOTS in da/code.c. */
#define T_CACHE_SLOTS 16

/* Lose the shards set in mask, decode, check; return the tables it built. */
static unsigned decode_builds(struct da_code *c, struct shards *s, uint32_t mask)
{
	uint8_t present[DA_MAX_SHARDS];
	unsigned before = table_builds;

	for (unsigned i = 0; i < s->k + s->m; i++)
		present[i] = !(mask & (1u << i));
	decode_and_check(c, s, present);
	return table_builds - before;
}

/*
 * Decode tables are built once per erasure pattern and kept in an LRU cache
 * of T_CACHE_SLOTS patterns: the same pattern again builds nothing, a new
 * one builds one table set, and once more distinct patterns than the cache
 * holds have come by, the least recently used is built again while a
 * recently used one is still cached.
 */
Test(code, decode_tables_cached_per_erasure_pattern)
{
	const unsigned k = 4, m = 4;
	uint32_t mask[2 * T_CACHE_SLOTS + 2], p0 = 0x01, p1 = 0x06;
	unsigned n = 0, built;
	struct da_code *c;
	struct shards s;

	/* Distinct patterns of 1..m lost shards other than p0 and p1. */
	for (uint32_t x = 1; x < (1u << (k + m)) && n < sizeof(mask) / sizeof(mask[0]); x++)
		if ((unsigned)__builtin_popcount(x) <= m && x != p0 && x != p1)
			mask[n++] = x;
	cr_assert_eq(n, sizeof(mask) / sizeof(mask[0]));
	shards_new(&s, k, m, 192, 21);
	table_builds = 0;
	cr_assert_eq(da_code_new(k, m, &c), 0);
	cr_assert_eq(table_builds, 1, "da_code_new builds the encode tables once");
	cr_assert_eq(da_encode(c, s.p, s.p + k, s.S), 0);
	memcpy(s.orig, s.mem, (k + m) * s.S);
	cr_assert_eq(table_builds, 1, "encoding builds no tables");
	cr_assert_eq(decode_builds(c, &s, 0), 0, "nothing lost: nothing to build");

	cr_assert_eq(decode_builds(c, &s, p0), 1, "a new pattern builds its tables");
	cr_assert_eq(decode_builds(c, &s, p0), 0, "the same pattern again is cached");
	cr_assert_eq(decode_builds(c, &s, p1), 1, "a different pattern builds its own");
	cr_assert_eq(decode_builds(c, &s, p0), 0, "p0 still cached, now more recent than p1");
	/* p0, p1 and T_CACHE_SLOTS - 1 more: the last evicts the LRU, p1. */
	for (unsigned i = 0; i < T_CACHE_SLOTS - 1; i++)
		cr_assert_eq(decode_builds(c, &s, mask[i]), 1, "pattern %u", i);
	cr_assert_eq(decode_builds(c, &s, p0), 0, "the recently used p0 was kept");
	cr_assert_eq(decode_builds(c, &s, p1), 1, "the least recently used p1 was evicted");
	/* A full cache of patterns after p0: p0 is built again. */
	built = 0;
	for (unsigned i = T_CACHE_SLOTS - 1; i < 2 * T_CACHE_SLOTS - 1; i++)
		built += decode_builds(c, &s, mask[i]);
	cr_assert_eq(built, T_CACHE_SLOTS, "every pattern not seen before builds");
	cr_assert_eq(decode_builds(c, &s, p0), 1, "p0 was evicted and is built again");
	cr_assert_eq(decode_builds(c, &s, p0), 0);
	da_code_free(c);
	shards_free(&s);
}

/* Two threads decode different patterns through one code (cache churn). */
struct worker {
	struct da_code *c;
	unsigned k, m;
	uint64_t seed;
	int ok;
};

static void *work(void *arg)
{
	struct worker *w = arg;
	uint64_t st = w->seed | 1;
	unsigned n = w->k + w->m;
	size_t S = 200;
	uint8_t *mem = malloc(n * S), *orig = malloc(n * S), *p[DA_MAX_SHARDS];
	uint8_t present[DA_MAX_SHARDS];

	w->ok = 1;
	for (unsigned i = 0; i < n; i++)
		p[i] = mem + i * S;
	t_fill(mem, w->k * S, &st);
	da_encode(w->c, p, p + w->k, S);
	memcpy(orig, mem, n * S);
	for (int r = 0; r < 400; r++) {
		memset(present, 1, n);
		for (unsigned i = 0; i < w->m; i++)
			present[t_rand(&st) % n] = 0;
		for (unsigned i = 0; i < n; i++)
			if (!present[i])
				memset(p[i], 0, S);
		if (da_decode(w->c, p, present, S) != 0 || memcmp(mem, orig, n * S) != 0)
			w->ok = 0;
	}
	free(mem);
	free(orig);
	return NULL;
}

Test(code, shared_between_threads)
{
	struct worker w[2];
	pthread_t th[2];
	struct da_code *c;

	cr_assert_eq(da_code_new(12, 6, &c), 0);
	for (int i = 0; i < 2; i++) {
		w[i] = (struct worker){c, 12, 6, (uint64_t)i + 11, 0};
		pthread_create(&th[i], NULL, work, &w[i]);
	}
	for (int i = 0; i < 2; i++) {
		pthread_join(th[i], NULL);
		cr_assert(w[i].ok);
	}
	da_code_free(c);
}
