/*
 * sendfloor: what the kernel alone charges for a feed fan-out on this
 * machine, as a floor for tests/bench/fanout.sh to compare the daemon with.
 *
 * --conns N loopback TCP connections (default 1000); the sending ends are
 * set up as the daemon's are (TCP_NODELAY, SO_SNDBUF --sndbuf, non-blocking)
 * and the receiving ends are read by --threads epoll loops, as fanout.c's
 * are. Every --interval-ms one thread writes one --size byte message to
 * every connection, in a plain loop of send(2) calls: no framing, no
 * rendering, no queue, nothing but the system calls a fan-out cannot avoid.
 * --senders S splits each round's connections over S sending threads (what
 * a fan-out on S event-loop threads could at best do; default 1, as the
 * daemon's single lws thread).
 * A receiver notes when the last byte of a round arrived on each
 * connection. Per (round, connection): start of the round to that arrival.
 *
 * The last line on stdout is one JSON object: loop time (first send to last
 * send returned) and delivery p50/p99/max over --rounds rounds, in us, and
 * the first sending thread's CPU time per send(2) call (median round, ns):
 * on loopback a send also runs the receiver's TCP input and its wake-up, so
 * this is most of what a fan-out costs its sending thread per subscriber.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int n_conns = 1000, n_threads = 4, rounds = 20, interval_ms = 250, sndbuf = 32768;
static int n_senders = 1;
static size_t msg_size = 13800;
static int *sfd;
static const char *msg;
static pthread_barrier_t round_go, round_done;

struct rconn {
	int fd;
	size_t got;	   /* bytes of the current round */
	int round;	   /* rounds completed */
	uint64_t *arrive;  /* per round: last byte, ns */
};

static struct rconn *conns;
static atomic_int stop;

/* clk's reading in ns: CLOCK_MONOTONIC for times, CLOCK_THREAD_CPUTIME_ID
 * for the sender's CPU. */
static uint64_t clock_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
	fprintf(stderr, "sendfloor: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void *receiver(void *arg)
{
	int ep = (int)(intptr_t)arg;
	static __thread char buf[1 << 16];
	struct epoll_event ev[64];

	while (!atomic_load(&stop)) {
		int n = epoll_wait(ep, ev, 64, 100);

		for (int i = 0; i < n; i++) {
			struct rconn *c = ev[i].data.ptr;
			ssize_t r;

			while ((r = read(c->fd, buf, sizeof(buf))) > 0) {
				size_t left = (size_t)r;

				while (left) {
					size_t take = msg_size - c->got < left ? msg_size - c->got : left;

					c->got += take;
					left -= take;
					if (c->got == msg_size) {
						if (c->round < rounds)
							c->arrive[c->round] = clock_ns(CLOCK_MONOTONIC);
						c->round++;
						c->got = 0;
					}
				}
			}
		}
	}
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Sender s's share of a round: every n_senders-th connection from s. */
static void send_share(int s)
{
	for (int i = s; i < n_conns; i += n_senders) {
		size_t off = 0;

		while (off < msg_size) { /* a full buffer: wait, as lws would */
			ssize_t w = send(sfd[i], msg + off, msg_size - off, MSG_NOSIGNAL);

			if (w > 0)
				off += (size_t)w;
			else if (w < 0 && errno != EAGAIN)
				die("send");
		}
	}
}

static void *sender(void *arg)
{
	int s = (int)(intptr_t)arg;

	for (int r = 0; r < rounds; r++) {
		pthread_barrier_wait(&round_go);
		send_share(s);
		pthread_barrier_wait(&round_done);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{"conns", required_argument, NULL, 'c'},   {"threads", required_argument, NULL, 't'},
		{"size", required_argument, NULL, 's'},	   {"rounds", required_argument, NULL, 'r'},
		{"interval-ms", required_argument, NULL, 'i'}, {"sndbuf", required_argument, NULL, 'b'},
		{"senders", required_argument, NULL, 'S'},     {NULL, 0, NULL, 0}};
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	int ch, l, *eps, one = 1;
	pthread_t *th, *sth;
	uint64_t *start, *loop, *lat, *cpu;
	char *buf;
	size_t nl = 0;

	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (ch) {
		case 'c': n_conns = atoi(optarg); break;
		case 't': n_threads = atoi(optarg); break;
		case 's': msg_size = (size_t)atol(optarg); break;
		case 'r': rounds = atoi(optarg); break;
		case 'i': interval_ms = atoi(optarg); break;
		case 'b': sndbuf = atoi(optarg); break;
		case 'S': n_senders = atoi(optarg); break;
		default:
			fprintf(stderr, "usage: sendfloor [--conns N] [--threads T] [--size B] "
					"[--rounds R] [--interval-ms MS] [--sndbuf B (0: autotuning)] "
					"[--senders S]\n");
			return 2;
		}
	}
	if (n_conns < 1 || n_threads < 1 || rounds < 1 || msg_size < 1 || interval_ms < 0 ||
	    n_senders < 1 || n_senders > n_conns) {
		fprintf(stderr, "sendfloor: counts and sizes must be positive\n");
		return 2;
	}
	conns = calloc((size_t)n_conns, sizeof(*conns));
	sfd = calloc((size_t)n_conns, sizeof(*sfd));
	eps = calloc((size_t)n_threads, sizeof(*eps));
	th = calloc((size_t)n_threads, sizeof(*th));
	sth = calloc((size_t)n_senders, sizeof(*sth));
	start = calloc((size_t)rounds, sizeof(*start));
	loop = calloc((size_t)rounds, sizeof(*loop));
	lat = calloc((size_t)rounds * (size_t)n_conns, sizeof(*lat));
	cpu = calloc((size_t)rounds, sizeof(*cpu));
	msg = buf = malloc(msg_size);
	if (!conns || !sfd || !eps || !th || !sth || !start || !loop || !lat || !cpu || !buf)
		die("malloc");
	memset(buf, 'x', msg_size);
	l = socket(AF_INET, SOCK_STREAM, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 4096) ||
	    getsockname(l, (struct sockaddr *)&a, &al))
		die("listen");
	for (int t = 0; t < n_threads; t++)
		if ((eps[t] = epoll_create1(0)) < 0)
			die("epoll_create1");
	for (int i = 0; i < n_conns; i++) {
		struct epoll_event ev = {.events = EPOLLIN};
		struct rconn *c = &conns[i];

		c->fd = socket(AF_INET, SOCK_STREAM, 0);
		if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&a, sizeof(a)))
			die("connect");
		sfd[i] = accept(l, NULL, NULL);
		if (sfd[i] < 0)
			die("accept");
		setsockopt(sfd[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (sndbuf > 0)
			setsockopt(sfd[i], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
		fcntl(sfd[i], F_SETFL, O_NONBLOCK);
		fcntl(c->fd, F_SETFL, O_NONBLOCK);
		c->arrive = calloc((size_t)rounds, sizeof(*c->arrive));
		if (!c->arrive)
			die("malloc");
		ev.data.ptr = c;
		if (epoll_ctl(eps[i % n_threads], EPOLL_CTL_ADD, c->fd, &ev))
			die("epoll_ctl");
	}
	for (int t = 0; t < n_threads; t++)
		pthread_create(&th[t], NULL, receiver, (void *)(intptr_t)eps[t]);
	pthread_barrier_init(&round_go, NULL, (unsigned)n_senders);
	pthread_barrier_init(&round_done, NULL, (unsigned)n_senders);
	for (int t = 1; t < n_senders; t++)
		pthread_create(&sth[t], NULL, sender, (void *)(intptr_t)t);
	for (int r = 0; r < rounds; r++) {
		struct timespec gap = {interval_ms / 1000, (long)(interval_ms % 1000) * 1000000L};

		nanosleep(&gap, NULL);
		start[r] = clock_ns(CLOCK_MONOTONIC);
		pthread_barrier_wait(&round_go);
		cpu[r] = clock_ns(CLOCK_THREAD_CPUTIME_ID);
		send_share(0);
		cpu[r] = clock_ns(CLOCK_THREAD_CPUTIME_ID) - cpu[r];
		pthread_barrier_wait(&round_done);
		loop[r] = clock_ns(CLOCK_MONOTONIC) - start[r];
	}
	{ /* let the last round arrive */
		struct timespec gap = {0, 300000000L};

		nanosleep(&gap, NULL);
	}
	atomic_store(&stop, 1);
	for (int t = 0; t < n_threads; t++)
		pthread_join(th[t], NULL);
	for (int t = 1; t < n_senders; t++)
		pthread_join(sth[t], NULL);
	for (int r = 0; r < rounds; r++)
		for (int i = 0; i < n_conns; i++)
			if (conns[i].arrive[r])
				lat[nl++] = conns[i].arrive[r] - start[r];
	if (nl == 0) {
		fprintf(stderr, "sendfloor: nothing arrived\n");
		return 1;
	}
	qsort(lat, nl, sizeof(*lat), cmp_u64);
	qsort(loop, (size_t)rounds, sizeof(*loop), cmp_u64);
	qsort(cpu, (size_t)rounds, sizeof(*cpu), cmp_u64);
	printf("{\"conns\":%d,\"size\":%zu,\"rounds\":%d,\"threads\":%d,\"senders\":%d,\"sndbuf\":%d,"
	       "\"deliveries\":%zu,\"expected\":%zu,\"loop_p50_us\":%llu,\"loop_max_us\":%llu,"
	       "\"lat_p50_us\":%llu,\"lat_p99_us\":%llu,\"lat_max_us\":%llu,"
	       "\"send_cpu_ns\":%llu}\n",
	       n_conns, msg_size, rounds, n_threads, n_senders, sndbuf, nl, (size_t)rounds * (size_t)n_conns,
	       (unsigned long long)(loop[rounds / 2] / 1000),
	       (unsigned long long)(loop[rounds - 1] / 1000),
	       (unsigned long long)(lat[nl / 2] / 1000),
	       (unsigned long long)(lat[nl * 99 / 100] / 1000),
	       (unsigned long long)(lat[nl - 1] / 1000),
	       (unsigned long long)(cpu[rounds / 2] / (uint64_t)((n_conns + n_senders - 1) / n_senders)));
	return 0;
}
