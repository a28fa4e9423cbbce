/*
 * sha256.c - one SHA-256 for the sequencer.
 *
 * OpenSSL 3's one-shot SHA256() and EVP_Digest() look the algorithm up in
 * the provider registry and allocate a context on every call; for 64- and
 * 65-byte Merkle inputs that costs more than the hash itself (measured: 12%
 * of the committer thread in EVP_MD_fetch). The low-level SHA256_* API runs
 * the same assembly (SHA-NI where the CPU has it) without either, so it is
 * used here despite its deprecation in OpenSSL 3.
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>

#include "sequencer/bytes.h"

void seq__sha256(uint8_t out[32], const void *buf, size_t len)
{
	SHA256_CTX c;

	SHA256_Init(&c);
	SHA256_Update(&c, buf, len);
	SHA256_Final(out, &c);
}
