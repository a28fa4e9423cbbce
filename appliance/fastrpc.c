/*
 * fastrpc.c - the common message, read without building a JSON tree.
 *
 * Nearly every message a busy appliance receives is one mezz_sendTransaction
 * request, or a batch of them, as clients write it. Parsing that with
 * jansson (a tree of objects, a malloc per node, UTF-8 checks) took about a
 * third of the network thread under load (perf, docs/BENCHMARKS.md). This
 * scanner accepts only a narrow, unambiguous subset of JSON and says "not
 * mine" to everything else, which then takes the jansson path as before:
 *
 *   message := ws (request | '[' ws request (ws ',' ws request)* ws ']') ws
 *   request := '{' members of: "jsonrpc": "2.0"
 *                              "method": "mezz_sendTransaction"
 *                              "params": '{' members of: "namespace": STR
 *                                                        "data": STR '}'
 *                              "id": INT | STR | null         (optional)
 *              each key exactly once (id at most once), any order '}'
 *   STR     := '"' printable ASCII other than '"' and '\' '"'
 *   INT     := '-'? ('0' | [1-9][0-9]{0,17}), not followed by '.', 'e', 'E'
 *
 * Anything else (escapes, other keys, params as an array, a namespace given
 * by chain id, duplicate keys, numbers jansson would print differently,
 * trailing bytes) returns 0. On such input the two paths cannot disagree:
 * every accepted string is printable ASCII without escapes, so its bytes
 * are its value, and every accepted id prints back exactly as written (what
 * the jansson path sends back: json_dumps of the id). fuzz_fastrpc checks
 * this against jansson on every input the scanner accepts.
 */
#include <string.h>

#include "appliance/server.h"

struct scan {
	const char *p, *end;
};

static void ws(struct scan *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
		s->p++;
}

static int eat(struct scan *s, char ch)
{
	ws(s);
	if (s->p < s->end && *s->p == ch) {
		s->p++;
		return 1;
	}
	return 0;
}

/* A string without escapes of printable ASCII; *v, *n: its characters. */
static int str(struct scan *s, const char **v, size_t *n)
{
	const char *q;
	unsigned bad = 0;

	if (!eat(s, '"'))
		return 0;
	/* The closing quote first (memchr is vectorised), then one pass with no
	 * early exit over what it encloses: most of a message is one long hex
	 * string, and this was the scanner's hottest loop. */
	q = memchr(s->p, '"', (size_t)(s->end - s->p));
	if (!q)
		return 0;
	for (const unsigned char *u = (const unsigned char *)s->p; u < (const unsigned char *)q; u++)
		bad |= (unsigned)(*u - 0x20) > 0x5e || *u == '\\';
	if (bad)
		return 0;
	*v = s->p;
	*n = (size_t)(q - s->p);
	s->p = q + 1;
	return 1;
}

static int str_is(struct scan *s, const char *want)
{
	const char *v;
	size_t n;

	return str(s, &v, &n) && n == strlen(want) && !memcmp(v, want, n);
}

/* An id: an integer in canonical form, a plain string or null, as text. */
static int id_value(struct scan *s, const char **v, size_t *n)
{
	const char *q;

	ws(s);
	if (s->p < s->end && *s->p == '"') {
		const char *inner;
		size_t len;

		q = s->p;
		if (!str(s, &inner, &len))
			return 0;
		*v = q;
		*n = len + 2;
		return 1;
	}
	if (s->end - s->p >= 4 && !memcmp(s->p, "null", 4)) {
		*v = s->p;
		*n = 4;
		s->p += 4;
		return 1;
	}
	q = s->p;
	if (q < s->end && *q == '-')
		q++;
	if (q == s->end || *q < '0' || *q > '9' || (*q == '0' && q != s->p))
		return 0; /* no digit, or "-0" (jansson prints it as 0) */
	if (*q == '0') {
		q++;
	} else {
		const char *d = q;

		while (q < s->end && *q >= '0' && *q <= '9')
			q++;
		if (q - d > 18)
			return 0; /* beyond what prints back unchanged for certain */
	}
	if (q < s->end && (*q == '.' || *q == 'e' || *q == 'E' || (*q >= '0' && *q <= '9')))
		return 0;
	*v = s->p;
	*n = (size_t)(q - s->p);
	s->p = q;
	return 1;
}

static int params(struct scan *s, struct app_fast_tx *t)
{
	int have_ns = 0, have_data = 0;

	if (!eat(s, '{'))
		return 0;
	do {
		const char *k;
		size_t kn;

		if (!str(s, &k, &kn) || !eat(s, ':'))
			return 0;
		if (kn == 9 && !memcmp(k, "namespace", 9) && !have_ns++) {
			if (!str(s, &t->ns, &t->ns_len))
				return 0;
		} else if (kn == 4 && !memcmp(k, "data", 4) && !have_data++) {
			if (!str(s, &t->data, &t->data_len))
				return 0;
		} else {
			return 0;
		}
	} while (eat(s, ','));
	return eat(s, '}') && have_ns && have_data;
}

static int request(struct scan *s, struct app_fast_tx *t)
{
	int have_ver = 0, have_method = 0, have_params = 0, have_id = 0;

	t->id = NULL;
	t->id_len = 0;
	if (!eat(s, '{'))
		return 0;
	do {
		const char *k;
		size_t kn;

		if (!str(s, &k, &kn) || !eat(s, ':'))
			return 0;
		if (kn == 7 && !memcmp(k, "jsonrpc", 7) && !have_ver++) {
			if (!str_is(s, "2.0"))
				return 0;
		} else if (kn == 6 && !memcmp(k, "method", 6) && !have_method++) {
			if (!str_is(s, "mezz_sendTransaction"))
				return 0;
		} else if (kn == 6 && !memcmp(k, "params", 6) && !have_params++) {
			if (!params(s, t))
				return 0;
		} else if (kn == 2 && !memcmp(k, "id", 2) && !have_id++) {
			if (!id_value(s, &t->id, &t->id_len))
				return 0;
		} else {
			return 0;
		}
	} while (eat(s, ','));
	return eat(s, '}') && have_ver && have_method && have_params;
}

size_t app_fastrpc_parse(const char *msg, size_t len, struct app_fast_tx *out, size_t max,
			 int *is_batch)
{
	struct scan s = {msg, msg + len};
	size_t n = 0;

	if (!max)
		return 0;
	*is_batch = eat(&s, '[');
	if (*is_batch) {
		do {
			if (n == max || !request(&s, &out[n]))
				return 0;
			n++;
		} while (eat(&s, ','));
		if (!eat(&s, ']'))
			return 0;
	} else {
		if (!request(&s, &out[0]))
			return 0;
		n = 1;
	}
	ws(&s);
	return s.p == s.end ? n : 0;
}
