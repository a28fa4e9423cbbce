/*
 * hex.c - 0x-prefixed hex, as JSON-RPC carries byte strings.
 */
#include <assert.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "l1bridge/l1.h"

/* The two digits of every byte: one 2-byte copy per input byte. The
 * committer encodes ~500 bytes per receipt; the nibble loop was 7% of its
 * samples at 45k tx/s. */
static const char hex_pairs[256][2] = {
	"00", "01", "02", "03", "04", "05", "06", "07",
	"08", "09", "0a", "0b", "0c", "0d", "0e", "0f",
	"10", "11", "12", "13", "14", "15", "16", "17",
	"18", "19", "1a", "1b", "1c", "1d", "1e", "1f",
	"20", "21", "22", "23", "24", "25", "26", "27",
	"28", "29", "2a", "2b", "2c", "2d", "2e", "2f",
	"30", "31", "32", "33", "34", "35", "36", "37",
	"38", "39", "3a", "3b", "3c", "3d", "3e", "3f",
	"40", "41", "42", "43", "44", "45", "46", "47",
	"48", "49", "4a", "4b", "4c", "4d", "4e", "4f",
	"50", "51", "52", "53", "54", "55", "56", "57",
	"58", "59", "5a", "5b", "5c", "5d", "5e", "5f",
	"60", "61", "62", "63", "64", "65", "66", "67",
	"68", "69", "6a", "6b", "6c", "6d", "6e", "6f",
	"70", "71", "72", "73", "74", "75", "76", "77",
	"78", "79", "7a", "7b", "7c", "7d", "7e", "7f",
	"80", "81", "82", "83", "84", "85", "86", "87",
	"88", "89", "8a", "8b", "8c", "8d", "8e", "8f",
	"90", "91", "92", "93", "94", "95", "96", "97",
	"98", "99", "9a", "9b", "9c", "9d", "9e", "9f",
	"a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7",
	"a8", "a9", "aa", "ab", "ac", "ad", "ae", "af",
	"b0", "b1", "b2", "b3", "b4", "b5", "b6", "b7",
	"b8", "b9", "ba", "bb", "bc", "bd", "be", "bf",
	"c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7",
	"c8", "c9", "ca", "cb", "cc", "cd", "ce", "cf",
	"d0", "d1", "d2", "d3", "d4", "d5", "d6", "d7",
	"d8", "d9", "da", "db", "dc", "dd", "de", "df",
	"e0", "e1", "e2", "e3", "e4", "e5", "e6", "e7",
	"e8", "e9", "ea", "eb", "ec", "ed", "ee", "ef",
	"f0", "f1", "f2", "f3", "f4", "f5", "f6", "f7",
	"f8", "f9", "fa", "fb", "fc", "fd", "fe", "ff"};

/*
 * 16 bytes at a time with SSE2 (every x86-64 has it): split the nibbles,
 * interleave them high first, and add '0', plus 'a' - '0' - 10 where the
 * nibble is above 9. 3.6 times the table's speed on a 544-byte receipt
 * (110 ns against 402); the committer encodes one per transaction. The
 * table does the tail, and everything on other machines.
 */
void l1_hex_encode(char *out, const uint8_t *in, size_t len)
{
	size_t i = 0;

	assert(out != NULL && (in != NULL || len == 0));
	*out++ = '0';
	*out++ = 'x';
#ifdef __SSE2__
	const __m128i low = _mm_set1_epi8(0x0f), nine = _mm_set1_epi8(9),
		      zero = _mm_set1_epi8('0'), gap = _mm_set1_epi8('a' - '0' - 10);

	for (; i + 16 <= len; i += 16, out += 32) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)(in + i));
		__m128i hi = _mm_and_si128(_mm_srli_epi16(v, 4), low), lo = _mm_and_si128(v, low);
		__m128i a = _mm_unpacklo_epi8(hi, lo), b = _mm_unpackhi_epi8(hi, lo);

		a = _mm_add_epi8(_mm_add_epi8(a, zero), _mm_and_si128(_mm_cmpgt_epi8(a, nine), gap));
		b = _mm_add_epi8(_mm_add_epi8(b, zero), _mm_and_si128(_mm_cmpgt_epi8(b, nine), gap));
		_mm_storeu_si128((__m128i *)(void *)out, a);
		_mm_storeu_si128((__m128i *)(void *)(out + 16), b);
	}
#endif
	for (; i < len; i++, out += 2)
		memcpy(out, hex_pairs[in[i]], 2);
	*out = '\0';
}

/* Nibble value of each byte, 0xff for non-hex: one load per character on
 * the ingress path instead of three range tests. */
static const uint8_t nibble[256] = {
	['0'] = 0, ['1'] = 1, ['2'] = 2, ['3'] = 3, ['4'] = 4, ['5'] = 5, ['6'] = 6, ['7'] = 7,
	['8'] = 8, ['9'] = 9, ['a'] = 10, ['b'] = 11, ['c'] = 12, ['d'] = 13, ['e'] = 14,
	['f'] = 15, ['A'] = 10, ['B'] = 11, ['C'] = 12, ['D'] = 13, ['E'] = 14, ['F'] = 15,
};
static const uint8_t is_hex[256] = {
	['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
	['8'] = 1, ['9'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1,
	['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1,
};

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
	{
		const unsigned char *h = (const unsigned char *)hex;
		unsigned ok = 1;
		size_t i = 0;

#ifdef __SSE2__
		/*
		 * 32 digits at a time: the nibble of each digit from two range
		 * tests (signed compares: a byte >= 0x80 is below '0' and so
		 * fails both), then the high nibble of each pair shifted over
		 * the low one within its 16-bit lane and the lanes packed to
		 * bytes. The ingress path decodes every transaction; the table
		 * loop below was 7% of the network thread at 150k tx/s (perf).
		 */
		const __m128i c0 = _mm_set1_epi8('0' - 1), c9 = _mm_set1_epi8('9' + 1),
			      ca = _mm_set1_epi8('a' - 1), cf = _mm_set1_epi8('f' + 1),
			      lower = _mm_set1_epi8(0x20), d0 = _mm_set1_epi8('0'),
			      da = _mm_set1_epi8('a' - 10), lo8 = _mm_set1_epi16(0x00ff);
		__m128i good = _mm_set1_epi8(-1);

		for (; i + 16 <= hex_len / 2; i += 16) {
			__m128i n[2];

			for (int j = 0; j < 2; j++) {
				__m128i v = _mm_loadu_si128(
					(const __m128i *)(const void *)(h + 2 * i + 16 * j));
				__m128i l = _mm_or_si128(v, lower);
				__m128i dig = _mm_and_si128(_mm_cmpgt_epi8(v, c0),
							    _mm_cmpgt_epi8(c9, v));
				__m128i alp = _mm_and_si128(_mm_cmpgt_epi8(l, ca),
							    _mm_cmpgt_epi8(cf, l));
				__m128i x = _mm_or_si128(
					_mm_and_si128(dig, _mm_sub_epi8(v, d0)),
					_mm_and_si128(alp, _mm_sub_epi8(l, da)));

				good = _mm_and_si128(good, _mm_or_si128(dig, alp));
				/* lane: first digit in the low byte, second in the high */
				n[j] = _mm_or_si128(_mm_slli_epi16(_mm_and_si128(x, lo8), 4),
						    _mm_srli_epi16(x, 8));
			}
			_mm_storeu_si128((__m128i *)(void *)(out + i), _mm_packus_epi16(n[0], n[1]));
		}
		ok = _mm_movemask_epi8(good) == 0xffff;
#endif
		for (; i < hex_len / 2; i++) {
			ok &= is_hex[h[2 * i]] & is_hex[h[2 * i + 1]];
			out[i] = (uint8_t)(nibble[h[2 * i]] << 4 | nibble[h[2 * i + 1]]);
		}
		if (!ok)
			return L1_EINVAL;
	}
	*out_len = hex_len / 2;
	return 0;
}

void l1_hex_quantity(char out[static 19], uint64_t v)
{
	static const char digits[] = "0123456789abcdef";
	int shift = 60;

	*out++ = '0';
	*out++ = 'x';
	while (shift > 0 && (v >> shift) == 0)
		shift -= 4;
	for (; shift >= 0; shift -= 4)
		*out++ = digits[(v >> shift) & 0xf];
	*out = '\0';
}

/* A quantity's digits after "0x": 1..max hex digits (leading zeros, which
 * some nodes send, are skipped before the width check). */
static int quantity_digits(const char *s, size_t max, const char **d, size_t *n)
{
	size_t len;

	if (s == NULL || s[0] != '0' || (s[1] != 'x' && s[1] != 'X'))
		return L1_EINVAL;
	s += 2;
	len = strlen(s);
	if (len == 0)
		return L1_EINVAL;
	for (size_t i = 0; i < len; i++)
		if (!is_hex[(unsigned char)s[i]])
			return L1_EINVAL;
	while (len > 1 && s[0] == '0') {
		s++;
		len--;
	}
	if (len > max)
		return L1_ETX_INT;
	*d = s;
	*n = len;
	return 0;
}

int l1_hex_quantity_u64(const char *s, uint64_t *out)
{
	const char *d;
	size_t n;
	uint64_t v = 0;
	int rc = quantity_digits(s, 16, &d, &n);

	if (rc < 0)
		return rc;
	for (size_t i = 0; i < n; i++)
		v = v << 4 | nibble[(unsigned char)d[i]];
	*out = v;
	return 0;
}

int l1_hex_quantity_u256(const char *s, uint8_t out[static 32])
{
	const char *d;
	size_t n;
	int rc = quantity_digits(s, 64, &d, &n);

	if (rc < 0)
		return rc;
	memset(out, 0, 32);
	for (size_t i = 0; i < n; i++) {
		size_t pos = n - 1 - i; /* nibble index from the right */
		out[31 - pos / 2] |= (uint8_t)(nibble[(unsigned char)d[i]] << (4 * (pos % 2)));
	}
	return 0;
}

void l1_u256_from_u64(uint8_t out[static 32], uint64_t v)
{
	memset(out, 0, 24);
	for (int i = 0; i < 8; i++)
		out[31 - i] = (uint8_t)(v >> (8 * i));
}

int l1_u256_to_u64(const uint8_t v[static 32], uint64_t *out)
{
	uint64_t x = 0;

	for (int i = 0; i < 24; i++)
		if (v[i] != 0)
			return L1_ETX_INT;
	for (int i = 24; i < 32; i++)
		x = x << 8 | v[i];
	*out = x;
	return 0;
}
