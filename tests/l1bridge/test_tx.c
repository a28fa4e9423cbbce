/*
 * test_tx.c - transaction decoding and sender recovery, against raw
 * transactions signed by `cast mktx` at test time (offline: nonce, gas and
 * chain are given), plus hand-built edge cases.
 */
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>
#include <secp256k1.h>
#include <secp256k1_recovery.h>

#include "l1bridge/l1.h"

#include "tests/l1bridge/helpers.h"

/* anvil's first dev account and the second's address. */
#define PK "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
#define FROM "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"
#define TO "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"
#define CHAIN 31337
#define MAXLEN (128 * 1024)

#define BASE "--private-key " PK " --chain 31337 --nonce 0 --gas-limit 21000 " \
	     "--gas-price 1000000000 "
#define MKTX_1559 "mktx " BASE "--priority-gas-price 1000000 " TO " --value 1"
#define MKTX_LEGACY "mktx --legacy " BASE TO " --value 1"

static const uint8_t secp_n[32] = {
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xfe, 0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48,
	0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41,
};

static uint8_t raw[8192];
static size_t raw_len;

static void mktx(const char *args)
{
	static char hex[16400];

	l1t_cast(hex, sizeof(hex), "%s", args);
	raw_len = l1t_unhex(raw, sizeof(raw), hex);
	cr_assert_gt(raw_len, 0);
}

static void expect_addr(const uint8_t a[20], const char *want)
{
	char got[43];

	l1_hex_encode(got, a, 20);
	cr_assert_str_eq(got, want);
}

static void expect_u256(const uint8_t v[32], uint64_t want)
{
	uint8_t w[32] = { 0 };

	for (int i = 0; i < 8; i++)
		w[31 - i] = (uint8_t)(want >> (8 * i));
	cr_assert_arr_eq(v, w, 32);
}

/* The hash must be keccak256 of the raw bytes, as cast computes it. */
static void expect_cast_hash(const struct l1_tx *tx, const uint8_t *bytes, size_t n)
{
	static char hex[16400];
	char want[80], got[67];

	l1_hex_encode(hex, bytes, n);
	l1t_cast(want, sizeof(want), "keccak %s", hex);
	l1_hex_encode(got, tx->hash, 32);
	cr_assert_str_eq(got, want);
}

static void field(const uint8_t *bytes, size_t n, size_t idx, struct l1_rlp_item *out)
{
	struct l1_rlp_item outer, f[16];
	size_t pre = bytes[0] < 0xc0 ? 1 : 0, nf;

	cr_assert_eq(l1_rlp_decode(&outer, bytes + pre, n - pre), 0);
	cr_assert_eq(l1_rlp_list(&outer, f, 16, &nf), 0);
	cr_assert_lt(idx, nf);
	*out = f[idx];
}

/* Decodes raw with one field replaced by the given encoding. */
static int decode_with(size_t idx, const char *enc_hex, struct l1_tx *tx)
{
	static uint8_t mod[8300];
	uint8_t enc[64];
	struct l1t_rep rep = { idx, enc, l1t_unhex(enc, sizeof(enc), enc_hex) };
	size_t n = l1t_tx_rebuild(mod, raw, raw_len, &rep, 1);

	return l1_tx_decode(tx, mod, n, CHAIN, MAXLEN);
}

Test(tx, eip1559_from_cast)
{
	struct l1_tx tx;

	mktx(MKTX_1559);
	cr_assert_eq(raw[0], 0x02);
	cr_assert_eq(l1_tx_decode(&tx, raw, raw_len, CHAIN, MAXLEN), 0);
	cr_assert_eq(tx.type, L1_TX_1559);
	cr_assert_eq(tx.chain_id, CHAIN);
	cr_assert_eq(tx.nonce, 0);
	cr_assert_eq(tx.gas_limit, 21000);
	expect_u256(tx.gas_price, 1000000000);
	expect_u256(tx.max_priority_fee, 1000000);
	expect_u256(tx.value, 1);
	cr_assert_eq(tx.has_to, 1);
	expect_addr(tx.to, TO);
	cr_assert_eq(tx.data_len, 0);
	expect_addr(tx.from, FROM);
	expect_cast_hash(&tx, raw, raw_len);
	/* expected_chain_id 0 accepts any chain. */
	cr_assert_eq(l1_tx_decode(&tx, raw, raw_len, 0, MAXLEN), 0);
	expect_addr(tx.from, FROM);
}

Test(tx, legacy_eip155_from_cast)
{
	struct l1_tx tx;

	mktx(MKTX_LEGACY);
	cr_assert_geq(raw[0], 0xc0);
	cr_assert_eq(l1_tx_decode(&tx, raw, raw_len, CHAIN, MAXLEN), 0);
	cr_assert_eq(tx.type, L1_TX_LEGACY);
	cr_assert_eq(tx.chain_id, CHAIN);
	cr_assert_eq(tx.gas_limit, 21000);
	expect_u256(tx.gas_price, 1000000000);
	expect_u256(tx.max_priority_fee, 0);
	expect_u256(tx.value, 1);
	expect_addr(tx.to, TO);
	expect_addr(tx.from, FROM);
	expect_cast_hash(&tx, raw, raw_len);
}

Test(tx, eip2930_from_cast)
{
	struct l1_tx tx;

	mktx("mktx --legacy --access-list "
	     "'[{\"address\":\"" TO "\",\"storageKeys\":["
	     "\"0x0000000000000000000000000000000000000000000000000000000000000001\","
	     "\"0x00000000000000000000000000000000000000000000000000000000000000ff\"]},"
	     "{\"address\":\"" FROM "\",\"storageKeys\":[]}]' "
	     "--private-key " PK " --chain 31337 --nonce 7 --gas-limit 60000 "
	     "--gas-price 2000000000 " TO " --value 5 0x12345678");
	cr_assert_eq(raw[0], 0x01);
	cr_assert_eq(l1_tx_decode(&tx, raw, raw_len, CHAIN, MAXLEN), 0);
	cr_assert_eq(tx.type, L1_TX_2930);
	cr_assert_eq(tx.chain_id, CHAIN);
	cr_assert_eq(tx.nonce, 7);
	cr_assert_eq(tx.gas_limit, 60000);
	expect_u256(tx.gas_price, 2000000000);
	expect_u256(tx.value, 5);
	cr_assert_eq(tx.data_len, 4);
	cr_assert(memcmp(tx.data, "\x12\x34\x56\x78", 4) == 0);
	expect_addr(tx.from, FROM);
	expect_cast_hash(&tx, raw, raw_len);
}

/* Contract creation with 600 bytes of init code: long-form headers in the
 * raw transaction and in the signed payload. */
Test(tx, create_with_long_data)
{
	static const char *const kinds[] = { "", "--legacy " };
	static char args[4096];

	for (size_t k = 0; k < 2; k++) {
		struct l1_tx tx;
		int off;

		off = snprintf(args, sizeof(args),
			       "mktx %s--private-key " PK " --chain 31337 --nonce 300 "
			       "--gas-limit 1000000 --gas-price 1000000000 %s--create 0x",
			       kinds[k], k == 0 ? "--priority-gas-price 1000000 " : "");
		for (int i = 0; i < 600; i++)
			off += snprintf(args + off, sizeof(args) - (size_t)off, "%02x",
					(i * 13) & 0xff);
		mktx(args);
		cr_assert_eq(l1_tx_decode(&tx, raw, raw_len, CHAIN, MAXLEN), 0);
		cr_assert_eq(tx.type, k == 0 ? L1_TX_1559 : L1_TX_LEGACY);
		cr_assert_eq(tx.has_to, 0);
		cr_assert_eq(tx.nonce, 300);
		cr_assert_eq(tx.gas_limit, 1000000);
		cr_assert_eq(tx.data_len, 600);
		cr_assert_eq(tx.data[599], (599 * 13) & 0xff);
		expect_addr(tx.from, FROM);
		expect_cast_hash(&tx, raw, raw_len);
	}
}

static size_t enc_u256(uint8_t *out, const uint8_t v[32])
{
	size_t z = 0;

	while (z < 32 && v[z] == 0)
		z++;
	return l1t_rlp_str(out, v + z, 32 - z);
}

/* cast cannot sign without a chain id, so sign a pre-EIP-155 legacy
 * transaction here: rlp[nonce, gasPrice, gasLimit, to, value, data]. */
Test(tx, legacy_pre155_signed_locally)
{
	uint8_t key[32], to[20], msg[32], rs[64], p[256], tx_raw[256];
	secp256k1_context *ctx = secp256k1_context_create(SECP256K1_CONTEXT_NONE);
	secp256k1_ecdsa_recoverable_signature sig;
	struct l1_tx tx;
	size_t n = 0, len;
	int recid;

	l1t_unhex(key, sizeof(key), PK);
	l1t_unhex(to, sizeof(to), TO);
	n += l1t_rlp_str(p + n, (const uint8_t *)"\x05", 1);		/* nonce 5 */
	n += l1t_rlp_str(p + n, (const uint8_t *)"\x3b\x9a\xca\x00", 4); /* 1 gwei */
	n += l1t_rlp_str(p + n, (const uint8_t *)"\x52\x08", 2);	/* 21000 */
	n += l1t_rlp_str(p + n, to, 20);
	n += l1t_rlp_str(p + n, (const uint8_t *)"\x01", 1);		/* value */
	p[n++] = 0x80;							/* data */
	len = l1t_rlp_wrap(tx_raw, 0xc0, p, n);
	l1_keccak256(msg, tx_raw, len);
	cr_assert(secp256k1_ecdsa_sign_recoverable(ctx, &sig, msg, key, NULL, NULL));
	secp256k1_ecdsa_recoverable_signature_serialize_compact(ctx, rs, &recid, &sig);
	secp256k1_context_destroy(ctx);
	p[n++] = (uint8_t)(27 + recid);
	n += enc_u256(p + n, rs);
	n += enc_u256(p + n, rs + 32);
	len = l1t_rlp_wrap(tx_raw, 0xc0, p, n);

	cr_assert_eq(l1_tx_decode(&tx, tx_raw, len, 0, MAXLEN), 0);
	cr_assert_eq(tx.type, L1_TX_LEGACY);
	cr_assert_eq(tx.chain_id, 0);
	cr_assert_eq(tx.nonce, 5);
	expect_addr(tx.from, FROM);
	expect_cast_hash(&tx, tx_raw, len);
	/* No replay protection: refused wherever a chain id is expected. */
	cr_assert_eq(l1_tx_decode(&tx, tx_raw, len, CHAIN, MAXLEN), L1_ECHAINID);
}

Test(tx, wrong_chain_id)
{
	struct l1_tx tx;

	mktx(MKTX_1559);
	cr_assert_eq(l1_tx_decode(&tx, raw, raw_len, 1, MAXLEN), L1_ECHAINID);
	mktx(MKTX_LEGACY);
	cr_assert_eq(l1_tx_decode(&tx, raw, raw_len, 1, MAXLEN), L1_ECHAINID);
	cr_assert_eq(l1_tx_decode(&tx, raw, raw_len, CHAIN + 1, MAXLEN), L1_ECHAINID);
}

Test(tx, trailing_and_truncated)
{
	struct l1_tx tx;

	mktx(MKTX_1559);
	raw[raw_len] = 0x00;
	cr_assert_eq(l1_tx_decode(&tx, raw, raw_len + 1, CHAIN, MAXLEN), L1_ERLP_TRAILING);
	cr_assert_eq(l1_tx_decode(&tx, raw, raw_len - 1, CHAIN, MAXLEN), L1_ERLP);
	for (size_t k = 0; k < raw_len; k++)
		cr_assert_lt(l1_tx_decode(&tx, raw, k, CHAIN, MAXLEN), 0, "prefix %zu", k);
	cr_assert_eq(l1_tx_decode(&tx, raw, 0, CHAIN, MAXLEN), L1_ERLP);
	cr_assert_eq(l1_tx_decode(&tx, raw, 1, CHAIN, MAXLEN), L1_ERLP);
}

Test(tx, size_limit_before_work)
{
	struct l1_tx tx;
	uint8_t junk[16] = { 0xff };

	mktx(MKTX_1559);
	cr_assert_eq(l1_tx_decode(&tx, raw, raw_len, CHAIN, raw_len - 1), L1_ETOOBIG);
	cr_assert_eq(l1_tx_decode(&tx, raw, raw_len, CHAIN, raw_len), 0);
	cr_assert_eq(l1_tx_decode(&tx, junk, sizeof(junk), CHAIN, 15), L1_ETOOBIG);
}

/* n - s with the parity flipped is the same signature in its high-S form:
 * it would recover the same sender, and EIP-2 forbids it. */
static void make_high_s(size_t v_idx, const char *flip_v_hex, uint8_t *out, size_t *out_len)
{
	struct l1_rlp_item s_it;
	uint8_t s[32] = { 0 }, hs[32], s_enc[40], v_enc[8];
	unsigned borrow = 0;

	field(raw, raw_len, v_idx + 2, &s_it);
	memcpy(s + 32 - s_it.payload_len, s_it.payload, s_it.payload_len);
	for (int i = 31; i >= 0; i--) {
		unsigned d = (unsigned)secp_n[i] - s[i] - borrow;
		hs[i] = (uint8_t)d;
		borrow = d >> 8 & 1;
	}
	struct l1t_rep reps[2] = {
		{ v_idx, v_enc, l1t_unhex(v_enc, sizeof(v_enc), flip_v_hex) },
		{ v_idx + 2, s_enc, enc_u256(s_enc, hs) },
	};
	*out_len = l1t_tx_rebuild(out, raw, raw_len, reps, 2);
}

Test(tx, high_s_rejected)
{
	static uint8_t mod[8300];
	struct l1_rlp_item v;
	struct l1_tx tx;
	size_t n;
	char vhex[16];

	mktx(MKTX_1559);
	field(raw, raw_len, 9, &v);
	make_high_s(9, v.payload_len == 0 ? "0x01" : "0x80", mod, &n);
	cr_assert_eq(l1_tx_decode(&tx, mod, n, CHAIN, MAXLEN), L1_ESIG_HIGHS);

	mktx(MKTX_LEGACY);
	field(raw, raw_len, 6, &v);
	cr_assert_eq(v.payload_len, 2); /* 31337 * 2 + 35 + {0,1} */
	unsigned vv = (unsigned)v.payload[0] << 8 | v.payload[1];
	vv = (vv - 35) % 2 == 0 ? vv + 1 : vv - 1; /* same chain, other parity */
	snprintf(vhex, sizeof(vhex), "0x82%04x", vv);
	make_high_s(6, vhex, mod, &n);
	cr_assert_eq(l1_tx_decode(&tx, mod, n, CHAIN, MAXLEN), L1_ESIG_HIGHS);
}

Test(tx, bad_signature_values)
{
	struct l1_tx tx;

	mktx(MKTX_1559);
	cr_assert_eq(decode_with(9, "0x02", &tx), L1_ESIG);		  /* yParity 2 */
	cr_assert_eq(decode_with(9, "0x1b", &tx), L1_ESIG);		  /* legacy v */
	cr_assert_eq(decode_with(9, "0x00", &tx), L1_ETX_INT);	  /* 0 as 0x00 */
	cr_assert_eq(decode_with(10, "0x80", &tx), L1_ESIG);	  /* r = 0 */
	cr_assert_eq(decode_with(11, "0x80", &tx), L1_ESIG);	  /* s = 0 */
	cr_assert_eq(decode_with(10, "0xa0fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141",
				 &tx), L1_ESIG);		  /* r = n */
	cr_assert_eq(decode_with(11, "0xa0fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141",
				 &tx), L1_ESIG);		  /* s = n */
	cr_assert_eq(decode_with(11, "0xa07fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a1",
				 &tx), L1_ESIG_HIGHS);	  /* s = n/2 + 1 */
	cr_assert_eq(decode_with(10, "0xa1010000000000000000000000000000000000000000000000000000000000000000",
				 &tx), L1_ETX_INT);		  /* r > 256 bits */

	mktx(MKTX_LEGACY);
	cr_assert_eq(decode_with(6, "0x1d", &tx), L1_ESIG);	  /* v = 29 */
	cr_assert_eq(decode_with(6, "0x23", &tx), L1_ESIG);	  /* chain id 0 */
	cr_assert_eq(decode_with(6, "0x24", &tx), L1_ESIG);
	cr_assert_eq(decode_with(6, "0x80", &tx), L1_ESIG);
}

Test(tx, noncanonical_integers)
{
	struct l1_tx tx;

	mktx(MKTX_1559);
	cr_assert_eq(decode_with(1, "0x00", &tx), L1_ETX_INT);	    /* nonce 0 as 0x00 */
	cr_assert_eq(decode_with(4, "0x83005208", &tx), L1_ETX_INT);  /* gas, leading 0 */
	cr_assert_eq(decode_with(6, "0x8101", &tx), L1_ERLP_NONCANON); /* value 1 wrapped */
	cr_assert_eq(decode_with(0, "0x89010000000000000000", &tx), L1_ETX_INT); /* chain id */
	cr_assert_eq(decode_with(4, "0xc0", &tx), L1_ETX_FIELDS);	    /* list as int */
}

Test(tx, field_shapes)
{
	static uint8_t mod[8300];
	struct l1_rlp_item s_it;
	uint8_t extra[40];
	struct l1_tx tx;
	size_t n;

	mktx(MKTX_1559);
	cr_assert_eq(decode_with(5, "0x9370997970c51812dc3a010c7d01b50e0d17dc79", &tx),
		     L1_ETX_FIELDS); /* 19-byte to */
	cr_assert_eq(decode_with(5, "0xc0", &tx), L1_ETX_FIELDS); /* to as list */
	cr_assert_eq(decode_with(7, "0xc0", &tx), L1_ETX_FIELDS); /* data as list */
	cr_assert_eq(decode_with(8, "0x80", &tx), L1_ETX_FIELDS); /* access list as string */
	/* Access-list entries: a bare string; a 19-byte address; a 31-byte key;
	 * three elements; keys given as a string; a malformed key. */
	cr_assert_eq(decode_with(8, "0xc180", &tx), L1_ETX_FIELDS);
	cr_assert_eq(decode_with(8, "0xd6d59370997970c51812dc3a010c7d01b50e0d17dc79c0", &tx),
		     L1_ETX_FIELDS);
	cr_assert_eq(decode_with(8, "0xf7f69470997970c51812dc3a010c7d01b50e0d17dc79c8e09f"
				 "00000000000000000000000000000000000000000000000000000000000001",
				 &tx), L1_ETX_FIELDS);
	cr_assert_eq(decode_with(8, "0xd8d79470997970c51812dc3a010c7d01b50e0d17dc79c8c080", &tx),
		     L1_ETX_FIELDS);
	cr_assert_eq(decode_with(8, "0xd7d69470997970c51812dc3a010c7d01b50e0d17dc79c880", &tx),
		     L1_ETX_FIELDS);
	cr_assert_eq(decode_with(8, "0xd9d89470997970c51812dc3a010c7d01b50e0d17dc79c8c28100", &tx),
		     L1_ERLP_NONCANON);

	/* Eleven fields (s dropped), under both typed envelopes. */
	struct l1t_rep drop = { 11, extra, 0 };
	n = l1t_tx_rebuild(mod, raw, raw_len, &drop, 1);
	cr_assert_eq(l1_tx_decode(&tx, mod, n, CHAIN, MAXLEN), L1_ETX_FIELDS);
	mod[0] = 0x01;
	cr_assert_eq(l1_tx_decode(&tx, mod, n, CHAIN, MAXLEN), L1_ETX_FIELDS);
	/* Thirteen fields. */
	field(raw, raw_len, 11, &s_it);
	memcpy(extra, s_it.payload + s_it.payload_len - s_it.encoded_len, s_it.encoded_len);
	extra[s_it.encoded_len] = 0x80;
	struct l1t_rep more = { 11, extra, s_it.encoded_len + 1 };
	n = l1t_tx_rebuild(mod, raw, raw_len, &more, 1);
	cr_assert_eq(l1_tx_decode(&tx, mod, n, CHAIN, MAXLEN), L1_ETX_FIELDS);

	/* Types we do not take, and a body that is an RLP string. */
	memcpy(mod, raw, raw_len);
	mod[0] = 0x03;
	cr_assert_eq(l1_tx_decode(&tx, mod, raw_len, CHAIN, MAXLEN), L1_ETX_TYPE);
	mod[0] = 0x7f;
	cr_assert_eq(l1_tx_decode(&tx, mod, raw_len, CHAIN, MAXLEN), L1_ETX_TYPE);
	mod[0] = 0x00;
	cr_assert_eq(l1_tx_decode(&tx, mod, raw_len, CHAIN, MAXLEN), L1_ETX_TYPE);
	mod[0] = 0x80;
	cr_assert_eq(l1_tx_decode(&tx, mod, raw_len, CHAIN, MAXLEN), L1_ETX_TYPE);
	/* A typed envelope around a string rather than a list. */
	cr_assert_eq(l1_tx_decode(&tx, (const uint8_t *)"\x02\x81\x80", 3, CHAIN, MAXLEN),
		     L1_ETX_FIELDS);
}

/* Any field changed after signing gives another sender (or no valid
 * signature): the signing hash covers exactly the signed fields. */
Test(tx, tampering_changes_sender)
{
	struct l1_tx tx;
	uint8_t want[20];

	l1t_unhex(want, sizeof(want), FROM);
	mktx(MKTX_1559);
	cr_assert_eq(decode_with(6, "0x02", &tx), 0); /* value 2 */
	cr_assert(memcmp(tx.from, want, 20) != 0);
	for (size_t i = 0; i < raw_len; i++) {
		for (int bit = 0; bit < 8; bit++) {
			raw[i] ^= (uint8_t)(1u << bit);
			int rc = l1_tx_decode(&tx, raw, raw_len, 0, MAXLEN);
			cr_assert(rc < 0 || memcmp(tx.from, want, 20) != 0,
				  "byte %zu bit %d still recovers the sender", i, bit);
			raw[i] ^= (uint8_t)(1u << bit);
		}
	}
	mktx(MKTX_LEGACY);
	cr_assert_eq(decode_with(2, "0x825209", &tx), 0); /* gas limit 21001 */
	cr_assert(memcmp(tx.from, want, 20) != 0);
}
