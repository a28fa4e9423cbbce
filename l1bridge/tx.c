/*
 * tx.c - decoding of signed Ethereum transactions as eth_sendRawTransaction
 * carries them, and recovery of their sender.
 *
 *   legacy    rlp[nonce, gasPrice, gasLimit, to, value, data, v, r, s]
 *   EIP-2930  0x01 || rlp[chainId, nonce, gasPrice, gasLimit, to, value,
 *                         data, accessList, yParity, r, s]
 *   EIP-1559  0x02 || rlp[chainId, nonce, maxPriorityFeePerGas,
 *                         maxFeePerGas, gasLimit, to, value, data,
 *                         accessList, yParity, r, s]
 *
 * The signed message is the same list without its last three items (plus
 * [chainId, 0, 0] for an EIP-155 legacy transaction), prefixed by the type
 * byte for typed transactions. The decoder keeps pointers to the original
 * encoded items, so the unsigned payload is rebuilt by hashing a new list
 * header followed by the untouched bytes of the leading fields: nothing is
 * re-encoded and nothing is allocated.
 *
 * Checks run cheapest first (size, structure, integers, chain id, signature
 * ranges) so that hostile input never reaches the elliptic-curve work.
 */
#include <string.h>

#include <secp256k1.h>
#include <secp256k1_recovery.h>

#include "l1bridge/internal.h"
#include "l1bridge/l1.h"

#define TX_MAX_FIELDS 12

/* Where each field sits in the list of one transaction type; -1 if absent. */
struct tx_layout {
	size_t nfields;
	int chain_id, nonce, max_priority_fee, gas_price, gas_limit, to, value,
		data, access_list, v;
};

static const struct tx_layout layouts[] = {
	[L1_TX_LEGACY] = { 9, -1, 0, -1, 1, 2, 3, 4, 5, -1, 6 },
	[L1_TX_2930] = { 11, 0, 1, -1, 2, 3, 4, 5, 6, 7, 8 },
	[L1_TX_1559] = { 12, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 },
};

static const uint8_t *item_start(const struct l1_rlp_item *it)
{
	return it->payload + it->payload_len - it->encoded_len;
}

static int tx_string(const struct l1_rlp_item *it)
{
	return it->is_list ? L1_ETX_FIELDS : 0;
}

static int tx_parse_to(struct l1_tx *tx, const struct l1_rlp_item *it)
{
	if (it->is_list)
		return L1_ETX_FIELDS;
	if (it->payload_len == 0)
		return 0;
	if (it->payload_len != 20)
		return L1_ETX_FIELDS;
	tx->has_to = 1;
	memcpy(tx->to, it->payload, 20);
	return 0;
}

/* The storage keys of one access-list entry: a list of 32-byte strings. */
static int tx_check_keys(const struct l1_rlp_item *keys)
{
	struct l1_rlp_item key;

	if (!keys->is_list)
		return L1_ETX_FIELDS;
	for (size_t off = 0; off < keys->payload_len; off += key.encoded_len) {
		int rc = l1_rlp_decode_prefix(&key, keys->payload + off,
					      keys->payload_len - off);
		if (rc < 0)
			return rc;
		if (key.is_list || key.payload_len != 32)
			return L1_ETX_FIELDS;
	}
	return 0;
}

/* accessList = [[address(20), [key(32), ...]], ...]. Only its shape is
 * checked; the entries are not kept. */
static int tx_check_access_list(const struct l1_rlp_item *al)
{
	struct l1_rlp_item entry, kv[2];

	if (!al->is_list)
		return L1_ETX_FIELDS;
	for (size_t off = 0; off < al->payload_len; off += entry.encoded_len) {
		size_t n;
		int rc = l1_rlp_decode_prefix(&entry, al->payload + off,
					      al->payload_len - off);
		if (rc < 0)
			return rc;
		if (!entry.is_list)
			return L1_ETX_FIELDS;
		rc = l1_rlp_list(&entry, kv, 2, &n);
		if (rc < 0)
			return rc;
		if (n != 2 || kv[0].is_list || kv[0].payload_len != 20)
			return L1_ETX_FIELDS;
		rc = tx_check_keys(&kv[1]);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* Fills every field of tx but the sender and the hash. */
static int tx_parse_fields(struct l1_tx *tx, const struct tx_layout *lay,
			   const struct l1_rlp_item *f)
{
	int rc;

	if (lay->chain_id >= 0 &&
	    (rc = l1_rlp_u64(&f[lay->chain_id], &tx->chain_id)) < 0)
		return rc;
	if ((rc = l1_rlp_u64(&f[lay->nonce], &tx->nonce)) < 0)
		return rc;
	if (lay->max_priority_fee >= 0 &&
	    (rc = l1_rlp_uint256(&f[lay->max_priority_fee],
				 tx->max_priority_fee)) < 0)
		return rc;
	if ((rc = l1_rlp_uint256(&f[lay->gas_price], tx->gas_price)) < 0)
		return rc;
	if ((rc = l1_rlp_u64(&f[lay->gas_limit], &tx->gas_limit)) < 0)
		return rc;
	if ((rc = tx_parse_to(tx, &f[lay->to])) < 0)
		return rc;
	if ((rc = l1_rlp_uint256(&f[lay->value], tx->value)) < 0)
		return rc;
	if ((rc = tx_string(&f[lay->data])) < 0)
		return rc;
	tx->data = f[lay->data].payload;
	tx->data_len = f[lay->data].payload_len;
	if (lay->access_list >= 0 &&
	    (rc = tx_check_access_list(&f[lay->access_list])) < 0)
		return rc;
	return 0;
}

/* Derives the recovery id (and, for legacy, the chain id) from v/yParity. */
static int tx_parse_v(struct l1_tx *tx, const struct l1_rlp_item *it, int *recid)
{
	uint64_t v;
	int rc = l1_rlp_u64(it, &v);

	if (rc < 0)
		return rc;
	if (tx->type != L1_TX_LEGACY) {
		if (v > 1)
			return L1_ESIG;
		*recid = (int)v;
		return 0;
	}
	if (v == 27 || v == 28) {
		tx->chain_id = 0;
		*recid = (int)(v - 27);
		return 0;
	}
	/* EIP-155: v = chainId * 2 + 35 + recid, with chainId >= 1. */
	if (v < 37)
		return L1_ESIG;
	tx->chain_id = (v - 35) / 2;
	*recid = (int)((v - 35) % 2);
	return 0;
}

static size_t rlp_list_header(uint8_t out[static 9], size_t payload_len)
{
	size_t ll = 0;

	if (payload_len < 56) {
		out[0] = (uint8_t)(0xc0 + payload_len);
		return 1;
	}
	for (size_t n = payload_len; n > 0; n >>= 8)
		ll++;
	out[0] = (uint8_t)(0xf7 + ll);
	for (size_t i = 0; i < ll; i++)
		out[1 + i] = (uint8_t)(payload_len >> (8 * (ll - 1 - i)));
	return 1 + ll;
}

static size_t rlp_u64_encode(uint8_t out[static 9], uint64_t v)
{
	size_t nb = 0;

	if (v > 0 && v < 0x80) {
		out[0] = (uint8_t)v;
		return 1;
	}
	for (uint64_t t = v; t > 0; t >>= 8)
		nb++;
	out[0] = (uint8_t)(0x80 + nb);
	for (size_t i = 0; i < nb; i++)
		out[1 + i] = (uint8_t)(v >> (8 * (nb - 1 - i)));
	return 1 + nb;
}

/* keccak256 of what the sender signed. `fields` are the unsigned fields'
 * encodings, contiguous in the raw buffer. */
static void tx_signing_hash(const struct l1_tx *tx, const uint8_t *fields,
			    size_t fields_len, uint8_t out[static 32])
{
	struct l1_keccak k;
	uint8_t hdr[9], tail[9 + 2];
	size_t hlen, tlen = 0;

	if (tx->type == L1_TX_LEGACY && tx->chain_id != 0) {
		tlen = rlp_u64_encode(tail, tx->chain_id);
		tail[tlen++] = 0x80;
		tail[tlen++] = 0x80;
	}
	hlen = rlp_list_header(hdr, fields_len + tlen);
	l1_keccak_init(&k);
	if (tx->type != L1_TX_LEGACY) {
		uint8_t type = (uint8_t)tx->type;
		l1_keccak_update(&k, &type, 1);
	}
	l1_keccak_update(&k, hdr, hlen);
	l1_keccak_update(&k, fields, fields_len);
	l1_keccak_update(&k, tail, tlen);
	l1_keccak_final(&k, out);
}

int l1_tx_decode(struct l1_tx *tx, const uint8_t *raw, size_t len,
		 uint64_t expected_chain_id, size_t max_len)
{
	struct l1_rlp_item outer, f[TX_MAX_FIELDS];
	const struct tx_layout *lay;
	const uint8_t *body = raw;
	uint8_t r[32], s[32], msg[32];
	size_t n, body_len = len;
	int rc, recid = 0;

	if (tx == NULL || (raw == NULL && len > 0))
		return L1_EINVAL;
	if (len > max_len)
		return L1_ETOOBIG;
	memset(tx, 0, sizeof(*tx));
	if (len == 0)
		return L1_ERLP;
	if (raw[0] >= 0xc0) {
		tx->type = L1_TX_LEGACY;
	} else if (raw[0] == L1_TX_2930 || raw[0] == L1_TX_1559) {
		tx->type = (enum l1_tx_type)raw[0];
		body++;
		body_len--;
	} else {
		return L1_ETX_TYPE;
	}
	lay = &layouts[tx->type];

	if ((rc = l1_rlp_decode(&outer, body, body_len)) < 0)
		return rc;
	if (!outer.is_list)
		return L1_ETX_FIELDS;
	if ((rc = l1_rlp_list(&outer, f, TX_MAX_FIELDS, &n)) < 0)
		return rc;
	if (n != lay->nfields)
		return L1_ETX_FIELDS;
	if ((rc = tx_parse_fields(tx, lay, f)) < 0)
		return rc;
	if ((rc = tx_parse_v(tx, &f[lay->v], &recid)) < 0)
		return rc;
	if ((rc = l1_rlp_uint256(&f[lay->v + 1], r)) < 0 ||
	    (rc = l1_rlp_uint256(&f[lay->v + 2], s)) < 0)
		return rc;
	if (expected_chain_id != 0 && tx->chain_id != expected_chain_id)
		return L1_ECHAINID;
	if ((rc = l1__secp_check_rs(r, s)) < 0)
		return rc;

	tx_signing_hash(tx, outer.payload,
			(size_t)(item_start(&f[lay->v]) - outer.payload), msg);
	if ((rc = l1__secp_recover(tx->from, msg, r, s, recid)) < 0)
		return rc;
	l1_keccak256(tx->hash, raw, len);
	return 0;
}
