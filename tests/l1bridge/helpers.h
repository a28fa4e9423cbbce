/* helpers.h - test helpers for the l1bridge suite (helpers.c). */
#ifndef MEZZ_TEST_L1_HELPERS_H
#define MEZZ_TEST_L1_HELPERS_H

#include <stddef.h>
#include <stdint.h>

/* Replace RLP field idx of a transaction with enc (len bytes, encoded). */
struct l1t_rep {
	size_t idx;
	const uint8_t *enc;
	size_t len;
};
/* Run `cast` with the formatted arguments; its trimmed stdout into out. */
void l1t_cast(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
size_t l1t_unhex(uint8_t *out, size_t cap, const char *hex);
size_t l1t_rlp_str(uint8_t *out, const uint8_t *p, size_t n);
size_t l1t_rlp_wrap(uint8_t *out, uint8_t base, const uint8_t *payload, size_t n);
size_t l1t_tx_rebuild(uint8_t *out, const uint8_t *raw, size_t len, const struct l1t_rep *reps,
		      size_t nreps);

/* A fresh /tmp/<prefix>-XXXXXX name that no file has (yet). */
void l1t_temp_path(char *out, size_t cap, const char *prefix);
/* Remove an SQLite database file and its -wal and -shm. */
void l1t_unlink_db(const char *path);

/* Deterministic xorshift64* so a failing random case can be replayed; each
 * test seeds its own state. */
static inline uint64_t l1t_rand(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * UINT64_C(2685821657736338717);
}
static inline void l1t_rand_bytes(uint64_t *s, uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(l1t_rand(s) >> 56);
}

#endif
