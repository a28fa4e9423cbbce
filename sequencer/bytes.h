/*
 * bytes.h - big-endian byte helpers shared by the sequencer's encoders
 * (internal to sequencer/; not part of the public seq.h interface).
 */
#ifndef MEZZ_SEQ_BYTES_H
#define MEZZ_SEQ_BYTES_H

#include <stddef.h>
#include <stdint.h>

/* SHA-256 of buf (sha256.c). out may alias buf. */
void seq__sha256(uint8_t out[32], const void *buf, size_t len);

static inline uint8_t *seq__put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
	return p + 4;
}

static inline uint8_t *seq__put_u64(uint8_t *p, uint64_t v)
{
	p = seq__put_u32(p, (uint32_t)(v >> 32));
	return seq__put_u32(p, (uint32_t)v);
}

static inline uint32_t seq__get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static inline uint64_t seq__get_u64(const uint8_t *p)
{
	return (uint64_t)seq__get_u32(p) << 32 | seq__get_u32(p + 4);
}

#endif /* MEZZ_SEQ_BYTES_H */
