/*
 * rpc.c - a JSON-RPC 2.0 client over HTTP(S) with libcurl, and the typed
 * calls an outbox needs.
 *
 * One client = one curl easy handle (connections are kept alive between
 * calls) and one response buffer, so a client belongs to one thread at a
 * time. Upstreams are tried in order starting from the last one that
 * answered; see l1.h for which failures move on to the next URL.
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "l1bridge/internal.h"
#include "l1bridge/l1.h"

#define RPC_DEFAULT_CONNECT_MS 3000
#define RPC_DEFAULT_TIMEOUT_MS 10000
#define RPC_DEFAULT_MAX (16u << 20)

struct l1_rpc {
	CURL *curl;
	struct curl_slist *headers;
	char *urls[L1_RPC_MAX_URLS];
	char *ca_file; /* NULL: libcurl's default CA store */
	size_t nurls, preferred;
	long connect_ms, timeout_ms;
	size_t max_response;
	char *body; /* response of the current attempt */
	size_t body_len, body_cap;
	int body_overflow;
	uint64_t next_id;
	struct l1_rpc_error err;
	uint64_t chain_id;		      /* 0: not checked */
	unsigned char chain_ok[L1_RPC_MAX_URLS]; /* its eth_chainId answered chain_id */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_FAILED_INIT;

static void rpc_global_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

void l1_rpc_destroy(struct l1_rpc *c)
{
	if (c == NULL)
		return;
	if (c->curl != NULL)
		curl_easy_cleanup(c->curl);
	curl_slist_free_all(c->headers);
	for (size_t i = 0; i < c->nurls; i++)
		free(c->urls[i]);
	free(c->ca_file);
	free(c->body);
	free(c);
}

int l1_rpc_create(struct l1_rpc **out, const struct l1_rpc_opts *o)
{
	struct l1_rpc *c;

	if (out == NULL || o == NULL || o->urls == NULL || o->nurls == 0 ||
	    o->nurls > L1_RPC_MAX_URLS || o->connect_timeout_ms < 0 || o->timeout_ms < 0)
		return L1_EINVAL;
	*out = NULL;
	if (pthread_once(&curl_once, rpc_global_init) != 0 || curl_init_rc != CURLE_OK)
		return L1_ENOMEM;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return L1_ENOMEM;
	for (size_t i = 0; i < o->nurls; i++) {
		if (o->urls[i] == NULL) {
			l1_rpc_destroy(c);
			return L1_EINVAL;
		}
		if ((c->urls[i] = strdup(o->urls[i])) == NULL) {
			l1_rpc_destroy(c);
			return L1_ENOMEM;
		}
		c->nurls++;
	}
	if (o->ca_file != NULL && o->ca_file[0] && (c->ca_file = strdup(o->ca_file)) == NULL) {
		l1_rpc_destroy(c);
		return L1_ENOMEM;
	}
	c->connect_ms = o->connect_timeout_ms ? o->connect_timeout_ms : RPC_DEFAULT_CONNECT_MS;
	c->timeout_ms = o->timeout_ms ? o->timeout_ms : RPC_DEFAULT_TIMEOUT_MS;
	c->max_response = o->max_response ? o->max_response : RPC_DEFAULT_MAX;
	c->next_id = 1;
	c->chain_id = o->chain_id;
	c->curl = curl_easy_init();
	c->headers = curl_slist_append(NULL, "Content-Type: application/json");
	if (c->curl == NULL || c->headers == NULL) {
		l1_rpc_destroy(c);
		return L1_ENOMEM;
	}
	*out = c;
	return 0;
}

const struct l1_rpc_error *l1_rpc_last_error(const struct l1_rpc *c)
{
	return &c->err;
}

static size_t rpc_write(char *p, size_t size, size_t nmemb, void *arg)
{
	struct l1_rpc *c = arg;
	size_t n = size * nmemb;

	if (n > c->max_response - c->body_len) {
		c->body_overflow = 1;
		return 0; /* aborts the transfer */
	}
	if (c->body_len + n + 1 > c->body_cap) {
		size_t cap = c->body_cap ? c->body_cap : 4096;
		char *b;
		while (cap < c->body_len + n + 1)
			cap *= 2;
		if ((b = realloc(c->body, cap)) == NULL)
			return 0;
		c->body = b;
		c->body_cap = cap;
	}
	memcpy(c->body + c->body_len, p, n);
	c->body_len += n;
	c->body[c->body_len] = '\0';
	return n;
}

static int rpc_fail(struct l1_rpc *c, int rc, size_t url, const char *fmt, const char *detail)
{
	c->err.rc = rc;
	c->err.url_index = url;
	snprintf(c->err.message, sizeof(c->err.message), fmt, detail);
	return rc;
}

/* Fills err from a JSON-RPC error object; always L1_ERPC_ERROR. */
static int rpc_error_object(struct l1_rpc *c, json_t *e, size_t url)
{
	json_t *code = json_object_get(e, "code"), *msg = json_object_get(e, "message");
	json_t *data = json_object_get(e, "data");

	c->err.rc = L1_ERPC_ERROR;
	c->err.url_index = url;
	c->err.code = json_is_integer(code) ? (long)json_integer_value(code) : 0;
	snprintf(c->err.message, sizeof(c->err.message), "%s",
		 json_is_string(msg) ? json_string_value(msg) : "(no message)");
	c->err.data_len = 0;
	if (json_is_string(data) &&
	    l1_hex_decode(c->err.data, sizeof(c->err.data), &c->err.data_len,
			  json_string_value(data), json_string_length(data)) < 0)
		c->err.data_len = 0;
	return L1_ERPC_ERROR;
}

/* The answer in c->body to request id: 0 with *result, or L1_ERPC_ERROR,
 * or L1_ERPC_RESPONSE for anything that is not a JSON-RPC answer to it. */
static int rpc_parse(struct l1_rpc *c, size_t url, uint64_t id, json_t **result)
{
	json_error_t jerr;
	json_t *doc, *rid, *res, *e;
	int rc;

	/* Nodes put revert reasons with NUL bytes into error messages. */
	doc = json_loadb(c->body != NULL ? c->body : "", c->body_len, JSON_ALLOW_NUL, &jerr);
	if (!json_is_object(doc)) {
		json_decref(doc);
		return rpc_fail(c, L1_ERPC_RESPONSE, url, "not a JSON-RPC object: %s", jerr.text);
	}
	rid = json_object_get(doc, "id");
	res = json_object_get(doc, "result");
	e = json_object_get(doc, "error");
	if (!json_is_integer(rid) || (uint64_t)json_integer_value(rid) != id) {
		rc = rpc_fail(c, L1_ERPC_RESPONSE, url, "%s", "response id does not match");
	} else if (json_is_object(e)) {
		rc = rpc_error_object(c, e, url);
	} else if (res == NULL) {
		rc = rpc_fail(c, L1_ERPC_RESPONSE, url, "%s", "neither result nor error");
	} else {
		*result = json_incref(res);
		rc = 0;
	}
	json_decref(doc);
	return rc;
}

#ifdef MEZZ_FUZZ
const char *(*l1__rpc_fuzz_answer)(uint64_t id, size_t *len);
#endif

/* One attempt against one URL: 0 with *result, L1_ERPC_ERROR (final), or a
 * transport error (try the next URL). */
static int rpc_attempt(struct l1_rpc *c, size_t url, const char *req, uint64_t id,
		       json_t **result)
{
	long status = 0;
	CURLcode cc;

	c->body_len = 0;
	c->body_overflow = 0;
#ifdef MEZZ_FUZZ
	if (l1__rpc_fuzz_answer != NULL) {
		size_t n = 0;
		const char *b = l1__rpc_fuzz_answer(id, &n);

		if (b == NULL)
			return rpc_fail(c, L1_ERPC_TRANSPORT, url, "%s", "no answer");
		if (rpc_write((char *)b, 1, n, c) != n || c->body_overflow)
			return rpc_fail(c, L1_ERPC_TOOBIG, url, "response larger than %s",
					"the limit");
		return rpc_parse(c, url, id, result);
	}
#endif
	curl_easy_reset(c->curl);
	curl_easy_setopt(c->curl, CURLOPT_URL, c->urls[url]);
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, c->headers);
	curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, req);
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, rpc_write);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, c);
	curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT_MS, c->connect_ms);
	curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, c->timeout_ms);
	curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c->curl, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c->curl, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)c->max_response);
	if (c->ca_file != NULL)
		curl_easy_setopt(c->curl, CURLOPT_CAINFO, c->ca_file);
	cc = curl_easy_perform(c->curl);
	if (c->body_overflow || cc == CURLE_FILESIZE_EXCEEDED)
		return rpc_fail(c, L1_ERPC_TOOBIG, url, "response larger than %s", "the limit");
	if (cc == CURLE_OPERATION_TIMEDOUT)
		return rpc_fail(c, L1_ERPC_TIMEOUT, url, "%s", curl_easy_strerror(cc));
	if (cc != CURLE_OK)
		return rpc_fail(c, L1_ERPC_TRANSPORT, url, "%s", curl_easy_strerror(cc));
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
	if (status != 200) {
		char s[32];
		snprintf(s, sizeof(s), "%ld", status);
		return rpc_fail(c, L1_ERPC_TRANSPORT, url, "HTTP status %s", s);
	}
	return rpc_parse(c, url, id, result);
}

/*
 * 0 if URL url serves chain c->chain_id (asked once, then remembered until
 * a call on it fails), L1_ECHAINID if it serves another (c->err says which),
 * or what the attempt returned. A fallback URL pointing at another network
 * would otherwise feed the outbox another chain's blocks and receipts.
 */
static int url_chain_check(struct l1_rpc *c, size_t url)
{
	char req[96];
	uint64_t id = c->next_id++, got = 0;
	json_t *r = NULL;
	int rc;

	if (!c->chain_id || c->chain_ok[url])
		return 0;
	snprintf(req, sizeof(req), "{\"jsonrpc\":\"2.0\",\"id\":%llu,\"method\":\"eth_chainId\","
		 "\"params\":[]}", (unsigned long long)id);
	rc = rpc_attempt(c, url, req, id, &r);
	if (rc == 0) {
		if (!json_is_string(r) || l1_hex_quantity_u64(json_string_value(r), &got) < 0) {
			rc = rpc_fail(c, L1_ERPC_RESPONSE, url, "%s", "unexpected result for eth_chainId");
		} else if (got != c->chain_id) {
			char m[96];

			snprintf(m, sizeof(m), "serves chain %llu, not %llu", (unsigned long long)got,
				 (unsigned long long)c->chain_id);
			rc = rpc_fail(c, L1_ECHAINID, url, "%s", m);
		} else {
			c->chain_ok[url] = 1;
		}
	}
	json_decref(r);
	return rc;
}

int l1_rpc_call(struct l1_rpc *c, const char *method, json_t *params, json_t **result)
{
	json_t *req = NULL;
	char *text = NULL;
	uint64_t id;
	int rc = L1_ERPC_TRANSPORT;

	if (c == NULL || method == NULL || result == NULL ||
	    (params != NULL && !json_is_array(params))) {
		json_decref(params);
		return L1_EINVAL;
	}
	*result = NULL;
	memset(&c->err, 0, sizeof(c->err));
	id = c->next_id++;
	req = json_pack("{s:s, s:I, s:s, s:o}", "jsonrpc", "2.0", "id", (json_int_t)id,
			"method", method, "params", params != NULL ? params : json_array());
	if (req == NULL || (text = json_dumps(req, JSON_COMPACT)) == NULL) {
		rc = L1_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < c->nurls; i++) {
		size_t url = (c->preferred + i) % c->nurls;

		rc = url_chain_check(c, url);
		if (rc == L1_ECHAINID || rc == L1_ERPC_ERROR) {
			rc = L1_ERPC_TRANSPORT; /* to the caller: this URL is no use */
			continue;
		}
		if (rc == 0)
			rc = rpc_attempt(c, url, text, id, result);
		c->err.url_index = url;
		if (rc == 0 || rc == L1_ERPC_ERROR) {
			c->preferred = url; /* it answered */
			break;
		}
		c->chain_ok[url] = 0; /* whatever answers there next is asked again */
	}
out:
	c->err.rc = rc;
	free(text);
	json_decref(req);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Typed calls. Each checks the result's shape; a wrong shape is
 * L1_ERPC_RESPONSE (the node is broken, not the request). */

static int bad_result(struct l1_rpc *c, const char *what)
{
	c->err.rc = L1_ERPC_RESPONSE;
	snprintf(c->err.message, sizeof(c->err.message), "unexpected result for %s", what);
	return L1_ERPC_RESPONSE;
}

static int get_u64(json_t *obj, const char *name, uint64_t *out)
{
	json_t *v = name ? json_object_get(obj, name) : obj;

	if (!json_is_string(v))
		return L1_ERPC_RESPONSE;
	return l1_hex_quantity_u64(json_string_value(v), out) < 0 ? L1_ERPC_RESPONSE : 0;
}

static int get_u256(json_t *obj, const char *name, uint8_t out[static 32])
{
	json_t *v = name ? json_object_get(obj, name) : obj;

	if (!json_is_string(v))
		return L1_ERPC_RESPONSE;
	return l1_hex_quantity_u256(json_string_value(v), out) < 0 ? L1_ERPC_RESPONSE : 0;
}

/* Fixed-size DATA field (hash, address). */
static int get_data(json_t *obj, const char *name, uint8_t *out, size_t want)
{
	json_t *v = name ? json_object_get(obj, name) : obj;
	size_t n;

	if (!json_is_string(v) || json_string_length(v) < 2 ||
	    l1_hex_decode(out, want, &n, json_string_value(v), json_string_length(v)) < 0 ||
	    n != want)
		return L1_ERPC_RESPONSE;
	return 0;
}

/* A hex string of any length into a new buffer (*out, *len; freed by the caller). */
static int get_data_alloc(json_t *v, uint8_t **out, size_t *len)
{
	size_t n;

	*out = NULL;
	if (!json_is_string(v))
		return L1_ERPC_RESPONSE;
	n = json_string_length(v) / 2;
	*out = malloc(n ? n : 1);
	if (*out == NULL)
		return L1_ENOMEM;
	if (l1_hex_decode(*out, n, len, json_string_value(v), json_string_length(v)) < 0) {
		free(*out);
		*out = NULL;
		return L1_ERPC_RESPONSE;
	}
	return 0;
}

static json_t *hex_json(const uint8_t *p, size_t n)
{
	char *s = malloc(2 * n + 3);
	json_t *j;

	if (s == NULL)
		return NULL;
	l1_hex_encode(s, p, n);
	j = json_string(s);
	free(s);
	return j;
}

static json_t *quantity_json(uint64_t v)
{
	char q[19];

	l1_hex_quantity(q, v);
	return json_string(q);
}

/* l1_rpc_call for typed calls: their params are always built, so NULL
 * means json_pack ran out of memory. */
static int rpc_callp(struct l1_rpc *c, const char *method, json_t *params, json_t **r)
{
	if (params == NULL)
		return L1_ENOMEM;
	return l1_rpc_call(c, method, params, r);
}

/* Calls method and reads a quantity result. */
static int call_u64(struct l1_rpc *c, const char *method, json_t *params, uint64_t *out)
{
	json_t *r;
	int rc = rpc_callp(c, method, params, &r);

	if (rc < 0)
		return rc;
	if (get_u64(r, NULL, out) < 0)
		rc = bad_result(c, method);
	json_decref(r);
	return rc;
}

int l1_rpc_chain_id(struct l1_rpc *c, uint64_t *out)
{
	return call_u64(c, "eth_chainId", json_array(), out);
}

int l1_rpc_get_transaction_count(struct l1_rpc *c, const uint8_t addr[static 20],
				 const char *tag, uint64_t *out)
{
	return call_u64(c, "eth_getTransactionCount",
			json_pack("[o, s]", hex_json(addr, 20), tag ? tag : "latest"), out);
}

int l1_rpc_send_raw_transaction(struct l1_rpc *c, const uint8_t *raw, size_t len,
				uint8_t hash[static 32])
{
	json_t *r;
	int rc = rpc_callp(c, "eth_sendRawTransaction", json_pack("[o]", hex_json(raw, len)),
			     &r);

	if (rc < 0)
		return rc;
	if (get_data(r, NULL, hash, 32) < 0)
		rc = bad_result(c, "eth_sendRawTransaction");
	json_decref(r);
	return rc;
}

int l1_rpc_get_raw_transaction(struct l1_rpc *c, const uint8_t hash[static 32], uint8_t **raw,
				size_t *len)
{
	json_t *r;
	int rc;

	if (raw == NULL || len == NULL)
		return L1_EINVAL;
	*raw = NULL;
	*len = 0;
	rc = rpc_callp(c, "eth_getRawTransactionByHash", json_pack("[o]", hex_json(hash, 32)), &r);
	if (rc < 0)
		return rc;
	if (json_is_null(r))
		rc = L1_ENOTFOUND;
	else if ((rc = get_data_alloc(r, raw, len)) == L1_ERPC_RESPONSE)
		rc = bad_result(c, "eth_getRawTransactionByHash");
	json_decref(r);
	return rc;
}

void l1_log_list_free(struct l1_log_list *l)
{
	if (l == NULL)
		return;
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].data);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static int parse_log(json_t *j, struct l1_log *lg)
{
	json_t *topics = json_object_get(j, "topics"), *data = json_object_get(j, "data");
	json_t *removed = json_object_get(j, "removed");
	int rc;

	if (!json_is_object(j) || !json_is_array(topics) || json_array_size(topics) > 4 ||
	    !json_is_string(data))
		return L1_ERPC_RESPONSE;
	if (get_data(j, "address", lg->address, 20) < 0 ||
	    get_u64(j, "blockNumber", &lg->block_number) < 0 ||
	    get_u64(j, "logIndex", &lg->log_index) < 0 ||
	    get_data(j, "blockHash", lg->block_hash, 32) < 0 ||
	    get_data(j, "transactionHash", lg->tx_hash, 32) < 0)
		return L1_ERPC_RESPONSE;
	lg->ntopics = json_array_size(topics);
	for (size_t t = 0; t < lg->ntopics; t++)
		if (get_data(json_array_get(topics, t), NULL, lg->topics[t], 32) < 0)
			return L1_ERPC_RESPONSE;
	if ((rc = get_data_alloc(data, &lg->data, &lg->data_len)) < 0)
		return rc;
	lg->removed = json_is_true(removed);
	return 0;
}

static int parse_logs(json_t *arr, struct l1_log_list *out)
{
	size_t n;

	out->v = NULL;
	out->n = 0;
	if (!json_is_array(arr))
		return L1_ERPC_RESPONSE;
	n = json_array_size(arr);
	if (n == 0)
		return 0;
	out->v = calloc(n, sizeof(*out->v));
	if (out->v == NULL)
		return L1_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		int rc = parse_log(json_array_get(arr, i), &out->v[i]);
		out->n = i + 1; /* so free sees this entry's data */
		if (rc < 0) {
			l1_log_list_free(out);
			return rc;
		}
	}
	return 0;
}

void l1_receipt_free(struct l1_receipt *r)
{
	if (r != NULL)
		l1_log_list_free(&r->logs);
}

int l1_rpc_get_receipt(struct l1_rpc *c, const uint8_t tx_hash[static 32],
		       struct l1_receipt *r)
{
	json_t *j;
	uint64_t status;
	int rc;

	if (r == NULL)
		return L1_EINVAL;
	memset(r, 0, sizeof(*r));
	rc = rpc_callp(c, "eth_getTransactionReceipt", json_pack("[o]", hex_json(tx_hash, 32)),
			 &j);
	if (rc < 0)
		return rc;
	if (json_is_null(j)) {
		rc = L1_ENOTFOUND;
		goto out;
	}
	if (get_u64(j, "status", &status) < 0 || status > 1 ||
	    get_u64(j, "blockNumber", &r->block_number) < 0 ||
	    get_u64(j, "gasUsed", &r->gas_used) < 0 ||
	    get_data(j, "blockHash", r->block_hash, 32) < 0 ||
	    get_data(j, "transactionHash", r->tx_hash, 32) < 0 ||
	    get_u256(j, "effectiveGasPrice", r->effective_gas_price) < 0) {
		rc = bad_result(c, "eth_getTransactionReceipt");
		goto out;
	}
	r->status = (int)status;
	if ((rc = parse_logs(json_object_get(j, "logs"), &r->logs)) < 0 && rc != L1_ENOMEM)
		rc = bad_result(c, "eth_getTransactionReceipt logs");
out:
	json_decref(j);
	if (rc < 0)
		l1_receipt_free(r);
	return rc;
}

int l1_rpc_get_block(struct l1_rpc *c, const char *tag, uint64_t number, struct l1_block *b)
{
	json_t *j, *bf;
	int rc;

	if (b == NULL)
		return L1_EINVAL;
	memset(b, 0, sizeof(*b));
	rc = rpc_callp(c, "eth_getBlockByNumber",
			 json_pack("[o, b]", tag ? json_string(tag) : quantity_json(number), 0),
			 &j);
	if (rc < 0)
		return rc;
	if (json_is_null(j)) {
		rc = L1_ENOTFOUND;
		goto out;
	}
	if (get_u64(j, "number", &b->number) < 0 || get_u64(j, "timestamp", &b->timestamp) < 0 ||
	    get_data(j, "hash", b->hash, 32) < 0 ||
	    get_data(j, "parentHash", b->parent_hash, 32) < 0) {
		rc = bad_result(c, "eth_getBlockByNumber");
		goto out;
	}
	bf = json_object_get(j, "baseFeePerGas");
	if (bf != NULL && !json_is_null(bf)) {
		if (get_u256(bf, NULL, b->base_fee) < 0) {
			rc = bad_result(c, "eth_getBlockByNumber baseFeePerGas");
			goto out;
		}
		b->has_base_fee = 1;
	}
	bf = json_object_get(j, "mixHash"); /* prevrandao since the Merge */
	if (bf != NULL && !json_is_null(bf)) {
		if (get_data(bf, NULL, b->mix_hash, 32) < 0) {
			rc = bad_result(c, "eth_getBlockByNumber mixHash");
			goto out;
		}
		b->has_mix_hash = 1;
	}
out:
	json_decref(j);
	return rc;
}

int l1_rpc_max_priority_fee(struct l1_rpc *c, uint8_t out[static 32])
{
	json_t *j;
	int rc = rpc_callp(c, "eth_maxPriorityFeePerGas", json_array(), &j);

	if (rc < 0)
		return rc;
	if (get_u256(j, NULL, out) < 0)
		rc = bad_result(c, "eth_maxPriorityFeePerGas");
	json_decref(j);
	return rc;
}

static int cmp_u256(const void *a, const void *b)
{
	return memcmp(a, b, 32);
}

int l1_rpc_fee_history(struct l1_rpc *c, uint64_t nblocks, double percentile,
		       uint8_t next_base_fee[static 32], uint8_t priority_fee[static 32])
{
	json_t *j, *base, *reward;
	uint8_t (*tips)[32] = NULL;
	size_t n = 0;
	int rc;

	if (nblocks < 1 || nblocks > 1024 || !(percentile >= 0 && percentile <= 100))
		return L1_EINVAL;
	rc = rpc_callp(c, "eth_feeHistory",
			 json_pack("[o, s, [f]]", quantity_json(nblocks), "latest", percentile),
			 &j);
	if (rc < 0)
		return rc;
	base = json_object_get(j, "baseFeePerGas");
	reward = json_object_get(j, "reward");
	/* baseFeePerGas has one entry more than blocks: the next block's. */
	if (!json_is_array(base) || json_array_size(base) == 0 ||
	    get_u256(json_array_get(base, json_array_size(base) - 1), NULL, next_base_fee) < 0) {
		rc = bad_result(c, "eth_feeHistory");
		goto out;
	}
	memset(priority_fee, 0, 32);
	if (json_is_array(reward) && json_array_size(reward) > 0) {
		size_t m = json_array_size(reward);
		if ((tips = calloc(m, 32)) == NULL) {
			rc = L1_ENOMEM;
			goto out;
		}
		for (size_t i = 0; i < m; i++) {
			json_t *row = json_array_get(reward, i);
			if (!json_is_array(row) || json_array_size(row) != 1 ||
			    get_u256(json_array_get(row, 0), NULL, tips[n]) < 0) {
				rc = bad_result(c, "eth_feeHistory reward");
				goto out;
			}
			n++;
		}
		qsort(tips, n, 32, cmp_u256);
		memcpy(priority_fee, tips[n / 2], 32);
	}
out:
	free(tips);
	json_decref(j);
	return rc;
}

static json_t *u256_quantity_json(const uint8_t v[static 32])
{
	static const char digits[] = "0123456789abcdef";
	char q[67] = "0x";
	size_t n = 2;

	for (size_t i = 0; i < 64; i++) {
		unsigned d = (v[i / 2] >> (i % 2 ? 0 : 4)) & 0xf;
		if (d == 0 && n == 2 && i < 63)
			continue; /* no leading zeros in a quantity */
		q[n++] = digits[d];
	}
	q[n] = '\0';
	return json_string(q);
}

static json_t *call_object(const struct l1_call *call)
{
	json_t *o = json_pack("{s:o, s:o}", "to", hex_json(call->to, 20), "input",
			      hex_json(call->data, call->data_len));

	if (o != NULL && call->has_from)
		json_object_set_new(o, "from", hex_json(call->from, 20));
	if (o != NULL && call->has_value)
		json_object_set_new(o, "value", u256_quantity_json(call->value));
	return o;
}

int l1_rpc_estimate_gas(struct l1_rpc *c, const struct l1_call *call, uint64_t *gas)
{
	if (call == NULL || (call->data == NULL && call->data_len > 0))
		return L1_EINVAL;
	return call_u64(c, "eth_estimateGas", json_pack("[o]", call_object(call)), gas);
}

int l1_rpc_eth_call(struct l1_rpc *c, const struct l1_call *call, const char *tag,
		    uint8_t *out, size_t cap, size_t *len)
{
	json_t *j;
	int rc;

	if (call == NULL || len == NULL || (call->data == NULL && call->data_len > 0))
		return L1_EINVAL;
	*len = 0;
	rc = rpc_callp(c, "eth_call",
			 json_pack("[o, s]", call_object(call), tag ? tag : "latest"), &j);
	if (rc < 0)
		return rc;
	if (!json_is_string(j)) {
		rc = bad_result(c, "eth_call");
	} else {
		rc = l1_hex_decode(out, cap, len, json_string_value(j), json_string_length(j));
		if (rc == L1_EINVAL)
			rc = bad_result(c, "eth_call");
		else if (rc == L1_ETOOBIG)
			rc = L1_ENOSPC;
	}
	json_decref(j);
	return rc;
}

int l1_rpc_get_logs(struct l1_rpc *c, const struct l1_log_filter *f, struct l1_log_list *out)
{
	json_t *filter, *j;
	int rc;

	if (f == NULL || out == NULL)
		return L1_EINVAL;
	out->v = NULL;
	out->n = 0;
	filter = json_pack("{s:o, s:s, s:s}", "address", hex_json(f->address, 20), "fromBlock",
			   f->from_block ? f->from_block : "earliest", "toBlock",
			   f->to_block ? f->to_block : "latest");
	if (filter != NULL && f->has_topic0)
		json_object_set_new(filter, "topics",
				    f->has_topic1 ? json_pack("[o,o]", hex_json(f->topic0, 32),
							      hex_json(f->topic1, 32))
						  : json_pack("[o]", hex_json(f->topic0, 32)));
	rc = rpc_callp(c, "eth_getLogs", json_pack("[o]", filter), &j);
	if (rc < 0)
		return rc;
	if ((rc = parse_logs(j, out)) < 0 && rc != L1_ENOMEM)
		rc = bad_result(c, "eth_getLogs");
	json_decref(j);
	return rc;
}
