/*
 * fuzz_config.c - libFuzzer target for the table-driven config: the input is
 * loaded as an INI file by app_config_load (through a memfd, so no file is
 * left behind), and its first line is applied as a --set assignment by
 * app_config_set. After each call every field must still be within its
 * table bounds and every string and the error buffer NUL-terminated.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "appliance/app.h"

/* Both error buffers are smaller than the worst case, to exercise truncation. */
#define ERR_LOAD 256
#define ERR_SET	 96

static void check_str(const char *s, size_t cap)
{
	if (!memchr(s, 0, cap))
		__builtin_trap();
}

/* Every field within its table bounds; every string terminated. */
static void check_config(const struct app_config *c)
{
	for (size_t i = 0; i < app_cfg_table_len; i++) {
		const struct app_cfg_entry *e = &app_cfg_table[i];
		const char *f = (const char *)c + e->offset;

		switch (e->type) {
		case APP_CFG_INT: {
			long v = *(const long *)(const void *)f;

			if (v < e->min || v > e->max)
				__builtin_trap();
			break;
		}
		case APP_CFG_STR: {
			size_t l;

			/* The field holds max + 1 bytes at least; the text is within bounds. */
			check_str(f, (size_t)e->max + 1);
			l = strlen(f);
			if (l < (size_t)e->min || l > (size_t)e->max)
				__builtin_trap();
			break;
		}
		case APP_CFG_DIRS: {
			char **dirs;
			size_t nd;

			check_str(f, (size_t)e->max + 1);
			if (app_config_da_dirs(c, &dirs, &nd) == 0) {
				if (nd < 1 || nd > APP_DA_MAX_DIRS)
					__builtin_trap();
				app_config_dirs_free(dirs, nd);
				free(dirs);
			}
			break;
		}
		case APP_CFG_LISTEN:
			check_str(c->listen_addr, sizeof(c->listen_addr));
			if (c->listen_addr[0] == 0)
				__builtin_trap();
			if (c->listen_port < 1 || c->listen_port > 65535)
				__builtin_trap();
			break;
		}
	}
	check_str(c->data_dir, sizeof(c->data_dir));
	check_str(c->log_level, sizeof(c->log_level));
	{
		enum app_log_level l;

		if (app_log_level_parse(c->log_level, &l))
			__builtin_trap();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct app_config c;
	char path[64], err[ERR_LOAD], serr[ERR_SET], line[1024];
	const uint8_t *nl;
	size_t ll;
	int fd, rc;

	/* 1. The whole input as a file. */
	fd = memfd_create("fuzz_config", MFD_CLOEXEC);
	if (fd < 0)
		__builtin_trap();
	for (size_t off = 0; off < size;) {
		ssize_t w = write(fd, data + off, size - off);

		if (w <= 0)
			__builtin_trap();
		off += (size_t)w;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	app_config_defaults(&c);
	check_config(&c);
	memset(err, 0xAA, sizeof(err)); /* the loader must terminate it */
	rc = app_config_load(&c, path, err, sizeof(err));
	close(fd);
	if (rc < 0)
		__builtin_trap(); /* the file is always readable */
	check_str(err, sizeof(err));
	if (rc == 0 && err[0])
		__builtin_trap(); /* no errors counted, yet an error written */
	check_config(&c);

	/* 2. The first line as a section.key=value assignment, over the result. */
	nl = memchr(data, '\n', size);
	ll = nl ? (size_t)(nl - data) : size;
	if (ll >= sizeof(line))
		ll = sizeof(line) - 1;
	memcpy(line, data, ll);
	line[ll] = 0;
	memset(serr, 0xAA, sizeof(serr));
	serr[0] = 0;
	rc = app_config_set(&c, line, serr, sizeof(serr));
	if (rc != 0 && rc != APP_ECONFIG)
		__builtin_trap();
	if (rc && !serr[0])
		__builtin_trap(); /* a refusal always says why */
	check_str(serr, sizeof(serr));
	check_config(&c);
	return 0;
}
