/*
 * limits.c - token buckets per tenant and per client address, connection
 * caps per address, and the tenant table behind per-tenant metrics. See
 * limits.h for the policy; this file is the mechanism.
 */
#include <arpa/inet.h>
#include <libwebsockets.h>
#include <math.h>
#include <netinet/in.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "appliance/limits.h"
#include "appliance/ops.h"
#include "appliance/daemon.h"

#define IP_PROBES 64
#define IP_IDLE_NS (60ull * 1000000000ull) /* an idle, empty entry may be reused */

uint64_t app_bucket_take(struct app_bucket *b, double n, uint64_t now_ns)
{
	double need;

	if (b->rate <= 0)
		return 0;
	if (b->last_ns == 0) {
		b->tokens = b->burst;
	} else if (now_ns > b->last_ns) {
		b->tokens += (double)(now_ns - b->last_ns) * 1e-9 * b->rate;
		if (b->tokens > b->burst)
			b->tokens = b->burst;
	}
	/* Callers pass a time read before the call (rpc.c: the message's
	 * parse time), not at it. Messages are handled one at a time, so those
	 * times grow; should one ever be older than the bucket's last, the
	 * clock stays put rather than refill the interval between them twice. */
	if (now_ns > b->last_ns)
		b->last_ns = now_ns;
	/* A request bigger than the whole bucket passes when the bucket is full,
	 * so no single transaction is refused forever. */
	need = n < b->burst ? n : b->burst;
	if (b->tokens >= need) {
		b->tokens -= n;
		return 0;
	}
	return (uint64_t)ceil((need - b->tokens) / b->rate * 1000.0) + 1;
}

/* Whether b is full at now_ns (1 when it has no rate). */
static int bucket_full(const struct app_bucket *b, uint64_t now_ns)
{
	double have = b->tokens;

	if (b->rate <= 0)
		return 1;
	if (b->last_ns && now_ns > b->last_ns)
		have += (double)(now_ns - b->last_ns) * 1e-9 * b->rate;
	return have >= b->burst;
}

/* Book the time b's rate takes to earn n tokens (at most a full bucket)
 * after the turns already booked; the ns from now to the end of this one. */
static uint64_t bucket_book_ns(struct app_bucket *b, double n, uint64_t now_ns)
{
	uint64_t start;

	if (b->rate <= 0)
		return 0;
	if (n > b->burst)
		n = b->burst;
	start = b->pace_next_ns > now_ns ? b->pace_next_ns : now_ns;
	b->pace_next_ns = start + (uint64_t)ceil(n / b->rate * 1e9);
	return b->pace_next_ns - now_ns;
}

static void bucket_config(struct app_bucket *b, double rate, double burst_s, double floor)
{
	double burst = rate * burst_s;

	if (burst < floor)
		burst = floor;
	if (burst < 1)
		burst = 1;
	if (b->rate != rate || b->burst != burst) {
		b->rate = rate;
		b->burst = burst;
		if (b->tokens > burst)
			b->tokens = burst;
	}
}

static double burst_s(const struct app_limits *l)
{
	return (double)l->cfg->limits_burst_ms / 1000.0;
}

/* ---- tenants ------------------------------------------------------------ */

static int tenant_cmp(const void *a, const void *b)
{
	const struct app_tenant_state *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

struct app_tenant_state *app_limits_tenant(struct app_limits *l, int64_t id)
{
	struct app_tenant_state key = {.id = id};

	if (!l->tenants)
		return NULL;
	return bsearch(&key, l->tenants, l->ntenants, sizeof(key), tenant_cmp);
}

int app_limits_refresh(struct app_limits *l, int64_t auth_version)
{
	sqlite3 *db = app_store_db(l->ro);
	sqlite3_stmt *st = NULL;
	struct app_tenant_state *v = NULL, *old;
	size_t n = 0, cap = 0;
	int rc;

	if (l->tenants && auth_version == l->version)
		return 0;
	/* tenant_limits exists once the CLI has set a limit; until then LEFT JOIN
	 * on a missing table fails, so fall back to the plain tenant list. */
	rc = sqlite3_prepare_v2(db,
				"SELECT t.id, t.name, l.tx_per_s, l.bytes_per_s FROM tenants t"
				" LEFT JOIN tenant_limits l ON l.tenant_id = t.id ORDER BY t.id",
				-1, &st, NULL);
	if (rc != SQLITE_OK)
		rc = sqlite3_prepare_v2(db,
					"SELECT id, name, NULL, NULL FROM tenants ORDER BY id", -1,
					&st, NULL);
	if (rc != SQLITE_OK)
		return APP_ESQLITE;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct app_tenant_state *t;
		const unsigned char *name = sqlite3_column_text(st, 1);

		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			struct app_tenant_state *nv = realloc(v, ncap * sizeof(*nv));

			if (!nv) {
				rc = APP_ENOMEM;
				goto out;
			}
			v = nv;
			cap = ncap;
		}
		t = &v[n++];
		memset(t, 0, sizeof(*t));
		t->id = sqlite3_column_int64(st, 0);
		snprintf(t->name, sizeof(t->name), "%s", name ? (const char *)name : "");
		t->tx_per_s = sqlite3_column_type(st, 2) == SQLITE_NULL ? l->cfg->limits_tenant_tx_per_s
									 : sqlite3_column_int64(st, 2);
		t->bytes_per_s = sqlite3_column_type(st, 3) == SQLITE_NULL
					 ? l->cfg->limits_tenant_bytes_per_s
					 : sqlite3_column_int64(st, 3);
		/* Keep what a surviving tenant had: counters and bucket levels. */
		if ((old = app_limits_tenant(l, t->id))) {
			t->txb = old->txb;
			t->byteb = old->byteb;
			t->txs = old->txs;
			t->bytes = old->bytes;
			t->rejected = old->rejected;
			t->limited = old->limited;
		}
		bucket_config(&t->txb, (double)t->tx_per_s, burst_s(l), 1);
		bucket_config(&t->byteb, (double)t->bytes_per_s, burst_s(l),
			      (double)l->cfg->max_tx_bytes);
	}
	rc = rc == SQLITE_DONE ? 0 : APP_ESQLITE;
out:
	sqlite3_finalize(st);
	if (rc) {
		free(v);
		return rc;
	}
	free(l->tenants);
	l->tenants = v;
	l->ntenants = n;
	l->version = auth_version;
	return 0;
}

/* ---- addresses ---------------------------------------------------------- */

/* Keyed (SipHash, a random key per process): with a public hash, a client
 * holding many /64s could pick ones whose entries fill another address's
 * probe window and push it into the shared overflow entry. */
static uint64_t addr_hash(const struct app_limits *l, const uint8_t a[16])
{
	unsigned char h[crypto_shorthash_BYTES];
	uint64_t v;

	crypto_shorthash(h, a, 16, l->ip_key);
	memcpy(&v, h, sizeof(v));
	return v;
}

static int addr_of_fd(int fd, uint8_t out[16])
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	memset(out, 0, 16);
	if (getpeername(fd, (struct sockaddr *)&ss, &sl))
		return -1;
	if (ss.ss_family == AF_INET) {
		out[10] = out[11] = 0xff;
		memcpy(out + 12, &((struct sockaddr_in *)&ss)->sin_addr, 4);
	} else if (ss.ss_family == AF_INET6) {
		const uint8_t *a = ((struct sockaddr_in6 *)&ss)->sin6_addr.s6_addr;

		memcpy(out, a, 16);
		/* One IPv6 client gets a whole /64; IPv4-mapped stays whole. */
		if (!(memcmp(a, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0))
			memset(out + 8, 0, 8);
	} else {
		return -1;
	}
	return 0;
}

static struct app_ip_state *ip_find(struct app_limits *l, const uint8_t a[16], uint64_t now)
{
	size_t mask = l->ip_cap - 1, i = (size_t)addr_hash(l, a) & mask;
	struct app_ip_state *reuse = NULL;

	for (size_t p = 0; p < IP_PROBES && p < l->ip_cap; p++, i = (i + 1) & mask) {
		struct app_ip_state *e = &l->ips[i];

		if (e->used && !memcmp(e->addr, a, 16))
			return e;
		if (!reuse && (!e->used || (e->conns == 0 && now - e->last_ns > IP_IDLE_NS)))
			reuse = e;
		if (!e->used)
			break;
	}
	if (!reuse) {
		app_metric_add(APP_M_limits_ip_overflow_total, 1);
		return &l->overflow;
	}
	memset(reuse, 0, sizeof(*reuse));
	memcpy(reuse->addr, a, 16);
	reuse->used = 1;
	reuse->last_ns = now;
	return reuse;
}

int app_limits_conn_accept(struct app_limits *l, int fd)
{
	uint8_t a[16];
	uint64_t now = app_now_ns();
	struct app_ip_state *e;

	/* The connection accepted before never got its wsi (lws dropped it
	 * after this filter): it is not open, so it must not count. */
	if (l->pending && l->pending->conns)
		l->pending->conns--;
	l->pending = NULL;
	if (addr_of_fd(fd, a))
		return 0;
	e = ip_find(l, a, now);
	if (l->cfg->limits_ip_max_connections &&
	    e->conns >= (uint32_t)l->cfg->limits_ip_max_connections) {
		app_metric_add(APP_M_connections_refused_total, 1);
		return -1;
	}
	e->conns++;
	e->last_ns = now;
	l->pending = e;
	return 0;
}

static size_t wsi_hash(const struct lws *wsi, size_t mask)
{
	uint64_t h = (uint64_t)(uintptr_t)wsi * 0x9e3779b97f4a7c15ull;

	return (size_t)(h >> 20) & mask;
}

static struct wsi_slot *wmap_find(struct app_limits *l, const struct lws *wsi)
{
	size_t mask = l->wcap - 1;

	if (!l->wmap)
		return NULL;
	for (size_t i = wsi_hash(wsi, mask);; i = (i + 1) & mask) {
		if (l->wmap[i].wsi == wsi)
			return &l->wmap[i];
		if (!l->wmap[i].wsi)
			return NULL;
	}
}

static int wmap_put(struct app_limits *l, const struct lws *wsi, struct app_ip_state *ip)
{
	size_t mask, i;

	if ((l->wlen + 1) * 2 > l->wcap) { /* keep the load under one half */
		size_t ncap = l->wcap ? l->wcap * 2 : 1024;
		struct wsi_slot *old = l->wmap, *nm = calloc(ncap, sizeof(*nm));

		if (!nm)
			return APP_ENOMEM;
		l->wmap = nm;
		for (size_t k = 0; k < l->wcap; k++)
			if (old[k].wsi) {
				for (i = wsi_hash(old[k].wsi, ncap - 1); nm[i].wsi; i = (i + 1) & (ncap - 1))
					;
				nm[i] = old[k];
			}
		l->wcap = ncap;
		free(old);
	}
	mask = l->wcap - 1;
	for (i = wsi_hash(wsi, mask); l->wmap[i].wsi; i = (i + 1) & mask)
		;
	l->wmap[i].wsi = wsi;
	l->wmap[i].ip = ip;
	l->wlen++;
	return 0;
}

static void wmap_del(struct app_limits *l, struct wsi_slot *slot)
{
	size_t mask = l->wcap - 1, i = (size_t)(slot - l->wmap), j = i;

	/* Backward-shift deletion keeps every probe chain unbroken. */
	for (;;) {
		j = (j + 1) & mask;
		if (!l->wmap[j].wsi)
			break;
		size_t home = wsi_hash(l->wmap[j].wsi, mask);

		if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
			l->wmap[i] = l->wmap[j];
			i = j;
		}
	}
	l->wmap[i].wsi = NULL;
	l->wmap[i].ip = NULL;
	l->wlen--;
}

static struct app_ip_state *ip_of(struct app_limits *l, const struct lws *wsi)
{
	struct wsi_slot *w = wsi ? wmap_find(l, wsi) : NULL;

	return w ? w->ip : NULL;
}

void app_limits_conn_bind(struct app_limits *l, struct lws *wsi)
{
	struct app_ip_state *e = l->pending;

	if (!e)
		return;
	l->pending = NULL;
	if (wmap_put(l, wsi, e) && e->conns) /* untracked: do not count it */
		e->conns--;
}

void app_limits_conn_close(struct app_limits *l, struct lws *wsi)
{
	struct wsi_slot *w = wmap_find(l, wsi);
	struct app_ip_state *e;

	if (!w)
		return;
	e = w->ip;
	wmap_del(l, w);
	if (e->conns)
		e->conns--;
	e->last_ns = app_now_ns();
}

/* ---- admission ---------------------------------------------------------- */

/* Tokens given back to b (no more than a full bucket; an unlimited bucket
 * keeps none). */
static void bucket_give(struct app_bucket *b, double n)
{
	if (b->rate <= 0)
		return;
	b->tokens += n;
	if (b->tokens > b->burst)
		b->tokens = b->burst;
}

static uint64_t take_both(struct app_bucket *txb, struct app_bucket *byteb, double ntx, size_t len,
			  uint64_t now, const char *names[2], const char **what)
{
	uint64_t wait = app_bucket_take(txb, ntx, now);

	if (wait) {
		*what = names[0];
		return wait;
	}
	wait = app_bucket_take(byteb, (double)len, now);
	if (wait) {
		bucket_give(txb, ntx); /* all or nothing */
		*what = names[1];
	}
	return wait;
}

uint64_t app_limits_admit(struct app_limits *l, struct lws *wsi, int64_t owner, int64_t tenant,
			  double ntx, size_t len, uint64_t now, const char **what)
{
	static const char *tnames[2] = {"tenant transactions/s", "tenant bytes/s"};
	static const char *inames[2] = {"address transactions/s", "address bytes/s"};
	struct app_tenant_state *t = app_limits_tenant(l, owner);
	struct app_ip_state *ip = NULL;
	uint64_t wait;

	*what = "";
	if (!tenant && wsi && (ip = ip_of(l, wsi))) {
		bucket_config(&ip->txb, (double)l->cfg->limits_ip_tx_per_s, burst_s(l), 1);
		bucket_config(&ip->byteb, (double)l->cfg->limits_ip_bytes_per_s, burst_s(l),
			      (double)l->cfg->max_tx_bytes);
		wait = take_both(&ip->txb, &ip->byteb, ntx, len, now, inames, what);
		if (wait)
			goto limited;
	}
	if (t) {
		wait = take_both(&t->txb, &t->byteb, ntx, len, now, tnames, what);
		if (wait) {
			if (ip) { /* give the address its tokens back: all or nothing */
				bucket_give(&ip->txb, ntx);
				bucket_give(&ip->byteb, (double)len);
			}
			goto limited;
		}
	}
	return 0;
limited:
	if (t)
		t->limited++;
	app_metric_add(APP_M_ingress_limited_total, 1);
	return wait;
}

void app_limits_refund(struct app_limits *l, struct lws *wsi, int64_t owner, int64_t tenant,
		       double ntx, size_t len)
{
	struct app_tenant_state *t = app_limits_tenant(l, owner);
	struct app_ip_state *ip = !tenant && wsi ? ip_of(l, wsi) : NULL;

	if (ip) {
		bucket_give(&ip->txb, ntx);
		bucket_give(&ip->byteb, (double)len);
	}
	if (t) {
		bucket_give(&t->txb, ntx);
		bucket_give(&t->byteb, (double)len);
	}
}

static uint64_t max_u64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

uint64_t app_limits_pace_us(struct app_limits *l, struct lws *wsi, int64_t owner,
			    int64_t tenant, double ntx, double nbytes, int *full)
{
	struct app_tenant_state *t = app_limits_tenant(l, owner);
	struct app_ip_state *ip = NULL;
	uint64_t now = app_now_ns(), ns = 0;

	if (!tenant && wsi)
		ip = ip_of(l, wsi);
	*full = (!ip || (bucket_full(&ip->txb, now) && bucket_full(&ip->byteb, now))) &&
		(!t || (bucket_full(&t->txb, now) && bucket_full(&t->byteb, now)));
	if (*full)
		return 0;
	if (ip)
		ns = max_u64(bucket_book_ns(&ip->txb, ntx, now),
			     bucket_book_ns(&ip->byteb, nbytes, now));
	if (t)
		ns = max_u64(ns, max_u64(bucket_book_ns(&t->txb, ntx, now),
					 bucket_book_ns(&t->byteb, nbytes, now)));
	return (ns + 999) / 1000;
}

/* ---- lifecycle ---------------------------------------------------------- */

int app_limits_init(struct app_limits *l, const struct app_config *cfg, struct app_store *ro)
{
	memset(l, 0, sizeof(*l));
	l->cfg = cfg;
	l->ro = ro;
	l->ip_cap = 64;
	while (l->ip_cap < (size_t)cfg->limits_ip_table_entries && l->ip_cap < (1u << 20))
		l->ip_cap *= 2;
	randombytes_buf(l->ip_key, sizeof(l->ip_key));
	l->ips = calloc(l->ip_cap, sizeof(*l->ips));
	if (!l->ips)
		return APP_ENOMEM;
	l->overflow.used = 1;
	return 0;
}

void app_limits_free(struct app_limits *l)
{
	if (!l)
		return;
	free(l->tenants);
	free(l->ips);
	free(l->wmap);
	l->tenants = NULL;
	l->ips = NULL;
	l->wmap = NULL;
}

int app_limits_store_set(struct app_store *s, int64_t tenant_id, int64_t tx_per_s,
			 int64_t bytes_per_s)
{
	sqlite3 *db = app_store_db(s);
	sqlite3_stmt *st = NULL;
	int rc;

	if (sqlite3_exec(db,
			 "BEGIN IMMEDIATE;"
			 "CREATE TABLE IF NOT EXISTS tenant_limits(tenant_id INTEGER PRIMARY KEY"
			 " REFERENCES tenants(id), tx_per_s INTEGER, bytes_per_s INTEGER);",
			 NULL, NULL, NULL) != SQLITE_OK)
		return APP_ESQLITE;
	rc = sqlite3_prepare_v2(db,
				"INSERT INTO tenant_limits(tenant_id, tx_per_s, bytes_per_s)"
				" VALUES (?1, CASE WHEN ?2 < 0 THEN NULL ELSE ?2 END,"
				" CASE WHEN ?3 < 0 THEN NULL ELSE ?3 END)"
				" ON CONFLICT(tenant_id) DO UPDATE SET"
				" tx_per_s = CASE WHEN ?2 = -1 THEN tx_per_s WHEN ?2 < 0 THEN NULL ELSE ?2 END,"
				" bytes_per_s = CASE WHEN ?3 = -1 THEN bytes_per_s WHEN ?3 < 0 THEN NULL"
				" ELSE ?3 END",
				-1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, tenant_id);
		sqlite3_bind_int64(st, 2, tx_per_s);
		sqlite3_bind_int64(st, 3, bytes_per_s);
		rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db,
				  "UPDATE meta SET v = v + 1 WHERE k = 'auth_version'; COMMIT;",
				  NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return APP_ESQLITE;
	}
	app_store_auth_changed(s);
	return 0;
}

char *app_error_data_json(int code, uint64_t retry_after_ms, const char *limit)
{
	char *base = app_error_json(code, "rate limit exceeded (%s); retry in %llu ms", limit,
				    (unsigned long long)retry_after_ms);
	char *out;
	size_t n, cap;

	if (!base)
		return NULL;
	n = strlen(base);
	cap = n + strlen(limit) + 80;
	out = malloc(cap);
	if (out) /* base ends with '}': append the data member inside it */
		snprintf(out, cap, "%.*s,\"data\":{\"retryAfterMs\":%llu,\"limit\":\"%s\"}}",
			 (int)(n - 1), base, (unsigned long long)retry_after_ms, limit);
	free(base);
	return out;
}
