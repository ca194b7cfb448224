/*
 * bbolt.h - a read-only, checking walker for bbolt database files (the
 * B+tree store under etcd's member/snap/db and inside every snapshot).
 *
 * Owns: choosing the current meta page, reading pages one run at a time
 * with pread (never the whole file, never mmap), walking every bucket in
 * key order and checking each structural invariant on the way.  The byte
 * layout it reads is documented in docs/snapshot-format.md.
 *
 * Invariants the walker guarantees to its callers:
 *   1. Memory is bounded by the page runs on the current root-to-leaf path
 *      (plus a 4 MiB buffer kept per level), plus
 *      two bitmaps of n_pages bits; a declared size, count or overflow is
 *      checked against the file before anything is allocated or read.
 *   2. Nothing is read past db_size; a file shorter than its meta page
 *      claims is reported as truncated.
 *   3. The first fault ends the walk with KT_ECORRUPT and a message naming
 *      the page id, its byte offset and what was expected.
 *   4. Entries reach the callback in key order, depth first: a bucket's own
 *      entry comes right before the entries inside it.
 */
#ifndef KT_BBOLT_H
#define KT_BBOLT_H

#include "../core/core.h"

#define KT_BBOLT_NO_FREELIST UINT64_MAX   /* meta freelist id: not synced */
#define KT_BBOLT_MIN_PAGE 1024u           /* page sizes bbolt can open */
#define KT_BBOLT_MAX_PAGE 65536u
#define KT_BBOLT_MAX_DEPTH 128            /* tree levels + nested buckets */
#define KT_BBOLT_MAX_RUN (256u << 20)     /* largest page + overflow run read */

typedef struct kt_bbolt kt_bbolt;   /* an open database: see kt_bbolt_open */

/* What the current meta page says, after validation. */
typedef struct kt_bbolt_info {
	uint32_t page_size;
	unsigned meta_page;      /* 0 or 1: the meta page in use */
	uint64_t txid;
	uint64_t root;           /* page of the root bucket */
	uint64_t freelist;       /* page of the freelist, or KT_BBOLT_NO_FREELIST */
	uint64_t n_pages;        /* high-water mark: pages [0, n_pages) are in use */
	uint64_t db_size;        /* bytes that belong to the database */
} kt_bbolt_info;

/* A byte string borrowed from a page buffer; valid during the callback. */
typedef struct kt_bbolt_slice {
	const uint8_t *data;
	size_t len;
} kt_bbolt_slice;

#define KT_BBOLT_BUCKET 0x01u  /* entry is a nested bucket (its value is not data) */
#define KT_BBOLT_INLINE 0x02u  /* ... stored inline, its page inside the value */

typedef struct kt_bbolt_entry {
	size_t depth;                /* 0: an entry of the root bucket (a top-level name) */
	const kt_bbolt_slice *path;  /* path[0..depth-1]: enclosing buckets, outermost first */
	kt_bbolt_slice key;
	kt_bbolt_slice value;        /* {NULL, 0} for a bucket, as bbolt's ForEach */
	unsigned flags;              /* KT_BBOLT_BUCKET, KT_BBOLT_INLINE */
	uint64_t pgid;               /* page holding the element (page of the parent for inline) */
	uint64_t offset;             /* byte offset of the key in the file (for messages) */
} kt_bbolt_entry;

/*
 * Called once per leaf element.  Return KT_OK to go on; anything else stops
 * the walk and kt_bbolt_walk returns that code with err as the callback
 * left it.  Pointers in e are borrowed and valid only during the call.
 */
typedef kt_code (*kt_bbolt_visit_fn)(void *ctx, const kt_bbolt_entry *e, kt_error *err);

typedef struct kt_bbolt_stats {
	uint64_t n_reachable;  /* pages in use: metas, freelist, branch, leaf, overflow */
	uint64_t n_free;       /* on the freelist (or unreachable when none was synced) */
	uint64_t n_buckets;    /* buckets below the root, inline ones included */
	uint64_t n_inline;     /* of which inline */
	uint64_t n_entries;    /* leaf elements over all buckets */
	uint64_t n_branch;     /* branch pages reached */
	uint64_t n_leaf;       /* leaf pages reached (not counting inline pages) */
	unsigned max_depth;    /* deepest recursion reached (levels + nesting) */
} kt_bbolt_stats;

/*
 * Open the bbolt database held in the first db_size bytes of fd (the
 * caller strips a snapshot trailer by passing size - 32).  fd is borrowed:
 * it must stay open until kt_bbolt_free and is never closed here.  Reads
 * both meta pages, picks the valid one with the higher txid (as bbolt
 * does), checks page size, high-water mark against db_size, root and
 * freelist ids.  Returns KT_OK and *out (free with kt_bbolt_free), or
 * KT_ECORRUPT (not bbolt, both metas bad, truncated), KT_EIO (read error),
 * leaving *out untouched.  Messages do not name the file; callers wrap.
 */
kt_code kt_bbolt_open(kt_bbolt **out, int fd, uint64_t db_size, kt_error *err);

/* The validated meta of an open database; borrowed from db. */
const kt_bbolt_info *kt_bbolt_get_info(const kt_bbolt *db);

/*
 * Walk the whole database: every bucket (nested and inline ones too) in
 * key order, calling fn (may be NULL) for each leaf element, then check the
 * freelist against the pages reached: every page below the high-water mark
 * is used exactly once, either reachable or free.  stats (may be NULL) is
 * filled as far as the walk got, also on failure.  Returns KT_OK,
 * KT_ECORRUPT naming the first fault, KT_EIO, KT_ELIMIT (a page run above
 * KT_BBOLT_MAX_RUN), KT_ENOMEM, or the callback's code.  May be called
 * more than once on the same db.
 */
kt_code kt_bbolt_walk(kt_bbolt *db, kt_bbolt_visit_fn fn, void *ctx, kt_bbolt_stats *stats,
                      kt_error *err);

/* Release db and its buffers (not the fd).  NULL is a no-op. */
void kt_bbolt_free(kt_bbolt *db);

/* FNV-1a 64 as bbolt checksums its meta page (exposed for tests and tools). */
uint64_t kt_bbolt_fnv1a64(const void *data, size_t n);

#endif /* KT_BBOLT_H */
