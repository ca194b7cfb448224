/*
 * pb_build.h - test helper: build protobuf bytes by hand (varints, tags,
 * length-delimited fields) into a fixed 8 KiB buffer.  Included by the etcd
 * unit tests only.
 */
#ifndef KT_TEST_PB_BUILD_H
#define KT_TEST_PB_BUILD_H

#include <stdint.h>
#include <string.h>

typedef struct bytes {
	uint8_t d[8192];
	size_t n;
} bytes;

static inline void put(bytes *b, const void *p, size_t n)
{
	memcpy(b->d + b->n, p, n);
	b->n += n;
}

static inline void put_byte(bytes *b, uint8_t v)
{
	b->d[b->n++] = v;
}

static inline void put_varint(bytes *b, uint64_t v)
{
	do {
		uint8_t c = (uint8_t)(v & 0x7f);
		v >>= 7;
		put_byte(b, (uint8_t)(c | (v ? 0x80 : 0)));
	} while (v);
}

static inline void put_tag(bytes *b, uint32_t field, unsigned wt)
{
	put_varint(b, (uint64_t)field << 3 | wt);
}

static inline void put_len(bytes *b, uint32_t field, const void *p, size_t n)
{
	put_tag(b, field, 2);
	put_varint(b, n);
	put(b, p, n);
}

#endif /* KT_TEST_PB_BUILD_H */
