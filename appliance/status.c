/*
 * status.c - operations endpoints on the lws thread: GET /metrics
 * (Prometheus text), GET /healthz (200 "ok" or 503 with the reasons), the
 * status page's files (GET /, /status.js, /status.css; see ops.h), and the
 * timer that samples gauges and judges progress every quarter slot.
 *
 * Health components (ops.h): "blocks" beats whenever the committer's sealed
 * height moves (a block is sealed every slot, empty or not); "feed" beats
 * while the feed has every sealed block; "sequencer" fails once a storage
 * failure halted the sequencer. Both deadlines are two slots.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/ops.h"
#include "appliance/server.h"
#include "sequencer/seq.h"

static void sample_tick(lws_sorted_usec_list_t *sul)
{
	struct app_server *s = lws_container_of(sul, struct app_server, ops_sul);
	uint64_t every = (uint64_t)s->cfg->slot_ms * 250; /* a quarter slot, in us */

	app_ops_sample(s);
	lws_sul_schedule(s->ctx, 0, &s->ops_sul, sample_tick, (lws_usec_t)(every < 10000 ? 10000 : every));
}

int app_ops_init(struct app_server *s)
{
	uint64_t two_slots = 2 * (uint64_t)s->cfg->slot_ms;
	int64_t v = 0;

	s->h_blocks = app_health_register("blocks", two_slots);
	s->h_feed = app_health_register("feed", two_slots);
	s->h_seq = app_health_register("sequencer", 0);
	if (s->h_blocks < 0 || s->h_feed < 0 || s->h_seq < 0)
		return APP_EFULL;
	if (app_store_auth_version(s->ro, &v) == 0)
		app_limits_refresh(&s->limits, v);
	memset(&s->ops_sul, 0, sizeof(s->ops_sul));
	s->ops_armed = 1;
	sample_tick(&s->ops_sul);
	return 0;
}

void app_ops_stop(struct app_server *s)
{
	if (s->ops_armed)
		lws_sul_cancel(&s->ops_sul);
	s->ops_armed = 0;
}

void app_ops_sample(struct app_server *s)
{
	struct app_stats *st = &s->committer->stats;
	uint64_t h = atomic_load(&st->has_block) ? atomic_load(&st->height) : 0;
	size_t ws = 0, qbytes = 0, qmax = 0;
	char why[512];

	if (h != s->seen_height) {
		s->seen_height = h;
		app_health_beat(s->h_blocks);
	}
	if (s->feed.tip >= h)
		app_health_beat(s->h_feed);
	if (atomic_load(&st->halted))
		app_health_fail(s->h_seq, "halted after a storage failure (see the log)");
	for (struct app_conn *c = s->ws_list; c; c = c->ws_next) {
		ws++;
		qbytes += c->out_bytes;
		if (c->out_bytes > qmax)
			qmax = c->out_bytes;
	}
	app_metric_set(APP_M_block_height, h);
	app_metric_set(APP_M_feed_subscribers, s->subscribers);
	app_metric_set(APP_M_feed_cache_blocks, s->feed.blocks);
	app_metric_set(APP_M_feed_cache_bytes, s->feed.bytes);
	app_metric_set(APP_M_da_queue_bytes, app_avail_queued_bytes(s->committer));
	app_metric_set(APP_M_ws_connections, ws);
	app_metric_set(APP_M_ws_send_queue_bytes, qbytes);
	app_metric_set(APP_M_ws_send_queue_max_bytes, qmax);
	app_metric_set(APP_M_ingress_queue_depth, app_queue_len(s->ingress));
	app_metric_set(APP_M_done_queue_depth, app_queue_len(s->done));
	app_metric_set(APP_M_txs_committed_total, atomic_load(&st->txs));
	app_metric_set(APP_M_groups_committed_total, atomic_load(&st->groups));
	app_metric_set(APP_M_halted, (uint64_t)atomic_load(&st->halted));
	app_metric_set(APP_M_healthy, app_health_check(why, sizeof(why)) ? 0 : 1);
	if (h && s->feed.tip) {
		struct app_block *b = app_feed_get(s, s->feed.tip);

		if (b) {
			uint64_t now = seq_slot_at(app_wall_ms(), 0, (uint32_t)s->cfg->slot_ms);

			/* The open slot is never sealed yet: lag 0 means up to date. */
			app_metric_set(APP_M_slot_lag,
				       now > b->hdr.slot + 1 ? now - b->hdr.slot - 1 : 0);
			app_block_unref(b);
		}
	}
}

/* Prometheus label values escape backslash, quote and newline. */
static void label(char *out, size_t len, const char *v)
{
	size_t k = 0;

	for (; *v && k + 3 < len; v++) {
		if (*v == '\\' || *v == '"' || *v == '\n') {
			out[k++] = '\\';
			out[k++] = *v == '\n' ? 'n' : *v;
		} else {
			out[k++] = *v;
		}
	}
	out[k] = 0;
}

static void render_tenants(struct app_server *s, struct app_text *t)
{
	static const struct {
		const char *name, *help;
		size_t off;
	} cols[] = {
		{"tenant_txs_total", "Transactions accepted per tenant",
		 offsetof(struct app_tenant_state, txs)},
		{"tenant_bytes_total", "Payload bytes accepted per tenant",
		 offsetof(struct app_tenant_state, bytes)},
		{"tenant_rejected_total", "Submissions refused per tenant (any reason)",
		 offsetof(struct app_tenant_state, rejected)},
		{"tenant_limited_total", "Submissions refused by a rate limit per tenant",
		 offsetof(struct app_tenant_state, limited)},
	};
	char lab[160];

	for (size_t k = 0; k < sizeof(cols) / sizeof(cols[0]); k++) {
		app_text_printf(t, "# HELP mezz_%s %s\n# TYPE mezz_%s counter\n", cols[k].name,
				cols[k].help, cols[k].name);
		for (size_t i = 0; i < s->limits.ntenants; i++) {
			const struct app_tenant_state *ts = &s->limits.tenants[i];

			label(lab, sizeof(lab), ts->name);
			app_text_printf(t, "mezz_%s{tenant=\"%s\"} %llu\n", cols[k].name, lab,
					(unsigned long long)*(const uint64_t *)((const char *)ts +
										 cols[k].off));
		}
	}
}

int app_ops_get(struct app_conn *c, const char *uri)
{
	struct app_server *s = c->srv;
	struct app_text t = {0};
	char why[512];
	int rc;

	if (!strcmp(uri, "/metrics")) {
		int64_t v;

		if (app_store_auth_version(s->ro, &v) == 0)
			app_limits_refresh(&s->limits, v);
		app_ops_sample(s);
		app_metrics_render(&t);
		render_tenants(s, &t);
		if (t.oom)
			rc = app_http_reply(c, HTTP_STATUS_INTERNAL_SERVER_ERROR, "text/plain",
					    "out of memory\n", 14);
		else
			rc = app_http_reply(c, HTTP_STATUS_OK, "text/plain; version=0.0.4", t.p,
					    t.len);
		free(t.p);
		return rc ? -1 : 1;
	}
	if (!strcmp(uri, "/healthz")) {
		app_ops_sample(s);
		if (app_health_check(why, sizeof(why))) {
			app_text_printf(&t, "unhealthy: %s\n", why);
			rc = app_http_reply(c, HTTP_STATUS_SERVICE_UNAVAILABLE, "text/plain",
					    t.oom ? "unhealthy\n" : t.p, t.oom ? 10 : t.len);
			free(t.p);
			return rc ? -1 : 1;
		}
		return app_http_reply(c, HTTP_STATUS_OK, "text/plain", "ok\n", 3) ? -1 : 1;
	}
	for (const struct app_www_file *f = app_www_files; f->path; f++)
		if (!strcmp(uri, f->path)) {
			rc = app_http_reply(c, HTTP_STATUS_OK, f->ctype, (const char *)f->data,
					    f->len);
			c->http_csp = APP_WWW_CSP;
			return rc ? -1 : 1;
		}
	return 0;
}
