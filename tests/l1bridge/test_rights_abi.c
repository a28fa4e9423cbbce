/*
 * test_rights_abi.c - postPurchases / settleSale calldata against `cast
 * calldata`, and strict decoding of the ticket events against `cast
 * abi-encode` data.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "l1bridge/l1.h"

#include "tests/l1bridge/helpers.h"

static char big[65536], want[65536], got[65536];
static uint8_t buf[32768];

/* Appends to a growing argument string. */
static size_t cat(char *s, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static size_t cat(char *s, size_t n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	n += (size_t)vsnprintf(s + n, sizeof(big) - n, fmt, ap);
	va_end(ap);
	cr_assert(n < sizeof(big));
	return n;
}

Test(rights_abi, post_purchases_matches_cast)
{
	uint64_t s = 0x9090, ids[6][8];
	struct l1_purchase p[6];
	uint8_t sigs[6][65];
	char h[200];
	size_t len, n;

	for (size_t count = 0; count <= 5; count += 1) {
		uint64_t sale = l1t_rand(&s) >> 3;

		n = cat(big, 0, "'postPurchases(uint64,(uint64,uint64[],uint64,uint64,uint64)[],bytes[])' %" PRIu64 " '[", sale);
		for (size_t i = 0; i < count; i++) {
			p[i] = (struct l1_purchase){ .sale_id = i == 2 ? sale + 1 : sale,
						     .rollups = ids[i], .n_rollups = (i * 3) % 8,
						     .tickets = l1t_rand(&s) >> 40,
						     .price_gwei = l1t_rand(&s) >> 26,
						     .nonce = l1t_rand(&s) };
			for (size_t j = 0; j < p[i].n_rollups; j++)
				ids[i][j] = l1t_rand(&s) >> (j * 7);
			l1t_rand_bytes(&s, sigs[i], 65);
			n = cat(big, n, "%s(%" PRIu64 ",[", i ? "," : "", p[i].sale_id);
			for (size_t j = 0; j < p[i].n_rollups; j++)
				n = cat(big, n, "%s%" PRIu64, j ? "," : "", ids[i][j]);
			n = cat(big, n, "],%" PRIu64 ",%" PRIu64 ",%" PRIu64 ")", p[i].tickets,
				p[i].price_gwei, p[i].nonce);
		}
		n = cat(big, n, "]' '[");
		for (size_t i = 0; i < count; i++) {
			l1_hex_encode(h, sigs[i], 65);
			n = cat(big, n, "%s%s", i ? "," : "", h);
		}
		cat(big, n, "]'");
		l1t_cast(want, sizeof(want), "calldata %s", big);
		cr_assert_eq(l1_inbox_post_purchases_calldata(buf, sizeof(buf), &len, sale, p, sigs,
							      count), 0);
		cr_assert_eq(len, l1_inbox_post_purchases_size(p, count));
		l1_hex_encode(got, buf, len);
		cr_assert_str_eq(got, want, "%zu purchases", count);
		cr_assert_eq(l1_inbox_post_purchases_calldata(buf, len - 1, &len, sale, p, sigs,
							      count), L1_ENOSPC);
	}
}

Test(rights_abi, settle_sale_matches_cast)
{
	uint64_t s = 0x5e77;
	struct l1_settle_buyer b[4];
	struct l1_settle_credit c[5];
	struct l1_inbox_settlement st;
	char a[43];
	size_t len, n;

	for (size_t nb = 0; nb <= 4; nb += 2) {
		for (size_t nc = 0; nc <= 5; nc += 5) {
			uint64_t burn = l1t_rand(&s) >> 4;

			st = (struct l1_inbox_settlement){ .sale_id = l1t_rand(&s), .buyers = b,
							   .n_buyers = nb, .credits = c,
							   .n_credits = nc };
			l1_u256_from_gwei(st.burn, burn);
			n = cat(big, 0,
				"'settleSale(uint64,((address,uint256,uint256)[],(uint64,uint256)[],uint256))' %" PRIu64 " '([",
				st.sale_id);
			for (size_t i = 0; i < nb; i++) {
				uint64_t ch = l1t_rand(&s) >> 2, rf = l1t_rand(&s) >> 30;
				l1t_rand_bytes(&s, b[i].addr, 20);
				l1_u256_from_gwei(b[i].charged, ch);
				l1_u256_from_gwei(b[i].refund, rf);
				l1_hex_encode(a, b[i].addr, 20);
				n = cat(big, n, "%s(%s,%" PRIu64 "000000000,%" PRIu64 "000000000)",
					i ? "," : "", a, ch, rf);
			}
			n = cat(big, n, "],[");
			for (size_t i = 0; i < nc; i++) {
				uint64_t amt = l1t_rand(&s);
				c[i].rollup_id = l1t_rand(&s);
				l1_u256_from_gwei(c[i].amount, amt);
				n = cat(big, n, "%s(%" PRIu64 ",%" PRIu64 "000000000)", i ? "," : "",
					c[i].rollup_id, amt);
			}
			cat(big, n, "],%" PRIu64 "000000000)'", burn);
			l1t_cast(want, sizeof(want), "calldata %s", big);
			cr_assert_eq(l1_inbox_settle_sale_calldata(buf, sizeof(buf), &len, &st), 0);
			cr_assert_eq(len, l1_inbox_settle_sale_size(&st));
			l1_hex_encode(got, buf, len);
			cr_assert_str_eq(got, want, "%zu buyers %zu credits", nb, nc);
		}
	}
}

Test(rights_abi, gwei_to_wei)
{
	uint8_t w[32];
	char h[67];

	l1_u256_from_gwei(w, UINT64_MAX);
	l1_hex_encode(h, w, 32);
	l1t_cast(want, sizeof(want), "to-uint256 18446744073709551615000000000");
	cr_assert_str_eq(h, want);
}

/* Decodes a log whose topics and data come from cast. */
static void decode(struct l1_inbox_event *ev, const char *sig, const char *topic_args,
		   const char *data_sig, const char *data_args, int want_rc)
{
	static uint8_t topics[4][32], data[4096];
	char t[4096];
	size_t nt = 1, dlen = 0;
	const char *p = topic_args;

	l1t_cast(t, sizeof(t), "keccak '%s'", sig);
	l1t_unhex(topics[0], 32, t);
	while (p && *p) {
		char one[128];
		size_t k = strcspn(p, " ");
		snprintf(one, sizeof(one), "%.*s", (int)k, p);
		l1t_cast(t, sizeof(t), "to-uint256 %s", one);
		l1t_unhex(topics[nt++], 32, t);
		p += k + (p[k] == ' ');
	}
	if (data_sig != NULL) {
		l1t_cast(big, sizeof(big), "abi-encode '%s' %s", data_sig, data_args);
		dlen = l1t_unhex(data, sizeof(data), big);
	}
	cr_assert_eq(l1_inbox_decode_log(ev, (const uint8_t (*)[32])topics, nt, data, dlen),
		     want_rc, "%s", sig);
	if (want_rc == 0 && dlen > 0) {
		/* one byte short never decodes */
		struct l1_inbox_event e2;
		cr_assert_eq(l1_inbox_decode_log(&e2, (const uint8_t (*)[32])topics, nt, data,
						 dlen - 1), L1_EABI);
	}
}

Test(rights_abi, decode_ticket_events)
{
	struct l1_inbox_event ev;
	uint8_t w[32];

	decode(&ev, "Purchased(uint64,address,uint64,uint64,uint64,uint64[])", "9 0xabcdef",
	       "f(uint64,uint64,uint64,uint64[])", "5 3 10 '[1,2,18446744073709551615]'", 0);
	cr_assert_eq(ev.kind, L1_EV_PURCHASED);
	cr_assert_eq(ev.u.purchase.sale_id, 9);
	cr_assert_eq(ev.u.purchase.buyer[19], 0xef);
	cr_assert_eq(ev.u.purchase.nonce, 5);
	cr_assert_eq(ev.u.purchase.tickets, 3);
	cr_assert_eq(ev.u.purchase.price_gwei, 10);
	cr_assert_eq(ev.u.purchase.n_rollups, 3);
	cr_assert_eq(l1_inbox_event_rollup(&ev, 2), UINT64_MAX);

	decode(&ev, "PurchaseRejected(uint64,address,uint64,uint8)", "9 0x01",
	       "f(uint64,uint8)", "77 2", 0);
	cr_assert_eq(ev.kind, L1_EV_PURCHASE_REJECTED);
	cr_assert_eq(ev.u.purchase.nonce, 77);
	cr_assert_eq(ev.u.purchase.reason, L1_REJECT_UNFUNDED);

	decode(&ev, "SaleSettled(uint64,uint256,uint256,uint64,uint64)", "4",
	       "f(uint256,uint256,uint64,uint64)", "30000000000 3000000000 2 2", 0);
	cr_assert_eq(ev.kind, L1_EV_SALE_SETTLED);
	cr_assert_eq(ev.u.settled.sale_id, 4);
	cr_assert_eq(ev.u.settled.n_buyers, 2);
	l1_u256_from_gwei(w, 30);
	cr_assert_eq(memcmp(ev.u.settled.revenue, w, 32), 0);

	decode(&ev, "Deposited(address,uint256,uint256)", "0x1234", "f(uint256,uint256)",
	       "7000000000 9000000000", 0);
	cr_assert_eq(ev.kind, L1_EV_DEPOSITED);
	cr_assert_eq(ev.u.funds.account[19], 0x34);
	l1_u256_from_gwei(w, 9);
	cr_assert_eq(memcmp(ev.u.funds.balance, w, 32), 0);

	decode(&ev, "Withdrawn(address,uint256,uint256)", "0x1234", "f(uint256,uint256)", "1 2", 0);
	cr_assert_eq(ev.kind, L1_EV_WITHDRAWN);
	decode(&ev, "RevenueCredited(uint64,uint64,uint256)", "4 10", "f(uint256)", "5", 0);
	cr_assert_eq(ev.u.funds.sale_id, 4);
	cr_assert_eq(ev.u.funds.rollup_id, 10);
	cr_assert_eq(ev.u.funds.amount[31], 5);
	decode(&ev, "RefundClaimed(address,uint256)", "0x99", "f(uint256)", "6", 0);
	cr_assert_eq(ev.kind, L1_EV_REFUND_CLAIMED);
	cr_assert_eq(ev.u.funds.account[19], 0x99);
	decode(&ev, "RevenueClaimed(uint64,address,uint256)", "10 0x98", "f(uint256)", "8", 0);
	cr_assert_eq(ev.u.funds.rollup_id, 10);
	cr_assert_eq(ev.u.funds.account[19], 0x98);

	/* wrong topic counts and out-of-range words */
	decode(&ev, "RevenueClaimed(uint64,address,uint256)", "10", "f(uint256)", "8", L1_EABI);
	decode(&ev, "PurchaseRejected(uint64,address,uint64,uint8)", "9 0x01", "f(uint64,uint256)",
	       "77 256", L1_EABI);
	decode(&ev, "Purchased(uint64,address,uint64,uint64,uint64,uint64[])", "9 0xabcdef",
	       "f(uint64,uint64,uint64,uint256[])", "5 3 10 '[18446744073709551616]'", L1_EABI);
	decode(&ev, "SaleSettled(uint64,uint256,uint256,uint64,uint64)",
	       "115792089237316195423570985008687907853269984665640564039457584007913129639935",
	       "f(uint256,uint256,uint64,uint64)", "1 1 1 1", L1_EABI);
}
