/*
 * restore.c - snapshots back to files: ls and restore.
 *
 * Restore walks the snapshot's trees depth first, a directory one tree
 * blob at a time (dirtree.c: a tree index's parts in name order), so a
 * directory of any size holds one part in memory.  A file is written as
 * <dir>/.<name>.kontinuity-part (0600), blob by blob (each authenticated under
 * its id and type), made durable, given its mode and times, then
 * renamed to its name: a name only ever holds a complete file.  Directories
 * get their mode and times after their contents.  Names come from decoded
 * trees, which refuse anything but single safe path components, and every
 * open uses O_NOFOLLOW relative to a directory descriptor, so a snapshot
 * cannot write outside the target.  This file walks the trees and plans
 * the work (big files on a planner thread of its own); restore_write.c has
 * the threads that do it (restore_int.h: the pipeline).  (Listing and
 * resolving snapshots: snapshots.c.)
 */
#include <dirent.h>
#include <pthread.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "delta.h"
#include "restore_int.h"

/* ------------------------------------------------------------------ */
/* Walking trees. */

static kt_code ls_tree(kt_archive *a, const uint8_t id[32], char *path, size_t plen,
                       kt_archive_ls_fn fn, void *ctx, int depth, kt_error *err)
{
	if (depth > 256)
		return kt_error_set(err, KT_ECORRUPT, "trees nest deeper than 256 levels");
	kt_archive_dir dir;
	kt_repo_tree t = { 0 };
	kt_code c = kt_archive_dir_open(a, id, 0, NULL, NULL, &dir, err);   /* (no ids needed) */
	while (!c && !(c = kt_archive_dir_next(&dir, &t, err)) && t.n) {   /* part by part */
		for (size_t i = 0; !c && i < t.n; i++) {
			const kt_repo_node *nd = &t.nodes[i];
			size_t n = strlen(nd->name);
			if (plen + n + 2 >= 4096) {
				c = kt_error_set(err, KT_ELIMIT, "path too long in snapshot");
				break;
			}
			path[plen] = '/';
			memcpy(path + plen + 1, nd->name, n + 1);
			fn(ctx, path, nd->type, nd->mode, nd->size, nd->mtime,
			   nd->has_delta ? nd->delta_depth : 0);
			if (nd->type == KT_NODE_DIR)
				c = ls_tree(a, nd->subtree, path, plen + 1 + n, fn, ctx, depth + 1, err);
			path[plen] = '\0';
		}
		kt_repo_tree_release(&t);
	}
	kt_repo_tree_release(&t);
	kt_archive_dir_close(&dir);
	return c;
}

kt_code kt_archive_ls(kt_archive *a, const char *id, kt_archive_ls_fn fn, void *ctx,
                      kt_error *err)
{
	kt_repo_snapshot s;
	kt_code c = kt_archive_load_snapshot(a, id, &s, err);
	if (c)
		return c;
	char path[4096] = "";
	c = ls_tree(a, s.tree, path, 0, fn, ctx, 0, err);
	kt_repo_snapshot_release(&s);
	return c;
}

/* ------------------------------------------------------------------ */
/* Restore. */

int kt_archive_parse_time(const char *s, struct timespec *ts)
{
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!p)
		return -1;
	long ns = 0;
	if (*p == '.') {
		long scale = 100000000;
		for (p++; *p >= '0' && *p <= '9'; p++) {
			ns += (*p - '0') * scale;
			scale /= 10;
		}
	}
	if (*p != 'Z')
		return -1;
	ts->tv_sec = timegm(&tm);
	ts->tv_nsec = ns;
	return 0;
}
static void flush_pending(rctx *r, rplan *p);

/* Wait until every big file is planned, every queued job written and every
 * finished file named; the first error of any thread, if there was one. */
static kt_code wait_idle(rctx *r, kt_error *err)
{
	flush_pending(r, &r->walk);
	pthread_mutex_lock(&r->mu);
	r->flush = 1;
	pthread_cond_signal(&r->cv_fin);
	while (!r->stop && (r->n_bq || r->bq_busy || r->n_planned || r->reading || r->n_ready ||
	                    r->busy || r->n_fin || r->naming))
		pthread_cond_wait(&r->cv_free, &r->mu);
	r->flush = 0;
	kt_code c = r->err_code;
	if (c)
		*err = r->err;
	pthread_mutex_unlock(&r->mu);
	return c;
}

static void progress(rctx *r)
{
	if (!r->o || !r->o->progress)
		return;
	pthread_mutex_lock(&r->mu);
	uint64_t files = r->res->files, bytes = r->res->bytes;
	pthread_mutex_unlock(&r->mu);
	r->o->progress(r->o->progress_ctx, files, bytes, r->path);
}

static kt_code canceled(rctx *r, kt_error *err)
{
	if (r->o && r->o->cancel && *r->o->cancel)
		return kt_error_set(err, KT_ECANCELED, "interrupted");
	return KT_OK;
}

/* Does the blob at l go into p's pending job: the same pack, the span
 * still at most RANGE_MAX bytes, no gap of more than GAP_MAX between it
 * and the span, and not there already (a blob that recurs takes a new
 * job: its bytes are decrypted in place, once)?  Backups seal on several
 * threads and files side by side, so a file's blobs lie near each other
 * in a pack, not always in order or back to back; the smaller gaps are
 * read too. */
static int fits(rctx *r, const rplan *p, const kt_loc *l)
{
	if (p->pend < 0)
		return 0;
	const rjob *j = &r->jobs[p->pend];
	uint64_t lo = l->offset < j->base ? l->offset : j->base;
	uint64_t hi = l->offset + l->length > j->end ? l->offset + l->length : j->end;
	if (l->pack != j->pack || hi - lo > RANGE_MAX)
		return 0;
	if (l->offset >= j->end ? l->offset - j->end > GAP_MAX
	                        : l->offset + l->length < j->base &&
	                          j->base - (l->offset + l->length) > GAP_MAX)
		return 0;
	if (l->offset < j->end && l->offset + l->length > j->base)
		for (size_t k = 0; k < j->n; k++)
			if (j->p[k].e.offset == l->offset)
				return 0;
	return 1;
}

/* Hand p's pending job to the readers. */
static void flush_pending(rctx *r, rplan *p)
{
	if (p->pend < 0)
		return;
	pthread_mutex_lock(&r->mu);
	r->planned[(r->p_head + r->n_planned++) % N_JOBS] = p->pend;
	p->pend = -1;
	pthread_cond_signal(&r->cv_io);
	pthread_mutex_unlock(&r->mu);
}

/* Under mu, once stopped: the first error (the caller's own may not be
 * there: then "interrupted"). */
static kt_code stopped_locked(rctx *r, kt_error *err)
{
	if (!r->err_code)
		return kt_error_set(err, KT_ECANCELED, "interrupted");
	*err = r->err;
	return r->err_code;
}

/* Under mu: may p take one more job?  While the planner has work, the
 * walk holds at most walk_share jobs and the planner the others, so
 * neither waits behind the other's backlog. */
static int may_take(const rctx *r, const rplan *p)
{
	int share = p == &r->big ? N_JOBS - r->walk_share
	            : r->n_bq || r->bq_busy ? r->walk_share : N_JOBS;
	return r->n_free && p->jobs < share;
}

/* Take a free job (waiting for one) as p's pending job, starting at l. */
static kt_code take_job(rctx *r, rplan *p, const kt_loc *l, kt_error *err)
{
	pthread_mutex_lock(&r->mu);
	while (!may_take(r, p) && !r->stop)
		pthread_cond_wait(&r->cv_free, &r->mu);
	if (r->stop) {
		kt_code c = stopped_locked(r, err);
		pthread_mutex_unlock(&r->mu);
		return c;
	}
	p->pend = r->free_jobs[--r->n_free];
	p->jobs++;
	pthread_mutex_unlock(&r->mu);
	rjob *j = &r->jobs[p->pend];
	j->plan = p;
	j->pack = l->pack;
	j->base = l->offset;
	j->end = l->offset + l->length;
	j->n = 0;
	return KT_OK;
}

/* Tree and content list reads take the lock of the archive's store (the
 * walk and the planner share it; so does a reader without a handle of its
 * own). */
static void store_lock(void *ctx, int on)
{
	rctx *r = ctx;
	if (on)
		pthread_mutex_lock(&r->smu);
	else
		pthread_mutex_unlock(&r->smu);
}

/* A new file for node nd in d (its .part made here when it has no
 * blobs), counted in d's references. */
static kt_code new_file(rctx *r, rdir *d, const kt_repo_node *nd, rfile **out, kt_error *err)
{
	/* Every blob indexed, and they add up to the size the tree records:
	 * checked here for inline content; a file with content lists is
	 * checked as its lists are read, a list blob at a time (restore must
	 * not hold a big file's ids whole), and fails before it is named. */
	kt_archive *a = r->a;
	uint64_t total = nd->n_content_list ? nd->size : 0;
	for (size_t i = 0; !nd->n_content_list && i < nd->n_content; i++) {
		kt_loc loc, *l = &loc;
		if (!kt_archive_find(a, nd->content[i], &loc) || l->pack >= a->n_packs) {
			char hex[65];
			kt_hex(hex, nd->content[i], 32);
			return kt_error_set(err, KT_ECORRUPT, "blob %.16s is in no index (the repository "
			                    "is missing data; run `kontinuity repo check`)", hex);
		}
		total += l->raw_length;
	}
	if (total != nd->size)
		return kt_error_set(err, KT_ECORRUPT, "'%s': its blobs hold %llu bytes, the tree says "
		                    "%llu", r->path, (unsigned long long)total,
		                    (unsigned long long)nd->size);
	rfile *f = kt_xcalloc(1, sizeof(*f));
	snprintf(f->part, sizeof(f->part), ".%s.kontinuity-part", nd->name);
	f->fd = -1;
	if (!nd->n_content && !nd->n_content_list) {   /* no job will make it: made here */
		f->fd = openat(d->fd, f->part, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		               0600);
		if (f->fd < 0) {
			free(f);
			return kt_error_sys(err, kt_code_from_errno(errno), errno, "cannot create '%s'",
			                    r->path);
		}
		f->made = 1;
	}
	f->dir = d;
	f->name = kt_xstrdup(nd->name);
	f->path = kt_xstrdup(r->path);
	f->mode = nd->mode;
	f->uid = nd->uid;
	f->gid = nd->gid;
	memcpy(f->mtime, nd->mtime, sizeof(f->mtime));
	f->size = total;
	pthread_mutex_lock(&r->mu);
	d->refs++;
	f->next = r->files;
	if (r->files)
		r->files->prev = f;
	r->files = f;
	pthread_mutex_unlock(&r->mu);
	*out = f;
	return KT_OK;
}

/* A file being planned: its blob ids in order, and the next blob. */
typedef struct rstream {
	rfile *f;
	kt_archive_ids ids;
	uint64_t off;                /* where head goes in the file */
	kt_loc head;
} rstream;

/* Move s to its next blob: 1 (in s->head), 0 at its end, -1 on an error
 * (*c, err). */
static int stream_next(rctx *r, rstream *s, kt_code *c, kt_error *err)
{
	const uint8_t *id;
	int more = kt_archive_ids_next(&s->ids, &id, err);
	if (more < 0) {
		*c = KT_ECORRUPT;   /* (err says which list) */
		return -1;
	}
	if (!more) {
		if (s->off == s->f->size)
			return 0;
		*c = kt_error_set(err, KT_ECORRUPT, "'%s': its blobs hold %llu bytes, the tree says "
		                  "%llu", s->f->path, (unsigned long long)s->off,
		                  (unsigned long long)s->f->size);
		return -1;
	}
	if ((*c = canceled(r, err)))
		return -1;
	if (!kt_archive_find(r->a, id, &s->head) || s->head.pack >= r->a->n_packs) {   /* (lists) */
		char hex[65];
		kt_hex(hex, id, 32);
		*c = kt_error_set(err, KT_ECORRUPT, "blob %.16s is in no index (the repository is "
		                  "missing data; run `kontinuity repo check`)", hex);
		return -1;
	}
	if (s->off + s->head.raw_length > s->f->size) {
		*c = kt_error_set(err, KT_ECORRUPT, "'%s': its blobs hold more than %llu bytes, the "
		                  "tree says %llu", s->f->path, (unsigned long long)s->off,
		                  (unsigned long long)s->f->size);
		return -1;
	}
	return 1;
}

/* Start s on file f (node nd, which must outlive s): as stream_next. */
static int stream_open(rctx *r, rstream *s, rfile *f, const kt_repo_node *nd, kt_code *c,
                       kt_error *err)
{
	s->f = f;
	s->off = 0;
	kt_archive_ids_open(&s->ids, r->a, nd, store_lock, r);
	return stream_next(r, s, c, err);
}

/* Put s's next blob into p's pending job (a new one when it does not fit). */
static kt_code plan_blob(rctx *r, rplan *p, rstream *s, kt_error *err)
{
	const kt_loc *l = &s->head;
	if (!fits(r, p, l)) {
		flush_pending(r, p);
		kt_code c = take_job(r, p, l, err);
		if (c)
			return c;
	}
	rjob *job = &r->jobs[p->pend];
	if (job->n == job->cap) {
		job->cap = job->cap ? job->cap * 2 : 64;
		job->p = realloc(job->p, job->cap * sizeof(*job->p));
		if (!job->p)
			abort();
	}
	/* A job keeps each file's pieces back to back (they are consecutive
	 * blobs of the file): the planner interleaves several files' blobs in
	 * pack order, and a worker writes a file's run as one O_DIRECT write
	 * where blob by blob would be many small ones.  f->jobs counts the
	 * jobs f is in (a worker counts them down the same way). */
	size_t at = job->n;
	if (s->f->in_job == job && (!job->n || job->p[job->n - 1].f != s->f))
		for (size_t k = job->n; k-- > 0;)
			if (job->p[k].f == s->f) {
				at = k + 1;
				break;
			}
	int counted = at && job->p[at - 1].f == s->f;
	if (at < job->n)
		memmove(&job->p[at + 1], &job->p[at], (job->n - at) * sizeof(*job->p));
	job->n++;
	s->f->in_job = job;
	rpiece *pc = &job->p[at];
	pc->e.type = l->type;
	pc->e.compression = l->compression;
	pc->e.offset = l->offset;
	pc->e.length = l->length;
	pc->e.raw_length = l->raw_length;
	memcpy(pc->e.id, l->id, 32);
	pc->f = s->f;
	pc->file_off = s->off;
	if (l->offset < job->base)
		job->base = l->offset;
	if (l->offset + l->length > job->end)
		job->end = l->offset + l->length;
	s->off += l->raw_length;
	if (!counted) {
		pthread_mutex_lock(&r->mu);
		s->f->jobs++;
		pthread_mutex_unlock(&r->mu);
	}
	return KT_OK;
}

/* s is planned (c: or failed): the file is done at once when its jobs
 * were all written before its planning ended. */
static kt_code stream_close(rctx *r, rstream *s, kt_code c, kt_error *err)
{
	rfile *f = s->f;
	kt_archive_ids_close(&s->ids);
	pthread_mutex_lock(&r->mu);
	/* A file with a blob missing must never get its name (its other jobs
	 * may still finish): stop everything, before a worker can see the file
	 * as submitted. */
	if (c)
		kt_restore_fail_locked(r, c, err);
	else
		r->res->bytes += f->size;
	f->submitted = 1;
	int done = !c && !r->stop && f->jobs == 0;
	pthread_mutex_unlock(&r->mu);
	if (done)
		c = kt_restore_file_done(r, f, err);
	return c;
}

/* Plan the jobs of f (node nd) on the walk's stream, blob after blob. */
static kt_code plan_file(rctx *r, rfile *f, const kt_repo_node *nd, kt_error *err)
{
	rstream s;
	kt_code c = KT_OK;
	int more = stream_open(r, &s, f, nd, &c, err);
	while (more > 0 && !(c = plan_blob(r, &r->walk, &s, err)))
		more = stream_next(r, &s, &c, err);
	return stream_close(r, &s, c, err);
}

/* Hand big file f (node nd, copied) to the planner, waiting for room. */
static kt_code hand_over(rctx *r, rfile *f, const kt_repo_node *nd, kt_error *err)
{
	rbig b = { f, *nd };
	b.nd.name = kt_xstrdup(nd->name);
	b.nd.target = b.nd.delta_name = NULL;
	b.nd.content = b.nd.content_list = NULL;
	if (nd->n_content) {
		b.nd.content = kt_xmalloc(nd->n_content * 32);
		memcpy(b.nd.content, nd->content, nd->n_content * 32);
	}
	if (nd->n_content_list) {
		b.nd.content_list = kt_xmalloc(nd->n_content_list * 32);
		memcpy(b.nd.content_list, nd->content_list, nd->n_content_list * 32);
	}
	pthread_mutex_lock(&r->mu);
	while (r->n_bq == BIG_QUEUE && !r->stop)
		pthread_cond_wait(&r->cv_free, &r->mu);
	if (r->stop) {
		kt_code c = stopped_locked(r, err);
		pthread_mutex_unlock(&r->mu);
		kt_repo_node_release(&b.nd);
		return c;
	}
	r->bq[(r->bq_head + r->n_bq++) % BIG_QUEUE] = b;
	pthread_cond_signal(&r->cv_bq);
	pthread_mutex_unlock(&r->mu);
	return KT_OK;
}

/* A big file being planned, on the heap: its ids iterator points at its node. */
typedef struct plactive {
	rbig b;
	rstream s;
} plactive;

/* Of the n active files, the one whose next blob is of kind (1: compressed)
 * and lies first (pack, offset); n when none is. */
static size_t first_of_kind(plactive *const *act, size_t n, int kind)
{
	size_t k = n;
	for (size_t i = 0; i < n; i++) {
		const kt_loc *h = &act[i]->s.head;
		if ((h->compression != 0) != kind)
			continue;
		if (k == n || h->pack < act[k]->s.head.pack ||
		    (h->pack == act[k]->s.head.pack && h->offset < act[k]->s.head.offset))
			k = i;
	}
	return k;
}

/* The planner: up to BIG_ACTIVE big files at once, merged by where their
 * blobs lie (pack, offset).  Backups seal big files side by side, so their
 * blobs interleave in the packs: planned one file at a time, each job read
 * the other files' blobs in its span too, and read them again for their
 * own jobs (2.3 times the bytes in the benchmark).  Merged, a job takes
 * every blob of its span that an active file needs.  Compressed blobs and
 * the others are merged apart and planned in turn (see AHEAD_MAX), so that
 * the CPU-bound and the disk-bound files finish together. */
void *kt_restore_planner_main(void *arg)
{
	rctx *r = arg;
	plactive *act[BIG_ACTIVE];
	size_t n = 0;
	int kind = 0;         /* the kind of blob being planned (1: compressed) */
	int64_t ahead = 0;    /* raw bytes planned of compressed blobs minus the others */
	kt_code c = KT_OK;
	kt_error err;
	for (;;) {
		if (!n)
			flush_pending(r, &r->big);   /* nothing more can join its last job */
		pthread_mutex_lock(&r->mu);
		if (!n) {
			r->bq_busy = 0;
			pthread_cond_broadcast(&r->cv_free);   /* idle (wait_idle), the walk's share */
			while (!r->n_bq && !r->stop && !r->closing)
				pthread_cond_wait(&r->cv_bq, &r->mu);
		}
		if (r->stop || (!n && !r->n_bq)) {
			pthread_mutex_unlock(&r->mu);
			break;
		}
		size_t first_new = n;
		for (; n < BIG_ACTIVE && r->n_bq; n++) {
			act[n] = kt_xcalloc(1, sizeof(*act[n]));
			act[n]->b = r->bq[r->bq_head];
			r->bq_head = (r->bq_head + 1) % BIG_QUEUE;
			r->n_bq--;
			r->bq_busy = 1;
		}
		if (n > first_new)
			pthread_cond_broadcast(&r->cv_free);   /* room in the queue */
		pthread_mutex_unlock(&r->mu);

		for (size_t i = first_new; i < n && !c;) {
			plactive *x = act[i];
			if (stream_open(r, &x->s, x->b.f, &x->b.nd, &c, &err) > 0) {
				i++;
				continue;
			}
			c = stream_close(r, &x->s, c, &err);   /* no blobs (done), or failed */
			kt_repo_node_release(&x->b.nd);
			free(x);
			act[i] = act[--n];
		}
		if (c || !n)
			continue;   /* (failed: stopped) */
		/* Stay with the current kind while its next blob joins the
		 * pending job; at a job's end take the kind that is behind. */
		size_t k = first_of_kind(act, n, kind);
		if (k == n || !fits(r, &r->big, &act[k]->s.head)) {
			int other = first_of_kind(act, n, !kind) < n;
			if (other && (k == n || (kind ? ahead > 0 : ahead < 0)))
				kind = !kind;
			k = first_of_kind(act, n, kind);
		}
		const kt_loc *h = &act[k]->s.head;
		ahead += (kind ? 1 : -1) * (int64_t)h->raw_length;
		if (ahead > AHEAD_MAX || ahead < -AHEAD_MAX)
			ahead = ahead > 0 ? AHEAD_MAX : -AHEAD_MAX;
		int more = (c = plan_blob(r, &r->big, &act[k]->s, &err)) ? -1
		           : stream_next(r, &act[k]->s, &c, &err);
		if (more <= 0) {
			c = stream_close(r, &act[k]->s, c, &err);
			kt_repo_node_release(&act[k]->b.nd);
			free(act[k]);
			act[k] = act[--n];
		}
	}
	/* Stopped: the files stay on r->files for kt_restore_stop. */
	for (size_t i = 0; i < n; i++) {
		if (act[i]->s.f)   /* (opened) */
			kt_archive_ids_close(&act[i]->s.ids);
		kt_repo_node_release(&act[i]->b.nd);
		free(act[i]);
	}
	return NULL;
}

/* The file of node nd in d: its jobs planned here, or by the planner. */
static kt_code restore_file(rctx *r, rdir *d, const kt_repo_node *nd, kt_error *err)
{
	rfile *f = NULL;
	kt_code c = new_file(r, d, nd, &f, err);
	if (c)
		return c;
	if (r->big_file && nd->size >= r->big_file)
		return hand_over(r, f, nd, err);
	c = plan_file(r, f, nd, err);
	if (!c)
		progress(r);
	return c;
}

static kt_code restore_tree(rctx *r, rdir *d, const uint8_t id[32], size_t plen, int depth,
                            kt_error *err)
{
	if (depth > 256)
		return kt_error_set(err, KT_ECORRUPT, "trees nest deeper than 256 levels");
	kt_archive_dir dir;
	kt_repo_tree t = { 0 };
	/* Content lists stay unread here: restore_file reads them as it plans. */
	kt_code c = kt_archive_dir_open(r->a, id, 0, store_lock, r, &dir, err);
	size_t i = 0;
	for (;; i++) {
		if (!c && i == t.n) {   /* the next part of the directory (a tree index) */
			kt_repo_tree_release(&t);
			i = 0;
			c = kt_archive_dir_next(&dir, &t, err);
		}
		if (c || i == t.n)
			break;
		const kt_repo_node *nd = &t.nodes[i];
		size_t n = strlen(nd->name);
		if (plen + n + 2 >= sizeof(r->path)) {
			c = kt_error_set(err, KT_ELIMIT, "path too long in snapshot");
			break;
		}
		r->path[plen] = '/';
		memcpy(r->path + plen + 1, nd->name, n + 1);
		if (nd->type == KT_NODE_FILE && nd->has_delta) {
			/* Decoded here, whole, under the store's lock (delta.c),
			 * which takes the frame's ids as one array. */
			kt_repo_tree one = { &t.nodes[i], 1 };
			pthread_mutex_lock(&r->smu);
			c = kt_archive_lists_load(r->a, &one, err);
			if (!c)
				c = kt_delta_restore(r->a, d->fd, nd, r->path, r->o && r->o->owners, err);
			pthread_mutex_unlock(&r->smu);
			if (!c) {
				pthread_mutex_lock(&r->mu);
				r->res->files++;
				r->res->bytes += nd->size;
				pthread_mutex_unlock(&r->mu);
			}
		} else if (nd->type == KT_NODE_FILE) {
			c = restore_file(r, d, nd, err);
		} else if (nd->type == KT_NODE_SYMLINK) {
			if (symlinkat(nd->target, d->fd, nd->name) != 0)
				c = kt_error_sys(err, kt_code_from_errno(errno), errno, "cannot create link "
				                 "'%s'", r->path);
			else {
				if (r->o && r->o->owners)
					fchownat(d->fd, nd->name, nd->uid, nd->gid, AT_SYMLINK_NOFOLLOW);
				kt_restore_set_times(d->fd, nd->name, nd->mtime, 1);
				pthread_mutex_lock(&r->mu);
				r->res->links++;
				pthread_mutex_unlock(&r->mu);
			}
		} else {
			pthread_mutex_lock(&r->mu);
			size_t open_dirs = r->n_dirs;
			pthread_mutex_unlock(&r->mu);
			/* Directories waiting for their files to be named hold a
			 * descriptor each: name what is finished before opening more. */
			if (open_dirs >= MAX_OPEN_DIRS && (c = wait_idle(r, err)))
				break;
			if (mkdirat(d->fd, nd->name, 0700) != 0) {
				c = kt_error_sys(err, kt_code_from_errno(errno), errno, "cannot create '%s'",
				                 r->path);
				break;
			}
			int sub = openat(d->fd, nd->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub < 0) {
				c = kt_error_sys(err, kt_code_from_errno(errno), errno, "cannot open '%s'",
				                 r->path);
				break;
			}
			rdir *sd = kt_xcalloc(1, sizeof(*sd));
			sd->parent = d;
			sd->fd = sub;
			sd->name = kt_xstrdup(nd->name);
			sd->mode = nd->mode;
			sd->uid = nd->uid;
			sd->gid = nd->gid;
			memcpy(sd->mtime, nd->mtime, sizeof(sd->mtime));
			sd->refs = 1;
			pthread_mutex_lock(&r->mu);
			d->refs++;
			sd->next = r->dirs;
			if (r->dirs)
				r->dirs->prev = sd;
			r->dirs = sd;
			r->n_dirs++;
			pthread_mutex_unlock(&r->mu);
			c = restore_tree(r, sd, nd->subtree, plen + 1 + n, depth + 1, err);
			if (!c)
				kt_restore_dir_unref(r, sd);   /* the walk is over */
		}
		r->path[plen] = '\0';
		if (c)
			break;
	}
	kt_repo_tree_release(&t);
	kt_archive_dir_close(&dir);
	return c;
}

kt_code kt_archive_restore(kt_archive *a, const char *id, const char *target,
                           const kt_archive_restore_opts *o, kt_archive_restore_result *res,
                           kt_error *err)
{
	memset(res, 0, sizeof(*res));
	int64_t start = kt_now_ms();
	kt_repo_snapshot s;
	kt_code c = kt_archive_load_snapshot(a, id, &s, err);
	if (c)
		return c;
	/* The subtree first: a path that is not there leaves no target. */
	uint8_t tree[32];
	uint32_t mode;
	char mtime[40];
	if ((c = kt_archive_subtree(a, s.tree, o && o->subtree ? o->subtree : "", tree, &mode,
	                            mtime, err))) {
		kt_repo_snapshot_release(&s);
		return c;
	}
	if (mkdir(target, 0700) != 0 && errno != EEXIST) {
		kt_repo_snapshot_release(&s);
		return kt_error_sys(err, kt_code_from_errno(errno), errno, "cannot create '%s'",
		                    target);
	}
	int dirfd = open(target, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		kt_repo_snapshot_release(&s);
		return kt_error_sys(err, kt_code_from_errno(errno), errno, "cannot open '%s'", target);
	}
	/* Only into an empty directory: restore never overwrites. */
	int fd2 = dup(dirfd);
	DIR *d = fd2 >= 0 ? fdopendir(fd2) : NULL;
	struct dirent *de;
	int empty = 1;
	while (d && (de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
		    !(o && o->allow_lost_found && !strcmp(de->d_name, "lost+found")))
			empty = 0;
	if (d)
		closedir(d);
	if (!empty) {
		close(dirfd);
		kt_repo_snapshot_release(&s);
		return kt_error_set(err, KT_EEXIST, "'%s' is not empty; restore into a new directory",
		                    target);
	}
	rctx *r = kt_xcalloc(1, sizeof(*r));
	r->a = a;
	r->o = o;
	r->res = res;
	r->rootfd = dirfd;
	rdir root = { .fd = dirfd, .refs = 1 };
	kt_restore_start(r);
	c = restore_tree(r, &root, tree, 0, 0, err);
	if (!c)
		c = wait_idle(r, err);
	kt_restore_stop(r, c != KT_OK);
	free(r);
	if (!c && mtime[0]) {   /* a subtree: target becomes that directory */
		fchmod(dirfd, mode & 07777);
		kt_restore_set_times(dirfd, ".", mtime, 0);
	}
	/* The names, directories and times, all at once (one syncfs instead
	 * of an fsync per directory, ~1-3 ms each on the namer's thread). */
	if (!c && syncfs(dirfd) != 0)
		c = kt_error_sys(err, kt_code_from_errno(errno), errno, "cannot write the restored "
		                 "directories of '%s' to disk", target);
	close(dirfd);
	kt_repo_snapshot_release(&s);
	res->duration_ms = kt_now_ms() - start;
	return c;
}
