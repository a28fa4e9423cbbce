/*
 * fuzz_rights.c - libFuzzer target for the params of the sequencing-rights
 * methods (rightsreq.c: mezz_setOffer, mezz_getSale, mezz_buyTickets,
 * mezz_proposeAllocation -> struct app_rights_req).
 *
 * Input: one selector byte (the method, mod 4), then the params JSON. After
 * a successful decode every field must be within the bounds docs/API.md
 * promises the sales engine (rollups and bundles non-empty where required,
 * strictly ascending, counts and amounts in range); after a failure the
 * request must hold nothing and the reason must be a terminated,
 * non-empty string. ASan catches leaks and overruns.
 */
#include <jansson.h>
#include <stdint.h>
#include <string.h>

#include "appliance/daemon.h"

#define CHECK(c)                                \
	do {                                    \
		if (!(c))                       \
			__builtin_trap();       \
	} while (0)

static void check_ok(const struct app_rights_req *q)
{
	switch (q->op) {
	case APP_RIGHTS_SET_OFFER:
		CHECK(q->opt_in == 0 || q->opt_in == 1);
		CHECK(q->reserve <= SEQ_RIGHTS_PRICE_MAX);
		break;
	case APP_RIGHTS_GET_SALE:
		CHECK(q->sale <= INT64_MAX); /* 0: the latest sale */
		break;
	case APP_RIGHTS_BUY:
		CHECK(q->sale >= 1);
		CHECK(q->tickets >= 1 && q->tickets <= SEQ_RIGHTS_TICKETS_MAX);
		CHECK(q->price_gwei >= 1 && q->price_gwei <= SEQ_RIGHTS_PRICE_MAX);
		CHECK(q->rollups && q->n_rollups >= 1 && q->n_rollups <= SEQ_RIGHTS_MAX_ROLLUPS);
		CHECK(q->rollups[0] >= 1);
		for (size_t i = 1; i < q->n_rollups; i++)
			CHECK(q->rollups[i] > q->rollups[i - 1]);
		break;
	case APP_RIGHTS_PROPOSE:
		CHECK(q->sale >= 1);
		CHECK(q->alloc && q->alloc->n <= SEQ_RIGHTS_MAX_ROLLUPS);
		for (uint32_t i = 1; i < q->alloc->n; i++)
			CHECK(q->alloc->bundle[i] > q->alloc->bundle[i - 1]);
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct app_rights_req q;
	json_t *params;
	char why[64]; /* smaller than the longest reason: exercises truncation */

	if (size < 1)
		return 0;
	params = json_loadb((const char *)data + 1, size - 1, JSON_DECODE_ANY, NULL);
	memset(why, 0x55, sizeof(why));
	if (app_rights_parse(&q, (enum app_rights_op)(data[0] % 4), params, why, sizeof(why))) {
		CHECK(memchr(why, 0, sizeof(why)) && why[0]);
		CHECK(!q.rollups && !q.alloc && q.n_rollups == 0);
	} else {
		CHECK(q.op == (enum app_rights_op)(data[0] % 4));
		check_ok(&q);
		app_rights_req_free(&q);
		CHECK(!q.rollups && !q.alloc);
	}
	json_decref(params);
	return 0;
}
