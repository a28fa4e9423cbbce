/*
 * l1stage.c - the L1 stage: from `available` to `posted` and `finalized`.
 *
 * The "mz-l1" thread owns the outbox (l1bridge/outbox.c, its journal in
 * data_dir/outbox.db, apart from mezzanine.db so its fsyncs never contend
 * with group commits) and an RPC client. Every pass (200 ms, 1 s after an
 * RPC failure) it:
 *   1. queues the state roots mezz_postStateRoot handed over and answers
 *      them through the done queue;
 *   2. when l1.post_interval_ms has passed and the outbox has no unmined
 *      batch, builds one batch from every available block after the last
 *      one batched (at most l1.max_blocks_per_batch), reading da_blocks and
 *      block_ns through its own read-only connection, and queues it;
 *   3. steps the outbox (sign, send, receipts, bumps, reorgs, finality);
 *   4. publishes the heights every batch up to which is posted / finalized
 *      as DONE_LEVEL events, as publish_available does for `available`.
 *
 * The posted and finalized tips only move forward on the feed. A reorg that
 * drops a mined batch does not retract `posted`: the batch goes back to
 * `signed` (l1bridge/outbox.c reorg_job), its signed bytes are sent again,
 * so it lands with the same index and nonce, and its level JSON shows the
 * current l1Status meanwhile; `finalized` is only ever sent for a batch at
 * or below the L1 finalized tag, so it is never taken back.
 */
#include <errno.h>
#include <libwebsockets.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "appliance/daemon.h"
#include "appliance/server.h"

#ifdef MEZZ_FAULT_HOOKS
/* MEZZ_FAULT_L1_CRASH=sign|send: SIGKILL ourselves at that point, after
 * MEZZ_FAULT_L1_CRASH_AFTER (default 0) earlier passes through it. */
static void fault_hook(void *arg, enum l1_outbox_fault point)
{
	static long seen;
	const char *which = getenv("MEZZ_FAULT_L1_CRASH"), *after;

	(void)arg;
	if (!which || strcmp(which, point == L1_OB_FAULT_SIGNED ? "sign" : "send"))
		return;
	after = getenv("MEZZ_FAULT_L1_CRASH_AFTER");
	if (seen++ < (after ? atol(after) : 0))
		return;
	app_warn("fault_l1_crash", "point=%s", which);
	raise(SIGKILL);
}
#endif

/* ------------------------------------------------------------------ */
/* Batches                                                              */

struct ns_ent {
	uint64_t ns, height;
	uint8_t root[32];
};

static int ns_cmp(const void *a, const void *b)
{
	const struct ns_ent *x = a, *y = b;

	if (x->ns != y->ns)
		return x->ns < y->ns ? -1 : 1;
	return x->height < y->height ? -1 : x->height > y->height;
}

/*
 * The batch of heights [from, to]: daRoot over the DA record hashes, and
 * per namespace (ascending id) the root over its per-block roots. See
 * docs/PROTOCOL-ethereum.md.
 */
static int build_batch(struct app_l1 *l, uint64_t index, uint64_t from, uint64_t to)
{
	size_t n = (size_t)(to - from + 1), ne = 0, ecap = 0, nns = 0;
	uint64_t *heights = malloc(n * sizeof(*heights)), *ids = NULL, *hs = NULL;
	uint8_t (*vals)[32] = malloc(n * 32), (*roots)[32] = NULL, (*tmp)[32] = NULL;
	struct ns_ent *ents = NULL;
	struct l1_inbox_batch b = {.index = index, .from_height = from, .to_height = to};
	int rc = 0;

	if (!heights || !vals) {
		rc = APP_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n && !rc; i++) {
		uint8_t raw[DA_RECORD_LEN], sig[64];
		struct da_record r;
		struct seq_block_hdr hdr;
		struct seq_block_ns *ns = NULL;
		size_t nn = 0;

		heights[i] = from + i;
		rc = app_store_da_get(l->ro, heights[i], raw, sizeof(raw), sig);
		if (!rc)
			rc = da_record_decode(&r, raw, sizeof(raw));
		if (!rc) {
			da_record_hash(vals[i], &r);
			rc = app_store_block_get(l->ro, heights[i], &hdr, sig, &ns, &nn);
		}
		if (!rc && ne + nn > ecap) {
			struct ns_ent *v;

			ecap = (ne + nn) * 2 + 16;
			v = realloc(ents, ecap * sizeof(*v));
			if (!v)
				rc = APP_ENOMEM;
			else
				ents = v;
		}
		for (size_t k = 0; !rc && k < nn; k++) {
			ents[ne].ns = ns[k].ns;
			ents[ne].height = heights[i];
			memcpy(ents[ne].root, ns[k].root, 32);
			ne++;
		}
		free(ns);
	}
	if (rc)
		goto out;
	rc = l1_batch_root(b.da_root, heights, (const uint8_t (*)[32])vals, n);
	if (rc)
		goto out;
	if (ne)
		qsort(ents, ne, sizeof(*ents), ns_cmp);
	ids = malloc((ne ? ne : 1) * sizeof(*ids));
	roots = malloc((ne ? ne : 1) * 32);
	hs = malloc((ne ? ne : 1) * sizeof(*hs));
	tmp = malloc((ne ? ne : 1) * 32);
	if (!ids || !roots || !hs || !tmp) {
		rc = APP_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < ne && !rc;) {
		size_t j = i;

		for (; j < ne && ents[j].ns == ents[i].ns; j++) {
			hs[j - i] = ents[j].height;
			memcpy(tmp[j - i], ents[j].root, 32);
		}
		ids[nns] = ents[i].ns;
		rc = l1_batch_root(roots[nns], hs, (const uint8_t (*)[32])tmp, j - i);
		nns++;
		i = j;
	}
	if (rc)
		goto out;
	b.n_namespaces = nns;
	b.namespace_ids = ids;
	b.namespace_roots = (const uint8_t (*)[32])roots;
	rc = l1_outbox_queue_batch(l->ob, &b);
	if (!rc)
		app_info("l1_batch_queued", "index=%llu from=%llu to=%llu namespaces=%zu",
			 (unsigned long long)index, (unsigned long long)from,
			 (unsigned long long)to, nns);
out:
	free(heights);
	free(vals);
	free(ents);
	free(ids);
	free(roots);
	free(hs);
	free(tmp);
	return rc;
}

/* ------------------------------------------------------------------ */
/* The thread                                                           */

static void answer(struct app_committer *c, const struct app_l1_req *r, int is_error,
		   char *json)
{
	struct app_done d = {.kind = DONE_ANSWER, .req = r->req, .slot = r->slot,
			     .is_error = is_error, .json = json};

	while (app_queue_push(c->done, &d, 1) == APP_EFULL) {
		lws_cancel_service(c->lws);
		usleep(200);
	}
	lws_cancel_service(c->lws);
}

static void take_requests(struct app_committer *c, uint64_t deadline)
{
	struct app_l1 *l = &c->l1;
	struct app_l1_req r[16];
	size_t n = app_queue_pop(&l->reqs, r, 16, deadline);

	for (size_t i = 0; i < n; i++) {
		int rc;
		char *json = NULL;

		r[i].sr.proof_locator = r[i].locator;
		rc = l1_outbox_queue_state_root(l->ob, &r[i].sr);
		if (rc == L1_ESTALE) {
			answer(c, &r[i], 1,
			       app_error_json(RPC_STALE_L2_BLOCK,
					      "l2Block %llu is not above the last state root queued "
					      "for namespace '%s'",
					      (unsigned long long)r[i].sr.l2_block, r[i].ns_name));
		} else if (rc) {
			answer(c, &r[i], 1,
			       app_error_json(RPC_INTERNAL, "cannot queue the state root: %s",
					      app_strerror(rc)));
		} else {
			if (asprintf(&json, "{\"namespace\":\"%s\",\"l2Block\":%llu,\"status\":"
					    "\"queued\"}",
				     r[i].ns_name, (unsigned long long)r[i].sr.l2_block) < 0)
				json = NULL;
			app_info("l1_state_root_queued", "namespace=%s l2_block=%llu", r[i].ns_name,
				 (unsigned long long)r[i].sr.l2_block);
			answer(c, &r[i], 0, json);
		}
		free(r[i].locator);
	}
}

static void publish(struct app_committer *c, enum app_level level, uint64_t height)
{
	struct app_done d = {.kind = DONE_LEVEL, .level = level, .height = height};

	if (height <= atomic_load(&c->stats.level_tip[level]))
		return;
	atomic_store(&c->stats.level_tip[level], height);
	/* A full queue is fine: the feed also reads the tip from stats. */
	app_queue_push(c->done, &d, 1);
	lws_cancel_service(c->lws);
}

/* Log what changed since the last pass, once. */
static void report(struct app_l1 *l, const struct l1_outbox_info *prev,
		   const struct l1_outbox_info *now, int rc)
{
	if (now->status != prev->status)
		app_log(now->status == L1_OB_HALTED ? APP_LOG_ERROR
			: now->status == L1_OB_RPC_DOWN || now->status == L1_OB_FEE_CAPPED
			? APP_LOG_WARN : APP_LOG_INFO,
			"l1_status", "status=%s err=\"%s\" rc=\"%s\"",
			l1_outbox_status_names[now->status], now->last_error,
			rc ? app_strerror(rc) : "ok");
	if (now->bumps != prev->bumps)
		app_info("l1_fee_bump", "bumps=%llu", (unsigned long long)now->bumps);
	if (now->reorgs != prev->reorgs)
		app_warn("l1_reorg", "reorged_jobs=%llu", (unsigned long long)now->reorgs);
	if (now->requeued != prev->requeued)
		app_warn("l1_nonce_spent", "requeued_jobs=%llu err=\"%s\"",
			 (unsigned long long)now->requeued, now->last_error);
	if (now->posted_to != prev->posted_to)
		app_info("l1_posted", "height=%llu l1_block=%llu", (unsigned long long)now->posted_to,
			 (unsigned long long)now->l1_block);
	if (now->finalized_to != prev->finalized_to)
		app_info("l1_finalized", "height=%llu", (unsigned long long)now->finalized_to);
	(void)l;
}

static void *run(void *arg)
{
	struct app_committer *c = arg;
	struct app_l1 *l = &c->l1;
	uint64_t last_batch = 0, backoff = 0;
	struct l1_outbox_info prev = {0}, now;

	pthread_setname_np(pthread_self(), "mz-l1");
	prev.status = L1_OB_SYNCING;
	while (!atomic_load(&l->stopping)) {
		uint64_t idx, from, avail, t;
		int rc;

		if (c->rights) {
			/* The sales engine runs on this thread when L1 is on (rights.c):
			 * it waits on its own queue, so state roots are taken without. */
			take_requests(c, 0);
			app_rights_pass(c, app_now_ns() + (backoff ? 1000000000ull : 200000000ull),
					l->rpc, l->ob);
		} else {
			take_requests(c, app_now_ns() + (backoff ? 1000000000ull : 200000000ull));
		}
		if (atomic_load(&l->stopping))
			break;
		t = app_now_ns();
		avail = atomic_load(&c->stats.level_tip[APP_LEVEL_AVAILABLE]);
		if (t - last_batch >= (uint64_t)c->cfg->l1_post_interval_ms * 1000000ull &&
		    l1_outbox_batch_wanted(l->ob, &idx, &from) && avail >= from) {
			uint64_t to = avail;

			if (to - from + 1 > (uint64_t)c->cfg->l1_max_blocks_per_batch)
				to = from + (uint64_t)c->cfg->l1_max_blocks_per_batch - 1;
			rc = build_batch(l, idx, from, to);
			if (rc)
				app_error("l1_batch_failed", "from=%llu to=%llu err=\"%s\"",
					  (unsigned long long)from, (unsigned long long)to,
					  app_strerror(rc));
			last_batch = t;
		}
		rc = l1_outbox_step(l->ob, l->rpc);
		backoff = rc && rc != L1_EHALTED;
		l1_outbox_get_info(l->ob, &now);
		report(l, &prev, &now, rc);
		prev = now;
		pthread_mutex_lock(&l->mu);
		l->info = now;
		pthread_mutex_unlock(&l->mu);
		publish(c, APP_LEVEL_POSTED, now.posted_to);
		publish(c, APP_LEVEL_FINALIZED, now.finalized_to);
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Start / stop                                                         */

static int split_urls(char *buf, const char **urls, size_t *n)
{
	char *save = NULL;

	*n = 0;
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		while (*t == ' ' || *t == '\t')
			t++;
		for (char *e = t + strlen(t); e > t && (e[-1] == ' ' || e[-1] == '\t');)
			*--e = 0;
		if (!*t)
			continue;
		if (*n == L1_RPC_MAX_URLS)
			return APP_ECONFIG;
		urls[(*n)++] = t;
	}
	return *n ? 0 : APP_ECONFIG;
}

static int load_key(const struct app_config *cfg, uint8_t key[static 32], char *errbuf,
		    size_t errlen)
{
	char pw[1024] = "", kerr[256] = "";
	int rc;

	if (cfg->l1_keystore_password_file[0]) {
		FILE *f = fopen(cfg->l1_keystore_password_file, "r");

		if (!f) {
			snprintf(errbuf, errlen, "l1.keystore_password_file %s: cannot read it",
				 cfg->l1_keystore_password_file);
			return APP_ECONFIG;
		}
		setvbuf(f, NULL, _IONBF, 0); /* no copy of it in a stdio buffer */
		if (!fgets(pw, sizeof(pw), f))
			pw[0] = 0;
		fclose(f);
		pw[strcspn(pw, "\r\n")] = 0;
	}
	rc = l1_keystore_load(cfg->l1_keystore, pw, key, NULL, kerr, sizeof(kerr));
	sodium_memzero(pw, sizeof(pw)); /* a memset before the return may be dropped */
	if (rc)
		snprintf(errbuf, errlen, "l1.keystore %s: %s%s%s", cfg->l1_keystore,
			 app_strerror(rc), kerr[0] ? ": " : "", kerr);
	return rc;
}

int app_l1_start(struct app_committer *c, char *errbuf, size_t errlen)
{
	const struct app_config *cfg = c->cfg;
	struct app_l1 *l = &c->l1;
	char urlbuf[sizeof(cfg->l1_rpc_urls)], oerr[256] = "";
	const char *urls[L1_RPC_MAX_URLS];
	struct l1_rpc_opts ro = {0};
	struct l1_outbox_opts oo = {0};
	uint8_t key[32], addr[20];
	size_t n, alen;
	int rc;

	/* l->enabled was set before the committer started (retention reads it) */
	snprintf(l->db_path, sizeof(l->db_path), "%s/outbox.db", cfg->data_dir);
	if (!l->enabled)
		return 0;
	snprintf(urlbuf, sizeof(urlbuf), "%s", cfg->l1_rpc_urls);
	if (split_urls(urlbuf, urls, &n)) {
		snprintf(errbuf, errlen, "l1.rpc_urls: give 1 to %d comma-separated URLs",
			 L1_RPC_MAX_URLS);
		return APP_ECONFIG;
	}
	if (l1_hex_decode(oo.inbox, sizeof(oo.inbox), &alen, cfg->l1_inbox,
			  strlen(cfg->l1_inbox)) ||
	    alen != 20) {
		snprintf(errbuf, errlen, "l1.inbox '%s' is not a 20-byte 0x address", cfg->l1_inbox);
		return APP_ECONFIG;
	}
	rc = load_key(cfg, key, errbuf, errlen);
	if (rc)
		return rc;
	ro.urls = urls;
	ro.nurls = n;
	ro.timeout_ms = cfg->l1_timeout_ms;
	ro.connect_timeout_ms = cfg->l1_timeout_ms < 3000 ? cfg->l1_timeout_ms : 3000;
	ro.ca_file = cfg->l1_ca_file;
	ro.chain_id = (uint64_t)cfg->l1_chain_id;
	if (cfg->l1_ca_file[0] && access(cfg->l1_ca_file, R_OK) != 0) {
		snprintf(errbuf, errlen, "l1.ca_file '%s': %s", cfg->l1_ca_file, strerror(errno));
		rc = APP_ECONFIG;
		goto fail;
	}
	rc = l1_rpc_create(&l->rpc, &ro);
	if (rc) {
		snprintf(errbuf, errlen, "L1 RPC client: %s", app_strerror(rc));
		goto fail;
	}
	oo.path = l->db_path;
	oo.chain_id = (uint64_t)cfg->l1_chain_id;
	oo.key = key;
	oo.confirmations = (uint64_t)cfg->l1_confirmations;
	oo.bump_after_blocks = (uint64_t)cfg->l1_bump_after_blocks;
	oo.max_fee_wei = (uint64_t)cfg->l1_max_fee_gwei * 1000000000ull;
#ifdef MEZZ_FAULT_HOOKS
	oo.fault = fault_hook;
#endif
	rc = l1_outbox_open(&l->ob, &oo, oerr, sizeof(oerr));
	sodium_memzero(key, sizeof(key));
	if (rc) {
		snprintf(errbuf, errlen, "outbox: %s", oerr[0] ? oerr : app_strerror(rc));
		goto fail;
	}
	l1_outbox_address(l->ob, addr);
	l1_hex_encode(l->address, addr, 20);
	rc = app_store_open(&l->ro, cfg->data_dir, 1, errbuf, errlen);
	if (rc)
		goto fail;
	rc = app_queue_init(&l->reqs, sizeof(struct app_l1_req), 1024);
	if (rc)
		goto fail;
	pthread_mutex_init(&l->mu, NULL);
	l->info.status = L1_OB_SYNCING;
	rc = pthread_create(&l->thread, NULL, run, c);
	if (rc) {
		snprintf(errbuf, errlen, "pthread_create failed");
		pthread_mutex_destroy(&l->mu);
		app_queue_destroy(&l->reqs);
		rc = -rc;
		goto fail;
	}
	l->started = 1;
	app_info("l1_started", "poster=%s inbox=%s chain_id=%ld urls=%zu", l->address,
		 cfg->l1_inbox, cfg->l1_chain_id, n);
	return 0;
fail:
	sodium_memzero(key, sizeof(key));
	app_store_close(l->ro);
	l1_outbox_close(l->ob);
	l1_rpc_destroy(l->rpc);
	l->ro = NULL, l->ob = NULL, l->rpc = NULL;
	return rc;
}

void app_l1_stop(struct app_committer *c)
{
	struct app_l1 *l = &c->l1;
	struct app_l1_req r;

	l1_outbox_reader_close(l->lws_reader);
	l->lws_reader = NULL;
	if (!l->started)
		return;
	atomic_store(&l->stopping, 1);
	app_queue_close(&l->reqs);
	pthread_join(l->thread, NULL);
	/* Requests never taken were never answered: their connections are gone. */
	while (app_queue_pop(&l->reqs, &r, 1, 0))
		free(r.locator);
	app_queue_destroy(&l->reqs);
	pthread_mutex_destroy(&l->mu);
	app_store_close(l->ro);
	l1_outbox_close(l->ob);
	l1_rpc_destroy(l->rpc);
	l->started = 0;
	l->ro = NULL, l->ob = NULL, l->rpc = NULL;
}

int app_l1_submit(struct app_committer *c, const struct app_l1_req *r)
{
	if (!c->l1.started)
		return APP_ESTOPPED;
	return app_queue_push(&c->l1.reqs, r, 1);
}

/* ------------------------------------------------------------------ */
/* The lws thread's views                                               */

static struct l1_outbox_reader *reader(struct app_server *s)
{
	struct app_l1 *l = &s->committer->l1;

	if (!l->enabled)
		return NULL;
	if (!l->lws_reader)
		l1_outbox_reader_open(&l->lws_reader, l->db_path);
	return l->lws_reader;
}

static void hex32(char out[67], const uint8_t v[32])
{
	l1_hex_encode(out, v, 32);
}

int app_l1_level_json(struct app_server *s, enum app_level level, uint64_t height, char **out)
{
	struct l1_outbox_reader *r = reader(s);
	struct l1_job_view v;
	char tx[67] = "", bh[67] = "", bn[24] = "null";
	int rc;

	*out = NULL;
	if (!r)
		return APP_ENOTFOUND;
	rc = l1_outbox_reader_batch(r, height, &v);
	if (rc)
		return APP_ENOTFOUND;
	if (level == APP_LEVEL_FINALIZED && v.state != L1_JOB_FINALIZED)
		return APP_ENOTFOUND;
	hex32(tx, v.tx_hash);
	hex32(bh, v.block_hash);
	if (v.mined)
		snprintf(bn, sizeof(bn), "%llu", (unsigned long long)v.block_number);
	/* After a reorg a posted block's batch may be back to "sent": l1Status
	 * says so, and the L1 fields are those of the transaction sent again. */
	if (asprintf(out,
		     "{\"level\":\"%s\",\"height\":%llu,\"batchIndex\":%llu,\"fromHeight\":%llu,"
		     "\"toHeight\":%llu,\"l1Status\":\"%s\",\"l1TxHash\":%s%s%s,"
		     "\"l1BlockNumber\":%s,\"l1BlockHash\":%s%s%s}",
		     app_level_names[level], (unsigned long long)height,
		     (unsigned long long)v.index, (unsigned long long)v.from_height,
		     (unsigned long long)v.to_height, l1_job_state_names[v.state],
		     v.has_tx ? "\"" : "", v.has_tx ? tx : "null", v.has_tx ? "\"" : "", bn,
		     v.mined ? "\"" : "", v.mined ? bh : "null", v.mined ? "\"" : "") < 0) {
		*out = NULL;
		return APP_ENOMEM;
	}
	return 0;
}

int app_l1_state_root_json(struct app_server *s, uint64_t rollup, uint64_t l2_block,
			   const char *ns_name, char **out)
{
	struct l1_outbox_reader *r = reader(s);
	struct l1_job_view *v = malloc(sizeof(*v));
	char root[67], tx[67], bh[67], *loc = NULL;
	int rc = APP_ENOTFOUND;

	*out = NULL;
	if (!v)
		return APP_ENOMEM;
	if (!r || l1_outbox_reader_state_root(r, rollup, l2_block, v))
		goto out;
	loc = malloc(2 * v->locator_len + 3);
	if (!loc) {
		rc = APP_ENOMEM;
		goto out;
	}
	l1_hex_encode(loc, v->locator, v->locator_len);
	hex32(root, v->state_root);
	hex32(tx, v->tx_hash);
	hex32(bh, v->block_hash);
	rc = asprintf(out,
		      "{\"namespace\":\"%s\",\"l2Block\":%llu,\"stateRoot\":\"%s\","
		      "\"proofKind\":%u,\"proofLocator\":\"%s\",\"status\":\"%s\","
		      "\"l1TxHash\":%s%s%s,\"l1BlockNumber\":%llu,\"l1BlockHash\":%s%s%s,"
		      "\"error\":\"%s\"}",
		      ns_name, (unsigned long long)l2_block, root, v->proof_kind, loc,
		      l1_job_state_names[v->state], v->has_tx ? "\"" : "", v->has_tx ? tx : "null",
		      v->has_tx ? "\"" : "", (unsigned long long)(v->mined ? v->block_number : 0),
		      v->mined ? "\"" : "", v->mined ? bh : "null", v->mined ? "\"" : "",
		      v->error) < 0
		     ? APP_ENOMEM
		     : 0;
	if (rc)
		*out = NULL;
out:
	free(loc);
	free(v);
	return rc;
}

char *app_l1_status_json(struct app_server *s)
{
	struct app_l1 *l = &s->committer->l1;
	struct l1_outbox_info i;
	char *out;

	if (!l->enabled)
		return strdup("{\"enabled\":false}");
	pthread_mutex_lock(&l->mu);
	i = l->info;
	pthread_mutex_unlock(&l->mu);
	/* The node's words, cut at a byte count: ASCII only, so that a cut
	 * through a UTF-8 sequence cannot make the JSON invalid. */
	for (char *p = i.last_error; *p; p++)
		if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20)
			*p = '\'';
		else if ((unsigned char)*p >= 0x7f)
			*p = '?';
	if (asprintf(&out,
		     "{\"enabled\":true,\"status\":\"%s\",\"poster\":\"%s\",\"nextBatchIndex\":%llu,"
		     "\"nextBatchHeight\":%llu,\"postedHeight\":%llu,\"finalizedHeight\":%llu,"
		     "\"nextNonce\":%llu,\"sent\":%llu,\"feeBumps\":%llu,\"reorgs\":%llu,"
		     "\"requeued\":%llu,"
		     "\"l1Block\":%llu,\"l1Finalized\":%llu,\"lastError\":\"%s\"}",
		     l1_outbox_status_names[i.status], l->address,
		     (unsigned long long)i.next_index, (unsigned long long)i.next_height,
		     (unsigned long long)i.posted_to, (unsigned long long)i.finalized_to,
		     (unsigned long long)i.next_nonce, (unsigned long long)i.sent,
		     (unsigned long long)i.bumps, (unsigned long long)i.reorgs,
		     (unsigned long long)i.requeued,
		     (unsigned long long)i.l1_block, (unsigned long long)i.l1_finalized,
		     i.last_error) < 0)
		return NULL;
	return out;
}
