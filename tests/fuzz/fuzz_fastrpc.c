/*
 * fuzz_fastrpc.c - libFuzzer target: the fast path (fastrpc.c) against
 * jansson. Whenever app_fastrpc_parse takes an input, jansson (as rpc.c
 * calls it) must parse the same bytes to the same requests: the same batch
 * shape and count, "jsonrpc" "2.0", method mezz_sendTransaction, params an
 * object whose namespace and data strings equal the spans, no other keys,
 * and an id that json_dumps prints exactly as the span (that text is what
 * the answer echoes). For one mezz_sendTransactions: params {namespace,
 * txs} with txs an array of exactly the strings read, in order, every item
 * carrying the request's id and namespace. Inputs the scanner refuses are
 * the general path's.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/server.h"

#define MAX_ITEMS 64

#define CHECK(cond, what)                                                                          \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "fuzz_fastrpc: fast path and jansson disagree: %s\n",      \
				what);                                                             \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

static int str_eq(json_t *v, const char *p, size_t n)
{
	return json_is_string(v) && json_string_length(v) == n &&
	       !memcmp(json_string_value(v), p, n);
}

/* n == 0: one mezz_sendTransaction in t[0]; else mezz_sendTransactions
 * with its n transactions in t[0..n). */
static void check_item(json_t *o, const struct app_fast_tx *t, size_t n)
{
	json_t *id = json_object_get(o, "id"), *params = json_object_get(o, "params"), *txs;

	CHECK(json_is_object(o), "request is not an object");
	CHECK(json_object_size(o) == (t->id ? 4u : 3u), "keys other than the four");
	CHECK(str_eq(json_object_get(o, "jsonrpc"), "2.0", 3), "jsonrpc");
	CHECK(json_is_object(params) && json_object_size(params) == 2, "params");
	CHECK(str_eq(json_object_get(params, "namespace"), t->ns, t->ns_len), "namespace");
	if (n) {
		CHECK(str_eq(json_object_get(o, "method"), "mezz_sendTransactions", 21), "method");
		txs = json_object_get(params, "txs");
		CHECK(json_is_array(txs) && json_array_size(txs) == n, "txs count");
		for (size_t i = 0; i < n; i++) {
			CHECK(str_eq(json_array_get(txs, i), t[i].data, t[i].data_len), "txs[i]");
			CHECK(t[i].id == t[0].id && t[i].id_len == t[0].id_len, "txs[i] id");
			CHECK(t[i].ns == t[0].ns && t[i].ns_len == t[0].ns_len, "txs[i] namespace");
		}
	} else {
		CHECK(str_eq(json_object_get(o, "method"), "mezz_sendTransaction", 20), "method");
		CHECK(str_eq(json_object_get(params, "data"), t->data, t->data_len), "data");
	}
	if (!t->id) {
		CHECK(!id, "an id the fast path did not see");
	} else {
		char *d;

		CHECK(id != NULL, "an id jansson did not see");
		d = json_dumps(id, JSON_ENCODE_ANY | JSON_COMPACT);
		CHECK(d && strlen(d) == t->id_len && !memcmp(d, t->id, t->id_len),
		      "the id would be echoed differently");
		free(d);
	}
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	static struct app_fast_tx t[MAX_ITEMS];
	json_t *root;
	int shape;
	size_t n = app_fastrpc_parse((const char *)data, size, t, MAX_ITEMS, &shape);

	if (!n)
		return 0;
	CHECK(n <= MAX_ITEMS, "more requests than the cap");
	root = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, NULL);
	CHECK(root != NULL, "jansson refuses a message the fast path took");
	if (shape == APP_FAST_BATCH) {
		CHECK(json_is_array(root) && json_array_size(root) == n, "batch shape or count");
		for (size_t i = 0; i < n; i++)
			check_item(json_array_get(root, i), &t[i], 0);
	} else if (shape == APP_FAST_TXS) {
		CHECK(json_is_object(root), "mezz_sendTransactions shape");
		check_item(root, t, n);
	} else {
		CHECK(n == 1 && json_is_object(root) && shape == APP_FAST_ONE, "single request shape");
		check_item(root, &t[0], 0);
	}
	json_decref(root);
	return 0;
}
