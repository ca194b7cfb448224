/*
 * store_suite.h - the storage conformance suite: one set of behaviours
 * (store.h's guarantees) run against every backend and wrapper stack, by
 * tests/unit/test_store.c (local, local under faulty+retry) and by
 * tests/unit/storetool.c for tests/integration/test_store.py (MinIO,
 * MinIO under faulty+retry).  After restic's backend test suite.
 */
#ifndef KT_STORE_SUITE_H
#define KT_STORE_SUITE_H

#include <stdio.h>
#include "store/store.h"

typedef struct store_suite_opts {
	const char *tmpdir;    /* where the put_file source file is written */
	unsigned n_many;       /* objects in the listing case; 0 = 1100 (> one S3 page) */
	uint64_t big_size;     /* put_file object; 0 = 40 MiB */
	int lenient_identical; /* re-putting identical bytes may succeed (store.h rule 2:
	                          whenever a retry can happen inside a put: the retry
	                          wrapper, S3) */
	FILE *log;             /* "ok - case" / "FAIL - case" lines; NULL = stdout */
} store_suite_opts;

/*
 * Run every case against s, which must be empty.  Returns the number of
 * failed cases; *n_passed (may be NULL) gets the number that passed.
 */
int store_suite_run(kt_store *s, const store_suite_opts *o, int *n_passed);

#endif
