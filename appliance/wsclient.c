/*
 * wsclient.c - a minimal, bounded RFC 6455 client for the CLI (mezz tail).
 *
 * Client frames are masked with fresh random keys; server frames must not
 * be. The handshake answer must be "101" with the Sec-WebSocket-Accept that
 * matches our key (SHA-1 of key + GUID, RFC 6455 section 4.2.2). Every
 * length from the wire is checked against its bound before memory is taken:
 * the handshake answer against 8 KiB, a control frame against 125 bytes, a
 * message (all its fragments) against max_message.
 */
#include <errno.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "appliance/cli.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define HS_MAX 8192

struct app_ws {
	int fd;
	SSL_CTX *tls_ctx;
	SSL *tls;
	size_t max_message;
	int closed;
	char close_reason[128];
	unsigned char rbuf[16384];
	size_t rpos, rlen;
};

/* Split http(s)://host[:port][/path] or ws(s)://...; host may be [v6]. */
static int parse_url(const char *url, int *tls, char *host, size_t hl, char *port, size_t pl,
		     char *path, size_t pathl)
{
	const char *p, *h, *hend, *slash;
	size_t n;

	if (!strncmp(url, "https://", 8) || !strncmp(url, "wss://", 6))
		*tls = 1;
	else if (!strncmp(url, "http://", 7) || !strncmp(url, "ws://", 5))
		*tls = 0;
	else
		return -EINVAL;
	p = strstr(url, "://") + 3;
	slash = strchr(p, '/');
	snprintf(path, pathl, "%s", slash ? slash : "/");
	if (!slash)
		slash = p + strlen(p);
	if (*p == '[') {
		h = p + 1;
		hend = memchr(h, ']', (size_t)(slash - h));
		if (!hend)
			return -EINVAL;
		p = hend + 1;
	} else {
		h = p;
		hend = memchr(p, ':', (size_t)(slash - p));
		if (!hend)
			hend = slash;
		p = hend;
	}
	n = (size_t)(hend - h);
	if (n == 0 || n >= hl)
		return -EINVAL;
	memcpy(host, h, n);
	host[n] = 0;
	if (*p == ':' && p + 1 < slash && (size_t)(slash - p - 1) < pl) {
		memcpy(port, p + 1, (size_t)(slash - p - 1));
		port[slash - p - 1] = 0;
	} else {
		snprintf(port, pl, "%s", *tls ? "443" : "80");
	}
	return 0;
}

/*
 * Waits until fd is readable, in 200 ms steps so *stop is seen. Without a
 * stop flag (the handshake) it waits at most 10 s: -ETIMEDOUT.
 */
static int wait_fd(struct app_ws *ws, short ev, volatile int *stop)
{
	struct pollfd pfd = {.fd = ws->fd, .events = ev};
	int waited = 0;

	for (;;) {
		int n;

		if (stop && *stop)
			return 1;
		if (!stop && waited >= 10000)
			return -ETIMEDOUT;
		n = poll(&pfd, 1, 200);
		waited += 200;
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -errno;
	}
}

static int raw_write(struct app_ws *ws, const void *buf, size_t len)
{
	const unsigned char *p = buf;

	while (len) {
		ssize_t n;

		if (ws->tls) {
			int r = SSL_write(ws->tls, p, (int)len);

			if (r <= 0)
				return -EIO;
			n = r;
		} else {
			n = send(ws->fd, p, len, MSG_NOSIGNAL);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Refill the read buffer: 0, 1 (stopped), -ECONNRESET at EOF, -errno. */
static int fill(struct app_ws *ws, volatile int *stop)
{
	ssize_t n;
	int rc;

	if (ws->rpos == ws->rlen)
		ws->rpos = ws->rlen = 0;
	if (ws->rlen == sizeof(ws->rbuf)) {
		memmove(ws->rbuf, ws->rbuf + ws->rpos, ws->rlen - ws->rpos);
		ws->rlen -= ws->rpos;
		ws->rpos = 0;
	}
	/* TLS may already hold decrypted bytes that poll cannot see. */
	if (!ws->tls || !SSL_pending(ws->tls)) {
		rc = wait_fd(ws, POLLIN, stop);
		if (rc)
			return rc;
	}
	if (ws->tls) {
		int r = SSL_read(ws->tls, ws->rbuf + ws->rlen, (int)(sizeof(ws->rbuf) - ws->rlen));

		if (r <= 0) {
			int e = SSL_get_error(ws->tls, r);

			if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
				return 0;
			return e == SSL_ERROR_ZERO_RETURN ? -ECONNRESET : -EIO;
		}
		n = r;
	} else {
		n = recv(ws->fd, ws->rbuf + ws->rlen, sizeof(ws->rbuf) - ws->rlen, 0);
		if (n < 0)
			return errno == EINTR ? 0 : -errno;
		if (n == 0)
			return -ECONNRESET;
	}
	ws->rlen += (size_t)n;
	return 0;
}

static int read_exact(struct app_ws *ws, void *out, size_t len, volatile int *stop)
{
	unsigned char *o = out;

	while (len) {
		size_t take = ws->rlen - ws->rpos;
		int rc;

		if (!take) {
			if ((rc = fill(ws, stop)))
				return rc;
			continue;
		}
		if (take > len)
			take = len;
		memcpy(o, ws->rbuf + ws->rpos, take);
		ws->rpos += take;
		o += take;
		len -= take;
	}
	return 0;
}

static int send_frame(struct app_ws *ws, int opcode, const void *data, size_t len)
{
	unsigned char hdr[14], mask[4], *buf;
	size_t h = 0;
	int rc;

	hdr[h++] = (unsigned char)(0x80 | opcode);
	if (len < 126) {
		hdr[h++] = (unsigned char)(0x80 | len);
	} else if (len <= 0xffff) {
		hdr[h++] = 0x80 | 126;
		hdr[h++] = (unsigned char)(len >> 8);
		hdr[h++] = (unsigned char)len;
	} else {
		hdr[h++] = 0x80 | 127;
		for (int i = 7; i >= 0; i--)
			hdr[h++] = (unsigned char)((uint64_t)len >> (8 * i));
	}
	randombytes_buf(mask, 4);
	memcpy(hdr + h, mask, 4);
	h += 4;
	buf = malloc(h + len);
	if (!buf)
		return -ENOMEM;
	memcpy(buf, hdr, h);
	for (size_t i = 0; i < len; i++)
		buf[h + i] = ((const unsigned char *)data)[i] ^ mask[i & 3];
	rc = raw_write(ws, buf, h + len);
	free(buf);
	return rc;
}

int app_ws_send_text(struct app_ws *ws, const char *text, size_t len)
{
	return ws->closed ? -ECONNRESET : send_frame(ws, 1, text, len);
}

/* Reads the 101 answer; any bytes after its blank line stay buffered. */
static int handshake(struct app_ws *ws, const char *host, const char *port, const char *path,
		     const char *bearer, int tls, char *err, size_t errlen)
{
	unsigned char nonce[16], sha[SHA_DIGEST_LENGTH];
	char key[32], want[40], req[1024 + 512], *end, *line;
	size_t keep;
	int n, rc, def = !strcmp(port, tls ? "443" : "80");

	randombytes_buf(nonce, sizeof(nonce));
	sodium_bin2base64(key, sizeof(key), nonce, sizeof(nonce), sodium_base64_VARIANT_ORIGINAL);
	n = snprintf(req, sizeof(req),
		     "GET %s HTTP/1.1\r\nHost: %s%s%s%s%s\r\nUpgrade: websocket\r\n"
		     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
		     "%s%s%s\r\n",
		     path, strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "",
		     def ? "" : ":", def ? "" : port, key, bearer ? "Authorization: Bearer " : "",
		     bearer ? bearer : "", bearer ? "\r\n" : "");
	if (n < 0 || (size_t)n >= sizeof(req)) {
		snprintf(err, errlen, "URL or key too long");
		return -EINVAL;
	}
	if ((rc = raw_write(ws, req, (size_t)n)))
		return rc;
	for (;;) {
		ws->rbuf[ws->rlen < sizeof(ws->rbuf) ? ws->rlen : sizeof(ws->rbuf) - 1] = 0;
		end = strstr((char *)ws->rbuf, "\r\n\r\n");
		if (end)
			break;
		if (ws->rlen >= HS_MAX) {
			snprintf(err, errlen, "handshake answer longer than %d bytes", HS_MAX);
			return -EPROTO;
		}
		if ((rc = fill(ws, NULL))) {
			snprintf(err, errlen, "connection closed during the handshake");
			return rc;
		}
	}
	*end = 0;
	if (strncmp((char *)ws->rbuf, "HTTP/1.1 101", 12)) {
		line = strchr((char *)ws->rbuf, '\r');
		if (line)
			*line = 0;
		snprintf(err, errlen, "server refused the WebSocket upgrade: %.200s",
			 (char *)ws->rbuf);
		return -EPROTO;
	}
	snprintf(req, sizeof(req), "%s" WS_GUID, key);
	SHA1((const unsigned char *)req, strlen(req), sha);
	sodium_bin2base64(want, sizeof(want), sha, sizeof(sha), sodium_base64_VARIANT_ORIGINAL);
	rc = -EPROTO;
	for (line = strstr((char *)ws->rbuf, "\r\n"); line; line = strstr(line + 2, "\r\n")) {
		const char *v = line + 2;

		if (!strncasecmp(v, "Sec-WebSocket-Accept:", 21)) {
			v += 21;
			while (*v == ' ' || *v == '\t')
				v++;
			if (!strncmp(v, want, strlen(want)) &&
			    (v[strlen(want)] == '\r' || v[strlen(want)] == 0 ||
			     v[strlen(want)] == ' '))
				rc = 0;
		}
	}
	if (rc) {
		snprintf(err, errlen, "handshake answer without the right Sec-WebSocket-Accept");
		return rc;
	}
	keep = ws->rlen - (size_t)(end + 4 - (char *)ws->rbuf);
	memmove(ws->rbuf, end + 4, keep);
	ws->rpos = 0;
	ws->rlen = keep;
	return 0;
}

static int tls_start(struct app_ws *ws, const char *host, char *err, size_t errlen)
{
	ws->tls_ctx = SSL_CTX_new(TLS_client_method());
	if (!ws->tls_ctx)
		return -ENOMEM;
	SSL_CTX_set_min_proto_version(ws->tls_ctx, TLS1_2_VERSION);
	SSL_CTX_set_default_verify_paths(ws->tls_ctx);
	SSL_CTX_set_verify(ws->tls_ctx, SSL_VERIFY_PEER, NULL);
	ws->tls = SSL_new(ws->tls_ctx);
	if (!ws->tls)
		return -ENOMEM;
	SSL_set_tlsext_host_name(ws->tls, host);
	SSL_set1_host(ws->tls, host);
	SSL_set_fd(ws->tls, ws->fd);
	if (SSL_connect(ws->tls) != 1) {
		unsigned long e = ERR_get_error();

		snprintf(err, errlen, "TLS handshake failed: %s",
			 e ? ERR_reason_error_string(e) : "peer closed");
		return -EPROTO;
	}
	return 0;
}

int app_ws_connect(struct app_ws **out, const char *url, const char *bearer,
		   size_t max_message, char *err, size_t errlen)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL, *a;
	char host[256], port[16], path[512];
	struct timeval tv = {.tv_sec = 10};
	struct app_ws *ws;
	int tls, rc;

	*out = NULL;
	if (parse_url(url, &tls, host, sizeof(host), port, sizeof(port), path, sizeof(path))) {
		snprintf(err, errlen, "cannot parse URL %s", url);
		return -EINVAL;
	}
	ws = calloc(1, sizeof(*ws));
	if (!ws)
		return -ENOMEM;
	ws->fd = -1;
	ws->max_message = max_message;
	rc = getaddrinfo(host, port, &hints, &ai);
	if (rc) {
		snprintf(err, errlen, "%s: %s", host, gai_strerror(rc));
		rc = -EHOSTUNREACH;
		goto fail;
	}
	rc = -ECONNREFUSED;
	for (a = ai; a; a = a->ai_next) {
		ws->fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
		if (ws->fd < 0)
			continue;
		/* Bounded connect and handshake; the message loop polls instead. */
		setsockopt(ws->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		setsockopt(ws->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		if (connect(ws->fd, a->ai_addr, a->ai_addrlen) == 0) {
			rc = 0;
			break;
		}
		rc = -errno;
		close(ws->fd);
		ws->fd = -1;
	}
	freeaddrinfo(ai);
	if (rc) {
		snprintf(err, errlen, "cannot connect to %s:%s: %s", host, port, strerror(-rc));
		goto fail;
	}
	if (tls && (rc = tls_start(ws, host, err, errlen)))
		goto fail;
	rc = handshake(ws, host, port, path, bearer, tls, err, errlen);
	if (rc)
		goto fail;
	*out = ws;
	return 0;
fail:
	if (rc != -EPROTO && rc != -EINVAL && rc != -EHOSTUNREACH && !*err)
		snprintf(err, errlen, "%s", strerror(-rc));
	ws->closed = 1;
	app_ws_close(ws);
	return rc;
}

int app_ws_recv(struct app_ws *ws, char **msg, size_t *len, volatile int *stop)
{
	unsigned char h[2], ext[8], ctl[126];
	char *buf = NULL;
	size_t have = 0;
	int started = 0, rc;

	*msg = NULL;
	*len = 0;
	if (ws->closed)
		return -ECONNRESET;
	for (;;) {
		uint64_t n;
		int fin, op;

		if ((rc = read_exact(ws, h, 2, stop)))
			goto out;
		fin = h[0] & 0x80;
		op = h[0] & 0x0f;
		if ((h[0] & 0x70) || (h[1] & 0x80)) { /* no extensions; servers never mask */
			rc = -EPROTO;
			goto out;
		}
		n = h[1] & 0x7f;
		if (n == 126) {
			if ((rc = read_exact(ws, ext, 2, stop)))
				goto out;
			n = ((uint64_t)ext[0] << 8) | ext[1];
		} else if (n == 127) {
			if ((rc = read_exact(ws, ext, 8, stop)))
				goto out;
			n = 0;
			for (int i = 0; i < 8; i++)
				n = (n << 8) | ext[i];
		}
		if (op >= 8) { /* control: short, never fragmented */
			if (!fin || n > 125) {
				rc = -EPROTO;
				goto out;
			}
			if ((rc = read_exact(ws, ctl, (size_t)n, stop)))
				goto out;
			if (op == 9) {
				if ((rc = send_frame(ws, 10, ctl, (size_t)n)))
					goto out;
			} else if (op == 8) {
				if (n > 2)
					snprintf(ws->close_reason, sizeof(ws->close_reason),
						 "%u: %.*s", (unsigned)(ctl[0] << 8 | ctl[1]),
						 (int)n - 2, (const char *)ctl + 2);
				else if (n == 2)
					snprintf(ws->close_reason, sizeof(ws->close_reason), "%u",
						 (unsigned)(ctl[0] << 8 | ctl[1]));
				send_frame(ws, 8, ctl, n >= 2 ? 2 : 0); /* echo the code */
				ws->closed = 1;
				rc = -ECONNRESET;
				goto out;
			} else if (op != 10) {
				rc = -EPROTO;
				goto out;
			}
			continue;
		}
		if ((op == 0) != started || (op != 0 && op != 1 && op != 2)) {
			rc = -EPROTO;
			goto out;
		}
		started = 1;
		if (n > ws->max_message - have) {
			rc = -EMSGSIZE;
			goto out;
		}
		{
			char *nb = realloc(buf, have + (size_t)n + 1);

			if (!nb) {
				rc = -ENOMEM;
				goto out;
			}
			buf = nb;
		}
		if ((rc = read_exact(ws, buf + have, (size_t)n, stop)))
			goto out;
		have += (size_t)n;
		if (fin)
			break;
	}
	buf[have] = 0;
	*msg = buf;
	*len = have;
	return 0;
out:
	free(buf);
	if (rc < 0 && rc != -ECONNRESET)
		ws->closed = 1; /* the stream is no longer framed; give up on it */
	return rc;
}

const char *app_ws_close_reason(const struct app_ws *ws)
{
	return ws->close_reason;
}

void app_ws_close(struct app_ws *ws)
{
	if (!ws)
		return;
	if (!ws->closed && ws->fd >= 0) {
		static const unsigned char normal[2] = {0x03, 0xe8}; /* 1000 */

		send_frame(ws, 8, normal, 2);
	}
	if (ws->tls) {
		if (!ws->closed)
			SSL_shutdown(ws->tls);
		SSL_free(ws->tls);
	}
	SSL_CTX_free(ws->tls_ctx);
	if (ws->fd >= 0)
		close(ws->fd);
	free(ws);
}
