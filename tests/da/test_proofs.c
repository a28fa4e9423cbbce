/*
 * Commitment record, shard proofs and namespace proofs: round trips through
 * the wire forms and one rejection per thing a verifier must notice.
 */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "da/internal.h"
#include "tests/da/helpers.h"

static const uint64_t NS[] = {9, 3, 9, 3, 7, 20, 20, 20};
static const uint32_t LEN[] = {10, 0, 300, 1, 64, 5, 6, 7};

struct coded {
	struct t_block b;
	struct da_code *c;
	struct da_block blk;
	struct da_record r;
};

static void coded_make(struct coded *x, unsigned k, unsigned m)
{
	uint8_t bh[32];

	t_block_make(&x->b, NS, LEN, 8, k, 11);
	cr_assert_eq(da_code_new(k, m, &x->c), 0);
	seq_block_hash(bh, &x->b.hdr);
	cr_assert_eq(da_block_encode(&x->blk, &x->r, x->c, x->b.buf, x->b.payload_len, x->b.S,
				     x->b.hdr.height, bh), 0);
	x->b.buf = NULL; /* owned by blk now */
}

static void coded_free(struct coded *x)
{
	da_block_free(&x->blk);
	da_code_free(x->c);
	t_block_free(&x->b);
}

Test(record, round_trip_and_hash)
{
	struct coded x;
	uint8_t enc[DA_RECORD_LEN], h1[32], h2[32];
	struct da_record r2;

	coded_make(&x, 4, 2);
	cr_assert_eq(DA_RECORD_LEN, 96);
	da_record_encode(enc, &x.r);
	cr_assert_eq(memcmp(enc, "MZDA", 4), 0);
	cr_assert_eq(da_record_decode(&r2, enc, sizeof(enc)), 0);
	cr_assert_eq(memcmp(&r2, &x.r, sizeof(r2)), 0);
	da_record_hash(h1, &x.r);
	SHA256(enc, sizeof(enc), h2);
	cr_assert_eq(memcmp(h1, h2, 32), 0);
	/* The root is the sequencer's Merkle root over 0x03-tagged leaves. */
	cr_assert_eq(da_shard_root(h1, x.blk.shard, 6, x.r.S), 0);
	cr_assert_eq(memcmp(h1, x.r.shard_root, 32), 0);
	coded_free(&x);
}

/*
 * A stage that keeps its buffers (da_bufs) codes every block exactly as
 * fresh buffers would, whatever the block before left in them: small, large,
 * medium, large, small. A block larger than any before allocates, and its
 * buffers replace the smaller ones kept; a block no larger than one before
 * codes in the very buffers the largest gave back.
 */
Test(block, reused_buffers_code_the_same)
{
	static const uint32_t BIG[] = {4000, 9000, 300, 7000, 64, 5000, 6000, 8000};
	static const uint32_t MID[] = {900, 10, 3000, 1, 64, 500, 2000, 70};
	const uint32_t *lens[] = {LEN, BIG, MID, BIG, LEN};
	struct da_bufs kb = {0};
	struct da_code *c;
	const unsigned k = 4, m = 3;
	uint8_t *last_payload = NULL, *last_parity = NULL;
	size_t last_size = 0;

	cr_assert_eq(da_code_new(k, m, &c), 0);
	for (unsigned round = 0; round < 5; round++) {
		struct t_block b;
		struct da_block fresh, reused;
		struct da_record rf, rr;
		uint8_t bh[32], *buf, ef[DA_RECORD_LEN], er[DA_RECORD_LEN];
		size_t cap, len, S;

		t_block_make(&b, NS, lens[round], 8, k, 11 + round);
		seq_block_hash(bh, &b.hdr);
		cr_assert_eq(da_payload_build_reuse(&kb, &b.hdr, b.sig, b.ns, b.txs, k, &buf, &cap,
						    &len, &S), 0);
		cr_assert_eq(len, b.payload_len);
		cr_assert_eq(S, b.S);
		cr_assert_geq(cap, k * S);
		if (k * S <= last_size)
			cr_assert_eq(buf, last_payload, "round %u: the payload buffer is reused", round);
		cr_assert_eq(da_block_encode_reuse(&kb, &reused, &rr, c, buf, cap, len, S,
						   b.hdr.height, bh), 0);
		if (k * S <= last_size)
			cr_assert_eq(reused.parity, last_parity, "round %u: the parity is reused", round);
		cr_assert_eq(da_block_encode(&fresh, &rf, c, b.buf, b.payload_len, b.S, b.hdr.height,
					     bh), 0);
		b.buf = NULL; /* owned by fresh */
		da_record_encode(ef, &rf);
		da_record_encode(er, &rr);
		cr_assert_arr_eq(er, ef, DA_RECORD_LEN, "round %u: the record differs", round);
		for (unsigned i = 0; i < k + m; i++) {
			cr_assert_arr_eq(reused.shard[i], fresh.shard[i], S, "round %u shard %u", round, i);
			cr_assert_arr_eq(reused.leaf[i], fresh.leaf[i], 32);
		}
		if (k * S > last_size) {
			last_size = k * S;
			last_payload = reused.payload;
			last_parity = reused.parity;
		}
		da_block_recycle(&reused, &kb);
		cr_assert_eq(kb.payload, last_payload, "round %u: the larger payload is kept", round);
		cr_assert_eq(kb.parity, last_parity);
		cr_assert_eq(kb.payload_cap, last_size);
		cr_assert_null(reused.payload);
		da_block_free(&fresh);
		t_block_free(&b);
	}
	da_bufs_free(&kb);
	cr_assert_null(kb.payload);
	da_code_free(c);
}

/*
 * The data shards are the payload buffer itself, sliced: da_block_encode
 * keeps the buffer it is given, shard i < k is payload + i * S and parity
 * shard j is parity + j * S, with no copy, through both the fresh and the
 * reusing entry points.
 */
Test(block, data_shards_are_slices_of_the_payload)
{
	const unsigned k = 5, m = 3;
	struct da_bufs kb = {0};
	struct t_block b;
	struct da_code *c;
	struct da_block blk;
	struct da_record r;
	uint8_t bh[32], *buf;
	size_t cap, len, S;

	t_block_make(&b, NS, LEN, 8, k, 3);
	cr_assert_eq(da_code_new(k, m, &c), 0);
	seq_block_hash(bh, &b.hdr);
	buf = b.buf;
	cr_assert_eq(da_block_encode(&blk, &r, c, b.buf, b.payload_len, b.S, b.hdr.height, bh), 0);
	b.buf = NULL; /* owned by blk now */
	cr_assert_eq(blk.payload, buf, "the block keeps the payload buffer it was given");
	for (unsigned i = 0; i < k; i++)
		cr_assert_eq(blk.shard[i], buf + (size_t)i * blk.S, "data shard %u", i);
	for (unsigned i = 0; i < m; i++)
		cr_assert_eq(blk.shard[k + i], blk.parity + (size_t)i * blk.S, "parity %u", i);
	da_block_free(&blk);

	cr_assert_eq(da_payload_build_reuse(&kb, &b.hdr, b.sig, b.ns, b.txs, k, &buf, &cap, &len,
					    &S), 0);
	cr_assert_eq(da_block_encode_reuse(&kb, &blk, &r, c, buf, cap, len, S, b.hdr.height, bh),
		     0);
	cr_assert_eq(blk.payload, buf, "the reusing encode keeps the payload buffer too");
	for (unsigned i = 0; i < k; i++)
		cr_assert_eq(blk.shard[i], buf + (size_t)i * S, "reused: data shard %u", i);
	for (unsigned i = 0; i < m; i++)
		cr_assert_eq(blk.shard[k + i], blk.parity + (size_t)i * S, "reused: parity %u", i);
	da_block_recycle(&blk, &kb);
	da_bufs_free(&kb);
	da_code_free(c);
	t_block_free(&b);
}

/*
 * A block large enough to be coded in column slices (over 2 MiB of data
 * shards) gets the leaves whole shards hash to: the leaves are hashed slice
 * by slice as the coding goes (da_encode_each), with the 3-byte prefix
 * leaving every slice off the hash's 64-byte blocks.
 */
Test(block, leaves_hashed_per_slice_match_whole_shards)
{
	static const uint32_t HUGE[] = {700001, 3, 650000, 99, 64, 500000, 333333, 12345};
	const unsigned k = 16, m = 5;
	struct t_block b;
	struct da_code *c;
	struct da_block blk;
	struct da_record r;
	uint8_t bh[32], leaf[32], root[32];

	t_block_make(&b, NS, HUGE, 8, k, 5);
	cr_assert_gt(k * b.S, (size_t)2 << 20, "the block must be sliced");
	cr_assert_neq(b.S % (32 * 1024), 0);
	cr_assert_eq(da_code_new(k, m, &c), 0);
	seq_block_hash(bh, &b.hdr);
	cr_assert_eq(da_block_encode(&blk, &r, c, b.buf, b.payload_len, b.S, b.hdr.height, bh), 0);
	b.buf = NULL;
	for (unsigned i = 0; i < k + m; i++) {
		da_shard_leaf(leaf, i, blk.shard[i], b.S);
		cr_assert_arr_eq(blk.leaf[i], leaf, 32, "leaf %u", i);
		cr_assert_eq(blk.crc[i], da__crc32c(0, blk.shard[i], b.S), "CRC of shard %u", i);
	}
	cr_assert_eq(da_shard_root(root, blk.shard, k + m, b.S), 0);
	cr_assert_arr_eq(r.shard_root, root, 32);
	da_block_free(&blk);
	da_code_free(c);
	t_block_free(&b);
}

/*
 * The CRC-32C of a || b joined from the CRCs of a and b and b's length is
 * the CRC of the whole, for lengths of b from 0 up past a MiB, odd ones
 * included, and the check value holds for the standard input.
 */
Test(block, crc_join_matches_the_crc_of_the_whole)
{
	static const size_t LENS[] = {0, 1, 3, 63, 64, 4095, 4096, 65537, (1u << 20) + 7};
	size_t cap = (1u << 20) + 7 + 300;
	uint8_t *buf = malloc(cap);
	uint64_t x = 0x9e3779b97f4a7c15ull;

	cr_assert_eq(da__crc32c(0, (const uint8_t *)"123456789", 9), 0xe3069283u);
	for (size_t i = 0; i < cap; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		buf[i] = (uint8_t)x;
	}
	for (size_t a = 0; a < 300; a += 37) {
		for (size_t j = 0; j < sizeof(LENS) / sizeof(LENS[0]); j++) {
			size_t bl = LENS[j];
			uint32_t op = da__crc32c_shift_op(bl), whole = da__crc32c(0, buf, a + bl);

			cr_assert_eq(da__crc32c_join(op, da__crc32c(0, buf, a), da__crc32c(0, buf + a, bl)),
				     whole, "|a| = %zu, |b| = %zu", a, bl);
		}
	}
	free(buf);
}

/* A payload buffer smaller than its k * S is refused, and freed. */
Test(block, reuse_refuses_a_short_buffer)
{
	struct da_bufs kb = {0};
	struct da_block blk;
	struct da_record r;
	struct da_code *c;
	struct t_block b;
	uint8_t bh[32] = {0};

	t_block_make(&b, NS, LEN, 8, 4, 5);
	cr_assert_eq(da_code_new(4, 2, &c), 0);
	cr_assert_eq(da_block_encode_reuse(&kb, &blk, &r, c, b.buf, 4 * b.S - 64, b.payload_len,
					   b.S, 1, bh), DA_EINVAL);
	b.buf = NULL; /* freed by the refusal (the sanitizer build checks) */
	cr_assert_null(blk.parity);
	cr_assert_null(kb.parity);
	da_code_free(c);
	t_block_free(&b);
}

Test(record, rejects)
{
	struct coded x;
	uint8_t enc[DA_RECORD_LEN], bad[DA_RECORD_LEN];
	struct da_record r2;
	/* offset, xor: magic, version, k, m, S, payload_len */
	static const size_t offs[] = {0, 7, 49, 50, 55, 60};

	coded_make(&x, 4, 2);
	da_record_encode(enc, &x.r);
	cr_assert_eq(da_record_decode(&r2, enc, sizeof(enc) - 1), DA_EDECODE);
	for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
		memcpy(bad, enc, sizeof(bad));
		bad[offs[i]] ^= 0x40;
		cr_expect_eq(da_record_decode(&r2, bad, sizeof(bad)), DA_EDECODE, "offset %zu", offs[i]);
	}
	memcpy(bad, enc, sizeof(bad));
	da__put_u16(bad + 48, 200); /* k + m = 202 fine but S no longer matches */
	cr_assert_eq(da_record_decode(&r2, bad, sizeof(bad)), DA_EDECODE);
	coded_free(&x);
}

Test(shard_proof, round_trip_and_rejects)
{
	struct coded x;
	struct seq_merkle_tree t;
	struct da_shard_proof p, q;
	uint8_t *buf;
	size_t len;

	coded_make(&x, 5, 3);
	cr_assert_eq(da_shard_tree(&t, x.blk.shard, 8, x.r.S), 0);
	cr_assert_eq(memcmp(seq_merkle_tree_root(&t), x.r.shard_root, 32), 0);
	for (unsigned i = 0; i < 8; i++) {
		cr_assert_eq(da_shard_proof_build(&p, &x.r, &t, i, x.blk.shard[i]), 0);
		len = da_shard_proof_len(&p);
		buf = malloc(len);
		cr_assert_eq(da_shard_proof_encode(&p, buf, len - 1), DA_EINVAL);
		cr_assert_eq(da_shard_proof_encode(&p, buf, len), 0);
		cr_assert_eq(da_shard_proof_decode(&q, buf, len), 0);
		cr_assert_eq(da_shard_proof_verify(&q), 0, "shard %u", i);
		cr_assert_eq(da_shard_proof_decode(&q, buf, len - 1), DA_EDECODE);

		/* Flipped bit in the shard bytes. */
		buf[len - 1] ^= 1;
		cr_assert_eq(da_shard_proof_decode(&q, buf, len), 0);
		cr_assert_eq(da_shard_proof_verify(&q), DA_EPROOF);
		buf[len - 1] ^= 1;
		/* Flipped bit in the path. */
		buf[DA_RECORD_LEN + 3 + 5] ^= 1;
		cr_assert_eq(da_shard_proof_decode(&q, buf, len), 0);
		cr_assert_eq(da_shard_proof_verify(&q), DA_EPROOF);
		buf[DA_RECORD_LEN + 3 + 5] ^= 1;
		/* Flipped root in the record. */
		buf[70] ^= 1;
		cr_assert_eq(da_shard_proof_decode(&q, buf, len), 0);
		cr_assert_eq(da_shard_proof_verify(&q), DA_EPROOF);
		buf[70] ^= 1;
		/* Another index (same path depth): the leaf tag binds the index. */
		cr_assert_eq(da_shard_proof_decode(&q, buf, len), 0);
		q.index ^= 1;
		if (q.index < 8)
			cr_assert_eq(da_shard_proof_verify(&q), DA_EPROOF);
		/* Index out of range and wrong path length are decode errors. */
		da__put_u16(buf + DA_RECORD_LEN, 8);
		cr_assert_eq(da_shard_proof_decode(&q, buf, len), DA_EDECODE);
		da__put_u16(buf + DA_RECORD_LEN, (uint16_t)i);
		buf[DA_RECORD_LEN + 2] += 1;
		cr_assert_eq(da_shard_proof_decode(&q, buf, len), DA_EDECODE);
		free(buf);
	}
	seq_merkle_tree_free(&t);
	coded_free(&x);
}

/* Build, encode, decode, verify; returns the verify result on the decoded form. */
static int ns_round(const struct da_payload *pl, uint64_t ns, int *present,
		    void (*mut)(uint8_t *buf, size_t *len, struct da_ns_proof *p))
{
	struct da_ns_proof p, q;
	uint8_t *buf;
	size_t len;
	int rc;

	cr_assert_eq(da_ns_proof_build(&p, pl, ns), 0);
	*present = p.present;
	cr_assert_eq(da_ns_proof_encode(&p, &buf, &len), 0);
	buf = realloc(buf, len + 4096); /* room for mutations that grow it */
	cr_assert_not_null(buf);
	if (mut != NULL)
		mut(buf, &len, &p);
	rc = da_ns_proof_decode(&q, buf, len);
	if (rc == 0) {
		rc = da_ns_proof_verify(&q, &pl->hdr, t_hash, NULL);
		da_ns_proof_free(&q);
	}
	da_ns_proof_free(&p);
	free(buf);
	return rc;
}

Test(ns_proof, presence_and_absence)
{
	struct t_block b;
	struct da_payload pl;
	int present;

	t_block_make(&b, NS, LEN, 8, 4, 12);
	cr_assert_eq(da_payload_parse(&pl, b.buf, b.S * 4, b.payload_len), 0);
	for (uint64_t ns = 0; ns < 25; ns++) {
		int want = ns == 3 || ns == 7 || ns == 9 || ns == 20;

		cr_assert_eq(ns_round(&pl, ns, &present, NULL), 0, "ns %lu", (unsigned long)ns);
		cr_assert_eq(present, want);
	}
	cr_assert_eq(ns_round(&pl, UINT64_MAX, &present, NULL), 0);
	da_payload_free(&pl);
	t_block_free(&b);
}

/* Offsets in a presence proof: 17 magic..kind, index u32, count u64, path_len u8. */
#define P_PATH 30
static size_t p_tx_off(const struct da_ns_proof *p) { return P_PATH + (size_t)p->leaf.path_len * 32; }

static void m_data(uint8_t *b, size_t *l, struct da_ns_proof *p) { (void)p; b[*l - 1] ^= 1; }
static void m_path(uint8_t *b, size_t *l, struct da_ns_proof *p) { (void)l; (void)p; b[P_PATH] ^= 1; }
static void m_index(uint8_t *b, size_t *l, struct da_ns_proof *p) { (void)l; (void)p; b[20] ^= 1; }
static void m_seq(uint8_t *b, size_t *l, struct da_ns_proof *p) { (void)l; b[p_tx_off(p) + 7] ^= 1; }
static void m_ns(uint8_t *b, size_t *l, struct da_ns_proof *p) { (void)l; (void)p; b[15] ^= 1; }
/* Drop the last tx (count - 1): the leaf commits to count. */
static void m_missing(uint8_t *b, size_t *l, struct da_ns_proof *p)
{
	*l -= 12 + p->txs[p->count - 1].len;
	da__put_u64(b + 21, p->count - 1);
}
/* Duplicate the last tx (count + 1). */
static void m_extra(uint8_t *b, size_t *l, struct da_ns_proof *p)
{
	size_t tl = 12 + p->txs[p->count - 1].len;

	memcpy(b + *l, b + *l - tl, tl);
	da__put_u64(b + *l + tl - 12 - p->txs[p->count - 1].len, p->txs[p->count - 1].seq + 1);
	*l += tl;
	da__put_u64(b + 21, p->count + 1);
}
static void m_count_only(uint8_t *b, size_t *l, struct da_ns_proof *p)
{
	(void)l;
	da__put_u64(b + 21, p->count + 1);
}
static void m_trail(uint8_t *b, size_t *l, struct da_ns_proof *p) { (void)p; b[(*l)++] = 0; }

Test(ns_proof, presence_rejects)
{
	static const struct {
		const char *name;
		void (*fn)(uint8_t *, size_t *, struct da_ns_proof *);
	} cases[] = {
		{"flipped tx data", m_data}, {"flipped path", m_path},
		{"wrong index", m_index},    {"wrong seq", m_seq},
		{"other namespace", m_ns},   {"missing tx", m_missing},
		{"extra tx", m_extra},       {"wrong count", m_count_only},
		{"trailing byte", m_trail},
	};
	struct t_block b;
	struct da_payload pl;
	int present;

	t_block_make(&b, NS, LEN, 8, 4, 13);
	cr_assert_eq(da_payload_parse(&pl, b.buf, b.S * 4, b.payload_len), 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = ns_round(&pl, 20, &present, cases[i].fn);

		cr_expect(present);
		cr_expect(rc == DA_EPROOF || rc == DA_EDECODE, "%s: rc %d", cases[i].name, rc);
	}
	da_payload_free(&pl);
	t_block_free(&b);
}

/* An absence proof for a present namespace cannot be made to verify. */
Test(ns_proof, absence_rejects)
{
	struct t_block b;
	struct da_payload pl;
	struct da_ns_proof p, q;
	uint8_t *buf;
	size_t len;

	t_block_make(&b, NS, LEN, 8, 4, 14);
	cr_assert_eq(da_payload_parse(&pl, b.buf, b.S * 4, b.payload_len), 0);
	/* Absence of 8: brackets 7 and 9. Reuse them to claim 7 or 9 absent. */
	cr_assert_eq(da_ns_proof_build(&p, &pl, 8), 0);
	cr_assert_eq(p.present, 0);
	cr_assert_eq(p.n_adj, 2);
	cr_assert_eq(da_ns_proof_verify(&p, &pl.hdr, t_hash, NULL), 0);
	p.ns = 7;
	cr_assert_eq(da_ns_proof_verify(&p, &pl.hdr, t_hash, NULL), DA_EPROOF);
	p.ns = 9;
	cr_assert_eq(da_ns_proof_verify(&p, &pl.hdr, t_hash, NULL), DA_EPROOF);
	/* Non-adjacent brackets (3 and 9 around 7) are rejected. */
	p.ns = 8;
	cr_assert_eq(da_ns_proof_build(&q, &pl, 4), 0); /* brackets 3, 7 */
	p.adj[0] = q.adj[0];
	p.ns = 7;
	cr_assert_eq(da_ns_proof_verify(&p, &pl.hdr, t_hash, NULL), DA_EPROOF);
	/* Only one bracket in the middle of the table. */
	cr_assert_eq(da_ns_proof_build(&p, &pl, 8), 0);
	p.n_adj = 1;
	cr_assert_eq(da_ns_proof_verify(&p, &pl.hdr, t_hash, NULL), DA_EPROOF);
	/* Edge proof: 100 is above every namespace; a flipped count fails. */
	cr_assert_eq(da_ns_proof_build(&p, &pl, 100), 0);
	cr_assert_eq(p.n_adj, 1);
	cr_assert_eq(da_ns_proof_verify(&p, &pl.hdr, t_hash, NULL), 0);
	p.adj[0].count++;
	cr_assert_eq(da_ns_proof_verify(&p, &pl.hdr, t_hash, NULL), DA_EPROOF);
	/* Zero brackets against a non-empty table. */
	p.n_adj = 0;
	cr_assert_eq(da_ns_proof_verify(&p, &pl.hdr, t_hash, NULL), DA_EPROOF);
	/* Decoder: an encoded absence proof with a flipped bracket path. */
	cr_assert_eq(da_ns_proof_build(&p, &pl, 8), 0);
	cr_assert_eq(da_ns_proof_encode(&p, &buf, &len), 0);
	cr_assert_eq(da_ns_proof_decode(&q, buf, len), 0);
	cr_assert_eq(da_ns_proof_verify(&q, &pl.hdr, t_hash, NULL), 0);
	buf[len - 1] ^= 1;
	cr_assert_eq(da_ns_proof_decode(&q, buf, len), 0);
	cr_assert_eq(da_ns_proof_verify(&q, &pl.hdr, t_hash, NULL), DA_EPROOF);
	cr_assert_eq(da_ns_proof_decode(&q, buf, len - 1), DA_EDECODE);
	free(buf);
	da_ns_proof_free(&p);
	da_payload_free(&pl);
	t_block_free(&b);
}

Test(ns_proof, empty_block)
{
	struct t_block b;
	struct da_payload pl;
	struct da_ns_proof p;
	int present;

	t_block_make(&b, NULL, NULL, 0, 4, 15);
	cr_assert_eq(da_payload_parse(&pl, b.buf, b.S * 4, b.payload_len), 0);
	cr_assert_eq(ns_round(&pl, 5, &present, NULL), 0);
	cr_assert_eq(present, 0);
	cr_assert_eq(da_ns_proof_build(&p, &pl, 5), 0);
	cr_assert_eq(p.n_adj, 0);
	pl.hdr.ns_root[0] ^= 1; /* a header claiming an empty table with a non-empty root */
	cr_assert_eq(da_ns_proof_verify(&p, &pl.hdr, t_hash, NULL), DA_EPROOF);
	da_payload_free(&pl);
	t_block_free(&b);
}
