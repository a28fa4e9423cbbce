/*
 * fuzz_settlement.c - libFuzzer target for seq_settlement_decode, which
 * reads a sale's settlement back from rights.db to post and grant it.
 *
 * Decoding must never read past the input or crash; it accepts only a
 * settlement that balances (seq_settlement_check), and encoding what it
 * accepted must give back exactly the input (one encoding per settlement).
 * A refused input leaves nothing allocated.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sequencer/seq.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct seq_settlement st;
	uint8_t *out;
	size_t n;
	int rc = seq_settlement_decode(data, size, &st);

	if (rc != 0) {
		if ((rc != SEQ_EDECODE && rc != SEQ_EBALANCE) || st.winners || st.buyers ||
		    st.credits || st.n_winners || st.n_buyers || st.n_credits)
			abort();
		return 0;
	}
	if (seq_settlement_check(&st) != 0)
		abort();
	n = seq_settlement_encode(&st, NULL, 0);
	if (n != size)
		abort();
	out = malloc(n ? n : 1);
	if (!out || seq_settlement_encode(&st, out, n) != n || memcmp(out, data, n) != 0)
		abort();
	free(out);
	seq_settlement_free(&st);
	return 0;
}
