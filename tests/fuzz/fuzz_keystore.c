/*
 * fuzz_keystore.c - libFuzzer target for l1_keystore_parse (JSON and
 * parameter checks only). When a file parses and its KDF is cheap (scrypt
 * n <= 16, r <= 8, p <= 1 or pbkdf2 c <= 16) it is also decrypted, so the
 * MAC and AES paths run without letting the fuzzer spend its time in the
 * KDF.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "l1bridge/l1.h"

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t len)
{
	struct l1_keystore ks;
	uint8_t key[32], addr[20];
	char err[256];

	if (l1_keystore_parse(&ks, (const char *)in, len, err, sizeof(err)) != 0)
		return 0;
	if (strnlen(err, sizeof(err)) >= sizeof(err))
		__builtin_trap();
	if ((ks.kdf == L1_KS_SCRYPT && ks.n <= 16 && ks.r <= 8 && ks.p <= 1) ||
	    (ks.kdf == L1_KS_PBKDF2 && ks.c <= 16))
		(void)l1_keystore_decrypt(&ks, "pw", 2, key, addr, err, sizeof(err));
	return 0;
}
