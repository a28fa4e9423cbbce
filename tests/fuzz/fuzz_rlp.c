/*
 * fuzz_rlp.c - libFuzzer target for strict RLP decoding: l1_rlp_decode,
 * l1_rlp_decode_prefix, l1_rlp_list and the integer readers. Traps if a
 * decoded item ever points outside its input.
 */
#include <stddef.h>
#include <stdint.h>

#include "l1bridge/l1.h"

#define MAX_CHILDREN 64

static void check_item(const struct l1_rlp_item *it, const uint8_t *buf, size_t len)
{
	if (it->encoded_len > len || it->payload_len > it->encoded_len)
		__builtin_trap();
	if (it->payload < buf || it->payload + it->payload_len > buf + len)
		__builtin_trap();
	if (it->payload + it->payload_len != buf + it->encoded_len)
		__builtin_trap();
}

static void walk_list(const struct l1_rlp_item *list, int depth)
{
	struct l1_rlp_item c[MAX_CHILDREN];
	size_t n = 0;
	uint8_t u256[32];
	uint64_t u64;

	if (l1_rlp_list(list, c, MAX_CHILDREN, &n) < 0)
		return;
	for (size_t i = 0; i < n; i++) {
		const uint8_t *start = c[i].payload + c[i].payload_len - c[i].encoded_len;
		check_item(&c[i], start, (size_t)(list->payload + list->payload_len - start));
		if (c[i].is_list) {
			if (depth < 4)
				walk_list(&c[i], depth + 1);
		} else {
			(void)l1_rlp_uint256(&c[i], u256);
			(void)l1_rlp_u64(&c[i], &u64);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct l1_rlp_item it;
	size_t off = 0;

	if (l1_rlp_decode(&it, data, size) == 0) {
		check_item(&it, data, size);
		if (it.encoded_len != size)
			__builtin_trap();
		if (it.is_list)
			walk_list(&it, 0);
	}
	/* A stream of concatenated items, as the prefix decoder sees them. */
	while (off < size && l1_rlp_decode_prefix(&it, data + off, size - off) == 0) {
		check_item(&it, data + off, size - off);
		if (it.is_list)
			walk_list(&it, 0);
		off += it.encoded_len;
	}
	return 0;
}
