/*
 * store_suite.c - the storage conformance suite (see store_suite.h).  Each
 * case is one titled function; a failed check prints file:line and what
 * was seen, and the case is reported FAIL.  Cases run in order on one
 * store that starts empty; each uses its own name prefix.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store_suite.h"

#define MIB (1ull << 20)

typedef struct suite {
	kt_store *s;
	const store_suite_opts *o;
	FILE *log;
	int case_failed;
} suite;

#define EXPECT(t, cond, ...) do { if (!(cond)) { (t)->case_failed = 1; \
	fprintf((t)->log, "  %s:%d: expected %s: ", __FILE__, __LINE__, #cond); \
	fprintf((t)->log, __VA_ARGS__); fputc('\n', (t)->log); } } while (0)
/* rc must be code; shows the error message otherwise. */
#define EXPECT_RC(t, rc, code, e) EXPECT(t, (rc) == (code), "%s, got %s (%s)", \
	kt_code_name(code), kt_code_name(rc), (e).msg)

static uint64_t next_rand(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

static void fill(char *p, size_t n, uint64_t seed)
{
	uint64_t x = seed * 2654435761u + 88172645463325252ull;
	for (size_t i = 0; i < n; i++)
		p[i] = (char)(next_rand(&x) >> 24);
}

static kt_code put_str(suite *t, const char *name, const char *s, kt_error *e)
{
	return kt_store_put(t->s, name, s, strlen(s), e);
}

/* get whole name and compare with want (n bytes). */
static void expect_content(suite *t, const char *name, const void *want, size_t n, int line)
{
	kt_buf b;
	kt_error e;
	kt_buf_init(&b, 64 * MIB);
	kt_error_clear(&e);
	kt_code rc = kt_store_get(t->s, name, 0, 0, &b, &e);
	if (rc != KT_OK || b.len != n || memcmp(b.data, want, n)) {
		t->case_failed = 1;
		fprintf(t->log, "  line %d: '%s' reads back wrong: %s, %zu bytes (want %zu) %s\n",
		        line, name, kt_code_name(rc), b.len, n, e.msg);
	}
	kt_buf_release(&b);
}
#define EXPECT_CONTENT(t, name, want, n) expect_content(t, name, want, n, __LINE__)

/* ------------------------------------------------------------------ */
/* Listing helpers */

typedef struct listing {
	char **names;
	uint64_t *sizes;
	size_t n, cap;
	size_t stop_after;   /* 0 = never; else return KT_ECANCELED after that many */
} listing;

static kt_code collect(void *ctx, const kt_store_entry *e, kt_error *err)
{
	listing *l = ctx;
	if (l->stop_after && l->n == l->stop_after)
		return kt_error_set(err, KT_ECANCELED, "stopped by the test");
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 64;
		l->names = realloc(l->names, l->cap * sizeof(*l->names));
		l->sizes = realloc(l->sizes, l->cap * sizeof(*l->sizes));
	}
	l->names[l->n] = kt_xstrdup(e->name);
	l->sizes[l->n] = e->size;
	l->n++;
	return KT_OK;
}

static void listing_release(listing *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->names[i]);
	free(l->names);
	free(l->sizes);
	memset(l, 0, sizeof(*l));
}

static kt_code list_into(suite *t, const char *prefix, listing *l, kt_error *e)
{
	listing_release(l);
	return kt_store_list(t->s, prefix, collect, l, e);
}

static int sorted_unique(const listing *l)
{
	for (size_t i = 1; i < l->n; i++)
		if (strcmp(l->names[i - 1], l->names[i]) >= 0)
			return 0;
	return 1;
}

/* ------------------------------------------------------------------ */
/* Cases */

static void case_empty_store(suite *t)
{
	listing l = { 0 };
	kt_error e;
	kt_error_clear(&e);
	kt_code rc = list_into(t, "", &l, &e);
	EXPECT_RC(t, rc, KT_OK, e);
	EXPECT(t, l.n == 0, "an empty store to start with, found %zu objects (first '%s')", l.n,
	       l.n ? l.names[0] : "");
	listing_release(&l);
}

static void case_bad_names(suite *t)
{
	static const char *const bad[] = {
		"", "/abs", "trailing/", "a//b", "..", ".", "../up", "a/../b", "a/./b", "a/..",
		"sp ace", "tab\tx", "nl\n", "back\\slash", "colon:x", "q?x", "pct%41", "star*",
		"tilde~tmp", "caf\xc3\xa9", "semi;x", NULL,
	};
	char longname[KT_STORE_NAME_MAX + 2], longseg[KT_STORE_SEGMENT_MAX + 2];
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	for (size_t i = 99; i < sizeof(longname) - 1; i += 100)
		longname[i] = '/';   /* short segments: only the total length is wrong */
	memset(longseg, 'b', sizeof(longseg) - 1);
	longseg[sizeof(longseg) - 1] = '\0';
	const char *names[64];
	size_t nn = 0;
	for (size_t i = 0; bad[i]; i++)
		names[nn++] = bad[i];
	names[nn++] = longname;
	names[nn++] = longseg;
	kt_buf b;
	kt_buf_init(&b, MIB);
	for (size_t i = 0; i < nn; i++) {
		const char *name = names[i];
		kt_error e;
		uint64_t size;
		kt_error_clear(&e);
		kt_code rc = kt_store_put(t->s, name, "x", 1, &e);
		EXPECT(t, rc == KT_EUSAGE, "put of bad name '%s' refused, got %s", name,
		       kt_code_name(rc));
		EXPECT(t, strstr(e.msg, "not a valid object name") != NULL, "message '%s'", e.msg);
		EXPECT(t, kt_store_get(t->s, name, 0, 0, &b, &e) == KT_EUSAGE, "get of '%s'", name);
		EXPECT(t, kt_store_stat(t->s, name, &size, &e) == KT_EUSAGE, "stat of '%s'", name);
		EXPECT(t, kt_store_remove(t->s, name, &e) == KT_EUSAGE, "remove of '%s'", name);
	}
	{
		/* The segment one byte too long vs. exactly at the limit. */
		char seg[KT_STORE_SEGMENT_MAX + 1];
		memset(seg, 'c', KT_STORE_SEGMENT_MAX);
		seg[KT_STORE_SEGMENT_MAX] = '\0';
		kt_error e;
		EXPECT(t, kt_store_check_name(seg, &e) == KT_OK, "a %d-byte segment is valid: %s",
		       KT_STORE_SEGMENT_MAX, e.msg);
	}
	static const char *const bad_prefix[] = { "/a", "a//", "../", "a/../b", "a b", "x~", "a/.",
	                                          "a/..", NULL };
	static const char *const good_prefix[] = { "", "a", "a/", "a/.x", "nope/b.", "z/..y", NULL };
	listing l = { 0 };
	for (int i = 0; bad_prefix[i]; i++) {
		kt_error e;
		kt_code rc = list_into(t, bad_prefix[i], &l, &e);
		EXPECT(t, rc == KT_EUSAGE, "list of bad prefix '%s' refused, got %s", bad_prefix[i],
		       kt_code_name(rc));
	}
	for (int i = 0; good_prefix[i]; i++) {
		kt_error e;
		kt_error_clear(&e);
		kt_code rc = list_into(t, good_prefix[i], &l, &e);
		EXPECT(t, rc == KT_OK && l.n == 0, "list of prefix '%s' is empty, got %s %zu (%s)",
		       good_prefix[i], kt_code_name(rc), l.n, e.msg);
	}
	listing_release(&l);
	kt_buf_release(&b);
}

static void case_missing(suite *t)
{
	kt_buf b;
	kt_error e;
	uint64_t size = 77;
	kt_buf_init(&b, MIB);
	kt_code rc = kt_store_get(t->s, "missing/obj", 0, 0, &b, &e);
	EXPECT_RC(t, rc, KT_ENOTFOUND, e);
	EXPECT(t, strstr(e.msg, "missing/obj") != NULL, "the message names the object: '%s'",
	       e.msg);
	rc = kt_store_get(t->s, "missing/obj", 10, 5, &b, &e);
	EXPECT_RC(t, rc, KT_ENOTFOUND, e);
	rc = kt_store_stat(t->s, "missing/obj", &size, &e);
	EXPECT_RC(t, rc, KT_ENOTFOUND, e);
	EXPECT(t, size == 77, "size untouched on failure, got %llu", (unsigned long long)size);
	kt_error_clear(&e);
	rc = kt_store_remove(t->s, "missing/obj", &e);
	EXPECT_RC(t, rc, KT_OK, e);
	rc = kt_store_remove(t->s, "never/was/here", &e);
	EXPECT_RC(t, rc, KT_OK, e);
	kt_buf_release(&b);
}

static void case_put_get(suite *t)
{
	kt_buf b;
	kt_error e;
	uint64_t size = 0;
	kt_buf_init(&b, MIB);
	kt_error_clear(&e);
	kt_code rc = put_str(t, "small/hello", "hello, world\n", &e);
	EXPECT_RC(t, rc, KT_OK, e);
	EXPECT_CONTENT(t, "small/hello", "hello, world\n", 13);
	rc = kt_store_stat(t->s, "small/hello", &size, &e);
	EXPECT_RC(t, rc, KT_OK, e);
	EXPECT(t, size == 13, "size 13, got %llu", (unsigned long long)size);
	/* get resets the buffer first */
	kt_buf_adds(&b, "stale bytes", NULL);
	rc = kt_store_get(t->s, "small/hello", 7, 5, &b, &e);
	EXPECT_RC(t, rc, KT_OK, e);
	EXPECT(t, b.len == 5 && !memcmp(b.data, "world", 5), "'world', got '%s'", b.data);
	/* Empty object. */
	rc = kt_store_put(t->s, "small/empty", NULL, 0, &e);
	EXPECT_RC(t, rc, KT_OK, e);
	rc = kt_store_stat(t->s, "small/empty", &size, &e);
	EXPECT(t, rc == KT_OK && size == 0, "empty object has size 0: %s %llu", e.msg,
	       (unsigned long long)size);
	EXPECT_CONTENT(t, "small/empty", "", 0);
	rc = kt_store_get(t->s, "small/empty", 0, 1, &b, &e);
	EXPECT_RC(t, rc, KT_ECORRUPT, e);
	/* Binary bytes, every value. */
	char bin[256];
	for (int i = 0; i < 256; i++)
		bin[i] = (char)i;
	rc = kt_store_put(t->s, "small/binary", bin, sizeof(bin), &e);
	EXPECT_RC(t, rc, KT_OK, e);
	EXPECT_CONTENT(t, "small/binary", bin, sizeof(bin));
	/* Big objects from a page-aligned buffer (the local store writes the
	 * aligned part with O_DIRECT, the tail as usual) and from one that is
	 * not: the same bytes either way. */
	size_t big_n = 3 * MIB + 123;
	char *big = aligned_alloc(4096, 4 * MIB);
	fill(big, big_n + 1, 7);
	rc = kt_store_put(t->s, "big/aligned", big, big_n, &e);
	EXPECT_RC(t, rc, KT_OK, e);
	EXPECT_CONTENT(t, "big/aligned", big, big_n);
	rc = kt_store_put(t->s, "big/unaligned", big + 1, big_n, &e);
	EXPECT_RC(t, rc, KT_OK, e);
	EXPECT_CONTENT(t, "big/unaligned", big + 1, big_n);
	free(big);
	/* Every allowed character, and dots inside segments. */
	const char *odd = "chars/AZaz09._-/.hidden/x..y/-lead_.tail.";
	rc = put_str(t, odd, "odd", &e);
	EXPECT_RC(t, rc, KT_OK, e);
	EXPECT_CONTENT(t, odd, "odd", 3);
	kt_buf_release(&b);
}

static void case_write_once(suite *t)
{
	kt_error e;
	kt_error_clear(&e);
	kt_code rc = put_str(t, "once/x", "first", &e);
	EXPECT_RC(t, rc, KT_OK, e);
	rc = put_str(t, "once/x", "second, longer", &e);
	EXPECT_RC(t, rc, KT_EEXIST, e);
	EXPECT(t, strstr(e.msg, "once/x") != NULL, "the message names the object: '%s'", e.msg);
	EXPECT_CONTENT(t, "once/x", "first", 5);
	rc = put_str(t, "once/x", "", &e);
	EXPECT_RC(t, rc, KT_EEXIST, e);
	rc = put_str(t, "once/x", "first", &e);
	if (t->o->lenient_identical)
		EXPECT(t, rc == KT_EEXIST || rc == KT_OK, "EEXIST or OK, got %s (%s)",
		       kt_code_name(rc), e.msg);
	else
		EXPECT_RC(t, rc, KT_EEXIST, e);
	EXPECT_CONTENT(t, "once/x", "first", 5);
}

static void case_ranges(suite *t)
{
	enum { N = 10000 };
	char *data = kt_xmalloc(N);
	kt_buf b;
	kt_error e;
	fill(data, N, 42);
	kt_buf_init(&b, MIB);
	kt_error_clear(&e);
	kt_code rc = kt_store_put(t->s, "range/obj", data, N, &e);
	EXPECT_RC(t, rc, KT_OK, e);
	static const struct { uint64_t off, len, want; } ok[] = {
		{ 0, 1, 1 }, { 5000, 100, 100 }, { 9999, 1, 1 }, { 0, N, N }, { 0, 0, N },
		{ 100, 0, N - 100 }, { 9999, 0, 1 }, { N, 0, 0 }, { 1, N - 1, N - 1 },
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		rc = kt_store_get(t->s, "range/obj", ok[i].off, ok[i].len, &b, &e);
		EXPECT(t, rc == KT_OK && b.len == ok[i].want &&
		       !memcmp(b.data, data + ok[i].off, (size_t)ok[i].want),
		       "get(%llu, %llu) gives %llu right bytes: %s, %zu bytes %s",
		       (unsigned long long)ok[i].off, (unsigned long long)ok[i].len,
		       (unsigned long long)ok[i].want, kt_code_name(rc), b.len, e.msg);
	}
	static const struct { uint64_t off, len; } past[] = {
		{ 9990, 20 }, { N, 1 }, { N + 1, 0 }, { 20000, 5 }, { 0, N + 1 }, { 1, N },
	};
	for (size_t i = 0; i < sizeof(past) / sizeof(past[0]); i++) {
		kt_buf_adds(&b, "stale", NULL);
		rc = kt_store_get(t->s, "range/obj", past[i].off, past[i].len, &b, &e);
		EXPECT(t, rc == KT_ECORRUPT, "get(%llu, %llu) past the end is corrupt, got %s (%s)",
		       (unsigned long long)past[i].off, (unsigned long long)past[i].len,
		       kt_code_name(rc), e.msg);
		EXPECT(t, strstr(e.msg, "10000 bytes") && strstr(e.msg, "range/obj"),
		       "the message names the object and its size: '%s'", e.msg);
		EXPECT(t, b.len == 0, "no bytes on failure, got %zu", b.len);
	}
	/* The caller's ceiling holds. */
	kt_buf small;
	kt_buf_init(&small, 100);
	rc = kt_store_get(t->s, "range/obj", 0, 0, &small, &e);
	EXPECT_RC(t, rc, KT_ELIMIT, e);
	EXPECT(t, small.len == 0, "no bytes on failure, got %zu", small.len);
	rc = kt_store_get(t->s, "range/obj", 9950, 0, &small, &e);
	EXPECT(t, rc == KT_OK && small.len == 50, "a tail within the ceiling: %s", e.msg);
	kt_buf_release(&small);
	kt_buf_release(&b);
	free(data);
}

static void case_list_many(suite *t)
{
	unsigned n = t->o->n_many ? t->o->n_many : 1100;
	kt_error e;
	kt_code rc = KT_OK;
	char name[64], val[32];
	kt_error_clear(&e);
	/* Sixteen subdirectories, names in a shuffled order. */
	for (unsigned k = 0; k < n && !rc; k++) {
		unsigned i = (k * 7919u) % n;
		snprintf(name, sizeof(name), "many/%x/obj-%05u", i % 16, i);
		snprintf(val, sizeof(val), "value %u", i);
		rc = put_str(t, name, val, &e);
	}
	EXPECT_RC(t, rc, KT_OK, e);
	/* Byte-prefix neighbours: "many-sibling" sorts before "many/", "manyx" after. */
	rc = put_str(t, "many-sibling", "s", &e);
	EXPECT_RC(t, rc, KT_OK, e);
	rc = put_str(t, "manyx/y", "y", &e);
	EXPECT_RC(t, rc, KT_OK, e);

	listing l = { 0 };
	rc = list_into(t, "many/", &l, &e);
	EXPECT_RC(t, rc, KT_OK, e);
	EXPECT(t, l.n == n, "%u objects under many/, got %zu", n, l.n);
	EXPECT(t, sorted_unique(&l), "names in ascending order, each once");
	size_t bad = 0;
	for (size_t j = 0; j < l.n; j++) {
		unsigned i, dir;
		if (sscanf(l.names[j], "many/%x/obj-%u", &dir, &i) != 2 || dir != i % 16 || i >= n) {
			bad++;
			continue;
		}
		snprintf(val, sizeof(val), "value %u", i);
		if (l.sizes[j] != strlen(val))
			bad++;
	}
	EXPECT(t, bad == 0, "every entry is one we stored, with its size (%zu wrong)", bad);

	rc = list_into(t, "many/a", &l, &e);
	EXPECT_RC(t, rc, KT_OK, e);
	unsigned want_a = 0;
	for (unsigned i = 0; i < n; i++)
		want_a += i % 16 == 10;
	EXPECT(t, l.n == want_a, "%u under many/a, got %zu", want_a, l.n);

	rc = list_into(t, "many/a/obj-0001", &l, &e);   /* stops inside a segment */
	EXPECT_RC(t, rc, KT_OK, e);
	unsigned want_p = 0;
	for (unsigned i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "many/%x/obj-%05u", i % 16, i);
		want_p += !strncmp(name, "many/a/obj-0001", 15);
	}
	EXPECT(t, l.n == want_p, "%u under many/a/obj-0001, got %zu", want_p, l.n);

	rc = list_into(t, "many", &l, &e);
	EXPECT_RC(t, rc, KT_OK, e);
	EXPECT(t, l.n == n + 2, "%u objects under 'many' (with many-sibling, manyx/y), got %zu",
	       n + 2, l.n);
	EXPECT(t, sorted_unique(&l), "ascending order across directories");
	EXPECT(t, l.n && !strcmp(l.names[0], "many-sibling"), "'many-sibling' sorts first, got "
	       "'%s'", l.n ? l.names[0] : "");
	EXPECT(t, l.n && !strcmp(l.names[l.n - 1], "manyx/y"), "'manyx/y' sorts last");

	rc = list_into(t, "", &l, &e);
	EXPECT_RC(t, rc, KT_OK, e);
	EXPECT(t, l.n >= n + 2 && sorted_unique(&l), "the whole store in order (%zu)", l.n);

	/* A callback error stops the listing and is returned as is. */
	listing_release(&l);
	l.stop_after = 3;
	rc = kt_store_list(t->s, "many/", collect, &l, &e);
	EXPECT_RC(t, rc, KT_ECANCELED, e);
	EXPECT(t, l.n == 3, "3 entries before the stop, got %zu", l.n);
	listing_release(&l);
}

static void case_remove(suite *t)
{
	kt_error e;
	kt_buf b;
	uint64_t size;
	listing l = { 0 };
	kt_buf_init(&b, MIB);
	kt_error_clear(&e);
	kt_code rc = put_str(t, "gone/a", "a", &e);
	EXPECT_RC(t, rc, KT_OK, e);
	rc = put_str(t, "gone/b", "b", &e);
	EXPECT_RC(t, rc, KT_OK, e);
	rc = kt_store_remove(t->s, "gone/a", &e);
	EXPECT_RC(t, rc, KT_OK, e);
	rc = kt_store_get(t->s, "gone/a", 0, 0, &b, &e);
	EXPECT_RC(t, rc, KT_ENOTFOUND, e);
	rc = kt_store_stat(t->s, "gone/a", &size, &e);
	EXPECT_RC(t, rc, KT_ENOTFOUND, e);
	rc = list_into(t, "gone/", &l, &e);
	EXPECT(t, rc == KT_OK && l.n == 1 && !strcmp(l.names[0], "gone/b"),
	       "only gone/b is listed: %s %zu", kt_code_name(rc), l.n);
	rc = kt_store_remove(t->s, "gone/a", &e);
	EXPECT_RC(t, rc, KT_OK, e);
	/* A removed name may be written again. */
	rc = put_str(t, "gone/a", "again", &e);
	EXPECT_RC(t, rc, KT_OK, e);
	EXPECT_CONTENT(t, "gone/a", "again", 5);
	/* Removing a "directory" that only holds objects removes nothing. */
	rc = kt_store_remove(t->s, "gone", &e);
	EXPECT_RC(t, rc, KT_OK, e);
	EXPECT_CONTENT(t, "gone/b", "b", 1);
	listing_release(&l);
	kt_buf_release(&b);
}

static void case_big_file(suite *t)
{
	uint64_t size = t->o->big_size ? t->o->big_size : 40 * MIB;
	char path[4096];
	kt_error e;
	kt_buf b;
	snprintf(path, sizeof(path), "%s/store-suite-big-XXXXXX", t->o->tmpdir ? t->o->tmpdir :
	         "/tmp");
	int fd = mkstemp(path);
	EXPECT(t, fd >= 0, "a temporary file at %s: %s", path, strerror(errno));
	if (fd < 0)
		return;
	unlink(path);
	char *data = kt_xmalloc((size_t)size);
	fill(data, (size_t)size, 7);
	for (uint64_t pos = 0; pos < size;) {
		ssize_t w = write(fd, data + pos, (size_t)(size - pos));
		if (w <= 0)
			break;
		pos += (uint64_t)w;
	}
	lseek(fd, 12345, SEEK_SET);   /* put_file must not depend on the offset */
	kt_error_clear(&e);
	kt_code rc = kt_store_put_file(t->s, "big/blob", fd, &e);
	EXPECT_RC(t, rc, KT_OK, e);
	uint64_t got = 0;
	rc = kt_store_stat(t->s, "big/blob", &got, &e);
	EXPECT(t, rc == KT_OK && got == size, "size %llu, got %llu (%s)",
	       (unsigned long long)size, (unsigned long long)got, e.msg);
	kt_buf_init(&b, (size_t)size);
	/* Ranges across the S3 part boundaries (5 MiB parts in the tests, 16 MiB default). */
	const uint64_t offs[][2] = {
		{ 0, MIB }, { 5 * MIB - 100, 200 }, { 16 * MIB - 1, 2 }, { size - 10, 0 },
		{ size / 3, 3 * MIB + 17 },
	};
	for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
		uint64_t off = offs[i][0], len = offs[i][1];
		if (off + (len ? len : 1) > size)
			continue;
		uint64_t want = len ? len : size - off;
		rc = kt_store_get(t->s, "big/blob", off, len, &b, &e);
		EXPECT(t, rc == KT_OK && b.len == want && !memcmp(b.data, data + off, (size_t)want),
		       "range (%llu, %llu) of the big object: %s %zu %s", (unsigned long long)off,
		       (unsigned long long)len, kt_code_name(rc), b.len, e.msg);
	}
	rc = kt_store_get(t->s, "big/blob", 0, 0, &b, &e);
	EXPECT(t, rc == KT_OK && b.len == size && !memcmp(b.data, data, (size_t)size),
	       "the whole big object reads back identical: %s %zu %s", kt_code_name(rc), b.len,
	       e.msg);
	rc = kt_store_put_file(t->s, "big/blob", fd, &e);
	if (t->o->lenient_identical)
		EXPECT(t, rc == KT_EEXIST || rc == KT_OK, "EEXIST or OK, got %s", kt_code_name(rc));
	else
		EXPECT_RC(t, rc, KT_EEXIST, e);
	rc = kt_store_put(t->s, "big/blob", "x", 1, &e);
	EXPECT_RC(t, rc, KT_EEXIST, e);
	kt_buf_release(&b);
	free(data);
	close(fd);
}

typedef struct suite_case {
	const char *title;
	void (*fn)(suite *t);
} suite_case;

/* Rule 7: a clone is the same store, used from another thread at once. */
typedef struct clone_run {
	kt_store *s;
	kt_code put_rc, get_rc;
	kt_error e;
	kt_buf got;
} clone_run;

static void *clone_thread(void *arg)
{
	clone_run *c = arg;
	kt_error_clear(&c->e);
	c->put_rc = kt_store_put(c->s, "clone/from-clone", "by the clone", 12, &c->e);
	for (int i = 0; i < 20 && !c->put_rc && !c->get_rc; i++)
		c->get_rc = kt_store_get(c->s, "clone/from-original", 0, 0, &c->got, &c->e);
	return NULL;
}

static void case_clone(suite *t)
{
	kt_error e;
	kt_error_clear(&e);
	kt_code rc = put_str(t, "clone/from-original", "by the original", &e);
	EXPECT_RC(t, rc, KT_OK, e);
	clone_run c = { 0 };
	kt_buf_init(&c.got, MIB);
	rc = kt_store_clone(t->s, &c.s, &e);
	EXPECT_RC(t, rc, KT_OK, e);
	if (rc) {
		kt_buf_release(&c.got);
		return;
	}
	EXPECT(t, !strcmp(kt_store_describe(c.s), kt_store_describe(t->s)),
	       "the same description, got '%s'", kt_store_describe(c.s));
	pthread_t th;
	if (pthread_create(&th, NULL, clone_thread, &c) != 0)
		abort();
	/* The original works meanwhile, on this thread. */
	for (int i = 0; i < 20; i++)
		EXPECT_CONTENT(t, "clone/from-original", "by the original", 15);
	pthread_join(th, NULL);
	EXPECT_RC(t, c.put_rc, KT_OK, c.e);
	EXPECT_RC(t, c.get_rc, KT_OK, c.e);
	EXPECT(t, c.got.len == 15 && !memcmp(c.got.data, "by the original", 15),
	       "the clone reads the original's object");
	kt_store_free(c.s);
	kt_buf_release(&c.got);
	/* Freeing the clone leaves the original open. */
	EXPECT_CONTENT(t, "clone/from-clone", "by the clone", 12);
}

static const suite_case cases[] = {
	{ "an empty store lists nothing", case_empty_store },
	{ "bad names and prefixes are refused before any backend call", case_bad_names },
	{ "missing objects: get/stat not found, remove succeeds", case_missing },
	{ "put, then get and stat return the same bytes", case_put_get },
	{ "write once: an existing name is never replaced", case_write_once },
	{ "ranged gets: exact bytes, past the end is corrupt, ceiling holds", case_ranges },
	{ "list: many names, byte prefixes, ascending order, callback stop", case_list_many },
	{ "remove: gone from get, stat and list; the name can be reused", case_remove },
	{ "put_file: a big object (multipart on S3) reads back identical", case_big_file },
	{ "clone: a second handle on another thread sees the same objects", case_clone },
};

int store_suite_run(kt_store *s, const store_suite_opts *o, int *n_passed)
{
	suite t = { s, o, o->log ? o->log : stdout, 0 };
	int failed = 0, passed = 0;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		t.case_failed = 0;
		int64_t t0 = kt_now_ms();
		cases[i].fn(&t);
		fprintf(t.log, "%s - %s (%s, %lld ms)\n", t.case_failed ? "FAIL" : "ok",
		        cases[i].title, kt_store_describe(s), (long long)(kt_now_ms() - t0));
		fflush(t.log);
		if (t.case_failed)
			failed++;
		else
			passed++;
	}
	if (n_passed)
		*n_passed = passed;
	return failed;
}
