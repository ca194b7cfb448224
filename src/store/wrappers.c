/*
 * wrappers.c - stores that wrap another store: retry (transient failures
 * are tried again with backoff) and faulty (deterministic fault injection
 * for tests).  Both call the wrapped store through kt_store_*, so the
 * dispatcher's checks run at every layer: a short read injected by faulty
 * is caught by the dispatcher below retry and arrives there as
 * KT_ETRANSIENT.
 *
 * Invariants of retry:
 *   1. Only KT_ETRANSIENT is retried, at most `attempts` tries in all; the
 *      wait polls the cancel flag every 50 ms.
 *   2. A put whose earlier attempt failed transiently may have landed (the
 *      answer was lost).  When a later attempt finds the name taken, the
 *      stored bytes are compared with ours: identical is success,
 *      different stays KT_EEXIST.  Without an earlier transient failure a
 *      KT_EEXIST is passed on untouched.
 *   3. A list is never repeated to the caller: a retry skips names up to
 *      the last one delivered (lists come in ascending order).  An error
 *      returned by the caller's callback is never retried.
 *
 * Invariants of faulty:
 *   4. Exactly one pseudo-random draw per operation (plus one per decision
 *      it implies), from a splitmix64 sequence seeded by the caller: the
 *      same seed and the same calls inject the same faults.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store_int.h"

#define RETRY_DEFAULT_ATTEMPTS 5
#define RETRY_DEFAULT_BASE_MS 200
#define RETRY_MAX_MS 10000
#define COMPARE_CHUNK (4u << 20)

static char *wrap_desc(const char *kind, const kt_store *inner)
{
	kt_buf d;
	kt_buf_init(&d, KT_BUF_UNLIMITED);
	kt_buf_addf(&d, NULL, "%s(%s)", kind, inner->desc);
	return kt_buf_detach(&d, NULL);
}

static uint64_t splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* ------------------------------------------------------------------ */
/* retry */

typedef struct retry_store {
	kt_store base;
	kt_store *inner;
	int attempts;
	int64_t base_ms;
	uint64_t rng;
	uint64_t retries;
} retry_store;

/* Sleep ms, waking every 50 ms to look at the cancel flag.  1 if canceled. */
static int nap(const retry_store *r, int64_t ms)
{
	while (ms > 0) {
		if (r->base.cancel && *r->base.cancel)
			return 1;
		int64_t step = ms < 50 ? ms : 50;
		struct timespec ts = { (time_t)(step / 1000), (long)(step % 1000) * 1000000L };
		nanosleep(&ts, NULL);
		ms -= step;
	}
	return r->base.cancel && *r->base.cancel;
}

/*
 * Attempt n of op on name failed with *rc (message in e).  Returns 1 to try
 * again (after waiting), 0 to stop with *rc and e.
 */
static int again(retry_store *r, int n, kt_code *rc, const char *op, const char *name,
                 kt_error *e)
{
	if (*rc != KT_ETRANSIENT)
		return 0;
	if (n >= r->attempts) {
		if (n > 1)
			kt_error_wrap(e, "%s of '%s' in %s failed %d times", op, name, r->base.desc, n);
		return 0;
	}
	int64_t d = r->base_ms;
	for (int i = 1; i < n && d < RETRY_MAX_MS; i++)
		d *= 2;
	if (d > RETRY_MAX_MS)
		d = RETRY_MAX_MS;
	/* Equal jitter: half fixed, half random. */
	int64_t ms = d / 2 + (int64_t)(splitmix64(&r->rng) % (uint64_t)(d / 2 + 1));
	kt_log(KT_LOG_DEBUG, "store: %s of '%s' in %s: %s; retry %d/%d in %lld ms", op, name,
	       r->base.desc, e->msg, n + 1, r->attempts, (long long)ms);
	if (nap(r, ms)) {
		*rc = kt_error_set(e, KT_ECANCELED, "%s of '%s' in %s canceled while waiting to "
		                   "retry", op, name, r->base.desc);
		return 0;
	}
	r->retries++;
	return 1;
}

static kt_code pass(kt_code rc, const kt_error *e, kt_error *err)
{
	if (rc && err)
		*err = *e;
	return rc;
}

/*
 * NAME exists; is it our bytes (data, or fd's first size bytes)?  KT_OK if
 * identical, KT_EEXIST (e filled) if not, another code if reading failed.
 */
static kt_code same_content(retry_store *r, const char *name, const void *data, int fd,
                            uint64_t size, kt_error *e)
{
	uint64_t stored;
	kt_code rc = kt_store_stat(&r->base, name, &stored, e);
	if (rc)
		return rc;
	if (stored != size)
		goto differ;
	kt_buf got;
	kt_buf_init(&got, COMPARE_CHUNK);
	char *mine = data ? NULL : kt_xmalloc(COMPARE_CHUNK);
	int equal = 1;
	for (uint64_t pos = 0; pos < size && equal && !rc;) {
		uint64_t n = size - pos < COMPARE_CHUNK ? size - pos : COMPARE_CHUNK;
		rc = kt_store_get(&r->base, name, pos, n, &got, e);
		if (rc)
			break;
		const char *ours = (const char *)data + pos;
		if (!data) {
			for (uint64_t k = 0; k < n;) {
				ssize_t x = pread(fd, mine + k, (size_t)(n - k), (off_t)(pos + k));
				if (x <= 0) {
					rc = kt_error_set(e, KT_EIO, "cannot read the file stored as '%s' again "
					                  "to compare it", name);
					break;
				}
				k += (uint64_t)x;
			}
			ours = mine;
		}
		if (!rc && memcmp(got.data, ours, (size_t)n))
			equal = 0;
		pos += n;
	}
	kt_buf_release(&got);
	free(mine);
	if (rc)
		return rc;
	if (equal)
		return KT_OK;
differ:
	return kt_error_set(e, KT_EEXIST, "object '%s' already exists in %s with other content; "
	                    "objects are written once and never replaced", name, r->base.desc);
}

static kt_code retry_write(retry_store *r, const char *name, const void *data, int fd,
                           uint64_t size, kt_error *err)
{
	kt_error e;
	kt_code rc;
	int had_transient = 0;
	kt_error_clear(&e);
	for (int n = 1;; n++) {
		rc = data ? kt_store_put(r->inner, name, data, (size_t)size, &e)
		          : kt_store_put_file(r->inner, name, fd, &e);
		if (rc == KT_EEXIST && had_transient) {
			rc = same_content(r, name, data, fd, size, &e);
			if (!rc)
				kt_log(KT_LOG_DEBUG, "store: put of '%s' in %s: an earlier attempt stored it",
				       name, r->base.desc);
			return pass(rc, &e, err);
		}
		if (rc == KT_ETRANSIENT)
			had_transient = 1;
		if (!again(r, n, &rc, "put", name, &e))
			return pass(rc, &e, err);
	}
}

static kt_code retry_put(kt_store *s, const char *name, const void *data, size_t len,
                         kt_error *err)
{
	return retry_write((retry_store *)s, name, data, -1, len, err);
}

static kt_code retry_put_file(kt_store *s, const char *name, int fd, kt_error *err)
{
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
		return kt_error_set(err, KT_EUSAGE, "can only store a regular file as '%s'", name);
	return retry_write((retry_store *)s, name, NULL, fd, (uint64_t)st.st_size, err);
}

static kt_code retry_get(kt_store *s, const char *name, uint64_t offset, uint64_t length,
                         kt_buf *out, uint64_t *size, kt_error *err)
{
	retry_store *r = (retry_store *)s;
	kt_error e;
	kt_code rc;
	kt_error_clear(&e);
	for (int n = 1;; n++) {
		rc = kt_store_get(r->inner, name, offset, length, out, &e);
		if (!rc) {
			/* The inner dispatcher checked the range: report a size that
			 * makes ours agree. */
			*size = length ? offset + length : offset + out->len;
			return KT_OK;
		}
		if (!again(r, n, &rc, "get", name, &e))
			return pass(rc, &e, err);
	}
}

static kt_code retry_stat(kt_store *s, const char *name, uint64_t *size, kt_error *err)
{
	retry_store *r = (retry_store *)s;
	kt_error e;
	kt_code rc;
	kt_error_clear(&e);
	for (int n = 1;; n++) {
		rc = kt_store_stat(r->inner, name, size, &e);
		if (!again(r, n, &rc, "stat", name, &e))
			return pass(rc, &e, err);
	}
}

static kt_code retry_remove(kt_store *s, const char *name, kt_error *err)
{
	retry_store *r = (retry_store *)s;
	kt_error e;
	kt_code rc;
	kt_error_clear(&e);
	for (int n = 1;; n++) {
		rc = kt_store_remove(r->inner, name, &e);
		if (!again(r, n, &rc, "remove", name, &e))
			return pass(rc, &e, err);
	}
}

typedef struct resume {
	kt_store_list_fn fn;
	void *ctx;
	char last[KT_STORE_NAME_MAX + 1];
	int have_last;
	int caller_failed;
} resume;

static kt_code resume_entry(void *ctx, const kt_store_entry *e, kt_error *err)
{
	resume *rs = ctx;
	if (rs->have_last && strcmp(e->name, rs->last) <= 0)
		return KT_OK;   /* delivered by an earlier attempt */
	kt_code rc = rs->fn(rs->ctx, e, err);
	if (rc) {
		rs->caller_failed = 1;
		return rc;
	}
	memcpy(rs->last, e->name, strlen(e->name) + 1);
	rs->have_last = 1;
	return KT_OK;
}

static kt_code retry_list(kt_store *s, const char *prefix, kt_store_list_fn fn, void *ctx,
                          kt_error *err)
{
	retry_store *r = (retry_store *)s;
	kt_error e;
	kt_code rc;
	resume *rs = kt_xcalloc(1, sizeof(*rs));
	rs->fn = fn;
	rs->ctx = ctx;
	kt_error_clear(&e);
	for (int n = 1;; n++) {
		rc = kt_store_list(r->inner, prefix, resume_entry, rs, &e);
		if (rs->caller_failed || !again(r, n, &rc, "list", *prefix ? prefix : "(all)", &e))
			break;
	}
	free(rs);
	return pass(rc, &e, err);
}

static void retry_free(kt_store *s)
{
	retry_store *r = (retry_store *)s;
	kt_store_free(r->inner);
	free(r);
}

static kt_code retry_clone(kt_store *s, kt_store **out, kt_error *err)
{
	retry_store *r = (retry_store *)s;
	kt_store *inner;
	kt_code rc = kt_store_clone(r->inner, &inner, err);
	if (!rc)
		*out = kt_store_retry_wrap(inner, r->attempts, r->base_ms);
	return rc;
}

static const kt_store_vtable retry_vt = {
	.kind = "retry",
	.put = retry_put,
	.put_file = retry_put_file,
	.get = retry_get,
	.stat = retry_stat,
	.list = retry_list,
	.remove = retry_remove,
	.clone = retry_clone,
	.free = retry_free,
};

kt_store *kt_store_retry_wrap(kt_store *inner, int attempts, int64_t base_ms)
{
	retry_store *r = kt_xcalloc(1, sizeof(*r));
	r->base.vt = &retry_vt;
	r->base.desc = wrap_desc("retry", inner);
	r->base.cancel = inner->cancel;
	r->inner = inner;
	r->attempts = attempts > 0 ? attempts : RETRY_DEFAULT_ATTEMPTS;
	r->base_ms = base_ms > 0 ? base_ms : RETRY_DEFAULT_BASE_MS;
	/* Jitter only spreads waits; it need not be reproducible. */
	r->rng = (uint64_t)kt_now_ms() ^ ((uint64_t)getpid() << 20) ^ (uint64_t)(uintptr_t)r;
	return &r->base;
}

/* ------------------------------------------------------------------ */
/* faulty */

typedef struct faulty_store {
	kt_store base;
	kt_store *inner;
	uint64_t rng;
	unsigned rate;
	unsigned kinds;
	uint64_t injected;
} faulty_store;

/* One draw per operation: 0 (no fault) or one bit of kinds & allowed. */
static unsigned draw(faulty_store *f, unsigned allowed)
{
	uint64_t x = splitmix64(&f->rng);
	unsigned k = f->kinds & allowed;
	if (x % 100 >= f->rate || !k)
		return 0;
	unsigned bits[4], n = 0;
	for (unsigned b = 1; b <= 8; b <<= 1)
		if (k & b)
			bits[n++] = b;
	return bits[(x >> 32) % n];
}

static kt_code inject(faulty_store *f, unsigned kind, const char *op, const char *name,
                      kt_error *err)
{
	f->injected++;
	return kt_error_set(err, KT_ETRANSIENT, "%s of '%s' in %s: injected fault: %s", op, name,
	                    f->base.desc,
	                    kind == KT_FAULT_BEFORE ? "connection refused" :
	                    kind == KT_FAULT_AFTER ? "connection reset before the answer" :
	                    "timed out");
}

/* For BEFORE/AFTER/TIMEOUT faults: 1 if the operation itself should run. */
static int runs(faulty_store *f, unsigned kind)
{
	if (kind == KT_FAULT_BEFORE)
		return 0;
	if (kind == KT_FAULT_TIMEOUT)
		return (int)(splitmix64(&f->rng) & 1);
	return 1;
}

#define FAULTY_SIMPLE (KT_FAULT_BEFORE | KT_FAULT_AFTER | KT_FAULT_TIMEOUT)

static kt_code faulty_put(kt_store *s, const char *name, const void *data, size_t len,
                          kt_error *err)
{
	faulty_store *f = (faulty_store *)s;
	unsigned kind = draw(f, FAULTY_SIMPLE);
	if (!kind)
		return kt_store_put(f->inner, name, data, len, err);
	if (runs(f, kind)) {
		kt_code rc = kt_store_put(f->inner, name, data, len, err);
		if (rc)
			return rc;
	}
	return inject(f, kind, "put", name, err);
}

static kt_code faulty_put_file(kt_store *s, const char *name, int fd, kt_error *err)
{
	faulty_store *f = (faulty_store *)s;
	unsigned kind = draw(f, FAULTY_SIMPLE);
	if (!kind)
		return kt_store_put_file(f->inner, name, fd, err);
	if (runs(f, kind)) {
		kt_code rc = kt_store_put_file(f->inner, name, fd, err);
		if (rc)
			return rc;
	}
	return inject(f, kind, "put", name, err);
}

static kt_code faulty_get(kt_store *s, const char *name, uint64_t offset, uint64_t length,
                          kt_buf *out, uint64_t *size, kt_error *err)
{
	faulty_store *f = (faulty_store *)s;
	unsigned kind = draw(f, FAULTY_SIMPLE | KT_FAULT_SHORT_READ);
	if (kind && !runs(f, kind == KT_FAULT_SHORT_READ ? KT_FAULT_AFTER : kind))
		return inject(f, kind, "get", name, err);
	kt_code rc = kt_store_get(f->inner, name, offset, length, out, err);
	if (rc)
		return rc;
	/* The inner dispatcher checked the range, so this size agrees with it. */
	*size = length ? offset + length : offset + out->len;
	if (kind == KT_FAULT_SHORT_READ) {
		if (out->len) {
			/* Drop a tail, as a connection closed early would; the
			 * dispatcher above must notice. */
			f->injected++;
			out->len = (size_t)(splitmix64(&f->rng) % out->len);
			out->data[out->len] = '\0';
		}
		return KT_OK;
	}
	if (kind) {
		kt_buf_reset(out);
		return inject(f, kind, "get", name, err);
	}
	return KT_OK;
}

static kt_code faulty_stat(kt_store *s, const char *name, uint64_t *size, kt_error *err)
{
	faulty_store *f = (faulty_store *)s;
	unsigned kind = draw(f, FAULTY_SIMPLE);
	if (kind && !runs(f, kind))
		return inject(f, kind, "stat", name, err);
	kt_code rc = kt_store_stat(f->inner, name, size, err);
	if (kind && !rc)
		return inject(f, kind, "stat", name, err);
	return rc;
}

static kt_code faulty_remove(kt_store *s, const char *name, kt_error *err)
{
	faulty_store *f = (faulty_store *)s;
	unsigned kind = draw(f, FAULTY_SIMPLE);
	if (kind && !runs(f, kind))
		return inject(f, kind, "remove", name, err);
	kt_code rc = kt_store_remove(f->inner, name, err);
	if (kind && !rc)
		return inject(f, kind, "remove", name, err);
	return rc;
}

typedef struct cut_list {
	faulty_store *f;
	kt_store_list_fn fn;
	void *ctx;
	uint64_t left;      /* entries to deliver before the fault; UINT64_MAX = none */
	const char *prefix;
} cut_list;

static kt_code cut_entry(void *ctx, const kt_store_entry *e, kt_error *err)
{
	cut_list *c = ctx;
	if (c->left == 0)
		return inject(c->f, KT_FAULT_AFTER, "list", *c->prefix ? c->prefix : "(all)", err);
	if (c->left != UINT64_MAX)
		c->left--;
	return c->fn(c->ctx, e, err);
}

static kt_code faulty_list(kt_store *s, const char *prefix, kt_store_list_fn fn, void *ctx,
                           kt_error *err)
{
	faulty_store *f = (faulty_store *)s;
	const char *what = *prefix ? prefix : "(all)";
	unsigned kind = draw(f, FAULTY_SIMPLE);
	if (kind == KT_FAULT_BEFORE || kind == KT_FAULT_TIMEOUT)
		return inject(f, kind, "list", what, err);
	/* AFTER: cut the listing after a few entries (or at its end). */
	cut_list c = { f, fn, ctx, UINT64_MAX, prefix };
	if (kind == KT_FAULT_AFTER)
		c.left = splitmix64(&f->rng) % 1500;
	uint64_t before = f->injected;
	kt_code rc = kt_store_list(f->inner, prefix, cut_entry, &c, err);
	if (!rc && kind == KT_FAULT_AFTER && f->injected == before)
		return inject(f, kind, "list", what, err);
	return rc;
}

static void faulty_free(kt_store *s)
{
	faulty_store *f = (faulty_store *)s;
	kt_store_free(f->inner);
	free(f);
}

/* The clone draws its own faults: from the next number of s's sequence. */
static kt_code faulty_clone(kt_store *s, kt_store **out, kt_error *err)
{
	faulty_store *f = (faulty_store *)s;
	kt_store *inner;
	kt_code rc = kt_store_clone(f->inner, &inner, err);
	if (!rc)
		*out = kt_store_faulty_wrap(inner, splitmix64(&f->rng), f->rate, f->kinds);
	return rc;
}

static const kt_store_vtable faulty_vt = {
	.kind = "faulty",
	.put = faulty_put,
	.put_file = faulty_put_file,
	.get = faulty_get,
	.stat = faulty_stat,
	.list = faulty_list,
	.remove = faulty_remove,
	.clone = faulty_clone,
	.free = faulty_free,
};

kt_store *kt_store_faulty_wrap(kt_store *inner, uint64_t seed, unsigned rate_percent,
                               unsigned kinds)
{
	faulty_store *f = kt_xcalloc(1, sizeof(*f));
	f->base.vt = &faulty_vt;
	f->base.desc = wrap_desc("faulty", inner);
	f->base.cancel = inner->cancel;
	f->inner = inner;
	f->rng = seed;
	f->rate = rate_percent > 100 ? 100 : rate_percent;
	f->kinds = kinds & KT_FAULT_ALL;
	return &f->base;
}

/* ------------------------------------------------------------------ */
/* Counters, looked up through any stack of wrappers. */

uint64_t kt_store_faults_injected(const kt_store *s)
{
	uint64_t n = 0;
	while (s) {
		if (s->vt == &faulty_vt) {
			n += ((const faulty_store *)s)->injected;
			s = ((const faulty_store *)s)->inner;
		} else if (s->vt == &retry_vt) {
			s = ((const retry_store *)s)->inner;
		} else {
			break;
		}
	}
	return n;
}

uint64_t kt_store_retries(const kt_store *s)
{
	uint64_t n = 0;
	while (s) {
		if (s->vt == &retry_vt) {
			n += ((const retry_store *)s)->retries;
			s = ((const retry_store *)s)->inner;
		} else if (s->vt == &faulty_vt) {
			s = ((const faulty_store *)s)->inner;
		} else {
			break;
		}
	}
	return n;
}
