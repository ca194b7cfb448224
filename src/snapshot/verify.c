/*
 * verify.c - `etcd snapshot verify`: trailer, full bbolt walk, etcd bucket
 * checks and the Kubernetes object census, in one pass over the pages.
 *
 * Owns: the meaning of etcd's buckets as verify checks them:
 *   - "key": every key is a revision, 8-byte big-endian main, '_', 8-byte
 *     big-endian sub (17 bytes), or 18 bytes ending in 't' for a tombstone;
 *     revisions strictly increase; every non-empty value is an
 *     mvccpb.KeyValue (1 key, 2 create_revision, 3 mod_revision, 4 version,
 *     5 value, 6 lease) and a put's mod_revision is its main revision.  An
 *     empty value is the marker `etcdutl snapshot restore --bump-revision`
 *     writes.
 *   - "meta": consistent_index is 8 bytes (required), term is 8 bytes.
 * Status's own checks (revision keys parse, values unmarshal) run first, in
 * the shared accumulator; verify adds the stricter ones above.  The census
 * (keyset.c) counts live user keys under /registry/ by resource.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "snapshot_int.h"

typedef unsigned long long ull;

static uint64_t be64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/* ------------------------------------------------------------------ */
/* The verify visitor */

typedef struct verify_ctx {
	kt_status_acc acc;
	kt_snapshot_report *rep;
	int top;
	int seen_key, seen_meta, seen_ci;
	int have_prev;
	uint64_t prev_main, prev_sub;
} verify_ctx;

static int slice_is(const kt_bbolt_slice *s, const char *lit)
{
	size_t n = strlen(lit);
	return s->len == n && memcmp(s->data, lit, n) == 0;
}

static kt_code check_revision(verify_ctx *v, const kt_bbolt_entry *e, kt_error *err)
{
	const uint8_t *k = e->key.data;
	size_t n = e->key.len;
	if (e->flags & KT_BBOLT_BUCKET)
		return kt_error_set(err, KT_ECORRUPT,
		                    "page %llu: bucket 'key' holds a nested bucket at byte %llu; etcd "
		                    "stores only revisions there", (ull)e->pgid, (ull)e->offset);
	int tomb = v->acc.last_tomb;
	if (n == 18 && !tomb)
		return kt_error_set(err, KT_ECORRUPT,
		                    "page %llu: key at byte %llu in bucket 'key' is 18 bytes but does "
		                    "not end in 't' (the tombstone mark)", (ull)e->pgid, (ull)e->offset);
	uint64_t main = be64(k), sub = be64(k + 9);
	if (main == 0)
		return kt_error_set(err, KT_ECORRUPT,
		                    "page %llu: key at byte %llu in bucket 'key' holds revision 0, "
		                    "which etcd never writes", (ull)e->pgid, (ull)e->offset);
	if (v->have_prev && (main < v->prev_main || (main == v->prev_main && sub <= v->prev_sub)))
		return kt_error_set(err, KT_ECORRUPT,
		                    "page %llu: revision %llu.%llu at byte %llu does not come after "
		                    "revision %llu.%llu (a put and a tombstone for one revision?)",
		                    (ull)e->pgid, (ull)main, (ull)sub, (ull)e->offset,
		                    (ull)v->prev_main, (ull)v->prev_sub);
	v->have_prev = 1;
	v->prev_main = main;
	v->prev_sub = sub;
	const kt_mvcc_kv *kv = &v->acc.last_kv;
	if (!tomb && e->value.len && kv->has_mod && kv->mod_revision != (int64_t)main)
		return kt_error_set(err, KT_ECORRUPT,
		                    "page %llu: revision %llu.%llu (key at byte %llu) holds "
		                    "mod_revision %lld; a put is stored under its mod_revision",
		                    (ull)e->pgid, (ull)main, (ull)sub, (ull)e->offset,
		                    (long long)kv->mod_revision);
	return KT_OK;
}

static kt_code check_meta(verify_ctx *v, const kt_bbolt_entry *e, kt_error *err)
{
	int ci = slice_is(&e->key, "consistent_index");
	if (!ci && !slice_is(&e->key, "term"))
		return KT_OK;
	const char *name = ci ? "consistent_index" : "term";
	if ((e->flags & KT_BBOLT_BUCKET) || e->value.len != 8)
		return kt_error_set(err, KT_ECORRUPT,
		                    "page %llu: %s at byte %llu in bucket 'meta' is %s, expected an "
		                    "8-byte big-endian integer", (ull)e->pgid, name, (ull)e->offset,
		                    (e->flags & KT_BBOLT_BUCKET) ? "a bucket" : "the wrong size");
	uint64_t x = be64(e->value.data);
	if (ci) {
		v->rep->consistent_index = x;
		v->seen_ci = 1;
	} else {
		v->rep->term = x;
	}
	return KT_OK;
}

static kt_code verify_visit(void *ctx, const kt_bbolt_entry *e, kt_error *err)
{
	verify_ctx *v = ctx;
	kt_code c = kt_status_acc_visit(&v->acc, e, err);
	if (c)
		return c;
	if (e->depth == 0) {
		v->top = v->acc.top;
		v->seen_key |= v->top == KT_TOP_KEY;
		v->seen_meta |= v->top == KT_TOP_META;
		return KT_OK;
	}
	if (e->depth != 1)
		return KT_OK;
	if (v->top == KT_TOP_KEY)
		return check_revision(v, e, err);
	if (v->top == KT_TOP_META)
		return check_meta(v, e, err);
	return KT_OK;
}

/* ------------------------------------------------------------------ */

void kt_snapshot_report_release(kt_snapshot_report *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_resources; i++)
		free(r->resources[i].resource);
	free(r->resources);
	r->resources = NULL;
	r->n_resources = 0;
}

static kt_code verify_db(int fd, uint64_t size, kt_snapshot_report *out, kt_error *err)
{
	kt_bbolt *db = NULL;
	kt_code c = kt_bbolt_open(&db, fd, kt_snapshot_db_size(size), err);
	if (c)
		return c;
	const kt_bbolt_info *in = kt_bbolt_get_info(db);
	out->page_size = in->page_size;
	out->n_pages = in->n_pages;
	out->txid = in->txid;
	out->has_freelist = in->freelist != KT_BBOLT_NO_FREELIST;

	verify_ctx *v = calloc(1, sizeof(*v));
	if (!v) {
		kt_bbolt_free(db);
		return kt_error_set(err, KT_ENOMEM, "out of memory");
	}
	kt_status_acc_init(&v->acc, &out->status, 1);
	v->rep = out;
	kt_bbolt_stats st;
	c = kt_bbolt_walk(db, verify_visit, v, &st, err);
	kt_status_acc_finish(&v->acc, in);
	out->n_reachable = st.n_reachable;
	out->n_free = st.n_free;
	out->n_buckets = st.n_buckets;
	if (!c && !v->seen_key)
		c = kt_error_set(err, KT_ECORRUPT,
		                 "no bucket 'key': this bbolt file is not an etcd database");
	if (!c && !v->seen_ci)
		c = kt_error_set(err, KT_ECORRUPT,
		                 "bucket 'meta' %s: etcd writes it with every applied entry",
		                 v->seen_meta ? "has no consistent_index" : "is missing");
	if (!c)
		c = kt_keyset_census(&v->acc.keys, out, err);
	kt_status_acc_release(&v->acc);
	free(v);
	kt_bbolt_free(db);
	return c;
}

/* The trailer's SHA-256 is a full read of the file: on files worth it, it
 * runs on a second thread while the walk reads the pages (both use pread on
 * the shared descriptor).  The trailer's verdict is reported first. */
typedef struct trailer_job {
	int fd;
	uint64_t size;
	kt_trailer trailer;
	kt_code code;
	kt_error err;
} trailer_job;

static void *trailer_thread(void *arg)
{
	trailer_job *j = arg;
	j->code = kt_snapshot_check_trailer(j->fd, j->size, &j->trailer, &j->err);
	return NULL;
}

#define PARALLEL_TRAILER_MIN (8u << 20)

kt_code kt_snapshot_verify_fd(int fd, uint64_t size, const char *name, kt_snapshot_report *out,
                              kt_error *err)
{
	memset(out, 0, sizeof(*out));
	out->file_size = size;
	kt_code c = KT_OK;
	if (size == 0) {
		c = kt_error_set(err, KT_ECORRUPT, "empty: the file has 0 bytes, not a snapshot");
	} else if (size % 512 != 0 && size % 512 != 32) {
		c = kt_error_set(err, KT_ECORRUPT,
		                 "%llu bytes is not a snapshot size: neither whole 512-byte sectors "
		                 "(a raw db) nor 32 bytes more (a snapshot with its SHA-256 trailer); "
		                 "truncated?", (ull)size);
	} else {
		trailer_job job = { fd, size, KT_TRAILER_NONE, KT_OK, { KT_OK, 0, 0, "" } };
		pthread_t tid;
		int threaded = size % 512 == 32 && size >= PARALLEL_TRAILER_MIN &&
		               pthread_create(&tid, NULL, trailer_thread, &job) == 0;
		if (!threaded) {
			c = kt_snapshot_check_trailer(fd, size, &out->trailer, err);
			if (!c)
				c = verify_db(fd, size, out, err);
		} else {
			kt_error walk_err;
			kt_error_clear(&walk_err);
			kt_code walk = verify_db(fd, size, out, &walk_err);
			pthread_join(tid, NULL);
			out->trailer = job.trailer;
			if (job.code) {
				c = job.code;
				*err = job.err;
			} else if (walk) {
				c = walk;
				*err = walk_err;
			}
		}
	}
	if (c)
		kt_snapshot_wrap(err, name);
	return c;
}

kt_code kt_snapshot_verify(const char *path, kt_snapshot_report *out, kt_error *err)
{
	memset(out, 0, sizeof(*out));
	int fd;
	uint64_t size;
	kt_code c = kt_snapshot_open_file(path, &fd, &size, err);
	if (c)
		return c;
	c = kt_snapshot_verify_fd(fd, size, path, out, err);
	close(fd);
	return c;
}
