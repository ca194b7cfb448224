/*
 * crc32c.c - CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the
 * checksum etcdutl's `snapshot status` prints as "hash".
 *
 * Two paths with identical results, chosen per context at init:
 *   - SSE4.2: the crc32 instruction, 8 bytes per step.  Buffers of three
 *     blocks or more run three independent streams (hiding the
 *     instruction's 3-cycle latency) and fold them with a precomputed
 *     "shift over BLOCK zero bytes" operator: the CRC register is linear,
 *     so crc(s, A|B) = shift(crc(s, A), |B|) ^ crc(0, B).
 *   - slice-by-8 tables, portable C.
 * The running state is kept inverted (init ~0, final ~), as zlib/Go do.
 */
#include <string.h>

#include "snapshot_int.h"

#define POLY 0x82F63B78u
#define BLOCK 256u   /* bytes per stream in the three-way path */

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <nmmintrin.h>
#define KT_HAVE_SSE42_PATH 1

static uint64_t load64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

static uint32_t shift_apply(const uint32_t t[4][256], uint32_t s)
{
	return t[0][s & 0xff] ^ t[1][(s >> 8) & 0xff] ^ t[2][(s >> 16) & 0xff] ^ t[3][s >> 24];
}

/* Build the operator that advances a CRC register over BLOCK zero bytes. */
__attribute__((target("sse4.2")))
static void shift_init(uint32_t t[4][256])
{
	uint32_t col[32];
	for (unsigned j = 0; j < 32; j++) {
		uint64_t s = 1u << j;
		for (unsigned i = 0; i < BLOCK; i += 8)
			s = _mm_crc32_u64(s, 0);
		col[j] = (uint32_t)s;
	}
	for (unsigned k = 0; k < 4; k++)
		for (unsigned b = 0; b < 256; b++) {
			uint32_t v = 0;
			for (unsigned bit = 0; bit < 8; bit++)
				if (b & (1u << bit))
					v ^= col[8 * k + bit];
			t[k][b] = v;
		}
}

__attribute__((target("sse4.2")))
static uint32_t crc_hw(uint32_t crc, const uint8_t *p, size_t n, const uint32_t t[4][256])
{
	uint64_t c0 = crc;
	while (n && ((uintptr_t)p & 7)) {
		c0 = _mm_crc32_u8((uint32_t)c0, *p++);
		n--;
	}
	while (n >= 3 * BLOCK) {
		uint64_t c1 = 0, c2 = 0;
		for (size_t i = 0; i < BLOCK; i += 8) {
			c0 = _mm_crc32_u64(c0, load64(p + i));
			c1 = _mm_crc32_u64(c1, load64(p + BLOCK + i));
			c2 = _mm_crc32_u64(c2, load64(p + 2 * BLOCK + i));
		}
		c0 = shift_apply(t, shift_apply(t, (uint32_t)c0) ^ (uint32_t)c1) ^ (uint32_t)c2;
		p += 3 * BLOCK;
		n -= 3 * BLOCK;
	}
	while (n >= 8) {
		c0 = _mm_crc32_u64(c0, load64(p));
		p += 8;
		n -= 8;
	}
	while (n--)
		c0 = _mm_crc32_u8((uint32_t)c0, *p++);
	return (uint32_t)c0;
}
#endif

static void table_init(uint32_t t[8][256])
{
	for (unsigned i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (POLY & (0u - (c & 1)));
		t[0][i] = c;
	}
	for (unsigned i = 0; i < 256; i++)
		for (unsigned k = 1; k < 8; k++)
			t[k][i] = (t[k - 1][i] >> 8) ^ t[0][t[k - 1][i] & 0xff];
}

static uint32_t crc_soft(uint32_t crc, const uint8_t *p, size_t n, const uint32_t t[8][256])
{
	while (n >= 8) {
		uint32_t lo = ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
		               (uint32_t)p[3] << 24) ^ crc;
		uint32_t hi = (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 |
		              (uint32_t)p[7] << 24;
		crc = t[7][lo & 0xff] ^ t[6][(lo >> 8) & 0xff] ^ t[5][(lo >> 16) & 0xff] ^
		      t[4][lo >> 24] ^ t[3][hi & 0xff] ^ t[2][(hi >> 8) & 0xff] ^
		      t[1][(hi >> 16) & 0xff] ^ t[0][hi >> 24];
		p += 8;
		n -= 8;
	}
	while (n--)
		crc = (crc >> 8) ^ t[0][(crc ^ *p++) & 0xff];
	return crc;
}

void kt_crc32c_init(kt_crc32c *c, int force_soft)
{
	c->state = 0xFFFFFFFFu;
	c->hw = 0;
#ifdef KT_HAVE_SSE42_PATH
	if (!force_soft && __builtin_cpu_supports("sse4.2")) {
		c->hw = 1;
		/* The first four rows of the table hold the shift operator here. */
		shift_init((uint32_t(*)[256])c->table);
		return;
	}
#else
	(void)force_soft;
#endif
	table_init(c->table);
}

void kt_crc32c_update(kt_crc32c *c, const void *data, size_t n)
{
	if (!n)
		return;
#ifdef KT_HAVE_SSE42_PATH
	if (c->hw) {
		c->state = crc_hw(c->state, data, n, (const uint32_t(*)[256])c->table);
		return;
	}
#endif
	c->state = crc_soft(c->state, data, n, (const uint32_t(*)[256])c->table);
}

uint32_t kt_crc32c_final(const kt_crc32c *c)
{
	return c->state ^ 0xFFFFFFFFu;
}
