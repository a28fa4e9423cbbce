/* The token bucket behind every rate limit (limits.c app_bucket_take). */
#include <criterion/criterion.h>

#include "appliance/limits.h"

#define S 1000000000ull

/* 10 tokens a second, a burst of 10: full at first, refilled by the time
 * that passed, never past the burst, and the wait says when. */
Test(bucket, refills_by_elapsed_time_up_to_the_burst)
{
	struct app_bucket b = {.rate = 10, .burst = 10};

	cr_assert_eq(app_bucket_take(&b, 10, 5 * S), 0, "starts full");
	cr_assert_eq(app_bucket_take(&b, 1, 5 * S), 101, "empty: 100 ms for a token, + 1");
	cr_assert_eq(app_bucket_take(&b, 1, 5 * S + S / 10), 0, "100 ms later: one token");
	cr_assert_neq(app_bucket_take(&b, 1, 5 * S + S / 10), 0);
	cr_assert_eq(app_bucket_take(&b, 10, 100 * S), 0, "a long gap refills to the burst");
	cr_assert_neq(app_bucket_take(&b, 1, 100 * S), 0, "and no further");
}

/* A time older than the bucket's last (callers pass one read before the
 * call, rpc.c): the interval between them must not be refilled twice. */
Test(bucket, an_older_time_does_not_refill_twice)
{
	struct app_bucket b = {.rate = 10, .burst = 10};

	cr_assert_eq(app_bucket_take(&b, 10, 5 * S), 0);
	cr_assert_eq(app_bucket_take(&b, 1, 5 * S + S / 10), 0, "one token after 100 ms");
	cr_assert_neq(app_bucket_take(&b, 1, 5 * S), 0, "an older time adds nothing");
	cr_assert_neq(app_bucket_take(&b, 1, 5 * S + S / 10), 0,
		      "and back at the newer time the 100 ms are not counted again");
	cr_assert_eq(app_bucket_take(&b, 1, 5 * S + 2 * S / 10), 0);
}

Test(bucket, no_rate_is_unlimited)
{
	struct app_bucket b = {0};

	for (int i = 0; i < 1000; i++)
		cr_assert_eq(app_bucket_take(&b, 1e9, 1), 0);
}
