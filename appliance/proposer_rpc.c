/*
 * proposer_rpc.c - proposer-ordered slots on the lws thread (design in
 * docs/RIGHTS.md, methods in docs/API.md): a WebSocket session proves it
 * controls a winner's Ethereum address, then receives the transactions
 * held for that address (privately: nobody else may subscribe to them) and
 * submits sub-blocks, which the committer validates and decides.
 *
 * Session: NONE --(mezz_proposerChallenge)--> CHALLENGED
 *          CHALLENGED --(mezz_proposerAuth, signature recovers the address)--> AUTHENTICATED
 *          CHALLENGED --(bad signature)--> NONE (the challenge is used up either way)
 *
 * The digest is keccak256("mezzanine proposer auth v2" || appliance
 * ed25519 public key (32) || challenge (32)): bound to this appliance and
 * to one fresh random challenge, so it cannot be replayed on another
 * session or another appliance. It is signed as an EIP-191 personal
 * message (the 32 digest bytes after "\x19Ethereum Signed Message:\n32"),
 * never as a raw hash: a raw signature of a 32-byte value an appliance
 * hands out could be a transaction's or an EIP-712 purchase's (v1 did
 * that). A successful authentication as another address, or a failed one,
 * ends the session's pending subscription: it was granted to the address
 * it was made under.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "appliance/server.h"
#include "l1bridge/l1.h"

#define AUTH_DOMAIN "mezzanine proposer auth v2"
#define SB_MAX_ITEMS 4096


static char *err_json(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *err_json(int code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return app_error_json(code, "%s", msg);
}

static void auth_digest(uint8_t out[32], const struct app_conn *c)
{
	uint8_t msg[sizeof(AUTH_DOMAIN) - 1 + 64];

	memcpy(msg, AUTH_DOMAIN, sizeof(AUTH_DOMAIN) - 1);
	memcpy(msg + sizeof(AUTH_DOMAIN) - 1, c->srv->id->pk, 32);
	memcpy(msg + sizeof(AUTH_DOMAIN) - 1 + 32, c->prop_challenge, 32);
	l1_keccak256(out, msg, sizeof(msg));
}

/* What the key signs: EIP-191 (personal_sign) of the 32 digest bytes. */
static void personal_hash(uint8_t out[32], const uint8_t digest[32])
{
	static const char prefix[] = "\x19" "Ethereum Signed Message:\n32";
	uint8_t msg[sizeof(prefix) - 1 + 32];

	memcpy(msg, prefix, sizeof(prefix) - 1);
	memcpy(msg + sizeof(prefix) - 1, digest, 32);
	l1_keccak256(out, msg, sizeof(msg));
}

/* The pending subscription ends with the identity it was granted to. */
static void end_pending(struct app_conn *c)
{
	c->prop_sub_id = 0;
	c->prop_last_ref = 0;
	c->prop_backlog = 0;
}

static int hex_fixed(uint8_t *out, size_t n, json_t *v)
{
	const char *h = json_string_value(v);
	size_t got = 0;

	if (!h || strlen(h) != 2 + 2 * n || h[0] != '0' || (h[1] != 'x' && h[1] != 'X'))
		return -1;
	return l1_hex_decode(out, n, &got, h, strlen(h)) || got != n ? -1 : 0;
}

static char *m_challenge(struct app_conn *c)
{
	char ch[67], pk[67], dg[67], buf[300];
	uint8_t d[32];

	randombytes_buf(c->prop_challenge, 32);
	c->prop_has_challenge = 1;
	auth_digest(d, c);
	l1_hex_encode(ch, c->prop_challenge, 32);
	l1_hex_encode(pk, c->srv->id->pk, 32);
	l1_hex_encode(dg, d, 32);
	snprintf(buf, sizeof(buf),
		 "{\"challenge\":\"%s\",\"publicKey\":\"%s\",\"digest\":\"%s\",\"domain\":\"%s\"}",
		 ch, pk, dg, AUTH_DOMAIN);
	return strdup(buf);
}

static char *m_auth(struct app_conn *c, json_t *params, int *is_error)
{
	json_t *p = json_is_array(params) ? json_array_get(params, 0) : params;
	uint8_t addr[20], sig[65], got[20], d[32], h[32];
	char buf[120], hex[43];

	*is_error = 1;
	if (!json_is_object(p) || hex_fixed(addr, 20, json_object_get(p, "address")) ||
	    hex_fixed(sig, 65, json_object_get(p, "signature")))
		return err_json(RPC_INVALID_PARAMS,
				"params must be {\"address\": \"0x<40 hex>\", \"signature\": "
				"\"0x<130 hex: r||s||v>\"}");
	if (!c->prop_has_challenge)
		return err_json(RPC_PROPOSER_AUTH,
				"ask for a challenge first (mezz_proposerChallenge on this connection)");
	auth_digest(d, c);
	personal_hash(h, d);
	c->prop_has_challenge = 0; /* one attempt per challenge */
	if (l1_recover_address(got, h, sig) || sodium_memcmp(got, addr, 20)) {
		c->prop_ok = 0;
		end_pending(c);
		return err_json(RPC_PROPOSER_AUTH,
				"signature does not recover to the given address (sign the 32 "
				"bytes of the challenge's digest as an EIP-191 personal message "
				"with the winner's key, e.g. cast wallet sign 0x<digest>); ask "
				"for a new challenge");
	}
	if (c->prop_ok && sodium_memcmp(c->prop_addr, addr, 20))
		end_pending(c);
	memcpy(c->prop_addr, addr, 20);
	c->prop_ok = 1;
	*is_error = 0;
	l1_hex_encode(hex, addr, 20);
	snprintf(buf, sizeof(buf), "{\"address\":\"%s\",\"authenticated\":true}", hex);
	return strdup(buf);
}

static uint64_t deadline_ms(const struct app_config *cfg, uint64_t slot)
{
	uint64_t end = seq_slot_start(slot + 1, 0, (uint32_t)cfg->slot_ms);
	uint64_t lead = (uint64_t)cfg->proposer_deadline_ms;

	if (lead >= (uint64_t)cfg->slot_ms)
		lead = (uint64_t)cfg->slot_ms / 5;
	return end - lead;
}

static char *m_subscribe_pending(struct app_conn *c, json_t *params, int *is_error)
{
	struct app_server *s = c->srv;
	sqlite3_stmt *st = NULL;
	uint64_t now = seq_slot_at(app_wall_ms(), 0, (uint32_t)s->cfg->slot_ms);
	char buf[40];
	int granted;

	*is_error = 1;
	if (!c->is_ws)
		return err_json(RPC_METHOD_NOT_FOUND, "the pending stream needs a WebSocket session");
	if (json_array_size(params) > 2 ||
	    (json_array_size(params) == 2 && !json_is_object(json_array_get(params, 1))))
		return err_json(RPC_INVALID_PARAMS, "params must be [\"pending\"] or [\"pending\", {}]");
	if (!c->prop_ok)
		return err_json(RPC_PROPOSER_AUTH,
				"the pending stream is private to a slot's winner: authenticate "
				"this session with mezz_proposerChallenge and mezz_proposerAuth");
	if (c->prop_sub_id)
		return err_json(RPC_INVALID_PARAMS, "this session already has a pending subscription");
	if (sqlite3_prepare_v2(app_store_db(s->ro),
			       "SELECT 1 FROM grants WHERE winner = ? AND to_slot >= ?", -1, &st,
			       NULL) != SQLITE_OK)
		return err_json(RPC_INTERNAL, "grants unreadable");
	sqlite3_bind_blob(st, 1, c->prop_addr, 20, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)now);
	granted = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_finalize(st);
	if (!granted)
		return err_json(RPC_FORBIDDEN, "this address holds no grant for the current or a "
					       "future slot");
	c->prop_sub_id = s->next_sub_id++;
	c->prop_last_ref = 0;
	c->prop_backlog = 1;
	*is_error = 0;
	snprintf(buf, sizeof(buf), "\"0x%llx\"", (unsigned long long)c->prop_sub_id);
	return strdup(buf);
}

static void send_pending(struct app_conn *c, uint64_t ref, const char *result)
{
	size_t cap = strlen(result) + 160;
	char *msg = malloc(cap);

	if (!msg)
		return;
	snprintf(msg, cap,
		 "{\"jsonrpc\":\"2.0\",\"method\":\"mezz_subscription\",\"params\":"
		 "{\"subscription\":\"0x%llx\",\"result\":%s}}",
		 (unsigned long long)c->prop_sub_id, result);
	if (app_conn_send(c, msg, strlen(msg), 0, 0, 0) == 0)
		c->prop_last_ref = ref;
	free(msg);
}

void app_prop_notice(struct app_server *s, const struct app_done *d)
{
	for (struct app_conn *c = s->ws_list; c; c = c->ws_next)
		if (c->prop_sub_id && c->prop_ok && !memcmp(c->prop_addr, d->winner, 20) &&
		    d->height > c->prop_last_ref && !c->closing)
			send_pending(c, d->height, d->json);
}

/* The held transactions already stored for this address, from the read
 * connection; the notices still in the done queue are skipped by ref. */
void app_prop_backlog(struct app_conn *c)
{
	struct app_server *s = c->srv;
	sqlite3_stmt *st = NULL;
	char *buf = NULL;
	size_t cap = 0, w = 0;
	uint64_t cur = 0, legs = 0;
	int rc;

	c->prop_backlog = 0;
	if (!c->prop_sub_id || sqlite3_prepare_v2(app_store_db(s->ro),
						  "SELECT ref, leg, legs, slot, ns_name, ns, hash, data"
						  " FROM pending WHERE winner = ? ORDER BY ref, leg",
						  -1, &st, NULL) != SQLITE_OK)
		return;
	sqlite3_bind_blob(st, 1, c->prop_addr, 20, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		uint64_t ref = (uint64_t)sqlite3_column_int64(st, 0);
		uint64_t leg = (uint64_t)sqlite3_column_int64(st, 1);
		size_t len = (size_t)sqlite3_column_bytes(st, 7), need;
		const char *name = (const char *)sqlite3_column_text(st, 4);

		if (sqlite3_column_bytes(st, 6) != 32)
			continue;
		need = w + 2 * len + 400;
		if (need > cap) {
			char *nb = realloc(buf, need * 2);

			if (!nb)
				break;
			buf = nb;
			cap = need * 2;
		}
		if (leg == 0) {
			cur = ref;
			legs = (uint64_t)sqlite3_column_int64(st, 2);
			w = (size_t)snprintf(buf, cap,
					     "{\"ref\":%llu,\"slot\":%llu,\"deadlineMs\":%llu,"
					     "\"bundle\":%s,\"txs\":[",
					     (unsigned long long)ref,
					     (unsigned long long)sqlite3_column_int64(st, 3),
					     (unsigned long long)deadline_ms(
						     s->cfg, (uint64_t)sqlite3_column_int64(st, 3)),
					     legs > 1 ? "true" : "false");
		} else if (ref != cur) {
			continue;
		}
		w += (size_t)snprintf(buf + w, cap - w,
				      "%s{\"namespace\":\"%s\",\"chainId\":%llu,\"hash\":\"",
				      leg ? "," : "", name ? name : "",
				      (unsigned long long)sqlite3_column_int64(st, 5));
		l1_hex_encode(buf + w, sqlite3_column_blob(st, 6), 32);
		w += 66;
		w += (size_t)snprintf(buf + w, cap - w, "\",\"data\":\"");
		l1_hex_encode(buf + w, sqlite3_column_blob(st, 7), len);
		w += 2 + 2 * len;
		w += (size_t)snprintf(buf + w, cap - w, "\"}");
		if (leg + 1 == legs && ref > c->prop_last_ref) {
			snprintf(buf + w, cap - w, "]}");
			send_pending(c, ref, buf);
		}
	}
	sqlite3_finalize(st);
	free(buf);
	(void)rc;
}

/* One own transaction {"namespace": NAME, "data": "0x..."} into x; NULL or
 * the error answer (where names the item). */
static char *parse_own(struct app_server *s, json_t *it, struct app_sb_item *x, const char *where)
{
	json_t *data = json_object_get(it, "data");
	const struct app_namespace *ns;
	const char *h;
	size_t hl, got = 0;

	if (!json_is_object(it) || !data || json_object_get(it, "pendingRef"))
		return err_json(RPC_INVALID_PARAMS, "%s: give namespace and data", where);
	ns = json_is_string(json_object_get(it, "namespace"))
		     ? app_auth_ns_by_name(&s->auth, json_string_value(json_object_get(it, "namespace")))
		     : NULL;
	if (!ns)
		return err_json(RPC_UNKNOWN_NAMESPACE, "%s: unknown namespace (give its name)", where);
	h = json_string_value(data);
	hl = h ? strlen(h) : 0;
	if (hl < 4 || (hl & 1) || h[0] != '0' || (h[1] != 'x' && h[1] != 'X') ||
	    (hl - 2) / 2 > (size_t)s->cfg->max_tx_bytes)
		return err_json(RPC_INVALID_PARAMS, "%s: data must be non-empty 0x-hex of at most "
						    "server.max_tx_bytes (%ld)", where, s->cfg->max_tx_bytes);
	x->len = (hl - 2) / 2;
	x->data = malloc(x->len);
	if (!x->data || l1_hex_decode(x->data, x->len, &got, h, hl) || got != x->len) {
		free(x->data);
		x->data = NULL;
		return err_json(RPC_INVALID_PARAMS, "%s: data is not valid hex", where);
	}
	x->ns = ns->chain_id;
	snprintf(x->ns_name, sizeof(x->ns_name), "%s", ns->name);
	l1_keccak256(x->hash, x->data, x->len);
	return NULL;
}

static char *m_submit(struct app_conn *c, json_t *params, int *is_error, struct app_sub *sub)
{
	struct app_server *s = c->srv;
	json_t *p = json_is_array(params) ? json_array_get(params, 0) : params;
	json_t *slot = json_is_object(p) ? json_object_get(p, "slot") : NULL;
	json_t *txs = json_is_object(p) ? json_object_get(p, "txs") : NULL, *it;
	struct app_slot_block *b = NULL;
	char *err = NULL, where[64];
	size_t k, total = 0;

	*is_error = 1;
	if (!c->prop_ok)
		return err_json(RPC_PROPOSER_AUTH, "authenticate this session as the slot's winner "
						   "first (mezz_proposerChallenge, mezz_proposerAuth)");
	if (!json_is_integer(slot) || json_integer_value(slot) < 0 || !json_is_array(txs) ||
	    json_array_size(txs) > SB_MAX_ITEMS)
		return err_json(RPC_INVALID_PARAMS,
				"params must be {\"slot\": N, \"txs\": [{\"pendingRef\": R} or "
				"{\"namespace\": NAME, \"data\": \"0x...\"} or {\"bundle\": "
				"[{\"namespace\", \"data\"}, ...]}, ...]} with at most %d "
				"items",
				SB_MAX_ITEMS);
	/* A bundle counts as its legs against SB_MAX_ITEMS. */
	json_array_foreach(txs, k, it) {
		json_t *bu = json_object_get(it, "bundle");

		total += json_is_array(bu) ? json_array_size(bu) : 1;
	}
	if (total > SB_MAX_ITEMS)
		return err_json(RPC_INVALID_PARAMS, "at most %d items, bundle legs included",
				SB_MAX_ITEMS);
	b = calloc(1, sizeof(*b) + total * sizeof(struct app_sb_item));
	if (!b)
		return err_json(RPC_INTERNAL, "out of memory");
	memcpy(b->winner, c->prop_addr, 20);
	b->slot = (uint64_t)json_integer_value(slot);
	json_array_foreach(txs, k, it) {
		struct app_sb_item *x = &b->items[b->n];
		json_t *ref = json_object_get(it, "pendingRef"), *data = json_object_get(it, "data");
		json_t *bu = json_object_get(it, "bundle"), *leg;
		size_t j;

		if (!json_is_object(it) || (ref != NULL) + (data != NULL) + (bu != NULL) != 1) {
			err = err_json(RPC_INVALID_PARAMS, "txs[%zu]: give either pendingRef, "
							   "namespace and data, or bundle", k);
			goto fail;
		}
		if (bu) {
			if (!json_is_array(bu) || json_array_size(bu) < 1 ||
			    json_array_size(bu) > APP_BUNDLE_MAX_LEGS) {
				err = err_json(RPC_INVALID_PARAMS, "txs[%zu]: bundle must be an array "
								   "of 1..%d {namespace, data}",
					       k, APP_BUNDLE_MAX_LEGS);
				goto fail;
			}
			json_array_foreach(bu, j, leg) {
				x = &b->items[b->n];
				snprintf(where, sizeof(where), "txs[%zu].bundle[%zu]", k, j);
				err = parse_own(s, leg, x, where);
				if (err)
					goto fail;
				x->at = (uint32_t)k;
				x->bundle_n = j ? 0 : (uint16_t)json_array_size(bu);
				x->bundle_leg = (uint16_t)j;
				b->n++;
			}
			continue;
		}
		if (ref) {
			if (!json_is_integer(ref) || json_integer_value(ref) < 1) {
				err = err_json(RPC_INVALID_PARAMS, "txs[%zu]: pendingRef must be an "
								   "integer >= 1", k);
				goto fail;
			}
			x->ref = (uint64_t)json_integer_value(ref);
			x->at = (uint32_t)k;
			b->n++;
			continue;
		}
		snprintf(where, sizeof(where), "txs[%zu]", k);
		err = parse_own(s, it, x, where);
		if (err)
			goto fail;
		x->at = (uint32_t)k;
		b->n++;
	}
	*is_error = 0;
	sub->block = b;
	return NULL;
fail:
	app__slot_block_free(b);
	return err;
}

int app_prop_rpc(struct app_conn *c, const char *m, json_t *params, int *is_error, char **json,
		 struct app_sub *sub)
{
	*is_error = 0;
	*json = NULL;
	if (!strcmp(m, "mezz_subscribe")) {
		json_t *kind = json_array_get(params, 0);

		if (!json_is_string(kind) || strcmp(json_string_value(kind), "pending"))
			return 0;
		*json = m_subscribe_pending(c, params, is_error);
		return 1;
	}
	if (!strcmp(m, "mezz_proposerChallenge")) {
		if (!c->is_ws) {
			*is_error = 1;
			*json = err_json(RPC_METHOD_NOT_FOUND,
					 "proposer sessions need a WebSocket connection");
		} else {
			*json = m_challenge(c);
		}
		return 1;
	}
	if (!strcmp(m, "mezz_proposerAuth")) {
		*json = m_auth(c, params, is_error);
		return 1;
	}
	if (!strcmp(m, "mezz_submitSlotBlock")) {
		*json = m_submit(c, params, is_error, sub);
		if (!*json && !*is_error && !sub->block) { /* defensive */
			*is_error = 1;
			*json = err_json(RPC_INTERNAL, "sub-block not built");
		}
		return 1;
	}
	return 0;
}
