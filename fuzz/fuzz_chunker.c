/*
 * fuzz_chunker.c - libFuzzer target for the chunker (src/repo/chunker.c).
 *
 * Input: byte 0 picks the kind and byte 1-3 the sizes (small, so short
 * inputs hold many chunks), byte 4 the level, bytes 5-12 a seed for the
 * slicing; the rest is the stream.  When byte 0 has bit 7 set, the bytes
 * up to the first NUL are instead a spec string for kt_chunker_params_parse.
 * Properties beyond "no crash":
 *   - the chunk ends are the same fed whole, byte by byte, and in slices
 *     whose sizes the seed draws (1..4096 bytes);
 *   - every scan takes 1..n bytes, and all n when it does not cut;
 *   - every chunk but the last has min <= length <= max; FIXED chunks are
 *     exactly the block; PAGECDC chunks end on page boundaries; the chunks
 *     add up to the stream;
 *   - a spec that parses formats to a spec that parses to the same params,
 *     and those params init; one that does not parse leaves the output
 *     untouched and a message starting "chunker".
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "repo/repo.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_CUTS 65536

typedef struct cutlist {
	uint64_t end[MAX_CUTS];
	size_t n;
} cutlist;

static cutlist whole, bytewise, sliced;

static void check_spec(const uint8_t *data, size_t size)
{
	char spec[256], again[256];
	size_t n = 0;
	while (n < size && n < sizeof(spec) - 1 && data[n])
		n++;
	memcpy(spec, data, n);
	spec[n] = '\0';
	kt_chunker_params p, q, untouched;
	memset(&p, 0xa5, sizeof(p));
	untouched = p;
	kt_error err;
	kt_error_clear(&err);
	if (kt_chunker_params_parse(spec, &p, &err) != KT_OK) {
		if (memcmp(&p, &untouched, sizeof(p)) || err.code != KT_EUSAGE ||
		    strncmp(err.msg, "chunker", 7))
			abort();
		return;
	}
	kt_chunker_params_format(&p, again, sizeof(again));
	if (kt_chunker_params_parse(again, &q, &err) != KT_OK || memcmp(&p, &q, sizeof(p)))
		abort();
	kt_chunker c;
	if (kt_chunker_init(&c, &p, NULL, &err) != KT_OK)
		abort();
}

/* Feed the stream in slices: 0 = whole, 1 = bytes, 2 = seeded sizes. */
static void run(const kt_chunker_params *p, const uint8_t *s, size_t n, int how, uint64_t seed,
                cutlist *out)
{
	kt_chunker c;
	kt_error err;
	if (kt_chunker_init(&c, p, NULL, &err) != KT_OK)
		abort();
	out->n = 0;
	uint64_t off = 0, x = seed | 1;
	size_t at = 0;
	while (at < n) {
		size_t slice = n - at;
		if (how == 1) {
			slice = 1;
		} else if (how == 2) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			size_t r = (size_t)(x % 4096) + 1;
			slice = r < slice ? r : slice;
		}
		const uint8_t *q = s + at;
		size_t left = slice;
		while (left) {
			int cut = -1;
			size_t used = kt_chunker_scan(&c, q, left, &cut);
			if (used == 0 || used > left || (cut != 0 && cut != 1) || (!cut && used != left))
				abort();
			q += used;
			left -= used;
			off += used;
			if (cut) {
				if (out->n == MAX_CUTS)
					abort();
				out->end[out->n++] = off;
			}
		}
		at += slice;
	}
	uint64_t last = kt_chunker_finish(&c);
	if (last) {
		if (out->n == MAX_CUTS || (out->n ? off - out->end[out->n - 1] : off) != last)
			abort();
		out->end[out->n++] = off;
	} else if (n && (out->n == 0 || out->end[out->n - 1] != n)) {
		abort();
	}
}

static void check_bounds(const kt_chunker_params *p, const cutlist *c, size_t n)
{
	uint64_t prev = 0;
	for (size_t i = 0; i < c->n; i++) {
		uint64_t len = c->end[i] - prev;
		int last = i + 1 == c->n;
		if (len == 0 || c->end[i] > n)
			abort();
		if (p->kind == KT_CHUNKER_FIXED) {
			if (len > p->block_size || (!last && len != p->block_size))
				abort();
		} else {
			if (len > p->max_size || (!last && len < p->min_size))
				abort();
			if (p->kind == KT_CHUNKER_PAGECDC && !last && c->end[i] % p->block_size)
				abort();
		}
		prev = c->end[i];
	}
	if (n && prev != n)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 13)
		return 0;
	if (data[0] & 0x80) {
		check_spec(data + 1, size - 1);
		return 0;
	}
	kt_chunker_params p = { 0 };
	unsigned kind = data[0] % 3;
	unsigned level = data[4] % 4;
	if (kind == 0) {
		/* FASTCDC: avg 128 B .. 16 KiB, min in [64, avg), max in (avg, 8 avg] */
		p.kind = KT_CHUNKER_FASTCDC;
		p.avg_size = 128u << (data[1] % 8);
		p.min_size = 64 + (uint32_t)data[2] * (p.avg_size - 64) / 256;
		p.max_size = p.avg_size + 1 + (uint32_t)data[3] * (7 * p.avg_size - 1) / 255;
		p.level = level;
	} else if (kind == 1) {
		p.kind = KT_CHUNKER_FIXED;
		p.block_size = 1 + (uint32_t)data[1] * 64 + data[2];
	} else {
		p.kind = KT_CHUNKER_PAGECDC;
		p.block_size = 64u << (data[1] % 4);
		unsigned avg_pages_log = 1 + data[2] % 5;
		p.avg_size = p.block_size << avg_pages_log;
		p.min_size = p.block_size * (1 + (uint32_t)data[3] % ((1u << avg_pages_log) - 1));
		p.max_size = p.avg_size + p.block_size * (1 + data[3] / 16u);
		p.level = level <= avg_pages_log ? level : avg_pages_log;
	}
	uint64_t seed;
	memcpy(&seed, data + 5, 8);
	const uint8_t *s = data + 13;
	size_t n = size - 13;

	run(&p, s, n, 0, 0, &whole);
	check_bounds(&p, &whole, n);
	run(&p, s, n, 2, seed, &sliced);
	if (sliced.n != whole.n || memcmp(sliced.end, whole.end, whole.n * sizeof(uint64_t)))
		abort();
	if (n <= 16384) {
		run(&p, s, n, 1, 0, &bytewise);
		if (bytewise.n != whole.n || memcmp(bytewise.end, whole.end, whole.n * sizeof(uint64_t)))
			abort();
	}
	return 0;
}
