/*
 * fuzz_da_pack.c - libFuzzer target for the shard store's read path over
 * damaged pack files: the layout a pack's first bytes select (dense, or
 * aligned with its "MZPK" header), the record offsets that follow from it,
 * and every record's checks.
 *
 * Two blocks are put once into a store of D = 2 directories: the fixture
 * block (tiny shards: dense packs) and a block of 75 KiB shards (aligned
 * packs). Each input replaces one of their four packs:
 *
 *   byte 0: bit 0 the block, bit 1 the directory, bit 2 raw mode
 *   raw mode: the rest of the input is the whole file
 *   edit mode: the pristine pack with (offset u32 BE, xor u8) edits applied,
 *              offsets taken modulo its length; with bit 3 it is then cut to
 *              the length in the last 4 bytes (modulo its length + 1)
 *
 * Oracle: a shard the store returns is the block's shard, a block it
 * returns is the block's payload, and a failure is one the API names
 * (unavailable, mismatch, absent); a pack left as it was reads whole. The
 * pack is put back after each input, so every input starts from the
 * pristine store, which is removed at exit.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "da/da.h"
#include "tests/fuzz/da_fixture.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define BIG_TXS 3
#define BIG_TX_LEN 50000

struct blk {
	struct da_code *code;
	struct da_block b;
	struct da_record r;
	uint8_t *payload; /* k * S bytes, as stored */
	char path[2][600];
	uint8_t *pack[2];
	size_t pack_len[2];
};

static struct da_store *store;
static struct blk blocks[2];
static char root[] = "/dev/shm/fuzz_da_pack.XXXXXX";

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static void cleanup(void)
{
	nftw(root, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

static void die(const char *what)
{
	fprintf(stderr, "fuzz_da_pack setup: %s\n", what);
	abort();
}

static uint8_t *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *p;
	long n;

	if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) != 0)
		die(path);
	p = malloc((size_t)n + 1);
	if (p == NULL || fread(p, 1, (size_t)n, f) != (size_t)n)
		die(path);
	fclose(f);
	*len = (size_t)n;
	return p;
}

static void spill(const char *path, const uint8_t *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || (n > 0 && write(fd, p, n) != (ssize_t)n) || close(fd) != 0)
		die(path);
}

/* The block of 75 KiB shards: three 50,000-byte transactions, k = 2, m = 1. */
static void big_block(struct blk *x)
{
	static uint8_t data[BIG_TXS][BIG_TX_LEN];
	struct seq_tx stx[BIG_TXS];
	struct da_tx txs[BIG_TXS];
	struct seq_block_hdr hdr;
	struct seq_block_ns *ns = NULL;
	uint8_t parent[32] = {0}, sig[64] = {0}, bh[32], *buf;
	size_t plen, S;

	for (int i = 0; i < BIG_TXS; i++) {
		for (size_t j = 0; j < BIG_TX_LEN; j++)
			data[i][j] = (uint8_t)(j * 31 + (size_t)i * 7 + (j >> 9));
		stx[i].seq = 10 + (uint64_t)i;
		stx[i].ns = 4;
		SHA256(data[i], BIG_TX_LEN, stx[i].hash);
		txs[i] = (struct da_tx){10 + (uint64_t)i, 4, data[i], BIG_TX_LEN};
	}
	if (seq_block_build(&hdr, &ns, stx, BIG_TXS, 10, 4, 40, 1000, parent) != 0 ||
	    da_code_new(2, 1, &x->code) != 0 ||
	    da_payload_build(&hdr, sig, ns, txs, 2, &buf, &plen, &S) != 0)
		die("big block");
	if (S < DA_PACK_ALIGNED_FROM)
		die("big block's shards too small for an aligned pack");
	seq_block_hash(bh, &hdr);
	x->payload = malloc(S * 2);
	if (x->payload == NULL)
		die("memory");
	memcpy(x->payload, buf, S * 2);
	if (da_block_encode(&x->b, &x->r, x->code, buf, plen, S, 4, bh) != 0)
		die("encode");
	free(ns);
}

static void setup(void)
{
	char dirs[2][512];
	const char *dp[2];
	struct fx_block *fx = fx_get();

	if (mkdtemp(root) == NULL) {
		strcpy(root, "/tmp/fuzz_da_pack.XXXXXX");
		if (mkdtemp(root) == NULL)
			die("mkdtemp");
	}
	atexit(cleanup);
	for (int d = 0; d < 2; d++) {
		snprintf(dirs[d], sizeof(dirs[d]), "%s/d%d", root, d);
		dp[d] = dirs[d];
	}
	if (da_store_open(dp, 2, &store) != 0)
		die("store");
	blocks[0].code = fx->code;
	blocks[0].b = fx->blk;
	blocks[0].r = fx->rec;
	blocks[0].payload = fx->blk.payload;
	big_block(&blocks[1]);
	for (int i = 0; i < 2; i++) {
		struct blk *x = &blocks[i];

		if (da_store_put_block(store, &x->r, &x->b) != 0)
			die("put");
		for (int d = 0; d < 2; d++) {
			snprintf(x->path[d], sizeof(x->path[d]), "%s/%llu/%llu", dirs[d],
				 (unsigned long long)(x->r.height / 4096),
				 (unsigned long long)x->r.height);
			x->pack[d] = slurp(x->path[d], &x->pack_len[d]);
		}
	}
	if (memcmp(blocks[0].pack[0], "MZSH", 4) != 0 || memcmp(blocks[1].pack[0], "MZPK", 4) != 0)
		die("the two layouts were not written");
}

/*
 * Every shard and the block as the store reads them back: the block's own,
 * or a named error; with the pack intact, all of them.
 */
static void check(const struct blk *x, int intact)
{
	unsigned n = (unsigned)x->r.k + x->r.m;
	struct da_report rep;
	uint8_t *p = NULL;
	int rc;

	if (da_store_scrub_block(store, &x->r, &rep) != 0 || rep.ok + rep.missing + rep.corrupt != n ||
	    (intact && rep.ok != n))
		abort();
	for (unsigned i = 0; i < n; i++) {
		struct da_shard_file f;
		uint8_t *buf = NULL;

		rc = da_store_read_shard(store, &x->r, i, &buf, &f);
		if (rc == 0) {
			if (rep.status[i] != DA_SHARD_OK || f.index != i || f.S != x->r.S ||
			    memcmp(f.shard, x->b.shard[i], x->r.S) != 0)
				abort();
			free(buf);
		} else if (rc != DA_EMISMATCH && rc != -ENOENT) {
			abort();
		} else if (rep.status[i] == DA_SHARD_OK) {
			abort();
		}
		rc = da_store_has_shard(store, &x->r, i);
		if (rc < 0 || (rep.status[i] == DA_SHARD_OK && rc != 1))
			abort();
	}
	rc = da_store_read_block(store, x->code, &x->r, 0, &p, &rep);
	if (intact && rc != 0)
		abort();
	if (rc == 0) {
		if (memcmp(p, x->payload, x->r.S * x->r.k) != 0)
			abort();
		free(p);
	} else if (rc != DA_EUNAVAILABLE && rc != DA_EMISMATCH) {
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct blk *x;
	uint8_t *pack;
	size_t len;
	int d, intact;

	if (store == NULL)
		setup();
	if (size < 1)
		return 0;
	x = &blocks[data[0] & 1];
	d = (data[0] >> 1) & 1;
	if (data[0] & 4) {
		intact = size - 1 == x->pack_len[d] && memcmp(data + 1, x->pack[d], size - 1) == 0;
		spill(x->path[d], data + 1, size - 1);
	} else {
		len = x->pack_len[d];
		pack = malloc(len + 1);
		if (pack == NULL)
			abort();
		memcpy(pack, x->pack[d], len);
		for (size_t at = 1; at + 5 <= size; at += 5) {
			uint32_t off = (uint32_t)data[at] << 24 | (uint32_t)data[at + 1] << 16 |
				       (uint32_t)data[at + 2] << 8 | data[at + 3];

			pack[off % len] ^= data[at + 4];
		}
		if ((data[0] & 8) && size >= 5) {
			uint32_t cut = (uint32_t)data[size - 4] << 24 | (uint32_t)data[size - 3] << 16 |
				       (uint32_t)data[size - 2] << 8 | data[size - 1];

			len = cut % (len + 1);
		}
		intact = len == x->pack_len[d] && memcmp(pack, x->pack[d], len) == 0;
		spill(x->path[d], pack, len);
		free(pack);
	}
	check(x, intact);
	spill(x->path[d], x->pack[d], x->pack_len[d]);
	return 0;
}
