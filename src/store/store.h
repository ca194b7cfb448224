/*
 * store.h - the storage layer: one object-store interface with a local
 * directory backend, an S3 backend, and two wrappers (retry, faulty).
 *
 * Owns: object names and their validation, store URLs, the backend vtable
 * (store_int.h), write-once puts, ranged gets that never truncate silently,
 * sorted listings, retries of transient failures and deterministic fault
 * injection for tests.  See docs/storage.md.
 *
 * Guarantees every backend keeps (the conformance suite in
 * tests/unit/store_suite.c checks each of them):
 *   1. Names are '/'-separated relative paths of [A-Za-z0-9._-] segments
 *      ("data/ab/abcdef..."): no empty, "." or ".." segment, no leading or
 *      trailing '/', at most KT_STORE_NAME_MAX bytes and KT_STORE_SEGMENT_MAX
 *      per segment.  Anything else is KT_EUSAGE before a backend is called.
 *   2. Write once: put never replaces an object; a name that exists is
 *      KT_EEXIST (also when two writers race: exactly one wins).  One
 *      exception: a put that had a transient failure inside the call (an
 *      S3 request retried, the retry wrapper) and then finds the name
 *      holding exactly its own bytes reports KT_OK, since its own attempt
 *      may have landed with the answer lost (the two cannot be told apart,
 *      and either way the name holds those bytes).
 *   3. Atomic appearance: an object is visible (get, stat, list) whole, with
 *      all its bytes, or not at all; a failed or interrupted put leaves no
 *      object under its name.  Local puts are durable (fsync of the file
 *      and of its directory) before they return.
 *   4. A get returns exactly the bytes asked for or fails: a range beyond
 *      the object is KT_ECORRUPT naming both sizes; fewer bytes delivered
 *      than the backend promised is KT_ETRANSIENT (a retry may help).
 *   5. list delivers every object whose put returned before the listing
 *      began and that was not removed, each once, in ascending byte order of
 *      names, with its size.  Objects put or removed during the listing may
 *      or may not appear.
 *   6. remove of a missing name succeeds.
 *   7. A kt_store is used by one thread at a time; open one per thread.
 */
#ifndef KT_STORE_H
#define KT_STORE_H

#include <signal.h>
#include "../core/core.h"
#include "../s3/s3.h"

#define KT_STORE_NAME_MAX 512     /* bytes of a name */
#define KT_STORE_SEGMENT_MAX 200  /* bytes of one '/'-separated segment */

typedef struct kt_store kt_store;

/* How to open a store.  Fields that do not apply to the URL's backend are
 * ignored.  Strings are copied by kt_store_open. */
typedef struct kt_store_opts {
	int create;               /* local: create the directory (mode 0700, with its
	                             parents) if missing; s3: create the bucket if missing */
	/* S3 (s3://BUCKET[/PREFIX]); the caller fills these from flags and the
	 * environment, never from the URL. */
	const char *endpoint;     /* "http(s)://host[:port]", required */
	const char *region;       /* NULL = us-east-1 */
	const char *access_key;   /* required */
	const char *secret_key;   /* required; registered as a log secret */
	const char *cacert;       /* PEM CA bundle, or NULL (system store) */
	kt_s3_style style;
	int s3_attempts;          /* the S3 client's own retries per request; 0 = 5 */
	uint64_t part_size;       /* multipart part size for put_file; 0 = 16 MiB */
	int n_threads;            /* multipart workers; 0 = 4 */
	int64_t timeout_ms;       /* per S3 request; 0 = none (stall timeout guards) */
	unsigned lock_days;       /* S3: every object written gets S3 Object Lock retention
	                             (COMPLIANCE) for this many days; 0 = none (the bucket's
	                             default applies) */
	volatile sig_atomic_t *cancel; /* non-zero: stop with KT_ECANCELED (also stops
	                                  the retry wrapper's waits) */
} kt_store_opts;

/*
 * Open the store at url:
 *   /path, relative/path, file:///path   a local directory
 *   s3://BUCKET[/PREFIX]                 objects "PREFIX/NAME" in BUCKET
 * o may be NULL for a local store.  KT_EUSAGE for a malformed URL or a
 * missing S3 setting (message names it); KT_ENOTFOUND when the directory
 * does not exist and o->create is not set.  An S3 store makes no request
 * unless o->create is set.  *out is set only on success; free with
 * kt_store_free.
 */
kt_code kt_store_open(const char *url, const kt_store_opts *o, kt_store **out, kt_error *err);

/*
 * Another handle on the store s, for another thread (rule 7): the same
 * backend, place, settings and credentials (and wrappers), its own
 * descriptor or connection.  Free it with kt_store_free; s stays usable.
 */
kt_code kt_store_clone(kt_store *s, kt_store **out, kt_error *err);

/* Close and free s (and the store it wraps, for wrappers).  NULL is a no-op. */
void kt_store_free(kt_store *s);

/* "local:/path", "s3://bucket/prefix", "retry(faulty(local:/path))":
 * for messages; never carries a secret.  Borrowed from s. */
const char *kt_store_describe(const kt_store *s);

/* KT_OK if name is a valid object name (rule 1), else KT_EUSAGE saying
 * what is wrong with it. */
kt_code kt_store_check_name(const char *name, kt_error *err);

/*
 * Store len bytes as NAME, write once (rules 2 and 3).  Errors: KT_EEXIST,
 * KT_EUSAGE (bad name), KT_ENOSPC, KT_EPERM, KT_EIO, and from S3 KT_EAUTH,
 * KT_ENOTFOUND (no bucket), KT_ETRANSIENT.
 */
kt_code kt_store_put(kt_store *s, const char *name, const void *data, size_t len,
                     kt_error *err);

/*
 * Store the regular file open on fd (from offset 0 to its size at the time
 * of the call; fd's offset is not used) as NAME, write once.  For big
 * objects: S3 streams it (multipart above the part size) and local copies
 * it; memory stays bounded whatever the size.  Errors as kt_store_put.
 */
kt_code kt_store_put_file(kt_store *s, const char *name, int fd, kt_error *err);

/*
 * Read bytes [offset, offset+length) of NAME into out (length 0 = to the
 * end).  out is reset first; on success it holds exactly those bytes, on
 * failure it is empty.  Errors: KT_ENOTFOUND; KT_ECORRUPT when the range
 * lies beyond the object (offset == size with length 0 is an empty
 * success); KT_ELIMIT when the bytes would exceed out->max; KT_ETRANSIENT.
 */
kt_code kt_store_get(kt_store *s, const char *name, uint64_t offset, uint64_t length,
                     kt_buf *out, kt_error *err);

/* Size of NAME into *size.  KT_ENOTFOUND if there is no such object. */
kt_code kt_store_stat(kt_store *s, const char *name, uint64_t *size, kt_error *err);

/* One listed object: name relative to the store root, borrowed for the call. */
typedef struct kt_store_entry {
	const char *name;
	uint64_t size;
} kt_store_entry;

/* Return non-OK (with err filled) to stop the listing with that error. */
typedef kt_code (*kt_store_list_fn)(void *ctx, const kt_store_entry *e, kt_error *err);

/*
 * Call fn for each object whose name starts with prefix (a byte prefix,
 * not a segment: "data/a" matches "data/ab/x"; NULL or "" = all), under
 * rule 5.  prefix follows the name rules except that it may be empty, end
 * with '/' or stop inside a segment (but not with a "." or ".." segment).  Entries that are not valid names (temporary
 * files, foreign keys) are skipped.
 */
kt_code kt_store_list(kt_store *s, const char *prefix, kt_store_list_fn fn, void *ctx,
                      kt_error *err);

/* Remove NAME; a missing name succeeds. */
kt_code kt_store_remove(kt_store *s, const char *name, kt_error *err);

/* ------------------------------------------------------------------ */
/* Wrappers.  Each takes ownership of inner (freed with the wrapper) and
 * never fails (allocation aborts). */

/*
 * Retry operations of inner that fail with KT_ETRANSIENT, up to attempts
 * tries in all (<= 0: 5), waiting base_ms * 2^(n-1) (<= 0: 200 ms; capped
 * at 10 s) with equal jitter between them.  Never retries any other code.
 * A put that failed transiently and then finds NAME present compares the
 * stored bytes with its own: identical means the earlier attempt landed
 * (KT_OK), different is KT_EEXIST.  A list that fails midway resumes after
 * the last name it delivered (rule 5's order), so no entry is repeated.
 */
kt_store *kt_store_retry_wrap(kt_store *inner, int attempts, int64_t base_ms);

/* Fault kinds for kt_store_faulty_wrap (a bit set). */
enum {
	KT_FAULT_BEFORE = 1,      /* KT_ETRANSIENT, the operation not done */
	KT_FAULT_AFTER = 2,       /* the operation done, then KT_ETRANSIENT (lost answer);
	                             a list fails after a few entries */
	KT_FAULT_SHORT_READ = 4,  /* a get delivers fewer bytes than the object holds */
	KT_FAULT_TIMEOUT = 8,     /* "timed out" (KT_ETRANSIENT), the operation done or not */
	KT_FAULT_ALL = 15,
};

/*
 * For tests: make about rate_percent % (0..100) of inner's operations fail
 * with one of kinds, chosen by a PRNG seeded with seed, so a run is
 * reproducible.  Injected messages say "injected fault".
 */
kt_store *kt_store_faulty_wrap(kt_store *inner, uint64_t seed, unsigned rate_percent,
                               unsigned kinds);

/* Number of faults injected so far by a faulty wrapper (0 for any other
 * store), and the number of retries made by a retry wrapper. */
uint64_t kt_store_faults_injected(const kt_store *s);
uint64_t kt_store_retries(const kt_store *s);

#endif /* KT_STORE_H */
