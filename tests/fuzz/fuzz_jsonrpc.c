/*
 * fuzz_jsonrpc.c - libFuzzer target for the JSON-RPC layer (rpc.c) without
 * sockets: one connection per input, answered by a stand-in committer.
 *
 * Input: three selector bytes, then the message body.
 *   byte 0  bit 0: WebSocket (1) or HTTP (0); bit 1: server not accepting
 *           (shutting down: submissions answer busy)
 *   byte 1  path: / , /rollup/demo, /rollup/priv, /rollup/nope, other
 *   byte 2  Authorization: none, "Bearer garbage", "Basic x", the live key of
 *           tenant acme, an over-long header
 *
 * The store (in a temporary directory, removed at exit) holds tenant "acme"
 * with namespaces "demo" (chain 31337, public) and "priv" (chain 5, only
 * acme's key) and one API key. The committer never runs: every submission
 * popped from ingress is answered with an error, as a halted committer
 * would. Afterwards every queued message must be valid JSON-RPC, a single
 * request must be answered with its own id, an HTTP request gets exactly one
 * answer, and nothing is left allocated.
 *
 * FUZZ_JSONRPC_VERBOSE=1 in the environment prints every queued message;
 * FUZZ_JSONRPC_ALLOW_PARSE_ERROR_UTF8=1 masks one known daemon bug (below).
 */
#include <ftw.h>
#include <jansson.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "appliance/server.h"

#define INGRESS_CAP 1024
/* The live API key of tenant acme ("mz_" and 43 base64url characters). */
#define FUZZ_KEY "mz_fuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzzfuz"

static char tmpdir[64];
static int verbose; /* FUZZ_JSONRPC_VERBOSE=1 prints every queued message */
/* FUZZ_JSONRPC_ALLOW_PARSE_ERROR_UTF8=1 tolerates the known bug of -32700
 * answers echoing invalid UTF-8 from jansson's error text, so a run can
 * look past it for other bugs. */
static int allow_parse_utf8;
static struct app_config cfg;
static struct app_identity ident;
static struct app_store *rw;
static struct app_queue ingress, done;
static struct app_committer committer;
static struct app_server server;

static void rm_tmpdir(void);

/* On failure: say what and where, remove the temporary store, abort. */
#define CHECK(cond, ...)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "fuzz_jsonrpc: %s:%d: check failed: %s: ", __FILE__,       \
				__LINE__, #cond);                                                  \
			fprintf(stderr, __VA_ARGS__);                                              \
			fputc('\n', stderr);                                                       \
			rm_tmpdir();                                                               \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

static void die(const char *what, int rc)
{
	fprintf(stderr, "fuzz_jsonrpc: setup: %s: %s\n", what, app_strerror(rc));
	exit(1);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void rm_tmpdir(void)
{
	if (tmpdir[0])
		nftw(tmpdir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	tmpdir[0] = 0;
}

static void teardown(void)
{
	app_auth_free(&server.auth);
	free(server.feed.ring);
	free(server.fast);
	app_limits_free(&server.limits);
	app_store_close(server.ro);
	app_store_close(rw);
	app_queue_destroy(&ingress);
	app_queue_destroy(&done);
	rm_tmpdir();
}

int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct app_namespace demo = {
	    .chain_id = 31337, .name = "demo", .ingress_public = 1, .feed_public = 1};
	struct app_namespace priv = {.chain_id = 5, .name = "priv"};
	char err[256];
	uint8_t h[32];
	int64_t tenant, key_id;
	int rc;

	(void)argc;
	(void)argv;
	if (sodium_init() < 0)
		die("sodium_init", APP_EINVAL);
	app_log_set_level(APP_LOG_ERROR);
	verbose = getenv("FUZZ_JSONRPC_VERBOSE") != NULL;
	allow_parse_utf8 = getenv("FUZZ_JSONRPC_ALLOW_PARSE_ERROR_UTF8") != NULL;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/fuzz_jsonrpc.XXXXXX");
	if (!mkdtemp(tmpdir))
		die("mkdtemp", APP_EINVAL);
	atexit(teardown);

	app_config_defaults(&cfg);
	snprintf(cfg.data_dir, sizeof(cfg.data_dir), "%s", tmpdir);
	if ((rc = app_identity_load(&ident, cfg.data_dir, 1)))
		die("identity", rc);
	/* The write connection stays open, as the committer's does in the daemon. */
	if ((rc = app_store_open(&rw, cfg.data_dir, 0, err, sizeof(err))))
		die(err, rc);
	if ((rc = app_store_tenant_create(rw, "acme", &tenant)))
		die("tenant", rc);
	demo.tenant_id = priv.tenant_id = tenant;
	if ((rc = app_store_namespace_create(rw, &demo)) ||
	    (rc = app_store_namespace_create(rw, &priv)))
		die("namespace", rc);
	app_apikey_hash(h, &ident, FUZZ_KEY, strlen(FUZZ_KEY));
	if ((rc = app_store_key_create(rw, tenant, h, "mz_fuzz", &key_id)))
		die("api key", rc);

	if ((rc = app_queue_init(&ingress, sizeof(struct app_sub), INGRESS_CAP)) ||
	    (rc = app_queue_init(&done, sizeof(struct app_done), INGRESS_CAP)))
		die("queue", rc);
	server.cfg = &cfg;
	server.id = &ident;
	server.ctx = NULL;
	server.ingress = &ingress;
	server.done = &done;
	committer.cfg = &cfg;
	committer.id = &ident;
	server.committer = &committer; /* never started: only its stats are read */
	if ((rc = app_store_open(&server.ro, cfg.data_dir, 1, err, sizeof(err))))
		die(err, rc);
	server.auth.ro = server.ro;
	server.auth.id = &ident;
	if ((rc = app_auth_refresh(&server.auth)))
		die("auth", rc);
	server.feed.cap = 4;
	server.feed.ring = calloc(server.feed.cap, sizeof(*server.feed.ring));
	if (!server.feed.ring)
		die("feed ring", APP_ENOMEM);
	if ((rc = app_limits_init(&server.limits, &cfg, server.ro)))
		die("limits", rc);
	server.next_sub_id = 1;
	/* as app_server_init: the fast path (fastrpc.c) is fuzzed with the rest */
	server.fast = calloc((size_t)cfg.max_batch_items, sizeof(*server.fast));
	if (!server.fast)
		die("fast-path buffer", APP_ENOMEM);
	server.accepting = 1;
	return 0;
}

/* ---- invariants on what was queued ----------------------------------- */

/* One response object: {"jsonrpc":"2.0","id":..., "result"|"error": ...}. */
static void check_response(json_t *o, const char *text, size_t len)
{
	json_t *id = json_object_get(o, "id"), *res = json_object_get(o, "result"),
	       *err = json_object_get(o, "error");

	CHECK(json_is_object(o), "response is not an object: %.*s", (int)len, text);
	CHECK(json_is_string(json_object_get(o, "jsonrpc")) &&
		  !strcmp(json_string_value(json_object_get(o, "jsonrpc")), "2.0"),
	      "no \"jsonrpc\":\"2.0\": %.*s", (int)len, text);
	CHECK(id && (json_is_string(id) || json_is_number(id) || json_is_null(id)),
	      "bad or missing id: %.*s", (int)len, text);
	CHECK(!res != !err, "not exactly one of result and error: %.*s", (int)len, text);
	if (err)
		CHECK(json_is_object(err) && json_is_integer(json_object_get(err, "code")) &&
			  json_is_string(json_object_get(err, "message")),
		      "malformed error object: %.*s", (int)len, text);
}

/* Would dispatch() take this item's id (a well-formed request)? */
static int well_formed(json_t *req)
{
	json_t *id = json_object_get(req, "id"), *ver = json_object_get(req, "jsonrpc"),
	       *params = json_object_get(req, "params");

	return json_is_object(req) && id &&
	       (json_is_string(id) || json_is_number(id) || json_is_null(id)) &&
	       json_is_string(ver) && !strcmp(json_string_value(ver), "2.0") &&
	       json_is_string(json_object_get(req, "method")) &&
	       (!params || json_is_array(params) || json_is_object(params));
}

/* A message queued to the client, checked against the request it answers. */
static void check_message(const unsigned char *buf, size_t len, json_t *req)
{
	json_error_t jerr;
	json_t *m = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, &jerr);

	if (verbose)
		fprintf(stderr, "fuzz_jsonrpc: sent %.*s\n", (int)len, (const char *)buf);
	if (!m && allow_parse_utf8 && memmem(buf, len, "\"code\":-32700", 13)) {
		char *copy = malloc(len);

		if (copy) { /* the same message with its non-ASCII bytes masked */
			for (size_t i = 0; i < len; i++)
				copy[i] = buf[i] >= 0x80 ? 'x' : (char)buf[i];
			m = json_loadb(copy, len, JSON_REJECT_DUPLICATES, &jerr);
			free(copy);
		}
	}
	CHECK(m, "output is not valid JSON (%s at %d): %.*s", jerr.text, jerr.position, (int)len,
	      (const char *)buf);
	if (json_is_array(m)) {
		size_t i;
		json_t *v;

		CHECK(json_array_size(m) > 0, "empty batch response");
		CHECK(json_is_array(req) && json_array_size(m) <= json_array_size(req),
		      "batch response to %s with %zu items: %.*s",
		      json_is_array(req) ? "a shorter batch" : "a non-batch", json_array_size(m),
		      (int)len, (const char *)buf);
		json_array_foreach(m, i, v) check_response(v, (const char *)buf, len);
	} else {
		json_t *rid;

		check_response(m, (const char *)buf, len);
		rid = json_object_get(m, "id");
		/* A request object with an id gets that id back; an invalid request
		 * (id not yet read) may get null, as JSON-RPC 2.0 allows. */
		if (json_is_object(req) && json_object_get(req, "id")) {
			if (well_formed(req))
				CHECK(json_equal(rid, json_object_get(req, "id")),
				      "answer id differs from request id: %.*s", (int)len,
				      (const char *)buf);
			else
				CHECK(json_is_null(rid) ||
					  json_equal(rid, json_object_get(req, "id")),
				      "invalid request answered with a foreign id: %.*s", (int)len,
				      (const char *)buf);
		}
	}
	json_decref(m);
}

/* ---- one input -------------------------------------------------------- */

static const char *const auth_choices[] = {"", "Bearer garbage", "Basic x", ("Bearer " FUZZ_KEY)};

/* Answer every submission as a halted committer would; return how many. */
static size_t drain_ingress(void)
{
	struct app_sub subs[64];
	size_t n, total = 0;

	while ((n = app_queue_pop(&ingress, subs, 64, 0)) > 0) {
		/* Every third answer lies in a shared answer buffer, as a
		 * group's receipts do (committer.c); the rest are malloc'd. */
		struct app_answer_buf *ab = app_answer_buf_new(64 * 128);

		for (size_t i = 0; i < n; i++) {
			CHECK(subs[i].data && subs[i].len > 0, "submission without data");
			CHECK(subs[i].slot < subs[i].req->n, "slot %u out of %zu", subs[i].slot,
			      subs[i].req->n);
			struct app_done d = {.kind = DONE_ANSWER, .req = subs[i].req,
					     .slot = subs[i].slot, .is_error = 1};
			char *e = app_error_json(RPC_HALTED, "x"), *w;

			free(subs[i].data);
			if (e && ab && subs[i].slot % 3 == 2 && strlen(e) < 128 &&
			    (w = app_answer_buf_take(ab, strlen(e) + 1))) {
				memcpy(w, e, strlen(e) + 1);
				app_answer_buf_used(ab, w + strlen(e) + 1);
				free(e);
				e = w;
				d.buf = ab;
			}
			d.json = e;
			/* Both ways an answer's length arrives: measured by
			 * the committer (odd items) or not known (even). */
			d.json_len = e && (subs[i].slot & 1) ? strlen(e) : 0;
			app_rpc_answer(&server, &d, app_now_ns());
		}
		app_answer_buf_put(ab);
		total += n;
	}
	return total;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const rollups[] = {NULL, "demo", "priv", "nope", NULL};
	struct app_conn conn;
	const unsigned char *msg = data + 3;
	size_t len = size - 3, nmsg = 0;
	struct out_msg *first_resp, *m;
	json_t *req;

	if (size < 3)
		return 0;
	memset(&conn, 0, sizeof(conn));
	conn.srv = &server;
	conn.wsi = NULL; /* app_conn_wake ignores connections without a socket */
	conn.inited = 1;
	conn.is_ws = data[0] & 1;
	server.accepting = !(data[0] & 2);
	switch (data[1] % 5) {
	case 0:
		conn.path = PATH_ROOT;
		break;
	case 4:
		conn.path = PATH_OTHER;
		break;
	default:
		conn.path = PATH_ROLLUP;
		snprintf(conn.rollup, sizeof(conn.rollup), "%s", rollups[data[1] % 5]);
		break;
	}
	if (data[2] % 5 == 4)
		conn.auth_bad = 1; /* header longer than conn.auth */
	else
		snprintf(conn.auth, sizeof(conn.auth), "%s", auth_choices[data[2] % 5]);

	app_rpc_handle(&conn, msg, len);
	first_resp = conn.http_resp;
	drain_ingress();
	CHECK(app_queue_len(&ingress) == 0, "ingress not drained");
	CHECK(conn.reqs == NULL, "a request is still pending after every answer came in");

	/* Sent: the HTTP response or the WebSocket queue. */
	req = json_loadb((const char *)msg, len, JSON_REJECT_DUPLICATES, NULL);
	if (!conn.is_ws) {
		CHECK(conn.out_head == NULL, "HTTP connection used the WebSocket queue");
		/* A second app_conn_send allocates a new message before freeing the old. */
		CHECK(!first_resp || conn.http_resp == first_resp,
		      "HTTP got more than one response");
		CHECK(conn.http_resp || conn.http_status == HTTP_STATUS_NO_CONTENT,
		      "HTTP request left without any answer");
		CHECK(!(conn.http_resp && conn.http_status == HTTP_STATUS_NO_CONTENT),
		      "HTTP answer is both 204 and a body");
		if (conn.http_resp) {
			check_message(conn.http_resp->buf + LWS_PRE, conn.http_resp->len, req);
			nmsg++;
		}
	} else {
		for (m = conn.out_head; m; m = m->next) {
			CHECK(!m->is_block, "block message without a feed");
			check_message(m->buf + LWS_PRE, m->len, req);
			nmsg++;
		}
		/* No feed runs here, so a message is only ever one answer. */
		CHECK(nmsg <= 1, "%zu messages for one WebSocket input", nmsg);
	}
	/* A single request with an id is always answered. */
	if (json_is_object(req) && json_object_get(req, "id"))
		CHECK(nmsg == 1, "request with an id got %zu answers", nmsg);
	json_decref(req);

	/* Close the connection as conn_cleanup() does. */
	app_req_detach_all(&conn);
	app_feed_unsubscribe_all(&conn);
	CHECK(server.subscribers == 0, "subscriber count is %zu with no connection",
	      server.subscribers);
	while ((m = conn.out_head)) {
		conn.out_head = m->next;
		free(m);
	}
	free(conn.http_resp);
	free(conn.rx);
	return 0;
}
