/* Slot clock, error names, and the protocol document's worked example. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sequencer/seq.h"

Test(slot, clock_edges)
{
	cr_assert_eq(seq_slot_at(999, 1000, 250), 0);
	cr_assert_eq(seq_slot_at(0, 1000, 250), 0);
	cr_assert_eq(seq_slot_at(1000, 1000, 250), 0);
	cr_assert_eq(seq_slot_at(1249, 1000, 250), 0);
	cr_assert_eq(seq_slot_at(1250, 1000, 250), 1);
	cr_assert_eq(seq_slot_at(1251, 1000, 250), 1);
	cr_assert_eq(seq_slot_at(UINT64_MAX, 0, 1), UINT64_MAX);
	cr_assert_eq(seq_slot_at(UINT64_MAX, 0, UINT32_MAX), UINT64_MAX / UINT32_MAX);
	cr_assert_eq(seq_slot_at(5000, 1000, 0), 0);

	cr_assert_eq(seq_slot_start(0, 1000, 250), 1000);
	cr_assert_eq(seq_slot_start(1, 1000, 250), 1250);
	cr_assert_eq(seq_slot_start(4, 0, 250), 1000);
	cr_assert_eq(seq_slot_start(UINT64_MAX, 0, 2), UINT64_MAX);
	cr_assert_eq(seq_slot_start(1, UINT64_MAX - 1, 2), UINT64_MAX);
	cr_assert_eq(seq_slot_start(7, 3, 0), 3);
	for (uint64_t s = 0; s < 1000; s += 37) {
		uint64_t t = seq_slot_start(s, 1700000000000ull, 250);

		cr_assert_eq(seq_slot_at(t, 1700000000000ull, 250), s);
		cr_assert_eq(seq_slot_at(t + 249, 1700000000000ull, 250), s);
		cr_assert_eq(seq_slot_at(t - 1, 1700000000000ull, 250), s ? s - 1 : 0);
	}
}

Test(error, strerror_covers_every_code)
{
	static const int codes[] = {
#define SEQ_ERR_CODE(name, code, msg) name,
		SEQ_ERRORS(SEQ_ERR_CODE)
#undef SEQ_ERR_CODE
	};
	size_t n = sizeof(codes) / sizeof(codes[0]);

	cr_assert_eq(n, 18);
	for (size_t i = 0; i < n; i++) {
		const char *s = seq_strerror(codes[i]);

		cr_assert_not_null(s, "code %d", codes[i]);
		cr_assert_gt(strlen(s), 0);
		cr_assert(codes[i] <= -1000 && codes[i] >= -1099);
		for (size_t j = 0; j < i; j++)
			cr_assert_str_neq(s, seq_strerror(codes[j]));
	}
	cr_assert_str_eq(seq_strerror(SEQ_EPROOF), "Merkle proof does not match the root");
	cr_assert_null(seq_strerror(0));
	cr_assert_null(seq_strerror(-1));
	cr_assert_null(seq_strerror(-1000));
	cr_assert_null(seq_strerror(-1019));
	cr_assert_null(seq_strerror(-2001));
}

static void hex(char *out, const uint8_t *p, size_t n)
{
	static const char d[] = "0123456789abcdef";

	*out++ = '0';
	*out++ = 'x';
	for (size_t i = 0; i < n; i++) {
		*out++ = d[p[i] >> 4];
		*out++ = d[p[i] & 15];
	}
	*out = '\0';
}

/* The values printed in docs/PROTOCOL.md's worked example. */
#define EX_LEAF0 "0xe49ce70832bd4defc30725d73e90d8b5f4f23db6bbf0ce641ebd461091447de3"
#define EX_LEAF1 "0x9e7b1fbbd9bb640015060a80f2c0d09b800de48c3f906a2b47c271e903750c73"
#define EX_LEAF2 "0xf9379505948a291cb154d7e76917a0b9e02496951433a954a2844483061101db"
#define EX_N01 "0x34ef43b82c55a9ab91f7c82bcaef84e4add2fbca06c1cbd7ecc7ee9b4110f872"
#define EX_ROOT3 "0x94e0f308b958c958a2465648df7d367116feeb73b5fdc4ea34ee1ad42023cbaa"
#define EX_NS7_ROOT "0x6d3b18f65d44fdb5bdfa8cc86fbe09645fee3c426d1dc1ce1fcd37a316d21d3a"
#define EX_NS7_LEAF "0xb371393edc618a5657848b99c8bcbaa1f480f7ae1ce0c01ab57a961a60b4b09f"
#define EX_NS31337_ROOT "0xcd23345cff23cb1f1f75dc90789eb296964a917822d5cacbe679b920c6616b5a"
#define EX_NS31337_LEAF "0x8cf3c456d93c971b9095bf144a07eaca95590b906aa9fac40a8e29690218bfc9"
#define EX_TX_ROOT "0xb33e1fe204d2c52ba27eeb437117a7c1b0a0b357e3aeb43f90d4ec900fdf771a"
#define EX_NS_ROOT "0xb39d944267dfeec51f848e2bd21de85c6bddc933d0ce23409199e32cf07e8d46"
#define EX_BLOCK_HASH "0x3b379780ab8e758a147825066323ec9377739deb825e5b2fdbe605abf1ea1af2"
#define EX_HDR                                                                       \
	"0x4d5a534200000001000000000000000100000000000000640000018bcfe56800"             \
	"0000000000000000000000000000000000000000000000000000000000000000000000000000" \
	"0001000000000000000300000002b39d944267dfeec51f848e2bd21de85c6bddc933d0ce2340" \
	"9199e32cf07e8d46b33e1fe204d2c52ba27eeb437117a7c1b0a0b357e3aeb43f90d4ec900fdf" \
	"771a"
#define EX_GROUP_MSG                                                               \
	"0x4d5a47520000000100000000000000050000000000000064000000000000000100000003"    \
	"b33e1fe204d2c52ba27eeb437117a7c1b0a0b357e3aeb43f90d4ec900fdf771a"

/* Asserted in test_group.c (group, doc_example_signature). */
#define EX_PK "0x2152f8d19b791d24453242e15f2eab6cb7cffa7b6a5ed30097960e069881db12"
#define EX_GROUP_SIG                                                     \
	"0x0d18fa11fed68aadb702e526950f054f4ab6c928ee9ddc66e3e2992473cd58cb" \
	"0a44ea1aea2d44484b74e96a771e3169cc34977ca17f62477811b7ae64a4ab0d"

static const char *const ex_values[] = {
	EX_LEAF0, EX_LEAF1, EX_LEAF2, EX_N01, EX_ROOT3, EX_NS7_ROOT, EX_NS7_LEAF,
	EX_NS31337_ROOT, EX_NS31337_LEAF, EX_TX_ROOT, EX_NS_ROOT, EX_BLOCK_HASH,
	EX_HDR, EX_GROUP_MSG, EX_PK, EX_GROUP_SIG};

Test(protocol_doc, worked_example_values)
{
	uint8_t th[3][32], leaves[3][32], out[32], path[SEQ_MERKLE_MAX_DEPTH][32];
	uint8_t parent[32] = {0}, hdr[SEQ_BLOCK_HDR_LEN], msg[SEQ_GROUP_MSG_LEN];
	char s[2 * SEQ_BLOCK_HDR_LEN + 3];
	struct seq_tx txs[3];
	struct seq_block_hdr h;
	struct seq_block_ns *t;
	struct seq_group_hdr gh;
	const uint64_t ns[3] = {31337, 7, 31337};
	size_t len;

	/* Merkle example: three txs of one namespace. */
	for (int i = 0; i < 3; i++) {
		memset(th[i], 0x11 * (i + 1), 32);
		seq_merkle_tx_leaf(leaves[i], 1 + (uint64_t)i, 31337, th[i]);
	}
	hex(s, leaves[0], 32);
	cr_assert_str_eq(s, EX_LEAF0);
	hex(s, leaves[1], 32);
	cr_assert_str_eq(s, EX_LEAF1);
	hex(s, leaves[2], 32);
	cr_assert_str_eq(s, EX_LEAF2);
	seq_merkle_node(out, leaves[0], leaves[1]);
	hex(s, out, 32);
	cr_assert_str_eq(s, EX_N01);
	cr_assert_eq(seq_merkle_root(out, (const uint8_t (*)[32])leaves, 3), 0);
	hex(s, out, 32);
	cr_assert_str_eq(s, EX_ROOT3);
	cr_assert_eq(seq_merkle_proof((const uint8_t (*)[32])leaves, 3, 2, path, &len), 0);
	cr_assert_eq(len, 1);
	hex(s, path[0], 32);
	cr_assert_str_eq(s, EX_N01);

	/* Block example: the same hashes, seq 2 moved to namespace 7. */
	for (int i = 0; i < 3; i++) {
		txs[i].seq = 1 + (uint64_t)i;
		txs[i].ns = ns[i];
		memcpy(txs[i].hash, th[i], 32);
	}
	cr_assert_eq(seq_block_build(&h, &t, txs, 3, 1, 1, 100, 1700000000000ull, parent), 0);
	cr_assert_eq(h.ns_count, 2);
	hex(s, t[0].root, 32);
	cr_assert_str_eq(s, EX_NS7_ROOT);
	seq_merkle_ns_leaf(out, t[0].ns, t[0].count, t[0].root);
	hex(s, out, 32);
	cr_assert_str_eq(s, EX_NS7_LEAF);
	hex(s, t[1].root, 32);
	cr_assert_str_eq(s, EX_NS31337_ROOT);
	seq_merkle_ns_leaf(out, t[1].ns, t[1].count, t[1].root);
	hex(s, out, 32);
	cr_assert_str_eq(s, EX_NS31337_LEAF);
	hex(s, h.tx_root, 32);
	cr_assert_str_eq(s, EX_TX_ROOT);
	hex(s, h.ns_root, 32);
	cr_assert_str_eq(s, EX_NS_ROOT);
	seq_block_hdr_encode(hdr, &h);
	hex(s, hdr, sizeof(hdr));
	cr_assert_str_eq(s, EX_HDR);
	seq_block_hash(out, &h);
	hex(s, out, 32);
	cr_assert_str_eq(s, EX_BLOCK_HASH);

	gh.group_id = 5;
	gh.slot = 100;
	gh.first_seq = 1;
	gh.count = 3;
	memcpy(gh.root, h.tx_root, 32);
	seq_group_message(msg, &gh);
	hex(s, msg, sizeof(msg));
	cr_assert_str_eq(s, EX_GROUP_MSG);
	free(t);
}

/*
 * The document must print exactly these values. Long values may be wrapped
 * in the document, so whitespace is removed before searching.
 */
Test(protocol_doc, document_matches_code)
{
	FILE *f = fopen("docs/PROTOCOL.md", "r");
	char *doc, *w;
	long size;

	if (f == NULL)
		cr_skip_test("run from the repository root to check docs/PROTOCOL.md");
	cr_assert_eq(fseek(f, 0, SEEK_END), 0);
	size = ftell(f);
	cr_assert_gt(size, 0);
	rewind(f);
	doc = malloc((size_t)size + 1);
	cr_assert_not_null(doc);
	cr_assert_eq(fread(doc, 1, (size_t)size, f), (size_t)size);
	fclose(f);
	w = doc;
	for (long i = 0; i < size; i++)
		if (doc[i] != ' ' && doc[i] != '\n' && doc[i] != '\t' && doc[i] != '`')
			*w++ = doc[i];
	*w = '\0';
	for (size_t i = 0; i < sizeof(ex_values) / sizeof(ex_values[0]); i++)
		cr_assert_not_null(strstr(doc, ex_values[i]), "docs/PROTOCOL.md lacks %s",
				   ex_values[i]);
	free(doc);
}
