/*
 * sign.c - private key -> address, and EIP-1559 transaction signing.
 *
 *   signing hash = keccak256(0x02 || rlp[chainId, nonce, maxPriorityFeePerGas,
 *                  maxFeePerGas, gasLimit, to, value, data, accessList])
 *   raw          = 0x02 || rlp[..same 9 fields.., yParity, r, s]
 *
 * libsecp256k1 signs with its default RFC 6979 nonce (deterministic: the same
 * key and hash give the same signature, which is what makes our bytes equal
 * cast's) and always returns low-S; the recovery id is yParity.
 */
#include <string.h>

#include <secp256k1_recovery.h>
#include <sodium.h>

#include "l1bridge/internal.h"
#include "l1bridge/l1.h"

int l1_key_address(const uint8_t key[static 32], uint8_t addr[static 20])
{
	const secp256k1_context *ctx = l1__secp();
	secp256k1_pubkey pub;
	uint8_t pub65[65], h[32];
	size_t publen = sizeof(pub65);

	if (ctx == NULL)
		return L1_ENOMEM;
	if (!secp256k1_ec_seckey_verify(ctx, key) ||
	    !secp256k1_ec_pubkey_create(ctx, &pub, key))
		return L1_EKEY;
	if (!secp256k1_ec_pubkey_serialize(ctx, pub65, &publen, &pub,
					   SECP256K1_EC_UNCOMPRESSED))
		return L1_EKEY; /* defensive: cannot fail for a valid key */
	l1_keccak256(h, pub65 + 1, 64);
	memcpy(addr, h + 12, 20);
	return 0;
}

/* The nine unsigned fields, appended to an open list. */
static void put_fields(struct l1_rlp_enc *e, const struct l1_tx1559 *tx)
{
	l1_rlp_put_u64(e, tx->chain_id);
	l1_rlp_put_u64(e, tx->nonce);
	l1_rlp_put_uint256(e, tx->max_priority_fee);
	l1_rlp_put_uint256(e, tx->max_fee);
	l1_rlp_put_u64(e, tx->gas_limit);
	l1_rlp_put_bytes(e, tx->to, tx->has_to ? 20 : 0);
	l1_rlp_put_uint256(e, tx->value);
	l1_rlp_put_bytes(e, tx->data, tx->data_len);
	l1_rlp_list_begin(e); /* empty access list */
	l1_rlp_list_end(e);
}

int l1_tx1559_sign(const struct l1_tx1559 *tx, const uint8_t key[static 32],
		   uint8_t *out, size_t cap, size_t *len, uint8_t hash[static 32])
{
	const secp256k1_context *ctx = l1__secp();
	struct l1_rlp_enc e;
	uint8_t msg[32], rs[64];
	size_t n;
	int recid, rc;

	if (tx == NULL || out == NULL || len == NULL || cap < 1 ||
	    (tx->data == NULL && tx->data_len > 0))
		return L1_EINVAL;
	if (ctx == NULL)
		return L1_ENOMEM;
	*len = 0;

	/* The unsigned payload goes into out first, hashed, then overwritten
	 * by the signed one: no second buffer. */
	out[0] = 0x02;
	l1_rlp_enc_init(&e, out + 1, cap - 1);
	l1_rlp_list_begin(&e);
	put_fields(&e, tx);
	l1_rlp_list_end(&e);
	if ((rc = l1_rlp_enc_finish(&e, &n)) < 0)
		return rc;
	l1_keccak256(msg, out, 1 + n);

	if ((rc = l1__secp_sign(rs, &recid, msg, key)) < 0)
		goto out;

	l1_rlp_enc_init(&e, out + 1, cap - 1);
	l1_rlp_list_begin(&e);
	put_fields(&e, tx);
	l1_rlp_put_u64(&e, (uint64_t)recid);
	l1_rlp_put_uint256(&e, rs);
	l1_rlp_put_uint256(&e, rs + 32);
	l1_rlp_list_end(&e);
	if ((rc = l1_rlp_enc_finish(&e, &n)) < 0)
		goto out;
	*len = 1 + n;
	l1_keccak256(hash, out, *len);
out:
	sodium_memzero(rs, sizeof(rs));
	return rc;
}
