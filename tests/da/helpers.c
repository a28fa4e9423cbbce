/*
 * helpers.c - see helpers.h.
 */
#include <criterion/criterion.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "tests/da/helpers.h"

uint64_t t_rand(uint64_t *s)
{
	/* xorshift64* */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

void t_fill(uint8_t *buf, size_t n, uint64_t *s)
{
	for (size_t i = 0; i < n; i++)
		buf[i] = (uint8_t)(t_rand(s) >> 56);
}

void t_hash(uint8_t out[32], const uint8_t *data, size_t len, void *arg)
{
	(void)arg;
	SHA256(data, len, out);
}

static int cmp_tx(const void *a, const void *b)
{
	const struct da_tx *x = a, *y = b;

	if (x->ns != y->ns)
		return x->ns < y->ns ? -1 : 1;
	return (x->seq > y->seq) - (x->seq < y->seq);
}

void t_block_make(struct t_block *b, const uint64_t *ns, const uint32_t *len, size_t n,
		  unsigned k, uint64_t seed)
{
	struct seq_tx *stx = calloc(n + 1, sizeof(*stx));
	uint8_t parent[32];
	uint64_t s = seed | 1;

	memset(b, 0, sizeof(*b));
	b->n = n;
	b->data = calloc(n + 1, sizeof(*b->data));
	b->txs = calloc(n + 1, sizeof(*b->txs));
	cr_assert(stx && b->data && b->txs);
	t_fill(parent, 32, &s);
	t_fill(b->sig, 64, &s);
	for (size_t i = 0; i < n; i++) {
		b->data[i] = malloc(len[i] + 1);
		t_fill(b->data[i], len[i], &s);
		stx[i].seq = 1000 + i;
		stx[i].ns = ns[i];
		t_hash(stx[i].hash, b->data[i], len[i], NULL);
		b->txs[i] = (struct da_tx){1000 + i, ns[i], b->data[i], len[i]};
	}
	cr_assert_eq(seq_block_build(&b->hdr, &b->ns, stx, n, 1000, 7, 70, 123456, parent), 0);
	qsort(b->txs, n, sizeof(*b->txs), cmp_tx);
	cr_assert_eq(da_payload_build(&b->hdr, b->sig, b->ns, b->txs, k, &b->buf,
				      &b->payload_len, &b->S), 0);
	free(stx);
}

void t_block_free(struct t_block *b)
{
	for (size_t i = 0; i < b->n; i++)
		free(b->data[i]);
	free(b->data);
	free(b->txs);
	free(b->ns);
	free(b->buf);
	memset(b, 0, sizeof(*b));
}

void t_tmpdir(char *out, size_t cap)
{
	snprintf(out, cap, "%s/da-test.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	cr_assert_not_null(mkdtemp(out));
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(p);
}

void t_rmtree(const char *path)
{
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}
