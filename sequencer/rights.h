/*
 * rights.h - helpers shared by the sequencing-rights files (sale.c,
 * alloc.c, draw.c, revenue.c); internal to sequencer/, not part of seq.h.
 */
#ifndef MEZZ_SEQ_RIGHTS_H
#define MEZZ_SEQ_RIGHTS_H

#include "sequencer/seq.h"

#define SEQ__WORDS (SEQ_RIGHTS_MAX_ROLLUPS / 64)

static inline bool seq__bits_disjoint(const uint64_t *a, const uint64_t *b)
{
	for (int i = 0; i < SEQ__WORDS; i++)
		if (a[i] & b[i])
			return false;
	return true;
}

static inline void seq__bits_or(uint64_t *a, const uint64_t *b)
{
	for (int i = 0; i < SEQ__WORDS; i++)
		a[i] |= b[i];
}

static inline void seq__bits_andnot(uint64_t *a, const uint64_t *b)
{
	for (int i = 0; i < SEQ__WORDS; i++)
		a[i] &= ~b[i];
}

static inline bool seq__bit(const uint64_t *a, uint32_t i)
{
	return (a[i / 64] >> (i % 64)) & 1;
}

/* tickets x price; both bounded (seq.h), so this never exceeds 2^62. */
static inline uint64_t seq__value(const struct seq_sale *s, uint64_t tickets)
{
	return tickets * s->p.price;
}

/* Index of the bundle with exactly these bits, or -1 if nobody bought it. */
int64_t seq__bundle_lookup(const struct seq_sale *s, const uint64_t *bits);

#endif /* MEZZ_SEQ_RIGHTS_H */
