/*
 * sale.c - one sale of sequencing rights: opt-ins, purchases, closing, the
 * improvement window, and the next sale's price.
 *
 * State machine (asserted at each transition):
 *
 *   OPEN ----------------> CLOSED ----------------> SETTLED
 *        seq_sale_close           seq_sale_settle
 *
 *   transition            function          precondition
 *   OPEN   -> OPEN        seq_sale_buy      now < close slot
 *   OPEN   -> CLOSED      seq_sale_close    now >= close slot
 *   CLOSED -> CLOSED      seq_sale_propose  now < deadline, strictly better
 *   CLOSED -> CLOSED      seq_sale_void     purchases the chain skipped
 *   CLOSED -> SETTLED     seq_sale_settle   now >= deadline (revenue.c)
 *
 * Bundles are deduplicated through an open-addressing hash index over their
 * bitmaps so a purchase costs O(size) whatever the number of bundles.
 */
#include "sequencer/rights.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#define EMPTY UINT32_MAX

static int offer_cmp(const void *a, const void *b)
{
	const struct seq_rollup *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

int seq_sale_create(struct seq_sale *s, const struct seq_sale_params *p)
{
	size_t i, n = 0;

	if (s == NULL || p == NULL || (p->offers == NULL && p->n_offers != 0))
		return SEQ_EINVAL;
	memset(s, 0, sizeof(*s));
	if (p->end_slot <= p->start_slot || p->close_lead <= p->improve_lead ||
	    p->close_lead > p->start_slot || p->price == 0 ||
	    p->price > SEQ_RIGHTS_PRICE_MAX || p->cap == 0 ||
	    p->cap > SEQ_RIGHTS_TICKETS_MAX || p->target == 0 || p->target >= p->cap ||
	    p->burn_bps > SEQ_RIGHTS_BPS)
		return SEQ_EINVAL;
	for (i = 0; i < p->n_offers; i++) {
		if (p->offers[i].reserve > SEQ_RIGHTS_PRICE_MAX)
			return SEQ_EINVAL;
		n += p->offers[i].opt_in;
	}
	if (n > SEQ_RIGHTS_MAX_ROLLUPS)
		return SEQ_EINVAL;
	/* Every offer, opted in or not, must name a distinct rollup. */
	struct seq_rollup *all = malloc((p->n_offers ? p->n_offers : 1) * sizeof(*all));

	if (all == NULL)
		return SEQ_ENOMEM;
	for (i = 0; i < p->n_offers; i++) {
		all[i].id = p->offers[i].rollup;
		all[i].reserve = p->offers[i].opt_in;
	}
	qsort(all, p->n_offers, sizeof(*all), offer_cmp);
	for (i = 1; i < p->n_offers; i++) {
		if (all[i].id == all[i - 1].id) {
			free(all);
			return SEQ_EINVAL;
		}
	}
	free(all);

	s->rollups = malloc((n ? n : 1) * sizeof(*s->rollups));
	if (s->rollups == NULL)
		return SEQ_ENOMEM;
	for (i = 0; i < p->n_offers; i++) {
		if (!p->offers[i].opt_in)
			continue;
		s->rollups[s->n_rollups].id = p->offers[i].rollup;
		s->rollups[s->n_rollups].reserve = p->offers[i].reserve;
		s->n_rollups++;
	}
	qsort(s->rollups, s->n_rollups, sizeof(*s->rollups), offer_cmp);
	s->p = *p;
	s->p.offers = NULL;
	s->p.n_offers = 0;
	s->state = SEQ_SALE_OPEN;
	return 0;
}

void seq_sale_destroy(struct seq_sale *s)
{
	if (s == NULL)
		return;
	free(s->rollups);
	free(s->bundles);
	free(s->purchases);
	free(s->index_);
	memset(s, 0, sizeof(*s));
}

uint64_t seq_sale_close_slot(const struct seq_sale *s)
{
	return s->p.start_slot - s->p.close_lead;
}

uint64_t seq_sale_deadline_slot(const struct seq_sale *s)
{
	return s->p.start_slot - s->p.improve_lead;
}

uint64_t seq_sale_bundle_value(const struct seq_sale *s, uint32_t b)
{
	assert(b < s->n_bundles);
	return seq__value(s, s->bundles[b].tickets);
}

/* Index of a participating rollup id, or -1. */
static int64_t rollup_index(const struct seq_sale *s, uint64_t id)
{
	size_t lo = 0, hi = s->n_rollups;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->rollups[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < s->n_rollups && s->rollups[lo].id == id ? (int64_t)lo : -1;
}

static uint64_t bits_hash(const uint64_t *bits)
{
	uint64_t h = 0x9e3779b97f4a7c15ull;

	for (int i = 0; i < SEQ__WORDS; i++) {
		h ^= bits[i];
		h *= 0xff51afd7ed558ccdull;
		h ^= h >> 32;
	}
	return h;
}

int64_t seq__bundle_lookup(const struct seq_sale *s, const uint64_t *bits)
{
	if (s->index_cap_ == 0)
		return -1;
	size_t mask = s->index_cap_ - 1;

	for (size_t i = bits_hash(bits) & mask;; i = (i + 1) & mask) {
		uint32_t b = s->index_[i];

		if (b == EMPTY)
			return -1;
		if (memcmp(s->bundles[b].bits, bits, sizeof(s->bundles[b].bits)) == 0)
			return b;
	}
}

static void index_put(struct seq_sale *s, uint32_t b)
{
	size_t mask = s->index_cap_ - 1;
	size_t i = bits_hash(s->bundles[b].bits) & mask;

	while (s->index_[i] != EMPTY)
		i = (i + 1) & mask;
	s->index_[i] = b;
}

/* Room for one more bundle: table and index (kept at most half full). */
static int bundles_reserve(struct seq_sale *s)
{
	if (s->n_bundles == s->bundles_cap_) {
		size_t cap = s->bundles_cap_ ? 2 * s->bundles_cap_ : 16;
		struct seq_bundle *nb = realloc(s->bundles, cap * sizeof(*nb));

		if (nb == NULL)
			return SEQ_ENOMEM;
		s->bundles = nb;
		s->bundles_cap_ = cap;
	}
	if (2 * (s->n_bundles + 1) > s->index_cap_) {
		size_t cap = s->index_cap_ ? 2 * s->index_cap_ : 64;
		uint32_t *ni = malloc(cap * sizeof(*ni));

		if (ni == NULL)
			return SEQ_ENOMEM;
		free(s->index_);
		s->index_ = ni;
		s->index_cap_ = cap;
		memset(ni, 0xff, cap * sizeof(*ni));
		for (size_t b = 0; b < s->n_bundles; b++)
			index_put(s, (uint32_t)b);
	}
	return 0;
}

/* Bitmap of a strictly ascending list of participating ids. */
static int ids_to_bits(const struct seq_sale *s, const uint64_t *ids, size_t n,
		       uint64_t bits[static SEQ__WORDS])
{
	memset(bits, 0, SEQ__WORDS * sizeof(uint64_t));
	if (ids == NULL || n == 0 || n > s->n_rollups)
		return SEQ_EBUNDLE;
	for (size_t i = 0; i < n; i++) {
		int64_t r = rollup_index(s, ids[i]);

		if (r < 0 || (i > 0 && ids[i] <= ids[i - 1]))
			return SEQ_EBUNDLE;
		bits[r / 64] |= UINT64_C(1) << (r % 64);
	}
	return 0;
}

int seq_sale_bundle_find(const struct seq_sale *s, const uint64_t *rollups, size_t n,
			 uint32_t *out)
{
	uint64_t bits[SEQ__WORDS];
	int rc = ids_to_bits(s, rollups, n, bits);

	if (rc != 0)
		return rc;
	int64_t b = seq__bundle_lookup(s, bits);

	if (b < 0)
		return SEQ_ENOBID;
	*out = (uint32_t)b;
	return 0;
}

int seq_sale_bundle_ids(const struct seq_sale *s, uint32_t b, uint64_t *out, size_t cap)
{
	size_t k = 0;

	if (b >= s->n_bundles || cap < s->bundles[b].size)
		return SEQ_EINVAL;
	for (uint32_t i = 0; i < s->n_rollups; i++)
		if (seq__bit(s->bundles[b].bits, i))
			out[k++] = s->rollups[i].id;
	return (int)k;
}

int seq_sale_buy(struct seq_sale *s, uint64_t now_slot, const uint8_t buyer[static SEQ_ADDR_LEN],
		 const uint64_t *rollups, size_t n, uint64_t tickets)
{
	uint64_t bits[SEQ__WORDS];
	int64_t b;
	int rc;

	if (s->state != SEQ_SALE_OPEN || now_slot >= seq_sale_close_slot(s))
		return SEQ_ECLOSED;
	if (tickets == 0)
		return SEQ_EINVAL;
	rc = ids_to_bits(s, rollups, n, bits);
	if (rc != 0)
		return rc;
	if (tickets > s->p.cap - s->sold)
		return SEQ_ESOLDOUT;
	if (s->n_purchases == s->purchases_cap_) {
		size_t cap = s->purchases_cap_ ? 2 * s->purchases_cap_ : 16;
		struct seq_purchase *np = realloc(s->purchases, cap * sizeof(*np));

		if (np == NULL)
			return SEQ_ENOMEM;
		s->purchases = np;
		s->purchases_cap_ = cap;
	}
	b = seq__bundle_lookup(s, bits);
	if (b < 0) {
		rc = bundles_reserve(s);
		if (rc != 0)
			return rc;
		struct seq_bundle *nb = &s->bundles[s->n_bundles];

		memset(nb, 0, sizeof(*nb));
		memcpy(nb->bits, bits, sizeof(bits));
		nb->size = (uint32_t)n;
		for (size_t i = 0; i < n; i++) {
			uint32_t r = (uint32_t)rollup_index(s, rollups[i]);

			nb->reserve += s->rollups[r].reserve;
			if (i == 0)
				nb->low = r;
		}
		b = (int64_t)s->n_bundles++;
		index_put(s, (uint32_t)b);
	}
	s->bundles[b].tickets += tickets;
	s->sold += tickets;

	struct seq_purchase *pu = &s->purchases[s->n_purchases++];

	memcpy(pu->buyer, buyer, SEQ_ADDR_LEN);
	pu->bundle = (uint32_t)b;
	pu->tickets = tickets;
	return 0;
}

int seq_sale_close(struct seq_sale *s, uint64_t now_slot)
{
	int rc;

	if (s->state != SEQ_SALE_OPEN)
		return SEQ_ESTATE;
	if (now_slot < seq_sale_close_slot(s))
		return SEQ_EEARLY;
	rc = seq_alloc_compute(s, &s->best);
	if (rc != 0)
		return rc;
	s->state = SEQ_SALE_CLOSED;
	return 0;
}

int seq_sale_propose(struct seq_sale *s, uint64_t now_slot, const struct seq_alloc *a)
{
	int rc;

	if (s->state != SEQ_SALE_CLOSED)
		return SEQ_ESTATE;
	if (now_slot >= seq_sale_deadline_slot(s))
		return SEQ_ELATE;
	rc = seq_alloc_check(s, a);
	if (rc != 0)
		return rc;
	s->best = *a;
	(void)seq_alloc_validate(s, a, &s->best.revenue);
	s->best_proposals++;
	return 0;
}

int seq_sale_void(struct seq_sale *s, const uint32_t *purchases, size_t n)
{
	uint64_t *old, rev = 0;
	struct seq_alloc *fresh;
	int rc, standing;

	if (s->state != SEQ_SALE_CLOSED)
		return SEQ_ESTATE;
	for (size_t k = 0; k < n; k++)
		if (purchases[k] >= s->n_purchases)
			return SEQ_EINVAL;
	old = malloc((n ? n : 1) * sizeof(*old));
	fresh = malloc(sizeof(*fresh));
	if (old == NULL || fresh == NULL) {
		free(old);
		free(fresh);
		return SEQ_ENOMEM;
	}
	for (size_t k = 0; k < n; k++) {
		struct seq_purchase *pu = &s->purchases[purchases[k]];

		old[k] = pu->tickets;
		assert(s->bundles[pu->bundle].tickets >= pu->tickets && s->sold >= pu->tickets);
		s->bundles[pu->bundle].tickets -= pu->tickets;
		s->sold -= pu->tickets;
		pu->tickets = 0;
	}
	rc = seq_alloc_compute(s, fresh);
	if (rc != 0) {
		/* Undo in reverse, so a purchase listed twice gets its tickets back. */
		for (size_t k = n; k-- > 0;) {
			struct seq_purchase *pu = &s->purchases[purchases[k]];

			pu->tickets += old[k];
			s->bundles[pu->bundle].tickets += old[k];
			s->sold += old[k];
		}
		goto out;
	}
	standing = seq_alloc_validate(s, &s->best, &rev) == 0;
	if (!standing || fresh->revenue > rev)
		s->best = *fresh;
	else
		s->best.revenue = rev;
out:
	free(old);
	free(fresh);
	return rc;
}

uint64_t seq_price_next(uint64_t price, uint64_t sold, uint64_t cap, uint64_t target,
			uint64_t floor)
{
	unsigned __int128 step;
	uint64_t next;

	if (price > SEQ_RIGHTS_PRICE_MAX)
		price = SEQ_RIGHTS_PRICE_MAX;
	if (target == 0 || target >= cap)
		return price < floor ? floor : price; /* outside the contract: hold */
	if (sold >= cap) {
		step = price / SEQ_RIGHTS_STEP_DIV;
		next = price + (step ? (uint64_t)step : 1);
	} else if (sold > target) {
		/* (sold - target) / (cap - target) < 1, so step < price / 8. */
		step = (unsigned __int128)price * (sold - target) /
		       ((unsigned __int128)SEQ_RIGHTS_STEP_DIV * (cap - target));
		next = price + (uint64_t)step;
	} else {
		step = (unsigned __int128)price * (target - sold) /
		       ((unsigned __int128)SEQ_RIGHTS_STEP_DIV * target);
		next = price - (uint64_t)step;
	}
	if (next > SEQ_RIGHTS_PRICE_MAX)
		next = SEQ_RIGHTS_PRICE_MAX;
	if (next < floor)
		next = floor;
	return next;
}
