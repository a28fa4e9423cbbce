/* Preconfirmation groups and receipts: build, sign, verify, tamper. */
#include <criterion/criterion.h>

#include <string.h>

#include <sodium.h>

#include "sequencer/seq.h"

static uint8_t pk[32], sk[64], pk2[32], sk2[64];

static void keys(void)
{
	uint8_t seed[32];

	cr_assert_geq(sodium_init(), 0);
	memset(seed, 0x42, 32);
	crypto_sign_seed_keypair(pk, sk, seed);
	memset(seed, 0x43, 32);
	crypto_sign_seed_keypair(pk2, sk2, seed);
}

TestSuite(group, .init = keys);

#define N 7
static uint64_t g_ns[N] = {31337, 7, 31337, 1, 7, 7, 31337};
static uint8_t g_hash[N][32];

static void build(struct seq_group *g)
{
	for (int i = 0; i < N; i++)
		memset(g_hash[i], 0x10 + i, 32);
	cr_assert_eq(seq_group_build(g, 77, 1234, 1000, g_ns,
				     (const uint8_t (*)[32])g_hash, N, sk),
		     0);
}

Test(group, build_sign_verify)
{
	struct seq_group g;
	uint8_t leaves[N][32], root[32];

	build(&g);
	for (int i = 0; i < N; i++) {
		seq_merkle_tx_leaf(leaves[i], 1000 + (uint64_t)i, g_ns[i], g_hash[i]);
		cr_assert_arr_eq(g.leaves[i], leaves[i], 32);
	}
	cr_assert_eq(seq_merkle_root(root, (const uint8_t (*)[32])leaves, N), 0);
	cr_assert_arr_eq(g.hdr.root, root, 32);
	cr_assert_eq(g.hdr.group_id, 77);
	cr_assert_eq(g.hdr.slot, 1234);
	cr_assert_eq(g.hdr.first_seq, 1000);
	cr_assert_eq(g.hdr.count, N);
	cr_assert_eq(seq_group_verify(&g.hdr, g.sig, pk), 0);
	cr_assert_eq(seq_group_verify(&g.hdr, g.sig, pk2), SEQ_ESIG);

	struct seq_group_hdr h = g.hdr;
	h.group_id++;
	cr_assert_eq(seq_group_verify(&h, g.sig, pk), SEQ_ESIG);
	h = g.hdr;
	h.slot++;
	cr_assert_eq(seq_group_verify(&h, g.sig, pk), SEQ_ESIG);
	h = g.hdr;
	h.first_seq++;
	cr_assert_eq(seq_group_verify(&h, g.sig, pk), SEQ_ESIG);
	h = g.hdr;
	h.count--;
	cr_assert_eq(seq_group_verify(&h, g.sig, pk), SEQ_ESIG);
	h = g.hdr;
	h.root[0] ^= 1;
	cr_assert_eq(seq_group_verify(&h, g.sig, pk), SEQ_ESIG);
	g.sig[10] ^= 1;
	cr_assert_eq(seq_group_verify(&g.hdr, g.sig, pk), SEQ_ESIG);

	seq_group_free(&g);
	cr_assert_null(g.leaves);
	seq_group_free(&g);
	seq_group_free(NULL);
}

Test(group, message_layout)
{
	struct seq_group_hdr h = {.group_id = 0x0102030405060708ull,
				  .slot = 0x1112131415161718ull,
				  .first_seq = 0x2122232425262728ull,
				  .count = 0x31323334u};
	static const uint8_t head[40] = {
		'M',  'Z',  'G',  'R',  0,    0,    0,    1,    0x01, 0x02,
		0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x11, 0x12, 0x13, 0x14,
		0x15, 0x16, 0x17, 0x18, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26,
		0x27, 0x28, 0x31, 0x32, 0x33, 0x34};
	uint8_t msg[SEQ_GROUP_MSG_LEN];

	cr_assert_eq(SEQ_GROUP_MSG_LEN, 68);
	memset(h.root, 0xee, 32);
	seq_group_message(msg, &h);
	cr_assert_arr_eq(msg, head, 36);
	cr_assert_arr_eq(msg + 36, h.root, 32);
}

Test(group, build_rejects_bad_arguments)
{
	struct seq_group g = {0};
	uint64_t ns = 1;
	uint8_t hash[1][32] = {{0}};

	cr_assert_eq(seq_group_build(&g, 1, 1, 1, &ns, (const uint8_t (*)[32])hash, 0, sk),
		     SEQ_EINVAL);
	cr_assert_eq(seq_group_build(NULL, 1, 1, 1, &ns, (const uint8_t (*)[32])hash, 1, sk),
		     SEQ_EINVAL);
	cr_assert_eq(seq_group_build(&g, 1, 1, 1, NULL, (const uint8_t (*)[32])hash, 1, sk),
		     SEQ_EINVAL);
	cr_assert_eq(seq_group_build(&g, 1, 1, 1, &ns, NULL, 1, sk), SEQ_EINVAL);
	cr_assert_eq(seq_group_build(&g, 1, 1, UINT64_MAX, &ns,
				     (const uint8_t (*)[32])hash, 2, sk),
		     SEQ_EINVAL);
	cr_assert_null(g.leaves);
	cr_assert_eq(seq_group_build(&g, 1, 1, UINT64_MAX, &ns,
				     (const uint8_t (*)[32])hash, 1, sk),
		     0);
	seq_group_free(&g);
}

/* The committer's build: the same header and signature as seq_group_build,
 * and a tree whose root is the header's and whose paths are the proofs. */
Test(group, build_tree_matches_build)
{
	for (size_t n = 1; n <= 33; n++) {
		struct seq_group a, b;
		struct seq_merkle_tree t;
		uint64_t ns[33];
		uint8_t h[33][32], want[SEQ_MERKLE_MAX_DEPTH][32], got[SEQ_MERKLE_MAX_DEPTH][32];
		size_t wn, gn;

		for (size_t i = 0; i < n; i++) {
			ns[i] = 1 + i % 3;
			memset(h[i], (int)(0x20 + i), 32);
		}
		cr_assert_eq(seq_group_build(&a, 9, 2, 500, ns, (const uint8_t (*)[32])h, n, sk), 0);
		cr_assert_eq(seq_group_build_tree(&b, &t, 9, 2, 500, ns, (const uint8_t (*)[32])h,
						  n, sk),
			     0);
		cr_assert_arr_eq(&a.hdr, &b.hdr, sizeof(a.hdr), "n=%zu", n);
		cr_assert_arr_eq(a.sig, b.sig, 64, "n=%zu", n);
		cr_assert_arr_eq(a.leaves, b.leaves, n * 32);
		cr_assert_arr_eq(seq_merkle_tree_root(&t), a.hdr.root, 32, "n=%zu", n);
		for (size_t i = 0; i < n; i++) {
			cr_assert_eq(seq_merkle_proof((const uint8_t (*)[32])a.leaves, n, i, want,
						      &wn),
				     0);
			cr_assert_eq(seq_merkle_tree_path(&t, i, got, &gn), 0);
			cr_assert_eq(gn, wn);
			cr_assert_arr_eq(got, want, wn * 32, "n=%zu i=%zu", n, i);
		}
		seq_merkle_tree_free(&t);
		seq_group_free(&a);
		seq_group_free(&b);
	}
}

Test(group, build_tree_rejects_bad_arguments_and_leaves_the_tree_empty)
{
	struct seq_group g = {0};
	struct seq_merkle_tree t;
	uint64_t ns = 1;
	uint8_t hash[1][32] = {{0}};

	memset(&t, 0xa5, sizeof(t));
	cr_assert_eq(seq_group_build_tree(&g, &t, 1, 1, 1, &ns, (const uint8_t (*)[32])hash, 0,
					  sk),
		     SEQ_EINVAL);
	cr_assert_null(t.nodes);
	cr_assert_null(g.leaves);
	cr_assert_eq(seq_group_build_tree(&g, NULL, 1, 1, 1, &ns, (const uint8_t (*)[32])hash, 1,
					  sk),
		     SEQ_EINVAL);
	seq_merkle_tree_free(&t);
}

Test(group, receipts_verify_for_every_index)
{
	struct seq_group g;
	struct seq_receipt r;

	build(&g);
	for (size_t i = 0; i < N; i++) {
		cr_assert_eq(seq_receipt_from_group(&r, &g, i, g_ns[i], g_hash[i]), 0);
		cr_assert_eq(r.seq, 1000 + i);
		cr_assert_eq(r.index, i);
		cr_assert_eq(r.count, N);
		cr_assert_eq(r.ns, g_ns[i]);
		cr_assert_eq(seq_receipt_verify(&r, pk), 0, "index %zu", i);
		cr_assert_eq(seq_receipt_verify(&r, pk2), SEQ_ESIG);
	}
	cr_assert_eq(seq_receipt_from_group(&r, &g, N, g_ns[0], g_hash[0]), SEQ_EINVAL);
	/* A receipt that could not verify is never cut. */
	cr_assert_eq(seq_receipt_from_group(&r, &g, 1, g_ns[0], g_hash[1]), SEQ_EINVAL);
	cr_assert_eq(seq_receipt_from_group(&r, &g, 1, g_ns[1], g_hash[0]), SEQ_EINVAL);
	seq_group_free(&g);
	cr_assert_eq(seq_receipt_from_group(&r, &g, 0, g_ns[0], g_hash[0]), SEQ_EINVAL);
}

/* The tree-based builder the committer uses gives byte-identical receipts. */
Test(group, receipt_from_tree_equals_from_group)
{
	struct seq_group g;
	struct seq_merkle_tree t;
	struct seq_receipt a, b;

	build(&g);
	cr_assert_eq(seq_merkle_tree_build(&t, (const uint8_t (*)[32])g.leaves, N), 0);
	for (size_t i = 0; i < N; i++) {
		memset(&a, 0, sizeof(a));
		memset(&b, 0, sizeof(b));
		cr_assert_eq(seq_receipt_from_group(&a, &g, i, g_ns[i], g_hash[i]), 0);
		cr_assert_eq(seq_receipt_from_tree(&b, &g.hdr, g.sig, &t, i, g_ns[i], g_hash[i]), 0);
		cr_assert_eq(memcmp(&a, &b, sizeof(a)), 0, "index %zu", i);
		cr_assert_eq(seq_receipt_verify(&b, pk), 0);
	}
	cr_assert_eq(seq_receipt_from_tree(&b, &g.hdr, g.sig, &t, N, g_ns[0], g_hash[0]),
		     SEQ_EINVAL);
	cr_assert_eq(seq_receipt_from_tree(&b, &g.hdr, g.sig, &t, 1, g_ns[0], g_hash[1]),
		     SEQ_EINVAL, "a leaf that is not in the tree gets no receipt");
	seq_merkle_tree_free(&t);
	seq_group_free(&g);
}

Test(group, tampered_receipt_fails_each_field)
{
	struct seq_group g;
	struct seq_receipt good, r;

	build(&g);
	cr_assert_eq(seq_receipt_from_group(&good, &g, 4, g_ns[4], g_hash[4]), 0);
	cr_assert_eq(good.path_len, 3);
	cr_assert_eq(seq_receipt_verify(&good, pk), 0);

#define TAMPER(stmt, code)                                         \
	do {                                                       \
		r = good;                                          \
		stmt;                                              \
		cr_assert_eq(seq_receipt_verify(&r, pk), code, #stmt); \
	} while (0)

	TAMPER(r.hash[0] ^= 1, SEQ_EPROOF);
	TAMPER(r.ns++, SEQ_EPROOF);
	TAMPER(r.seq++, SEQ_EPROOF);
	TAMPER(r.seq = 3, SEQ_EPROOF); /* seq < index */
	TAMPER(r.slot++, SEQ_ESIG);
	TAMPER(r.group_id++, SEQ_ESIG);
	TAMPER(r.index++, SEQ_EPROOF);
	TAMPER(r.index--, SEQ_EPROOF);
	TAMPER(r.index = r.count, SEQ_EPROOF);
	TAMPER(r.count = 8, SEQ_ESIG); /* same path shape: only the signature binds count */
	TAMPER(r.count = 5, SEQ_EPROOF);
	TAMPER(r.count = 0, SEQ_EPROOF);
	TAMPER(r.root[31] ^= 1, SEQ_EPROOF);
	TAMPER(r.path[0][0] ^= 1, SEQ_EPROOF);
	TAMPER(r.path[2][0] ^= 1, SEQ_EPROOF);
	TAMPER(r.path_len--, SEQ_EPROOF);
	TAMPER(r.path_len++, SEQ_EPROOF);
	TAMPER(r.path_len = SEQ_MERKLE_MAX_DEPTH + 1, SEQ_EPROOF);
	TAMPER(r.sig[0] ^= 1, SEQ_ESIG);
	TAMPER(r.sig[63] ^= 1, SEQ_ESIG);
#undef TAMPER
	seq_group_free(&g);
}

Test(group, doc_example_signature)
{
	/* docs/PROTOCOL.md, "Worked example": group 5, slot 100, seqs 1..3. */
	static const char *want =
		"0d18fa11fed68aadb702e526950f054f4ab6c928ee9ddc66e3e2992473cd58cb"
		"0a44ea1aea2d44484b74e96a771e3169cc34977ca17f62477811b7ae64a4ab0d";
	static const char *want_pk =
		"2152f8d19b791d24453242e15f2eab6cb7cffa7b6a5ed30097960e069881db12";
	struct seq_group g;
	uint64_t ns[3] = {31337, 7, 31337};
	uint8_t h[3][32];
	char hex[129];

	for (int i = 0; i < 3; i++)
		memset(h[i], 0x11 * (i + 1), 32);
	cr_assert_eq(seq_group_build(&g, 5, 100, 1, ns, (const uint8_t (*)[32])h, 3, sk), 0);
	sodium_bin2hex(hex, sizeof(hex), g.sig, 64);
	cr_assert_str_eq(hex, want);
	sodium_bin2hex(hex, sizeof(hex), pk, 32);
	cr_assert_str_eq(hex, want_pk);
	seq_group_free(&g);
}
