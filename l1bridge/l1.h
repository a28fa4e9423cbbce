/*
 * l1.h - Ethereum codecs for mezzanine: Keccak-256, strict RLP decoding,
 * typed transaction decoding (legacy, EIP-2930, EIP-1559) and sender
 * recovery. The L1 issue extends this module with RLP/ABI encoding, signing,
 * keystores, the JSON-RPC client and the outbox.
 *
 * Pure logic: no I/O, no logging, no global mutable state (the secp256k1
 * context is created once, lazily and thread-safely, and never freed).
 *
 * Error space: 0 is success, negative is failure. Codes in [-1299, -1200]
 * belong to this module (see L1_ERRORS); l1_strerror() names them.
 */
#ifndef MEZZ_L1_H
#define MEZZ_L1_H

#include <stddef.h>
#include <stdint.h>

#define L1_ERRORS(X)                                                              \
	X(L1_EINVAL, -1201, "invalid argument")                                   \
	X(L1_ERLP, -1202, "malformed RLP")                                        \
	X(L1_ERLP_NONCANON, -1203, "non-canonical RLP encoding")                  \
	X(L1_ERLP_TRAILING, -1204, "trailing bytes after RLP item")               \
	X(L1_ETX_TYPE, -1205, "unsupported transaction type")                     \
	X(L1_ETX_FIELDS, -1206, "wrong number or kind of transaction fields")     \
	X(L1_ETX_INT, -1207, "integer field too large or has leading zeros")      \
	X(L1_ESIG_HIGHS, -1208, "signature s value is not in the lower half order") \
	X(L1_ESIG, -1209, "invalid signature")                                    \
	X(L1_ECHAINID, -1210, "wrong chain id")                                   \
	X(L1_ETOOBIG, -1211, "input exceeds size limit")                          \
	X(L1_ERLP_DEPTH, -1212, "RLP nesting too deep")

enum {
#define L1_ERR_ENUM(name, code, msg) name = code,
	L1_ERRORS(L1_ERR_ENUM)
#undef L1_ERR_ENUM
};

/* Returns a static string for any l1_ error code, or NULL if not ours. */
const char *l1_strerror(int err);

/* ------------------------------------------------------------------ */
/* Keccak-256 (the original Keccak padding 0x01, not SHA3's 0x06), built on
 * nettle_sha3_permute. */

struct l1_keccak {
	uint64_t a[25]; /* nettle's struct sha3_state layout */
	uint8_t block[136];
	size_t used;
};
void l1_keccak_init(struct l1_keccak *k);
void l1_keccak_update(struct l1_keccak *k, const void *data, size_t len);
void l1_keccak_final(struct l1_keccak *k, uint8_t out[static 32]);
void l1_keccak256(uint8_t out[static 32], const void *data, size_t len);

/* ------------------------------------------------------------------ */
/* Strict RLP decoding. An item points into the caller's buffer (no copies):
 * valid as long as that buffer is. Canonical form is enforced: a single byte
 * < 0x80 must not be wrapped in a string header, lengths must use the short
 * form when < 56 and carry no leading zero bytes. */

struct l1_rlp_item {
	int is_list;
	const uint8_t *payload; /* string bytes, or the list's encoded children */
	size_t payload_len;
	size_t encoded_len; /* header + payload */
};

/* Decode exactly one item spanning all of buf (L1_ERLP_TRAILING otherwise). */
int l1_rlp_decode(struct l1_rlp_item *item, const uint8_t *buf, size_t len);
/* Decode the first item of buf; `encoded_len` tells where the next begins. */
int l1_rlp_decode_prefix(struct l1_rlp_item *item, const uint8_t *buf, size_t len);
/* Split a list's payload into at most max children; *count is set.
 * L1_ETX_FIELDS if there are more than max. */
int l1_rlp_list(const struct l1_rlp_item *list, struct l1_rlp_item *children,
		size_t max, size_t *count);
/* Read a canonical unsigned integer (no leading zeros, at most 32 bytes) into
 * a 32-byte big-endian buffer. */
int l1_rlp_uint256(const struct l1_rlp_item *item, uint8_t out[static 32]);
/* Same, for integers that must fit in 64 bits (L1_ETX_INT otherwise). */
int l1_rlp_u64(const struct l1_rlp_item *item, uint64_t *out);

/* ------------------------------------------------------------------ */
/* Transactions */

enum l1_tx_type {
	L1_TX_LEGACY = 0,
	L1_TX_2930 = 1,
	L1_TX_1559 = 2,
};

/*
 * A decoded, signature-checked transaction. Byte fields point into the raw
 * buffer passed to l1_tx_decode and are valid while it is.
 */
struct l1_tx {
	enum l1_tx_type type;
	uint64_t chain_id;	/* 0 for a pre-EIP-155 legacy transaction */
	uint64_t nonce;
	uint64_t gas_limit;
	uint8_t gas_price[32];	/* legacy/2930; for 1559: max_fee_per_gas */
	uint8_t max_priority_fee[32]; /* 1559 only, else zero */
	int has_to;		/* 0 for contract creation */
	uint8_t to[20];
	uint8_t value[32];
	const uint8_t *data;
	size_t data_len;
	uint8_t from[20];	/* recovered sender */
	uint8_t hash[32];	/* keccak256 of the raw bytes */
};

/*
 * Decode a raw signed transaction (what eth_sendRawTransaction carries):
 * strict RLP, right field count and kinds, integers canonical, r and s in
 * [1, n), s <= n/2 (low-S), recovery id valid, sender recovered with
 * libsecp256k1. If expected_chain_id is non-zero, the transaction's chain
 * id must equal it (a legacy transaction without EIP-155 replay protection
 * is rejected with L1_ECHAINID in that case). len is capped at max_len
 * before any work (L1_ETOOBIG).
 */
int l1_tx_decode(struct l1_tx *tx, const uint8_t *raw, size_t len,
		 uint64_t expected_chain_id, size_t max_len);

/* ------------------------------------------------------------------ */
/* Hex helpers shared by the appliance and tests. */

/* Lowercase hex with "0x" prefix; out must hold 2 + 2*len + 1 bytes. */
void l1_hex_encode(char *out, const uint8_t *in, size_t len);
/* Decode "0x"-prefixed (or bare) hex of even length into out (capacity cap);
 * *out_len set. L1_EINVAL on bad characters or odd length, L1_ETOOBIG if it
 * would not fit. */
int l1_hex_decode(uint8_t *out, size_t cap, size_t *out_len, const char *hex,
		  size_t hex_len);

#endif /* MEZZ_L1_H */
