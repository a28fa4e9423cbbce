/*
 * server.c - the lws thread: one port, JSON-RPC 2.0 over HTTP POST and
 * over WebSocket, on "/" (mezz_* methods) and "/rollup/<name>" (Ethereum).
 *
 * Rules kept here (lws README.coding): only this thread touches lws; other
 * threads hand over through the done queue and lws_cancel_service(); a
 * write happens in a WRITEABLE callback, one lws_write per callback, or,
 * for a connection lws holds nothing for, right where the done queue's
 * drain gave it something to send (flush_deferred, and a live block's copy
 * in feed.c deliver, where the reasons are); every
 * length from the wire is checked against its cap before memory is taken.
 * LWS_CALLBACK_HTTP_CONFIRM_UPGRADE is deliberately not handled
 * (CVE-2025-11677 in Debian's lws).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "appliance/ops.h"
#include "appliance/server.h"

#define DONE_BATCH 4096
/* Messages under COALESCE_SMALL bytes are written several per write, up to
 * COALESCE_MAX bytes of frames (write_coalesced). */
#define COALESCE_SMALL 16384
#define COALESCE_MAX 65536

/* A queued copy of a live block left its queue: written, or dropped with
 * its connection. The last one ends that block's fan-out. */
static void fanout_left(struct app_server *s, const struct out_msg *m)
{
	struct feed_cache *f = &s->feed;

	if (m->is_block != 2 || m->height != f->fan_height || !f->fan_pending)
		return;
	if (--f->fan_pending == 0)
		app_metric_observe(APP_M_feed_fanout_seconds, (app_now_ns() - f->fan_t0_ns) / 1000);
}

static void out_free_all(struct app_conn *c)
{
	struct out_msg *m = c->out_head, *next;

	for (; m; m = next) {
		next = m->next;
		fanout_left(c->srv, m);
		free(m);
	}
	c->out_head = c->out_tail = NULL;
	c->out_bytes = c->out_blocks = 0;
	free(c->http_resp);
	c->http_resp = NULL;
}

static void out_pop(struct app_conn *c)
{
	struct out_msg *m = c->out_head;

	c->out_head = m->next;
	if (!c->out_head)
		c->out_tail = NULL;
	c->out_bytes -= m->len;
	c->out_blocks -= m->is_block ? 1 : 0;
	fanout_left(c->srv, m);
	free(m);
}

/*
 * Several small queued messages (receipts, mostly) leave in one write:
 * their WebSocket frames are built here, back to back, and sent raw. One
 * lws_write per message cost a send(2) through the loopback stack and an
 * epoll_ctl each; under load a connection has dozens of receipts queued
 * when it becomes writeable. The frames are what lws writes for
 * LWS_WRITE_TEXT on a server without extensions: FIN + text opcode,
 * unmasked, the 7- or 16-bit length form (small messages are < 64 KiB).
 * A partial write is kept and finished by lws before the next WRITEABLE,
 * as for any lws_write.
 */
static int write_coalesced(struct app_conn *c)
{
	unsigned char *buf = c->srv->coalesce, *p = buf + LWS_PRE;
	size_t n = 0;

	for (struct out_msg *m = c->out_head;
	     m && m->len < COALESCE_SMALL && n + 4 + m->len <= COALESCE_MAX; m = c->out_head) {
		n += app_ws_frame_head(p + n, m->len);
		memcpy(p + n, m->buf + LWS_PRE, m->len);
		n += m->len;
		out_pop(c);
	}
	return lws_write(c->wsi, p, n, LWS_WRITE_RAW) < (int)n ? -1 : 0;
}

size_t app_ws_frame_head(unsigned char h[static APP_WS_FRAME_HEAD_MAX], size_t len)
{
	size_t n = 0;

	h[n++] = 0x81; /* FIN, text */
	if (len < 126) {
		h[n++] = (unsigned char)len;
	} else if (len <= 0xffff) {
		h[n++] = 126;
		h[n++] = (unsigned char)(len >> 8);
		h[n++] = (unsigned char)(len & 0xff);
	} else {
		h[n++] = 127;
		for (int i = 7; i >= 0; i--)
			h[n++] = (unsigned char)(len >> (8 * i));
	}
	return n;
}

/* One write from c's non-empty queue: its small messages coalesced, or
 * its first message alone. -1 if the write failed. */
static int write_queued(struct app_conn *c)
{
	struct out_msg *m = c->out_head;

	if (m->next && m->len < COALESCE_SMALL)
		return write_coalesced(c);
	if (lws_write(c->wsi, m->buf + LWS_PRE, m->len, LWS_WRITE_TEXT) < (int)m->len)
		return -1;
	out_pop(c);
	return 0;
}

void app_conn_wake(struct app_conn *c)
{
	struct app_server *s = c->srv;

	/* A connection without a socket is a test harness (fuzzing): nothing to wake. */
	if (!c->wsi)
		return;
	if (s->flush_defer && c->is_ws) {
		if (!c->flush_pending) {
			c->flush_pending = 1;
			c->flush_next = s->flush_head;
			s->flush_head = c;
		}
		return;
	}
	lws_callback_on_writable(c->wsi);
}

static void flush_forget(struct app_conn *c)
{
	struct app_conn **pp = &c->srv->flush_head;

	while (*pp && *pp != c)
		pp = &(*pp)->flush_next;
	if (*pp)
		*pp = c->flush_next;
	c->flush_pending = 0;
	c->flush_next = NULL;
}

/*
 * The end of a drain of the done queue: each WebSocket connection that was
 * given something to send gets one write now, as in its WRITEABLE
 * callback, if lws holds nothing of an earlier write for it. A receipt
 * then leaves in the same turn of the event loop as the group commit that
 * made it, where asking for a WRITEABLE callback cost an epoll_ctl to
 * watch for POLLOUT, a loop turn to get it, and an epoll_ctl to stop
 * watching, per connection per group (the lws thread at 10k tx/s is
 * mostly such per-message overhead). Anything left (more queued, a
 * partial write, a close frame) goes the usual way, through WRITEABLE.
 */
static void flush_deferred(struct app_server *s)
{
	struct app_conn *c;

	s->flush_defer = 0;
	while ((c = s->flush_head)) {
		s->flush_head = c->flush_next;
		c->flush_pending = 0;
		c->flush_next = NULL;
		if (!c->closing && c->out_head && !lws_partial_buffered(c->wsi) &&
		    write_queued(c)) {
			app_conn_drop(c, "write to the socket failed");
			continue;
		}
		if (c->closing || c->out_head || app_feed_pending(c))
			lws_callback_on_writable(c->wsi);
	}
}

void app_conn_drop(struct app_conn *c, const char *reason)
{
	if (c->closing)
		return;
	c->closing = 1;
	snprintf(c->close_reason, sizeof(c->close_reason), "%s", reason);
	/* Nothing queued is sent after the close frame: free it now. A dropped
	 * client that does not read keeps its socket until lws gives up on it
	 * (the idle timeout), and its queue with it, at the cap each time. */
	for (struct out_msg *m = c->out_head, *next; m; m = next) {
		next = m->next;
		fanout_left(c->srv, m);
		free(m);
	}
	c->out_head = c->out_tail = NULL;
	c->out_bytes = c->out_blocks = 0;
	app_info("client_dropped", "reason=\"%s\"", reason);
	app_conn_wake(c);
}

/* The out_msg whose text app_msg_alloc returned. */
static struct out_msg *msg_of(char *text)
{
	return (struct out_msg *)((unsigned char *)text - LWS_PRE - offsetof(struct out_msg, buf));
}

char *app_msg_alloc(size_t cap)
{
	struct out_msg *m = cap > SIZE_MAX - sizeof(*m) - LWS_PRE ? NULL
								  : malloc(sizeof(*m) + LWS_PRE + cap);

	if (!m)
		return NULL;
	m->next = NULL;
	m->len = 0;
	m->is_block = 0;
	m->height = 0;
	return (char *)m->buf + LWS_PRE;
}

void app_msg_free(char *text)
{
	if (text)
		free(msg_of(text));
}

/* A message holding a copy of data, len set; NULL when out of memory. */
static struct out_msg *msg_copy(const char *data, size_t len)
{
	char *t = app_msg_alloc(len);
	struct out_msg *m;

	if (!t)
		return NULL;
	memcpy(t, data, len);
	m = msg_of(t);
	m->len = len;
	return m;
}

int app_conn_send(struct app_conn *c, const char *data, size_t len, int is_block,
		  uint64_t height, uint64_t sub)
{
	struct out_msg *m;

	if (c->closing)
		return -1;
	m = msg_copy(data, len);
	if (!m)
		return -1;
	return app_conn_send_msg(c, (char *)m->buf + LWS_PRE, len, is_block, height, sub);
}

/* The first height subscription sub has not had: its oldest queued block,
 * else the next it would be sent. */
static uint64_t resume_height(const struct app_conn *c, const struct app_subscr *sub)
{
	for (const struct out_msg *q = c->out_head; q; q = q->next)
		if (q->is_block && q->sub == sub->id)
			return q->height;
	return sub->next_height;
}

/*
 * Why a connection whose queue is full is closed, with where to resume:
 * the lowest of its subscriptions' first heights not had, so that
 * resubscribing there loses nothing; with several subscriptions that differ,
 * each one's own as "0xID=N" too, as many as the close reason has room for
 * (a close frame carries 123 bytes; close_reason keeps 119). One further
 * ahead that is not listed sees some blocks again.
 */
static const char *drop_reason(const struct app_conn *c, char *why, size_t cap)
{
	uint64_t low = UINT64_MAX;
	int differ = 0, n;
	size_t at;

	for (const struct app_subscr *sub = c->subs; sub; sub = sub->next) {
		uint64_t h = resume_height(c, sub);

		differ |= low != UINT64_MAX && h != low;
		low = h < low ? h : low;
	}
	if (low == UINT64_MAX)
		return "send queue full: the client is not reading";
	n = snprintf(why, cap, "send queue full; resubscribe with fromHeight=%llu",
		     (unsigned long long)low);
	at = (size_t)n;
	for (const struct app_subscr *sub = c->subs; differ && sub; sub = sub->next) {
		char one[48];
		int k = snprintf(one, sizeof(one), "%s0x%llx=%llu", sub == c->subs ? "; " : " ",
				 (unsigned long long)sub->id,
				 (unsigned long long)resume_height(c, sub));

		if (at + (size_t)k >= cap)
			break;
		memcpy(why + at, one, (size_t)k + 1);
		at += (size_t)k;
	}
	return why;
}

int app_conn_send_msg(struct app_conn *c, char *text, size_t len, int is_block, uint64_t height,
		      uint64_t sub)
{
	struct app_server *s = c->srv;
	struct out_msg *m = msg_of(text);

	m->len = len;
	m->is_block = is_block;
	m->height = height;
	m->sub = sub;
	if (c->closing) {
		free(m);
		return -1;
	}
	if (!c->is_ws) { /* HTTP: exactly one response per transaction */
		free(c->http_resp);
		c->http_resp = m;
		app_conn_wake(c);
		return 0;
	}
	/* The byte cap is on what waits behind other messages: one message is
	 * always taken into an empty queue, however large, or a block bigger
	 * than the cap could never be sent, and a subscriber told to resume
	 * from it would be dropped there again on every try. */
	if ((c->out_head && c->out_bytes + len > (size_t)s->cfg->ws_send_queue_bytes) ||
	    (is_block && c->out_blocks + 1 > (size_t)s->cfg->feed_queue_max_blocks)) {
		char why[sizeof(c->close_reason)];

		free(m);
		app_metric_add(APP_M_feed_drops_total, 1);
		app_conn_drop(c, drop_reason(c, why, sizeof(why)));
		return -1;
	}
	if (c->out_tail)
		c->out_tail->next = m;
	else
		c->out_head = m;
	c->out_tail = m;
	c->out_bytes += len;
	c->out_blocks += is_block ? 1 : 0;
	app_conn_wake(c);
	return 0;
}

static void drain_done(struct app_server *s)
{
	struct app_done d[256];
	size_t n, total = 0;

	s->flush_defer = 1;
	while (total < DONE_BATCH && (n = app_queue_pop(s->done, d, 256, 0)) > 0) {
		uint64_t now = app_now_ns();

		for (size_t i = 0; i < n; i++) {
			if (d[i].kind == DONE_BLOCK) {
				app_feed_block(s, d[i].block);
				app_health_beat(s->h_feed);
			} else if (d[i].kind == DONE_LEVEL) {
				app_feed_level(s, d[i].level, d[i].height);
			} else if (d[i].kind == DONE_PRECONF) {
				app_feed_preconf(s, d[i].pre);
				app_preconf_free(d[i].pre);
			} else if (d[i].kind == DONE_PENDING) {
				app_prop_notice(s, &d[i]);
				free(d[i].json);
			} else
				app_rpc_answer(s, &d[i], now);
		}
		total += n;
	}
	/* A sealed height we were not told about (done queue was full): the
	 * feed catches up from storage. */
	if (atomic_load(&s->committer->stats.has_block)) {
		uint64_t h = atomic_load(&s->committer->stats.height);

		if (h > s->feed.tip) {
			s->feed.tip = h;
			for (struct app_conn *c = s->ws_list; c; c = c->ws_next)
				if (c->subs)
					app_conn_wake(c);
		}
	}
	/* Level events we were not told about, likewise. */
	for (int L = 0; L < APP_LEVELS; L++)
		app_feed_level(s, (enum app_level)L, atomic_load(&s->committer->stats.level_tip[L]));
	flush_deferred(s);
	if (app_queue_len(s->done))
		lws_cancel_service(s->ctx);
}

static void conn_cleanup(struct app_conn *c);
static void rx_unlink(struct app_conn *c);

static void conn_init(struct app_conn *c, struct app_server *s, struct lws *wsi, int is_ws)
{
	char uri[256];
	int n;

	/* HTTP keep-alive reuses the session data for the next transaction. */
	conn_cleanup(c);
	memset(c, 0, sizeof(*c));
	c->srv = s;
	c->wsi = wsi;
	c->is_ws = is_ws;
	c->inited = 1;
	c->path = PATH_OTHER;
	n = lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI);
	if (n <= 0)
		n = lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_POST_URI);
	if (n > 0) {
		if (!strcmp(uri, "/"))
			c->path = PATH_ROOT;
		else if (!strncmp(uri, "/rollup/", 8) && strlen(uri + 8) > 0 &&
			 strlen(uri + 8) < sizeof(c->rollup)) {
			c->path = PATH_ROLLUP;
			snprintf(c->rollup, sizeof(c->rollup), "%s", uri + 8);
		}
	}
	n = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
	if (n >= (int)sizeof(c->auth))
		c->auth_bad = 1;
	else if (n > 0)
		lws_hdr_copy(wsi, c->auth, sizeof(c->auth), WSI_TOKEN_HTTP_AUTHORIZATION);
}

static void conn_cleanup(struct app_conn *c)
{
	struct app_server *s = c->srv;

	if (!c->inited)
		return;
	app_req_detach_all(c);
	app_feed_unsubscribe_all(c);
	out_free_all(c);
	free(c->rx);
	c->rx = NULL;
	if (c->is_ws) {
		if (c->ws_prev)
			c->ws_prev->ws_next = c->ws_next;
		else if (s->ws_list == c)
			s->ws_list = c->ws_next;
		if (c->ws_next)
			c->ws_next->ws_prev = c->ws_prev;
	}
	if (c->rx_paused)
		rx_unlink(c);
	c->rx_paused = 0;
	if (c->flush_pending)
		flush_forget(c);
	c->inited = 0;
}

/* Append to the receive buffer, refusing before allocation when over cap. */
static int rx_append(struct app_conn *c, const void *in, size_t len)
{
	size_t cap = (size_t)c->srv->cfg->max_message_bytes;

	if (len > cap - c->rx_len || c->rx_len + len > cap)
		return -1;
	if (c->rx_len + len > c->rx_cap) {
		size_t ncap = c->rx_cap ? c->rx_cap : 4096;
		unsigned char *nb;

		while (ncap < c->rx_len + len)
			ncap *= 2;
		if (ncap > cap)
			ncap = cap;
		nb = realloc(c->rx, ncap);
		if (!nb)
			return -1;
		c->rx = nb;
		c->rx_cap = ncap;
	}
	memcpy(c->rx + c->rx_len, in, len);
	c->rx_len += len;
	return 0;
}

static int http_write_response(struct app_conn *c)
{
	unsigned char hdr[LWS_PRE + 1024], *start = hdr + LWS_PRE, *p = start,
					     *end = hdr + sizeof(hdr) - 1;
	struct out_msg *m = c->http_resp;
	int status = c->http_status ? c->http_status : HTTP_STATUS_OK;
	size_t len = m ? m->len : 0;

	if (lws_add_http_common_headers(c->wsi, (unsigned int)status,
					c->http_ctype ? c->http_ctype : "application/json",
					(lws_filepos_t)len, &p, end))
		return -1;
	if (c->retry_after_ms) {
		char ra[24];
		int n = snprintf(ra, sizeof(ra), "%llu",
				 (unsigned long long)((c->retry_after_ms + 999) / 1000));

		if (lws_add_http_header_by_name(c->wsi, (const unsigned char *)"retry-after:",
						(const unsigned char *)ra, n, &p, end))
			return -1;
	}
	if (c->http_csp &&
	    (lws_add_http_header_by_name(c->wsi, (const unsigned char *)"content-security-policy:",
					 (const unsigned char *)c->http_csp,
					 (int)strlen(c->http_csp), &p, end) ||
	     lws_add_http_header_by_name(c->wsi, (const unsigned char *)"x-content-type-options:",
					 (const unsigned char *)"nosniff", 7, &p, end) ||
	     lws_add_http_header_by_name(c->wsi, (const unsigned char *)"cache-control:",
					 (const unsigned char *)"no-cache", 8, &p, end)))
		return -1;
	if (status == HTTP_STATUS_REQ_ENTITY_TOO_LARGE &&
	    lws_add_http_header_by_token(c->wsi, WSI_TOKEN_CONNECTION,
					 (const unsigned char *)"close", 5, &p, end))
		return -1;
	if (lws_finalize_write_http_header(c->wsi, start, &p, end))
		return -1;
	if (len && lws_write(c->wsi, m->buf + LWS_PRE, len, LWS_WRITE_HTTP_FINAL) != (int)len)
		return -1;
	free(c->http_resp);
	c->http_resp = NULL;
	c->http_status = 0;
	c->http_ctype = NULL;
	c->retry_after_ms = 0;
	c->http_csp = NULL;
	if (status == HTTP_STATUS_REQ_ENTITY_TOO_LARGE)
		return -1; /* the unread body makes the connection unusable */
	return lws_http_transaction_completed(c->wsi) ? -1 : 0;
}

static void http_reject_too_big(struct app_conn *c)
{
	char msg[256], *err;

	err = app_error_json(RPC_TOO_LARGE,
			     "request body exceeds server.max_message_bytes (%ld bytes)",
			     c->srv->cfg->max_message_bytes);
	snprintf(msg, sizeof(msg), "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":%s}",
		 err ? err : "null");
	free(err);
	c->rx_reject = 1;
	c->http_status = HTTP_STATUS_REQ_ENTITY_TOO_LARGE;
	app_conn_send(c, msg, strlen(msg), 0, 0, 0);
}

/* GET: the status page, /metrics and /healthz (app_ops_get), else 404. */
static int serve_get(struct app_conn *c, const char *uri)
{
	static const char body[] = "not found\n";
	unsigned char buf[LWS_PRE + 512], *start = buf + LWS_PRE, *p = start,
					     *end = buf + sizeof(buf) - 1;
	int status = HTTP_STATUS_NOT_FOUND, rc;

	if ((rc = app_ops_get(c, uri)) != 0)
		return rc < 0 ? -1 : 0;
	if (lws_add_http_common_headers(c->wsi, (unsigned int)status, "text/plain",
					strlen(body), &p, end) ||
	    lws_finalize_write_http_header(c->wsi, start, &p, end))
		return -1;
	/* Short bodies fit lws' own buffer; this is the single write. */
	memcpy(buf + LWS_PRE, body, strlen(body));
	if (lws_write(c->wsi, buf + LWS_PRE, strlen(body), LWS_WRITE_HTTP_FINAL) < 0)
		return -1;
	return lws_http_transaction_completed(c->wsi) ? -1 : 0;
}

int app_http_reply(struct app_conn *c, int status, const char *ctype, const char *body,
		   size_t len)
{
	struct out_msg *m = msg_copy(body, len);

	if (!m)
		return APP_ENOMEM;
	free(c->http_resp);
	c->http_resp = m;
	c->http_status = status;
	c->http_ctype = ctype;
	app_conn_wake(c);
	return 0;
}

/*
 * Connections left unread for a while: one libuv timer, ticking every
 * millisecond while any waits, resumes those whose time has come. Not
 * lws_set_timer_usecs: lws 4.1 re-arms its libuv timer with the time left
 * rounded to the nearest millisecond, so the last half millisecond before
 * a timer is due spins the loop (perf: with a connection paced every
 * 0.5 ms, 54% of the lws thread in clock_gettime).
 */
static void rx_unlink(struct app_conn *c)
{
	struct app_server *s = c->srv;

	if (c->rxw_prev)
		c->rxw_prev->rxw_next = c->rxw_next;
	else if (s->rx_waiting == c)
		s->rx_waiting = c->rxw_next;
	if (c->rxw_next)
		c->rxw_next->rxw_prev = c->rxw_prev;
	c->rxw_next = c->rxw_prev = NULL;
}

static void rx_tick(uv_timer_t *t)
{
	struct app_server *s = t->data;
	uint64_t now = app_now_ns();
	struct app_conn *c;

	/* From the head again after each resume: resuming runs callbacks that
	 * may pause or close other connections on this list. */
	for (;;) {
		for (c = s->rx_waiting; c && c->rx_resume_ns > now; c = c->rxw_next)
			;
		if (!c)
			break;
		rx_unlink(c);
		c->rx_paused = 0;
		lws_rx_flow_control(c->wsi, 1);
	}
	if (!s->rx_waiting)
		uv_timer_stop(t);
}

static void rx_wait(struct app_conn *c, uint64_t ns)
{
	struct app_server *s = c->srv;

	c->rx_paused = 1;
	c->rx_resume_ns = app_now_ns() + ns;
	lws_rx_flow_control(c->wsi, 0);
	c->rxw_prev = NULL;
	c->rxw_next = s->rx_waiting;
	if (s->rx_waiting)
		s->rx_waiting->rxw_prev = c;
	s->rx_waiting = c;
	if (!uv_is_active((uv_handle_t *)&s->rx_timer))
		uv_timer_start(&s->rx_timer, rx_tick, 1, 1);
}

/*
 * Backpressure for a connection over its rate limit: its refused message
 * was answered (-32009 with retryAfterMs); now leave the rest of what it
 * sent in the kernel's socket buffer until that time has passed. Measured
 * with tests/bench/isolation.sh: parsing and refusing a 10x flood on the
 * shared event loop was what moved the quiet tenant's p99.
 */
static void rx_pause_if_limited(struct app_conn *c)
{
	uint64_t ms = c->rx_pause_ms;

	if (!ms || c->rx_paused)
		return;
	c->rx_pause_ms = 0;
	/* At least 25 ms: pausing only until the next token (0.5 ms at 2k/s)
	 * let a flood be read and refused at ~4k messages/s per connection;
	 * 25 ms bounds that to 40/s while the bucket refills meanwhile. What
	 * it earns meanwhile is then read at the limit's pace (rx_pace). */
	if (ms < 25)
		ms = 25;
	/* And not before its turn, booked after those of the tenant's other
	 * paced connections: resuming earlier would find the tokens theirs and
	 * be refused again. */
	{
		int full;
		uint64_t turn = app_limits_pace_us(&c->srv->limits, c->wsi, c->pace_owner,
						   c->msg_tenant, c->pace_txs, c->pace_bytes, &full);

		if (turn / 1000 > ms)
			ms = turn / 1000;
	}
	if (ms > 1000)
		ms = 1000;
	c->rx_flooding = 1;
	app_metric_add(APP_M_ws_rx_paused_total, 1);
	rx_wait(c, ms * 1000000);
}

/*
 * A connection that was refused and goes on sending is read at its limit's
 * pace: each message books, on each bucket that admitted it, the time the
 * bucket's rate takes to earn it back, after the turns its tenant's other
 * paced connections booked; the connection is read again at the end of its
 * turn. Measured with tests/bench/isolation.sh: without this, each resume
 * spent the tokens earned during the pause (25 ms of the rate) in one clump
 * of messages, and those clumps, landing in one commit group, moved the
 * neighbours' p99 (a 100 ms pause made it worse; a 5 ms one better, but
 * refused 5x as many messages). Paced, a flood is admitted about as evenly
 * as a client sending exactly its limit, and waits in its socket buffer
 * instead of being refused. A turn under 1 ms (the timer's tick) does not
 * stop the reading. Pacing ends when a message finds its buckets full.
 */
static void rx_pace(struct app_conn *c)
{
	uint64_t us;
	int full;

	if (!c->rx_flooding || c->rx_paused || c->pace_txs <= 0)
		return;
	us = app_limits_pace_us(&c->srv->limits, c->wsi, c->pace_owner, c->msg_tenant,
				c->pace_txs, c->pace_bytes, &full);
	if (full) {
		c->rx_flooding = 0;
		return;
	}
	if (us < 1000)
		return;
	if (us > 1000000)
		us = 1000000;
	app_metric_add(APP_M_ws_rx_paced_total, 1);
	rx_wait(c, us * 1000);
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
		    size_t len)
{
	struct app_conn *c = user;
	struct app_server *s = lws_context_user(lws_get_context(wsi));

	switch (reason) {
	/* Connections per address: counted from accept (the listening wsi, the
	 * new fd in `in`) to the destruction of the wsi lws creates next. */
	case LWS_CALLBACK_FILTER_NETWORK_CONNECTION:
		return s ? app_limits_conn_accept(&s->limits, (int)(intptr_t)in) : 0;
	case LWS_CALLBACK_WSI_CREATE:
		if (s)
			app_limits_conn_bind(&s->limits, wsi);
		return 0;
	case LWS_CALLBACK_WSI_DESTROY:
		if (s)
			app_limits_conn_close(&s->limits, wsi);
		return 0;
	case LWS_CALLBACK_OPENSSL_LOAD_EXTRA_SERVER_VERIFY_CERTS:
		return app_tls_harden(user);
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
		if (s)
			drain_done(s);
		return 0;

	case LWS_CALLBACK_HTTP: {
		char cl[32];

		conn_init(c, s, wsi, 0);
		if (!lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI))
			return serve_get(c, in ? (const char *)in : "/");
		if (lws_hdr_copy(wsi, cl, sizeof(cl), WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0 &&
		    strtoull(cl, NULL, 10) > (unsigned long long)s->cfg->max_message_bytes)
			http_reject_too_big(c);
		return 0;
	}
	case LWS_CALLBACK_HTTP_BODY:
		if (c->rx_reject)
			return 0;
		if (rx_append(c, in, len))
			http_reject_too_big(c);
		return 0;
	case LWS_CALLBACK_HTTP_BODY_COMPLETION:
		/* lws 4.1 offers whatever follows a body (a pipelined request,
		 * a stray CRLF) as another completion of the same transaction,
		 * and again on every turn of the loop while the answer is
		 * pending: the answer was replaced by a parse error and the
		 * network thread spun, stalling every client. It cannot be
		 * left unread (lws re-offers it) nor read (it is not handed
		 * over), so such a connection is closed: HTTP pipelining is not
		 * supported (docs/API.md). */
		if (c->body_done) {
			app_metric_add(APP_M_http_pipelined_closed_total, 1);
			return -1;
		}
		c->body_done = 1;
		if (c->rx_reject)
			return 0;
		app_rpc_handle(c, c->rx, c->rx_len);
		c->rx_len = 0;
		return 0;
	case LWS_CALLBACK_HTTP_WRITEABLE:
		if (!c->http_resp && !c->http_status)
			return 0;
		return http_write_response(c);
	case LWS_CALLBACK_CLOSED_HTTP:
	case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
		if (c)
			conn_cleanup(c);
		return 0;

	case LWS_CALLBACK_ESTABLISHED:
		conn_init(c, s, wsi, 1);
		/* Bound what a client that stops reading holds in the kernel, so
		 * the send-queue caps see it fall behind within a few messages
		 * (server.ws_sndbuf_bytes; measured: with autotuning ~3 MB sat in
		 * loopback buffers before the queue grew at all). */
		{
			/* Receipts are latency: no Nagle wait behind an unacknowledged
			 * segment (a coalesced write's tail would wait for the
			 * client's delayed ACK, 40 ms). */
			int one = 1;

			setsockopt(lws_get_socket_fd(wsi), IPPROTO_TCP, TCP_NODELAY, &one,
				   sizeof(one));
		}
		if (s->cfg->ws_sndbuf_bytes > 0) {
			int sb = (int)s->cfg->ws_sndbuf_bytes;

			setsockopt(lws_get_socket_fd(wsi), SOL_SOCKET, SO_SNDBUF, &sb, sizeof(sb));
		}
		c->ws_next = s->ws_list;
		if (s->ws_list)
			s->ws_list->ws_prev = c;
		s->ws_list = c;
		return 0;
	case LWS_CALLBACK_RECEIVE:
		if (lws_is_first_fragment(wsi))
			c->rx_len = 0;
		/* The frame's declared length counts before its bytes arrive: a
		 * frame claiming 2^40 bytes is refused at its first bytes. */
		if (lws_remaining_packet_payload(wsi) >
			    (size_t)s->cfg->max_message_bytes - c->rx_len ||
		    rx_append(c, in, len)) {
			char why[96];

			snprintf(why, sizeof(why), "message exceeds server.max_message_bytes (%ld)",
				 s->cfg->max_message_bytes);
			lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
					 (unsigned char *)why, strlen(why));
			return -1;
		}
		if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi)) {
			/* RFC 6455 8.1: a text message that is not UTF-8 fails the
			 * connection with 1007 (checked here, per message: the
			 * context does not ask lws to check every frame). */
			if (!lws_frame_is_binary(wsi) && !app_utf8_valid(c->rx, c->rx_len)) {
				static const char why[] = "text message is not valid UTF-8";

				lws_close_reason(wsi, LWS_CLOSE_STATUS_INVALID_PAYLOAD,
						 (unsigned char *)why, sizeof(why) - 1);
				return -1;
			}
			c->pace_txs = c->pace_bytes = 0;
			c->pace_refused = 0;
			app_rpc_handle(c, c->rx, c->rx_len);
			c->rx_len = 0;
			rx_pause_if_limited(c);
			rx_pace(c);
			/* Do not let one large message pin its buffer forever. */
			if (c->rx_cap > 65536) {
				free(c->rx);
				c->rx = NULL;
				c->rx_cap = 0;
			}
		}
		return 0;
	case LWS_CALLBACK_SERVER_WRITEABLE: {
		struct out_msg *m;

		if (c->closing == 1) {
			/*
			 * The close frame (1008 and the reason) goes out as raw bytes
			 * in its own callback, after whatever lws still held of a
			 * partly sent message; the next callback closes. Returning -1
			 * right after lws_close_reason, as lws documents, sent no
			 * frame at all on libuv once a send had been left partial
			 * (strace; test_feed's slow subscriber): lws shut the socket
			 * down at once. Closing right after the frame skips waiting
			 * for the client's close reply, which a dropped client may
			 * never send anyway.
			 */
			unsigned char cf[LWS_PRE + 2 + 125], *p = cf + LWS_PRE;
			size_t rl = strlen(c->close_reason);

			if (rl > 123)
				rl = 123;
			p[0] = 0x88; /* FIN, opcode close */
			p[1] = (unsigned char)(2 + rl); /* server frames are not masked */
			p[2] = (unsigned char)(LWS_CLOSE_STATUS_POLICY_VIOLATION >> 8);
			p[3] = (unsigned char)(LWS_CLOSE_STATUS_POLICY_VIOLATION & 0xff);
			memcpy(p + 4, c->close_reason, rl);
			c->closing = 2;
			if (lws_write(wsi, p, rl + 4, LWS_WRITE_RAW) < (int)(rl + 4))
				return -1;
			lws_callback_on_writable(wsi);
			return 0;
		}
		if (c->closing)
			return -1;
		m = c->out_head;
		if (!m) {
			app_feed_pump(c);
			m = c->out_head;
			if (!m)
				return 0;
		}
		if (write_queued(c))
			return -1;
		/* Not for every subscriber after every write: a live subscriber's
		 * next block comes with the next fan-out (feed.c app_feed_block). */
		if (c->out_head || app_feed_pending(c))
			lws_callback_on_writable(wsi);
		return 0;
	}
	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		/* lws echoes the close frame (return 0) and closes; a live copy
		 * written past it would break the protocol (feed.c direct_ok). */
		c->peer_closed = 1;
		return 0;
	case LWS_CALLBACK_CLOSED:
		conn_cleanup(c);
		return 0;
	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static struct lws_protocols protocols[] = {
	{"mezzanine", callback, sizeof(struct app_conn), 65536, 0, NULL, 0},
	{NULL, NULL, 0, 0, 0, NULL, 0},
};

static lws_retry_bo_t ws_policy;

/*
 * Bind the listening address once ourselves before lws does, for an error
 * that names the cause (a port in use, an address not on this host): lws
 * only logs it, and on a libuv loop goes on without the socket.
 */
static int probe_listen(const struct app_config *cfg, char *errbuf, size_t errlen)
{
	struct sockaddr_storage ss = {0};
	struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
	socklen_t len;
	int fd, one = 1, err = 0;

	if (inet_pton(AF_INET, cfg->listen_addr, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)cfg->listen_port);
		len = sizeof(*in4);
	} else if (inet_pton(AF_INET6, cfg->listen_addr, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)cfg->listen_port);
		len = sizeof(*in6);
	} else {
		snprintf(errbuf, errlen, "cannot listen on %s:%d: not an IP address",
			 cfg->listen_addr, cfg->listen_port);
		return APP_ECONFIG;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		err = errno;
	else if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
		 bind(fd, (struct sockaddr *)&ss, len) != 0)
		err = errno;
	if (fd >= 0)
		close(fd);
	if (err) {
		snprintf(errbuf, errlen, "cannot listen on %s:%d: %s", cfg->listen_addr,
			 cfg->listen_port, strerror(err));
		return APP_ECONFIG;
	}
	return 0;
}

int app_server_init(struct app_server *s, char *errbuf, size_t errlen)
{
	struct lws_context_creation_info info;
	int rc;

	rc = app_store_open(&s->ro, s->cfg->data_dir, 1, errbuf, errlen);
	if (!rc && s->committer && s->committer->txi)
		rc = app_store_attach_txindex(s->ro, s->committer->txi, errbuf, errlen);
	if (rc)
		return rc;
	s->auth.ro = s->ro;
	s->auth.id = s->id;
	rc = app_auth_refresh(&s->auth);
	if (rc) {
		snprintf(errbuf, errlen, "loading namespaces: %s", app_strerror(rc));
		return rc;
	}
	s->coalesce = malloc(LWS_PRE + COALESCE_MAX);
	s->fast = calloc((size_t)s->cfg->max_batch_items, sizeof(*s->fast));
	s->feed.cap = (size_t)s->cfg->feed_cache_blocks;
	s->feed.budget = (size_t)s->cfg->feed_cache_mib << 20;
	s->feed.ring = calloc(s->feed.cap, sizeof(*s->feed.ring));
	if (!s->feed.ring || !s->coalesce || !s->fast)
		return APP_ENOMEM;
	if (app_store_block_tip(s->ro, &s->feed.tip))
		s->feed.tip = 0;
	rc = app_dasrv_open(s, errbuf, errlen);
	if (rc)
		return rc;
	for (int L = 0; L < APP_LEVELS; L++) {
		s->feed.level_ring[L] = calloc(s->feed.cap, sizeof(*s->feed.level_ring[L]));
		if (!s->feed.level_ring[L])
			return APP_ENOMEM;
		s->feed.level_tip[L] = atomic_load(&s->committer->stats.level_tip[L]);
	}
	s->next_sub_id = 1;
	s->accepting = 1;
	rc = app_limits_init(&s->limits, s->cfg, s->ro);
	if (rc)
		return rc;

	rc = probe_listen(s->cfg, errbuf, errlen);
	if (rc)
		return rc;
	lws_set_log_level(LLL_ERR, NULL);
	if (uv_loop_init(&s->loop)) {
		snprintf(errbuf, errlen, "cannot create the event loop");
		return APP_ENOMEM;
	}
	s->loop_inited = 1;
	uv_timer_init(&s->loop, &s->rx_timer);
	s->rx_timer.data = s;
	s->rx_timer_inited = 1;
	memset(&info, 0, sizeof(info));
	info.port = s->cfg->listen_port;
	info.iface = s->cfg->listen_addr;
	info.protocols = protocols;
	info.user = s;
	info.options = LWS_SERVER_OPTION_DISABLE_IPV6 * (strchr(s->cfg->listen_addr, ':') == NULL);
	/* No LWS_SERVER_OPTION_VALIDATE_UTF8: the receive callback checks each
	 * whole text message (app_utf8_valid) and closes with 1007 itself. */
	/*
	 * libuv (epoll) instead of lws' own poll() loop. poll() hands the kernel
	 * every socket on every wake-up; with 1000 feed subscribers and 10k
	 * submissions/s the lws thread spent about half its time in poll
	 * (tcp_poll, sock_poll, poll_freewait: perf, tests/bench/fanout.sh), and
	 * ingress fell to 2-3k tx/s. epoll costs per ready socket instead. The
	 * loop is ours (foreign to lws) so that app_server_service can turn it
	 * once at a time, as lws_service did.
	 */
	info.options |= LWS_SERVER_OPTION_LIBUV;
	{
		static void *loops[1];

		loops[0] = &s->loop;
		info.foreign_loops = loops;
	}
	info.pt_serv_buf_size = 65536;
	info.max_http_header_data = 4096;
	info.ka_time = 60;
	info.ka_probes = 3;
	info.ka_interval = 10;
	/* Handshakes (TLS, HTTP headers, WebSocket upgrade) that take longer are
	 * closed: slowloris clients hold a socket for this long at most. */
	info.timeout_secs = (unsigned int)s->cfg->handshake_timeout_s;
	info.timeout_secs_ah_idle = (unsigned int)s->cfg->handshake_timeout_s;
	info.keepalive_timeout = (int)s->cfg->idle_timeout_s;
	/* WebSocket liveness: ping after ws_ping_s of silence, hang up when
	 * nothing (not even the pong) arrived for idle_timeout_s. */
	ws_policy.secs_since_valid_ping = (uint16_t)s->cfg->ws_ping_s;
	ws_policy.secs_since_valid_hangup =
		(uint16_t)(s->cfg->idle_timeout_s > s->cfg->ws_ping_s ? s->cfg->idle_timeout_s
								       : s->cfg->ws_ping_s + 1);
	info.retry_and_idle_policy = &ws_policy;
	rc = app_tls_configure(&info, s->cfg, errbuf, errlen);
	if (rc)
		return rc;
	s->ctx = lws_create_context(&info);
	if (!s->ctx) {
		snprintf(errbuf, errlen,
			 "cannot listen on %s:%d (in use, bad address, or unreadable TLS files?)",
			 s->cfg->listen_addr, s->cfg->listen_port);
		return APP_ECONFIG;
	}
	/* On a foreign (libuv) loop lws makes the context even when the
	 * default vhost's listening socket cannot be bound (the port taken
	 * since probe_listen): a daemon that serves nobody must not start.
	 * Such a context crashes in its teardown (lws 4.1): left to the exit. */
	if (!lws_get_vhost_by_name(s->ctx, "default")) {
		snprintf(errbuf, errlen, "cannot listen on %s:%d", s->cfg->listen_addr,
			 s->cfg->listen_port);
		s->ctx = NULL;
		s->loop_inited = 0;
		s->rx_timer_inited = 0;
		return APP_ECONFIG;
	}
	/* Live copies of a block are written by fanout.c, bypassing lws, only
	 * where lws adds nothing to the bytes: no TLS. */
	s->feed.direct = !s->cfg->tls_cert[0];
	rc = app_fanout_start(&s->feed.pool, s->feed.direct ? (int)s->cfg->feed_fanout_threads : 1);
	if (rc) {
		snprintf(errbuf, errlen, "starting the fan-out threads: %s", app_strerror(rc));
		return rc;
	}
	rc = app_ops_init(s);
	if (rc)
		snprintf(errbuf, errlen, "operations: %s", app_strerror(rc));
	return rc;
}

int app_server_service(struct app_server *s, int wait)
{
	/* uv_run returns non-zero while handles are active (always, with lws in
	 * the loop); a loop with nothing left is an lws context already gone. */
	return uv_run(&s->loop, wait ? UV_RUN_ONCE : UV_RUN_NOWAIT) || !wait ? 0 : -1;
}

int app_server_run(struct app_server *s)
{
	while (!s->stop) {
		if (app_server_service(s, 1) < 0)
			return -1;
		APP_FAULT_POINT(loop);
	}
	return 0;
}

void app_server_request_stop(struct app_server *s)
{
	s->stop = 1;
	if (s->ctx)
		lws_cancel_service(s->ctx);
}

void app_server_destroy(struct app_server *s)
{
	app_ops_stop(s);
	/*
	 * On a libuv loop the context is destroyed in two calls (lws issues
	 * #1969, #2595): the first closes every connection (conn_cleanup) and
	 * starts closing lws' handles, which complete only as the loop runs;
	 * the second, after the loop has drained, frees what is left. With one
	 * call LeakSanitizer found lws' per-thread buffers (~390 KB) leaked.
	 */
	if (s->ctx)
		lws_context_destroy(s->ctx);
	if (s->rx_timer_inited) {
		uv_close((uv_handle_t *)&s->rx_timer, NULL);
		s->rx_timer_inited = 0;
	}
	if (s->loop_inited)
		uv_run(&s->loop, UV_RUN_DEFAULT);
	if (s->ctx)
		lws_context_destroy(s->ctx);
	s->ctx = NULL;
	free(s->coalesce);
	s->coalesce = NULL;
	free(s->fast);
	s->fast = NULL;
	if (s->loop_inited) {
		uv_loop_close(&s->loop);
		s->loop_inited = 0;
	}
	/* Answers still queued for requests that are gone. */
	{
		struct app_done d[64];
		size_t n;

		while ((n = app_queue_pop(s->done, d, 64, 0)) > 0)
			for (size_t i = 0; i < n; i++) {
				if (d[i].kind == DONE_BLOCK)
					app_block_unref(d[i].block);
				else if (d[i].kind == DONE_ANSWER)
					app_rpc_answer(s, &d[i], app_now_ns());
			}
	}
	app_fanout_stop(s->feed.pool);
	s->feed.pool = NULL;
	app_feed_destroy(s);
	app_dasrv_close(s);
	app_auth_free(&s->auth);
	app_limits_free(&s->limits);
	app_store_close(s->ro);
	s->ro = NULL;
}
