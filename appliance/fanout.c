/*
 * fanout.c - the copies of a live block written to subscribers' sockets, by
 * the lws thread and, for a large fan-out, by helper threads (mz-fanout).
 *
 * Why helpers: on loopback a send(2) of a ~14 KB block costs ~9 us of CPU,
 * most of it the receiver's TCP input and wake-up, run inside the sender's
 * call (docs/BENCHMARKS.md, the feed's floor). 1,000 copies from one
 * thread are most of the feed's p99; split over two threads the same loop
 * takes about two thirds as long (tests/bench/sendfloor.c --senders 2).
 *
 * Ownership (STYLE.md 14: one thread owns lws). A helper never calls lws
 * and never touches a connection's state: it gets copies, each a socket,
 * the bytes to write and a field for the result. The lws thread picks the
 * connections it may write directly (plain WebSocket, nothing queued,
 * nothing left buffered by lws: feed.c), lends their sockets for the
 * duration of app_fanout_send and waits there until every helper is done;
 * lws does not run meanwhile, so nothing else writes to those sockets.
 * Back on the lws thread, feed.c reads the results: a short write's rest
 * goes to lws (LWS_WRITE_RAW), which sends it before anything else on that
 * socket, and a copy left unwritten is queued like any other message.
 *
 * Each copy is one whole WebSocket frame, written with one sendmsg: the
 * copy's own header, head and subscription id, then the view's shared
 * tail. All copies of one connection go to one thread, in order, and after
 * a short or failed write the rest of that connection's copies are left
 * unwritten (sent = 0), so frames never interleave or overtake.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "appliance/server.h"

/* Fewer copies than this are written by the lws thread alone: waking a
 * helper costs more than it saves. */
#define FAN_SPLIT_MIN 64

struct fan_helper {
	struct app_fanout *f;
	pthread_t thread;
	size_t from, to; /* the copies of the current round */
};

struct app_fanout {
	pthread_mutex_t mu;
	pthread_cond_t go, done;
	struct app_fan_copy *cp;
	uint64_t round;
	int busy, stop, n;
	struct fan_helper h[APP_FANOUT_MAX_THREADS - 1];
};

/* Write copies [from, to) in order; see the top of the file. */
static void send_range(struct app_fan_copy *cp, size_t from, size_t to)
{
	for (size_t i = from; i < to; i++) {
		struct app_fan_copy *x = &cp[i];
		struct iovec iov[2] = {{x->pre, x->pre_len}, {(void *)x->tail, x->tail_len}};
		struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
		size_t want = APP_FAULT_FANOUT_CAP(app_fan_copy_len(x));
		ssize_t n;

		if (i > from && cp[i - 1].c == x->c &&
		    cp[i - 1].sent != (ssize_t)app_fan_copy_len(&cp[i - 1])) {
			x->sent = 0; /* behind a short write: queued by feed.c */
			continue;
		}
		if (want < x->pre_len) {
			iov[0].iov_len = want;
			mh.msg_iovlen = 1;
		} else {
			iov[1].iov_len = want - x->pre_len;
		}
		n = 0;
		if (want > 0)
			do
				n = sendmsg(x->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
			while (n < 0 && errno == EINTR);
		if (n < 0)
			x->sent = errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
		else
			x->sent = n;
	}
}

static void *helper_run(void *arg)
{
	struct fan_helper *h = arg;
	struct app_fanout *f = h->f;
	uint64_t seen = 0;

	pthread_setname_np(pthread_self(), "mz-fanout");
	pthread_mutex_lock(&f->mu);
	for (;;) {
		while (!f->stop && f->round == seen)
			pthread_cond_wait(&f->go, &f->mu);
		if (f->stop)
			break;
		seen = f->round;
		pthread_mutex_unlock(&f->mu);
		send_range(f->cp, h->from, h->to);
		pthread_mutex_lock(&f->mu);
		if (--f->busy == 0)
			pthread_cond_signal(&f->done);
	}
	pthread_mutex_unlock(&f->mu);
	return NULL;
}

int app_fanout_start(struct app_fanout **out, int threads)
{
	struct app_fanout *f;
	int rc = 0;

	*out = NULL;
	if (threads <= 1)
		return 0;
	if (threads > APP_FANOUT_MAX_THREADS)
		threads = APP_FANOUT_MAX_THREADS;
	f = calloc(1, sizeof(*f));
	if (!f)
		return APP_ENOMEM;
	pthread_mutex_init(&f->mu, NULL);
	pthread_cond_init(&f->go, NULL);
	pthread_cond_init(&f->done, NULL);
	for (int i = 0; i < threads - 1; i++) {
		f->h[i].f = f;
		rc = pthread_create(&f->h[i].thread, NULL, helper_run, &f->h[i]);
		if (rc) {
			rc = -rc;
			break;
		}
		f->n++;
	}
	if (rc) {
		app_fanout_stop(f);
		return rc;
	}
	*out = f;
	return 0;
}

void app_fanout_stop(struct app_fanout *f)
{
	if (!f)
		return;
	pthread_mutex_lock(&f->mu);
	f->stop = 1;
	pthread_cond_broadcast(&f->go);
	pthread_mutex_unlock(&f->mu);
	for (int i = 0; i < f->n; i++)
		pthread_join(f->h[i].thread, NULL);
	pthread_cond_destroy(&f->go);
	pthread_cond_destroy(&f->done);
	pthread_mutex_destroy(&f->mu);
	free(f);
}

/* Where part i of n copies in `parts` parts ends: n * i / parts, moved on
 * past the copies of the connection it falls in, so that a connection's
 * copies stay with one thread. Nondecreasing in i; n at i == parts. */
static size_t part_end(const struct app_fan_copy *cp, size_t n, int i, int parts)
{
	size_t e = n * (size_t)i / (size_t)parts;

	while (e > 0 && e < n && cp[e].c == cp[e - 1].c)
		e++;
	return e;
}

size_t app_fanout_send(struct app_fanout *f, struct app_fan_copy *cp, size_t n)
{
	size_t mine, lent = 0;

	if (!f || n < FAN_SPLIT_MIN) {
		send_range(cp, 0, n);
		return 0;
	}
	mine = part_end(cp, n, 1, f->n + 1);
	pthread_mutex_lock(&f->mu);
	f->cp = cp;
	for (int i = 0; i < f->n; i++) {
		f->h[i].from = part_end(cp, n, i + 1, f->n + 1);
		f->h[i].to = part_end(cp, n, i + 2, f->n + 1);
		lent += f->h[i].to - f->h[i].from;
	}
	f->busy = f->n;
	f->round++;
	pthread_cond_broadcast(&f->go);
	pthread_mutex_unlock(&f->mu);
	send_range(cp, 0, mine);
	pthread_mutex_lock(&f->mu);
	while (f->busy)
		pthread_cond_wait(&f->done, &f->mu);
	f->cp = NULL;
	pthread_mutex_unlock(&f->mu);
	return lent;
}
