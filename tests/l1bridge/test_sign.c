/*
 * test_sign.c - EIP-1559 signing, byte-for-byte against `cast mktx` on random
 * keys and field sets (postBatch / postStateRoot calls, plain transfers and
 * contract creation), and key -> address against `cast wallet address`.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "l1bridge/l1.h"

#include "tests/l1bridge/helpers.h"

static char *hexs(char *out, const uint8_t *p, size_t n)
{
	l1_hex_encode(out, p, n);
	return out;
}

static void rand_key(uint64_t *s, uint8_t key[32])
{
	uint8_t a[20];

	do
		l1t_rand_bytes(s, key, 32);
	while (l1_key_address(key, a) != 0);
}

Test(sign, address_matches_cast)
{
	uint64_t s = 0x1111;
	uint8_t key[32], addr[20];
	char kh[67], want[128], got[43];

	for (int i = 0; i < 10; i++) {
		rand_key(&s, key);
		cr_assert_eq(l1_key_address(key, addr), 0);
		l1t_cast(want, sizeof(want), "wallet address --private-key %s", hexs(kh, key, 32));
		for (char *p = want; *p; p++)
			*p = (char)(*p >= 'A' && *p <= 'F' ? *p + 32 : *p);
		cr_assert_str_eq(hexs(got, addr, 20), want);
	}
	memset(key, 0, 32);
	cr_assert_eq(l1_key_address(key, addr), L1_EKEY);
	memset(key, 0xff, 32);
	cr_assert_eq(l1_key_address(key, addr), L1_EKEY);
}

/* Signs tx with key and compares with cast mktx given `call` (the target
 * and signature/arguments part of the command line). */
static void check_against_cast(const struct l1_tx1559 *tx, const uint8_t key[32],
			       const char *call, uint64_t tip, uint64_t maxfee, uint64_t value)
{
	static uint8_t raw[16384];
	static char want[40000], got[40000];
	struct l1_tx dec;
	uint8_t hash[32], addr[20];
	char kh[67];
	size_t len;

	cr_assert_eq(l1_tx1559_sign(tx, key, raw, sizeof(raw), &len, hash), 0);
	l1t_cast(want, sizeof(want),
		 "mktx --private-key %s --chain %" PRIu64 " --nonce %" PRIu64
		 " --gas-limit %" PRIu64 " --priority-gas-price %" PRIu64
		 " --gas-price %" PRIu64 " --value %" PRIu64 " %s",
		 hexs(kh, key, 32), tx->chain_id, tx->nonce, tx->gas_limit, tip, maxfee, value,
		 call);
	cr_assert_str_eq(hexs(got, raw, len), want, "cast mktx %s", call);
	/* and it round-trips through our strict decoder to the same sender */
	cr_assert_eq(l1_tx_decode(&dec, raw, len, tx->chain_id, sizeof(raw)), 0);
	cr_assert_eq(l1_key_address(key, addr), 0);
	cr_assert_eq(memcmp(dec.from, addr, 20), 0);
	cr_assert_eq(memcmp(dec.hash, hash, 32), 0);
	cr_assert_eq(dec.nonce, tx->nonce);
	cr_assert_eq(dec.data_len, tx->data_len);
}

static void rand_fees(uint64_t *s, struct l1_tx1559 *tx, uint64_t *tip, uint64_t *maxfee,
		      uint64_t *value)
{
	tx->chain_id = 1 + (l1t_rand(s) >> (l1t_rand(s) % 64 | 1));
	tx->nonce = l1t_rand(s) >> (l1t_rand(s) % 64);
	tx->gas_limit = 21000 + (l1t_rand(s) >> 40);
	*maxfee = l1t_rand(s) >> (l1t_rand(s) % 64 | 1);
	*tip = *maxfee == 0 ? 0 : l1t_rand(s) % (*maxfee + 1);
	*value = l1t_rand(s) % 3 == 0 ? 0 : l1t_rand(s) >> (l1t_rand(s) % 64 | 1);
	l1_u256_from_u64(tx->max_fee, *maxfee);
	l1_u256_from_u64(tx->max_priority_fee, *tip);
	l1_u256_from_u64(tx->value, *value);
}

Test(sign, post_batch_matches_cast_mktx)
{
	static uint8_t calldata[4096], roots[16][32];
	static char call[8192], ids_s[512], roots_s[1200];
	uint64_t s = 0x2222, ids[16], tip, maxfee, value;
	uint8_t key[32];
	char to[43], da[67], h[67];

	for (int round = 0; round < 20; round++) {
		struct l1_inbox_batch b = { 0 };
		struct l1_tx1559 tx = { 0 };
		size_t at = 0, n = l1t_rand(&s) % 16;

		rand_key(&s, key);
		rand_fees(&s, &tx, &tip, &maxfee, &value);
		tx.has_to = 1;
		l1t_rand_bytes(&s, tx.to, 20);
		b.index = l1t_rand(&s) % 100000;
		b.from_height = l1t_rand(&s) >> 8;
		b.to_height = b.from_height + l1t_rand(&s) % 1000;
		l1t_rand_bytes(&s, b.da_root, 32);
		for (size_t i = 0; i < n; i++)
			ids[i] = (i ? ids[i - 1] : 0) + 1 + l1t_rand(&s) % 1000;
		l1t_rand_bytes(&s, &roots[0][0], 32 * n);
		b.n_namespaces = n;
		b.namespace_ids = ids;
		b.namespace_roots = (const uint8_t(*)[32])roots;
		cr_assert_eq(l1_inbox_post_batch_calldata(calldata, sizeof(calldata), &tx.data_len,
							  &b), 0);
		tx.data = calldata;

		at = (size_t)snprintf(ids_s, sizeof(ids_s), "[");
		for (size_t i = 0; i < n; i++)
			at += (size_t)snprintf(ids_s + at, sizeof(ids_s) - at, "%s%" PRIu64,
					       i ? "," : "", ids[i]);
		snprintf(ids_s + at, sizeof(ids_s) - at, "]");
		at = (size_t)snprintf(roots_s, sizeof(roots_s), "[");
		for (size_t i = 0; i < n; i++)
			at += (size_t)snprintf(roots_s + at, sizeof(roots_s) - at, "%s%s",
					       i ? "," : "", hexs(h, roots[i], 32));
		snprintf(roots_s + at, sizeof(roots_s) - at, "]");
		snprintf(call, sizeof(call),
			 "%s 'postBatch(uint64,uint64,uint64,bytes32,uint64[],bytes32[])' "
			 "%" PRIu64 " %" PRIu64 " %" PRIu64 " %s '%s' '%s'",
			 hexs(to, tx.to, 20), b.index, b.from_height, b.to_height,
			 hexs(da, b.da_root, 32), ids_s, roots_s);
		check_against_cast(&tx, key, call, tip, maxfee, value);
	}
}

Test(sign, post_state_root_transfer_and_create_match_cast_mktx)
{
	static uint8_t calldata[1024], loc[100];
	static char call[4096], loc_s[256];
	uint64_t s = 0x3333, tip, maxfee, value;
	uint8_t key[32];
	char to[43], sr[67];

	for (int round = 0; round < 20; round++) {
		struct l1_inbox_state_root st = { 0 };
		struct l1_tx1559 tx = { 0 };

		rand_key(&s, key);
		rand_fees(&s, &tx, &tip, &maxfee, &value);
		tx.has_to = 1;
		l1t_rand_bytes(&s, tx.to, 20);
		switch (round % 3) {
		case 0:
			st.rollup_id = l1t_rand(&s) % 1000;
			st.l2_block = l1t_rand(&s) >> 4;
			l1t_rand_bytes(&s, st.state_root, 32);
			st.proof_kind = (uint8_t)l1t_rand(&s);
			st.proof_locator_len = l1t_rand(&s) % sizeof(loc);
			l1t_rand_bytes(&s, loc, st.proof_locator_len);
			st.proof_locator = loc;
			cr_assert_eq(l1_inbox_post_state_root_calldata(calldata, sizeof(calldata),
								       &tx.data_len, &st), 0);
			tx.data = calldata;
			snprintf(call, sizeof(call),
				 "%s 'postStateRoot(uint64,uint64,bytes32,uint8,bytes)' %" PRIu64
				 " %" PRIu64 " %s %u %s",
				 hexs(to, tx.to, 20), st.rollup_id, st.l2_block,
				 hexs(sr, st.state_root, 32), st.proof_kind,
				 hexs(loc_s, loc, st.proof_locator_len));
			break;
		case 1: /* a plain transfer */
			snprintf(call, sizeof(call), "%s", hexs(to, tx.to, 20));
			break;
		default: /* contract creation: `--create <code>` */
			tx.has_to = 0;
			tx.data_len = 1 + l1t_rand(&s) % 60;
			l1t_rand_bytes(&s, calldata, tx.data_len);
			tx.data = calldata;
			snprintf(call, sizeof(call), "--create %s",
				 hexs(loc_s, calldata, tx.data_len));
			break;
		}
		check_against_cast(&tx, key, call, tip, maxfee, value);
	}
}

Test(sign, bad_arguments)
{
	struct l1_tx1559 tx = { .chain_id = 1, .gas_limit = 21000, .has_to = 1 };
	uint8_t key[32] = { 0 }, raw[256], hash[32];
	size_t len = 99;

	cr_assert_eq(l1_tx1559_sign(&tx, key, raw, sizeof(raw), &len, hash), L1_EKEY);
	cr_assert_eq(len, 0);
	key[31] = 1;
	cr_assert_eq(l1_tx1559_sign(&tx, key, raw, 20, &len, hash), L1_ENOSPC);
	cr_assert_eq(l1_tx1559_sign(&tx, key, raw, sizeof(raw), &len, hash), 0);
	cr_assert_leq(len, L1_TX1559_MAX_RAW(0));
}
