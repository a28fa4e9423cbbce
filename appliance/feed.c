/*
 * feed.c - the block feed on the lws thread: a ring of recent sealed blocks,
 * subscriptions that catch up from storage and then follow live, and the
 * JSON a subscriber (or mezz_getBlock) receives. The subscriber state
 * machine is drawn in server.h.
 *
 * Exactly once and in order: a subscription's next_height only moves
 * forward, by one, when the block at that height has been queued to its
 * connection; nothing else queues blocks for it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/ops.h"
#include "appliance/server.h"
#include "l1bridge/l1.h"

struct sbuf {
	char *p;
	size_t len, cap;
	int oom;
};

static void sb_reserve(struct sbuf *b, size_t more)
{
	char *np;
	size_t cap;

	if (b->oom || b->len + more + 1 <= b->cap)
		return;
	cap = b->cap ? b->cap : 1024;
	while (cap < b->len + more + 1)
		cap *= 2;
	np = realloc(b->p, cap);
	if (!np) {
		b->oom = 1;
		return;
	}
	b->p = np;
	b->cap = cap;
}

static void sb_put(struct sbuf *b, const char *s, size_t n)
{
	sb_reserve(b, n);
	if (b->oom)
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = 0;
}

static void sb_puts(struct sbuf *b, const char *s)
{
	sb_put(b, s, strlen(s));
}

static void sb_hex(struct sbuf *b, const uint8_t *d, size_t n)
{
	static const char hx[] = "0123456789abcdef";

	sb_reserve(b, 2 * n + 4);
	if (b->oom)
		return;
	b->p[b->len++] = '"';
	b->p[b->len++] = '0';
	b->p[b->len++] = 'x';
	for (size_t i = 0; i < n; i++) {
		b->p[b->len++] = hx[d[i] >> 4];
		b->p[b->len++] = hx[d[i] & 15];
	}
	b->p[b->len++] = '"';
	b->p[b->len] = 0;
}

static void sb_u64(struct sbuf *b, uint64_t v)
{
	char t[24];

	snprintf(t, sizeof(t), "%llu", (unsigned long long)v);
	sb_puts(b, t);
}

/* {"seq":N[,"index":I],"hash":"0x…","data":"0x…"} */
static void sb_tx(struct sbuf *o, uint64_t seq, const uint64_t *index, const uint8_t *hash,
		  const uint8_t *data, size_t len)
{
	sb_puts(o, "{\"seq\":");
	sb_u64(o, seq);
	if (index) {
		sb_puts(o, ",\"index\":");
		sb_u64(o, *index);
	}
	sb_puts(o, ",\"hash\":");
	sb_hex(o, hash, 32);
	sb_puts(o, ",\"data\":");
	sb_hex(o, data, len);
	sb_put(o, "}", 1);
}

static struct app_block **ring_slot(struct app_server *s, uint64_t height)
{
	return &s->feed.ring[height % s->feed.cap];
}

/* Empty a ring slot, uncharging its block. */
static void ring_drop(struct app_server *s, struct app_block **slot)
{
	if (!*slot)
		return;
	s->feed.bytes -= (*slot)->bytes + (*slot)->json_bytes;
	s->feed.blocks--;
	app_block_unref(*slot);
	*slot = NULL;
}

/*
 * Keep the ring within feed.cache_mib by dropping its oldest blocks, never
 * the newest (h). A dropped height is read back from storage, as any height
 * older than the ring is. Counting blocks alone let the ring hold 64 blocks
 * of whatever size: about 0.9 GB under full batched load.
 */
static void ring_trim(struct app_server *s, uint64_t h)
{
	struct feed_cache *f = &s->feed;

	if (h >= f->cap && f->low < h - f->cap + 1)
		f->low = h - f->cap + 1; /* slots below were overwritten */
	for (; f->bytes > f->budget && f->low < h; f->low++) {
		struct app_block **slot = ring_slot(s, f->low);

		if (*slot && (*slot)->hdr.height == f->low)
			ring_drop(s, slot);
	}
}

/* Namespace k's transactions, comma-separated, into o. */
static void sb_txs(struct sbuf *o, const struct app_block *b, size_t k)
{
	for (size_t j = b->ns_first[k]; j < b->ns_first[k + 1]; j++) {
		const struct app_tx *t = &b->txs[j];

		if (j != b->ns_first[k])
			sb_put(o, ",", 1);
		sb_tx(o, t->seq, NULL, t->hash, t->data, t->len);
	}
}

void app_feed_interest_add(struct app_feed_interest *fi, const uint64_t *ns, size_t n, int delta)
{
	if (!ns) {
		atomic_fetch_add(&fi->all, (uint_fast64_t)(int_fast64_t)delta);
		return;
	}
	for (size_t i = 0; i < n; i++)
		atomic_fetch_add(&fi->ns[ns[i] % APP_NS_BUCKETS], (unsigned)delta);
}

/*
 * A block's transactions are most of its JSON: at 10k tx/s a 250 ms block
 * renders to about 1.25 MB, 2.4-3.5 ms of work (BENCHMARKS.md). The sealer
 * renders them here for the namespaces a block subscription may want, so
 * that the lws thread, which answers every receipt, only copies them into
 * place.
 */
static int wanted(const struct app_feed_interest *fi, int all, uint64_t ns)
{
	return all || atomic_load(&fi->ns[ns % APP_NS_BUCKETS]) > 0;
}

/* Room the sealer leaves in front of a namespace's transactions for its
 * fragment's head (frag_head: at most 154 bytes and the name), and after
 * them for the "]}" and the NUL, so that ns_fragment finishes it in place. */
#define FRAG_ROOM 512
#define FRAG_END 3

int app_block_render_txs(struct app_block *b, const struct app_feed_interest *fi)
{
	int all = atomic_load(&fi->all) > 0, done = 0;
	struct app_json_part *r;
	size_t first = 0, held;

	while (first < b->ns_count && !wanted(fi, all, b->ns[first].ns))
		first++;
	if (first == b->ns_count)
		return 0; /* nobody may want any of it (or the block is empty) */
	r = calloc(b->ns_count, sizeof(*r));
	if (!r)
		return APP_ENOMEM;
	held = b->ns_count * sizeof(*r);
	for (size_t k = first; k < b->ns_count; k++) {
		struct sbuf o = {0};
		size_t need = 1;

		if (!wanted(fi, all, b->ns[k].ns))
			continue;
		/* {"seq":,"hash":"0x<64 hex>","data":"0x"} is 96 bytes besides
		 * the seq's digits (at most 20) and the data's hex; one comma */
		for (size_t j = b->ns_first[k]; j < b->ns_first[k + 1]; j++)
			need += 1 + 96 + 20 + 2 * b->txs[j].len;
		sb_reserve(&o, FRAG_ROOM + need + FRAG_END);
		if (!o.oom)
			o.len = FRAG_ROOM;
		sb_txs(&o, b, k);
		sb_reserve(&o, FRAG_END); /* kept if need was right */
		if (o.oom) {
			free(o.p);
			for (size_t i = first; i < k; i++)
				free(r[i].p);
			free(r);
			return APP_ENOMEM;
		}
		r[k] = (struct app_json_part){o.p, FRAG_ROOM, o.len - FRAG_ROOM};
		held += o.cap;
		done++;
	}
	b->txs_json = r;
	b->rendered_bytes = held;
	return done;
}

/* {"chainId":…,"name":"…","count":…,"root":"0x…","txs":[ */
static void frag_head(struct sbuf *o, struct app_server *s, const struct app_block *b, size_t k)
{
	const struct app_namespace *ns = app_auth_ns_by_id(&s->auth, b->ns[k].ns);

	sb_puts(o, "{\"chainId\":");
	sb_u64(o, b->ns[k].ns);
	sb_puts(o, ",\"name\":\"");
	sb_puts(o, ns ? ns->name : "");
	sb_puts(o, "\",\"count\":");
	sb_u64(o, b->ns[k].count);
	sb_puts(o, ",\"root\":");
	sb_hex(o, b->ns[k].root, 32);
	sb_puts(o, ",\"txs\":[");
}

/* Namespace k's part of b's JSON: built once per block and shared by every
 * view of it and mezz_getBlock. Finished in place around the transactions
 * the sealer rendered, when it did and the head fits in FRAG_ROOM (no copy
 * of them); else rendered here. `mezz namespace create` allows names of 63
 * characters, so the head fits unless a name reached the database some
 * other way. NULL when out of memory. */
static const struct app_json_part *ns_fragment(struct app_server *s, struct app_block *b,
						size_t k)
{
	struct app_json_part *pre = b->txs_json && b->txs_json[k].p ? &b->txs_json[k] : NULL;
	struct app_json_part *f = &b->ns_json[k];
	struct sbuf o = {0};

	if (f->p)
		return f;
	frag_head(&o, s, b, k);
	if (pre && !o.oom && o.len <= pre->off) {
		memcpy(pre->p + pre->off - o.len, o.p, o.len);
		memcpy(pre->p + pre->off + pre->len, "]}", FRAG_END);
		*f = (struct app_json_part){pre->p, pre->off - o.len, o.len + pre->len + 2};
		free(o.p);
	} else { /* as for a block read from storage */
		sb_txs(&o, b, k);
		sb_puts(&o, "]}");
		if (o.oom) {
			free(o.p);
			return NULL;
		}
		*f = (struct app_json_part){o.p, 0, o.len};
		if (pre)
			free(pre->p);
	}
	if (pre)
		*pre = (struct app_json_part){0}; /* used once: ns_json keeps it */
	b->json_bytes += f->len;
	if (*ring_slot(s, b->hdr.height) == b) { /* the ring holds it: charge it */
		s->feed.bytes += f->len;
		ring_trim(s, s->feed.tip); /* b stays valid: the caller holds a reference */
	}
	return f;
}

static int in_filter(const uint64_t *f, size_t n, uint64_t ns)
{
	if (!f)
		return 1;
	for (size_t i = 0; i < n; i++)
		if (f[i] == ns)
			return 1;
	return 0;
}

/* Whether namespace k of b is in a view: in its filter and readable by its tenant. */
static int in_view(struct app_server *s, const struct app_block *b, size_t k,
		   const uint64_t *filter, size_t filter_n, int64_t tenant)
{
	const struct app_namespace *ns;

	if (!in_filter(filter, filter_n, b->ns[k].ns))
		return 0;
	ns = app_auth_ns_by_id(&s->auth, b->ns[k].ns);
	return ns && app_auth_may_read(ns, tenant);
}

/* Appends b's JSON for one view to o (o->oom when out of memory). */
static void block_json(struct sbuf *o, struct app_server *s, struct app_block *b,
		       const uint64_t *filter, size_t filter_n, int64_t tenant, const char *level)
{
	uint8_t raw[SEQ_BLOCK_HDR_LEN];
	const struct seq_block_hdr *h = &b->hdr;
	size_t frags = 0;
	int first = 1;

	/* The fragments first, so that o grows once: a block's transactions
	 * are almost all of it. The rest is the header (under 1 KB besides
	 * headerRaw) and the namespace table. */
	for (size_t k = 0; k < b->ns_count; k++) {
		const struct app_json_part *f;

		if (!in_view(s, b, k, filter, filter_n, tenant))
			continue;
		f = ns_fragment(s, b, k);
		if (!f) {
			o->oom = 1;
			return;
		}
		frags += f->len + 1;
	}
	sb_reserve(o, frags + 1024 + 2 * sizeof(raw) + 128 * b->ns_count);
	seq_block_hdr_encode(raw, h);
	sb_puts(o, "{\"level\":\"");
	sb_puts(o, level);
	sb_puts(o, "\",\"height\":");
	sb_u64(o, h->height);
	sb_puts(o, ",\"slot\":");
	sb_u64(o, h->slot);
	sb_puts(o, ",\"hash\":");
	sb_hex(o, b->hash, 32);
	sb_puts(o, ",\"header\":{\"version\":");
	sb_u64(o, h->version);
	sb_puts(o, ",\"height\":");
	sb_u64(o, h->height);
	sb_puts(o, ",\"slot\":");
	sb_u64(o, h->slot);
	sb_puts(o, ",\"timeMs\":");
	sb_u64(o, h->time_ms);
	sb_puts(o, ",\"parent\":");
	sb_hex(o, h->parent, 32);
	sb_puts(o, ",\"firstSeq\":");
	sb_u64(o, h->first_seq);
	sb_puts(o, ",\"txCount\":");
	sb_u64(o, h->tx_count);
	sb_puts(o, ",\"nsCount\":");
	sb_u64(o, h->ns_count);
	sb_puts(o, ",\"nsRoot\":");
	sb_hex(o, h->ns_root, 32);
	sb_puts(o, ",\"txRoot\":");
	sb_hex(o, h->tx_root, 32);
	sb_puts(o, "},\"headerRaw\":");
	sb_hex(o, raw, sizeof(raw));
	sb_puts(o, ",\"signature\":");
	sb_hex(o, b->sig, 64);
	/* The whole namespace table, so a reader can recompute nsRoot. */
	sb_puts(o, ",\"nsTable\":[");
	for (size_t k = 0; k < b->ns_count; k++) {
		if (k)
			sb_put(o, ",", 1);
		sb_puts(o, "{\"chainId\":");
		sb_u64(o, b->ns[k].ns);
		sb_puts(o, ",\"count\":");
		sb_u64(o, b->ns[k].count);
		sb_puts(o, ",\"root\":");
		sb_hex(o, b->ns[k].root, 32);
		sb_put(o, "}", 1);
	}
	sb_puts(o, "],\"namespaces\":[");
	for (size_t k = 0; k < b->ns_count; k++) {
		const struct app_json_part *f = &b->ns_json[k];

		if (!in_view(s, b, k, filter, filter_n, tenant))
			continue;
		if (!first)
			sb_put(o, ",", 1);
		first = 0;
		sb_put(o, f->p + f->off, f->len);
	}
	sb_puts(o, "]}");
}

char *app_feed_block_json(struct app_server *s, struct app_block *b, const uint64_t *filter,
			  size_t filter_n, int64_t tenant, const char *level)
{
	struct sbuf o = {0};

	block_json(&o, s, b, filter, filter_n, tenant, level);
	if (o.oom) {
		free(o.p);
		return NULL;
	}
	return o.p;
}

struct app_block *app_feed_get(struct app_server *s, uint64_t height)
{
	struct app_block **slot = ring_slot(s, height), *b = NULL;

	/* Above the tip: not sealed yet, or stored and not yet durable. */
	if (height > s->feed.tip)
		return NULL;
	if (*slot && (*slot)->hdr.height == height) {
		return app_block_ref(*slot);
	}
	if (!app_store_block_has_txs(s->ro, height)) {
		if (app_dasrv_block(s, height, &b))
			return NULL;
		return b;
	}
	if (app_block_load(&b, s->ro, height))
		return NULL;
	if (!app_store_block_has_txs(s->ro, height)) {
		/* pruned while we read: the payloads we got may be empty */
		app_block_unref(b);
		if (app_dasrv_block(s, height, &b))
			return NULL;
	}
	return b; /* not cached: catch-up of old heights must not evict the live tail */
}

/*
 * One block's fan-out renders the block's JSON once per view: the reader's
 * tenant and namespace filter (sorted, without repeats: rpc.c ns_filter).
 * A thousand executors following one rollup share one rendering; each copy
 * differs only in its subscription id. Every view of the fan-out is looked
 * at (by a hash of tenant and filter first), so the renderings held until
 * the fan-out's writes are done (app_feed_block) are as many as the
 * distinct views, never more: a few odd filters cannot make everyone else
 * get a rendering of their own. FAN_VIEWS is the first allocation.
 */
#define FAN_VIEWS 8
struct fan_view {
	uint64_t key; /* view_key */
	int64_t tenant;
	uint64_t *ns; /* a copy of the filter (NULL = every namespace) */
	size_t ns_n;
	unsigned char *msg; /* the view's messages (msg_build) */
	size_t cap;	    /* msg's size */
	size_t tail;	    /* bytes of msg from MSG_ID_END on */
};

struct fan_views {
	struct fan_view *v;
	size_t n, cap;
};

/*
 * A message's buffer once nothing refers to it: every write of a fan-out
 * is done or copied (to lws, or to the connection's queue) when it ends.
 * At 10k tx/s a block's message is about 1.25 MB, and a new buffer for each
 * cost the lws thread about 300 page faults a block (BENCHMARKS.md), so the
 * largest is kept for the next fan-out, up to APP_FEED_SPARE_MAX.
 */
static void msg_keep(struct app_server *s, unsigned char *m, size_t cap)
{
	if (!m)
		return;
	if (cap > APP_FEED_SPARE_MAX || (s->feed.msg_spare && s->feed.msg_spare_cap >= cap)) {
		free(m);
		return;
	}
	free(s->feed.msg_spare);
	s->feed.msg_spare = m;
	s->feed.msg_spare_cap = cap;
}

static void fan_views_free(struct app_server *s, struct fan_views *fv)
{
	for (size_t i = 0; i < fv->n; i++) {
		free(fv->v[i].ns);
		msg_keep(s, fv->v[i].msg, fv->v[i].cap);
	}
	free(fv->v);
	*fv = (struct fan_views){0};
}

/*
 * A block message is MSG_HEAD, the subscription id in hex, then its tail:
 * MSG_MID, the view's JSON and "}}". Only the id differs between the copies
 * of one view, so the tail is written once per view, after room for the
 * longest id, and a copy is its head and id in front of that tail: written
 * into the buffer just before it (msg_for), or kept apart for a direct
 * write (copy_add). The buffer starts LWS_PRE bytes before the longest
 * head, the room lws_write needs in front of a message.
 */
static const char msg_head[] =
	"{\"jsonrpc\":\"2.0\",\"method\":\"mezz_subscription\","
	"\"params\":{\"subscription\":\"0x";
static const char msg_mid[] = "\",\"result\":";
#define MSG_HEAD_LEN (sizeof(msg_head) - 1)
#define MSG_MID_LEN (sizeof(msg_mid) - 1)
#define MSG_ID_MAX 16 /* hex digits of a uint64_t */
#define MSG_ID_END (LWS_PRE + MSG_HEAD_LEN + MSG_ID_MAX)
_Static_assert(APP_WS_FRAME_HEAD_MAX + MSG_HEAD_LEN + MSG_ID_MAX <= APP_FAN_PRE_MAX,
	       "a direct copy's pre holds a frame header, the head and the longest id");

/* v's messages for block b (v->tenant's view through filter): its tail
 * rendered straight into place, after room for the longest head. -1 when
 * out of memory. */
static int msg_build(struct fan_view *v, struct app_server *s, struct app_block *b,
		     const uint64_t *filter, size_t filter_n)
{
	struct sbuf o = {(char *)s->feed.msg_spare, 0, s->feed.msg_spare_cap, 0};

	s->feed.msg_spare = NULL;
	s->feed.msg_spare_cap = 0;
	sb_reserve(&o, MSG_ID_END);
	if (!o.oom)
		o.len = MSG_ID_END;
	sb_put(&o, msg_mid, MSG_MID_LEN);
	block_json(&o, s, b, filter, filter_n, v->tenant, "sealed");
	sb_put(&o, "}}", 2);
	if (o.oom) {
		free(o.p);
		return -1;
	}
	v->msg = (unsigned char *)o.p;
	v->cap = o.cap;
	v->tail = o.len - MSG_ID_END;
	return 0;
}

/* id in hex as "0x%llx" writes it (as mezz_subscribe returned it), ending
 * just before end; returns its first digit. */
static unsigned char *id_hex(unsigned char *end, uint64_t id)
{
	do {
		*--end = (unsigned char)"0123456789abcdef"[id & 15];
		id >>= 4;
	} while (id);
	return end;
}

/* Subscription id's copy of v's message: its first byte (with LWS_PRE
 * free bytes before it) and *len. Valid until the next msg_for on v. */
static unsigned char *msg_for(const struct fan_view *v, uint64_t id, size_t *len)
{
	unsigned char *end = v->msg + MSG_ID_END, *p = id_hex(end, id) - MSG_HEAD_LEN;

	memcpy(p, msg_head, MSG_HEAD_LEN);
	*len = (size_t)(end - p) + v->tail;
	return p;
}

/* The view of b for (tenant, filter): from fv when seen in this fan-out,
 * else rendered and kept in fv, or, without fv, rendered into *tmp (the
 * caller hands tmp->msg to msg_keep). NULL when out of memory. */
/* FNV-1a over the tenant and the filter (NULL: every namespace). */
static uint64_t view_key(int64_t tenant, const uint64_t *ns, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull ^ (uint64_t)tenant;

	h = (h ^ (ns ? n + 1 : 0)) * 0x100000001b3ull;
	for (size_t i = 0; ns && i < n; i++)
		h = (h ^ ns[i]) * 0x100000001b3ull;
	return h;
}

static struct fan_view *view_get(struct app_server *s, struct fan_views *fv, struct app_block *b,
				 const struct app_subscr *sub, int64_t tenant, struct fan_view *tmp)
{
	struct fan_view *v = tmp;
	uint64_t key = view_key(tenant, sub->ns, sub->ns_n);

	for (size_t i = 0; fv && i < fv->n; i++) {
		v = &fv->v[i];
		if (v->key == key && v->tenant == tenant && v->ns_n == sub->ns_n &&
		    !v->ns == !sub->ns &&
		    (!sub->ns || !memcmp(v->ns, sub->ns, sub->ns_n * sizeof(*sub->ns))))
			return v;
	}
	if (fv && fv->n == fv->cap) {
		size_t cap = fv->cap ? 2 * fv->cap : FAN_VIEWS;
		struct fan_view *nv = realloc(fv->v, cap * sizeof(*nv));

		if (!nv)
			return NULL;
		fv->v = nv;
		fv->cap = cap;
	}
	v = fv ? &fv->v[fv->n] : tmp;
	*v = (struct fan_view){.key = key, .tenant = tenant, .ns_n = sub->ns_n};
	if (fv && sub->ns) {
		v->ns = malloc(sub->ns_n * sizeof(*sub->ns));
		if (!v->ns)
			return NULL;
		memcpy(v->ns, sub->ns, sub->ns_n * sizeof(*sub->ns));
	}
	if (msg_build(v, s, b, sub->ns, sub->ns_n)) {
		free(v->ns);
		return NULL;
	}
	if (fv) {
		fv->n++;
		app_metric_add(APP_M_feed_views_total, 1);
	}
	return v;
}

/*
 * Hand one block message to its connection: a catch-up read, or a live copy
 * that fanout.c may not write (TLS, or something queued or left buffered
 * by lws: direct_ok). With TLS a live copy to a connection with nothing
 * queued and nothing buffered is written at once through lws, which
 * encrypts it and keeps the tail of a partial write; anything else queues
 * behind what is there. Returns -1 if the connection was dropped.
 */
static int deliver(struct app_conn *c, unsigned char *p, size_t len, int live, uint64_t height,
		   uint64_t sub)
{
	/* The client closed: lws echoes its close frame, and nothing may follow
	 * it (as direct_ok says for the direct path). */
	if (c->peer_closed)
		return 0;
	if (live && c->wsi && !c->closing && !c->out_head && !lws_partial_buffered(c->wsi)) {
		if (lws_write(c->wsi, p, len, LWS_WRITE_TEXT) < (int)len) {
			app_conn_drop(c, "write to the socket failed");
			return -1;
		}
		return 0;
	}
	/* 2: counted until it leaves the queue (server.c fanout_left) */
	if (app_conn_send(c, (const char *)p, len, live ? 2 : 1, height, sub))
		return -1;
	c->srv->feed.fan_pending += live;
	return 0;
}

/* The tenant c reads as, and the view of b for sub: NULL when the
 * connection was dropped (a revoked key, or out of memory). */
static struct fan_view *reader_view(struct app_conn *c, struct app_subscr *sub,
				    struct app_block *b, struct fan_views *fv,
				    struct fan_view *tmp)
{
	struct fan_view *v;
	int64_t tenant;

	if (app_conn_tenant(c, &tenant)) {
		app_conn_drop(c, "API key revoked");
		return NULL;
	}
	v = view_get(c->srv, fv, b, sub, tenant, tmp);
	if (!v)
		app_conn_drop(c, "out of memory building a block message");
	return v;
}

/* Queue block b for one subscription. -1 if the connection was dropped.
 * live: part of b's fan-out as it arrives (counted for
 * mezz_feed_fanout_seconds; fv holds its renderings), not a catch-up read. */
static int send_block(struct app_conn *c, struct app_subscr *sub, struct app_block *b, int live,
		      struct fan_views *fv)
{
	struct fan_view tmp = {0}, *v = reader_view(c, sub, b, fv, &tmp);
	unsigned char *msg;
	size_t len;
	int rc;

	if (!v)
		return -1;
	msg = msg_for(v, sub->id, &len);
	rc = deliver(c, msg, len, live, b->hdr.height, sub->id);
	msg_keep(c->srv, tmp.msg, tmp.cap);
	if (rc == 0)
		sub->next_height = b->hdr.height + 1;
	return rc;
}

/*
 * Live copies are written at once, outside a WRITEABLE callback, to a
 * connection with nothing queued and nothing left buffered by lws: asking
 * lws for a callback per subscriber cost an epoll_ctl each and put every
 * subscriber's rendering before the first write (the fan-out's first copy
 * left ~16 ms after the hand-over with 1,000 subscribers). Without TLS
 * fanout.c writes them, on one thread or more; with TLS lws must write
 * every byte, and deliver does. Anything else queues behind what is
 * there, so order is kept.
 */
static int direct_ok(const struct app_conn *c)
{
	return c->srv->feed.direct && c->wsi && !c->closing && !c->peer_closed && !c->out_head &&
	       !lws_partial_buffered(c->wsi);
}

/* Add sub's copy of b to the fan-out's n direct writes (n is counted up).
 * -1 if the connection was dropped. */
static int copy_add(struct app_conn *c, struct app_subscr *sub, struct app_block *b,
		    struct fan_views *fv, size_t *n)
{
	struct feed_cache *f = &c->srv->feed;
	struct fan_view *v = reader_view(c, sub, b, fv, NULL);
	unsigned char id[MSG_ID_MAX], *digits;
	struct app_fan_copy *x;
	size_t nd;

	if (!v)
		return -1;
	if (*n == f->copies_cap) {
		size_t cap = f->copies_cap ? 2 * f->copies_cap : 256;
		struct app_fan_copy *nc = realloc(f->copies, cap * sizeof(*nc));

		if (!nc) {
			app_conn_drop(c, "out of memory building a block message");
			return -1;
		}
		f->copies = nc;
		f->copies_cap = cap;
	}
	digits = id_hex(id + sizeof(id), sub->id);
	nd = (size_t)(id + sizeof(id) - digits);
	x = &f->copies[(*n)++];
	x->c = c;
	x->sub = sub;
	x->fd = lws_get_socket_fd(c->wsi);
	x->tail = v->msg + MSG_ID_END;
	x->tail_len = v->tail;
	x->hdr_len = app_ws_frame_head(x->pre, MSG_HEAD_LEN + nd + v->tail);
	memcpy(x->pre + x->hdr_len, msg_head, MSG_HEAD_LEN);
	memcpy(x->pre + x->hdr_len + MSG_HEAD_LEN, digits, nd);
	x->pre_len = x->hdr_len + MSG_HEAD_LEN + nd;
	x->sent = 0;
	return 0;
}

/* Bytes of x from offset off on, contiguous, to p. */
static void copy_bytes(unsigned char *p, const struct app_fan_copy *x, size_t off)
{
	if (off < x->pre_len) {
		memcpy(p, x->pre + off, x->pre_len - off);
		p += x->pre_len - off;
		off = x->pre_len;
	}
	memcpy(p, x->tail + (off - x->pre_len), x->tail_len - (off - x->pre_len));
}

/*
 * What a direct write left to do, on the lws thread: a short write's rest
 * goes to lws, which sends it before anything else on the socket; an
 * unwritten copy is queued as a message (lws frames it). -1 if the
 * connection was dropped.
 */
static int copy_finish(struct app_fan_copy *x, uint64_t height)
{
	struct app_conn *c = x->c;
	size_t len = app_fan_copy_len(x), rest;
	unsigned char *buf;
	char *t;
	int bad;

	if (x->sent < 0) {
		app_conn_drop(c, "write to the socket failed");
		return -1;
	}
	if ((size_t)x->sent == len)
		return 0;
	if (x->sent > 0) {
		rest = len - (size_t)x->sent;
		buf = malloc(LWS_PRE + rest);
		if (buf)
			copy_bytes(buf + LWS_PRE, x, (size_t)x->sent);
		bad = !buf || lws_write(c->wsi, buf + LWS_PRE, rest, LWS_WRITE_RAW) < (int)rest;
		free(buf);
		if (bad)
			app_conn_drop(c, "write to the socket failed");
		return bad ? -1 : 0;
	}
	t = app_msg_alloc(len - x->hdr_len);
	if (!t) {
		app_conn_drop(c, "out of memory building a block message");
		return -1;
	}
	copy_bytes((unsigned char *)t, x, x->hdr_len);
	if (app_conn_send_msg(c, t, len - x->hdr_len, 2, height, x->sub->id))
		return -1;
	c->srv->feed.fan_pending++;
	return 0;
}

/* Keep the copies of connections still open, in order (a connection
 * dropped after its first copy was added gets none); returns how many. */
static size_t copies_open(struct app_fan_copy *cp, size_t n)
{
	size_t j = 0;

	for (size_t i = 0; i < n; i++)
		if (!cp[i].c->closing)
			cp[j++] = cp[i];
	return j;
}

void app_feed_block(struct app_server *s, struct app_block *b)
{
	struct app_block **slot = ring_slot(s, b->hdr.height);
	struct fan_views fv = {0};
	uint64_t h = b->hdr.height;
	size_t sent = 0, n = 0, lent;

	app_auth_refresh(&s->auth); /* a key revoked since the last message (app_conn_tenant) */
	ring_drop(s, slot);
	*slot = b; /* the ring holds the committer's reference */
	/* and the fan-out one of its own: rendering b's fragments trims the
	 * ring below the feed's tip (ns_fragment), and the tip can be past h
	 * already (drain_done reads the committer's height), so b alone over
	 * feed.cache_mib would be dropped, and freed, in the middle of its own
	 * fan-out. */
	app_block_ref(b);
	s->feed.bytes += b->bytes + b->json_bytes;
	s->feed.blocks++;
	if (h > s->feed.tip)
		s->feed.tip = h;
	/* A fan-out still unfinished when the next block comes is recorded as
	 * it stands: a lower bound, and already longer than a slot. */
	if (s->feed.fan_pending)
		app_metric_observe(APP_M_feed_fanout_seconds,
				   (app_now_ns() - s->feed.fan_t0_ns) / 1000);
	s->feed.fan_height = h;
	s->feed.fan_t0_ns = app_now_ns();
	s->feed.fan_pending = 0;
	for (struct app_conn *c = s->ws_list, *next; c; c = next) {
		next = c->ws_next;
		for (struct app_subscr *sub = c->subs; sub; sub = sub->next) {
			if (sub->state != SUB_LIVE)
				continue;
			if (sub->next_height == h) {
				if (direct_ok(c) ? copy_add(c, sub, b, &fv, &n)
						 : send_block(c, sub, b, 1, &fv))
					break;
				sent++;
			} else if (sub->next_height < h) {
				sub->state = SUB_CATCHUP; /* missed one: read from storage */
				app_conn_wake(c);
			}
		}
	}
	n = copies_open(s->feed.copies, n);
	lent = app_fanout_send(s->feed.pool, s->feed.copies, n);
	app_metric_add(APP_M_feed_fanout_direct_total, n);
	app_metric_add(APP_M_feed_fanout_helper_total, lent);
	for (size_t i = 0; i < n; i++) {
		struct app_fan_copy *x = &s->feed.copies[i];

		if (!x->c->closing && copy_finish(x, h) == 0)
			x->sub->next_height = h + 1;
	}
	fan_views_free(s, &fv);
	/* what no subscriber read: ns_fragment renders it if ever needed */
	app_block_drop_rendered(b);
	ring_trim(s, h); /* after the fan-out rendered b's fragments */
	app_block_unref(b);
	/* Every copy written already: the fan-out ended here. */
	if (sent && !s->feed.fan_pending)
		app_metric_observe(APP_M_feed_fanout_seconds,
				   (app_now_ns() - s->feed.fan_t0_ns) / 1000);
}

const char *const app_level_names[APP_LEVELS] = {"available", "posted", "finalized"};

int app_level_of(const char *name)
{
	for (int L = 0; name && L < APP_LEVELS; L++)
		if (!strcmp(name, app_level_names[L]))
			return L;
	return -1;
}

/* Level event JSON for one block, from the ring or storage (then cached if
 * recent). Owned by the ring: valid until the next call for that level. */
static const char *level_json(struct app_server *s, enum app_level level, uint64_t height)
{
	struct level_ent *e = &s->feed.level_ring[level][height % s->feed.cap];
	char *json;

	if (e->json && e->height == height)
		return e->json;
	if (app_level_json(s, level, height, &json))
		return NULL;
	free(e->json);
	e->json = json;
	e->height = height;
	return json;
}

/* Queue pending level events of one subscription, at most `budget`.
 * Returns the number queued, or -1 if the connection was dropped. */
static int send_levels(struct app_conn *c, struct app_subscr *sub, int budget)
{
	struct app_server *s = c->srv;
	int sent = 0;

	for (int L = 0; L < APP_LEVELS && sent < budget; L++) {
		if (!(sub->levels & (1u << L)))
			continue;
		while (sent < budget && sub->next_level[L] < sub->next_height &&
		       sub->next_level[L] <= s->feed.level_tip[L]) {
			uint64_t h = sub->next_level[L];
			const char *body = level_json(s, (enum app_level)L, h);
			char *msg;
			int len, rc;

			if (!body) {
				app_conn_drop(c, "commitment missing from storage");
				return -1;
			}
			len = asprintf(&msg,
				       "{\"jsonrpc\":\"2.0\",\"method\":\"mezz_subscription\","
				       "\"params\":{\"subscription\":\"0x%llx\",\"result\":%s}}",
				       (unsigned long long)sub->id, body);
			if (len < 0) {
				app_conn_drop(c, "out of memory building a level event");
				return -1;
			}
			rc = app_conn_send(c, msg, (size_t)len, 0, h, 0);
			free(msg);
			if (rc)
				return -1;
			sub->next_level[L] = h + 1;
			sent++;
		}
	}
	return sent;
}

void app_feed_level(struct app_server *s, enum app_level level, uint64_t height)
{
	if (height <= s->feed.level_tip[level])
		return;
	s->feed.level_tip[level] = height;
	for (struct app_conn *c = s->ws_list; c; c = c->ws_next)
		for (struct app_subscr *sub = c->subs; sub; sub = sub->next)
			if ((sub->levels & (1u << level)) && sub->next_level[level] <= height &&
			    sub->next_level[level] < sub->next_height) {
				app_conn_wake(c);
				break;
			}
}

/*
 * Catch-up work for one writeable callback: each subscription first sends
 * the level events due for blocks it already has (so a catching-up
 * subscriber sees sealed h, available h, sealed h + 1, ...), then at most
 * one block is read from storage, which keeps the loop fair.
 */
void app_feed_pump(struct app_conn *c)
{
	struct app_server *s = c->srv;
	int budget = 32; /* level events per writeable callback */

	app_auth_refresh(&s->auth);

	for (struct app_subscr *sub = c->subs; sub && budget > 0; sub = sub->next) {
		int n = send_levels(c, sub, budget);

		if (n < 0)
			return;
		budget -= n;
	}
	/* A catch-up block goes into an empty queue: behind the level events
	 * just queued, one bigger than server.ws_send_queue_bytes would pass
	 * the cap and drop a reader that keeps up. The writeable callback
	 * comes back for it once they are sent (app_feed_pending). */
	if (c->out_head)
		return;
	for (struct app_subscr *sub = c->subs; sub; sub = sub->next) {
		struct app_block *b;

		if (sub->state != SUB_CATCHUP)
			continue;
		if (sub->next_height > s->feed.tip) {
			sub->state = SUB_LIVE;
			continue;
		}
		b = app_feed_get(s, sub->next_height);
		if (!b) {
			app_conn_drop(c, "block missing from storage");
			return;
		}
		if (send_block(c, sub, b, 0, NULL)) {
			app_block_unref(b);
			return;
		}
		app_block_unref(b);
		if (sub->next_height > s->feed.tip)
			sub->state = SUB_LIVE;
		return;
	}
}

int app_feed_pending(const struct app_conn *c)
{
	const struct app_server *s = c->srv;

	for (const struct app_subscr *sub = c->subs; sub; sub = sub->next) {
		if (sub->state == SUB_CATCHUP)
			return 1;
		for (int L = 0; L < APP_LEVELS; L++)
			if ((sub->levels & (1u << L)) && sub->next_level[L] < sub->next_height &&
			    sub->next_level[L] <= s->feed.level_tip[L])
				return 1;
	}
	return 0;
}

void app_feed_sub_free(struct app_server *s, struct app_subscr *sub)
{
	if (sub->preconf)
		atomic_fetch_sub(&s->committer->preconf_subs, 1);
	app_feed_interest_add(&s->committer->interest, sub->ns, sub->ns_n, -1);
	free(sub->ns);
	free(sub);
	s->subscribers--;
}

void app_feed_unsubscribe_all(struct app_conn *c)
{
	struct app_subscr *sub = c->subs, *next;

	for (; sub; sub = next) {
		next = sub->next;
		app_feed_sub_free(c->srv, sub);
	}
	c->subs = NULL;
}

/* ---- preconfirmed: one event per committed group ----------------------- */

static int by_ns_seq(const void *a, const void *b, void *arg)
{
	const struct app_preconf *p = arg;
	const struct app_preconf_tx *x = &p->tx[*(const uint32_t *)a];
	const struct app_preconf_tx *y = &p->tx[*(const uint32_t *)b];

	if (x->ns != y->ns)
		return x->ns < y->ns ? -1 : 1;
	return (x->seq > y->seq) - (x->seq < y->seq);
}

/*
 * The group's transactions by namespace (ascending chain id, seq order
 * within), one JSON fragment per namespace built once and shared by every
 * subscriber; each subscriber gets the fragments it may read and asked for.
 * Sent only to live subscriptions, so it never overtakes the sealed blocks
 * a catching-up subscriber is still being sent.
 */
void app_feed_preconf(struct app_server *s, const struct app_preconf *p)
{
	uint32_t *idx = NULL;
	uint64_t *ns = NULL;
	char **frag = NULL;
	size_t nk = 0;
	struct sbuf head = {0};

	if (!p->n)
		return;
	app_auth_refresh(&s->auth);
	idx = malloc(p->n * sizeof(*idx));
	ns = malloc(p->n * sizeof(*ns));
	frag = calloc(p->n, sizeof(*frag));
	if (!idx || !ns || !frag)
		goto out;
	for (uint32_t i = 0; i < p->n; i++)
		idx[i] = i;
	qsort_r(idx, p->n, sizeof(*idx), by_ns_seq, (void *)p);
	for (size_t i = 0; i < p->n;) {
		const struct app_namespace *nsd = app_auth_ns_by_id(&s->auth, p->tx[idx[i]].ns);
		struct sbuf o = {0};
		size_t j = i;

		sb_puts(&o, "{\"chainId\":");
		sb_u64(&o, p->tx[idx[i]].ns);
		sb_puts(&o, ",\"name\":\"");
		sb_puts(&o, nsd ? nsd->name : "");
		sb_puts(&o, "\",\"txs\":[");
		for (; j < p->n && p->tx[idx[j]].ns == p->tx[idx[i]].ns; j++) {
			const struct app_preconf_tx *t = &p->tx[idx[j]];

			if (j != i)
				sb_put(&o, ",", 1);
			uint64_t index = t->seq - p->hdr.first_seq;

			sb_tx(&o, t->seq, &index, t->hash, t->data, t->len);
		}
		sb_puts(&o, "]}");
		if (o.oom) {
			free(o.p);
			goto out;
		}
		ns[nk] = p->tx[idx[i]].ns;
		frag[nk++] = o.p;
		i = j;
	}
	sb_puts(&head, "\"result\":{\"level\":\"preconfirmed\",\"slot\":");
	sb_u64(&head, p->hdr.slot);
	sb_puts(&head, ",\"group\":");
	sb_u64(&head, p->hdr.group_id);
	sb_puts(&head, ",\"firstSeq\":");
	sb_u64(&head, p->hdr.first_seq);
	sb_puts(&head, ",\"count\":");
	sb_u64(&head, p->hdr.count);
	sb_puts(&head, ",\"root\":");
	sb_hex(&head, p->hdr.root, 32);
	sb_puts(&head, ",\"signature\":");
	sb_hex(&head, p->sig, 64);
	sb_puts(&head, ",\"namespaces\":[");
	if (head.oom)
		goto out;
	for (struct app_conn *c = s->ws_list, *next; c; c = next) {
		int64_t tenant;

		next = c->ws_next;
		for (struct app_subscr *sub = c->subs; sub; sub = sub->next) {
			struct sbuf m = {0};
			int any = 0;
			char id[64];

			if (!sub->preconf || sub->state != SUB_LIVE)
				continue;
			if (app_conn_tenant(c, &tenant)) {
				app_conn_drop(c, "API key revoked");
				break;
			}
			snprintf(id, sizeof(id), "0x%llx", (unsigned long long)sub->id);
			sb_puts(&m, "{\"jsonrpc\":\"2.0\",\"method\":\"mezz_subscription\","
				    "\"params\":{\"subscription\":\"");
			sb_puts(&m, id);
			sb_puts(&m, "\",");
			sb_put(&m, head.p, head.len);
			for (size_t k = 0; k < nk; k++) {
				const struct app_namespace *nsd = app_auth_ns_by_id(&s->auth, ns[k]);

				if (!in_filter(sub->ns, sub->ns_n, ns[k]) || !nsd ||
				    !app_auth_may_read(nsd, tenant))
					continue;
				if (any)
					sb_put(&m, ",", 1);
				any = 1;
				sb_puts(&m, frag[k]);
			}
			sb_puts(&m, "]}}}");
			if (m.oom) {
				free(m.p);
				app_conn_drop(c, "out of memory building a preconfirmed event");
				break;
			}
			if (any && app_conn_send(c, m.p, m.len, 0, sub->next_height, 0)) {
				free(m.p);
				break; /* dropped */
			}
			free(m.p);
		}
	}
out:
	for (size_t k = 0; k < nk; k++)
		free(frag[k]);
	free(frag);
	free(ns);
	free(idx);
	free(head.p);
}

void app_feed_destroy(struct app_server *s)
{
	free(s->feed.copies);
	s->feed.copies = NULL;
	s->feed.copies_cap = 0;
	free(s->feed.msg_spare);
	s->feed.msg_spare = NULL;
	s->feed.msg_spare_cap = 0;
	for (int L = 0; L < APP_LEVELS; L++) {
		if (!s->feed.level_ring[L])
			continue;
		for (size_t i = 0; i < s->feed.cap; i++)
			free(s->feed.level_ring[L][i].json);
		free(s->feed.level_ring[L]);
		s->feed.level_ring[L] = NULL;
	}
	if (!s->feed.ring)
		return;
	for (size_t i = 0; i < s->feed.cap; i++)
		app_block_unref(s->feed.ring[i]);
	free(s->feed.ring);
	s->feed.ring = NULL;
}
