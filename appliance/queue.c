/*
 * queue.c - the bounded queue between the lws thread and the committer.
 * A ring buffer of fixed-size items under one mutex; pushes are all-or-
 * nothing so a batch from one message is never split.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "appliance/app.h"

uint64_t app_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t app_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000ull + (uint64_t)ts.tv_nsec / 1000000ull;
}

int app_queue_init(struct app_queue *q, size_t item_size, size_t cap)
{
	pthread_condattr_t ca;

	memset(q, 0, sizeof(*q));
	q->buf = calloc(cap, item_size);
	if (!q->buf)
		return APP_ENOMEM;
	q->item_size = item_size;
	q->cap = cap;
	pthread_mutex_init(&q->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&q->cv, &ca);
	pthread_condattr_destroy(&ca);
	return 0;
}

void app_queue_destroy(struct app_queue *q)
{
	if (!q || !q->buf)
		return;
	pthread_mutex_destroy(&q->mu);
	pthread_cond_destroy(&q->cv);
	free(q->buf);
	q->buf = NULL;
}

int app_queue_push(struct app_queue *q, const void *items, size_t n)
{
	const uint8_t *src = items;
	int rc = 0;

	pthread_mutex_lock(&q->mu);
	if (q->closed) {
		rc = APP_ESTOPPED;
	} else if (q->cap - q->len < n) {
		rc = APP_EFULL;
	} else {
		for (size_t i = 0; i < n; i++) {
			size_t slot = (q->head + q->len) % q->cap;

			memcpy(q->buf + slot * q->item_size, src + i * q->item_size,
			       q->item_size);
			q->len++;
		}
		pthread_cond_signal(&q->cv);
	}
	pthread_mutex_unlock(&q->mu);
	return rc;
}

size_t app_queue_pop(struct app_queue *q, void *items, size_t max, uint64_t deadline_ns)
{
	uint8_t *dst = items;
	size_t n = 0;

	pthread_mutex_lock(&q->mu);
	while (q->len == 0 && !q->closed && deadline_ns) {
		struct timespec ts = {.tv_sec = (time_t)(deadline_ns / 1000000000ull),
				      .tv_nsec = (long)(deadline_ns % 1000000000ull)};

		if (pthread_cond_timedwait(&q->cv, &q->mu, &ts) == ETIMEDOUT)
			break;
	}
	while (n < max && q->len > 0) {
		memcpy(dst + n * q->item_size, q->buf + q->head * q->item_size,
		       q->item_size);
		q->head = (q->head + 1) % q->cap;
		q->len--;
		n++;
	}
	pthread_mutex_unlock(&q->mu);
	return n;
}

size_t app_queue_len(struct app_queue *q)
{
	size_t n;

	pthread_mutex_lock(&q->mu);
	n = q->len;
	pthread_mutex_unlock(&q->mu);
	return n;
}

void app_queue_close(struct app_queue *q)
{
	pthread_mutex_lock(&q->mu);
	q->closed = 1;
	pthread_cond_broadcast(&q->cv);
	pthread_mutex_unlock(&q->mu);
}
