/*
 * da_bench.c - data-availability benchmarks, with the peers measured in the
 * same run on the same (k, m, S):
 *
 *   ours      da_encode (sliced ISA-L)              vs raw ec_encode_data on whole shards
 *   jerasure  jerasure_matrix_encode (Vandermonde, w=8) and the Cauchy bit-matrix schedule
 *             (cauchy_good_general_coding_matrix + smart schedule); the faster one is the peer
 *   klauspost reedsolomon (Go, one goroutine), run as a child process (--klauspost BIN)
 *   pipeline  payload build + encode + shard hashing + durable put to D temp dirs, in GB/s of
 *             payload per CPU second (process CPU time) and per wall second
 *   floor     the put's floor on this disk: the bytes the put wrote to each directory, written
 *             again with one O_DIRECT write into a file already allocated and one fdatasync
 *             per directory per block; and the pipeline's ceiling with that put
 *   rebuild   da_decode with m data shards lost, GB/s of payload
 *
 * Throughputs are GB/s (1e9 bytes) of data, i.e. k * S bytes per encode. Each
 * figure is the median of --reps samples, each sample a loop of at least
 * --sample-ms. --slices instead measures the encode slice size (ISA-L over
 * column slices of each size, the way da_encode runs). --md FILE writes the
 * markdown section that scripts/run-bench puts into docs/BENCHMARKS.md.
 * --pipeline runs only the whole pipeline, for a profiler (perf record).
 *
 *   da_bench [--quick] [--k 16] [--m 16] [--sizes 65536,1048576] [--klauspost BIN]
 *            [--dir TMP] [--md FILE] [--slices] [--pipeline]
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <isa-l/erasure_code.h>
#include <jerasure.h>
#include <jerasure/cauchy.h>
#include <jerasure/reed_sol.h>

#include "da/da.h"
#include "da/internal.h" /* da__isal_done */

#define MAX_SIZES 8
#define JER_PACKET 2048 /* bytes per packet for the Cauchy schedule; S must be a multiple of 8x it */

static int reps = 7, sample_ms = 150;

static double now(clockid_t c)
{
	struct timespec ts;

	clock_gettime(c, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_d);
	return v[n / 2];
}

/* Median GB/s of fn over reps samples; bytes per call. */
static double measure(void (*fn)(void *), void *arg, double bytes)
{
	double v[64];

	fn(arg); /* warm-up */
	for (int r = 0; r < reps; r++) {
		double t0 = now(CLOCK_MONOTONIC), t;
		long n = 0;

		do {
			fn(arg);
			n++;
			t = now(CLOCK_MONOTONIC) - t0;
		} while (t * 1000 < sample_ms);
		v[r] = bytes * (double)n / t / 1e9;
	}
	return median(v, reps);
}

struct ctx {
	unsigned k, m;
	size_t S, slice;
	uint8_t **data, **parity;
	struct da_code *code;
	uint8_t *tbls;
	int *jmatrix, **jschedule;
	uint8_t present[DA_MAX_SHARDS];
	uint8_t *all[DA_MAX_SHARDS];
};

static void run_ours(void *a)
{
	struct ctx *c = a;

	da_encode(c->code, c->data, c->parity, c->S);
}

static void run_raw(void *a)
{
	struct ctx *c = a;

	ec_encode_data((int)c->S, (int)c->k, (int)c->m, c->tbls, c->data, c->parity);
	/* as da_encode does after each call: jerasure's SSE code measured
	 * after a dirty ISA-L return would run slower (da/code.c) */
	da__isal_done();
}

static void run_sliced(void *a)
{
	struct ctx *c = a;
	uint8_t *s[DA_MAX_SHARDS], *d[DA_MAX_SHARDS];

	for (size_t off = 0; off < c->S; off += c->slice) {
		size_t n = c->S - off < c->slice ? c->S - off : c->slice;

		for (unsigned i = 0; i < c->k; i++)
			s[i] = c->data[i] + off;
		for (unsigned i = 0; i < c->m; i++)
			d[i] = c->parity[i] + off;
		ec_encode_data((int)n, (int)c->k, (int)c->m, c->tbls, s, d);
		da__isal_done();
	}
}

static void run_jer_matrix(void *a)
{
	struct ctx *c = a;

	jerasure_matrix_encode((int)c->k, (int)c->m, 8, c->jmatrix, (char **)c->data,
			       (char **)c->parity, (int)c->S);
}

static void run_jer_schedule(void *a)
{
	struct ctx *c = a;

	jerasure_schedule_encode((int)c->k, (int)c->m, 8, c->jschedule, (char **)c->data,
				 (char **)c->parity, (int)c->S, JER_PACKET);
}

static void run_decode(void *a)
{
	struct ctx *c = a;

	da_decode(c->code, c->all, c->present, c->S);
}

static void ctx_init(struct ctx *c, unsigned k, unsigned m, size_t S)
{
	uint8_t *a = malloc((size_t)(k + m) * k);

	memset(c, 0, sizeof(*c));
	c->k = k;
	c->m = m;
	c->S = S;
	c->data = calloc(k, sizeof(*c->data));
	c->parity = calloc(m, sizeof(*c->parity));
	for (unsigned i = 0; i < k + m; i++) {
		uint8_t *p = aligned_alloc(64, S);

		for (size_t j = 0; j < S; j++)
			p[j] = (uint8_t)(j * 31 + i * 7 + (j >> 9));
		if (i < k)
			c->data[i] = p;
		else
			c->parity[i - k] = p;
		c->all[i] = p;
	}
	if (da_code_new(k, m, &c->code) != 0)
		exit(1);
	c->tbls = malloc((size_t)32 * k * m);
	gf_gen_cauchy1_matrix(a, (int)(k + m), (int)k);
	ec_init_tables((int)k, (int)m, a + (size_t)k * k, c->tbls);
	free(a);
}

static void ctx_free(struct ctx *c)
{
	for (unsigned i = 0; i < c->k + c->m; i++)
		free(c->all[i]);
	free(c->data);
	free(c->parity);
	free(c->tbls);
	da_code_free(c->code);
}

/* Runs BIN k m S reps sample_ms and parses "klauspost_gbps X". */
static double klauspost(const char *bin, unsigned k, unsigned m, size_t S)
{
	char cmd[1024], line[256];
	double v = 0;
	FILE *p;

	if (bin == NULL)
		return 0;
	if (snprintf(cmd, sizeof(cmd), "'%s' %u %u %zu %d %d", bin, k, m, S, reps, sample_ms) >=
	    (int)sizeof(cmd))
		return 0;
	p = popen(cmd, "r");
	if (p == NULL)
		return 0;
	while (fgets(line, sizeof(line), p) != NULL)
		if (sscanf(line, "klauspost_gbps %lf", &v) == 1)
			break;
	pclose(p);
	return v;
}

/* ---------------------------------------------------------------- */
/* Whole pipeline                                                    */

struct pipe_res {
	double cpu_gbps, wall_gbps, put_ms, payload_mb;
	double cpu_build_ms, cpu_code_ms, cpu_put_ms; /* CPU per block, by phase */
	double floor_ms;   /* put_floor: CPU per block; 0 if it could not run */
	double ceil_gbps;  /* payload / (build + encode + hash + floor) */
	double pack_mb;    /* bytes the put wrote per block, all directories */
};

#define DIO 4096

/*
 * The put's floor on this disk, for comparison with the store's put: the
 * bytes the put wrote to each directory (pack[d], da_store_put_block's pack
 * there), written again as cheaply as a durable write gets here. One file
 * per directory, allocated, written (zeros) and fsync'd before the clock,
 * so that nothing on the clock allocates a block or changes an inode or a
 * directory: per block, one O_DIRECT write of pack[d] bytes (rounded up to
 * 4 KiB) at the next offset of each file and one fdatasync of each, from
 * one thread (threads would add CPU, not remove it). The files are a ring of
 * `blocks` blocks: rewriting written blocks costs what writing fresh ones in
 * a preallocated file does. Median over reps of CPU ms per block, or 0 if it
 * could not run (a directory refusing O_DIRECT, tmpfs). Nothing names or
 * finds the blocks: a floor, not a store.
 */
static double put_floor(char (*dirs)[512], const size_t *pack, int D, int blocks)
{
	size_t len[4], most = 0;
	double v[64];
	int fd[4], ok = 1;
	void *buf = NULL;
	char path[512 + 16];

	for (int d = 0; d < D; d++) {
		if (pack[d] == 0)
			return 0;
		len[d] = (pack[d] + DIO - 1) / DIO * DIO;
		most = len[d] > most ? len[d] : most;
		fd[d] = -1;
	}
	if (most == 0 || posix_memalign(&buf, DIO, most) != 0)
		return 0;
	memset(buf, 0, most);
	for (int d = 0; d < D && ok; d++) {
		if (snprintf(path, sizeof(path), "%s/floor", dirs[d]) >= (int)sizeof(path)) {
			ok = 0;
			break;
		}
		fd[d] = open(path, O_RDWR | O_CREAT | O_TRUNC | O_DIRECT | O_CLOEXEC, 0600);
		ok = fd[d] >= 0;
		for (int b = 0; b < blocks && ok; b++)
			ok = pwrite(fd[d], buf, len[d], (off_t)(b * len[d])) == (ssize_t)len[d];
		ok = ok && fsync(fd[d]) == 0;
		unlink(path); /* the descriptor keeps it until the end */
	}
	memset(buf, 0x5a, most);
	for (int r = 0; r < reps && ok; r++) {
		double c0 = now(CLOCK_PROCESS_CPUTIME_ID);

		for (int b = 0; b < blocks && ok; b++)
			for (int d = 0; d < D && ok; d++)
				ok = pwrite(fd[d], buf, len[d], (off_t)(b * len[d])) ==
					     (ssize_t)len[d] &&
				     fdatasync(fd[d]) == 0;
		v[r] = (now(CLOCK_PROCESS_CPUTIME_ID) - c0) / blocks * 1000;
	}
	for (int d = 0; d < D; d++)
		if (fd[d] >= 0)
			close(fd[d]);
	free(buf);
	return ok ? median(v, reps) : 0;
}

static void fill_hdr(struct seq_block_hdr *h, size_t ntx, uint32_t nns)
{
	memset(h, 0, sizeof(*h));
	h->version = SEQ_BLOCK_VERSION;
	h->height = 1;
	h->first_seq = 1;
	h->tx_count = ntx;
	h->ns_count = nns;
}

/*
 * One block of about k * S bytes of 500-byte transactions in 4 namespaces,
 * built, encoded, hashed and put durably; CPU and wall time per block.
 */
static struct pipe_res pipeline(unsigned k, unsigned m, size_t S, const char *tmp)
{
	enum { TXLEN = 500, NNS = 4 };
	size_t ntx = (k * S - 600) / (TXLEN + 12), i;
	struct da_tx *txs = calloc(ntx, sizeof(*txs));
	struct seq_block_ns ns[NNS];
	uint8_t *blob = malloc(ntx * TXLEN), sig[64] = {0}, bh[32] = {0};
	char dirs[4][512];
	const char *dp[4];
	struct da_store *st;
	struct da_code *code;
	struct da_bufs kb = {0}; /* as mz-da keeps them, block to block */
	struct seq_block_hdr h;
	double cpu[64], wall[64], put[64], cb[64], cc[64], cp[64];
	struct pipe_res res = {0};
	size_t payload_len = 0, pack[4] = {0};
	int blocks = reps < 5 ? 3 : 6;

	for (i = 0; i < ntx * TXLEN; i++)
		blob[i] = (uint8_t)(i * 131 + (i >> 11));
	memset(ns, 0, sizeof(ns));
	for (i = 0; i < ntx; i++) {
		unsigned n = (unsigned)(i * NNS / ntx);

		txs[i] = (struct da_tx){1 + i, n + 1, blob + i * TXLEN, TXLEN};
		ns[n].ns = n + 1;
		ns[n].count++;
	}
	fill_hdr(&h, ntx, NNS);
	for (int d = 0; d < 4; d++) {
		if (snprintf(dirs[d], sizeof(dirs[d]), "%s/disk%d", tmp, d) >= (int)sizeof(dirs[d]))
			exit(1);
		dp[d] = dirs[d];
	}
	if (da_store_open(dp, 4, &st) != 0 || da_code_new(k, m, &code) != 0)
		exit(1);
	for (int r = 0; r < reps; r++) {
		double c0 = now(CLOCK_PROCESS_CPUTIME_ID), w0 = now(CLOCK_MONOTONIC), tp = 0;
		double pb = 0, pc = 0, pp = 0;

		for (int b = 0; b < blocks; b++) {
			struct da_block blk;
			struct da_record rec;
			uint8_t *buf;
			size_t SS, cap;
			double t;

			double q0, q1, q2;

			h.height = (uint64_t)(r * blocks + b + 1);
			q0 = now(CLOCK_PROCESS_CPUTIME_ID);
			if (da_payload_build_reuse(&kb, &h, sig, ns, txs, k, &buf, &cap, &payload_len,
						   &SS) != 0)
				exit(1);
			q1 = now(CLOCK_PROCESS_CPUTIME_ID);
			if (da_block_encode_reuse(&kb, &blk, &rec, code, buf, cap, payload_len, SS,
						  h.height, bh) != 0)
				exit(1);
			q2 = now(CLOCK_PROCESS_CPUTIME_ID);
			t = now(CLOCK_MONOTONIC);
			if (da_store_put_block(st, &rec, &blk) != 0)
				exit(1);
			tp += now(CLOCK_MONOTONIC) - t;
			pp += now(CLOCK_PROCESS_CPUTIME_ID) - q2;
			pb += q1 - q0;
			pc += q2 - q1;
			da_block_recycle(&blk, &kb);
		}
		cpu[r] = (double)payload_len * blocks / (now(CLOCK_PROCESS_CPUTIME_ID) - c0) / 1e9;
		wall[r] = (double)payload_len * blocks / (now(CLOCK_MONOTONIC) - w0) / 1e9;
		put[r] = tp / blocks * 1000;
		cb[r] = pb / blocks * 1000;
		cc[r] = pc / blocks * 1000;
		cp[r] = pp / blocks * 1000;
		for (int d = 0; d < 4 && r == reps - 1; d++) { /* what one put wrote */
			struct stat sb;
			char p[sizeof(dirs[0]) + 48];
			uint64_t h1 = (uint64_t)(r * blocks + 1);

			if (snprintf(p, sizeof(p), "%s/%" PRIu64 "/%" PRIu64, dirs[d], h1 / 4096,
				     h1) < (int)sizeof(p) && stat(p, &sb) == 0)
				pack[d] = (size_t)sb.st_size;
		}
		for (int b = 0; b < blocks; b++) /* retention, outside the clock */
			da_store_remove_block(st, (uint64_t)(r * blocks + b + 1), k + m);
	}
	res.cpu_gbps = median(cpu, reps);
	res.wall_gbps = median(wall, reps);
	res.put_ms = median(put, reps);
	res.cpu_build_ms = median(cb, reps);
	res.cpu_code_ms = median(cc, reps);
	res.cpu_put_ms = median(cp, reps);
	res.payload_mb = (double)payload_len / 1e6;
	res.pack_mb = (double)(pack[0] + pack[1] + pack[2] + pack[3]) / 1e6;
	res.floor_ms = put_floor(dirs, pack, 4, blocks);
	if (res.floor_ms > 0)
		res.ceil_gbps = (double)payload_len /
				((res.cpu_build_ms + res.cpu_code_ms + res.floor_ms) / 1000) / 1e9;
	da_store_close(st);
	da_code_free(code);
	da_bufs_free(&kb);
	for (int d = 0; d < 4; d++)
		rmdir(dirs[d]); /* group dirs stay: removed by run-bench with the temp dir */
	free(txs);
	free(blob);
	return res;
}

/* ---------------------------------------------------------------- */

struct row {
	size_t S;
	double ours, raw, jm, js, kp, rebuild;
	struct pipe_res pipe;
};

static void slices(unsigned k, unsigned m)
{
	static const size_t sl[] = {4096, 8192, 16384, 32768, 65536, 131072, 1 << 20};
	static const size_t sizes[] = {1 << 20, 4 << 20};

	printf("slice size per shard (k=%u m=%u): GB/s of data\n", k, m);
	for (size_t s = 0; s < 2; s++) {
		struct ctx c;

		ctx_init(&c, k, m, sizes[s]);
		printf("  S=%zu KiB: whole %.2f", sizes[s] >> 10, measure(run_raw, &c, (double)k * c.S));
		for (size_t i = 0; i < sizeof(sl) / sizeof(sl[0]); i++) {
			c.slice = sl[i];
			printf("  %zuK %.2f", sl[i] >> 10, measure(run_sliced, &c, (double)k * c.S));
		}
		printf("\n");
		ctx_free(&c);
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"quick", no_argument, NULL, 'q'},   {"k", required_argument, NULL, 'k'},
		{"m", required_argument, NULL, 'm'}, {"sizes", required_argument, NULL, 's'},
		{"klauspost", required_argument, NULL, 'g'}, {"dir", required_argument, NULL, 'd'},
		{"md", required_argument, NULL, 'o'}, {"slices", no_argument, NULL, 'l'},
		{"pipeline", no_argument, NULL, 'p'}, {NULL, 0, NULL, 0}};
	unsigned k = 16, m = 16;
	size_t sizes[MAX_SIZES] = {65536, 1 << 20}, nsizes = 2;
	const char *kp = NULL, *md = NULL, *tmpdir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	char tmp[512];
	struct row rows[MAX_SIZES];
	int o, quick = 0, do_slices = 0, only_pipeline = 0;
	FILE *f;

	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'q': quick = 1; break;
		case 'k': k = (unsigned)atoi(optarg); break;
		case 'm': m = (unsigned)atoi(optarg); break;
		case 'g': kp = optarg; break;
		case 'd': tmpdir = optarg; break;
		case 'o': md = optarg; break;
		case 'l': do_slices = 1; break;
		case 'p': only_pipeline = 1; break;
		case 's': {
			char *p = optarg;

			for (nsizes = 0; nsizes < MAX_SIZES && *p; nsizes++) {
				sizes[nsizes] = strtoull(p, &p, 10);
				if (*p == ',')
					p++;
			}
			break;
		}
		default:
			fprintf(stderr, "see the comment at the top of tests/bench/da_bench.c\n");
			return 2;
		}
	}
	if (quick) {
		reps = 3;
		sample_ms = 60;
	}
	if (do_slices) {
		slices(k, m);
		return 0;
	}
	if (snprintf(tmp, sizeof(tmp), "%s/da-bench.XXXXXX", tmpdir) >= (int)sizeof(tmp))
		return 1;
	if (mkdtemp(tmp) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	if (only_pipeline) {
		for (size_t i = 0; i < nsizes; i++) {
			struct pipe_res p = pipeline(k, m, sizes[i], tmp);

			printf("S=%zu KiB: pipeline %.2f GB/s per CPU s (%.2f wall); CPU ms/block: "
			       "build %.1f, encode+hash %.1f, put %.2f; put floor %.2f ms for %.1f MB "
			       "(ceiling %.2f GB/s)\n", sizes[i] >> 10, p.cpu_gbps, p.wall_gbps,
			       p.cpu_build_ms, p.cpu_code_ms, p.cpu_put_ms, p.floor_ms, p.pack_mb,
			       p.ceil_gbps);
		}
		rmdir(tmp);
		return 0;
	}

	/* The faster jerasure configuration is chosen per S (see the table). */
	for (size_t i = 0; i < nsizes; i++) {
		struct row *r = &rows[i];
		struct ctx c;
		int *bm;

		ctx_init(&c, k, m, sizes[i]);
		r->S = sizes[i];
		r->ours = measure(run_ours, &c, (double)k * c.S);
		r->raw = measure(run_raw, &c, (double)k * c.S);
		c.jmatrix = reed_sol_vandermonde_coding_matrix((int)k, (int)m, 8);
		r->jm = measure(run_jer_matrix, &c, (double)k * c.S);
		free(c.jmatrix);
		r->js = 0;
		if (c.S % (8 * JER_PACKET) == 0) {
			c.jmatrix = cauchy_good_general_coding_matrix((int)k, (int)m, 8);
			bm = jerasure_matrix_to_bitmatrix((int)k, (int)m, 8, c.jmatrix);
			c.jschedule = jerasure_smart_bitmatrix_to_schedule((int)k, (int)m, 8, bm);
			r->js = measure(run_jer_schedule, &c, (double)k * c.S);
			jerasure_free_schedule(c.jschedule);
			free(bm);
			free(c.jmatrix);
		}
		r->kp = klauspost(kp, k, m, c.S);
		/* Rebuild: the first m data shards lost (every lost shard needs all k sources). */
		memset(c.present, 1, k + m);
		for (unsigned j = 0; j < m && j < k; j++)
			c.present[j] = 0;
		r->rebuild = measure(run_decode, &c, (double)k * c.S);
		ctx_free(&c);
		r->pipe = pipeline(k, m, sizes[i], tmp);
		printf("k=%u m=%u S=%zu KiB: ours %.2f GB/s, raw ISA-L %.2f (ratio %.2f), "
		       "jerasure vandermonde %.2f, cauchy-schedule %.2f, klauspost %.2f; "
		       "rebuild (m lost) %.2f; pipeline %.2f GB/s per CPU s (%.2f wall, put %.1f ms "
		       "for %.1f MB; CPU ms/block: build %.1f, encode+hash %.1f, put %.2f; put floor "
		       "%.2f, ceiling %.2f GB/s)\n",
		       k, m, r->S >> 10, r->ours, r->raw, r->ours / r->raw, r->jm, r->js, r->kp,
		       r->rebuild, r->pipe.cpu_gbps, r->pipe.wall_gbps, r->pipe.put_ms,
		       r->pipe.payload_mb, r->pipe.cpu_build_ms, r->pipe.cpu_code_ms, r->pipe.cpu_put_ms,
		       r->pipe.floor_ms, r->pipe.ceil_gbps);
		fflush(stdout);
	}
	rmdir(tmp);

	f = md ? fopen(md, "w") : stdout;
	if (f == NULL) {
		perror(md);
		return 1;
	}
	fprintf(f, "## Data availability (tests/bench/da_bench.c)\n\n");
	fprintf(f, "k = %u, m = %u; medians of %d samples of >= %d ms each; GB/s = 1e9 bytes of "
		   "data (k x S) per second, one thread. Peers measured in the same run on the same "
		   "buffers: raw ISA-L `ec_encode_data` on whole shards, jerasure 2 (w = 8; "
		   "`jerasure_matrix_encode` with `reed_sol_vandermonde_coding_matrix`, and "
		   "`jerasure_schedule_encode` with `cauchy_good_general_coding_matrix`'s smart "
		   "bit-matrix schedule, packet %d bytes), klauspost/reedsolomon (Debian package, "
		   "Go, `WithMaxGoroutines(1)`; its own process, on its own buffers of the same k, m "
		   "and S).\n\n",
		k, m, reps, sample_ms, JER_PACKET);
	fprintf(f, "| S | da_encode | raw ISA-L | ours / ISA-L | jerasure best | ours / jerasure "
		   "| klauspost | ours / klauspost | rebuild, m lost |\n|---|---|---|---|---|---|---|---|---|\n");
	for (size_t i = 0; i < nsizes; i++) {
		struct row *r = &rows[i];
		double jb = r->jm > r->js ? r->jm : r->js;

		fprintf(f, "| %zu KiB | %.2f GB/s | %.2f GB/s | **%.2f** | %.2f GB/s (%s) | %.2f | ",
			r->S >> 10, r->ours, r->raw, r->ours / r->raw, jb,
			r->jm > r->js ? "Vandermonde matrix" : "Cauchy schedule", r->ours / jb);
		if (r->kp > 0)
			fprintf(f, "%.2f GB/s | %.2f |", r->kp, r->ours / r->kp);
		else
			fprintf(f, "- | - |");
		fprintf(f, " %.2f GB/s |\n", r->rebuild);
	}
	fprintf(f, "\nWhole pipeline per block (payload build of 500-byte txs in 4 namespaces, "
		   "encode, k + m shard leaves, Merkle root, durable put: temp file, fsync, "
		   "rename, directory fsync, over 4 directories under `$TMPDIR`), GB/s of payload:\n\n");
	fprintf(f, "| S | payload | per CPU second (process CPU time) | per wall second | put wall (write + fsync) "
		   "| CPU ms per block: build / encode + hash / put | packs written | put floor, CPU ms "
		   "| ceiling with the floor |\n|---|---|---|---|---|---|---|---|---|\n");
	for (size_t i = 0; i < nsizes; i++) {
		const struct pipe_res *p = &rows[i].pipe;

		fprintf(f, "| %zu KiB | %.1f MB | **%.2f GB/s** | %.2f GB/s | %.1f ms | %.1f / %.1f / %.2f "
			   "| %.1f MB | ",
			rows[i].S >> 10, p->payload_mb, p->cpu_gbps, p->wall_gbps, p->put_ms,
			p->cpu_build_ms, p->cpu_code_ms, p->cpu_put_ms, p->pack_mb);
		if (p->floor_ms > 0)
			fprintf(f, "%.2f | %.2f GB/s |\n", p->floor_ms, p->ceil_gbps);
		else
			fprintf(f, "- (no O_DIRECT here) | - |\n");
	}
	fprintf(f, "\nPut floor: the bytes the put wrote to each directory, written again as cheaply "
		   "as a durable write gets on this disk: one O_DIRECT write into a file already "
		   "allocated and one `fdatasync` per directory per block, from one thread "
		   "(`put_floor` in da_bench.c), so no file is created and no inode or directory "
		   "written. Ceiling: the payload over build + encode + hash + that floor, the most a "
		   "store writing these bytes to these directories could reach with this run's coding "
		   "and hashing.\n");
	fprintf(f, "\nBudgets (DESIGN.md): encode >= 0.9 x raw ISA-L: ");
	for (size_t i = 0; i < nsizes; i++)
		fprintf(f, "%s%zu KiB %.2f %s", i ? ", " : "", rows[i].S >> 10,
			rows[i].ours / rows[i].raw, rows[i].ours / rows[i].raw >= 0.9 ? "PASS" : "MISS");
	fprintf(f, "; pipeline >= 0.5 GB/s of payload per core: ");
	for (size_t i = 0; i < nsizes; i++)
		fprintf(f, "%s%zu KiB %.2f %s", i ? ", " : "", rows[i].S >> 10, rows[i].pipe.cpu_gbps,
			rows[i].pipe.cpu_gbps >= 0.5 ? "PASS" : "MISS");
	fprintf(f, ".\n\n");
	if (f != stdout)
		fclose(f);
	return 0;
}
