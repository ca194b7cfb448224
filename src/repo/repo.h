/*
 * repo.h - the deduplicating repository format (docs/repository-format.md):
 * the public contract of src/repo/.  Pure code: memory in, memory out; no
 * files, no network (src/store/ moves the bytes).
 *
 * Sections:
 *   1. chunker (chunker.c): where a byte stream is cut into chunks.
 */
#ifndef KT_REPO_H
#define KT_REPO_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

/* ================================================================== */
/* 1. Chunker (chunker.c; measurements and choices: docs/chunking.md)  */
/* ================================================================== */
/*
 * A chunker is fed a stream in slices of any size and reports where chunks
 * end.  The boundaries depend only on the bytes of the stream, the
 * parameters and the key: never on how the stream was sliced when fed.
 * It keeps no stream data (constant memory, ~2.2 KiB in the struct), so
 * the caller owns the bytes: it hashes or buffers the current chunk itself.
 *
 * Kinds:
 *   FASTCDC  content-defined chunking after FastCDC (Xia et al., USENIX ATC
 *            2016 and IEEE TPDS 2020): a gear rolling hash, no cut before
 *            min_size, a harder mask before avg_size and an easier one after
 *            it ("normalized chunking", level 0-3), a forced cut at
 *            max_size.  Shift-resistant: an insertion changes only the
 *            chunks around it.  For file data.
 *   FIXED    blocks of block_size bytes from the start of the stream.  For
 *            data edited in place at aligned positions (bbolt / etcd).
 *   PAGECDC  content-defined at page granularity: cuts only at multiples
 *            of block_size (the page), after a page whose keyed hash meets
 *            the mask; min/avg/max and normalization as FASTCDC, counted
 *            in bytes that are whole pages.
 *
 * The gear table and the page hash are derived from a 32-byte key
 * (HMAC-SHA-256, see kt_chunker_init), so that chunk sizes seen in a
 * bucket do not reveal known content.  A repository passes its `id` key.
 *
 * Use:
 *     kt_chunker c;
 *     kt_chunker_init(&c, &params, key, &err);
 *     for each slice (p, n) of the stream:
 *         while (n > 0) {
 *             int cut;
 *             size_t used = kt_chunker_scan(&c, p, n, &cut);
 *             take p[0..used) into the current chunk;
 *             if (cut) end the current chunk;
 *             p += used; n -= used;
 *         }
 *     if (kt_chunker_finish(&c) > 0) end the current (last, short) chunk;
 */

typedef enum kt_chunker_kind {
	KT_CHUNKER_FASTCDC = 1,
	KT_CHUNKER_FIXED = 2,
	KT_CHUNKER_PAGECDC = 3,
} kt_chunker_kind;

/* Upper limits of the parameters (a chunk is one repository blob). */
#define KT_CHUNKER_MAX_CHUNK (16u << 20)
#define KT_CHUNKER_MIN_CHUNK 64u          /* FASTCDC min_size floor */
#define KT_CHUNKER_MAX_PAGE (1u << 20)    /* PAGECDC block_size ceiling */
#define KT_CHUNKER_MAX_LEVEL 3u

typedef struct kt_chunker_params {
	kt_chunker_kind kind;
	uint32_t min_size;    /* FASTCDC, PAGECDC: no chunk is shorter (but the last) */
	uint32_t avg_size;    /* FASTCDC, PAGECDC: power of two (for PAGECDC avg/block too) */
	uint32_t max_size;    /* FASTCDC, PAGECDC: no chunk is longer */
	uint32_t block_size;  /* FIXED: the chunk size; PAGECDC: the page, a power of two >= 64 */
	uint32_t level;       /* FASTCDC, PAGECDC: normalization level 0..3 */
} kt_chunker_params;

/* The chunker's state.  Caller-allocated; fields are private to chunker.c. */
typedef struct kt_chunker {
	kt_chunker_params p;
	uint64_t mask_s;      /* used while the chunk is shorter than avg_size */
	uint64_t mask_l;      /* from avg_size on */
	uint64_t hash_from;   /* FASTCDC: bytes of a chunk skipped before rolling */
	uint64_t pos;         /* bytes of the current chunk seen so far */
	uint64_t fp;          /* FASTCDC: gear fingerprint */
	uint64_t lane[4];     /* PAGECDC: page hash state */
	uint8_t stripe[32];   /* PAGECDC: a partial 32-byte stripe carried over */
	uint32_t stripe_len;
	uint32_t page_pos;    /* PAGECDC: bytes of the current page seen */
	uint64_t gear[256];
} kt_chunker;

/*
 * Check p and set c up at the start of a stream.  key (32 bytes) keys the
 * gear table and the page hash; NULL means 32 zero bytes (tests, tools).
 * KT_EUSAGE naming the bad parameter when p is out of bounds (see the
 * params struct and the KT_CHUNKER_* limits; FASTCDC also needs
 * min_size >= 64 and min < avg < max), KT_ENOMEM if OpenSSL cannot compute
 * the HMAC; c is then zeroed.  Nothing to free.
 */
kt_code kt_chunker_init(kt_chunker *c, const kt_chunker_params *p, const uint8_t key[32],
                        kt_error *err);

/*
 * Scan up to n bytes that continue the stream.  Returns how many of them
 * belong to the current chunk (<= n; n > 0 gives at least 1).  *cut is set
 * to 1 when the current chunk ends after those bytes (the next call starts a
 * new chunk), else 0 (then all n bytes were taken).
 */
size_t kt_chunker_scan(kt_chunker *c, const void *data, size_t n, int *cut);

/*
 * End of stream: returns the length of the last chunk (bytes scanned since
 * the last cut; 0 when the stream ended on a cut or was empty) and resets c
 * for a new stream with the same parameters and key.
 */
uint64_t kt_chunker_finish(kt_chunker *c);

/* Forget the current stream without ending a chunk (same as finish). */
void kt_chunker_reset(kt_chunker *c);

/*
 * Parse a chunker spec such as "fastcdc:min=16K,avg=64K,max=256K,level=2",
 * "fixed:4K" (or "fixed:block=4096") or
 * "pagecdc:block=4K,min=16K,avg=64K,max=256K,level=1".  Sizes take K, M
 * suffixes (powers of 1024).  Omitted FASTCDC/PAGECDC values: min = avg/4,
 * max = avg*4, level 2 (PAGECDC: 1 and block 4K).  The result is checked
 * as kt_chunker_init does.  KT_EUSAGE with the offending word on failure
 * (*out untouched).
 */
kt_code kt_chunker_params_parse(const char *spec, kt_chunker_params *out, kt_error *err);

/* The canonical spec of p (as parse reads it) in buf; returns buf. */
const char *kt_chunker_params_format(const kt_chunker_params *p, char *buf, size_t cap);

/*
 * The parameters a repository uses per kind of data, chosen by measurement
 * (docs/chunking.md): file data and etcd snapshots (bbolt databases).
 */
void kt_chunker_params_files(kt_chunker_params *out);
void kt_chunker_params_etcd(kt_chunker_params *out);

/* ========================= end of chunker ========================= */

#endif
