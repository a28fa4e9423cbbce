/*
 * mezz.c - the operator CLI. Tenant, namespace and key management work on
 * the database directly (the daemon notices through meta.auth_version and
 * the shared counter auth.seq, store.c);
 * status, tail and block verification speak to a running daemon (cli_ops.c);
 * backup and restore work on the files (cli_backup.c); receipt verification
 * is offline.
 */
#include <ctype.h>
#include <curl/curl.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "appliance/app.h"
#include "appliance/cli.h"
#include "appliance/limits.h"
#include "l1bridge/l1.h"
#include "sequencer/seq.h"

/* Read when there is no -c and no MEZZ_CONFIG, if readable: the file the
 * systemd unit gives the daemon. */
#define DEFAULT_CONFIG "/etc/mezzanine/mezzanine.conf"

static struct app_config cfg;
static const char *rpc_url = "http://127.0.0.1:9545/";

static int usage(void)
{
	fprintf(stderr,
		"usage: mezz [-c CONFIG] [--set SECTION.KEY=VALUE]... [--data-dir DIR] [--url URL] COMMAND\n"
		"  -c CONFIG       the daemon's config file (default: $MEZZ_CONFIG, else\n"
		"                  " DEFAULT_CONFIG " when readable; MEZZ_CONFIG= reads none)\n"
		"  --data-dir DIR  the data directory, over the file's storage.data_dir (the\n"
		"                  file is still read: its shard directories, limits, ...)\n"
		"commands:\n"
		"  tenant create NAME            create a tenant\n"
		"  tenant list\n"
		"  tenant limits NAME [--tx-per-s N] [--bytes-per-s N]\n"
		"                                show or set a tenant's rate limits (0 = unlimited,\n"
		"                                'default' = the limits.tenant_* config keys)\n"
		"  namespace create TENANT NAME CHAIN_ID [--ingress public|key] [--feed public|key]\n"
		"  namespace list\n"
		"  rights grant --from SLOT --to SLOT --rollups ID,... --winner 0xADDR\n"
		"                                let a winner order those rollups in those slots\n"
		"  rights list | rights misses   grants; slots a winner left to the appliance\n"
		"  key create TENANT             issue an API key (shown once)\n"
		"  key list\n"
		"  key revoke ID\n"
		"  status                        one screen of the running daemon's state (at --url)\n"
		"  tail NAMESPACE [--from H] [--levels sealed,available,...] [--key KEY]\n"
		"                                follow a namespace's blocks until Ctrl-C\n"
		"  backup DIR [--with-shards]    online backup: database, keys, shards manifest\n"
		"  restore DIR --data-dir NEW    restore a backup into an empty data directory\n"
		"  restore --accept-loss --data-dir NEW\n"
		"                                let a restored data directory sequence (only once\n"
		"                                the node the backup is from is gone for good)\n"
		"  verify receipt FILE|- [--public-key HEX]\n"
		"  verify batch FILE|- [--public-key HEX]   (a mezz_sendTransactions answer)\n"
		"  verify blocks FROM TO [--public-key HEX]\n"
		"  verify shard FILE|- [--public-key HEX]     a saved mezz_getShard answer\n"
		"  verify nsproof FILE|- [--public-key HEX]   a saved mezz_getNamespaceProof answer\n"
		"  da scrub [--from H] [--to H]  check every stored shard against its commitment\n"
		"  da repair [--from H] [--to H] rebuild missing or corrupt shards\n"
		"  l1 retry                      queue failed L1 batches again (daemon stopped)\n"
		"  config check FILE             validate a config file\n"
		"numbers (chain ids, heights, slots, key ids, rates) are decimal, or hex with 0x\n");
	return 2;
}


static int valid_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 63)
		return 0;
	for (; *s; s++)
		if (!islower((unsigned char)*s) && !isdigit((unsigned char)*s) && *s != '-' &&
		    *s != '_')
			return 0;
	return 1;
}

/* An existing database; only `tenant create` makes one (cli.h). */
static struct app_store *open_store(void)
{
	return app_cli_store_open(cfg.data_dir, 0, 0);
}

static int print_query(const char *sql)
{
	struct app_store *s = open_store();
	int rc;

	if (!s)
		return 1;
	rc = app_cli_print_rows(s, sql);
	app_store_close(s); /* after app_cli_fail read its message */
	return rc;
}

/* A rate: a non-negative integer, or "default" (-2: back to the config). */
static int parse_rate(const char *v, int64_t *out)
{
	uint64_t n;

	if (!strcmp(v, "default")) {
		*out = -2;
		return 0;
	}
	if (app_cli_parse_u64(v, &n) || n > (uint64_t)INT64_MAX)
		return -1;
	*out = (int64_t)n;
	return 0;
}

static int tenant_limits(int argc, char **argv)
{
	struct app_store *s;
	int64_t id, tx = -1, bytes = -1;
	int rc;

	for (int i = 1; i < argc; i++) {
		if (i + 1 < argc && !strcmp(argv[i], "--tx-per-s") && !parse_rate(argv[i + 1], &tx))
			i++;
		else if (i + 1 < argc && !strcmp(argv[i], "--bytes-per-s") &&
			 !parse_rate(argv[i + 1], &bytes))
			i++;
		else
			return app_cli_fail("unexpected '%s' (use --tx-per-s N|default, --bytes-per-s N|default)",
				   argv[i]);
	}
	if (argc < 1)
		return usage();
	if (!(s = open_store()))
		return 1;
	rc = app_store_tenant_find(s, argv[0], &id);
	if (rc) {
		app_store_close(s);
		return app_cli_fail("no tenant named '%s'", argv[0]);
	}
	{ /* also creates the table on first use, so showing works too */
		rc = app_limits_store_set(s, id, tx, bytes);
		if (rc) {
			app_store_close(s);
			return app_cli_fail("storing limits: %s", app_strerror(rc));
		}
	}
	app_store_close(s);
	{
		char sql[512];

		/* tenant_limits exists now if anything was ever set; show the effective values. */
		snprintf(sql, sizeof(sql),
			 "SELECT t.name AS tenant,"
			 " COALESCE(l.tx_per_s, %ld) AS tx_per_s, COALESCE(l.bytes_per_s, %ld) AS bytes_per_s,"
			 " CASE WHEN l.tx_per_s IS NULL AND l.bytes_per_s IS NULL THEN 'config'"
			 " ELSE 'tenant' END AS source"
			 " FROM tenants t LEFT JOIN tenant_limits l ON l.tenant_id = t.id WHERE t.id = %lld",
			 cfg.limits_tenant_tx_per_s, cfg.limits_tenant_bytes_per_s, (long long)id);
		if (print_query(sql))
			return 1;
	}
	return 0;
}

static int cmd_tenant(int argc, char **argv)
{
	struct app_store *s;
	int64_t id;
	int rc;

	if (argc >= 1 && !strcmp(argv[0], "list"))
		return print_query("SELECT id, name, datetime(created_ms/1000,'unixepoch') AS created"
				   " FROM tenants ORDER BY id");
	if (argc >= 2 && !strcmp(argv[0], "limits"))
		return tenant_limits(argc - 1, argv + 1);
	if (argc != 2 || strcmp(argv[0], "create"))
		return usage();
	if (!valid_name(argv[1]))
		return app_cli_fail("tenant name must be 1-63 characters of a-z, 0-9, '-' or '_'");
	/* The first step on a new data directory (scripts/run-dev, run-bench):
	 * the one command that may create the database. */
	if (!(s = app_cli_store_open(cfg.data_dir, 0, 1)))
		return 1;
	rc = app_store_tenant_create(s, argv[1], &id);
	app_store_close(s);
	if (rc == APP_EEXIST)
		return app_cli_fail("tenant '%s' already exists", argv[1]);
	if (rc)
		return app_cli_fail("creating tenant: %s", app_strerror(rc));
	printf("tenant %s created (id %lld)\n", argv[1], (long long)id);
	return 0;
}

static int parse_access(const char *v, int *out)
{
	if (!strcmp(v, "public"))
		*out = 1;
	else if (!strcmp(v, "key"))
		*out = 0;
	else
		return -1;
	return 0;
}

static int cmd_namespace(int argc, char **argv)
{
	struct app_namespace ns = {0};
	struct app_store *s;
	int rc;

	if (argc >= 1 && !strcmp(argv[0], "list"))
		return print_query("SELECT n.name, n.chain_id, t.name AS tenant,"
				   " CASE n.ingress_public WHEN 1 THEN 'public' ELSE 'key' END AS ingress,"
				   " CASE n.feed_public WHEN 1 THEN 'public' ELSE 'key' END AS feed"
				   " FROM namespaces n JOIN tenants t ON t.id = n.tenant_id ORDER BY n.chain_id");
	if (argc < 4 || strcmp(argv[0], "create"))
		return usage();
	ns.ingress_public = 1;
	ns.feed_public = 1;
	for (int i = 4; i < argc; i++) {
		if (i + 1 < argc && !strcmp(argv[i], "--ingress") &&
		    !parse_access(argv[i + 1], &ns.ingress_public))
			i++;
		else if (i + 1 < argc && !strcmp(argv[i], "--feed") &&
			 !parse_access(argv[i + 1], &ns.feed_public))
			i++;
		else
			return app_cli_fail("unexpected '%s' (use --ingress public|key, --feed public|key)",
				   argv[i]);
	}
	if (!valid_name(argv[2]))
		return app_cli_fail("namespace name must be 1-63 characters of a-z, 0-9, '-' or '_'");
	if (app_cli_parse_u64(argv[3], &ns.chain_id) || ns.chain_id == 0 ||
	    ns.chain_id > (uint64_t)INT64_MAX)
		return app_cli_fail("chain id must be an integer in 1..2^63-1 (decimal, or hex "
				    "with 0x)");
	snprintf(ns.name, sizeof(ns.name), "%s", argv[2]);
	if (!(s = open_store()))
		return 1;
	rc = app_store_tenant_find(s, argv[1], &ns.tenant_id);
	if (rc) {
		app_store_close(s);
		return app_cli_fail("no tenant named '%s' (create it with: mezz tenant create %s)", argv[1],
			   argv[1]);
	}
	rc = app_store_namespace_create(s, &ns);
	app_store_close(s);
	if (rc == APP_EEXIST)
		return app_cli_fail("a namespace with that name or chain id already exists");
	if (rc)
		return app_cli_fail("creating namespace: %s", app_strerror(rc));
	printf("namespace %s (chain id %llu) created for tenant %s: ingress %s, feed %s\n",
	       ns.name, (unsigned long long)ns.chain_id, argv[1],
	       ns.ingress_public ? "public" : "key", ns.feed_public ? "public" : "key");
	return 0;
}

static int cmd_key(int argc, char **argv)
{
	struct app_identity id;
	struct app_store *s;
	uint8_t raw[32], hash[32];
	char key[3 + 64], prefix[16];
	int64_t tenant, kid;
	int rc;

	if (argc >= 1 && !strcmp(argv[0], "list"))
		return print_query("SELECT k.id, t.name AS tenant, k.prefix || '...' AS key,"
				   " datetime(k.created_ms/1000,'unixepoch') AS created,"
				   " CASE WHEN k.revoked_ms IS NULL THEN 'active' ELSE 'revoked' END AS state"
				   " FROM api_keys k JOIN tenants t ON t.id = k.tenant_id ORDER BY k.id");
	if (argc == 2 && !strcmp(argv[0], "revoke")) {
		uint64_t n;

		if (app_cli_parse_u64(argv[1], &n) || n == 0 || n > (uint64_t)INT64_MAX)
			return app_cli_fail("key id must be a positive integer (see mezz key list)");
		kid = (int64_t)n;
		if (!(s = open_store()))
			return 1;
		rc = app_store_key_revoke(s, kid);
		app_store_close(s);
		if (rc == APP_ENOTFOUND)
			return app_cli_fail("no active key with id %lld", (long long)kid);
		if (rc)
			return app_cli_fail("revoking: %s", app_strerror(rc));
		printf("key %lld revoked\n", (long long)kid);
		return 0;
	}
	if (argc != 2 || strcmp(argv[0], "create"))
		return usage();
	if (!(s = open_store()))
		return 1;
	if (app_store_tenant_find(s, argv[1], &tenant)) {
		app_store_close(s);
		return app_cli_fail("no tenant named '%s'", argv[1]);
	}
	/* The key hashing secret lives beside the identity; create both if new
	 * (a database made by `tenant create` before the daemon's first start),
	 * but only once the data dir is known to be a real one. */
	rc = app_identity_load(&id, cfg.data_dir, 1);
	if (rc) {
		app_store_close(s);
		return app_cli_fail("cannot read the key secret in %s: %s", cfg.data_dir,
				    app_strerror(rc));
	}
	randombytes_buf(raw, sizeof(raw));
	memcpy(key, "mz_", 3);
	sodium_bin2base64(key + 3, sizeof(key) - 3, raw, sizeof(raw),
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	snprintf(prefix, sizeof(prefix), "%.10s", key);
	app_apikey_hash(hash, &id, key, strlen(key));
	rc = app_store_key_create(s, tenant, hash, prefix, &kid);
	app_store_close(s);
	sodium_memzero(&id, sizeof(id));
	sodium_memzero(raw, sizeof(raw));
	if (rc) {
		sodium_memzero(key, sizeof(key));
		return app_cli_fail("storing key: %s", app_strerror(rc));
	}
	fprintf(stderr, "key %lld for tenant %s (shown once; store it now):\n", (long long)kid,
		argv[1]);
	printf("%s\n", key);
	fflush(stdout);
	sodium_memzero(key, sizeof(key));
	return 0;
}

/* ---- JSON-RPC client --------------------------------------------------- */

/* Call method with params (stolen). Returns the result (new ref) or NULL. */
static json_t *rpc(const char *method, json_t *params)
{
	json_t *req = json_pack("{s:s,s:i,s:s,s:o}", "jsonrpc", "2.0", "id", 1, "method", method,
				"params", params ? params : json_array());
	char *body = json_dumps(req, JSON_COMPACT);
	struct app_cli_body b;
	json_t *resp = NULL, *res = NULL;

	if (app_cli_http(rpc_url, body, &b) < 0) {
		/* the reason is printed */
	} else if (!(resp = json_loads(b.p ? b.p : "", 0, NULL))) {
		app_cli_fail("%s answered with something that is not JSON", rpc_url);
	} else if (json_object_get(resp, "error")) {
		json_t *e = json_object_get(resp, "error");

		app_cli_fail("%s: %s (code %lld)", method, json_string_value(json_object_get(e, "message")),
		    (long long)json_integer_value(json_object_get(e, "code")));
	} else {
		res = json_incref(json_object_get(resp, "result"));
	}
	json_decref(resp);
	json_decref(req);
	free(body);
	free(b.p);
	return res;
}

/* ---- verification ------------------------------------------------------ */

static int hex_field(json_t *o, const char *k, uint8_t *out, size_t len)
{
	json_t *v = json_object_get(o, k);
	size_t n;

	if (!json_is_string(v) ||
	    l1_hex_decode(out, len, &n, json_string_value(v), json_string_length(v)) || n != len)
		return app_cli_fail("field '%s' must be %zu bytes of 0x-hex", k, len);
	return 0;
}

static int u64_field(json_t *o, const char *k, uint64_t *out)
{
	json_t *v = json_object_get(o, k);

	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return app_cli_fail("field '%s' must be a non-negative integer", k);
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

/* The key to verify against: --public-key, else this box's own identity. */
static int trusted_key(const char *hex, uint8_t pk[32])
{
	struct app_identity id;
	size_t n;

	if (hex) {
		if (l1_hex_decode(pk, 32, &n, hex, strlen(hex)) || n != 32)
			return app_cli_fail("--public-key must be 32 bytes of hex");
		return 0;
	}
	if (app_identity_load(&id, cfg.data_dir, 0))
		return app_cli_fail("no --public-key given and no identity readable in %s", cfg.data_dir);
	memcpy(pk, id.pk, 32);
	sodium_memzero(&id, sizeof(id));
	return 0;
}

/* proof: an array of at most max 32-byte hashes into out; *n their number. */
static int proof_field(json_t *o, uint8_t (*out)[32], size_t max, size_t *n)
{
	json_t *proof = json_object_get(o, "proof");

	if (!json_is_array(proof) || json_array_size(proof) > max)
		return app_cli_fail("field 'proof' must be an array of at most %zu hashes", max);
	*n = json_array_size(proof);
	for (size_t i = 0; i < *n; i++) {
		json_t *e = json_array_get(proof, i);
		size_t len;

		if (!json_is_string(e) || l1_hex_decode(out[i], 32, &len, json_string_value(e),
							json_string_length(e)) || len != 32)
			return app_cli_fail("proof[%zu] must be 32 bytes of hex", i);
	}
	return 0;
}

/* A receipt's fields (docs/API.md mezz_sendTransaction) into r. */
static int receipt_fields(json_t *j, struct seq_receipt *r)
{
	uint64_t v;

	if (hex_field(j, "hash", r->hash, 32) || hex_field(j, "root", r->root, 32) ||
	    hex_field(j, "signature", r->sig, 64) || u64_field(j, "chainId", &r->ns) ||
	    u64_field(j, "seq", &r->seq) || u64_field(j, "slot", &r->slot) ||
	    u64_field(j, "group", &r->group_id))
		return 1;
	if (u64_field(j, "index", &v) || v > UINT32_MAX)
		return 1;
	r->index = (uint32_t)v;
	if (u64_field(j, "count", &v) || v > UINT32_MAX)
		return 1;
	r->count = (uint32_t)v;
	return proof_field(j, r->path, SEQ_MERKLE_MAX_DEPTH, &r->path_len);
}

/* A saved answer from path ("-": stdin) into *root; the object to check:
 * its "result" when it is a whole JSON-RPC response, else itself. NULL
 * (said why) if it is not JSON. */
static json_t *load_answer(const char *path, json_t **root)
{
	json_error_t je;
	json_t *res;

	*root = strcmp(path, "-") ? json_load_file(path, 0, &je) : json_loadf(stdin, 0, &je);
	if (!*root) {
		app_cli_fail("%s: not JSON: %s (line %d)", path, je.text, je.line);
		return NULL;
	}
	res = json_object_get(*root, "result");
	return json_is_object(res) ? res : *root;
}

static int verify_receipt(const char *path, const char *pkhex)
{
	json_t *root, *j = load_answer(path, &root);
	struct seq_receipt r = {0};
	uint8_t pk[32];
	int rc = 1;

	if (!j)
		return 1;
	if (trusted_key(pkhex, pk) || receipt_fields(j, &r))
		goto out;
	rc = seq_receipt_verify(&r, pk);
	if (rc) {
		printf("INVALID receipt for seq %llu: %s\n", (unsigned long long)r.seq,
		       app_strerror(rc));
		rc = 1;
	} else {
		printf("OK receipt: tx %s is seq %llu in group %llu (slot %llu), signed by the "
		       "trusted key\n",
		       json_string_value(json_object_get(j, "hash")), (unsigned long long)r.seq,
		       (unsigned long long)r.group_id, (unsigned long long)r.slot);
	}
out:
	json_decref(root);
	return rc;
}

/* One group section of a batch receipt against its brief entries (every
 * entry of txs naming its group): the signature over the group, then one
 * multiproof for their leaves. *k: the entries it covered. */
static int verify_section(json_t *sec, json_t *txs, uint64_t chain, const uint8_t pk[32],
			  size_t *k)
{
	struct seq_group_hdr h = {0};
	uint8_t sig[64], (*proof)[32] = NULL, (*leaves)[32] = NULL;
	uint64_t v, *idx = NULL;
	size_t n = json_array_size(txs), plen, j = 0;
	json_t *e;
	int rc = 1;

	if (u64_field(sec, "group", &h.group_id) || u64_field(sec, "slot", &h.slot) ||
	    u64_field(sec, "firstSeq", &h.first_seq) || u64_field(sec, "count", &v) ||
	    v == 0 || v > UINT32_MAX || hex_field(sec, "root", h.root, 32) ||
	    hex_field(sec, "signature", sig, 64))
		return 1;
	h.count = (uint32_t)v;
	if (seq_group_verify(&h, sig, pk)) {
		printf("INVALID batch receipt: group %llu's signature does not verify\n",
		       (unsigned long long)h.group_id);
		return 1;
	}
	proof = malloc((seq_merkle_multiproof_max(h.count, n) + 1) * 32);
	leaves = malloc((n + 1) * 32);
	idx = malloc((n + 1) * sizeof(*idx));
	if (!proof || !leaves || !idx) {
		app_cli_fail("out of memory");
		goto out;
	}
	if (proof_field(sec, proof, seq_merkle_multiproof_max(h.count, n), &plen))
		goto out;
	for (size_t i = 0; i < n; i++) {
		uint64_t g, seq, index;
		uint8_t hash[32];

		e = json_array_get(txs, i);
		if (!json_object_get(e, "index") || u64_field(e, "group", &g) || g != h.group_id)
			continue;
		if (u64_field(e, "seq", &seq) || u64_field(e, "index", &index) ||
		    hex_field(e, "hash", hash, 32))
			goto out;
		if (index >= h.count || seq != h.first_seq + index || (j && index <= idx[j - 1])) {
			printf("INVALID batch receipt: txs[%zu] (seq %llu, index %llu) does not fit "
			       "group %llu\n",
			       i, (unsigned long long)seq, (unsigned long long)index,
			       (unsigned long long)h.group_id);
			goto out;
		}
		seq_merkle_tx_leaf(leaves[j], seq, chain, hash);
		idx[j++] = index;
	}
	if (!j || seq_merkle_multiverify((const uint8_t (*)[32])leaves, idx, j, h.count,
					 (const uint8_t (*)[32])proof, plen, h.root)) {
		printf("INVALID batch receipt: group %llu's proof does not take its %zu "
		       "transactions to its root\n",
		       (unsigned long long)h.group_id, j);
		goto out;
	}
	*k = j;
	rc = 0;
out:
	free(proof);
	free(leaves);
	free(idx);
	return rc;
}

/* A mezz_sendTransactions answer (docs/API.md): every section, every full
 * receipt, and no brief entry left without a section. */
static int verify_batch(const char *path, const char *pkhex)
{
	json_t *root, *j = load_answer(path, &root), *groups, *txs, *e;
	size_t covered = 0, brief = 0, full = 0, refused = 0, i;
	uint64_t chain;
	uint8_t pk[32];
	int rc = 1;

	if (!j)
		return 1;
	groups = json_object_get(j, "groups");
	txs = json_object_get(j, "txs");
	if (trusted_key(pkhex, pk) || u64_field(j, "chainId", &chain))
		goto out;
	if (!json_is_array(groups) || !json_is_array(txs)) {
		app_cli_fail("%s: not a batch receipt (no \"groups\" and \"txs\" arrays)", path);
		goto out;
	}
	json_array_foreach(groups, i, e) {
		size_t k = 0;

		if (verify_section(e, txs, chain, pk, &k))
			goto out;
		covered += k;
	}
	json_array_foreach(txs, i, e) {
		json_t *r = json_object_get(e, "receipt");

		if (json_object_get(e, "error")) {
			refused++;
		} else if (r) {
			struct seq_receipt rr = {0};

			if (receipt_fields(r, &rr))
				goto out;
			if (seq_receipt_verify(&rr, pk)) {
				printf("INVALID batch receipt: txs[%zu]'s receipt does not verify\n", i);
				goto out;
			}
			full++;
		} else {
			brief++;
		}
	}
	if (brief != covered) {
		printf("INVALID batch receipt: %zu brief entries, %zu of them proved by a group "
		       "section\n",
		       brief, covered);
		goto out;
	}
	printf("OK batch receipt: %zu transactions proved by %zu group section(s), %zu by their "
	       "own receipts, %zu refused; signed by the trusted key\n",
	       brief, json_array_size(groups), full, refused);
	rc = 0;
out:
	json_decref(root);
	return rc;
}

/* Check one block: signature, header fields, namespace table and the
 * sub-blocks we were given. */
static int verify_block(json_t *b, const uint8_t pk[32], struct seq_block_hdr *h)
{
	uint8_t raw[SEQ_BLOCK_HDR_LEN], sig[64], root[32];
	json_t *tab = json_object_get(b, "nsTable"), *nss = json_object_get(b, "namespaces"), *e;
	uint8_t(*leaves)[32] = NULL;
	size_t i;
	int rc;

	if (hex_field(b, "headerRaw", raw, sizeof(raw)) || hex_field(b, "signature", sig, 64))
		return 1;
	if ((rc = seq_block_hdr_decode(h, raw, sizeof(raw))))
		return app_cli_fail("header: %s", app_strerror(rc));
	if ((rc = seq_block_verify(h, sig, pk)))
		return app_cli_fail("height %llu: %s", (unsigned long long)h->height, app_strerror(rc));
	if (!json_is_array(tab) || json_array_size(tab) != h->ns_count)
		return app_cli_fail("height %llu: nsTable does not match nsCount", (unsigned long long)h->height);
	leaves = calloc(h->ns_count ? h->ns_count : 1, 32);
	if (!leaves)
		return app_cli_fail("out of memory");
	json_array_foreach(tab, i, e) {
		uint64_t ns, count;
		uint8_t r[32];

		if (u64_field(e, "chainId", &ns) || u64_field(e, "count", &count) ||
		    hex_field(e, "root", r, 32))
			goto fail;
		seq_merkle_ns_leaf(leaves[i], ns, count, r);
	}
	seq_merkle_root(root, (const uint8_t(*)[32])leaves, h->ns_count);
	free(leaves);
	leaves = NULL;
	if (memcmp(root, h->ns_root, 32))
		return app_cli_fail("height %llu: namespace table does not hash to nsRoot",
			   (unsigned long long)h->height);
	/* Each delivered sub-block must hash to its entry in the table. */
	json_array_foreach(nss, i, e) {
		json_t *txs = json_object_get(e, "txs"), *t;
		uint64_t ns;
		uint8_t want[32];
		size_t k, j;

		if (u64_field(e, "chainId", &ns) || hex_field(e, "root", want, 32))
			return 1;
		leaves = calloc(json_array_size(txs) + 1, 32);
		if (!leaves)
			return app_cli_fail("out of memory");
		json_array_foreach(txs, k, t) {
			uint64_t seq;
			uint8_t th[32], calc[32];
			json_t *d = json_object_get(t, "data");
			size_t dl = json_string_length(d) / 2, n;
			uint8_t *data = malloc(dl + 1);

			if (!data || u64_field(t, "seq", &seq) || hex_field(t, "hash", th, 32) ||
			    l1_hex_decode(data, dl + 1, &n, json_string_value(d), json_string_length(d))) {
				free(data);
				goto fail;
			}
			l1_keccak256(calc, data, n);
			free(data);
			if (memcmp(calc, th, 32)) {
				app_cli_fail("height %llu: tx seq %llu data does not hash to its hash",
				    (unsigned long long)h->height, (unsigned long long)seq);
				goto fail;
			}
			seq_merkle_tx_leaf(leaves[k], seq, ns, th);
		}
		seq_merkle_root(root, (const uint8_t(*)[32])leaves, json_array_size(txs));
		free(leaves);
		leaves = NULL;
		for (j = 0; j < json_array_size(tab); j++) {
			json_t *te = json_array_get(tab, j);
			uint64_t tns;

			if (!u64_field(te, "chainId", &tns) && tns == ns)
				break;
		}
		if (j == json_array_size(tab) || memcmp(root, want, 32) ||
		    hex_field(json_array_get(tab, j), "root", want, 32) || memcmp(root, want, 32))
			return app_cli_fail("height %llu: sub-block of chain %llu does not match its root",
				   (unsigned long long)h->height, (unsigned long long)ns);
	}
	return 0;
fail:
	free(leaves);
	return 1;
}

static int verify_blocks(const char *from_s, const char *to_s, const char *pkhex)
{
	struct seq_block_hdr prev, cur;
	uint64_t from, to;
	uint8_t pk[32];
	int have_prev = 0;

	if (app_cli_parse_u64(from_s, &from) || app_cli_parse_u64(to_s, &to) || from < 1 ||
	    to < from || to > (uint64_t)INT64_MAX) {
		app_cli_fail("verify blocks: give integer heights FROM <= TO, both >= 1");
		return 2;
	}
	if (trusted_key(pkhex, pk))
		return 1;
	for (uint64_t h = from; h <= to; h++) {
		json_t *b = rpc("mezz_getBlock", json_pack("[{s:I}]", "height", (json_int_t)h));
		int rc;

		if (!b)
			return 1;
		rc = verify_block(b, pk, &cur);
		json_decref(b);
		if (rc)
			return 1;
		if (cur.height != h)
			return app_cli_fail("asked for height %llu, got %llu", (unsigned long long)h,
				   (unsigned long long)cur.height);
		if (have_prev && seq_block_check_link(&prev, &cur))
			return app_cli_fail("height %llu does not chain to %llu", (unsigned long long)h,
				   (unsigned long long)(h - 1));
		prev = cur;
		have_prev = 1;
	}
	printf("OK blocks %llu..%llu: signatures, namespace tables, sub-blocks and hash chain "
	       "verified\n",
	       (unsigned long long)from, (unsigned long long)to);
	return 0;
}

static int cmd_verify(int argc, char **argv)
{
	const char *pk = NULL;
	int n = argc;

	for (int i = 0; i < argc; i++)
		if (!strcmp(argv[i], "--public-key") && i + 1 < argc) {
			pk = argv[i + 1];
			n = i;
			break;
		}
	if (n == 2 && !strcmp(argv[0], "receipt"))
		return verify_receipt(argv[1], pk);
	if (n == 2 && !strcmp(argv[0], "batch"))
		return verify_batch(argv[1], pk);
	if (n == 3 && !strcmp(argv[0], "blocks"))
		return verify_blocks(argv[1], argv[2], pk);
	if (n == 2 && (!strcmp(argv[0], "shard") || !strcmp(argv[0], "nsproof"))) {
		uint8_t key[32];

		if (trusted_key(pk, key))
			return 1;
		return !strcmp(argv[0], "shard") ? app_cli_verify_shard(argv[1], key)
						 : app_cli_verify_nsproof(argv[1], key);
	}
	return usage();
}

static int cmd_config(int argc, char **argv)
{
	struct app_config c;
	char err[16384];
	int rc;

	if (argc != 2 || strcmp(argv[0], "check"))
		return usage();
	app_config_defaults(&c);
	rc = app_config_load(&c, argv[1], err, sizeof(err));
	if (rc < 0)
		return app_cli_fail("cannot read %s: %s", argv[1], strerror(-rc));
	if (rc > 0) {
		fputs(err, stderr);
		fprintf(stderr, "%s: %d error(s)\n", argv[1], rc);
		return 1;
	}
	printf("%s: OK\n", argv[1]);
	return 0;
}

int main(int argc, char **argv)
{
	const char *config_path = NULL, *data_dir = NULL, *sets[32];
	int i = 1, rc, nsets = 0;
	char err[4096];

	for (; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "-c") && i + 1 < argc)
			config_path = argv[++i];
		else if (!strcmp(argv[i], "--data-dir") && i + 1 < argc)
			data_dir = argv[++i];
		else if (!strcmp(argv[i], "--url") && i + 1 < argc)
			rpc_url = argv[++i];
		else if (!strcmp(argv[i], "--set") && i + 1 < argc && nsets < 32)
			sets[nsets++] = argv[++i];
		else
			return usage();
	}
	if (i >= argc)
		return usage();
	app_config_defaults(&cfg);
	/* The daemon's file even with --data-dir: shard commands need its
	 * storage.da_dirs, and limits and checks its other keys. --data-dir, as
	 * in the daemon, overrides storage.data_dir only. */
	if (!config_path) {
		const char *env = getenv("MEZZ_CONFIG");

		if (env)
			config_path = *env ? env : NULL;
		else if (access(DEFAULT_CONFIG, R_OK) == 0)
			config_path = DEFAULT_CONFIG;
	}
	if (config_path && strcmp(argv[i], "config")) {
		rc = app_config_load(&cfg, config_path, err, sizeof(err));
		if (rc < 0)
			return app_cli_fail("cannot read %s: %s", config_path, strerror(-rc));
		if (rc) {
			fputs(err, stderr);
			return app_cli_fail("cannot use %s", config_path);
		}
	}
	for (int k = 0; k < nsets; k++)
		if (app_config_set(&cfg, sets[k], err, sizeof(err)))
			return app_cli_fail("--set %s", err);
	if (app_config_validate(&cfg, err, sizeof(err)))
		return app_cli_fail("%s", err);
	if (data_dir)
		snprintf(cfg.data_dir, sizeof(cfg.data_dir), "%s", data_dir);
	if (sodium_init() < 0)
		return app_cli_fail("libsodium failed to initialise");
	umask(077); /* a database or key the CLI creates is private too */
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (!strcmp(argv[i], "tenant"))
		rc = cmd_tenant(argc - i - 1, argv + i + 1);
	else if (!strcmp(argv[i], "namespace"))
		rc = cmd_namespace(argc - i - 1, argv + i + 1);
	else if (!strcmp(argv[i], "key"))
		rc = cmd_key(argc - i - 1, argv + i + 1);
	else if (!strcmp(argv[i], "status"))
		rc = app_cli_status(&cfg, rpc_url);
	else if (!strcmp(argv[i], "tail"))
		rc = app_cli_tail(rpc_url, argc - i - 1, argv + i + 1);
	else if (!strcmp(argv[i], "backup"))
		rc = app_cli_backup(&cfg, argc - i - 1, argv + i + 1);
	else if (!strcmp(argv[i], "restore"))
		rc = app_cli_restore(&cfg, data_dir != NULL, argc - i - 1, argv + i + 1);
	else if (!strcmp(argv[i], "verify"))
		rc = cmd_verify(argc - i - 1, argv + i + 1);
	else if (!strcmp(argv[i], "config"))
		rc = cmd_config(argc - i - 1, argv + i + 1);
	else if (!strcmp(argv[i], "l1"))
		rc = app_cli_l1(&cfg, argc - i - 1, argv + i + 1);
	else if (!strcmp(argv[i], "da"))
		rc = app_cli_da(&cfg, argc - i - 1, argv + i + 1);
	else if (!strcmp(argv[i], "rights"))
		rc = app_cli_rights(&cfg, argc - i - 1, argv + i + 1);
	else
		rc = usage();
	curl_global_cleanup();
	return rc;
}
