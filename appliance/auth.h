/*
 * auth.h - tenant, namespace and API-key checks for the lws thread (internal
 * to the appliance). Pointers returned by the lookups are valid until the
 * next app_auth_refresh().
 */
#ifndef MEZZ_AUTH_H
#define MEZZ_AUTH_H

#include "appliance/app.h"

struct app_auth {
	struct app_store *ro;
	const struct app_identity *id;
	int64_t version;      /* meta.auth_version the namespaces were loaded at */
	uint64_t seq;	      /* auth.seq when the version was last read */
	uint64_t checked_ns;  /* when it was last read */
	int have_seq, loaded; /* seq is valid; ns and version are */
	int stale;	      /* the last re-read failed: no key answer is trusted */
	struct app_namespace *ns; /* sorted by chain_id */
	size_t n;
};

/* Reload namespaces if the auth version moved (auth.c says when it is read). */
int app_auth_refresh(struct app_auth *a);
const struct app_namespace *app_auth_ns_by_name(const struct app_auth *a, const char *name);
const struct app_namespace *app_auth_ns_by_id(const struct app_auth *a, uint64_t chain_id);
/*
 * Resolve an Authorization header value. 0 with *tenant set for a live key;
 * APP_ENOTFOUND when there is no header (anonymous); APP_EINVAL for a
 * malformed header or an unknown or revoked key.
 */
int app_auth_bearer(struct app_auth *a, const char *header, int64_t *tenant);
void app_auth_free(struct app_auth *a);

/* May this caller submit to / read from ns? tenant 0 is anonymous. */
static inline int app_auth_may_ingress(const struct app_namespace *ns, int64_t tenant)
{
	return ns->ingress_public || (tenant && tenant == ns->tenant_id);
}
static inline int app_auth_may_read(const struct app_namespace *ns, int64_t tenant)
{
	return ns->feed_public || (tenant && tenant == ns->tenant_id);
}

#endif /* MEZZ_AUTH_H */
