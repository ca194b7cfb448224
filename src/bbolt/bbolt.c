/*
 * bbolt.c - the read-only bbolt walker behind bbolt.h.
 *
 * Owns: meta page selection, page-run reads with pread, the recursive walk
 * of branch/leaf pages and nested/inline buckets, and the freelist
 * reconciliation.  Layout facts (docs/snapshot-format.md): a page starts
 * with a 16-byte header {id u64, flags u16, count u16, overflow u32}; all
 * integers are little endian; element positions are relative to the
 * element's own 16-byte header.
 *
 * Invariants while walking:
 *   1. A page is read only after its id is known to lie below the
 *      high-water mark, and open() checked that n_pages * page_size fits in
 *      db_size, so every read is inside the file.
 *   2. levels[d] holds the page run being processed at recursion depth d;
 *      a child at d + 1 never overwrites an ancestor's buffer, so keys used
 *      as bounds and bucket names in path[] stay valid while descending.
 *      A buffer above KEEP_BUF is freed when its page is done, so memory is
 *      the runs on the current path plus at most KEEP_BUF per level.
 *   3. reach[] gets a page's bit when the page is read; a bit already set
 *      means the page is referenced twice (cycle or sharing) and stops the
 *      walk before any recursion into it.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bbolt.h"

#define MAGIC 0xED0CDAEDu
#define VERSION 2u
#define PAGE_HEADER 16u
#define ELEM_SIZE 16u
#define META_SIZE 64u            /* fields through checksum */
#define META_SUMMED 56u          /* bytes covered by the checksum */
#define BUCKET_HEADER 16u        /* {root u64, sequence u64} */
#define FLAG_BRANCH 0x01u
#define FLAG_LEAF 0x02u
#define FLAG_META 0x04u
#define FLAG_FREELIST 0x10u
#define LEAF_BUCKET 0x01u
#define KEEP_BUF (4u << 20)      /* level buffers above this are freed after use */

typedef struct level_buf {
	uint8_t *data;
	size_t cap;
} level_buf;

struct kt_bbolt {
	int fd;
	kt_bbolt_info info;
	uint8_t *reach;   /* n_pages bits: reached from the metas, freelist or tree */
	uint8_t *freed;   /* n_pages bits: listed on the freelist */
	size_t bitmap_bytes;
	level_buf levels[KT_BBOLT_MAX_DEPTH];
	kt_bbolt_slice path[KT_BBOLT_MAX_DEPTH];
	kt_bbolt_visit_fn fn;
	void *ctx;
	kt_bbolt_stats st;
};

/* A page (or inline page) in memory: p[0] sits at byte `off` of the file. */
typedef struct region {
	const uint8_t *p;
	size_t len;
	uint64_t pgid;      /* page id; for an inline page, the page holding it */
	uint64_t off;
	int is_inline;
} region;

/* Where a page was referenced from, for messages. */
typedef struct ref {
	uint64_t from;      /* parent page, or UINT64_MAX for a bucket root */
	unsigned elem;
	size_t bdepth;      /* bucket depth of the bucket the page belongs to */
} ref;

typedef unsigned long long ull;

static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint64_t le64(const uint8_t *p) { return (uint64_t)le32(p) | ((uint64_t)le32(p + 4) << 32); }

uint64_t kt_bbolt_fnv1a64(const void *data, size_t n)
{
	const uint8_t *p = data;
	uint64_t h = 0xCBF29CE484222325ull;
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 0x100000001B3ull;
	}
	return h;
}

static int bit_get(const uint8_t *map, uint64_t i) { return (map[i >> 3] >> (i & 7)) & 1; }
static void bit_set(uint8_t *map, uint64_t i) { map[i >> 3] |= (uint8_t)(1u << (i & 7)); }

static int cmp_slice(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);
	if (c)
		return c;
	return alen < blen ? -1 : alen > blen;
}

/* Printable, bounded rendering of a bucket name or key for messages. */
static void fmt_bytes(char *out, size_t outlen, const uint8_t *p, size_t n)
{
	size_t o = 0;
	for (size_t i = 0; i < n && o + 8 < outlen; i++) {
		if (i == 40) {
			o += (size_t)snprintf(out + o, outlen - o, "...");
			break;
		}
		if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\'' && p[i] != '\\')
			out[o++] = (char)p[i];
		else
			o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", p[i]);
	}
	out[o] = '\0';
}

/* "the root bucket", "bucket 'key'", "bucket 'a/b'" for the bucket at bdepth. */
static void fmt_bucket(const kt_bbolt *db, size_t bdepth, char *out, size_t outlen)
{
	if (bdepth == 0) {
		snprintf(out, outlen, "the root bucket");
		return;
	}
	size_t o = (size_t)snprintf(out, outlen, "bucket '");
	for (size_t i = 0; i < bdepth && o + 16 < outlen; i++) {
		char name[200];
		fmt_bytes(name, sizeof(name), db->path[i].data, db->path[i].len);
		o += (size_t)snprintf(out + o, outlen - o, "%s%s", i ? "/" : "", name);
	}
	if (o + 2 <= outlen)
		snprintf(out + o, outlen - o, "'");
}

static void fmt_ref(const kt_bbolt *db, const ref *r, char *out, size_t outlen)
{
	char b[300];
	if (!r) {
		snprintf(out, outlen, "the freelist");
		return;
	}
	fmt_bucket(db, r->bdepth, b, sizeof(b));
	if (r->from == UINT64_MAX)
		snprintf(out, outlen, "root of %s", b);
	else
		snprintf(out, outlen, "child %u of page %llu in %s", r->elem, (ull)r->from, b);
}

/* pread exactly n bytes at off; a short read means the file shrank. */
static kt_code read_at(kt_bbolt *db, void *buf, size_t n, uint64_t off, uint64_t pgid, kt_error *err)
{
	size_t done = 0;
	while (done < n) {
		ssize_t r = pread(db->fd, (uint8_t *)buf + done, n - done, (off_t)(off + done));
		if (r < 0) {
			if (errno == EINTR)
				continue;
			int e = errno;
			return kt_error_sys(err, e == ENOMEM ? KT_ENOMEM : KT_EIO, e,
			                    "cannot read page %llu at byte %llu", (ull)pgid,
			                    (ull)(off + done));
		}
		if (r == 0)
			return kt_error_set(err, KT_ECORRUPT,
			                    "truncated: page %llu needs bytes up to %llu but the file "
			                    "ends at %llu", (ull)pgid, (ull)(off + n), (ull)(off + done));
		done += (size_t)r;
	}
	return KT_OK;
}

static kt_code level_reserve(kt_bbolt *db, unsigned level, size_t n, kt_error *err)
{
	level_buf *lb = &db->levels[level];
	if (lb->cap >= n)
		return KT_OK;
	uint8_t *p = realloc(lb->data, n);
	if (!p)
		return kt_error_set(err, KT_ENOMEM, "out of memory reading a page run of %zu bytes", n);
	lb->data = p;
	lb->cap = n;
	return KT_OK;
}

/* ------------------------------------------------------------------ */
/* Meta pages */

typedef struct meta {
	uint32_t magic, version, page_size, flags;
	uint64_t root, sequence, freelist, pgid, txid, checksum;
	int readable;        /* the bytes were there to read */
	char why[160];       /* empty when valid */
} meta;

/* Parse and validate a meta at p (the page start, PAGE_HEADER + META_SIZE bytes). */
static void meta_parse(const uint8_t *p, meta *m)
{
	const uint8_t *f = p + PAGE_HEADER;
	m->readable = 1;
	m->magic = le32(f);
	m->version = le32(f + 4);
	m->page_size = le32(f + 8);
	m->flags = le32(f + 12);
	m->root = le64(f + 16);
	m->sequence = le64(f + 24);
	m->freelist = le64(f + 32);
	m->pgid = le64(f + 40);
	m->txid = le64(f + 48);
	m->checksum = le64(f + 56);
	m->why[0] = '\0';
	if (m->magic != MAGIC)
		snprintf(m->why, sizeof(m->why),
		         "wrong magic 0x%08x (expected 0x%08x: this is not a bbolt database)",
		         m->magic, MAGIC);
	else if (m->version != VERSION)
		snprintf(m->why, sizeof(m->why), "unsupported version %u (expected %u)", m->version,
		         VERSION);
	else if (m->checksum != kt_bbolt_fnv1a64(f, META_SUMMED))
		snprintf(m->why, sizeof(m->why),
		         "checksum %016llx does not match its fields (they sum to %016llx)",
		         (ull)m->checksum, (ull)kt_bbolt_fnv1a64(f, META_SUMMED));
}

/* Read the meta at byte off into m; m->readable = 0 when the file is too short. */
static kt_code meta_read(kt_bbolt *db, uint64_t off, uint64_t pgid, meta *m, kt_error *err)
{
	uint8_t buf[PAGE_HEADER + META_SIZE];
	memset(m, 0, sizeof(*m));
	if (db->info.db_size < off + sizeof(buf)) {
		snprintf(m->why, sizeof(m->why),
		         "truncated: page %llu needs bytes up to %llu but the file has %llu",
		         (ull)pgid, (ull)(off + sizeof(buf)), (ull)db->info.db_size);
		return KT_OK;
	}
	kt_code c = read_at(db, buf, sizeof(buf), off, pgid, err);
	if (c)
		return c;
	meta_parse(buf, m);
	return KT_OK;
}

static int page_size_ok(uint32_t ps)
{
	return ps >= KT_BBOLT_MIN_PAGE && ps <= KT_BBOLT_MAX_PAGE && (ps & (ps - 1)) == 0;
}

static kt_code pick_meta(kt_bbolt *db, kt_error *err)
{
	meta m0, m1;
	kt_code c = meta_read(db, 0, 0, &m0, err);
	if (c)
		return c;
	uint32_t ps = 0;
	if (!m0.why[0]) {
		ps = m0.page_size;
		if (!page_size_ok(ps))
			return kt_error_set(err, KT_ECORRUPT,
			                    "meta page 0 at byte 16: page size %u is not a power of two "
			                    "from %u to %u", ps, KT_BBOLT_MIN_PAGE, KT_BBOLT_MAX_PAGE);
	} else {
		/* As bbolt: page 0 is bad, so find page 1 by trying each page size. */
		meta seen = { 0 }; /* a bbolt meta (right magic) that failed later checks */
		uint32_t seen_at = 0;
		for (uint32_t cand = KT_BBOLT_MIN_PAGE; cand <= KT_BBOLT_MAX_PAGE; cand <<= 1) {
			meta t;
			c = meta_read(db, cand, 1, &t, err);
			if (c)
				return c;
			if (!t.readable)
				break;
			if (!t.why[0] && t.page_size == cand) {
				ps = cand;
				break;
			}
			if (!seen_at && t.magic == MAGIC) {
				seen = t;
				seen_at = cand;
			}
		}
		if (!ps) {
			if (!m0.readable)
				return kt_error_set(err, KT_ECORRUPT, "meta page 0: %s", m0.why);
			if (seen_at)
				return kt_error_set(err, KT_ECORRUPT,
				                    "no valid meta page: meta page 0 at byte 0: %s; meta page 1 "
				                    "at byte %u: %s", m0.why, seen_at,
				                    seen.why[0] ? seen.why : "page size does not match its offset");
			return kt_error_set(err, KT_ECORRUPT,
			                    "no valid meta page: meta page 0 at byte 0: %s; no meta page 1 "
			                    "at any page size from %u to %u", m0.why, KT_BBOLT_MIN_PAGE,
			                    KT_BBOLT_MAX_PAGE);
		}
	}
	c = meta_read(db, ps, 1, &m1, err);
	if (c)
		return c;
	/* The valid meta with the higher txid wins; ties go to page 0 (as bbolt). */
	const meta *a = &m0, *b = &m1;
	unsigned ai = 0, bi = 1;
	if (m1.txid > m0.txid) {
		a = &m1, b = &m0;
		ai = 1, bi = 0;
	}
	const meta *m = NULL;
	unsigned mi = 0;
	if (!a->why[0])
		m = a, mi = ai;
	else if (!b->why[0])
		m = b, mi = bi;
	if (!m)
		return kt_error_set(err, KT_ECORRUPT,
		                    "no valid meta page: meta page 0 at byte 0: %s; meta page 1 at byte "
		                    "%u: %s", m0.why, ps, m1.why);
	if (m->page_size != ps)
		return kt_error_set(err, KT_ECORRUPT,
		                    "meta page %u at byte %llu: page size %u differs from the %u bytes "
		                    "the file was opened with", mi, (ull)mi * ps, m->page_size, ps);
	kt_bbolt_info *in = &db->info;
	in->page_size = ps;
	in->meta_page = mi;
	in->txid = m->txid;
	in->root = m->root;
	in->freelist = m->freelist;
	in->n_pages = m->pgid;
	uint64_t moff = (uint64_t)mi * ps;

	if (m->pgid > db->info.db_size / ps) {
		if (m->pgid > UINT64_MAX / ps)
			return kt_error_set(err, KT_ECORRUPT,
			                    "truncated: meta page %u at byte %llu declares %llu pages of %u "
			                    "bytes, more than any file holds; the file has %llu bytes",
			                    mi, (ull)moff, (ull)m->pgid, ps, (ull)db->info.db_size);
		return kt_error_set(err, KT_ECORRUPT,
		                    "truncated: page %llu needs bytes up to %llu but the file has %llu "
		                    "(meta page %u declares %llu pages of %u bytes)",
		                    (ull)(m->pgid - 1), (ull)(m->pgid * ps), (ull)db->info.db_size, mi,
		                    (ull)m->pgid, ps);
	}
	if (m->pgid < 3)
		return kt_error_set(err, KT_ECORRUPT,
		                    "meta page %u at byte %llu: high-water mark of %llu pages leaves no "
		                    "room for a root page", mi, (ull)moff, (ull)m->pgid);
	if (m->root < 2 || m->root >= m->pgid)
		return kt_error_set(err, KT_ECORRUPT,
		                    "meta page %u at byte %llu: root bucket page %llu is %s (pages 2 to "
		                    "%llu hold data)", mi, (ull)moff, (ull)m->root,
		                    m->root < 2 ? "a meta page" : "past the high-water mark",
		                    (ull)(m->pgid - 1));
	if (m->freelist != KT_BBOLT_NO_FREELIST && (m->freelist < 2 || m->freelist >= m->pgid))
		return kt_error_set(err, KT_ECORRUPT,
		                    "meta page %u at byte %llu: freelist page %llu is %s (pages 2 to "
		                    "%llu hold data)", mi, (ull)moff, (ull)m->freelist,
		                    m->freelist < 2 ? "a meta page" : "past the high-water mark",
		                    (ull)(m->pgid - 1));
	return KT_OK;
}

kt_code kt_bbolt_open(kt_bbolt **out, int fd, uint64_t db_size, kt_error *err)
{
	if (db_size == 0)
		return kt_error_set(err, KT_ECORRUPT, "empty: the file has 0 bytes, not a bbolt database");
	kt_bbolt *db = calloc(1, sizeof(*db));
	if (!db)
		return kt_error_set(err, KT_ENOMEM, "out of memory");
	db->fd = fd;
	db->info.db_size = db_size;
	kt_code c = pick_meta(db, err);
	if (c) {
		kt_bbolt_free(db);
		return c;
	}
	/* n_pages <= db_size / page_size, so the bitmaps are 1/32768 of the file at most. */
	db->bitmap_bytes = (size_t)((db->info.n_pages + 7) / 8);
	db->reach = malloc(db->bitmap_bytes);
	db->freed = malloc(db->bitmap_bytes);
	if (!db->reach || !db->freed) {
		kt_bbolt_free(db);
		return kt_error_set(err, KT_ENOMEM, "out of memory for page bitmaps");
	}
	*out = db;
	return KT_OK;
}

const kt_bbolt_info *kt_bbolt_get_info(const kt_bbolt *db)
{
	return &db->info;
}

void kt_bbolt_free(kt_bbolt *db)
{
	if (!db)
		return;
	for (unsigned i = 0; i < KT_BBOLT_MAX_DEPTH; i++)
		free(db->levels[i].data);
	free(db->reach);
	free(db->freed);
	free(db);
}

/* ------------------------------------------------------------------ */
/* Page runs */

static uint64_t page_off(const kt_bbolt *db, uint64_t pgid)
{
	return pgid * db->info.page_size;
}

/*
 * Read page pgid and its overflow pages into levels[level].  want is the
 * page type expected (a mask of FLAG_*).  Marks the run reachable.
 */
static kt_code load_run(kt_bbolt *db, uint64_t pgid, unsigned level, unsigned want,
                        const ref *from, region *out, kt_error *err)
{
	const kt_bbolt_info *in = &db->info;
	char what[400];  /* filled only on the way to an error: formatting costs */
#define WHAT (fmt_ref(db, from, what, sizeof(what)), what)
	if (pgid >= in->n_pages)
		return kt_error_set(err, KT_ECORRUPT,
		                    "page %llu (%s) is past the high-water mark: the database has "
		                    "%llu pages", (ull)pgid, WHAT, (ull)in->n_pages);
	uint64_t off = page_off(db, pgid);
	if (pgid < 2)
		return kt_error_set(err, KT_ECORRUPT,
		                    "page %llu at byte %llu (%s) is a meta page, expected %s", (ull)pgid,
		                    (ull)off, WHAT, want == FLAG_FREELIST ? "a freelist page"
		                                                          : "a branch or leaf page");
	size_t ps = in->page_size;
	kt_code c = level_reserve(db, level, ps, err);
	if (c)
		return c;
	uint8_t *p = db->levels[level].data;
	if ((c = read_at(db, p, ps, off, pgid, err)))
		return c;
	uint64_t id = le64(p);
	uint16_t flags = le16(p + 8);
	uint32_t overflow = le32(p + 12);
	if (id != pgid)
		return kt_error_set(err, KT_ECORRUPT,
		                    "page %llu at byte %llu (%s): header says page %llu, expected %llu",
		                    (ull)pgid, (ull)off, WHAT, (ull)id, (ull)pgid);
	if (!(flags & want) || (flags & ~(unsigned)want) ||
	    (want == (FLAG_BRANCH | FLAG_LEAF) && flags == want))
		return kt_error_set(err, KT_ECORRUPT,
		                    "page %llu at byte %llu (%s): expected %s, found flags 0x%02x",
		                    (ull)pgid, (ull)off, WHAT,
		                    want == FLAG_FREELIST ? "a freelist page (flags 0x10)"
		                                          : "a branch (0x01) or leaf (0x02) page",
		                    flags);
	if (overflow >= in->n_pages - pgid)
		return kt_error_set(err, KT_ECORRUPT,
		                    "page %llu at byte %llu (%s): %u overflow pages run past the "
		                    "high-water mark of %llu pages", (ull)pgid, (ull)off, WHAT,
		                    overflow, (ull)in->n_pages);
	uint64_t run = ((uint64_t)overflow + 1) * ps;
	if (run > KT_BBOLT_MAX_RUN)
		return kt_error_set(err, KT_ECORRUPT,
		                    "page %llu at byte %llu (%s): a run of %u overflow pages (%llu "
		                    "bytes) is above the limit of %u bytes (etcd never writes a value "
		                    "that large: the page header is probably damaged)", (ull)pgid,
		                    (ull)off, WHAT, overflow, (ull)run, KT_BBOLT_MAX_RUN);
	/* Claim the run before reading it: a second reference is a cycle or a shared page. */
	for (uint64_t i = 0; i <= overflow; i++) {
		uint64_t q = pgid + i;
		if (bit_get(db->reach, q)) {
			if (i == 0)
				return kt_error_set(err, KT_ECORRUPT,
				                    "page %llu at byte %llu (%s) is reached a second time: "
				                    "a cycle or a page shared by two parents", (ull)pgid,
				                    (ull)off, WHAT);
			return kt_error_set(err, KT_ECORRUPT,
			                    "page %llu at byte %llu, overflow %llu of page %llu (%s), is "
			                    "already in use by another page", (ull)q,
			                    (ull)page_off(db, q), (ull)i, (ull)pgid, WHAT);
		}
		if (bit_get(db->freed, q))
			return kt_error_set(err, KT_ECORRUPT,
			                    "page %llu at byte %llu (%s%s) is on the freelist but in use",
			                    (ull)q, (ull)page_off(db, q), i ? "overflow of " : "", WHAT);
		bit_set(db->reach, q);
		db->st.n_reachable++;
	}
	if (overflow) {
		if ((c = level_reserve(db, level, (size_t)run, err)))
			return c;
		p = db->levels[level].data;
		if ((c = read_at(db, p + ps, (size_t)run - ps, off + ps, pgid, err)))
			return c;
	}
	out->p = p;
	out->len = (size_t)run;
	out->pgid = pgid;
	out->off = off;
	out->is_inline = 0;
	return KT_OK;
#undef WHAT
}

/* ------------------------------------------------------------------ */
/* The walk */

static kt_code walk_page(kt_bbolt *db, uint64_t pgid, unsigned level, size_t bdepth,
                         const kt_bbolt_slice *lo, const kt_bbolt_slice *hi, const ref *from,
                         kt_error *err);
static kt_code walk_region(kt_bbolt *db, const region *r, unsigned level, size_t bdepth,
                           const kt_bbolt_slice *lo, const kt_bbolt_slice *hi, kt_error *err);

/* "page 37 at byte 151552" or "inline page in page 37 at byte 151600". */
static void fmt_where(const region *r, char *out, size_t outlen)
{
	if (r->is_inline)
		snprintf(out, outlen, "inline bucket page inside page %llu at byte %llu", (ull)r->pgid,
		         (ull)r->off);
	else
		snprintf(out, outlen, "page %llu at byte %llu", (ull)r->pgid, (ull)r->off);
}

static kt_code elem_fault(const region *r, kt_error *err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static kt_code elem_fault(const region *r, kt_error *err, const char *fmt, ...)
{
	char where[120], what[320];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	fmt_where(r, where, sizeof(where));
	return kt_error_set(err, KT_ECORRUPT, "%s: %s", where, what);
}

/* Enter the bucket whose leaf element value is v (len vlen) at file offset voff. */
static kt_code walk_bucket(kt_bbolt *db, const region *r, unsigned i, const uint8_t *v,
                           size_t vlen, uint64_t voff, unsigned level, size_t bdepth,
                           kt_error *err)
{
	uint64_t root = le64(v);
	if (root != 0) {
		ref from = { UINT64_MAX, 0, bdepth };
		return walk_page(db, root, level + 1, bdepth, NULL, NULL, &from, err);
	}
	if (vlen < BUCKET_HEADER + PAGE_HEADER)
		return elem_fault(r, err, "element %u is an inline bucket of %zu bytes, too short for "
		                  "its page header (needs %u)", i, vlen, BUCKET_HEADER + PAGE_HEADER);
	region in = { v + BUCKET_HEADER, vlen - BUCKET_HEADER, r->pgid, voff + BUCKET_HEADER, 1 };
	uint16_t flags = le16(in.p + 8);
	if (flags != FLAG_LEAF) {
		char b[300];
		fmt_bucket(db, bdepth, b, sizeof(b));
		return elem_fault(&in, err, "%s: expected a leaf page (flags 0x02), found flags 0x%02x",
		                  b, flags);
	}
	return walk_region(db, &in, level + 1, bdepth, NULL, NULL, err);
}

/* Key of element i (bounds already checked by check_elements). */
static kt_bbolt_slice elem_key(const region *r, unsigned i, int leaf)
{
	const uint8_t *e = r->p + PAGE_HEADER + (size_t)i * ELEM_SIZE;
	size_t epos = PAGE_HEADER + (size_t)i * ELEM_SIZE;
	kt_bbolt_slice k;
	k.data = r->p + epos + (leaf ? le32(e + 4) : le32(e));
	k.len = leaf ? le32(e + 8) : le32(e + 4);
	return k;
}

/*
 * Check every element of a page before any is used: positions and sizes
 * inside the page, keys strictly increasing and within [lo, hi) set by the
 * parent.  Structure faults thus come before anything a callback says.
 */
static kt_code check_elements(const region *r, int leaf, unsigned count,
                              const kt_bbolt_slice *lo, const kt_bbolt_slice *hi, kt_error *err)
{
	kt_bbolt_slice prev = { NULL, 0 };
	for (unsigned i = 0; i < count; i++) {
		const uint8_t *e = r->p + PAGE_HEADER + (size_t)i * ELEM_SIZE;
		uint64_t epos = PAGE_HEADER + (uint64_t)i * ELEM_SIZE;
		uint64_t kpos = epos + (leaf ? le32(e + 4) : le32(e));
		uint64_t ksize = leaf ? le32(e + 8) : le32(e + 4);
		uint64_t vsize = leaf ? le32(e + 12) : 0;
		if (kpos + ksize > r->len)
			return elem_fault(r, err, "element %u key extends past the page (ends at %llu, "
			                  "page is %zu bytes)", i, (ull)(kpos + ksize), r->len);
		if (kpos + ksize + vsize > r->len)
			return elem_fault(r, err, "element %u value extends past the page (ends at %llu, "
			                  "page is %zu bytes)", i, (ull)(kpos + ksize + vsize), r->len);
		if (leaf && (le32(e) & LEAF_BUCKET) && vsize < BUCKET_HEADER)
			return elem_fault(r, err, "element %u is a bucket but its value is %llu bytes "
			                  "(a bucket header needs %u)", i, (ull)vsize, BUCKET_HEADER);
		kt_bbolt_slice key = { r->p + kpos, (size_t)ksize };
		if (i > 0 && cmp_slice(prev.data, prev.len, key.data, key.len) >= 0)
			return elem_fault(r, err, "element %u key is not above element %u key (keys must "
			                  "strictly increase)", i, i - 1);
		if (i == 0 && lo && cmp_slice(key.data, key.len, lo->data, lo->len) < 0)
			return elem_fault(r, err, "element 0 key is below the key its parent page holds "
			                  "for it");
		if (hi && cmp_slice(key.data, key.len, hi->data, hi->len) >= 0)
			return elem_fault(r, err, "element %u key is not below the key of the next child "
			                  "in the parent page", i);
		prev = key;
	}
	return KT_OK;
}

static kt_code walk_region(kt_bbolt *db, const region *r, unsigned level, size_t bdepth,
                           const kt_bbolt_slice *lo, const kt_bbolt_slice *hi, kt_error *err)
{
	if (level + 1 > db->st.max_depth)
		db->st.max_depth = level + 1;
	unsigned flags = le16(r->p + 8);
	unsigned count = le16(r->p + 10);
	int leaf = flags == FLAG_LEAF;
	if (PAGE_HEADER + (size_t)count * ELEM_SIZE > r->len)
		return elem_fault(r, err, "%u elements need %zu bytes but the page is %zu bytes", count,
		                  PAGE_HEADER + (size_t)count * ELEM_SIZE, r->len);
	if (!leaf && count == 0)
		return elem_fault(r, err, "branch page without elements");
	kt_code c = check_elements(r, leaf, count, lo, hi, err);
	if (c)
		return c;
	if (leaf)
		db->st.n_leaf += !r->is_inline;
	else
		db->st.n_branch++;

	for (unsigned i = 0; i < count; i++) {
		const uint8_t *e = r->p + PAGE_HEADER + (size_t)i * ELEM_SIZE;
		kt_bbolt_slice key = elem_key(r, i, leaf);
		if (!leaf) {
			/* Child i holds keys in [key i, key i+1); the last one inherits hi. */
			kt_bbolt_slice next;
			const kt_bbolt_slice *chi = hi;
			if (i + 1 < count) {
				next = elem_key(r, i + 1, 0);
				chi = &next;
			}
			ref from = { r->pgid, i, bdepth };
			if ((c = walk_page(db, le64(e + 8), level + 1, bdepth, &key, chi, &from, err)))
				return c;
			continue;
		}
		uint32_t eflags = le32(e);
		size_t vsize = le32(e + 12);
		const uint8_t *val = key.data + key.len;
		uint64_t koff = r->off + (uint64_t)(key.data - r->p);
		db->st.n_entries++;
		kt_bbolt_entry ent = { bdepth, db->path, key, { val, vsize }, 0, r->pgid, koff };
		int is_bucket = (eflags & LEAF_BUCKET) != 0;
		if (is_bucket) {
			ent.flags = KT_BBOLT_BUCKET | (le64(val) == 0 ? KT_BBOLT_INLINE : 0);
			ent.value.data = NULL;
			ent.value.len = 0;
		}
		if (db->fn && (c = db->fn(db->ctx, &ent, err)))
			return c;
		if (!is_bucket)
			continue;
		if (level + 2 >= KT_BBOLT_MAX_DEPTH || bdepth + 1 >= KT_BBOLT_MAX_DEPTH)
			return elem_fault(r, err, "element %u: buckets nested deeper than %u levels", i,
			                  KT_BBOLT_MAX_DEPTH);
		db->st.n_buckets++;
		db->st.n_inline += (ent.flags & KT_BBOLT_INLINE) != 0;
		db->path[bdepth] = key;
		if ((c = walk_bucket(db, r, i, val, vsize, koff + key.len, level, bdepth + 1, err)))
			return c;
	}
	return KT_OK;
}

static kt_code walk_page(kt_bbolt *db, uint64_t pgid, unsigned level, size_t bdepth,
                         const kt_bbolt_slice *lo, const kt_bbolt_slice *hi, const ref *from,
                         kt_error *err)
{
	if (level >= KT_BBOLT_MAX_DEPTH) {
		char what[400];
		fmt_ref(db, from, what, sizeof(what));
		return kt_error_set(err, KT_ECORRUPT,
		                    "page %llu (%s): the tree is deeper than %u levels, which bbolt "
		                    "never builds", (ull)pgid, what, KT_BBOLT_MAX_DEPTH);
	}
	region r;
	kt_code c = load_run(db, pgid, level, FLAG_BRANCH | FLAG_LEAF, from, &r, err);
	if (c)
		return c;
	c = walk_region(db, &r, level, bdepth, lo, hi, err);
	/* Give back a large overflow buffer: only the current path keeps one. */
	level_buf *lb = &db->levels[level];
	if (lb->cap > KEEP_BUF) {
		free(lb->data);
		lb->data = NULL;
		lb->cap = 0;
	}
	return c;
}

static kt_code read_freelist(kt_bbolt *db, kt_error *err)
{
	const kt_bbolt_info *in = &db->info;
	region r;
	kt_code c = load_run(db, in->freelist, 0, FLAG_FREELIST, NULL, &r, err);
	if (c)
		return c;
	uint64_t count = le16(r.p + 10);
	size_t first = PAGE_HEADER;
	if (count == 0xFFFF) {
		/* The u16 count overflowed: the real count is the first u64. */
		count = le64(r.p + PAGE_HEADER);
		first += 8;
	}
	uint64_t room = (r.len - first) / 8;
	if (count > room)
		return kt_error_set(err, KT_ECORRUPT,
		                    "freelist page %llu at byte %llu: declares %llu free page ids but "
		                    "its %zu bytes hold at most %llu", (ull)r.pgid, (ull)r.off,
		                    (ull)count, r.len, (ull)room);
	for (uint64_t i = 0; i < count; i++) {
		uint64_t id = le64(r.p + first + i * 8);
		const char *bad = NULL;
		if (id < 2)
			bad = "a meta page";
		else if (id >= in->n_pages)
			bad = "past the high-water mark";
		else if (bit_get(db->freed, id))
			bad = "listed twice";
		else if (bit_get(db->reach, id))
			bad = "the freelist itself";
		if (bad)
			return kt_error_set(err, KT_ECORRUPT,
			                    "freelist page %llu at byte %llu: entry %llu is page %llu, %s",
			                    (ull)r.pgid, (ull)r.off, (ull)i, (ull)id, bad);
		bit_set(db->freed, id);
	}
	db->st.n_free = count;
	return KT_OK;
}

kt_code kt_bbolt_walk(kt_bbolt *db, kt_bbolt_visit_fn fn, void *ctx, kt_bbolt_stats *stats,
                      kt_error *err)
{
	const kt_bbolt_info *in = &db->info;
	memset(db->reach, 0, db->bitmap_bytes);
	memset(db->freed, 0, db->bitmap_bytes);
	memset(&db->st, 0, sizeof(db->st));
	db->fn = fn;
	db->ctx = ctx;
	bit_set(db->reach, 0);
	bit_set(db->reach, 1);
	db->st.n_reachable = 2;

	kt_code c = KT_OK;
	if (in->freelist != KT_BBOLT_NO_FREELIST)
		c = read_freelist(db, err);
	if (!c) {
		ref from = { UINT64_MAX, 0, 0 };
		c = walk_page(db, in->root, 0, 0, NULL, NULL, &from, err);
	}
	if (!c && in->freelist != KT_BBOLT_NO_FREELIST) {
		for (uint64_t p = 2; p < in->n_pages; p++) {
			if (!bit_get(db->reach, p) && !bit_get(db->freed, p)) {
				c = kt_error_set(err, KT_ECORRUPT,
				                 "page %llu at byte %llu is neither reachable nor on the "
				                 "freelist (a leaked page)", (ull)p, (ull)page_off(db, p));
				break;
			}
		}
	} else if (!c) {
		/* No freelist synced: bbolt rebuilds it as every page not reached. */
		db->st.n_free = in->n_pages - db->st.n_reachable;
	}
	if (stats)
		*stats = db->st;
	return c;
}
