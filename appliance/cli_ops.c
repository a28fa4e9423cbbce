/*
 * cli_ops.c - `mezz status` (one screen of a running daemon) and `mezz tail`
 * (follow a namespace's blocks over the WebSocket feed).
 *
 * Both speak only the daemon's public interfaces at --url: mezz_status,
 * GET /metrics and GET /healthz for status; mezz_subscribe for tail. The
 * shard directories shown by status are this host's configuration (the
 * daemon does not publish its paths).
 */
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "appliance/cli.h"
#include "appliance/daemon.h"

#define BODY_MAX (16u << 20) /* a /metrics scrape or a status answer */

static size_t on_body(char *d, size_t sz, size_t n, void *u)
{
	struct app_cli_body *b = u;
	char *np;

	if (b->len + sz * n > BODY_MAX) {
		b->too_big = 1;
		return 0;
	}
	np = realloc(b->p, b->len + sz * n + 1);
	if (!np)
		return 0;
	b->p = np;
	memcpy(b->p + b->len, d, sz * n);
	b->len += sz * n;
	b->p[b->len] = 0;
	return sz * n;
}

/* scheme://host[:port] of url, then path: "http://h:9545" + "/metrics". */
static void url_with_path(char *out, size_t len, const char *url, const char *path)
{
	const char *p = strstr(url, "://");
	const char *slash = p ? strchr(p + 3, '/') : NULL;
	int n = slash ? (int)(slash - url) : (int)strlen(url);

	snprintf(out, len, "%.*s%s", n, url, path);
}

long app_cli_http(const char *url, const char *post, struct app_cli_body *b)
{
	CURL *c = curl_easy_init();
	struct curl_slist *h = NULL;
	long status = -1;
	CURLcode cc;

	memset(b, 0, sizeof(*b));
	if (!c)
		return -1;
	curl_easy_setopt(c, CURLOPT_URL, url);
	if (post) {
		h = curl_slist_append(NULL, "Content-Type: application/json");
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, post);
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	}
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
	cc = curl_easy_perform(c);
	if (cc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	else
		fprintf(stderr, "mezz: cannot reach %s: %s\n", url,
			b->too_big ? "answer too large" : curl_easy_strerror(cc));
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return status;
}

static json_t *get_status(const char *url)
{
	static const char req[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"mezz_status\"}";
	struct app_cli_body b;
	json_t *doc = NULL, *res = NULL;

	if (app_cli_http(url, req, &b) < 0)
		goto out;
	doc = json_loads(b.p ? b.p : "", 0, NULL);
	res = json_incref(json_object_get(doc, "result"));
	if (!res)
		fprintf(stderr, "mezz: %s did not answer mezz_status with a result\n", url);
out:
	json_decref(doc);
	free(b.p);
	return res;
}

/* ---- the preconfirmation histogram from /metrics ------------------------ */

#define MAX_BUCKETS 64

struct hist {
	size_t n;
	double le[MAX_BUCKETS];	 /* upper bounds in seconds; +Inf last */
	double cum[MAX_BUCKETS]; /* cumulative counts */
};

static void hist_parse(struct hist *h, const char *text, const char *name)
{
	char prefix[128];
	size_t pl;

	memset(h, 0, sizeof(*h));
	if (!text)
		return;
	pl = (size_t)snprintf(prefix, sizeof(prefix), "%s_bucket{le=\"", name);
	for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		const char *q;
		char *end;

		if (strncmp(l, prefix, pl) || h->n == MAX_BUCKETS)
			continue;
		q = l + pl;
		h->le[h->n] = !strncmp(q, "+Inf", 4) ? INFINITY : strtod(q, NULL);
		q = strchr(q, '}');
		if (!q)
			continue;
		h->cum[h->n] = strtod(q + 1, &end);
		h->n++;
	}
}

/* Quantile by linear interpolation inside a bucket (Prometheus'
 * histogram_quantile); NAN without observations. */
static double hist_quantile(const struct hist *h, double q)
{
	double total, rank, lo = 0, below = 0;

	if (!h->n || (total = h->cum[h->n - 1]) <= 0)
		return NAN;
	rank = q * total;
	for (size_t i = 0; i < h->n; i++) {
		if (h->cum[i] >= rank) {
			if (isinf(h->le[i]))
				return lo; /* past the last finite bound: report that bound */
			if (h->cum[i] == below)
				return h->le[i];
			return lo + (h->le[i] - lo) * (rank - below) / (h->cum[i] - below);
		}
		lo = h->le[i];
		below = h->cum[i];
	}
	return lo;
}

static double metric_value(const char *text, const char *name)
{
	size_t nl = strlen(name);

	for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		if (!strncmp(l, name, nl) && l[nl] == ' ')
			return strtod(l + nl + 1, NULL);
	return NAN;
}

static void print_ms(const char *label, double secs)
{
	if (isnan(secs))
		printf("%s -", label);
	else
		printf("%s %.2f ms", label, secs * 1e3);
}

/*
 * The histogram `name` from two scrapes: over the time between them when it
 * grew (*window = 1), else since the daemon started. Returns the observations.
 */
static double hist_window(struct hist *d, const char *m1, const char *m2, const char *name,
			  int *window)
{
	struct hist h1;

	hist_parse(&h1, m1, name);
	hist_parse(d, m2, name);
	*window = h1.n == d->n && d->n && d->cum[d->n - 1] > h1.cum[h1.n - 1];
	if (*window)
		for (size_t i = 0; i < d->n; i++)
			d->cum[i] -= h1.cum[i];
	return d->n ? d->cum[d->n - 1] : 0;
}

/* ---- status ------------------------------------------------------------ */

static json_int_t ival(json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

static void print_shard_dirs(const struct app_config *cfg)
{
	char **dirs = NULL;
	size_t nd = 0;

	if (app_config_da_dirs(cfg, &dirs, &nd)) {
		printf("shard dirs   (cannot read this host's configuration)\n");
		return;
	}
	printf("shard dirs   %zu in this host's config:", nd);
	for (size_t i = 0; i < nd; i++) {
		struct statvfs sv;
		struct stat st;

		if (stat(dirs[i], &st) || !S_ISDIR(st.st_mode))
			printf(" %s (MISSING)", dirs[i]);
		else if (statvfs(dirs[i], &sv) == 0)
			printf(" %s (%.1f GiB free)", dirs[i],
			       (double)sv.f_bavail * (double)sv.f_frsize / 1073741824.0);
		else
			printf(" %s", dirs[i]);
	}
	printf("\n");
	app_config_dirs_free(dirs, nd);
	free(dirs);
}

/* mezz_status.l1 is {"enabled": false} when L1 posting is not configured. */
static void print_l1(json_t *st)
{
	json_t *l1 = json_object_get(st, "l1"), *v;
	const char *k;
	int n = 0;

	if (!json_is_object(l1) || json_is_false(json_object_get(l1, "enabled"))) {
		printf("L1           n/a (L1 not configured)\n");
		return;
	}
	printf("L1          ");
	json_object_foreach(l1, k, v) {
		char *s;

		if (json_is_object(v) || json_is_array(v))
			continue;
		s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
		printf("%s %s %s", n++ % 4 == 0 && n > 1 ? "\n            " : "", k,
		       s ? s : "?");
		free(s);
	}
	printf("\n");
}

int app_cli_status(const struct app_config *cfg, const char *url)
{
	char murl[1024], hurl[1024];
	static const char *const parts[][2] = {{"queue", "mezz_preconf_queue_seconds"},
					       {"commit", "mezz_preconf_commit_seconds"},
					       {"answer", "mezz_preconf_answer_seconds"}};
	struct app_cli_body m1 = {0}, m2 = {0}, hz = {0};
	struct hist d;
	json_t *s1 = NULL, *s2 = NULL;
	uint64_t t1, t2;
	double secs, tps, p50, p99, n;
	long hstatus;
	int rc = 1, window, w;

	url_with_path(murl, sizeof(murl), url, "/metrics");
	url_with_path(hurl, sizeof(hurl), url, "/healthz");
	/* Two samples a second apart: rates over that second. */
	t1 = app_now_ns();
	if (!(s1 = get_status(url)) || app_cli_http(murl, NULL, &m1) != 200) {
		if (s1)
			fprintf(stderr, "mezz: %s did not answer 200\n", murl);
		goto out;
	}
	usleep(1000000);
	t2 = app_now_ns();
	if (!(s2 = get_status(url)) || app_cli_http(murl, NULL, &m2) != 200)
		goto out;
	hstatus = app_cli_http(hurl, NULL, &hz);
	secs = (double)(t2 - t1) / 1e9;
	tps = (double)(ival(s2, "transactions") - ival(s1, "transactions")) / secs;
	/* Latency over the last second when there was traffic, else since start. */
	n = hist_window(&d, m1.p, m2.p, "mezz_preconfirmation_seconds", &window);
	p50 = hist_quantile(&d, 0.50);
	p99 = hist_quantile(&d, 0.99);

	printf("mezzanine %s   %s\n", json_string_value(json_object_get(s2, "version")), url);
	printf("public key   %s\n", json_string_value(json_object_get(s2, "publicKey")));
	if (hstatus == 200)
		printf("health       ok\n");
	else
		printf("health       %s (HTTP %ld): %s", hstatus == 503 ? "UNHEALTHY" : "unknown",
		       hstatus, hz.p && hz.len ? hz.p : "\n");
	printf("height       %lld   slot %lld (%lld ms slots)\n", (long long)ival(s2, "height"),
	       (long long)ival(s2, "slot"), (long long)ival(s2, "slotMs"));
	printf("throughput   %.1f tx/s   transactions %lld   next seq %lld   groups %lld\n", tps,
	       (long long)ival(s2, "transactions"), (long long)ival(s2, "nextSeq"),
	       (long long)ival(s2, "groups"));
	print_ms("preconfirm   p50", p50);
	print_ms("   p99", p99);
	printf("   (%s, %.0f receipts)\n", window ? "last second" : "since start", n);
	/* Where that time went (OPERATIONS.md): each part's own p99, over the
	 * same window; the parts' p99s need not add up to the whole's. */
	printf("  p99 of its parts:");
	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
		char label[32];

		hist_window(&d, m1.p, m2.p, parts[i][1], &w);
		snprintf(label, sizeof(label), "%s %s", i ? "  " : "", parts[i][0]);
		print_ms(label, w == window ? hist_quantile(&d, 0.99) : NAN);
	}
	printf("\n");
	printf("ingress      queue %lld   last commit %lld us\n",
	       (long long)ival(s2, "ingressQueue"), (long long)ival(s2, "lastCommitUs"));
	printf("subscribers  %lld   namespaces %lld\n", (long long)ival(s2, "subscribers"),
	       (long long)ival(s2, "namespaces"));
	printf("sequencer    %s\n", json_is_true(json_object_get(s2, "halted"))
					    ? "HALTED (storage failure; see the log)"
					    : "running");
	{
		json_int_t h = ival(s2, "height"), a = ival(s2, "availableHeight");
		double halted = metric_value(m2.p, "mezz_da_halted");

		printf("DA           available height %lld   %lld behind sealed   %s\n",
		       (long long)a, (long long)(h > a ? h - a : 0),
		       json_is_true(json_object_get(s2, "daHalted")) || halted == 1
			       ? "HALTED (shard write failed; fix the disk and restart)"
			       : "running");
	}
	print_shard_dirs(cfg);
	print_l1(s2);
	rc = 0;
out:
	json_decref(s1);
	json_decref(s2);
	free(m1.p);
	free(m2.p);
	free(hz.p);
	return rc;
}

/* ---- tail -------------------------------------------------------------- */

static volatile int tail_stop;

static void on_sigint(int sig)
{
	(void)sig;
	tail_stop = 1;
}

/* Where a reconnect resumes: next, the block after the last one shown (0:
 * the next one sealed); first, the first one shown (0: none yet); and per
 * level, the height after its last event shown (0: none yet). */
struct tail_pos {
	uint64_t next, first, level_next[APP_LEVELS];
};

/* The transactions of namespace ns in a sealed or preconfirmed event. */
static size_t ns_txs(json_t *r, const char *ns)
{
	json_t *nss = json_object_get(r, "namespaces"), *e;
	size_t i, txs = 0;

	json_array_foreach(nss, i, e) {
		const char *name = json_string_value(json_object_get(e, "name"));

		if (name && !strcmp(name, ns))
			txs += json_array_size(json_object_get(e, "txs"));
	}
	return txs;
}

static void print_event(json_t *r, const char *ns, struct tail_pos *pos)
{
	const char *level = json_string_value(json_object_get(r, "level"));
	json_int_t h = ival(r, "height");
	const char *hash = json_string_value(json_object_get(r, "hash"));

	if (!level)
		return;
	if (!strcmp(level, "preconfirmed")) {
		/* A committed group, not a block (API.md): no height or hash, and
		 * nothing to resume from (the level is live only). */
		printf("%-9s slot %lld  group %lld  firstSeq %lld  count %lld  txs %zu\n", level,
		       (long long)ival(r, "slot"), (long long)ival(r, "group"),
		       (long long)ival(r, "firstSeq"), (long long)ival(r, "count"), ns_txs(r, ns));
	} else if (!strcmp(level, "sealed")) {
		printf("%-9s height %lld  slot %lld  txs %zu  hash %s\n", level, (long long)h,
		       (long long)ival(r, "slot"), ns_txs(r, ns), hash ? hash : "-");
		if ((uint64_t)h >= pos->next)
			pos->next = (uint64_t)h + 1;
		if (!pos->first)
			pos->first = (uint64_t)h;
	} else {
		const char *root = json_string_value(json_object_get(r, "daRoot"));
		const char *tx = json_string_value(json_object_get(r, "txHash"));
		int L = app_level_of(level);

		if (L >= 0 && (uint64_t)h >= pos->level_next[L])
			pos->level_next[L] = (uint64_t)h + 1;

		printf("%-9s height %lld  hash %s%s%s%s%s\n", level, (long long)h, hash ? hash : "-",
		       root ? "  daRoot " : "", root ? root : "", tx ? "  l1 tx " : "",
		       tx ? tx : "");
	}
	fflush(stdout);
}

/* One connection: subscribe, print until stopped or closed. 0 when stopped,
 * 1 on a refusal (no point retrying), -1 when the connection went away,
 * -2 when it could not be made. */
static int tail_once(const char *url, const char *bearer, json_t *opts, const char *ns,
		     struct tail_pos *pos)
{
	struct app_ws *ws = NULL;
	char err[256] = "", *msg = NULL, *req;
	size_t len;
	json_t *o = json_deep_copy(opts), *sub;
	int rc;

	if (pos->next)
		json_object_set_new(o, "fromHeight", json_integer((json_int_t)pos->next));
	if (pos->first) { /* levels of blocks shown whose events were not */
		json_t *levels = json_object_get(o, "levels"), *from = json_object(), *e;
		unsigned wanted = levels ? 0 : (1u << APP_LEVELS) - 1;
		size_t k;

		json_array_foreach(levels, k, e) {
			int L = app_level_of(json_string_value(e));

			if (L >= 0)
				wanted |= 1u << L;
		}
		for (int L = 0; L < APP_LEVELS; L++) {
			uint64_t h = pos->level_next[L] ? pos->level_next[L] : pos->first;

			if ((wanted & (1u << L)) && h < pos->next)
				json_object_set_new(from, app_level_names[L],
						    json_integer((json_int_t)h));
		}
		if (json_object_size(from))
			json_object_set_new(o, "levelsFrom", from);
		else
			json_decref(from);
	}
	sub = json_pack("{s:s,s:i,s:s,s:[s,o]}", "jsonrpc", "2.0", "id", 1, "method",
			"mezz_subscribe", "params", "blocks", o);
	req = json_dumps(sub, JSON_COMPACT);
	json_decref(sub);
	rc = app_ws_connect(&ws, url, bearer, 256u << 20, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "mezz: tail: %s\n", err);
		free(req);
		return -2;
	}
	if (!req || app_ws_send_text(ws, req, strlen(req))) {
		free(req);
		app_ws_close(ws);
		return -1;
	}
	free(req);
	for (;;) {
		json_t *doc, *p;

		rc = app_ws_recv(ws, &msg, &len, &tail_stop);
		if (rc == 1) {
			rc = 0;
			break;
		}
		if (rc) {
			fprintf(stderr, "mezz: tail: connection closed: %s\n",
				*app_ws_close_reason(ws) ? app_ws_close_reason(ws) : strerror(-rc));
			rc = -1;
			break;
		}
		doc = json_loadb(msg, len, 0, NULL);
		free(msg);
		if ((p = json_object_get(doc, "error"))) {
			fprintf(stderr, "mezz: tail: %s (code %lld)\n",
				json_string_value(json_object_get(p, "message")),
				(long long)ival(p, "code"));
			json_decref(doc);
			rc = 1;
			break;
		}
		if ((p = json_object_get(doc, "params")))
			print_event(json_object_get(p, "result"), ns, pos);
		else if (json_object_get(doc, "result"))
			fprintf(stderr, "mezz: tail: subscribed to %s%s\n", ns,
				pos->next ? "" : " (from the next block)");
		json_decref(doc);
	}
	app_ws_close(ws);
	return rc;
}

int app_cli_tail(const char *url, int argc, char **argv)
{
	const char *bearer = getenv("MEZZ_API_KEY"), *ns;
	json_t *opts, *levels = NULL;
	struct sigaction sa = {0};
	char wsurl[1024];
	struct tail_pos pos = {0};
	int rc, backoff = 1, connected = 0;

	if (argc < 1 || argv[0][0] == '-')
		goto usage;
	ns = argv[0];
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--from") && i + 1 < argc) {
			if (app_cli_parse_u64(argv[++i], &pos.next) || pos.next == 0 ||
			    pos.next > (uint64_t)INT64_MAX)
				goto usage;
		} else if (!strcmp(argv[i], "--levels") && i + 1 < argc) {
			char *list = strdup(argv[++i]), *save = NULL;

			levels = levels ? levels : json_array();
			for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save))
				json_array_append_new(levels, json_string(t));
			free(list);
		} else if (!strcmp(argv[i], "--key") && i + 1 < argc) {
			bearer = argv[++i];
		} else {
			json_decref(levels);
			goto usage;
		}
	}
	opts = json_pack("{s:[s]}", "namespaces", ns);
	if (levels)
		json_object_set_new(opts, "levels", levels);
	/* http(s):// of --url becomes ws(s)://; the feed is on "/". */
	if (!strncmp(url, "http", 4))
		url_with_path(wsurl, sizeof(wsurl), url, "/");
	else
		snprintf(wsurl, sizeof(wsurl), "%s", url);
	if (!strncmp(wsurl, "http", 4))
		memcpy(wsurl, "ws", 2), memmove(wsurl + 2, wsurl + 4, strlen(wsurl + 4) + 1);
	sa.sa_handler = on_sigint;
	sigaction(SIGINT, &sa, NULL); /* no SA_RESTART: poll returns, the loop sees the flag */
	sigaction(SIGTERM, &sa, NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (;;) {
		rc = tail_once(wsurl, bearer, opts, ns, &pos);
		if (rc >= 0 || tail_stop || (rc == -2 && !connected))
			break;
		if (rc == -1) {
			connected = 1;
			backoff = 1;
		}
		/* Dropped (slow reader, restart): resume after the last block shown. */
		fprintf(stderr, "mezz: tail: reconnecting in %d s%s\n", backoff,
			pos.next ? "" : " (from the next block)");
		for (int i = 0; i < backoff * 10 && !tail_stop; i++)
			usleep(100000);
		if (tail_stop)
			break;
		backoff = backoff < 8 ? backoff * 2 : 8;
	}
	json_decref(opts);
	return rc > 0 || (rc == -2 && !tail_stop) ? 1 : 0;
usage:
	fprintf(stderr, "usage: mezz tail NAMESPACE [--from HEIGHT] [--levels sealed,available,...] "
			"[--key KEY]\n");
	return 2;
}
