/*
 * helpers.h - shared fixtures for the da/ tests: deterministic random
 * bytes, a test transaction hash, and a block builder that goes through the
 * sequencer's seq_block_build like the appliance does.
 */
#ifndef MEZZ_TEST_DA_HELPERS_H
#define MEZZ_TEST_DA_HELPERS_H

#include <stddef.h>
#include <stdint.h>

#include "da/da.h"

uint64_t t_rand(uint64_t *state);
void t_fill(uint8_t *buf, size_t n, uint64_t *state);

/* SHA-256 of the bytes: stands in for the appliance's Keccak. */
void t_hash(uint8_t out[32], const uint8_t *data, size_t len, void *arg);

/*
 * A block of n transactions with seq first_seq + i, namespace ns[i] and
 * len[i] random bytes, laid out as a payload for code parameter k.
 */
struct t_block {
	struct seq_block_hdr hdr;
	struct seq_block_ns *ns;
	struct da_tx *txs; /* sorted by (ns, seq) */
	uint8_t **data;
	size_t n;
	uint8_t sig[64];
	uint8_t *buf; /* padded payload */
	size_t payload_len, S;
};

void t_block_make(struct t_block *b, const uint64_t *ns, const uint32_t *len, size_t n,
		  unsigned k, uint64_t seed);
void t_block_free(struct t_block *b);

/* A fresh temp directory (mkdtemp); the caller removes it with t_rmtree. */
void t_tmpdir(char *out, size_t cap);
void t_rmtree(const char *path);

#endif
