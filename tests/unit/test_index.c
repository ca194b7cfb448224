/*
 * test_index.c - the blob index (src/archive/index.c) with its table
 * forced small: millions of synthetic entries spill into sorted runs;
 * every one is found with the fields it was given, absent ids are not,
 * ordinals are unique and below the span, and the peak resident memory
 * (getrusage) stays under a bound far below what an all-in-memory table
 * of the same entries needs.  A memory bound, not a timing assert.  The
 * writers' id set (idset.c), built on the same index, spills too.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "archive/archive_int.h"
#include "unit.h"

/* A uniform 32-byte id for i (splitmix64), like the keyed hashes. */
static void id_of(uint64_t i, uint8_t id[32])
{
	uint64_t x = i * 4 + 0x9e3779b97f4a7c15ull;
	for (int w = 0; w < 4; w++) {
		uint64_t z = (x += 0x9e3779b97f4a7c15ull);
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
		z ^= z >> 31;
		memcpy(id + 8 * w, &z, 8);
	}
}

static void entry_of(uint64_t i, kt_repo_entry *e)
{
	memset(e, 0, sizeof(*e));
	id_of(i, e->id);
	e->type = (uint8_t)(i % 2);
	e->compression = (uint8_t)(i % 3 == 0);
	e->offset = (uint32_t)(i * 7);
	e->length = (uint32_t)(i % 65536 + 40);
	e->raw_length = (uint32_t)(i % 100000);
}

static long peak_rss_kib(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

typedef struct each_acc {
	uint64_t n, span;
	uint8_t *seen;   /* a bit per ordinal */
	int dup_or_out;
} each_acc;

static void each_fn(void *ctx, const kt_loc *l)
{
	each_acc *acc = ctx;
	acc->n++;
	if (l->ord >= acc->span || acc->seen[l->ord / 8] >> (l->ord % 8) & 1)
		acc->dup_or_out = 1;
	else
		acc->seen[l->ord / 8] |= (uint8_t)(1u << (l->ord % 8));
}

static void test_spill_millions(void)
{
	const uint64_t n = 2500000;
	kt_archive *a = kt_xcalloc(1, sizeof(*a));
	a->idx.max = 50000;   /* ~100k slots: 5 MiB */
	uint8_t pack[32];
	for (uint32_t p = 0; p < 1000; p++) {
		memset(pack, 0, sizeof(pack));
		memcpy(pack, &p, sizeof(p));
		CHECK_EQ_U(kt_archive_pack_no(a, pack), p);
	}
	for (uint64_t i = 0; i < n; i++) {
		kt_repo_entry e;
		entry_of(i, &e);
		kt_archive_insert_at(a, (uint32_t)(i % 1000), &e);
		if (i % 3 == 0)   /* known already: a no-op */
			kt_archive_insert_at(a, 7, &e);
	}
	CHECK_EQ_U(kt_archive_index_count(a), n);
	CHECK(a->idx.n_runs >= 1 && a->idx.n_runs <= 8);
	int bad = 0;
	for (uint64_t i = 0; i < n; i++) {
		kt_repo_entry e;
		kt_loc l;
		entry_of(i, &e);
		if (!kt_archive_find(a, e.id, &l) || memcmp(l.id, e.id, 32) ||
		    l.pack != i % 1000 || l.offset != e.offset || l.length != e.length ||
		    l.raw_length != e.raw_length || l.type != e.type ||
		    l.compression != e.compression || l.ord >= kt_archive_index_span(a))
			bad++;
	}
	CHECK_EQ_U(bad, 0);
	for (uint64_t i = n; i < n + 100000; i++) {
		uint8_t id[32];
		id_of(i, id);
		if (kt_archive_find(a, id, NULL))
			bad++;
	}
	/* Ids sharing a page's 8-byte prefix, and beyond either end. */
	uint8_t id[32];
	memset(id, 0, 32);
	bad += kt_archive_find(a, id, NULL);
	memset(id, 0xff, 32);
	bad += kt_archive_find(a, id, NULL);
	kt_repo_entry e;
	entry_of(12345, &e);
	e.id[31] ^= 1;
	bad += kt_archive_find(a, e.id, NULL);
	CHECK_EQ_U(bad, 0);

	each_acc acc = { 0, kt_archive_index_span(a), NULL, 0 };
	acc.seen = kt_xcalloc((size_t)(acc.span / 8 + 1), 1);
	kt_error err;
	CHECK(kt_archive_index_each(a, each_fn, &acc, &err) == KT_OK);
	CHECK_EQ_U(acc.n, n);
	CHECK(!acc.dup_or_out);
	free(acc.seen);

	/* An all-in-memory table of n entries: 4M slots of 52 bytes = 208 MiB. */
	long kib = peak_rss_kib();
	fprintf(stderr, "  %llu entries, %zu runs: peak RSS %ld KiB\n", (unsigned long long)n,
	        a->idx.n_runs, kib);
#if defined(__SANITIZE_ADDRESS__)
	(void)kib;   /* shadow memory and the free quarantine: RSS says nothing here */
#else
	CHECK(kib < 32 * 1024);
#endif

	/* forget_pending drops one pack's entries from the runs and the table. */
	kt_archive_forget_pending(a, 999);
	CHECK_EQ_U(kt_archive_index_count(a), n - n / 1000);
	entry_of(999, &e);
	CHECK(!kt_archive_find(a, e.id, NULL));
	entry_of(998, &e);
	CHECK(kt_archive_find(a, e.id, NULL));
	entry_of(n - 2, &e);   /* pack 998, in the table or the newest run */
	CHECK(kt_archive_find(a, e.id, NULL));
	kt_archive_index_release(a);
	free(a->packs);
	free(a);
}

/* Below the threshold nothing is written: the table alone, as before. */
static void test_small_stays_in_memory(void)
{
	kt_archive *a = kt_xcalloc(1, sizeof(*a));
	a->idx.max = 1000;
	uint8_t pack[32] = { 1 };
	uint32_t no = kt_archive_pack_no(a, pack);
	for (uint64_t i = 0; i < 1000; i++) {
		kt_repo_entry e;
		entry_of(i, &e);
		kt_archive_insert_at(a, no, &e);
	}
	CHECK_EQ_U(a->idx.n_runs, 0);
	kt_repo_entry e;
	entry_of(1000, &e);
	kt_archive_insert_at(a, no, &e);   /* the 1001st spills the first 1000 */
	CHECK_EQ_U(a->idx.n_runs, 1);
	CHECK_EQ_U(a->idx.n, 1);
	for (uint64_t i = 0; i <= 1000; i++) {
		entry_of(i, &e);
		CHECK(kt_archive_find(a, e.id, NULL));
	}
	kt_archive_index_release(a);
	free(a->packs);
	free(a);
}

/* The writers' set of new ids spills the same way. */
static void test_idset_spills(void)
{
	kt_idset s;
	memset(&s, 0, sizeof(s));
	s.x.max = 1000;
	int bad = 0;
	for (uint64_t i = 0; i < 200000; i++) {
		uint8_t id[32];
		id_of(i, id);
		bad += kt_idset_put(&s, id) != 0;
		if (i % 7 == 0)
			bad += kt_idset_put(&s, id) != 1;
	}
	for (uint64_t i = 0; i < 200000; i += 13) {
		uint8_t id[32];
		id_of(i, id);
		bad += kt_idset_put(&s, id) != 1;
	}
	CHECK_EQ_U(bad, 0);
	CHECK(s.x.n_runs >= 1);
	CHECK_EQ_U(s.x.n_spilled + s.x.n, 200000);
	kt_idset_release(&s);
}

int main(void)
{
	RUN(test_idset_spills);
	RUN(test_small_stays_in_memory);
	RUN(test_spill_millions);
	return unit_done();
}
