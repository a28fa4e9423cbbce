/* fastrpc.c: what the scanner takes (and the spans it returns) and what it
 * leaves to jansson. Agreement with jansson on every accepted input is
 * fuzz_fastrpc's job; these pin the grammar's edges. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <string.h>

#include "appliance/server.h"

#define TX "\"method\":\"mezz_sendTransaction\",\"params\":{\"namespace\":\"demo\",\"data\":\"0xab\"}"
#define TXS "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"mezz_sendTransactions\"," \
	    "\"params\":{\"namespace\":\"demo\",\"txs\":[\"0xab\",\"0xcd\"]}}"

static size_t parse(const char *msg, struct app_fast_tx *t, size_t max, int *is_batch)
{
	return app_fastrpc_parse(msg, strlen(msg), t, max, is_batch);
}

static void span_eq(const char *p, size_t n, const char *want)
{
	cr_assert_eq(n, strlen(want), "span '%.*s' is not '%s'", (int)n, p, want);
	cr_assert(!memcmp(p, want, n), "span '%.*s' is not '%s'", (int)n, p, want);
}

Test(fastrpc, single_request_spans)
{
	struct app_fast_tx t[1];
	int b = -1;

	cr_assert_eq(parse("{\"jsonrpc\":\"2.0\",\"id\":42," TX "}", t, 1, &b), 1);
	cr_assert_eq(b, 0);
	span_eq(t[0].id, t[0].id_len, "42");
	span_eq(t[0].ns, t[0].ns_len, "demo");
	span_eq(t[0].data, t[0].data_len, "0xab");
}

Test(fastrpc, any_key_order_whitespace_and_string_or_null_ids)
{
	struct app_fast_tx t[1];
	int b;

	cr_assert_eq(parse(" \n{ \"params\" : { \"data\" : \"0x01\" , \"namespace\" : \"x-1\" } ,\t"
			   "\"method\":\"mezz_sendTransaction\", \"id\" : \"a-b.c:9\",\r"
			   "\"jsonrpc\":\"2.0\" }\n",
			   t, 1, &b),
		     1);
	span_eq(t[0].id, t[0].id_len, "\"a-b.c:9\"");
	span_eq(t[0].ns, t[0].ns_len, "x-1");
	span_eq(t[0].data, t[0].data_len, "0x01");
	cr_assert_eq(parse("{\"jsonrpc\":\"2.0\",\"id\":null," TX "}", t, 1, &b), 1);
	span_eq(t[0].id, t[0].id_len, "null");
	cr_assert_eq(parse("{\"jsonrpc\":\"2.0\",\"id\":-7," TX "}", t, 1, &b), 1);
	span_eq(t[0].id, t[0].id_len, "-7");
	cr_assert_eq(parse("{\"jsonrpc\":\"2.0\",\"id\":0," TX "}", t, 1, &b), 1);
	span_eq(t[0].id, t[0].id_len, "0");
}

Test(fastrpc, notification_has_no_id)
{
	struct app_fast_tx t[1];
	int b;

	cr_assert_eq(parse("{\"jsonrpc\":\"2.0\"," TX "}", t, 1, &b), 1);
	cr_assert_null(t[0].id);
}

Test(fastrpc, batch_up_to_max)
{
	struct app_fast_tx t[3];
	const char *m = "[{\"jsonrpc\":\"2.0\",\"id\":1," TX "} , {\"jsonrpc\":\"2.0\",\"id\":2," TX
			"},{\"jsonrpc\":\"2.0\",\"id\":3," TX "}]";
	int b = 0;

	cr_assert_eq(parse(m, t, 3, &b), 3);
	cr_assert_eq(b, 1);
	span_eq(t[2].id, t[2].id_len, "3");
	/* over the cap: the general path answers with its error */
	cr_assert_eq(parse(m, t, 2, &b), 0);
}

/* Each of these must be left to jansson (0): not the common message, or
 * not certain to mean the same thing byte for byte. */
Test(fastrpc, everything_else_falls_back)
{
	static const char *const other[] = {
		"",
		"[]",
		"{}",
		"{\"jsonrpc\":\"2.0\",\"id\":1," TX "} x",			/* trailing bytes */
		"{\"jsonrpc\":\"2.0\",\"id\":1," TX ",}",			/* trailing comma */
		"{\"jsonrpc\":\"2.0\",\"id\":1," TX ",\"id\":2}",		/* duplicate key */
		"{\"jsonrpc\":\"2.0\",\"id\":1," TX ",\"extra\":1}",		/* other key */
		"{\"jsonrpc\":\"1.0\",\"id\":1," TX "}",			/* version */
		"{\"id\":1," TX "}",						/* no version */
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"mezz_status\"}",	/* method */
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"mezz_sendTransaction\","
		"\"params\":[{\"namespace\":\"demo\",\"data\":\"0xab\"}]}",	/* params array */
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"mezz_sendTransaction\","
		"\"params\":{\"namespace\":31337,\"data\":\"0xab\"}}",		/* ns by chain id */
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"mezz_sendTransaction\","
		"\"params\":{\"namespace\":\"demo\"}}",				/* no data */
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"mezz_sendTransaction\","
		"\"params\":{\"namespace\":\"de\\u006do\",\"data\":\"0xab\"}}", /* escape */
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"mezz_sendTransaction\","
		"\"params\":{\"namespace\":\"d\xc3\xa9mo\",\"data\":\"0xab\"}}", /* non-ASCII */
		"{\"jsonrpc\":\"2.0\",\"id\":01," TX "}",			/* leading zero */
		"{\"jsonrpc\":\"2.0\",\"id\":-0," TX "}",			/* prints as 0 */
		"{\"jsonrpc\":\"2.0\",\"id\":1.0," TX "}",			/* real */
		"{\"jsonrpc\":\"2.0\",\"id\":1e3," TX "}",			/* real */
		"{\"jsonrpc\":\"2.0\",\"id\":1234567890123456789," TX "}",	/* 19 digits */
		"{\"jsonrpc\":\"2.0\",\"id\":true," TX "}",			/* bool id */
		"{\"jsonrpc\":\"2.0\",\"id\":nul," TX "}",
		"[{\"jsonrpc\":\"2.0\",\"id\":1," TX "},{\"jsonrpc\":\"2.0\",\"id\":2,"
		"\"method\":\"mezz_status\"}]", /* a batch with another method */
		"[{\"jsonrpc\":\"2.0\",\"id\":1," TX "}",			/* unterminated */
		"{\"jsonrpc\":\"2.0\",\"id\":\"1", /* cut inside a string */
		TXS " x",						/* trailing bytes */
		TXS ",{\"jsonrpc\":\"2.0\",\"id\":2," TX "}",		/* two objects */
		"[" TXS "]",						/* in a batch */
	};
	struct app_fast_tx t[4];
	int b;

	for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++) {
		b = APP_FAST_TXS;
		cr_assert_eq(parse(other[i], t, 4, &b), 0, "taken by the fast path: %s", other[i]);
		cr_assert_eq(b, APP_FAST_ONE, "shape %d left for a rejected message: %s", b,
			     other[i]);
	}
}

/* The shape of a whole mezz_sendTransactions, which the one above must not
 * leave behind when bytes follow it: app_rpc_handle sized the request's
 * answers by the shape and wrote past them (found by fuzz_jsonrpc). */
Test(fastrpc, send_transactions_shape_only_when_taken)
{
	struct app_fast_tx t[4];
	int b = APP_FAST_ONE;

	cr_assert_eq(parse(TXS, t, 4, &b), 2);
	cr_assert_eq(b, APP_FAST_TXS);
	span_eq(t[1].data, t[1].data_len, "0xcd");
}

Test(fastrpc, embedded_nul_is_not_taken)
{
	static const char m[] = "{\"jsonrpc\":\"2.0\",\"id\":1," TX "}";
	char buf[sizeof(m)];
	struct app_fast_tx t[1];
	int b;

	memcpy(buf, m, sizeof(m));
	buf[strlen(m) - 8] = 0; /* inside the data string */
	cr_assert_eq(app_fastrpc_parse(buf, strlen(m), t, 1, &b), 0);
	/* and a message that ends before its NUL terminator is cut short */
	cr_assert_eq(app_fastrpc_parse(m, strlen(m) - 1, t, 1, &b), 0);
}

/* app_utf8_valid: every sequence of one to three bytes from the values that
 * matter (ASCII, each continuation class, each lead byte) and every
 * four-byte one from the lead bytes' edges, against jansson's check, at an
 * offset inside a long ASCII run so the eight-byte steps reach them. */
static void utf8_case(const unsigned char *seq, size_t n, size_t pad)
{
	unsigned char buf[32];
	json_t *s;
	int want;

	memset(buf, 'a', sizeof(buf));
	memcpy(buf + pad, seq, n);
	s = json_stringn((const char *)buf, pad + n + 3);
	want = s != NULL;
	json_decref(s);
	cr_assert_eq(app_utf8_valid(buf, pad + n + 3), want,
		     "%02x %02x %02x %02x (%zu bytes) after %zu ASCII: jansson says %d", seq[0],
		     n > 1 ? seq[1] : 0, n > 2 ? seq[2] : 0, n > 3 ? seq[3] : 0, n, pad, want);
}

Test(fastrpc, utf8_matches_jansson)
{
	static const unsigned char v[] = {0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf,
					  0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xe1, 0xec, 0xed, 0xee,
					  0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xff};
	const size_t nv = sizeof(v);
	unsigned char seq[4];

	for (size_t pad = 0; pad < 9; pad += 4)
		for (size_t a = 0; a < nv; a++) {
			seq[0] = v[a];
			utf8_case(seq, 1, pad);
			for (size_t b = 0; b < nv; b++) {
				seq[1] = v[b];
				utf8_case(seq, 2, pad);
				for (size_t c = 0; c < nv; c++) {
					seq[2] = v[c];
					utf8_case(seq, 3, pad);
					for (size_t d = 3; d < 9; d++) { /* 0x80..0xbf */
						seq[3] = v[d];
						utf8_case(seq, 4, pad);
					}
				}
			}
		}
	/* the close-code test's cases, and a message that is all ASCII */
	cr_assert(!app_utf8_valid((const unsigned char *)"\xed\xa0\x80", 3));
	cr_assert(!app_utf8_valid((const unsigned char *)"\xf4\x90\x80\x80", 4));
	cr_assert(!app_utf8_valid((const unsigned char *)"\xe2\x82\x28", 3));
	cr_assert(app_utf8_valid((const unsigned char *)"\xe2\x82\xac\xf0\x9f\x98\x80", 7));
	cr_assert(app_utf8_valid((const unsigned char *)"{\"jsonrpc\":\"2.0\"}", 17));
	cr_assert(app_utf8_valid(NULL, 0));
}
