/*
 * avail.c - the DA stage: from `sealed` to `available`.
 *
 * Block lifecycle after sealing (one block at a time, in height order):
 *
 *   SEALED --(mz-da: payload, encode, shard root)--> CODED
 *   CODED --(mz-da: da_store_put: every shard fsynced)--> DURABLE
 *   DURABLE --(mz-da: record signed, queued to the committer)--> QUEUED
 *   QUEUED --(committer: row in da_blocks, COMMIT)--> AVAILABLE (feed event)
 *
 *   transition           function
 *   SEALED -> QUEUED     code_block (mz-da)
 *   QUEUED -> AVAILABLE  app_avail_take + the committer's next COMMIT
 *
 * Shard retention (da.retention_blocks) takes two steps, so the database
 * never claims shards that are gone: mz-da asks for a new floor, the
 * committer records it (meta shards_pruned_below) in its next COMMIT, and
 * only then does mz-da delete the shards below it, a bounded number of
 * blocks per step. With L1 enabled the floor never passes the posted height.
 *
 * A crash anywhere before AVAILABLE loses nothing: at the next start mz-da
 * resumes after the highest height in da_blocks and codes the block again.
 * Coding is deterministic, so rewritten shards are byte-identical to any
 * that reached the disk before (test_crash.DaCrashTest kills the daemon in
 * the middle of a put and after one). A failed shard write stops mz-da (no retry
 * on a failed fsync, as for the database): blocks stay `sealed`, /healthz
 * reports it and the operator restarts after fixing the disk.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/daemon.h"
#include "appliance/ops.h"
#include "appliance/server.h"
#include "l1bridge/l1.h"

/* Code one block and queue its signed record. 0, or the failing code. */
static int code_block(struct app_committer *c, struct app_block *b)
{
	struct app_avail *a = &c->avail;
	struct da_tx *txs = malloc((b->n ? b->n : 1) * sizeof(*txs));
	struct da_block blk = {0};
	struct da_record rec;
	struct app_da_rec out = {.height = b->hdr.height};
	struct app_sub wake = {0};
	uint8_t *buf = NULL;
	size_t plen, S, bufcap;
	uint64_t t0 = app_now_ns(), t1;
	int rc;

	APP_FAULT_POINT(da);
	if (!txs)
		return APP_ENOMEM;
	for (size_t i = 0; i < b->n; i++)
		txs[i] = (struct da_tx){.seq = b->txs[i].seq, .ns = b->txs[i].ns,
					.data = b->txs[i].data, .len = (uint32_t)b->txs[i].len};
	rc = da_payload_build_reuse(&a->bufs, &b->hdr, b->sig, b->ns, txs, da_code_k(a->code), &buf,
				    &bufcap, &plen, &S);
	free(txs);
	if (!rc)
		rc = da_block_encode_reuse(&a->bufs, &blk, &rec, a->code, buf, bufcap, plen, S,
					   b->hdr.height, b->hash);
	if (rc)
		return rc;
	t1 = app_now_ns();
	rc = da_store_put_block(a->shards, &rec, &blk);
	da_block_recycle(&blk, &a->bufs);
	if (rc)
		return rc;
	APP_FAULT_DA_DURABLE(b->hdr.height);
	{
		uint64_t t2 = app_now_ns();

		app_metric_observe(APP_M_da_encode_seconds, (t1 - t0) / 1000);
		app_metric_observe(APP_M_da_write_seconds, (t2 - t1) / 1000);
	}
	app_metric_add(APP_M_da_payload_bytes_total, plen);
	app_metric_add(APP_M_da_blocks_total, 1);
	app_health_beat(a->health);
	da_record_encode(out.record, &rec);
	crypto_sign_detached(out.sig, NULL, out.record, DA_RECORD_LEN, c->id->sk);
	pthread_mutex_lock(&a->mu);
	if (a->ready_n == a->ready_cap) {
		size_t cap = a->ready_cap ? a->ready_cap * 2 : 16;
		struct app_da_rec *v = realloc(a->ready, cap * sizeof(*v));

		if (!v) {
			pthread_mutex_unlock(&a->mu);
			return APP_ENOMEM;
		}
		a->ready = v;
		a->ready_cap = cap;
	}
	a->ready[a->ready_n++] = out;
	pthread_mutex_unlock(&a->mu);
	a->next = b->hdr.height + 1;
	app_queue_push(c->ingress, &wake, 1); /* full: the committer looks anyway */
	return 0;
}

static void halt(struct app_committer *c, uint64_t height, int rc)
{
	char why[160];

	atomic_store(&c->avail.halted, 1);
	app_metric_set(APP_M_da_halted, 1);
	snprintf(why, sizeof(why), "stopped at block %llu: %s", (unsigned long long)height,
		 app_strerror(rc));
	app_health_fail(c->avail.health, why);
	app_error("da_halted", "height=%llu err=\"%s\"", (unsigned long long)height,
		  app_strerror(rc));
}

/* Code stored blocks up to and including `upto` (those not handed over). */
static void catch_up(struct app_committer *c, uint64_t upto)
{
	struct app_avail *a = &c->avail;

	while (a->next <= upto && !atomic_load(&a->halted) && !atomic_load(&a->stopping)) {
		struct app_block *b;
		int rc = app_block_load(&b, a->ro, a->next);

		if (!rc) {
			rc = code_block(c, b);
			app_block_unref(b);
		}
		if (rc)
			halt(c, a->next, rc);
	}
}

#define PRUNE_BLOCKS 64

static void retention(struct app_committer *c)
{
	struct app_avail *a = &c->avail;
	uint64_t keep = (uint64_t)c->cfg->da_retention_blocks, floor = atomic_load(&a->floor);
	uint64_t avail, target;

	if (!keep)
		return;
	for (int n = 0; a->removed_below < floor && n < PRUNE_BLOCKS; n++) {
		uint64_t h = a->removed_below;
		uint8_t raw[DA_RECORD_LEN], sig[64];
		struct da_record r;
		unsigned shards = DA_MAX_SHARDS;
		int rc;

		if (app_store_da_get(a->ro, h, raw, sizeof(raw), sig) == 0 &&
		    da_record_decode(&r, raw, sizeof(raw)) == 0)
			shards = (unsigned)r.k + r.m;
		rc = da_store_remove_block(a->shards, h, shards);
		if (rc) /* files left behind are only space: warn, keep going */
			app_warn("da_prune_failed", "height=%llu err=\"%s\"", (unsigned long long)h,
				 app_strerror(rc));
		a->removed_below = h + 1;
	}
	avail = atomic_load(&c->stats.level_tip[APP_LEVEL_AVAILABLE]);
	if (avail < keep)
		return;
	target = avail - keep + 1;
	if (c->l1.enabled && target > atomic_load(&c->stats.level_tip[APP_LEVEL_POSTED]) + 1)
		target = atomic_load(&c->stats.level_tip[APP_LEVEL_POSTED]) + 1;
	if (target > (floor ? floor : 1) + PRUNE_BLOCKS)
		target = (floor ? floor : 1) + PRUNE_BLOCKS;
	if (target > (floor ? floor : 1)) {
		struct app_sub wake = {0};

		pthread_mutex_lock(&a->mu);
		a->want_floor = target;
		pthread_mutex_unlock(&a->mu);
		app_queue_push(c->ingress, &wake, 1);
	}
}

void app_avail_pruned(struct app_committer *c, uint64_t floor)
{
	atomic_store(&c->avail.floor, floor);
}

/* What a queued block keeps alive: itself and the feed's JSON of it, which
 * the sealer rendered (about twice the payload: hex) and mz-da's reference
 * holds as long as the feed's. Fixed before the hand-over, so the add and
 * the subtract agree. */
static size_t weight(const struct app_block *b)
{
	return b->bytes + b->rendered_bytes;
}

static void *run(void *arg)
{
	struct app_committer *c = arg;
	struct app_avail *a = &c->avail;

	pthread_setname_np(pthread_self(), "mz-da");
	app_thread_background("mz-da", (int)c->cfg->background_nice);
	for (;;) {
		struct app_block *b = NULL;
		size_t got = app_queue_pop(&a->jobs, &b, 1,
					   app_now_ns() + (uint64_t)c->cfg->slot_ms * 250000ull);

		if (got)
			atomic_fetch_sub(&a->queued_bytes, weight(b));
		if (atomic_load(&a->stopping)) {
			if (got)
				app_block_unref(b);
			break;
		}
		if (atomic_load(&a->halted)) {
			if (got)
				app_block_unref(b);
			continue;
		}
		if (!got) { /* idle: anything sealed but not handed over? */
			if (atomic_load(&c->stats.has_block))
				catch_up(c, atomic_load(&c->stats.height));
			/* Caught up is progress too: DA is stalled only while sealed
			 * blocks wait to become available, not while sealing waits. */
			if (!atomic_load(&a->halted) &&
			    (!atomic_load(&c->stats.has_block) ||
			     a->next > atomic_load(&c->stats.height)))
				app_health_beat(a->health);
			retention(c);
			continue;
		}
		if (b->hdr.height > a->next)
			catch_up(c, b->hdr.height - 1);
		if (b->hdr.height == a->next && !atomic_load(&a->halted)) {
			int rc = code_block(c, b);

			if (rc)
				halt(c, b->hdr.height, rc);
		}
		app_block_unref(b);
		retention(c);
	}
	return NULL;
}

/*
 * Hand a stored block to mz-da, unless the blocks already waiting hold
 * da.queue_mib (or 256 of them wait): then mz-da reads it from storage when
 * it gets there (catch_up). Counting blocks alone let a stalled DA disk hold
 * 256 blocks in memory whatever they weighed: about 2.5 GB under full load.
 * The committer is the only caller, so the check and the add cannot race.
 */
void app_avail_submit(struct app_committer *c, struct app_block *b)
{
	struct app_avail *a = &c->avail;
	size_t held;

	if (!a->started)
		return; /* mz-da reads it from storage when it starts */
	held = atomic_load(&a->queued_bytes);
	if (held && held + weight(b) > (size_t)c->cfg->da_queue_mib << 20)
		return;
	atomic_fetch_add(&a->queued_bytes, weight(b));
	app_block_ref(b);
	if (app_queue_push(&a->jobs, &b, 1)) { /* full: likewise */
		atomic_fetch_sub(&a->queued_bytes, weight(b));
		app_block_unref(b);
	}
}

size_t app_avail_queued_bytes(struct app_committer *c)
{
	return c->avail.started ? atomic_load(&c->avail.queued_bytes) : 0;
}

size_t app_avail_take(struct app_committer *c, struct app_da_rec **out, uint64_t *shard_floor)
{
	struct app_avail *a = &c->avail;
	size_t n;

	*out = NULL;
	*shard_floor = 0;
	if (!a->started)
		return 0;
	pthread_mutex_lock(&a->mu);
	n = a->ready_n;
	*out = a->ready;
	a->ready = NULL;
	a->ready_n = a->ready_cap = 0;
	*shard_floor = a->want_floor;
	a->want_floor = 0;
	pthread_mutex_unlock(&a->mu);
	return n;
}

int app_avail_start(struct app_committer *c, char *errbuf, size_t errlen)
{
	struct app_avail *a = &c->avail;
	uint64_t tip = 0;
	int rc;

	rc = app_da_store_open(c->cfg, &a->shards, errbuf, errlen);
	if (!rc)
		APP_FAULT_DA_STORE(a->shards);
	if (!rc) {
		rc = da_code_new((unsigned)c->cfg->da_k, (unsigned)c->cfg->da_m, &a->code);
		if (rc)
			snprintf(errbuf, errlen, "da.k/da.m: %s", app_strerror(rc));
	}
	if (!rc) {
		rc = app_store_open(&a->ro, c->cfg->data_dir, 1, errbuf, errlen);
	}
	if (!rc) {
		rc = app_store_da_tip(c->store, &tip);
		if (rc == APP_ENOTFOUND)
			rc = 0;
		uint64_t floor = 0;

		a->next = tip + 1;
		atomic_store(&c->stats.level_tip[APP_LEVEL_AVAILABLE], tip);
		/* committer.c sets the gauge as blocks become available; until
		 * one does (never, if the DA halts) it must say this tip, not 0. */
		app_metric_set(APP_M_available_height, tip);
		app_store_meta_u64(c->store, "shards_pruned_below", &floor);
		atomic_store(&a->floor, floor);
		/* finish deletions a crash may have cut short */
		a->removed_below = floor > PRUNE_BLOCKS ? floor - PRUNE_BLOCKS : 1;
	}
	if (!rc)
		rc = app_queue_init(&a->jobs, sizeof(struct app_block *), 256);
	if (rc)
		goto fail;
	pthread_mutex_init(&a->mu, NULL);
	/* A block is sealed every slot, so one is coded every slot too. */
	a->health = app_health_register("da", 2 * (uint64_t)c->cfg->slot_ms);
	rc = pthread_create(&a->thread, NULL, run, c);
	if (rc) {
		snprintf(errbuf, errlen, "pthread_create failed");
		pthread_mutex_destroy(&a->mu);
		app_queue_destroy(&a->jobs);
		rc = -rc;
		goto fail;
	}
	a->started = 1;
	return 0;
fail:
	app_store_close(a->ro);
	da_code_free(a->code);
	da_store_close(a->shards);
	memset(a, 0, sizeof(*a));
	return rc;
}

void app_avail_stop(struct app_committer *c)
{
	struct app_avail *a = &c->avail;
	struct app_block *b;

	if (!a->started)
		return;
	/* Blocks not yet available are coded again at the next start. */
	atomic_store(&a->stopping, 1);
	app_queue_close(&a->jobs);
	pthread_join(a->thread, NULL);
	while (app_queue_pop(&a->jobs, &b, 1, 0))
		app_block_unref(b);
	app_queue_destroy(&a->jobs);
	pthread_mutex_destroy(&a->mu);
	free(a->ready);
	da_bufs_free(&a->bufs);
	app_store_close(a->ro);
	da_code_free(a->code);
	da_store_close(a->shards);
	memset(a, 0, sizeof(*a));
}

/* ------------------------------------------------------------------ */
/* Level events as the feed sends them                                 */

static int available_json(struct app_store *ro, uint64_t height, char **out)
{
	uint8_t raw[DA_RECORD_LEN], sig[64], commit[32];
	char hroot[67], hblock[67], hcommit[67], hrec[2 * DA_RECORD_LEN + 3], hsig[131];
	struct da_record r;
	int rc = app_store_da_get(ro, height, raw, sizeof(raw), sig);

	if (rc)
		return rc;
	rc = da_record_decode(&r, raw, sizeof(raw));
	if (rc)
		return rc;
	da_record_hash(commit, &r);
	l1_hex_encode(hroot, r.shard_root, 32);
	l1_hex_encode(hblock, r.block_hash, 32);
	l1_hex_encode(hcommit, commit, 32);
	l1_hex_encode(hrec, raw, sizeof(raw));
	l1_hex_encode(hsig, sig, 64);
	if (asprintf(out,
		     "{\"level\":\"available\",\"height\":%llu,\"hash\":\"%s\",\"daRoot\":\"%s\","
		     "\"commitment\":\"%s\",\"k\":%u,\"m\":%u,\"shardSize\":%u,"
		     "\"payloadLength\":%llu,\"record\":\"%s\",\"signature\":\"%s\"}",
		     (unsigned long long)height, hblock, hroot, hcommit, r.k, r.m, r.S,
		     (unsigned long long)r.payload_len, hrec, hsig) < 0) {
		*out = NULL;
		return APP_ENOMEM;
	}
	return 0;
}

int app_level_json(struct app_server *s, enum app_level level, uint64_t height, char **out)
{
	*out = NULL;
	switch (level) {
	case APP_LEVEL_AVAILABLE:
		return available_json(s->ro, height, out);
	case APP_LEVEL_POSTED:
	case APP_LEVEL_FINALIZED:
		return app_l1_level_json(s, level, height, out);
	default:
		return APP_ENOTFOUND;
	}
}
