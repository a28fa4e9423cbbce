/*
 * internal.h - helpers shared by the da/ files (not part of da.h).
 */
#ifndef MEZZ_DA_INTERNAL_H
#define MEZZ_DA_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

static inline uint8_t *da__put_u16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
	return p + 2;
}

static inline uint8_t *da__put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
	return p + 4;
}

static inline uint8_t *da__put_u64(uint8_t *p, uint64_t v)
{
	p = da__put_u32(p, (uint32_t)(v >> 32));
	return da__put_u32(p, (uint32_t)v);
}

static inline uint16_t da__get_u16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t da__get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static inline uint64_t da__get_u64(const uint8_t *p)
{
	return (uint64_t)da__get_u32(p) << 32 | da__get_u32(p + 4);
}

/* A 4 KiB-aligned buffer of at least need bytes and its size (*got): the
 * one in *slot when it is large enough (taken: *slot becomes NULL), else a
 * new one of need bytes. slot may be NULL (always new). NULL if out of
 * memory (commit.c). */
uint8_t *da__buf_take(uint8_t **slot, size_t *slot_cap, size_t need, size_t *got);

/* SHA-256 of buf (commit.c). */
void da__sha256(uint8_t out[32], const void *buf, size_t len);

/* Siblings on the path of leaf `index` in an RFC 6962 tree of n leaves. */
unsigned da__path_depth(uint64_t index, uint64_t n);

/* Checks of the (k, m, S, payload_len) tuple shared by records and shard files. */
int da__check_geometry(unsigned k, unsigned m, uint64_t S, uint64_t payload_len);

/*
 * Call after every ISA-L kernel (ec_encode_data, crc32_iscsi), before the
 * thread runs other code: clears the upper halves of the vector registers
 * that ISA-L's AVX2 and AVX-512 assembly leaves dirty (code.c).
 */
void da__isal_done(void);

struct da_shard_file;
/* Chainable CRC-32C (shardfile.c); start with crc = 0. */
uint32_t da__crc32c(uint32_t crc, const uint8_t *p, size_t n);
/* op: the CRC-32C operator for len zero bytes (x^(8 len) mod P); then the
 * CRC of a || b with |b| = len is da__crc32c_join(op, crc(a), crc(b)). */
uint32_t da__crc32c_shift_op(size_t len);
uint32_t da__crc32c_join(uint32_t op, uint32_t crc_a, uint32_t crc_b);
/* Writes the shard file's header and path; returns their length. */
size_t da__shard_file_head(uint8_t *out, const struct da_shard_file *f);
/* Longest header + path of a shard file. */
#define DA__SHARD_HEAD_MAX (DA_SHARD_FILE_HDR_LEN + DA_SHARD_MAX_PATH * 32)

#endif /* MEZZ_DA_INTERNAL_H */
