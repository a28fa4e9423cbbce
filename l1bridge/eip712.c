/*
 * eip712.c - EIP-712 digests of execution-ticket purchases, and the
 * recover/sign pair for 65-byte r||s||v signatures over any digest.
 *
 *   domainSeparator = keccak256(DOMAIN_TYPEHASH || keccak256("mezzanine") ||
 *                     keccak256("1") || chainId u256 || inbox (address word))
 *   hashStruct(p)   = keccak256(PURCHASE_TYPEHASH || saleId || keccak256(
 *                     rollups as 32-byte words, concatenated) || tickets ||
 *                     priceGwei || nonce)
 *   digest          = keccak256(0x19 0x01 || domainSeparator || hashStruct)
 *
 * This is what eth_signTypedData_v4 signs, and what Inbox.sol recomputes
 * (the contract's _purchaseDigest); both sides are tested against `cast`.
 */
#include <string.h>

#include "l1bridge/internal.h"
#include "l1bridge/l1.h"

#define W 32

static const char domain_type[] =
	"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)";
static const char purchase_type[] =
	"Purchase(uint64 saleId,uint64[] rollups,uint64 tickets,uint64 priceGwei,uint64 nonce)";
static const char domain_name[] = "mezzanine";
static const char domain_version[] = "1";

static void word_u64(struct l1_keccak *k, uint64_t v)
{
	uint8_t w[W];

	l1_u256_from_u64(w, v);
	l1_keccak_update(k, w, W);
}

static void hash_str(struct l1_keccak *k, const char *s)
{
	uint8_t h[W];

	l1_keccak256(h, s, strlen(s));
	l1_keccak_update(k, h, W);
}

static void domain_separator(uint8_t out[static 32], uint64_t chain_id,
			     const uint8_t inbox[static 20])
{
	struct l1_keccak k;
	uint8_t w[W] = { 0 };

	l1_keccak_init(&k);
	hash_str(&k, domain_type);
	hash_str(&k, domain_name);
	hash_str(&k, domain_version);
	word_u64(&k, chain_id);
	memcpy(w + 12, inbox, 20);
	l1_keccak_update(&k, w, W);
	l1_keccak_final(&k, out);
}

int l1_eip712_purchase_digest(uint8_t out[static 32], const struct l1_purchase *p,
			      uint64_t chain_id, const uint8_t inbox[static 20])
{
	struct l1_keccak k;
	uint8_t rollups_hash[W], st[W], msg[2 + 2 * W];

	if (p == NULL || (p->rollups == NULL && p->n_rollups > 0) ||
	    p->n_rollups > L1_PURCHASE_MAX_ROLLUPS)
		return L1_EINVAL;

	l1_keccak_init(&k);
	for (size_t i = 0; i < p->n_rollups; i++)
		word_u64(&k, p->rollups[i]);
	l1_keccak_final(&k, rollups_hash);

	l1_keccak_init(&k);
	hash_str(&k, purchase_type);
	word_u64(&k, p->sale_id);
	l1_keccak_update(&k, rollups_hash, W);
	word_u64(&k, p->tickets);
	word_u64(&k, p->price_gwei);
	word_u64(&k, p->nonce);
	l1_keccak_final(&k, st);

	msg[0] = 0x19;
	msg[1] = 0x01;
	domain_separator(msg + 2, chain_id, inbox);
	memcpy(msg + 2 + W, st, W);
	l1_keccak256(out, msg, sizeof(msg));
	return 0;
}

int l1_recover_address(uint8_t addr[static 20], const uint8_t digest[static 32],
		       const uint8_t sig[static 65])
{
	uint8_t v = sig[64];
	int rc;

	if (v >= 27)
		v = (uint8_t)(v - 27);
	if (v > 1)
		return L1_ESIG;
	if ((rc = l1__secp_check_rs(sig, sig + 32)) < 0)
		return rc;
	return l1__secp_recover(addr, digest, sig, sig + 32, v);
}

int l1_sign_digest(uint8_t sig[static 65], const uint8_t digest[static 32],
		   const uint8_t key[static 32])
{
	int recid = 0, rc;

	if ((rc = l1__secp_sign(sig, &recid, digest, key)) < 0) {
		memset(sig, 0, 65);
		return rc;
	}
	sig[64] = (uint8_t)(27 + recid);
	return 0;
}
