/*
 * server.h - the lws thread's objects (internal to the appliance):
 * connections, requests, subscriptions and the feed cache. Everything here
 * is touched only by the lws thread, so nothing here is locked. The one
 * exception is a fan-out's copies (struct app_fan_copy): fanout.c's helpers
 * write them, and the sockets they name, while the lws thread waits in
 * app_fanout_send, which hands them over and back under its mutex.
 *
 * Subscriber states (one struct app_subscr):
 *
 *   CATCHUP --(next > tip after a pump)--> LIVE
 *   LIVE --(block h arrives, next == h)--> LIVE (message queued, next++)
 *   LIVE --(block h arrives, next < h: an event was missed)--> CATCHUP
 *   any --(connection queue over its cap)--> DROPPED (connection closed with
 *          the height to resume from)
 *
 * Level events (available, posted, finalized) follow their own cursor per
 * level, next_level[L], and are sent by feed_pump, in either state, only for
 * heights whose `sealed` event was already queued (next_level[L] <
 * next_height) and which reached the level (<= feed.level_tip[L]).
 *
 *   transition         function
 *   CATCHUP -> LIVE    feed_pump
 *   LIVE -> LIVE       app_feed_block
 *   LIVE -> CATCHUP    app_feed_block
 *   any -> DROPPED     conn_enqueue (over cap) -> conn_drop
 */
#ifndef MEZZ_SERVER_H
#define MEZZ_SERVER_H

#include <sys/types.h>

#include <jansson.h>
#include <libwebsockets.h>
#include <uv.h>

#include "appliance/auth.h"
#include "appliance/daemon.h"
#include "appliance/limits.h"

struct app_server;

struct out_msg {
	struct out_msg *next;
	size_t len;
	int is_block;	 /* 0 an answer; 1 a block; 2 a copy of the block being fanned out */
	uint64_t height; /* for feed messages: the block it carries */
	uint64_t sub;	 /* for blocks: the subscription it is for */
	unsigned char buf[]; /* LWS_PRE headroom, then len bytes */
};

enum subscr_state { SUB_CATCHUP, SUB_LIVE };

/* Subscriptions one connection may hold (mezz_subscribe answers -32004
 * past it): each distinct filter is a rendering of every block. */
#define APP_SUBS_PER_CONN 32

struct app_subscr {
	struct app_subscr *next;
	uint64_t id;
	enum subscr_state state;
	uint64_t next_height;
	uint64_t next_level[APP_LEVELS];
	unsigned levels; /* bit L set: send level L's events */
	int preconf;	 /* send `preconfirmed` events (counted in committer->preconf_subs) */
	uint64_t *ns; /* filter: chain ids; NULL = every namespace it may read */
	size_t ns_n;
};

enum conn_path { PATH_ROOT, PATH_ROLLUP, PATH_OTHER };

struct app_conn {
	struct app_server *srv;
	struct lws *wsi;
	int inited;
	int is_ws;
	enum conn_path path;
	char rollup[64];
	char auth[160]; /* Authorization header as received */
	int auth_bad;	/* header present but over-long */
	/* app_conn_tenant's answer for auth, valid at auth version key_version */
	int key_known, key_ok;
	int64_t key_tenant, key_version;
	/* the caller as resolved for the message being handled */
	int msg_registry_ok, msg_key_ok;
	int64_t msg_tenant;
	/* receive buffer for the message being assembled */
	unsigned char *rx;
	size_t rx_len, rx_cap;
	int rx_reject; /* HTTP: body over the cap, answer 413 */
	int body_done; /* HTTP: this transaction's body was handled */
	/* send queue */
	struct out_msg *out_head, *out_tail;
	size_t out_bytes, out_blocks;
	int closing;
	int peer_closed; /* the client sent a close frame: lws answers it, we write nothing more */
	char close_reason[120];
	/* HTTP: the one response of the current transaction */
	struct out_msg *http_resp;
	int http_status;
	const char *http_ctype;	 /* NULL: application/json */
	uint64_t retry_after_ms; /* > 0: send Retry-After */
	/* WebSocket: a message had a submission refused by a rate limit; stop
	 * reading this connection for this long (the retry hint), so a flood
	 * waits in its own socket buffer instead of being parsed and refused
	 * on the event loop every other tenant shares. */
	uint64_t rx_pause_ms;
	int rx_paused;		   /* not read until rx_resume_ns (server.c rx_wait) */
	uint64_t rx_resume_ns;
	struct app_conn *rxw_next, *rxw_prev; /* app_server.rx_waiting */
	/* Set by a rate-limit pause, cleared by a message that finds its
	 * buckets full: meanwhile this connection is read at its limit's pace
	 * (server.c rx_pace). What this message's admitted submissions took: */
	int rx_flooding;
	int64_t pace_owner;
	double pace_txs, pace_bytes;
	int pace_refused; /* this message had a refused item (counted once above) */
	const char *http_csp;	 /* non-NULL: a page; send this Content-Security-Policy */
	/* the namespace a submission item resolved to (per-tenant accounting) */
	const struct app_namespace *item_ns;
	/* requests still waiting for the committer */
	struct app_req *reqs;
	struct app_subscr *subs;
	struct app_conn *ws_next, *ws_prev; /* all WebSocket connections */
	int flush_pending; /* on app_server.flush_head */
	struct app_conn *flush_next;
	/* proposer session (proposer_rpc.c): a challenge, then the address it
	 * proved; the private "pending" subscription (0: none) */
	uint8_t prop_challenge[32];
	int prop_has_challenge, prop_ok, prop_backlog;
	uint8_t prop_addr[20];
	uint64_t prop_sub_id, prop_last_ref;
};

enum { ANSWER_ERROR = 1, /* answers[i] is an error object */
       ANSWER_STATIC = 2, /* answers[i] is not to be freed */
       ANSWER_BRIEF = 4 /* answers[i] is a brief batch entry (mezz_sendTransactions) */ };

struct app_req {
	struct app_conn *conn; /* NULL once the connection closed */
	struct app_req *next, *prev;
	int is_batch;
	size_t n, pending;
	char **ids;	/* JSON text of each id; NULL for notifications */
	char *idpool;	/* room for the ids of a fast-parsed message (rpc.c req_id) */
	size_t idpool_size, idpool_used;
	char **answers;		/* each item's result value or error object */
	size_t *alen;		/* strlen of each answer */
	unsigned char *aflags;	/* ANSWER_* of each answer */
	struct app_answer_buf **abuf; /* the buffer an answer lies in, or NULL */
	uint64_t t0_ns;	/* when the message was parsed (preconfirmation latency) */
	size_t limited;	/* items refused by a rate limit */
	/* mezz_sendTransactions: slot i is transaction i and ids[0] the
	 * request's id; one response, a batch receipt (rpc.c req_finish_txs) */
	int txs;
	char **sections;    /* per slot: the batch section that came with it, or NULL */
	/* a copy: the registry's entries are freed by the next refresh, which
	 * any connection's message may make while this request waits */
	struct app_namespace txs_ns;
	/* mezz_subscribe inside a batch: fed once the answer is queued
	 * (rpc.c release_held) */
	struct app_subscr *held_subs;
};

struct feed_cache {
	struct app_block **ring;
	size_t cap;
	/* What the ring's blocks hold (payloads and rendered JSON), kept at
	 * most budget (feed.cache_mib) by dropping the oldest; no height below
	 * low is in the ring. */
	size_t bytes, budget, blocks;
	uint64_t low;
	uint64_t tip; /* highest sealed height known; 0 = none */
	uint64_t level_tip[APP_LEVELS];
	/* recent level events' JSON, slot height % cap, per level */
	struct level_ent {
		uint64_t height;
		char *json;
	} *level_ring[APP_LEVELS];
	/* The newest live block's fan-out (mezz_feed_fanout_seconds): when it
	 * was handed over, and how many subscribers' copies are still queued. */
	uint64_t fan_height, fan_t0_ns;
	size_t fan_pending;
	/* the direct copies of the fan-out being written (fanout.c), grown */
	struct app_fan_copy *copies;
	size_t copies_cap;
	struct app_fanout *pool; /* NULL: the lws thread writes every copy */
	int direct;		 /* copies may be written by fanout.c (no TLS) */
	/* The largest block message of the last fan-out (at most
	 * APP_FEED_SPARE_MAX), kept for the next one: its pages are mapped
	 * already (feed.c msg_keep). */
	unsigned char *msg_spare;
	size_t msg_spare_cap;
};
#define APP_FEED_SPARE_MAX ((size_t)16 << 20)

/*
 * One copy of a live block for a direct write (fanout.c): pre (its frame
 * header, head and subscription id) then the view's shared tail, to fd.
 * sent is what the writer wrote: all of it, less (a short write), 0 (not
 * written: the socket was full, or an earlier copy of the connection was
 * short) or -errno.
 */
#define APP_FAN_PRE_MAX 112
struct app_fan_copy {
	struct app_conn *c;
	struct app_subscr *sub;
	const unsigned char *tail;
	size_t tail_len;
	unsigned char pre[APP_FAN_PRE_MAX];
	size_t pre_len, hdr_len; /* hdr_len: the frame header's part of pre */
	int fd;
	ssize_t sent;
};

static inline size_t app_fan_copy_len(const struct app_fan_copy *x)
{
	return x->pre_len + x->tail_len;
}

/* The header of an unmasked, unfragmented text frame of len bytes, as lws
 * writes it for LWS_WRITE_TEXT on a server without extensions; returns its
 * length (at most APP_WS_FRAME_HEAD_MAX). */
#define APP_WS_FRAME_HEAD_MAX 10
size_t app_ws_frame_head(unsigned char h[static APP_WS_FRAME_HEAD_MAX], size_t len);

struct app_fanout;
/* threads (feed.fanout_threads) <= 1: *out = NULL, every copy written by
 * the caller. Else threads - 1 helpers (at most APP_FANOUT_MAX_THREADS - 1). */
int app_fanout_start(struct app_fanout **out, int threads);
void app_fanout_stop(struct app_fanout *f); /* NULL-safe */
/* Write cp[0..n) (the lws thread; returns when every copy is done) and
 * return how many of them helpers wrote. */
size_t app_fanout_send(struct app_fanout *f, struct app_fan_copy *cp, size_t n);

struct app_fast_tx;

struct app_server {
	const struct app_config *cfg;
	const struct app_identity *id;
	struct lws_context *ctx;
	/* lws runs on libuv (epoll) in this loop, not on its poll() loop: poll()
	 * walks every socket on every wake-up, which with 1000 feed subscribers
	 * and 10k messages/s took most of the thread (see server.c). */
	uv_loop_t loop;
	int loop_inited;
	/* WebSocket connections left unread for a while, and the timer that
	 * resumes them (server.c rx_wait) */
	struct app_conn *rx_waiting;
	uv_timer_t rx_timer;
	int rx_timer_inited;
	struct app_queue *ingress, *done;
	struct app_committer *committer;
	struct app_store *ro;
	struct da_store *shards; /* the lws thread's handle (dasrv.c) */
	struct da_code *codes[4]; /* recently used (k, m) codes */
	struct app_auth auth;
	struct feed_cache feed;
	struct app_conn *ws_list;
	/* While the done queue is drained, WebSocket connections given
	 * something to send wait here instead of asking lws for a WRITEABLE
	 * callback, and are written once at the end (server.c flush_deferred) */
	int flush_defer;
	struct app_conn *flush_head;
	unsigned char *coalesce; /* LWS_PRE + COALESCE_MAX: write_coalesced's frames */
	struct app_fast_tx *fast; /* server.max_batch_items: app_fastrpc_parse's output */
	uint64_t next_sub_id;
	size_t subscribers;
	volatile int stop;
	int accepting;
	/* operations (status.c): limits, health components, the sampling timer */
	struct app_limits limits;
	int h_blocks, h_feed, h_seq;
	uint64_t seen_height;
	lws_sorted_usec_list_t ops_sul;
	int ops_armed;
};

/* status.c: /metrics, /healthz and the status page; sampling of gauges and
 * health on a timer of the lws loop. */
int app_ops_init(struct app_server *s);
void app_ops_stop(struct app_server *s);
void app_ops_sample(struct app_server *s);
/* Answer a GET for an operations path; 1 when uri was one (response queued). */
int app_ops_get(struct app_conn *c, const char *uri);
/* tls.c: TLS 1.2/1.3, AEAD-only policy for the port (no-op without a cert). */
int app_tls_configure(struct lws_context_creation_info *info, const struct app_config *cfg,
		      char *errbuf, size_t errlen);
int app_tls_harden(void *ssl_ctx);
/* Queue an HTTP response with a status and content type (body copied). */
int app_http_reply(struct app_conn *c, int status, const char *ctype, const char *body,
		   size_t len);

int app_server_init(struct app_server *s, char *errbuf, size_t errlen);
/* Run until s->stop is set: 0; -1 if the loop ran out of work first (the
 * listening socket and every connection gone: not a stop anyone asked for). */
int app_server_run(struct app_server *s);
/* One turn of the event loop: wait for an event when `wait`, else only handle
 * what is ready. Returns 0, or -1 when the loop has nothing left to run. */
int app_server_service(struct app_server *s, int wait);
void app_server_destroy(struct app_server *s);
/* Called from a signal handler: sets stop and wakes the loop. */
void app_server_request_stop(struct app_server *s);

/* fastrpc.c: a mezz_sendTransaction request, or a batch of them, or one
 * mezz_sendTransactions, read without jansson. Pointers are into the
 * message; id == NULL: no id. */
struct app_fast_tx {
	const char *id, *ns, *data; /* id: the JSON text of the id as written */
	size_t id_len, ns_len, data_len;
};
enum { APP_FAST_ONE, APP_FAST_BATCH, APP_FAST_TXS };
/* The number of requests (1..max) when the whole message is in the narrow
 * grammar described in fastrpc.c, else 0 (parse it with jansson). *shape:
 * APP_FAST_ONE (one request), APP_FAST_BATCH (an array of them) or
 * APP_FAST_TXS (one mezz_sendTransactions; out[i] is its txs[i], each with
 * the request's id and namespace); APP_FAST_ONE whenever 0 is returned. */
size_t app_fastrpc_parse(const char *msg, size_t len, struct app_fast_tx *out, size_t max,
			 int *shape);

/* rpc.c: dispatch one parsed message (object or batch array). */
void app_rpc_handle(struct app_conn *c, const unsigned char *msg, size_t len);
/* rpc.c: a committer answer arrived (d->req, d->slot); the request takes
 * its json (and buf reference). now_ns: when it was taken off the done
 * queue (one clock read a popped batch), for the preconfirmation metrics. */
void app_rpc_answer(struct app_server *s, struct app_done *d, uint64_t now_ns);
void app_req_detach_all(struct app_conn *c);

/* server.c: queue bytes to a connection (copied). 0, or -1 if dropped.
 * A block (is_block 1 or 2) names its height and subscription id. */
int app_conn_send(struct app_conn *c, const char *data, size_t len, int is_block,
		  uint64_t height, uint64_t sub);
/* A text buffer of cap bytes that app_conn_send_msg queues as it is, with
 * no copy; free it with app_msg_free unless it was handed over. */
char *app_msg_alloc(size_t cap);
void app_msg_free(char *text);
/* As app_conn_send, taking text (from app_msg_alloc, len bytes used):
 * queued, or freed if the connection is dropped or closing. */
int app_conn_send_msg(struct app_conn *c, char *text, size_t len, int is_block, uint64_t height,
		      uint64_t sub);
void app_conn_drop(struct app_conn *c, const char *reason);
/* Ask lws for a WRITEABLE callback on this connection; during a drain of
 * the done queue, a WebSocket connection is written at the drain's end
 * instead (server.c flush_deferred). */
void app_conn_wake(struct app_conn *c);

/* dasrv.c: data availability on the lws thread. The *_json calls return 0
 * with *out (malloc'd result JSON) or a JSON-RPC code with msg filled. */
int app_dasrv_open(struct app_server *s, char *errbuf, size_t errlen);
void app_dasrv_close(struct app_server *s);
int app_dasrv_shard_json(struct app_server *s, uint64_t height, unsigned index, char **out,
			 char *msg, size_t msglen);
int app_dasrv_nsproof_json(struct app_server *s, uint64_t height,
			   const struct app_namespace *ns, char **out, char *msg, size_t msglen);
/* A block whose transactions retention has pruned, rebuilt from its shards. */
int app_dasrv_block(struct app_server *s, uint64_t height, struct app_block **out);

/* proposer_rpc.c: the proposer methods (mezz_proposerChallenge,
 * mezz_proposerAuth, mezz_submitSlotBlock, mezz_subscribe ["pending"]).
 * Returns 0 if `m` with these params is not one of them; else 1 with the
 * answer in *is_error and *json (malloc'd), or with *json NULL and a sub-block
 * item in *sub for the caller to queue to the committer. */
int app_prop_rpc(struct app_conn *c, const char *m, json_t *params, int *is_error, char **json,
		 struct app_sub *sub);
/* After the answer to a "pending" subscription is queued: send what is
 * already held for the session's address. */
void app_prop_backlog(struct app_conn *c);
/* A DONE_PENDING notice: send it to the winner's subscribed sessions. */
void app_prop_notice(struct app_server *s, const struct app_done *d);

/* feed.c */
void app_feed_block(struct app_server *s, struct app_block *b);
/* Blocks up to `height` reached `level`: wake the subscribers waiting for it. */
void app_feed_level(struct app_server *s, enum app_level level, uint64_t height);
/* Send a committed group's `preconfirmed` event to the live subscriptions
 * that asked for it (the caller keeps ownership of p). */
void app_feed_preconf(struct app_server *s, const struct app_preconf *p);
/* Free a subscription that is already unlinked, keeping the counters true. */
void app_feed_sub_free(struct app_server *s, struct app_subscr *sub);
/* The `result` of a level event for one block, read from storage: malloc'd
 * JSON, or NULL with APP_ENOTFOUND (level not reached) or another error. */
int app_level_json(struct app_server *s, enum app_level level, uint64_t height, char **out);
/* l1stage.c: the posted / finalized event of one block, from outbox.db. */
int app_l1_level_json(struct app_server *s, enum app_level level, uint64_t height, char **out);
/* l1stage.c: a state root's status JSON (malloc'd), or APP_ENOTFOUND. */
int app_l1_state_root_json(struct app_server *s, uint64_t rollup, uint64_t l2_block,
			   const char *ns_name, char **out);
/* l1stage.c: the "l1" member of mezz_status (malloc'd JSON object). */
char *app_l1_status_json(struct app_server *s);
void app_feed_pump(struct app_conn *c);
/* 1 when app_feed_pump has work for c: a subscription catching up, or
 * level events due. */
int app_feed_pending(const struct app_conn *c);
struct app_block *app_feed_get(struct app_server *s, uint64_t height); /* +1 ref */
/* Block as JSON for a reader: namespaces limited to filter (NULL = all)
 * and to what `tenant` may read. Returns malloc'd text. */
char *app_feed_block_json(struct app_server *s, struct app_block *b, const uint64_t *filter,
			  size_t filter_n, int64_t tenant, const char *level);
void app_feed_unsubscribe_all(struct app_conn *c);
void app_feed_destroy(struct app_server *s);
int app_conn_tenant(struct app_conn *c, int64_t *tenant);

#endif /* MEZZ_SERVER_H */
