/*
 * ops.h - the operations layer of the daemon (internal to the appliance):
 * systemd notification and watchdog (notify.c), health (health.c), metrics
 * (metrics.c). Everything here is safe to call from any thread unless a
 * function says otherwise.
 */
#ifndef MEZZ_OPS_H
#define MEZZ_OPS_H

#include <stddef.h>
#include <stdint.h>

struct lws_context;

/* ---- systemd (notify.c) ------------------------------------------------ */

/*
 * sd_notify wrappers. Without NOTIFY_SOCKET (not started by systemd) they do
 * nothing and return 0. app_notify_ready must be called only once the
 * database is open and every listener is bound: systemd starts dependants
 * the moment it arrives.
 */
int app_notify_ready(const char *status);
void app_notify_stopping(void);
/* Before READY=1: "still starting, give me `seconds` more" (systemd's
 * TimeoutStartSec is counted from then), with a STATUS= line. */
void app_notify_extend(unsigned seconds, const char *status);
/*
 * Arms the watchdog on the lws thread: when systemd set WATCHDOG_USEC (the
 * unit's WatchdogSec=), a timer on ctx's event loop sends WATCHDOG=1 every
 * third of that interval. The ping comes from the loop itself, so a loop
 * that stops turning stops the pings and systemd restarts the daemon.
 * Returns the ping interval in microseconds, or 0 when the watchdog is off.
 * Call on the lws thread; app_notify_watchdog_stop before destroying ctx.
 */
uint64_t app_notify_watchdog_start(struct lws_context *ctx);
void app_notify_watchdog_stop(void);

/* ---- metrics (metrics.c) ---------------------------------------------- */

/*
 * Every process-wide metric is one line of this table:
 *   X(kind, name, help, buckets)
 * kind is COUNTER, GAUGE or HISTOGRAM; name is exported as "mezz_<name>";
 * buckets names a bucket set for histograms (LAT_US: observed in
 * microseconds, exported in seconds; COUNT: plain counts) and is NONE
 * otherwise. Adding a metric is adding a line here and calling
 * app_metric_add / _set / _observe(APP_M_<name>, ...) where it happens.
 * Per-tenant counters are labelled and live with the tenant table
 * (limits.c), which appends them to the scrape.
 */
#define APP_METRICS(X)                                                                   \
	X(COUNTER, ingress_txs_total, "Transactions accepted into the ingress queue", NONE)  \
	X(COUNTER, ingress_bytes_total, "Payload bytes accepted into the ingress queue", NONE) \
	X(COUNTER, ingress_rejected_total,                                                \
	  "Submissions refused before the queue (auth, size, decoding, limits, busy)", NONE) \
	X(COUNTER, ingress_limited_total, "Submissions refused by a rate limit", NONE)      \
	X(COUNTER, ws_rx_paused_total,                                                   \
	  "WebSocket connections paused (not read) for a rate limit retry hint", NONE)       \
	X(COUNTER, ws_rx_paced_total,                                                    \
	  "Waits of a refused WebSocket connection read at its limit's pace", NONE)         \
	X(COUNTER, connections_refused_total, "Connections refused by the per-IP cap", NONE) \
	X(COUNTER, http_pipelined_closed_total,                                          \
	  "HTTP connections closed for sending bytes after a request body before its answer", NONE) \
	X(COUNTER, limits_ip_overflow_total,                                            \
	  "Connections accepted while the address table was full (one shared entry)", NONE) \
	X(COUNTER, txs_committed_total, "Transactions made durable (preconfirmed)", NONE)    \
	X(COUNTER, groups_committed_total, "Preconfirmation groups committed", NONE)         \
	X(HISTOGRAM, group_commit_size, "Transactions per committed group", COUNT)           \
	X(HISTOGRAM, group_commit_seconds, "Group commit latency: BEGIN to fsynced COMMIT", LAT_US) \
	X(HISTOGRAM, preconfirmation_seconds,                                             \
	  "Submission parsed to receipt back on the network thread", STEP_US)              \
	X(HISTOGRAM, preconf_queue_seconds,                                               \
	  "Per preconfirmation: parsed until the committer took it from the ingress queue", STEP_US) \
	X(HISTOGRAM, preconf_commit_seconds,                                              \
	  "Per preconfirmation: taken by the committer until its group was durable", STEP_US) \
	X(HISTOGRAM, preconf_answer_seconds,                                              \
	  "Per preconfirmation: durable until the network thread took the answer", STEP_US) \
	X(GAUGE, block_height, "Height of the newest sealed block", NONE)                    \
	X(HISTOGRAM, feed_fanout_seconds,                                                 \
	  "A live block handed to the feed until every subscriber's copy is written", LAT_US) \
	X(COUNTER, feed_rendered_ahead_total,                                            \
	  "Blocks of which the sealer rendered transactions for the feed's subscribers", NONE) \
	X(COUNTER, feed_views_total,                                                     \
	  "Renderings of live blocks for the feed: one per distinct view of a block", NONE) \
	X(COUNTER, feed_fanout_direct_total,                                             \
	  "Live block copies written straight to subscribers' sockets (feed.fanout_threads)", NONE) \
	X(COUNTER, feed_fanout_helper_total,                                             \
	  "Of those, copies handed to an mz-fanout helper thread", NONE)                   \
	X(HISTOGRAM, block_seal_seconds,                                                  \
	  "Slot end to its block sealed, stored and handed to the feed", LAT_US)           \
	X(GAUGE, slot_lag, "Slots between the current slot and the newest sealed block's", NONE) \
	X(GAUGE, feed_subscribers, "Live block-feed subscriptions", NONE)                    \
	X(GAUGE, feed_cache_blocks, "Recent blocks held in memory for the feed", NONE)       \
	X(GAUGE, feed_cache_bytes, "Memory those blocks hold (feed.cache_mib caps it)", NONE) \
	X(GAUGE, ws_connections, "Open WebSocket connections", NONE)                         \
	X(GAUGE, ws_send_queue_bytes, "Bytes queued to WebSocket clients, all connections", NONE) \
	X(GAUGE, ws_send_queue_max_bytes, "Bytes queued to the most backed-up client", NONE) \
	X(GAUGE, ingress_queue_depth, "Submissions waiting for the committer", NONE)         \
	X(GAUGE, done_queue_depth, "Answers and blocks waiting for the network thread", NONE) \
	X(COUNTER, feed_drops_total, "Clients disconnected for a full send queue", NONE)     \
	X(GAUGE, healthy, "1 when /healthz answers 200, else 0", NONE)                       \
	X(GAUGE, halted, "1 after a storage failure stopped the sequencer", NONE)            \
	X(COUNTER, da_blocks_total, "Blocks erasure-coded with every shard durable", NONE)   \
	X(COUNTER, da_payload_bytes_total, "Payload bytes of those blocks", NONE)            \
	X(HISTOGRAM, da_encode_seconds, "Per block: payload layout, coding, shard hashing", LAT_US) \
	X(HISTOGRAM, da_write_seconds, "Per block: writing and fsyncing every shard", LAT_US) \
	X(GAUGE, available_height, "Height of the newest available block", NONE)            \
	X(GAUGE, da_halted, "1 after a shard write failed and stopped the DA stage", NONE) \
	X(GAUGE, da_queue_bytes, "Sealed blocks handed to mz-da and waiting (da.queue_mib caps it)", NONE) \
	X(COUNTER, proposer_blocks_total, "Slot winners' sub-blocks accepted", NONE)        \
	X(GAUGE, txindex_unindexed,                                                       \
	  "Transactions held in memory, not yet merged into txindex.db", NONE)              \
	X(COUNTER, txindex_merges_total, "Batches merged into txindex.db", NONE)             \
	X(COUNTER, txindex_merge_pieces_total,                                            \
	  "Transactions (pieces of a batch) that merges committed to txindex.db", NONE)     \
	X(GAUGE, txindex_filter_ready,                                                    \
	  "1 once the hash filter holds what txindex.db held at start", NONE)               \
	X(COUNTER, txindex_filter_skips_total,                                            \
	  "Hash lookups the filter answered without reading txindex.db", NONE)             \
	X(GAUGE, txindex_filter_bytes,                                                    \
	  "Memory of the hash filter in front of txindex.db (grows with the rows)", NONE)   \
	X(COUNTER, txindex_filter_growth_failures_total,                                 \
	  "Growths of the hash filter that failed (the old filter stays; retried later)", NONE) \
	X(HISTOGRAM, txindex_merge_seconds, "Per batch: sorting and writing it to txindex.db, with the pauses between its pieces", LAT_US) \
	X(COUNTER, txindex_merge_pauses_total,                                           \
	  "Pauses mz-index took between two pieces of a merge", NONE)                       \
	X(HISTOGRAM, txindex_full_wait_seconds,                                          \
	  "Per wait: the committer held with the map full, until mz-index merged", LAT_US) \
	X(COUNTER, storage_writebehind_bytes_total,                                       \
	  "Bytes of database and WAL writes handed to write-back as written, ahead of their fsync", NONE) \
	X(COUNTER, proposer_misses_total,                                                 \
	  "Winner slots the appliance ordered itself (deadline missed, invalid block)", NONE)

enum app_metric {
#define APP_M_ENUM(kind, name, help, b) APP_M_##name,
	APP_METRICS(APP_M_ENUM)
#undef APP_M_ENUM
	APP_M__COUNT
};

/* Lock-free (relaxed atomics): callable from every thread, on hot paths. */
void app_metric_add(enum app_metric m, uint64_t n);
void app_metric_set(enum app_metric m, uint64_t v);
void app_metric_observe(enum app_metric m, uint64_t v);
uint64_t app_metric_get(enum app_metric m); /* counters and gauges */

/* A growing text buffer for the scrape; oom is sticky. */
struct app_text {
	char *p;
	size_t len, cap;
	int oom;
};
void app_text_printf(struct app_text *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Appends every table metric in Prometheus text format 0.0.4. */
void app_metrics_render(struct app_text *t);

/* ---- health (health.c) ------------------------------------------------ */

/*
 * Health is a table of components, each with a progress deadline. A
 * component calls app_health_beat() whenever it makes progress; it is
 * unhealthy once max_age_ms passes without a beat, or from
 * app_health_fail() until its next beat. /healthz answers 503 with the
 * reasons while any component is unhealthy.
 *
 * Built in: "blocks" (a block is sealed every slot) and "feed" (sealed
 * blocks reach the feed), both with a deadline of two slots. A new
 * subsystem (DA encoding, the L1 outbox) registers at start-up, before its
 * thread runs:
 *     int id = app_health_register("da", 2 * slot_ms);
 *     ... app_health_beat(id);                 after each encoded block
 *     ... app_health_fail(id, "shard dir /srv/d1: EIO");
 * Beat and fail are callable from any thread; register is not.
 */
#define APP_HEALTH_MAX 16
int app_health_register(const char *name, uint64_t max_age_ms); /* id, or APP_EFULL */
void app_health_beat(int id);
void app_health_fail(int id, const char *reason);
/* 0 when healthy; else 1 with "name: reason; name: reason" in out. */
int app_health_check(char *out, size_t len);
void app_health_reset(void); /* forget every component (tests) */

/* ---- the status page (status.c, appliance/www/) ------------------------ */

/*
 * The files of the read-only status page, generated from appliance/www/ by
 * scripts/embed-www at build time; ends with an entry whose path is NULL.
 * status.html is served at "/" (GET only: POST and WebSocket upgrades on
 * "/" stay JSON-RPC), the others at "/<name>", all with
 * APP_WWW_CSP: scripts, styles and connections to this origin only.
 */
struct app_www_file {
	const char *path, *ctype;
	const unsigned char *data;
	size_t len;
};
extern const struct app_www_file app_www_files[];

#define APP_WWW_CSP                                                                       \
	"default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "  \
	"img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

#endif /* MEZZ_OPS_H */
