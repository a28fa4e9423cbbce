/*
 * hex.c - 0x-prefixed hex, as JSON-RPC carries byte strings.
 */
#include <assert.h>

#include "l1bridge/l1.h"

void l1_hex_encode(char *out, const uint8_t *in, size_t len)
{
	static const char digits[] = "0123456789abcdef";

	assert(out != NULL && (in != NULL || len == 0));
	*out++ = '0';
	*out++ = 'x';
	for (size_t i = 0; i < len; i++) {
		*out++ = digits[in[i] >> 4];
		*out++ = digits[in[i] & 0x0f];
	}
	*out = '\0';
}

static int hex_nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int l1_hex_decode(uint8_t *out, size_t cap, size_t *out_len, const char *hex,
		  size_t hex_len)
{
	if (out_len == NULL || (hex == NULL && hex_len > 0) ||
	    (out == NULL && cap > 0))
		return L1_EINVAL;
	*out_len = 0;
	if (hex_len >= 2 && hex[0] == '0' && (hex[1] == 'x' || hex[1] == 'X')) {
		hex += 2;
		hex_len -= 2;
	}
	if (hex_len % 2 != 0)
		return L1_EINVAL;
	if (hex_len / 2 > cap)
		return L1_ETOOBIG;
	for (size_t i = 0; i < hex_len / 2; i++) {
		int hi = hex_nibble(hex[2 * i]);
		int lo = hex_nibble(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return L1_EINVAL;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	*out_len = hex_len / 2;
	return 0;
}
