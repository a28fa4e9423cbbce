/* dautil.c - small pieces of data availability shared by the daemon and the CLI. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/app.h"
#include "da/da.h"
#include "l1bridge/l1.h"

void app_tx_hash(uint8_t out[32], const uint8_t *data, size_t len, void *arg)
{
	(void)arg;
	l1_keccak256(out, data, len);
}

struct da_code *app_da_code_cached(struct da_code **codes, size_t n, unsigned k, unsigned m)
{
	size_t i;

	for (i = 0; i < n && codes[i]; i++)
		if (da_code_k(codes[i]) == k && da_code_m(codes[i]) == m)
			return codes[i];
	if (i == n) { /* full: evict the oldest */
		da_code_free(codes[0]);
		memmove(codes, codes + 1, (n - 1) * sizeof(codes[0]));
		i = n - 1;
	}
	if (da_code_new(k, m, &codes[i]))
		codes[i] = NULL;
	return codes[i];
}

int app_da_store_open(const struct app_config *cfg, struct da_store **out, char *errbuf,
		      size_t errlen)
{
	char **dirs = NULL, why[600] = "";
	size_t nd = 0;
	int rc = app_config_da_dirs(cfg, &dirs, &nd);

	if (!rc)
		rc = da_store_open_why((const char *const *)dirs, nd, out, why, sizeof(why));
	app_config_dirs_free(dirs, nd);
	free(dirs);
	if (rc)
		snprintf(errbuf, errlen, "opening the shard directories: %s",
			 why[0] ? why : app_strerror(rc));
	return rc;
}
