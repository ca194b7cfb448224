/*
 * restore.c - snapshots back to files: ls and restore.
 *
 * Restore walks the snapshot's trees depth first.  A file is written as
 * <dir>/.<name>.kontinuity-part (0600), blob by blob (each authenticated and
 * checked against its id), made durable, given its mode and times, then
 * renamed to its name: a name only ever holds a complete file.  Directories
 * get their mode and times after their contents.  Names come from decoded
 * trees, which refuse anything but single safe path components, and every
 * open uses O_NOFOLLOW relative to a directory descriptor, so a snapshot
 * cannot write outside the target.  (Listing and resolving snapshots:
 * snapshots.c.)
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

#include "archive_int.h"
#include "blobio.h"
#include "delta.h"

/* ------------------------------------------------------------------ */
/* Walking trees. */

static kt_code load_tree(kt_archive *a, const uint8_t id[32], kt_repo_tree *t, kt_error *err)
{
	kt_buf raw;
	kt_buf_init(&raw, KT_REPO_MAX_BLOB + 1);
	kt_code c = kt_archive_read_blob(a, id, &raw, err);
	if (!c) {
		kt_loc l;
		if (!kt_archive_find(a, id, &l) || l.type != KT_BLOB_TREE)
			c = kt_error_set(err, KT_ECORRUPT, "a directory names a data blob as its tree");
		else if (!(c = kt_repo_tree_decode(raw.data, raw.len, t, err)))
			c = kt_archive_lists_load(a, t, err);   /* big files' ids */
	} else {
		memset(t, 0, sizeof(*t));
	}
	kt_buf_release(&raw);
	return c;
}

static kt_code ls_tree(kt_archive *a, const uint8_t id[32], char *path, size_t plen,
                       kt_archive_ls_fn fn, void *ctx, int depth, kt_error *err)
{
	if (depth > 256)
		return kt_error_set(err, KT_ECORRUPT, "trees nest deeper than 256 levels");
	kt_repo_tree t;
	kt_code c = load_tree(a, id, &t, err);
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

/*
 * The restore itself runs on threads:
 *
 *   caller   walks the trees depth first; makes directories and links;
 *            plans jobs[]: a job is a span of at most RANGE_MAX bytes of
 *            one pack with the blobs of one or more files that lie in it.
 *   reader   reads each planned job's span from the store.  It and the
 *            caller (reading trees) take turns on the store (smu).
 *   workers  the first job of a file creates it as .<name>.kontinuity-part;
 *            open every blob of a job (authenticate with its id,
 *            decompress, check length and id: kt_blobio_open, in place) and
 *            pwrite it at its place in the file; the one that writes a
 *            file's last bytes gives it its mode, owner and times, closes
 *            it and hands it to the namer.
 *   namer    makes a batch of finished files durable with one syncfs()
 *            (instead of an fsync per file) and then renames each to its
 *            name, so a name only ever holds a complete file.
 *
 * A directory gets its mode, owner, times and an fsync once its walk is
 * over and everything in it has its name (rdir.refs counts the walk, the
 * files not yet named and the subdirectories not yet finished); renaming
 * into it later would change its time.  Memory: N_JOBS ranges of at most
 * RANGE_MAX (or one blob) and a blob buffer per worker.  Descriptors: the
 * directories still waiting for files (at most MAX_OPEN_DIRS, else the
 * caller waits for the namer) and the files being written.
 *
 * After the first error nothing more is named; the caller stops the
 * threads and removes every .part file still there.
 */

#define RANGE_MAX (2u << 20)
#define N_JOBS 8
#define N_WORKERS_MAX 8
#define BATCH_FILES 512
#define BATCH_BYTES (64u << 20)
#define MAX_OPEN_DIRS 256

typedef struct rdir {
	struct rdir *parent, *prev, *next;   /* next/prev: the live list */
	int fd;
	char *name;                          /* in parent; NULL for the target */
	uint32_t mode, uid, gid;
	char mtime[40];
	int refs;                            /* under mu */
} rdir;

typedef struct rfile {
	struct rfile *prev, *next;           /* the live list */
	struct rfile *fnext;                 /* the finished list */
	rdir *dir;
	int fd;                              /* -1 once closed */
	char *name, *path;
	char part[300];
	uint32_t mode, uid, gid;
	char mtime[40];
	uint64_t size;
	int jobs, submitted;                 /* under mu */
	int made, making;                    /* under mu: the .part exists / is being made */
} rfile;

/* One blob of a job: where its sealed bytes are, and where they go. */
typedef struct rpiece {
	kt_repo_entry e;
	rfile *f;
	uint64_t file_off;
} rpiece;

/* One read of the store: a span of one pack with the blobs of one or more
 * files in it (in file order per file). */
typedef struct rjob {
	uint32_t pack;                       /* number in a->packs */
	uint64_t base, end;                  /* the span of the pack: sealed.data[0] is base */
	rpiece *p;
	size_t n, cap;
	kt_buf sealed;
} rjob;

typedef struct rctx {
	kt_archive *a;
	const kt_archive_restore_opts *o;
	kt_archive_restore_result *res;      /* under mu while threads run */
	char path[4096];                     /* the caller's, for messages and progress */
	int rootfd;
	pthread_mutex_t mu;
	pthread_cond_t cv_job;               /* workers: a job is ready, or stop/close */
	pthread_cond_t cv_free;              /* caller: a job slot came free, or idle */
	pthread_cond_t cv_fin;               /* namer: files finished, flush, stop/close */
	pthread_cond_t cv_made;              /* workers: a .part file was made (or not) */
	rjob jobs[N_JOBS];
	int free_jobs[N_JOBS];
	size_t n_free;
	int ready[N_JOBS];
	size_t r_head, n_ready;
	int busy;
	int pend;                            /* the caller's job being filled, or -1 */
	int planned[N_JOBS];                 /* jobs filled, waiting for the reader (FIFO) */
	size_t p_head, n_planned;
	int reading;                         /* the reader has a job */
	pthread_mutex_t smu;                 /* the store: the caller's tree reads, the reader's */
	pthread_cond_t cv_io;                /* reader: a job is planned, or stop/close */
	rfile *fin_head, *fin_tail;
	size_t n_fin;
	uint64_t fin_bytes;
	int naming, flush, closing, stop;
	kt_code err_code;
	kt_error err;
	rfile *files;
	rdir *dirs;
	size_t n_dirs;
	pthread_t workers[N_WORKERS_MAX], namer, reader;
	int n_workers, running;
} rctx;

static void set_times(int dirfd, const char *name, const char *mtime, int nofollow)
{
	struct timespec ts[2];
	if (kt_archive_parse_time(mtime, &ts[1]) == 0) {
		ts[0] = ts[1];
		utimensat(dirfd, name, ts, nofollow ? AT_SYMLINK_NOFOLLOW : 0);
	}
}

static void fail_locked(rctx *r, kt_code c, const kt_error *err)
{
	if (!r->err_code) {
		r->err_code = c;
		r->err = *err;
	}
	r->stop = 1;
	pthread_cond_broadcast(&r->cv_job);
	pthread_cond_broadcast(&r->cv_free);
	pthread_cond_broadcast(&r->cv_fin);
	pthread_cond_broadcast(&r->cv_made);
	pthread_cond_broadcast(&r->cv_io);
}

/* Drop one reference to d; the last one finishes it (mode, owner, fsync,
 * times) and drops its reference to its parent.  The target itself is
 * finished by kt_archive_restore. */
static void dir_unref(rctx *r, rdir *d)
{
	while (d) {
		pthread_mutex_lock(&r->mu);
		int last = --d->refs == 0 && d->parent && !r->stop;
		pthread_mutex_unlock(&r->mu);
		if (!last)
			return;
		fchmod(d->fd, d->mode & 07777);
		if (r->o && r->o->owners)
			fchown(d->fd, d->uid, d->gid);
		fsync(d->fd);
		close(d->fd);
		rdir *parent = d->parent;
		set_times(parent->fd, d->name, d->mtime, 1);
		pthread_mutex_lock(&r->mu);
		r->res->dirs++;
		if (d->prev)
			d->prev->next = d->next;
		else
			r->dirs = d->next;
		if (d->next)
			d->next->prev = d->prev;
		r->n_dirs--;
		pthread_mutex_unlock(&r->mu);
		free(d->name);
		free(d);
		d = parent;
	}
}

/* The file's bytes are all written: mode, owner, times; then to the namer. */
static kt_code file_done(rctx *r, rfile *f, kt_error *err)
{
	kt_code c = KT_OK;
	fchmod(f->fd, f->mode & 07777);
	if (r->o && r->o->owners && fchown(f->fd, f->uid, f->gid) != 0)
		c = kt_error_sys(err, KT_EPERM, errno, "cannot give '%s' its owner", f->path);
	struct timespec ts[2];
	if (!c && kt_archive_parse_time(f->mtime, &ts[1]) == 0) {
		ts[0] = ts[1];
		futimens(f->fd, ts);
	}
	close(f->fd);
	f->fd = -1;
	pthread_mutex_lock(&r->mu);
	if (c) {
		fail_locked(r, c, err);
	} else {
		f->fnext = NULL;
		if (r->fin_tail)
			r->fin_tail->fnext = f;
		else
			r->fin_head = f;
		r->fin_tail = f;
		r->n_fin++;
		r->fin_bytes += f->size;
		if (r->n_fin >= BATCH_FILES || r->fin_bytes >= BATCH_BYTES || r->flush)
			pthread_cond_signal(&r->cv_fin);
	}
	pthread_mutex_unlock(&r->mu);
	return c;
}

/* The first job of a file to reach a worker creates its .part file (many
 * files are made at once, not one by one on the walker's thread); other
 * jobs of the file wait for that.  KT_ECANCELED when it could not be made
 * (the error is recorded by the one that tried). */
static kt_code make_file(rctx *r, rfile *f, kt_error *err)
{
	pthread_mutex_lock(&r->mu);
	while (f->making && !r->stop)
		pthread_cond_wait(&r->cv_made, &r->mu);
	if (f->made || r->stop) {
		int made = f->made;
		pthread_mutex_unlock(&r->mu);
		return made ? KT_OK : kt_error_set(err, KT_ECANCELED, "interrupted");
	}
	f->making = 1;
	pthread_mutex_unlock(&r->mu);
	int fd = openat(f->dir->fd, f->part, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	                0600);
	kt_code c = KT_OK;
	if (fd < 0)
		c = kt_error_sys(err, kt_code_from_errno(errno), errno, "cannot create '%s'", f->path);
	pthread_mutex_lock(&r->mu);
	f->making = 0;
	if (!c) {
		f->fd = fd;
		f->made = 1;
	}
	pthread_cond_broadcast(&r->cv_made);
	pthread_mutex_unlock(&r->mu);
	return c;
}

/* Open every blob of job j and write it at its place in its file. */
static kt_code write_job(rctx *r, rjob *j, kt_blobio *io, kt_error *err)
{
	uint64_t run_off = 0, run_len = 0;   /* bytes of one file written back to back */
	for (size_t i = 0; i < j->n; i++) {
		const rpiece *pc = &j->p[i];
		const kt_repo_entry *e = &pc->e;
		int first = !i || j->p[i - 1].f != pc->f;
		if (first) {
			kt_code c = make_file(r, pc->f, err);
			if (c)
				return c;
		}
		const uint8_t *p;
		kt_code c = kt_blobio_open(io, e, (uint8_t *)j->sealed.data + (e->offset - j->base), &p,
		                           err);
		if (c) {
			char name[80];
			kt_archive_pack_name(r->a->packs[j->pack], name);
			return kt_error_wrap(err, "pack %s at offset %u", name, e->offset);
		}
		uint64_t off = pc->file_off;
		size_t left = e->raw_length;
		while (left) {
			ssize_t w = pwrite(pc->f->fd, p, left, (off_t)off);
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				return kt_error_sys(err, kt_code_from_errno(errno), errno, "cannot write '%s'",
				                    pc->f->path);
			p += w;
			left -= (size_t)w;
			off += (uint64_t)w;
		}
		if (first || run_off + run_len != pc->file_off) {
			run_off = pc->file_off;
			run_len = 0;
		}
		run_len += e->raw_length;
		/* Start writing big pieces back now, so the namer's syncfs finds
		 * little left to do. */
		if ((i + 1 == j->n || j->p[i + 1].f != pc->f) && run_len >= (1u << 20))
			sync_file_range(pc->f->fd, (off_t)run_off, (off_t)run_len, SYNC_FILE_RANGE_WRITE);
	}
	return KT_OK;
}

/* The reader: the sealed bytes of each planned job from the store, then on
 * to the workers.  The walker goes on planning (and decoding trees) while
 * this thread waits for the store. */
static void *reader_main(void *arg)
{
	rctx *r = arg;
	pthread_mutex_lock(&r->mu);
	for (;;) {
		while (!r->n_planned && !r->stop && !r->closing)
			pthread_cond_wait(&r->cv_io, &r->mu);
		if (r->stop || !r->n_planned)
			break;
		int s = r->planned[r->p_head];
		r->p_head = (r->p_head + 1) % N_JOBS;
		r->n_planned--;
		r->reading = 1;
		pthread_mutex_unlock(&r->mu);

		rjob *j = &r->jobs[s];
		char name[80];
		kt_archive_pack_name(r->a->packs[j->pack], name);
		kt_error err;
		pthread_mutex_lock(&r->smu);
		kt_code c = kt_store_get(r->a->s, name, j->base, j->end - j->base, &j->sealed, &err);
		pthread_mutex_unlock(&r->smu);

		pthread_mutex_lock(&r->mu);
		r->reading = 0;
		if (c) {
			/* Its files will never complete: stop before any could be named. */
			fail_locked(r, c, &err);
			j->n = 0;
			r->free_jobs[r->n_free++] = s;
		} else {
			r->ready[(r->r_head + r->n_ready++) % N_JOBS] = s;
			pthread_cond_signal(&r->cv_job);
		}
		pthread_cond_broadcast(&r->cv_free);
	}
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

static void *worker_main(void *arg)
{
	rctx *r = arg;
	kt_blobio *io = kt_blobio_new(&r->a->keys);
	rfile **done = NULL;   /* files a job finished */
	size_t cap_done = 0;
	pthread_mutex_lock(&r->mu);
	for (;;) {
		while (!r->n_ready && !r->stop && !r->closing)
			pthread_cond_wait(&r->cv_job, &r->mu);
		if (r->stop || !r->n_ready)
			break;
		int s = r->ready[r->r_head];
		r->r_head = (r->r_head + 1) % N_JOBS;
		r->n_ready--;
		r->busy++;
		pthread_mutex_unlock(&r->mu);

		rjob *j = &r->jobs[s];
		kt_error err;
		kt_code c = write_job(r, j, io, &err);

		pthread_mutex_lock(&r->mu);
		size_t n_done = 0;
		if (c)
			fail_locked(r, c, &err);
		else
			for (size_t i = 0; i < j->n; i++) {
				rfile *f = j->p[i].f;
				if ((!i || j->p[i - 1].f != f) && --f->jobs == 0 && f->submitted) {
					if (n_done == cap_done) {
						cap_done = cap_done ? cap_done * 2 : 64;
						done = realloc(done, cap_done * sizeof(*done));
						if (!done)
							abort();
					}
					done[n_done++] = f;
				}
			}
		j->n = 0;
		r->free_jobs[r->n_free++] = s;
		pthread_cond_broadcast(&r->cv_free);
		if (n_done && !r->stop) {
			/* Still busy: wait_idle must not see these files in no list. */
			pthread_mutex_unlock(&r->mu);
			for (size_t i = 0; i < n_done; i++)
				file_done(r, done[i], &err);
			pthread_mutex_lock(&r->mu);
		}
		r->busy--;
		pthread_cond_broadcast(&r->cv_free);
	}
	pthread_mutex_unlock(&r->mu);
	free(done);
	kt_blobio_free(io);
	return NULL;
}

static void *namer_main(void *arg)
{
	rctx *r = arg;
	pthread_mutex_lock(&r->mu);
	for (;;) {
		while (!r->stop && !r->closing &&
		       !(r->n_fin && (r->n_fin >= BATCH_FILES || r->fin_bytes >= BATCH_BYTES ||
		                      r->flush)))
			pthread_cond_wait(&r->cv_fin, &r->mu);
		if (r->stop || (!r->n_fin && r->closing))
			break;
		if (!r->n_fin)
			continue;
		rfile *batch = r->fin_head;
		r->fin_head = r->fin_tail = NULL;
		r->n_fin = 0;
		r->fin_bytes = 0;
		r->naming = 1;
		pthread_mutex_unlock(&r->mu);

		kt_error err;
		kt_code c = KT_OK;
		/* Every file of the batch on disk before any gets its name. */
		if (syncfs(r->rootfd) != 0)
			c = kt_error_sys(&err, kt_code_from_errno(errno), errno, "cannot write the "
			                 "restored files to disk");
		while (!c && batch) {
			rfile *f = batch;
			if (renameat(f->dir->fd, f->part, f->dir->fd, f->name) != 0) {
				c = kt_error_sys(&err, kt_code_from_errno(errno), errno, "cannot name '%s'",
				                 f->path);
				break;
			}
			batch = f->fnext;
			rdir *d = f->dir;
			pthread_mutex_lock(&r->mu);
			r->res->files++;
			if (f->prev)
				f->prev->next = f->next;
			else
				r->files = f->next;
			if (f->next)
				f->next->prev = f->prev;
			pthread_mutex_unlock(&r->mu);
			free(f->name);
			free(f->path);
			free(f);
			dir_unref(r, d);
		}
		pthread_mutex_lock(&r->mu);
		r->naming = 0;
		if (c)
			fail_locked(r, c, &err);
		pthread_cond_broadcast(&r->cv_free);
	}
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

static kt_code flush_pending(rctx *r, kt_error *err);

/* Wait until every queued job is written and every finished file named;
 * the first error of any thread, if there was one. */
static kt_code wait_idle(rctx *r, kt_error *err)
{
	kt_code c = flush_pending(r, err);
	if (c)
		return c;
	pthread_mutex_lock(&r->mu);
	r->flush = 1;
	pthread_cond_signal(&r->cv_fin);
	while (!r->stop && (r->n_planned || r->reading || r->n_ready || r->busy || r->n_fin ||
	                    r->naming))
		pthread_cond_wait(&r->cv_free, &r->mu);
	r->flush = 0;
	c = r->err_code;
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

/* Does the blob at l go into the pending job: the same pack, the span
 * still at most RANGE_MAX bytes, and not there already (a blob that recurs
 * takes a new job: its bytes are decrypted in place, once)?  Backups seal
 * on several threads and files side by side, so a file's blobs lie near
 * each other in a pack, not always in order or back to back; the gaps are
 * read too. */
static int fits(rctx *r, const kt_loc *l)
{
	if (r->pend < 0)
		return 0;
	const rjob *j = &r->jobs[r->pend];
	uint64_t lo = l->offset < j->base ? l->offset : j->base;
	uint64_t hi = l->offset + l->length > j->end ? l->offset + l->length : j->end;
	if (l->pack != j->pack || hi - lo > RANGE_MAX)
		return 0;
	if (l->offset < j->end && l->offset + l->length > j->base)
		for (size_t k = 0; k < j->n; k++)
			if (j->p[k].e.offset == l->offset)
				return 0;
	return 1;
}

/* Hand the pending job to the reader thread. */
static kt_code flush_pending(rctx *r, kt_error *err)
{
	(void)err;
	if (r->pend < 0)
		return KT_OK;
	pthread_mutex_lock(&r->mu);
	r->planned[(r->p_head + r->n_planned++) % N_JOBS] = r->pend;
	r->pend = -1;
	pthread_cond_signal(&r->cv_io);
	pthread_mutex_unlock(&r->mu);
	return KT_OK;
}

/* Take a free job (waiting for one) as the pending job, starting at l. */
static kt_code take_job(rctx *r, const kt_loc *l, kt_error *err)
{
	pthread_mutex_lock(&r->mu);
	while (!r->n_free && !r->stop)
		pthread_cond_wait(&r->cv_free, &r->mu);
	if (r->stop) {
		kt_code c = r->err_code;
		*err = r->err;
		pthread_mutex_unlock(&r->mu);
		return c;
	}
	r->pend = r->free_jobs[--r->n_free];
	pthread_mutex_unlock(&r->mu);
	rjob *j = &r->jobs[r->pend];
	j->pack = l->pack;
	j->base = l->offset;
	j->end = l->offset + l->length;
	j->n = 0;
	return KT_OK;
}

/* Queue the blobs of nd for writing into a new .part file in d. */
static kt_code restore_file(rctx *r, rdir *d, const kt_repo_node *nd, kt_error *err)
{
	/* Every blob indexed, and they add up to the size the tree records. */
	kt_archive *a = r->a;
	uint64_t total = 0;
	for (size_t i = 0; i < nd->n_content; i++) {
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
	if (!nd->n_content) {   /* no job will make it: an empty file, made here */
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

	kt_code c = KT_OK;
	uint64_t file_off = 0;
	for (size_t i = 0; i < nd->n_content; i++) {
		if ((c = canceled(r, err)))
			break;
		kt_loc loc, *l = &loc;
		kt_archive_find(a, nd->content[i], &loc);   /* found above */
		if (!fits(r, l) && ((c = flush_pending(r, err)) || (c = take_job(r, l, err))))
			break;
		rjob *job = &r->jobs[r->pend];
		if (job->n == job->cap) {
			job->cap = job->cap ? job->cap * 2 : 64;
			job->p = realloc(job->p, job->cap * sizeof(*job->p));
			if (!job->p)
				abort();
		}
		int counted = job->n && job->p[job->n - 1].f == f;
		rpiece *pc = &job->p[job->n++];
		pc->e.type = l->type;
		pc->e.compression = l->compression;
		pc->e.offset = l->offset;
		pc->e.length = l->length;
		pc->e.raw_length = l->raw_length;
		memcpy(pc->e.id, l->id, 32);
		pc->f = f;
		pc->file_off = file_off;
		if (l->offset < job->base)
			job->base = l->offset;
		if (l->offset + l->length > job->end)
			job->end = l->offset + l->length;
		file_off += l->raw_length;
		if (!counted) {
			pthread_mutex_lock(&r->mu);
			f->jobs++;
			pthread_mutex_unlock(&r->mu);
		}
	}
	pthread_mutex_lock(&r->mu);
	/* A file with a blob missing must never get its name (its other jobs
	 * may still finish): stop everything, before a worker can see the file
	 * as submitted. */
	if (c)
		fail_locked(r, c, err);
	else
		r->res->bytes += total;
	f->submitted = 1;
	int done = !c && !r->stop && f->jobs == 0;
	pthread_mutex_unlock(&r->mu);
	if (done)
		c = file_done(r, f, err);
	if (!c)
		progress(r);
	return c;
}

static kt_code restore_tree(rctx *r, rdir *d, const uint8_t id[32], size_t plen, int depth,
                            kt_error *err)
{
	if (depth > 256)
		return kt_error_set(err, KT_ECORRUPT, "trees nest deeper than 256 levels");
	kt_repo_tree t;
	pthread_mutex_lock(&r->smu);
	kt_code c = load_tree(r->a, id, &t, err);
	pthread_mutex_unlock(&r->smu);
	for (size_t i = 0; !c && i < t.n; i++) {
		const kt_repo_node *nd = &t.nodes[i];
		size_t n = strlen(nd->name);
		if (plen + n + 2 >= sizeof(r->path)) {
			c = kt_error_set(err, KT_ELIMIT, "path too long in snapshot");
			break;
		}
		r->path[plen] = '/';
		memcpy(r->path + plen + 1, nd->name, n + 1);
		if (nd->type == KT_NODE_FILE && nd->has_delta) {
			/* Decoded here, whole, under the store's lock (delta.c). */
			pthread_mutex_lock(&r->smu);
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
				set_times(d->fd, nd->name, nd->mtime, 1);
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
				dir_unref(r, sd);   /* the walk is over */
		}
		r->path[plen] = '\0';
	}
	kt_repo_tree_release(&t);
	return c;
}

static void start_threads(rctx *r)
{
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv_job, NULL);
	pthread_cond_init(&r->cv_free, NULL);
	pthread_cond_init(&r->cv_fin, NULL);
	pthread_cond_init(&r->cv_made, NULL);
	pthread_mutex_init(&r->smu, NULL);
	pthread_cond_init(&r->cv_io, NULL);
	r->pend = -1;
	for (int i = 0; i < N_JOBS; i++) {
		kt_buf *b = &r->jobs[i].sealed;
		kt_buf_init(b, KT_REPO_MAX_BLOB + RANGE_MAX + 1024);
		/* Memory of its own before the reader resets it (see kt_buf_clear). */
		kt_error e;
		if (kt_buf_add(b, "", 1, &e))
			abort();
		kt_buf_reset(b);
		r->free_jobs[r->n_free++] = i;
	}
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	int n = cpus < 1 ? 1 : cpus > N_WORKERS_MAX ? N_WORKERS_MAX : (int)cpus;
	for (int i = 0; i < n; i++) {
		if (pthread_create(&r->workers[i], NULL, worker_main, r) != 0)
			abort();
		r->n_workers++;
	}
	if (pthread_create(&r->namer, NULL, namer_main, r) != 0 ||
	    pthread_create(&r->reader, NULL, reader_main, r) != 0)
		abort();
	r->running = 1;
}

/* End the threads (at once when stop), then remove what an error left:
 * .part files, descriptors. */
static void stop_threads(rctx *r, int stop)
{
	pthread_mutex_lock(&r->mu);
	if (stop)
		r->stop = 1;
	r->closing = 1;
	pthread_cond_broadcast(&r->cv_job);
	pthread_cond_broadcast(&r->cv_free);
	pthread_cond_broadcast(&r->cv_fin);
	pthread_mutex_unlock(&r->mu);
	pthread_cond_broadcast(&r->cv_io);
	for (int i = 0; i < r->n_workers; i++)
		pthread_join(r->workers[i], NULL);
	pthread_join(r->namer, NULL);
	pthread_join(r->reader, NULL);
	r->running = 0;
	for (rfile *f = r->files, *next; f; f = next) {
		next = f->next;
		if (f->fd >= 0)
			close(f->fd);
		if (f->made)
			unlinkat(f->dir->fd, f->part, 0);
		free(f->name);
		free(f->path);
		free(f);
	}
	for (rdir *d = r->dirs, *next; d; d = next) {
		next = d->next;
		close(d->fd);
		free(d->name);
		free(d);
	}
	for (int i = 0; i < N_JOBS; i++) {
		kt_buf_release(&r->jobs[i].sealed);
		free(r->jobs[i].p);
	}
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->cv_job);
	pthread_cond_destroy(&r->cv_free);
	pthread_cond_destroy(&r->cv_fin);
	pthread_cond_destroy(&r->cv_made);
	pthread_cond_destroy(&r->cv_io);
	pthread_mutex_destroy(&r->smu);
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
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
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
	start_threads(r);
	c = restore_tree(r, &root, s.tree, 0, 0, err);
	if (!c)
		c = wait_idle(r, err);
	stop_threads(r, c != KT_OK);
	free(r);
	fsync(dirfd);
	close(dirfd);
	kt_repo_snapshot_release(&s);
	res->duration_ms = kt_now_ms() - start;
	return c;
}
