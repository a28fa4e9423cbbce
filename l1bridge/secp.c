/*
 * secp.c - the one secp256k1 context of the process, shared by recovery
 * (tx.c) and signing (sign.c). Randomized at creation (blinding against
 * side channels while signing); signing and verification with a const
 * context are thread-safe.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/random.h>

#include <sodium.h>

#include "l1bridge/internal.h"

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
