/*
 * chunkstat - what each chunker makes of a series of files, as a
 * deduplicating repository would store them (docs/chunking.md).
 *
 *   chunkstat [-c SPEC]... [-z LEVEL] [--dict SIZE] [--group BYTES] [--csv FILE] FILE...
 *       Feed every FILE, in order, through every chunker SPEC (default: the
 *       set compared in docs/chunking.md); dedup chunks across the whole
 *       series by SHA-256 of their content; compress each new chunk on its
 *       own with zstd (level 3 by default; kept raw when that does not save
 *       1/8, as the repository does).  Prints one row per SPEC and, with
 *       --csv, one row per SPEC and FILE (what that file added).  --dict
 *       trains a zstd dictionary of SIZE bytes on the first file (cut into
 *       4 KiB samples) and compresses every chunk with it; the dictionary
 *       counts once in the stored bytes.  --group BYTES compresses the new
 *       chunks of each file together in runs of BYTES (a format that seals
 *       several blobs in one compressed frame), instead of one by one.
 *   chunkstat --bench [-c SPEC]... [--mib N] [FILE]
 *       Chunker throughput: scan N MiB (default 256) of random bytes, or the
 *       first N MiB of FILE, in 1 MiB slices, for each SPEC; plus SHA-256
 *       and zstd for scale.  Single thread.
 *
 * Cost model: "blobs" = the zstd bytes of every unique chunk plus 120 bytes
 * per unique chunk (28 of AES-GCM nonce and tag, 46 of pack header entry,
 * 46 of index entry: docs/repository-format.md); "refs" = 32 bytes per
 * chunk of every file (its id in the file's content list, which a tree blob
 * stores whole for every backup).
 *
 * Memory: one read buffer, one chunk buffer per SPEC (<= max chunk size),
 * and the set of chunk hashes (40 bytes per unique chunk).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>
#include <zdict.h>

#include "repo/repo.h"

#define READ_SLICE (1u << 20)
#define MAX_SPECS 32
#define PER_BLOB_OVERHEAD 120u
#define PER_REF_OVERHEAD 32u

static const char *const default_specs[] = {
	"fastcdc:min=512K,avg=1M,max=8M,level=2",     /* restic-like sizes */
	"fastcdc:min=16K,avg=64K,max=256K,level=2",
	"fastcdc:min=4K,avg=16K,max=64K,level=2",
	"fastcdc:min=1K,avg=4K,max=16K,level=2",
	"fixed:4K",
	"fixed:8K",
	"fixed:16K",
	"fixed:64K",
	"pagecdc:block=4K,min=8K,avg=16K,max=64K,level=1",
	"pagecdc:block=4K,min=16K,avg=64K,max=256K,level=2",
	"pagecdc:block=4K,min=64K,avg=256K,max=1M,level=2",
	NULL,
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	fprintf(stderr, "chunkstat: %s\n", what);
	exit(1);
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		die("out of memory");
	return p;
}

/* ------------------------------------------------------------------ */
/* a set of SHA-256 digests (open addressing; all-zero = empty slot) */

typedef struct hset {
	uint8_t (*slot)[32];
	size_t cap, n;
} hset;

static void hset_init(hset *s)
{
	s->cap = 1 << 16;
	s->n = 0;
	s->slot = calloc(s->cap, 32);
	if (!s->slot)
		die("out of memory");
}

static uint64_t first64(const uint8_t *h)
{
	uint64_t v;
	memcpy(&v, h, 8);
	return v;
}

/* Insert h; returns 1 if it was new. */
static int hset_add(hset *s, const uint8_t h[32])
{
	if (2 * (s->n + 1) > s->cap) {
		hset old = *s;
		s->cap *= 2;
		s->n = 0;
		s->slot = calloc(s->cap, 32);
		if (!s->slot)
			die("out of memory");
		for (size_t i = 0; i < old.cap; i++)
			if (first64(old.slot[i]) || memcmp(old.slot[i], (uint8_t[32]){ 0 }, 32))
				hset_add(s, old.slot[i]);
		free(old.slot);
	}
	size_t i = (size_t)(first64(h) & (s->cap - 1));
	for (;;) {
		if (!memcmp(s->slot[i], h, 32))
			return 0;
		if (!first64(s->slot[i]) && !memcmp(s->slot[i], (uint8_t[32]){ 0 }, 32)) {
			memcpy(s->slot[i], h, 32);
			s->n++;
			return 1;
		}
		i = (i + 1) & (s->cap - 1);
	}
}

static void hset_free(hset *s)
{
	free(s->slot);
}

/* ------------------------------------------------------------------ */
/* one chunker under study */

typedef struct file_stat {
	uint64_t raw, chunks, new_chunks, new_raw, new_z;
} file_stat;

typedef struct study {
	char spec[96];
	kt_chunker ch;
	uint8_t *buf;       /* the current chunk */
	size_t len, cap;
	hset set;
	file_stat cur;      /* the file being fed */
	file_stat total;
	file_stat *per_file;
	uint64_t min_seen, max_seen;
	uint8_t *group;     /* --group: new chunks waiting to be compressed together */
	size_t group_len;
} study;

static ZSTD_CCtx *zctx;
static ZSTD_CDict *zdict;
static size_t zdict_size;
static uint8_t *zbuf;
static size_t zcap;
static int zlevel = 3;
static size_t group_size;   /* 0: every chunk compressed on its own */

static size_t zsize(const uint8_t *p, size_t n)
{
	size_t z = zdict ? ZSTD_compress_usingCDict(zctx, zbuf, zcap, p, n, zdict)
	                 : ZSTD_compressCCtx(zctx, zbuf, zcap, p, n, zlevel);
	if (ZSTD_isError(z))
		die("zstd failed");
	return z < n - n / 8 ? z : n;
}

static void flush_group(struct study *st);

static void end_chunk(study *st)
{
	uint8_t md[32];
	unsigned int mdlen = 0;
	if (!EVP_Digest(st->buf, st->len, md, &mdlen, EVP_sha256(), NULL))
		die("SHA-256 failed");
	st->cur.chunks++;
	if (st->len < st->min_seen)
		st->min_seen = st->len;
	if (st->len > st->max_seen)
		st->max_seen = st->len;
	if (hset_add(&st->set, md)) {
		st->cur.new_chunks++;
		st->cur.new_raw += st->len;
		if (group_size) {
			memcpy(st->group + st->group_len, st->buf, st->len);
			st->group_len += st->len;
			if (st->group_len >= group_size)
				flush_group(st);
		} else {
			st->cur.new_z += zsize(st->buf, st->len);
		}
	}
	st->len = 0;
}

static void flush_group(study *st)
{
	if (st->group_len)
		st->cur.new_z += zsize(st->group, st->group_len);
	st->group_len = 0;
}

static void feed(study *st, const uint8_t *p, size_t n)
{
	st->cur.raw += n;
	while (n > 0) {
		int cut;
		size_t used = kt_chunker_scan(&st->ch, p, n, &cut);
		if (st->len + used > st->cap)
			die("chunk longer than its maximum: chunker bug");
		memcpy(st->buf + st->len, p, used);
		st->len += used;
		p += used;
		n -= used;
		if (cut)
			end_chunk(st);
	}
}

static void end_file(study *st, size_t idx)
{
	if (kt_chunker_finish(&st->ch) > 0)
		end_chunk(st);
	flush_group(st);
	st->per_file[idx] = st->cur;
	st->total.raw += st->cur.raw;
	st->total.chunks += st->cur.chunks;
	st->total.new_chunks += st->cur.new_chunks;
	st->total.new_raw += st->cur.new_raw;
	st->total.new_z += st->cur.new_z;
	memset(&st->cur, 0, sizeof(st->cur));
}

static void study_init(study *st, const char *spec, size_t n_files)
{
	kt_chunker_params p;
	kt_error err;
	memset(st, 0, sizeof(*st));
	if (kt_chunker_params_parse(spec, &p, &err) != KT_OK)
		die(err.msg);
	kt_chunker_params_format(&p, st->spec, sizeof(st->spec));
	if (kt_chunker_init(&st->ch, &p, NULL, &err) != KT_OK)
		die(err.msg);
	st->cap = p.kind == KT_CHUNKER_FIXED ? p.block_size : p.max_size;
	st->buf = xmalloc(st->cap);
	if (group_size)
		st->group = xmalloc(group_size + st->cap);
	hset_init(&st->set);
	st->per_file = calloc(n_files, sizeof(*st->per_file));
	if (!st->per_file)
		die("out of memory");
	st->min_seen = UINT64_MAX;
}

/* ------------------------------------------------------------------ */

static const char *mib(uint64_t v, char *b)
{
	snprintf(b, 32, "%.1f", (double)v / 1048576.0);
	return b;
}

static uint64_t blobs(const file_stat *f)
{
	return f->new_z + f->new_chunks * PER_BLOB_OVERHEAD;
}

static uint64_t refs(const file_stat *f)
{
	return f->chunks * PER_REF_OVERHEAD;
}

/* A zstd dictionary of cap bytes trained on path's first 64 MiB in 4 KiB
 * samples. */
static void train_dict(const char *path, size_t cap)
{
	size_t max = 64u << 20, n = 0;
	uint8_t *s = xmalloc(max);
	FILE *f = fopen(path, "rb");
	if (!f)
		die("cannot open the first file for the dictionary");
	n = fread(s, 1, max, f);
	fclose(f);
	size_t ns = n / 4096;
	size_t *sizes = xmalloc((ns ? ns : 1) * sizeof(size_t));
	for (size_t i = 0; i < ns; i++)
		sizes[i] = 4096;
	uint8_t *d = xmalloc(cap);
	double t0 = now_s();
	size_t got = ZDICT_trainFromBuffer(d, cap, s, sizes, (unsigned)ns);
	if (ZDICT_isError(got))
		die(ZDICT_getErrorName(got));
	fprintf(stderr, "chunkstat: trained a %zu-byte dictionary in %.1f s\n", got, now_s() - t0);
	zdict = ZSTD_createCDict(d, got, zlevel);
	zdict_size = got;
	free(d);
	free(s);
	free(sizes);
}

/* The whole-file zstd size of path at the same level, for scale. */
static uint64_t zstd_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		die("cannot reopen a file");
	ZSTD_CCtx *c = ZSTD_createCCtx();
	ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, zlevel);
	size_t ocap = ZSTD_CStreamOutSize();
	uint8_t *in = xmalloc(READ_SLICE), *out = xmalloc(ocap);
	uint64_t total = 0;
	size_t r;
	int last;
	do {
		r = fread(in, 1, READ_SLICE, f);
		last = r < READ_SLICE;
		ZSTD_inBuffer ib = { in, r, 0 };
		int done;
		do {
			ZSTD_outBuffer ob = { out, ocap, 0 };
			size_t left = ZSTD_compressStream2(c, &ob, &ib, last ? ZSTD_e_end : ZSTD_e_continue);
			if (ZSTD_isError(left))
				die("zstd failed");
			total += ob.pos;
			done = last ? left == 0 : ib.pos == ib.size;
		} while (!done);
	} while (!last);
	fclose(f);
	free(in);
	free(out);
	ZSTD_freeCCtx(c);
	return total;
}

static int run_series(const char **specs, size_t n_specs, char **files, size_t n_files,
                      const char *csv_path, size_t dict_cap)
{
	if (dict_cap)
		train_dict(files[0], dict_cap);
	study *st = xmalloc(n_specs * sizeof(*st));
	uint8_t *in = xmalloc(READ_SLICE);
	uint64_t max_chunk = 0;
	for (size_t s = 0; s < n_specs; s++) {
		study_init(&st[s], specs[s], n_files);
		if (st[s].cap > max_chunk)
			max_chunk = st[s].cap;
	}
	zctx = ZSTD_createCCtx();
	zcap = ZSTD_compressBound(max_chunk + group_size);
	zbuf = xmalloc(zcap);
	uint64_t *sizes = calloc(n_files, sizeof(*sizes));
	double t0 = now_s();

	for (size_t i = 0; i < n_files; i++) {
		int fd = open(files[i], O_RDONLY);
		if (fd < 0) {
			fprintf(stderr, "chunkstat: cannot open '%s': %s\n", files[i], strerror(errno));
			return 1;
		}
		for (;;) {
			ssize_t r = read(fd, in, READ_SLICE);
			if (r < 0) {
				fprintf(stderr, "chunkstat: cannot read '%s': %s\n", files[i], strerror(errno));
				return 1;
			}
			if (r == 0)
				break;
			sizes[i] += (uint64_t)r;
			for (size_t s = 0; s < n_specs; s++)
				feed(&st[s], in, (size_t)r);
		}
		close(fd);
		for (size_t s = 0; s < n_specs; s++)
			end_file(&st[s], i);
		fprintf(stderr, "\rchunkstat: %zu/%zu files, %.0f s", i + 1, n_files, now_s() - t0);
	}
	fprintf(stderr, "\n");

	uint64_t sum = 0;
	for (size_t i = 0; i < n_files; i++)
		sum += sizes[i];
	double mean = n_files ? (double)sum / (double)n_files : 0;
	uint64_t z_first = n_files ? zstd_file(files[0]) : 0;
	char b1[32], b2[32], b3[32], b4[32];
	printf("%zu files, %s MiB in all, %.1f MiB on average; the first alone: %s MiB, "
	       "%s MiB as one zstd -%d stream\n\n", n_files, mib(sum, b1), mean / 1048576.0,
	       mib(sizes[0], b2), mib(z_first, b3), zlevel);
	if (group_size)
		printf("new chunks compressed together in runs of %zu bytes per file\n\n", group_size);
	if (zdict)
		printf("every chunk compressed with a %zu-byte zstd dictionary trained on the first "
		       "file (counted once in blobs)\n\n", zdict_size);
	printf("| chunker | mean chunk | chunks/file | unique chunks | unique MiB | unique zstd MiB "
	       "| blobs MiB | refs MiB | first file | median added | 100 files | 100 files + refs |\n");
	printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
	for (size_t s = 0; s < n_specs; s++) {
		study *x = &st[s];
		uint64_t total_blobs = blobs(&x->total) + zdict_size;
		/* added per file after the first: median and mean */
		double *add = xmalloc((n_files ? n_files : 1) * sizeof(double));
		double add_sum = 0;
		for (size_t i = 1; i < n_files; i++) {
			add[i - 1] = (double)blobs(&x->per_file[i]);
			add_sum += add[i - 1];
		}
		size_t na = n_files > 1 ? n_files - 1 : 0;
		for (size_t a = 1; a < na; a++)       /* insertion sort: few files */
			for (size_t b = a; b > 0 && add[b - 1] > add[b]; b--) {
				double t = add[b];
				add[b] = add[b - 1];
				add[b - 1] = t;
			}
		double median = na ? (na % 2 ? add[na / 2] : (add[na / 2 - 1] + add[na / 2]) / 2) : 0;
		double first = n_files ? (double)(blobs(&x->per_file[0]) + zdict_size) : 0;
		double proj = na ? first + add_sum / (double)na * 99.0 : first;
		double proj_refs = proj + 100.0 * (double)refs(&x->total) / (double)n_files;
		printf("| `%s` | %.1f KiB | %.0f | %" PRIu64 " | %s | %s | %s | %s | %.3fx | %.2f%% "
		       "| %.2fx | %.2fx |\n", x->spec,
		       x->total.chunks ? (double)x->total.raw / (double)x->total.chunks / 1024.0 : 0,
		       n_files ? (double)x->total.chunks / (double)n_files : 0, x->total.new_chunks,
		       mib(x->total.new_raw, b1), mib(x->total.new_z, b2), mib(total_blobs, b3),
		       mib(refs(&x->total), b4), mean ? first / mean : 0,
		       mean ? 100.0 * median / mean : 0, mean ? proj / mean : 0,
		       mean ? proj_refs / mean : 0);
		free(add);
	}
	printf("\nblobs = unique zstd bytes + %u B per unique chunk; refs = %u B per chunk of every "
	       "file;\nratios and percentages are of the mean file size; 'added' = blob bytes a file "
	       "adds to those before it;\n'100 files' projects first + 99 x mean added; "
	       "'+ refs' adds 100 files' content lists.\n", PER_BLOB_OVERHEAD, PER_REF_OVERHEAD);
	printf("(%.0f s for %zu chunkers)\n", now_s() - t0, n_specs);

	if (csv_path) {
		FILE *csv = fopen(csv_path, "w");
		if (!csv)
			die("cannot write the CSV file");
		fprintf(csv, "chunker,file,raw,chunks,new_chunks,new_raw,new_zstd,blobs\n");
		for (size_t s = 0; s < n_specs; s++)
			for (size_t i = 0; i < n_files; i++) {
				file_stat *f = &st[s].per_file[i];
				const char *base = strrchr(files[i], '/');
				fprintf(csv, "\"%s\",%s,%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64
				        ",%" PRIu64 "\n", st[s].spec, base ? base + 1 : files[i], f->raw,
				        f->chunks, f->new_chunks, f->new_raw, f->new_z, blobs(f));
			}
		fclose(csv);
	}
	for (size_t s = 0; s < n_specs; s++) {
		free(st[s].buf);
		free(st[s].group);
		free(st[s].per_file);
		hset_free(&st[s].set);
	}
	free(st);
	free(in);
	free(zbuf);
	free(sizes);
	ZSTD_freeCCtx(zctx);
	ZSTD_freeCDict(zdict);
	return 0;
}

/* ------------------------------------------------------------------ */
/* --bench */

static int run_bench(const char **specs, size_t n_specs, size_t mib_n, const char *file)
{
	size_t n = mib_n << 20;
	uint8_t *data = xmalloc(n);
	const char *what = "random bytes";
	if (file) {
		int fd = open(file, O_RDONLY);
		if (fd < 0)
			die("cannot open the benchmark file");
		size_t got = 0;
		while (got < n) {
			ssize_t r = read(fd, data + got, n - got);
			if (r <= 0)
				break;
			got += (size_t)r;
		}
		close(fd);
		n = got;
		what = file;
	} else {
		uint64_t x = 0x9e3779b97f4a7c15ull;
		for (size_t i = 0; i + 8 <= n; i += 8) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			memcpy(data + i, &x, 8);
		}
	}
	printf("chunker throughput over %.0f MiB of %s, 1 MiB slices, one thread "
	       "(best of 5 passes)\n\n", (double)n / 1048576.0, what);
	printf("| chunker | MB/s | mean chunk |\n|---|---:|---:|\n");
	for (size_t s = 0; s < n_specs; s++) {
		kt_chunker_params p;
		kt_chunker ch;
		kt_error err;
		char name[96];
		if (kt_chunker_params_parse(specs[s], &p, &err) != KT_OK ||
		    kt_chunker_init(&ch, &p, NULL, &err) != KT_OK)
			die(err.msg);
		double best = 1e30;
		uint64_t chunks = 0;
		for (int pass = 0; pass < 5; pass++) {
			chunks = 0;
			double t0 = now_s();
			for (size_t off = 0; off < n; off += READ_SLICE) {
				const uint8_t *q = data + off;
				size_t left = n - off < READ_SLICE ? n - off : READ_SLICE;
				while (left) {
					int cut;
					size_t used = kt_chunker_scan(&ch, q, left, &cut);
					q += used;
					left -= used;
					chunks += (uint64_t)cut;
				}
			}
			chunks += kt_chunker_finish(&ch) > 0;
			double el = now_s() - t0;
			if (el < best)
				best = el;
		}
		printf("| `%s` | %.0f | %.1f KiB |\n", kt_chunker_params_format(&p, name, sizeof(name)),
		       (double)n / best / 1e6, (double)n / (double)chunks / 1024.0);
	}
	/* For scale: SHA-256 (OpenSSL) and zstd over the same bytes. */
	double best = 1e30;
	uint8_t md[32];
	for (int pass = 0; pass < 3; pass++) {
		double t0 = now_s();
		for (size_t off = 0; off < n; off += READ_SLICE) {
			unsigned int l;
			EVP_Digest(data + off, n - off < READ_SLICE ? n - off : READ_SLICE, md, &l,
			           EVP_sha256(), NULL);
		}
		double el = now_s() - t0;
		if (el < best)
			best = el;
	}
	printf("| SHA-256 (OpenSSL), for scale | %.0f | |\n", (double)n / best / 1e6);
	ZSTD_CCtx *c = ZSTD_createCCtx();
	size_t cap = ZSTD_compressBound(64u << 10);
	uint8_t *out = xmalloc(cap);
	for (int level = 1; level <= 3; level += 2) {
		double t0 = now_s();
		uint64_t zs = 0;
		for (size_t off = 0; off < n; off += 64u << 10) {
			size_t len = n - off < (64u << 10) ? n - off : (64u << 10);
			zs += ZSTD_compressCCtx(c, out, cap, data + off, len, level);
		}
		double el = now_s() - t0;
		printf("| zstd -%d in 64 KiB blocks, for scale | %.0f | ratio %.2f |\n", level,
		       (double)n / el / 1e6, (double)n / (double)zs);
	}
	ZSTD_freeCCtx(c);
	free(out);
	free(data);
	return 0;
}

/* ------------------------------------------------------------------ */

static void usage(void)
{
	fprintf(stderr, "usage: chunkstat [-c SPEC]... [-z LEVEL] [--dict SIZE] [--group BYTES]\n"
	                "                 [--csv FILE] FILE...\n"
	                "       chunkstat --bench [-c SPEC]... [--mib N] [FILE]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *specs[MAX_SPECS];
	size_t n_specs = 0, mib_n = 256, dict_cap = 0;
	const char *csv = NULL;
	int bench = 0;
	char **files = xmalloc((size_t)argc * sizeof(char *));
	size_t n_files = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-c") && i + 1 < argc) {
			if (n_specs == MAX_SPECS)
				die("too many -c");
			specs[n_specs++] = argv[++i];
		} else if (!strcmp(a, "-z") && i + 1 < argc) {
			zlevel = (int)strtol(argv[++i], NULL, 10);
		} else if (!strcmp(a, "--csv") && i + 1 < argc) {
			csv = argv[++i];
		} else if (!strcmp(a, "--mib") && i + 1 < argc) {
			mib_n = (size_t)strtoul(argv[++i], NULL, 10);
			if (mib_n == 0 || mib_n > 8192)
				usage();
		} else if (!strcmp(a, "--dict") && i + 1 < argc) {
			dict_cap = (size_t)strtoul(argv[++i], NULL, 10);
			if (dict_cap < 1024 || dict_cap > (4u << 20))
				usage();
		} else if (!strcmp(a, "--group") && i + 1 < argc) {
			group_size = (size_t)strtoul(argv[++i], NULL, 10);
			if (group_size > (64u << 20))
				usage();
		} else if (!strcmp(a, "--bench")) {
			bench = 1;
		} else if (a[0] == '-') {
			usage();
		} else {
			files[n_files++] = argv[i];
		}
	}
	if (n_specs == 0)
		for (const char *const *d = default_specs; *d; d++)
			specs[n_specs++] = *d;
	int rc;
	if (bench)
		rc = n_files > 1 ? (usage(), 2) : run_bench(specs, n_specs, mib_n,
		                                            n_files ? files[0] : NULL);
	else
		rc = n_files ? run_series(specs, n_specs, files, n_files, csv, dict_cap) : (usage(), 2);
	free(files);
	return rc;
}
