/*
 * receipt.c - receipts and error objects as JSON. Written by hand rather
 * than through jansson: the committer builds one receipt per transaction on
 * the hot path, and the shape is fixed.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/daemon.h"
#include "l1bridge/l1.h"

/* Appenders for app_receipt_json: the caller sized the buffer. */
static char *put_str(char *w, const char *s, size_t n)
{
	memcpy(w, s, n);
	return w + n;
}

#define PUT_LIT(w, lit) put_str((w), (lit), sizeof(lit) - 1)

static char *put_u64(char *w, uint64_t v)
{
	char tmp[20];
	size_t n = 0;

	do
		tmp[n++] = (char)('0' + v % 10);
	while ((v /= 10));
	while (n)
		*w++ = tmp[--n];
	return w;
}

/* "0x..." of len bytes, in quotes. */
static char *put_hex(char *w, const uint8_t *d, size_t len)
{
	*w++ = '"';
	l1_hex_encode(w, d, len);
	w += 2 + 2 * len;
	*w++ = '"';
	return w;
}

/*
 * Built with appenders instead of snprintf: the committer formats one per
 * transaction, and printf's format parsing was most of the formatting cost
 * (perf at 40k tx/s: vfprintf and its stdio helpers ~8% of the committer).
 */
size_t app_receipt_json_cap(size_t path_len, size_t ns_len)
{
	/* Fixed fields under 600 bytes, 69 per proof element. */
	return 1024 + path_len * 70 + ns_len;
}

char *app_receipt_json_put(char *w, const struct seq_receipt *r, const char *ns_name,
			   const uint8_t pk[static 32])
{
	static const char *const num_keys[] = {",\"chainId\":", ",\"seq\":", ",\"slot\":",
					       ",\"group\":", ",\"index\":", ",\"count\":"};
	const uint64_t nums[] = {r->ns, r->seq, r->slot, r->group_id, r->index, r->count};

	w = PUT_LIT(w, "{\"hash\":");
	w = put_hex(w, r->hash, 32);
	/* Namespace names are [a-z0-9_-] (checked at creation), no escaping needed. */
	w = PUT_LIT(w, ",\"namespace\":\"");
	w = put_str(w, ns_name, strlen(ns_name));
	*w++ = '"';
	for (size_t i = 0; i < sizeof(num_keys) / sizeof(num_keys[0]); i++) {
		w = put_str(w, num_keys[i], strlen(num_keys[i]));
		w = put_u64(w, nums[i]);
	}
	w = PUT_LIT(w, ",\"root\":");
	w = put_hex(w, r->root, 32);
	w = PUT_LIT(w, ",\"proof\":[");
	for (size_t i = 0; i < r->path_len; i++) {
		if (i)
			*w++ = ',';
		w = put_hex(w, r->path[i], 32);
	}
	w = PUT_LIT(w, "],\"signature\":");
	w = put_hex(w, r->sig, 64);
	w = PUT_LIT(w, ",\"publicKey\":");
	w = put_hex(w, pk, 32);
	*w++ = '}';
	*w = '\0';
	return w;
}

char *app_receipt_brief_put(char *w, const struct seq_receipt *r)
{
	w = PUT_LIT(w, "{\"hash\":");
	w = put_hex(w, r->hash, 32);
	w = PUT_LIT(w, ",\"seq\":");
	w = put_u64(w, r->seq);
	w = PUT_LIT(w, ",\"group\":");
	w = put_u64(w, r->group_id);
	w = PUT_LIT(w, ",\"index\":");
	w = put_u64(w, r->index);
	*w++ = '}';
	*w = '\0';
	return w;
}

char *app_batch_section_json(const struct seq_group_hdr *h, const uint8_t sig[static 64],
			     const struct seq_merkle_tree *t, const size_t *idx, size_t k,
			     size_t *len)
{
	size_t max = seq_merkle_multiproof_max(h->count, k), plen = 0;
	uint8_t (*proof)[32] = malloc((max ? max : 1) * 32);
	char *out = proof ? malloc(512 + max * 69) : NULL, *w = out;
	static const char *const keys[] = {"{\"group\":", ",\"slot\":", ",\"firstSeq\":",
					   ",\"count\":"};
	const uint64_t nums[] = {h->group_id, h->slot, h->first_seq, h->count};

	if (!out || seq_merkle_tree_multiproof(t, idx, k, proof, &plen)) {
		free(proof);
		free(out);
		return NULL;
	}
	for (size_t i = 0; i < 4; i++) {
		w = put_str(w, keys[i], strlen(keys[i]));
		w = put_u64(w, nums[i]);
	}
	w = PUT_LIT(w, ",\"root\":");
	w = put_hex(w, h->root, 32);
	w = PUT_LIT(w, ",\"signature\":");
	w = put_hex(w, sig, 64);
	w = PUT_LIT(w, ",\"proof\":[");
	for (size_t i = 0; i < plen; i++) {
		if (i)
			*w++ = ',';
		w = put_hex(w, proof[i], 32);
	}
	w = PUT_LIT(w, "]}");
	*w = '\0';
	free(proof);
	*len = (size_t)(w - out);
	return out;
}

char *app_receipt_json(const struct seq_receipt *r, const char *ns_name,
		       const uint8_t pk[static 32], size_t *len)
{
	char *out = malloc(app_receipt_json_cap(r->path_len, strlen(ns_name))), *end;

	if (!out)
		return NULL;
	end = app_receipt_json_put(out, r, ns_name, pk);
	if (len)
		*len = (size_t)(end - out);
	return out;
}

struct app_answer_buf *app_answer_buf_new(size_t cap)
{
	struct app_answer_buf *b = malloc(sizeof(*b) + cap);

	if (!b)
		return NULL;
	atomic_init(&b->refs, 1);
	b->cap = cap;
	b->used = 0;
	return b;
}

char *app_answer_buf_take(struct app_answer_buf *b, size_t n)
{
	if (n > b->cap - b->used)
		return NULL;
	atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
	return b->data + b->used;
}

void app_answer_buf_used(struct app_answer_buf *b, const char *end)
{
	b->used = (size_t)(end - b->data);
}

void app_answer_buf_put(struct app_answer_buf *b)
{
	/* acq_rel: every holder's reads of its answer come before the free */
	if (b && atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1)
		free(b);
}

void app_answer_free(char *json, struct app_answer_buf *buf)
{
	if (buf)
		app_answer_buf_put(buf);
	else
		free(json);
}

void app_done_json_free(struct app_done *d)
{
	app_answer_free(d->json, d->buf);
	free(d->section);
	d->json = NULL;
	d->buf = NULL;
	d->section = NULL;
}

int app_receipt_load(struct app_store *s, const struct app_tx *tx, struct seq_receipt *r)
{
	struct seq_group g = {0};
	struct seq_merkle_tree t;
	int rc;

	rc = app_store_group_load(s, tx->group_id, &g.hdr, g.sig, &g.leaves);
	if (rc)
		return rc;
	if (tx->seq < g.hdr.first_seq || tx->seq - g.hdr.first_seq >= g.hdr.count) {
		rc = APP_ESQLITE;
		goto out;
	}
	rc = seq_merkle_tree_build(&t, (const uint8_t(*)[32])g.leaves, g.hdr.count);
	if (rc)
		goto out;
	rc = seq_receipt_from_tree(r, &g.hdr, g.sig, &t, tx->seq - g.hdr.first_seq, tx->ns,
				   tx->hash);
	seq_merkle_tree_free(&t);
	if (rc)
		rc = APP_ESQLITE; /* stored rows disagree with their group */
out:
	free(g.leaves);
	return rc;
}

/*
 * Messages may quote client input (method names, parser errors) cut at a
 * byte limit, so they can hold broken UTF-8; the output must still be valid
 * JSON. Invalid or truncated sequences become U+FFFD.
 */
char *app_error_json(int code, const char *fmt, ...)
{
	char msg[512], *out;
	size_t cap, n = 0;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cap = strlen(msg) * 6 + 64;
	out = malloc(cap);
	if (!out)
		return NULL;
	n = (size_t)snprintf(out, cap, "{\"code\":%d,\"message\":\"", code);
	for (const unsigned char *p = (const unsigned char *)msg, *end = p + strlen(msg); *p;) {
		size_t l = app_utf8_len(p, (size_t)(end - p));

		if (l == 0) {
			n += (size_t)snprintf(out + n, cap - n, "\\ufffd");
			p++;
		} else if (*p == '"' || *p == '\\') {
			n += (size_t)snprintf(out + n, cap - n, "\\%c", *p);
			p++;
		} else if (*p < 0x20) {
			n += (size_t)snprintf(out + n, cap - n, "\\u%04x", *p);
			p++;
		} else {
			memcpy(out + n, p, l);
			n += l;
			p += l;
		}
	}
	snprintf(out + n, cap - n, "\"}");
	return out;
}
