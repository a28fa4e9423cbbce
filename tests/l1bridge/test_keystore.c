/*
 * test_keystore.c - keystore v3 files written by `cast wallet new` decrypt to
 * the address `cast wallet address --keystore` prints; wrong passwords,
 * tampered files and hostile parameters fail with their own errors.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "l1bridge/l1.h"

#include "tests/l1bridge/helpers.h"

static char dir[64], path[256], json[8192];
static size_t json_len;

static void make_keystore(void)
{
	char line[512];
	FILE *f;

	snprintf(dir, sizeof(dir), "/tmp/mezz-ks-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	l1t_cast(line, sizeof(line), "wallet new %s --unsafe-password pw", dir);
	cr_assert(sscanf(line, "Created new encrypted keystore file: %255s", path) == 1,
		  "unexpected cast output: %s", line);
	f = fopen(path, "r");
	cr_assert_not_null(f);
	json_len = fread(json, 1, sizeof(json) - 1, f);
	json[json_len] = '\0';
	fclose(f);
}

static void cleanup(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(keystore, .init = make_keystore, .fini = cleanup);

static void lower(char *s)
{
	for (; *s; s++)
		*s = (char)(*s >= 'A' && *s <= 'F' ? *s + 32 : *s);
}

Test(keystore, cast_file_loads_to_cast_address)
{
	uint8_t key[32], addr[20], addr2[20];
	char want[128], got[43], err[256] = "";

	l1t_cast(want, sizeof(want), "wallet address --keystore %s --password pw", path);
	lower(want);
	cr_assert_eq(l1_keystore_load(path, "pw", key, addr, err, sizeof(err)), 0, "%s", err);
	l1_hex_encode(got, addr, 20);
	cr_assert_str_eq(got, want);
	cr_assert_eq(l1_key_address(key, addr2), 0);
	cr_assert_eq(memcmp(addr, addr2, 20), 0);
}

Test(keystore, wrong_password_is_a_clear_error)
{
	uint8_t key[32];
	char err[256] = "";

	memset(key, 0xaa, sizeof(key));
	cr_assert_eq(l1_keystore_load(path, "pW", key, NULL, err, sizeof(err)), L1_EKS_MAC);
	cr_assert(strstr(err, "wrong password") != NULL, "%s", err);
	for (size_t i = 0; i < 32; i++)
		cr_assert_eq(key[i], 0, "key wiped on failure");
	cr_assert_str_eq(l1_strerror(L1_EKS_MAC),
			 "wrong password or corrupted keystore (MAC mismatch)");
}

/* Replace the first occurrence of `from` in the file's JSON by `to`, then
 * parse (+ decrypt with the right password if parsing passes). */
static int tampered(const char *from, const char *to, char *err, size_t cap)
{
	static char t[8192];
	struct l1_keystore ks;
	uint8_t key[32];
	char *p = strstr(json, from);
	int rc;

	cr_assert_not_null(p, "%s not in %s", from, json);
	snprintf(t, sizeof(t), "%.*s%s%s", (int)(p - json), json, to, p + strlen(from));
	rc = l1_keystore_parse(&ks, t, strlen(t), err, cap);
	if (rc == 0)
		rc = l1_keystore_decrypt(&ks, "pw", 2, key, NULL, err, cap);
	return rc;
}

Test(keystore, tampered_files_fail)
{
	char err[256], ct[80], flipped[80];
	const char *c = strstr(json, "\"ciphertext\":\"");

	cr_assert_not_null(c);
	snprintf(ct, sizeof(ct), "%.*s", 64, c + 14);
	strcpy(flipped, ct);
	flipped[10] = flipped[10] == '0' ? '1' : '0';
	cr_assert_eq(tampered(ct, flipped, err, sizeof(err)), L1_EKS_MAC, "ciphertext: %s", err);
	cr_assert_eq(tampered("\"kdf\":\"scrypt\"", "\"kdf\":\"argon2id\"", err, sizeof(err)),
		     L1_EKS_KDF);
	cr_assert(strstr(err, "argon2id") != NULL, "%s", err);
	cr_assert_eq(tampered("aes-128-ctr", "aes-256-gcm", err, sizeof(err)), L1_EKS_CIPHER);
	cr_assert(strstr(err, "aes-256-gcm") != NULL, "%s", err);
	cr_assert_eq(tampered("\"n\":8192", "\"n\":1073741824", err, sizeof(err)), L1_EKS_PARAMS,
		     "%s", err);
	cr_assert_eq(tampered("\"n\":8192", "\"n\":8191", err, sizeof(err)), L1_EKS_PARAMS);
	cr_assert_eq(tampered("\"p\":1", "\"p\":100000", err, sizeof(err)), L1_EKS_PARAMS);
	cr_assert_eq(tampered("\"r\":8", "\"r\":4096", err, sizeof(err)), L1_EKS_PARAMS);
	cr_assert_eq(tampered("\"dklen\":32", "\"dklen\":16", err, sizeof(err)), L1_EKS_PARAMS);
	cr_assert_eq(tampered("\"version\":3", "\"version\":1", err, sizeof(err)), L1_EKS_FORMAT);
	cr_assert_eq(tampered("\"version\":3",
			      "\"version\":3,\"address\":\"0000000000000000000000000000000000000001\"",
			      err, sizeof(err)),
		     L1_EKS_ADDRESS, "%s", err);
	cr_assert_eq(tampered("\"iv\":\"", "\"iv\":\"00", err, sizeof(err)), L1_EKS_FORMAT);
	cr_assert_eq(tampered("{", "[", err, sizeof(err)), L1_EKS_FORMAT);
}

Test(keystore, missing_file_and_oversized_input)
{
	struct l1_keystore ks;
	uint8_t key[32];
	char err[256];
	static char big[L1_KS_MAX_FILE + 2];

	cr_assert_eq(l1_keystore_load("/nonexistent/ks.json", "pw", key, NULL, err, sizeof(err)),
		     L1_EIO);
	cr_assert(strstr(err, "/nonexistent/ks.json") != NULL);
	memset(big, ' ', sizeof(big));
	cr_assert_eq(l1_keystore_parse(&ks, big, sizeof(big), err, sizeof(err)), L1_ETOOBIG);
}
