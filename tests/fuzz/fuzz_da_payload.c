/*
 * fuzz_da_payload.c - libFuzzer target for the payload parser and the
 * commitment record decoder.
 *
 * Input: byte 0 picks how much of the rest is zero padding (0..127 bytes,
 * capped), the rest is the padded payload. An accepted payload must rebuild
 * byte for byte with da_payload_build from what the parser returned (one
 * encoding per block), and the root check must run. The whole input is also
 * fed to the record decoder, whose accepted inputs re-encode to themselves.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "da/da.h"
#include "tests/fuzz/da_fixture.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void payload(const uint8_t *data, size_t size)
{
	struct da_payload p;
	size_t pad, plen, S, blen;
	uint8_t *buf;
	int rc;

	if (size < 1)
		return;
	pad = data[0] % 128;
	data++;
	size--;
	if (pad > size)
		pad = size;
	plen = size - pad;
	rc = da_payload_parse(&p, data, size, plen);
	if (rc != 0) {
		if (rc != DA_EDECODE && rc != DA_ENOMEM)
			abort();
		return;
	}
	if (p.payload_len != plen || p.hdr.tx_count * 12 > plen)
		abort();
	if (da_payload_build(&p.hdr, p.sig, p.ns, p.txs, 1, &buf, &blen, &S) != 0)
		abort();
	if (blen != plen || memcmp(buf, data, plen) != 0)
		abort();
	free(buf);
	rc = da_payload_check_roots(&p, fx_hash, NULL);
	if (rc != 0 && rc != DA_EMISMATCH)
		abort();
	da_payload_free(&p);
}

static void record(const uint8_t *data, size_t size)
{
	struct da_record r;
	uint8_t out[DA_RECORD_LEN];
	int rc = da_record_decode(&r, data, size);

	if (rc != 0) {
		if (rc != DA_EDECODE)
			abort();
		return;
	}
	da_record_encode(out, &r);
	if (size != DA_RECORD_LEN || memcmp(out, data, size) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	payload(data, size);
	record(data, size);
	return 0;
}
