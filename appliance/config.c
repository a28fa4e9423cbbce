/*
 * config.c - table-driven configuration (after Redis' standardConfig).
 *
 * app_cfg_table is the single source of truth: parsing, defaults, bounds,
 * `mezz config check`, and the test that keeps firmware-config/mezzanine.conf
 * in step with it all read this table. Adding a key means adding a row here
 * and a commented entry in the default file.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "appliance/app.h"

#define OFF(f) offsetof(struct app_config, f)

const struct app_cfg_entry app_cfg_table[] = {
	{"server", "listen", APP_CFG_LISTEN, 0, 0, "127.0.0.1:9545", OFF(listen_addr),
	 "address:port for JSON-RPC over HTTP and WebSocket"},
	{"server", "max_message_bytes", APP_CFG_INT, 1024, 1L << 30, "4194304",
	 OFF(max_message_bytes), "largest HTTP body or WebSocket message accepted"},
	{"server", "max_tx_bytes", APP_CFG_INT, 1, 16L << 20, "131072", OFF(max_tx_bytes),
	 "largest single transaction payload accepted"},
	{"server", "max_batch_items", APP_CFG_INT, 1, 1000000, "10000", OFF(max_batch_items),
	 "most requests in one JSON-RPC batch array"},
	{"server", "ws_send_queue_bytes", APP_CFG_INT, 65536, 1L << 31, "16777216",
	 OFF(ws_send_queue_bytes), "bytes queued to one client before it is disconnected"},
	{"server", "ws_sndbuf_bytes", APP_CFG_INT, 0, 1L << 30, "262144", OFF(ws_sndbuf_bytes),
	 "kernel send buffer of a WebSocket connection, 0 = kernel autotuning"},
	{"storage", "data_dir", APP_CFG_STR, 1, 511, "/var/lib/mezzanine", OFF(data_dir),
	 "directory for the database and the identity key"},
	{"storage", "da_dirs", APP_CFG_DIRS, 0, 4095, "", OFF(da_dirs),
	 "comma-separated shard directories (empty: data_dir/shards)"},
	{"storage", "cache_mib", APP_CFG_INT, 1, 65536, "64", OFF(cache_mib),
	 "SQLite page cache of the committer's connection, MiB"},
	{"storage", "sync_pipeline", APP_CFG_INT, 0, 1, "0", OFF(sync_pipeline),
	 "1: fsync group N's WAL on mz-sync while group N+1 is built (answers still wait "
	 "for it); 0: inside the COMMIT"},
	{"storage", "tx_retention_blocks", APP_CFG_INT, 0, 1L << 40, "0",
	 OFF(tx_retention_blocks), "blocks whose transactions stay in the database (0: all)"},
	{"da", "k", APP_CFG_INT, 1, 255, "16", OFF(da_k), "data shards per block"},
	{"da", "m", APP_CFG_INT, 1, 255, "16", OFF(da_m),
	 "parity shards per block: any m may be lost"},
	{"da", "queue_mib", APP_CFG_INT, 1, 65536, "256", OFF(da_queue_mib),
	 "memory of sealed blocks handed to mz-da and waiting; past it mz-da reads them from storage"},
	{"da", "retention_blocks", APP_CFG_INT, 0, 1L << 40, "0", OFF(da_retention_blocks),
	 "blocks whose shards are kept (0: all)"},
	{"sequencer", "slot_ms", APP_CFG_INT, 10, 60000, "250", OFF(slot_ms),
	 "slot duration: one superblock is sealed per slot"},
	{"sequencer", "proposer_deadline_ms", APP_CFG_INT, 1, 59999, "50",
	 OFF(proposer_deadline_ms),
	 "a slot winner's sub-block is due this many ms before its slot ends (at least slot_ms / 5 is left otherwise)"},
	{"sequencer", "group_max_txs", APP_CFG_INT, 1, 65536, "4096", OFF(group_max_txs),
	 "most transactions in one preconfirmation group (one fsync)"},
	{"sequencer", "group_linger_us", APP_CFG_INT, 0, 1000, "0", OFF(group_linger_us),
	 "extra wait for more transactions before committing a group"},
	{"sequencer", "background_nice", APP_CFG_INT, 0, 19, "10", OFF(background_nice),
	 "nice value of the background threads (mz-da, mz-index); 0 runs them at the preconfirmation path's priority"},
	{"sequencer", "network_cpu", APP_CFG_INT, -1, CPU_SETSIZE - 1, "-1", OFF(network_cpu),
	 "CPU the network thread (lws: requests and answers) is pinned to; -1: not pinned"},
	{"sequencer", "commit_cpu", APP_CFG_INT, -1, CPU_SETSIZE - 1, "-1", OFF(commit_cpu),
	 "CPU mz-commit (inserts, fsync, receipts) is pinned to; -1: not pinned"},
	{"sequencer", "ingress_queue_max", APP_CFG_INT, 16, 1L << 22, "65536",
	 OFF(ingress_queue_max), "transactions waiting for commit before ingress answers busy"},
	{"feed", "queue_max_blocks", APP_CFG_INT, 1, 100000, "256", OFF(feed_queue_max_blocks),
	 "blocks queued to one subscriber before it is disconnected"},
	{"feed", "cache_blocks", APP_CFG_INT, 1, 100000, "64", OFF(feed_cache_blocks),
	 "recent blocks kept in memory for subscribers"},
	{"feed", "cache_mib", APP_CFG_INT, 1, 65536, "64", OFF(feed_cache_mib),
	 "memory those recent blocks may hold; the newest is always kept"},
	{"feed", "fanout_threads", APP_CFG_INT, 1, APP_FANOUT_MAX_THREADS, "2",
	 OFF(feed_fanout_threads),
	 "threads writing a live block's copies to subscribers (plain WebSocket; with TLS 1)"},
	{"log", "level", APP_CFG_STR, 1, 15, "info", OFF(log_level),
	 "debug, info, warn or error"},
	/* operations (connection timeouts, TLS, limits) */
	{"server", "handshake_timeout_s", APP_CFG_INT, 1, 300, "10", OFF(handshake_timeout_s),
	 "seconds a client has to finish its TLS, HTTP or WebSocket handshake"},
	{"server", "idle_timeout_s", APP_CFG_INT, 5, 65535, "120", OFF(idle_timeout_s),
	 "seconds an HTTP keep-alive or silent WebSocket connection may stay idle"},
	{"server", "ws_ping_s", APP_CFG_INT, 1, 3600, "30", OFF(ws_ping_s),
	 "seconds of WebSocket silence before the server sends a ping"},
	{"server", "tls_cert", APP_CFG_STR, 0, 511, "", OFF(tls_cert),
	 "PEM certificate chain; with tls_key, the port speaks only TLS 1.2/1.3"},
	{"server", "tls_key", APP_CFG_STR, 0, 511, "", OFF(tls_key),
	 "PEM private key of tls_cert"},
	{"limits", "tenant_tx_per_s", APP_CFG_INT, 0, 10000000, "0", OFF(limits_tenant_tx_per_s),
	 "default transactions/s per tenant, 0 = unlimited"},
	{"limits", "tenant_bytes_per_s", APP_CFG_INT, 0, 1L << 40, "0",
	 OFF(limits_tenant_bytes_per_s), "default payload bytes/s per tenant, 0 = unlimited"},
	{"limits", "ip_tx_per_s", APP_CFG_INT, 0, 10000000, "0", OFF(limits_ip_tx_per_s),
	 "anonymous transactions/s per client address, 0 = unlimited"},
	{"limits", "ip_bytes_per_s", APP_CFG_INT, 0, 1L << 40, "0", OFF(limits_ip_bytes_per_s),
	 "anonymous payload bytes/s per client address, 0 = unlimited"},
	{"limits", "ip_max_connections", APP_CFG_INT, 0, 1000000, "0",
	 OFF(limits_ip_max_connections), "open connections per client address, 0 = unlimited"},
	{"limits", "ip_table_entries", APP_CFG_INT, 64, 1L << 20, "16384",
	 OFF(limits_ip_table_entries),
	 "client addresses tracked for the per-address limits (a power of two above is used)"},
	{"limits", "burst_ms", APP_CFG_INT, 1, 60000, "1000", OFF(limits_burst_ms),
	 "bucket depth: a limit allows this many milliseconds of its rate at once"},
	{"l1", "rpc_urls", APP_CFG_STR, 0, 1023, "", OFF(l1_rpc_urls),
	 "comma-separated Ethereum JSON-RPC URLs, tried in turn (empty: L1 posting off)"},
	{"l1", "chain_id", APP_CFG_INT, 1, 1L << 53, "1", OFF(l1_chain_id),
	 "chain id of the L1 (checked against the node)"},
	{"l1", "inbox", APP_CFG_STR, 0, 63, "", OFF(l1_inbox), "address of the Inbox contract"},
	{"l1", "keystore", APP_CFG_STR, 0, 511, "", OFF(l1_keystore),
	 "keystore v3 file of the posting key"},
	{"l1", "keystore_password_file", APP_CFG_STR, 0, 511, "", OFF(l1_keystore_password_file),
	 "file holding the keystore's password (first line)"},
	{"l1", "post_interval_ms", APP_CFG_INT, 100, 86400000, "12000", OFF(l1_post_interval_ms),
	 "least time between two batches"},
	{"l1", "max_blocks_per_batch", APP_CFG_INT, 1, 100000, "1024",
	 OFF(l1_max_blocks_per_batch), "most superblocks committed by one batch"},
	{"l1", "confirmations", APP_CFG_INT, 1, 1000, "1", OFF(l1_confirmations),
	 "L1 blocks (its own included) before a batch is posted"},
	{"l1", "bump_after_blocks", APP_CFG_INT, 1, 1000, "3", OFF(l1_bump_after_blocks),
	 "L1 blocks without inclusion before the fees are bumped"},
	{"l1", "max_fee_gwei", APP_CFG_INT, 1, 1000000, "200", OFF(l1_max_fee_gwei),
	 "cap on maxFeePerGas: above it the poster waits"},
	{"l1", "timeout_ms", APP_CFG_INT, 100, 600000, "10000", OFF(l1_timeout_ms),
	 "timeout of one L1 JSON-RPC request per URL"},
	{"l1", "ca_file", APP_CFG_STR, 0, 511, "", OFF(l1_ca_file),
	 "PEM file of the CAs an https:// L1 URL's certificate is checked against"},
	{"rights", "enabled", APP_CFG_INT, 0, 1, "0", OFF(rights_enabled),
	 "1: run execution-ticket sales for future slot windows"},
	{"rights", "window_slots", APP_CFG_INT, 1, 1000000, "240", OFF(rights_window_slots),
	 "slots in the window one sale sells"},
	{"rights", "close_lead", APP_CFG_INT, 2, 1000000, "120", OFF(rights_close_lead),
	 "purchases stop this many slots before the window starts"},
	{"rights", "improve_lead", APP_CFG_INT, 1, 1000000, "100", OFF(rights_improve_lead),
	 "better allocations are taken until this many slots before the window"},
	{"rights", "ahead_slots", APP_CFG_INT, 3, 2000000, "360", OFF(rights_ahead_slots),
	 "a sale opens at least this many slots before its window starts"},
	{"rights", "price_gwei", APP_CFG_INT, 1, 1L << 38, "1000", OFF(rights_price_gwei),
	 "ticket price of the first sale; later ones follow the price rule"},
	{"rights", "floor_gwei", APP_CFG_INT, 1, 1L << 38, "100", OFF(rights_floor_gwei),
	 "the price rule never goes below this"},
	{"rights", "cap", APP_CFG_INT, 2, 1L << 24, "1000", OFF(rights_cap),
	 "most tickets one sale sells"},
	{"rights", "target", APP_CFG_INT, 1, (1L << 24) - 1, "500", OFF(rights_target),
	 "tickets per sale the price rule aims for (below cap)"},
	{"rights", "burn_bps", APP_CFG_INT, 0, 10000, "1000", OFF(rights_burn_bps),
	 "share of each winning bundle's revenue burned, in basis points"},
	{"rights", "l1_block_ms", APP_CFG_INT, 100, 600000, "12000", OFF(rights_l1_block_ms),
	 "L1 block time, to pick the L1 block whose hash seeds a sale's draw"},
};
const size_t app_cfg_table_len = sizeof(app_cfg_table) / sizeof(app_cfg_table[0]);

static const struct app_cfg_entry *find(const char *section, const char *name)
{
	for (size_t i = 0; i < app_cfg_table_len; i++)
		if (!strcmp(app_cfg_table[i].section, section) &&
		    !strcmp(app_cfg_table[i].name, name))
			return &app_cfg_table[i];
	return NULL;
}

/*
 * Split a comma-separated directory list, trimming blanks around each entry.
 * Empty entries and duplicates are errors: a shard directory listed twice
 * would hold two shards of a block, so losing it would lose both.
 */
static int split_dirs(const char *v, char **dirs, size_t *n, char *why, size_t whylen)
{
	const char *p = v;

	*n = 0;
	while (*p == ' ' || *p == '\t')
		p++;
	if (!*p)
		return 0;
	for (;;) {
		const char *end = strchr(p, ','), *stop;
		size_t len;

		if (!end)
			end = p + strlen(p);
		stop = end;
		while (stop > p && (stop[-1] == ' ' || stop[-1] == '\t'))
			stop--;
		len = (size_t)(stop - p);
		if (len == 0 || len > 511) {
			snprintf(why, whylen, "entry %zu is %s", *n + 1,
				 len ? "longer than 511 characters" : "empty");
			goto fail;
		}
		if (*n == APP_DA_MAX_DIRS) {
			snprintf(why, whylen, "more than %d directories", APP_DA_MAX_DIRS);
			goto fail;
		}
		dirs[*n] = strndup(p, len);
		if (!dirs[*n]) {
			snprintf(why, whylen, "out of memory");
			goto fail;
		}
		for (size_t i = 0; i < *n; i++)
			if (!strcmp(dirs[i], dirs[*n])) {
				snprintf(why, whylen, "'%s' is listed twice", dirs[i]);
				(*n)++;
				goto fail;
			}
		(*n)++;
		if (!*end)
			return 0;
		p = end + 1;
		while (*p == ' ' || *p == '\t')
			p++;
	}
fail:
	app_config_dirs_free(dirs, *n);
	*n = 0;
	return APP_ECONFIG;
}

void app_config_dirs_free(char **dirs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(dirs[i]);
}

int app_config_da_dirs(const struct app_config *c, char ***out, size_t *n)
{
	char *tmp[APP_DA_MAX_DIRS], why[128];
	int rc;

	*out = NULL;
	*n = 0;
	rc = split_dirs(c->da_dirs, tmp, n, why, sizeof(why));
	if (rc)
		return rc;
	if (*n == 0) {
		size_t l = strlen(c->data_dir) + sizeof("/shards");

		tmp[0] = malloc(l);
		if (!tmp[0])
			return APP_ENOMEM;
		snprintf(tmp[0], l, "%s/shards", c->data_dir);
		*n = 1;
	}
	*out = malloc(*n * sizeof(char *));
	if (!*out) {
		app_config_dirs_free(tmp, *n);
		*n = 0;
		return APP_ENOMEM;
	}
	memcpy(*out, tmp, *n * sizeof(char *));
	return 0;
}

int app_config_validate(const struct app_config *c, char *err, size_t errlen)
{
	if (c->l1_rpc_urls[0] && (!c->l1_inbox[0] || !c->l1_keystore[0])) {
		snprintf(err, errlen,
			 "l1.rpc_urls is set, so l1.inbox and l1.keystore must be set too "
			 "(or empty l1.rpc_urls to turn L1 posting off)");
		return APP_ECONFIG;
	}
	if (c->da_k + c->da_m > 256) {
		snprintf(err, errlen,
			 "da.k + da.m = %ld + %ld = %ld: a Reed-Solomon code over GF(2^8) "
			 "has at most 256 shards",
			 c->da_k, c->da_m, c->da_k + c->da_m);
		return APP_ECONFIG;
	}
	if (c->rights_enabled) {
		if (c->rights_improve_lead >= c->rights_close_lead) {
			snprintf(err, errlen,
				 "rights.improve_lead (%ld) must be below rights.close_lead (%ld): "
				 "proposals are taken between the close and the deadline",
				 c->rights_improve_lead, c->rights_close_lead);
			return APP_ECONFIG;
		}
		if (c->rights_ahead_slots <= c->rights_close_lead ||
		    c->rights_ahead_slots > c->rights_window_slots + c->rights_close_lead) {
			snprintf(err, errlen,
				 "rights.ahead_slots (%ld) must be above rights.close_lead (%ld) and at "
				 "most rights.window_slots + rights.close_lead (%ld), or sales would "
				 "open closed or leave gaps between windows",
				 c->rights_ahead_slots, c->rights_close_lead,
				 c->rights_window_slots + c->rights_close_lead);
			return APP_ECONFIG;
		}
		/* With L1 the seed is a block after the deadline, read once
		 * l1.confirmations deep (rights.c, find_seed); the grant comes
		 * with the settlement. A lead shorter than that hands the winner
		 * its window after the window began, at the full price. */
		if (c->l1_rpc_urls[0] && c->rights_improve_lead * c->slot_ms <
						 (c->l1_confirmations + 1) * c->rights_l1_block_ms) {
			long need = (c->l1_confirmations + 1) * c->rights_l1_block_ms;

			snprintf(err, errlen,
				 "rights.improve_lead (%ld slots of %ld ms) must cover the draw block "
				 "and l1.confirmations (%ld) at rights.l1_block_ms (%ld): at least "
				 "%ld ms, i.e. %ld slots, or winners get their window only after it "
				 "starts",
				 c->rights_improve_lead, c->slot_ms, c->l1_confirmations,
				 c->rights_l1_block_ms, need, (need + c->slot_ms - 1) / c->slot_ms);
			return APP_ECONFIG;
		}
		if (c->rights_target >= c->rights_cap) {
			snprintf(err, errlen, "rights.target (%ld) must be below rights.cap (%ld)",
				 c->rights_target, c->rights_cap);
			return APP_ECONFIG;
		}
		if (c->rights_floor_gwei > c->rights_price_gwei) {
			snprintf(err, errlen,
				 "rights.floor_gwei (%ld) must not be above rights.price_gwei (%ld)",
				 c->rights_floor_gwei, c->rights_price_gwei);
			return APP_ECONFIG;
		}
	}
	return 0;
}

/* Parse one value into the struct. On failure writes a reason into why. */
static int apply(struct app_config *c, const struct app_cfg_entry *e, const char *v,
		 char *why, size_t whylen)
{
	char *end;
	long n;

	switch (e->type) {
	case APP_CFG_INT:
		errno = 0;
		n = strtol(v, &end, 10);
		if (errno || end == v || *end) {
			snprintf(why, whylen, "'%s' is not an integer", v);
			return APP_ECONFIG;
		}
		if (n < e->min || n > e->max) {
			snprintf(why, whylen, "%ld is out of range [%ld, %ld]", n, e->min, e->max);
			return APP_ECONFIG;
		}
		*(long *)((char *)c + e->offset) = n;
		return 0;
	case APP_CFG_STR:
		if (strlen(v) < (size_t)e->min || strlen(v) > (size_t)e->max) {
			snprintf(why, whylen, "length must be %ld..%ld characters", e->min, e->max);
			return APP_ECONFIG;
		}
		if (!strcmp(e->name, "level") && !strcmp(e->section, "log")) {
			enum app_log_level l;

			if (app_log_level_parse(v, &l)) {
				snprintf(why, whylen, "'%s' is not one of debug, info, warn, error", v);
				return APP_ECONFIG;
			}
		}
		snprintf((char *)c + e->offset, (size_t)e->max + 1, "%s", v);
		return 0;
	case APP_CFG_DIRS: {
		char *dirs[APP_DA_MAX_DIRS];
		size_t nd = 0;

		if (strlen(v) > (size_t)e->max) {
			snprintf(why, whylen, "longer than %ld characters", e->max);
			return APP_ECONFIG;
		}
		n = split_dirs(v, dirs, &nd, why, whylen);
		if (n)
			return (int)n;
		app_config_dirs_free(dirs, nd);
		snprintf((char *)c + e->offset, (size_t)e->max + 1, "%s", v);
		return 0;
	}
	case APP_CFG_LISTEN: {
		const char *colon = strrchr(v, ':'), *a = v;
		size_t alen;
		char addr[sizeof(c->listen_addr)];
		unsigned char bin[16];

		if (!colon || colon == v || (size_t)(colon - v) >= sizeof(c->listen_addr)) {
			snprintf(why, whylen, "'%s' is not address:port", v);
			return APP_ECONFIG;
		}
		errno = 0;
		n = strtol(colon + 1, &end, 10);
		if (errno || end == colon + 1 || *end || n < 1 || n > 65535) {
			snprintf(why, whylen, "port in '%s' must be 1..65535", v);
			return APP_ECONFIG;
		}
		alen = (size_t)(colon - v);
		if (*a == '[' && alen >= 2 && a[alen - 1] == ']') /* [v6]:port */
			a++, alen -= 2;
		memcpy(addr, a, alen);
		addr[alen] = 0;
		/* lws would take a host or interface name it cannot resolve as
		 * "no such interface" and listen nowhere: literals only. */
		if (inet_pton(AF_INET, addr, bin) != 1 && inet_pton(AF_INET6, addr, bin) != 1) {
			snprintf(why, whylen,
				 "'%s': the address must be an IPv4 or [IPv6] literal, such as "
				 "127.0.0.1:9545, 0.0.0.0:9545 or [::1]:9545",
				 v);
			return APP_ECONFIG;
		}
		memcpy(c->listen_addr, addr, alen + 1);
		c->listen_port = (int)n;
		return 0;
	}
	}
	return APP_ECONFIG;
}

void app_config_defaults(struct app_config *c)
{
	char why[128];

	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < app_cfg_table_len; i++)
		if (apply(c, &app_cfg_table[i], app_cfg_table[i].dflt, why, sizeof(why)))
			APP_PANIC("default for %s.%s is invalid: %s", app_cfg_table[i].section,
				  app_cfg_table[i].name, why);
}

struct load_ctx {
	struct app_config *c;
	const char *path;
	FILE *f;
	int line;
	int errors;
	int key_line[128]; /* line of each table entry's last assignment; 0: unset */
	char *err;
	size_t errlen, used;
};

static void add_error(struct load_ctx *x, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void add_error(struct load_ctx *x, int line, const char *fmt, ...)
{
	va_list ap;
	int n;

	x->errors++;
	if (!x->err || x->used + 1 >= x->errlen)
		return;
	n = snprintf(x->err + x->used, x->errlen - x->used, "%s:%d: ", x->path, line);
	if (n > 0 && x->used + (size_t)n < x->errlen)
		x->used += (size_t)n;
	va_start(ap, fmt);
	n = vsnprintf(x->err + x->used, x->errlen - x->used, fmt, ap);
	va_end(ap);
	if (n > 0 && x->used + (size_t)n < x->errlen)
		x->used += (size_t)n;
	if (x->used + 1 < x->errlen) {
		x->err[x->used++] = '\n';
		x->err[x->used] = 0;
	}
}

/*
 * Is this line something inih will silently skip (a syntax error)? inih
 * reports only the first such line; checking each line as it is read lets
 * `mezz config check` name every one.
 */
static int bad_syntax(const char *line)
{
	const char *p = line, *end;

	while (*p == ' ' || *p == '\t')
		p++;
	if (!*p || *p == '\n' || *p == '\r' || *p == '#' || *p == ';')
		return 0;
	if (*p == '[') {
		end = strchr(p, ']');
		return !end || end == p + 1;
	}
	end = strpbrk(p, "=:");
	return !end || end == p;
}

/* inih reader that counts lines, so every error can name its line. */
static char *reader(char *buf, int size, void *stream)
{
	struct load_ctx *x = stream;
	char *r = fgets(buf, size, x->f);

	if (r) {
		x->line++;
		if (bad_syntax(r))
			add_error(x, x->line, "syntax error (expected 'key = value' or '[section]')");
	}
	return r;
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
	struct load_ctx *x = user;
	const struct app_cfg_entry *e = find(section, name);
	char why[256];

	if (!*name) /* "= value": reported as a syntax error by reader() */
		return 1;
	if (!e) {
		add_error(x, x->line, "unknown key '%s' in section [%s]", name, section);
		return 1;
	}
	x->key_line[e - app_cfg_table] = x->line;
	if (apply(x->c, e, value, why, sizeof(why)))
		add_error(x, x->line, "%s.%s: %s (%s)", section, name, why, e->help);
	return 1; /* keep going: report every error, not just the first */
}

/* 1 if the sentence names "section.key" of e as a whole word. */
static int names_key(const char *why, const struct app_cfg_entry *e)
{
	char name[96];
	size_t n = (size_t)snprintf(name, sizeof(name), "%s.%s", e->section, e->name);

	for (const char *p = why; (p = strstr(p, name)) != NULL; p++) {
		char before = p == why ? ' ' : p[-1], after = p[n];

		if (!isalnum((unsigned char)before) && before != '_' && before != '.' &&
		    !isalnum((unsigned char)after) && after != '_')
			return 1;
	}
	return 0;
}

int app_config_load(struct app_config *c, const char *path, char *err, size_t errlen)
{
	struct load_ctx x = {.c = c, .path = path, .err = err, .errlen = errlen};
	struct stat st;
	char why[256];
	int rc, read_err;

	_Static_assert(sizeof(x.key_line) / sizeof(x.key_line[0]) >=
			       sizeof(app_cfg_table) / sizeof(app_cfg_table[0]),
		       "key_line must cover the config table");
	if (err && errlen)
		err[0] = 0;
	x.f = fopen(path, "r");
	if (!x.f)
		return -errno;
	/* A directory opens, and its first read fails, which ini_parse_stream
	 * takes for the end of an empty file: only a regular file, read to its
	 * end, is a configuration. */
	if (fstat(fileno(x.f), &st))
		rc = -errno;
	else if (!S_ISREG(st.st_mode))
		rc = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
	else
		rc = 0;
	if (rc) {
		fclose(x.f);
		return rc;
	}
	errno = 0;
	rc = ini_parse_stream(reader, &x, handler, &x);
	read_err = ferror(x.f) ? (errno ? errno : EIO) : 0;
	fclose(x.f);
	if (read_err)
		return -read_err;
	if (rc > 0 && x.errors == 0) /* a syntax error the line check missed */
		add_error(&x, rc, "syntax error (expected 'key = value' or '[section]')");
	else if (rc < 0)
		add_error(&x, 0, "could not parse file");
	if (app_config_validate(c, why, sizeof(why))) {
		/* Name the line that broke the rule: the last, in this file, of
		 * the keys its sentence names (none set here: line 0). */
		int line = 0;

		for (size_t i = 0; i < app_cfg_table_len; i++)
			if (x.key_line[i] > line && names_key(why, &app_cfg_table[i]))
				line = x.key_line[i];
		add_error(&x, line, "%s", why);
	}
	return x.errors;
}

int app_config_set(struct app_config *c, const char *assignment, char *err, size_t errlen)
{
	char section[64], name[64];
	const char *dot = strchr(assignment, '.'), *eq = strchr(assignment, '=');
	const struct app_cfg_entry *e;
	char why[256];

	if (!dot || !eq || dot > eq || (size_t)(dot - assignment) >= sizeof(section) ||
	    (size_t)(eq - dot - 1) >= sizeof(name)) {
		snprintf(err, errlen, "'%s' is not section.key=value", assignment);
		return APP_ECONFIG;
	}
	memcpy(section, assignment, (size_t)(dot - assignment));
	section[dot - assignment] = 0;
	memcpy(name, dot + 1, (size_t)(eq - dot - 1));
	name[eq - dot - 1] = 0;
	e = find(section, name);
	if (!e) {
		snprintf(err, errlen, "unknown key '%s.%s'", section, name);
		return APP_ECONFIG;
	}
	if (apply(c, e, eq + 1, why, sizeof(why))) {
		snprintf(err, errlen, "%s.%s: %s", section, name, why);
		return APP_ECONFIG;
	}
	return 0;
}
