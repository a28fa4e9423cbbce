/*
 * shardfile.c - the on-disk form of one shard.
 *
 *   "MZSH" || version u32 (=1) || height u64 || index u16 || k u16 || m u16 ||
 *   S u32 || payload_len u64 || shard_root[32] || path_len u8 ||
 *   path[path_len][32] || shard[S] || crc32c u32
 *
 * The CRC (CRC-32C, ISA-L crc32_iscsi) covers every byte before it and
 * catches media errors cheaply; the Merkle path lets the store check a
 * single shard against the block's shard root without reading the others,
 * which catches a well-formed file with the wrong contents (a shard of
 * another block copied over, a stale write).
 */
#include <string.h>

#include <isa-l/crc.h>

#include "da/da.h"
#include "da/internal.h"

#define SHARD_MAGIC "MZSH"

/*
 * Standard CRC-32C (check value 0xe3069283 for "123456789"), chainable:
 * da__crc32c(da__crc32c(0, a), b) is the CRC of a || b.
 */
uint32_t da__crc32c(uint32_t crc, const uint8_t *p, size_t n)
{
	uint32_t c = crc ^ 0xffffffffu;

	/* crc32_iscsi takes an int length. */
	while (n > 0) {
		size_t chunk = n > (1u << 30) ? (1u << 30) : n;

		c = crc32_iscsi((unsigned char *)p, (int)chunk, c);
		p += chunk;
		n -= chunk;
	}
	da__isal_done();
	return c ^ 0xffffffffu;
}

/*
 * CRC-32C of a || b from the CRCs of a and b, without b's bytes: a's CRC
 * times x^(8 |b|) modulo the polynomial, XORed with b's, as zlib's
 * crc32_combine does for CRC-32 (polynomials in the CRC's reflected bit
 * order: bit 31 is x^0). The writer uses it to join a record's head to a
 * shard whose CRC was taken earlier, while the shard was in cache
 * (store.c).
 */
#define CRC32C_POLY 0x82f63b78u /* reflected */

/* a * b modulo the polynomial. */
static uint32_t mult_mod_p(uint32_t a, uint32_t b)
{
	uint32_t m = 1u << 31, p = 0;

	for (;;) {
		if (a & m) {
			p ^= b;
			if ((a & (m - 1)) == 0)
				break;
		}
		m >>= 1;
		b = b & 1 ? (b >> 1) ^ CRC32C_POLY : b >> 1;
	}
	return p;
}

uint32_t da__crc32c_shift_op(size_t len)
{
	uint32_t sq = 1u << 23, p = 1u << 31; /* x^8 (one zero byte); 1 */

	for (; len != 0; len >>= 1) {
		if (len & 1)
			p = mult_mod_p(sq, p);
		sq = mult_mod_p(sq, sq); /* x^(8 * 2^i) */
	}
	return p;
}

uint32_t da__crc32c_join(uint32_t op, uint32_t crc_a, uint32_t crc_b)
{
	return mult_mod_p(op, crc_a) ^ crc_b;
}

size_t da_shard_file_len(unsigned index, unsigned n_shards, size_t S)
{
	return DA_SHARD_FILE_HDR_LEN + (size_t)da__path_depth(index, n_shards) * 32 + S + 4;
}

size_t da__shard_file_head(uint8_t *out, const struct da_shard_file *f)
{
	uint8_t *p = out;

	memcpy(p, SHARD_MAGIC, 4);
	p = da__put_u32(p + 4, DA_SHARD_FILE_VERSION);
	p = da__put_u64(p, f->height);
	p = da__put_u16(p, f->index);
	p = da__put_u16(p, f->k);
	p = da__put_u16(p, f->m);
	p = da__put_u32(p, f->S);
	p = da__put_u64(p, f->payload_len);
	memcpy(p, f->shard_root, 32);
	p += 32;
	*p++ = f->path_len;
	memcpy(p, f->path, (size_t)f->path_len * 32);
	return DA_SHARD_FILE_HDR_LEN + (size_t)f->path_len * 32;
}

void da_shard_file_encode(uint8_t *out, const struct da_shard_file *f)
{
	size_t h = da__shard_file_head(out, f);

	memcpy(out + h, f->shard, f->S);
	da__put_u32(out + h + f->S, da__crc32c(0, out, h + f->S));
}

int da_shard_file_decode(struct da_shard_file *out, const uint8_t *buf, size_t len)
{
	struct da_shard_file f;
	const uint8_t *p = buf;

	if (out == NULL)
		return DA_EINVAL;
	if (buf == NULL || len < DA_SHARD_FILE_HDR_LEN + 4 || memcmp(p, SHARD_MAGIC, 4) != 0 ||
	    da__get_u32(p + 4) != DA_SHARD_FILE_VERSION)
		return DA_EDECODE;
	f.height = da__get_u64(p + 8);
	f.index = da__get_u16(p + 16);
	f.k = da__get_u16(p + 18);
	f.m = da__get_u16(p + 20);
	f.S = da__get_u32(p + 22);
	f.payload_len = da__get_u64(p + 26);
	memcpy(f.shard_root, p + 34, 32);
	f.path_len = p[66];
	if (da__check_geometry(f.k, f.m, f.S, f.payload_len) != 0 ||
	    f.index >= (unsigned)f.k + f.m ||
	    f.path_len != da__path_depth(f.index, (unsigned)f.k + f.m) ||
	    len != da_shard_file_len(f.index, (unsigned)f.k + f.m, f.S) ||
	    da__crc32c(0, buf, len - 4) != da__get_u32(buf + len - 4))
		return DA_EDECODE;
	memcpy(f.path, p + DA_SHARD_FILE_HDR_LEN, (size_t)f.path_len * 32);
	f.shard = p + DA_SHARD_FILE_HDR_LEN + (size_t)f.path_len * 32;
	*out = f;
	return 0;
}
