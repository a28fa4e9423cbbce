/*
 * slot.c - the slot clock: slot s covers [genesis + s*slot_ms,
 * genesis + (s+1)*slot_ms). Times before genesis fall in slot 0.
 *
 * Both functions are total: a zero slot length maps every time to slot 0,
 * and a start time past UINT64_MAX saturates there, because a clock that
 * cannot fail is simpler to drive than one that needs an error path.
 */
#include "sequencer/seq.h"

uint64_t seq_slot_at(uint64_t now_ms, uint64_t genesis_ms, uint32_t slot_ms)
{
	if (now_ms < genesis_ms || slot_ms == 0)
		return 0;
	return (now_ms - genesis_ms) / slot_ms;
}

uint64_t seq_slot_start(uint64_t slot, uint64_t genesis_ms, uint32_t slot_ms)
{
	uint64_t off;

	if (slot_ms != 0 && slot > UINT64_MAX / slot_ms)
		return UINT64_MAX;
	off = slot * slot_ms;
	if (off > UINT64_MAX - genesis_ms)
		return UINT64_MAX;
	return genesis_ms + off;
}
