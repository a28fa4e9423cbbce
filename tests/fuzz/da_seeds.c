/*
 * da_seeds.c - writes the checked-in seed corpora of the da fuzz targets
 * from the fixture block (da_fixture.h). Deterministic: rerunning it
 * rewrites the same files.
 *   make build/tools/da_seeds && build/tools/da_seeds tests/fuzz/seeds
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tests/fuzz/da_fixture.h"

static void put(const char *root, const char *target, const char *name, const uint8_t *p,
		size_t n)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", root, target);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/%s/%s", root, target, name);
	f = fopen(path, "wb");
	if (f == NULL || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
		perror(path);
		exit(1);
	}
}

int main(int argc, char **argv)
{
	struct fx_block *b = fx_get();
	struct seq_merkle_tree t;
	uint8_t rec[DA_RECORD_LEN], *buf;
	char name[64];
	size_t len;
	unsigned n = FX_K + FX_M;
	static const uint64_t nss[] = {0, 2, 3, 5, 9, 100};

	if (argc != 2) {
		fprintf(stderr, "usage: da_seeds SEED_DIR\n");
		return 2;
	}
	if (da_shard_tree(&t, b->blk.shard, n, b->S) != 0)
		return 1;
	for (unsigned i = 0; i < n; i++) {
		struct da_shard_file f = {0};
		struct da_shard_proof p;
		size_t pl;

		f.height = b->rec.height;
		f.index = (uint16_t)i;
		f.k = FX_K;
		f.m = FX_M;
		f.S = b->rec.S;
		f.payload_len = b->rec.payload_len;
		memcpy(f.shard_root, b->rec.shard_root, 32);
		seq_merkle_tree_path(&t, i, f.path, &pl);
		f.path_len = (uint8_t)pl;
		f.shard = b->blk.shard[i];
		len = da_shard_file_len(i, n, b->S);
		buf = malloc(len);
		da_shard_file_encode(buf, &f);
		snprintf(name, sizeof(name), "file-%u", i);
		put(argv[1], "fuzz_da_shard", name, buf, len);
		free(buf);
		if (da_shard_proof_build(&p, &b->rec, &t, i, b->blk.shard[i]) != 0)
			return 1;
		len = da_shard_proof_len(&p);
		buf = malloc(len);
		da_shard_proof_encode(&p, buf, len);
		snprintf(name, sizeof(name), "proof-%u", i);
		put(argv[1], "fuzz_da_shard", name, buf, len);
		free(buf);
	}
	seq_merkle_tree_free(&t);
	for (size_t i = 0; i < sizeof(nss) / sizeof(nss[0]); i++) {
		struct da_ns_proof p;

		if (da_ns_proof_build(&p, &b->pl, nss[i]) != 0 || da_ns_proof_encode(&p, &buf, &len) != 0)
			return 1;
		snprintf(name, sizeof(name), "ns-%llu", (unsigned long long)nss[i]);
		put(argv[1], "fuzz_da_nsproof", name, buf, len);
		free(buf);
		da_ns_proof_free(&p);
	}
	/* Payload seed: pad byte, then the payload and 5 bytes of padding. */
	buf = calloc(1, b->payload_len + 6);
	buf[0] = 5;
	memcpy(buf + 1, b->buf, b->payload_len);
	put(argv[1], "fuzz_da_payload", "block", buf, b->payload_len + 6);
	free(buf);
	da_record_encode(rec, &b->rec);
	put(argv[1], "fuzz_da_payload", "record", rec, sizeof(rec));
	/* Pack inputs (fuzz_da_pack.c): mode byte, then edits or the raw file. */
	{
		static const struct {
			const char *name;
			uint8_t in[12];
			size_t n;
		} packs[] = {
			{"dense-pristine", {0x00}, 1},
			{"aligned-pristine", {0x01}, 1},
			{"aligned-header-flip", {0x01, 0, 0, 0, 0, 0x01}, 6},
			{"aligned-version-flip", {0x03, 0, 0, 0, 7, 0x03}, 6},
			{"aligned-cut", {0x09, 0, 0, 0, 0, 0x00, 0x00, 0x01, 0x20, 0x00}, 10},
			{"dense-flip", {0x02, 0, 0, 0, 100, 0xff}, 6},
			{"raw-empty", {0x04}, 1},
			{"raw-dense-magic", {0x04, 'M', 'Z', 'S', 'H'}, 5},
			{"raw-aligned-header", {0x05, 'M', 'Z', 'P', 'K', 0, 0, 0, 2}, 9},
		};

		for (size_t i = 0; i < sizeof(packs) / sizeof(packs[0]); i++)
			put(argv[1], "fuzz_da_pack", packs[i].name, packs[i].in, packs[i].n);
	}
	return 0;
}
