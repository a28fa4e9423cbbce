/*
 * fuzz_txindex_snapshot.c - libFuzzer target for the hash filter's snapshot
 * (txindex.c, data_dir/txindex.filter): app_txindex_snapshot_check over a
 * file's header and bits.
 *
 *   byte 0:  bit 0 set: write the input's correct digest into its header
 *            first, so that inputs get past the digest to the checks of
 *            the fields (a digest the fuzzer guesses never matches)
 *   then:    the header (its first APP_XF_SNAPSHOT_HDR bytes; fewer when
 *            the input is shorter) and the filter's words (the rest)
 *
 * Oracle, computed here without txindex.c: an accepted file has the magic
 * and version, a power-of-two bit count from 512 to 2^29 whose bytes are
 * exactly the words given, an end of at least 2, the fields it returns as
 * written, and the digest of its bytes; a refused one says why. With bit 0
 * set, a header this oracle calls valid must be accepted.
 */
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/app.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond, what)                                                                          \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "fuzz_txindex_snapshot: %s\n", what);                      \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

static void digest(const uint8_t *hdr, const uint8_t *bits, size_t len, uint8_t out[32])
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, NULL, 0, 32);
	crypto_generichash_update(&st, hdr, 88);
	crypto_generichash_update(&st, bits, len);
	crypto_generichash_final(&st, out, 32);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int init;
	uint8_t hdr[APP_XF_SNAPSHOT_HDR] = {0}, d[32];
	const uint8_t *bits;
	size_t hlen, blen;
	struct app_xf_snapshot sn;
	const char *why = NULL;
	uint64_t nbits, end;
	uint32_t magic, version;
	int valid, rc;

	if (!init) {
		CHECK(sodium_init() >= 0, "sodium_init failed");
		init = 1;
	}
	if (size < 1)
		return 0;
	hlen = size - 1 < sizeof(hdr) ? size - 1 : sizeof(hdr);
	memcpy(hdr, data + 1, hlen);
	bits = data + 1 + hlen;
	blen = size - 1 - hlen;
	if ((data[0] & 1) && hlen == sizeof(hdr))
		digest(hdr, bits, blen, hdr + 88);

	memcpy(&magic, hdr, 4);
	memcpy(&version, hdr + 4, 4);
	memcpy(&nbits, hdr + 8, 8);
	memcpy(&end, hdr + 16, 8);
	digest(hdr, bits, blen, d);
	valid = hlen == sizeof(hdr) && magic == 0x46585a4du && version == 1 && nbits >= 512 &&
		nbits <= (1ull << 29) && !(nbits & (nbits - 1)) && blen == nbits / 8 && end >= 2 &&
		!memcmp(d, hdr + 88, 32);

	rc = app_txindex_snapshot_check(hdr, hlen, bits, blen, &sn, &why);
	if (rc == 0) {
		CHECK(valid, "a snapshot the oracle refuses was accepted");
		CHECK(sn.nbits == nbits && sn.end == end, "the fields returned are not the file's");
		CHECK(!memcmp(sn.first_hash, hdr + 24, 32) && !memcmp(sn.last_hash, hdr + 56, 32),
		      "the hashes returned are not the file's");
	} else {
		CHECK(rc == APP_EINVAL, "a refusal other than APP_EINVAL");
		CHECK(why && *why, "a refusal without a reason");
		CHECK(!valid, "a snapshot the oracle accepts was refused");
	}
	return 0;
}
