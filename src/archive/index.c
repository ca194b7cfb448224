/*
 * index.c - the blob index every operation consults: blob id -> where the
 * blob lives (pack number, offset, lengths, type, compression), with
 * resident memory bounded whatever the repository size
 * (docs/index-memory.md).
 *
 * Two tiers:
 *   table  open addressing on the id's first 8 bytes (ids are keyed hashes,
 *          already uniform), 52 bytes a slot, load <= 0.7, at most x->max
 *          entries.  Small repositories live here only, as before.
 *   runs   when the table is full its entries are sorted by id and written
 *          as a run into an unlinked 0600 temp file in $TMPDIR: 4 KiB pages
 *          of KT_IDX_PER_PAGE 52-byte records; in memory only the first 8
 *          id bytes of every page (the fan-out, ~0.1 byte a blob).  A lookup
 *          binary-searches the fan-out and preads one page: the page cache
 *          holds the file, not our resident memory (never mmapped: mapped
 *          pages count as RSS).
 *
 * Invariants:
 *   1. once kt_archive_load_index returned an id is in one place only
 *      (the table or one run): inserting looks in every tier first.  While
 *      loading, inserts look in the table only (a lookup per run for every
 *      entry would cost a pread each), so a blob listed by two index files
 *      may sit twice; the load ends with one merge of everything, which
 *      keeps the oldest copy (the first index file's, as the table did).
 *   2. runs are oldest first; a new run is merged (k-way, one pass) with
 *      the newer runs that are not bigger than the runs after them
 *      combined, as a binary counter carries: at most log2(n / max) + 1
 *      runs, each entry rewritten about log2(n / max) times.
 *   3. ordinals (kt_loc.ord): run r's record i is runs[r].base + i, table
 *      slot s is n_spilled + s; all below kt_archive_index_span.  They hold
 *      until the next insert (check and prune keep bitmaps by ordinal and
 *      insert nothing).
 *   4. lookups may run on many threads at once (stack page buffers, pread)
 *      while nothing inserts; inserting is single-threaded.
 * A temp file that cannot be written (disk full) leaves the entries in the
 * table, which then grows as before: slower to fail than to lose an entry.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive_int.h"

#define PAGE 4096
#define PER_PAGE (PAGE / sizeof(kt_ient))
#define IO_PAGES 16                /* pages per read or write while merging */
#define DEFAULT_MAX 45875          /* table entries: 65536 slots, 3.3 MiB */
#define MAX_RUNS 64

_Static_assert(sizeof(kt_ient) == 52, "kt_ient is the 52-byte record of docs/index-memory.md");

static uint64_t key_of(const uint8_t id[32])
{
	uint64_t k = 0;
	for (int i = 0; i < 8; i++)
		k = k << 8 | id[i];
	return k;
}

static size_t slot(const kt_index *x, const uint8_t id[32])
{
	uint64_t h;
	memcpy(&h, id, sizeof(h));
	return (size_t)(h & (x->cap - 1));
}

static int cmp_ient(const void *p, const void *q)
{
	return memcmp(((const kt_ient *)p)->id, ((const kt_ient *)q)->id, 32);
}

static size_t index_max(kt_index *x)
{
	if (!x->max) {
		/* For tests (docs/index-memory.md): a tiny table forces the runs. */
		x->max = kt_archive_knob("KT_INDEX_MEM_MAX", DEFAULT_MAX, 16, (1u << 31) - 1);
	}
	return x->max;
}

static void to_loc(const kt_ient *e, uint64_t ord, kt_loc *out)
{
	memcpy(out->id, e->id, 32);
	out->pack = e->pack;
	out->offset = e->offset;
	out->length = e->length;
	out->raw_length = e->raw_length;
	out->type = e->type;
	out->compression = e->compression;
	out->ord = ord;
}

/* ------------------------------------------------------------------ */
/* Temp files: written whole, then only read. */

int kt_archive_temp_open(void)
{
	const char *dir = getenv("TMPDIR");
	if (!dir || !*dir)
		dir = "/tmp";
	int fd = open(dir, O_TMPFILE | O_RDWR | O_EXCL | O_CLOEXEC, 0600);
	if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL))
		return fd;
	char path[4096];
	snprintf(path, sizeof(path), "%s/kontinuity-index-XXXXXX", dir);
	fd = mkstemp(path);
	if (fd >= 0)
		unlink(path);
	return fd;
}

int kt_archive_pwrite_all(int fd, const void *buf, size_t n, uint64_t off)
{
	const char *p = buf;
	while (n) {
		ssize_t w = pwrite(fd, p, n, (off_t)off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

int kt_archive_pread_all(int fd, void *buf, size_t n, uint64_t off)
{
	char *p = buf;
	while (n) {
		ssize_t r = pread(fd, p, n, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

size_t kt_archive_knob(const char *name, size_t dflt, size_t lo, size_t hi)
{
	const char *v = getenv(name);
	char *end;
	unsigned long long m = v && *v ? strtoull(v, &end, 10) : 0;
	return v && *v && !*end && m >= lo && m <= hi ? (size_t)m : dflt;
}

/* Writes records in id order into a new run, IO_PAGES pages at a time. */
typedef struct run_writer {
	kt_irun run;
	uint8_t *buf;         /* IO_PAGES pages */
	size_t page;          /* the page being filled, in buf */
	size_t in_page;       /* records in it */
	size_t cap_pages;     /* of run.first */
	int failed;
} run_writer;

static int writer_start(run_writer *w)
{
	memset(w, 0, sizeof(*w));
	w->run.fd = kt_archive_temp_open();
	if (w->run.fd < 0)
		return -1;
	w->buf = kt_xcalloc(IO_PAGES, PAGE);
	return 0;
}

static void writer_flush(run_writer *w, size_t pages)
{
	off_t off = (off_t)(w->run.n_pages - pages) * PAGE;
	if (!w->failed && kt_archive_pwrite_all(w->run.fd, w->buf, pages * PAGE, (uint64_t)off))
		w->failed = 1;
	memset(w->buf, 0, IO_PAGES * PAGE);
	w->page = 0;
}

static void writer_add(run_writer *w, const kt_ient *e)
{
	if (!w->in_page) {
		if (w->run.n_pages == w->cap_pages) {
			w->cap_pages = w->cap_pages ? w->cap_pages * 2 : 64;
			w->run.first = realloc(w->run.first, w->cap_pages * sizeof(uint64_t));
			if (!w->run.first)
				abort();
		}
		w->run.first[w->run.n_pages++] = key_of(e->id);
	}
	kt_ient *rec = (kt_ient *)(w->buf + w->page * PAGE) + w->in_page;
	*rec = *e;
	rec->used = 1;
	w->run.n++;
	if (++w->in_page == PER_PAGE) {
		w->in_page = 0;
		if (++w->page == IO_PAGES)
			writer_flush(w, IO_PAGES);
	}
}

/* The finished run in *out; -1 (nothing kept) when a write failed. */
static int writer_finish(run_writer *w, kt_irun *out)
{
	size_t pages = w->page + (w->in_page ? 1 : 0);
	if (pages)
		writer_flush(w, pages);
	free(w->buf);
	if (w->failed) {
		close(w->run.fd);
		free(w->run.first);
		return -1;
	}
	*out = w->run;
	return 0;
}

static void run_release(kt_irun *r)
{
	if (r->fd >= 0)
		close(r->fd);
	free(r->first);
	memset(r, 0, sizeof(*r));
	r->fd = -1;
}

/* Reads a run's records in order, IO_PAGES pages at a time. */
typedef struct run_cursor {
	const kt_irun *run;
	uint8_t *buf;
	uint64_t next_page;   /* the first page not read yet */
	size_t pages;         /* read into buf */
	size_t page, rec;     /* position in buf */
	uint64_t left;        /* records not yet passed */
	const kt_ient *cur;   /* NULL at the end (or on a read error: failed) */
	int started, failed;
} run_cursor;

static void cursor_next(run_cursor *c)
{
	if (!c->left) {
		c->cur = NULL;
		return;
	}
	if (c->started && ++c->rec == PER_PAGE) {
		c->rec = 0;
		c->page++;
	}
	c->started = 1;
	if (c->page == c->pages) {
		uint64_t left_pages = c->run->n_pages - c->next_page;
		c->pages = left_pages < IO_PAGES ? (size_t)left_pages : IO_PAGES;
		if (!c->pages ||
		    kt_archive_pread_all(c->run->fd, c->buf, c->pages * PAGE, c->next_page * PAGE)) {
			c->failed = 1;
			c->cur = NULL;
			c->left = 0;
			return;
		}
		c->next_page += c->pages;
		c->page = 0;
	}
	c->cur = (const kt_ient *)(c->buf + c->page * PAGE) + c->rec;
	c->left--;
}

static void cursor_start(run_cursor *c, const kt_irun *r)
{
	memset(c, 0, sizeof(*c));
	c->run = r;
	c->buf = kt_xcalloc(IO_PAGES, PAGE);
	c->left = r->n;
	cursor_next(c);
}

/* ------------------------------------------------------------------ */
/* Runs: spill and merge. */

static void set_bases(kt_index *x)
{
	uint64_t base = 0;
	for (size_t r = 0; r < x->n_runs; r++) {
		x->runs[r].base = base;
		base += x->runs[r].n;
	}
	x->n_spilled = base;
}

/*
 * Merge runs[from..] into one (k-way), keeping the oldest copy of an id
 * and dropping the records of pack drop (-1: none; the id set's records
 * all have pack UINT32_MAX).  -1 when the
 * new file cannot be written (the runs stay as they were).
 */
static int merge(kt_index *x, size_t from, int64_t drop)
{
	size_t k = x->n_runs - from;
	run_cursor *cur = kt_xcalloc(k ? k : 1, sizeof(*cur));
	for (size_t i = 0; i < k; i++)
		cursor_start(&cur[i], &x->runs[from + i]);
	run_writer w;
	int rc = writer_start(&w);
	int failed = rc;
	while (!failed) {
		size_t best = k;
		for (size_t i = 0; i < k; i++)   /* ties: the older run wins */
			if (cur[i].cur && (best == k || cmp_ient(cur[i].cur, cur[best].cur) < 0))
				best = i;
		if (best == k)
			break;
		kt_ient e = *cur[best].cur;
		for (size_t i = 0; i < k; i++)
			while (cur[i].cur && !cmp_ient(cur[i].cur, &e))
				cursor_next(&cur[i]);
		if ((int64_t)e.pack != drop)
			writer_add(&w, &e);
	}
	for (size_t i = 0; i < k; i++) {
		failed |= cur[i].failed;
		free(cur[i].buf);
	}
	free(cur);
	kt_irun out;
	if (rc)
		return -1;
	if (writer_finish(&w, &out))
		return -1;
	if (failed) {
		run_release(&out);
		return -1;
	}
	for (size_t i = from; i < x->n_runs; i++)
		run_release(&x->runs[i]);
	x->runs[from] = out;
	x->n_runs = from + 1;
	set_bases(x);
	return 0;
}

/* After a new run: merge it with the runs before it not bigger than what
 * follows them (invariant 2). */
static void settle(kt_index *x)
{
	size_t j = x->n_runs - 1;
	uint64_t sum = x->runs[j].n;
	while (j > 0 && x->runs[j - 1].n <= sum) {
		j--;
		sum += x->runs[j].n;
	}
	if (j < x->n_runs - 1)
		merge(x, j, -1);
}

static void table_put(kt_index *x, const kt_ient *e)
{
	size_t i = slot(x, e->id);
	while (x->tab[i].used)
		i = (i + 1) & (x->cap - 1);
	x->tab[i] = *e;
	x->tab[i].used = 1;
	x->n++;
}

/* The table's entries, sorted, become the newest run; the table is empty
 * after (0), or unchanged when the run cannot be written (-1). */
static int spill(kt_index *x, int settle_after)
{
	if (!x->n)
		return 0;
	if (x->n_runs == MAX_RUNS && merge(x, 0, -1))
		return -1;
	run_writer w;
	if (writer_start(&w))
		return -1;
	size_t k = 0;
	for (size_t i = 0; i < x->cap; i++)   /* compact in place, then sort */
		if (x->tab[i].used)
			x->tab[k++] = x->tab[i];
	qsort(x->tab, k, sizeof(kt_ient), cmp_ient);
	for (size_t i = 0; i < k; i++)
		writer_add(&w, &x->tab[i]);
	kt_irun out;
	int rc = writer_finish(&w, &out);
	if (rc) {   /* back into the table, as they were */
		kt_ient *keep = kt_xcalloc(k ? k : 1, sizeof(kt_ient));
		memcpy(keep, x->tab, k * sizeof(kt_ient));
		memset(x->tab, 0, x->cap * sizeof(kt_ient));
		x->n = 0;
		for (size_t i = 0; i < k; i++)
			table_put(x, &keep[i]);
		free(keep);
		x->spill_failed = 1;
		return -1;
	}
	memset(x->tab, 0, x->cap * sizeof(kt_ient));
	x->n = 0;
	if (!x->runs)
		x->runs = kt_xcalloc(MAX_RUNS, sizeof(kt_irun));
	x->runs[x->n_runs++] = out;
	set_bases(x);
	if (settle_after)
		settle(x);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Lookups. */

/* Record of id in run r (its position in *pos); 0 when absent. */
static int run_find(const kt_irun *r, const uint8_t id[32], kt_ient *out, uint64_t *pos)
{
	if (!r->n_pages)
		return 0;
	uint64_t key = key_of(id);
	size_t lo = 0, hi = r->n_pages;   /* pages with first < key: [0, lo) */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (r->first[mid] < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	/* From the page before the first page starting at or after key, on
	 * through the pages starting with key itself (8-byte prefixes that
	 * repeat: rare). */
	uint8_t page[PAGE] __attribute__((aligned(8)));
	for (size_t p = lo ? lo - 1 : 0; p < r->n_pages; p++) {
		if (p >= lo && r->first[p] > key)
			break;
		if (kt_archive_pread_all(r->fd, page, PAGE, (uint64_t)p * PAGE))
			return 0;
		uint64_t in = p + 1 < r->n_pages ? PER_PAGE : r->n - (uint64_t)p * PER_PAGE;
		const kt_ient *e = (const kt_ient *)page;
		size_t a = 0, b = (size_t)in;
		while (a < b) {
			size_t m = a + (b - a) / 2;
			int d = memcmp(e[m].id, id, 32);
			if (!d) {
				*out = e[m];
				*pos = (uint64_t)p * PER_PAGE + m;
				return 1;
			}
			if (d < 0)
				a = m + 1;
			else
				b = m;
		}
		if (a < in)   /* a bigger id on this page: it is not further on */
			return 0;
	}
	return 0;
}

static const kt_ient *table_find(const kt_index *x, const uint8_t id[32], size_t *at)
{
	if (!x->cap)
		return NULL;
	for (size_t i = slot(x, id);; i = (i + 1) & (x->cap - 1)) {
		if (!x->tab[i].used)
			return NULL;
		if (!memcmp(x->tab[i].id, id, 32)) {
			*at = i;
			return &x->tab[i];
		}
	}
}

static int find(const kt_index *x, const uint8_t id[32], int runs_too, kt_loc *out)
{
	size_t at;
	const kt_ient *e = table_find(x, id, &at);
	if (e) {
		if (out)
			to_loc(e, x->n_spilled + at, out);
		return 1;
	}
	for (size_t r = 0; runs_too && r < x->n_runs; r++) {
		kt_ient rec;
		uint64_t pos;
		if (run_find(&x->runs[r], id, &rec, &pos)) {
			if (out)
				to_loc(&rec, x->runs[r].base + pos, out);
			return 1;
		}
	}
	return 0;
}

int kt_archive_find(kt_archive *a, const uint8_t id[32], kt_loc *out)
{
	return find(&a->idx, id, 1, out);
}

uint64_t kt_archive_index_span(const kt_archive *a)
{
	return a->idx.n_spilled + a->idx.cap;
}

uint64_t kt_archive_index_count(const kt_archive *a)
{
	return a->idx.n_spilled + a->idx.n;
}

kt_code kt_archive_index_each(kt_archive *a, kt_loc_fn fn, void *ctx, kt_error *err)
{
	kt_index *x = &a->idx;
	kt_loc l;
	for (size_t r = 0; r < x->n_runs; r++) {
		run_cursor c;
		cursor_start(&c, &x->runs[r]);
		for (uint64_t i = 0; c.cur; i++, cursor_next(&c)) {
			to_loc(c.cur, x->runs[r].base + i, &l);
			fn(ctx, &l);
		}
		free(c.buf);
		if (c.failed)
			return kt_error_sys(err, KT_EIO, errno, "cannot read the index's temp file (check "
			                    "the free space and health of $TMPDIR)");
	}
	for (size_t i = 0; i < x->cap; i++)
		if (x->tab[i].used) {
			to_loc(&x->tab[i], x->n_spilled + i, &l);
			fn(ctx, &l);
		}
	return KT_OK;
}

/* ------------------------------------------------------------------ */
/* Inserts. */

uint32_t kt_archive_pack_no(kt_archive *a, const uint8_t pack_id[32])
{
	/* Packs arrive in runs (a whole index pack at a time): check the last. */
	if (a->n_packs && !memcmp(a->packs[a->n_packs - 1], pack_id, 32))
		return (uint32_t)(a->n_packs - 1);
	if (a->n_packs == a->cap_packs) {
		a->cap_packs = a->cap_packs ? a->cap_packs * 2 : 256;
		a->packs = realloc(a->packs, a->cap_packs * 32);
		if (!a->packs)
			abort();
	}
	memcpy(a->packs[a->n_packs], pack_id, 32);
	return (uint32_t)a->n_packs++;
}

static void grow(kt_index *x)
{
	size_t old_cap = x->cap;
	kt_ient *old = x->tab;
	x->cap = old_cap ? old_cap * 2 : 4096;
	x->tab = kt_xcalloc(x->cap, sizeof(kt_ient));
	x->n = 0;
	for (size_t i = 0; i < old_cap; i++)
		if (old[i].used)
			table_put(x, &old[i]);
	free(old);
}

/* 1 when e's id is in x already; else adds it and returns 0.  look: 0 the
 * caller looked already, 1 the table only (loading), 2 everywhere. */
static int add(kt_index *x, uint32_t no, const kt_repo_entry *e, int look)
{
	if (look && find(x, e->id, look == 2, NULL))
		return 1;
	if (x->n >= index_max(x) && !x->spill_failed)
		spill(x, 1);
	if ((x->n + 1) * 10 > x->cap * 7)
		grow(x);
	kt_ient rec;
	memset(&rec, 0, sizeof(rec));
	memcpy(rec.id, e->id, 32);
	rec.pack = no;
	rec.offset = e->offset;
	rec.length = e->length;
	rec.raw_length = e->raw_length;
	rec.type = e->type;
	rec.compression = e->compression;
	table_put(x, &rec);
	return 0;
}

int kt_index_put(kt_index *x, const uint8_t id[32])
{
	kt_repo_entry e;
	memset(&e, 0, sizeof(e));
	memcpy(e.id, id, 32);
	return add(x, UINT32_MAX, &e, 2);
}

void kt_archive_insert_at(kt_archive *a, uint32_t no, const kt_repo_entry *e)
{
	kt_archive_lock_tick(a);   /* long backups keep their lock fresh */
	add(&a->idx, no, e, 2);
}

void kt_archive_insert(kt_archive *a, const uint8_t pack_id[32], const kt_repo_entry *e)
{
	if (kt_archive_find(a, e->id, NULL))   /* once: a pread per run */
		return;
	kt_archive_lock_tick(a);
	add(&a->idx, kt_archive_pack_no(a, pack_id), e, 0);
}

void kt_archive_forget_pending(kt_archive *a, uint32_t no)
{
	kt_index *x = &a->idx;
	size_t old_cap = x->cap;
	kt_ient *old = x->tab;
	x->tab = kt_xcalloc(old_cap ? old_cap : 1, sizeof(kt_ient));
	x->n = 0;
	for (size_t i = 0; i < old_cap; i++)
		if (old[i].used && old[i].pack != no)
			table_put(x, &old[i]);
	free(old);
	if (x->n_runs)
		merge(x, 0, no);
}

void kt_archive_index_release(kt_archive *a)
{
	kt_index_release(&a->idx);
}

void kt_index_release(kt_index *x)
{
	for (size_t r = 0; r < x->n_runs; r++)
		run_release(&x->runs[r]);
	free(x->runs);
	free(x->tab);
	size_t max = x->max;
	memset(x, 0, sizeof(*x));
	x->max = max;
}

/* ------------------------------------------------------------------ */
/* Loading the index files. */

kt_code kt_archive_load_index(kt_archive *a, kt_error *err)
{
	char **names;
	size_t n;
	kt_code c = kt_archive_list_names(a, "index/", &names, &n, err);
	kt_buf raw;
	kt_buf_init(&raw, KT_REPO_MAX_SEALED + KT_REPO_SEAL_OVERHEAD);
	for (size_t i = 0; !c && i < n; i++) {
		kt_repo_index_pack *packs;
		size_t np;
		if ((c = kt_archive_get_checked(a, names[i], &raw, err)) ||
		    (c = kt_repo_index_decode(&a->keys, (const uint8_t *)raw.data, raw.len, &packs, &np,
		                              err))) {
			kt_error_wrap(err, "index '%s'", names[i]);
			break;
		}
		for (size_t p = 0; p < np; p++) {
			/* A pack joins a->packs with its first blob not known yet (as
			 * kt_archive_insert); known: in the table (invariant 1). */
			int64_t no = -1;
			for (size_t j = 0; j < packs[p].n; j++) {
				if (find(&a->idx, packs[p].entries[j].id, 0, NULL))
					continue;
				if (no < 0)
					no = kt_archive_pack_no(a, packs[p].pack_id);
				add(&a->idx, (uint32_t)no, &packs[p].entries[j], 0);
			}
		}
		kt_repo_index_free(packs, np);
	}
	kt_buf_release(&raw);
	kt_archive_names_free(names, n);
	/* Invariant 1: one merge of everything drops the copies. */
	kt_index *x = &a->idx;
	if (!c && x->n_runs && (spill(x, 0) || (x->n_runs > 1 && merge(x, 0, -1))))
		c = kt_error_sys(err, KT_EIO, errno, "cannot write the index's temp file in $TMPDIR "
		                 "(check its free space, or point TMPDIR elsewhere)");
	return c;
}
