/*
 * fanout: many block-feed subscribers against one mezzanine daemon.
 *
 * N WebSocket connections (--subs, default 1000) are spread over a few
 * worker threads (--threads); each worker owns one lws client context and
 * its share of the connections (STYLE.md rule 14: nothing is shared while
 * the run goes, results are merged after pthread_join). Every connection
 * sends one mezz_subscribe for sealed blocks of one namespace (--namespace,
 * "levels": ["sealed"]) and records, for every block, when the last byte of
 * its message arrived (CLOCK_REALTIME, microseconds).
 *
 * Sealed blocks carry no seal timestamp: header.timeMs is the start of the
 * block's slot, and the block is sealed at the end of that slot. So the
 * report gives
 *   - slot-end-to-delivery: delivery - (timeMs + --slot-ms), which is the
 *     daemon's whole path after the slot closes (seal, store with the next
 *     group's fsync, hand-over to the lws thread) plus the fan-out; both
 *     clocks are this machine's CLOCK_REALTIME;
 *   - spread: delivery - the first delivery of that block to any
 *     subscriber of this process, which is the fan-out alone;
 *   - per block, the time from its first to its last delivery to a normal
 *     subscriber.
 * Percentiles are over (block, normal subscriber) pairs of blocks whose slot
 * ended inside the measured window.
 *
 * A fraction of the subscribers (--slow F) stop reading as soon as their
 * subscription is confirmed (lws_rx_flow_control off), so their queue in
 * the daemon fills until the daemon drops them. After the load ends they
 * read again, to see the close frame (code, reason) the daemon sent.
 *
 * Load: everything after "--" is a command run (posix_spawnp) once every
 * subscriber is subscribed, e.g. the loadgen binary; the measured window is
 * [its start + --warmup, its exit]. Without a command, --duration seconds.
 * With --daemon-pid, the daemon's VmRSS is read before any connection, after
 * all subscribed (an idle second later), and every 250 ms during the load,
 * and its CPU time (whole process and the main, lws thread) is measured over
 * the window.
 *
 * The last line on stdout is one JSON object with the results.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <libwebsockets.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "benchlat.h"

#define MAX_WORKERS 64
#define HEAD_MAX 512

extern char **environ;

struct opts {
	char host[256], path[256];
	int port;
	const char *ns;
	int subs, threads;
	double slow, duration, warmup, drain;
	long slot_ms;
	long daemon_pid;
	const char *load_out;
	char **load_argv;
};

static struct opts O = {
	.ns = "bench", .subs = 1000, .threads = 4, .slow = 0, .duration = 10, .warmup = 1,
	.drain = 1.5, .slot_ms = 250,
};

/* One delivered block on one connection. */
struct rec {
	uint32_t conn;
	uint64_t height;
	int64_t t_us;	  /* arrival of the message's last byte, CLOCK_REALTIME */
	int64_t slot_ms; /* header.timeMs: start of the block's slot */
	uint32_t bytes;
};

struct worker;

struct fconn {
	struct worker *w;
	struct lws *wsi;
	uint32_t idx;
	int slow;
	int subscribed, closed, failed, paused, resumed;
	int close_code; /* from the daemon's close frame, 0 if none seen */
	char close_reason[128];
	int64_t t_closed_us;
	char head[HEAD_MAX]; /* first bytes of the message being received */
	size_t headn, msgn;
	uint64_t blocks, last_height, gaps, dups;
};

struct worker {
	pthread_t thread;
	struct lws_context *ctx;
	struct fconn *conns;
	int nconns;
	struct rec *recs;
	size_t nrec, cap, rec_dropped;
	uint64_t bad_msgs;
};

static struct worker W[MAX_WORKERS];
static atomic_int n_subscribed, n_failed, stop_all, resume_slow, n_slow_closed;

static int64_t real_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void die(const char *why)
{
	fprintf(stderr, "fanout: %s\n", why);
	exit(2);
}

static long rss_kb(long pid)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	if (pid <= 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%ld/status", pid);
	if (!(f = fopen(path, "r")))
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

static void daemon_cpu(uint64_t *proc, uint64_t *main_thread)
{
	char path[96];

	*proc = *main_thread = 0;
	if (O.daemon_pid <= 0)
		return;
	snprintf(path, sizeof(path), "/proc/%ld/stat", O.daemon_pid);
	*proc = stat_cpu_ticks(path);
	snprintf(path, sizeof(path), "/proc/%ld/task/%ld/stat", O.daemon_pid, O.daemon_pid);
	*main_thread = stat_cpu_ticks(path);
}

/* The unsigned integer after `"key":` in s, or -1. */
static int64_t find_u64(const char *s, size_t n, const char *key)
{
	char pat[40];
	const char *p;
	size_t k = (size_t)snprintf(pat, sizeof(pat), "\"%s\":", key);

	p = memmem(s, n, pat, k);
	if (!p || p + k >= s + n || *(p + k) < '0' || *(p + k) > '9')
		return -1;
	return (int64_t)strtoull(p + k, NULL, 10);
}

/* One complete message: the subscription's answer or a block. */
static void on_message(struct fconn *c, int64_t t)
{
	struct worker *w = c->w;
	const char *h = c->head;
	size_t n = c->headn;
	int64_t height, tms;

	if (!memmem(h, n, "\"method\":\"mezz_subscription\"", 28)) {
		if (memmem(h, n, "\"result\":\"0x", 12) && !c->subscribed) {
			c->subscribed = 1;
			atomic_fetch_add(&n_subscribed, 1);
			/* A slow subscriber stops reading here: its queue fills. */
			if (c->slow && !atomic_load(&resume_slow)) {
				lws_rx_flow_control(c->wsi, 0);
				c->paused = 1;
			}
		} else {
			w->bad_msgs++;
			if (!c->subscribed && !c->failed) {
				c->failed = 1;
				atomic_fetch_add(&n_failed, 1);
				fprintf(stderr, "fanout: mezz_subscribe failed: %.*s\n", (int)n, h);
			}
		}
		return;
	}
	height = find_u64(h, n, "height");
	tms = find_u64(h, n, "timeMs");
	if (height < 0 || tms < 0 || !memmem(h, n, "\"level\":\"sealed\"", 16)) {
		if (!w->bad_msgs && getenv("FANOUT_DEBUG"))
			fprintf(stderr, "fanout: odd message (%zu bytes): %.*s\n", c->msgn,
				(int)(n > 300 ? 300 : n), h);
		w->bad_msgs++;
		return;
	}
	/* The lws 4.1 client hands some messages over twice once the daemon
	 * has pinged it (ws_ping_s of client silence; a Python client sees
	 * each height once): a height not above the last is counted, not
	 * recorded. */
	if ((uint64_t)height <= c->last_height) {
		c->dups++;
		return;
	}
	if (c->last_height && (uint64_t)height != c->last_height + 1) {
		if (!c->gaps && getenv("FANOUT_DEBUG"))
			fprintf(stderr, "fanout: conn %u: height %lld after %llu\n", c->idx,
				(long long)height, (unsigned long long)c->last_height);
		c->gaps++;
	}
	c->last_height = (uint64_t)height;
	c->blocks++;
	if (w->nrec == w->cap) {
		w->rec_dropped++;
		return;
	}
	w->recs[w->nrec++] = (struct rec){c->idx, (uint64_t)height, t, tms,
					  (uint32_t)(c->msgn > UINT32_MAX ? UINT32_MAX : c->msgn)};
}

static int cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
	      size_t len)
{
	struct fconn *c = lws_get_opaque_user_data(wsi);
	char req[LWS_PRE + 512];
	int n;

	(void)user;
	if (reason == LWS_CALLBACK_EVENT_WAIT_CANCELLED) {
		/* The main thread asks the slow subscribers to read again. */
		struct worker *w = NULL;

		for (int i = 0; i < O.threads; i++)
			if (W[i].ctx == lws_get_context(wsi))
				w = &W[i];
		if (w && atomic_load(&resume_slow))
			for (int i = 0; i < w->nconns; i++) {
				struct fconn *k = &w->conns[i];

				if (k->paused && !k->resumed && !k->closed && k->wsi) {
					k->resumed = 1;
					lws_rx_flow_control(k->wsi, 1);
				}
			}
		return 0;
	}
	if (!c)
		return lws_callback_http_dummy(wsi, reason, user, in, len);
	switch (reason) {
	case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
		/* A slow subscriber's receive buffer is pinned small before any
		 * data flows: otherwise loopback autotuning lets megabytes sit
		 * in the kernel before the daemon's queue grows at all. */
		if (c->slow) {
			int small = 4096;

			setsockopt(lws_get_socket_fd(wsi), SOL_SOCKET, SO_RCVBUF, &small,
				   sizeof(small));
		}
		break;
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		lws_callback_on_writable(wsi);
		break;
	case LWS_CALLBACK_CLIENT_WRITEABLE:
		n = snprintf(req + LWS_PRE, 512,
			     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"mezz_subscribe\","
			     "\"params\":[\"blocks\",{\"namespaces\":[\"%s\"],\"levels\":[\"sealed\"]}]}",
			     O.ns);
		if (lws_write(wsi, (unsigned char *)req + LWS_PRE, (size_t)n, LWS_WRITE_TEXT) < n)
			return -1;
		break;
	case LWS_CALLBACK_CLIENT_RECEIVE: {
		size_t take;

		if (lws_is_first_fragment(wsi) && !c->msgn)
			c->headn = 0;
		take = len < HEAD_MAX - c->headn ? len : HEAD_MAX - c->headn;
		memcpy(c->head + c->headn, in, take);
		c->headn += take;
		c->msgn += len;
		if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi)) {
			on_message(c, real_us());
			c->headn = c->msgn = 0;
		}
		break;
	}
	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		if (len >= 2) {
			const unsigned char *p = in;
			size_t rl = len - 2 < sizeof(c->close_reason) - 1 ? len - 2
									  : sizeof(c->close_reason) - 1;

			c->close_code = p[0] << 8 | p[1];
			memcpy(c->close_reason, p + 2, rl);
			c->close_reason[rl] = 0;
		}
		break;
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		if (!c->failed) {
			c->failed = 1;
			atomic_fetch_add(&n_failed, 1);
			fprintf(stderr, "fanout: connect failed: %s\n", in ? (char *)in : "?");
		}
		c->closed = 1;
		c->t_closed_us = real_us();
		c->wsi = NULL;
		break;
	case LWS_CALLBACK_CLIENT_CLOSED:
		if (c->slow && !c->closed)
			atomic_fetch_add(&n_slow_closed, 1);
		c->closed = 1;
		c->t_closed_us = real_us();
		c->wsi = NULL;
		break;
	default:
		break;
	}
	return 0;
}

static const struct lws_protocols protocols[] = {
	{"mezz-fanout", cb, 0, 65536, 0, NULL, 0},
	{NULL, NULL, 0, 0, 0, NULL, 0},
};

static struct lws_context *make_context(int nconns)
{
	struct lws_context_creation_info info;

	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = protocols;
	info.gid = -1;
	info.uid = -1;
	info.count_threads = 1;
	info.fd_limit_per_thread = (unsigned)nconns + 16;
	return lws_create_context(&info);
}

static void *worker_run(void *arg)
{
	struct worker *w = arg;

	for (int i = 0; i < w->nconns; i++) {
		struct fconn *c = &w->conns[i];
		struct lws_client_connect_info ci;

		memset(&ci, 0, sizeof(ci));
		ci.context = w->ctx;
		ci.address = O.host;
		ci.port = O.port;
		ci.path = O.path;
		ci.host = O.host;
		ci.origin = O.host;
		ci.opaque_user_data = c;
		ci.local_protocol_name = "mezz-fanout";
		c->wsi = lws_client_connect_via_info(&ci);
		if (!c->wsi && !c->failed) {
			c->failed = c->closed = 1;
			atomic_fetch_add(&n_failed, 1);
		}
	}
	while (!atomic_load(&stop_all))
		if (lws_service(w->ctx, 0) < 0)
			break;
	return NULL;
}

static void sleep_s(double s)
{
	struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};

	while (nanosleep(&ts, &ts) && errno == EINTR && !atomic_load(&stop_all))
		;
}

static void on_signal(int sig)
{
	(void)sig;
	atomic_store(&stop_all, 1);
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

static int64_t pct64(const int64_t *v, size_t n, double p)
{
	size_t i;

	if (!n)
		return 0;
	i = (size_t)(p / 100.0 * (double)n);
	return v[i >= n ? n - 1 : i];
}

static void usage(void)
{
	fprintf(stderr,
		"usage: fanout --url ws://HOST:PORT/ [--namespace NS] [--subs N] [--threads T]\n"
		"              [--slow FRACTION] [--slot-ms MS] [--duration S] [--warmup S]\n"
		"              [--drain S] [--daemon-pid PID] [--load-out FILE] [-- LOAD COMMAND...]\n");
	exit(2);
}

static void parse_url(const char *u)
{
	const char *err = ws_url_parse(u, O.host, sizeof(O.host), &O.port, O.path, sizeof(O.path));

	if (err)
		die(err);
}

/* Start the load command; its stdout goes to --load-out (else /dev/null). */
static pid_t spawn_load(void)
{
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int rc;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, O.load_out ? O.load_out : "/dev/null",
					 O_WRONLY | O_CREAT | O_TRUNC, 0644);
	rc = posix_spawnp(&pid, O.load_argv[0], &fa, NULL, O.load_argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc) {
		fprintf(stderr, "fanout: cannot start %s: %s\n", O.load_argv[0], strerror(rc));
		exit(2);
	}
	return pid;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{"url", 1, 0, 'u'},	 {"namespace", 1, 0, 'n'}, {"subs", 1, 0, 'N'},
		{"threads", 1, 0, 'T'},	 {"slow", 1, 0, 's'},	   {"slot-ms", 1, 0, 'l'},
		{"duration", 1, 0, 'd'}, {"warmup", 1, 0, 'W'},	   {"drain", 1, 0, 'D'},
		{"daemon-pid", 1, 0, 'p'}, {"load-out", 1, 0, 'o'}, {0, 0, 0, 0},
	};
	int ch, have_url = 0, nslow = 0, status = 0;
	struct rlimit rl;
	long rss0, rss1, rss_max = 0, rss_last = 0;
	int64_t t_load0, t_meas0, t_meas1;
	uint64_t d0 = 0, d1 = 0, m0 = 0, m1 = 0;
	double c0, c1;
	pid_t load_pid = 0;
	size_t per_conn_cap;

	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (ch) {
		case 'u': parse_url(optarg); have_url = 1; break;
		case 'n': O.ns = optarg; break;
		case 'N': O.subs = atoi(optarg); break;
		case 'T': O.threads = atoi(optarg); break;
		case 's': O.slow = atof(optarg); break;
		case 'l': O.slot_ms = atol(optarg); break;
		case 'd': O.duration = atof(optarg); break;
		case 'W': O.warmup = atof(optarg); break;
		case 'D': O.drain = atof(optarg); break;
		case 'p': O.daemon_pid = atol(optarg); break;
		case 'o': O.load_out = optarg; break;
		default: usage();
		}
	}
	if (optind < argc)
		O.load_argv = argv + optind;
	if (!have_url || O.subs < 1 || O.threads < 1 || O.threads > MAX_WORKERS ||
	    O.threads > O.subs || O.slow < 0 || O.slow >= 1 || O.slot_ms < 1 ||
	    O.duration <= 0 || O.warmup < 0 || O.drain < 0)
		usage();
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);
	lws_set_log_level(LLL_ERR, NULL);

	/* Every connection is a descriptor: raise the soft limit to the hard one. */
	if (!getrlimit(RLIMIT_NOFILE, &rl)) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)O.subs + 64)
			die("RLIMIT_NOFILE hard limit is below --subs + 64");
	}

	/* Records: every block of the run for every connection, with slack. */
	per_conn_cap = (size_t)((O.duration + O.warmup + O.drain + 60) * 1000.0 /
				(double)O.slot_ms * 1.5) + 16;
	for (int i = 0; i < O.threads; i++) {
		struct worker *w = &W[i];
		int first = O.subs / O.threads * i + (i < O.subs % O.threads ? i : O.subs % O.threads);

		w->nconns = O.subs / O.threads + (i < O.subs % O.threads);
		w->conns = calloc((size_t)w->nconns, sizeof(*w->conns));
		w->cap = per_conn_cap * (size_t)w->nconns;
		w->recs = malloc(w->cap * sizeof(*w->recs));
		if (!w->conns || !w->recs)
			die("out of memory");
		for (int k = 0; k < w->nconns; k++) {
			struct fconn *c = &w->conns[k];

			c->w = w;
			c->idx = (uint32_t)(first + k);
			/* Slow ones spread evenly: connection j is slow when the
			 * running count floor(j * F) steps up. */
			c->slow = (int)((double)(c->idx + 1) * O.slow) > (int)((double)c->idx * O.slow);
			nslow += c->slow;
		}
		if (!(w->ctx = make_context(w->nconns)))
			die("lws_create_context failed");
	}

	rss0 = rss_kb(O.daemon_pid);
	for (int i = 0; i < O.threads; i++)
		if (pthread_create(&W[i].thread, NULL, worker_run, &W[i]))
			die("pthread_create failed");
	{
		int64_t deadline = real_us() + 60 * 1000000LL;

		while (atomic_load(&n_subscribed) + atomic_load(&n_failed) < O.subs &&
		       !atomic_load(&stop_all) && real_us() < deadline)
			sleep_s(0.05);
	}
	if (atomic_load(&n_subscribed) < O.subs) {
		fprintf(stderr, "fanout: only %d of %d subscribed (%d failed)\n",
			atomic_load(&n_subscribed), O.subs, atomic_load(&n_failed));
		atomic_store(&stop_all, 1);
		for (int i = 0; i < O.threads; i++) {
			lws_cancel_service(W[i].ctx);
			pthread_join(W[i].thread, NULL);
		}
		return 1;
	}
	fprintf(stderr, "fanout: %d subscribed (%d slow)\n", O.subs, nslow);
	sleep_s(1.0); /* let the allocations settle before reading RSS */
	rss1 = rss_kb(O.daemon_pid);

	t_load0 = real_us();
	if (O.load_argv)
		load_pid = spawn_load();
	t_meas0 = t_load0 + (int64_t)(O.warmup * 1e6);
	t_meas1 = O.load_argv ? INT64_MAX : t_load0 + (int64_t)((O.warmup + O.duration) * 1e6);
	c0 = self_cpu_s();
	{
		int measuring = 0;

		for (;;) {
			int64_t t = real_us();
			long r;

			if (!measuring && t >= t_meas0) {
				measuring = 1;
				c0 = self_cpu_s();
				daemon_cpu(&d0, &m0);
			}
			if (load_pid && waitpid(load_pid, &status, WNOHANG) == load_pid) {
				load_pid = 0;
				t_meas1 = real_us();
				break;
			}
			if (!O.load_argv && t >= t_meas1)
				break;
			if (atomic_load(&stop_all)) {
				t_meas1 = t;
				break;
			}
			r = rss_kb(O.daemon_pid);
			if (r > rss_max)
				rss_max = r;
			rss_last = r;
			sleep_s(0.25);
		}
		if (!measuring) {
			c0 = self_cpu_s();
			daemon_cpu(&d0, &m0);
			t_meas0 = t_load0;
		}
	}
	c1 = self_cpu_s();
	daemon_cpu(&d1, &m1);
	if (load_pid) {
		kill(load_pid, SIGTERM);
		waitpid(load_pid, &status, 0);
	}
	/* Blocks sealed at the end of the window still travel. */
	sleep_s(O.drain);
	/* Slow subscribers read again to see how the daemon closed them. */
	atomic_store(&resume_slow, 1);
	for (int i = 0; i < O.threads; i++)
		lws_cancel_service(W[i].ctx);
	/* Each reads what the kernel and lws held, then the close frame: at
	 * 1000 subscribers that took longer than 3 s. Wait up to 15 s. */
	for (int i = 0; i < 150 && atomic_load(&n_slow_closed) < nslow; i++)
		sleep_s(0.1);
	atomic_store(&stop_all, 1);
	for (int i = 0; i < O.threads; i++) {
		lws_cancel_service(W[i].ctx);
		pthread_join(W[i].thread, NULL);
	}

	/* ---- results ---- */
	{
		size_t total = 0, nlat = 0, nspread = 0, dropped = 0;
		uint64_t hmin = UINT64_MAX, hmax = 0, bad = 0, gaps = 0, dups = 0, bytes = 0;
		int64_t *first, *lastn, *lat, *spread, *fan;
		size_t nh, nfan = 0, blocks_in_window = 0;
		int slow_closed = 0, slow_1008 = 0, normal_closed = 0, slow_open = 0;
		int64_t slow_close_t_min = 0, slow_close_t_max = 0;
		double secs = (double)(t_meas1 - t_meas0) / 1e6;
		uint64_t deliveries_window = 0, expected_window = 0;
		const char *sample_reason = "";
		long hz = sysconf(_SC_CLK_TCK);

		for (int i = 0; i < O.threads; i++) {
			total += W[i].nrec;
			dropped += W[i].rec_dropped;
			bad += W[i].bad_msgs;
			for (size_t k = 0; k < W[i].nrec; k++) {
				struct rec *r = &W[i].recs[k];

				if (r->height < hmin)
					hmin = r->height;
				if (r->height > hmax)
					hmax = r->height;
			}
			for (int k = 0; k < W[i].nconns; k++) {
				struct fconn *c = &W[i].conns[k];

				gaps += c->slow ? 0 : c->gaps;
				dups += c->dups;
				if (c->slow) {
					if (c->closed) {
						int64_t dt = c->t_closed_us - t_load0;

						slow_closed++;
						if (!slow_close_t_min || dt < slow_close_t_min)
							slow_close_t_min = dt;
						if (dt > slow_close_t_max)
							slow_close_t_max = dt;
					} else
						slow_open++;
					if (c->close_code == 1008) {
						slow_1008++;
						sample_reason = c->close_reason;
					}
				} else if (c->closed)
					normal_closed++;
			}
		}
		if (!total)
			hmin = hmax = 0;
		nh = (size_t)(hmax - hmin + 1);
		first = calloc(nh, sizeof(int64_t));
		lastn = calloc(nh, sizeof(int64_t));
		lat = malloc((total + 1) * sizeof(int64_t));
		spread = malloc((total + 1) * sizeof(int64_t));
		fan = malloc((nh + 1) * sizeof(int64_t));
		if (!first || !lastn || !lat || !spread || !fan)
			die("out of memory");
		for (int i = 0; i < O.threads; i++)
			for (size_t k = 0; k < W[i].nrec; k++) {
				struct rec *r = &W[i].recs[k];
				size_t j = (size_t)(r->height - hmin);

				if (!first[j] || r->t_us < first[j])
					first[j] = r->t_us;
			}
		for (int i = 0; i < O.threads; i++)
			for (size_t k = 0; k < W[i].nrec; k++) {
				struct rec *r = &W[i].recs[k];
				size_t j = (size_t)(r->height - hmin);
				int64_t slot_end = (r->slot_ms + O.slot_ms) * 1000;

				if (W[i].conns[r->conn - W[i].conns[0].idx].slow)
					continue;
				if (slot_end < t_meas0 || slot_end >= t_meas1)
					continue;
				lat[nlat++] = r->t_us - slot_end;
				spread[nspread++] = r->t_us - first[j];
				if (r->t_us > lastn[j])
					lastn[j] = r->t_us;
				bytes += r->bytes;
				deliveries_window++;
			}
		for (size_t j = 0; j < nh; j++)
			if (lastn[j]) {
				fan[nfan++] = lastn[j] - first[j];
				blocks_in_window++;
			}
		expected_window = blocks_in_window * (uint64_t)(O.subs - nslow);
		if (getenv("FANOUT_DEBUG")) /* per block: height, first and last arrival */
			for (size_t j = 0; j < nh; j++)
				if (lastn[j])
					fprintf(stderr, "fanout: block %llu first %.1f ms last %.1f ms\n",
						(unsigned long long)(hmin + j),
						(double)(first[j] - t_meas0) / 1e3,
						(double)(lastn[j] - first[j]) / 1e3);
		qsort(lat, nlat, sizeof(int64_t), cmp_i64);
		qsort(spread, nspread, sizeof(int64_t), cmp_i64);
		qsort(fan, nfan, sizeof(int64_t), cmp_i64);

		fprintf(stderr,
			"fanout: %zu blocks in window, %" PRIu64 " deliveries (expected %" PRIu64
			"), slot-end-to-delivery p50 %.2f ms p99 %.2f ms max %.2f ms; spread p99 %.2f ms;"
			" slow %d: %d closed (%d with 1008), %d still open; normal closed %d\n",
			blocks_in_window, deliveries_window, expected_window,
			(double)pct64(lat, nlat, 50) / 1e3, (double)pct64(lat, nlat, 99) / 1e3,
			nlat ? (double)lat[nlat - 1] / 1e3 : 0.0, (double)pct64(spread, nspread, 99) / 1e3,
			nslow, slow_closed, slow_1008, slow_open, normal_closed);
		if (*sample_reason)
			fprintf(stderr, "fanout: a slow subscriber's close reason: %s\n", sample_reason);
		printf("{\"subs\":%d,\"slow\":%d,\"threads\":%d,\"namespace\":\"%s\",\"window_s\":%.2f,"
		       "\"blocks\":%zu,\"deliveries\":%" PRIu64 ",\"expected\":%" PRIu64
		       ",\"gaps\":%" PRIu64 ",\"dups\":%" PRIu64 ",\"bad_msgs\":%" PRIu64
		       ",\"recs_dropped\":%zu,"
		       "\"bytes_per_delivery\":%.0f,"
		       "\"lat_p50_us\":%" PRId64 ",\"lat_p99_us\":%" PRId64 ",\"lat_max_us\":%" PRId64
		       ",\"spread_p50_us\":%" PRId64 ",\"spread_p99_us\":%" PRId64
		       ",\"spread_max_us\":%" PRId64 ",\"fanout_p50_us\":%" PRId64
		       ",\"fanout_p99_us\":%" PRId64 ",\"fanout_max_us\":%" PRId64
		       ",\"slow_closed\":%d,\"slow_closed_1008\":%d,\"slow_open\":%d"
		       ",\"slow_closed_first_s\":%.2f,\"slow_closed_last_s\":%.2f"
		       ",\"normal_closed\":%d,\"rss0_kb\":%ld,\"rss_subscribed_kb\":%ld"
		       ",\"rss_load_max_kb\":%ld,\"rss_end_kb\":%ld,\"rss_per_sub_bytes\":%.0f"
		       ",\"daemon_cpu_pct\":%.0f,\"daemon_lws_cpu_pct\":%.0f,\"fanout_cpu_pct\":%.0f"
		       ",\"load_exit\":%d}\n",
		       O.subs, nslow, O.threads, O.ns, secs, blocks_in_window, deliveries_window,
		       expected_window, gaps, dups, bad, dropped,
		       deliveries_window ? (double)bytes / (double)deliveries_window : 0.0,
		       pct64(lat, nlat, 50), pct64(lat, nlat, 99), nlat ? lat[nlat - 1] : 0,
		       pct64(spread, nspread, 50), pct64(spread, nspread, 99),
		       nspread ? spread[nspread - 1] : 0, pct64(fan, nfan, 50), pct64(fan, nfan, 99),
		       nfan ? fan[nfan - 1] : 0, slow_closed, slow_1008, slow_open,
		       (double)slow_close_t_min / 1e6, (double)slow_close_t_max / 1e6, normal_closed,
		       rss0, rss1, rss_max, rss_last,
		       rss0 > 0 && rss1 > 0 ? (double)(rss1 - rss0) * 1024.0 / O.subs : 0.0,
		       secs > 0 ? 100.0 * (double)(d1 - d0) / (double)hz / secs : 0.0,
		       secs > 0 ? 100.0 * (double)(m1 - m0) / (double)hz / secs : 0.0,
		       secs > 0 ? 100.0 * (c1 - c0) / secs : 0.0,
		       WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		free(first);
		free(lastn);
		free(lat);
		free(spread);
		free(fan);
	}
	for (int i = 0; i < O.threads; i++) {
		lws_context_destroy(W[i].ctx);
		free(W[i].conns);
		free(W[i].recs);
	}
	return 0;
}
