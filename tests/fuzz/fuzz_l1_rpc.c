/*
 * fuzz_l1_rpc.c - libFuzzer target for what an L1 node answers: the JSON-RPC
 * envelope (rpc.c rpc_parse) and every typed call's result parser (receipts
 * with their logs, blocks, fee history, raw transactions, ...).
 *
 * The node is replaced by l1__rpc_fuzz_answer (compiled in with MEZZ_FUZZ
 * only). The input's first byte picks the call (low 4 bits) and how the rest
 * is answered (bit 4): as the "result" of an envelope carrying the right id,
 * or as its "error" object, so both reach past the id check. Traps if a call
 * reports success with values its contract rules out.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "l1bridge/internal.h"
#include "l1bridge/l1.h"

static const uint8_t *g_in;
static size_t g_len;
static int g_as_error;
static char *g_body;
static size_t g_cap;

static const char *answer(uint64_t id, size_t *len)
{
	char head[96];
	int h = snprintf(head, sizeof(head), "{\"jsonrpc\":\"2.0\",\"id\":%llu,\"%s\":",
			 (unsigned long long)id, g_as_error ? "error" : "result");
	size_t need = (size_t)h + g_len + 2;

	if (need > g_cap) {
		free(g_body);
		g_body = malloc(need);
		g_cap = g_body ? need : 0;
		if (!g_body)
			return NULL;
	}
	memcpy(g_body, head, (size_t)h);
	memcpy(g_body + h, g_in, g_len);
	g_body[h + g_len] = '}';
	*len = (size_t)h + g_len + 1;
	return g_body;
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t len)
{
	static struct l1_rpc *c;
	const char *url = "http://127.0.0.1:1";
	struct l1_rpc_opts o = {.urls = &url, .nurls = 1, .max_response = 1 << 20};
	uint8_t h32[32] = {0}, a20[20] = {0}, w[32], w2[32], out[256], *raw = NULL;
	struct l1_call call = {.data = h32, .data_len = 4};
	struct l1_log_filter f = {.has_topic0 = 1};
	struct l1_receipt r;
	struct l1_log_list logs = {0};
	struct l1_block b;
	uint64_t u = 0;
	size_t n = 0;
	int rc;

	if (len < 1)
		return 0;
	if (c == NULL && l1_rpc_create(&c, &o) != 0)
		abort();
	l1__rpc_fuzz_answer = answer;
	g_as_error = in[0] >> 4 & 1;
	g_in = in + 1;
	g_len = len - 1;
	switch (in[0] & 15) {
	case 0: rc = l1_rpc_chain_id(c, &u); break;
	case 1: rc = l1_rpc_get_transaction_count(c, a20, "latest", &u); break;
	case 2: rc = l1_rpc_send_raw_transaction(c, h32, 4, w); break;
	case 3:
		rc = l1_rpc_get_receipt(c, h32, &r);
		if (rc == 0) {
			if (r.status != 0 && r.status != 1)
				abort();
			for (size_t i = 0; i < r.logs.n; i++)
				if (r.logs.v[i].ntopics > 4 ||
				    (r.logs.v[i].data_len && !r.logs.v[i].data))
					abort();
			l1_receipt_free(&r);
		}
		break;
	case 4:
		rc = l1_rpc_get_raw_transaction(c, h32, &raw, &n);
		if (rc == 0 && raw == NULL)
			abort();
		free(raw);
		break;
	case 5: rc = l1_rpc_get_block(c, "latest", 0, &b); break;
	case 6: rc = l1_rpc_get_block(c, NULL, 7, &b); break;
	case 7: rc = l1_rpc_max_priority_fee(c, w); break;
	case 8: rc = l1_rpc_fee_history(c, 4, 50.0, w, w2); break;
	case 9: rc = l1_rpc_estimate_gas(c, &call, &u); break;
	case 10:
		rc = l1_rpc_eth_call(c, &call, NULL, out, sizeof(out), &n);
		if (rc == 0 && n > sizeof(out))
			abort();
		break;
	default:
		rc = l1_rpc_get_logs(c, &f, &logs);
		for (size_t i = 0; rc == 0 && i < logs.n; i++)
			if (logs.v[i].ntopics > 4)
				abort();
		l1_log_list_free(&logs);
		break;
	}
	if (rc == L1_ERPC_ERROR && l1_rpc_last_error(c)->data_len >
					    sizeof(l1_rpc_last_error(c)->data))
		abort();
	(void)b;
	return 0;
}
