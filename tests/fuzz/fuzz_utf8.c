/*
 * fuzz_utf8.c - libFuzzer target: app_utf8_valid (fastrpc.c), the check the
 * server makes of every text message, against jansson's own UTF-8 check
 * (json_stringn refuses exactly the byte strings that are not RFC 3629
 * UTF-8; it allows NUL). The input is also checked at every shorter length,
 * so sequences cut at the end are covered, and at every start below 8, so
 * the eight-byte ASCII steps meet every alignment.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "appliance/server.h"

static void check(const unsigned char *p, size_t n)
{
	json_t *s = json_stringn((const char *)p, n);
	int want = s != NULL;

	json_decref(s);
	if (app_utf8_valid(p, n) != want) {
		fprintf(stderr, "fuzz_utf8: app_utf8_valid says %d, jansson %d, on %zu bytes\n",
			!want, want, n);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	if (size > 4096)
		return 0;
	for (size_t off = 0; off < 8 && off <= size; off++)
		check(data + off, size - off);
	for (size_t n = size > 16 ? size - 16 : 0; n < size; n++)
		check(data, n);
	return 0;
}
