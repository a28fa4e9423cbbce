/*
 * auth.c - the lws thread's view of tenants, namespaces and API keys.
 *
 * The CLI changes these tables directly in SQLite, bumps
 * meta.auth_version, and then adds one to the shared counter
 * data_dir/auth.seq (store.c). Before every message the lws thread loads
 * that counter (an atomic load) and reads meta.auth_version only when it
 * moved, reloading the namespaces when the version did: a revoked key or a
 * new namespace takes effect on the very next request. The counter is read
 * before the database, so a change committed after that read moves it again
 * and is seen on the next message. The version is also read at least once
 * every AUTH_RECHECK_NS, for a writer that could not reach the counter.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "appliance/auth.h"
#include "appliance/daemon.h"

#define AUTH_RECHECK_NS 1000000000ull

int app_auth_refresh(struct app_auth *a)
{
	int64_t v;
	uint64_t seq = 0, now = app_now_ns();
	struct app_namespace *ns;
	size_t n;
	int have_seq = app_store_auth_seq(a->ro, &seq) == 0, rc;

	if (a->loaded && have_seq && a->have_seq && seq == a->seq &&
	    now - a->checked_ns < AUTH_RECHECK_NS)
		return 0;
	rc = APP_FAULT_AUTH_READ() ? APP_ESQLITE : app_store_auth_version(a->ro, &v);
	a->stale = rc != 0;
	if (rc)
		return rc;
	a->seq = seq;
	a->have_seq = have_seq;
	a->checked_ns = now;
	if (a->loaded && v == a->version)
		return 0;
	rc = app_store_namespaces(a->ro, &ns, &n);
	a->stale = rc != 0;
	if (rc)
		return rc;
	free(a->ns);
	a->ns = ns;
	a->n = n;
	a->version = v;
	a->loaded = 1;
	return 0;
}

const struct app_namespace *app_auth_ns_by_name(const struct app_auth *a, const char *name)
{
	for (size_t i = 0; i < a->n; i++)
		if (!strcmp(a->ns[i].name, name))
			return &a->ns[i];
	return NULL;
}

const struct app_namespace *app_auth_ns_by_id(const struct app_auth *a, uint64_t chain_id)
{
	size_t lo = 0, hi = a->n;

	while (lo < hi) { /* ns is sorted by chain_id */
		size_t mid = (lo + hi) / 2;

		if (a->ns[mid].chain_id == chain_id)
			return &a->ns[mid];
		if (a->ns[mid].chain_id < chain_id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

int app_auth_bearer(struct app_auth *a, const char *header, int64_t *tenant)
{
	uint8_t h[32];
	size_t len;

	*tenant = 0;
	if (!header || !*header)
		return APP_ENOTFOUND; /* anonymous */
	if (strncasecmp(header, "Bearer ", 7) != 0)
		return APP_EINVAL;
	header += 7;
	len = strlen(header);
	/* Keys are "mz_" + 43 base64url characters; reject anything else early. */
	if (len < 8 || len > 128)
		return APP_EINVAL;
	for (size_t i = 0; i < len; i++)
		if (header[i] <= ' ' || header[i] > '~')
			return APP_EINVAL;
	app_apikey_hash(h, a->id, header, len);
	return app_store_key_lookup(a->ro, h, tenant) == 0 ? 0 : APP_EINVAL;
}

void app_auth_free(struct app_auth *a)
{
	if (!a)
		return;
	free(a->ns);
	a->ns = NULL;
	a->n = 0;
}
