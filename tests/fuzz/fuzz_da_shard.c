/*
 * fuzz_da_shard.c - libFuzzer target for the shard file decoder and the
 * shard proof decoder and verifier.
 *
 * Every accepted input must re-encode to exactly itself (one encoding per
 * value). The input is also tried with its last four bytes replaced by the
 * right CRC, so the fuzzer reaches the checks behind the CRC. A shard proof
 * that verifies must carry the fixture block's real shard whenever it names
 * the fixture's root (soundness oracle).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <isa-l/crc.h>

#include "da/da.h"
#include "tests/fuzz/da_fixture.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void shard_file(const uint8_t *data, size_t size)
{
	struct da_shard_file f;
	uint8_t *out;
	int rc = da_shard_file_decode(&f, data, size);

	if (rc != 0) {
		if (rc != DA_EDECODE)
			abort();
		return;
	}
	if (size != da_shard_file_len(f.index, (unsigned)f.k + f.m, f.S))
		abort();
	out = malloc(size);
	if (out == NULL)
		abort();
	da_shard_file_encode(out, &f);
	if (memcmp(out, data, size) != 0)
		abort();
	free(out);
}

static void shard_proof(const uint8_t *data, size_t size)
{
	struct fx_block *b = fx_get();
	struct da_shard_proof p;
	uint8_t *out;
	int rc = da_shard_proof_decode(&p, data, size);

	if (rc != 0) {
		if (rc != DA_EDECODE)
			abort();
		return;
	}
	out = malloc(size);
	if (out == NULL || da_shard_proof_len(&p) != size ||
	    da_shard_proof_encode(&p, out, size) != 0 || memcmp(out, data, size) != 0)
		abort();
	free(out);
	rc = da_shard_proof_verify(&p);
	if (rc != 0 && rc != DA_EPROOF)
		abort();
	/* The tree does not commit to its leaf count (the signed record does:
	 * a record with another k or m is not the one the appliance signed), so
	 * the oracle asks only that a shard verified under the fixture's root be
	 * the fixture's shard at that index. */
	if (rc == 0 && memcmp(p.rec.shard_root, b->rec.shard_root, 32) == 0 &&
	    (p.rec.S != b->rec.S || p.index >= FX_K + FX_M ||
	     memcmp(p.shard, b->blk.shard[p.index], p.rec.S) != 0))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *fixed;

	shard_file(data, size);
	shard_proof(data, size);
	if (size >= 8 && size < (1u << 20)) {
		uint32_t c;

		fixed = malloc(size);
		if (fixed == NULL)
			abort();
		memcpy(fixed, data, size);
		c = crc32_iscsi(fixed, (int)(size - 4), 0xffffffffu) ^ 0xffffffffu;
		fixed[size - 4] = (uint8_t)(c >> 24);
		fixed[size - 3] = (uint8_t)(c >> 16);
		fixed[size - 2] = (uint8_t)(c >> 8);
		fixed[size - 1] = (uint8_t)c;
		shard_file(fixed, size);
		free(fixed);
	}
	return 0;
}
