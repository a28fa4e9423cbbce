/*
 * keystore.c - Web3 Secret Storage v3 files, as geth and `cast wallet new`
 * write them:
 *
 *   {"version":3, "address":"..." (optional),
 *    "crypto":{"cipher":"aes-128-ctr", "cipherparams":{"iv":hex16},
 *              "ciphertext":hex32, "kdf":"scrypt"|"pbkdf2",
 *              "kdfparams":{scrypt: n, r, p, dklen, salt | pbkdf2: c, prf,
 *                           dklen, salt},
 *              "mac":hex32}}
 *
 *   dk  = KDF(password, salt)                  (32 bytes)
 *   mac = keccak256(dk[16..32] || ciphertext)  (checked in constant time)
 *   key = AES-128-CTR(dk[0..16], iv, ciphertext)
 *
 * The file is hostile until its MAC checks: parameters are bounded before any
 * KDF work (scrypt memory, pbkdf2 iterations), so a crafted file cannot make
 * the appliance allocate gigabytes or spin for minutes. The derived key and
 * the plaintext are wiped on every path.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <mbedtls/aes.h>
#include <openssl/evp.h>
#include <sodium.h>

#include "l1bridge/internal.h"
#include "l1bridge/l1.h"

/* A hex string field of exactly want bytes (want 0: 1..cap bytes). */
static int ks_hex(json_t *obj, const char *name, uint8_t *out, size_t cap,
		  size_t want, size_t *got, char *err, size_t errcap)
{
	json_t *v = json_object_get(obj, name);
	size_t n = 0;

	if (!json_is_string(v)) {
		l1__errf(err, errcap, "keystore: \"%s\" missing or not a string", name);
		return L1_EKS_FORMAT;
	}
	if (l1_hex_decode(out, cap, &n, json_string_value(v), json_string_length(v)) < 0 ||
	    (want != 0 && n != want) || n == 0) {
		l1__errf(err, errcap, "keystore: \"%s\" is not %s%zu bytes of hex", name,
			 want ? "" : "at most ", want ? want : cap);
		return L1_EKS_FORMAT;
	}
	if (got != NULL)
		*got = n;
	return 0;
}

static int ks_uint(json_t *obj, const char *name, uint64_t max, uint64_t *out,
		   char *err, size_t errcap)
{
	json_t *v = json_object_get(obj, name);

	if (!json_is_integer(v) || json_integer_value(v) < 1) {
		l1__errf(err, errcap, "keystore: kdfparams.%s missing or not a positive integer",
			 name);
		return L1_EKS_FORMAT;
	}
	if ((uint64_t)json_integer_value(v) > max) {
		l1__errf(err, errcap, "keystore: kdfparams.%s = %lld exceeds the limit %llu",
			 name, (long long)json_integer_value(v), (unsigned long long)max);
		return L1_EKS_PARAMS;
	}
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

static int ks_scrypt_params(struct l1_keystore *ks, json_t *kp, char *err, size_t errcap)
{
	uint64_t n, r, p;
	int rc;

	if ((rc = ks_uint(kp, "n", UINT64_C(1) << 32, &n, err, errcap)) < 0 ||
	    (rc = ks_uint(kp, "r", 1024, &r, err, errcap)) < 0 ||
	    (rc = ks_uint(kp, "p", L1_KS_SCRYPT_MAX_P, &p, err, errcap)) < 0)
		return rc;
	if (n < 2 || (n & (n - 1)) != 0) {
		l1__errf(err, errcap, "keystore: scrypt n = %llu is not a power of two >= 2",
			 (unsigned long long)n);
		return L1_EKS_PARAMS;
	}
	/* n <= 2^32 and r <= 1024, so 128 * r * n cannot overflow 64 bits. */
	if (128 * r * n > L1_KS_SCRYPT_MAX_MEM) {
		l1__errf(err, errcap,
			 "keystore: scrypt n = %llu, r = %llu needs %llu MiB (limit %u MiB)",
			 (unsigned long long)n, (unsigned long long)r,
			 (unsigned long long)((128 * r * n) >> 20), L1_KS_SCRYPT_MAX_MEM >> 20);
		return L1_EKS_PARAMS;
	}
	ks->kdf = L1_KS_SCRYPT;
	ks->n = n;
	ks->r = (uint32_t)r;
	ks->p = (uint32_t)p;
	return 0;
}

static int ks_pbkdf2_params(struct l1_keystore *ks, json_t *kp, char *err, size_t errcap)
{
	json_t *prf = json_object_get(kp, "prf");
	uint64_t c;
	int rc;

	if (!json_is_string(prf) || strcmp(json_string_value(prf), "hmac-sha256") != 0) {
		l1__errf(err, errcap, "keystore: pbkdf2 prf must be \"hmac-sha256\"");
		return L1_EKS_KDF;
	}
	if ((rc = ks_uint(kp, "c", L1_KS_PBKDF2_MAX_C, &c, err, errcap)) < 0)
		return rc;
	ks->kdf = L1_KS_PBKDF2;
	ks->c = (uint32_t)c;
	return 0;
}

static int ks_parse_crypto(struct l1_keystore *ks, json_t *crypto, char *err, size_t errcap)
{
	json_t *cipher, *kdf, *kp, *cp;
	uint64_t dklen;
	int rc;

	if (!json_is_object(crypto)) {
		l1__errf(err, errcap, "keystore: \"crypto\" missing or not an object");
		return L1_EKS_FORMAT;
	}
	cipher = json_object_get(crypto, "cipher");
	if (!json_is_string(cipher) || strcmp(json_string_value(cipher), "aes-128-ctr") != 0) {
		l1__errf(err, errcap, "keystore: cipher %s%s%s is not supported (only aes-128-ctr)",
			 json_is_string(cipher) ? "\"" : "",
			 json_is_string(cipher) ? json_string_value(cipher) : "(missing)",
			 json_is_string(cipher) ? "\"" : "");
		return L1_EKS_CIPHER;
	}
	cp = json_object_get(crypto, "cipherparams");
	if (!json_is_object(cp)) {
		l1__errf(err, errcap, "keystore: \"cipherparams\" missing or not an object");
		return L1_EKS_FORMAT;
	}
	if ((rc = ks_hex(cp, "iv", ks->iv, 16, 16, NULL, err, errcap)) < 0 ||
	    (rc = ks_hex(crypto, "ciphertext", ks->ciphertext, 32, 32, NULL, err, errcap)) < 0 ||
	    (rc = ks_hex(crypto, "mac", ks->mac, 32, 32, NULL, err, errcap)) < 0)
		return rc;

	kdf = json_object_get(crypto, "kdf");
	kp = json_object_get(crypto, "kdfparams");
	if (!json_is_string(kdf)) {
		l1__errf(err, errcap, "keystore: \"kdf\" missing or not a string");
		return L1_EKS_FORMAT;
	}
	if (!json_is_object(kp)) {
		l1__errf(err, errcap, "keystore: \"kdfparams\" missing or not an object");
		return L1_EKS_FORMAT;
	}
	if (strcmp(json_string_value(kdf), "scrypt") == 0)
		rc = ks_scrypt_params(ks, kp, err, errcap);
	else if (strcmp(json_string_value(kdf), "pbkdf2") == 0)
		rc = ks_pbkdf2_params(ks, kp, err, errcap);
	else {
		l1__errf(err, errcap, "keystore: kdf \"%.40s\" is not supported (scrypt or pbkdf2)",
			 json_string_value(kdf));
		rc = L1_EKS_KDF;
	}
	if (rc < 0)
		return rc;
	if ((rc = ks_uint(kp, "dklen", 32, &dklen, err, errcap)) < 0)
		return rc;
	if (dklen != 32) {
		l1__errf(err, errcap, "keystore: dklen must be 32");
		return L1_EKS_PARAMS;
	}
	return ks_hex(kp, "salt", ks->salt, sizeof(ks->salt), 0, &ks->salt_len, err, errcap);
}

int l1_keystore_parse(struct l1_keystore *ks, const char *json, size_t len, char *err,
		      size_t errcap)
{
	json_error_t jerr;
	json_t *root = NULL, *ver, *addr;
	int rc;

	if (ks == NULL || (json == NULL && len > 0))
		return L1_EINVAL;
	memset(ks, 0, sizeof(*ks));
	if (len > L1_KS_MAX_FILE) {
		l1__errf(err, errcap, "keystore: file larger than %d bytes", L1_KS_MAX_FILE);
		return L1_ETOOBIG;
	}
	root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(root)) {
		l1__errf(err, errcap, "keystore: not a JSON object (%s)", jerr.text);
		rc = L1_EKS_FORMAT;
		goto out;
	}
	ver = json_object_get(root, "version");
	if (!json_is_integer(ver) || json_integer_value(ver) != 3) {
		l1__errf(err, errcap, "keystore: \"version\" must be 3");
		rc = L1_EKS_FORMAT;
		goto out;
	}
	/* geth writes "crypto"; some old tools wrote "Crypto". */
	{
		json_t *crypto = json_object_get(root, "crypto");
		if (crypto == NULL)
			crypto = json_object_get(root, "Crypto");
		if ((rc = ks_parse_crypto(ks, crypto, err, errcap)) < 0)
			goto out;
	}
	addr = json_object_get(root, "address");
	if (addr != NULL) {
		if ((rc = ks_hex(root, "address", ks->address, 20, 20, NULL, err, errcap)) < 0)
			goto out;
		ks->has_address = 1;
	}
	rc = 0;
out:
	json_decref(root);
	if (rc < 0)
		memset(ks, 0, sizeof(*ks));
	return rc;
}

static int ks_derive(const struct l1_keystore *ks, const char *pw, size_t pwlen,
		     uint8_t dk[static 32], char *err, size_t errcap)
{
	if (ks->kdf == L1_KS_SCRYPT) {
		if (crypto_pwhash_scryptsalsa208sha256_ll((const uint8_t *)pw, pwlen, ks->salt,
							  ks->salt_len, ks->n, ks->r, ks->p,
							  dk, 32) != 0) {
			l1__errf(err, errcap, "keystore: scrypt failed (out of memory?)");
			return L1_ENOMEM;
		}
		return 0;
	}
	if (ks->kdf == L1_KS_PBKDF2) {
		if (PKCS5_PBKDF2_HMAC(pw, (int)pwlen, ks->salt, (int)ks->salt_len, (int)ks->c,
				      EVP_sha256(), 32, dk) != 1) {
			l1__errf(err, errcap, "keystore: pbkdf2 failed");
			return L1_ENOMEM;
		}
		return 0;
	}
	l1__errf(err, errcap, "keystore: no kdf (not parsed?)");
	return L1_EINVAL;
}

int l1_keystore_decrypt(const struct l1_keystore *ks, const char *password,
			size_t password_len, uint8_t key[static 32], uint8_t *addr,
			char *err, size_t errcap)
{
	mbedtls_aes_context aes;
	uint8_t dk[32], mac[32], nonce[16], stream[16], a[20];
	struct l1_keccak k;
	size_t off = 0;
	int rc;

	if (ks == NULL || (password == NULL && password_len > 0) || password_len > INT32_MAX)
		return L1_EINVAL;
	if (sodium_init() < 0)
		return L1_ENOMEM;
	mbedtls_aes_init(&aes);
	if ((rc = ks_derive(ks, password, password_len, dk, err, errcap)) < 0)
		goto out;
	l1_keccak_init(&k);
	l1_keccak_update(&k, dk + 16, 16);
	l1_keccak_update(&k, ks->ciphertext, 32);
	l1_keccak_final(&k, mac);
	if (sodium_memcmp(mac, ks->mac, 32) != 0) {
		l1__errf(err, errcap, "keystore: wrong password or corrupted file (MAC mismatch)");
		rc = L1_EKS_MAC;
		goto out;
	}
	memcpy(nonce, ks->iv, 16);
	if (mbedtls_aes_setkey_enc(&aes, dk, 128) != 0 ||
	    mbedtls_aes_crypt_ctr(&aes, 32, &off, nonce, stream, ks->ciphertext, key) != 0) {
		l1__errf(err, errcap, "keystore: AES-128-CTR failed");
		rc = L1_EKS_CIPHER;
		goto out;
	}
	if ((rc = l1_key_address(key, a)) < 0) {
		l1__errf(err, errcap, "keystore: decrypted key is not a valid secp256k1 key");
		goto out;
	}
	if (ks->has_address && memcmp(a, ks->address, 20) != 0) {
		l1__errf(err, errcap, "keystore: the file's address does not match its key");
		rc = L1_EKS_ADDRESS;
		goto out;
	}
	if (addr != NULL)
		memcpy(addr, a, 20);
	rc = 0;
out:
	if (rc < 0)
		sodium_memzero(key, 32);
	mbedtls_aes_free(&aes);
	sodium_memzero(dk, sizeof(dk));
	sodium_memzero(stream, sizeof(stream));
	sodium_memzero(&k, sizeof(k));
	return rc;
}

int l1_keystore_load(const char *path, const char *password, uint8_t key[static 32],
		     uint8_t *addr, char *err, size_t errcap)
{
	struct l1_keystore ks;
	char buf[L1_KS_MAX_FILE + 1];
	size_t len = 0;
	int fd, rc;

	if (path == NULL || password == NULL)
		return L1_EINVAL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		l1__errf(err, errcap, "keystore: cannot open %s: %s", path, strerror(errno));
		return L1_EIO;
	}
	while (len < sizeof(buf)) {
		ssize_t r = read(fd, buf + len, sizeof(buf) - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			l1__errf(err, errcap, "keystore: cannot read %s: %s", path, strerror(errno));
			close(fd);
			return L1_EIO;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	rc = l1_keystore_parse(&ks, buf, len, err, errcap);
	if (rc == 0)
		rc = l1_keystore_decrypt(&ks, password, strlen(password), key, addr, err, errcap);
	sodium_memzero(&ks, sizeof(ks));
	return rc;
}
