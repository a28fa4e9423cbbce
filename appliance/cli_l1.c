/*
 * cli_l1.c - `mezz l1 retry`: queue a failed batch again.
 *
 * A batch whose estimate or mined transaction reverted (the Inbox's poster
 * changed, gas ran out) halts the outbox at every start, so that nothing is
 * posted past heights that are not on chain (docs/PROTOCOL-ethereum.md).
 * Once the operator has fixed the cause, this queues every failed batch
 * again; the next start signs it under the next nonce. The daemon owns
 * outbox.db while it runs, so the command takes the data directory's lock
 * and refuses while a daemon holds it.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "appliance/app.h"
#include "appliance/cli.h"
#include "l1bridge/l1.h"

static void print_one(void *arg, uint64_t index, uint64_t from, uint64_t to, const char *error)
{
	(void)arg;
	printf("batch %llu (heights %llu..%llu), failed: %s: queued again\n",
	       (unsigned long long)index, (unsigned long long)from, (unsigned long long)to,
	       error[0] ? error : "(no reason recorded)");
}

int app_cli_l1(const struct app_config *cfg, int argc, char **argv)
{
	char path[1200];
	size_t n = 0;
	long pid = 0;
	int fd = -1, rc;

	if (argc != 1 || strcmp(argv[0], "retry")) {
		fprintf(stderr, "usage: mezz l1 retry   (with the daemon stopped)\n");
		return 2;
	}
	if (snprintf(path, sizeof(path), "%s/outbox.db", cfg->data_dir) >= (int)sizeof(path))
		return app_cli_fail("data directory path too long");
	if (access(path, F_OK) != 0)
		return app_cli_fail("no outbox.db in %s (L1 posting never ran there)", cfg->data_dir);
	rc = app_data_dir_lock(cfg->data_dir, &fd, &pid);
	if (rc == APP_ELOCKED)
		return app_cli_fail("a daemon (pid %ld) is running on %s: stop it first; it owns "
				    "outbox.db",
				    pid, cfg->data_dir);
	if (rc)
		return app_cli_fail("locking %s: %s", cfg->data_dir, app_strerror(rc));
	rc = l1_outbox_retry_failed(path, print_one, NULL, &n);
	close(fd);
	if (rc)
		return app_cli_fail("%s: %s (nothing changed)", path, app_strerror(rc));
	if (n == 0)
		printf("no failed batch in %s\n", path);
	else
		printf("%zu batch%s queued again; the next start signs %s under the next nonce\n",
		       n, n == 1 ? "" : "es", n == 1 ? "it" : "them");
	return 0;
}
