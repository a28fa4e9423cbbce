/*
 * fuzz_abi_log.c - libFuzzer target for l1_inbox_decode_log. The input's
 * first byte picks the topic count and which known topic0 to use (so the
 * fuzzer reaches every event's decoder); the next 32 * ntopics bytes fill
 * the remaining topics and the rest is the data. Traps if a decoded pointer
 * or length leaves the data.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "l1bridge/l1.h"

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t len)
{
	uint8_t topics[4][32];
	struct l1_inbox_event ev;
	const uint8_t *t0;
	size_t ntopics, need;

	if (len < 1)
		return 0;
	ntopics = (in[0] & 3) + 1;
	t0 = l1_inbox_event_topic((enum l1_inbox_event_kind)(1 + (in[0] >> 2) % 6));
	in++;
	len--;
	need = 32 * ntopics;
	if (len < need)
		return 0;
	memcpy(topics, in, need);
	if (t0 != NULL)
		memcpy(topics[0], t0, 32);
	in += need;
	len -= need;
	if (l1_inbox_decode_log(&ev, (const uint8_t(*)[32])topics, ntopics, in, len) != 0)
		return 0;
	if (ev.kind == L1_EV_BATCH_POSTED) {
		size_t n = ev.u.batch.n_namespaces;
		const uint8_t *end = in + len;
		uint8_t root[32];
		uint64_t id;
		if (ev.u.batch.ids_abi < in || ev.u.batch.ids_abi + 32 * n > end ||
		    ev.u.batch.roots_abi < in || ev.u.batch.roots_abi + 32 * n > end)
			__builtin_trap();
		for (size_t i = 0; i < n; i++)
			l1_inbox_event_namespace(&ev, i, &id, root);
	} else if (ev.kind == L1_EV_STATE_ROOT_POSTED) {
		if (ev.u.state_root.proof_locator < in ||
		    ev.u.state_root.proof_locator + ev.u.state_root.proof_locator_len > in + len)
			__builtin_trap();
	}
	return 0;
}
