/* Superblocks: build, namespace table, encoding, signature, chain links. */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>
#include <sodium.h>

#include "sequencer/seq.h"

static uint8_t pk[32], sk[64];

static void keys(void)
{
	uint8_t seed[32];

	cr_assert_geq(sodium_init(), 0);
	memset(seed, 0x42, 32);
	crypto_sign_seed_keypair(pk, sk, seed);
}

TestSuite(block, .init = keys);

#define N 10
static const uint64_t b_ns[N] = {5, 3, 5, 9, 3, 3, 5, 9, 1, 5};

static void make_txs(struct seq_tx *txs, uint64_t first)
{
	for (size_t i = 0; i < N; i++) {
		txs[i].seq = first + i;
		txs[i].ns = b_ns[i];
		memset(txs[i].hash, (int)(0xa0 + i), 32);
	}
}

Test(block, namespace_table_and_roots)
{
	static const uint64_t want_ns[] = {1, 3, 5, 9};
	struct seq_tx txs[N];
	struct seq_block_hdr h;
	struct seq_block_ns *t;
	uint8_t parent[32], leaves[N][32], sub[N][32], root[32], nsl[4][32];

	memset(parent, 0x99, 32);
	make_txs(txs, 10);
	cr_assert_eq(seq_block_build(&h, &t, txs, N, 10, 3, 42, 1700000000123ull, parent), 0);
	cr_assert_eq(h.version, SEQ_BLOCK_VERSION);
	cr_assert_eq(h.height, 3);
	cr_assert_eq(h.slot, 42);
	cr_assert_eq(h.time_ms, 1700000000123ull);
	cr_assert_arr_eq(h.parent, parent, 32);
	cr_assert_eq(h.first_seq, 10);
	cr_assert_eq(h.tx_count, N);
	cr_assert_eq(h.ns_count, 4);

	for (size_t i = 0; i < N; i++)
		seq_merkle_tx_leaf(leaves[i], 10 + i, b_ns[i], txs[i].hash);
	cr_assert_eq(seq_merkle_root(root, (const uint8_t (*)[32])leaves, N), 0);
	cr_assert_arr_eq(h.tx_root, root, 32);

	for (size_t j = 0; j < 4; j++) {
		size_t c = 0;

		for (size_t i = 0; i < N; i++)
			if (b_ns[i] == want_ns[j])
				memcpy(sub[c++], leaves[i], 32);
		cr_assert_eq(seq_merkle_root(root, (const uint8_t (*)[32])sub, c), 0);
		cr_assert_eq(t[j].ns, want_ns[j]);
		cr_assert_eq(t[j].count, c);
		cr_assert_arr_eq(t[j].root, root, 32, "ns %lu", (unsigned long)want_ns[j]);
		seq_merkle_ns_leaf(nsl[j], want_ns[j], c, root);
	}
	cr_assert_eq(t[2].count, 4);
	cr_assert_eq(seq_merkle_root(root, (const uint8_t (*)[32])nsl, 4), 0);
	cr_assert_arr_eq(h.ns_root, root, 32);
	free(t);
}

Test(block, single_namespace)
{
	struct seq_tx txs[3];
	struct seq_block_hdr h;
	struct seq_block_ns *t;
	uint8_t parent[32] = {0}, leaf[32];

	for (int i = 0; i < 3; i++) {
		txs[i].seq = 7 + (uint64_t)i;
		txs[i].ns = 4;
		memset(txs[i].hash, i, 32);
	}
	cr_assert_eq(seq_block_build(&h, &t, txs, 3, 7, 0, 0, 0, parent), 0);
	cr_assert_eq(h.ns_count, 1);
	cr_assert_arr_eq(t[0].root, h.tx_root, 32);
	seq_merkle_ns_leaf(leaf, 4, 3, h.tx_root);
	cr_assert_arr_eq(h.ns_root, leaf, 32);
	free(t);
}

Test(block, empty_block)
{
	struct seq_block_hdr h;
	struct seq_block_ns *t = (void *)&h;
	uint8_t parent[32] = {1}, e[32];

	SHA256((const unsigned char *)"", 0, e);
	cr_assert_eq(seq_block_build(&h, &t, NULL, 0, 55, 1, 2, 3, parent), 0);
	cr_assert_null(t);
	cr_assert_eq(h.ns_count, 0);
	cr_assert_eq(h.tx_count, 0);
	cr_assert_eq(h.first_seq, 55);
	cr_assert_arr_eq(h.tx_root, e, 32);
	cr_assert_arr_eq(h.ns_root, e, 32);
}

Test(block, rejects_out_of_order)
{
	struct seq_tx txs[N];
	struct seq_block_hdr h;
	struct seq_block_ns *t;
	uint8_t parent[32] = {0};

	make_txs(txs, 10);
	cr_assert_eq(seq_block_build(&h, &t, txs, N, 11, 0, 0, 0, parent), SEQ_EORDER);
	cr_assert_null(t);
	txs[4].seq = 15; /* duplicate of the next */
	cr_assert_eq(seq_block_build(&h, &t, txs, N, 10, 0, 0, 0, parent), SEQ_EORDER);
	make_txs(txs, 10);
	txs[9].seq = 20; /* gap */
	cr_assert_eq(seq_block_build(&h, &t, txs, N, 10, 0, 0, 0, parent), SEQ_EORDER);
	make_txs(txs, 10);
	txs[3].seq = 14;
	txs[4].seq = 13; /* swapped */
	cr_assert_eq(seq_block_build(&h, &t, txs, N, 10, 0, 0, 0, parent), SEQ_EORDER);
	make_txs(txs, UINT64_MAX - 5); /* would wrap */
	cr_assert_eq(seq_block_build(&h, &t, txs, N, UINT64_MAX - 5, 0, 0, 0, parent),
		     SEQ_EORDER);
	cr_assert_eq(seq_block_build(&h, NULL, txs, N, 10, 0, 0, 0, parent), SEQ_EINVAL);
	cr_assert_eq(seq_block_build(&h, &t, NULL, 1, 10, 0, 0, 0, parent), SEQ_EINVAL);
}

static void sample_hdr(struct seq_block_hdr *h)
{
	memset(h, 0, sizeof(*h));
	h->version = SEQ_BLOCK_VERSION;
	h->height = 0x0102030405060708ull;
	h->slot = 0x1112131415161718ull;
	h->time_ms = 0x2122232425262728ull;
	memset(h->parent, 0xaa, 32);
	h->first_seq = 0x3132333435363738ull;
	h->tx_count = 0x4142434445464748ull;
	h->ns_count = 0x51525354u;
	memset(h->ns_root, 0xbb, 32);
	memset(h->tx_root, 0xcc, 32);
}

Test(block, header_layout_and_round_trip)
{
	struct seq_block_hdr h, d;
	uint8_t buf[SEQ_BLOCK_HDR_LEN], again[SEQ_BLOCK_HDR_LEN], hash[32], want[32];

	cr_assert_eq(SEQ_BLOCK_HDR_LEN, 148);
	sample_hdr(&h);
	memset(&d, 0x5a, sizeof(d));
	d.version = 0; /* padding differs from h's; compare fields, not bytes */
	seq_block_hdr_encode(buf, &h);
	cr_assert_arr_eq(buf, "MZSB\0\0\0\1", 8);
	cr_assert_eq(buf[8], 0x01);
	cr_assert_eq(buf[15], 0x08);
	cr_assert_eq(buf[16], 0x11);
	cr_assert_eq(buf[24], 0x21);
	cr_assert_eq(buf[32], 0xaa);
	cr_assert_eq(buf[63], 0xaa);
	cr_assert_eq(buf[64], 0x31);
	cr_assert_eq(buf[72], 0x41);
	cr_assert_eq(buf[80], 0x51);
	cr_assert_eq(buf[83], 0x54);
	cr_assert_eq(buf[84], 0xbb);
	cr_assert_eq(buf[115], 0xbb);
	cr_assert_eq(buf[116], 0xcc);
	cr_assert_eq(buf[147], 0xcc);

	cr_assert_eq(seq_block_hdr_decode(&d, buf, sizeof(buf)), 0);
	cr_assert_eq(d.version, h.version);
	cr_assert_eq(d.height, h.height);
	cr_assert_eq(d.slot, h.slot);
	cr_assert_eq(d.time_ms, h.time_ms);
	cr_assert_arr_eq(d.parent, h.parent, 32);
	cr_assert_eq(d.first_seq, h.first_seq);
	cr_assert_eq(d.tx_count, h.tx_count);
	cr_assert_eq(d.ns_count, h.ns_count);
	cr_assert_arr_eq(d.ns_root, h.ns_root, 32);
	cr_assert_arr_eq(d.tx_root, h.tx_root, 32);
	seq_block_hdr_encode(again, &d);
	cr_assert_arr_eq(again, buf, sizeof(buf));

	SHA256(buf, sizeof(buf), want);
	seq_block_hash(hash, &h);
	cr_assert_arr_eq(hash, want, 32);
}

Test(block, decode_rejects_malformed)
{
	struct seq_block_hdr h, d;
	uint8_t buf[SEQ_BLOCK_HDR_LEN + 1];

	sample_hdr(&h);
	seq_block_hdr_encode(buf, &h);
	buf[SEQ_BLOCK_HDR_LEN] = 0;
	cr_assert_eq(seq_block_hdr_decode(&d, buf, SEQ_BLOCK_HDR_LEN - 1), SEQ_EDECODE);
	cr_assert_eq(seq_block_hdr_decode(&d, buf, SEQ_BLOCK_HDR_LEN + 1), SEQ_EDECODE);
	cr_assert_eq(seq_block_hdr_decode(&d, buf, 0), SEQ_EDECODE);
	cr_assert_eq(seq_block_hdr_decode(&d, NULL, SEQ_BLOCK_HDR_LEN), SEQ_EDECODE);
	cr_assert_eq(seq_block_hdr_decode(NULL, buf, SEQ_BLOCK_HDR_LEN), SEQ_EINVAL);
	buf[0] = 'X';
	cr_assert_eq(seq_block_hdr_decode(&d, buf, SEQ_BLOCK_HDR_LEN), SEQ_EDECODE);
	buf[0] = 'M';
	memcpy(buf, "MZGR", 4); /* a group message's magic */
	cr_assert_eq(seq_block_hdr_decode(&d, buf, SEQ_BLOCK_HDR_LEN), SEQ_EDECODE);
	memcpy(buf, "MZSB", 4);
	buf[7] = 2;
	cr_assert_eq(seq_block_hdr_decode(&d, buf, SEQ_BLOCK_HDR_LEN), SEQ_EDECODE);
	buf[7] = 0;
	cr_assert_eq(seq_block_hdr_decode(&d, buf, SEQ_BLOCK_HDR_LEN), SEQ_EDECODE);
	buf[4] = 1;
	buf[7] = 1;
	cr_assert_eq(seq_block_hdr_decode(&d, buf, SEQ_BLOCK_HDR_LEN), SEQ_EDECODE);
	buf[4] = 0;
	cr_assert_eq(seq_block_hdr_decode(&d, buf, SEQ_BLOCK_HDR_LEN), 0);
}

Test(block, sign_verify)
{
	struct seq_block_hdr h, t;
	uint8_t sig[64], other_pk[32], other_sk[64];

	sample_hdr(&h);
	seq_block_sign(sig, &h, sk);
	cr_assert_eq(seq_block_verify(&h, sig, pk), 0);
	crypto_sign_keypair(other_pk, other_sk);
	cr_assert_eq(seq_block_verify(&h, sig, other_pk), SEQ_ESIG);

#define TAMPER(stmt)                                                       \
	do {                                                               \
		t = h;                                                     \
		stmt;                                                      \
		cr_assert_eq(seq_block_verify(&t, sig, pk), SEQ_ESIG, #stmt); \
	} while (0)
	TAMPER(t.version++);
	TAMPER(t.height++);
	TAMPER(t.slot++);
	TAMPER(t.time_ms++);
	TAMPER(t.parent[3] ^= 1);
	TAMPER(t.first_seq++);
	TAMPER(t.tx_count++);
	TAMPER(t.ns_count++);
	TAMPER(t.ns_root[0] ^= 1);
	TAMPER(t.tx_root[31] ^= 1);
#undef TAMPER
	sig[0] ^= 1;
	cr_assert_eq(seq_block_verify(&h, sig, pk), SEQ_ESIG);
}

/* Three linked blocks: genesis (3 txs), block 1 (0 txs), block 2 (N txs). */
static void chain(struct seq_block_hdr b[3])
{
	struct seq_tx txs[N];
	struct seq_block_ns *t;
	uint8_t zero[32] = {0}, ph[32];

	make_txs(txs, 0);
	cr_assert_eq(seq_block_build(&b[0], &t, txs, 3, 0, 0, 5, 1000, zero), 0);
	free(t);
	seq_block_hash(ph, &b[0]);
	cr_assert_eq(seq_block_build(&b[1], &t, NULL, 0, 3, 1, 6, 1250, ph), 0);
	seq_block_hash(ph, &b[1]);
	make_txs(txs, 3);
	cr_assert_eq(seq_block_build(&b[2], &t, txs, N, 3, 2, 9, 2000, ph), 0);
	free(t);
}

Test(block, link_accepts_chain)
{
	struct seq_block_hdr b[3];

	chain(b);
	cr_assert_eq(seq_block_check_link(&b[0], &b[1]), 0);
	cr_assert_eq(seq_block_check_link(&b[1], &b[2]), 0);
	cr_assert_eq(seq_block_check_link(&b[0], &b[2]), SEQ_ECHAIN);
	cr_assert_eq(seq_block_check_link(&b[1], &b[0]), SEQ_ECHAIN);
	cr_assert_eq(seq_block_check_link(NULL, &b[0]), SEQ_EINVAL);
	cr_assert_eq(seq_block_check_link(&b[0], NULL), SEQ_EINVAL);
}

Test(block, link_rejects_each_broken_rule)
{
	struct seq_block_hdr b[3], n;

#define BREAK(stmt)                                                       \
	do {                                                              \
		n = b[2];                                                 \
		stmt;                                                     \
		cr_assert_eq(seq_block_check_link(&b[1], &n), SEQ_ECHAIN, #stmt); \
	} while (0)
	chain(b);
	BREAK(n.height = 1);
	BREAK(n.height = 3);
	BREAK(n.parent[0] ^= 1);
	BREAK(n.slot = b[1].slot);
	BREAK(n.slot = b[1].slot - 1);
	BREAK(n.first_seq = 4);
	BREAK(n.first_seq = 2);
	BREAK(b[1].time_ms++); /* changes prev's hash, so the parent no longer matches */
#undef BREAK
	chain(b);
	b[1].height = UINT64_MAX;
	n = b[2];
	n.height = 0;
	cr_assert_eq(seq_block_check_link(&b[1], &n), SEQ_ECHAIN);
	chain(b);
	b[1].first_seq = UINT64_MAX;
	b[1].tx_count = 4; /* wraps to 3 */
	seq_block_hash(b[2].parent, &b[1]);
	cr_assert_eq(seq_block_check_link(&b[1], &b[2]), SEQ_ECHAIN);
}
