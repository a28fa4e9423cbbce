/*
 * limits.h - per-tenant and per-IP admission control for the lws thread
 * (internal to the appliance), and the per-tenant counters /metrics shows.
 *
 * Token buckets: each bucket refills at `rate` units per second up to
 * `rate * limits.burst_ms / 1000` units (never less than one largest
 * transaction for byte buckets). A submission takes one token from the
 * transaction bucket and len tokens from the byte bucket, or nothing: a
 * refused submission is told how long until it would fit (retryAfterMs).
 *
 *   - Tenant buckets cover every submission into a tenant's namespaces,
 *     keyed or anonymous: a tenant's share of the box. Rates come from
 *     `mezz tenant limits NAME ...` (stored in the database), else from
 *     limits.tenant_tx_per_s / limits.tenant_bytes_per_s; 0 is unlimited.
 *   - IP buckets cover anonymous submissions (public namespaces), per client
 *     address (IPv6 per /64): limits.ip_tx_per_s / limits.ip_bytes_per_s.
 *   - Connections per address: limits.ip_max_connections, counted from
 *     accept to close; over it the TCP connection is closed at accept.
 *
 * Everything here belongs to the lws thread; nothing is locked.
 */
#ifndef MEZZ_LIMITS_H
#define MEZZ_LIMITS_H

#include <stdint.h>

#include "appliance/app.h"

struct lws;

struct app_bucket {
	double tokens, rate, burst;
	uint64_t last_ns;
	uint64_t pace_next_ns; /* app_limits_pace_us: the next paced read's turn */
};

/* 0 when n tokens were taken; else the milliseconds until they would be there
 * (>= 1). rate 0 means unlimited. */
uint64_t app_bucket_take(struct app_bucket *b, double n, uint64_t now_ns);

struct app_tenant_state {
	int64_t id;
	char name[64];
	int64_t tx_per_s, bytes_per_s; /* effective rates, 0 = unlimited */
	struct app_bucket txb, byteb;
	uint64_t txs, bytes, rejected, limited; /* counters for /metrics */
};

struct app_ip_state {
	uint8_t addr[16]; /* IPv4-mapped or an IPv6 /64 */
	int used;
	uint32_t conns;
	uint64_t last_ns;
	struct app_bucket txb, byteb;
};

struct app_limits {
	const struct app_config *cfg;
	struct app_store *ro;
	int64_t version; /* auth_version the tenant table was loaded at */
	struct app_tenant_state *tenants; /* sorted by id */
	size_t ntenants;
	struct app_ip_state *ips; /* open addressing, never emptied, only reused */
	size_t ip_cap;
	unsigned char ip_key[16]; /* SipHash key of the table, random per process */
	struct app_ip_state overflow; /* shared by addresses that find no slot */
	struct app_ip_state *pending; /* accepted, waiting for its wsi */
	/* wsi -> its address entry (open addressing, backward-shift delete);
	 * lws keeps its opaque user data for itself during adoption. */
	struct wsi_slot {
		const struct lws *wsi;
		struct app_ip_state *ip;
	} *wmap;
	size_t wcap, wlen;
};

int app_limits_init(struct app_limits *l, const struct app_config *cfg, struct app_store *ro);
void app_limits_free(struct app_limits *l);
/* Reload tenant names and limits when the auth version moved (keeps counters
 * and bucket levels of tenants that remain). */
int app_limits_refresh(struct app_limits *l, int64_t auth_version);
struct app_tenant_state *app_limits_tenant(struct app_limits *l, int64_t id);

/*
 * Admission of ntx submissions of len bytes in all (one transaction, or a
 * bundle's legs into one tenant's namespaces, taken at once) into a
 * namespace owned by `owner`, from `tenant` (0 = anonymous) on connection
 * wsi. 0 when admitted
 * (tokens taken), else the retry delay in ms with *what naming the limit
 * ("tenant transactions", "tenant bytes", "address transactions", ...).
 * now (app_now_ns's clock) is the message's time: every item of one
 * message is admitted at the same instant, with one clock read.
 */
uint64_t app_limits_admit(struct app_limits *l, struct lws *wsi, int64_t owner, int64_t tenant,
			  double ntx, size_t len, uint64_t now, const char **what);
/* Give back what app_limits_admit took for ntx submissions of len bytes in
 * all that were then refused after all (a bundle's other leg, a full
 * ingress queue): a refused submission takes no tokens. */
void app_limits_refund(struct app_limits *l, struct lws *wsi, int64_t owner, int64_t tenant,
		       double ntx, size_t len);

/*
 * The pace of a connection read one message at a time after a refusal
 * (server.c rx_pace). Each bucket that admitted ntx submissions of nbytes
 * in all (into a namespace owned by `owner`, from `tenant` on wsi) books
 * the time its rate takes to earn that much, after the turns already
 * booked by its other paced connections: the return is the microseconds
 * until this connection's next turn, so all of a tenant's paced
 * connections together are read at its rate. *full is set when every one
 * of those buckets is full anyway (the sender has kept under its limit for
 * a whole burst): then nothing is booked and 0 returned.
 */
uint64_t app_limits_pace_us(struct app_limits *l, struct lws *wsi, int64_t owner,
			    int64_t tenant, double ntx, double nbytes, int *full);

/* Connection accounting, from the lws callbacks: _accept from
 * LWS_CALLBACK_FILTER_NETWORK_CONNECTION (nonzero: refuse), _bind from the
 * LWS_CALLBACK_WSI_CREATE that follows it, _close from LWS_CALLBACK_WSI_DESTROY. */
int app_limits_conn_accept(struct app_limits *l, int fd);
void app_limits_conn_bind(struct app_limits *l, struct lws *wsi);
void app_limits_conn_close(struct app_limits *l, struct lws *wsi);

/* CLI: store a tenant's own rates (-1 keeps the current value, -2 returns to
 * the config default; 0 unlimited)
 * on a read-write store, bumping the auth version so the daemon reloads. */
int app_limits_store_set(struct app_store *s, int64_t tenant_id, int64_t tx_per_s,
			 int64_t bytes_per_s);

#endif /* MEZZ_LIMITS_H */
