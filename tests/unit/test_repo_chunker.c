/*
 * test_repo_chunker.c - the chunker (src/repo/chunker.c): boundaries that
 * depend only on the bytes, never on how they were fed; size bounds; an
 * insertion disturbs only the chunks around it; fixed blocks and pages stay
 * aligned; the key changes the boundaries; pinned vectors so a change of the
 * algorithm (which would break deduplication against existing repositories)
 * cannot go unnoticed.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "repo/repo.h"
#include "unit.h"

/* Deterministic bytes: xorshift64, or text-like (low entropy) when text. */
static uint8_t *make_data(size_t n, uint64_t seed, int text)
{
	uint8_t *d = malloc(n ? n : 1);
	uint64_t x = seed | 1;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		d[i] = text ? (uint8_t)("etcd bbolt page kube /registry/\n "[x % 32]) : (uint8_t)(x >> 24);
	}
	return d;
}

typedef struct cuts {
	uint64_t *end;   /* end offset of each chunk, the last one = n */
	size_t n;
} cuts;

enum slicing { WHOLE, BYTES, RANDOM };

/* Chunk data[0..n) fed in slices; returns the chunk end offsets. */
static cuts chunk_all(const kt_chunker_params *p, const uint8_t *key, const uint8_t *data,
                      size_t n, enum slicing how, uint64_t seed)
{
	kt_chunker c;
	kt_error err;
	cuts out = { malloc(sizeof(uint64_t) * (n + 1)), 0 };
	uint64_t off = 0, x = seed | 1;
	if (kt_chunker_init(&c, p, key, &err) != KT_OK) {
		fprintf(stderr, "  init: %s\n", err.msg);
		CHECK(0);
		return out;
	}
	size_t at = 0;
	while (at < n) {
		size_t slice = n - at;
		if (how == BYTES) {
			slice = 1;
		} else if (how == RANDOM) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			size_t r = (x % 4 == 0) ? (size_t)(x >> 8) % 7 + 1 : (size_t)(x >> 8) % 100000;
			slice = r < slice ? (r ? r : 1) : slice;
		}
		const uint8_t *q = data + at;
		size_t left = slice;
		while (left) {
			int cut;
			size_t used = kt_chunker_scan(&c, q, left, &cut);
			CHECK(used > 0 && used <= left);
			CHECK(cut || used == left);
			q += used;
			left -= used;
			off += used;
			if (cut)
				out.end[out.n++] = off;
		}
		at += slice;
	}
	uint64_t last = kt_chunker_finish(&c);
	if (last)
		out.end[out.n++] = off;
	CHECK(out.n == 0 || out.end[out.n - 1] == n);
	return out;
}

static int same_cuts(cuts a, cuts b)
{
	return a.n == b.n && !memcmp(a.end, b.end, a.n * sizeof(uint64_t));
}

static kt_chunker_params spec(const char *s)
{
	kt_chunker_params p = { 0 };
	kt_error err;
	if (kt_chunker_params_parse(s, &p, &err) != KT_OK) {
		fprintf(stderr, "  %s: %s\n", s, err.msg);
		CHECK(0);
	}
	return p;
}

static const char *const specs[] = {
	"fastcdc:min=2K,avg=8K,max=32K,level=2",
	"fastcdc:min=64,avg=256,max=1K,level=0",
	"fastcdc:min=16K,avg=64K,max=256K,level=3",
	"fastcdc:min=4K,avg=16K,max=64K,level=1",
	"fixed:4K",
	"fixed:1000",
	"pagecdc:block=4K,min=8K,avg=16K,max=64K,level=1",
	"pagecdc:block=64,min=128,avg=512,max=2K,level=2",
	NULL,
};

/* ------------------------------------------------------------------ */

static void test_slicing_does_not_matter(void)
{
	size_t n = 3u << 20;
	uint8_t *d = make_data(n, 7, 0), *t = make_data(n / 4, 9, 1);
	for (const char *const *s = specs; *s; s++) {
		kt_chunker_params p = spec(*s);
		for (int text = 0; text < 2; text++) {
			const uint8_t *data = text ? t : d;
			size_t len = text ? n / 4 : n;
			cuts whole = chunk_all(&p, NULL, data, len, WHOLE, 0);
			cuts again = chunk_all(&p, NULL, data, len, WHOLE, 0);
			cuts bytes = chunk_all(&p, NULL, data, len / 3, BYTES, 0);
			cuts rnd = chunk_all(&p, NULL, data, len, RANDOM, 42);
			cuts rnd2 = chunk_all(&p, NULL, data, len, RANDOM, 4242);
			CHECK(same_cuts(whole, again));
			CHECK(same_cuts(whole, rnd));
			CHECK(same_cuts(whole, rnd2));
			/* byte by byte over a prefix: the same cuts below the prefix end */
			cuts pre = chunk_all(&p, NULL, data, len / 3, WHOLE, 0);
			CHECK(same_cuts(pre, bytes));
			size_t k = 0;
			while (k < pre.n && pre.end[k] < len / 3)
				k++;
			CHECK(k <= whole.n && !memcmp(pre.end, whole.end, k * sizeof(uint64_t)));
			if (!same_cuts(whole, rnd))
				fprintf(stderr, "  slicing changed the cuts of %s (%s data)\n", *s,
				        text ? "text" : "random");
			free(whole.end);
			free(again.end);
			free(bytes.end);
			free(rnd.end);
			free(rnd2.end);
			free(pre.end);
		}
	}
	free(d);
	free(t);
}

static void test_bounds_and_alignment(void)
{
	size_t n = 4u << 20;
	uint8_t *d = make_data(n, 11, 0);
	/* Zeros: no content-defined cut can match a constant window for long;
	 * max_size must hold. Text: low entropy. */
	uint8_t *z = calloc(n, 1), *t = make_data(n, 13, 1);
	const uint8_t *inputs[] = { d, z, t };
	for (const char *const *s = specs; *s; s++) {
		kt_chunker_params p = spec(*s);
		for (size_t in = 0; in < 3; in++) {
			cuts c = chunk_all(&p, NULL, inputs[in], n, RANDOM, 5);
			uint64_t prev = 0;
			for (size_t i = 0; i < c.n; i++) {
				uint64_t len = c.end[i] - prev;
				int last = i + 1 == c.n;
				if (p.kind == KT_CHUNKER_FIXED) {
					CHECK(c.end[i] % p.block_size == 0 || last);
					CHECK(len == p.block_size || (last && len < p.block_size));
				} else {
					CHECK(len <= p.max_size);
					CHECK(len >= p.min_size || last);
				}
				if (p.kind == KT_CHUNKER_PAGECDC)
					CHECK(c.end[i] % p.block_size == 0 || last);
				prev = c.end[i];
			}
			free(c.end);
		}
	}
	free(d);
	free(z);
	free(t);
}

static void test_mean_size_near_avg(void)
{
	size_t n = 16u << 20;
	uint8_t *d = make_data(n, 17, 0);
	const char *const s[] = { "fastcdc:min=2K,avg=8K,max=32K,level=2",
	                          "fastcdc:min=16K,avg=64K,max=256K,level=2",
	                          "pagecdc:block=4K,min=16K,avg=64K,max=256K,level=1" };
	for (size_t i = 0; i < 3; i++) {
		kt_chunker_params p = spec(s[i]);
		cuts c = chunk_all(&p, NULL, d, n, WHOLE, 0);
		double mean = (double)n / (double)c.n;
		if (mean < 0.6 * p.avg_size || mean > 1.6 * p.avg_size) {
			fprintf(stderr, "  %s: mean chunk %.0f bytes\n", s[i], mean);
			CHECK(0);
		}
		free(c.end);
	}
	free(d);
}

/* The chunks of a stream as (start, length) and a lookup by content. */
static size_t chunks_not_in(const uint8_t *a, cuts ca, const uint8_t *b, cuts cb)
{
	size_t missing = 0;
	uint64_t pa = 0;
	for (size_t i = 0; i < ca.n; i++) {
		uint64_t la = ca.end[i] - pa;
		int found = 0;
		uint64_t pb = 0;
		for (size_t j = 0; j < cb.n && !found; j++) {
			uint64_t lb = cb.end[j] - pb;
			found = la == lb && !memcmp(a + pa, b + pb, la);
			pb = cb.end[j];
		}
		missing += !found;
		pa = ca.end[i];
	}
	return missing;
}

static void test_insertion_resynchronizes(void)
{
	size_t n = 4u << 20, ins = 1000, at = n / 2 + 12345;
	uint8_t *d = make_data(n, 19, 0);
	uint8_t *e = malloc(n + ins);
	memcpy(e, d, at);
	for (size_t i = 0; i < ins; i++)
		e[at + i] = (uint8_t)(i * 7);
	memcpy(e + at + ins, d + at, n - at);
	const char *const s[] = { "fastcdc:min=2K,avg=8K,max=32K,level=2",
	                          "fastcdc:min=16K,avg=64K,max=256K,level=2",
	                          "fastcdc:min=64,avg=256,max=1K,level=0" };
	for (size_t i = 0; i < 3; i++) {
		kt_chunker_params p = spec(s[i]);
		cuts a = chunk_all(&p, NULL, d, n, WHOLE, 0);
		cuts b = chunk_all(&p, NULL, e, n + ins, RANDOM, 3);
		size_t new_chunks = chunks_not_in(e, b, d, a);
		size_t lost = chunks_not_in(d, a, e, b);
		/* Only the chunk holding the insertion and the next one or two
		 * (until a cut point agrees again) differ. */
		if (new_chunks > 3 || lost > 3 || new_chunks == 0) {
			fprintf(stderr, "  %s: %zu new chunks, %zu lost of %zu\n", s[i], new_chunks, lost,
			        a.n);
			CHECK(0);
		}
		/* And the differing chunks sit around the insertion. */
		uint64_t pb = 0;
		for (size_t j = 0; j < b.n; j++) {
			int found = 0;
			uint64_t pa = 0, lb = b.end[j] - pb;
			for (size_t k = 0; k < a.n && !found; k++) {
				found = a.end[k] - pa == lb && !memcmp(d + pa, e + pb, lb);
				pa = a.end[k];
			}
			if (!found)
				CHECK(b.end[j] > at && pb < at + ins + 3 * (uint64_t)p.max_size);
			pb = b.end[j];
		}
		free(a.end);
		free(b.end);
	}
	/* Fixed blocks do not resynchronize: everything after the insertion
	 * moves (which is why FIXED is only for data edited in place). */
	kt_chunker_params f = spec("fixed:4K");
	cuts a = chunk_all(&f, NULL, d, n, WHOLE, 0), b = chunk_all(&f, NULL, e, n + ins, WHOLE, 0);
	CHECK(chunks_not_in(e, b, d, a) > (n - at) / 4096 - 2);
	free(a.end);
	free(b.end);
	free(d);
	free(e);
}

static void test_edit_in_place_pages(void)
{
	/* Pages changed in place (bbolt): FIXED and PAGECDC store again only the
	 * chunks that hold a changed page. */
	size_t n = 2u << 20;
	uint8_t *d = make_data(n, 23, 0), *e = malloc(n);
	memcpy(e, d, n);
	size_t pages[] = { 3, 100, 101, 400 };
	for (size_t i = 0; i < 4; i++)
		e[pages[i] * 4096 + 100] ^= 0x5a;
	kt_chunker_params f = spec("fixed:4K");
	cuts a = chunk_all(&f, NULL, d, n, WHOLE, 0), b = chunk_all(&f, NULL, e, n, RANDOM, 8);
	CHECK_EQ_U(chunks_not_in(e, b, d, a), 4);
	free(a.end);
	free(b.end);
	kt_chunker_params pc = spec("pagecdc:block=4K,min=8K,avg=16K,max=64K,level=1");
	a = chunk_all(&pc, NULL, d, n, WHOLE, 0);
	b = chunk_all(&pc, NULL, e, n, RANDOM, 8);
	size_t changed = chunks_not_in(e, b, d, a);
	CHECK(changed >= 3 && changed <= 8);   /* pages 100/101 may share a chunk */
	free(a.end);
	free(b.end);
	free(d);
	free(e);
}

static void test_key_changes_boundaries(void)
{
	size_t n = 1u << 20;
	uint8_t *d = make_data(n, 29, 0);
	uint8_t k1[32] = { 1 }, k2[32] = { 2 };
	for (const char *const *s = specs; *s; s++) {
		kt_chunker_params p = spec(*s);
		cuts a = chunk_all(&p, k1, d, n, WHOLE, 0), b = chunk_all(&p, k1, d, n, RANDOM, 1),
		     c = chunk_all(&p, k2, d, n, WHOLE, 0);
		CHECK(same_cuts(a, b));
		if (p.kind == KT_CHUNKER_FIXED)
			CHECK(same_cuts(a, c));
		else
			CHECK(!same_cuts(a, c));
		free(a.end);
		free(b.end);
		free(c.end);
	}
	free(d);
}

static void test_stream_edges(void)
{
	kt_chunker c;
	kt_error err;
	kt_chunker_params p = spec("fastcdc:min=2K,avg=8K,max=32K");
	CHECK(kt_chunker_init(&c, &p, NULL, &err) == KT_OK);
	int cut = 7;
	CHECK_EQ_U(kt_chunker_scan(&c, "", 0, &cut), 0);
	CHECK_EQ_U(cut, 0);
	CHECK_EQ_U(kt_chunker_finish(&c), 0);
	CHECK_EQ_U(kt_chunker_scan(&c, "abc", 3, &cut), 3);
	CHECK_EQ_U(cut, 0);
	CHECK_EQ_U(kt_chunker_finish(&c), 3);
	CHECK_EQ_U(kt_chunker_finish(&c), 0);
	/* After finish, a new stream starts from scratch: same cuts as a fresh
	 * chunker. */
	uint8_t *d = make_data(200000, 31, 0);
	cuts fresh = chunk_all(&p, NULL, d, 200000, WHOLE, 0);
	CHECK(kt_chunker_scan(&c, d, 1000, &cut) == 1000);
	kt_chunker_reset(&c);
	size_t at = 0, k = 0;
	int ok = 1;
	while (at < 200000) {
		size_t used = kt_chunker_scan(&c, d + at, 200000 - at, &cut);
		at += used;
		if (cut)
			ok &= k < fresh.n && fresh.end[k++] == at;
	}
	CHECK(ok);
	free(fresh.end);
	free(d);
}

static void test_params(void)
{
	kt_chunker_params p;
	kt_error err;
	char buf[96];
	const char *const good[][2] = {
		{ "fastcdc:min=16K,avg=64K,max=256K,level=2", "fastcdc:min=16K,avg=64K,max=256K,level=2" },
		{ "fastcdc:avg=1M", "fastcdc:min=256K,avg=1M,max=4M,level=2" },
		{ "fastcdc:min=512KiB,avg=1MiB,max=8MiB,level=3", "fastcdc:min=512K,avg=1M,max=8M,level=3" },
		{ "fixed:4096", "fixed:4K" },
		{ "fixed:block=1000", "fixed:1000" },
		{ "pagecdc:avg=64K", "pagecdc:block=4K,min=16K,avg=64K,max=256K,level=1" },
		{ "pagecdc:block=16K,min=32K,avg=128K,max=1M,level=0",
		  "pagecdc:block=16K,min=32K,avg=128K,max=1M,level=0" },
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		CHECK(kt_chunker_params_parse(good[i][0], &p, &err) == KT_OK);
		CHECK_STR(kt_chunker_params_format(&p, buf, sizeof(buf)), good[i][1]);
		kt_chunker_params q;
		CHECK(kt_chunker_params_parse(buf, &q, &err) == KT_OK && !memcmp(&p, &q, sizeof(p)));
	}
	const char *const bad[][2] = {
		{ "rabin:avg=1M", "unknown kind" },
		{ "fastcdc:min=16K,avg=48K,max=256K", "not a power of two" },
		{ "fastcdc:min=16K,avg=64K,max=32K", "must grow strictly" },
		{ "fastcdc:min=32,avg=64,max=256", "below 64 bytes" },
		{ "fastcdc:min=1M,avg=4M,max=32M", "max at most" },
		{ "fastcdc:avg=64K,level=4", "level 4" },
		{ "fastcdc:avg=64K,blk=4K", "unknown setting" },
		{ "fastcdc:avg=64X", "bad size" },
		{ "fastcdc:min=1K", "avg is required" },
		{ "fixed:0", "out of range" },
		{ "fixed:avg=4K", "unknown setting" },
		{ "pagecdc:block=3000,min=6000,avg=8K,max=12000", "page size 3000" },
		{ "pagecdc:block=4K,min=10K,avg=64K,max=256K", "whole pages" },
		{ "pagecdc:block=4K,min=4K,avg=8K,max=16K,level=2", "exceeds log2" },
		{ "pagecdc:block=4K,min=16K,avg=48K,max=256K", "not a power of two" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&p, 0x55, sizeof(p));
		kt_chunker_params before = p;
		kt_error_clear(&err);
		CHECK(kt_chunker_params_parse(bad[i][0], &p, &err) == KT_EUSAGE);
		CHECK_CONTAINS(err.msg, bad[i][1]);
		CHECK(!memcmp(&p, &before, sizeof(p)));
	}
	/* init refuses what parse refuses, and zeroes the struct */
	kt_chunker c;
	kt_chunker_params q = { .kind = KT_CHUNKER_FASTCDC, .min_size = 100, .avg_size = 100,
	                        .max_size = 1000 };
	CHECK(kt_chunker_init(&c, &q, NULL, &err) == KT_EUSAGE);
	CHECK_CONTAINS(err.msg, "chunker: sizes min 100, avg 100");
	q.kind = 9;
	CHECK(kt_chunker_init(&c, &q, NULL, &err) == KT_EUSAGE);
	CHECK_CONTAINS(err.msg, "unknown kind 9");
	/* The defaults are valid. */
	kt_chunker_params_files(&p);
	CHECK(kt_chunker_init(&c, &p, NULL, &err) == KT_OK);
	kt_chunker_params_etcd(&p);
	CHECK(kt_chunker_init(&c, &p, NULL, &err) == KT_OK);
}

/*
 * Pinned vectors (docs/chunking.md, "Test vectors"): the first chunk ends
 * of 1 MiB of xorshift64 bytes (seed 7, byte = x >> 24 after each step)
 * with the all-zero key and with key bytes 0..31, as an independent Python
 * model of docs/chunking.md's description computes them.  If these change,
 * every existing repository stops deduplicating against new backups.
 */
static void test_vectors(void)
{
	size_t n = 1u << 20;
	uint8_t *d = make_data(n, 7, 0);
	uint8_t key[32];
	for (int i = 0; i < 32; i++)
		key[i] = (uint8_t)i;
	struct {
		const char *spec;
		int keyed;
		uint64_t first[4];
		size_t n_chunks;
	} v[] = {
		{ "fastcdc:min=2K,avg=8K,max=32K,level=2", 0, { 9078, 21145, 29432, 39033 }, 113 },
		{ "fastcdc:min=2K,avg=8K,max=32K,level=2", 1, { 16469, 25574, 37276, 45518 }, 110 },
		{ "fastcdc:min=16K,avg=64K,max=256K,level=2", 1, { 71968, 188272, 209497, 275983 }, 13 },
		{ "pagecdc:block=4K,min=8K,avg=16K,max=64K,level=1", 1, { 16384, 24576, 40960, 61440 },
		  57 },
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		kt_chunker_params p = spec(v[i].spec);
		cuts c = chunk_all(&p, v[i].keyed ? key : NULL, d, n, WHOLE, 0);
		int match = c.n == v[i].n_chunks;
		for (size_t k = 0; k < 4 && k < c.n; k++)
			match &= c.end[k] == v[i].first[k];
		if (!match) {
			fprintf(stderr, "  vector %s key %d: %zu chunks, first ends", v[i].spec, v[i].keyed,
			        c.n);
			for (size_t k = 0; k < 4 && k < c.n; k++)
				fprintf(stderr, " %llu", (unsigned long long)c.end[k]);
			fprintf(stderr, "\n");
			CHECK(0);
		}
		free(c.end);
	}
	free(d);
}

int main(void)
{
	RUN(test_params);
	RUN(test_stream_edges);
	RUN(test_slicing_does_not_matter);
	RUN(test_bounds_and_alignment);
	RUN(test_mean_size_near_avg);
	RUN(test_insertion_resynchronizes);
	RUN(test_edit_in_place_pages);
	RUN(test_key_changes_boundaries);
	RUN(test_vectors);
	return unit_done();
}
