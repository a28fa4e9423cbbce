/*
 * loadgen: a JSON-RPC over WebSocket load generator for mezzanine.
 *
 * It submits mezz_sendTransaction requests on N connections and measures
 * the latency from send to the preconfirmation receipt, which the daemon
 * answers only after the group fsync. Two modes:
 *
 *   --rate R > 0   open loop: a timer releases R tx/s whatever the latency,
 *                  so a slow daemon cannot throttle the offered load. Only a
 *                  per-connection in-flight cap (--max-inflight) stops sends;
 *                  hitting it is counted and reported ("cap_hits").
 *   --rate 0       closed loop: each connection keeps --window messages of
 *                  --batch transactions in flight; this finds the maximum
 *                  sustained throughput.
 *
 * Each worker thread (--threads) owns one lws context and its share of the
 * connections and of the rate; nothing is shared between workers while the
 * run is going (STYLE.md rule 14), results are merged after pthread_join.
 * Latencies go into preallocated arrays; percentiles are computed after the
 * run. With --subscribe one extra thread subscribes to the block feed and
 * records when each transaction was delivered in a sealed block; every
 * payload starts with an 8-byte tag (worker, counter) so the feed can be
 * matched to the send time without waiting for the receipt.
 *
 * The last line on stdout is one JSON object with the results.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <libwebsockets.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "benchlat.h"

#define BUSY_CODE (-32006)
#define TICK_US 1000
#define MAX_WORKERS 16

struct opts {
	char host[256];
	char path[256];
	int port;
	const char *ns;
	int conns, threads, window, batch, size, subscribe;
	const char *deliver; /* --subscribe: the feed level that counts as delivered */
	int nns; /* --namespaces: > 0 spreads transactions over <ns>0..<ns>nns-1 */
	double rate, duration, warmup, drain;
	long max_inflight; /* per connection, in transactions */
	long daemon_pid;
	size_t max_samples;
};

static struct opts O = {
	.ns = "bench", .deliver = "sealed", .conns = 4, .threads = 1, .window = 64, .batch = 1, .size = 200,
	.rate = 0, .duration = 10, .warmup = 2, .drain = 5, .max_inflight = 0,
	.max_samples = 0,
};

struct slot {
	uint64_t id; /* 0 when free */
	uint64_t t_send, t_sched;
	int in_window;
};

struct worker;

struct conn {
	struct worker *w;
	struct lws *wsi;
	int established, closed;
	uint64_t next_id;
	long inflight;  /* transactions */
	long due_msgs;  /* open loop: messages released by the timer, not yet sent */
	struct slot *ring;
	size_t mask;
	unsigned char *buf; /* LWS_PRE + message */
	size_t bufcap;
	char *rx;
	size_t rxn, rxcap;
};

struct worker {
	int idx;
	pthread_t thread;
	struct lws_context *ctx;
	struct conn *conns;
	int nconns;
	double rate;
	atomic_int done;
	int phase; /* 0 connecting, 1 running, 2 draining, 3 done */
	int up, failed;
	uint64_t released, rr;
	uint64_t tag; /* payload counter */
	uint64_t rng;
	struct lat lat, lat_sched;
	uint64_t *tsend_by_tag; /* only with --subscribe */
	size_t tag_cap;
	/* counters for transactions sent inside the measurement window */
	uint64_t sent, receipts, errors, busy, ok_in_window, lost, cap_hits, max_lag_ns;
	uint64_t sent_total;
	int first_error_code;
	char first_error[160];
};

struct sub {
	pthread_t thread;
	struct lws_context *ctx;
	struct lws *wsi;
	int ready, failed, closed;
	char *rx;
	size_t rxn, rxcap;
	uint64_t *tag, *t_deliv; /* pairs, preallocated */
	size_t n, cap;
	uint64_t blocks;
};

static struct worker W[MAX_WORKERS];
static struct sub S;
static pthread_barrier_t start_barrier;
static _Atomic uint64_t t0_ns, tmeas_ns, tend_ns;
static atomic_int stop_all, sub_stop;

static void die(const char *why)
{
	fprintf(stderr, "loadgen: %s\n", why);
	exit(2);
}

static const char hexdig[] = "0123456789abcdef";

/* Append one request; its payload is tag (8 bytes, big endian) + random. */
static size_t put_tx(struct worker *w, char *p, uint64_t id, uint64_t tag)
{
	char *s = p;
	uint8_t b[8];
	int i;

	p += sprintf(p, "{\"jsonrpc\":\"2.0\",\"id\":%" PRIu64 ",\"method\":\"mezz_sendTransaction\","
		     "\"params\":{\"namespace\":\"%s", id, O.ns);
	/* Round robin on the worker's counter: every namespace gets an equal share. */
	if (O.nns > 0)
		p += sprintf(p, "%" PRIu64, tag % (uint64_t)O.nns);
	p += sprintf(p, "\",\"data\":\"0x");
	tag |= (uint64_t)w->idx << 56;
	for (i = 0; i < 8; i++)
		b[i] = (uint8_t)(tag >> (56 - 8 * i));
	for (i = 0; i < 8; i++) {
		*p++ = hexdig[b[i] >> 4];
		*p++ = hexdig[b[i] & 15];
	}
	for (i = 8; i < O.size; i += 8) {
		uint64_t r = xorshift(&w->rng);
		int k;

		for (k = 0; k < 8 && i + k < O.size; k++) {
			*p++ = hexdig[(r >> (8 * k + 4)) & 15];
			*p++ = hexdig[(r >> (8 * k)) & 15];
		}
	}
	memcpy(p, "\"}}", 3);
	p += 3;
	return (size_t)(p - s);
}

static int in_window(uint64_t t)
{
	return t >= atomic_load(&tmeas_ns) && t < atomic_load(&tend_ns);
}

/* Send one message of O.batch transactions. Returns 0 or -1 on a write error. */
static int send_msg(struct conn *c, uint64_t t_sched)
{
	struct worker *w = c->w;
	char *p = (char *)c->buf + LWS_PRE, *s = p;
	uint64_t ids[O.batch], tags[O.batch], t;
	int i, win;

	if (O.batch > 1)
		*p++ = '[';
	for (i = 0; i < O.batch; i++) {
		ids[i] = c->next_id++;
		tags[i] = w->tag++;
		if (i)
			*p++ = ',';
		p += put_tx(w, p, ids[i], tags[i]);
	}
	if (O.batch > 1)
		*p++ = ']';
	t = now_ns();
	win = in_window(t);
	for (i = 0; i < O.batch; i++) {
		struct slot *sl = &c->ring[ids[i] & c->mask];

		if (sl->id) {
			/* Never answered while the ring went round: count it as lost. */
			if (sl->in_window)
				w->lost++;
			c->inflight--;
		}
		sl->id = ids[i];
		sl->t_send = t;
		sl->t_sched = t_sched ? t_sched : t;
		sl->in_window = win;
		if (w->tsend_by_tag && tags[i] < w->tag_cap)
			w->tsend_by_tag[tags[i]] = win ? t : 0;
	}
	c->inflight += O.batch;
	w->sent_total += (uint64_t)O.batch;
	if (win)
		w->sent += (uint64_t)O.batch;
	if (t_sched && t > t_sched && t - t_sched > w->max_lag_ns && win)
		w->max_lag_ns = t - t_sched;
	if (lws_write(c->wsi, (unsigned char *)s, (size_t)(p - s), LWS_WRITE_TEXT) < (int)(p - s))
		return -1;
	return 0;
}

static void complete(struct conn *c, uint64_t id, int is_err, int code, const char *msg,
		     size_t msglen, uint64_t t)
{
	struct worker *w = c->w;
	struct slot *sl = &c->ring[id & c->mask];

	if (sl->id != id)
		return; /* unknown or already counted as lost */
	sl->id = 0;
	c->inflight--;
	if (!sl->in_window)
		return;
	if (is_err) {
		if (code == BUSY_CODE) {
			w->busy++;
		} else {
			w->errors++;
			if (!w->first_error_code) {
				w->first_error_code = code;
				snprintf(w->first_error, sizeof(w->first_error), "%.*s",
					 (int)(msglen > 120 ? 120 : msglen), msg);
			}
		}
		return;
	}
	w->receipts++;
	if (in_window(t))
		w->ok_in_window++;
	lat_add(&w->lat, t - sl->t_send);
	if (O.rate > 0)
		lat_add(&w->lat_sched, t - sl->t_sched);
}

/*
 * Answers are {"jsonrpc":"2.0","id":N,"result":{...}} or ...,"error":{"code":C,...}
 * (receipt.c and rpc.c build them with snprintf), alone or in an array. A
 * scan for the "id" keys is enough and much cheaper than a JSON parse.
 */
struct answers_ctx {
	struct conn *c;
	uint64_t t;
};

static void on_answer(void *ctx, uint64_t id, int is_err, int code, const char *msg,
		      size_t msglen)
{
	struct answers_ctx *a = ctx;

	if (!id) {
		a->c->w->errors++; /* "id":null: the daemon could not parse a request */
		return;
	}
	complete(a->c, id, is_err, code, msg, msglen, a->t);
}

static void on_answers(struct conn *c, char *p, size_t n)
{
	struct answers_ctx a = {c, now_ns()};

	scan_answers(p, n, on_answer, &a);
}

static int rx_append(char **rx, size_t *rxn, size_t *rxcap, const void *in, size_t len)
{
	if (*rxn + len + 1 > *rxcap) {
		size_t cap = (*rxcap ? *rxcap : 65536);
		char *nb;

		while (cap < *rxn + len + 1)
			cap *= 2;
		nb = realloc(*rx, cap);
		if (!nb)
			return -1;
		*rx = nb;
		*rxcap = cap;
	}
	memcpy(*rx + *rxn, in, len);
	*rxn += len;
	(*rx)[*rxn] = 0;
	return 0;
}

/*
 * The open-loop clock, run every TICK_US: release every transaction whose
 * time has come, and move through the phases. The main thread wakes each
 * worker with lws_cancel_service() (EVENT_WAIT_CANCELLED): an lws sul timer
 * would make poll() spin, as lws rounds its wait down to whole milliseconds.
 */
static void tick(struct worker *w)
{
	uint64_t t = now_ns(), t0 = atomic_load(&t0_ns);

	if (w->phase == 1 && t >= atomic_load(&tend_ns)) {
		w->phase = 2;
	}
	if (w->phase == 1 && O.rate > 0 && t > t0) {
		uint64_t due = (uint64_t)((double)(t - t0) / 1e9 * w->rate) / (uint64_t)O.batch;

		while (w->released < due) {
			struct conn *c = &w->conns[w->rr++ % (uint64_t)w->nconns];

			w->released++;
			if (c->closed)
				continue;
			c->due_msgs++;
			lws_callback_on_writable(c->wsi);
		}
	}
	if (w->phase == 2) {
		long inflight = 0;

		for (int i = 0; i < w->nconns; i++)
			if (!w->conns[i].closed)
				inflight += w->conns[i].inflight;
		if (!inflight || t >= atomic_load(&tend_ns) + (uint64_t)(O.drain * 1e9))
			w->phase = 3;
	}
	if (w->phase == 3)
		atomic_store(&w->done, 1);
}

static int may_send(struct conn *c)
{
	struct worker *w = c->w;

	if (w->phase != 1 || !c->established || c->closed)
		return 0;
	if (O.rate > 0)
		return c->due_msgs > 0;
	return c->inflight + O.batch <= (long)O.window * O.batch;
}

static int cb_client(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
		     size_t len)
{
	struct conn *c = lws_get_opaque_user_data(wsi);

	(void)user;
	if (reason == LWS_CALLBACK_EVENT_WAIT_CANCELLED) {
		for (int i = 0; i < O.threads; i++)
			if (W[i].ctx == lws_get_context(wsi))
				tick(&W[i]);
		return 0;
	}
	if (!c)
		return lws_callback_http_dummy(wsi, reason, user, in, len);
	switch (reason) {
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		c->established = 1;
		c->w->up++;
		break;
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		fprintf(stderr, "loadgen: connect failed: %s\n", in ? (char *)in : "?");
		c->closed = 1;
		c->w->failed++;
		c->wsi = NULL;
		break;
	case LWS_CALLBACK_CLIENT_CLOSED:
		if (!c->closed && c->w->phase < 3)
			fprintf(stderr, "loadgen: connection closed by the daemon\n");
		c->closed = 1;
		c->wsi = NULL;
		break;
	case LWS_CALLBACK_CLIENT_RECEIVE:
		if (rx_append(&c->rx, &c->rxn, &c->rxcap, in, len))
			return -1;
		if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi))
			break;
		on_answers(c, c->rx, c->rxn);
		c->rxn = 0;
		if (may_send(c))
			lws_callback_on_writable(wsi);
		break;
	case LWS_CALLBACK_CLIENT_WRITEABLE:
		if (!may_send(c))
			break;
		if (O.rate > 0) {
			struct worker *w = c->w;

			if (c->inflight + O.batch > O.max_inflight) {
				w->cap_hits++;
				break; /* resumes when answers come back */
			}
			/* Intended send time of this message's first transaction. */
			uint64_t k = w->sent_total;
			uint64_t ts = atomic_load(&t0_ns) + (uint64_t)((double)k * 1e9 / w->rate);

			c->due_msgs--;
			if (send_msg(c, ts))
				return -1;
		} else if (send_msg(c, 0)) {
			return -1;
		}
		if (may_send(c))
			lws_callback_on_writable(wsi);
		break;
	default:
		break;
	}
	return 0;
}

static const struct lws_protocols client_protocols[] = {
	{"mezz-bench", cb_client, 0, 65536, 0, NULL, 0},
	{NULL, NULL, 0, 0, 0, NULL, 0},
};

static struct lws *connect_one(struct lws_context *ctx, void *opaque)
{
	struct lws_client_connect_info ci;

	memset(&ci, 0, sizeof(ci));
	ci.context = ctx;
	ci.address = O.host;
	ci.port = O.port;
	ci.path = O.path;
	ci.host = O.host;
	ci.origin = O.host;
	ci.opaque_user_data = opaque;
	ci.local_protocol_name = "mezz-bench";
	return lws_client_connect_via_info(&ci);
}

static struct lws_context *make_context(const struct lws_protocols *prot)
{
	struct lws_context_creation_info info;

	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = prot;
	info.gid = -1;
	info.uid = -1;
	info.count_threads = 1;
	return lws_create_context(&info);
}


static void *worker_run(void *arg)
{
	struct worker *w = arg;

	for (int i = 0; i < w->nconns; i++) {
		w->conns[i].wsi = connect_one(w->ctx, &w->conns[i]);
		if (!w->conns[i].wsi) {
			w->conns[i].closed = 1;
			w->failed++;
		}
	}
	while (w->up + w->failed < w->nconns)
		if (lws_service(w->ctx, 0) < 0)
			break;
	pthread_barrier_wait(&start_barrier); /* everyone connected */
	pthread_barrier_wait(&start_barrier); /* main has set t0 */
	w->phase = 1;
	if (O.rate <= 0)
		for (int i = 0; i < w->nconns; i++)
			if (!w->conns[i].closed)
				lws_callback_on_writable(w->conns[i].wsi);
	while (w->phase != 3 && !atomic_load(&stop_all))
		if (lws_service(w->ctx, 0) < 0)
			break;
	atomic_store(&w->done, 1);
	return NULL;
}

/* The feed subscriber: records (tag, delivery time) for every sealed tx. */
static void sub_block(struct sub *s, const char *buf, size_t n, uint64_t t)
{
	json_t *root = json_loadb(buf, n, 0, NULL), *res, *nss, *nsv, *txv;
	size_t i, j;

	if (!root)
		return;
	res = json_object_get(json_object_get(root, "params"), "result");
	if (!res) {
		/* The answer to mezz_subscribe. */
		if (json_object_get(root, "result"))
			s->ready = 1;
		else
			s->failed = 1;
		json_decref(root);
		return;
	}
	if (strcmp(json_string_value(json_object_get(res, "level")) ?: "", O.deliver))
		goto out;
	s->blocks++;
	nss = json_object_get(res, "namespaces");
	json_array_foreach(nss, i, nsv) {
		json_array_foreach(json_object_get(nsv, "txs"), j, txv) {
			const char *d = json_string_value(json_object_get(txv, "data"));

			if (!d || strncmp(d, "0x", 2) || strlen(d) < 18 || s->n == s->cap)
				continue;
			s->tag[s->n] = tag_from_hex(d + 2);
			s->t_deliv[s->n++] = t;
		}
	}
out:
	json_decref(root);
}

static int cb_sub(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
		  size_t len)
{
	struct sub *s = lws_get_opaque_user_data(wsi);
	static const char req[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"mezz_subscribe\","
				  "\"params\":[\"blocks\",{\"namespaces\":[\"%s\"],"
				  "\"levels\":[\"%s\"]}]}";
	unsigned char buf[LWS_PRE + 512];

	if (reason == LWS_CALLBACK_EVENT_WAIT_CANCELLED)
		return 0;
	if (!s)
		return lws_callback_http_dummy(wsi, reason, user, in, len);
	switch (reason) {
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		lws_callback_on_writable(wsi);
		break;
	case LWS_CALLBACK_CLIENT_WRITEABLE: {
		int n = snprintf((char *)buf + LWS_PRE, 512, req, O.ns, O.deliver);

		if (lws_write(wsi, buf + LWS_PRE, (size_t)n, LWS_WRITE_TEXT) < n)
			return -1;
		break;
	}
	case LWS_CALLBACK_CLIENT_RECEIVE: {
		uint64_t t = now_ns();

		if (rx_append(&s->rx, &s->rxn, &s->rxcap, in, len))
			return -1;
		if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi))
			break;
		sub_block(s, s->rx, s->rxn, t);
		s->rxn = 0;
		break;
	}
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
	case LWS_CALLBACK_CLIENT_CLOSED:
		s->closed = 1;
		if (!s->ready)
			s->failed = 1;
		s->wsi = NULL;
		break;
	default:
		break;
	}
	return 0;
}

static const struct lws_protocols sub_protocols[] = {
	{"mezz-bench-sub", cb_sub, 0, 65536, 0, NULL, 0},
	{NULL, NULL, 0, 0, 0, NULL, 0},
};

static void *sub_run(void *arg)
{
	struct sub *s = arg;
	struct lws_client_connect_info ci;

	memset(&ci, 0, sizeof(ci));
	ci.context = s->ctx;
	ci.address = O.host;
	ci.port = O.port;
	ci.path = O.path;
	ci.host = O.host;
	ci.origin = O.host;
	ci.opaque_user_data = s;
	ci.local_protocol_name = "mezz-bench-sub";
	s->wsi = lws_client_connect_via_info(&ci);
	if (!s->wsi)
		s->failed = 1;
	while (!s->ready && !s->failed)
		if (lws_service(s->ctx, 0) < 0)
			break;
	pthread_barrier_wait(&start_barrier);
	pthread_barrier_wait(&start_barrier);
	while (!atomic_load(&sub_stop) && !s->failed)
		if (lws_service(s->ctx, 0) < 0)
			break;
	return NULL;
}

/* Time this process's threads spent runnable but waiting for a CPU, in ns. */
static uint64_t self_runq_ns(void)
{
	DIR *dir = opendir("/proc/self/task");
	struct dirent *e;
	uint64_t sum = 0;

	if (!dir)
		return 0;
	while ((e = readdir(dir))) {
		char path[300];
		unsigned long long run, wait;
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/schedstat", e->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fscanf(f, "%llu %llu", &run, &wait) == 2)
			sum += wait;
		fclose(f);
	}
	closedir(dir);
	return sum;
}

static void sleep_until(uint64_t t)
{
	uint64_t n;

	while ((n = now_ns()) < t && !atomic_load(&stop_all)) {
		struct timespec ts = {(time_t)((t - n) / 1000000000ull), (long)((t - n) % 1000000000ull)};

		nanosleep(&ts, NULL);
	}
}

static void on_signal(int sig)
{
	(void)sig;
	atomic_store(&stop_all, 1);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: loadgen --url ws://HOST:PORT/ [--namespace NS] [--conns N] [--threads T]\n"
		"               [--rate TX_PER_S (0 = closed loop)] [--window MSGS_PER_CONN]\n"
		"               [--batch TXS_PER_MSG] [--size BYTES] [--duration S] [--warmup S]\n"
		"               [--drain S] [--max-inflight TXS_PER_CONN] [--subscribe]\n"
		"               [--daemon-pid PID] [--max-samples N] [--namespaces N]\n"
		"  --namespaces N  submit to NS0..NS(N-1) in turn instead of NS (not with --subscribe)\n"
		"  --deliver-level sealed|preconfirmed  with --subscribe: the feed event that counts\n"
		"                  as delivered (default sealed: the block, at the end of its slot)\n");
	exit(2);
}

static void parse_url(const char *u)
{
	const char *err = ws_url_parse(u, O.host, sizeof(O.host), &O.port, O.path, sizeof(O.path));

	if (err)
		die(err);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{"url", 1, 0, 'u'},	     {"namespace", 1, 0, 'n'}, {"conns", 1, 0, 'c'},
		{"threads", 1, 0, 'T'},	     {"rate", 1, 0, 'r'},      {"window", 1, 0, 'w'},
		{"batch", 1, 0, 'b'},	     {"size", 1, 0, 's'},      {"duration", 1, 0, 'd'},
		{"warmup", 1, 0, 'W'},	     {"drain", 1, 0, 'D'},     {"max-inflight", 1, 0, 'm'},
		{"subscribe", 0, 0, 'S'},    {"deliver-level", 1, 0, 'L'},    {"daemon-pid", 1, 0, 'p'}, {"max-samples", 1, 0, 'M'},
		{"namespaces", 1, 0, 'N'},   {0, 0, 0, 0},
	};
	int ch, have_url = 0, nworkers;
	uint64_t sent = 0, receipts = 0, errors = 0, busy = 0, okw = 0, lost = 0, caps = 0, lag = 0;
	uint64_t d0 = 0, d1 = 0;
	double c0 = 0, c1 = 0;
	uint64_t q0 = 0, q1 = 0;
	struct lat all = {0}, alls = {0}, sublat = {0};
	size_t per_worker_samples;
	const char *first_err = "";
	int first_code = 0;

	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (ch) {
		case 'u': parse_url(optarg); have_url = 1; break;
		case 'n': O.ns = optarg; break;
		case 'c': O.conns = atoi(optarg); break;
		case 'T': O.threads = atoi(optarg); break;
		case 'r': O.rate = atof(optarg); break;
		case 'w': O.window = atoi(optarg); break;
		case 'b': O.batch = atoi(optarg); break;
		case 's': O.size = atoi(optarg); break;
		case 'd': O.duration = atof(optarg); break;
		case 'W': O.warmup = atof(optarg); break;
		case 'D': O.drain = atof(optarg); break;
		case 'm': O.max_inflight = atol(optarg); break;
		case 'S': O.subscribe = 1; break;
		case 'L':
			if (strcmp(optarg, "sealed") && strcmp(optarg, "preconfirmed"))
				die("--deliver-level must be sealed or preconfirmed");
			O.deliver = optarg;
			break;
		case 'p': O.daemon_pid = atol(optarg); break;
		case 'M': O.max_samples = (size_t)atoll(optarg); break;
		case 'N': O.nns = atoi(optarg); break;
		default: usage();
		}
	}
	if (!have_url || O.conns < 1 || O.threads < 1 || O.threads > MAX_WORKERS ||
	    O.threads > O.conns || O.batch < 1 || O.batch > 100000 || O.window < 1 ||
	    O.size < 16 || O.size > 1 << 20 || O.duration <= 0 || O.warmup < 0 ||
	    O.nns < 0 || O.nns > 1000000 || (O.nns && O.subscribe))
		usage();
	if (O.max_inflight <= 0)
		O.max_inflight = O.rate > 0 ? 8192 : (long)O.window * O.batch;
	if (O.max_inflight < O.batch)
		O.max_inflight = O.batch;
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);
	lws_set_log_level(LLL_ERR, NULL);

	nworkers = O.threads;
	if (!O.max_samples) {
		double est = O.rate > 0 ? O.rate * 1.2 : 600000.0;

		O.max_samples = (size_t)(est * (O.duration + 1)) + 100000;
	}
	per_worker_samples = O.max_samples / (size_t)nworkers + 1;
	for (int i = 0; i < nworkers; i++) {
		struct worker *w = &W[i];
		long inflight_cap = O.rate > 0 ? O.max_inflight : (long)O.window * O.batch;
		size_t ring = 1;

		while (ring < (size_t)inflight_cap * 2 + (size_t)O.batch)
			ring <<= 1;
		w->idx = i;
		w->nconns = O.conns / nworkers + (i < O.conns % nworkers);
		w->rate = O.rate / nworkers;
		w->rng = 0x9E3779B97F4A7C15ull ^ ((uint64_t)getpid() << 16) ^ (uint64_t)i ^ now_ns();
		w->conns = calloc((size_t)w->nconns, sizeof(*w->conns));
		if (!w->conns)
			die("out of memory");
		if (lat_init(&w->lat, per_worker_samples))
			die("out of memory for latency samples");
		if (O.rate > 0)
			if (lat_init(&w->lat_sched, per_worker_samples))
				die("out of memory for latency samples");
		if (O.subscribe) {
			w->tag_cap = (size_t)((O.rate > 0 ? O.rate * 1.5 : 600000.0) / nworkers *
					      (O.duration + O.warmup + 1)) + 100000;
			w->tsend_by_tag = calloc(w->tag_cap, sizeof(uint64_t));
			if (!w->tsend_by_tag)
				die("out of memory for the feed tags");
		}
		for (int k = 0; k < w->nconns; k++) {
			struct conn *c = &w->conns[k];

			c->w = w;
			c->next_id = 1;
			c->ring = calloc(ring, sizeof(*c->ring));
			c->mask = ring - 1;
			c->bufcap = LWS_PRE + (size_t)O.batch * ((size_t)O.size * 2 + 200) + 16;
			c->buf = malloc(c->bufcap);
			if (!c->ring || !c->buf)
				die("out of memory");
		}
	}
	if (O.subscribe) {
		S.cap = (size_t)((O.rate > 0 ? O.rate * 1.5 : 600000.0) * (O.duration + O.warmup + 2)) +
			100000;
		S.tag = malloc(S.cap * sizeof(uint64_t));
		S.t_deliv = malloc(S.cap * sizeof(uint64_t));
		if (!S.tag || !S.t_deliv)
			die("out of memory for the feed");
	}
	for (int i = 0; i < nworkers; i++)
		if (!(W[i].ctx = make_context(client_protocols)))
			die("lws_create_context failed");
	if (O.subscribe && !(S.ctx = make_context(sub_protocols)))
		die("lws_create_context failed");
	pthread_barrier_init(&start_barrier, NULL, (unsigned)(nworkers + O.subscribe + 1));
	for (int i = 0; i < nworkers; i++)
		if (pthread_create(&W[i].thread, NULL, worker_run, &W[i]))
			die("pthread_create failed");
	if (O.subscribe && pthread_create(&S.thread, NULL, sub_run, &S))
		die("pthread_create failed");
	pthread_barrier_wait(&start_barrier);
	for (int i = 0; i < nworkers; i++)
		if (W[i].failed)
			die("could not connect every connection");
	if (O.subscribe && S.failed)
		die("mezz_subscribe failed");
	{
		uint64_t t = now_ns() + 1000000;

		atomic_store(&t0_ns, t);
		atomic_store(&tmeas_ns, t + (uint64_t)(O.warmup * 1e9));
		atomic_store(&tend_ns, t + (uint64_t)((O.warmup + O.duration) * 1e9));
	}
	pthread_barrier_wait(&start_barrier);
	/* The clock: wake every worker each TICK_US until all are done. */
	{
		struct timespec next;
		int measuring = 0, ended = 0, live = nworkers;

		clock_gettime(CLOCK_MONOTONIC, &next);
		while (live) {
			uint64_t t = now_ns();

			if (!measuring && t >= atomic_load(&tmeas_ns)) {
				measuring = 1;
				c0 = self_cpu_s();
				q0 = self_runq_ns();
				if (O.daemon_pid)
					d0 = proc_cpu_ticks(O.daemon_pid);
			}
			if (!ended && t >= atomic_load(&tend_ns)) {
				ended = 1;
				c1 = self_cpu_s();
				q1 = self_runq_ns();
				if (O.daemon_pid)
					d1 = proc_cpu_ticks(O.daemon_pid);
			}
			live = 0;
			for (int i = 0; i < nworkers; i++)
				if (!atomic_load(&W[i].done)) {
					live++;
					lws_cancel_service(W[i].ctx);
				}
			next.tv_nsec += TICK_US * 1000;
			if (next.tv_nsec >= 1000000000) {
				next.tv_nsec -= 1000000000;
				next.tv_sec++;
			}
			clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
		}
		if (!ended) { /* interrupted */
			c1 = self_cpu_s();
			q1 = self_runq_ns();
			if (O.daemon_pid)
				d1 = proc_cpu_ticks(O.daemon_pid);
		}
	}
	for (int i = 0; i < nworkers; i++) {
		pthread_join(W[i].thread, NULL);
		lws_context_destroy(W[i].ctx);
	}
	if (O.subscribe) {
		/* The last transactions are sealed at the end of their slot. */
		sleep_until(now_ns() + 1500000000ull);
		atomic_store(&sub_stop, 1);
		lws_cancel_service(S.ctx);
		pthread_join(S.thread, NULL);
		lws_context_destroy(S.ctx);
	}

	if (lat_init(&all, O.max_samples + (size_t)nworkers))
		die("out of memory for latency samples");
	if (O.rate > 0)
		if (lat_init(&alls, O.max_samples + (size_t)nworkers))
			die("out of memory for latency samples");
	for (int i = 0; i < nworkers; i++) {
		struct worker *w = &W[i];

		sent += w->sent;
		receipts += w->receipts;
		errors += w->errors;
		busy += w->busy;
		okw += w->ok_in_window;
		lost += w->lost;
		caps += w->cap_hits;
		if (w->max_lag_ns > lag)
			lag = w->max_lag_ns;
		if (w->first_error_code && !first_code) {
			first_code = w->first_error_code;
			first_err = w->first_error;
		}
		memcpy(all.v + all.n, w->lat.v, w->lat.n * sizeof(uint32_t));
		all.n += w->lat.n;
		all.dropped += w->lat.dropped;
		if (O.rate > 0) {
			memcpy(alls.v + alls.n, w->lat_sched.v, w->lat_sched.n * sizeof(uint32_t));
			alls.n += w->lat_sched.n;
		}
	}
	qsort(all.v, all.n, sizeof(uint32_t), cmp_u32);
	if (O.rate > 0)
		qsort(alls.v, alls.n, sizeof(uint32_t), cmp_u32);
	if (O.subscribe) {
		if (lat_init(&sublat, S.n + 1))
			die("out of memory for latency samples");
		for (size_t i = 0; i < S.n; i++) {
			unsigned wi = (unsigned)(S.tag[i] >> 56);
			uint64_t k = S.tag[i] & 0x00FFFFFFFFFFFFFFull, ts;

			if (wi >= (unsigned)nworkers || k >= W[wi].tag_cap)
				continue;
			ts = W[wi].tsend_by_tag[k];
			if (ts && S.t_deliv[i] > ts)
				lat_add(&sublat, S.t_deliv[i] - ts);
		}
		qsort(sublat.v, sublat.n, sizeof(uint32_t), cmp_u32);
	}
	if (first_code)
		fprintf(stderr, "loadgen: first error %d: %s\n", first_code, first_err);
	printf("{\"mode\":\"%s\",\"conns\":%d,\"threads\":%d,\"batch\":%d,\"window\":%d,"
	       "\"size\":%d,\"duration\":%.1f,"
	       "\"offered\":%.0f,\"achieved_tps\":%.0f,\"sent\":%" PRIu64 ",\"receipts\":%" PRIu64
	       ",\"errors\":%" PRIu64 ",\"busy\":%" PRIu64 ",\"lost\":%" PRIu64
	       ",\"p50_us\":%u,\"p90_us\":%u,\"p99_us\":%u,\"p999_us\":%u,\"max_us\":%u",
	       O.rate > 0 ? "open" : "closed", O.conns, O.threads, O.batch, O.window, O.size,
	       O.duration, O.rate, (double)okw / O.duration, sent, receipts, errors, busy, lost,
	       pct(&all, 50), pct(&all, 90), pct(&all, 99), pct(&all, 99.9),
	       all.n ? all.v[all.n - 1] : 0);
	if (O.rate > 0)
		printf(",\"cap_hits\":%" PRIu64 ",\"max_inflight\":%ld,\"max_send_lag_us\":%" PRIu64
		       ",\"sched_p99_us\":%u,\"sched_p999_us\":%u",
		       caps, O.max_inflight, lag / 1000, pct(&alls, 99), pct(&alls, 99.9));
	if (O.subscribe)
		printf(",\"deliver_level\":\"%s\"", O.deliver);
	if (O.subscribe)
		printf(",\"blocks\":%" PRIu64 ",\"delivered\":%zu,\"deliv_p50_us\":%u,"
		       "\"deliv_p99_us\":%u,\"deliv_max_us\":%u",
		       S.blocks, sublat.n, pct(&sublat, 50), pct(&sublat, 99),
		       sublat.n ? sublat.v[sublat.n - 1] : 0);
	/* The latency distribution at fixed percentiles, for plots (tests/bench/plot.py). */
	{
		static const double ps[] = {1, 5, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.99};

		printf(",\"lat_pcts_us\":[");
		for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++)
			printf("%s[%g,%u]", i ? "," : "", ps[i], pct(&all, ps[i]));
		printf("]");
	}
	printf(",\"samples_dropped\":%zu,\"loadgen_cpu_pct\":%.0f,\"loadgen_runq_pct\":%.0f",
	       all.dropped, 100.0 * (c1 - c0) / O.duration,
	       q1 > q0 ? 100.0 * (double)(q1 - q0) / 1e9 / O.duration : 0.0);
	if (O.daemon_pid)
		printf(",\"daemon_cpu_pct\":%.0f",
		       100.0 * (double)(d1 - d0) / (double)sysconf(_SC_CLK_TCK) / O.duration);
	printf("}\n");
	free(all.v);
	free(alls.v);
	free(sublat.v);
	return 0;
}
