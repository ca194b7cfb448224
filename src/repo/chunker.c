/*
 * chunker.c - cut a byte stream into chunks (repo.h, section 1).
 *
 * Owns the three chunkers (FASTCDC, FIXED, PAGECDC), their keyed tables and
 * the spec strings that name parameters.  docs/chunking.md says which one
 * serves which data and shows the measurements behind that.
 *
 * Invariants:
 *   1. A boundary depends only on the stream's bytes, the parameters and
 *      the key: all state that carries over between kt_chunker_scan() calls
 *      (pos, fp, the page hash lanes and a partial stripe) is exactly what
 *      a one-shot scan would hold at that byte.  Slicing never matters.
 *   2. Every chunk but the last of a stream has min_size <= length <=
 *      max_size (FIXED: exactly block_size; PAGECDC: whole pages).
 *   3. FASTCDC: whether a chunk ends after byte i depends only on the
 *      chunk's length so far and on the 64 bytes ending at i (once
 *      min_size >= 64): the gear hash starts rolling 64 bytes before the
 *      first possible cut, and a 64-bit shift-left hash forgets a byte
 *      after 64 steps.  That is why an edit resynchronizes within a chunk
 *      or two.
 *   4. No allocation, no I/O: the struct is all the memory there is.
 *
 * FASTCDC in one paragraph (after the 2016 and 2020 papers' algorithm
 * descriptions): fp = (fp << 1) + gear[byte] for every byte; a chunk ends
 * after a byte when (fp & mask) == 0, where mask has log2(avg)+level one
 * bits while the chunk is shorter than avg_size and log2(avg)-level after,
 * so chunk sizes bunch around avg ("normalized chunking"); bytes before
 * min_size are skipped ("cut-point skipping"); at max_size the chunk ends
 * regardless.  The one bits of a mask are spread over bits 15..62 so the
 * condition looks at a wide window of bytes (the papers' padded masks).
 */
#include <openssl/hmac.h>
#include <string.h>

#include "repo.h"

#define MIN(a, b) ((a) < (b) ? (a) : (b))

static const char gear_label[] = "kontinuity gear v1";

/* ------------------------------------------------------------------ */
/* keyed tables */

static int derive_gear(uint64_t gear[256], const uint8_t key[32])
{
	static const uint8_t zero[32];
	uint8_t msg[sizeof(gear_label)];   /* label (without NUL) + one counter byte */
	uint8_t out[32];
	unsigned int len = 0;

	if (!key)
		key = zero;
	memcpy(msg, gear_label, sizeof(gear_label) - 1);
	for (unsigned blk = 0; blk < 64; blk++) {
		msg[sizeof(gear_label) - 1] = (uint8_t)blk;
		if (!HMAC(EVP_sha256(), key, 32, msg, sizeof(msg), out, &len) || len != 32)
			return -1;
		for (unsigned j = 0; j < 4; j++) {
			uint64_t v = 0;
			for (unsigned b = 0; b < 8; b++)
				v |= (uint64_t)out[8 * j + b] << (8 * b);
			gear[blk * 4 + j] = v;
		}
	}
	OPENSSL_cleanse(out, sizeof(out));
	return 0;
}

/* A mask of n one bits spread evenly over bits 62 down to 15. */
static uint64_t spread_mask(unsigned n)
{
	uint64_t m = 0;
	for (unsigned k = 0; k < n; k++)
		m |= 1ull << (62 - (k * 48) / n);
	return m;
}

static unsigned log2u(uint64_t v)
{
	unsigned n = 0;
	while (v > 1) {
		v >>= 1;
		n++;
	}
	return n;
}

static int pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

/* ------------------------------------------------------------------ */
/* parameters */

static kt_code check_params(const kt_chunker_params *p, kt_error *err)
{
	switch (p->kind) {
	case KT_CHUNKER_FIXED:
		if (p->block_size == 0 || p->block_size > KT_CHUNKER_MAX_CHUNK)
			return kt_error_set(err, KT_EUSAGE,
			                    "chunker: block size %u is out of range (1 to %u bytes)",
			                    p->block_size, KT_CHUNKER_MAX_CHUNK);
		return KT_OK;
	case KT_CHUNKER_FASTCDC:
	case KT_CHUNKER_PAGECDC:
		break;
	default:
		return kt_error_set(err, KT_EUSAGE, "chunker: unknown kind %d (fastcdc, fixed, pagecdc)",
		                    (int)p->kind);
	}
	if (p->level > KT_CHUNKER_MAX_LEVEL)
		return kt_error_set(err, KT_EUSAGE, "chunker: normalization level %u is not 0 to 3",
		                    p->level);
	if (!(p->min_size < p->avg_size && p->avg_size < p->max_size) ||
	    p->max_size > KT_CHUNKER_MAX_CHUNK)
		return kt_error_set(err, KT_EUSAGE,
		                    "chunker: sizes min %u, avg %u, max %u must grow strictly, "
		                    "max at most %u bytes", p->min_size, p->avg_size, p->max_size,
		                    KT_CHUNKER_MAX_CHUNK);
	if (!pow2(p->avg_size))
		return kt_error_set(err, KT_EUSAGE, "chunker: avg size %u is not a power of two",
		                    p->avg_size);
	if (p->kind == KT_CHUNKER_FASTCDC) {
		if (p->min_size < KT_CHUNKER_MIN_CHUNK)
			return kt_error_set(err, KT_EUSAGE, "chunker: min size %u is below %u bytes",
			                    p->min_size, KT_CHUNKER_MIN_CHUNK);
		return KT_OK;
	}
	/* PAGECDC */
	uint32_t b = p->block_size;
	if (!pow2(b) || b < 64 || b > KT_CHUNKER_MAX_PAGE)
		return kt_error_set(err, KT_EUSAGE,
		                    "chunker: page size %u is not a power of two from 64 to %u", b,
		                    KT_CHUNKER_MAX_PAGE);
	if (p->min_size < b || p->min_size % b || p->avg_size % b || p->max_size % b)
		return kt_error_set(err, KT_EUSAGE,
		                    "chunker: min %u, avg %u and max %u must be whole pages of %u bytes",
		                    p->min_size, p->avg_size, p->max_size, b);
	if (p->level > log2u(p->avg_size / b))
		return kt_error_set(err, KT_EUSAGE,
		                    "chunker: level %u exceeds log2(avg/page) = %u", p->level,
		                    log2u(p->avg_size / b));
	return KT_OK;
}

kt_code kt_chunker_init(kt_chunker *c, const kt_chunker_params *p, const uint8_t key[32],
                        kt_error *err)
{
	memset(c, 0, sizeof(*c));
	kt_code rc = check_params(p, err);
	if (rc != KT_OK)
		return rc;
	c->p = *p;
	if (p->kind == KT_CHUNKER_FASTCDC) {
		unsigned bits = log2u(p->avg_size);
		c->mask_s = spread_mask(bits + p->level);
		c->mask_l = spread_mask(bits - p->level);
		c->hash_from = p->min_size > 64 ? p->min_size - 64 : 0;
	} else if (p->kind == KT_CHUNKER_PAGECDC) {
		unsigned bits = log2u(p->avg_size / p->block_size);
		c->mask_s = (1ull << (bits + p->level)) - 1;
		c->mask_l = (1ull << (bits - p->level)) - 1;
	}
	if (p->kind != KT_CHUNKER_FIXED && derive_gear(c->gear, key) != 0) {
		memset(c, 0, sizeof(*c));
		return kt_error_set(err, KT_ENOMEM,
		                    "chunker: cannot derive the gear table (OpenSSL HMAC-SHA-256 failed)");
	}
	kt_chunker_reset(c);
	return KT_OK;
}

/* ------------------------------------------------------------------ */
/* FASTCDC */

/*
 * Roll n bytes into *fpp; stop after the first byte that leaves
 * (fp & mask) == 0.  Returns the bytes rolled; *hit says whether it stopped
 * on a match.  The hot loop: one shift, one add, one load, one test a byte.
 */
static inline size_t roll_until(const uint64_t *restrict gear, uint64_t mask,
                                const uint8_t *restrict p, size_t n, uint64_t *fpp, int *hit)
{
	uint64_t fp = *fpp;
	size_t i = 0;
	for (; i + 4 <= n; i += 4) {
		fp = (fp << 1) + gear[p[i]];
		if (!(fp & mask)) {
			i += 1;
			goto found;
		}
		fp = (fp << 1) + gear[p[i + 1]];
		if (!(fp & mask)) {
			i += 2;
			goto found;
		}
		fp = (fp << 1) + gear[p[i + 2]];
		if (!(fp & mask)) {
			i += 3;
			goto found;
		}
		fp = (fp << 1) + gear[p[i + 3]];
		if (!(fp & mask)) {
			i += 4;
			goto found;
		}
	}
	for (; i < n; i++) {
		fp = (fp << 1) + gear[p[i]];
		if (!(fp & mask)) {
			i += 1;
			goto found;
		}
	}
	*fpp = fp;
	*hit = 0;
	return n;
found:
	*fpp = fp;
	*hit = 1;
	return i;
}

static size_t scan_fastcdc(kt_chunker *c, const uint8_t *p, size_t n, int *cut)
{
	const uint64_t min = c->p.min_size, avg = c->p.avg_size, max = c->p.max_size;
	size_t i = 0;

	while (i < n) {
		uint64_t pos = c->pos;
		if (pos < c->hash_from) {              /* cut-point skipping */
			size_t k = (size_t)MIN((uint64_t)(n - i), c->hash_from - pos);
			i += k;
			c->pos += k;
			continue;
		}
		if (pos + 1 < min) {                   /* warm up the window, no cut yet */
			size_t k = (size_t)MIN((uint64_t)(n - i), min - 1 - pos);
			uint64_t fp = c->fp;
			for (size_t j = 0; j < k; j++)
				fp = (fp << 1) + c->gear[p[i + j]];
			c->fp = fp;
			i += k;
			c->pos += k;
			continue;
		}
		/* A cut may follow each byte: lengths pos+1 .. avg-1 use mask_s,
		 * avg .. max mask_l, and max always cuts. */
		uint64_t mask, room;
		if (pos + 1 < avg) {
			mask = c->mask_s;
			room = avg - 1 - pos;
		} else {
			mask = c->mask_l;
			room = max - pos;
		}
		int hit;
		size_t used = roll_until(c->gear, mask, p + i, (size_t)MIN((uint64_t)(n - i), room),
		                         &c->fp, &hit);
		i += used;
		c->pos += used;
		if (hit || c->pos == max) {
			c->pos = 0;
			c->fp = 0;
			*cut = 1;
			return i;
		}
	}
	return i;
}

/* ------------------------------------------------------------------ */
/* FIXED */

static size_t scan_fixed(kt_chunker *c, size_t n, int *cut)
{
	uint64_t room = c->p.block_size - c->pos;
	if ((uint64_t)n < room) {
		c->pos += n;
		return n;
	}
	c->pos = 0;
	*cut = 1;
	return (size_t)room;
}

/* ------------------------------------------------------------------ */
/* PAGECDC: a keyed 64-bit hash of each whole page, four independent lanes
 * over 32-byte stripes (so a page hashes at several GB/s), seeded from the
 * gear table. */

#define PH_P1 0x9e3779b97f4a7c15ull
#define PH_P2 0xc2b2ae3d27d4eb4full

static inline uint64_t rotl64(uint64_t x, unsigned r)
{
	return (x << r) | (x >> (64 - r));
}

static inline uint64_t load64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	v = __builtin_bswap64(v);
#endif
	return v;
}

static inline uint64_t ph_round(uint64_t lane, uint64_t w)
{
	return rotl64(lane + w * PH_P2, 31) * PH_P1;
}

static void ph_stripes(uint64_t lane[4], const uint8_t *p, size_t n_stripes)
{
	uint64_t a = lane[0], b = lane[1], c = lane[2], d = lane[3];
	for (size_t s = 0; s < n_stripes; s++, p += 32) {
		a = ph_round(a, load64(p));
		b = ph_round(b, load64(p + 8));
		c = ph_round(c, load64(p + 16));
		d = ph_round(d, load64(p + 24));
	}
	lane[0] = a;
	lane[1] = b;
	lane[2] = c;
	lane[3] = d;
}

static void ph_start(kt_chunker *c)
{
	memcpy(c->lane, c->gear, sizeof(c->lane));
	c->stripe_len = 0;
}

static void ph_update(kt_chunker *c, const uint8_t *p, size_t n)
{
	if (c->stripe_len) {
		size_t k = MIN(n, 32 - (size_t)c->stripe_len);
		memcpy(c->stripe + c->stripe_len, p, k);
		c->stripe_len += (uint32_t)k;
		p += k;
		n -= k;
		if (c->stripe_len < 32)
			return;
		ph_stripes(c->lane, c->stripe, 1);
		c->stripe_len = 0;
	}
	ph_stripes(c->lane, p, n / 32);
	p += n & ~(size_t)31;
	n &= 31;
	if (n) {
		memcpy(c->stripe, p, n);
		c->stripe_len = (uint32_t)n;
	}
}

static uint64_t ph_final(const kt_chunker *c)
{
	uint64_t h = rotl64(c->lane[0], 1) + rotl64(c->lane[1], 7) + rotl64(c->lane[2], 12) +
	             rotl64(c->lane[3], 18);
	h ^= h >> 33;
	h *= PH_P2;
	h ^= h >> 29;
	h *= PH_P1;
	h ^= h >> 32;
	return h;
}

static size_t scan_pagecdc(kt_chunker *c, const uint8_t *p, size_t n, int *cut)
{
	const uint64_t page = c->p.block_size, min = c->p.min_size, avg = c->p.avg_size,
	               max = c->p.max_size;
	size_t i = 0;

	while (i < n) {
		size_t k = (size_t)MIN((uint64_t)(n - i), page - c->page_pos);
		/* Only pages that end at a length where a cut may fall are hashed. */
		uint64_t page_end = c->pos - c->page_pos + page;
		if (page_end >= min && page_end < max)
			ph_update(c, p + i, k);
		i += k;
		c->pos += k;
		c->page_pos += (uint32_t)k;
		if (c->page_pos < page)
			break;
		c->page_pos = 0;
		int end = c->pos >= max;
		if (!end && c->pos >= min)
			end = !(ph_final(c) & (c->pos < avg ? c->mask_s : c->mask_l));
		ph_start(c);
		if (end) {
			c->pos = 0;
			*cut = 1;
			return i;
		}
	}
	return i;
}

/* ------------------------------------------------------------------ */

size_t kt_chunker_scan(kt_chunker *c, const void *data, size_t n, int *cut)
{
	*cut = 0;
	if (n == 0)
		return 0;
	switch (c->p.kind) {
	case KT_CHUNKER_FASTCDC:
		return scan_fastcdc(c, data, n, cut);
	case KT_CHUNKER_FIXED:
		return scan_fixed(c, n, cut);
	case KT_CHUNKER_PAGECDC:
		return scan_pagecdc(c, data, n, cut);
	}
	return n;   /* not initialised: one endless chunk */
}

void kt_chunker_reset(kt_chunker *c)
{
	c->pos = 0;
	c->fp = 0;
	c->page_pos = 0;
	ph_start(c);
}

uint64_t kt_chunker_finish(kt_chunker *c)
{
	uint64_t last = c->pos;
	kt_chunker_reset(c);
	return last;
}

/* ------------------------------------------------------------------ */
/* specs */

static int parse_size(const char *s, size_t n, uint32_t *out)
{
	uint64_t v = 0;
	size_t i = 0;
	if (n == 0)
		return -1;
	for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
		v = v * 10 + (uint64_t)(s[i] - '0');
		if (v > UINT32_MAX)
			return -1;
	}
	if (i == 0)
		return -1;
	if (i < n) {
		uint64_t mul;
		if (s[i] == 'K' || s[i] == 'k')
			mul = 1024;
		else if (s[i] == 'M' || s[i] == 'm')
			mul = 1024 * 1024;
		else
			return -1;
		if (i + 1 != n && !(i + 3 == n && s[i + 1] == 'i' && s[i + 2] == 'B'))
			return -1;
		v *= mul;
	}
	if (v > UINT32_MAX)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

kt_code kt_chunker_params_parse(const char *spec, kt_chunker_params *out, kt_error *err)
{
	kt_chunker_params p = { 0 };
	const char *colon = strchr(spec, ':');
	size_t kn = colon ? (size_t)(colon - spec) : strlen(spec);

	if (kn == 7 && !strncmp(spec, "fastcdc", 7))
		p.kind = KT_CHUNKER_FASTCDC;
	else if (kn == 5 && !strncmp(spec, "fixed", 5))
		p.kind = KT_CHUNKER_FIXED;
	else if (kn == 7 && !strncmp(spec, "pagecdc", 7))
		p.kind = KT_CHUNKER_PAGECDC;
	else
		return kt_error_set(err, KT_EUSAGE,
		                    "chunker spec '%.64s': unknown kind (fastcdc, fixed, pagecdc)", spec);
	int have_level = 0;
	const char *s = colon ? colon + 1 : spec + kn;
	while (*s) {
		size_t wn = strcspn(s, ",");
		const char *eq = memchr(s, '=', wn);
		const char *name = s, *val = eq ? eq + 1 : s;
		size_t nn = eq ? (size_t)(eq - s) : 0, vn = eq ? wn - nn - 1 : wn;
		uint32_t v;
		if (parse_size(val, vn, &v) != 0)
			return kt_error_set(err, KT_EUSAGE, "chunker spec '%.64s': bad size in '%.*s'",
			                    spec, (int)MIN(wn, 64), s);
		if (!eq && p.kind == KT_CHUNKER_FIXED)
			p.block_size = v;
		else if (nn == 3 && !strncmp(name, "min", 3) && p.kind != KT_CHUNKER_FIXED)
			p.min_size = v;
		else if (nn == 3 && !strncmp(name, "avg", 3) && p.kind != KT_CHUNKER_FIXED)
			p.avg_size = v;
		else if (nn == 3 && !strncmp(name, "max", 3) && p.kind != KT_CHUNKER_FIXED)
			p.max_size = v;
		else if (nn == 5 && !strncmp(name, "level", 5) && p.kind != KT_CHUNKER_FIXED) {
			p.level = v;
			have_level = 1;
		} else if (nn == 5 && !strncmp(name, "block", 5) && p.kind != KT_CHUNKER_FASTCDC)
			p.block_size = v;
		else
			return kt_error_set(err, KT_EUSAGE, "chunker spec '%.64s': unknown setting '%.*s'",
			                    spec, (int)MIN(wn, 64), s);
		s += wn;
		if (*s == ',')
			s++;
	}
	if (p.kind == KT_CHUNKER_PAGECDC && !p.block_size)
		p.block_size = 4096;
	if (p.kind != KT_CHUNKER_FIXED) {
		if (!p.avg_size)
			return kt_error_set(err, KT_EUSAGE, "chunker spec '%.64s': avg is required", spec);
		if (!p.min_size)
			p.min_size = p.avg_size / 4;
		if (!p.max_size)
			p.max_size = p.avg_size > UINT32_MAX / 4 ? UINT32_MAX : p.avg_size * 4;
		if (!have_level)
			p.level = p.kind == KT_CHUNKER_FASTCDC ? 2 : 1;
	}
	if (check_params(&p, err) != KT_OK)
		return kt_error_wrap(err, "chunker spec '%.64s'", spec);
	*out = p;
	return KT_OK;
}

static const char *human(uint32_t v, char *b, size_t cap)
{
	if (v >= (1u << 20) && v % (1u << 20) == 0)
		snprintf(b, cap, "%uM", v >> 20);
	else if (v >= 1024 && v % 1024 == 0)
		snprintf(b, cap, "%uK", v >> 10);
	else
		snprintf(b, cap, "%u", v);
	return b;
}

const char *kt_chunker_params_format(const kt_chunker_params *p, char *buf, size_t cap)
{
	char a[16], b[16], c[16], d[16];
	switch (p->kind) {
	case KT_CHUNKER_FIXED:
		snprintf(buf, cap, "fixed:%s", human(p->block_size, a, sizeof(a)));
		break;
	case KT_CHUNKER_FASTCDC:
		snprintf(buf, cap, "fastcdc:min=%s,avg=%s,max=%s,level=%u",
		         human(p->min_size, a, sizeof(a)), human(p->avg_size, b, sizeof(b)),
		         human(p->max_size, c, sizeof(c)), p->level);
		break;
	case KT_CHUNKER_PAGECDC:
		snprintf(buf, cap, "pagecdc:block=%s,min=%s,avg=%s,max=%s,level=%u",
		         human(p->block_size, d, sizeof(d)), human(p->min_size, a, sizeof(a)),
		         human(p->avg_size, b, sizeof(b)), human(p->max_size, c, sizeof(c)), p->level);
		break;
	default:
		snprintf(buf, cap, "unknown");
	}
	return buf;
}

void kt_chunker_params_files(kt_chunker_params *out)
{
	*out = (kt_chunker_params){ .kind = KT_CHUNKER_FASTCDC, .min_size = 16u << 10,
	                            .avg_size = 64u << 10, .max_size = 256u << 10, .level = 2 };
}

void kt_chunker_params_etcd(kt_chunker_params *out)
{
	*out = (kt_chunker_params){ .kind = KT_CHUNKER_FIXED, .block_size = 4096 };
}
