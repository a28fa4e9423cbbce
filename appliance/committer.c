/*
 * committer.c - the sequencer thread: takes submissions off the ingress
 * queue, orders them into groups, makes each group durable with one SQLite
 * transaction (one fsync), signs the group's root, answers every submitter
 * with a receipt, and seals one superblock per slot.
 *
 * Block lifecycle (per slot):
 *
 *   OPEN --(group committed)--> OPEN
 *   OPEN --(slot clock passes the slot end)--> HANDED_OFF (a seal job)
 *   HANDED_OFF --(sealer thread builds and signs)--> SEALED (waiting to store)
 *   SEALED --(stored in the committer's next transaction)--> PUBLISHED (feed)
 *
 *   transition             function      thread     asserts
 *   OPEN -> OPEN           commit_group  committer  group slot == open_slot
 *   OPEN -> HANDED_OFF     take_job      committer  open txs contiguous from seal_next_seq
 *   HANDED_OFF -> SEALED   build_block   sealer     jobs built in order (one sealer)
 *   SEALED -> PUBLISHED    publish       committer  block row committed before the feed hears
 *
 * The sealer does the CPU work (hashing every leaf, sorting, signing) so
 * groups never wait behind it; the committer stays the only SQLite writer
 * and stores each block inside its next group's transaction (no extra
 * fsync). A block is stored only after all its transactions are durable,
 * because their groups committed before the job was handed off.
 *
 * Durability rules: a receipt leaves this file only after the WAL frames of
 * the group's COMMIT are fsynced: by the COMMIT itself (synchronous=FULL, the
 * default), or, with storage.sync_pipeline, by mz-sync while the next group is built
 * (see "Pipelined durability" below). If a COMMIT or that fsync fails the
 * sequencer halts: nothing in that group is receipted and no later group is
 * attempted, because after a failed fsync the state of the file is unknown.
 *
 * Recovery: transactions committed in groups but not yet in a sealed block
 * are read back at start; every slot before the current one is sealed from
 * them, the rest stay open.
 */
#include <errno.h>
#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "appliance/daemon.h"
#include "appliance/ops.h"
#include "l1bridge/l1.h"

#define POP_MAX 65536

static void post_done(struct app_committer *c, struct app_done *d, size_t n)
{
	/* The lws thread drains `done` continually; if it is momentarily full,
	 * wait rather than drop an answer. */
	while (n) {
		size_t chunk = n > 1024 ? 1024 : n;
		int rc = app_queue_push(c->done, d, chunk);

		if (rc == APP_EFULL) {
			lws_cancel_service(c->lws);
			struct timespec ts = {0, 200000};
			nanosleep(&ts, NULL);
			continue;
		}
		if (rc) /* closed: the server is gone; free what we own */
			for (size_t i = 0; i < chunk; i++) {
				app_done_json_free(&d[i]);
				app_preconf_free(d[i].pre);
			}
		d += chunk;
		n -= chunk;
	}
	lws_cancel_service(c->lws);
}

void app__post_done(struct app_committer *c, struct app_done *d, size_t n)
{
	post_done(c, d, n);
}

/* Every item refused with one error: one answer per item its request
 * counts, as commit_group gives (a bundle's later legs and the items
 * nobody waits for get none). A bundle answered once per leg finished its
 * request early, and the later answers landed on the freed request. */
static void answer_error(struct app_committer *c, struct app_sub *s, size_t n, int code,
			 const char *msg)
{
	struct app_done *d = calloc(n ? n : 1, sizeof(*d));
	size_t w = 0;

	if (!d)
		APP_PANIC("out of memory answering %zu submissions", n);
	for (size_t i = 0; i < n; i++) {
		if (!s[i].bundle_leg && !s[i].no_answer) {
			d[w].kind = DONE_ANSWER;
			d[w].req = s[i].req;
			d[w].slot = s[i].slot;
			d[w].is_error = 1;
			d[w].json = app_error_json(code, "%s", msg);
			w++;
		}
		free(s[i].data);
		s[i].data = NULL;
		app__slot_block_free(s[i].block);
		s[i].block = NULL;
	}
	if (w)
		post_done(c, d, w);
	free(d);
}

static int open_push(struct app_committer *c, const struct app_tx *t)
{
	if (c->open_n == c->open_cap) {
		size_t cap = c->open_cap ? c->open_cap * 2 : 1024;
		struct app_tx *v = realloc(c->open_txs, cap * sizeof(*v));

		if (!v)
			return APP_ENOMEM;
		c->open_txs = v;
		c->open_cap = cap;
	}
	c->open_txs[c->open_n++] = *t;
	return 0;
}

struct seal_job {
	uint64_t slot;
	uint64_t first_seq;
	struct app_tx *txs; /* owned by the job, then by the block */
	size_t n;
};

/* Move the open transactions of slots <= `slot` into a seal job. */
static void take_job(struct app_committer *c, uint64_t slot, struct seal_job *j)
{
	size_t n = 0;

	while (n < c->open_n && c->open_txs[n].slot <= slot)
		n++;
	if (n && c->open_txs[0].seq != c->seal_next_seq)
		APP_PANIC("open slot starts at seq %llu, expected %llu",
			  (unsigned long long)c->open_txs[0].seq,
			  (unsigned long long)c->seal_next_seq);
	j->slot = slot;
	j->first_seq = c->seal_next_seq;
	j->n = n;
	j->txs = NULL;
	if (n) {
		j->txs = malloc(n * sizeof(*j->txs));
		if (!j->txs)
			APP_PANIC("out of memory sealing %zu txs", n);
		memcpy(j->txs, c->open_txs, n * sizeof(*j->txs));
		memmove(c->open_txs, c->open_txs + n, (c->open_n - n) * sizeof(*j->txs));
		c->open_n -= n;
	}
	c->seal_next_seq += n;
}

/* Build and sign the block of a job, advancing the sealer's tip. Takes the
 * job's transactions whatever happens. */
static int build_block(struct app_committer *c, struct seal_job *j, struct app_block **out)
{
	struct seq_block_hdr h;
	struct seq_block_ns *ns = NULL;
	struct seq_tx *st = malloc((j->n ? j->n : 1) * sizeof(*st));
	uint8_t sig[64];
	int rc;

	if (!st) {
		app_txs_free(j->txs, j->n);
		return APP_ENOMEM;
	}
	for (size_t i = 0; i < j->n; i++) {
		st[i].seq = j->txs[i].seq;
		st[i].ns = j->txs[i].ns;
		memcpy(st[i].hash, j->txs[i].hash, 32);
	}
	rc = seq_block_build(&h, &ns, st, j->n, j->first_seq, c->seal_height, j->slot,
			     seq_slot_start(j->slot, 0, (uint32_t)c->cfg->slot_ms), c->seal_parent);
	free(st);
	if (rc) {
		app_txs_free(j->txs, j->n);
		return rc;
	}
	seq_block_sign(sig, &h, c->id->sk);
	rc = app_block_make(out, &h, sig, ns, h.ns_count, j->txs, j->n);
	if (rc)
		return rc;
	c->seal_height = h.height + 1;
	seq_block_hash(c->seal_parent, &h);
	return 0;
}

/* The block rows are committed: tell the feed. A block of a slot sealed
 * by the recovery at start (recovered) is no seal latency: its slot ended
 * before the restart, and the histogram would count the downtime. */
static void publish(struct app_committer *c, struct app_block **b, size_t n, int recovered)
{
	for (size_t i = 0; i < n; i++) {
		struct app_done d = {.kind = DONE_BLOCK, .block = b[i]};
		uint64_t end_ms = b[i]->hdr.time_ms + (uint64_t)c->cfg->slot_ms, now = app_wall_ms();

		atomic_store(&c->stats.height, b[i]->hdr.height);
		atomic_store(&c->stats.has_block, 1);
		if (!recovered)
			app_metric_observe(APP_M_block_seal_seconds,
					   now > end_ms ? (now - end_ms) * 1000 : 0);
		app_avail_submit(c, b[i]);
		/* If the queue is full the feed notices the new height from stats and
		 * reads the block from storage. */
		if (app_queue_push(c->done, &d, 1))
			app_block_unref(b[i]);
	}
	if (n)
		lws_cancel_service(c->lws);
}

/* The DA records up to `height` are durable: those blocks are available. */
static void publish_available(struct app_committer *c, uint64_t height)
{
	struct app_done d = {.kind = DONE_LEVEL, .level = APP_LEVEL_AVAILABLE, .height = height};

	atomic_store(&c->stats.level_tip[APP_LEVEL_AVAILABLE], d.height);
	app_metric_set(APP_M_available_height, d.height);
	/* A full queue is fine: the feed also reads the tip from stats. */
	app_queue_push(c->done, &d, 1);
	lws_cancel_service(c->lws);
}

static int insert_da(struct app_committer *c, const struct app_da_rec *r, size_t n, char *err,
		     size_t errlen)
{
	int rc = 0;

	for (size_t i = 0; !rc && i < n; i++)
		rc = app_store_da_insert(c->store, r[i].height, r[i].record, DA_RECORD_LEN,
					 r[i].sig, err, errlen);
	return rc;
}

/*
 * Transaction retention, a bounded step per COMMIT so the extra work on the
 * commit path stays small (at most PRUNE_ROWS payloads and PRUNE_BLOCKS
 * blocks): the payload bytes of blocks past storage.tx_retention_blocks are
 * dropped, but only once a block is available (its shards hold the bytes)
 * and, when L1 posting is on, once its batch is posted.
 * *below is the new floor when blocks were pruned, else 0;
 * c->txs_pruned_below moves to it only after the COMMIT succeeds.
 */
#define PRUNE_ROWS 4096
#define PRUNE_BLOCKS 64
static int prune_step(struct app_committer *c, uint64_t *below, char *err, size_t errlen)
{
	uint64_t keep = (uint64_t)c->cfg->tx_retention_blocks, sealed, avail, target, h;
	uint64_t rows = 0, first = 0, last = 0;
	int rc = 0;

	*below = 0;
	if (!keep || !atomic_load(&c->stats.has_block))
		return 0;
	sealed = atomic_load(&c->stats.height);
	avail = atomic_load(&c->stats.level_tip[APP_LEVEL_AVAILABLE]);
	if (sealed < keep)
		return 0;
	target = sealed - keep + 1; /* blocks below target may go */
	if (avail + 1 < target)
		target = avail + 1;
	/* With L1 posting on, nothing goes before its batch is posted. */
	if (c->l1.enabled) {
		uint64_t posted = atomic_load(&c->stats.level_tip[APP_LEVEL_POSTED]);

		if (posted + 1 < target)
			target = posted + 1;
	}
	h = c->txs_pruned_below ? c->txs_pruned_below : 1;
	for (int nb = 0; h < target && nb < PRUNE_BLOCKS && rows < PRUNE_ROWS; nb++, h++) {
		struct seq_block_hdr hdr;
		struct seq_block_ns *ns = NULL;
		uint8_t sig[64];
		size_t nn;

		rc = app_store_block_get(c->store, h, &hdr, sig, &ns, &nn);
		free(ns);
		if (rc) {
			snprintf(err, errlen, "retention: block %llu: %s", (unsigned long long)h,
				 app_strerror(rc));
			return rc;
		}
		if (!hdr.tx_count)
			continue;
		if (!rows)
			first = hdr.first_seq;
		last = hdr.first_seq + hdr.tx_count - 1;
		rows += hdr.tx_count;
	}
	if (h == (c->txs_pruned_below ? c->txs_pruned_below : 1))
		return 0;
	/* blocks are contiguous in seq: one range covers every pruned block */
	rc = app_store_prune_payloads(c->store, rows ? first : 1, rows ? last : 0, h, err, errlen);
	if (!rc)
		*below = h;
	return rc;
}

static void drop_blocks(struct app_block **b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		app_block_unref(b[i]);
}


static int insert_blocks(struct app_committer *c, struct app_block **b, size_t n, char *err,
			 size_t errlen)
{
	int rc = 0;

	for (size_t i = 0; !rc && i < n; i++)
		rc = app_store_block_insert(c->store, &b[i]->hdr, b[i]->sig, b[i]->ns,
					    b[i]->ns_count, err, errlen);
	return rc;
}

/*
 * What rides along in the next COMMIT, with no fsync of its own: sealed
 * blocks, DA records, the shard-retention floor mz-da asks for, and a
 * retention step. insert_riders runs inside the transaction; riders_committed
 * after its COMMIT.
 */
struct riders {
	struct app_block **blocks;
	size_t nb;
	struct app_da_rec *recs;
	size_t nr;
	uint64_t shard_floor; /* 0: no change */
	uint64_t txs_floor;   /* set by insert_riders */
	const struct app_prop_rider *prop; /* a proposer decision's rows, or NULL */
};

static int insert_riders(struct app_committer *c, struct riders *rd, char *err, size_t errlen)
{
	int rc = insert_blocks(c, rd->blocks, rd->nb, err, errlen);

	if (!rc)
		rc = insert_da(c, rd->recs, rd->nr, err, errlen);
	if (!rc && rd->shard_floor)
		rc = app_store_meta_set_u64(c->store, "shards_pruned_below", rd->shard_floor, err,
					    errlen);
	if (!rc)
		rc = prune_step(c, &rd->txs_floor, err, errlen);
	if (!rc && rd->prop)
		rc = app__prop_rider_insert(c, rd->prop, err, errlen);
	return rc;
}

/* After the COMMIT that stored them: the committer's own state. What the
 * riders mean to other threads is released with the COMMIT (hold). */
static void riders_committed(struct app_committer *c, const struct riders *rd)
{
	if (rd->txs_floor)
		c->txs_pruned_below = rd->txs_floor;
}

/*
 * Pipelined durability. With storage.sync_pipeline on, a COMMIT writes its
 * WAL frames and returns without an fsync (app_store_set_wal_sync_external)
 * and what it owes the world -- the answers, the preconfirmed event, the
 * sealed blocks it stored (feed and DA), the available level -- is held, in
 * COMMIT order, under a ticket. mz-sync fsyncs the WAL, which covers every
 * COMMIT that returned before it, and releases what it covered, in order,
 * while the committer builds the next group: group N's fsync overlaps group
 * N + 1's CPU work instead of stalling it. With it off, the COMMIT fsyncs
 * and its entry is released at once, by the committer.
 *
 *   COMMIT returned --(hold)--> HELD --(fsync returned)--> RELEASED (posted)
 *                               HELD --(fsync failed)----> FAILED
 *   FAILED: answers become "halted" errors, blocks and events are dropped,
 *   the sequencer halts; every later entry fails too, since after a failed
 *   fsync no later one proves anything (the page cache may have dropped the
 *   pages it could not write).
 *
 * Readers on other threads see only released state: the feed's tip and the
 * available level move on release, and stored receipts are served only
 * below stats.durable_seq (rpc.c).
 */
#define SYNC_MAX_HELD 256 /* COMMITs waiting for their fsync at most */

struct app_held {
	struct app_held *next;
	uint64_t ticket;
	uint64_t durable_seq; /* c->next_seq after this COMMIT */
	struct app_done *d;   /* answers */
	size_t n;
	struct app_preconf *pre;
	struct app_block **blocks; /* sealed blocks this COMMIT stored */
	size_t nb;
	uint64_t avail_height; /* DA records stored up to here (0: none) */
	uint64_t shard_floor;
	uint64_t t0_ns; /* the group's start, for mezz_group_commit_seconds */
	size_t m;	/* transactions the group inserted */
};

static void fail_answers(struct app_done *d, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		app_done_json_free(&d[i]);
		d[i].is_error = 1;
		d[i].brief = 0;
		d[i].json_len = 0;
		d[i].json = app_error_json(RPC_HALTED, "sequencer halted after a storage failure; "
						       "nothing from this request was preconfirmed");
	}
}

static void release(struct app_committer *c, struct app_held *h, int failed)
{
	if (failed) {
		fail_answers(h->d, h->n);
		drop_blocks(h->blocks, h->nb);
		app_preconf_free(h->pre);
	} else {
		uint64_t now = app_now_ns();

		for (size_t i = 0; i < h->n; i++)
			h->d[i].durable_ns = now;
		publish(c, h->blocks, h->nb, 0);
		if (h->avail_height)
			publish_available(c, h->avail_height);
		if (h->shard_floor)
			app_avail_pruned(c, h->shard_floor);
		atomic_store(&c->stats.durable_seq, h->durable_seq);
		if (h->m) { /* group start to durable: what a submitter waits for */
			uint64_t us = (now - h->t0_ns) / 1000;

			atomic_store(&c->stats.last_commit_us, us);
			app_metric_observe(APP_M_group_commit_seconds, us);
			app_metric_observe(APP_M_group_commit_size, h->m);
		}
	}
	if (h->n)
		post_done(c, h->d, h->n);
	if (!failed && h->pre) {
		struct app_done e = {.kind = DONE_PRECONF, .pre = h->pre};

		post_done(c, &e, 1);
	}
	free(h->blocks);
	free(h->d);
	free(h);
}

/* A COMMIT returned: hold what it owes until its WAL frames are durable.
 * Takes d (answers, n of them) and pre; copies the riders it released. */
static void hold(struct app_committer *c, struct app_done *d, size_t n, struct app_preconf *pre,
		 const struct riders *rd, uint64_t t0_ns, size_t m)
{
	struct app_held *h = calloc(1, sizeof(*h));

	if (!h || (rd->nb && !(h->blocks = malloc(rd->nb * sizeof(*h->blocks)))))
		APP_PANIC("out of memory holding a commit's answers");
	h->d = d;
	h->n = n;
	h->pre = pre;
	h->durable_seq = c->next_seq;
	if (rd->nb)
		memcpy(h->blocks, rd->blocks, rd->nb * sizeof(*h->blocks));
	h->nb = rd->nb;
	h->avail_height = rd->nr ? rd->recs[rd->nr - 1].height : 0;
	h->shard_floor = rd->shard_floor;
	h->t0_ns = t0_ns;
	h->m = m;
	if (!c->sync_started) {
		release(c, h, 0); /* the COMMIT fsynced */
		return;
	}
	pthread_mutex_lock(&c->sync_mu);
	/* Backpressure: past SYNC_MAX_HELD COMMITs waiting for an fsync the
	 * committer waits too, and the ingress queue fills behind it (clients
	 * get "busy"), as when each COMMIT fsynced itself. Memory and the WAL
	 * stay bounded when the disk stalls. */
	while (c->sync_req - c->sync_done >= SYNC_MAX_HELD)
		pthread_cond_wait(&c->sync_cv, &c->sync_mu);
	h->ticket = ++c->sync_req;
	if (c->held_tail)
		c->held_tail->next = h;
	else
		c->held_head = h;
	c->held_tail = h;
	pthread_cond_broadcast(&c->sync_cv);
	pthread_mutex_unlock(&c->sync_mu);
}

void app__answer_durable(struct app_committer *c, struct app_req *req, uint32_t slot, char *json)
{
	struct app_done *d = calloc(1, sizeof(*d));
	struct riders none = {0};

	if (!d)
		APP_PANIC("out of memory holding an answer");
	d->kind = DONE_ANSWER;
	d->req = req;
	d->slot = slot;
	d->json = json;
	hold(c, d, 1, NULL, &none, 0, 0);
}

/* After one failed fsync of the WAL every later one fails too, whichever
 * thread asks: its success would prove nothing about pages the kernel may
 * have dropped. */
static int wal_sync(struct app_committer *c)
{
	int rc = atomic_load(&c->sync_failed) ? -EIO : APP_FAULT_FSYNC();

	if (!rc)
		rc = app_store_wal_sync(c->store);
	if (rc)
		atomic_store(&c->sync_failed, 1);
	return rc;
}

/* mz-sync: one fdatasync of the WAL covers every COMMIT before it; then
 * release what it covered, in order. Drains everything before it stops. */
static void *syncer(void *arg)
{
	struct app_committer *c = arg;
	int logged = 0;

	pthread_setname_np(pthread_self(), "mz-sync");
	pthread_mutex_lock(&c->sync_mu);
	for (;;) {
		struct app_held *list, *last = NULL;
		uint64_t t;
		int rc;

		while (!c->sync_stop && c->sync_done == c->sync_req)
			pthread_cond_wait(&c->sync_cv, &c->sync_mu);
		if (c->sync_done == c->sync_req)
			break; /* stopping, and nothing is held */
		pthread_mutex_unlock(&c->sync_mu);
		APP_FAULT_POINT(sync);
		pthread_mutex_lock(&c->sync_mu);
		t = c->sync_req; /* everything COMMITted until now */
		pthread_mutex_unlock(&c->sync_mu);
		rc = wal_sync(c);
		if (rc && !logged++) {
			atomic_store(&c->stats.halted, 1);
			app_error("sequencer_halted", "reason=\"fsync of the WAL\" err=\"%s\"",
				  app_strerror(rc));
		}
		pthread_mutex_lock(&c->sync_mu);
		c->sync_done = t;
		pthread_cond_broadcast(&c->sync_cv); /* room for a committer in hold() */
		list = c->held_head;
		for (struct app_held *h = list; h && h->ticket <= t; h = h->next)
			last = h;
		if (last) {
			c->held_head = last->next;
			if (!c->held_head)
				c->held_tail = NULL;
			last->next = NULL;
		} else {
			list = NULL;
		}
		pthread_mutex_unlock(&c->sync_mu);
		for (struct app_held *h = list, *next; h; h = next) {
			next = h->next;
			release(c, h, rc != 0);
		}
		pthread_mutex_lock(&c->sync_mu);
	}
	pthread_mutex_unlock(&c->sync_mu);
	return NULL;
}

int app__commit_durable(struct app_committer *c, char *err, size_t errlen)
{
	int rc = app_store_commit(c->store, err, errlen);

	if (!rc && c->sync_started) {
		rc = wal_sync(c);
		if (rc)
			snprintf(err, errlen, "fsync of the WAL: %s", app_strerror(rc));
	}
	return rc;
}

static void *sealer(void *arg)
{
	struct app_committer *c = arg;

	pthread_setname_np(pthread_self(), "mz-seal");
	for (;;) {
		struct seal_job j;
		struct app_block *b;
		struct app_sub wake = {0}; /* req == NULL: a wake-up, not a submission */
		int rc;

		if (!app_queue_pop(&c->seal_jobs, &j, 1, app_now_ns() + 1000000000ull)) {
			if (c->seal_jobs.closed && app_queue_len(&c->seal_jobs) == 0)
				break;
			continue;
		}
		APP_FAULT_POINT(seal);
		rc = build_block(c, &j, &b);
		if (rc) {
			atomic_store(&c->stats.halted, 1);
			app_error("sequencer_halted", "reason=seal slot=%llu err=\"%s\"",
				  (unsigned long long)j.slot, app_strerror(rc));
			continue;
		}
		/* Off the lws thread, for the feed's subscribers; without the
		 * memory for it the lws thread renders the block as before. */
		if (app_block_render_txs(b, &c->interest) > 0)
			app_metric_add(APP_M_feed_rendered_ahead_total, 1);
		pthread_mutex_lock(&c->sealed_mu);
		if (c->sealed_n == c->sealed_cap) {
			size_t cap = c->sealed_cap ? c->sealed_cap * 2 : 16;
			struct app_block **v = realloc(c->sealed, cap * sizeof(*v));

			if (!v)
				APP_PANIC("out of memory queueing a sealed block");
			c->sealed = v;
			c->sealed_cap = cap;
		}
		c->sealed[c->sealed_n++] = b;
		pthread_mutex_unlock(&c->sealed_mu);
		/* A full queue means the committer is busy and will look anyway. */
		app_queue_push(c->ingress, &wake, 1);
	}
	return NULL;
}

/* Blocks the sealer has finished, in height order. *out is malloc'd. */
static size_t take_sealed(struct app_committer *c, struct app_block ***out)
{
	size_t n;

	pthread_mutex_lock(&c->sealed_mu);
	n = c->sealed_n;
	*out = c->sealed;
	c->sealed = NULL;
	c->sealed_n = c->sealed_cap = 0;
	pthread_mutex_unlock(&c->sealed_mu);
	return n;
}

static void hand_off(struct app_committer *c, uint64_t slot)
{
	struct seal_job j;

	take_job(c, slot, &j);
	while (app_queue_push(&c->seal_jobs, &j, 1) == APP_EFULL) {
		struct timespec ts = {0, 1000000};

		nanosleep(&ts, NULL); /* the sealer is 64 slots behind: let it catch up */
	}
}

/* eth_sendRawTransaction answers with the hash; everything else gets the
 * receipt. The bytes answer_put may write, its NUL included: */
static size_t answer_cap(const struct app_sub *s, size_t path_len)
{
	return s->want_hash ? 1 + 2 + 64 + 1 + 1 /* "0x<64 hex>" */
			    : app_receipt_json_cap(path_len, strlen(s->ns_name));
}

/* Writes the answer at w, NUL-terminated; returns the NUL's address. */
static char *answer_put(struct app_committer *c, const struct app_sub *s,
			const struct seq_receipt *r, char *w)
{
	if (!s->want_hash)
		return app_receipt_json_put(w, r, s->ns_name, c->id->pk);
	w[0] = '"';
	l1_hex_encode(w + 1, r->hash, 32);
	memcpy(w + 1 + 2 + 64, "\"", 2);
	return w + 1 + 2 + 64 + 1;
}

/* The answer in its own allocation. *len is its length (0 when out of memory). */
static char *answer_json(struct app_committer *c, const struct app_sub *s,
			 const struct seq_receipt *r, size_t *len)
{
	char *out = malloc(answer_cap(s, r->path_len));

	*len = out ? (size_t)(answer_put(c, s, r, out) - out) : 0;
	return out;
}

/* The answer into the group's buffer ab while it has room, else on its own. */
static void answer_into(struct app_committer *c, struct app_answer_buf *ab,
			const struct app_sub *s, const struct seq_receipt *r, struct app_done *d)
{
	char *w = ab ? app_answer_buf_take(ab, answer_cap(s, r->path_len)) : NULL, *end;

	if (!w) {
		d->json = answer_json(c, s, r, &d->json_len);
		return;
	}
	end = answer_put(c, s, r, w);
	app_answer_buf_used(ab, end + 1);
	d->json = w;
	d->json_len = (size_t)(end - w);
	d->buf = ab;
}

/* A small open-addressing set over (ns, hash) for duplicates inside a group. */
static size_t dup_find_or_add(uint32_t *tab, size_t cap, const struct app_sub *s, uint32_t i)
{
	uint64_t h;

	memcpy(&h, s[i].hash, 8);
	h ^= s[i].ns * 0x9e3779b97f4a7c15ull;
	for (size_t k = h & (cap - 1);; k = (k + 1) & (cap - 1)) {
		if (tab[k] == UINT32_MAX) {
			tab[k] = i;
			return i;
		}
		if (s[tab[k]].ns == s[i].ns && !memcmp(s[tab[k]].hash, s[i].hash, 32))
			return tab[k];
	}
}

/*
 * The rows this group has inserted so far, txs[0..m), by (ns, hash): the
 * check a unique index used to make for the legs of a bundle and for items
 * repeating an earlier leg. 1 if txs[k]'s key is there already; otherwise k
 * is added and 0 returned.
 */
static int inserted_before(uint32_t *tab, size_t cap, const struct app_tx *txs, uint32_t k)
{
	uint64_t h;

	memcpy(&h, txs[k].hash, 8);
	for (size_t j = h & (cap - 1);; j = (j + 1) & (cap - 1)) {
		if (tab[j] == UINT32_MAX) {
			tab[j] = k;
			return 0;
		}
		if (txs[tab[j]].ns == txs[k].ns && !memcmp(txs[tab[j]].hash, txs[k].hash, 32))
			return 1;
	}
}

/* Halt after a storage failure: nobody in this group gets a receipt. */
static void halt(struct app_committer *c, struct app_done *d, size_t n, const char *err)
{
	atomic_store(&c->stats.halted, 1);
	app_error("sequencer_halted", "group=%llu txs=%zu sqlite=\"%s\"",
		  (unsigned long long)c->next_group, n, err);
	fail_answers(d, n);
}

/* Receipt of a transaction that was already durable before this group. */
static void answer_stored(struct app_committer *c, const struct app_sub *s, struct app_done *d)
{
	struct app_tx found;
	struct seq_receipt r;

	if (app_store_tx_find(c->store, s->ns, s->hash, &found) == 0 &&
	    app_receipt_load(c->store, &found, &r) == 0) {
		d->json = answer_json(c, s, &r, &d->json_len);
	} else {
		d->is_error = 1;
		d->json = app_error_json(RPC_INTERNAL, "stored receipt unreadable");
	}
}

/*
 * Atomic bundles. The legs of a bundle are consecutive items of one group,
 * inserted under a savepoint: if any leg is already stored (or was inserted
 * earlier in this group), the savepoint is rolled back and none is stored.
 * If every leg is already stored, the bundle was sequenced before: its
 * stored receipts are the answer (resubmission is idempotent). One answer
 * goes back for the whole bundle, on its first leg's request slot.
 */
enum bundle_result { BUNDLE_OK, BUNDLE_CONFLICT, BUNDLE_STORED };

/* {"slot","group","firstSeq","count","legs":[receipt...]}: every leg's
 * receipt, all under the same signed group root. */
static char *bundle_json(struct app_committer *c, const struct app_sub *s,
			 const struct seq_receipt *r, size_t n)
{
	char *out = NULL, **legs = calloc(n, sizeof(char *));
	size_t len = 128;

	for (size_t k = 0; legs && k < n; k++) {
		legs[k] = app_receipt_json(&r[k], s[k].ns_name, c->id->pk, NULL);
		if (!legs[k])
			goto out;
		len += strlen(legs[k]) + 1;
	}
	out = legs ? malloc(len) : NULL;
	if (out) {
		size_t w = (size_t)snprintf(out, len,
					    "{\"slot\":%llu,\"group\":%llu,\"firstSeq\":%llu,"
					    "\"count\":%zu,\"legs\":[",
					    (unsigned long long)r[0].slot,
					    (unsigned long long)r[0].group_id,
					    (unsigned long long)r[0].seq, n);
		for (size_t k = 0; k < n; k++)
			w += (size_t)snprintf(out + w, len - w, "%s%s", k ? "," : "", legs[k]);
		snprintf(out + w, len - w, "]}");
	}
out:
	for (size_t k = 0; legs && k < n; k++)
		free(legs[k]);
	free(legs);
	return out;
}

/* The answer for a bundle whose legs are s[0..n). tree/g: this group, when
 * the bundle was inserted in it (pos[] its positions). */
static void bundle_answer(struct app_committer *c, const struct app_sub *s, size_t n,
			  enum bundle_result res, const size_t *pos, const struct seq_group *g,
			  const struct seq_merkle_tree *tree, struct app_done *d)
{
	struct seq_receipt *r = calloc(n, sizeof(*r));
	int ok = r != NULL;

	for (size_t k = 0; ok && k < n; k++) {
		struct app_tx found;

		if (res == BUNDLE_OK) {
			if (seq_receipt_from_tree(&r[k], &g->hdr, g->sig, tree, pos[k], s[k].ns,
						  s[k].hash))
				APP_PANIC("bundle receipt does not match its group");
		} else if (res == BUNDLE_STORED) {
			/* stored before: only the same bundle again, contiguous in one group */
			ok = app_store_tx_find(c->store, s[k].ns, s[k].hash, &found) == 0 &&
			     app_receipt_load(c->store, &found, &r[k]) == 0 &&
			     (k == 0 || (r[k].group_id == r[0].group_id && r[k].seq == r[0].seq + k));
		} else {
			ok = 0;
		}
	}
	if (ok) {
		d->json = bundle_json(c, s, r, n);
	} else {
		d->is_error = 1;
		d->json = app_error_json(RPC_BUNDLE_CONFLICT,
					 "bundle not sequenced: some of its transactions are "
					 "already sequenced on their own or in another bundle; "
					 "nothing from it was stored");
	}
	free(r);
}

void app_preconf_free(struct app_preconf *p)
{
	if (!p)
		return;
	free(p->tx);
	free(p->bytes);
	free(p);
}

/* The `preconfirmed` feed event of a committed group: a copy of its
 * transactions (the open slot keeps the originals for the sealer). */
static struct app_preconf *preconf_build(const struct seq_group *g, const struct app_tx *txs,
					 size_t m)
{
	struct app_preconf *p = calloc(1, sizeof(*p));
	size_t total = 0, off = 0;

	for (size_t k = 0; k < m; k++)
		total += txs[k].len;
	if (!p || !(p->tx = malloc(m * sizeof(*p->tx))) || !(p->bytes = malloc(total ? total : 1))) {
		app_preconf_free(p);
		return NULL; /* the event is skipped; receipts and blocks are unaffected */
	}
	p->hdr = g->hdr;
	memcpy(p->sig, g->sig, 64);
	p->n = m;
	for (size_t k = 0; k < m; k++) {
		memcpy(p->bytes + off, txs[k].data, txs[k].len);
		p->tx[k] = (struct app_preconf_tx){.ns = txs[k].ns, .seq = txs[k].seq,
						   .data = p->bytes + off,
						   .len = (uint32_t)txs[k].len};
		memcpy(p->tx[k].hash, txs[k].hash, 32);
		off += txs[k].len;
	}
	return p;
}

/*
 * Batch receipts (mezz_sendTransactions). The items of one request reach a
 * group together (one push, popped in order), so they form one run; its
 * brief answers are written as they come and, when the run ends, one
 * section with a multiproof for all of its indices goes on the run's first
 * answer. A request seen again after its run ended (which the queue does
 * not do) is answered with full receipts, never a second section for the
 * same group.
 */
struct brief_run {
	struct app_req *req; /* NULL: no run open */
	size_t first;	     /* its first item's position in the batch */
	size_t k;	     /* its group indices so far, in idx[0..k) */
	size_t *idx;
	const void **seen;   /* requests whose run ended, open addressing */
	size_t cap;
};

/* 1 if req was already in the set (a run of it ended); else adds it. */
static int run_seen(struct brief_run *b, const struct app_req *req)
{
	uintptr_t h = (uintptr_t)req * 0x9e3779b97f4a7c15ull;

	for (size_t j = (h >> 17) & (b->cap - 1);; j = (j + 1) & (b->cap - 1)) {
		if (!b->seen[j]) {
			b->seen[j] = req;
			return 0;
		}
		if (b->seen[j] == req)
			return 1;
	}
}

/* Ends the open run: its section onto its first answer. Out of memory,
 * the run's brief answers become full receipts. */
static void run_end(struct app_committer *c, struct brief_run *b, const struct seq_group *g,
		    const struct seq_merkle_tree *tree, const struct app_sub *s,
		    struct app_done *d, const size_t *pos, size_t n)
{
	struct app_done *f;

	if (!b->req)
		return;
	f = &d[b->first];
	f->section = app_batch_section_json(&g->hdr, g->sig, tree, b->idx, b->k, &f->section_len);
	if (!f->section) {
		for (size_t i = b->first; i < n; i++) {
			struct seq_receipt r;

			if (s[i].req != b->req || !d[i].brief)
				continue;
			app_done_json_free(&d[i]);
			d[i].brief = 0;
			if (seq_receipt_from_tree(&r, &g->hdr, g->sig, tree, pos[i], s[i].ns,
						  s[i].hash) == 0)
				d[i].json = answer_json(c, &s[i], &r, &d[i].json_len);
		}
	}
	b->req = NULL;
	b->k = 0;
}

/* Answers item i (new in the group, receipt r) briefly when it asked for it
 * and its request's run can take it; 0 if answered, -1 if it needs a full
 * receipt. */
static int brief_answer(struct app_committer *c, struct brief_run *b, struct app_answer_buf *ab,
			const struct seq_group *g, const struct seq_merkle_tree *tree,
			const struct app_sub *s, struct app_done *d, const size_t *pos, size_t n,
			size_t i, const struct seq_receipt *r)
{
	char *w, *end;
	int pooled;

	if (!s[i].brief || !b->idx)
		return -1;
	if (b->req != s[i].req) {
		run_end(c, b, g, tree, s, d, pos, n);
		if (run_seen(b, s[i].req))
			return -1;
		b->req = s[i].req;
		b->first = i;
	}
	w = ab ? app_answer_buf_take(ab, APP_RECEIPT_BRIEF_CAP) : NULL;
	pooled = w != NULL;
	if (!pooled && !(w = malloc(APP_RECEIPT_BRIEF_CAP)))
		return -1;
	end = app_receipt_brief_put(w, r);
	if (pooled)
		app_answer_buf_used(ab, end + 1);
	d[i].buf = pooled ? ab : NULL;
	d[i].json = w;
	d[i].json_len = (size_t)(end - w);
	d[i].brief = 1;
	b->idx[b->k++] = pos[i];
	return 0;
}

/* Rows commit_group holds back to insert in one app_store_txs_insert. */
#define INSERT_RUN 64

/* Inserts the rows held back, txs[*done..m). */
static int insert_held(struct app_committer *c, const struct app_tx *txs, size_t *done,
		       size_t m, char *err, size_t errlen)
{
	int rc = m > *done ? app_store_txs_insert(c->store, txs + *done, m - *done, err, errlen)
			   : 0;

	*done = m;
	return rc;
}

/*
 * One group: dedupe inside the group, insert each new transaction with the
 * next sequence number (an (ns, hash) already stored inserts nothing and is
 * answered with its stored receipt), build and sign the root over what was
 * inserted, COMMIT (fsync), and only then answer.
 */
static void commit_group(struct app_committer *c, struct app_sub *s, size_t n,
			 struct riders *rd)
{
	struct app_done *d = calloc(n, sizeof(*d));
	uint32_t *alias = malloc(n * sizeof(*alias)), *set = NULL, *ins = NULL;
	uint64_t *ns = malloc(n * sizeof(*ns));
	uint8_t(*hashes)[32] = malloc(n * 32);
	struct app_tx *txs = malloc(n * sizeof(*txs));
	size_t *pos = malloc(n * sizeof(*pos)); /* index within the group, or SIZE_MAX */
	uint8_t *bres = calloc(n, 1);		/* first leg of a bundle: enum bundle_result */
	size_t setcap = 16, m = 0, b_first = 0, b_end = 0, b_m0 = 0, b_stored = 0;
	size_t m_done = 0; /* txs[m_done..m) are accepted, not yet inserted */
	struct seq_group g = {0};
	struct seq_merkle_tree tree = {0};
	struct app_preconf *pre = NULL;
	struct app_answer_buf *ab = NULL;
	struct brief_run brief = {0};
	char err[256];
	uint64_t t0 = app_now_ns();
	int rc, committed = 0;

	while (setcap < 2 * n)
		setcap <<= 1;
	set = malloc(setcap * sizeof(*set));
	ins = malloc(setcap * sizeof(*ins));
	if (!d || !alias || !ns || !hashes || !txs || !pos || !set || !ins || !bres)
		APP_PANIC("out of memory committing a group of %zu", n);
	memset(set, 0xff, setcap * sizeof(*set));
	memset(ins, 0xff, setcap * sizeof(*ins));

	app_txindex_prune(c->txi); /* before BEGIN: txindex.c says why */
	{ /* the lookups below, one per item, with their cache misses overlapped */
		const uint8_t **h = malloc(n * sizeof(*h));

		if (h) {
			for (size_t i = 0; i < n; i++)
				h[i] = s[i].hash;
			app_store_tx_prefetch(c->store, h, n);
			free(h);
		}
	}
	rc = app_store_begin(c->store, err, sizeof(err));
	for (size_t i = 0; i < n; i++) {
		d[i].kind = DONE_ANSWER;
		d[i].req = s[i].req;
		d[i].slot = s[i].slot;
		d[i].pop_ns = s[i].pop_ns;
		pos[i] = SIZE_MAX;
		if (s[i].bundle_n) { /* first leg: the bundle is s[i .. i + bundle_n) */
			b_first = i;
			b_end = i + s[i].bundle_n;
			b_m0 = m;
			b_stored = 0;
			if (!rc)
				rc = insert_held(c, txs, &m_done, m, err, sizeof(err));
			if (!rc)
				rc = app_store_savepoint(c->store, err, sizeof(err));
		}
		/* bundle legs stay out of the in-group dedup: inserted_before
		 * catches a leg inserted earlier in this group */
		alias[i] = i < b_end ? (uint32_t)i
				     : (uint32_t)dup_find_or_add(set, setcap, s, (uint32_t)i);
		if (rc || alias[i] != i)
			continue;
		txs[m] = (struct app_tx){.seq = c->next_seq + m, .ns = s[i].ns,
					 .group_id = c->next_group, .slot = c->open_slot,
					 .data = s[i].data, .len = s[i].len};
		memcpy(txs[m].hash, s[i].hash, 32);
		rc = app_store_tx_known(c->store, s[i].ns, s[i].hash);
		if (rc < 0)
			snprintf(err, sizeof(err), "looking up a hash: %s", app_strerror(rc));
		else if (rc == 1 || inserted_before(ins, setcap, txs, (uint32_t)m))
			rc = APP_EEXIST;
		if (rc == APP_EEXIST) { /* stored already: answered after COMMIT */
			rc = 0;
			b_stored += i < b_end;
		} else if (!rc) { /* a new row: inserted with the next run */
			pos[i] = m;
			ns[m] = s[i].ns;
			memcpy(hashes[m], s[i].hash, 32);
			m++;
			if (m - m_done >= INSERT_RUN)
				rc = insert_held(c, txs, &m_done, m, err, sizeof(err));
		}
		/* on failure keep going: every item still needs its req and slot filled */
		if (!rc && i + 1 == b_end) { /* last leg: keep all of the bundle or none */
			if (b_stored) {
				/* rows held back since the savepoint are dropped
				 * with the rows it rolls back */
				rc = app_store_savepoint_rollback(c->store, err, sizeof(err));
				m = b_m0;
				m_done = m;
				memset(ins, 0xff, setcap * sizeof(*ins));
				for (size_t k = 0; k < m; k++)
					inserted_before(ins, setcap, txs, (uint32_t)k);
				for (size_t k = b_first; k < b_end; k++)
					pos[k] = SIZE_MAX;
				bres[b_first] = b_stored == b_end - b_first ? BUNDLE_STORED
									    : BUNDLE_CONFLICT;
			} else {
				rc = insert_held(c, txs, &m_done, m, err, sizeof(err));
				if (!rc)
					rc = app_store_savepoint_release(c->store, err, sizeof(err));
			}
		}
	}
	if (!rc)
		rc = insert_held(c, txs, &m_done, m, err, sizeof(err));
	if (!rc && m) {
		/* the tree whose root is signed also cuts every receipt below */
		rc = seq_group_build_tree(&g, &tree, c->next_group, c->open_slot, c->next_seq,
					  ns, (const uint8_t(*)[32])hashes, m, c->id->sk);
		if (rc)
			APP_PANIC("seq_group_build_tree: %s", app_strerror(rc));
		rc = app_store_group_insert(c->store, &g, err, sizeof(err));
	}
	if (!rc)
		rc = insert_riders(c, rd, err, sizeof(err));
	if (!rc)
		rc = app_store_commit(c->store, err, sizeof(err));
	if (rc) {
		/* No retry after a failed write or fsync: the file's state is unknown. */
		app_store_rollback(c->store);
		halt(c, d, n, err);
		for (size_t i = 0; i < n; i++)
			free(s[i].data);
		seq_group_free(&g);
		seq_merkle_tree_free(&tree);
		drop_blocks(rd->blocks, rd->nb);
		goto out;
	}
	riders_committed(c, rd);
	app_txindex_add(c->txi, txs, m); /* before anything can read these seqs */
	committed = 1;
	if (m) {
		size_t depth = 0, cap = 0;

		/* Room for every receipt cut from the tree below (a proof has at
		 * most ceil(log2 m) elements); one that does not fit gets its own
		 * allocation, as does everything when this one fails. */
		while (((size_t)1 << depth) < m)
			depth++;
		for (size_t i = 0; i < n; i++)
			if (!s[i].bundle_n && alias[i] == i && pos[i] != SIZE_MAX)
				cap += s[i].brief ? APP_RECEIPT_BRIEF_CAP : answer_cap(&s[i], depth);
		ab = app_answer_buf_new(cap);
		for (size_t i = 0; i < n; i++)
			if (s[i].brief) {
				brief.idx = malloc(m * sizeof(*brief.idx));
				brief.seen = calloc(setcap, sizeof(*brief.seen));
				brief.cap = setcap;
				if (!brief.idx || !brief.seen) {
					free(brief.idx);
					free(brief.seen);
					brief.idx = NULL; /* full receipts for everyone */
					brief.seen = NULL;
				}
				break;
			}
	}
	for (size_t i = 0; i < n; i++) {
		struct seq_receipt r;

		if (s[i].bundle_n) {
			bundle_answer(c, &s[i], s[i].bundle_n, (enum bundle_result)bres[i], &pos[i],
				      &g, &tree, &d[i]);
			for (size_t k = i; k < i + s[i].bundle_n; k++)
				if (pos[k] == SIZE_MAX)
					free(s[k].data);
			i += s[i].bundle_n - 1;
			continue;
		}
		if (alias[i] != i) {
			/* a repeat of an item new here gets that item's full
			 * receipt when either asked for brief answers: a brief
			 * answer is only proved by its own request's section
			 * (the others copy the first's answer below) */
			if (pos[alias[i]] != SIZE_MAX && (s[i].brief || d[alias[i]].brief)) {
				if (seq_receipt_from_tree(&r, &g.hdr, g.sig, &tree, pos[alias[i]],
							  s[i].ns, s[i].hash))
					APP_PANIC("receipt of a repeated item does not match");
				d[i].json = answer_json(c, &s[i], &r, &d[i].json_len);
				if (!d[i].json)
					d[i].json = strdup(""); /* answered: not copied below */
			}
			continue;
		}
		if (pos[i] == SIZE_MAX) {
			answer_stored(c, &s[i], &d[i]);
			free(s[i].data);
			continue;
		}
		if (seq_receipt_from_tree(&r, &g.hdr, g.sig, &tree, pos[i], s[i].ns, s[i].hash))
			APP_PANIC("receipt for seq %llu does not match its group",
				  (unsigned long long)(c->next_seq + pos[i]));
		if (brief_answer(c, &brief, ab, &g, &tree, s, d, pos, n, i, &r))
			answer_into(c, ab, &s[i], &r, &d[i]);
	}
	run_end(c, &brief, &g, &tree, s, d, pos, n);
	free(brief.idx);
	free(brief.seen);
	app_answer_buf_put(ab); /* the answers hold it now */
	seq_merkle_tree_free(&tree);
	if (m && atomic_load(&c->preconf_subs))
		pre = preconf_build(&g, txs, m);
	seq_group_free(&g);
	for (size_t k = 0; k < m; k++) /* the open slot now owns the data */
		if (open_push(c, &txs[k]))
			APP_PANIC("out of memory holding the open slot");
	if (m) {
		c->next_seq += m;
		c->next_group++;
		atomic_store(&c->stats.next_seq, c->next_seq);
		atomic_fetch_add(&c->stats.groups, 1);
		atomic_fetch_add(&c->stats.txs, m);
	}
	/* In-group duplicates: data freed, answer copied from the first occurrence. */
	for (size_t i = 0; i < n; i++) {
		if (alias[i] == i)
			continue;
		free(s[i].data);
		if (d[i].json) { /* answered above (brief requests) */
			if (!*d[i].json) {
				free(d[i].json);
				d[i].json = NULL; /* out of memory: an internal error */
			}
			continue;
		}
		d[i].is_error = d[alias[i]].is_error;
		d[i].json = d[alias[i]].json ? strdup(d[alias[i]].json) : NULL;
		d[i].json_len = d[i].json ? d[alias[i]].json_len : 0;
	}
out:
	/* One answer per bundle: drop the entries of its later legs, and those
	 * of items nobody waits for. */
	{
		size_t w = 0;

		for (size_t i = 0; i < n; i++) {
			if (s[i].bundle_leg)
				continue;
			if (s[i].no_answer) {
				app_done_json_free(&d[i]);
				continue;
			}
			d[w++] = d[i];
		}
		n = w;
	}
	/* A NULL json (allocation failure) is answered as an internal error. */
	if (committed) {
		hold(c, d, n, pre, rd, t0, m);
		d = NULL;
	} else if (n) {
		post_done(c, d, n);
	}
	free(bres);
	free(d);
	free(alias);
	free(ns);
	free(hashes);
	free(txs);
	free(pos);
	free(set);
	free(ins);
}

static uint64_t now_slot(struct app_committer *c)
{
	return seq_slot_at(app_wall_ms(), 0, (uint32_t)c->cfg->slot_ms);
}

/*
 * WAL checkpoints. SQLite rewinds the WAL only when a writer begins after a
 * checkpoint that copied every frame back; a checkpoint running beside a
 * busy writer never finishes, so the WAL would grow without bound (measured:
 * 1.9 GB in 12 s at full load). The work is split:
 *   - the checkpointer thread copies the bulk of the frames in the
 *     background (PASSIVE: no writer lock) once the WAL passes a quarter of
 *     CKPT_FRAMES;
 *   - the committer, between groups, runs a PASSIVE checkpoint itself once
 *     the WAL passes CKPT_FRAMES. Nothing is appended meanwhile, so it
 *     finishes, and the next group rewinds the WAL. It only has the frames
 *     since the background pass left to copy.
 * SQLite's automatic checkpoint would do all of the copying inside the
 * committer's COMMIT instead.
 */
#define CKPT_FRAMES 8192 /* 32 MiB of 4 KiB pages */

static void checkpoint_inline(struct app_committer *c)
{
	int frames = 0, done = 0;

	if (app_store_wal_frames(c->store) < CKPT_FRAMES)
		return;
	/* SQLITE_BUSY (the checkpointer holds the checkpoint lock) is fine:
	 * the next group tries again. */
	if (app_store_checkpoint(c->store, &frames, &done))
		app_warn("checkpoint_failed", "wal_frames=%d", frames);
}

/* Store sealed blocks and DA records when no group is there to carry them. */
static void store_riders(struct app_committer *c, struct riders *rd)
{
	char err[256];
	int rc = app_store_begin(c->store, err, sizeof(err));

	if (!rc)
		rc = insert_riders(c, rd, err, sizeof(err));
	if (!rc)
		rc = app_store_commit(c->store, err, sizeof(err));
	if (rc) {
		app_store_rollback(c->store);
		atomic_store(&c->stats.halted, 1);
		app_error("sequencer_halted", "reason=\"storing sealed block\" sqlite=\"%s\"", err);
		drop_blocks(rd->blocks, rd->nb);
		return;
	}
	riders_committed(c, rd);
	hold(c, NULL, 0, NULL, rd, 0, 0);
}

void app__commit_decision(struct app_committer *c, struct app_sub *s, size_t n,
			  const struct app_prop_rider *pr)
{
	struct riders rd = {.prop = pr};

	if (n)
		commit_group(c, s, n, &rd);
	else
		store_riders(c, &rd);
}

/*
 * Remove the sealer's wake-ups (req == NULL) from a popped batch, and stamp
 * what is left with the time it was taken: a preconfirmation's wait in the
 * ingress queue ends here (mezz_preconf_queue_seconds).
 */
static size_t taken(struct app_sub *items, size_t n)
{
	uint64_t now = n ? app_now_ns() : 0;
	size_t k = 0;

	for (size_t i = 0; i < n; i++)
		if (items[i].req) {
			items[i].pop_ns = now;
			items[k++] = items[i];
		}
	return k;
}

/*
 * A bundle's legs are pushed in one all-or-nothing push, so when a pop cut
 * one short the rest is already queued: take it now, so the whole bundle
 * commits in this group. items has room for APP_BUNDLE_MAX_LEGS more.
 */
static size_t complete_bundles(struct app_committer *c, struct app_sub *items, size_t n)
{
	size_t i = 0;

	while (i < n) {
		size_t end = i + (items[i].bundle_n ? items[i].bundle_n : 1);

		while (end > n) {
			size_t k = app_queue_pop(c->ingress, items + n, end - n, 0);

			if (!k)
				APP_PANIC("bundle of %u legs cut short in the ingress queue",
					  items[i].bundle_n);
			n += taken(items + n, k);
		}
		i = end;
	}
	return n;
}

static void *run(void *arg)
{
	struct app_committer *c = arg;
	struct app_sub *items = malloc((POP_MAX + APP_BUNDLE_MAX_LEGS) * sizeof(*items));
	size_t max = (size_t)c->cfg->group_max_txs;
	int clock_behind = 0;

	if (!items)
		APP_PANIC("out of memory for the committer");
	pthread_setname_np(pthread_self(), "mz-commit");
	for (;;) {
		uint64_t cur = now_slot(c), wall = app_wall_ms(), deadline, end_ms, prop_ms;
		struct riders rd;
		size_t n;

		/* Winners past their deadline are decided inside their own slot,
		 * before it is handed off. */
		prop_ms = atomic_load(&c->stats.halted) ? 0 : app__prop_tick(c);
		/* Slots follow the wall clock: stepped back, it leaves the open
		 * slot in its future, and nothing is sealed (transactions are
		 * still preconfirmed into it) until the clock is there again. */
		if (cur + 1 < c->open_slot && !clock_behind) {
			clock_behind = 1;
			app_warn("clock_behind",
				 "slot=%llu open_slot=%llu seconds=%.1f: the wall clock went back; "
				 "sealing waits for it",
				 (unsigned long long)cur, (unsigned long long)c->open_slot,
				 (double)(c->open_slot - cur) * (double)c->cfg->slot_ms / 1000.0);
		} else if (clock_behind && cur >= c->open_slot) {
			clock_behind = 0;
			app_info("clock_caught_up", "slot=%llu", (unsigned long long)cur);
		}
		if (cur > c->open_slot && !atomic_load(&c->stats.halted)) {
			hand_off(c, c->open_slot);
			c->open_slot = cur;
			atomic_store(&c->stats.open_slot, cur);
			app__prop_slot_rolled(c);
			prop_ms = app__prop_tick(c);
		}
		end_ms = seq_slot_start(c->open_slot + 1, 0, (uint32_t)c->cfg->slot_ms);
		if (prop_ms && prop_ms < end_ms)
			end_ms = prop_ms;
		deadline = app_now_ns() + (end_ms > wall ? end_ms - wall : 0) * 1000000ull + 1;
		if (atomic_load(&c->stats.halted)) /* no slot moves on: wait for work */
			deadline = app_now_ns() + (uint64_t)c->cfg->slot_ms * 1000000ull;
		n = taken(items, app_queue_pop(c->ingress, items, max, deadline));
		if (n && c->cfg->group_linger_us && n < max) {
			uint64_t until = app_now_ns() + (uint64_t)c->cfg->group_linger_us * 1000;

			while (n < max && app_now_ns() < until) {
				size_t k = app_queue_pop(c->ingress, items + n, max - n, until);

				if (!k)
					break;
				n += taken(items + n, k);
			}
		}
		n = complete_bundles(c, items, n);
		if (!atomic_load(&c->stats.halted)) {
			/* held and sub-block items leave the batch; sub-blocks are
			 * decided now (the batch's own items are in other namespaces) */
			n = app__prop_intake(c, items, n);
			app__prop_blocks(c); /* refuses them if intake halted */
		}
		if (atomic_load(&c->stats.halted))
			app__prop_halted(c);
		rd.nb = take_sealed(c, &rd.blocks);
		rd.nr = app_avail_take(c, &rd.recs, &rd.shard_floor);
		rd.txs_floor = 0;
		rd.prop = NULL;
		if (n == 0 && rd.nb == 0 && rd.nr == 0 && rd.shard_floor == 0) {
			free(rd.blocks);
			free(rd.recs);
			if (c->ingress->closed && app_queue_len(c->ingress) == 0)
				break;
			continue;
		}
		if (atomic_load(&c->stats.halted)) {
			if (n)
				answer_error(c, items, n, RPC_HALTED,
					     "sequencer halted after a storage failure; see the daemon log");
			drop_blocks(rd.blocks, rd.nb);
		} else if (n) {
			commit_group(c, items, n, &rd);
		} else {
			store_riders(c, &rd);
		}
		free(rd.blocks);
		free(rd.recs);
		if (!atomic_load(&c->stats.halted)) {
			/* after the answers are on their way */
			checkpoint_inline(c);
			app_store_wal_prefetch(c->store);
		}
	}
	free(items);
	atomic_store(&c->stats.exited, 1);
	lws_cancel_service(c->lws);
	return NULL;
}

static void *checkpointer(void *arg)
{
	struct app_committer *c = arg;
	int frames = 0, done = 0;

	pthread_setname_np(pthread_self(), "mz-ckpt");
	pthread_mutex_lock(&c->ckpt_mu);
	while (!c->ckpt_stop) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 50 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&c->ckpt_cv, &c->ckpt_mu, &ts);
		if (c->ckpt_stop)
			break;
		if (app_store_wal_frames(c->store) < CKPT_FRAMES / 4)
			continue;
		pthread_mutex_unlock(&c->ckpt_mu);
		if (app_store_checkpoint(c->ckpt_store, &frames, &done))
			app_warn("checkpoint_failed", "wal_frames=%d", frames);
		pthread_mutex_lock(&c->ckpt_mu);
	}
	pthread_mutex_unlock(&c->ckpt_mu);
	return NULL;
}

static int checkpointer_start(struct app_committer *c, char *errbuf, size_t errlen)
{
	int rc = app_store_open(&c->ckpt_store, c->cfg->data_dir, 0, errbuf, errlen);

	if (rc)
		return rc;
	if (app_store_set_autocheckpoint(c->store, 0)) {
		snprintf(errbuf, errlen, "cannot turn off automatic checkpoints");
		return APP_ESQLITE;
	}
	pthread_mutex_init(&c->ckpt_mu, NULL);
	pthread_cond_init(&c->ckpt_cv, NULL);
	rc = pthread_create(&c->ckpt_thread, NULL, checkpointer, c);
	if (rc) {
		snprintf(errbuf, errlen, "pthread_create failed");
		return -rc;
	}
	c->ckpt_started = 1;
	return 0;
}

static void checkpointer_stop(struct app_committer *c)
{
	if (c->ckpt_started) {
		pthread_mutex_lock(&c->ckpt_mu);
		c->ckpt_stop = 1;
		pthread_cond_signal(&c->ckpt_cv);
		pthread_mutex_unlock(&c->ckpt_mu);
		pthread_join(c->ckpt_thread, NULL);
		pthread_mutex_destroy(&c->ckpt_mu);
		pthread_cond_destroy(&c->ckpt_cv);
		c->ckpt_started = 0;
	}
	app_store_close(c->ckpt_store);
	c->ckpt_store = NULL;
}

/* mz-sync, with storage.sync_pipeline: from here on the committer's COMMITs
 * leave the fsync to it. */
static int syncer_start(struct app_committer *c, char *errbuf, size_t errlen)
{
	int rc;

	c->sync_req = c->sync_done = 0;
	c->sync_stop = 0;
	c->held_head = c->held_tail = NULL;
	if (!c->cfg->sync_pipeline)
		return 0; /* hold() releases at once and touches none of this */
	rc = app_store_set_wal_sync_external(c->store, errbuf, errlen);
	if (rc)
		return rc;
	pthread_mutex_init(&c->sync_mu, NULL);
	pthread_cond_init(&c->sync_cv, NULL);
	rc = pthread_create(&c->sync_thread, NULL, syncer, c);
	if (rc) {
		pthread_mutex_destroy(&c->sync_mu);
		pthread_cond_destroy(&c->sync_cv);
		snprintf(errbuf, errlen, "pthread_create failed");
		return -rc;
	}
	c->sync_started = 1;
	return 0;
}

/* After the committer thread: mz-sync fsyncs and releases what is still
 * held, then stops. */
static void syncer_stop(struct app_committer *c)
{
	if (c->sync_started) {
		pthread_mutex_lock(&c->sync_mu);
		c->sync_stop = 1;
		pthread_cond_broadcast(&c->sync_cv);
		pthread_mutex_unlock(&c->sync_mu);
		pthread_join(c->sync_thread, NULL);
		pthread_mutex_destroy(&c->sync_mu);
		pthread_cond_destroy(&c->sync_cv);
		c->sync_started = 0;
	}
}

int app_committer_start(struct app_committer *c, char *errbuf, size_t errlen)
{
	struct app_tip tip;
	struct app_tx *txs = NULL;
	size_t n = 0;
	uint64_t cur;
	int rc;

	rc = app_store_tip(c->store, &tip);
	if (rc) {
		snprintf(errbuf, errlen, "reading the chain tip: %s", app_strerror(rc));
		return rc;
	}
	c->next_seq = tip.next_seq;
	c->next_group = tip.next_group;
	if (!c->txi || app_txindex_next(c->txi) != c->next_seq) {
		snprintf(errbuf, errlen, "the transaction index is not open at seq %llu",
			 (unsigned long long)c->next_seq);
		return APP_EINVAL;
	}
	rc = app_store_attach_txindex(c->store, c->txi, errbuf, errlen);
	if (rc)
		return rc;
	c->txs_pruned_below = 0;
	app_store_meta_u64(c->store, "txs_pruned_below", &c->txs_pruned_below);
	c->seal_next_seq = tip.has_block ? tip.last.first_seq + tip.last.tx_count : 1;
	c->seal_height = tip.has_block ? tip.last.height + 1 : 1;
	memset(c->seal_parent, 0, 32);
	if (tip.has_block)
		memcpy(c->seal_parent, tip.last_hash, 32);
	if (tip.has_block) {
		atomic_store(&c->stats.height, tip.last.height);
		atomic_store(&c->stats.has_block, 1);
	}
	/* Committed but unsealed transactions: everything after the last block. */
	rc = app_store_txs_range(c->store, c->seal_next_seq, c->next_seq - 1, &txs, &n);
	if (rc) {
		snprintf(errbuf, errlen, "reading unsealed transactions: %s", app_strerror(rc));
		return rc;
	}
	if (n != c->next_seq - c->seal_next_seq) {
		snprintf(errbuf, errlen, "sequence gap: %zu unsealed rows for %llu seqs", n,
			 (unsigned long long)(c->next_seq - c->seal_next_seq));
		app_txs_free(txs, n);
		return APP_ESQLITE;
	}
	for (size_t i = 0; i < n; i++)
		if (open_push(c, &txs[i]))
			return APP_ENOMEM;
	free(txs); /* data now owned by open_txs */
	cur = now_slot(c);
	/* Seal complete slots left from before the restart, in order, here and
	 * now: the sealer thread is not running yet. */
	while (c->open_n && c->open_txs[0].slot < cur) {
		struct seal_job j;
		struct app_block *b;
		char err[256];

		take_job(c, c->open_txs[0].slot, &j);
		rc = build_block(c, &j, &b);
		if (!rc) {
			rc = app_store_block_put(c->store, &b->hdr, b->sig, b->ns, b->ns_count, err,
						 sizeof(err));
			if (rc)
				app_block_unref(b);
			else
				publish(c, &b, 1, 1);
		}
		if (rc) {
			snprintf(errbuf, errlen, "sealing recovered slot: %s", app_strerror(rc));
			return rc;
		}
		tip.last.slot = j.slot;
		tip.has_block = 1;
	}
	c->open_slot = cur;
	if (c->open_n && c->open_txs[c->open_n - 1].slot > c->open_slot)
		c->open_slot = c->open_txs[c->open_n - 1].slot; /* clock went back */
	if (tip.has_block && tip.last.slot >= c->open_slot)
		c->open_slot = tip.last.slot + 1;
	atomic_store(&c->stats.next_seq, c->next_seq);
	/* With the fsync on mz-sync, the last process may have died between a
	 * COMMIT and its fsync: its frames are then only in the page cache,
	 * and must not be served as durable before they are. */
	if (c->cfg->sync_pipeline && (rc = app_store_wal_sync_file(c->store))) {
		snprintf(errbuf, errlen, "fsync of the WAL at start: %s", strerror(-rc));
		return APP_ESQLITE;
	}
	atomic_store(&c->stats.durable_seq, c->next_seq);
	atomic_store(&c->stats.open_slot, c->open_slot);
	if (n)
		app_info("recovered", "unsealed_txs=%zu next_seq=%llu", n,
			 (unsigned long long)c->next_seq);
	rc = app__prop_start(c, errbuf, errlen);
	if (rc)
		return rc;
	rc = app_queue_init(&c->seal_jobs, sizeof(struct seal_job), 64);
	if (rc)
		return rc;
	pthread_mutex_init(&c->sealed_mu, NULL);
	rc = pthread_create(&c->seal_thread, NULL, sealer, c);
	if (rc) {
		snprintf(errbuf, errlen, "pthread_create failed");
		return -rc;
	}
	c->seal_started = 1;
	rc = checkpointer_start(c, errbuf, errlen);
	if (rc)
		return rc;
	rc = app_avail_start(c, errbuf, errlen);
	if (rc) {
		checkpointer_stop(c);
		return rc;
	}
	rc = syncer_start(c, errbuf, errlen);
	if (!rc)
		rc = app_txindex_start(c->txi, &c->stats.durable_seq,
				       (int)c->cfg->background_nice);
	if (!rc) {
		rc = pthread_create(&c->thread, NULL, run, c);
		if (rc) {
			snprintf(errbuf, errlen, "pthread_create failed");
			rc = -rc;
		}
	}
	if (rc) {
		app_txindex_stop(c->txi);
		syncer_stop(c);
		app_avail_stop(c);
		checkpointer_stop(c);
		return rc;
	}
	c->started = 1;
	return 0;
}

void app_committer_stop(struct app_committer *c)
{
	/* First: a committer waiting for mz-index to catch up must not wait
	 * for it through the drain. What it leaves unmerged, the next start
	 * indexes from mezzanine.db. */
	app_txindex_stop(c->txi);
	if (c->started) {
		app_queue_close(c->ingress);
		pthread_join(c->thread, NULL);
		c->started = 0;
	}
	syncer_stop(c);
	if (c->seal_started) {
		struct seal_job j;
		struct app_block **b;
		size_t nb;

		/* Unstored blocks are not lost: their transactions are durable and
		 * are sealed again, identically, at the next start. */
		app_queue_close(&c->seal_jobs);
		pthread_join(c->seal_thread, NULL);
		while (app_queue_pop(&c->seal_jobs, &j, 1, 0))
			app_txs_free(j.txs, j.n);
		nb = take_sealed(c, &b);
		drop_blocks(b, nb);
		free(b);
		app_queue_destroy(&c->seal_jobs);
		pthread_mutex_destroy(&c->sealed_mu);
		c->seal_started = 0;
	}
	app_avail_stop(c);
	checkpointer_stop(c);
	app__prop_stop(c);
	app_txs_free(c->open_txs, c->open_n);
	c->open_txs = NULL;
	c->open_n = c->open_cap = 0;
}
