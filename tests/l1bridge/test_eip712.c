/*
 * test_eip712.c - EIP-712 purchase digests and 65-byte signatures, against
 * foundry's `cast wallet sign --data` (eth_signTypedData_v4): signing is
 * deterministic (RFC 6979), so equal signature bytes mean equal digests.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "l1bridge/l1.h"

#include "tests/l1bridge/helpers.h"

static void rand_key(uint64_t *s, uint8_t key[32])
{
	uint8_t a[20];

	do
		l1t_rand_bytes(s, key, 32);
	while (l1_key_address(key, a) != 0);
}

/* The typed-data JSON a wallet is given for p. */
static void typed_json(char *out, size_t cap, const struct l1_purchase *p, uint64_t chain_id,
		       const uint8_t inbox[20])
{
	char addr[43];
	size_t n;

	l1_hex_encode(addr, inbox, 20);
	n = (size_t)snprintf(
		out, cap,
		"{\"types\":{\"EIP712Domain\":[{\"name\":\"name\",\"type\":\"string\"},"
		"{\"name\":\"version\",\"type\":\"string\"},{\"name\":\"chainId\",\"type\":\"uint256\"},"
		"{\"name\":\"verifyingContract\",\"type\":\"address\"}],"
		"\"Purchase\":[{\"name\":\"saleId\",\"type\":\"uint64\"},"
		"{\"name\":\"rollups\",\"type\":\"uint64[]\"},{\"name\":\"tickets\",\"type\":\"uint64\"},"
		"{\"name\":\"priceGwei\",\"type\":\"uint64\"},{\"name\":\"nonce\",\"type\":\"uint64\"}]},"
		"\"primaryType\":\"Purchase\",\"domain\":{\"name\":\"mezzanine\",\"version\":\"1\","
		"\"chainId\":%" PRIu64 ",\"verifyingContract\":\"%s\"},\"message\":{\"saleId\":%" PRIu64
		",\"rollups\":[",
		chain_id, addr, p->sale_id);
	for (size_t i = 0; i < p->n_rollups; i++)
		n += (size_t)snprintf(out + n, cap - n, "%s%" PRIu64, i ? "," : "", p->rollups[i]);
	n += (size_t)snprintf(out + n, cap - n,
			      "],\"tickets\":%" PRIu64 ",\"priceGwei\":%" PRIu64 ",\"nonce\":%" PRIu64
			      "}}",
			      p->tickets, p->price_gwei, p->nonce);
	cr_assert(n < cap);
}

Test(eip712, signature_matches_cast_wallet_sign)
{
	uint64_t s = 0x712712, ids[12];
	uint8_t key[32], inbox[20], addr[20], got_addr[20], digest[32], sig[65];
	char json[8192], kh[67], want[200], got[140];

	for (int i = 0; i < 12; i++) {
		struct l1_purchase p = { 0 };
		uint64_t chain_id = i == 0 ? 1 : 1 + l1t_rand(&s) % 100000000;

		rand_key(&s, key);
		l1t_rand_bytes(&s, inbox, 20);
		p.n_rollups = (size_t)(i % 6); /* includes the empty bundle */
		for (size_t j = 0; j < p.n_rollups; j++)
			ids[j] = (j ? ids[j - 1] : 0) + 1 + l1t_rand(&s) % 1000000;
		if (i == 5)
			ids[p.n_rollups - 1] = UINT64_MAX; /* full-width ids */
		p.rollups = ids;
		p.sale_id = l1t_rand(&s) >> (i % 64);
		p.tickets = 1 + l1t_rand(&s) % 1000;
		p.price_gwei = l1t_rand(&s) >> 26;
		p.nonce = i == 3 ? UINT64_MAX : l1t_rand(&s) >> 1;

		cr_assert_eq(l1_eip712_purchase_digest(digest, &p, chain_id, inbox), 0);
		cr_assert_eq(l1_sign_digest(sig, digest, key), 0);
		typed_json(json, sizeof(json), &p, chain_id, inbox);
		l1_hex_encode(kh, key, 32);
		l1t_cast(want, sizeof(want), "wallet sign --data --private-key %s '%s'", kh, json);
		l1_hex_encode(got, sig, 65);
		cr_assert_str_eq(got, want, "case %d: %s", i, json);

		cr_assert_eq(l1_key_address(key, addr), 0);
		cr_assert_eq(l1_recover_address(got_addr, digest, sig), 0);
		cr_assert_eq(memcmp(got_addr, addr, 20), 0);
		/* v as 0/1 works too */
		sig[64] -= 27;
		cr_assert_eq(l1_recover_address(got_addr, digest, sig), 0);
		cr_assert_eq(memcmp(got_addr, addr, 20), 0);
	}
}

Test(eip712, digest_covers_every_field)
{
	uint64_t ids[2] = { 3, 9 }, ids2[2] = { 3, 10 };
	struct l1_purchase p = { 1, ids, 2, 4, 5, 6 }, q;
	uint8_t inbox[20] = { 1 }, inbox2[20] = { 2 }, d0[32], d[32];

	cr_assert_eq(l1_eip712_purchase_digest(d0, &p, 1, inbox), 0);
	cr_assert_eq(l1_eip712_purchase_digest(d, &p, 2, inbox), 0);
	cr_assert_neq(memcmp(d, d0, 32), 0);
	cr_assert_eq(l1_eip712_purchase_digest(d, &p, 1, inbox2), 0);
	cr_assert_neq(memcmp(d, d0, 32), 0);
	for (int f = 0; f < 6; f++) {
		q = p;
		switch (f) {
		case 0: q.sale_id++; break;
		case 1: q.rollups = ids2; break;
		case 2: q.n_rollups = 1; break;
		case 3: q.tickets++; break;
		case 4: q.price_gwei++; break;
		case 5: q.nonce++; break;
		}
		cr_assert_eq(l1_eip712_purchase_digest(d, &q, 1, inbox), 0);
		cr_assert_neq(memcmp(d, d0, 32), 0, "field %d not covered", f);
	}
	q = p;
	q.rollups = NULL;
	cr_assert_eq(l1_eip712_purchase_digest(d, &q, 1, inbox), L1_EINVAL);
	q.n_rollups = L1_PURCHASE_MAX_ROLLUPS + 1;
	q.rollups = ids;
	cr_assert_eq(l1_eip712_purchase_digest(d, &q, 1, inbox), L1_EINVAL);
	cr_assert_eq(l1_eip712_purchase_digest(d, NULL, 1, inbox), L1_EINVAL);
}

/* n - s for the secp256k1 order n (big-endian 32 bytes). */
static void negate_s(uint8_t s[32])
{
	static const uint8_t n[32] = {
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xfe, 0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48,
		0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41,
	};
	int borrow = 0;

	for (int i = 31; i >= 0; i--) {
		int d = n[i] - s[i] - borrow;
		borrow = d < 0;
		s[i] = (uint8_t)(d + (borrow ? 256 : 0));
	}
}

Test(eip712, recover_rejects_malleable_and_bad_signatures)
{
	uint64_t s = 0xbad;
	uint8_t key[32], digest[32], sig[65], bad[65], addr[20], want[20];

	rand_key(&s, key);
	l1t_rand_bytes(&s, digest, 32);
	cr_assert_eq(l1_key_address(key, want), 0);
	cr_assert_eq(l1_sign_digest(sig, digest, key), 0);
	cr_assert(sig[64] == 27 || sig[64] == 28);
	cr_assert_lt(sig[32], 0x80, "l1_sign_digest must give low s");

	/* the malleated twin (n - s, flipped v) is a valid ECDSA signature of
	 * the same key but must be refused */
	memcpy(bad, sig, 65);
	negate_s(bad + 32);
	bad[64] = (uint8_t)(bad[64] == 27 ? 28 : 27);
	cr_assert_eq(l1_recover_address(addr, digest, bad), L1_ESIG_HIGHS);

	for (unsigned v = 0; v < 256; v++) {
		memcpy(bad, sig, 65);
		bad[64] = (uint8_t)v;
		int rc = l1_recover_address(addr, digest, bad);
		if (v == 0 || v == 1 || v == 27 || v == 28)
			cr_assert_eq(rc, 0);
		else
			cr_assert_eq(rc, L1_ESIG, "v = %u", v);
	}
	/* the wrong v gives another address (or none), never the signer */
	memcpy(bad, sig, 65);
	bad[64] = (uint8_t)(sig[64] == 27 ? 28 : 27);
	if (l1_recover_address(addr, digest, bad) == 0)
		cr_assert_neq(memcmp(addr, want, 20), 0);
	memcpy(bad, sig, 65);
	memset(bad, 0, 32);
	cr_assert_eq(l1_recover_address(addr, digest, bad), L1_ESIG);
	memcpy(bad, sig, 65);
	memset(bad + 32, 0, 32);
	cr_assert_eq(l1_recover_address(addr, digest, bad), L1_ESIG);
	memcpy(bad, sig, 65);
	memset(bad, 0xff, 32);
	cr_assert_eq(l1_recover_address(addr, digest, bad), L1_ESIG);

	memset(key, 0, 32);
	cr_assert_eq(l1_sign_digest(sig, digest, key), L1_EKEY);
}
