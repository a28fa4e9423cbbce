/* The bounded queue between the lws thread and the committer. */
#include <criterion/criterion.h>
#include <pthread.h>

#include <jansson.h>

#include "appliance/app.h"
#include "appliance/daemon.h"

Test(queue, all_or_nothing_push_and_fifo)
{
	struct app_queue q;
	int in[5] = {1, 2, 3, 4, 5}, out[8];

	cr_assert_eq(app_queue_init(&q, sizeof(int), 4), 0);
	cr_assert_eq(app_queue_push(&q, in, 5), APP_EFULL, "5 do not fit in 4");
	cr_assert_eq(app_queue_len(&q), 0, "nothing pushed on failure");
	cr_assert_eq(app_queue_push(&q, in, 3), 0);
	cr_assert_eq(app_queue_pop(&q, out, 2, 0), 2);
	cr_assert_eq(out[0], 1);
	cr_assert_eq(out[1], 2);
	cr_assert_eq(app_queue_push(&q, in + 3, 2), 0); /* wraps around */
	cr_assert_eq(app_queue_pop(&q, out, 8, 0), 3);
	cr_assert_eq(out[0], 3);
	cr_assert_eq(out[1], 4);
	cr_assert_eq(out[2], 5);
	app_queue_close(&q);
	cr_assert_eq(app_queue_push(&q, in, 1), APP_ESTOPPED);
	app_queue_destroy(&q);
}

Test(queue, pop_times_out)
{
	struct app_queue q;
	int out;
	uint64_t t0 = app_now_ns();

	cr_assert_eq(app_queue_init(&q, sizeof(int), 4), 0);
	cr_assert_eq(app_queue_pop(&q, &out, 1, app_now_ns() + 20000000), 0);
	cr_assert_geq(app_now_ns() - t0, 19000000);
	app_queue_destroy(&q);
}

static void *producer(void *arg)
{
	struct app_queue *q = arg;

	for (int i = 0; i < 10000; i++)
		while (app_queue_push(q, &i, 1) == APP_EFULL)
			;
	return NULL;
}

Test(queue, threads_see_every_item_in_order)
{
	struct app_queue q;
	pthread_t t;
	int buf[64], expect = 0;

	cr_assert_eq(app_queue_init(&q, sizeof(int), 16), 0);
	pthread_create(&t, NULL, producer, &q);
	while (expect < 10000) {
		size_t n = app_queue_pop(&q, buf, 64, app_now_ns() + 1000000000ull);

		for (size_t i = 0; i < n; i++)
			cr_assert_eq(buf[i], expect++);
	}
	pthread_join(t, NULL);
	app_queue_destroy(&q);
}

/* Error messages quote client input; the JSON must stay valid UTF-8. */

Test(error_json, broken_utf8_becomes_replacement_char)
{
	/* "a" + half of "é" + quote + backslash + control + overlong "/" + valid "é" */
	char *e = app_error_json(-32700, "a\xc3\"\\\x01\xc0\xaf\xc3\xa9");
	json_t *j;

	cr_assert_not_null(e);
	j = json_loads(e, 0, NULL);
	cr_assert_not_null(j, "not valid JSON: %s", e);
	cr_assert_str_eq(json_string_value(json_object_get(j, "message")),
			 "a\xef\xbf\xbd\"\\\x01\xef\xbf\xbd\xef\xbf\xbd\xc3\xa9");
	cr_assert_eq(json_integer_value(json_object_get(j, "code")), -32700);
	json_decref(j);
	free(e);
}
