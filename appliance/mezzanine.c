/*
 * mezzanine.c - the daemon: load config, open storage, load (or create) the
 * identity, start the committer thread, serve until SIGTERM/SIGINT, then
 * shut down in order: stop taking submissions, let the committer finish
 * the group it holds and deliver those answers, close everything.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "appliance/ops.h"
#include "appliance/server.h"

static struct app_server *g_server;

static void on_signal(int sig)
{
	(void)sig;
	if (g_server)
		app_server_request_stop(g_server);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: mezzanine [-c CONFIG] [--set section.key=value]... [--data-dir DIR]\n"
		   "  -c, --config FILE   config file (default: none; embedded defaults)\n"
		   "      --set K=V       override one key, e.g. --set server.listen=0.0.0.0:9545\n"
		   "      --data-dir DIR  same as --set storage.data_dir=DIR\n"
		   "  -V, --version       print the version\n");
}

/* The embedded defaults, then the file, then each --set, then the rules
 * across keys: 0, or -1 after printing every error. */
static int configure(struct app_config *cfg, const char *config_path, char **sets, int nsets)
{
	char err[4096];
	int rc;

	app_config_defaults(cfg);
	if (config_path) {
		rc = app_config_load(cfg, config_path, err, sizeof(err));
		if (rc < 0) {
			fprintf(stderr, "mezzanine: cannot read %s: %s\n", config_path, strerror(-rc));
			return -1;
		}
		if (rc > 0) {
			fprintf(stderr, "%s", err);
			fprintf(stderr, "mezzanine: %d error(s) in %s\n", rc, config_path);
			return -1;
		}
	}
	for (int i = 0; i < nsets; i++)
		if (app_config_set(cfg, sets[i], err, sizeof(err))) {
			fprintf(stderr, "mezzanine: --set %s\n", err);
			return -1;
		}
	if (app_config_validate(cfg, err, sizeof(err))) {
		fprintf(stderr, "mezzanine: %s\n", err);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'}, {"set", required_argument, NULL, 's'},
		{"data-dir", required_argument, NULL, 'd'}, {"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'}, {NULL, 0, NULL, 0}};
	struct app_config cfg;
	struct app_identity id;
	struct app_store *store = NULL;
	struct app_txindex *txi = NULL;
	struct app_queue ingress, done;
	struct app_committer com;
	struct app_server srv;
	char err[4096], *sets[64];
	const char *config_path = NULL;
	enum app_log_level lvl;
	int nsets = 0, opt, rc, status = 1, loop_died = 0, lock_fd = -1;
	long lock_pid = 0;

	while ((opt = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			config_path = optarg;
			break;
		case 's':
		case 'd':
			if (nsets == 64) {
				fprintf(stderr, "mezzanine: too many --set options\n");
				return 2;
			}
			if (opt == 'd') {
				size_t l = strlen(optarg) + 32;

				sets[nsets] = malloc(l);
				if (!sets[nsets])
					return 1;
				snprintf(sets[nsets], l, "storage.data_dir=%s", optarg);
			} else {
				sets[nsets] = strdup(optarg);
			}
			nsets++;
			break;
		case 'V':
			printf("mezzanine %s\n", MEZZ_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	rc = configure(&cfg, config_path, sets, nsets);
	for (int i = 0; i < nsets; i++)
		free(sets[i]);
	if (rc)
		return EX_CONFIG;
	app_log_level_parse(cfg.log_level, &lvl);
	app_log_set_level(lvl);
	if (sodium_init() < 0) {
		app_error("startup_failed", "reason=\"libsodium init failed\"");
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	/* Everything the daemon creates (database, WAL, keys) is private to it. */
	umask(077);

	/* One daemon per data directory: a second would sequence from the same
	 * database under the same key (receipts for the same seqs). */
	if (mkdir(cfg.data_dir, 0700) != 0 && errno != EEXIST) {
		app_error("startup_failed", "reason=\"data directory\" dir=%s err=\"%s\"",
			  cfg.data_dir, strerror(errno));
		return 1;
	}
	rc = app_data_dir_lock(cfg.data_dir, &lock_fd, &lock_pid);
	if (rc) {
		app_error("startup_failed", "reason=\"data directory lock\" dir=%s err=\"%s\" pid=%ld",
			  cfg.data_dir, app_strerror(rc), lock_pid);
		return 1;
	}
	rc = app_identity_load(&id, cfg.data_dir, 1);
	if (rc) {
		app_error("startup_failed", "reason=\"identity key\" dir=%s err=\"%s\"", cfg.data_dir,
			  app_strerror(rc));
		return 1;
	}
#ifdef MEZZ_FAULT_HOOKS
	if (app_fault_install()) {
		app_error("startup_failed", "reason=\"fault hooks\"");
		return 1;
	}
#endif
	rc = app_store_open(&store, cfg.data_dir, 0, err, sizeof(err));
	if (!rc)
		rc = app_store_set_cache(store, cfg.cache_mib);
	if (rc) {
		app_error("startup_failed", "reason=\"database\" dir=%s err=\"%s\"", cfg.data_dir, err);
		return 1;
	}
	{
		/* A restore not yet accepted (cli_backup.c): the node the backup
		 * came from may have receipted transactions from this seq on, and
		 * this one would sign others at the same seqs. */
		uint64_t next;

		if (app_store_meta_u64(store, "restored_next_seq", &next) == 0) {
			app_error("startup_refused",
				  "reason=\"restored from a backup that ends before seq %llu\" "
				  "fix=\"once the node it was taken from is stopped for good: "
				  "mezz --data-dir %s restore --accept-loss\"",
				  (unsigned long long)next, cfg.data_dir);
			app_store_close(store);
			return EX_CONFIG; /* systemd does not restart it (the unit) */
		}
	}
	{
		/* A slot is wall time / slot_ms: blocks, receipts and every right
		 * sold name slots by number. Under another slot_ms the numbers
		 * mean other times: sealing would wait for a slot decades away
		 * (a longer slot) or date blocks decades back (a shorter one). */
		uint64_t ms;
		char why[256] = "";

		rc = app_store_meta_u64(store, "slot_ms", &ms);
		if (rc == 0 && ms != (uint64_t)cfg.slot_ms) {
			app_error("startup_refused",
				  "reason=\"sequencer.slot_ms is %lld, this database's slots are "
				  "%llu ms\" fix=\"set sequencer.slot_ms = %llu, or start a new "
				  "data directory\"",
				  (long long)cfg.slot_ms, (unsigned long long)ms,
				  (unsigned long long)ms);
			app_store_close(store);
			return EX_CONFIG;
		}
		if (rc == APP_ENOTFOUND)
			rc = app_store_meta_set_u64(store, "slot_ms", (uint64_t)cfg.slot_ms, why,
						    sizeof(why));
		if (rc) {
			app_error("startup_failed", "reason=\"database\" dir=%s err=\"%s\"",
				  cfg.data_dir, why[0] ? why : app_strerror(rc));
			app_store_close(store);
			return 1;
		}
	}
	rc = app_txindex_open(&txi, cfg.data_dir, err, sizeof(err));
	if (rc) {
		app_error("startup_failed", "reason=\"transaction index\" dir=%s err=\"%s\"",
			  cfg.data_dir, err);
		app_store_close(store);
		return 1;
	}
#ifdef MEZZ_FAULT_HOOKS
	if (app_fault_store_opened(store)) {
		app_error("startup_failed", "reason=\"fault hooks\"");
		return 1;
	}
#endif
	if (app_queue_init(&ingress, sizeof(struct app_sub), (size_t)cfg.ingress_queue_max) ||
	    app_queue_init(&done, sizeof(struct app_done),
			   (size_t)cfg.ingress_queue_max + 4096)) {
		app_error("startup_failed", "reason=\"out of memory\"");
		return 1;
	}
	memset(&com, 0, sizeof(com));
	com.cfg = &cfg;
	com.id = &id;
	com.store = store;
	com.txi = txi;
	com.ingress = &ingress;
	com.done = &done;
	com.l1.enabled = cfg.l1_rpc_urls[0] != 0; /* before retention can run */
	memset(&srv, 0, sizeof(srv));
	srv.cfg = &cfg;
	srv.id = &id;
	srv.ingress = &ingress;
	srv.done = &done;
	srv.committer = &com;

	rc = app_server_init(&srv, err, sizeof(err));
	if (rc) {
		app_error("startup_failed", "reason=\"server\" err=\"%s\"", err);
		goto out;
	}
	com.lws = srv.ctx;
	rc = app_committer_start(&com, err, sizeof(err));
	if (rc) {
		app_error("startup_failed", "reason=\"committer\" err=\"%s\"", err);
		goto out;
	}
	rc = app_rights_start(&com, err, sizeof(err));
	if (rc) {
		app_error("startup_failed", "reason=\"rights\" err=\"%s\"", err);
		goto out;
	}
	rc = app_l1_start(&com, err, sizeof(err));
	if (rc) {
		app_error("startup_failed", "reason=\"l1\" err=\"%s\"", err);
		goto out;
	}
	/* Last: a thread inherits its creator's CPUs (thread.c), and every
	 * other thread has started by now. */
	rc = app_thread_pin(com.thread, "mz-commit", cfg.commit_cpu, err, sizeof(err));
	if (!rc)
		rc = app_thread_pin(pthread_self(), "network", cfg.network_cpu, err, sizeof(err));
	if (rc) {
		app_error("startup_failed", "reason=\"cpu\" err=\"%s\"", err);
		goto out;
	}
	g_server = &srv;
	{
		struct sigaction sa = {0};

		sa.sa_handler = on_signal;
		sigemptyset(&sa.sa_mask);
		sigaction(SIGTERM, &sa, NULL);
		sigaction(SIGINT, &sa, NULL);
	}
	{
		char pk[67];
		static const char hx[] = "0123456789abcdef";

		pk[0] = '0', pk[1] = 'x';
		for (int i = 0; i < 32; i++)
			pk[2 + 2 * i] = hx[id.pk[i] >> 4], pk[3 + 2 * i] = hx[id.pk[i] & 15];
		pk[66] = 0;
		app_info("started", "version=%s listen=%s:%d data_dir=%s public_key=%s next_seq=%llu",
			 MEZZ_VERSION, cfg.listen_addr, cfg.listen_port, cfg.data_dir, pk,
			 (unsigned long long)com.next_seq);
	}

	/* The database is open, recovery is done and the port is bound: only
	 * now may systemd start what depends on us. */
	app_notify_watchdog_start(srv.ctx);
	app_notify_ready("serving");

	loop_died = app_server_run(&srv) != 0;

	/* Orderly stop: refuse new work, let the committer drain, deliver answers. */
	app_notify_stopping();
	if (loop_died)
		app_error("stopping", "%s", "reason=\"the event loop ended: nothing is listening\"");
	else
		app_info("stopping", "%s", "reason=signal");
	srv.accepting = 0;
	app_queue_close(&ingress);
	while (!atomic_load(&com.stats.exited))
		app_server_service(&srv, 1);
	/* Give the last answers ~100 ms to reach their sockets (non-blocking
	 * service: returns at once instead of waiting for the next event). */
	for (int i = 0; i < 20; i++) {
		app_server_service(&srv, 0);
		usleep(5000);
	}
	app_l1_stop(&com);
	app_rights_stop(&com);
	app_committer_stop(&com);
	status = atomic_load(&com.stats.halted) || loop_died ? 1 : 0;
out:
	app_notify_watchdog_stop();
	g_server = NULL;
	app_l1_stop(&com);
	app_rights_stop(&com);
	app_committer_stop(&com);
	app_server_destroy(&srv);
	app_store_close(store);
	app_txindex_close(txi);
	app_queue_destroy(&ingress);
	app_queue_destroy(&done);
	sodium_memzero(&id, sizeof(id));
	app_info("stopped", "status=%d", status);
	if (lock_fd >= 0)
		close(lock_fd); /* last: the database is closed */
	return status;
}
