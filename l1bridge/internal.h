/* internal.h - shared by l1bridge's files only (l1__ prefix). */
#ifndef MEZZ_L1_INTERNAL_H
#define MEZZ_L1_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <secp256k1.h>

/* The process-wide secp256k1 context: created and randomized once, never
 * freed, immutable afterwards (safe to share between threads). NULL only if
 * creation failed. */
const secp256k1_context *l1__secp(void);

/* r and s in [1, n), and s <= n/2 (EIP-2 low-S): L1_ESIG, L1_ESIG_HIGHS. */
int l1__secp_check_rs(const uint8_t r[static 32], const uint8_t s[static 32]);
/* The address that signed msg with (r, s, recid in {0, 1}); L1_ESIG if no
 * key did. Does not check low-S (callers run l1__secp_check_rs first). */
int l1__secp_recover(uint8_t addr[static 20], const uint8_t msg[static 32],
		     const uint8_t r[static 32], const uint8_t s[static 32], int recid);
/* Signs msg: rs = r || s (RFC 6979 nonce, low-S), *recid in {0, 1}.
 * L1_EKEY for an invalid key. */
int l1__secp_sign(uint8_t rs[static 64], int *recid, const uint8_t msg[static 32],
		  const uint8_t key[static 32]);

#ifdef MEZZ_FUZZ
/* tests/fuzz/fuzz_l1_rpc.c: when set, the body answering request id (len
 * bytes; NULL for a transport failure), in place of the node over HTTP. */
extern const char *(*l1__rpc_fuzz_answer)(uint64_t id, size_t *len);
#endif

/* snprintf into a caller's optional error buffer. */
void l1__errf(char *err, size_t cap, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
