/*
 * code.c - systematic Reed-Solomon over GF(2^8) with ISA-L.
 *
 * The generator is ISA-L's Cauchy matrix: (k + m) x k, identity on top, a
 * Cauchy block below. Every k x k submatrix of it is invertible, so any k
 * shards rebuild the rest (ISA-L's Vandermonde-style gf_gen_rs_matrix is not
 * MDS for every k, m and is not used).
 *
 * Encoding runs ec_encode_data over column slices of DA_SLICE bytes. ISA-L
 * computes at most 6 parity rows per pass over the k sources, so for m = 16
 * it reads the data three times; when k * S exceeds the L2 cache every pass
 * comes from memory. With a slice, the k source slices stay in L2 across the
 * passes. The size was chosen by measurement (tests/bench/da_bench.c
 * --slices): see the table in da/README.md.
 *
 * Decoding picks the first k present shards as sources, inverts their k x k
 * submatrix, and derives one row per missing shard: a row of the inverse for
 * a data shard, the parity row times the inverse for a parity shard. Those
 * rows become ISA-L tables, cached per erasure pattern (the present bitmap)
 * in a small LRU cache. Entries are reference counted so that a thread can
 * use one outside the lock while another evicts it.
 */
#include <assert.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <isa-l/erasure_code.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "da/da.h"
#include "da/internal.h"

/* Column slice per shard for encode and decode; see the file comment. Only
 * when the k sources are larger than DA_SLICE_ABOVE (the L2 cache of this
 * machine, 2 MiB per core): below that they stay cached across the passes
 * anyway, and one call is the cheapest. da_encode_each's caller reads every
 * data and parity slice again (hashing it), so it slices once the k + m
 * shards together pass half of L2, and in smaller slices: 64 KiB shards with
 * k = m = 16, encode and hash 1.5-1.7 ms of CPU per block against 1.6-1.8 in
 * one call. For 1 MiB shards the slice size no longer matters once the
 * vector state is kept clean (da__isal_done): 8, 16, 32 and 64 KiB slices all
 * took 24.6-25.5 ms a block (28.4-34.8 ms in the dirty state, where 32 KiB
 * was the slowest). */
#define DA_SLICE (32 * 1024)
#define DA_SLICE_ABOVE ((size_t)2 << 20)
#define DA_SLICE_EACH_ABOVE ((size_t)1 << 20)
#define DA_SLICE_EACH (16 * 1024)
/* Decode patterns kept per code. */
#define CACHE_SLOTS 16

struct dec_entry {
	uint8_t key[DA_MAX_SHARDS / 8]; /* present bitmap */
	unsigned refs;                  /* cache's own reference + users */
	unsigned nsrc_idx[DA_MAX_SHARDS];
	unsigned nlost;
	unsigned lost_idx[DA_MAX_SHARDS];
	uint8_t *tables; /* 32 * k * nlost */
	uint64_t used;   /* LRU stamp */
};

struct da_code {
	unsigned k, m;
	uint8_t *matrix;    /* (k + m) x k */
	uint8_t *enc_tbls;  /* 32 * k * m */
	pthread_mutex_t lock;
	struct dec_entry *cache[CACHE_SLOTS];
	uint64_t clock;
};

int da_code_new(unsigned k, unsigned m, struct da_code **out)
{
	struct da_code *c;

	if (out == NULL)
		return DA_EINVAL;
	*out = NULL;
	if (k < 1 || m < 1 || k + m > DA_MAX_SHARDS)
		return DA_EPARAM;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return DA_ENOMEM;
	c->k = k;
	c->m = m;
	c->matrix = malloc((size_t)(k + m) * k);
	c->enc_tbls = malloc((size_t)32 * k * m);
	if (c->matrix == NULL || c->enc_tbls == NULL || pthread_mutex_init(&c->lock, NULL) != 0) {
		free(c->matrix);
		free(c->enc_tbls);
		free(c);
		return DA_ENOMEM;
	}
	gf_gen_cauchy1_matrix(c->matrix, (int)(k + m), (int)k);
	ec_init_tables((int)k, (int)m, c->matrix + (size_t)k * k, c->enc_tbls);
	*out = c;
	return 0;
}

static void entry_put(struct dec_entry *e)
{
	if (e != NULL && --e->refs == 0) {
		free(e->tables);
		free(e);
	}
}

void da_code_free(struct da_code *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < CACHE_SLOTS; i++)
		entry_put(c->cache[i]);
	pthread_mutex_destroy(&c->lock);
	free(c->matrix);
	free(c->enc_tbls);
	free(c);
}

unsigned da_code_k(const struct da_code *c)
{
	return c->k;
}

unsigned da_code_m(const struct da_code *c)
{
	return c->m;
}

/*
 * ISA-L's AVX2 and AVX-512 kernels are hand-written assembly that returns
 * without VZEROUPPER. With the upper halves of the vector registers left
 * dirty, every legacy-SSE instruction the thread runs afterwards carries a
 * dependency on them, and OpenSSL's SHA-NI SHA-256 is legacy-SSE code: on
 * the bench machine (AMD EPYC, AVX-512) 32 MiB of SHA-256 took 18.7 ms
 * before any ISA-L call and 25.1 ms after one, for the rest of the thread's
 * life, whether the call was ec_encode_data or a 4 KiB crc32_iscsi. The
 * shard leaves are hashed between encode slices and CRCs, so every leaf
 * paid it (docs/BENCHMARKS.md). VZEROUPPER costs a cycle; it is only run
 * on CPUs with AVX (ISA-L dispatches to SSE code on the others, which
 * dirties nothing).
 */
#if defined(__x86_64__)
__attribute__((target("avx"))) static void zero_upper(void)
{
	_mm256_zeroupper();
}

void da__isal_done(void)
{
	if (__builtin_cpu_supports("avx"))
		zero_upper();
}
#else
void da__isal_done(void)
{
}
#endif

/* ec_encode_data over [0, S) in slices; a tail shorter than 64 joins the last
 * slice. each (when not NULL) sees every slice right after it is coded. */
static void encode_sliced(size_t S, unsigned k, unsigned rows, uint8_t *tbls,
			  uint8_t *const *src, uint8_t *const *dst, da_slice_fn *each, void *arg)
{
	uint8_t *s[DA_MAX_SHARDS], *d[DA_MAX_SHARDS];
	int sliced = each != NULL ? (size_t)(k + rows) * S > DA_SLICE_EACH_ABOVE
				  : (size_t)k * S > DA_SLICE_ABOVE;
	size_t off = 0, n, slice = !sliced ? S : each != NULL ? DA_SLICE_EACH : DA_SLICE;

	while (off < S) {
		n = S - off;
		if (n >= slice + 64)
			n = slice;
		for (unsigned i = 0; i < k; i++)
			s[i] = src[i] + off;
		for (unsigned i = 0; i < rows; i++)
			d[i] = dst[i] + off;
		ec_encode_data((int)n, (int)k, (int)rows, tbls, s, d);
		da__isal_done();
		if (each != NULL)
			each(arg, off, n);
		off += n;
	}
}

int da_encode(const struct da_code *c, uint8_t *const *data, uint8_t *const *parity,
	      size_t S)
{
	if (c == NULL || data == NULL || parity == NULL || S == 0 || S > INT_MAX)
		return DA_EINVAL;
	encode_sliced(S, c->k, c->m, c->enc_tbls, data, parity, NULL, NULL);
	return 0;
}

int da_encode_each(const struct da_code *c, uint8_t *const *data, uint8_t *const *parity,
		   size_t S, da_slice_fn *each, void *arg)
{
	if (c == NULL || data == NULL || parity == NULL || S == 0 || S > INT_MAX || each == NULL)
		return DA_EINVAL;
	encode_sliced(S, c->k, c->m, c->enc_tbls, data, parity, each, arg);
	return 0;
}

/* Build the decode entry for a present bitmap with at least k bits set. */
static int entry_make(const struct da_code *c, const uint8_t *key, struct dec_entry **out)
{
	unsigned k = c->k, n = c->k + c->m, ns = 0, nl = 0;
	uint8_t *b = NULL, *inv = NULL, *rows = NULL;
	struct dec_entry *e;
	int rc = DA_ENOMEM;

	e = calloc(1, sizeof(*e));
	if (e == NULL)
		return DA_ENOMEM;
	memcpy(e->key, key, sizeof(e->key));
	for (unsigned i = 0; i < n; i++) {
		if (key[i / 8] & (1u << (i % 8))) {
			if (ns < k)
				e->nsrc_idx[ns++] = i;
		} else {
			e->lost_idx[nl++] = i;
		}
	}
	assert(ns == k);
	e->nlost = nl;
	b = malloc((size_t)k * k);
	inv = malloc((size_t)k * k);
	rows = malloc((size_t)k * (nl ? nl : 1));
	e->tables = malloc((size_t)32 * k * (nl ? nl : 1));
	if (b == NULL || inv == NULL || rows == NULL || e->tables == NULL)
		goto out;
	for (unsigned r = 0; r < k; r++)
		memcpy(b + (size_t)r * k, c->matrix + (size_t)e->nsrc_idx[r] * k, k);
	/* Every k x k submatrix of a Cauchy generator is invertible. */
	if (gf_invert_matrix(b, inv, (int)k) != 0) {
		assert(!"Cauchy submatrix singular"); /* defensive: never runs */
		rc = DA_EINVAL;
		goto out;
	}
	for (unsigned l = 0; l < nl; l++) {
		unsigned idx = e->lost_idx[l];
		uint8_t *row = rows + (size_t)l * k;

		if (idx < k) {
			memcpy(row, inv + (size_t)idx * k, k);
			continue;
		}
		/* Parity row times the inverse: coefficients on the sources. */
		for (unsigned j = 0; j < k; j++) {
			uint8_t s = 0;

			for (unsigned t = 0; t < k; t++)
				s ^= gf_mul(c->matrix[(size_t)idx * k + t], inv[(size_t)t * k + j]);
			row[j] = s;
		}
	}
	if (nl > 0)
		ec_init_tables((int)k, (int)nl, rows, e->tables);
	e->refs = 1;
	*out = e;
	e = NULL;
	rc = 0;
out:
	if (e != NULL) {
		free(e->tables);
		free(e);
	}
	free(rows);
	free(inv);
	free(b);
	return rc;
}

/* Find or build the entry for key; the caller holds one reference on return. */
static int entry_get(struct da_code *c, const uint8_t *key, struct dec_entry **out)
{
	struct dec_entry *e = NULL;
	size_t victim = 0;
	int rc;

	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < CACHE_SLOTS; i++) {
		struct dec_entry *x = c->cache[i];

		if (x != NULL && memcmp(x->key, key, sizeof(x->key)) == 0) {
			e = x;
			break;
		}
	}
	if (e != NULL) {
		e->refs++;
		e->used = ++c->clock;
		pthread_mutex_unlock(&c->lock);
		*out = e;
		return 0;
	}
	pthread_mutex_unlock(&c->lock);

	/* Built outside the lock: two threads may build the same entry; one wins. */
	rc = entry_make(c, key, &e);
	if (rc != 0)
		return rc;
	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < CACHE_SLOTS; i++) {
		if (c->cache[i] == NULL) {
			victim = i;
			break;
		}
		if (c->cache[i]->used < c->cache[victim]->used)
			victim = i;
	}
	entry_put(c->cache[victim]);
	c->cache[victim] = e;
	e->refs++; /* the caller's */
	e->used = ++c->clock;
	pthread_mutex_unlock(&c->lock);
	*out = e;
	return 0;
}

static void entry_release(struct da_code *c, struct dec_entry *e)
{
	pthread_mutex_lock(&c->lock);
	entry_put(e);
	pthread_mutex_unlock(&c->lock);
}

int da_decode(struct da_code *c, uint8_t *const *shards, const uint8_t *present, size_t S)
{
	uint8_t key[DA_MAX_SHARDS / 8] = {0};
	uint8_t *src[DA_MAX_SHARDS], *dst[DA_MAX_SHARDS];
	struct dec_entry *e;
	unsigned n, have = 0;
	int rc;

	if (c == NULL || shards == NULL || present == NULL || S == 0 || S > INT_MAX)
		return DA_EINVAL;
	n = c->k + c->m;
	for (unsigned i = 0; i < n; i++) {
		/* The whole bitmap is the key: it fixes both the sources
		 * (the first k present) and the outputs (every absent one). */
		if (present[i]) {
			key[i / 8] |= (uint8_t)(1u << (i % 8));
			have++;
		}
	}
	if (have < c->k)
		return DA_ETOOFEW;
	if (have == n)
		return 0;
	rc = entry_get(c, key, &e);
	if (rc != 0)
		return rc;
	for (unsigned i = 0; i < c->k; i++)
		src[i] = shards[e->nsrc_idx[i]];
	for (unsigned i = 0; i < e->nlost; i++)
		dst[i] = shards[e->lost_idx[i]];
	encode_sliced(S, c->k, e->nlost, e->tables, src, dst, NULL, NULL);
	entry_release(c, e);
	return 0;
}
