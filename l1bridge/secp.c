/*
 * secp.c - the one secp256k1 context of the process, shared by recovery
 * (tx.c) and signing (sign.c). Randomized at creation (blinding against
 * side channels while signing); signing and verification with a const
 * context are thread-safe. Also the signature primitives every signer and
 * verifier in l1bridge shares (transactions, EIP-712 purchases).
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include <secp256k1_recovery.h>
#include <sodium.h>

#include "l1bridge/internal.h"
#include "l1bridge/l1.h"

static pthread_once_t secp_once = PTHREAD_ONCE_INIT;
static secp256k1_context *secp_ctx;

static void secp_init(void)
{
	uint8_t seed[32];
	secp256k1_context *ctx = secp256k1_context_create(SECP256K1_CONTEXT_NONE);

	if (ctx == NULL)
		return;
	/* Without a seed (or if randomizing fails) the context still signs
	 * correctly, only unblinded. */
	if (getrandom(seed, sizeof(seed), 0) == (ssize_t)sizeof(seed) &&
	    !secp256k1_context_randomize(ctx, seed)) {
		/* defensive: randomize fails only on a bad context */
	}
	sodium_memzero(seed, sizeof(seed));
	secp_ctx = ctx;
}

const secp256k1_context *l1__secp(void)
{
	if (pthread_once(&secp_once, secp_init) != 0)
		return NULL;
	return secp_ctx;
}

void l1__errf(char *err, size_t cap, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || cap == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, cap, fmt, ap);
	va_end(ap);
}

/* The secp256k1 group order n and n/2 (rounded down), big-endian. */
static const uint8_t secp256k1_n[32] = {
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xfe, 0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48,
	0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41,
};
static const uint8_t secp256k1_half_n[32] = {
	0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0x5d, 0x57, 0x6e, 0x73, 0x57, 0xa4,
	0x50, 0x1d, 0xdf, 0xe9, 0x2f, 0x46, 0x68, 0x1b, 0x20, 0xa0,
};

static int is_zero32(const uint8_t x[static 32])
{
	uint8_t acc = 0;

	for (size_t i = 0; i < 32; i++)
		acc |= x[i];
	return acc == 0;
}

int l1__secp_check_rs(const uint8_t r[static 32], const uint8_t s[static 32])
{
	if (is_zero32(r) || memcmp(r, secp256k1_n, 32) >= 0)
		return L1_ESIG;
	if (is_zero32(s) || memcmp(s, secp256k1_n, 32) >= 0)
		return L1_ESIG;
	if (memcmp(s, secp256k1_half_n, 32) > 0)
		return L1_ESIG_HIGHS;
	return 0;
}

int l1__secp_recover(uint8_t addr[static 20], const uint8_t msg[static 32],
		     const uint8_t r[static 32], const uint8_t s[static 32], int recid)
{
	const secp256k1_context *ctx = l1__secp();
	secp256k1_ecdsa_recoverable_signature sig;
	secp256k1_pubkey pub;
	uint8_t rs[64], pub65[65], h[32];
	size_t publen = sizeof(pub65);

	if (ctx == NULL)
		return L1_ESIG; /* defensive: context creation cannot fail */
	memcpy(rs, r, 32);
	memcpy(rs + 32, s, 32);
	if (!secp256k1_ecdsa_recoverable_signature_parse_compact(ctx, &sig, rs, recid))
		return L1_ESIG;
	if (!secp256k1_ecdsa_recover(ctx, &pub, &sig, msg))
		return L1_ESIG;
	if (!secp256k1_ec_pubkey_serialize(ctx, pub65, &publen, &pub,
					   SECP256K1_EC_UNCOMPRESSED))
		return L1_ESIG;
	l1_keccak256(h, pub65 + 1, 64);
	memcpy(addr, h + 12, 20);
	return 0;
}

int l1__secp_sign(uint8_t rs[static 64], int *recid, const uint8_t msg[static 32],
		  const uint8_t key[static 32])
{
	const secp256k1_context *ctx = l1__secp();
	secp256k1_ecdsa_recoverable_signature sig;
	int rc = 0;

	if (ctx == NULL)
		return L1_ENOMEM;
	if (!secp256k1_ecdsa_sign_recoverable(ctx, &sig, msg, key, NULL, NULL))
		rc = L1_EKEY;
	else
		secp256k1_ecdsa_recoverable_signature_serialize_compact(ctx, rs, recid, &sig);
	sodium_memzero(&sig, sizeof(sig));
	return rc;
}
