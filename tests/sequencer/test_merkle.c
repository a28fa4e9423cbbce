/*
 * Merkle trees against an independent RFC 6962 implementation written here
 * with raw SHA-256 (no seq_ hashing helpers), so a shared bug cannot hide.
 */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "sequencer/seq.h"

static void ref_node(uint8_t out[32], const uint8_t l[32], const uint8_t r[32])
{
	uint8_t buf[65];

	buf[0] = 0x01;
	memcpy(buf + 1, l, 32);
	memcpy(buf + 33, r, 32);
	SHA256(buf, sizeof(buf), out);
}

static size_t split_point(size_t n)
{
	size_t k = 1;

	while (k << 1 < n)
		k <<= 1;
	return k;
}

/* RFC 6962 section 2.1 MTH, recursive. */
static void ref_root(uint8_t out[32], uint8_t (*d)[32], size_t n)
{
	uint8_t l[32], r[32];
	size_t k;

	if (n == 0) {
		SHA256((const unsigned char *)"", 0, out);
		return;
	}
	if (n == 1) {
		memcpy(out, d[0], 32);
		return;
	}
	k = split_point(n);
	ref_root(l, d, k);
	ref_root(r, d + k, n - k);
	ref_node(out, l, r);
}

/* RFC 6962 section 2.1.1 PATH, recursive; appends bottom-up. */
static void ref_path(uint8_t (*d)[32], size_t n, size_t m, uint8_t (*p)[32], size_t *len)
{
	size_t k;

	if (n <= 1)
		return;
	k = split_point(n);
	if (m < k) {
		ref_path(d, k, m, p, len);
		ref_root(p[(*len)++], d + k, n - k);
	} else {
		ref_path(d + k, n - k, m - k, p, len);
		ref_root(p[(*len)++], d, k);
	}
}

/* Length of PATH(m, D[n]) without computing it. */
static size_t ref_path_len(size_t n, size_t m)
{
	size_t k;

	if (n <= 1)
		return 0;
	k = split_point(n);
	return 1 + (m < k ? ref_path_len(k, m) : ref_path_len(n - k, m - k));
}

/* RFC 9162 section 2.1.3.2 inclusion proof verification. */
static int ref_verify(const uint8_t leaf[32], uint64_t idx, uint64_t n,
		      uint8_t (*p)[32], size_t len, const uint8_t root[32])
{
	uint64_t fn = idx, sn = n - 1;
	uint8_t r[32];

	if (idx >= n)
		return 0;
	memcpy(r, leaf, 32);
	for (size_t i = 0; i < len; i++) {
		if (sn == 0)
			return 0;
		if ((fn & 1) || fn == sn) {
			ref_node(r, p[i], r);
			if (!(fn & 1))
				while (!(fn & 1) && fn != 0) {
					fn >>= 1;
					sn >>= 1;
				}
		} else {
			ref_node(r, r, p[i]);
		}
		fn >>= 1;
		sn >>= 1;
	}
	return sn == 0 && memcmp(r, root, 32) == 0;
}

static uint8_t (*make_leaves(size_t n))[32]
{
	uint8_t (*d)[32] = malloc((n ? n : 1) * 32);

	cr_assert_not_null(d);
	for (size_t i = 0; i < n; i++) {
		uint8_t h[32] = {0};

		memcpy(h, &i, sizeof(i));
		seq_merkle_tx_leaf(d[i], i, 7, h);
	}
	return d;
}

Test(merkle, leaf_and_node_layouts)
{
	uint8_t h[32], buf[49], want[32], got[32];

	memset(h, 0xab, 32);
	buf[0] = 0x00;
	for (int i = 0; i < 8; i++) {
		buf[1 + i] = (uint8_t)(0x0102030405060708ull >> (56 - 8 * i));
		buf[9 + i] = (uint8_t)(0x1112131415161718ull >> (56 - 8 * i));
	}
	memcpy(buf + 17, h, 32);
	SHA256(buf, sizeof(buf), want);
	seq_merkle_tx_leaf(got, 0x0102030405060708ull, 0x1112131415161718ull, h);
	cr_assert_arr_eq(got, want, 32);

	buf[0] = 0x02;
	SHA256(buf, sizeof(buf), want);
	seq_merkle_ns_leaf(got, 0x0102030405060708ull, 0x1112131415161718ull, h);
	cr_assert_arr_eq(got, want, 32);

	ref_node(want, h, got);
	seq_merkle_node(got, h, got); /* output aliases an input */
	cr_assert_arr_eq(got, want, 32);
}

Test(merkle, roots_match_rfc6962)
{
	static const size_t ns[] = {0, 1, 2, 3, 4, 5, 7, 8, 9, 31, 1000, 4097, 100000};

	for (size_t t = 0; t < sizeof(ns) / sizeof(ns[0]); t++) {
		size_t n = ns[t];
		uint8_t (*d)[32] = make_leaves(n), want[32], got[32];

		ref_root(want, d, n);
		cr_assert_eq(seq_merkle_root(got, (const uint8_t (*)[32])d, n), 0);
		cr_assert_arr_eq(got, want, 32, "root differs for n=%zu", n);
		free(d);
	}
}

Test(merkle, empty_root_is_sha256_of_nothing)
{
	static const uint8_t e[32] = {
		0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4,
		0xc8, 0x99, 0x6f, 0xb9, 0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b,
		0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55};
	uint8_t got[32];

	cr_assert_eq(seq_merkle_root(got, NULL, 0), 0);
	cr_assert_arr_eq(got, e, 32);
}

Test(merkle, proofs_every_index_1_to_33)
{
	uint8_t path[SEQ_MERKLE_MAX_DEPTH + 1][32], rpath[SEQ_MERKLE_MAX_DEPTH][32];
	uint8_t root[32];

	for (size_t n = 1; n <= 33; n++) {
		uint8_t (*d)[32] = make_leaves(n);
		const uint8_t (*cd)[32] = (const uint8_t (*)[32])d;
		const uint8_t (*cp)[32] = (const uint8_t (*)[32])path;

		cr_assert_eq(seq_merkle_root(root, cd, n), 0);
		for (size_t i = 0; i < n; i++) {
			size_t len = 99, rlen = 0;

			cr_assert_eq(seq_merkle_proof(cd, n, i, path, &len), 0);
			ref_path(d, n, i, rpath, &rlen);
			cr_assert_eq(len, rlen, "n=%zu i=%zu", n, i);
			for (size_t k = 0; k < len; k++)
				cr_assert_arr_eq(path[k], rpath[k], 32);
			cr_assert(ref_verify(d[i], i, n, path, len, root));
			cr_assert_eq(seq_merkle_verify(d[i], i, n, cp, len, root), 0,
				     "n=%zu i=%zu", n, i);

			/* Wrong leaf, wrong root. */
			if (n > 1)
				cr_assert_eq(seq_merkle_verify(d[(i + 1) % n], i, n, cp, len,
							       root),
					     SEQ_EPROOF);
			root[5] ^= 1;
			cr_assert_eq(seq_merkle_verify(d[i], i, n, cp, len, root), SEQ_EPROOF);
			root[5] ^= 1;
			/* Every sibling matters. */
			for (size_t k = 0; k < len; k++) {
				path[k][31] ^= 0x80;
				cr_assert_eq(seq_merkle_verify(d[i], i, n, cp, len, root),
					     SEQ_EPROOF);
				path[k][31] ^= 0x80;
			}
			/* Truncated and extended paths. */
			if (len > 0)
				cr_assert_eq(seq_merkle_verify(d[i], i, n, cp, len - 1, root),
					     SEQ_EPROOF);
			memcpy(path[len], root, 32);
			cr_assert_eq(seq_merkle_verify(d[i], i, n, cp, len + 1, root),
				     SEQ_EPROOF);
			/* Every other index fails. */
			for (size_t j = 0; j < n + 2; j++)
				if (j != i)
					cr_assert_eq(seq_merkle_verify(d[i], j, n, cp, len, root),
						     SEQ_EPROOF, "n=%zu i=%zu j=%zu", n, i, j);
			/* A tree size whose shape needs another path length fails. */
			for (size_t m = 0; m <= 70; m++) {
				if (m == n || (i < m && ref_path_len(m, i) == len))
					continue;
				cr_assert_eq(seq_merkle_verify(d[i], i, m, cp, len, root),
					     SEQ_EPROOF, "n=%zu i=%zu m=%zu", n, i, m);
			}
		}
		free(d);
	}
}

Test(merkle, proof_rejects_bad_arguments)
{
	uint8_t (*d)[32] = make_leaves(4), path[SEQ_MERKLE_MAX_DEPTH][32], root[32];
	const uint8_t (*cd)[32] = (const uint8_t (*)[32])d;
	size_t len;

	cr_assert_eq(seq_merkle_proof(cd, 4, 4, path, &len), SEQ_EINVAL);
	cr_assert_eq(seq_merkle_proof(cd, 0, 0, path, &len), SEQ_EINVAL);
	cr_assert_eq(seq_merkle_proof(NULL, 4, 0, path, &len), SEQ_EINVAL);
	cr_assert_eq(seq_merkle_proof(cd, 4, 0, NULL, &len), SEQ_EINVAL);
	cr_assert_eq(seq_merkle_proof(cd, 4, 0, path, NULL), SEQ_EINVAL);
	cr_assert_eq(seq_merkle_root(root, cd, 4), 0);
	cr_assert_eq(seq_merkle_verify(d[0], 0, 0, NULL, 0, root), SEQ_EPROOF);
	cr_assert_eq(seq_merkle_verify(d[0], 0, 4, NULL, 2, root), SEQ_EPROOF);
	cr_assert_eq(seq_merkle_verify(d[0], 0, 4, (const uint8_t (*)[32])path,
				       SEQ_MERKLE_MAX_DEPTH + 1, root),
		     SEQ_EPROOF);
	free(d);
}

Test(merkle, single_leaf_tree)
{
	uint8_t (*d)[32] = make_leaves(1), path[SEQ_MERKLE_MAX_DEPTH][32], root[32];
	size_t len = 7;

	cr_assert_eq(seq_merkle_root(root, (const uint8_t (*)[32])d, 1), 0);
	cr_assert_arr_eq(root, d[0], 32);
	cr_assert_eq(seq_merkle_proof((const uint8_t (*)[32])d, 1, 0, path, &len), 0);
	cr_assert_eq(len, 0);
	cr_assert_eq(seq_merkle_verify(d[0], 0, 1, NULL, 0, root), 0);
	free(d);
}

Test(merkle, whole_tree_matches_proofs)
{
	uint8_t path[SEQ_MERKLE_MAX_DEPTH][32], tpath[SEQ_MERKLE_MAX_DEPTH][32];
	uint8_t root[32];

	for (size_t n = 1; n <= 33; n++) {
		uint8_t (*d)[32] = make_leaves(n);
		const uint8_t (*cd)[32] = (const uint8_t (*)[32])d;
		struct seq_merkle_tree t;

		cr_assert_eq(seq_merkle_tree_build(&t, cd, n), 0);
		cr_assert_eq(seq_merkle_root(root, cd, n), 0);
		cr_assert_arr_eq(seq_merkle_tree_root(&t), root, 32);
		for (size_t i = 0; i < n; i++) {
			size_t len, tlen;

			cr_assert_eq(seq_merkle_proof(cd, n, i, path, &len), 0);
			cr_assert_eq(seq_merkle_tree_path(&t, i, tpath, &tlen), 0);
			cr_assert_eq(len, tlen);
			for (size_t k = 0; k < len; k++)
				cr_assert_arr_eq(path[k], tpath[k], 32);
		}
		seq_merkle_tree_free(&t);
		free(d);
	}
	seq_merkle_tree_free(NULL);
}

/* ---- multiproofs ------------------------------------------------------- */

/* Proves leaves idx[0..k) of d (n leaves) against the reference root, then
 * checks that the proof fails once anything in it or around it changes. */
static void multi_check(uint8_t (*d)[32], size_t n, const size_t *idx, size_t k, int tamper)
{
	const uint8_t (*cd)[32] = (const uint8_t (*)[32])d;
	size_t max = seq_merkle_multiproof_max(n, k), len = 0;
	uint8_t (*proof)[32] = malloc((max + 1) * 32), (*lv)[32] = malloc(k * 32), root[32];
	uint64_t *ix = malloc(k * sizeof(*ix));
	struct seq_merkle_tree t;

	cr_assert(proof && lv && ix);
	ref_root(root, d, n);
	cr_assert_eq(seq_merkle_tree_build(&t, cd, n), 0);
	cr_assert_eq(seq_merkle_tree_multiproof(&t, idx, k, proof, &len), 0);
	cr_assert_leq(len, max);
	for (size_t j = 0; j < k; j++) {
		memcpy(lv[j], d[idx[j]], 32);
		ix[j] = idx[j];
	}
	cr_assert_eq(seq_merkle_multiverify((const uint8_t (*)[32])lv, ix, k, n,
					    (const uint8_t (*)[32])proof, len, root),
		     0, "n=%zu k=%zu", n, k);
	if (k == 1) { /* one leaf: exactly its audit path */
		uint8_t path[SEQ_MERKLE_MAX_DEPTH][32];
		size_t plen;

		cr_assert_eq(seq_merkle_tree_path(&t, idx[0], path, &plen), 0);
		cr_assert_eq(len, plen);
		cr_assert_arr_eq(proof, path, len * 32);
	}
	if (tamper) {
		const uint8_t (*cp)[32] = (const uint8_t (*)[32])proof;
		const uint8_t (*cl)[32] = (const uint8_t (*)[32])lv;

		for (size_t p = 0; p < len; p++) { /* every proof entry matters */
			proof[p][p % 32] ^= 0x40;
			cr_assert_eq(seq_merkle_multiverify(cl, ix, k, n, cp, len, root), SEQ_EPROOF);
			proof[p][p % 32] ^= 0x40;
		}
		for (size_t j = 0; j < k; j++) { /* every leaf matters */
			lv[j][3] ^= 1;
			cr_assert_eq(seq_merkle_multiverify(cl, ix, k, n, cp, len, root), SEQ_EPROOF);
			lv[j][3] ^= 1;
		}
		if (len) /* one entry missing */
			cr_assert_eq(seq_merkle_multiverify(cl, ix, k, n, cp, len - 1, root),
				     SEQ_EPROOF);
		memset(proof[len], 0, 32); /* one entry too many */
		cr_assert_eq(seq_merkle_multiverify(cl, ix, k, n, cp, len + 1, root), SEQ_EPROOF);
		/* the leaves claimed at other positions (the tree's size is not
		 * bound by a proof, as with audit paths: the signed group count is) */
		if (ix[k - 1] + 1 < n) {
			ix[k - 1]++;
			cr_assert_eq(seq_merkle_multiverify(cl, ix, k, n, cp, len, root), SEQ_EPROOF);
			ix[k - 1]--;
		}
		if (ix[0] > 0) {
			ix[0]--;
			cr_assert_eq(seq_merkle_multiverify(cl, ix, k, n, cp, len, root), SEQ_EPROOF);
			ix[0]++;
		}
	}
	seq_merkle_tree_free(&t);
	free(proof);
	free(lv);
	free(ix);
}

Test(merkle, multiproof_every_subset_of_small_trees)
{
	size_t idx[12];

	for (size_t n = 1; n <= 11; n++) {
		uint8_t (*d)[32] = make_leaves(n);

		for (unsigned mask = 1; mask < (1u << n); mask++) {
			size_t k = 0;

			for (size_t i = 0; i < n; i++)
				if (mask & (1u << i))
					idx[k++] = i;
			multi_check(d, n, idx, k, 1);
		}
		free(d);
	}
}

Test(merkle, multiproof_ranges_and_random_sets_of_big_trees)
{
	static const size_t ns[] = {100, 1000, 4095, 4096, 4097};
	uint64_t x = 0x9e3779b97f4a7c15ull;

	for (size_t a = 0; a < sizeof(ns) / sizeof(ns[0]); a++) {
		size_t n = ns[a], *idx = malloc(n * sizeof(*idx)), depth = 0;
		uint8_t (*d)[32] = make_leaves(n);
		struct seq_merkle_tree t;

		while (((size_t)1 << depth) < n)
			depth++;
		cr_assert_eq(seq_merkle_tree_build(&t, (const uint8_t (*)[32])d, n), 0);
		for (int r = 0; r < 40; r++) {
			size_t lo, k, len;
			uint8_t (*proof)[32];

			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			lo = x % n;
			k = 1 + (x >> 20) % (n - lo < 300 ? n - lo : 300);
			for (size_t j = 0; j < k; j++)
				idx[j] = lo + j;
			multi_check(d, n, idx, k, r < 4);
			/* a contiguous run costs at most two nodes a level */
			proof = malloc(seq_merkle_multiproof_max(n, k) * 32 + 32);
			cr_assert_eq(seq_merkle_tree_multiproof(&t, idx, k, proof, &len), 0);
			cr_assert_leq(len, 2 * depth, "n=%zu run [%zu, +%zu): %zu nodes", n, lo, k, len);
			free(proof);
			/* a random set: every leaf with probability 1/8 */
			k = 0;
			for (size_t i = 0; i < n; i++) {
				x ^= x << 13, x ^= x >> 7, x ^= x << 17;
				if ((x & 7) == 0)
					idx[k++] = i;
			}
			if (k)
				multi_check(d, n, idx, k, 0);
		}
		seq_merkle_tree_free(&t);
		free(idx);
		free(d);
	}
}

Test(merkle, multiproof_refuses_bad_index_sets)
{
	uint8_t (*d)[32] = make_leaves(8), proof[64][32], root[32];
	const uint8_t (*cd)[32] = (const uint8_t (*)[32])d;
	static const size_t unsorted[] = {3, 1}, repeated[] = {2, 2}, outside[] = {1, 8};
	static const uint64_t u2[] = {3, 1}, r2[] = {2, 2}, o2[] = {1, 8};
	struct seq_merkle_tree t;
	size_t len;

	cr_assert_eq(seq_merkle_tree_build(&t, cd, 8), 0);
	memcpy(root, seq_merkle_tree_root(&t), 32);
	cr_assert_eq(seq_merkle_tree_multiproof(&t, unsorted, 2, proof, &len), SEQ_EINVAL);
	cr_assert_eq(seq_merkle_tree_multiproof(&t, repeated, 2, proof, &len), SEQ_EINVAL);
	cr_assert_eq(seq_merkle_tree_multiproof(&t, outside, 2, proof, &len), SEQ_EINVAL);
	cr_assert_eq(seq_merkle_tree_multiproof(&t, unsorted, 0, proof, &len), SEQ_EINVAL);
	cr_assert_eq(seq_merkle_multiverify(cd, u2, 2, 8, (const uint8_t (*)[32])proof, 0, root),
		     SEQ_EPROOF);
	cr_assert_eq(seq_merkle_multiverify(cd, r2, 2, 8, (const uint8_t (*)[32])proof, 0, root),
		     SEQ_EPROOF);
	cr_assert_eq(seq_merkle_multiverify(cd, o2, 2, 8, (const uint8_t (*)[32])proof, 0, root),
		     SEQ_EPROOF);
	cr_assert_eq(seq_merkle_multiverify(cd, o2, 0, 8, NULL, 0, root), SEQ_EPROOF);
	seq_merkle_tree_free(&t);
	free(d);
}
