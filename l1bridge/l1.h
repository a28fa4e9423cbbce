/*
 * l1.h - Ethereum codecs for mezzanine: Keccak-256, strict RLP decoding,
 * typed transaction decoding (legacy, EIP-2930, EIP-1559) and sender
 * recovery; RLP and ABI encoding, the Inbox contract's calldata and event
 * logs, EIP-1559 signing, keystore v3 files and a JSON-RPC client.
 *
 * Everything but the keystore file reader and the RPC client is pure logic:
 * no I/O, no logging, no global mutable state (the secp256k1 context is
 * created once, lazily and thread-safely, randomized, and never freed).
 *
 * Error space: 0 is success, negative is failure. Codes in [-1299, -1200]
 * belong to this module (see L1_ERRORS); l1_strerror() names them.
 */
#ifndef MEZZ_L1_H
#define MEZZ_L1_H

#include <stddef.h>
#include <stdint.h>

#include <nettle/sha3.h>

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
	X(L1_ERLP_DEPTH, -1212, "RLP nesting too deep")                           \
	X(L1_ENOSPC, -1213, "output buffer too small")                            \
	X(L1_ENOMEM, -1214, "out of memory")                                      \
	X(L1_EKEY, -1215, "invalid private key")                                  \
	X(L1_EABI, -1216, "malformed ABI data")                                   \
	X(L1_EABI_TOPIC, -1217, "log is not an event of this contract")           \
	X(L1_EKS_FORMAT, -1220, "malformed keystore file")                        \
	X(L1_EKS_KDF, -1221, "unsupported keystore kdf")                          \
	X(L1_EKS_CIPHER, -1222, "unsupported keystore cipher")                    \
	X(L1_EKS_PARAMS, -1223, "keystore kdf parameters out of bounds")          \
	X(L1_EKS_MAC, -1224, "wrong password or corrupted keystore (MAC mismatch)") \
	X(L1_EKS_ADDRESS, -1225, "keystore address does not match its key")       \
	X(L1_EIO, -1226, "cannot read file")                                      \
	X(L1_ERPC_TRANSPORT, -1230, "no RPC upstream answered")                   \
	X(L1_ERPC_TIMEOUT, -1231, "RPC request timed out")                        \
	X(L1_ERPC_RESPONSE, -1232, "malformed JSON-RPC response")                 \
	X(L1_ERPC_TOOBIG, -1233, "JSON-RPC response exceeds size limit")          \
	X(L1_ERPC_ERROR, -1234, "JSON-RPC error returned by the node")            \
	X(L1_ENOTFOUND, -1235, "not found")                                      \
	X(L1_EDB, -1240, "outbox database error")                                 \
	X(L1_ESTALE, -1241, "l2Block is not above the last one queued for this rollup") \
	X(L1_EBUSY, -1242, "a batch is already waiting to be mined")              \
	X(L1_EHALTED, -1243, "outbox halted: the chain disagrees with its journal") \
	X(L1_EDUP, -1244, "this sale already has a settlement queued")

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
	struct sha3_state st; /* nettle's lanes, permuted in place */
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

/* JSON-RPC quantities ("0x1a": no leading zeros, "0x0" for zero). Parsers
 * accept what nodes send (leading zeros tolerated), at most 64/256 bits. */
void l1_hex_quantity(char out[static 19], uint64_t v);
int l1_hex_quantity_u64(const char *s, uint64_t *out);
int l1_hex_quantity_u256(const char *s, uint8_t out[static 32]);
/* Big-endian 256-bit helpers for fee fields. */
void l1_u256_from_u64(uint8_t out[static 32], uint64_t v);
/* L1_ETX_INT if v does not fit in 64 bits. */
int l1_u256_to_u64(const uint8_t v[static 32], uint64_t *out);

/* ------------------------------------------------------------------ */
/* RLP encoding into a caller's fixed buffer. Errors are sticky: after the
 * first failure every call returns it, so a sequence of puts can be checked
 * once, at l1_rlp_enc_finish. A list's header length is known only at its
 * end, so l1_rlp_list_end moves the payload up by the header size. */

#define L1_RLP_MAX_DEPTH 8

struct l1_rlp_enc {
	uint8_t *buf;
	size_t cap, len;
	size_t open[L1_RLP_MAX_DEPTH]; /* payload start of each open list */
	int depth;
	int err;
};

void l1_rlp_enc_init(struct l1_rlp_enc *e, uint8_t *buf, size_t cap);
int l1_rlp_put_bytes(struct l1_rlp_enc *e, const void *p, size_t n);
/* Integers are strings without leading zero bytes; zero is 0x80. */
int l1_rlp_put_u64(struct l1_rlp_enc *e, uint64_t v);
int l1_rlp_put_uint256(struct l1_rlp_enc *e, const uint8_t v[static 32]);
int l1_rlp_list_begin(struct l1_rlp_enc *e); /* L1_ERLP_DEPTH past the max */
int l1_rlp_list_end(struct l1_rlp_enc *e);
/* The sticky error, or L1_EINVAL if a list is still open; *len = bytes. */
int l1_rlp_enc_finish(struct l1_rlp_enc *e, size_t *len);

/* ------------------------------------------------------------------ */
/* ABI encoding (Solidity ABI v2, the types the Inbox uses). */

enum l1_abi_kind {
	L1_ABI_UINT64,	      /* .u64 */
	L1_ABI_UINT8,	      /* .u64, must be <= 255 */
	L1_ABI_UINT256,	      /* .word: 32 bytes big-endian */
	L1_ABI_BYTES32,	      /* .word */
	L1_ABI_ADDRESS,	      /* .word: 20 bytes */
	L1_ABI_BYTES,	      /* .ptr, .n bytes */
	L1_ABI_UINT64_ARRAY,  /* .ptr: const uint64_t[n] */
	L1_ABI_BYTES32_ARRAY, /* .ptr: const uint8_t[n][32] */
};

struct l1_abi_arg {
	enum l1_abi_kind kind;
	uint64_t u64;
	const uint8_t *word;
	const void *ptr;
	size_t n;
};

/* out[0..4) = keccak256(signature)[0..4), e.g. "transfer(address,uint256)". */
void l1_abi_selector(uint8_t out[static 4], const char *signature);
/* Encodes selector (if non-NULL) then the arguments as a tuple into out
 * (capacity cap); *len = bytes written. L1_ENOSPC if it does not fit. */
int l1_abi_encode(uint8_t *out, size_t cap, size_t *len, const uint8_t *selector,
		  const struct l1_abi_arg *args, size_t nargs);

/* ------------------------------------------------------------------ */
/* Execution-ticket purchases signed by their buyers (EIP-712, eip712.c).
 *
 * Domain: EIP712Domain(string name,string version,uint256 chainId,address
 * verifyingContract) with name "mezzanine", version "1", the L1 chain id and
 * the inbox's address. Typed struct:
 *   Purchase(uint64 saleId,uint64[] rollups,uint64 tickets,uint64 priceGwei,uint64 nonce)
 * The buyer signs it with eth_signTypedData_v4 (`cast wallet sign --data`);
 * the inbox's postPurchases recovers the same signer from the same digest. */

#define L1_PURCHASE_MAX_ROLLUPS 256 /* = SEQ_RIGHTS_MAX_ROLLUPS */

struct l1_purchase {
	uint64_t sale_id;
	const uint64_t *rollups; /* ascending */
	size_t n_rollups;
	uint64_t tickets;
	uint64_t price_gwei;
	uint64_t nonce;
};

/* keccak256(0x19 0x01 || domainSeparator(chain_id, inbox) || hashStruct(p)).
 * L1_EINVAL for a NULL purchase, rollups NULL with n_rollups > 0, or more
 * than L1_PURCHASE_MAX_ROLLUPS rollups (order is the caller's business: the
 * digest covers the ids as given). */
int l1_eip712_purchase_digest(uint8_t out[static 32], const struct l1_purchase *p,
			      uint64_t chain_id, const uint8_t inbox[static 20]);
/* Signer of digest from r||s||v (v 27/28 or 0/1); rejects high-s
 * (L1_ESIG_HIGHS), r or s out of [1, n) and any other v (L1_ESIG). */
int l1_recover_address(uint8_t addr[static 20], const uint8_t digest[static 32],
		       const uint8_t sig[static 65]);
/* Sign (for tests and tools): r||s||v with v 27/28, RFC 6979, low-s.
 * L1_EKEY for an invalid key. */
int l1_sign_digest(uint8_t sig[static 65], const uint8_t digest[static 32],
		   const uint8_t key[static 32]);

/* ------------------------------------------------------------------ */
/* The Inbox contract (l1bridge/contracts/Inbox.sol): calldata and events. */

#define L1_INBOX_MAX_LOCATOR 4096

struct l1_inbox_batch {
	uint64_t index; /* expectedIndex */
	uint64_t from_height, to_height;
	uint8_t da_root[32];
	size_t n_namespaces;
	const uint64_t *namespace_ids;	  /* n_namespaces, strictly increasing */
	const uint8_t (*namespace_roots)[32]; /* n_namespaces */
};

struct l1_inbox_state_root {
	uint64_t rollup_id, l2_block;
	uint8_t state_root[32];
	uint8_t proof_kind;
	const uint8_t *proof_locator;
	size_t proof_locator_len;
};

/* Calldata for postBatch / postStateRoot; sizes: 4 + 32 * (8 + 2n) and
 * 4 + 32 * (6 + ceil(locator_len / 32)). */
int l1_inbox_post_batch_calldata(uint8_t *out, size_t cap, size_t *len,
				 const struct l1_inbox_batch *b);
int l1_inbox_post_state_root_calldata(uint8_t *out, size_t cap, size_t *len,
				      const struct l1_inbox_state_root *s);
/* batchHash as the contract computes it, for checking a chain of events. */
void l1_inbox_batch_hash(uint8_t out[static 32], const uint8_t prev[static 32],
			 const struct l1_inbox_batch *b);

enum l1_inbox_event_kind {
	L1_EV_BATCH_POSTED = 1,
	L1_EV_STATE_ROOT_POSTED,
	L1_EV_POSTER_CHANGED,
	L1_EV_ROLLUP_KEY_CHANGED,
	L1_EV_OWNERSHIP_TRANSFERRED,
	L1_EV_DEPOSITED,
	L1_EV_WITHDRAWN,
	L1_EV_PURCHASED,
	L1_EV_PURCHASE_REJECTED,
	L1_EV_SALE_SETTLED,
	L1_EV_REVENUE_CREDITED,
	L1_EV_REFUND_CLAIMED,
	L1_EV_REVENUE_CLAIMED,
};

/* PurchaseRejected reasons (the contract's REJECT_* constants). */
enum { L1_REJECT_NONCE_USED = 1, L1_REJECT_UNFUNDED = 2 };

/*
 * A decoded Inbox event. Pointers go into the log's data and are valid as
 * long as it is. Namespace arrays stay in ABI form (32-byte words, already
 * checked); read entry i with l1_inbox_event_namespace().
 */
struct l1_inbox_event {
	enum l1_inbox_event_kind kind;
	union {
		struct {
			uint64_t index;
			uint8_t batch_hash[32];
			uint64_t from_height, to_height;
			uint8_t da_root[32];
			size_t n_namespaces;
			const uint8_t *ids_abi;	  /* n_namespaces words */
			const uint8_t *roots_abi; /* n_namespaces words */
		} batch;
		struct {
			uint64_t rollup_id, l2_block;
			uint8_t state_root[32];
			uint8_t proof_kind;
			uint8_t sender[20];
			const uint8_t *proof_locator;
			size_t proof_locator_len;
		} state_root;
		struct { /* poster, rollup key (rollup_id set) or owner change */
			uint64_t rollup_id;
			uint8_t previous[20], next[20];
		} change;
		/* Deposited, Withdrawn (account, amount, balance), RefundClaimed
		 * (account, amount), RevenueClaimed (rollup_id, account = key,
		 * amount), RevenueCredited (sale_id, rollup_id, amount). Wei. */
		struct {
			uint8_t account[20];
			uint64_t sale_id, rollup_id;
			uint8_t amount[32], balance[32];
		} funds;
		struct { /* Purchased (rollups set), PurchaseRejected (reason set) */
			uint64_t sale_id;
			uint8_t buyer[20];
			uint64_t nonce, tickets, price_gwei;
			uint8_t reason;
			size_t n_rollups;
			const uint8_t *rollups_abi; /* n_rollups words */
		} purchase;
		struct {
			uint64_t sale_id, n_buyers, n_credits;
			uint8_t revenue[32], burn[32]; /* wei */
		} settled;
	} u;
};

/* topic0 of each event kind (keccak of its signature); NULL if unknown. */
const uint8_t *l1_inbox_event_topic(enum l1_inbox_event_kind kind);
/*
 * Strict decoding of one log of the Inbox: topic0 names the event, the topic
 * count matches its indexed fields, indexed and data words are in range for
 * their types (zero high bytes), dynamic offsets are the canonical ones and
 * in bounds, array lengths fit the data, bytes padding is zero and the data
 * ends exactly where the encoding does. L1_EABI_TOPIC for another event,
 * L1_EABI for anything malformed.
 */
int l1_inbox_decode_log(struct l1_inbox_event *ev, const uint8_t (*topics)[32],
			size_t ntopics, const uint8_t *data, size_t data_len);
void l1_inbox_event_namespace(const struct l1_inbox_event *ev, size_t i,
			      uint64_t *id, uint8_t root[static 32]);
/* Rollup i of a Purchased event. */
uint64_t l1_inbox_event_rollup(const struct l1_inbox_event *ev, size_t i);

/* Execution tickets: calldata of postPurchases and settleSale. Amounts on
 * chain are wei, 32-byte big-endian; the appliance's gwei convert with
 * l1_u256_from_gwei. */
void l1_u256_from_gwei(uint8_t out[static 32], uint64_t gwei);

/* postPurchases(uint64 saleId, (uint64,uint64[],uint64,uint64,uint64)[]
 * purchases, bytes[] signatures): n purchases p[i] with 65-byte r||s||v
 * sigs[i]. Size: 4 + 32 * (5 + 12 n + sum of n_rollups); the function
 * returns it in *len, L1_ENOSPC if cap is smaller, L1_EINVAL if a purchase
 * has more than L1_PURCHASE_MAX_ROLLUPS rollups. */
size_t l1_inbox_post_purchases_size(const struct l1_purchase *p, size_t n);
int l1_inbox_post_purchases_calldata(uint8_t *out, size_t cap, size_t *len, uint64_t sale_id,
				     const struct l1_purchase *p, const uint8_t (*sigs)[65],
				     size_t n);

struct l1_settle_buyer {
	uint8_t addr[20];
	uint8_t charged[32], refund[32]; /* wei */
};
struct l1_settle_credit {
	uint64_t rollup_id;
	uint8_t amount[32]; /* wei */
};
/* settleSale(uint64 saleId, ((address,uint256,uint256)[] buyers,
 * (uint64,uint256)[] credits, uint256 burn)). The contract wants buyers by
 * ascending address and credits by ascending rollup id; this encoder
 * writes them as given. Size: 4 + 32 * (7 + 3 n_buyers + 2 n_credits). */
struct l1_inbox_settlement {
	uint64_t sale_id;
	const struct l1_settle_buyer *buyers;
	size_t n_buyers;
	const struct l1_settle_credit *credits;
	size_t n_credits;
	uint8_t burn[32]; /* wei */
};
size_t l1_inbox_settle_sale_size(const struct l1_inbox_settlement *st);
int l1_inbox_settle_sale_calldata(uint8_t *out, size_t cap, size_t *len,
				  const struct l1_inbox_settlement *st);

/* ------------------------------------------------------------------ */
/* Keys and EIP-1559 signing */

/* address = keccak256(uncompressed pubkey without its 0x04)[12..32).
 * L1_EKEY if key is zero or >= n. */
int l1_key_address(const uint8_t key[static 32], uint8_t addr[static 20]);

/* An unsigned EIP-1559 transaction with an empty access list. */
struct l1_tx1559 {
	uint64_t chain_id, nonce, gas_limit;
	uint8_t max_priority_fee[32]; /* wei, big-endian */
	uint8_t max_fee[32];
	int has_to; /* 0: contract creation */
	uint8_t to[20];
	uint8_t value[32];
	const uint8_t *data;
	size_t data_len;
};

/* An upper bound on the raw size of a signed tx with data_len bytes. */
#define L1_TX1559_MAX_RAW(data_len) ((size_t)(data_len) + 256)

/*
 * Signs with libsecp256k1 (RFC 6979 deterministic nonce, low-S), writes
 * 0x02 || rlp[chainId, nonce, tip, maxFee, gas, to, value, data, [], yParity,
 * r, s] into out and its keccak256 (the transaction hash) into hash.
 * Byte-identical to `cast mktx` for the same fields.
 */
int l1_tx1559_sign(const struct l1_tx1559 *tx, const uint8_t key[static 32],
		   uint8_t *out, size_t cap, size_t *len, uint8_t hash[static 32]);

/* ------------------------------------------------------------------ */
/* Keystore v3 (geth / `cast wallet new` files). */

/* Bounds on a file's KDF cost so a hostile file cannot exhaust memory or
 * time: scrypt memory is 128 * r * n bytes (geth's standard n = 2^18, r = 8
 * is 256 MiB and accepted). */
#define L1_KS_SCRYPT_MAX_MEM (256u << 20)
#define L1_KS_SCRYPT_MAX_P 16
#define L1_KS_PBKDF2_MAX_C (1u << 22)
#define L1_KS_MAX_FILE (64 * 1024)

enum l1_ks_kdf { L1_KS_SCRYPT = 1, L1_KS_PBKDF2 };

struct l1_keystore {
	enum l1_ks_kdf kdf;
	uint64_t n;	 /* scrypt N (power of two) */
	uint32_t r, p;	 /* scrypt */
	uint32_t c;	 /* pbkdf2 iterations (prf hmac-sha256) */
	uint8_t salt[64];
	size_t salt_len;
	uint8_t iv[16];
	uint8_t ciphertext[32];
	uint8_t mac[32];
	int has_address;
	uint8_t address[20];
};

/* Parses and checks a keystore's JSON (no KDF work): version 3, kdf scrypt
 * or pbkdf2 within the bounds, cipher aes-128-ctr, dklen 32, 32-byte
 * ciphertext. err (may be NULL) gets a sentence naming the problem. */
int l1_keystore_parse(struct l1_keystore *ks, const char *json, size_t len,
		      char *err, size_t errcap);
/*
 * Derives the key from password, checks the MAC in constant time
 * (L1_EKS_MAC: wrong password or tampered file), decrypts the private key
 * into key and its address into addr (if non-NULL); the file's address, if
 * present, must match (L1_EKS_ADDRESS). Intermediate secrets are wiped.
 */
int l1_keystore_decrypt(const struct l1_keystore *ks, const char *password,
			size_t password_len, uint8_t key[static 32], uint8_t *addr,
			char *err, size_t errcap);
/* Reads path (at most L1_KS_MAX_FILE bytes), then parse + decrypt. */
int l1_keystore_load(const char *path, const char *password, uint8_t key[static 32],
		     uint8_t *addr, char *err, size_t errcap);

/* ------------------------------------------------------------------ */
/* JSON-RPC client over HTTP(S) (libcurl).
 *
 * Thread contract: a client is used by one thread at a time (one client per
 * thread); different clients may run in parallel.
 *
 * Upstreams are tried in order, starting from the one that answered last.
 * A transport failure (connect error, timeout, HTTP status other than 200,
 * an unparsable or oversized body) moves on to the next URL; a JSON-RPC
 * error object is the node's answer and is returned at once as
 * L1_ERPC_ERROR, with l1_rpc_last_error() holding its code, message and
 * data (revert data for eth_call / eth_estimateGas). When every URL fails,
 * the result is the last one's transport error (L1_ERPC_TIMEOUT,
 * L1_ERPC_TOOBIG, L1_ERPC_RESPONSE or L1_ERPC_TRANSPORT). */

struct json_t; /* jansson */
struct l1_rpc;

#define L1_RPC_MAX_URLS 8

struct l1_rpc_opts {
	const char *const *urls; /* copied */
	size_t nurls;		 /* 1..L1_RPC_MAX_URLS */
	long connect_timeout_ms; /* per URL; 0 = 3000 */
	long timeout_ms;	 /* whole request per URL; 0 = 10000 */
	size_t max_response;	 /* bytes; 0 = 16 MiB */
	const char *ca_file;	 /* PEM CAs for https:// URLs (copied); NULL = the system's */
	/* Not 0: a URL is used only once its eth_chainId answered this (asked
	 * before its first call and again after it failed one); a URL of
	 * another chain is passed over like one that does not answer, and
	 * l1_rpc_last_error says which. */
	uint64_t chain_id;
};

struct l1_rpc_error {
	int rc;		  /* the l1_ code the last call returned */
	long code;	  /* JSON-RPC error code (L1_ERPC_ERROR) */
	char message[256]; /* node's message, or what went wrong in transport */
	uint8_t data[1024]; /* JSON-RPC error data when it is hex (revert data) */
	size_t data_len;
	size_t url_index; /* upstream that produced the error */
};

int l1_rpc_create(struct l1_rpc **out, const struct l1_rpc_opts *opts);
void l1_rpc_destroy(struct l1_rpc *c); /* NULL-safe */
/* Valid until the next call on c. */
const struct l1_rpc_error *l1_rpc_last_error(const struct l1_rpc *c);

/* Raw call: params (an array, stolen, may be NULL) -> *result, a new
 * reference the caller json_decref()s. */
int l1_rpc_call(struct l1_rpc *c, const char *method, struct json_t *params,
		struct json_t **result);

int l1_rpc_chain_id(struct l1_rpc *c, uint64_t *out);
/* tag: "latest", "pending", "safe", "finalized" or a 0x quantity. */
int l1_rpc_get_transaction_count(struct l1_rpc *c, const uint8_t addr[static 20],
				 const char *tag, uint64_t *out);
int l1_rpc_send_raw_transaction(struct l1_rpc *c, const uint8_t *raw, size_t len,
				uint8_t hash[static 32]);

/* A log as nodes return it; data is owned by the list that holds it. */
struct l1_log {
	uint8_t address[20];
	size_t ntopics; /* <= 4 */
	uint8_t topics[4][32];
	uint8_t *data;
	size_t data_len;
	uint64_t block_number, log_index;
	uint8_t block_hash[32], tx_hash[32];
	int removed;
};
struct l1_log_list {
	struct l1_log *v;
	size_t n;
};
void l1_log_list_free(struct l1_log_list *l); /* NULL-safe, leaves it empty */

struct l1_receipt {
	int status; /* 1 success, 0 reverted */
	uint64_t block_number, gas_used;
	uint8_t block_hash[32], tx_hash[32];
	uint8_t effective_gas_price[32];
	struct l1_log_list logs; /* freed by l1_receipt_free */
};
/* L1_ENOTFOUND while the transaction is not mined (the node returns null). */
int l1_rpc_get_receipt(struct l1_rpc *c, const uint8_t tx_hash[static 32],
		       struct l1_receipt *r);
void l1_receipt_free(struct l1_receipt *r); /* NULL-safe */
/* A mined or pending transaction's signed bytes (eth_getRawTransactionByHash),
 * in *raw (malloc'd, the caller frees); L1_ENOTFOUND when the node has none. */
int l1_rpc_get_raw_transaction(struct l1_rpc *c, const uint8_t hash[static 32], uint8_t **raw,
				size_t *len);

struct l1_block {
	uint64_t number, timestamp;
	uint8_t hash[32], parent_hash[32];
	int has_base_fee;
	uint8_t base_fee[32];
	int has_mix_hash;
	uint8_t mix_hash[32]; /* prevrandao since the Merge (EIP-4399) */
};
/* tag ("latest", "safe", "finalized", ...) or, when tag is NULL, number.
 * L1_ENOTFOUND when the node has no such block. */
int l1_rpc_get_block(struct l1_rpc *c, const char *tag, uint64_t number,
		     struct l1_block *b);
int l1_rpc_max_priority_fee(struct l1_rpc *c, uint8_t out[static 32]);
/* eth_feeHistory over the last nblocks (1..1024) up to "latest": the base
 * fee of the next block and the median over those blocks of the reward at
 * `percentile` (0..100). */
int l1_rpc_fee_history(struct l1_rpc *c, uint64_t nblocks, double percentile,
		       uint8_t next_base_fee[static 32], uint8_t priority_fee[static 32]);

/* A call or gas estimate: from is optional (has_from), value zero unless set. */
struct l1_call {
	int has_from;
	uint8_t from[20];
	uint8_t to[20];
	const uint8_t *data;
	size_t data_len;
	int has_value;
	uint8_t value[32];
};
int l1_rpc_estimate_gas(struct l1_rpc *c, const struct l1_call *call, uint64_t *gas);
/* eth_call at tag (NULL = "latest"); the return data into out. A revert is
 * L1_ERPC_ERROR with the revert data in l1_rpc_last_error()->data. */
int l1_rpc_eth_call(struct l1_rpc *c, const struct l1_call *call, const char *tag,
		    uint8_t *out, size_t cap, size_t *len);

struct l1_log_filter {
	uint8_t address[20];
	const char *from_block; /* tag or 0x quantity; NULL = "earliest" */
	const char *to_block;	/* NULL = "latest" */
	int has_topic0;
	uint8_t topic0[32];
	int has_topic1; /* the first indexed argument too (needs has_topic0) */
	uint8_t topic1[32];
};
/* On success *out owns the logs (l1_log_list_free). */
int l1_rpc_get_logs(struct l1_rpc *c, const struct l1_log_filter *f,
		    struct l1_log_list *out);

/* ------------------------------------------------------------------ */
/* Batch commitments (docs/PROTOCOL-ethereum.md, "Batch commitment").
 *
 * A batch root is a binary Keccak-256 Merkle tree over one leaf per block:
 *   leaf = keccak256(0x00 || height u64 big-endian || value[32])
 *   node = keccak256(0x01 || left || right); an odd last node is promoted.
 * daRoot uses value = the block's DA record hash (da_record_hash); the root
 * of namespace N uses value = N's root in that block's namespace table, over
 * the blocks of the batch in which N appears. heights are strictly
 * increasing. L1_EINVAL if n == 0, L1_ENOMEM. */
int l1_batch_root(uint8_t out[static 32], const uint64_t *heights,
		  const uint8_t (*values)[32], size_t n);

/* ------------------------------------------------------------------ */
/* The outbox (outbox.c): the persisted poster of batches and state roots.
 *
 * Everything it must not forget lives in its own SQLite file (WAL,
 * synchronous=FULL): the jobs (a batch or a state root, with its calldata
 * fixed when queued), and the journal of every signed transaction (raw
 * bytes, hash, nonce, fees), written durably before the transaction is
 * sent. The state machine is drawn at the top of outbox.c.
 *
 * Thread contract: one thread owns a struct l1_outbox (and the l1_rpc
 * client it is stepped with). Readers in other threads open their own
 * struct l1_outbox_reader on the same file. */

struct l1_outbox;

enum l1_outbox_fault {
	L1_OB_FAULT_SIGNED, /* signed and journaled, not yet sent */
	L1_OB_FAULT_SENT,   /* sent, receipt not yet recorded */
};

struct l1_outbox_opts {
	const char *path;	      /* the outbox database file */
	uint64_t chain_id;
	uint8_t inbox[20];
	const uint8_t *key;	      /* 32 bytes, copied (wiped at close) */
	uint64_t confirmations;	      /* >= 1: blocks (incl. its own) before `posted` */
	uint64_t bump_after_blocks;   /* >= 1 */
	uint64_t max_fee_wei;	      /* cap on maxFeePerGas */
	/* Test builds only: called at each fault point (may not return). */
	void (*fault)(void *arg, enum l1_outbox_fault point);
	void *fault_arg;
};

enum l1_outbox_status {
	L1_OB_SYNCING,	   /* not yet reconciled with the chain */
	L1_OB_IDLE,	   /* nothing to send */
	L1_OB_INFLIGHT,	   /* a transaction is waiting to be mined */
	L1_OB_FEE_CAPPED,  /* waiting: the base fee is above l1.max_fee_gwei */
	L1_OB_RPC_DOWN,	   /* the last step found no upstream answering */
	L1_OB_HALTED,	   /* the chain contradicts the journal: operator needed */
};
extern const char *const l1_outbox_status_names[];

struct l1_outbox_info {
	enum l1_outbox_status status;
	uint64_t next_index, next_height; /* of the next batch to queue */
	uint64_t posted_to, finalized_to; /* highest height posted/finalized, contiguous */
	uint64_t next_nonce;
	uint64_t sent, bumps, reorgs;	  /* transactions sent, fee bumps, reorged jobs */
	uint64_t requeued;		  /* jobs whose nonce a foreign transaction spent */
	uint64_t l1_block, l1_finalized;  /* as seen at the last step */
	char last_error[160];
};

/* Opens (creating) the database; no RPC. err gets a sentence on failure. */
int l1_outbox_open(struct l1_outbox **out, const struct l1_outbox_opts *o, char *err,
		   size_t errlen);
void l1_outbox_close(struct l1_outbox *ob); /* NULL-safe */
/* The sender's address. */
void l1_outbox_address(const struct l1_outbox *ob, uint8_t addr[static 20]);
/*
 * One pass of the state machine: reconcile with the chain on the first
 * successful pass (chain id, nonce, the contract's batchCount/nextHeight),
 * then watch mined jobs (confirmations, reorgs, finality), look for
 * receipts, re-send or bump what is stuck, and sign and send the next
 * queued job when nothing is in flight. Returns 0, an RPC error (nothing
 * lost: the next pass retries) or L1_EHALTED.
 */
int l1_outbox_step(struct l1_outbox *ob, struct l1_rpc *rpc);
void l1_outbox_get_info(struct l1_outbox *ob, struct l1_outbox_info *info);
/* 1 when a new batch may be queued: the outbox is reconciled and every
 * batch it holds is mined. *index and *from_height are what it must have. */
int l1_outbox_batch_wanted(struct l1_outbox *ob, uint64_t *index, uint64_t *from_height);
/* Queue a batch durably (b->index and b->from_height as batch_wanted
 * said; L1_EBUSY otherwise). */
int l1_outbox_queue_batch(struct l1_outbox *ob, const struct l1_inbox_batch *b);
/* Queue a state root durably; L1_ESTALE unless s->l2_block is above every
 * one queued for s->rollup_id. */
int l1_outbox_queue_state_root(struct l1_outbox *ob, const struct l1_inbox_state_root *s);

/*
 * Execution tickets. Queue one postPurchases of n signed purchases of sale
 * sale_id (every p[i].sale_id equal to it; 1..L1_OUTBOX_MAX_PURCHASES), or
 * the sale's settlement (amounts converted from gwei to wei; buyers must
 * ascend by address, credits by rollup, and charged == credits + burn, else
 * L1_EINVAL). Jobs are posted in queue order, so queue a sale's settlement
 * after its purchases; once it is queued, more purchases of that sale and a
 * second settlement are refused with L1_EDUP. The contract skips a
 * replayed or unfunded purchase (PurchaseRejected) rather than reverting:
 * the settlement must be computed from the Purchased events, not from what
 * was queued. A job that reverts ends FAILED; the outbox moves on.
 */
#define L1_OUTBOX_MAX_PURCHASES 256
#define L1_OUTBOX_MAX_SETTLE 65536
struct seq_settlement;
int l1_outbox_queue_purchases(struct l1_outbox *ob, uint64_t sale_id, const struct l1_purchase *p,
			      const uint8_t (*sigs)[65], size_t n);
int l1_outbox_queue_settlement(struct l1_outbox *ob, const struct seq_settlement *st);

/* Job states as stored (and shown by readers). */
enum l1_job_state {
	L1_JOB_QUEUED, L1_JOB_SIGNED, L1_JOB_SENT, L1_JOB_MINED, L1_JOB_POSTED,
	L1_JOB_FINALIZED, L1_JOB_FAILED, L1_JOB_STATES
};
extern const char *const l1_job_state_names[L1_JOB_STATES];

/* Every failed batch of the outbox database at path queued again (signed
 * under the next nonce by the next outbox to open it): each is called for
 * every one first, *n counts them; 0 or L1_EDB (nothing changed). Only
 * with no outbox open on the file. */
typedef void (*l1_retry_fn)(void *arg, uint64_t index, uint64_t from_height,
			    uint64_t to_height, const char *error);
int l1_outbox_retry_failed(const char *path, l1_retry_fn each, void *arg, size_t *n);

struct l1_outbox_reader;
/* Read-only view of an outbox database for another thread. Opening fails
 * (L1_ENOTFOUND) while the file does not exist yet. */
int l1_outbox_reader_open(struct l1_outbox_reader **out, const char *path);
void l1_outbox_reader_close(struct l1_outbox_reader *r); /* NULL-safe */

struct l1_job_view {
	enum l1_job_state state;
	uint64_t index, from_height, to_height; /* batches */
	uint64_t rollup_id, l2_block;		/* state roots */
	uint64_t sale_id;			/* purchases, settlements */
	size_t n_items;				/* purchases in it; buyers settled */
	uint8_t state_root[32];
	uint8_t proof_kind;
	uint8_t locator[L1_INBOX_MAX_LOCATOR];
	size_t locator_len;
	int has_tx; /* tx_hash: the transaction that mined it, else the last sent */
	uint8_t tx_hash[32];
	uint64_t nonce;
	int mined;  /* block_number, block_hash valid */
	uint64_t block_number;
	uint8_t block_hash[32];
	char error[160];
};
/* The batch that covers `height`; L1_ENOTFOUND if none yet. */
int l1_outbox_reader_batch(struct l1_outbox_reader *r, uint64_t height, struct l1_job_view *v);
/* The state root job of (rollup, l2_block); L1_ENOTFOUND if none. */
int l1_outbox_reader_state_root(struct l1_outbox_reader *r, uint64_t rollup_id,
				uint64_t l2_block, struct l1_job_view *v);
/* The i-th (from 0, in queue order) purchases job of a sale, and a sale's
 * settlement job; L1_ENOTFOUND if none. */
int l1_outbox_reader_purchases(struct l1_outbox_reader *r, uint64_t sale_id, uint64_t i,
			       struct l1_job_view *v);
int l1_outbox_reader_settlement(struct l1_outbox_reader *r, uint64_t sale_id,
				struct l1_job_view *v);
/* How many purchases jobs of a sale are queued (any state): the index the
 * next one will have. */
int l1_outbox_reader_purchases_count(struct l1_outbox_reader *r, uint64_t sale_id, uint64_t *n);

#endif /* MEZZ_L1_H */
