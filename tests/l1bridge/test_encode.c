/*
 * test_encode.c - RLP and ABI encoding against `cast to-rlp` and
 * `cast calldata` on random inputs (seeded: a failure names its case), and
 * the Inbox event decoder on hand-built and corrupted logs.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "l1bridge/l1.h"

#include "tests/l1bridge/helpers.h"

static char *hexs(char *out, const uint8_t *p, size_t n)
{
	l1_hex_encode(out, p, n);
	return out;
}

/* ---------------------------------------------------------------- RLP */

/* Appends a random item to both our encoder and a JSON description for
 * cast; depth-limited. */
static void rand_item(uint64_t *s, struct l1_rlp_enc *e, char *json, size_t cap, int depth)
{
	unsigned kind = (unsigned)(l1t_rand(s) % (depth < 3 ? 4 : 3));
	size_t at = strlen(json);

	if (kind == 0) { /* integer */
		uint64_t v = l1t_rand(s) >> (l1t_rand(s) % 64);
		v &= (UINT64_C(1) << 53) - 1; /* JSON numbers stay exact */
		l1_rlp_put_u64(e, v);
		snprintf(json + at, cap - at, "%" PRIu64, v);
	} else if (kind <= 2) { /* byte string: short, 1 byte, or long */
		uint8_t b[200];
		char h[403];
		size_t n = kind == 1 ? l1t_rand(s) % 3 : l1t_rand(s) % sizeof(b);
		l1t_rand_bytes(s, b, n);
		l1_rlp_put_bytes(e, b, n);
		snprintf(json + at, cap - at, "\"%s\"", hexs(h, b, n));
	} else { /* list */
		size_t n = l1t_rand(s) % 5;
		l1_rlp_list_begin(e);
		snprintf(json + at, cap - at, "[");
		for (size_t i = 0; i < n; i++) {
			if (i > 0)
				strncat(json, ",", cap - strlen(json) - 1);
			rand_item(s, e, json, cap, depth + 1);
		}
		l1_rlp_list_end(e);
		strncat(json, "]", cap - strlen(json) - 1);
	}
}

Test(rlp_enc, random_lists_match_cast)
{
	static char json[12000], want[16400], got[16400];
	static uint8_t buf[8192];
	uint64_t s = 0x5eed1;

	for (int round = 0; round < 40; round++) {
		struct l1_rlp_enc e;
		struct l1_rlp_item it;
		size_t len = 0;

		json[0] = '\0';
		l1_rlp_enc_init(&e, buf, sizeof(buf));
		l1_rlp_list_begin(&e);
		strcat(json, "[");
		for (int i = 0; i < 4; i++) {
			if (i)
				strcat(json, ",");
			rand_item(&s, &e, json, sizeof(json), 1);
		}
		strcat(json, "]");
		l1_rlp_list_end(&e);
		cr_assert_eq(l1_rlp_enc_finish(&e, &len), 0);
		l1t_cast(want, sizeof(want), "to-rlp '%s'", json);
		cr_assert_str_eq(hexs(got, buf, len), want, "round %d: %s", round, json);
		cr_assert_eq(l1_rlp_decode(&it, buf, len), 0, "our output decodes strictly");
	}
}

Test(rlp_enc, integers_are_minimal)
{
	uint8_t buf[64], w[32] = { 0 };
	struct l1_rlp_enc e;
	size_t len;

	l1_rlp_enc_init(&e, buf, sizeof(buf));
	l1_rlp_put_u64(&e, 0);
	l1_rlp_put_u64(&e, 0x7f);
	l1_rlp_put_u64(&e, 0x80);
	l1_rlp_put_u64(&e, 0x0400);
	l1_rlp_put_uint256(&e, w);
	w[31] = 1;
	l1_rlp_put_uint256(&e, w);
	cr_assert_eq(l1_rlp_enc_finish(&e, &len), 0);
	cr_assert_eq(len, 1 + 1 + 2 + 3 + 1 + 1);
	cr_assert_eq(memcmp(buf, "\x80\x7f\x81\x80\x82\x04\x00\x80\x01", len), 0);
}

Test(rlp_enc, bounded_and_sticky_errors)
{
	uint8_t buf[4], big[60] = { 0 };
	struct l1_rlp_enc e;
	size_t len;

	l1_rlp_enc_init(&e, buf, sizeof(buf));
	cr_assert_eq(l1_rlp_put_bytes(&e, big, 4), L1_ENOSPC);
	cr_assert_eq(l1_rlp_put_u64(&e, 1), L1_ENOSPC, "sticky");
	cr_assert_eq(l1_rlp_enc_finish(&e, &len), L1_ENOSPC);

	/* a list whose header does not fit after its payload */
	l1_rlp_enc_init(&e, buf, sizeof(buf));
	l1_rlp_list_begin(&e);
	l1_rlp_put_bytes(&e, big, 3);
	cr_assert_eq(l1_rlp_list_end(&e), L1_ENOSPC);

	l1_rlp_enc_init(&e, buf, sizeof(buf));
	l1_rlp_list_begin(&e);
	cr_assert_eq(l1_rlp_enc_finish(&e, &len), L1_EINVAL, "open list");
	l1_rlp_enc_init(&e, buf, sizeof(buf));
	cr_assert_eq(l1_rlp_list_end(&e), L1_EINVAL, "unbalanced end");
	l1_rlp_enc_init(&e, buf, sizeof(buf));
	for (int i = 0; i < L1_RLP_MAX_DEPTH; i++)
		cr_assert_eq(l1_rlp_list_begin(&e), 0);
	cr_assert_eq(l1_rlp_list_begin(&e), L1_ERLP_DEPTH);
}

/* ---------------------------------------------------------------- ABI */

Test(abi, selectors)
{
	uint8_t sel[4];

	l1_abi_selector(sel, "transfer(address,uint256)");
	cr_assert_eq(memcmp(sel, "\xa9\x05\x9c\xbb", 4), 0);
}

static void list_u64(char *out, size_t cap, const uint64_t *v, size_t n)
{
	size_t at = 0;

	at += (size_t)snprintf(out + at, cap - at, "[");
	for (size_t i = 0; i < n; i++)
		at += (size_t)snprintf(out + at, cap - at, "%s%" PRIu64, i ? "," : "", v[i]);
	snprintf(out + at, cap - at, "]");
}

static void list_b32(char *out, size_t cap, const uint8_t (*v)[32], size_t n)
{
	size_t at = 0;
	char h[67];

	at += (size_t)snprintf(out + at, cap - at, "[");
	for (size_t i = 0; i < n; i++)
		at += (size_t)snprintf(out + at, cap - at, "%s%s", i ? "," : "", hexs(h, v[i], 32));
	snprintf(out + at, cap - at, "]");
}

Test(abi, post_batch_matches_cast_calldata)
{
	static uint8_t buf[8192], roots[40][32];
	static char want[16400], got[16400], ids_s[1024], roots_s[3000];
	uint64_t s = 0xabc1, ids[40];
	char da[67];

	for (int round = 0; round < 25; round++) {
		struct l1_inbox_batch b = { 0 };
		size_t len, n = l1t_rand(&s) % 40;

		b.index = l1t_rand(&s) >> (l1t_rand(&s) % 64);
		b.from_height = l1t_rand(&s) >> 1;
		b.to_height = l1t_rand(&s);
		l1t_rand_bytes(&s, b.da_root, 32);
		for (size_t i = 0; i < n; i++)
			ids[i] = l1t_rand(&s) >> (l1t_rand(&s) % 64);
		l1t_rand_bytes(&s, &roots[0][0], 32 * n);
		b.n_namespaces = n;
		b.namespace_ids = ids;
		b.namespace_roots = (const uint8_t(*)[32])roots;
		cr_assert_eq(l1_inbox_post_batch_calldata(buf, sizeof(buf), &len, &b), 0);
		cr_assert_eq(len, 4 + 32 * (8 + 2 * n));
		list_u64(ids_s, sizeof(ids_s), ids, n);
		list_b32(roots_s, sizeof(roots_s), (const uint8_t(*)[32])roots, n);
		l1t_cast(want, sizeof(want),
			 "calldata 'postBatch(uint64,uint64,uint64,bytes32,uint64[],bytes32[])' "
			 "%" PRIu64 " %" PRIu64 " %" PRIu64 " %s '%s' '%s'",
			 b.index, b.from_height, b.to_height, hexs(da, b.da_root, 32), ids_s, roots_s);
		cr_assert_str_eq(hexs(got, buf, len), want, "round %d", round);
		/* one byte short is refused, nothing half-written is reported */
		cr_assert_eq(l1_inbox_post_batch_calldata(buf, len - 1, &len, &b), L1_ENOSPC);
		cr_assert_eq(len, 0);
	}
}

Test(abi, post_state_root_matches_cast_calldata)
{
	static uint8_t buf[8192], loc[300];
	static char want[16400], got[16400], loc_s[700];
	uint64_t s = 0xabc2;
	char sr[67];

	for (int round = 0; round < 25; round++) {
		struct l1_inbox_state_root st = { 0 };
		size_t len;

		st.rollup_id = l1t_rand(&s) >> (l1t_rand(&s) % 64);
		st.l2_block = l1t_rand(&s);
		l1t_rand_bytes(&s, st.state_root, 32);
		st.proof_kind = (uint8_t)l1t_rand(&s);
		st.proof_locator_len = round == 0 ? 0 : l1t_rand(&s) % sizeof(loc);
		l1t_rand_bytes(&s, loc, st.proof_locator_len);
		st.proof_locator = loc;
		cr_assert_eq(l1_inbox_post_state_root_calldata(buf, sizeof(buf), &len, &st), 0);
		l1t_cast(want, sizeof(want),
			 "calldata 'postStateRoot(uint64,uint64,bytes32,uint8,bytes)' "
			 "%" PRIu64 " %" PRIu64 " %s %u %s",
			 st.rollup_id, st.l2_block, hexs(sr, st.state_root, 32), st.proof_kind,
			 hexs(loc_s, loc, st.proof_locator_len));
		cr_assert_str_eq(hexs(got, buf, len), want, "round %d", round);
	}
}

Test(abi, generic_types_match_cast)
{
	uint8_t addr[20], w[32], out[512];
	char want[2048], got[2048], ah[43], wh[67];
	struct l1_abi_arg a[3];
	uint64_t s = 7;
	size_t len;

	l1t_rand_bytes(&s, addr, 20);
	l1t_rand_bytes(&s, w, 32);
	a[0] = (struct l1_abi_arg){ .kind = L1_ABI_ADDRESS, .word = addr };
	a[1] = (struct l1_abi_arg){ .kind = L1_ABI_UINT256, .word = w };
	a[2] = (struct l1_abi_arg){ .kind = L1_ABI_UINT8, .u64 = 200 };
	cr_assert_eq(l1_abi_encode(out, sizeof(out), &len, NULL, a, 3), 0);
	l1t_cast(want, sizeof(want), "abi-encode 'f(address,uint256,uint8)' %s %s 200",
		 hexs(ah, addr, 20), hexs(wh, w, 32));
	cr_assert_str_eq(hexs(got, out, len), want);
	a[2].u64 = 256;
	cr_assert_eq(l1_abi_encode(out, sizeof(out), &len, NULL, a, 3), L1_EINVAL);
}

/* ------------------------------------------------------ Inbox events */

static uint8_t topics[4][32];
static uint8_t data[4096];

static void word64(uint8_t *w, uint64_t v)
{
	l1_u256_from_u64(w, v);
}

/* A BatchPosted log with n namespaces as the contract emits it. */
static size_t batch_log(size_t n)
{
	uint8_t *d = data;

	memcpy(topics[0], l1_inbox_event_topic(L1_EV_BATCH_POSTED), 32);
	word64(topics[1], 7);
	memset(topics[2], 0xbb, 32);
	word64(d, 100);
	word64(d + 32, 199);
	memset(d + 64, 0xda, 32);
	word64(d + 96, 160);
	word64(d + 128, 160 + 32 + 32 * n);
	word64(d + 160, n);
	for (size_t i = 0; i < n; i++)
		word64(d + 192 + 32 * i, 10 + i);
	word64(d + 192 + 32 * n, n);
	for (size_t i = 0; i < n; i++)
		memset(d + 224 + 32 * n + 32 * i, (int)(0x40 + i), 32);
	return 224 + 64 * n;
}

Test(events, batch_posted_decodes)
{
	struct l1_inbox_event ev;
	size_t len = batch_log(3);
	uint8_t root[32];
	uint64_t id;

	cr_assert_eq(l1_inbox_decode_log(&ev, (const uint8_t(*)[32])topics, 3, data, len), 0);
	cr_assert_eq(ev.kind, L1_EV_BATCH_POSTED);
	cr_assert_eq(ev.u.batch.index, 7);
	cr_assert_eq(ev.u.batch.from_height, 100);
	cr_assert_eq(ev.u.batch.to_height, 199);
	cr_assert_eq(ev.u.batch.batch_hash[0], 0xbb);
	cr_assert_eq(ev.u.batch.da_root[31], 0xda);
	cr_assert_eq(ev.u.batch.n_namespaces, 3);
	l1_inbox_event_namespace(&ev, 2, &id, root);
	cr_assert_eq(id, 12);
	cr_assert_eq(root[0], 0x42);
}

Test(events, batch_posted_rejects_every_corruption)
{
	struct l1_inbox_event ev;
	size_t len = batch_log(2);
	const uint8_t(*t)[32] = (const uint8_t(*)[32])topics;

	cr_assert_eq(l1_inbox_decode_log(&ev, t, 2, data, len), L1_EABI, "topic count");
	cr_assert_eq(l1_inbox_decode_log(&ev, t, 3, data, len - 32), L1_EABI, "truncated");
	cr_assert_eq(l1_inbox_decode_log(&ev, t, 3, data, len + 32), L1_EABI, "trailing");
	for (size_t i = 0; i < len; i++) {
		/* every byte of the data is either a value byte or checked: flip
		 * each and require a clean answer (0 or L1_EABI), never a crash */
		int rc;
		data[i] ^= 0x80;
		rc = l1_inbox_decode_log(&ev, t, 3, data, len);
		cr_assert(rc == 0 || rc == L1_EABI, "byte %zu: %d", i, rc);
		data[i] ^= 0x80;
	}
	data[96 + 31] = 0xc0; /* ids offset not canonical */
	cr_assert_eq(l1_inbox_decode_log(&ev, t, 3, data, len), L1_EABI);
	batch_log(2);
	data[160 + 31] = 0xff; /* ids length past the data */
	cr_assert_eq(l1_inbox_decode_log(&ev, t, 3, data, len), L1_EABI);
	batch_log(2);
	data[192] = 1; /* an id above 2^64 */
	cr_assert_eq(l1_inbox_decode_log(&ev, t, 3, data, len), L1_EABI);
	batch_log(2);
	topics[1][0] = 1; /* index above 2^64 */
	cr_assert_eq(l1_inbox_decode_log(&ev, t, 3, data, len), L1_EABI);
	batch_log(2);
	topics[0][5] ^= 1;
	cr_assert_eq(l1_inbox_decode_log(&ev, t, 3, data, len), L1_EABI_TOPIC);
}

Test(events, state_root_and_changes)
{
	struct l1_inbox_event ev;
	const uint8_t(*t)[32] = (const uint8_t(*)[32])topics;
	uint8_t *d = data;

	memset(topics, 0, sizeof(topics));
	memcpy(topics[0], l1_inbox_event_topic(L1_EV_STATE_ROOT_POSTED), 32);
	word64(topics[1], 5);
	word64(topics[2], 77);
	memset(d, 0x5a, 32);
	word64(d + 32, 2);
	memset(d + 64, 0, 32);
	memset(d + 64 + 12, 0xee, 20);
	word64(d + 96, 128);
	word64(d + 128, 3);
	memset(d + 160, 0, 32);
	memcpy(d + 160, "abc", 3);
	cr_assert_eq(l1_inbox_decode_log(&ev, t, 3, d, 192), 0);
	cr_assert_eq(ev.u.state_root.rollup_id, 5);
	cr_assert_eq(ev.u.state_root.l2_block, 77);
	cr_assert_eq(ev.u.state_root.proof_kind, 2);
	cr_assert_eq(ev.u.state_root.sender[19], 0xee);
	cr_assert_eq(ev.u.state_root.proof_locator_len, 3);
	cr_assert_eq(memcmp(ev.u.state_root.proof_locator, "abc", 3), 0);
	d[160 + 5] = 1; /* nonzero padding */
	cr_assert_eq(l1_inbox_decode_log(&ev, t, 3, d, 192), L1_EABI);
	d[160 + 5] = 0;
	word64(d + 32, 256); /* proofKind out of uint8 */
	cr_assert_eq(l1_inbox_decode_log(&ev, t, 3, d, 192), L1_EABI);

	memset(topics, 0, sizeof(topics));
	memcpy(topics[0], l1_inbox_event_topic(L1_EV_ROLLUP_KEY_CHANGED), 32);
	word64(topics[1], 9);
	memset(topics[3] + 12, 0x11, 20);
	cr_assert_eq(l1_inbox_decode_log(&ev, t, 4, d, 0), 0);
	cr_assert_eq(ev.kind, L1_EV_ROLLUP_KEY_CHANGED);
	cr_assert_eq(ev.u.change.rollup_id, 9);
	cr_assert_eq(ev.u.change.next[0], 0x11);
	topics[2][0] = 1; /* not an address */
	cr_assert_eq(l1_inbox_decode_log(&ev, t, 4, d, 0), L1_EABI);
	cr_assert_eq(l1_inbox_decode_log(&ev, t, 0, d, 0), L1_EABI_TOPIC);
}

Test(events, topics_are_keccak_of_signatures)
{
	char want[80], got[80];

	l1t_cast(want, sizeof(want), "keccak '%s'",
		 "BatchPosted(uint64,bytes32,uint64,uint64,bytes32,uint64[],bytes32[])");
	cr_assert_str_eq(hexs(got, l1_inbox_event_topic(L1_EV_BATCH_POSTED), 32), want);
	cr_assert_null(l1_inbox_event_topic(0));
	cr_assert_null(l1_inbox_event_topic(99));
}
