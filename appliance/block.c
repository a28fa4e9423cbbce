/*
 * block.c - sealed blocks as the feed holds them: header, signature,
 * namespace table and transactions sorted by (namespace, seq), so each
 * namespace's sub-block is one contiguous run.
 */
#include <stdlib.h>
#include <string.h>

#include "appliance/daemon.h"

static int cmp_ns_seq(const void *a, const void *b)
{
	const struct app_tx *x = a, *y = b;

	if (x->ns != y->ns)
		return x->ns < y->ns ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

int app_block_make(struct app_block **out, const struct seq_block_hdr *h,
		   const uint8_t sig[static 64], struct seq_block_ns *ns, size_t ns_count,
		   struct app_tx *txs, size_t n)
{
	struct app_block *b = calloc(1, sizeof(*b));
	size_t j = 0;

	*out = NULL;
	if (!b)
		goto fail;
	atomic_init(&b->refs, 1);
	b->hdr = *h;
	memcpy(b->sig, sig, 64);
	seq_block_hash(b->hash, h);
	b->ns = ns;
	b->ns_count = ns_count;
	b->txs = txs;
	b->n = n;
	b->ns_first = calloc(ns_count + 1, sizeof(size_t));
	b->ns_json = calloc(ns_count + 1, sizeof(*b->ns_json));
	if (!b->ns_first || !b->ns_json)
		goto fail;
	if (n > 1)
		qsort(txs, n, sizeof(*txs), cmp_ns_seq);
	b->bytes = sizeof(*b) + n * sizeof(*txs);
	for (size_t i = 0; i < ns_count; i++) {
		b->ns_first[i] = j;
		while (j < n && txs[j].ns == ns[i].ns)
			b->bytes += txs[j++].len;
		if (j - b->ns_first[i] != ns[i].count)
			APP_PANIC("block %llu namespace %llu: %zu txs, table says %llu",
				  (unsigned long long)h->height, (unsigned long long)ns[i].ns,
				  j - b->ns_first[i], (unsigned long long)ns[i].count);
	}
	b->ns_first[ns_count] = n;
	*out = b;
	return 0;
fail:
	if (b) {
		free(b->ns_first);
		free(b->ns_json);
		free(b);
	}
	free(ns);
	app_txs_free(txs, n);
	return APP_ENOMEM;
}

int app_block_load(struct app_block **out, struct app_store *s, uint64_t height)
{
	struct seq_block_hdr h;
	uint8_t sig[64];
	struct seq_block_ns *ns = NULL;
	size_t nn, n = 0;
	struct app_tx *txs = NULL;
	int rc;

	*out = NULL;
	rc = app_store_block_get(s, height, &h, sig, &ns, &nn);
	if (rc)
		return rc;
	if (h.tx_count) {
		rc = app_store_txs_range(s, h.first_seq, h.first_seq + h.tx_count - 1, &txs, &n);
		if (!rc && n != h.tx_count) {
			app_txs_free(txs, n);
			rc = APP_ESQLITE;
		}
		if (rc) {
			free(ns);
			return rc;
		}
	}
	return app_block_make(out, &h, sig, ns, nn, txs, n);
}

void app_block_drop_rendered(struct app_block *b)
{
	if (!b->txs_json)
		return;
	for (size_t i = 0; i < b->ns_count; i++)
		free(b->txs_json[i].p);
	free(b->txs_json);
	b->txs_json = NULL;
}

void app_block_unref(struct app_block *b)
{
	if (!b || atomic_fetch_sub(&b->refs, 1) > 1)
		return;
	for (size_t i = 0; i < b->ns_count; i++)
		free(b->ns_json[i].p);
	free(b->ns_json);
	app_block_drop_rendered(b);
	free(b->ns_first);
	free(b->ns);
	app_txs_free(b->txs, b->n);
	free(b);
}
