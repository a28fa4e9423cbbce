/*
 * draw.c - the lottery inside a winning bundle.
 *
 * Randomness is fixed in advance to one future L1 block (the sale's
 * draw_block, later than the improvement deadline, so the allocation and
 * every ticket are public before the randomness exists). The seed is that
 * block's hash or prevrandao; the bridge fetches it, anyone can recompute
 * the draw from it and the public purchases.
 *
 * Per bundle: x = first 8 bytes, big-endian, of
 *   SHA-256(seed[32] || sale_id u64 || bundle u32 || attempt u32)
 * for attempt = 0, 1, ... until x < 2^64 - (2^64 mod T), T the bundle's
 * tickets; the ticket is x mod T. The rejected tail makes every ticket
 * exactly equally likely (no modulo bias); the chance of a retry is below
 * T / 2^64 <= 2^-40 and each further retry is as unlikely again.
 *
 * Bias (docs/RIGHTS.md): the seed is not unbiasable. The proposer of
 * draw_block can see the outcome before publishing and withhold the block,
 * turning the draw into a choice between two seeds (one bit of influence)
 * at the cost of its block reward; a run of k consecutive proposers can
 * choose among at most k+1 seeds. prevrandao gives the same bound.
 */
#include "sequencer/bytes.h"
#include "sequencer/rights.h"

#include <string.h>

uint64_t seq_draw_ticket(const uint8_t seed[static 32], uint64_t sale_id, uint32_t bundle,
			 uint64_t tickets)
{
	uint8_t in[32 + 8 + 4 + 4], h[32];
	uint64_t rem, x;

	if (tickets <= 1)
		return 0;
	/* rem = 2^64 mod tickets; accept x < 2^64 - rem, all x when rem == 0. */
	rem = (UINT64_MAX % tickets + 1) % tickets;
	memcpy(in, seed, 32);
	seq__put_u64(in + 32, sale_id);
	seq__put_u32(in + 40, bundle);
	for (uint32_t attempt = 0;; attempt++) {
		seq__put_u32(in + 44, attempt);
		seq__sha256(h, in, sizeof(in));
		x = seq__get_u64(h);
		if (rem == 0 || x <= UINT64_MAX - rem)
			return x % tickets;
	}
}
