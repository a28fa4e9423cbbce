/*
 * keccak.c - Keccak-256 as Ethereum uses it: the original Keccak submission
 * padding (0x01 ... 0x80), not FIPS 202 SHA3's 0x06, over nettle's
 * Keccak-f[1600] permutation. Rate is 136 bytes (1088 bits), capacity 512.
 *
 * The state is absorbed and squeezed as little-endian 64-bit lanes (le64toh
 * and htole64 on each lane), so the code does not depend on the host's byte
 * order; nettle permutes the lanes in place.
 */
#include <assert.h>
#include <endian.h>
#include <string.h>

#include "l1bridge/l1.h"

#define L1_KECCAK_RATE 136

_Static_assert(sizeof(((struct l1_keccak *)0)->block) == L1_KECCAK_RATE,
	       "l1_keccak block must hold one rate-sized block");

static void keccak_absorb(struct l1_keccak *k, const uint8_t *block)
{
	for (size_t i = 0; i < L1_KECCAK_RATE / 8; i++) {
		uint64_t lane;

		memcpy(&lane, block + 8 * i, 8);
		k->st.a[i] ^= le64toh(lane);
	}
	nettle_sha3_permute(&k->st);
}

void l1_keccak_init(struct l1_keccak *k)
{
	memset(k, 0, sizeof(*k));
}

void l1_keccak_update(struct l1_keccak *k, const void *data, size_t len)
{
	const uint8_t *p = data;

	assert(k->used < L1_KECCAK_RATE);
	if (len == 0)
		return;
	if (k->used > 0) {
		size_t take = L1_KECCAK_RATE - k->used;
		if (take > len)
			take = len;
		memcpy(k->block + k->used, p, take);
		k->used += take;
		p += take;
		len -= take;
		if (k->used < L1_KECCAK_RATE)
			return;
		keccak_absorb(k, k->block);
		k->used = 0;
	}
	while (len >= L1_KECCAK_RATE) {
		keccak_absorb(k, p);
		p += L1_KECCAK_RATE;
		len -= L1_KECCAK_RATE;
	}
	if (len > 0) {
		memcpy(k->block, p, len);
		k->used = len;
	}
}

/* Leaves k in an unspecified state; call l1_keccak_init to reuse it. */
void l1_keccak_final(struct l1_keccak *k, uint8_t out[static 32])
{
	assert(k->used < L1_KECCAK_RATE);
	memset(k->block + k->used, 0, L1_KECCAK_RATE - k->used);
	k->block[k->used] ^= 0x01;
	k->block[L1_KECCAK_RATE - 1] ^= 0x80;
	keccak_absorb(k, k->block);
	for (size_t i = 0; i < 4; i++) {
		uint64_t lane = htole64(k->st.a[i]);

		memcpy(out + 8 * i, &lane, 8);
	}
	k->used = 0;
}

void l1_keccak256(uint8_t out[static 32], const void *data, size_t len)
{
	struct l1_keccak k;

	l1_keccak_init(&k);
	l1_keccak_update(&k, data, len);
	l1_keccak_final(&k, out);
}
