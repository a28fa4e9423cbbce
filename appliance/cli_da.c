/*
 * cli_da.c - the operator's data-availability commands: `mezz da scrub`,
 * `mezz da repair` and `mezz verify shard|nsproof`.
 *
 * Scrub and repair walk every available block (rows of da_blocks, read
 * through a read-only connection, so the daemon may keep running) and check
 * each shard against the block's signed commitment record. Repair writes
 * whole packs through the same temp-file, fsync, rename path as the daemon,
 * under the same per-height lock (da/store.c), so a concurrent repair on
 * read of the same block waits for it and then writes identical bytes.
 */
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "appliance/app.h"
#include "appliance/cli.h"
#include "da/da.h"
#include "l1bridge/l1.h"

static const char *status_name(int st)
{
	return st == DA_SHARD_MISSING ? "missing" : st == DA_SHARD_CORRUPT ? "corrupt" : "ok";
}

int app_cli_da(const struct app_config *cfg, int argc, char **argv)
{
	struct app_store *ro = NULL;
	struct da_store *shards = NULL;
	struct da_code *codes[16] = {0};
	char **dirs = NULL, why[600] = "";
	size_t nd = 0;
	uint64_t from = 1, to = UINT64_MAX, tip = 0, blocks = 0, bad_blocks = 0, lost = 0;
	uint64_t shards_ok = 0, missing = 0, corrupt = 0, repaired = 0, written = 0;
	struct app_progress pg = {0};
	int repair, rc = 0;

	if (argc < 1 || (strcmp(argv[0], "scrub") && strcmp(argv[0], "repair")))
		goto usage;
	repair = !strcmp(argv[0], "repair");
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--from") && i + 1 < argc) {
			if (app_cli_parse_u64(argv[++i], &from))
				goto usage;
		} else if (!strcmp(argv[i], "--to") && i + 1 < argc) {
			if (app_cli_parse_u64(argv[++i], &to))
				goto usage;
		} else {
			goto usage;
		}
	}
	if (from < 1 || from > to)
		goto usage;
	if (!(ro = app_cli_store_open(cfg->data_dir, 1, 0)))
		return 1;
	rc = app_config_da_dirs(cfg, &dirs, &nd);
	if (!rc)
		rc = da_store_open_why((const char *const *)dirs, nd, &shards, why, sizeof(why));
	if (rc) {
		fprintf(stderr, "mezz: cannot open the shard directories: %s\n",
			why[0] ? why : app_strerror(rc));
		rc = 1; /* the exit code, not the error's */
		goto out;
	}
	/* No available block yet (a new data dir, or DA never ran): nothing to
	 * check, and `to` must not stay at "no upper bound". */
	if (app_store_da_tip(ro, &tip))
		to = 0;
	else if (tip < to)
		to = tip;
	{
		uint64_t pruned = 0;

		if (app_store_meta_u64(ro, "shards_pruned_below", &pruned) == 0 && pruned > from)
			from = pruned;
	}
	app_progress_start(&pg, argv[0], "blocks", to >= from ? to - from + 1 : 0);
	for (uint64_t h = from; h <= to && pg.total; h++) {
		uint8_t raw[DA_RECORD_LEN], sig[64];
		struct da_record r;
		struct da_report rep;

		if (app_store_da_get(ro, h, raw, sizeof(raw), sig) ||
		    da_record_decode(&r, raw, sizeof(raw))) {
			app_progress_clear(&pg);
			printf("height %llu: no valid commitment record in the database\n",
			       (unsigned long long)h);
			lost++;
			continue;
		}
		memset(&rep, 0, sizeof(rep));
		rc = da_store_scrub_block(shards, &r, &rep);
		if (!rc && repair && (rep.missing || rep.corrupt)) {
			struct da_code *code = app_da_code_cached(codes, 16, r.k, r.m);
			struct da_report fix;

			memset(&fix, 0, sizeof(fix));
			rc = code ? da_store_repair_block(shards, code, &r, &fix) : DA_ENOMEM;
			repaired += fix.repaired;
			written += fix.bytes_written;
			pg.bytes += fix.bytes_read; /* the rebuild reads the block again */
		}
		blocks++;
		pg.done++;
		pg.bytes += rep.bytes_read;
		shards_ok += rep.ok;
		missing += rep.missing;
		corrupt += rep.corrupt;
		if (rep.missing || rep.corrupt) {
			bad_blocks++;
			app_progress_clear(&pg);
			for (unsigned i = 0; i < rep.n; i++)
				if (rep.status[i] == DA_SHARD_MISSING || rep.status[i] == DA_SHARD_CORRUPT)
					printf("height %llu shard %u: %s (%s)\n", (unsigned long long)h, i,
					       status_name(rep.status[i]), dirs[i % nd]);
		}
		if (rc) {
			app_progress_clear(&pg);
			printf("height %llu: %s\n", (unsigned long long)h, app_strerror(rc));
			lost++;
			rc = 0;
		}
		app_progress_show(&pg, 0);
	}
	app_progress_show(&pg, 1);
	printf("%s: %llu blocks, %llu shards ok, %llu missing, %llu corrupt, %.1f MiB read in "
	       "%.1f s",
	       argv[0], (unsigned long long)blocks, (unsigned long long)shards_ok,
	       (unsigned long long)missing, (unsigned long long)corrupt,
	       (double)pg.bytes / 1048576.0, (double)(app_now_ns() - pg.t0) / 1e9);
	if (repair)
		printf(", %llu shards rebuilt (%.1f MiB written)", (unsigned long long)repaired,
		       (double)written / 1048576.0);
	printf(", %llu blocks damaged, %llu unrecoverable\n", (unsigned long long)bad_blocks,
	       (unsigned long long)lost);
	/* scrub: any damage fails; repair: only what could not be rebuilt fails */
	rc = lost || (!repair && bad_blocks) ? 1 : 0;
out:
	for (size_t i = 0; i < 16; i++)
		da_code_free(codes[i]);
	da_store_close(shards);
	app_config_dirs_free(dirs, nd);
	free(dirs);
	app_store_close(ro);
	return rc;
usage:
	fprintf(stderr, "usage: mezz da scrub|repair [--from HEIGHT] [--to HEIGHT]\n"
			"       (heights are integers, 1 <= --from <= --to)\n");
	return 2;
}

/* ---- offline verification of mezz_getShard / mezz_getNamespaceProof ---- */

/* The JSON-RPC result in a file (or stdin), bare or inside a response. */
static json_t *load_result(const char *path, json_t **root)
{
	json_error_t je;
	json_t *res;

	*root = strcmp(path, "-") ? json_load_file(path, 0, &je) : json_loadf(stdin, 0, &je);
	if (!*root) {
		fprintf(stderr, "mezz: %s: not JSON: %s (line %d)\n", path, je.text, je.line);
		return NULL;
	}
	res = json_object_get(*root, "result");
	return json_is_object(res) ? res : *root;
}

/* A 0x-hex field of any length, decoded into a malloc'd buffer. */
static uint8_t *hex_blob(json_t *o, const char *k, size_t *len)
{
	json_t *v = json_object_get(o, k);
	uint8_t *out;

	if (!json_is_string(v) || json_string_length(v) < 2) {
		fprintf(stderr, "mezz: field '%s' must be 0x-hex\n", k);
		return NULL;
	}
	out = malloc(json_string_length(v) / 2 + 1);
	if (out && l1_hex_decode(out, json_string_length(v) / 2 + 1, len, json_string_value(v),
				 json_string_length(v)) == 0)
		return out;
	free(out);
	fprintf(stderr, "mezz: field '%s' must be 0x-hex\n", k);
	return NULL;
}

int app_cli_verify_shard(const char *path, const uint8_t pk[static 32])
{
	json_t *root, *j = load_result(path, &root);
	uint8_t *proof = NULL, *sig = NULL, *data = NULL, raw[DA_RECORD_LEN];
	size_t plen = 0, slen = 0, dlen = 0;
	struct da_shard_proof p;
	int rc = 1;

	if (!j)
		return 1;
	proof = hex_blob(j, "proof", &plen);
	sig = hex_blob(j, "signature", &slen);
	data = hex_blob(j, "data", &dlen);
	if (!proof || !sig || !data)
		goto out;
	if (slen != 64) {
		fprintf(stderr, "mezz: field 'signature' must be 64 bytes\n");
		goto out;
	}
	rc = da_shard_proof_decode(&p, proof, plen);
	if (!rc)
		rc = da_shard_proof_verify(&p);
	if (!rc && (dlen != p.rec.S || memcmp(data, p.shard, dlen)))
		rc = DA_EMISMATCH; /* the readable copy must be the proven bytes */
	if (!rc) {
		da_record_encode(raw, &p.rec);
		if (crypto_sign_verify_detached(sig, raw, sizeof(raw), pk))
			rc = DA_EPROOF;
	}
	if (rc) {
		printf("INVALID shard: %s\n", app_strerror(rc));
		rc = 1;
	} else {
		char root_hex[67];

		l1_hex_encode(root_hex, p.rec.shard_root, 32);
		printf("OK shard %u of %u for block %llu: in DA root %s, record signed by the "
		       "trusted key\n",
		       p.index, p.rec.k + p.rec.m, (unsigned long long)p.rec.height, root_hex);
	}
out:
	free(proof);
	free(sig);
	free(data);
	json_decref(root);
	return rc;
}

int app_cli_verify_nsproof(const char *path, const uint8_t pk[static 32])
{
	json_t *root, *j = load_result(path, &root), *txs;
	uint8_t *proof = NULL, *sig = NULL, *hdr = NULL;
	size_t plen = 0, slen = 0, hlen = 0;
	struct da_ns_proof p;
	struct seq_block_hdr h;
	int rc = 1;

	memset(&p, 0, sizeof(p));
	if (!j)
		return 1;
	proof = hex_blob(j, "proof", &plen);
	sig = hex_blob(j, "signature", &slen);
	hdr = hex_blob(j, "header", &hlen);
	if (!proof || !sig || !hdr)
		goto out;
	rc = slen == 64 ? seq_block_hdr_decode(&h, hdr, hlen) : DA_EDECODE;
	if (!rc)
		rc = seq_block_verify(&h, sig, pk);
	if (!rc)
		rc = da_ns_proof_decode(&p, proof, plen);
	if (!rc)
		rc = da_ns_proof_verify(&p, &h, app_tx_hash, NULL);
	if (!rc && json_integer_value(json_object_get(j, "chainId")) != (json_int_t)p.ns)
		rc = DA_EMISMATCH; /* proves another namespace than it claims */
	/* The readable list must be exactly the proven transactions. */
	txs = json_object_get(j, "txs");
	if (!rc && (!json_is_array(txs) || json_array_size(txs) != p.count))
		rc = DA_EMISMATCH;
	for (size_t i = 0; !rc && i < p.count; i++) {
		json_t *e = json_array_get(txs, i);
		size_t dl = 0;
		uint8_t *d = hex_blob(e, "data", &dl);

		if (!d || dl != p.txs[i].len || memcmp(d, p.txs[i].data, dl) ||
		    json_integer_value(json_object_get(e, "seq")) != (json_int_t)p.txs[i].seq)
			rc = DA_EMISMATCH;
		free(d);
	}
	if (rc) {
		printf("INVALID namespace proof: %s\n", app_strerror(rc));
		rc = 1;
	} else if (p.present) {
		printf("OK namespace %llu in block %llu: exactly %llu transactions, header signed "
		       "by the trusted key\n",
		       (unsigned long long)p.ns, (unsigned long long)h.height,
		       (unsigned long long)p.count);
	} else {
		printf("OK namespace %llu has no transactions in block %llu, header signed by the "
		       "trusted key\n",
		       (unsigned long long)p.ns, (unsigned long long)h.height);
	}
out:
	da_ns_proof_free(&p);
	free(proof);
	free(sig);
	free(hdr);
	json_decref(root);
	return rc;
}
