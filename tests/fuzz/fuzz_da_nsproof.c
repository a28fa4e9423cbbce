/*
 * fuzz_da_nsproof.c - libFuzzer target for the namespace proof decoder and
 * verifier, against the fixture block's header.
 *
 * Accepted inputs re-encode to themselves. A proof that verifies must say
 * the truth about the fixture block: presence with exactly the namespace's
 * transactions (seq, length, bytes) in order, absence only for a namespace
 * the block does not have.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "da/da.h"
#include "tests/fuzz/da_fixture.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fx_block *b = fx_get();
	struct da_ns_proof p;
	uint8_t *out;
	size_t len, start = 0, j;
	int rc = da_ns_proof_decode(&p, data, size);

	if (rc != 0) {
		if (rc != DA_EDECODE)
			abort();
		return 0;
	}
	if (da_ns_proof_encode(&p, &out, &len) != 0 || len != size || memcmp(out, data, size) != 0)
		abort();
	free(out);
	rc = da_ns_proof_verify(&p, &b->hdr, fx_hash, NULL);
	if (rc != 0 && rc != DA_EPROOF)
		abort();
	if (rc == 0) {
		for (j = 0; j < b->hdr.ns_count && b->ns[j].ns != p.ns; j++)
			start += b->ns[j].count;
		if (!p.present) {
			if (j < b->hdr.ns_count)
				abort(); /* absence of a present namespace */
		} else {
			if (j == b->hdr.ns_count || p.count != b->ns[j].count)
				abort();
			for (uint64_t i = 0; i < p.count; i++) {
				const struct da_tx *x = &p.txs[i], *y = &b->txs[start + i];

				if (x->seq != y->seq || x->len != y->len ||
				    memcmp(x->data, y->data, x->len) != 0)
					abort();
			}
		}
	}
	da_ns_proof_free(&p);
	return 0;
}
