/*
 * peerload: loadgen's workload (tests/bench/loadgen.c) against mezzanine and
 * its peers, Redis Streams and NATS JetStream, with one lean client so the
 * three can be read side by side. It speaks RESP2, the NATS text protocol
 * and JSON-RPC over WebSocket on plain sockets.
 *
 *   --peer redis   each connection pipelines XADD <stream> * d <payload>;
 *                  the ack is the XADD reply (with appendfsync always, Redis
 *                  writes and fsyncs the AOF before it sends any reply of an
 *                  event-loop turn: a group commit). The subscriber is one
 *                  more connection looping XREAD BLOCK 100 COUNT 4096 STREAMS
 *                  <stream> <last id>, from 0-0 on a fresh stream.
 *   --peer nats    one file-storage stream (<stream>, subjects <stream>.>)
 *                  is created through $JS.API.STREAM.CREATE; each connection
 *                  publishes with a reply inbox, and the ack is the
 *                  JetStream PubAck on that inbox. The subscriber is a
 *                  durable push consumer (deliver subject, ack policy none:
 *                  the delivery itself is the event measured, as on
 *                  mezzanine's feed, which has no acks either).
 *   --peer mezz    each connection sends mezz_sendTransaction {namespace:
 *                  <stream>, data} as one masked WebSocket text frame; the
 *                  ack is the receipt (after the group's fsync), matched by
 *                  its JSON-RPC id. The subscriber is one more WebSocket with
 *                  mezz_subscribe ["blocks", {namespaces: [<stream>],
 *                  levels: ["preconfirmed"]}]: one event per committed group.
 *                  --batch N (closed loop only) sends N requests per frame
 *                  as one JSON-RPC batch, each with its own id: loadgen's
 *                  (c) from the lean client; --window then counts frames.
 *                  --txs sends each such frame as one mezz_sendTransactions
 *                  request instead (its id is the first transaction's; the
 *                  batch receipt's txs[j] completes transaction id + j).
 *
 * Modes are loadgen's: --rate R > 0 is open loop (a 1 ms clock releases R
 * messages/s round robin over the connections, whatever the latency; only a
 * per-connection in-flight cap stops sends and is counted as cap_hits);
 * --rate 0 is closed loop with --window messages in flight per connection.
 * Every payload starts with an 8-byte big-endian tag (a counter), so the
 * subscriber can match a delivery to its send time without the ack.
 *
 * One thread owns every publishing connection (epoll plus a timerfd); the
 * subscriber has its own thread and socket. Nothing is shared while the run
 * goes except the stop flag and the subscriber's sample count; results are
 * merged after the join. The last line on stdout is one JSON object with
 * loadgen's keys plus "peer". Two keys mean something close but not equal:
 * "blocks" counts the subscriber's XREAD replies that carried entries (Redis)
 * or its socket reads (NATS), not sealed blocks; "busy" is always 0 (neither
 * peer has an overload answer distinct from an error). CPU percentages cover
 * the measured window, of one core, as loadgen's.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "benchlat.h"
#include "rawws.h"

#define TICK_US      1000
#define MAX_CONNS    256
#define TX_HIGH      (1u << 20) /* stop queueing sends above this many unsent bytes */
#define SUB_COUNT    4096       /* XREAD COUNT */
#define RESP_MAXDEPTH 8

enum peer { PEER_REDIS, PEER_NATS, PEER_MEZZ };

struct opts {
	char host[64];
	int port;
	enum peer peer;
	const char *stream;
	int conns, window, batch, size, subscribe, txs;
	double rate, duration, warmup, drain;
	long max_inflight; /* per connection */
	long daemon_pid;
	size_t max_samples;
	const char *trace; /* --trace FILE: one line per receipt, for finding a tail */
};

static struct opts O = {
	.stream = "peerload", .conns = 4, .window = 64, .batch = 1, .size = 200, .rate = 0,
	.duration = 10, .warmup = 2, .drain = 5,
};

struct slot {
	uint64_t id; /* 0 when free */
	uint64_t t_send, t_sched;
	int in_window;
};

struct conn {
	int fd, idx, closed, pollout;
	uint64_t next_id;  /* id of the next message sent; ids start at 1 */
	uint64_t next_ack; /* Redis answers in order: id of the oldest unanswered */
	long inflight, due;
	struct slot *ring;
	size_t mask;
	struct buf rx, tx;
	int pong_due;
};

/* The publishers' state: owned by the main thread. */
static struct {
	struct conn c[MAX_CONNS];
	int epfd, phase; /* 1 running, 2 draining, 3 done */
	uint64_t released, rr, tag;
	uint64_t rng;
	struct lat lat, lat_sched;
	uint32_t *trace_at; /* --trace: send time (us after the window opened) of P.lat.v[i] */
	uint64_t *tsend_by_tag;
	size_t tag_cap;
	uint64_t sent, receipts, errors, ok_in_window, lost, cap_hits, max_lag_ns, sent_total;
	char first_error[160];
} P;

/* The subscriber's state: owned by its thread until joined. */
static struct {
	pthread_t thread;
	int fd;
	struct buf rx;
	uint64_t *tag, *t_deliv;
	size_t cap;
	_Atomic size_t n;
	uint64_t batches; /* XREAD replies or socket reads that carried data */
	char last_id[64];
	uint64_t t_now;
	uint64_t rng; /* WebSocket masking keys: the publishers' P.rng is the main thread's */
	int failed;
} S;

static uint64_t t0_ns, tmeas_ns, tend_ns;
static atomic_int stop_all, sub_stop;

/* CPU of this process and of --daemon-pid at the edges of the measured window. */
static double cpu_c0, cpu_c1;
static uint64_t cpu_d0, cpu_d1;
static int cpu_started, cpu_ended;
static void cpu_sample(double *self, uint64_t *daemon);

static void die(const char *fmt, const char *arg)
{
	fprintf(stderr, "peerload: ");
	fprintf(stderr, fmt, arg ? arg : "");
	fprintf(stderr, "\n");
	exit(2);
}

static int in_window(uint64_t t)
{
	return t >= tmeas_ns && t < tend_ns;
}

static int tcp_connect(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)O.port)};
	struct timeval tv = {5, 0};
	int fd, one = 1;

	if (inet_pton(AF_INET, O.host, &sa.sin_addr) != 1)
		die("--addr needs an IPv4 address: %s", O.host);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		die("socket: %s", strerror(errno));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
		die("connect: %s", strerror(errno));
	return fd;
}

static void write_all(int fd, const char *p, size_t n)
{
	int rc = ws_write_all(fd, p, n);

	if (rc)
		die("write: %s", strerror(-rc));
}

/* Blocking read of more bytes into b (setup and the subscriber). 0, or -1 on timeout. */
static int read_more(int fd, struct buf *b)
{
	ssize_t r = ws_read_more(fd, b);

	if (r == -EAGAIN || r == -EWOULDBLOCK || r == -EINTR)
		return -1;
	if (r <= 0)
		die("the peer closed the connection (%s)", r < 0 ? strerror((int)-r) : "EOF");
	return 0;
}

/* ---- RESP2 ---------------------------------------------------------------- */

typedef void (*resp_fn)(void *ctx, char type, const char *s, long len, int depth);

/*
 * Parse one RESP2 value at p[pos..n). Returns the offset just past it, -1 if
 * the buffer does not yet hold all of it, -2 if it is malformed. fn (may be
 * NULL) sees every leaf with its nesting depth; call with NULL first to know
 * the value is complete, so no leaf is reported twice.
 */
static long resp_parse(const char *p, size_t n, size_t pos, int depth, resp_fn fn, void *ctx)
{
	const char *nl;
	char *end;
	long len, i;
	size_t at;

	if (pos >= n)
		return -1;
	if (depth > RESP_MAXDEPTH)
		return -2;
	nl = memchr(p + pos, '\r', n - pos);
	if (!nl || (size_t)(nl - p) + 1 >= n)
		return -1;
	at = (size_t)(nl - p) + 2;
	switch (p[pos]) {
	case '+':
	case '-':
	case ':':
		if (fn)
			fn(ctx, p[pos], p + pos + 1, nl - (p + pos + 1), depth);
		return (long)at;
	case '$':
		len = strtol(p + pos + 1, &end, 10);
		if (end != nl)
			return -2;
		if (len < 0) {
			if (fn)
				fn(ctx, '$', NULL, -1, depth);
			return (long)at;
		}
		if (at + (size_t)len + 2 > n)
			return -1;
		if (fn)
			fn(ctx, '$', p + at, len, depth);
		return (long)(at + (size_t)len + 2);
	case '*':
		len = strtol(p + pos + 1, &end, 10);
		if (end != nl)
			return -2;
		for (i = 0; i < len; i++) {
			long r = resp_parse(p, n, at, depth + 1, fn, ctx);

			if (r < 0)
				return r;
			at = (size_t)r;
		}
		return (long)at;
	default:
		return -2;
	}
}

static size_t resp_bulk(char *p, const char *s, size_t len)
{
	int k = sprintf(p, "$%zu\r\n", len);

	memcpy(p + k, s, len);
	memcpy(p + k + len, "\r\n", 2);
	return (size_t)k + len + 2;
}

struct text {
	char *p;
	size_t cap, n;
};

static void on_leaf_text(void *ctx, char type, const char *s, long len, int depth)
{
	struct text *t = ctx;
	int k;

	(void)depth;
	if (t->n + 2 >= t->cap)
		return;
	k = snprintf(t->p + t->n, t->cap - t->n, "%s%c%.*s", t->n ? " " : "", type,
		     (int)(len > 0 ? len : 0), s ? s : "");
	t->n += k > 0 ? (size_t)k : 0;
	if (t->n >= t->cap)
		t->n = t->cap - 1;
}

/* Send a command and wait for its whole reply; its leaves, each prefixed with
 * its RESP type, go to out separated by spaces ("+PONG", "$appendfsync $always"). */
static void redis_cmd(int fd, struct buf *rx, const char *cmd, char *out, size_t outlen)
{
	struct text t = {out, outlen, 0};
	long r;

	out[0] = 0;
	write_all(fd, cmd, strlen(cmd));
	while ((r = resp_parse(rx->p, rx->n, rx->off, 0, NULL, NULL)) == -1)
		if (read_more(fd, rx))
			die("no answer from redis to %s", cmd);
	if (r < 0)
		die("malformed answer from redis to %s", cmd);
	resp_parse(rx->p, rx->n, rx->off, 0, on_leaf_text, &t);
	rx->off = (size_t)r;
	buf_compact(rx);
}

/* ---- NATS ----------------------------------------------------------------- */

struct nats_msg {
	const char *subj, *reply, *hdr, *data;
	size_t subjlen, replylen, hdrlen, datalen;
};

typedef void (*nats_fn)(void *ctx, const struct nats_msg *m);

/*
 * Consume every complete protocol line (and message) in b, calling fn for
 * each MSG and HMSG. A PING sets *pong_due; a PONG increments *pongs (may be
 * NULL). Returns 0, or -2 on a line it cannot parse or an -ERR.
 */
static int nats_parse(struct buf *b, nats_fn fn, void *ctx, int *pong_due, int *pongs)
{
	for (;;) {
		char *line = b->p + b->off, *eol, *tok[7];
		size_t avail = b->n - b->off;
		int nt = 0;

		eol = avail ? memmem(line, avail, "\r\n", 2) : NULL;
		if (!eol)
			return 0;
		if (!strncmp(line, "MSG ", 4) || !strncmp(line, "HMSG ", 5)) {
			int h = line[0] == 'H';
			char copy[512], *q = copy;
			struct nats_msg m = {0};
			size_t total, hdr = 0, at;

			/* Tokenise a copy: an incomplete message must leave the buffer as it was. */
			if ((size_t)(eol - line) >= sizeof(copy))
				return -2;
			memcpy(copy, line + (h ? 5 : 4), (size_t)(eol - line) - (h ? 5 : 4));
			copy[(eol - line) - (h ? 5 : 4)] = 0;
			while (nt < 7 && (tok[nt] = strtok_r(nt ? NULL : q, " ", &q)))
				nt++;
			/* MSG subj sid [reply] n; HMSG subj sid [reply] hdrlen n */
			if (nt < 3 + h || nt > 4 + h)
				return -2;
			total = strtoull(tok[nt - 1], NULL, 10);
			if (h)
				hdr = strtoull(tok[nt - 2], NULL, 10);
			at = (size_t)(eol - b->p) + 2;
			if (at + total + 2 > b->n)
				return 0; /* wait for the payload */
			m.subj = tok[0];
			m.subjlen = strlen(tok[0]);
			if (nt == 4 + h) {
				m.reply = tok[2];
				m.replylen = strlen(tok[2]);
			}
			m.hdr = b->p + at;
			m.hdrlen = hdr;
			m.data = b->p + at + hdr;
			m.datalen = total - hdr;
			fn(ctx, &m);
			b->off = at + total + 2;
			continue;
		}
		if (!strncmp(line, "PING", 4)) {
			*pong_due = 1;
		} else if (!strncmp(line, "PONG", 4)) {
			if (pongs)
				(*pongs)++;
		} else if (!strncmp(line, "-ERR", 4)) {
			fprintf(stderr, "peerload: nats: %.*s\n", (int)(eol - line), line);
			return -2;
		}
		/* INFO and +OK need nothing. */
		b->off = (size_t)(eol - b->p) + 2;
	}
}

/* Read and parse until one more PONG arrives (the PING must have been sent). */
static void nats_wait_pong(int fd, struct buf *rx, nats_fn fn, void *ctx)
{
	int pongs = 0, pong_due = 0;

	for (;;) {
		if (nats_parse(rx, fn, ctx, &pong_due, &pongs))
			die("nats refused the setup%s", NULL);
		buf_compact(rx);
		if (pong_due) {
			write_all(fd, "PONG\r\n", 6);
			pong_due = 0;
		}
		if (pongs)
			return;
		if (read_more(fd, rx))
			die("no PONG from nats%s", NULL);
	}
}

static void ignore_msg(void *ctx, const struct nats_msg *m)
{
	(void)ctx;
	(void)m;
}

static void nats_handshake(int fd, struct buf *rx)
{
	static const char hello[] = "CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":true,"
				    "\"no_responders\":true,\"protocol\":1,\"name\":\"peerload\"}\r\nPING\r\n";

	write_all(fd, hello, sizeof(hello) - 1);
	nats_wait_pong(fd, rx, ignore_msg, NULL);
}

struct nats_reply {
	char inbox[64];
	char *text; /* malloc'd copy of the answer, or NULL */
};

static void on_reply(void *ctx, const struct nats_msg *m)
{
	struct nats_reply *r = ctx;

	if (r->text || m->subjlen != strlen(r->inbox) || memcmp(m->subj, r->inbox, m->subjlen))
		return;
	r->text = strndup(m->datalen ? m->data : m->hdr, m->datalen ? m->datalen : m->hdrlen);
}

/* A JetStream API request on a blocking connection: returns the malloc'd answer. */
static char *nats_request(int fd, struct buf *rx, int sid, const char *subj, const char *json)
{
	struct nats_reply r = {0};
	char head[512];
	int n, pong_due = 0;

	snprintf(r.inbox, sizeof(r.inbox), "_INBOX.peerload.ctl.%d", sid);
	n = snprintf(head, sizeof(head), "SUB %s %d\r\nPUB %s %s %zu\r\n", r.inbox, sid, subj, r.inbox,
		     strlen(json));
	write_all(fd, head, (size_t)n);
	write_all(fd, json, strlen(json));
	write_all(fd, "\r\n", 2);
	while (!r.text) {
		if (nats_parse(rx, on_reply, &r, &pong_due, NULL))
			die("nats refused %s", subj);
		buf_compact(rx);
		if (pong_due) {
			write_all(fd, "PONG\r\n", 6);
			pong_due = 0;
		}
		if (!r.text && read_more(fd, rx))
			die("no answer from nats to %s", subj);
	}
	n = snprintf(head, sizeof(head), "UNSUB %d\r\n", sid);
	write_all(fd, head, (size_t)n);
	return r.text;
}

/* ---- mezzanine: JSON-RPC over WebSocket (RFC 6455, client side) ----------- */

/* The frames are rawws.h's; the upgrade of a fresh (blocking) connection to a WebSocket on path "/". */
static void upgrade(int fd, struct buf *rx)
{
	int rc = ws_upgrade(fd, rx, O.host, O.port, "/");

	if (rc == -EAGAIN)
		die("no answer to the WebSocket upgrade%s", NULL);
	if (rc == -EPROTO)
		die("the WebSocket upgrade was refused: %.60s", rx->p);
	if (rc)
		die("the WebSocket upgrade failed: %s", strerror(-rc));
}

/* ---- publishers ----------------------------------------------------------- */

/* Append one publish of message id with payload tag to c's send buffer. */
/* The hex digits of one payload tagged tag, written at js; their number. */
static size_t mezz_hex(char *js, uint64_t tag)
{
	static const char hx[] = "0123456789abcdef";
	size_t n = 0;
	uint8_t b[8];

	for (int i = 0; i < O.size; i++) {
		if (i % 8 == 0) {
			uint64_t r = i ? xorshift(&P.rng) : tag;

			for (int k = 0; k < 8; k++)
				b[k] = (uint8_t)(r >> (56 - 8 * k));
		}
		js[n++] = hx[b[i % 8] >> 4];
		js[n++] = hx[b[i % 8] & 15];
	}
	return n;
}

/* One mezz_sendTransaction request, its payload tagged, written at js (which
 * has room for O.size * 2 + 256 + strlen(O.stream) bytes); its length. */
static size_t mezz_req(char *js, uint64_t id, uint64_t tag)
{
	size_t n = (size_t)sprintf(js,
				   "{\"jsonrpc\":\"2.0\",\"id\":%" PRIu64 ",\"method\":"
				   "\"mezz_sendTransaction\",\"params\":{\"namespace\":\"%s\","
				   "\"data\":\"0x",
				   id, O.stream);

	n += mezz_hex(js + n, tag);
	memcpy(js + n, "\"}}", 3);
	return n + 3;
}

/* The JSON text of one WebSocket message to mezzanine: room for nreq
 * requests, an array's brackets and commas; reused from call to call. */
static char *mezz_text(int nreq)
{
	static char *js;
	static size_t jcap;
	size_t need = (size_t)nreq * ((size_t)O.size * 2 + 257 + strlen(O.stream)) + 2;

	if (jcap < need && !(js = realloc(js, jcap = need)))
		die("out of memory%s", NULL);
	return js;
}

static void put_msg(struct conn *c, uint64_t id, uint64_t tag)
{
	char *p = buf_room(&c->tx, (size_t)O.size + 256), *s = p;
	char *payload;
	int i;

	if (O.peer == PEER_MEZZ) {
		char *js = mezz_text(1);

		ws_put(&c->tx, &P.rng, 0x1, js, mezz_req(js, id, tag));
		return;
	}
	if (O.peer == PEER_REDIS) {
		p += sprintf(p, "*5\r\n$4\r\nXADD\r\n");
		p += resp_bulk(p, O.stream, strlen(O.stream));
		p += sprintf(p, "$1\r\n*\r\n$1\r\nd\r\n$%d\r\n", O.size);
	} else {
		p += sprintf(p, "PUB %s.%d _INBOX.peerload.p%d.%" PRIu64 " %d\r\n", O.stream, c->idx,
			     c->idx, id, O.size);
	}
	payload = p;
	for (i = 0; i < 8; i++)
		payload[i] = (char)(uint8_t)(tag >> (56 - 8 * i));
	for (i = 8; i < O.size; i += 8) {
		uint64_t r = xorshift(&P.rng);

		memcpy(payload + i, &r, O.size - i < 8 ? (size_t)(O.size - i) : 8);
	}
	p += O.size;
	memcpy(p, "\r\n", 2);
	p += 2;
	c->tx.n += (size_t)(p - s);
}

/* Take the next id of c for one message (or one request of a batch) and
 * its tag, and start its clock; *tag is the payload's tag. */
static uint64_t take_id(struct conn *c, uint64_t t_sched, uint64_t t, uint64_t *tag)
{
	uint64_t id = c->next_id++;
	struct slot *sl = &c->ring[id & c->mask];
	int win = in_window(t);

	*tag = P.tag++;
	if (sl->id) {
		/* Never answered while the ring went round: count it as lost. */
		if (sl->in_window)
			P.lost++;
		c->inflight--;
	}
	sl->id = id;
	sl->t_send = t;
	sl->t_sched = t_sched ? t_sched : t;
	sl->in_window = win;
	if (P.tsend_by_tag && *tag < P.tag_cap)
		P.tsend_by_tag[*tag] = win ? t : 0;
	c->inflight++;
	P.sent_total++;
	if (win)
		P.sent++;
	if (t_sched && t > t_sched && t - t_sched > P.max_lag_ns && win)
		P.max_lag_ns = t - t_sched;
	return id;
}

static void send_one(struct conn *c, uint64_t t_sched)
{
	uint64_t tag, id = take_id(c, t_sched, now_ns(), &tag);

	put_msg(c, id, tag);
}

/* mezzanine only, closed loop: one WebSocket message holding a JSON-RPC
 * batch of O.batch mezz_sendTransaction requests, each with its own id and
 * tag, so each answer in the answering array completes its own request. */
static void send_batch(struct conn *c)
{
	char *js = mezz_text(O.batch);
	uint64_t t = now_ns(), tag, id;
	size_t n = 0;

	if (O.txs) { /* one mezz_sendTransactions: ids id0 .. id0 + batch - 1 */
		for (int j = 0; j < O.batch; j++) {
			id = take_id(c, 0, t, &tag);
			if (!j)
				n = (size_t)sprintf(js,
						    "{\"jsonrpc\":\"2.0\",\"id\":%" PRIu64
						    ",\"method\":\"mezz_sendTransactions\",\"params\":"
						    "{\"namespace\":\"%s\",\"txs\":[",
						    id, O.stream);
			n += (size_t)sprintf(js + n, "%s\"0x", j ? "," : "");
			n += mezz_hex(js + n, tag);
			js[n++] = '"';
		}
		memcpy(js + n, "]}}", 3);
		ws_put(&c->tx, &P.rng, 0x1, js, n + 3);
		return;
	}
	js[n++] = '[';
	for (int j = 0; j < O.batch; j++) {
		id = take_id(c, 0, t, &tag);
		if (j)
			js[n++] = ',';
		n += mezz_req(js + n, id, tag);
	}
	js[n++] = ']';
	ws_put(&c->tx, &P.rng, 0x1, js, n);
}

static void complete(struct conn *c, uint64_t id, int is_err, const char *msg, size_t msglen,
		     uint64_t t)
{
	struct slot *sl = &c->ring[id & c->mask];

	if (sl->id != id)
		return; /* unknown or already counted as lost */
	sl->id = 0;
	c->inflight--;
	if (!sl->in_window)
		return;
	if (is_err) {
		P.errors++;
		if (!P.first_error[0])
			snprintf(P.first_error, sizeof(P.first_error), "%.*s",
				 (int)(msglen > 120 ? 120 : msglen), msg);
		return;
	}
	P.receipts++;
	if (in_window(t))
		P.ok_in_window++;
	if (P.trace_at && P.lat.n < P.lat.cap)
		P.trace_at[P.lat.n] = (uint32_t)((sl->t_send - tmeas_ns) / 1000);
	lat_add(&P.lat, t - sl->t_send);
	if (O.rate > 0)
		lat_add(&P.lat_sched, t - sl->t_sched);
}

struct ack_ctx {
	struct conn *c;
	uint64_t t;
};

static void on_redis_reply(void *ctx, char type, const char *s, long len, int depth)
{
	struct ack_ctx *a = ctx;

	if (depth)
		return;
	complete(a->c, a->c->next_ack++, type == '-', s, len > 0 ? (size_t)len : 0, a->t);
}

/* A PubAck: MSG _INBOX.peerload.p<conn>.<id> with {"stream":..,"seq":..} or an error. */
static void on_puback(void *ctx, const struct nats_msg *m)
{
	struct ack_ctx *a = ctx;
	const char *dot = memrchr(m->subj, '.', m->subjlen);
	uint64_t id;
	int err;

	if (!dot)
		return;
	id = strtoull(dot + 1, NULL, 10);
	err = !m->datalen || memmem(m->data, m->datalen, "\"error\"", 7) != NULL;
	if (!m->datalen) /* a status-only HMSG such as 503 no responders */
		complete(a->c, id, 1, m->hdr, m->hdrlen > 2 ? m->hdrlen - 2 : 0, a->t);
	else
		complete(a->c, id, err, m->data, m->datalen, a->t);
}

/* A JSON-RPC answer (one per frame) from mezzanine. */
static void on_mezz_answer(void *ctx, uint64_t id, int is_err, int code, const char *msg,
			   size_t msglen)
{
	struct ack_ctx *a = ctx;

	(void)code;
	if (!id) { /* "id":null: the daemon could not read the request */
		P.errors++;
		return;
	}
	complete(a->c, id, is_err, msg, msglen, a->t);
}

/*
 * A batch receipt (--txs): "id":ID, then either "error" for the whole
 * request, or "txs":[...] whose entry j is transaction ID + j's: a brief
 * entry or {"receipt":...} (sequenced), or {"error":...}. Entries are read
 * by their nesting, skipping strings.
 */
static void scan_txs_answer(const char *p, size_t n, struct ack_ctx *a)
{
	const char *end = p + n, *q = memmem(p, n, "\"id\":", 5), *e;
	uint64_t id = 0, j = 0;
	int depth = 0, instr = 0;

	if (!q) {
		P.errors++;
		return;
	}
	for (q += 5; q < end && *q >= '0' && *q <= '9'; q++)
		id = id * 10 + (uint64_t)(*q - '0');
	if ((size_t)(end - q) > 9 && !memcmp(q, ",\"error\":", 9)) {
		for (int k = 0; k < O.batch; k++)
			complete(a->c, id + (uint64_t)k, 1, q, (size_t)(end - q), a->t);
		return;
	}
	q = memmem(q, (size_t)(end - q), "\"txs\":[", 7);
	if (!q) {
		P.errors++;
		return;
	}
	for (q += 7; q < end; q++) {
		if (instr) {
			if (*q == '\\')
				q++;
			else if (*q == '"')
				instr = 0;
			continue;
		}
		if (*q == '"') {
			instr = 1;
		} else if (*q == '{') {
			if (depth++ == 0) {
				e = q + 1;
				complete(a->c, id + j++, (size_t)(end - e) > 8 && !memcmp(e, "\"error\"", 7),
					 e, (size_t)(end - e) > 120 ? 120 : (size_t)(end - e), a->t);
			}
		} else if (*q == '}') {
			depth--;
		} else if (*q == ']' && depth == 0) {
			break;
		}
	}
}

static int may_send(struct conn *c)
{
	if (P.phase != 1 || c->closed || c->tx.n - c->tx.off > TX_HIGH)
		return 0;
	if (O.rate > 0)
		return c->due > 0;
	return c->inflight + O.batch <= (long)O.window * O.batch;
}

/* Queue every send c may make now (loadgen's WRITEABLE callback). */
static void pump(struct conn *c)
{
	while (may_send(c)) {
		if (O.rate > 0) {
			if (c->inflight + 1 > O.max_inflight) {
				P.cap_hits++;
				break; /* resumes when acks come back */
			}
			/* Intended send time of this message. */
			uint64_t ts = t0_ns + (uint64_t)((double)P.sent_total * 1e9 / O.rate);

			c->due--;
			send_one(c, ts);
		} else if (O.batch > 1) {
			send_batch(c);
		} else {
			send_one(c, 0);
		}
	}
}

/* A closed connection leaves the epoll set, or its hang-up would wake the loop forever. */
static void conn_close(struct conn *c)
{
	if (c->closed)
		return;
	c->closed = 1;
	epoll_ctl(P.epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
}

static void set_pollout(struct conn *c, int on)
{
	struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};

	if (c->pollout == on)
		return;
	c->pollout = on;
	epoll_ctl(P.epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void flush(struct conn *c)
{
	int rc;

	if (c->pong_due) {
		buf_put(&c->tx, "PONG\r\n", 6);
		c->pong_due = 0;
	}
	if ((rc = buf_send(c->fd, &c->tx)) < 0) {
		fprintf(stderr, "peerload: write: %s\n", strerror(-rc));
		conn_close(c);
		return;
	}
	set_pollout(c, c->tx.n > 0);
}

static void on_readable(struct conn *c)
{
	struct ack_ctx a = {c, 0};

	for (;;) {
		ssize_t r;

		buf_room(&c->rx, 65536);
		r = read(c->fd, c->rx.p + c->rx.n, c->rx.cap - c->rx.n - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (r <= 0) {
			if (P.phase < 3)
				fprintf(stderr, "peerload: connection closed by the peer\n");
			conn_close(c);
			return;
		}
		c->rx.n += (size_t)r;
	}
	a.t = now_ns();
	if (O.peer == PEER_MEZZ) {
		const char *pl;
		size_t len;
		int op, k;

		while ((k = ws_next(&c->rx, &op, &pl, &len)) == 1)
			if (op == 0x1 && O.txs)
				scan_txs_answer(pl, len, &a);
			else if (op == 0x1)
				scan_answers(pl, len, on_mezz_answer, &a);
			else if (op == 0x9)
				ws_put(&c->tx, &P.rng, 0xA, pl, len);
			else if (op == 0x8)
				k = -1;
		if (k < 0) {
			fprintf(stderr, "peerload: unexpected frame or close from mezzanine\n");
			conn_close(c);
		}
	} else if (O.peer == PEER_REDIS) {
		long end;

		while ((end = resp_parse(c->rx.p, c->rx.n, c->rx.off, 0, NULL, NULL)) >= 0) {
			resp_parse(c->rx.p, c->rx.n, c->rx.off, 0, on_redis_reply, &a);
			c->rx.off = (size_t)end;
		}
		if (end == -2) {
			fprintf(stderr, "peerload: malformed answer from redis\n");
			conn_close(c);
		}
	} else if (nats_parse(&c->rx, on_puback, &a, &c->pong_due, NULL)) {
		conn_close(c);
	}
	if (c->closed)
		return;
	buf_compact(&c->rx);
	pump(c);
	flush(c);
}

/* The clock, every TICK_US: phases and the open-loop release (loadgen's tick). */
static void tick(void)
{
	uint64_t t = now_ns();
	int i;

	if (!cpu_started && t >= tmeas_ns) {
		cpu_started = 1;
		cpu_sample(&cpu_c0, &cpu_d0);
	}
	if (!cpu_ended && t >= tend_ns) {
		cpu_ended = 1;
		cpu_sample(&cpu_c1, &cpu_d1);
	}
	if (P.phase == 1 && (t >= tend_ns || atomic_load(&stop_all)))
		P.phase = 2;
	if (P.phase == 1 && O.rate > 0 && t > t0_ns) {
		uint64_t due = (uint64_t)((double)(t - t0_ns) / 1e9 * O.rate);

		while (P.released < due) {
			struct conn *c = &P.c[P.rr++ % (uint64_t)O.conns];

			P.released++;
			if (!c->closed)
				c->due++;
		}
		for (i = 0; i < O.conns; i++) {
			pump(&P.c[i]);
			if (!P.c[i].closed)
				flush(&P.c[i]);
		}
	}
	if (P.phase == 2) {
		long inflight = 0;

		for (i = 0; i < O.conns; i++)
			if (!P.c[i].closed)
				inflight += P.c[i].inflight;
		if (!inflight || t >= tend_ns + (uint64_t)(O.drain * 1e9) ||
		    atomic_load(&stop_all) > 1)
			P.phase = 3;
	}
}

static void run_publishers(void)
{
	struct itimerspec its = {{0, TICK_US * 1000}, {0, TICK_US * 1000}};
	struct epoll_event ev = {.events = EPOLLIN}, evs[64];
	int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK), i;

	P.epfd = epoll_create1(0);
	if (tfd < 0 || P.epfd < 0 || timerfd_settime(tfd, 0, &its, NULL))
		die("timerfd/epoll: %s", strerror(errno));
	ev.data.ptr = NULL;
	epoll_ctl(P.epfd, EPOLL_CTL_ADD, tfd, &ev);
	for (i = 0; i < O.conns; i++) {
		struct conn *c = &P.c[i];
		struct timeval tv = {0, 0};

		setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		ev.events = EPOLLIN;
		ev.data.ptr = c;
		if (epoll_ctl(P.epfd, EPOLL_CTL_ADD, c->fd, &ev))
			die("epoll_ctl: %s", strerror(errno));
		/* Nonblocking only from here: the setup above was request and answer. */
		if (fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK))
			die("fcntl: %s", strerror(errno));
	}
	P.phase = 1;
	if (O.rate <= 0)
		for (i = 0; i < O.conns; i++) {
			pump(&P.c[i]);
			flush(&P.c[i]);
		}
	while (P.phase != 3) {
		int n = epoll_wait(P.epfd, evs, 64, 100);

		for (i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;

			if (!c) {
				uint64_t x;

				while (read(tfd, &x, sizeof(x)) > 0)
					;
				tick();
				continue;
			}
			if (c->closed)
				continue;
			if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
				on_readable(c);
			if (!c->closed && (evs[i].events & EPOLLOUT))
				flush(c);
		}
		if (n <= 0)
			tick();
	}
	close(tfd);
	close(P.epfd);
}

/* ---- subscriber ----------------------------------------------------------- */

static void sub_record(const char *payload, size_t len)
{
	size_t n = atomic_load(&S.n);
	uint64_t tag = 0;
	int i;

	if (len < 8 || n == S.cap)
		return;
	for (i = 0; i < 8; i++)
		tag = tag << 8 | (uint8_t)payload[i];
	S.tag[n] = tag;
	S.t_deliv[n] = S.t_now;
	atomic_store(&S.n, n + 1);
}

/* XREAD reply: *1 [ *2 [ stream, *N [ *2 [ id, *2 [ "d", payload ] ] ] ] ]. */
static void on_xread(void *ctx, char type, const char *s, long len, int depth)
{
	(void)ctx;
	if (type != '$' || len < 0)
		return;
	if (depth == 4 && (size_t)len < sizeof(S.last_id))
		snprintf(S.last_id, sizeof(S.last_id), "%.*s", (int)len, s);
	else if (depth == 5 && len == O.size)
		sub_record(s, (size_t)len);
}

static void on_delivery(void *ctx, const struct nats_msg *m)
{
	(void)ctx;
	if (m->datalen == (size_t)O.size)
		sub_record(m->data, m->datalen);
}

/* A feed notification: every "data":"0x..." of the subscribed namespace's
 * transactions carries a tag in its first 8 bytes. */
static void on_mezz_delivery(const char *p, size_t n)
{
	static const char key[] = "\"data\":\"0x";
	const char *end = p + n, *q = p;
	int any = 0;

	/* The same transactions come again in their sealed block. */
	if (!memmem(p, n, "\"level\":\"preconfirmed\"", 22))
		return;
	while ((q = memmem(q, (size_t)(end - q), key, sizeof(key) - 1))) {
		const char *h = q + sizeof(key) - 1, *close = memchr(h, '"', (size_t)(end - h));
		uint64_t tag;
		char be[8];

		q = h;
		if (!close || close - h != 2L * O.size)
			continue;
		tag = tag_from_hex(h);
		for (int i = 0; i < 8; i++)
			be[i] = (char)(tag >> (56 - 8 * i));
		sub_record(be, 8);
		any = 1;
	}
	S.batches += (uint64_t)any;
}

static void *sub_run(void *arg)
{
	struct timeval tv = {0, 200000};
	char cmd[256];

	(void)arg;
	/* Short reads so the stop flag is seen; XREAD itself blocks at most 100 ms. */
	setsockopt(S.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (O.peer == PEER_MEZZ) {
		while (!atomic_load(&sub_stop)) {
			const char *pl;
			size_t len;
			int op, k;

			if (read_more(S.fd, &S.rx))
				continue;
			S.t_now = now_ns();
			while ((k = ws_next(&S.rx, &op, &pl, &len)) == 1) {
				if (op == 0x1) {
					on_mezz_delivery(pl, len);
				} else if (op == 0x9) {
					struct buf pong = {0};

					ws_put(&pong, &S.rng, 0xA, pl, len);
					write_all(S.fd, pong.p, pong.n);
					free(pong.p);
				} else if (op == 0x8) {
					k = -1;
					break;
				}
			}
			if (k < 0) {
				S.failed = 1;
				return NULL;
			}
			buf_compact(&S.rx);
		}
	} else if (O.peer == PEER_REDIS) {
		while (!atomic_load(&sub_stop)) {
			long end;
			int k = snprintf(cmd, sizeof(cmd),
					 "*8\r\n$5\r\nXREAD\r\n$5\r\nCOUNT\r\n$%d\r\n%d\r\n"
					 "$5\r\nBLOCK\r\n$3\r\n100\r\n$7\r\nSTREAMS\r\n$%zu\r\n%s\r\n"
					 "$%zu\r\n%s\r\n",
					 snprintf(NULL, 0, "%d", SUB_COUNT), SUB_COUNT,
					 strlen(O.stream), O.stream, strlen(S.last_id), S.last_id);

			write_all(S.fd, cmd, (size_t)k);
			/* XREAD answers within its 100 ms block; a read timeout just retries. */
			while ((end = resp_parse(S.rx.p, S.rx.n, S.rx.off, 0, NULL, NULL)) == -1)
				read_more(S.fd, &S.rx);
			if (end < 0) {
				S.failed = 1;
				return NULL;
			}
			S.t_now = now_ns();
			if (S.rx.p[S.rx.off] == '*' && S.rx.p[S.rx.off + 1] != '-')
				S.batches++;
			resp_parse(S.rx.p, S.rx.n, S.rx.off, 0, on_xread, NULL);
			S.rx.off = (size_t)end;
			buf_compact(&S.rx);
		}
	} else {
		int pong_due = 0;

		while (!atomic_load(&sub_stop)) {
			if (read_more(S.fd, &S.rx))
				continue;
			S.t_now = now_ns();
			S.batches++;
			if (nats_parse(&S.rx, on_delivery, NULL, &pong_due, NULL)) {
				S.failed = 1;
				return NULL;
			}
			buf_compact(&S.rx);
			if (pong_due) {
				write_all(S.fd, "PONG\r\n", 6);
				pong_due = 0;
			}
		}
	}
	return NULL;
}

/* ---- setup ---------------------------------------------------------------- */

static void setup_redis(void)
{
	char line[256], cmd[512];
	struct buf rx = {0};
	int fd = tcp_connect(), i;

	/* A fresh stream: the run owns it; its entries stay (as mezzanine keeps its log). */
	snprintf(cmd, sizeof(cmd), "*2\r\n$3\r\nDEL\r\n$%zu\r\n%s\r\n", strlen(O.stream), O.stream);
	redis_cmd(fd, &rx, cmd, line, sizeof(line));
	redis_cmd(fd, &rx, "*3\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n$11\r\nappendfsync\r\n", line,
		  sizeof(line));
	close(fd);
	free(rx.p);
	fprintf(stderr, "peerload: redis CONFIG GET appendfsync: %s\n", line);
	for (i = 0; i < O.conns; i++) {
		P.c[i].fd = tcp_connect();
		redis_cmd(P.c[i].fd, &P.c[i].rx, "*1\r\n$4\r\nPING\r\n", line, sizeof(line));
		if (strcmp(line, "+PONG"))
			die("redis answered PING with %s", line);
	}
	if (O.subscribe) {
		S.fd = tcp_connect();
		redis_cmd(S.fd, &S.rx, "*1\r\n$4\r\nPING\r\n", line, sizeof(line));
		snprintf(S.last_id, sizeof(S.last_id), "0-0");
	}
}

static void setup_nats(void)
{
	char json[1024], subj[256], line[256];
	struct buf rx = {0};
	int fd = tcp_connect(), i;
	char *ans;

	nats_handshake(fd, &rx);
	/* Delete a leftover stream of the same name; a missing one answers an error. */
	snprintf(subj, sizeof(subj), "$JS.API.STREAM.DELETE.%s", O.stream);
	free(nats_request(fd, &rx, 1, subj, ""));
	snprintf(subj, sizeof(subj), "$JS.API.STREAM.CREATE.%s", O.stream);
	snprintf(json, sizeof(json),
		 "{\"name\":\"%s\",\"subjects\":[\"%s.>\"],\"storage\":\"file\",\"retention\":"
		 "\"limits\",\"discard\":\"old\",\"num_replicas\":1}",
		 O.stream, O.stream);
	ans = nats_request(fd, &rx, 2, subj, json);
	fprintf(stderr, "peerload: nats stream create: %s\n", ans);
	if (strstr(ans, "\"error\"") || !strstr(ans, "\"storage\":\"file\""))
		die("nats did not create a file-storage stream: %s", ans);
	free(ans);
	for (i = 0; i < O.conns; i++) {
		struct conn *c = &P.c[i];
		int n;

		c->fd = tcp_connect();
		nats_handshake(c->fd, &c->rx);
		n = snprintf(line, sizeof(line), "SUB _INBOX.peerload.p%d.* 1\r\nPING\r\n", i);
		write_all(c->fd, line, (size_t)n);
		nats_wait_pong(c->fd, &c->rx, ignore_msg, NULL);
	}
	if (O.subscribe) {
		S.fd = tcp_connect();
		nats_handshake(S.fd, &S.rx);
		snprintf(line, sizeof(line), "SUB %s-deliver 1\r\nPING\r\n", O.stream);
		write_all(S.fd, line, strlen(line));
		nats_wait_pong(S.fd, &S.rx, ignore_msg, NULL);
		snprintf(subj, sizeof(subj), "$JS.API.CONSUMER.DURABLE.CREATE.%s.sub", O.stream);
		snprintf(json, sizeof(json),
			 "{\"stream_name\":\"%s\",\"config\":{\"durable_name\":\"sub\","
			 "\"deliver_subject\":\"%s-deliver\",\"deliver_policy\":\"all\","
			 "\"ack_policy\":\"none\",\"replay_policy\":\"instant\"}}",
			 O.stream, O.stream);
		/* The deliver subject lies outside the stream's subjects (<stream>.>),
		 * or the stream would capture its own deliveries. */
		ans = nats_request(fd, &rx, 3, subj, json);
		fprintf(stderr, "peerload: nats consumer create: %s\n", ans);
		if (strstr(ans, "\"error\""))
			die("nats did not create the consumer: %s", ans);
		free(ans);
	}
	close(fd);
	free(rx.p);
}

/* mezzanine: --stream names the namespace; the subscriber follows its
 * transactions at the `preconfirmed` level (API.md), each group as it
 * becomes durable, the closest to Redis's XREAD and JetStream's push. */
static void setup_mezz(void)
{
	char req[512];
	struct buf tx = {0};
	const char *pl;
	size_t len;
	int i, op;

	for (i = 0; i < O.conns; i++) {
		P.c[i].fd = tcp_connect();
		upgrade(P.c[i].fd, &P.c[i].rx);
	}
	if (!O.subscribe)
		return;
	S.fd = tcp_connect();
	upgrade(S.fd, &S.rx);
	snprintf(req, sizeof(req),
		 "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"mezz_subscribe\",\"params\":"
		 "[\"blocks\",{\"namespaces\":[\"%s\"],\"levels\":[\"preconfirmed\"]}]}",
		 O.stream);
	ws_put(&tx, &S.rng, 0x1, req, strlen(req));
	write_all(S.fd, tx.p, tx.n);
	free(tx.p);
	for (;;) {
		int k = ws_next(&S.rx, &op, &pl, &len);

		if (k < 0)
			die("mezzanine sent an unexpected frame to the subscriber%s", NULL);
		if (k == 0) {
			if (read_more(S.fd, &S.rx))
				die("no answer to mezz_subscribe%s", NULL);
			continue;
		}
		if (op != 0x1)
			continue;
		if (!memmem(pl, len, "\"result\"", 8))
			die("mezz_subscribe was refused%s", NULL);
		break;
	}
	buf_compact(&S.rx);
	fprintf(stderr, "peerload: mezzanine subscriber on namespace %s (level preconfirmed)\n",
		O.stream);
}

/* ---- main ----------------------------------------------------------------- */

static void cpu_sample(double *self, uint64_t *daemon)
{
	*self = self_cpu_s();
	if (O.daemon_pid)
		*daemon = proc_cpu_ticks(O.daemon_pid);
}

static void on_signal(int sig)
{
	(void)sig;
	/* First signal: stop sending and drain; second: stop now. */
	atomic_fetch_add(&stop_all, 1);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: peerload --peer redis|nats|mezz --addr IP:PORT [--stream NAME] [--conns N]\n"
		"                [--rate MSG_PER_S (0 = closed loop)] [--window MSGS_PER_CONN]\n"
		"                [--size BYTES] [--duration S] [--warmup S] [--drain S]\n"
		"                [--max-inflight MSGS_PER_CONN] [--subscribe] [--daemon-pid PID]\n"
		"                [--max-samples N] [--batch TXS_PER_MSG (mezz, closed loop)]\n"
		"                [--txs (each batch as one mezz_sendTransactions)]\n"
		"                [--trace FILE (send time in ms and latency in us of each receipt)]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{"peer", 1, 0, 'P'},	 {"addr", 1, 0, 'a'},	      {"stream", 1, 0, 'n'},
		{"conns", 1, 0, 'c'},	 {"rate", 1, 0, 'r'},	      {"window", 1, 0, 'w'},
		{"size", 1, 0, 's'},	 {"duration", 1, 0, 'd'},     {"warmup", 1, 0, 'W'},
		{"drain", 1, 0, 'D'},	 {"max-inflight", 1, 0, 'm'}, {"subscribe", 0, 0, 'S'},
		{"daemon-pid", 1, 0, 'p'}, {"max-samples", 1, 0, 'M'}, {"batch", 1, 0, 'b'},
		{"txs", 0, 0, 'T'},	 {"trace", 1, 0, 't'},	      {0, 0, 0, 0},
	};
	struct lat sublat = {0};
	uint64_t t;
	size_t ring = 1, i;
	int ch, have_peer = 0;
	char *colon;

	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (ch) {
		case 'P':
			have_peer = 1;
			if (!strcmp(optarg, "redis"))
				O.peer = PEER_REDIS;
			else if (!strcmp(optarg, "nats"))
				O.peer = PEER_NATS;
			else if (!strcmp(optarg, "mezz"))
				O.peer = PEER_MEZZ;
			else
				usage();
			break;
		case 'a':
			colon = strrchr(optarg, ':');
			if (!colon)
				usage();
			snprintf(O.host, sizeof(O.host), "%.*s", (int)(colon - optarg), optarg);
			O.port = atoi(colon + 1);
			break;
		case 'n': O.stream = optarg; break;
		case 'c': O.conns = atoi(optarg); break;
		case 'r': O.rate = atof(optarg); break;
		case 'w': O.window = atoi(optarg); break;
		case 's': O.size = atoi(optarg); break;
		case 'd': O.duration = atof(optarg); break;
		case 'W': O.warmup = atof(optarg); break;
		case 'D': O.drain = atof(optarg); break;
		case 'm': O.max_inflight = atol(optarg); break;
		case 'S': O.subscribe = 1; break;
		case 'p': O.daemon_pid = atol(optarg); break;
		case 'M': O.max_samples = (size_t)atoll(optarg); break;
		case 'b': O.batch = atoi(optarg); break;
		case 'T': O.txs = 1; break;
		case 't': O.trace = optarg; break;
		default: usage();
		}
	}
	if (!have_peer || !O.port || O.conns < 1 || O.conns > MAX_CONNS || O.window < 1 ||
	    O.size < 16 || O.size > 1 << 20 || O.duration <= 0 || O.warmup < 0 ||
	    O.batch < 1 || O.batch > 10000 ||
	    strspn(O.stream, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") !=
		    strlen(O.stream))
		usage();
	if ((O.batch > 1 || O.txs) && (O.peer != PEER_MEZZ || O.rate > 0)) {
		fprintf(stderr, "peerload: --batch and --txs are for --peer mezz in closed loop "
				"(--rate 0)\n");
		exit(2);
	}
	if (O.max_inflight <= 0)
		O.max_inflight = O.rate > 0 ? 8192 : O.window;
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);

	if (!O.max_samples)
		O.max_samples = (size_t)((O.rate > 0 ? O.rate * 1.2 : 600000.0) * (O.duration + 1)) +
				100000;
	if (lat_init(&P.lat, O.max_samples))
		die("out of memory for latency samples", NULL);
	if (O.trace && !(P.trace_at = malloc(O.max_samples * sizeof(*P.trace_at))))
		die("out of memory for the trace", NULL);
	if (O.rate > 0)
		if (lat_init(&P.lat_sched, O.max_samples))
			die("out of memory for latency samples", NULL);
	P.rng = 0x9E3779B97F4A7C15ull ^ ((uint64_t)getpid() << 16) ^ now_ns();
	S.rng = P.rng ^ 0xD1B54A32D192ED03ull;
	while (ring < (size_t)(O.rate > 0 ? O.max_inflight : (long)O.window * O.batch) * 2 + 1)
		ring <<= 1;
	for (int k = 0; k < O.conns; k++) {
		struct conn *c = &P.c[k];

		c->idx = k;
		c->next_id = c->next_ack = 1;
		c->ring = calloc(ring, sizeof(*c->ring));
		c->mask = ring - 1;
		if (!c->ring)
			die("out of memory%s", NULL);
	}
	if (O.subscribe) {
		double per_s = O.rate > 0 ? O.rate * 1.5 : 600000.0;

		P.tag_cap = (size_t)(per_s * (O.duration + O.warmup + 1)) + 100000;
		P.tsend_by_tag = calloc(P.tag_cap, sizeof(uint64_t));
		S.cap = (size_t)(per_s * (O.duration + O.warmup + 2)) + 100000;
		S.tag = malloc(S.cap * sizeof(uint64_t));
		S.t_deliv = malloc(S.cap * sizeof(uint64_t));
		if (!P.tsend_by_tag || !S.tag || !S.t_deliv)
			die("out of memory for the subscriber%s", NULL);
	}

	if (O.peer == PEER_REDIS)
		setup_redis();
	else if (O.peer == PEER_NATS)
		setup_nats();
	else
		setup_mezz();
	if (O.subscribe && pthread_create(&S.thread, NULL, sub_run, NULL))
		die("pthread_create failed%s", NULL);

	t = now_ns() + 1000000;
	t0_ns = t;
	tmeas_ns = t + (uint64_t)(O.warmup * 1e9);
	tend_ns = t + (uint64_t)((O.warmup + O.duration) * 1e9);
	while (now_ns() < t0_ns) {
		struct timespec ts = {0, 100000};

		nanosleep(&ts, NULL);
	}
	run_publishers();
	if (!cpu_ended) /* interrupted */
		cpu_sample(&cpu_c1, &cpu_d1);
	if (O.subscribe) {
		/* Deliveries trail the acks by little on these peers: wait until the
		 * subscriber has every sent message, or 1.5 s. */
		uint64_t until = now_ns() + 1500000000ull;

		while (now_ns() < until && atomic_load(&S.n) < P.sent_total && !S.failed &&
		       atomic_load(&stop_all) < 2) {
			struct timespec ts = {0, 10000000};

			nanosleep(&ts, NULL);
		}
		atomic_store(&sub_stop, 1);
		pthread_join(S.thread, NULL);
		if (S.failed)
			fprintf(stderr, "peerload: the subscriber failed\n");
	}

	if (O.trace) {
		FILE *f = fopen(O.trace, "w");

		if (!f)
			die("cannot write the trace %s", O.trace);
		fprintf(f, "# CLOCK_MONOTONIC ns at the window's start: %" PRIu64 "\n", tmeas_ns);
		for (i = 0; i < P.lat.n; i++)
			fprintf(f, "%.3f %u\n", P.trace_at[i] / 1000.0, P.lat.v[i]);
		if (fclose(f))
			die("cannot write the trace %s", O.trace);
	}
	qsort(P.lat.v, P.lat.n, sizeof(uint32_t), cmp_u32);
	if (O.rate > 0)
		qsort(P.lat_sched.v, P.lat_sched.n, sizeof(uint32_t), cmp_u32);
	if (O.subscribe) {
		size_t n = atomic_load(&S.n);

		if (lat_init(&sublat, n + 1))
			die("out of memory for latency samples", NULL);
		for (i = 0; i < n; i++) {
			uint64_t ts = S.tag[i] < P.tag_cap ? P.tsend_by_tag[S.tag[i]] : 0;

			if (ts && S.t_deliv[i] > ts)
				lat_add(&sublat, S.t_deliv[i] - ts);
		}
		qsort(sublat.v, sublat.n, sizeof(uint32_t), cmp_u32);
	}
	if (P.first_error[0])
		fprintf(stderr, "peerload: first error: %s\n", P.first_error);
	{
		double span = O.duration;

		printf("{\"peer\":\"%s\",\"mode\":\"%s\",\"conns\":%d,\"threads\":1,\"txs\":%d,\"batch\":%d,"
		       "\"window\":%d,\"size\":%d,\"duration\":%.1f,"
		       "\"offered\":%.0f,\"achieved_tps\":%.0f,\"sent\":%" PRIu64
		       ",\"receipts\":%" PRIu64 ",\"errors\":%" PRIu64 ",\"busy\":0,\"lost\":%" PRIu64
		       ",\"p50_us\":%u,\"p90_us\":%u,\"p99_us\":%u,\"p999_us\":%u,\"max_us\":%u",
		       O.peer == PEER_REDIS ? "redis" : O.peer == PEER_NATS ? "nats" : "mezz",
		       O.rate > 0 ? "open" : "closed",
		       O.conns, O.txs, O.batch, O.window, O.size, O.duration, O.rate,
		       (double)P.ok_in_window / O.duration, P.sent, P.receipts, P.errors, P.lost,
		       pct(&P.lat, 50), pct(&P.lat, 90), pct(&P.lat, 99), pct(&P.lat, 99.9),
		       P.lat.n ? P.lat.v[P.lat.n - 1] : 0);
		if (O.rate > 0)
			printf(",\"cap_hits\":%" PRIu64 ",\"max_inflight\":%ld,\"max_send_lag_us\":%" PRIu64
			       ",\"sched_p99_us\":%u,\"sched_p999_us\":%u",
			       P.cap_hits, O.max_inflight, P.max_lag_ns / 1000, pct(&P.lat_sched, 99),
			       pct(&P.lat_sched, 99.9));
		if (O.subscribe)
			printf(",\"blocks\":%" PRIu64 ",\"delivered\":%zu,\"deliv_p50_us\":%u,"
			       "\"deliv_p99_us\":%u,\"deliv_max_us\":%u",
			       S.batches, sublat.n, pct(&sublat, 50), pct(&sublat, 99),
			       sublat.n ? sublat.v[sublat.n - 1] : 0);
		int closed = 0;

		for (int k = 0; k < O.conns; k++)
			closed += P.c[k].closed;
		printf(",\"conns_closed\":%d,\"samples_dropped\":%zu,\"loadgen_cpu_pct\":%.0f",
		       closed, P.lat.dropped,
		       100.0 * (cpu_c1 - cpu_c0) / span);
		if (O.daemon_pid)
			printf(",\"daemon_cpu_pct\":%.0f",
			       100.0 * (double)(cpu_d1 - cpu_d0) / (double)sysconf(_SC_CLK_TCK) / span);
		printf("}\n");
	}
	free(sublat.v);
	return 0;
}
