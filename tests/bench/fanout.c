/*
 * fanout: many block-feed subscribers against one mezzanine daemon.
 *
 * N WebSocket connections (--subs, default 1000) are spread over a few
 * worker threads (--threads); each worker owns one epoll loop over its share
 * of non-blocking sockets and speaks raw RFC 6455 frames (rawws.h), so the
 * client costs little of the CPU it shares with the daemon it measures.
 * Nothing is shared while the run goes except a few atomic counters and
 * flags; results are merged after pthread_join. Every connection sends one
 * mezz_subscribe for sealed blocks of one namespace (--namespace,
 * "levels": ["sealed"]) and records, for every block, when the last byte of
 * its message arrived (CLOCK_REALTIME, microseconds, read right after the
 * read() that completed the frame).
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
 * subscription is confirmed (their socket leaves the worker's epoll set, and
 * what is already buffered stays unparsed), so their queue in the daemon
 * fills until the daemon drops them. After the load ends they read again, to
 * see the close frame (code, reason) the daemon sent.
 *
 * One connection's life (struct fconn), each step in its worker thread:
 *
 *   conn_open (blocking: connect, upgrade, send mezz_subscribe)
 *      | fails: FAILED (counted in n_failed, closed)
 *      v
 *   SUBSCRIBING --answer "0x.."--> LIVE --close frame, EOF, error--> CLOSED
 *      |                            ^
 *      | answer, when slow          | resume_slow (after the load)
 *      v                            |
 *   PAUSED (not in the epoll set) --+
 *
 *   transition                 function
 *   open, or FAILED            worker_run -> conn_open, conn_fail
 *   SUBSCRIBING -> LIVE/PAUSED on_message
 *   PAUSED -> LIVE             worker_resume
 *   LIVE -> CLOSED             on_close_frame, conn_close
 *
 * Load: everything after "--" is a command run (posix_spawnp) once every
 * subscriber is subscribed, e.g. the peerload binary; the measured window is
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
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "benchlat.h"
#include "rawws.h"

#define MAX_WORKERS 64
#define HEAD_MAX    512   /* bytes of a message searched for its method, height, timeMs */
#define RX_CHUNK    16384 /* free room asked for before each read */
#define POLL_MS     50    /* how often a worker looks at the stop and resume flags */

extern char **environ;

struct opts {
	char host[256], path[256];
	int port;
	struct sockaddr_storage sa; /* host:port, resolved once */
	socklen_t salen;
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

/* One subscriber connection: owned by its worker thread until joined. */
struct fconn {
	struct worker *w;
	int fd; /* -1 once closed */
	uint32_t idx;
	int slow;
	int subscribed, closed, failed, paused;
	uint32_t events; /* what the epoll set watches for it; 0: not in the set */
	int close_code;	 /* from the daemon's close frame, 0 if none seen */
	char close_reason[128];
	int64_t t_closed_us;
	struct buf rx, tx; /* unparsed bytes; unsent frames (pongs, the close reply) */
	uint64_t blocks, last_height, gaps, dups;
};

struct worker {
	pthread_t thread;
	int epfd;
	uint64_t rng; /* masking keys of this worker's frames */
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

/* One complete text message of len bytes, whose last byte arrived at t: the
 * subscription's answer or a block. Only its first HEAD_MAX bytes are read. */
static void on_message(struct fconn *c, const char *msg, size_t len, int64_t t)
{
	struct worker *w = c->w;
	const char *h = msg;
	size_t n = len < HEAD_MAX ? len : HEAD_MAX;
	int64_t height, tms;

	if (!memmem(h, n, "\"method\":\"mezz_subscription\"", 28)) {
		if (memmem(h, n, "\"result\":\"0x", 12) && !c->subscribed) {
			c->subscribed = 1;
			atomic_fetch_add(&n_subscribed, 1);
			/* A slow subscriber stops reading here: its queue fills. */
			if (c->slow && !atomic_load(&resume_slow))
				c->paused = 1;
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
			fprintf(stderr, "fanout: odd message (%zu bytes): %.*s\n", len,
				(int)(n > 300 ? 300 : n), h);
		w->bad_msgs++;
		return;
	}
	/* A height not above the last is counted, not recorded. The lws 4.1
	 * client this tool used before handed some messages over twice once
	 * the daemon had pinged it; the raw frames here should never repeat
	 * one, and "dups" says whether they do. */
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
					  (uint32_t)(len > UINT32_MAX ? UINT32_MAX : len)};
}

/* Make the epoll set watch what c needs now: nothing once closed or while
 * paused, else input, and output while frames wait to be sent. */
static void conn_watch(struct fconn *c)
{
	uint32_t want = c->closed || c->paused ? 0 : EPOLLIN | (c->tx.n > c->tx.off ? EPOLLOUT : 0);
	struct epoll_event ev = {.events = want, .data.ptr = c};
	int op = !c->events ? EPOLL_CTL_ADD : !want ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;

	if (want == c->events)
		return;
	if (epoll_ctl(c->w->epfd, op, c->fd, &ev)) {
		/* Should not happen: the descriptor is ours and open. */
		fprintf(stderr, "fanout: epoll_ctl: %s\n", strerror(errno));
		abort();
	}
	c->events = want;
}

/* LIVE (or PAUSED) -> CLOSED: the socket leaves the epoll set and closes. */
static void conn_close(struct fconn *c)
{
	if (c->closed)
		return;
	c->closed = 1;
	conn_watch(c);
	close(c->fd);
	c->fd = -1;
	c->t_closed_us = real_us();
	if (c->slow)
		atomic_fetch_add(&n_slow_closed, 1);
}

/* Write what c->tx holds as far as the socket takes it. */
static void flush(struct fconn *c)
{
	if (buf_send(c->fd, &c->tx)) {
		conn_close(c);
		return;
	}
	conn_watch(c);
}

/* The daemon's close frame: keep its code and reason, answer it (best
 * effort: the daemon closes right after sending it) and close. */
static void on_close_frame(struct fconn *c, const char *pl, size_t len)
{
	if (len >= 2) {
		const unsigned char *p = (const unsigned char *)pl;
		size_t rl = len - 2 < sizeof(c->close_reason) - 1 ? len - 2
								  : sizeof(c->close_reason) - 1;

		c->close_code = p[0] << 8 | p[1];
		memcpy(c->close_reason, p + 2, rl);
		c->close_reason[rl] = 0;
	}
	ws_put(&c->tx, &c->w->rng, 0x8, pl, len >= 2 ? 2 : 0);
	flush(c);
	conn_close(c);
}

/* Every whole frame c->rx holds, until c pauses or closes; t is when the
 * read that completed them returned. */
static void conn_frames(struct fconn *c, int64_t t)
{
	const char *pl;
	size_t len;
	int op, k = 0;

	while (!c->paused && !c->closed && (k = ws_next(&c->rx, &op, &pl, &len)) == 1) {
		switch (op) {
		case 0x1: on_message(c, pl, len, t); break;
		case 0x8: on_close_frame(c, pl, len); break;
		case 0x9: ws_put(&c->tx, &c->w->rng, 0xA, pl, len); break;
		case 0xA: break;
		default: c->w->bad_msgs++; break;
		}
	}
	if (k < 0) {
		c->w->bad_msgs++;
		fprintf(stderr, "fanout: conn %u: a fragmented or masked frame; closing it\n",
			c->idx);
		conn_close(c);
	}
}

static void on_readable(struct fconn *c)
{
	for (;;) {
		size_t room;
		ssize_t r;

		buf_room(&c->rx, RX_CHUNK);
		room = c->rx.cap - c->rx.n - 1;
		r = read(c->fd, c->rx.p + c->rx.n, room);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (r <= 0) {
			conn_close(c);
			return;
		}
		c->rx.n += (size_t)r;
		conn_frames(c, real_us());
		/* A short read emptied the socket: the epoll set (level
		 * triggered) reports it again when more comes. */
		if (c->closed || c->paused || (size_t)r < room)
			break;
	}
	if (c->closed)
		return;
	buf_compact(&c->rx);
	flush(c);
}

/* Connect, upgrade and subscribe, blocking (at most 5 s per read). Returns
 * 0 with c->fd non-blocking, or -errno (-EPROTO: the upgrade was refused). */
static int conn_open(struct fconn *c)
{
	struct timeval tv = {5, 0};
	int one = 1, small = 4096, n, rc;
	char req[512];

	c->fd = socket(O.sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -errno;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	/* A slow subscriber's receive buffer is pinned small before any data
	 * flows (and before the handshake fixes the window scale): otherwise
	 * loopback autotuning lets megabytes sit in the kernel before the
	 * daemon's queue grows at all. */
	if (c->slow)
		setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	if (connect(c->fd, (struct sockaddr *)&O.sa, O.salen))
		return -errno;
	if ((rc = ws_upgrade(c->fd, &c->rx, O.host, O.port, O.path)))
		return rc;
	n = snprintf(req, sizeof(req),
		     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"mezz_subscribe\","
		     "\"params\":[\"blocks\",{\"namespaces\":[\"%s\"],\"levels\":[\"sealed\"]}]}",
		     O.ns);
	ws_put(&c->tx, &c->w->rng, 0x1, req, (size_t)n);
	rc = ws_write_all(c->fd, c->tx.p, c->tx.n);
	c->tx.n = 0;
	if (rc)
		return rc;
	if (fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK))
		return -errno;
	return 0;
}

static void conn_fail(struct fconn *c, int rc)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->failed = c->closed = 1;
	c->t_closed_us = real_us();
	atomic_fetch_add(&n_failed, 1);
	if (rc == -EPROTO)
		fprintf(stderr, "fanout: connect failed: upgrade refused: %.60s\n", c->rx.p);
	else
		fprintf(stderr, "fanout: connect failed: %s\n", strerror(-rc));
}

/* PAUSED -> LIVE for every slow subscriber: parse what it holds, read again. */
static void worker_resume(struct worker *w)
{
	for (int i = 0; i < w->nconns; i++) {
		struct fconn *c = &w->conns[i];

		if (!c->paused || c->closed)
			continue;
		c->paused = 0;
		conn_frames(c, real_us());
		if (c->closed)
			continue;
		buf_compact(&c->rx);
		flush(c);
	}
}

static void *worker_run(void *arg)
{
	struct worker *w = arg;
	struct epoll_event evs[256];
	int resumed = 0;

	for (int i = 0; i < w->nconns && !atomic_load(&stop_all); i++) {
		struct fconn *c = &w->conns[i];
		int rc = conn_open(c);

		if (rc) {
			conn_fail(c, rc);
			continue;
		}
		/* Bytes that came with the upgrade's answer (none expected). */
		conn_frames(c, real_us());
		if (c->closed)
			continue;
		buf_compact(&c->rx);
		flush(c);
	}
	while (!atomic_load(&stop_all)) {
		int n = epoll_wait(w->epfd, evs, (int)(sizeof(evs) / sizeof(evs[0])), POLL_MS);

		for (int i = 0; i < n; i++) {
			struct fconn *c = evs[i].data.ptr;

			if (c->closed || c->paused)
				continue;
			if (evs[i].events & EPOLLOUT)
				flush(c);
			if (!c->closed && (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
				on_readable(c);
		}
		if (!resumed && atomic_load(&resume_slow)) {
			resumed = 1;
			worker_resume(w);
		}
	}
	for (int i = 0; i < w->nconns; i++)
		if (w->conns[i].fd >= 0)
			close(w->conns[i].fd);
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

/* The daemon's address, once for every connection. */
static void resolve(void)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
	char port[16];
	int rc;

	snprintf(port, sizeof(port), "%d", O.port);
	if ((rc = getaddrinfo(O.host, port, &hints, &ai))) {
		fprintf(stderr, "fanout: %s: %s\n", O.host, gai_strerror(rc));
		exit(2);
	}
	memcpy(&O.sa, ai->ai_addr, ai->ai_addrlen);
	O.salen = ai->ai_addrlen;
	freeaddrinfo(ai);
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
	resolve();

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
			c->fd = -1;
			c->idx = (uint32_t)(first + k);
			/* Slow ones spread evenly: connection j is slow when the
			 * running count floor(j * F) steps up. */
			c->slow = (int)((double)(c->idx + 1) * O.slow) > (int)((double)c->idx * O.slow);
			nslow += c->slow;
		}
		w->rng = 0x9E3779B97F4A7C15ull ^ ((uint64_t)getpid() << 16) ^ now_ns() ^
			 (uint64_t)(i + 1) * 0xD1B54A32D192ED03ull;
		if ((w->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0)
			die("epoll_create1 failed");
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
		for (int i = 0; i < O.threads; i++)
			pthread_join(W[i].thread, NULL);
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
	/* Each reads what the kernel held, then the close frame (the workers
	 * see the flag within POLL_MS). Wait up to 15 s: with the lws client, at
	 * 1000 subscribers, that took longer than 3 s. */
	for (int i = 0; i < 150 && atomic_load(&n_slow_closed) < nslow; i++)
		sleep_s(0.1);
	atomic_store(&stop_all, 1);
	for (int i = 0; i < O.threads; i++)
		pthread_join(W[i].thread, NULL);

	/* ---- results ---- */
	{
		size_t total = 0, nlat = 0, nspread = 0, dropped = 0;
		uint64_t hmin = UINT64_MAX, hmax = 0, bad = 0, gaps = 0, dups = 0, bytes = 0;
		int64_t *first, *slot_end_us, *lastn, *lat, *spread, *fan;
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
		slot_end_us = calloc(nh, sizeof(int64_t));
		lastn = calloc(nh, sizeof(int64_t));
		lat = malloc((total + 1) * sizeof(int64_t));
		spread = malloc((total + 1) * sizeof(int64_t));
		fan = malloc((nh + 1) * sizeof(int64_t));
		if (!first || !slot_end_us || !lastn || !lat || !spread || !fan)
			die("out of memory");
		for (int i = 0; i < O.threads; i++)
			for (size_t k = 0; k < W[i].nrec; k++) {
				struct rec *r = &W[i].recs[k];
				size_t j = (size_t)(r->height - hmin);

				if (!first[j] || r->t_us < first[j])
					first[j] = r->t_us;
				slot_end_us[j] = (r->slot_ms + O.slot_ms) * 1000;
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
		/* per block: height, its first arrival after the slot end, and its
		 * fan-out (first to last arrival at a normal subscriber) */
		if (getenv("FANOUT_DEBUG"))
			for (size_t j = 0; j < nh; j++)
				if (lastn[j])
					fprintf(stderr,
						"fanout: block %llu first %.2f ms after its slot end, "
						"last %.2f ms after the first\n",
						(unsigned long long)(hmin + j),
						(double)(first[j] - slot_end_us[j]) / 1e3,
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
		free(slot_end_us);
		free(lastn);
		free(lat);
		free(spread);
		free(fan);
	}
	for (int i = 0; i < O.threads; i++) {
		for (int k = 0; k < W[i].nconns; k++) {
			free(W[i].conns[k].rx.p);
			free(W[i].conns[k].tx.p);
		}
		close(W[i].epfd);
		free(W[i].conns);
		free(W[i].recs);
	}
	return 0;
}
