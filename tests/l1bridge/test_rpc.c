/*
 * test_rpc.c - the JSON-RPC client against a real anvil started by each
 * test on a free port: typed calls, a signed transaction end to end, the
 * Inbox deployed and posted to with our own signer and its event decoded
 * from the receipt and from eth_getLogs, upstream fallback and bounded
 * timeouts.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "l1bridge/l1.h"

#include "tests/l1bridge/helpers.h"

/* anvil's first dev account. */
#define DEV_KEY "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"

static pid_t anvil_pid;
static char anvil_url[64];
static uint8_t dev_key[32], dev_addr[20];

static int free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
	cr_assert(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static struct l1_rpc *client(const char *const *urls, size_t n, long timeout_ms)
{
	struct l1_rpc_opts o = { .urls = urls, .nurls = n, .connect_timeout_ms = timeout_ms,
				 .timeout_ms = timeout_ms };
	struct l1_rpc *c = NULL;

	cr_assert_eq(l1_rpc_create(&c, &o), 0);
	return c;
}

/* An anvil of chain `chain` on a free port, its URL in url; its pid once it
 * answers eth_chainId. */
static pid_t spawn_anvil(const char *chain, char *url, size_t len)
{
	const char *anvil = getenv("ANVIL") ? getenv("ANVIL") : ".deps/bin/anvil";
	const char *urls[1] = { url };
	char port[16];
	struct l1_rpc *c;
	uint64_t id = 0;
	pid_t pid;

	cr_assert(access(anvil, X_OK) == 0, "anvil not found at %s", anvil);
	snprintf(port, sizeof(port), "%d", free_port());
	snprintf(url, len, "http://127.0.0.1:%s", port);
	pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		freopen("/dev/null", "w", stdout);
		execl(anvil, anvil, "--port", port, "--chain-id", chain, "--silent", (char *)NULL);
		_exit(127);
	}
	c = client(urls, 1, 1000);
	for (int i = 0; i < 200 && l1_rpc_chain_id(c, &id) != 0; i++)
		usleep(50 * 1000);
	l1_rpc_destroy(c);
	cr_assert_eq(id, strtoull(chain, NULL, 10), "anvil did not come up at %s", url);
	return pid;
}

static void start_anvil(void)
{
	size_t n;

	anvil_pid = spawn_anvil("31337", anvil_url, sizeof(anvil_url));
	cr_assert_eq(l1_hex_decode(dev_key, 32, &n, DEV_KEY, 64), 0);
	cr_assert_eq(l1_key_address(dev_key, dev_addr), 0);
}

static pid_t other_pid; /* a second anvil, of another chain */

static void stop_anvil(void)
{
	if (other_pid > 0) { /* its test failed before stopping it */
		kill(other_pid, SIGTERM);
		waitpid(other_pid, NULL, 0);
		other_pid = 0;
	}
	if (anvil_pid > 0) {
		kill(anvil_pid, SIGTERM);
		waitpid(anvil_pid, NULL, 0);
		anvil_pid = 0;
	}
}

TestSuite(rpc, .init = start_anvil, .fini = stop_anvil, .timeout = 60);

/* Signs and sends a transaction from the dev account with current fees;
 * returns its hash after checking it was mined with status 1. */
static void send_tx(struct l1_rpc *c, const uint8_t *to, const uint8_t *data, size_t len,
		    struct l1_receipt *r)
{
	static uint8_t raw[65536];
	struct l1_tx1559 tx = { .chain_id = 31337, .gas_limit = 3000000, .data = data,
				.data_len = len };
	struct l1_block b;
	uint8_t hash[32], sent[32];
	size_t rawlen;

	cr_assert_eq(l1_rpc_get_transaction_count(c, dev_addr, "pending", &tx.nonce), 0);
	cr_assert_eq(l1_rpc_get_block(c, "latest", 0, &b), 0);
	cr_assert(b.has_base_fee);
	cr_assert_eq(l1_rpc_max_priority_fee(c, tx.max_priority_fee), 0);
	l1_u256_from_u64(tx.max_fee, 100000000000ull); /* 100 gwei: anvil's base fee is ~1 */
	if (to != NULL) {
		tx.has_to = 1;
		memcpy(tx.to, to, 20);
	}
	cr_assert_eq(l1_tx1559_sign(&tx, dev_key, raw, sizeof(raw), &rawlen, hash), 0);
	cr_assert_eq(l1_rpc_send_raw_transaction(c, raw, rawlen, sent), 0, "%s",
		     l1_rpc_last_error(c)->message);
	cr_assert_eq(memcmp(hash, sent, 32), 0, "node's hash == our hash");
	for (int i = 0; i < 100; i++) {
		int rc = l1_rpc_get_receipt(c, hash, r);
		if (rc == 0)
			break;
		cr_assert_eq(rc, L1_ENOTFOUND);
		usleep(20 * 1000);
	}
	cr_assert_eq(r->status, 1);
	cr_assert_eq(memcmp(r->tx_hash, hash, 32), 0);
}

Test(rpc, typed_calls_and_a_signed_transfer)
{
	const char *urls[1] = { anvil_url };
	struct l1_rpc *c = client(urls, 1, 5000);
	struct l1_receipt r;
	struct l1_block b, b2;
	uint8_t to[20] = { 0x70, 0x99 }, base[32], tip[32], zero[32] = { 0 };
	uint64_t id, nonce, nonce2, gas;
	struct l1_call call = { .data = NULL };

	cr_assert_eq(l1_rpc_chain_id(c, &id), 0);
	cr_assert_eq(id, 31337);
	cr_assert_eq(l1_rpc_get_transaction_count(c, dev_addr, "latest", &nonce), 0);
	cr_assert_eq(nonce, 0);
	memcpy(call.to, to, 20);
	call.has_from = 1;
	memcpy(call.from, dev_addr, 20);
	call.has_value = 1;
	l1_u256_from_u64(call.value, 5);
	cr_assert_eq(l1_rpc_estimate_gas(c, &call, &gas), 0, "%s", l1_rpc_last_error(c)->message);
	cr_assert_eq(gas, 21000);

	send_tx(c, to, NULL, 0, &r);
	cr_assert_eq(r.gas_used, 21000);
	cr_assert_neq(memcmp(r.effective_gas_price, zero, 32), 0);
	cr_assert_eq(r.logs.n, 0);
	cr_assert_eq(l1_rpc_get_transaction_count(c, dev_addr, "latest", &nonce2), 0);
	cr_assert_eq(nonce2, 1);
	cr_assert_eq(l1_rpc_get_block(c, NULL, r.block_number, &b), 0);
	cr_assert_eq(memcmp(b.hash, r.block_hash, 32), 0, "receipt's block hash is the block's");
	cr_assert_eq(l1_rpc_get_block(c, "latest", 0, &b2), 0);
	cr_assert_geq(b2.number, b.number);
	cr_assert_eq(l1_rpc_get_block(c, NULL, 1000000, &b2), L1_ENOTFOUND);
	cr_assert_eq(l1_rpc_fee_history(c, 4, 50, base, tip), 0, "%s",
		     l1_rpc_last_error(c)->message);
	cr_assert_neq(memcmp(base, zero, 32), 0);
	l1_receipt_free(&r);

	/* the node's JSON-RPC error comes back with code and message */
	{
		uint8_t raw[512], h[32];
		size_t len;
		struct l1_tx1559 tx = { .chain_id = 31337, .nonce = 0, .gas_limit = 21000,
					.has_to = 1 };
		l1_u256_from_u64(tx.max_fee, 100000000000ull);
		cr_assert_eq(l1_tx1559_sign(&tx, dev_key, raw, sizeof(raw), &len, h), 0);
		cr_assert_eq(l1_rpc_send_raw_transaction(c, raw, len, h), L1_ERPC_ERROR);
		cr_assert_neq(l1_rpc_last_error(c)->code, 0);
		cr_assert(strstr(l1_rpc_last_error(c)->message, "nonce") != NULL, "%s",
			  l1_rpc_last_error(c)->message);
	}
	l1_rpc_destroy(c);
}

static size_t read_bin(uint8_t *out, size_t cap)
{
	static char hex[65536];
	const char *build = getenv("MEZZ_BUILD");
	char path[512];
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "%s/contracts/Inbox.bin", build ? build : "build");
	f = fopen(path, "r");
	cr_assert_not_null(f, "%s missing: run make contracts (or set MEZZ_BUILD)", path);
	n = fread(hex, 1, sizeof(hex) - 1, f);
	fclose(f);
	while (n > 0 && (hex[n - 1] == '\n' || hex[n - 1] == '\r'))
		n--;
	cr_assert_eq(l1_hex_decode(out, cap, &n, hex, n), 0);
	return n;
}

Test(rpc, inbox_deploy_post_and_decode_events)
{
	static uint8_t code[32768], calldata[4096], out[64];
	const char *urls[1] = { anvil_url };
	struct l1_rpc *c = client(urls, 1, 5000);
	struct l1_abi_arg ctor[2] = { { .kind = L1_ABI_ADDRESS, .word = dev_addr },
				      { .kind = L1_ABI_UINT64, .u64 = 0 } };
	uint64_t ids[2] = { 3, 9 };
	uint8_t roots[2][32], inbox[20], zero[32] = { 0 }, want[32], sel[4];
	struct l1_inbox_batch b = { .index = 0, .from_height = 0, .to_height = 41,
				    .n_namespaces = 2, .namespace_ids = ids,
				    .namespace_roots = (const uint8_t(*)[32])roots };
	struct l1_inbox_event ev;
	struct l1_receipt r;
	struct l1_log_list logs;
	struct l1_log_filter f = { .has_topic0 = 1 };
	struct l1_call call = { 0 };
	size_t n = read_bin(code, sizeof(code)), m, len;
	uint8_t rawaddr[32];

	cr_assert_eq(l1_abi_encode(code + n, sizeof(code) - n, &m, NULL, ctor, 2), 0);
	send_tx(c, NULL, code, n + m, &r);
	l1_receipt_free(&r);
	/* CREATE address = keccak(rlp[sender, nonce])[12..]: nonce 0 here */
	{
		uint8_t enc[64];
		struct l1_rlp_enc e;
		l1_rlp_enc_init(&e, enc, sizeof(enc));
		l1_rlp_list_begin(&e);
		l1_rlp_put_bytes(&e, dev_addr, 20);
		l1_rlp_put_u64(&e, 0);
		l1_rlp_list_end(&e);
		cr_assert_eq(l1_rlp_enc_finish(&e, &len), 0);
		l1_keccak256(rawaddr, enc, len);
		memcpy(inbox, rawaddr + 12, 20);
	}

	memset(b.da_root, 0xd1, 32);
	memset(roots[0], 0x31, 32);
	memset(roots[1], 0x39, 32);
	cr_assert_eq(l1_inbox_post_batch_calldata(calldata, sizeof(calldata), &len, &b), 0);
	send_tx(c, inbox, calldata, len, &r);
	cr_assert_lt(r.gas_used, 70000 + 2 * 25000, "sanity: %lu", (unsigned long)r.gas_used);
	cr_assert_eq(r.logs.n, 1);
	cr_assert_eq(memcmp(r.logs.v[0].address, inbox, 20), 0);
	cr_assert_eq(l1_inbox_decode_log(&ev, (const uint8_t(*)[32])r.logs.v[0].topics,
					 r.logs.v[0].ntopics, r.logs.v[0].data,
					 r.logs.v[0].data_len), 0);
	cr_assert_eq(ev.kind, L1_EV_BATCH_POSTED);
	cr_assert_eq(ev.u.batch.index, 0);
	cr_assert_eq(ev.u.batch.to_height, 41);
	cr_assert_eq(ev.u.batch.n_namespaces, 2);
	l1_inbox_batch_hash(want, zero, &b);
	cr_assert_eq(memcmp(ev.u.batch.batch_hash, want, 32), 0, "our batchHash == contract's");
	l1_receipt_free(&r);

	/* the same log through eth_getLogs, filtered by topic0 */
	memcpy(f.address, inbox, 20);
	memcpy(f.topic0, l1_inbox_event_topic(L1_EV_BATCH_POSTED), 32);
	cr_assert_eq(l1_rpc_get_logs(c, &f, &logs), 0, "%s", l1_rpc_last_error(c)->message);
	cr_assert_eq(logs.n, 1);
	cr_assert_eq(l1_inbox_decode_log(&ev, (const uint8_t(*)[32])logs.v[0].topics,
					 logs.v[0].ntopics, logs.v[0].data, logs.v[0].data_len), 0);
	l1_log_list_free(&logs);
	/* and by the indexed batch index (topic1): index 0 has it, 1 none */
	f.has_topic1 = 1;
	memset(f.topic1, 0, 32);
	cr_assert_eq(l1_rpc_get_logs(c, &f, &logs), 0, "%s", l1_rpc_last_error(c)->message);
	cr_assert_eq(logs.n, 1);
	l1_log_list_free(&logs);
	f.topic1[31] = 1;
	cr_assert_eq(l1_rpc_get_logs(c, &f, &logs), 0, "%s", l1_rpc_last_error(c)->message);
	cr_assert_eq(logs.n, 0, "the topic1 filter was not applied");
	l1_log_list_free(&logs);
	f.has_topic1 = 0;

	/* eth_call batchHash(0) */
	{
		struct l1_abi_arg a = { .kind = L1_ABI_UINT64, .u64 = 0 };
		l1_abi_selector(sel, "batchHash(uint64)");
		cr_assert_eq(l1_abi_encode(calldata, sizeof(calldata), &len, sel, &a, 1), 0);
	}
	memcpy(call.to, inbox, 20);
	call.data = calldata;
	call.data_len = len;
	cr_assert_eq(l1_rpc_eth_call(c, &call, NULL, out, sizeof(out), &m), 0);
	cr_assert_eq(m, 32);
	cr_assert_eq(memcmp(out, want, 32), 0);

	/* re-posting index 0 reverts with WrongIndex(1, 0): estimateGas
	 * surfaces the revert data so an outbox can recognise it */
	cr_assert_eq(l1_inbox_post_batch_calldata(calldata, sizeof(calldata), &len, &b), 0);
	call.has_from = 1;
	memcpy(call.from, dev_addr, 20);
	call.data_len = len;
	{
		int rc = l1_rpc_estimate_gas(c, &call, &m);
		cr_assert_eq(rc, L1_ERPC_ERROR, "rc %d: %s", rc, l1_rpc_last_error(c)->message);
	}
	l1_abi_selector(sel, "WrongIndex(uint64,uint64)");
	cr_assert_eq(l1_rpc_last_error(c)->data_len, 4 + 64, "%s", l1_rpc_last_error(c)->message);
	cr_assert_eq(memcmp(l1_rpc_last_error(c)->data, sel, 4), 0);
	l1_rpc_destroy(c);
}

Test(rpc, dead_first_url_falls_through)
{
	char dead[64];
	const char *urls[2] = { dead, anvil_url };
	struct l1_rpc *c;
	uint64_t id = 0;

	snprintf(dead, sizeof(dead), "http://127.0.0.1:%d", free_port()); /* nothing listens */
	c = client(urls, 2, 2000);
	cr_assert_eq(l1_rpc_chain_id(c, &id), 0, "%s", l1_rpc_last_error(c)->message);
	cr_assert_eq(id, 31337);
	cr_assert_eq(l1_rpc_last_error(c)->url_index, 1);
	l1_rpc_destroy(c);

	urls[1] = dead;
	c = client(urls, 2, 2000);
	cr_assert_eq(l1_rpc_chain_id(c, &id), L1_ERPC_TRANSPORT);
	l1_rpc_destroy(c);
}

Test(rpc, a_url_of_another_chain_is_passed_over)
{
	char other[64];
	const char *urls[2] = { other, anvil_url };
	struct l1_rpc_opts o = { .urls = urls, .nurls = 2, .connect_timeout_ms = 2000,
				 .timeout_ms = 2000, .chain_id = 31337 };
	struct l1_rpc *c = NULL;
	uint64_t id = 0, bn = 0;

	other_pid = spawn_anvil("5", other, sizeof(other));
	cr_assert_eq(l1_rpc_create(&c, &o), 0);
	cr_assert_eq(l1_rpc_get_transaction_count(c, dev_addr, "latest", &bn), 0, "%s", l1_rpc_last_error(c)->message);
	cr_assert_eq(l1_rpc_last_error(c)->url_index, 1, "answered by the right chain's URL");
	cr_assert_eq(l1_rpc_chain_id(c, &id), 0);
	cr_assert_eq(id, 31337);
	l1_rpc_destroy(c);

	o.nurls = 1; /* only the other chain's */
	cr_assert_eq(l1_rpc_create(&c, &o), 0);
	cr_assert_eq(l1_rpc_get_transaction_count(c, dev_addr, "latest", &bn), L1_ERPC_TRANSPORT);
	cr_assert(strstr(l1_rpc_last_error(c)->message, "serves chain 5, not 31337") != NULL, "%s",
		  l1_rpc_last_error(c)->message);
	l1_rpc_destroy(c);
	kill(other_pid, SIGTERM);
	waitpid(other_pid, NULL, 0);
	other_pid = 0;
}

Test(rpc, timeouts_are_bounded)
{
	/* A listener that never accepts: connect succeeds (the kernel's
	 * backlog), the request is never answered. */
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	char silent[64];
	const char *urls[2] = { silent, silent };
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct l1_rpc *c;
	uint64_t id;
	double t0;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(fd, 8) == 0);
	getsockname(fd, (struct sockaddr *)&a, &alen);
	snprintf(silent, sizeof(silent), "http://127.0.0.1:%d", ntohs(a.sin_port));
	c = client(urls, 2, 300);
	t0 = now();
	cr_assert_eq(l1_rpc_chain_id(c, &id), L1_ERPC_TIMEOUT);
	cr_assert_lt(now() - t0, 2.0, "two 300 ms attempts took %.2fs", now() - t0);
	l1_rpc_destroy(c);
	close(fd);
}

Test(rpc, oversized_response_is_refused)
{
	const char *urls[1] = { anvil_url };
	struct l1_rpc_opts o = { .urls = urls, .nurls = 1, .max_response = 16 };
	struct l1_rpc *c = NULL;
	uint64_t id;

	cr_assert_eq(l1_rpc_create(&c, &o), 0);
	cr_assert_eq(l1_rpc_chain_id(c, &id), L1_ERPC_TOOBIG);
	l1_rpc_destroy(c);
	o.nurls = 0;
	cr_assert_eq(l1_rpc_create(&c, &o), L1_EINVAL);
	l1_rpc_destroy(NULL);
}
