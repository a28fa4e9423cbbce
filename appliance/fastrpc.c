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
 *   message := ws (request | txs | '[' ws request (ws ',' ws request)* ws ']') ws
 *   request := '{' members of: "jsonrpc": "2.0"
 *                              "method": "mezz_sendTransaction"
 *                              "params": '{' members of: "namespace": STR
 *                                                        "data": STR '}'
 *                              "id": INT | STR | null         (optional)
 *              each key exactly once (id at most once), any order '}'
 *   txs     := the same with "method": "mezz_sendTransactions" and
 *              "params": '{' members of: "namespace": STR
 *                                        "txs": '[' STR (',' STR)* ']' '}'
 *              (one per message, never inside a batch)
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

/* '[' STR (',' STR)* ']' into t[0..max): the data spans; their number, 0 if
 * not that (or more than max). */
static size_t str_list(struct scan *s, struct app_fast_tx *t, size_t max)
{
	size_t n = 0;

	if (!eat(s, '['))
		return 0;
	do {
		if (n == max || !str(s, &t[n].data, &t[n].data_len))
			return 0;
		n++;
	} while (eat(s, ','));
	return eat(s, ']') ? n : 0;
}

/* params of either method: {namespace, data} (*many = 0, into t[0]) or
 * {namespace, txs} (*many = the number of txs, into t[0..max)). */
static int params(struct scan *s, struct app_fast_tx *t, size_t max, size_t *many)
{
	int have_ns = 0, have_data = 0, have_txs = 0;

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
		} else if (kn == 4 && !memcmp(k, "data", 4) && !have_data++ && !have_txs) {
			if (!str(s, &t->data, &t->data_len))
				return 0;
		} else if (kn == 3 && !memcmp(k, "txs", 3) && !have_txs++ && !have_data) {
			if (!(*many = str_list(s, t, max)))
				return 0;
		} else {
			return 0;
		}
	} while (eat(s, ','));
	return eat(s, '}') && have_ns && (have_data || have_txs);
}

/* One request into t (t[0..*many) for mezz_sendTransactions, which only
 * a message of its own may be: max is 1 inside a batch). */
static int request(struct scan *s, struct app_fast_tx *t, size_t max, size_t *many)
{
	int have_ver = 0, have_method = 0, have_params = 0, have_id = 0, txs = 0;
	const char *ns = NULL;
	size_t ns_len = 0;

	*many = 0;

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
			const char *m;
			size_t mn;

			if (!str(s, &m, &mn))
				return 0;
			if (mn == 21 && !memcmp(m, "mezz_sendTransactions", 21))
				txs = 1;
			else if (mn != 20 || memcmp(m, "mezz_sendTransaction", 20))
				return 0;
		} else if (kn == 6 && !memcmp(k, "params", 6) && !have_params++) {
			if (!params(s, t, max, many))
				return 0;
		} else if (kn == 2 && !memcmp(k, "id", 2) && !have_id++) {
			if (!id_value(s, &t->id, &t->id_len))
				return 0;
		} else {
			return 0;
		}
	} while (eat(s, ','));
	if (!eat(s, '}') || !have_ver || !have_method || !have_params || txs != (*many > 0))
		return 0;
	ns = t[0].ns;
	ns_len = t[0].ns_len;
	for (size_t i = 1; i < *many; i++) { /* every item: the request's id and namespace */
		t[i].id = t[0].id;
		t[i].id_len = t[0].id_len;
		t[i].ns = ns;
		t[i].ns_len = ns_len;
	}
	return 1;
}

size_t app_fastrpc_parse(const char *msg, size_t len, struct app_fast_tx *out, size_t max,
			 int *shape)
{
	struct scan s = {msg, msg + len};
	size_t n = 0, many = 0;
	int batch;

	/* Set only for a message taken: the caller reads n transactions for
	 * APP_FAST_TXS, and a shape left behind by a rejected one (a whole
	 * mezz_sendTransactions followed by trailing bytes) sized its answers
	 * from nothing. */
	*shape = APP_FAST_ONE;
	if (!max)
		return 0;
	batch = eat(&s, '[');
	if (batch) {
		do {
			if (n == max || !request(&s, &out[n], 1, &many) || many)
				return 0;
			n++;
		} while (eat(&s, ','));
		if (!eat(&s, ']'))
			return 0;
	} else {
		if (!request(&s, &out[0], max, &many))
			return 0;
		n = many ? many : 1;
	}
	ws(&s);
	if (s.p != s.end)
		return 0;
	*shape = batch ? APP_FAST_BATCH : many ? APP_FAST_TXS : APP_FAST_ONE;
	return n;
}

/* Length of the UTF-8 sequence at p (1..4, within avail bytes), or 0 when
 * it is not RFC 3629 UTF-8 or is cut off. */
size_t app_utf8_len(const unsigned char *p, size_t avail)
{
	size_t n;
	uint32_t cp;

	if (avail == 0)
		return 0;
	if (p[0] < 0x80)
		return 1;
	if ((p[0] & 0xe0) == 0xc0)
		n = 2, cp = p[0] & 0x1f;
	else if ((p[0] & 0xf0) == 0xe0)
		n = 3, cp = p[0] & 0x0f;
	else if ((p[0] & 0xf8) == 0xf0)
		n = 4, cp = p[0] & 0x07;
	else
		return 0;
	if (avail < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	/* Overlong forms, surrogates and values past U+10FFFF are not UTF-8. */
	if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return n;
}

/*
 * A whole message, as RFC 6455 requires of every text message. The server
 * checks each message here instead of having lws check every frame byte by
 * byte (LWS_SERVER_OPTION_VALIDATE_UTF8 was 7.5% of the network thread at
 * 150k tx/s, perf): the messages clients send are ASCII, which this passes
 * eight bytes at a time.
 */
int app_utf8_valid(const unsigned char *p, size_t n)
{
	size_t i = 0;

	while (i < n) {
		size_t l;

		for (; i + 8 <= n; i += 8) {
			uint64_t w;

			memcpy(&w, p + i, 8);
			if (w & 0x8080808080808080ull)
				break;
		}
		if (i >= n)
			break;
		l = app_utf8_len(p + i, n - i);
		if (l == 0)
			return 0;
		i += l;
	}
	return 1;
}
