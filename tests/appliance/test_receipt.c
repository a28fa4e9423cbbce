/* Receipts written into a group's answer buffer (receipt.c, committer.c). */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/daemon.h"

/* Every field at its widest: numbers at UINT64_MAX, a 63-byte name. */
static void widest(struct seq_receipt *r, size_t path_len, char name[64])
{
	memset(r, 0xab, sizeof(*r));
	r->ns = r->seq = r->slot = r->group_id = UINT64_MAX;
	r->index = r->count = UINT32_MAX;
	r->path_len = path_len;
	memset(name, 'z', 63);
	name[63] = '\0';
}

Test(receipt, written_in_place_as_on_its_own_and_within_its_cap)
{
	static const uint8_t pk[32] = {1, 2, 3};
	char name[64];

	for (size_t pl = 0; pl <= SEQ_MERKLE_MAX_DEPTH; pl++) {
		struct seq_receipt r;
		size_t len, cap;
		char *own, *buf, *end;

		widest(&r, pl, name);
		cap = app_receipt_json_cap(pl, strlen(name));
		own = app_receipt_json(&r, name, pk, &len);
		cr_assert(own);
		/* The committer sizes a group's buffer with this cap: a receipt
		 * longer than it would run into the next one. */
		cr_assert_leq(len + 1, cap, "path %zu: %zu bytes and its NUL, cap %zu", pl, len,
			      cap);
		buf = malloc(cap);
		cr_assert(buf);
		end = app_receipt_json_put(buf, &r, name, pk);
		cr_assert_eq((size_t)(end - buf), len);
		cr_assert_eq(*end, '\0');
		cr_assert_str_eq(buf, own);
		free(buf);
		free(own);
	}
}

Test(receipt, answer_buffer_room_and_references)
{
	struct app_answer_buf *b = app_answer_buf_new(256);
	char *a, *c;

	cr_assert(b);
	cr_assert_eq(atomic_load(&b->refs), 1, "the builder's reference");
	a = app_answer_buf_take(b, 100);
	cr_assert_eq(a, b->data);
	cr_assert_eq(atomic_load(&b->refs), 2);
	app_answer_buf_used(b, a + 40); /* 40 used of the 100 asked for */
	cr_assert_null(app_answer_buf_take(b, 217), "217 bytes do not fit in the 216 left");
	cr_assert_eq(atomic_load(&b->refs), 2, "a refused take holds no reference");
	c = app_answer_buf_take(b, 216);
	cr_assert_eq(c, a + 40, "the next answer starts where the last one ended");
	app_answer_buf_used(b, c + 216);
	cr_assert_eq(atomic_load(&b->refs), 3);
	cr_assert_null(app_answer_buf_take(b, 1), "full");

	/* Answers are dropped in any order; the builder lets go first. */
	app_answer_buf_put(b);
	cr_assert_eq(atomic_load(&b->refs), 2);
	{
		struct app_done d = {.json = c, .buf = b};

		app_done_json_free(&d);
		cr_assert_null(d.json);
		cr_assert_null(d.buf);
	}
	cr_assert_eq(atomic_load(&b->refs), 1);
	app_answer_buf_put(b); /* the last: freed (ASan checks it is not touched again) */
	app_answer_buf_put(NULL);
}

/* An error message quoting client bytes cut mid-sequence, or not UTF-8 at
 * all, still comes out as JSON: each bad byte becomes \ufffd, the valid
 * sequences stay as they are, and quotes and control bytes are escaped. */
Test(receipt, error_json_replaces_bytes_that_are_not_utf8)
{
	char *j = app_error_json(-32601, "method '%s' %s", "caf\xc3\xa9\xe2\x82", "\"\x01\xed\xa0\x80");

	cr_assert_not_null(j);
	cr_assert_str_eq(j, "{\"code\":-32601,\"message\":\"method 'caf\xc3\xa9\\ufffd\\ufffd' "
			    "\\\"\\u0001\\ufffd\\ufffd\\ufffd\"}");
	free(j);
}
