/*
 * blockhdr.c - the superblock header's wire form, hash, signature and the
 * chain-link rule between consecutive headers.
 *
 * The encoding is fixed-length (SEQ_BLOCK_HDR_LEN) and carries every field
 * of struct seq_block_hdr, so decode followed by encode reproduces the input
 * byte for byte. The block hash and the signature both cover exactly these
 * bytes; the "MZSB" magic keeps them apart from "MZGR" group messages.
 */
#include "sequencer/bytes.h"
#include "sequencer/seq.h"

#include <string.h>

#include <sodium.h>

#define BLOCK_MAGIC "MZSB"

void seq_block_hdr_encode(uint8_t out[static SEQ_BLOCK_HDR_LEN],
			  const struct seq_block_hdr *h)
{
	uint8_t *p = out;

	memcpy(p, BLOCK_MAGIC, 4);
	p = seq__put_u32(p + 4, h->version);
	p = seq__put_u64(p, h->height);
	p = seq__put_u64(p, h->slot);
	p = seq__put_u64(p, h->time_ms);
	memcpy(p, h->parent, 32);
	p = seq__put_u64(p + 32, h->first_seq);
	p = seq__put_u64(p, h->tx_count);
	p = seq__put_u32(p, h->ns_count);
	memcpy(p, h->ns_root, 32);
	memcpy(p + 32, h->tx_root, 32);
}

int seq_block_hdr_decode(struct seq_block_hdr *h, const uint8_t *buf, size_t len)
{
	const uint8_t *p = buf;

	if (h == NULL)
		return SEQ_EINVAL;
	if (buf == NULL || len != SEQ_BLOCK_HDR_LEN ||
	    memcmp(p, BLOCK_MAGIC, 4) != 0 || seq__get_u32(p + 4) != SEQ_BLOCK_VERSION)
		return SEQ_EDECODE;
	h->version = seq__get_u32(p + 4);
	p += 8;
	h->height = seq__get_u64(p);
	h->slot = seq__get_u64(p + 8);
	h->time_ms = seq__get_u64(p + 16);
	memcpy(h->parent, p + 24, 32);
	p += 56;
	h->first_seq = seq__get_u64(p);
	h->tx_count = seq__get_u64(p + 8);
	h->ns_count = seq__get_u32(p + 16);
	memcpy(h->ns_root, p + 20, 32);
	memcpy(h->tx_root, p + 52, 32);
	return 0;
}

void seq_block_hash(uint8_t out[static 32], const struct seq_block_hdr *h)
{
	uint8_t buf[SEQ_BLOCK_HDR_LEN];

	seq_block_hdr_encode(buf, h);
	seq__sha256(out, buf, sizeof(buf));
}

void seq_block_sign(uint8_t sig[static 64], const struct seq_block_hdr *h,
		    const uint8_t sk[static 64])
{
	uint8_t buf[SEQ_BLOCK_HDR_LEN];

	seq_block_hdr_encode(buf, h);
	crypto_sign_detached(sig, NULL, buf, sizeof(buf), sk);
}

int seq_block_verify(const struct seq_block_hdr *h, const uint8_t sig[static 64],
		     const uint8_t pk[static 32])
{
	uint8_t buf[SEQ_BLOCK_HDR_LEN];

	if (h == NULL)
		return SEQ_EINVAL;
	seq_block_hdr_encode(buf, h);
	if (crypto_sign_verify_detached(sig, buf, sizeof(buf), pk) != 0)
		return SEQ_ESIG;
	return 0;
}

int seq_block_check_link(const struct seq_block_hdr *prev,
			 const struct seq_block_hdr *next)
{
	uint8_t want[32];

	if (prev == NULL || next == NULL)
		return SEQ_EINVAL;
	if (prev->height == UINT64_MAX || next->height != prev->height + 1)
		return SEQ_ECHAIN;
	if (next->slot <= prev->slot)
		return SEQ_ECHAIN;
	if (prev->first_seq > UINT64_MAX - prev->tx_count ||
	    next->first_seq != prev->first_seq + prev->tx_count)
		return SEQ_ECHAIN;
	seq_block_hash(want, prev);
	if (memcmp(want, next->parent, 32) != 0)
		return SEQ_ECHAIN;
	return 0;
}
