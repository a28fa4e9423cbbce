/*
 * benchlat.h - what every load generator under tests/bench/ shares: a
 * monotonic clock, a small PRNG, and latency samples (preallocated arrays of
 * microseconds; percentiles after sorting). Header-only: each benchmark is
 * one C file linked alone.
 */
#ifndef MEZZ_BENCHLAT_H
#define MEZZ_BENCHLAT_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

/* A latency sample array, preallocated; samples past cap are counted, not kept. */
struct lat {
	uint32_t *v;
	size_t n, cap, dropped;
};

static inline uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1Dull;
}

/* -1 when out of memory. */
static inline int lat_init(struct lat *l, size_t cap)
{
	l->v = malloc((cap ? cap : 1) * sizeof(*l->v));
	l->n = l->dropped = 0;
	l->cap = l->v ? cap : 0;
	return l->v ? 0 : -1;
}

static inline void lat_add(struct lat *l, uint64_t ns)
{
	uint64_t us = ns / 1000;

	if (l->n == l->cap) {
		l->dropped++;
		return;
	}
	l->v[l->n++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static inline int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

static inline void lat_sort(struct lat *l)
{
	qsort(l->v, l->n, sizeof(*l->v), cmp_u32);
}

/* The p-th percentile of sorted samples (0 when empty). */
static inline uint32_t pct(const struct lat *l, double p)
{
	size_t i;

	if (!l->n)
		return 0;
	i = (size_t)(p / 100.0 * (double)l->n);
	if (i >= l->n)
		i = l->n - 1;
	return l->v[i];
}

/* utime + stime, in clock ticks, of a /proc/PID/stat or /proc/PID/task/TID/stat
 * file; 0 if unreadable. */
static inline uint64_t stat_cpu_ticks(const char *path)
{
	char buf[2048], *p;
	unsigned long ut = 0, st = 0;
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut,
			 &st) != 2)
		return 0;
	return ut + st;
}

/* User + system CPU ticks of a process, 0 if unreadable. */
static inline uint64_t proc_cpu_ticks(long pid)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	return stat_cpu_ticks(path);
}

/* Split ws://HOST:PORT[/PATH] (path defaults to "/"). Returns NULL, or what
 * is wrong with the URL. */
static inline const char *ws_url_parse(const char *u, char *host, size_t hostlen, int *port,
				       char *path, size_t pathlen)
{
	const char *p, *slash;
	char hostport[300];

	if (strncmp(u, "ws://", 5))
		return "--url must start with ws://";
	p = u + 5;
	slash = strchr(p, '/');
	snprintf(hostport, sizeof(hostport), "%.*s", (int)(slash ? slash - p : (long)strlen(p)), p);
	snprintf(path, pathlen, "%s", slash ? slash : "/");
	p = strrchr(hostport, ':');
	if (!p)
		return "--url needs a port";
	*port = atoi(p + 1);
	snprintf(host, hostlen, "%.*s", (int)(p - hostport), hostport);
	return NULL;
}

/* CPU seconds (user + system) this process has used. */
static inline double self_cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/*
 * Every JSON-RPC answer in p[0..n) as mezzanine writes them ("id":N first,
 * then "result" or "error":{"code":C,"message":"..."}), in order:
 * fn(ctx, id, is_err, code, msg, msglen). An answer with "id":null (a
 * request the daemon could not read) comes as id 0, is_err 1, code 0.
 */
typedef void (*answer_fn)(void *ctx, uint64_t id, int is_err, int code, const char *msg,
			  size_t msglen);

static inline void scan_answers(const char *p, size_t n, answer_fn fn, void *ctx)
{
	const char *end = p + n;

	while (p < end && (p = memmem(p, (size_t)(end - p), "\"id\":", 5))) {
		uint64_t id = 0;
		const char *q = p + 5;

		while (q < end && *q >= '0' && *q <= '9')
			id = id * 10 + (uint64_t)(*q++ - '0');
		if (q == p + 5) {
			fn(ctx, 0, 1, 0, NULL, 0);
			p = q;
			continue;
		}
		p = q;
		if ((size_t)(end - p) > 17 && !memcmp(p, ",\"error\":{\"code\":", 17)) {
			char *ce;
			int code = (int)strtol(p + 17, &ce, 10);
			const char *m = memmem(ce, (size_t)(end - ce), "\"message\":\"", 11), *me;

			m = m ? m + 11 : ce;
			me = memchr(m, '"', (size_t)(end - m));
			fn(ctx, id, 1, code, m, me ? (size_t)(me - m) : 0);
			p = ce;
		} else {
			fn(ctx, id, 0, 0, NULL, 0);
		}
	}
}

/* The 8-byte big-endian tag at the start of a payload, from its lowercase hex. */
static inline uint64_t tag_from_hex(const char *h)
{
	uint64_t tag = 0;

	for (int k = 0; k < 16; k++)
		tag = tag << 4 | (uint64_t)(h[k] <= '9' ? h[k] - '0' : h[k] - 'a' + 10);
	return tag;
}

#endif
