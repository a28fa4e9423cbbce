/*
 * rawws.h - the raw RFC 6455 client that the benchmarks speaking to
 * mezzanine share (peerload, fanout): growable byte buffers, masked frames
 * out, whole frames in, and the HTTP upgrade of a blocking socket.
 * Header-only, as benchlat.h: each benchmark is one C file linked alone.
 *
 * It is no general WebSocket client. The daemon sends every message as one
 * unmasked frame (no fragments, no extensions), and this client sends only
 * whole masked frames. Nothing here keeps state between calls: the masking
 * keys come from the caller's xorshift state, so threads share none.
 *
 * Errors: the socket helpers return 0 (or a byte count) on success and
 * -errno on failure. Only buf_room exits, when memory runs out: these are
 * benchmark tools, and a run without memory has no result to give.
 */
#ifndef MEZZ_RAWWS_H
#define MEZZ_RAWWS_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "benchlat.h"

/* A byte buffer owned by one connection: p[off..n) is unconsumed (receive)
 * or unwritten (send). p is malloc'd by buf_room; the owner frees it. */
struct buf {
	char *p;
	size_t n, off, cap; /* bytes held, bytes consumed (or written), allocated */
};

/* Make room for len more bytes (and a terminating NUL); the returned pointer
 * is p + n, valid until the next buf_room. Exits when out of memory. */
static inline char *buf_room(struct buf *b, size_t len)
{
	if (b->n + len + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 65536;
		char *nb;

		while (cap < b->n + len + 1)
			cap *= 2;
		nb = realloc(b->p, cap);
		if (!nb) {
			fprintf(stderr, "out of memory for a socket buffer\n");
			exit(2);
		}
		b->p = nb;
		b->cap = cap;
	}
	return b->p + b->n;
}

static inline void buf_put(struct buf *b, const void *p, size_t len)
{
	memcpy(buf_room(b, len), p, len);
	b->n += len;
}

/* Drop the consumed prefix of a receive buffer. */
static inline void buf_compact(struct buf *b)
{
	if (!b->off)
		return;
	memmove(b->p, b->p + b->off, b->n - b->off);
	b->n -= b->off;
	b->off = 0;
}

/* Write what b holds to a non-blocking socket as far as it takes it; an
 * emptied buffer is reset. 0 (all written, or the socket is full), or
 * -errno (-EPIPE when the peer closed). */
static inline int buf_send(int fd, struct buf *b)
{
	while (b->off < b->n) {
		ssize_t w = write(fd, b->p + b->off, b->n - b->off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (w <= 0)
			return w < 0 ? -errno : -EPIPE;
		b->off += (size_t)w;
	}
	b->off = b->n = 0;
	return 0;
}

/* Write all n bytes to a blocking socket: 0, or -errno. */
static inline int ws_write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		if (!w)
			return -EIO;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* One read of up to 64 KiB into b, which stays NUL-terminated: the byte
 * count, 0 at EOF, or -errno (-EAGAIN when SO_RCVTIMEO ran out). */
static inline ssize_t ws_read_more(int fd, struct buf *b)
{
	ssize_t r;

	buf_room(b, 65536);
	r = read(fd, b->p + b->n, b->cap - b->n - 1);
	if (r < 0)
		return -errno;
	b->n += (size_t)r;
	b->p[b->n] = 0;
	return r;
}

/* Append one masked frame (FIN, opcode op) carrying len bytes of payload;
 * the masking key is drawn from *rng. */
static inline void ws_put(struct buf *b, uint64_t *rng, int op, const char *payload, size_t len)
{
	unsigned char *h = (unsigned char *)buf_room(b, len + 14), *m;
	uint64_t r = xorshift(rng);
	size_t hl = 2;

	h[0] = (unsigned char)(0x80 | op);
	if (len < 126) {
		h[1] = (unsigned char)(0x80 | len);
	} else if (len < 65536) {
		h[1] = 0x80 | 126;
		h[2] = (unsigned char)(len >> 8);
		h[3] = (unsigned char)len;
		hl = 4;
	} else {
		h[1] = 0x80 | 127;
		for (int i = 0; i < 8; i++)
			h[2 + i] = (unsigned char)(len >> (56 - 8 * i));
		hl = 10;
	}
	memcpy(h + hl, &r, 4); /* the masking key */
	m = h + hl + 4;
	for (size_t i = 0; i < len; i++)
		m[i] = (unsigned char)payload[i] ^ h[hl + (i & 3)];
	b->n += hl + 4 + len;
}

/*
 * The next whole frame of b from b->off: 1 with its opcode and payload (and
 * b->off moved past it; *pl points into b and stays valid until the next
 * buf_room or buf_compact), 0 when b does not hold all of it yet, -1 when it
 * is not a frame this client expects (masked, or a fragment: the daemon
 * sends every message as one frame).
 */
static inline int ws_next(struct buf *b, int *op, const char **pl, size_t *len)
{
	const unsigned char *p = (const unsigned char *)b->p + b->off;
	size_t avail = b->n - b->off, hl = 2, l;

	if (avail < 2)
		return 0;
	if ((p[1] & 0x80) || !(p[0] & 0x80))
		return -1;
	l = p[1] & 0x7f;
	if (l == 126) {
		if (avail < 4)
			return 0;
		l = (size_t)p[2] << 8 | p[3];
		hl = 4;
	} else if (l == 127) {
		if (avail < 10)
			return 0;
		l = 0;
		for (int i = 2; i < 10; i++)
			l = l << 8 | p[i];
		hl = 10;
	}
	if (avail - hl < l)
		return 0;
	*op = p[0] & 0x0f;
	*pl = (const char *)p + hl;
	*len = l;
	b->off += hl + l;
	return 1;
}

/*
 * Upgrade a fresh, blocking connection to a WebSocket on path (the answer's
 * Sec-WebSocket-Accept is not checked: the peer is our own daemon). On
 * success rx holds whatever followed the answer's head. Returns 0; -EAGAIN
 * when no answer came within the socket's SO_RCVTIMEO; -EPROTO when the
 * answer is not 101 (rx->p, NUL-terminated, holds it); -ECONNRESET when the
 * peer closed first; another -errno from a read or write.
 */
static inline int ws_upgrade(int fd, struct buf *rx, const char *host, int port, const char *path)
{
	char req[640], *end;
	int n = snprintf(req, sizeof(req),
			 "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
			 "Connection: Upgrade\r\nSec-WebSocket-Key: cGVlcmxvYWRwZWVybG9hZA==\r\n"
			 "Sec-WebSocket-Version: 13\r\n\r\n",
			 path, host, port);
	int rc;

	if (n < 0 || (size_t)n >= sizeof(req))
		return -ENAMETOOLONG;
	if ((rc = ws_write_all(fd, req, (size_t)n)))
		return rc;
	buf_room(rx, 1);
	rx->p[rx->n] = 0;
	while (!(end = strstr(rx->p, "\r\n\r\n"))) {
		ssize_t r = ws_read_more(fd, rx);

		if (r == -EINTR)
			continue;
		if (r == -EWOULDBLOCK)
			return -EAGAIN;
		if (r <= 0)
			return r ? (int)r : -ECONNRESET;
	}
	if (strncmp(rx->p, "HTTP/1.1 101", 12))
		return -EPROTO;
	rx->off = (size_t)(end + 4 - rx->p);
	buf_compact(rx);
	return 0;
}

#endif
