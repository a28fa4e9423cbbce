/*
 * identity.c - the appliance's ed25519 identity and the API-key hashing
 * secret. Both are created on first start with mode 0600 (O_EXCL, so two
 * processes starting at once cannot both create one), fsynced together
 * with their directory, and never rewritten.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "appliance/app.h"

static int read_exact(const char *path, uint8_t *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;
	uint8_t extra;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, len);
	/* A longer file is as malformed as a shorter one. */
	if (n != (ssize_t)len || read(fd, &extra, 1) != 0) {
		close(fd);
		return APP_EKEYFILE;
	}
	close(fd);
	return 0;
}

static int write_new(const char *dir, const char *path, const uint8_t *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	int rc = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, buf, len) != (ssize_t)len || fsync(fd) != 0)
		rc = errno ? -errno : -EIO;
	close(fd);
	if (rc) {
		unlink(path);
		return rc;
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		if (fsync(fd) != 0)
			rc = -errno;
		close(fd);
	}
	return rc;
}

static int load_or_create(const char *dir, const char *name, uint8_t *buf, size_t len,
			  int create, void (*gen)(uint8_t *buf, void *ctx), void *ctx)
{
	char path[PATH_MAX];
	int rc;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	rc = read_exact(path, buf, len);
	if (rc != -ENOENT || !create)
		return rc;
	gen(buf, ctx);
	rc = write_new(dir, path, buf, len);
	if (rc == -EEXIST) /* lost a race with another process: read theirs */
		rc = read_exact(path, buf, len);
	return rc;
}

static void gen_sk(uint8_t *sk, void *ctx)
{
	uint8_t pk[32];

	(void)ctx;
	crypto_sign_keypair(pk, sk);
}

static void gen_secret(uint8_t *buf, void *ctx)
{
	(void)ctx;
	randombytes_buf(buf, 32);
}

int app_identity_load(struct app_identity *id, const char *data_dir, int create)
{
	int rc;

	if (create && mkdir(data_dir, 0700) != 0 && errno != EEXIST)
		return -errno;
	rc = load_or_create(data_dir, "identity.key", id->sk, 64, create, gen_sk, NULL);
	if (rc)
		return rc;
	/* The secret key embeds its public key; a mismatch means a damaged file. */
	crypto_sign_ed25519_sk_to_pk(id->pk, id->sk);
	{
		uint8_t seed[32], pk[32], sk[64];

		crypto_sign_ed25519_sk_to_seed(seed, id->sk);
		crypto_sign_seed_keypair(pk, sk, seed);
		sodium_memzero(sk, sizeof(sk));
		sodium_memzero(seed, sizeof(seed));
		if (memcmp(pk, id->pk, 32) != 0)
			return APP_EKEYFILE;
	}
	return load_or_create(data_dir, "apikey.secret", id->key_secret, 32, create,
			      gen_secret, NULL);
}

void app_apikey_hash(uint8_t out[static 32], const struct app_identity *id,
		     const char *key, size_t len)
{
	crypto_generichash(out, 32, (const uint8_t *)key, len, id->key_secret, 32);
}

int app_data_dir_lock(const char *data_dir, int *fd, long *pid)
{
	char path[PATH_MAX], buf[32];
	int f, rc;
	ssize_t n;

	*fd = -1;
	*pid = 0;
	if (snprintf(path, sizeof(path), "%s/mezzanine.lock", data_dir) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	f = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (f < 0)
		return -errno;
	while ((rc = flock(f, LOCK_EX | LOCK_NB)) != 0 && errno == EINTR)
		;
	if (rc != 0) {
		rc = errno == EWOULDBLOCK ? APP_ELOCKED : -errno;
		n = pread(f, buf, sizeof(buf) - 1, 0);
		if (n > 0) {
			buf[n] = 0;
			*pid = strtol(buf, NULL, 10);
		}
		close(f);
		return rc;
	}
	/* The holder's pid, for the message of whoever finds it taken. */
	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (ftruncate(f, 0) != 0 || pwrite(f, buf, (size_t)n, 0) != n) {
		rc = -errno;
		close(f);
		return rc;
	}
	*fd = f;
	return 0;
}
