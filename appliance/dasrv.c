/*
 * dasrv.c - data availability as the lws thread serves it: shards with their
 * Merkle paths (mezz_getShard), namespace proofs (mezz_getNamespaceProof),
 * and block payloads rebuilt from the shard store when the database no
 * longer holds a block's transactions.
 *
 * A shard met missing or corrupt on the way is repaired on read: the block
 * is rebuilt from any k good shards and the bad ones rewritten durably.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/server.h"
#include "l1bridge/l1.h"

int app_dasrv_open(struct app_server *s, char *errbuf, size_t errlen)
{
	return app_da_store_open(s->cfg, &s->shards, errbuf, errlen);
}

void app_dasrv_close(struct app_server *s)
{
	for (size_t i = 0; i < sizeof(s->codes) / sizeof(s->codes[0]); i++)
		da_code_free(s->codes[i]);
	memset(s->codes, 0, sizeof(s->codes));
	da_store_close(s->shards);
	s->shards = NULL;
}

/* 1 if retention (da.retention_blocks) deleted the block's shards. */
static int shards_pruned(struct app_server *s, uint64_t height)
{
	uint64_t below = 0;

	app_store_meta_u64(s->ro, "shards_pruned_below", &below);
	return height < below;
}

/* The commitment record of a block whose shards are stored. APP_ENOTFOUND
 * if it is not available (yet) or its shards were pruned. */
static int load_record(struct app_server *s, uint64_t height, struct da_record *r,
		       uint8_t raw[static DA_RECORD_LEN], uint8_t sig[static 64])
{
	/* Above the available level: not stored, or not durable yet. */
	int rc = height > atomic_load(&s->committer->stats.level_tip[APP_LEVEL_AVAILABLE]) ||
			 shards_pruned(s, height)
		     ? APP_ENOTFOUND
		     : app_store_da_get(s->ro, height, raw, DA_RECORD_LEN, sig);

	if (!rc)
		rc = da_record_decode(r, raw, DA_RECORD_LEN);
	return rc;
}

/*
 * Rebuild a block from its shards, repairing bad ones. Unless asked to
 * repair (a shard that failed its own read, maybe a parity one), the k data
 * shards are read first, parity unread: a repair reads and checks all
 * k + m, twice the bytes at the default k = m, on the network thread, for
 * every payload read from shards. The repair runs when that read meets a
 * bad shard.
 */
static int read_block(struct app_server *s, const struct da_record *r, uint8_t **payload,
		      int repair)
{
	struct da_code *code = app_da_code_cached(s->codes, sizeof(s->codes) / sizeof(s->codes[0]), r->k, r->m);
	struct da_report rep = {0}; /* read even when the store returns early */
	int rc;

	if (!code)
		return APP_ENOMEM;
	if (!repair) {
		rc = da_store_read_block(s->shards, code, r, 0, payload, &rep);
		if (!rc && !rep.missing && !rep.corrupt)
			return 0;
		free(*payload);
		*payload = NULL;
	}
	rc = da_store_read_block(s->shards, code, r, DA_READ_REPAIR, payload, &rep);
	if (rep.missing || rep.corrupt)
		app_warn("da_repaired_on_read",
			 "height=%llu missing=%u corrupt=%u repaired=%u rc=\"%s\"",
			 (unsigned long long)r->height, rep.missing, rep.corrupt, rep.repaired,
			 app_strerror(rc));
	/* Retention may have deleted the block while it was read (mz-da
	 * removes it once the floor is committed): its packs were missing for
	 * that reason, and a repair wrote them back, where nothing would ever
	 * delete them again. The block is gone: remove them again. */
	if (shards_pruned(s, r->height)) {
		if (rep.repaired)
			da_store_remove_block(s->shards, r->height, (unsigned)r->k + r->m);
		free(*payload);
		*payload = NULL;
		return APP_ENOTFOUND;
	}
	return rc;
}

int app_dasrv_shard_json(struct app_server *s, uint64_t height, unsigned index, char **out,
			 char *msg, size_t msglen)
{
	uint8_t raw[DA_RECORD_LEN], sig[64], *buf = NULL, *proof = NULL;
	struct da_record r;
	struct da_shard_file f;
	struct da_shard_proof p;
	char *hex = NULL, *hproof = NULL, hrec[2 * DA_RECORD_LEN + 3], hsig[131], hroot[67];
	size_t plen;
	int rc;

	*out = NULL;
	rc = load_record(s, height, &r, raw, sig);
	if (rc) {
		snprintf(msg, msglen, "%s", shards_pruned(s, height)
			 ? "the shards of that block were deleted by retention (da.retention_blocks)"
			 : "that block is not available (yet)");
		return RPC_NOT_FOUND;
	}
	if (index >= (unsigned)r.k + r.m) {
		snprintf(msg, msglen, "index must be below k + m = %u", r.k + r.m);
		return RPC_INVALID_PARAMS;
	}
	rc = da_store_read_shard(s->shards, &r, index, &buf, &f);
	if (rc) { /* missing or corrupt: repair the block, then read again */
		uint8_t *payload = NULL;

		rc = read_block(s, &r, &payload, 1);
		free(payload);
		if (!rc)
			rc = da_store_read_shard(s->shards, &r, index, &buf, &f);
	}
	if (rc == APP_ENOTFOUND && shards_pruned(s, height)) { /* during the read */
		snprintf(msg, msglen, "the shards of that block were deleted by retention "
				      "(da.retention_blocks)");
		return RPC_NOT_FOUND;
	}
	if (rc) {
		snprintf(msg, msglen, "shard %u of block %llu cannot be served: %s", index,
			 (unsigned long long)height, app_strerror(rc));
		return RPC_INTERNAL;
	}
	memset(&p, 0, sizeof(p));
	p.rec = r;
	p.index = (uint16_t)index;
	p.path_len = f.path_len;
	memcpy(p.path, f.path, sizeof(p.path));
	p.shard = f.shard;
	plen = da_shard_proof_len(&p);
	proof = malloc(plen);
	hex = malloc(2 * (size_t)r.S + 3);
	hproof = malloc(2 * plen + 3);
	if (!proof || !hex || !hproof || da_shard_proof_encode(&p, proof, plen)) {
		rc = RPC_INTERNAL;
		snprintf(msg, msglen, "out of memory");
		goto out;
	}
	l1_hex_encode(hex, f.shard, r.S);
	l1_hex_encode(hproof, proof, plen);
	l1_hex_encode(hrec, raw, sizeof(raw));
	l1_hex_encode(hsig, sig, 64);
	l1_hex_encode(hroot, r.shard_root, 32);
	{
		char path[DA_SHARD_MAX_PATH * 70 + 3], *w = path;

		*w++ = '[';
		for (unsigned i = 0; i < f.path_len; i++) {
			if (i)
				*w++ = ',';
			*w++ = '"';
			l1_hex_encode(w, f.path[i], 32);
			w += 66;
			*w++ = '"';
		}
		*w++ = ']';
		*w = 0;
		if (asprintf(out,
			     "{\"height\":%llu,\"index\":%u,\"k\":%u,\"m\":%u,\"shardSize\":%u,"
			     "\"payloadLength\":%llu,\"daRoot\":\"%s\",\"record\":\"%s\","
			     "\"signature\":\"%s\",\"data\":\"%s\",\"path\":%s,\"proof\":\"%s\"}",
			     (unsigned long long)height, index, r.k, r.m, r.S,
			     (unsigned long long)r.payload_len, hroot, hrec, hsig, hex, path,
			     hproof) < 0) {
			*out = NULL;
			rc = RPC_INTERNAL;
			snprintf(msg, msglen, "out of memory");
		}
	}
out:
	free(buf);
	free(proof);
	free(hex);
	free(hproof);
	return rc;
}

/* A block's payload (da.h layout), from the database while it holds the
 * transactions, else rebuilt from shards. *buf malloc'd, *padded bytes. */
static int dasrv_payload(struct app_server *s, uint64_t height, uint8_t **buf, size_t *padded,
			 size_t *payload_len)
{
	struct app_block *b = NULL;
	uint8_t raw[DA_RECORD_LEN], sig[64];
	struct da_record r;
	int rc;

	*buf = NULL;
	if (!app_store_block_has_txs(s->ro, height)) {
		rc = load_record(s, height, &r, raw, sig);
		if (rc)
			return rc;
		rc = read_block(s, &r, buf, 0);
		*padded = (size_t)r.k * r.S;
		*payload_len = r.payload_len;
		return rc;
	}
	b = app_feed_get(s, height);
	if (!b)
		return APP_ENOTFOUND;
	{
		struct da_tx *txs = malloc((b->n ? b->n : 1) * sizeof(*txs));
		size_t S;

		if (!txs) {
			app_block_unref(b);
			return APP_ENOMEM;
		}
		for (size_t i = 0; i < b->n; i++)
			txs[i] = (struct da_tx){.seq = b->txs[i].seq, .ns = b->txs[i].ns,
						.data = b->txs[i].data,
						.len = (uint32_t)b->txs[i].len};
		/* k = 1: one shard's worth of layout, no padding to speak of */
		rc = da_payload_build(&b->hdr, b->sig, b->ns, txs, 1, buf, payload_len, &S);
		*padded = S;
		free(txs);
	}
	app_block_unref(b);
	return rc;
}

int app_dasrv_nsproof_json(struct app_server *s, uint64_t height,
			   const struct app_namespace *ns, char **out, char *msg, size_t msglen)
{
	uint8_t *buf = NULL, *enc = NULL;
	size_t padded = 0, plen = 0, elen = 0;
	struct da_payload pl;
	struct da_ns_proof p;
	char *hproof = NULL, hhdr[2 * SEQ_BLOCK_HDR_LEN + 3], hsig[131];
	uint8_t hdr[SEQ_BLOCK_HDR_LEN];
	int rc;

	*out = NULL;
	memset(&pl, 0, sizeof(pl));
	memset(&p, 0, sizeof(p));
	rc = dasrv_payload(s, height, &buf, &padded, &plen);
	if (rc == APP_ENOTFOUND) {
		snprintf(msg, msglen, "no sealed block at height %llu", (unsigned long long)height);
		return RPC_NOT_FOUND;
	}
	if (!rc)
		rc = da_payload_parse(&pl, buf, padded, plen);
	if (!rc)
		rc = da_ns_proof_build(&p, &pl, ns->chain_id);
	if (!rc)
		rc = da_ns_proof_encode(&p, &enc, &elen);
	if (!rc) {
		hproof = malloc(2 * elen + 3);
		rc = hproof ? 0 : APP_ENOMEM;
	}
	if (rc) {
		snprintf(msg, msglen, "block %llu: %s", (unsigned long long)height,
			 app_strerror(rc));
		rc = RPC_INTERNAL;
		goto out;
	}
	l1_hex_encode(hproof, enc, elen);
	seq_block_hdr_encode(hdr, &pl.hdr);
	l1_hex_encode(hhdr, hdr, sizeof(hdr));
	l1_hex_encode(hsig, pl.sig, 64);
	{
		/* the transactions, readable without decoding the proof */
		size_t cap = 64 + p.count * 160, used = 0;
		char *txs = malloc(cap);

		for (size_t i = 0; txs && i < p.count; i++)
			cap += 2 * (size_t)p.txs[i].len;
		txs = txs ? realloc(txs, cap) : NULL;
		if (!txs) {
			rc = RPC_INTERNAL;
			snprintf(msg, msglen, "out of memory");
			goto out;
		}
		txs[used++] = '[';
		for (size_t i = 0; i < p.count; i++) {
			uint8_t h[32];
			char hh[67];

			app_tx_hash(h, p.txs[i].data, p.txs[i].len, NULL);
			l1_hex_encode(hh, h, 32);
			used += (size_t)snprintf(txs + used, cap - used,
						 "%s{\"seq\":%llu,\"hash\":\"%s\",\"data\":\"", i ? "," : "",
						 (unsigned long long)p.txs[i].seq, hh);
			l1_hex_encode(txs + used, p.txs[i].data, p.txs[i].len);
			used += 2 + 2 * (size_t)p.txs[i].len;
			used += (size_t)snprintf(txs + used, cap - used, "\"}");
		}
		txs[used++] = ']';
		txs[used] = 0;
		if (asprintf(out,
			     "{\"height\":%llu,\"namespace\":\"%s\",\"chainId\":%llu,\"present\":%s,"
			     "\"count\":%llu,\"txs\":%s,\"header\":\"%s\",\"signature\":\"%s\","
			     "\"proof\":\"%s\"}",
			     (unsigned long long)height, ns->name, (unsigned long long)ns->chain_id,
			     p.present ? "true" : "false", (unsigned long long)p.count, txs, hhdr,
			     hsig, hproof) < 0) {
			*out = NULL;
			rc = RPC_INTERNAL;
			snprintf(msg, msglen, "out of memory");
		}
		free(txs);
	}
out:
	da_ns_proof_free(&p);
	da_payload_free(&pl);
	free(buf);
	free(enc);
	free(hproof);
	return rc;
}

int app_dasrv_block(struct app_server *s, uint64_t height, struct app_block **out)
{
	uint8_t *buf = NULL;
	size_t padded = 0, plen = 0, n;
	struct da_payload pl;
	struct app_tx *txs = NULL;
	struct seq_block_ns *ns = NULL;
	int rc;

	*out = NULL;
	memset(&pl, 0, sizeof(pl));
	rc = dasrv_payload(s, height, &buf, &padded, &plen);
	if (!rc)
		rc = da_payload_parse(&pl, buf, padded, plen);
	if (rc)
		goto out;
	n = pl.hdr.tx_count;
	txs = calloc(n ? n : 1, sizeof(*txs));
	ns = malloc((pl.hdr.ns_count ? pl.hdr.ns_count : 1) * sizeof(*ns));
	if (!txs || !ns) {
		rc = APP_ENOMEM;
		goto out;
	}
	if (pl.hdr.ns_count)
		memcpy(ns, pl.ns, pl.hdr.ns_count * sizeof(*ns));
	for (size_t i = 0; i < n; i++) {
		struct app_tx *t = &txs[i];

		t->seq = pl.txs[i].seq;
		t->ns = pl.txs[i].ns;
		t->slot = pl.hdr.slot;
		t->len = pl.txs[i].len;
		t->data = malloc(t->len ? t->len : 1);
		if (!t->data) {
			app_txs_free(txs, i);
			txs = NULL;
			rc = APP_ENOMEM;
			goto out;
		}
		memcpy(t->data, pl.txs[i].data, t->len);
		app_tx_hash(t->hash, t->data, t->len, NULL);
	}
	/* app_block_make owns txs and ns from here, whatever it returns */
	rc = app_block_make(out, &pl.hdr, pl.sig, ns, pl.hdr.ns_count, txs, n);
	txs = NULL;
	ns = NULL;
out:
	free(txs);
	free(ns);
	da_payload_free(&pl);
	free(buf);
	return rc;
}
