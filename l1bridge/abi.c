/*
 * abi.c - Solidity ABI encoding for the types the Inbox uses, the Inbox's
 * calldata, and strict decoding of its event logs.
 *
 * Encoding (ABI v2, a tuple): one 32-byte head word per argument; a static
 * value sits in its head word, a dynamic one (bytes, T[]) puts there the
 * offset of its tail, counted from the start of the tuple. Tails follow in
 * argument order: a length word, then the elements (bytes right-padded with
 * zeros to a whole word).
 *
 * Decoding trusts nothing: logs come from a node. Every word is range-checked
 * for its type, offsets must be the canonical ones the contract emits, and
 * every length is compared with the bytes that remain before it is used.
 */
#include <pthread.h>
#include <string.h>

#include "l1bridge/l1.h"

#define W 32

static void put_u64(uint8_t *w, uint64_t v)
{
	l1_u256_from_u64(w, v);
}

static int is_dynamic(enum l1_abi_kind k)
{
	return k == L1_ABI_BYTES || k == L1_ABI_UINT64_ARRAY || k == L1_ABI_BYTES32_ARRAY;
}

/* Bytes of a dynamic argument's tail, or 0 and L1_ENOSPC on overflow. */
static int tail_size(const struct l1_abi_arg *a, size_t *out)
{
	size_t words;

	if (a->kind == L1_ABI_BYTES)
		words = a->n / W + (a->n % W != 0);
	else
		words = a->n;
	if (words > (SIZE_MAX / W) - 1)
		return L1_ENOSPC;
	*out = W * (1 + words);
	return 0;
}

void l1_abi_selector(uint8_t out[static 4], const char *signature)
{
	uint8_t h[32];

	l1_keccak256(h, signature, strlen(signature));
	memcpy(out, h, 4);
}

static int check_arg(const struct l1_abi_arg *a)
{
	switch (a->kind) {
	case L1_ABI_UINT64:
		return 0;
	case L1_ABI_UINT8:
		return a->u64 <= 0xff ? 0 : L1_EINVAL;
	case L1_ABI_UINT256:
	case L1_ABI_BYTES32:
	case L1_ABI_ADDRESS:
		return a->word != NULL ? 0 : L1_EINVAL;
	case L1_ABI_BYTES:
	case L1_ABI_UINT64_ARRAY:
	case L1_ABI_BYTES32_ARRAY:
		return a->ptr != NULL || a->n == 0 ? 0 : L1_EINVAL;
	}
	return L1_EINVAL;
}

int l1_abi_encode(uint8_t *out, size_t cap, size_t *len, const uint8_t *selector,
		  const struct l1_abi_arg *args, size_t nargs)
{
	size_t pre = selector != NULL ? 4 : 0, total, tail;
	uint8_t *head, *t;
	int rc;

	if (len == NULL || (out == NULL && cap > 0) || (args == NULL && nargs > 0))
		return L1_EINVAL;
	*len = 0;
	if (nargs > (SIZE_MAX - pre) / W)
		return L1_ENOSPC;
	total = pre + W * nargs;
	for (size_t i = 0; i < nargs; i++) {
		if ((rc = check_arg(&args[i])) < 0)
			return rc;
		if (!is_dynamic(args[i].kind))
			continue;
		if ((rc = tail_size(&args[i], &tail)) < 0)
			return rc;
		if (tail > SIZE_MAX - total)
			return L1_ENOSPC;
		total += tail;
	}
	if (total > cap)
		return L1_ENOSPC;

	memset(out, 0, total);
	if (selector != NULL)
		memcpy(out, selector, 4);
	head = out + pre;
	t = head + W * nargs;
	for (size_t i = 0; i < nargs; i++) {
		const struct l1_abi_arg *a = &args[i];
		uint8_t *hw = head + W * i;

		switch (a->kind) {
		case L1_ABI_UINT64:
		case L1_ABI_UINT8:
			put_u64(hw, a->u64);
			break;
		case L1_ABI_UINT256:
		case L1_ABI_BYTES32:
			memcpy(hw, a->word, W);
			break;
		case L1_ABI_ADDRESS:
			memcpy(hw + 12, a->word, 20);
			break;
		case L1_ABI_BYTES:
		case L1_ABI_UINT64_ARRAY:
		case L1_ABI_BYTES32_ARRAY:
			put_u64(hw, (uint64_t)(t - head));
			put_u64(t, a->n);
			t += W;
			if (a->kind == L1_ABI_BYTES) {
				if (a->n > 0)
					memcpy(t, a->ptr, a->n);
				t += W * (a->n / W + (a->n % W != 0));
			} else if (a->kind == L1_ABI_UINT64_ARRAY) {
				const uint64_t *v = a->ptr;
				for (size_t j = 0; j < a->n; j++, t += W)
					put_u64(t, v[j]);
			} else {
				if (a->n > 0)
					memcpy(t, a->ptr, W * a->n);
				t += W * a->n;
			}
			break;
		}
	}
	*len = (size_t)(t - out);
	return 0;
}

/* ------------------------------------------------------------------ */
/* The Inbox */

static const char sig_post_batch[] =
	"postBatch(uint64,uint64,uint64,bytes32,uint64[],bytes32[])";
static const char sig_post_state_root[] =
	"postStateRoot(uint64,uint64,bytes32,uint8,bytes)";

static const char *const event_sigs[] = {
	[L1_EV_BATCH_POSTED] =
		"BatchPosted(uint64,bytes32,uint64,uint64,bytes32,uint64[],bytes32[])",
	[L1_EV_STATE_ROOT_POSTED] =
		"StateRootPosted(uint64,uint64,bytes32,uint8,address,bytes)",
	[L1_EV_POSTER_CHANGED] = "PosterChanged(address,address)",
	[L1_EV_ROLLUP_KEY_CHANGED] = "RollupKeyChanged(uint64,address,address)",
	[L1_EV_OWNERSHIP_TRANSFERRED] = "OwnershipTransferred(address,address)",
	[L1_EV_DEPOSITED] = "Deposited(address,uint256,uint256)",
	[L1_EV_WITHDRAWN] = "Withdrawn(address,uint256,uint256)",
	[L1_EV_PURCHASED] = "Purchased(uint64,address,uint64,uint64,uint64,uint64[])",
	[L1_EV_PURCHASE_REJECTED] = "PurchaseRejected(uint64,address,uint64,uint8)",
	[L1_EV_SALE_SETTLED] = "SaleSettled(uint64,uint256,uint256,uint64,uint64)",
	[L1_EV_REVENUE_CREDITED] = "RevenueCredited(uint64,uint64,uint256)",
	[L1_EV_REFUND_CLAIMED] = "RefundClaimed(address,uint256)",
	[L1_EV_REVENUE_CLAIMED] = "RevenueClaimed(uint64,address,uint256)",
};
#define N_EVENTS (sizeof(event_sigs) / sizeof(event_sigs[0]))

static pthread_once_t topics_once = PTHREAD_ONCE_INIT;
static uint8_t event_topics[N_EVENTS][32];

static void topics_init(void)
{
	for (size_t k = 1; k < N_EVENTS; k++)
		l1_keccak256(event_topics[k], event_sigs[k], strlen(event_sigs[k]));
}

const uint8_t *l1_inbox_event_topic(enum l1_inbox_event_kind kind)
{
	if ((size_t)kind < 1 || (size_t)kind >= N_EVENTS)
		return NULL;
	if (pthread_once(&topics_once, topics_init) != 0)
		return NULL;
	return event_topics[kind];
}

static void batch_args(struct l1_abi_arg a[6], const struct l1_inbox_batch *b)
{
	a[0] = (struct l1_abi_arg){ .kind = L1_ABI_UINT64, .u64 = b->index };
	a[1] = (struct l1_abi_arg){ .kind = L1_ABI_UINT64, .u64 = b->from_height };
	a[2] = (struct l1_abi_arg){ .kind = L1_ABI_UINT64, .u64 = b->to_height };
	a[3] = (struct l1_abi_arg){ .kind = L1_ABI_BYTES32, .word = b->da_root };
	a[4] = (struct l1_abi_arg){ .kind = L1_ABI_UINT64_ARRAY,
				    .ptr = b->namespace_ids, .n = b->n_namespaces };
	a[5] = (struct l1_abi_arg){ .kind = L1_ABI_BYTES32_ARRAY,
				    .ptr = b->namespace_roots, .n = b->n_namespaces };
}

int l1_inbox_post_batch_calldata(uint8_t *out, size_t cap, size_t *len,
				 const struct l1_inbox_batch *b)
{
	struct l1_abi_arg a[6];
	uint8_t sel[4];

	if (b == NULL)
		return L1_EINVAL;
	batch_args(a, b);
	l1_abi_selector(sel, sig_post_batch);
	return l1_abi_encode(out, cap, len, sel, a, 6);
}

int l1_inbox_post_state_root_calldata(uint8_t *out, size_t cap, size_t *len,
				      const struct l1_inbox_state_root *s)
{
	struct l1_abi_arg a[5];
	uint8_t sel[4];

	if (s == NULL || s->proof_locator_len > L1_INBOX_MAX_LOCATOR)
		return L1_EINVAL;
	a[0] = (struct l1_abi_arg){ .kind = L1_ABI_UINT64, .u64 = s->rollup_id };
	a[1] = (struct l1_abi_arg){ .kind = L1_ABI_UINT64, .u64 = s->l2_block };
	a[2] = (struct l1_abi_arg){ .kind = L1_ABI_BYTES32, .word = s->state_root };
	a[3] = (struct l1_abi_arg){ .kind = L1_ABI_UINT8, .u64 = s->proof_kind };
	a[4] = (struct l1_abi_arg){ .kind = L1_ABI_BYTES, .ptr = s->proof_locator,
				    .n = s->proof_locator_len };
	l1_abi_selector(sel, sig_post_state_root);
	return l1_abi_encode(out, cap, len, sel, a, 5);
}

/* keccak256(abi.encode(prev, index, from, to, daRoot, ids, roots)), hashed
 * as it is encoded so no buffer of unbounded size is needed. */
void l1_inbox_batch_hash(uint8_t out[static 32], const uint8_t prev[static 32],
			 const struct l1_inbox_batch *b)
{
	struct l1_keccak k;
	uint8_t w[W];
	size_t n = b->n_namespaces;

	l1_keccak_init(&k);
	l1_keccak_update(&k, prev, W);
	put_u64(w, b->index);
	l1_keccak_update(&k, w, W);
	put_u64(w, b->from_height);
	l1_keccak_update(&k, w, W);
	put_u64(w, b->to_height);
	l1_keccak_update(&k, w, W);
	l1_keccak_update(&k, b->da_root, W);
	put_u64(w, 7 * W); /* ids: after the 7 head words */
	l1_keccak_update(&k, w, W);
	put_u64(w, 7 * W + W * (1 + (uint64_t)n)); /* roots: after ids */
	l1_keccak_update(&k, w, W);
	put_u64(w, n);
	l1_keccak_update(&k, w, W);
	for (size_t i = 0; i < n; i++) {
		put_u64(w, b->namespace_ids[i]);
		l1_keccak_update(&k, w, W);
	}
	put_u64(w, n);
	l1_keccak_update(&k, w, W);
	for (size_t i = 0; i < n; i++)
		l1_keccak_update(&k, b->namespace_roots[i], W);
	l1_keccak_final(&k, out);
}

/* ------------------------------------------------------------------ */
/* Strict word readers */

static int zero_prefix(const uint8_t *w, size_t n)
{
	uint8_t acc = 0;

	for (size_t i = 0; i < n; i++)
		acc |= w[i];
	return acc == 0;
}

static int word_u64(const uint8_t *w, uint64_t *out)
{
	uint64_t v = 0;

	if (!zero_prefix(w, 24))
		return L1_EABI;
	for (size_t i = 24; i < W; i++)
		v = v << 8 | w[i];
	*out = v;
	return 0;
}

static int word_addr(const uint8_t *w, uint8_t out[static 20])
{
	if (!zero_prefix(w, 12))
		return L1_EABI;
	memcpy(out, w + 12, 20);
	return 0;
}

/* A dynamic value's length word at the canonical offset `at` (which the
 * head word at `head` must name); *body = first element, *n = length, and
 * the elements (n words, or n bytes padded) must fit in the data. */
static int dyn_at(const uint8_t *data, size_t len, size_t head, size_t at,
		  int is_bytes, size_t *n, size_t *body)
{
	uint64_t off, cnt;
	size_t words;

	if (head > len || len - head < W || word_u64(data + head, &off) < 0)
		return L1_EABI;
	if (off != at || at > len || len - at < W)
		return L1_EABI;
	if (word_u64(data + at, &cnt) < 0 || cnt > (len - at - W))
		return L1_EABI; /* also bounds cnt before any arithmetic */
	words = is_bytes ? (size_t)(cnt / W + (cnt % W != 0)) : (size_t)cnt;
	if (words > (len - at - W) / W)
		return L1_EABI;
	*n = (size_t)cnt;
	*body = at + W;
	return 0;
}

static int decode_batch(struct l1_inbox_event *ev, const uint8_t (*topics)[32],
			size_t ntopics, const uint8_t *d, size_t len)
{
	size_t n1, n2, b1, b2, end;
	int rc;

	if (ntopics != 3 || len < 5 * W)
		return L1_EABI;
	if ((rc = word_u64(topics[1], &ev->u.batch.index)) < 0)
		return rc;
	memcpy(ev->u.batch.batch_hash, topics[2], W);
	if (word_u64(d, &ev->u.batch.from_height) < 0 ||
	    word_u64(d + W, &ev->u.batch.to_height) < 0)
		return L1_EABI;
	memcpy(ev->u.batch.da_root, d + 2 * W, W);
	if ((rc = dyn_at(d, len, 3 * W, 5 * W, 0, &n1, &b1)) < 0)
		return rc;
	for (size_t i = 0; i < n1; i++) {
		uint64_t id;
		if (word_u64(d + b1 + W * i, &id) < 0)
			return L1_EABI;
	}
	if ((rc = dyn_at(d, len, 4 * W, b1 + W * n1, 0, &n2, &b2)) < 0)
		return rc;
	end = b2 + W * n2;
	if (n1 != n2 || end != len)
		return L1_EABI;
	ev->u.batch.n_namespaces = n1;
	ev->u.batch.ids_abi = d + b1;
	ev->u.batch.roots_abi = d + b2;
	return 0;
}

static int decode_state_root(struct l1_inbox_event *ev, const uint8_t (*topics)[32],
			     size_t ntopics, const uint8_t *d, size_t len)
{
	uint64_t kind;
	size_t n, body, padded;

	if (ntopics != 3 || len < 4 * W)
		return L1_EABI;
	if (word_u64(topics[1], &ev->u.state_root.rollup_id) < 0 ||
	    word_u64(topics[2], &ev->u.state_root.l2_block) < 0)
		return L1_EABI;
	memcpy(ev->u.state_root.state_root, d, W);
	if (word_u64(d + W, &kind) < 0 || kind > 0xff)
		return L1_EABI;
	ev->u.state_root.proof_kind = (uint8_t)kind;
	if (word_addr(d + 2 * W, ev->u.state_root.sender) < 0)
		return L1_EABI;
	if (dyn_at(d, len, 3 * W, 4 * W, 1, &n, &body) < 0)
		return L1_EABI;
	padded = W * (n / W + (n % W != 0));
	if (body + padded != len || !zero_prefix(d + body + n, padded - n))
		return L1_EABI;
	ev->u.state_root.proof_locator = d + body;
	ev->u.state_root.proof_locator_len = n;
	return 0;
}

static int decode_change(struct l1_inbox_event *ev, const uint8_t (*topics)[32],
			 size_t ntopics, size_t len)
{
	size_t first = ev->kind == L1_EV_ROLLUP_KEY_CHANGED ? 2 : 1;

	if (ntopics != first + 2 || len != 0)
		return L1_EABI;
	if (first == 2 && word_u64(topics[1], &ev->u.change.rollup_id) < 0)
		return L1_EABI;
	if (word_addr(topics[first], ev->u.change.previous) < 0 ||
	    word_addr(topics[first + 1], ev->u.change.next) < 0)
		return L1_EABI;
	return 0;
}

/* Purchased(saleId indexed, buyer indexed, nonce, tickets, priceGwei,
 * rollups[]) and PurchaseRejected(saleId indexed, buyer indexed, nonce,
 * uint8 reason). */
static int decode_purchase(struct l1_inbox_event *ev, const uint8_t (*topics)[32],
			   size_t ntopics, const uint8_t *d, size_t len)
{
	uint64_t reason;
	size_t n, body;

	if (ntopics != 3 || word_u64(topics[1], &ev->u.purchase.sale_id) < 0 ||
	    word_addr(topics[2], ev->u.purchase.buyer) < 0)
		return L1_EABI;
	if (ev->kind == L1_EV_PURCHASE_REJECTED) {
		if (len != 2 * W || word_u64(d, &ev->u.purchase.nonce) < 0 ||
		    word_u64(d + W, &reason) < 0 || reason > 0xff)
			return L1_EABI;
		ev->u.purchase.reason = (uint8_t)reason;
		return 0;
	}
	if (len < 5 * W || word_u64(d, &ev->u.purchase.nonce) < 0 ||
	    word_u64(d + W, &ev->u.purchase.tickets) < 0 ||
	    word_u64(d + 2 * W, &ev->u.purchase.price_gwei) < 0)
		return L1_EABI;
	if (dyn_at(d, len, 3 * W, 4 * W, 0, &n, &body) < 0 || body + W * n != len)
		return L1_EABI;
	for (size_t i = 0; i < n; i++) {
		uint64_t id;
		if (word_u64(d + body + W * i, &id) < 0)
			return L1_EABI;
	}
	ev->u.purchase.n_rollups = n;
	ev->u.purchase.rollups_abi = d + body;
	return 0;
}

/* SaleSettled(saleId indexed, uint256 revenue, uint256 burn, uint64
 * nBuyers, uint64 nCredits). */
static int decode_settled(struct l1_inbox_event *ev, const uint8_t (*topics)[32],
			  size_t ntopics, const uint8_t *d, size_t len)
{
	if (ntopics != 2 || len != 4 * W || word_u64(topics[1], &ev->u.settled.sale_id) < 0 ||
	    word_u64(d + 2 * W, &ev->u.settled.n_buyers) < 0 ||
	    word_u64(d + 3 * W, &ev->u.settled.n_credits) < 0)
		return L1_EABI;
	memcpy(ev->u.settled.revenue, d, W);
	memcpy(ev->u.settled.burn, d + W, W);
	return 0;
}

/* The money events: an indexed account or ids, then amount [, balance]. */
static int decode_funds(struct l1_inbox_event *ev, const uint8_t (*topics)[32],
			size_t ntopics, const uint8_t *d, size_t len)
{
	size_t want_topics = 2, want_len = W;

	switch (ev->kind) {
	case L1_EV_DEPOSITED:
	case L1_EV_WITHDRAWN:
		want_len = 2 * W;
		/* fall through */
	case L1_EV_REFUND_CLAIMED:
		if (ntopics != want_topics || word_addr(topics[1], ev->u.funds.account) < 0)
			return L1_EABI;
		break;
	case L1_EV_REVENUE_CREDITED:
		if (ntopics != 3 || word_u64(topics[1], &ev->u.funds.sale_id) < 0 ||
		    word_u64(topics[2], &ev->u.funds.rollup_id) < 0)
			return L1_EABI;
		break;
	case L1_EV_REVENUE_CLAIMED:
		if (ntopics != 3 || word_u64(topics[1], &ev->u.funds.rollup_id) < 0 ||
		    word_addr(topics[2], ev->u.funds.account) < 0)
			return L1_EABI;
		break;
	default:
		return L1_EABI; /* defensive: not a money event */
	}
	if (len != want_len)
		return L1_EABI;
	memcpy(ev->u.funds.amount, d, W);
	if (want_len == 2 * W)
		memcpy(ev->u.funds.balance, d + W, W);
	return 0;
}

int l1_inbox_decode_log(struct l1_inbox_event *ev, const uint8_t (*topics)[32],
			size_t ntopics, const uint8_t *data, size_t data_len)
{
	int rc = L1_EABI_TOPIC;

	if (ev == NULL || (topics == NULL && ntopics > 0) || (data == NULL && data_len > 0))
		return L1_EINVAL;
	memset(ev, 0, sizeof(*ev));
	if (ntopics == 0 || ntopics > 4)
		return L1_EABI_TOPIC;
	for (size_t k = 1; k < N_EVENTS; k++) {
		const uint8_t *t = l1_inbox_event_topic((enum l1_inbox_event_kind)k);
		if (t != NULL && memcmp(t, topics[0], W) == 0) {
			ev->kind = (enum l1_inbox_event_kind)k;
			break;
		}
	}
	switch (ev->kind) {
	case L1_EV_BATCH_POSTED:
		rc = decode_batch(ev, topics, ntopics, data, data_len);
		break;
	case L1_EV_STATE_ROOT_POSTED:
		rc = decode_state_root(ev, topics, ntopics, data, data_len);
		break;
	case L1_EV_POSTER_CHANGED:
	case L1_EV_ROLLUP_KEY_CHANGED:
	case L1_EV_OWNERSHIP_TRANSFERRED:
		rc = decode_change(ev, topics, ntopics, data_len);
		break;
	case L1_EV_PURCHASED:
	case L1_EV_PURCHASE_REJECTED:
		rc = decode_purchase(ev, topics, ntopics, data, data_len);
		break;
	case L1_EV_SALE_SETTLED:
		rc = decode_settled(ev, topics, ntopics, data, data_len);
		break;
	case L1_EV_DEPOSITED:
	case L1_EV_WITHDRAWN:
	case L1_EV_REVENUE_CREDITED:
	case L1_EV_REFUND_CLAIMED:
	case L1_EV_REVENUE_CLAIMED:
		rc = decode_funds(ev, topics, ntopics, data, data_len);
		break;
	}
	if (rc < 0)
		memset(ev, 0, sizeof(*ev));
	return rc;
}

void l1_inbox_event_namespace(const struct l1_inbox_event *ev, size_t i,
			      uint64_t *id, uint8_t root[static 32])
{
	const uint8_t *w = ev->u.batch.ids_abi + W * i;
	uint64_t v = 0;

	for (size_t j = 24; j < W; j++)
		v = v << 8 | w[j];
	*id = v;
	memcpy(root, ev->u.batch.roots_abi + W * i, W);
}

uint64_t l1_inbox_event_rollup(const struct l1_inbox_event *ev, size_t i)
{
	const uint8_t *w = ev->u.purchase.rollups_abi + W * i;
	uint64_t v = 0;

	for (size_t j = 24; j < W; j++)
		v = v << 8 | w[j];
	return v;
}

/* ------------------------------------------------------------------ */
/* Execution tickets: postPurchases and settleSale calldata. The argument
 * types are tuples and arrays of tuples, which the generic encoder above
 * does not model; their layouts are written out here instead:
 *
 *   postPurchases: saleId | off(P) | off(S) | P | S
 *     P = n | n offsets (from the first offset word) | n purchase tuples,
 *         each saleId | 0xa0 | tickets | priceGwei | nonce | m | m ids
 *     S = n | n offsets | n bytes values, each 65 | 3 words (r, s, v padded)
 *   settleSale: saleId | 0x40 | off(B) | off(C) | burn | B | C
 *     (the Settlement tuple's offsets count from its own first word)
 *     B = nb | nb x (address, charged, refund); C = nc | nc x (id, amount)
 */

static const char sig_post_purchases[] =
	"postPurchases(uint64,(uint64,uint64[],uint64,uint64,uint64)[],bytes[])";
static const char sig_settle_sale[] =
	"settleSale(uint64,((address,uint256,uint256)[],(uint64,uint256)[],uint256))";

void l1_u256_from_gwei(uint8_t out[static 32], uint64_t gwei)
{
	unsigned __int128 wei = (unsigned __int128)gwei * 1000000000u;

	memset(out, 0, W);
	for (int i = 31; i >= 16; i--, wei >>= 8)
		out[i] = (uint8_t)wei;
}

size_t l1_inbox_post_purchases_size(const struct l1_purchase *p, size_t n)
{
	size_t words = 5 + 12 * n;

	for (size_t i = 0; i < n; i++)
		words += p[i].n_rollups;
	return 4 + W * words;
}

int l1_inbox_post_purchases_calldata(uint8_t *out, size_t cap, size_t *len, uint64_t sale_id,
				     const struct l1_purchase *p, const uint8_t (*sigs)[65],
				     size_t n)
{
	uint8_t *w, *arr, *s_arr;
	size_t total, off;

	if (len == NULL || ((p == NULL || sigs == NULL) && n > 0) ||
	    n > (SIZE_MAX / W) / 16)
		return L1_EINVAL;
	*len = 0;
	for (size_t i = 0; i < n; i++)
		if (p[i].n_rollups > L1_PURCHASE_MAX_ROLLUPS ||
		    (p[i].rollups == NULL && p[i].n_rollups > 0))
			return L1_EINVAL;
	total = l1_inbox_post_purchases_size(p, n);
	if (out == NULL || total > cap)
		return L1_ENOSPC;
	memset(out, 0, total);
	l1_abi_selector(out, sig_post_purchases);
	w = out + 4;
	put_u64(w, sale_id);
	put_u64(w + W, 3 * W);
	arr = w + 3 * W; /* the purchases array: length, offsets, tuples */
	put_u64(arr, n);
	off = W * n;
	for (size_t i = 0; i < n; i++) {
		uint8_t *t = arr + W + off;

		put_u64(arr + W + W * i, off);
		put_u64(t, p[i].sale_id);
		put_u64(t + W, 5 * W);
		put_u64(t + 2 * W, p[i].tickets);
		put_u64(t + 3 * W, p[i].price_gwei);
		put_u64(t + 4 * W, p[i].nonce);
		put_u64(t + 5 * W, p[i].n_rollups);
		for (size_t j = 0; j < p[i].n_rollups; j++)
			put_u64(t + (6 + j) * W, p[i].rollups[j]);
		off += W * (6 + p[i].n_rollups);
	}
	s_arr = arr + W + off;
	put_u64(w + 2 * W, (uint64_t)(s_arr - w));
	put_u64(s_arr, n);
	for (size_t i = 0; i < n; i++) {
		uint8_t *b = s_arr + W + W * n + 4 * W * i;

		put_u64(s_arr + W + W * i, W * n + 4 * W * i);
		put_u64(b, 65);
		memcpy(b + W, sigs[i], 65);
	}
	if ((size_t)(s_arr + W + 5 * W * n - out) != total)
		return L1_EINVAL; /* defensive: the size formula and layout agree */
	*len = total;
	return 0;
}

size_t l1_inbox_settle_sale_size(const struct l1_inbox_settlement *st)
{
	return 4 + W * (7 + 3 * st->n_buyers + 2 * st->n_credits);
}

int l1_inbox_settle_sale_calldata(uint8_t *out, size_t cap, size_t *len,
				  const struct l1_inbox_settlement *st)
{
	uint8_t *w, *tup, *b, *c;
	size_t total;

	if (len == NULL || st == NULL || (st->buyers == NULL && st->n_buyers > 0) ||
	    (st->credits == NULL && st->n_credits > 0) ||
	    st->n_buyers > (SIZE_MAX / W) / 8 || st->n_credits > (SIZE_MAX / W) / 8)
		return L1_EINVAL;
	*len = 0;
	total = l1_inbox_settle_sale_size(st);
	if (out == NULL || total > cap)
		return L1_ENOSPC;
	memset(out, 0, total);
	l1_abi_selector(out, sig_settle_sale);
	w = out + 4;
	put_u64(w, st->sale_id);
	put_u64(w + W, 2 * W);
	tup = w + 2 * W;
	b = tup + 3 * W;
	c = b + W + 3 * W * st->n_buyers;
	put_u64(tup, (uint64_t)(b - tup));
	put_u64(tup + W, (uint64_t)(c - tup));
	memcpy(tup + 2 * W, st->burn, W);
	put_u64(b, st->n_buyers);
	for (size_t i = 0; i < st->n_buyers; i++) {
		uint8_t *e = b + W + 3 * W * i;
		memcpy(e + 12, st->buyers[i].addr, 20);
		memcpy(e + W, st->buyers[i].charged, W);
		memcpy(e + 2 * W, st->buyers[i].refund, W);
	}
	put_u64(c, st->n_credits);
	for (size_t i = 0; i < st->n_credits; i++) {
		uint8_t *e = c + W + 2 * W * i;
		put_u64(e, st->credits[i].rollup_id);
		memcpy(e + W, st->credits[i].amount, W);
	}
	*len = total;
	return 0;
}
