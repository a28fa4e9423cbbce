/*
 * rightsreq.c - JSON params of the sequencing-rights methods -> struct
 * app_rights_req. Pure decoding with bounds (a fuzz target drives it,
 * tests/fuzz/fuzz_rights.c): nothing here looks at a sale, a key or the
 * clock; rights.c judges the decoded request.
 *
 * Params are an object, or an array holding that one object. Integers are
 * JSON integers (no floats, no strings); every bound is checked before any
 * allocation, and an array is walked only after its length is checked.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/daemon.h"

#define FAIL(...)                                       \
	do {                                            \
		snprintf(why, whylen, __VA_ARGS__);     \
		goto fail;                              \
	} while (0)

/* A JSON integer in [min, max]; -1 if absent or out of range. */
static int get_u64(json_t *o, const char *key, uint64_t min, uint64_t max, uint64_t *out)
{
	json_t *v = json_object_get(o, key);
	json_int_t n;

	if (!json_is_integer(v))
		return -1;
	n = json_integer_value(v);
	if (n < 0 || (uint64_t)n < min || (uint64_t)n > max)
		return -1;
	*out = (uint64_t)n;
	return 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* "0x" + exactly 2 * n hex digits. */
static int get_hex(json_t *v, uint8_t *out, size_t n)
{
	const char *h;

	if (!json_is_string(v) || json_string_length(v) != 2 + 2 * n)
		return -1;
	h = json_string_value(v);
	if (h[0] != '0' || (h[1] != 'x' && h[1] != 'X'))
		return -1;
	for (size_t i = 0; i < n; i++) {
		int a = hexval(h[2 + 2 * i]), b = hexval(h[3 + 2 * i]);

		if (a < 0 || b < 0)
			return -1;
		out[i] = (uint8_t)(a << 4 | b);
	}
	return 0;
}

int app_rights_parse(struct app_rights_req *out, enum app_rights_op op, json_t *params,
		     char *why, size_t whylen)
{
	json_t *p = json_is_array(params) ? json_array_get(params, 0) : params, *arr, *v;
	size_t k;

	memset(out, 0, sizeof(*out));
	out->op = op;
	if (op == APP_RIGHTS_GET_SALE && (!params || (json_is_array(params) &&
						      json_array_size(params) == 0)))
		return 0;
	if (!json_is_object(p) || (json_is_array(params) && json_array_size(params) != 1))
		FAIL("params must be one object");
	switch (op) {
	case APP_RIGHTS_SET_OFFER:
		v = json_object_get(p, "optIn");
		if (!json_is_boolean(v))
			FAIL("optIn must be true or false");
		out->opt_in = json_is_true(v);
		if (get_u64(p, "reserveGwei", 0, SEQ_RIGHTS_PRICE_MAX, &out->reserve))
			FAIL("reserveGwei must be an integer in [0, 2^38]: the whole window's "
			     "reserve in gwei");
		return 0;
	case APP_RIGHTS_GET_SALE:
		/* No sale: the latest one opened (answered as sale 0 -> latest). */
		if (json_object_get(p, "sale") && get_u64(p, "sale", 1, INT64_MAX, &out->sale))
			FAIL("params must be {\"sale\": N} with N >= 1, or {} for the latest sale");
		return 0;
	case APP_RIGHTS_BUY:
		if (get_u64(p, "sale", 1, INT64_MAX, &out->sale))
			FAIL("sale must be an integer >= 1");
		if (get_u64(p, "tickets", 1, SEQ_RIGHTS_TICKETS_MAX, &out->tickets))
			FAIL("tickets must be an integer in [1, 2^24]");
		if (get_u64(p, "priceGwei", 1, SEQ_RIGHTS_PRICE_MAX, &out->price_gwei))
			FAIL("priceGwei must be an integer in [1, 2^38] (the sale's price)");
		if (get_u64(p, "nonce", 0, INT64_MAX, &out->nonce))
			FAIL("nonce must be an integer >= 0");
		if (get_hex(json_object_get(p, "signature"), out->sig, 65))
			FAIL("signature must be 0x followed by 130 hex digits (r || s || v)");
		arr = json_object_get(p, "rollups");
		if (!json_is_array(arr) || json_array_size(arr) == 0 ||
		    json_array_size(arr) > SEQ_RIGHTS_MAX_ROLLUPS)
			FAIL("rollups must be a non-empty array of at most %d chain ids",
			     SEQ_RIGHTS_MAX_ROLLUPS);
		out->rollups = malloc(json_array_size(arr) * sizeof(uint64_t));
		if (!out->rollups)
			FAIL("out of memory");
		json_array_foreach(arr, k, v) {
			json_int_t id = json_is_integer(v) ? json_integer_value(v) : 0;

			if (id < 1)
				FAIL("rollups[%zu] must be a chain id (an integer >= 1)", k);
			if (k && (uint64_t)id <= out->rollups[k - 1])
				FAIL("rollups must be strictly ascending (rollups[%zu] is not above "
				     "rollups[%zu]); sign them in that order",
				     k, k - 1);
			out->rollups[k] = (uint64_t)id;
		}
		out->n_rollups = json_array_size(arr);
		return 0;
	case APP_RIGHTS_PROPOSE:
		if (get_u64(p, "sale", 1, INT64_MAX, &out->sale))
			FAIL("sale must be an integer >= 1");
		arr = json_object_get(p, "bundles");
		if (!json_is_array(arr) || json_array_size(arr) > SEQ_RIGHTS_MAX_ROLLUPS)
			FAIL("bundles must be an array of at most %d bundle numbers (see "
			     "mezz_getSale)",
			     SEQ_RIGHTS_MAX_ROLLUPS);
		out->alloc = calloc(1, sizeof(*out->alloc));
		if (!out->alloc)
			FAIL("out of memory");
		json_array_foreach(arr, k, v) {
			json_int_t b = json_is_integer(v) ? json_integer_value(v) : -1;

			if (b < 0 || b > UINT32_MAX)
				FAIL("bundles[%zu] must be a bundle number (an integer >= 0)", k);
			if (k && (uint32_t)b <= out->alloc->bundle[k - 1])
				FAIL("bundles must be strictly ascending (bundles[%zu] is not above "
				     "bundles[%zu])",
				     k, k - 1);
			out->alloc->bundle[k] = (uint32_t)b;
		}
		out->alloc->n = (uint32_t)json_array_size(arr);
		return 0;
	}
	FAIL("unknown operation");
fail:
	app_rights_req_free(out);
	return -1;
}

void app_rights_req_free(struct app_rights_req *r)
{
	if (!r)
		return;
	free(r->rollups);
	free(r->alloc);
	r->rollups = NULL;
	r->alloc = NULL;
	r->n_rollups = 0;
}
