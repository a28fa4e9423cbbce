/*
 * da_fixture.h - one small deterministic block shared by the da fuzz
 * targets and their seed generator (da_seeds.c): 7 transactions in
 * namespaces 2, 5 and 9, coded with k = 3, m = 2. Header-only on purpose:
 * each fuzz target is built from one .c file.
 */
#ifndef MEZZ_FUZZ_DA_FIXTURE_H
#define MEZZ_FUZZ_DA_FIXTURE_H

#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "da/da.h"

#define FX_N 7
#define FX_K 3
#define FX_M 2

struct fx_block {
	struct seq_block_hdr hdr;
	struct seq_block_ns *ns;
	struct da_tx txs[FX_N];
	uint8_t data[FX_N][40];
	uint8_t *buf;
	size_t payload_len, S;
	struct da_payload pl;
	struct da_code *code;
	struct da_block blk;
	struct da_record rec;
};

static void fx_hash(uint8_t out[32], const uint8_t *data, size_t len, void *arg)
{
	(void)arg;
	SHA256(data, len, out);
}

/* Builds the block once; aborts on any failure (a broken fixture is a bug). */
static struct fx_block *fx_get(void)
{
	static struct fx_block b;
	static int ready;
	static const uint64_t ns[FX_N] = {5, 2, 9, 5, 2, 5, 9};
	static const uint32_t len[FX_N] = {3, 0, 40, 1, 17, 8, 2};
	static const int order[FX_N] = {1, 4, 0, 3, 5, 2, 6}; /* by (ns, seq) */
	struct seq_tx stx[FX_N];
	uint8_t parent[32], sig[64], bh[32];

	if (ready)
		return &b;
	memset(parent, 0x11, 32);
	memset(sig, 0x22, 64);
	for (int i = 0; i < FX_N; i++) {
		memset(b.data[i], 0x30 + i, sizeof(b.data[i]));
		stx[i].seq = 100 + (uint64_t)i;
		stx[i].ns = ns[i];
		fx_hash(stx[i].hash, b.data[i], len[i], NULL);
	}
	for (int j = 0; j < FX_N; j++) {
		int i = order[j];

		b.txs[j] = (struct da_tx){100 + (uint64_t)i, ns[i], b.data[i], len[i]};
	}
	if (seq_block_build(&b.hdr, &b.ns, stx, FX_N, 100, 3, 30, 1000, parent) != 0 ||
	    da_payload_build(&b.hdr, sig, b.ns, b.txs, FX_K, &b.buf, &b.payload_len, &b.S) != 0 ||
	    da_payload_parse(&b.pl, b.buf, b.S * FX_K, b.payload_len) != 0 ||
	    da_code_new(FX_K, FX_M, &b.code) != 0)
		abort();
	seq_block_hash(bh, &b.hdr);
	{
		uint8_t *copy = aligned_alloc(64, b.S * FX_K);

		if (copy == NULL)
			abort();
		memcpy(copy, b.buf, b.S * FX_K);
		if (da_block_encode(&b.blk, &b.rec, b.code, copy, b.payload_len, b.S, 3, bh) != 0)
			abort();
	}
	ready = 1;
	return &b;
}

#endif
