/*
 * rpc.c - JSON-RPC 2.0 on the lws thread: parse a message (one request or a
 * batch), authorise, answer what can be answered at once, and hand
 * submissions to the committer. A request object collects the answers of
 * every item and is sent once the last one is in; if the connection has
 * gone by then, the answers are dropped (the transactions stay durable and
 * resubmission is idempotent).
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/ops.h"
#include "appliance/server.h"
#include "l1bridge/l1.h"

/* ---- requests --------------------------------------------------------- */

/* idbytes: room for the ids' text (req_id), 0 for none. */
static struct app_req *req_new(struct app_conn *c, int is_batch, size_t n, size_t idbytes)
{
	/* One allocation: the request, then its ids, answers, answer buffers,
	 * answer lengths and answer flags, then the ids' text. A batch of 100
	 * requests paid 100 malloc and free of a few bytes for its ids, and the
	 * response's large malloc then walked every one of those freed chunks
	 * (malloc_consolidate). */
	const size_t per = 3 * sizeof(char *) + sizeof(size_t) + 1;
	struct app_req *r = n > (SIZE_MAX - sizeof(*r) - idbytes) / per
				    ? NULL
				    : calloc(1, sizeof(*r) + n * per + idbytes);

	if (!r)
		return NULL;
	r->ids = (char **)(r + 1);
	r->answers = r->ids + n;
	r->abuf = (struct app_answer_buf **)(r->answers + n);
	r->alen = (size_t *)(r->abuf + n);
	r->aflags = (unsigned char *)(r->alen + n);
	r->idpool = idbytes ? (char *)(r->aflags + n) : NULL;
	r->idpool_size = idbytes;
	r->conn = c;
	r->is_batch = is_batch;
	r->n = n;
	r->t0_ns = app_now_ns();
	r->next = c->reqs;
	if (c->reqs)
		c->reqs->prev = r;
	c->reqs = r;
	return r;
}

static void answer_drop(struct app_req *r, size_t i)
{
	if (!(r->aflags[i] & ANSWER_STATIC))
		app_answer_free(r->answers[i], r->abuf[i]);
	r->answers[i] = NULL;
	r->abuf[i] = NULL;
	r->aflags[i] = 0;
}

/* A copy of an id's JSON text (len bytes at id), in the request's pool
 * while it has room, else on the heap; NULL when out of memory. */
static char *req_id(struct app_req *r, const char *id, size_t len)
{
	char *p;

	if (len >= r->idpool_size - r->idpool_used)
		return strndup(id, len);
	p = r->idpool + r->idpool_used;
	memcpy(p, id, len);
	p[len] = '\0';
	r->idpool_used += len + 1;
	return p;
}

static void req_id_free(struct app_req *r, size_t i)
{
	/* addresses as integers: p may point into another allocation */
	uintptr_t p = (uintptr_t)r->ids[i], pool = (uintptr_t)r->idpool;

	if (!pool || p < pool || p - pool >= r->idpool_size)
		free(r->ids[i]);
	r->ids[i] = NULL;
}

static void req_free(struct app_req *r)
{
	for (size_t i = 0; i < r->n; i++) {
		req_id_free(r, i);
		answer_drop(r, i);
		if (r->sections)
			free(r->sections[i]);
	}
	free(r->sections);
	free(r);
}

/* No answer is sent for slot i: a notification (no id). */
static int req_quiet(const struct app_req *r, size_t i)
{
	return !r->ids[r->txs ? 0 : i];
}

static void req_unlink(struct app_req *r)
{
	struct app_conn *c = r->conn;

	if (!c)
		return;
	if (r->prev)
		r->prev->next = r->next;
	else
		c->reqs = r->next;
	if (r->next)
		r->next->prev = r->prev;
	r->conn = NULL;
}

/*
 * The subscriptions a batch made, once its answer (with their ids) is
 * queued: fed from now on, or freed when they were answered with an error
 * after all (refused) or the connection is gone. A subscription made in a
 * batch is held until then so that no notification under its id comes
 * before the id itself.
 */
static void release_held(struct app_server *s, struct app_conn *c, struct app_req *r,
			 int refused)
{
	struct app_subscr *sub = r->held_subs, *next;

	for (; sub; sub = next) {
		next = sub->next;
		if (refused || !c) {
			app_feed_sub_free(s, sub);
			continue;
		}
		sub->next = c->subs;
		c->subs = sub;
	}
	r->held_subs = NULL;
	if (c)
		app_conn_wake(c);
}

void app_req_detach_all(struct app_conn *c)
{
	struct app_req *r = c->reqs, *next;

	for (; r; r = next) {
		next = r->next;
		release_held(c->srv, NULL, r, 1);
		r->conn = NULL;
		r->prev = r->next = NULL;
		if (r->pending == 0)
			req_free(r);
	}
	c->reqs = NULL;
}

/*
 * Store item i's answer: `value` (NUL-terminated, of length vn; 0: not
 * known, measured here) is a result value or an error object, malloc'd or,
 * with buf, lying in that answer buffer; the request owns it (or buf's
 * reference) from here. The response object around it
 * ({"jsonrpc":"2.0","id":...}) is written once, by req_finish, straight
 * into the message the connection queues: a batch of 100 receipts is one
 * allocation and one copy of each, not two.
 */
static void req_take(struct app_req *r, size_t i, int is_error, char *value, size_t vn,
		     struct app_answer_buf *buf)
{
	if (req_quiet(r, i)) { /* a notification gets no answer */
		app_answer_free(value, buf);
		return;
	}
	answer_drop(r, i);
	if (!value) {
		static const char oom[] =
			"{\"code\":-32603,\"message\":\"internal error: out of memory\"}";

		r->answers[i] = (char *)oom;
		r->alen[i] = sizeof(oom) - 1;
		r->aflags[i] = ANSWER_ERROR | ANSWER_STATIC;
		return;
	}
	r->answers[i] = value;
	r->abuf[i] = buf;
	r->alen[i] = vn ? vn : strlen(value);
	r->aflags[i] = is_error ? ANSWER_ERROR : 0;
}

/* As req_take, with a copy of value (of length vn; 0: not known, measured
 * here). A NULL value (its maker ran out of memory) answers that error. */
static void req_set(struct app_req *r, size_t i, int is_error, const char *value, size_t vn)
{
	char *copy = NULL;

	if (req_quiet(r, i))
		return;
	if (value && !vn)
		vn = strlen(value);
	if (value)
		copy = malloc(vn + 1);
	if (copy) {
		memcpy(copy, value, vn);
		copy[vn] = '\0';
	}
	req_take(r, i, is_error, copy, vn, NULL);
}

static const char answer_head[] = "{\"jsonrpc\":\"2.0\",\"id\":";

/* The keys before an answer's value, by its ANSWER_ERROR flag. */
static const char *answer_key(const struct app_req *r, size_t i, size_t *kn)
{
	int err = r->aflags[i] & ANSWER_ERROR;

	*kn = err ? sizeof(",\"error\":") - 1 : sizeof(",\"result\":") - 1;
	return err ? ",\"error\":" : ",\"result\":";
}

/* Length of item i's whole response object. */
static size_t answer_size(const struct app_req *r, size_t i)
{
	size_t kn;

	answer_key(r, i, &kn);
	return sizeof(answer_head) - 1 + strlen(r->ids[i]) + kn + r->alen[i] + 1;
}

/* Writes item i's response object at w; returns the end. */
static char *answer_put(const struct app_req *r, size_t i, char *w)
{
	size_t kn, idn = strlen(r->ids[i]);
	const char *key = answer_key(r, i, &kn);

	memcpy(w, answer_head, sizeof(answer_head) - 1);
	w += sizeof(answer_head) - 1;
	memcpy(w, r->ids[i], idn);
	w += idn;
	memcpy(w, key, kn);
	w += kn;
	memcpy(w, r->answers[i], r->alen[i]);
	w += r->alen[i];
	*w++ = '}';
	return w;
}

static void req_error(struct app_req *r, size_t i, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void req_error(struct app_req *r, size_t i, int code, const char *fmt, ...)
{
	char msg[512], *e;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	e = app_error_json(code, "%s", msg);
	req_set(r, i, 1, e, 0);
	free(e);
}

/*
 * The response to mezz_sendTransactions (docs/API.md): the namespace, the
 * appliance's key, each group's section, then one entry per transaction,
 * in the order given: a brief entry, {"receipt": R} (sequenced before, or
 * answered outside a section) or {"error": E}. -1 if it would pass the
 * connection's queue cap (the caller answers that error instead).
 */
static int req_finish_txs(struct app_req *r)
{
	struct app_conn *c = r->conn;
	const struct app_namespace *ns = &r->txs_ns;
	char pk[2 + 64 + 1], head[256];
	size_t total, hn, idn = strlen(r->ids[0]);
	char *out, *w;

	l1_hex_encode(pk, c->srv->id->pk, 32);
	hn = (size_t)snprintf(head, sizeof(head),
			      ",\"result\":{\"namespace\":\"%s\",\"chainId\":%llu,"
			      "\"publicKey\":\"%s\",\"groups\":[",
			      ns->name, (unsigned long long)ns->chain_id, pk);
	total = sizeof(answer_head) - 1 + idn + hn + sizeof("],\"txs\":[]}}");
	for (size_t i = 0; i < r->n; i++) {
		if (r->sections && r->sections[i])
			total += strlen(r->sections[i]) + 1;
		total += r->alen[i] + sizeof("{\"receipt\":},") + 64; /* 64: a missing answer */
	}
	if (c->is_ws && total > (size_t)c->srv->cfg->ws_send_queue_bytes)
		return -1;
	if (!c->is_ws && r->limited && r->limited == r->n)
		c->http_status = 429; /* every transaction refused by a rate limit */
	out = app_msg_alloc(total + 1);
	if (!out) {
		app_conn_drop(c, "out of memory building a batch receipt");
		return 0;
	}
	w = out;
	memcpy(w, answer_head, sizeof(answer_head) - 1);
	w += sizeof(answer_head) - 1;
	memcpy(w, r->ids[0], idn);
	w += idn;
	memcpy(w, head, hn);
	w += hn;
	for (size_t i = 0, first = 1; r->sections && i < r->n; i++)
		if (r->sections[i]) {
			if (!first)
				*w++ = ',';
			first = 0;
			w += strlen(strcpy(w, r->sections[i]));
		}
	w += strlen(strcpy(w, "],\"txs\":["));
	for (size_t i = 0; i < r->n; i++) {
		const char *key = r->aflags[i] & ANSWER_BRIEF ? ""
				  : r->aflags[i] & ANSWER_ERROR ? "{\"error\":"
								: "{\"receipt\":";
		static const char oom[] =
			"{\"code\":-32603,\"message\":\"internal error: no answer\"}";

		if (i)
			*w++ = ',';
		if (!r->answers[i]) { /* cannot happen: every slot is answered */
			w += strlen(strcpy(w, "{\"error\":"));
			memcpy(w, oom, sizeof(oom) - 1);
			w += sizeof(oom) - 1;
			*w++ = '}';
			continue;
		}
		w += strlen(strcpy(w, key));
		memcpy(w, r->answers[i], r->alen[i]);
		w += r->alen[i];
		if (*key)
			*w++ = '}';
	}
	w += strlen(strcpy(w, "]}}"));
	app_conn_send_msg(c, out, (size_t)(w - out), 0, 0, 0);
	return 0;
}

static void req_finish(struct app_req *r)
{
	struct app_conn *c = r->conn;
	size_t total = 2, n = 0;
	char *out = NULL;
	int refused = 0;

	if (!c) {
		req_free(r);
		return;
	}
	if (r->txs && !req_quiet(r, 0)) {
		if (req_finish_txs(r) == 0) {
			req_unlink(r);
			req_free(r);
			return;
		}
		/* too big to queue: the error below, for the whole request */
		r->txs = 0;
		for (size_t i = 1; i < r->n; i++)
			answer_drop(r, i);
		req_error(r, 0, RPC_TOO_LARGE,
			  "the batch receipt would pass server.ws_send_queue_bytes (%ld); the "
			  "transactions are sequenced (mezz_getPreconfirmation gives each "
			  "receipt): send fewer per message",
			  c->srv->cfg->ws_send_queue_bytes);
	}
	for (size_t i = 0; i < r->n; i++)
		if (r->answers[i]) {
			total += answer_size(r, i) + 1;
			n++;
		}
	/* A response the connection could never queue is answered with an
	 * error instead of dropping the connection. */
	if (c->is_ws && total > (size_t)c->srv->cfg->ws_send_queue_bytes) {
		for (size_t i = 0; i < r->n; i++)
			if (r->answers[i])
				req_error(r, i, RPC_TOO_LARGE,
					  "response would be %zu bytes, over server.ws_send_queue_bytes "
					  "(%ld); ask for less per message",
					  total, c->srv->cfg->ws_send_queue_bytes);
		refused = 1;
		total = 2;
		for (size_t i = 0; i < r->n; i++)
			if (r->answers[i])
				total += answer_size(r, i) + 1;
	}
	/* Over HTTP, a request refused only by rate limits is a 429. */
	if (!c->is_ws && r->limited && r->limited == n)
		c->http_status = 429; /* lws 4.1 names no 429 */
	if (n && (out = app_msg_alloc(total + 1))) { /* one message, queued as it is */
		char *w = out;
		int first = 1;

		if (r->is_batch)
			*w++ = '[';
		for (size_t i = 0; i < r->n; i++) {
			if (!r->answers[i])
				continue;
			if (!first)
				*w++ = ',';
			first = 0;
			w = answer_put(r, i, w);
		}
		if (r->is_batch)
			*w++ = ']';
		app_conn_send_msg(c, out, (size_t)(w - out), 0, 0, 0);
	} else if (!c->is_ws) { /* only notifications: HTTP still needs a reply */
		c->http_status = HTTP_STATUS_NO_CONTENT;
		app_conn_wake(c);
	}
	if (r->held_subs)
		release_held(c->srv, c, r, refused || !out);
	req_unlink(r);
	req_free(r);
}

void app_rpc_answer(struct app_server *s, struct app_done *d, uint64_t now_ns)
{
	struct app_req *r = d->req;

	(void)s;
	if (!d->is_error) {
		app_metric_observe(APP_M_preconfirmation_seconds,
				   (now_ns > r->t0_ns ? now_ns - r->t0_ns : 0) / 1000);
		/* Its three parts, when it went through a group. The clocks are
		 * read in this order, so the parts add up to the whole. */
		if (d->pop_ns && d->durable_ns && r->t0_ns <= d->pop_ns &&
		    d->pop_ns <= d->durable_ns && d->durable_ns <= now_ns) {
			app_metric_observe(APP_M_preconf_queue_seconds,
					   (d->pop_ns - r->t0_ns) / 1000);
			app_metric_observe(APP_M_preconf_commit_seconds,
					   (d->durable_ns - d->pop_ns) / 1000);
			app_metric_observe(APP_M_preconf_answer_seconds,
					   (now_ns - d->durable_ns) / 1000);
		}
	}
	if (r->conn) {
		req_take(r, d->slot, d->is_error, d->json, d->json ? d->json_len : 0, d->buf);
		if (d->brief && d->json && r->answers[d->slot] == d->json)
			r->aflags[d->slot] |= ANSWER_BRIEF;
		if (d->section && r->sections && !r->sections[d->slot]) {
			r->sections[d->slot] = d->section;
			d->section = NULL;
		}
		free(d->section);
		d->section = NULL;
	} else {
		app_done_json_free(d);
	}
	if (--r->pending == 0) {
		if (r->conn)
			req_finish(r);
		else
			req_free(r);
	}
}

/* ---- helpers ---------------------------------------------------------- */

int app_conn_tenant(struct app_conn *c, int64_t *tenant)
{
	struct app_auth *a = &c->srv->auth;

	*tenant = 0;
	if (c->auth_bad)
		return -1;
	if (!c->auth[0])
		return 0;
	/* A key revoked while the version cannot be read would keep its cached
	 * answer: the feed, which has no message to refuse, would go on sending
	 * the key's private namespaces. Until a re-read works, no key counts. */
	if (a->stale)
		return -1;
	/* The key's answer holds until the auth version moves: a revocation
	 * bumps it, and whoever calls here has refreshed it first (per message,
	 * per block fanned out, per feed pump). A key lookup is a SQLite read. */
	if (!c->key_known || c->key_version != a->version) {
		c->key_ok = app_auth_bearer(a, c->auth, &c->key_tenant) == 0;
		c->key_version = a->version;
		c->key_known = 1;
	}
	if (!c->key_ok)
		return -1;
	*tenant = c->key_tenant;
	return 0;
}

/* The caller as resolved once for the message being handled (see
 * app_rpc_handle): every item of a batch is judged by the same key state. */
static int msg_tenant(struct app_conn *c, int64_t *tenant)
{
	*tenant = c->msg_tenant;
	return c->msg_key_ok ? 0 : -1;
}

/* Resolve a namespace argument (name string or chain id number). */
static const struct app_namespace *ns_arg(struct app_server *s, json_t *v)
{
	if (json_is_string(v))
		return app_auth_ns_by_name(&s->auth, json_string_value(v));
	if (json_is_integer(v) && json_integer_value(v) > 0)
		return app_auth_ns_by_id(&s->auth, (uint64_t)json_integer_value(v));
	return NULL;
}

/* Checks the caller may submit to ns; on refusal sets the answer. */
static int check_ingress(struct app_req *r, size_t i, const struct app_namespace *ns,
			 int64_t tenant, int key_ok)
{
	if (!key_ok) {
		req_error(r, i, RPC_UNAUTHORIZED,
			  "invalid or revoked API key (send 'Authorization: Bearer <key>')");
		return -1;
	}
	/* A key acts only within its own tenant, even on a public namespace:
	 * a misdirected key is a client bug worth surfacing, not ignoring. */
	if (tenant && tenant != ns->tenant_id) {
		req_error(r, i, RPC_FORBIDDEN, "this API key's tenant does not own namespace '%s'",
			  ns->name);
		return -1;
	}
	if (app_auth_may_ingress(ns, tenant))
		return 0;
	if (!tenant)
		req_error(r, i, RPC_UNAUTHORIZED,
			  "namespace '%s' accepts transactions only with its tenant's API key",
			  ns->name);
	return -1;
}

/* Decode a 0x-hex payload with the size cap checked before allocation. */
static uint8_t *hex_decode_payload(struct app_req *r, size_t i, struct app_server *s,
				   const char *h, size_t hl, size_t *len)
{
	size_t bytes;
	uint8_t *buf;

	if (hl < 2 || h[0] != '0' || (h[1] != 'x' && h[1] != 'X') || (hl & 1)) {
		req_error(r, i, RPC_INVALID_PARAMS,
			  "data must be 0x-prefixed hex with an even number of digits");
		return NULL;
	}
	bytes = (hl - 2) / 2;
	if (bytes == 0) {
		req_error(r, i, RPC_INVALID_PARAMS, "data must not be empty");
		return NULL;
	}
	if (bytes > (size_t)s->cfg->max_tx_bytes) {
		req_error(r, i, RPC_TOO_LARGE,
			  "transaction is %zu bytes; server.max_tx_bytes is %ld", bytes,
			  s->cfg->max_tx_bytes);
		return NULL;
	}
	buf = malloc(bytes);
	if (!buf || l1_hex_decode(buf, bytes, len, h, hl) != 0) {
		free(buf);
		req_error(r, i, RPC_INVALID_PARAMS, "data is not valid hex");
		return NULL;
	}
	return buf;
}

static uint8_t *hex_payload(struct app_req *r, size_t i, struct app_server *s, json_t *v,
			    size_t *len)
{
	if (!json_is_string(v)) {
		req_error(r, i, RPC_INVALID_PARAMS, "data must be a 0x-prefixed hex string");
		return NULL;
	}
	return hex_decode_payload(r, i, s, json_string_value(v), json_string_length(v), len);
}

struct subs_vec {
	struct app_sub *v;
	size_t n, cap;
};

static int subs_add(struct subs_vec *sv, const struct app_sub *s)
{
	if (sv->n == sv->cap) {
		size_t cap = sv->cap ? sv->cap * 2 : 16;
		struct app_sub *nv = realloc(sv->v, cap * sizeof(*nv));

		if (!nv)
			return -1;
		sv->v = nv;
		sv->cap = cap;
	}
	sv->v[sv->n++] = *s;
	return 0;
}

/* Rate limits (limits.h): on refusal answer -32009 with a retry hint. */
static int rpc_admit(struct app_req *r, size_t i, const struct app_namespace *ns, double ntx,
		     size_t len)
{
	struct app_conn *c = r->conn;
	const char *what;
	uint64_t wait = app_limits_admit(&c->srv->limits, c->wsi, ns->tenant_id, c->msg_tenant,
					 ntx, len, r->t0_ns, &what);
	char *e;

	/* What this message asks of its buckets, for its turn (server.c): the
	 * admitted items and, on a WebSocket, the refused one it resends. */
	c->pace_owner = ns->tenant_id;
	if (!wait || !c->pace_refused) {
		c->pace_txs += ntx;
		c->pace_bytes += (double)len;
	}
	if (!wait)
		return 0;
	c->pace_refused = 1;
	e = app_error_data_json(RPC_RATE_LIMITED, wait, what);
	req_set(r, i, 1, e, 0);
	free(e);
	if (r->txs || r->ids[i]) /* an answer that is sent: 429 counts those */
		r->limited++;
	if (wait > c->retry_after_ms && !c->is_ws)
		c->retry_after_ms = wait;
	if (wait > c->rx_pause_ms && c->is_ws)
		c->rx_pause_ms = wait;
	return -1;
}

static void queue_sub(struct app_req *r, size_t i, struct subs_vec *sv,
		      const struct app_namespace *ns, uint8_t *data, size_t len,
		      const uint8_t hash[32], int want_hash)
{
	struct app_sub s = {.req = r, .slot = (uint32_t)i, .ns = ns->chain_id,
			    .want_hash = want_hash, .data = data, .len = len};

	if (rpc_admit(r, i, ns, 1, len)) {
		free(data);
		return;
	}
	snprintf(s.ns_name, sizeof(s.ns_name), "%s", ns->name);
	memcpy(s.hash, hash, 32);
	if (subs_add(sv, &s)) {
		free(data);
		req_error(r, i, RPC_INTERNAL, "out of memory");
		return;
	}
	r->pending++;
}

/* ---- methods ---------------------------------------------------------- */

/*
 * One submission, however it was read: the namespace (NULL: unknown), the
 * caller's rights to it, then the payload (h == NULL: "data" was not a
 * string), its hash, and the queue.
 */
static void send_tx(struct app_conn *c, struct app_req *r, size_t i,
		    const struct app_namespace *ns, const char *h, size_t hl, struct subs_vec *sv)
{
	int64_t tenant;
	int key_ok = msg_tenant(c, &tenant) == 0;
	uint8_t *data, hash[32];
	size_t len;

	if (!ns) {
		req_error(r, i, RPC_UNKNOWN_NAMESPACE, "unknown namespace (give its name)");
		return;
	}
	c->item_ns = ns;
	if (check_ingress(r, i, ns, tenant, key_ok))
		return;
	if (!h) {
		req_error(r, i, RPC_INVALID_PARAMS, "data must be a 0x-prefixed hex string");
		return;
	}
	data = hex_decode_payload(r, i, c->srv, h, hl, &len);
	if (!data)
		return;
	l1_keccak256(hash, data, len);
	queue_sub(r, i, sv, ns, data, len, hash, 0);
}

static void m_send_transaction(struct app_conn *c, struct app_req *r, size_t i, json_t *params,
			       struct subs_vec *sv)
{
	json_t *p = json_is_array(params) ? json_array_get(params, 0) : params, *d;

	if (!json_is_object(p) || (json_is_array(params) && json_array_size(params) != 1)) {
		req_error(r, i, RPC_INVALID_PARAMS,
			  "params must be {\"namespace\": NAME, \"data\": \"0x...\"}");
		return;
	}
	d = json_object_get(p, "data");
	send_tx(c, r, i, ns_arg(c->srv, json_object_get(p, "namespace")),
		json_is_string(d) ? json_string_value(d) : NULL, json_string_length(d), sv);
}

/* The namespace named by a span of the message (fastrpc.c), or NULL. */
static const struct app_namespace *ns_by_span(struct app_conn *c, const char *p, size_t n)
{
	char name[64];

	if (n >= sizeof(name)) /* longer is no namespace's name */
		return NULL;
	memcpy(name, p, n);
	name[n] = 0;
	return app_auth_ns_by_name(&c->srv->auth, name);
}

/* The same request read by fastrpc.c: its fields are spans of the message. */
static void m_send_transaction_fast(struct app_conn *c, struct app_req *r, size_t i,
				    const struct app_fast_tx *t, struct subs_vec *sv)
{
	send_tx(c, r, i, ns_by_span(c, t->ns, t->ns_len), t->data, t->data_len, sv);
}

/* Whether leg k is the first of its tenant's legs; then *ntx and *bytes
 * are that tenant's legs and their bytes. */
static int leg_group(const struct app_namespace *const *ns, const struct app_sub *legs, size_t n,
		     size_t k, double *ntx, size_t *bytes)
{
	*ntx = 0;
	*bytes = 0;
	for (size_t j = 0; j < k; j++)
		if (ns[j]->tenant_id == ns[k]->tenant_id)
			return 0;
	for (size_t j = k; j < n; j++)
		if (ns[j]->tenant_id == ns[k]->tenant_id) {
			*ntx += 1;
			*bytes += legs[j].len;
		}
	return 1;
}

/*
 * mezz_sendBundle {"txs": [{"namespace": NAME, "data": "0x..."}, ...]}: an
 * atomic bundle across namespaces. Each leg is checked as a single
 * transaction is (namespace, ingress rights, size, rate); then the legs go
 * to the committer as one run, which puts them in one group (so one slot and
 * one superblock) at consecutive sequence numbers, or stores none of them.
 */
static void m_send_bundle(struct app_conn *c, struct app_req *r, size_t i, json_t *params,
			  struct subs_vec *sv)
{
	struct app_server *s = c->srv;
	json_t *p = json_is_array(params) ? json_array_get(params, 0) : params;
	json_t *txs = json_is_object(p) ? json_object_get(p, "txs") : NULL, *leg;
	struct app_sub legs[APP_BUNDLE_MAX_LEGS];
	const struct app_namespace *leg_ns[APP_BUNDLE_MAX_LEGS];
	int64_t tenant;
	int key_ok = msg_tenant(c, &tenant) == 0;
	size_t n = 0, k, admitted = 0;

	if (!json_is_array(txs) || json_array_size(txs) < 2 ||
	    json_array_size(txs) > APP_BUNDLE_MAX_LEGS) {
		req_error(r, i, RPC_INVALID_PARAMS,
			  "params must be {\"txs\": [{\"namespace\": NAME, \"data\": \"0x...\"}, "
			  "...]} with 2 to %d legs",
			  APP_BUNDLE_MAX_LEGS);
		return;
	}
	json_array_foreach(txs, k, leg) {
		const struct app_namespace *ns = ns_arg(s, json_object_get(leg, "namespace"));
		struct app_sub *l = &legs[n];
		uint8_t *data;
		size_t len;

		if (!json_is_object(leg) || !ns) {
			req_error(r, i, RPC_UNKNOWN_NAMESPACE,
				  "txs[%zu]: unknown namespace (give its name)", k);
			goto fail;
		}
		c->item_ns = ns;
		if (check_ingress(r, i, ns, tenant, key_ok))
			goto fail;
		data = hex_payload(r, i, s, json_object_get(leg, "data"), &len);
		if (!data)
			goto fail;
		memset(l, 0, sizeof(*l));
		l->req = r;
		l->slot = (uint32_t)i;
		l->ns = ns->chain_id;
		l->data = data;
		l->len = len;
		l->bundle_leg = (uint16_t)n;
		snprintf(l->ns_name, sizeof(l->ns_name), "%s", ns->name);
		l1_keccak256(l->hash, data, len);
		leg_ns[n] = ns;
		n++;
		for (size_t j = 0; j + 1 < n; j++)
			if (legs[j].ns == l->ns && !memcmp(legs[j].hash, l->hash, 32)) {
				req_error(r, i, RPC_INVALID_PARAMS,
					  "txs[%zu] repeats txs[%zu]: a bundle holds each "
					  "transaction once", k, j);
				goto fail;
			}
	}
	/* Admitted as one: for each tenant whose namespaces the legs go to,
	 * all its legs' tokens at once (a bundle bigger than a bucket passes
	 * when the bucket is full, as one big transaction does), and every
	 * tenant or none: a refused bundle takes no tokens. */
	for (; admitted < n; admitted++) {
		double ntx;
		size_t bytes;

		if (leg_group(leg_ns, legs, n, admitted, &ntx, &bytes) &&
		    rpc_admit(r, i, leg_ns[admitted], ntx, bytes))
			goto fail;
	}
	legs[0].bundle_n = (uint16_t)n;
	for (k = 0; k < n; k++)
		if (subs_add(sv, &legs[k])) {
			/* legs already added belong to sv now: mark them as not to be sent */
			req_error(r, i, RPC_INTERNAL, "out of memory");
			sv->n -= k;
			goto fail;
		}
	r->pending++;
	return;
fail:
	for (k = 0; k < admitted; k++) {
		double ntx;
		size_t bytes;

		if (leg_group(leg_ns, legs, n, k, &ntx, &bytes))
			app_limits_refund(&s->limits, c->wsi, leg_ns[k]->tenant_id, c->msg_tenant,
					  ntx, bytes);
	}
	for (k = 0; k < n; k++)
		free(legs[k].data);
}

static void ingress_count(struct app_server *s, int64_t tenant, size_t bytes, int rejected);

/*
 * mezz_sendTransactions {"namespace": NAME, "txs": ["0x...", ...]}: many
 * transactions of one namespace in one request, answered with one batch
 * receipt (docs/API.md). Each transaction is checked, limited and
 * sequenced on its own, exactly as mezz_sendTransaction would do it (no
 * atomicity: mezz_sendBundle is for that); only the answer is shared.
 * Slot k of r is txs[k]. Sent on its own, never inside a JSON-RPC batch.
 *
 * send_txs: its transactions, however the message was read (fastrpc.c or
 * jansson): items[k] is txs[k] (data NULL: not a string), k < r->n.
 */
static void send_txs(struct app_conn *c, struct app_req *r, const struct app_namespace *ns,
		     const struct app_fast_tx *items, struct subs_vec *sv)
{
	struct app_server *s = c->srv;
	int64_t tenant;
	int key_ok = msg_tenant(c, &tenant) == 0;

	if (!ns) {
		req_error(r, 0, RPC_UNKNOWN_NAMESPACE, "unknown namespace (give its name)");
		return;
	}
	if (check_ingress(r, 0, ns, tenant, key_ok)) {
		for (size_t k = 0; k < r->n; k++)
			ingress_count(s, ns->tenant_id, 0, 1);
		return;
	}
	r->sections = calloc(r->n, sizeof(*r->sections));
	if (!r->sections) {
		req_error(r, 0, RPC_INTERNAL, "out of memory");
		return;
	}
	r->txs = 1;
	r->txs_ns = *ns;
	for (size_t k = 0; k < r->n; k++) {
		size_t queued = sv->n, len;
		uint8_t *data = items[k].data ? hex_decode_payload(r, k, s, items[k].data,
								   items[k].data_len, &len)
					      : NULL;
		uint8_t hash[32];

		if (!items[k].data)
			req_error(r, k, RPC_INVALID_PARAMS,
				  "txs[%zu] must be a 0x-prefixed hex string", k);
		if (data) {
			l1_keccak256(hash, data, len);
			queue_sub(r, k, sv, ns, data, len, hash, 0);
			if (sv->n > queued)
				sv->v[sv->n - 1].brief = 1;
		}
		if (sv->n == queued)
			ingress_count(s, ns->tenant_id, 0, 1);
	}
}

static void m_send_transactions(struct app_conn *c, struct app_req *r, size_t i, json_t *params,
				struct subs_vec *sv)
{
	struct app_server *s = c->srv;
	json_t *p = json_is_array(params) ? json_array_get(params, 0) : params;
	json_t *txs = json_is_object(p) ? json_object_get(p, "txs") : NULL, *v;
	const struct app_namespace *ns = json_is_object(p) ? ns_arg(s, json_object_get(p, "namespace"))
							   : NULL;
	struct app_fast_tx *items;
	size_t k;

	if (r->is_batch) {
		req_error(r, i, RPC_INVALID_REQUEST,
			  "mezz_sendTransactions carries its own batch: send it as a message of "
			  "its own, not inside a JSON-RPC batch");
		return;
	}
	if (!json_is_array(txs) || json_array_size(txs) != r->n ||
	    (json_is_array(params) && json_array_size(params) != 1)) {
		req_error(r, 0, RPC_INVALID_PARAMS,
			  "params must be {\"namespace\": NAME, \"txs\": [\"0x...\", ...]} with 1 "
			  "to server.max_batch_items (%ld) transactions",
			  s->cfg->max_batch_items);
		return;
	}
	items = calloc(r->n, sizeof(*items));
	if (!items) {
		req_error(r, 0, RPC_INTERNAL, "out of memory");
		return;
	}
	json_array_foreach(txs, k, v)
		if (json_is_string(v)) {
			items[k].data = json_string_value(v);
			items[k].data_len = json_string_length(v);
		}
	send_txs(c, r, ns, items, sv);
	free(items);
}

static void m_eth_send_raw(struct app_conn *c, struct app_req *r, size_t i, json_t *params,
			   struct subs_vec *sv, const struct app_namespace *ns)
{
	struct app_server *s = c->srv;
	struct l1_tx tx;
	int64_t tenant;
	int key_ok = msg_tenant(c, &tenant) == 0, rc;
	uint8_t *raw;
	size_t len;

	if (!json_is_array(params) || json_array_size(params) != 1) {
		req_error(r, i, RPC_INVALID_PARAMS, "params must be [\"0x<signed transaction>\"]");
		return;
	}
	c->item_ns = ns;
	if (check_ingress(r, i, ns, tenant, key_ok))
		return;
	raw = hex_payload(r, i, s, json_array_get(params, 0), &len);
	if (!raw)
		return;
	rc = l1_tx_decode(&tx, raw, len, ns->chain_id, (size_t)s->cfg->max_tx_bytes);
	if (rc == L1_ECHAINID) {
		req_error(r, i, RPC_INVALID_TX,
			  "invalid transaction: wrong chain id (this endpoint is chain %llu)",
			  (unsigned long long)ns->chain_id);
		free(raw);
		return;
	}
	if (rc) {
		req_error(r, i, RPC_INVALID_TX, "invalid transaction: %s", app_strerror(rc));
		free(raw);
		return;
	}
	queue_sub(r, i, sv, ns, raw, len, tx.hash, 1);
}

static void m_get_preconfirmation(struct app_conn *c, struct app_req *r, size_t i,
				  json_t *params)
{
	struct app_server *s = c->srv;
	json_t *p = json_is_array(params) ? json_array_get(params, 0) : params;
	json_t *h = json_is_object(p) ? json_object_get(p, "hash") : p;
	const struct app_namespace *ns = NULL;
	struct app_tx tx;
	struct seq_receipt rc;
	uint8_t hash[32];
	size_t hl;
	int64_t tenant;
	char *json;

	if (!json_is_string(h) ||
	    l1_hex_decode(hash, 32, &hl, json_string_value(h), json_string_length(h)) || hl != 32) {
		req_error(r, i, RPC_INVALID_PARAMS, "params must be {\"hash\": \"0x<32 bytes>\"}");
		return;
	}
	if (json_is_object(p) && json_object_get(p, "namespace")) {
		ns = ns_arg(s, json_object_get(p, "namespace"));
		if (!ns) {
			req_error(r, i, RPC_UNKNOWN_NAMESPACE, "unknown namespace");
			return;
		}
	}
	if (msg_tenant(c, &tenant)) {
		req_error(r, i, RPC_UNAUTHORIZED, "invalid or revoked API key");
		return;
	}
	/* Stored but not yet durable (storage.sync_pipeline) is not preconfirmed. */
	if (app_store_tx_find(s->ro, ns ? ns->chain_id : 0, hash, &tx) ||
	    tx.seq >= atomic_load(&s->committer->stats.durable_seq)) {
		req_error(r, i, RPC_NOT_FOUND, "no preconfirmed transaction with that hash");
		return;
	}
	ns = app_auth_ns_by_id(&s->auth, tx.ns);
	if (!ns || !app_auth_may_read(ns, tenant)) {
		/* Same answer as absent: do not reveal private namespaces' contents. */
		req_error(r, i, RPC_NOT_FOUND, "no preconfirmed transaction with that hash");
		return;
	}
	if (app_receipt_load(s->ro, &tx, &rc)) {
		req_error(r, i, RPC_INTERNAL, "stored receipt could not be read");
		return;
	}
	json = app_receipt_json(&rc, ns->name, s->id->pk, NULL);
	req_set(r, i, 0, json, 0);
	free(json);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Parse a namespaces filter (array of names or chain ids) the caller may
 * read, as a set: chain ids sorted, each once, so that filters naming the
 * same namespaces are one view of a block (feed.c view_get). */
static int ns_filter(struct app_conn *c, struct app_req *r, size_t i, json_t *arr,
		     int64_t tenant, uint64_t **out, size_t *n)
{
	size_t k;
	json_t *v;

	*out = NULL;
	*n = 0;
	if (!arr)
		return 0;
	if (!json_is_array(arr) || json_array_size(arr) == 0 || json_array_size(arr) > 1024) {
		req_error(r, i, RPC_INVALID_PARAMS, "namespaces must be a non-empty array of names");
		return -1;
	}
	*out = calloc(json_array_size(arr), sizeof(uint64_t));
	if (!*out) {
		req_error(r, i, RPC_INTERNAL, "out of memory");
		return -1;
	}
	json_array_foreach(arr, k, v) {
		const struct app_namespace *ns = ns_arg(c->srv, v);

		if (!ns) {
			req_error(r, i, RPC_UNKNOWN_NAMESPACE, "unknown namespace at index %zu", k);
			goto fail;
		}
		if (!app_auth_may_read(ns, tenant)) {
			req_error(r, i, tenant ? RPC_FORBIDDEN : RPC_UNAUTHORIZED,
				  "the feed of namespace '%s' needs its tenant's API key", ns->name);
			goto fail;
		}
		(*out)[(*n)++] = ns->chain_id;
	}
	qsort(*out, *n, sizeof(**out), cmp_u64);
	k = 0;
	for (size_t a = 0; a < *n; a++)
		if (k == 0 || (*out)[a] != (*out)[k - 1])
			(*out)[k++] = (*out)[a];
	*n = k;
	return 0;
fail:
	free(*out);
	*out = NULL;
	return -1;
}

static void m_get_block(struct app_conn *c, struct app_req *r, size_t i, json_t *params)
{
	struct app_server *s = c->srv;
	json_t *p = json_is_array(params) ? json_array_get(params, 0) : params;
	json_t *hv = json_is_object(p) ? json_object_get(p, "height") : p;
	uint64_t *filter = NULL;
	size_t fn = 0;
	int64_t tenant;
	struct app_block *b;
	char *json;

	if (!json_is_integer(hv) || json_integer_value(hv) < 1) {
		req_error(r, i, RPC_INVALID_PARAMS, "params must be {\"height\": N} with N >= 1");
		return;
	}
	if (msg_tenant(c, &tenant)) {
		req_error(r, i, RPC_UNAUTHORIZED, "invalid or revoked API key");
		return;
	}
	if (json_is_object(p) &&
	    ns_filter(c, r, i, json_object_get(p, "namespaces"), tenant, &filter, &fn))
		return;
	b = app_feed_get(s, (uint64_t)json_integer_value(hv));
	if (!b) {
		free(filter);
		req_error(r, i, RPC_NOT_FOUND, "no sealed block at height %lld",
			  (long long)json_integer_value(hv));
		return;
	}
	json = app_feed_block_json(s, b, filter, fn, tenant, "sealed");
	app_block_unref(b);
	free(filter);
	req_set(r, i, 0, json, 0);
	free(json);
}

/* {"height": N, ...} or [N, ...]: the height, or 0 after answering an error. */
static uint64_t height_param(struct app_req *r, size_t i, json_t *params, const char *usage)
{
	json_t *p = json_is_array(params) ? json_array_get(params, 0) : params;
	json_t *hv = json_is_object(p) ? json_object_get(p, "height") : p;

	if (!json_is_integer(hv) || json_integer_value(hv) < 1) {
		req_error(r, i, RPC_INVALID_PARAMS, "params must be %s with height >= 1", usage);
		return 0;
	}
	return (uint64_t)json_integer_value(hv);
}

/* The second parameter: params[1] or params[key]. */
static json_t *second_param(json_t *params, const char *key)
{
	if (json_is_array(params))
		return json_array_get(params, 1);
	return json_is_object(params) ? json_object_get(params, key) : NULL;
}

/* The caller may read ns's feed; else the answer is set and -1. */
static int check_feed_read(struct app_conn *c, struct app_req *r, size_t i,
			   const struct app_namespace *ns, int64_t *tenant)
{
	if (msg_tenant(c, tenant)) {
		req_error(r, i, RPC_UNAUTHORIZED, "invalid or revoked API key");
		return -1;
	}
	if (!app_auth_may_read(ns, *tenant)) {
		req_error(r, i, *tenant ? RPC_FORBIDDEN : RPC_UNAUTHORIZED,
			  "the feed of namespace '%s' needs its tenant's API key", ns->name);
		return -1;
	}
	return 0;
}

/*
 * A shard carries bytes of every namespace in its block, so it is served
 * only to a caller who may read all of them (every feed public, or all the
 * caller's tenant's).
 */
static void m_get_shard(struct app_conn *c, struct app_req *r, size_t i, json_t *params)
{
	static const char usage[] = "{\"height\": N, \"index\": I}";
	uint64_t height = height_param(r, i, params, usage);
	json_t *iv = second_param(params, "index");
	struct seq_block_hdr h;
	struct seq_block_ns *ns = NULL;
	uint8_t sig[64];
	size_t nn = 0;
	int64_t tenant;
	char *json = NULL, msg[256];
	int rc;

	if (!height)
		return;
	if (!json_is_integer(iv) || json_integer_value(iv) < 0 || json_integer_value(iv) > 255) {
		req_error(r, i, RPC_INVALID_PARAMS, "params must be %s with 0 <= index < k + m",
			  usage);
		return;
	}
	if (msg_tenant(c, &tenant)) {
		req_error(r, i, RPC_UNAUTHORIZED, "invalid or revoked API key");
		return;
	}
	if (height > c->srv->feed.tip || /* above it: not durable yet */
	    app_store_block_get(c->srv->ro, height, &h, sig, &ns, &nn)) {
		req_error(r, i, RPC_NOT_FOUND, "no sealed block at height %llu",
			  (unsigned long long)height);
		return;
	}
	for (size_t k = 0; k < nn; k++) {
		const struct app_namespace *n = app_auth_ns_by_id(&c->srv->auth, ns[k].ns);

		if (!n || !app_auth_may_read(n, tenant)) {
			free(ns);
			req_error(r, i, tenant ? RPC_FORBIDDEN : RPC_UNAUTHORIZED,
				  "block %llu holds namespaces whose feed you may not read; its "
				  "shards are served only to callers who may read all of them",
				  (unsigned long long)height);
			return;
		}
	}
	free(ns);
	rc = app_dasrv_shard_json(c->srv, height, (unsigned)json_integer_value(iv), &json, msg,
				  sizeof(msg));
	if (rc)
		req_error(r, i, rc, "%s", msg);
	else
		req_set(r, i, 0, json, 0);
	free(json);
}

static void m_get_ns_proof(struct app_conn *c, struct app_req *r, size_t i, json_t *params)
{
	static const char usage[] = "{\"height\": N, \"namespace\": NAME}";
	uint64_t height = height_param(r, i, params, usage);
	const struct app_namespace *ns;
	int64_t tenant;
	char *json = NULL, msg[256];
	int rc;

	if (!height)
		return;
	ns = ns_arg(c->srv, second_param(params, "namespace"));
	if (!ns) {
		req_error(r, i, RPC_UNKNOWN_NAMESPACE, "params must be %s naming a namespace", usage);
		return;
	}
	if (check_feed_read(c, r, i, ns, &tenant))
		return;
	rc = app_dasrv_nsproof_json(c->srv, height, ns, &json, msg, sizeof(msg));
	if (rc)
		req_error(r, i, rc, "%s", msg);
	else
		req_set(r, i, 0, json, 0);
	free(json);
}

/*
 * mezz_postStateRoot: a state-root pointer for the caller's rollup, relayed
 * to Inbox.postStateRoot(rollupId = chain id, ...) by mz-l1. Only the
 * namespace's tenant key may post; l2Block must increase per rollup.
 */
static void m_post_state_root(struct app_conn *c, struct app_req *r, size_t i, json_t *params)
{
	static const char usage[] =
		"{\"namespace\": NAME, \"l2Block\": N, \"stateRoot\": 0x32 bytes, "
		"\"proofKind\": 0..255, \"proofLocator\": 0x hex (at most 4096 bytes)}";
	json_t *p = json_is_array(params) ? json_array_get(params, 0) : params;
	json_t *l2 = json_object_get(p, "l2Block"), *sr = json_object_get(p, "stateRoot");
	json_t *pk = json_object_get(p, "proofKind"), *loc = json_object_get(p, "proofLocator");
	struct app_l1_req q = {.req = r, .slot = (uint32_t)i};
	const struct app_namespace *ns;
	size_t len = 0;
	int64_t tenant;
	int rc;

	if (!c->srv->committer->l1.enabled) {
		req_error(r, i, RPC_L1_DISABLED,
			  "L1 posting is off on this appliance (l1.rpc_urls is empty)");
		return;
	}
	ns = json_is_object(p) ? ns_arg(c->srv, json_object_get(p, "namespace")) : NULL;
	if (!ns) {
		req_error(r, i, RPC_UNKNOWN_NAMESPACE, "params must be %s naming a namespace", usage);
		return;
	}
	if (msg_tenant(c, &tenant) || !tenant) {
		req_error(r, i, RPC_UNAUTHORIZED,
			  "mezz_postStateRoot needs the API key of namespace '%s''s tenant", ns->name);
		return;
	}
	if (tenant != ns->tenant_id) {
		req_error(r, i, RPC_FORBIDDEN, "this API key's tenant does not own namespace '%s'",
			  ns->name);
		return;
	}
	if (!json_is_integer(l2) || json_integer_value(l2) < 0 || !json_is_string(sr) ||
	    l1_hex_decode(q.sr.state_root, 32, &len, json_string_value(sr),
			  json_string_length(sr)) ||
	    len != 32 || (pk && (!json_is_integer(pk) || json_integer_value(pk) < 0 ||
				 json_integer_value(pk) > 255)) ||
	    (loc && !json_is_string(loc))) {
		req_error(r, i, RPC_INVALID_PARAMS, "params must be %s", usage);
		return;
	}
	if (loc && json_string_length(loc) > 2 + 2 * L1_INBOX_MAX_LOCATOR) {
		req_error(r, i, RPC_TOO_LARGE, "proofLocator is over %d bytes", L1_INBOX_MAX_LOCATOR);
		return;
	}
	q.sr.rollup_id = ns->chain_id;
	q.sr.l2_block = (uint64_t)json_integer_value(l2);
	q.sr.proof_kind = pk ? (uint8_t)json_integer_value(pk) : 0;
	if (loc && json_string_length(loc) > 2) {
		q.locator = malloc(json_string_length(loc) / 2);
		if (!q.locator ||
		    l1_hex_decode(q.locator, json_string_length(loc) / 2, &q.sr.proof_locator_len,
				  json_string_value(loc), json_string_length(loc))) {
			free(q.locator);
			req_error(r, i, RPC_INVALID_PARAMS, "proofLocator is not 0x hex");
			return;
		}
	}
	snprintf(q.ns_name, sizeof(q.ns_name), "%s", ns->name);
	r->pending++;
	rc = c->srv->accepting ? app_l1_submit(c->srv->committer, &q) : APP_ESTOPPED;
	if (rc) {
		r->pending--;
		free(q.locator);
		req_error(r, i, RPC_BUSY, "the L1 stage cannot take it now (%s); retry",
			  app_strerror(rc));
	}
}

/* mezz_getStateRoot {namespace, l2Block}: where a state root stands. */
static void m_get_state_root(struct app_conn *c, struct app_req *r, size_t i, json_t *params)
{
	json_t *p = json_is_array(params) ? json_array_get(params, 0) : params;
	json_t *l2 = json_is_object(p) ? json_object_get(p, "l2Block") : NULL;
	const struct app_namespace *ns;
	int64_t tenant;
	char *json = NULL;
	int rc;

	ns = json_is_object(p) ? ns_arg(c->srv, json_object_get(p, "namespace")) : NULL;
	if (!ns || !json_is_integer(l2) || json_integer_value(l2) < 0) {
		req_error(r, i, RPC_INVALID_PARAMS,
			  "params must be {\"namespace\": NAME, \"l2Block\": N}");
		return;
	}
	if (check_feed_read(c, r, i, ns, &tenant))
		return;
	rc = app_l1_state_root_json(c->srv, ns->chain_id, (uint64_t)json_integer_value(l2),
				    ns->name, &json);
	if (rc == APP_ENOTFOUND)
		req_error(r, i, RPC_NOT_FOUND, "no state root queued for namespace '%s' at l2Block %lld",
			  ns->name, (long long)json_integer_value(l2));
	else if (rc)
		req_error(r, i, RPC_INTERNAL, "%s", app_strerror(rc));
	else
		req_set(r, i, 0, json, 0);
	free(json);
}

/*
 * Sequencing rights (docs/API.md): the params are decoded here
 * (rightsreq.c) and the sales engine answers through the done queue.
 * mezz_setOffer needs the namespace's tenant key; the rest are public (a
 * purchase is authorised by its buyer's EIP-712 signature).
 */
static void m_rights(struct app_conn *c, struct app_req *r, size_t i, json_t *params,
		     enum app_rights_op op)
{
	struct app_rights_req q;
	char why[256];
	int rc;

	if (!c->srv->committer->rights) {
		req_error(r, i, RPC_RIGHTS_DISABLED,
			  "execution-ticket sales are off on this appliance (rights.enabled = 0)");
		return;
	}
	if (app_rights_parse(&q, op, params, why, sizeof(why))) {
		req_error(r, i, RPC_INVALID_PARAMS, "%s", why);
		return;
	}
	if (op == APP_RIGHTS_SET_OFFER) {
		json_t *p = json_is_array(params) ? json_array_get(params, 0) : params;
		const struct app_namespace *ns = ns_arg(c->srv, json_object_get(p, "namespace"));
		int64_t tenant;

		if (!ns) {
			app_rights_req_free(&q);
			req_error(r, i, RPC_UNKNOWN_NAMESPACE,
				  "params must be {\"namespace\": NAME, \"optIn\": BOOL, "
				  "\"reserveGwei\": N} naming a namespace");
			return;
		}
		if (msg_tenant(c, &tenant) || !tenant) {
			app_rights_req_free(&q);
			req_error(r, i, RPC_UNAUTHORIZED,
				  "mezz_setOffer needs the API key of namespace '%s''s tenant", ns->name);
			return;
		}
		if (tenant != ns->tenant_id) {
			app_rights_req_free(&q);
			req_error(r, i, RPC_FORBIDDEN, "this API key's tenant does not own namespace '%s'",
				  ns->name);
			return;
		}
		q.ns = ns->chain_id;
		snprintf(q.ns_name, sizeof(q.ns_name), "%s", ns->name);
	}
	q.req = r;
	q.slot = (uint32_t)i;
	r->pending++;
	rc = c->srv->accepting ? app_rights_submit(c->srv->committer, &q) : APP_ESTOPPED;
	if (rc) {
		r->pending--;
		app_rights_req_free(&q);
		req_error(r, i, RPC_BUSY, "the sales engine cannot take it now (%s); retry",
			  app_strerror(rc));
	}
}

static void m_status(struct app_conn *c, struct app_req *r, size_t i)
{
	struct app_server *s = c->srv;
	struct app_stats *st = &s->committer->stats;
	char pk[67], buf[2048], *l1 = app_l1_status_json(s);

	l1_hex_encode(pk, s->id->pk, 32);
	snprintf(buf, sizeof(buf),
		 "{\"version\":\"%s\",\"publicKey\":\"%s\",\"height\":%llu,\"slot\":%llu,"
		 "\"slotMs\":%ld,\"nextSeq\":%llu,\"groups\":%llu,\"transactions\":%llu,"
		 "\"lastCommitUs\":%llu,\"ingressQueue\":%zu,\"subscribers\":%zu,"
		 "\"namespaces\":%zu,\"halted\":%s,\"availableHeight\":%llu,\"daHalted\":%s,"
		 "\"postedHeight\":%llu,\"finalizedHeight\":%llu,\"l1\":%s,"
		 "\"proposer\":{\"accepted\":%llu,\"misses\":%llu,\"pending\":%llu}}",
		 MEZZ_VERSION, pk,
		 (unsigned long long)(atomic_load(&st->has_block) ? atomic_load(&st->height) : 0),
		 (unsigned long long)atomic_load(&st->open_slot), s->cfg->slot_ms,
		 (unsigned long long)atomic_load(&st->next_seq),
		 (unsigned long long)atomic_load(&st->groups),
		 (unsigned long long)atomic_load(&st->txs),
		 (unsigned long long)atomic_load(&st->last_commit_us), app_queue_len(s->ingress),
		 s->subscribers, s->auth.n, atomic_load(&st->halted) ? "true" : "false",
		 (unsigned long long)atomic_load(&st->level_tip[APP_LEVEL_AVAILABLE]),
		 atomic_load(&s->committer->avail.halted) ? "true" : "false",
		 (unsigned long long)atomic_load(&st->level_tip[APP_LEVEL_POSTED]),
		 (unsigned long long)atomic_load(&st->level_tip[APP_LEVEL_FINALIZED]),
		 l1 ? l1 : "null", (unsigned long long)atomic_load(&st->prop_accepted),
		 (unsigned long long)atomic_load(&st->prop_misses),
		 (unsigned long long)atomic_load(&st->prop_pending));
	free(l1);
	req_set(r, i, 0, buf, 0);
}

/*
 * "levels": the commitment levels after `sealed` to send events for, e.g.
 * ["available"]; `sealed` itself is always sent (it carries the block).
 */
static int levels_filter(struct app_req *r, size_t i, json_t *v, unsigned *mask, int *preconf)
{
	size_t k;
	json_t *e;

	*mask = 0;
	*preconf = 0;
	if (!v)
		return 0;
	if (!json_is_array(v))
		goto bad;
	json_array_foreach(v, k, e) {
		int L;

		if (!json_is_string(e))
			goto bad;
		if (!strcmp(json_string_value(e), "sealed"))
			continue;
		if (!strcmp(json_string_value(e), "preconfirmed")) {
			*preconf = 1;
			continue;
		}
		if ((L = app_level_of(json_string_value(e))) < 0)
			goto bad;
		*mask |= 1u << L;
	}
	return 0;
bad:
	req_error(r, i, RPC_INVALID_PARAMS,
		  "levels must be an array of \"preconfirmed\", \"sealed\", \"available\", "
		  "\"posted\", \"finalized\"");
	return -1;
}

/*
 * "levelsFrom": {LEVEL: H}, where a resumed subscription's level events
 * start, below fromHeight: the client had those blocks' `sealed` before
 * (a previous connection) and not yet their later levels, which for
 * `posted` and `finalized` come minutes after. next_level[] holds fromHeight
 * for every level on entry; each level named must be one subscribed to.
 */
static int levels_from(struct app_req *r, size_t i, json_t *v, unsigned mask,
		       uint64_t from, uint64_t *next_level)
{
	const char *key;
	json_t *e;

	if (!v)
		return 0;
	if (!json_is_object(v))
		goto bad;
	json_object_foreach(v, key, e) {
		int L = app_level_of(key);

		if (L < 0 || !json_is_integer(e) || json_integer_value(e) < 1 ||
		    (uint64_t)json_integer_value(e) > from)
			goto bad;
		if (!(mask & (1u << L))) {
			req_error(r, i, RPC_INVALID_PARAMS,
				  "levelsFrom names \"%s\", which levels does not include", key);
			return -1;
		}
		next_level[L] = (uint64_t)json_integer_value(e);
	}
	return 0;
bad:
	req_error(r, i, RPC_INVALID_PARAMS,
		  "levelsFrom must map \"available\", \"posted\" or \"finalized\" to a "
		  "height from 1 to fromHeight (%llu)", (unsigned long long)from);
	return -1;
}

/* Subscriptions of c, with those its requests (r among them) hold until
 * their answers. */
static size_t subs_of(const struct app_conn *c, const struct app_req *r)
{
	size_t n = 0;

	for (const struct app_subscr *sub = c->subs; sub; sub = sub->next)
		n++;
	for (const struct app_req *q = c->reqs; q; q = q->next)
		for (const struct app_subscr *sub = q == r ? NULL : q->held_subs; sub;
		     sub = sub->next)
			n++;
	for (const struct app_subscr *sub = r->held_subs; sub; sub = sub->next)
		n++;
	return n;
}

static void m_subscribe(struct app_conn *c, struct app_req *r, size_t i, json_t *params)
{
	struct app_server *s = c->srv;
	json_t *opts = json_array_get(params, 1), *fh;
	struct app_subscr *sub;
	int64_t tenant;
	char idbuf[40];

	if (!c->is_ws) {
		req_error(r, i, RPC_METHOD_NOT_FOUND,
			  "mezz_subscribe needs a WebSocket connection (ws://host:port/)");
		return;
	}
	if (!json_is_array(params) || !json_is_string(json_array_get(params, 0)) ||
	    strcmp(json_string_value(json_array_get(params, 0)), "blocks") ||
	    json_array_size(params) > 2 || (opts && !json_is_object(opts))) {
		req_error(r, i, RPC_INVALID_PARAMS,
			  "params must be [\"blocks\", {\"namespaces\": [...], \"fromHeight\": N, "
			  "\"levels\": [...], \"levelsFrom\": {...}}]");
		return;
	}
	if (msg_tenant(c, &tenant)) {
		req_error(r, i, RPC_UNAUTHORIZED, "invalid or revoked API key");
		return;
	}
	if (subs_of(c, r) >= APP_SUBS_PER_CONN) {
		req_error(r, i, RPC_TOO_LARGE,
			  "a connection holds at most %d subscriptions; unsubscribe one or open "
			  "another connection", APP_SUBS_PER_CONN);
		return;
	}
	sub = calloc(1, sizeof(*sub));
	if (!sub) {
		req_error(r, i, RPC_INTERNAL, "out of memory");
		return;
	}
	if (opts && ns_filter(c, r, i, json_object_get(opts, "namespaces"), tenant, &sub->ns,
			      &sub->ns_n)) {
		free(sub);
		return;
	}
	fh = opts ? json_object_get(opts, "fromHeight") : NULL;
	if (fh && (!json_is_integer(fh) || json_integer_value(fh) < 1)) {
		free(sub->ns);
		free(sub);
		req_error(r, i, RPC_INVALID_PARAMS, "fromHeight must be an integer >= 1");
		return;
	}
	sub->next_height = fh ? (uint64_t)json_integer_value(fh) : s->feed.tip + 1;
	if (opts && levels_filter(r, i, json_object_get(opts, "levels"), &sub->levels,
				  &sub->preconf)) {
		free(sub->ns);
		free(sub);
		return;
	}
	if (!opts || !json_object_get(opts, "levels"))
		sub->levels = (1u << APP_LEVELS) - 1;
	for (int L = 0; L < APP_LEVELS; L++)
		sub->next_level[L] = sub->next_height;
	if (opts && levels_from(r, i, json_object_get(opts, "levelsFrom"), sub->levels,
				sub->next_height, sub->next_level)) {
		free(sub->ns);
		free(sub);
		return;
	}
	sub->state = SUB_CATCHUP;
	sub->id = s->next_sub_id++;
	if (r->is_batch) { /* fed once the batch's answer, with this id, is queued */
		sub->next = r->held_subs;
		r->held_subs = sub;
	} else {
		sub->next = c->subs;
		c->subs = sub;
	}
	s->subscribers++;
	app_feed_interest_add(&s->committer->interest, sub->ns, sub->ns_n, 1);
	if (sub->preconf)
		atomic_fetch_add(&s->committer->preconf_subs, 1);
	snprintf(idbuf, sizeof(idbuf), "\"0x%llx\"", (unsigned long long)sub->id);
	req_set(r, i, 0, idbuf, 0);
	app_conn_wake(c);
}

static struct app_subscr **find_sub(struct app_subscr **pp, unsigned long long id)
{
	for (; *pp; pp = &(*pp)->next)
		if ((*pp)->id == id)
			return pp;
	return NULL;
}

static void m_unsubscribe(struct app_conn *c, struct app_req *r, size_t i, json_t *params)
{
	json_t *v = json_array_get(params, 0);
	unsigned long long id;
	struct app_subscr **pp, *dead;

	if (!json_is_string(v) || sscanf(json_string_value(v), "0x%llx", &id) != 1) {
		req_error(r, i, RPC_INVALID_PARAMS, "params must be [\"<subscription id>\"]");
		return;
	}
	/* live; or held by a batch still waiting for its answer (this one's
	 * own included: every request is on c->reqs), which must not start it
	 * once answered */
	pp = find_sub(&c->subs, id);
	for (struct app_req *q = c->reqs; !pp && q; q = q->next)
		pp = find_sub(&q->held_subs, id);
	if (!pp) {
		req_set(r, i, 0, "false", 0);
		return;
	}
	dead = *pp;
	*pp = dead->next;
	app_feed_sub_free(c->srv, dead);
	req_set(r, i, 0, "true", 0);
}

/* ---- dispatch --------------------------------------------------------- */

static int prop_method(struct app_conn *c, struct app_req *r, size_t i, const char *m,
		       json_t *params, struct subs_vec *sv)
{
	struct app_sub sub = {0};
	char *json = NULL;
	int is_error = 0;

	if (!app_prop_rpc(c, m, params, &is_error, &json, &sub))
		return 0;
	if (json) {
		req_set(r, i, is_error, json, 0);
		free(json);
		return 1;
	}
	sub.req = r;
	sub.slot = (uint32_t)i;
	if (subs_add(sv, &sub)) {
		app__slot_block_free(sub.block);
		req_error(r, i, RPC_INTERNAL, "out of memory");
		return 1;
	}
	r->pending++;
	return 1;
}

static void dispatch(struct app_conn *c, struct app_req *r, size_t i, json_t *item,
		     struct subs_vec *sv)
{
	json_t *id, *ver, *method, *params;
	const char *m;

	r->ids[i] = strdup("null");
	if (!json_is_object(item)) {
		req_error(r, i, RPC_INVALID_REQUEST, "each request must be a JSON object");
		return;
	}
	id = json_object_get(item, "id");
	if (id && !json_is_string(id) && !json_is_number(id) && !json_is_null(id)) {
		req_error(r, i, RPC_INVALID_REQUEST, "id must be a string, number or null");
		return;
	}
	ver = json_object_get(item, "jsonrpc");
	method = json_object_get(item, "method");
	params = json_object_get(item, "params");
	if (!json_is_string(ver) || strcmp(json_string_value(ver), "2.0")) {
		req_error(r, i, RPC_INVALID_REQUEST, "\"jsonrpc\" must be \"2.0\"");
		return;
	}
	if (!json_is_string(method)) {
		req_error(r, i, RPC_INVALID_REQUEST, "\"method\" must be a string");
		return;
	}
	if (params && !json_is_array(params) && !json_is_object(params)) {
		req_error(r, i, RPC_INVALID_PARAMS, "\"params\" must be an array or an object");
		return;
	}
	req_id_free(r, i);
	r->ids[i] = id ? json_dumps(id, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
	m = json_string_value(method);
	if (!c->msg_registry_ok) {
		req_error(r, i, RPC_INTERNAL, "namespace registry unavailable");
		return;
	}

	if (c->path == PATH_ROLLUP) {
		const struct app_namespace *ns = app_auth_ns_by_name(&c->srv->auth, c->rollup);
		char hex[24];

		if (!ns) {
			req_error(r, i, RPC_UNKNOWN_NAMESPACE, "no rollup named '%s' on this appliance",
				  c->rollup);
		} else if (!strcmp(m, "eth_chainId")) {
			snprintf(hex, sizeof(hex), "\"0x%llx\"", (unsigned long long)ns->chain_id);
			req_set(r, i, 0, hex, 0);
		} else if (!strcmp(m, "eth_sendRawTransaction")) {
			m_eth_send_raw(c, r, i, params, sv, ns);
		} else {
			req_error(r, i, RPC_METHOD_NOT_FOUND,
				  "method '%.64s' is not supported on /rollup/%s: it serves "
				  "eth_chainId and eth_sendRawTransaction (mezz_* methods are on /)",
				  m, c->rollup);
		}
		return;
	}
	if (c->path != PATH_ROOT) {
		req_error(r, i, RPC_METHOD_NOT_FOUND, "unknown path: use / or /rollup/<name>");
		return;
	}
	if (!strcmp(m, "mezz_sendTransaction"))
		m_send_transaction(c, r, i, params, sv);
	else if (!strcmp(m, "mezz_sendTransactions"))
		m_send_transactions(c, r, i, params, sv);
	else if (!strcmp(m, "mezz_sendBundle"))
		m_send_bundle(c, r, i, params, sv);
	else if (!strcmp(m, "mezz_getPreconfirmation"))
		m_get_preconfirmation(c, r, i, params);
	else if (!strcmp(m, "mezz_getBlock"))
		m_get_block(c, r, i, params);
	else if (!strcmp(m, "mezz_getShard"))
		m_get_shard(c, r, i, params);
	else if (!strcmp(m, "mezz_getNamespaceProof"))
		m_get_ns_proof(c, r, i, params);
	else if (!strcmp(m, "mezz_status"))
		m_status(c, r, i);
	else if (!strcmp(m, "mezz_postStateRoot"))
		m_post_state_root(c, r, i, params);
	else if (!strcmp(m, "mezz_getStateRoot"))
		m_get_state_root(c, r, i, params);
	else if (!strcmp(m, "mezz_setOffer"))
		m_rights(c, r, i, params, APP_RIGHTS_SET_OFFER);
	else if (!strcmp(m, "mezz_getSale"))
		m_rights(c, r, i, params, APP_RIGHTS_GET_SALE);
	else if (!strcmp(m, "mezz_buyTickets"))
		m_rights(c, r, i, params, APP_RIGHTS_BUY);
	else if (!strcmp(m, "mezz_proposeAllocation"))
		m_rights(c, r, i, params, APP_RIGHTS_PROPOSE);
	else if (prop_method(c, r, i, m, params, sv))
		; /* proposer-ordered slots (proposer_rpc.c) */
	else if (!strcmp(m, "mezz_subscribe"))
		m_subscribe(c, r, i, params);
	else if (!strcmp(m, "mezz_unsubscribe"))
		m_unsubscribe(c, r, i, params);
	else if (!strncmp(m, "eth_", 4))
		req_error(r, i, RPC_METHOD_NOT_FOUND,
			  "Ethereum methods are served on /rollup/<name>, not on /");
	else
		req_error(r, i, RPC_METHOD_NOT_FOUND,
			  "unknown method '%.64s'; / serves mezz_sendTransaction, "
			  "mezz_sendTransactions, mezz_sendBundle, "
			  "mezz_getPreconfirmation, mezz_getBlock, mezz_getShard, "
			  "mezz_getNamespaceProof, mezz_status, mezz_subscribe, mezz_unsubscribe, "
			  "mezz_postStateRoot, mezz_getStateRoot, mezz_proposerChallenge, "
			  "mezz_proposerAuth, mezz_submitSlotBlock, mezz_setOffer, mezz_getSale, "
			  "mezz_buyTickets, mezz_proposeAllocation",
			  m);
}

/* Request i as fastrpc.c read it; txs: the message is one
 * mezz_sendTransactions and t its r->n transactions. */
static void dispatch_fast(struct app_conn *c, struct app_req *r, size_t i,
			  const struct app_fast_tx *t, int txs, struct subs_vec *sv)
{
	r->ids[i] = t->id ? req_id(r, t->id, t->id_len) : NULL;
	if (t->id && !r->ids[i])
		r->ids[i] = strdup("null");
	if (!c->msg_registry_ok) {
		req_error(r, i, RPC_INTERNAL, "namespace registry unavailable");
		return;
	}
	if (txs) {
		send_txs(c, r, ns_by_span(c, t->ns, t->ns_len), t, sv);
		return;
	}
	m_send_transaction_fast(c, r, i, t, sv);
}

static void send_single_error(struct app_conn *c, int code, const char *msg)
{
	char *e = app_error_json(code, "%s", msg), buf[1024];

	snprintf(buf, sizeof(buf), "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":%s}",
		 e ? e : "null");
	free(e);
	app_conn_send(c, buf, strlen(buf), 0, 0, 0);
}

/* Per-tenant and process ingress counters (/metrics). */
static void ingress_count(struct app_server *s, int64_t tenant, size_t bytes, int rejected)
{
	struct app_tenant_state *t = app_limits_tenant(&s->limits, tenant);

	if (rejected) {
		app_metric_add(APP_M_ingress_rejected_total, 1);
		if (t)
			t->rejected++;
		return;
	}
	app_metric_add(APP_M_ingress_txs_total, 1);
	app_metric_add(APP_M_ingress_bytes_total, bytes);
	if (t) {
		t->txs++;
		t->bytes += bytes;
	}
}

/* Answer slots of a single request: one per transaction of a well-formed
 * mezz_sendTransactions (1 to server.max_batch_items), else 1. */
static size_t txs_slots(struct app_server *s, json_t *req)
{
	json_t *m = json_object_get(req, "method"), *p = json_object_get(req, "params"), *txs;
	size_t n;

	if (!json_is_string(m) || strcmp(json_string_value(m), "mezz_sendTransactions"))
		return 1;
	if (json_is_array(p) && json_array_size(p) == 1)
		p = json_array_get(p, 0);
	txs = json_is_object(p) ? json_object_get(p, "txs") : NULL;
	n = json_is_array(txs) ? json_array_size(txs) : 0;
	return n >= 1 && n <= (size_t)s->cfg->max_batch_items ? n : 1;
}

void app_rpc_handle(struct app_conn *c, const unsigned char *msg, size_t len)
{
	struct app_server *s = c->srv;
	struct subs_vec sv = {0};
	json_error_t jerr;
	json_t *root = NULL;
	struct app_req *r;
	size_t n = 0, slots, idbytes = 0;
	int is_batch, shape = APP_FAST_ONE;

	/* The common message (fastrpc.c) skips jansson; every other one, and
	 * every error, takes the general path below. */
	if (c->path == PATH_ROOT && s->fast)
		n = app_fastrpc_parse((const char *)msg, len, s->fast,
				      (size_t)s->cfg->max_batch_items, &shape);
	is_batch = shape == APP_FAST_BATCH;
	slots = n;
	if (n && shape == APP_FAST_TXS)
		n = 1; /* one request, a slot per transaction */
	if (n)
		goto parsed;
	root = json_loadb((const char *)msg, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!root) {
		char why[300];

		snprintf(why, sizeof(why), "parse error: %s (line %d, column %d)", jerr.text,
			 jerr.line, jerr.column);
		send_single_error(c, RPC_PARSE_ERROR, why);
		return;
	}
	is_batch = json_is_array(root);
	n = is_batch ? json_array_size(root) : 1;
	if (is_batch && n == 0) {
		send_single_error(c, RPC_INVALID_REQUEST, "empty batch");
		goto out;
	}
	if (n > (size_t)s->cfg->max_batch_items) {
		char why[128];

		snprintf(why, sizeof(why), "batch has %zu requests; server.max_batch_items is %ld",
			 n, s->cfg->max_batch_items);
		send_single_error(c, RPC_TOO_LARGE, why);
		goto out;
	}
parsed:
	/* Once per message: pick up namespace and key changes made by the CLI
	 * (a revoked key fails from the next message on), and resolve the key. */
	c->msg_registry_ok = app_auth_refresh(&s->auth) == 0;
	c->msg_key_ok = app_conn_tenant(c, &c->msg_tenant) == 0;
	if (root)
		slots = is_batch ? n : txs_slots(s, root);
	else
		for (size_t i = 0; i < n; i++)
			if (s->fast[i].id)
				idbytes += s->fast[i].id_len + 1;
	r = req_new(c, is_batch, slots, idbytes);
	if (!r) {
		send_single_error(c, RPC_INTERNAL, "out of memory");
		goto out;
	}
	app_limits_refresh(&s->limits, s->auth.version);
	for (size_t i = 0; i < n; i++) {
		size_t queued = sv.n;

		c->item_ns = NULL;
		if (root)
			dispatch(c, r, i, is_batch ? json_array_get(root, i) : root, &sv);
		else
			dispatch_fast(c, r, i, &s->fast[i], shape == APP_FAST_TXS, &sv);
		if (c->item_ns && sv.n == queued)
			ingress_count(s, c->item_ns->tenant_id, 0, 1);
	}
	c->item_ns = NULL;
	if (sv.n) {
		int rc = s->accepting ? app_queue_push(s->ingress, sv.v, sv.n) : APP_ESTOPPED;

		if (rc) {
			size_t items = 0;

			for (size_t k = 0; k < sv.n; k++) {
				/* a bundle's legs are one item of the request */
				items += sv.v[k].bundle_leg == 0;
				free(sv.v[k].data);
				app__slot_block_free(sv.v[k].block);
				if (rc == APP_EFULL)
					req_error(r, sv.v[k].slot, RPC_BUSY,
						  "ingress queue is full; retry in a few milliseconds");
				else
					req_error(r, sv.v[k].slot, RPC_BUSY,
						  "the appliance is shutting down; retry against it "
						  "when it is back");
			}
			r->pending -= items;
		}
		for (size_t k = 0; k < sv.n; k++) {
			const struct app_namespace *ns = app_auth_ns_by_id(&s->auth, sv.v[k].ns);

			if (sv.v[k].block)
				continue; /* a sub-block, not a submission */
			if (rc && ns) /* refused: it takes no tokens */
				app_limits_refund(&s->limits, c->wsi, ns->tenant_id, c->msg_tenant, 1,
						  sv.v[k].len);
			ingress_count(s, ns ? ns->tenant_id : 0, rc ? 0 : sv.v[k].len, rc != 0);
		}
	}
	free(sv.v);
	if (r->pending == 0)
		req_finish(r);
	if (c->prop_backlog)
		app_prop_backlog(c);
out:
	json_decref(root);
}
