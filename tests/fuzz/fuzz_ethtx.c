/*
 * fuzz_ethtx.c - libFuzzer target for l1_tx_decode (what
 * eth_sendRawTransaction feeds it). Traps if a transaction decodes but its
 * pointers leave the input or its hash is not keccak256 of the input.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "l1bridge/l1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint64_t chains[] = { 0, 31337 };
	struct l1_tx tx;
	uint8_t h[32];

	for (size_t i = 0; i < sizeof(chains) / sizeof(chains[0]); i++) {
		int rc = l1_tx_decode(&tx, data, size, chains[i], 128 * 1024);

		if (rc > 0 || (rc < 0 && l1_strerror(rc) == NULL))
			__builtin_trap();
		if (rc < 0)
			continue;
		if (tx.data_len > size || (tx.data_len > 0 &&
		    (tx.data < data || tx.data + tx.data_len > data + size)))
			__builtin_trap();
		if (chains[i] != 0 && tx.chain_id != chains[i])
			__builtin_trap();
		l1_keccak256(h, data, size);
		if (memcmp(h, tx.hash, 32) != 0)
			__builtin_trap();
	}
	if (l1_tx_decode(&tx, data, size, 0, size > 0 ? size - 1 : 0) !=
	    (size > 0 ? L1_ETOOBIG : L1_ERLP))
		__builtin_trap();
	return 0;
}
