/*
 * fuzz_blockhdr.c - libFuzzer target for seq_block_hdr_decode.
 *
 * Decoding must never read past the input or crash, and whenever it
 * accepts an input, encoding the result must give back exactly that input
 * (the header has one encoding), and the hash and link check must run.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sequencer/seq.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct seq_block_hdr h, next;
	uint8_t out[SEQ_BLOCK_HDR_LEN];
	int rc;

	rc = seq_block_hdr_decode(&h, data, size);
	if (rc != 0) {
		if (rc != SEQ_EDECODE)
			abort();
		return 0;
	}
	if (size != SEQ_BLOCK_HDR_LEN || h.version != SEQ_BLOCK_VERSION)
		abort();
	seq_block_hdr_encode(out, &h);
	if (memcmp(out, data, size) != 0)
		abort();

	/* A successor built by the rule itself must link, unless a field wraps. */
	next = h;
	next.height = h.height + 1;
	next.slot = h.slot + 1;
	next.first_seq = h.first_seq + h.tx_count;
	seq_block_hash(next.parent, &h);
	rc = seq_block_check_link(&h, &next);
	if (h.height != UINT64_MAX && h.slot != UINT64_MAX &&
	    h.first_seq <= UINT64_MAX - h.tx_count && rc != 0)
		abort();
	if (rc != 0 && rc != SEQ_ECHAIN)
		abort();
	return 0;
}
