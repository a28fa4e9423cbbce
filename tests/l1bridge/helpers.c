/*
 * helpers.c - shared by the l1bridge tests: running foundry's `cast` (the
 * reference implementation we test against) and building RLP by hand.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "l1bridge/l1.h"

#include "tests/l1bridge/helpers.h"

/* Runs `cast <args>` and returns its first output line, without the
 * newline. cast is installed by scripts/install-deps; a missing cast is a
 * failed test, not a skipped one. */
void l1t_cast(char *out, size_t cap, const char *fmt, ...)
{
	const char *cast = getenv("CAST");
	char args[16384], cmd[17000];
	va_list ap;
	FILE *p;
	size_t n;
	int st;

	if (cast == NULL)
		cast = ".deps/bin/cast";
	cr_assert(access(cast, X_OK) == 0,
		  "cast not found at %s (run scripts/install-deps, run the tests "
		  "from the repository root, or set CAST)", cast);
	va_start(ap, fmt);
	n = (size_t)vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	cr_assert(n < sizeof(args));
	n = (size_t)snprintf(cmd, sizeof(cmd),
			     "FOUNDRY_DISABLE_NIGHTLY_WARNING=1 %s %s 2>&1", cast, args);
	cr_assert(n < sizeof(cmd));
	p = popen(cmd, "r");
	cr_assert(p != NULL, "popen(%s) failed", cmd);
	if (fgets(out, (int)cap, p) == NULL)
		out[0] = '\0';
	while (fgetc(p) != EOF)
		; /* drain so cast never dies of SIGPIPE */
	st = pclose(p);
	out[strcspn(out, "\r\n")] = '\0';
	cr_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
		  "`%s` failed: %s", cmd, out);
}

size_t l1t_unhex(uint8_t *out, size_t cap, const char *hex)
{
	size_t n = 0;
	int rc = l1_hex_decode(out, cap, &n, hex, strlen(hex));

	cr_assert_eq(rc, 0, "bad hex from cast: %s", hex);
	return n;
}

size_t l1t_rlp_str(uint8_t *out, const uint8_t *p, size_t n)
{
	if (n == 1 && p[0] < 0x80) {
		out[0] = p[0];
		return 1;
	}
	cr_assert(n < 56, "test encoder handles short strings only");
	out[0] = (uint8_t)(0x80 + n);
	memcpy(out + 1, p, n);
	return 1 + n;
}

size_t l1t_rlp_wrap(uint8_t *out, uint8_t base, const uint8_t *payload, size_t n)
{
	size_t h = 0;

	if (n < 56) {
		out[h++] = (uint8_t)(base + n);
	} else if (n < 256) {
		out[h++] = (uint8_t)(base + 55 + 1);
		out[h++] = (uint8_t)n;
	} else {
		cr_assert(n < 65536);
		out[h++] = (uint8_t)(base + 55 + 2);
		out[h++] = (uint8_t)(n >> 8);
		out[h++] = (uint8_t)n;
	}
	memmove(out + h, payload, n);
	return h + n;
}

size_t l1t_tx_rebuild(uint8_t *out, const uint8_t *raw, size_t len,
		      const struct l1t_rep *reps, size_t nreps)
{
	struct l1_rlp_item outer, f[16];
	uint8_t payload[4096];
	size_t nf, off = 0, pre = raw[0] < 0xc0 ? 1 : 0;

	cr_assert_eq(l1_rlp_decode(&outer, raw + pre, len - pre), 0);
	cr_assert_eq(l1_rlp_list(&outer, f, 16, &nf), 0);
	for (size_t i = 0; i < nf; i++) {
		const uint8_t *enc = f[i].payload + f[i].payload_len - f[i].encoded_len;
		size_t elen = f[i].encoded_len;
		for (size_t j = 0; j < nreps; j++) {
			if (reps[j].idx == i) {
				enc = reps[j].enc;
				elen = reps[j].len;
			}
		}
		cr_assert(off + elen <= sizeof(payload));
		memcpy(payload + off, enc, elen);
		off += elen;
	}
	if (pre)
		out[0] = raw[0];
	return pre + l1t_rlp_wrap(out + pre, 0xc0, payload, off);
}

void l1t_unlink_db(const char *path)
{
	char p[PATH_MAX];

	unlink(path);
	snprintf(p, sizeof(p), "%s-wal", path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", path);
	unlink(p);
}

void l1t_temp_path(char *out, size_t cap, const char *prefix)
{
	int fd;

	snprintf(out, cap, "/tmp/%s-XXXXXX", prefix);
	fd = mkstemp(out);
	cr_assert(fd >= 0, "mkstemp %s", out);
	close(fd);
	unlink(out);
}
