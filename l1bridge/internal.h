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

/* snprintf into a caller's optional error buffer. */
void l1__errf(char *err, size_t cap, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
