/*
 * restore_write.c - the threads of a restore (restore_int.h has the
 * pipeline): the readers get the planned spans of packs from the store
 * (several at once, each through a handle of its own),
 * workers create the .part files (0600, O_EXCL, O_NOFOLLOW), open every
 * blob (authenticated under its id, decompressed) and pwrite it
 * at its offset (big runs with O_DIRECT: write_run_direct), and give
 * finished files their mode, owner and times; the
 * namer makes each batch durable (syncfs) before renaming its files.
 * Shared state is rctx's, under r->mu; a job slot, a file's descriptor
 * and its .part belong to whoever took them under mu.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "blobio.h"
#include "restore_int.h"

void kt_restore_set_times(int dirfd, const char *name, const char *mtime, int nofollow)
{
	struct timespec ts[2];
	if (kt_archive_parse_time(mtime, &ts[1]) == 0) {
		ts[0] = ts[1];
		utimensat(dirfd, name, ts, nofollow ? AT_SYMLINK_NOFOLLOW : 0);
	}
}

void kt_restore_fail_locked(rctx *r, kt_code c, const kt_error *err)
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
	pthread_cond_broadcast(&r->cv_bq);
}

/* Under mu: wake the caller and the planner when they may be waiting for
 * what changed: a free job slot (take_job), or anything at all while the
 * caller waits for the threads to be idle (wait_idle, r->flush).  They are
 * cv_free's only waiters; waking them for every read or batch they do not
 * wait for only preempted the workers. */
static void wake_caller_locked(rctx *r, int slot_freed)
{
	if (slot_freed || r->flush)
		pthread_cond_broadcast(&r->cv_free);
}

void kt_restore_free_job_locked(rctx *r, int s)
{
	rjob *j = &r->jobs[s];
	j->n = 0;
	j->plan->jobs--;
	r->free_jobs[r->n_free++] = s;
	wake_caller_locked(r, 1);
}

/* Drop one reference to d; the last one finishes it (mode, owner,
 * times) and drops its reference to its parent.  The target itself is
 * finished by kt_archive_restore. */
void kt_restore_dir_unref(rctx *r, rdir *d)
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
		close(d->fd);   /* made durable by the syncfs at the end */
		rdir *parent = d->parent;
		kt_restore_set_times(parent->fd, d->name, d->mtime, 1);
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

/* Write n bytes at off of f through the page cache. */
static kt_code write_at(const rfile *f, const uint8_t *p, size_t n, uint64_t off, kt_error *err)
{
	if (kt_archive_pwrite_all(f->fd, p, n, off))
		return kt_error_sys(err, kt_code_from_errno(errno), errno, "cannot write '%s'", f->path);
	return KT_OK;
}

/* Write the kept-back part-blocks buf[0, len) of f: records of an 8-byte
 * offset, a 2-byte length and the bytes. */
static kt_code write_frags(const rfile *f, const uint8_t *buf, size_t len, kt_error *err)
{
	for (size_t i = 0; i < len;) {
		uint64_t off;
		uint16_t n;
		memcpy(&off, buf + i, 8);
		memcpy(&n, buf + i + 8, 2);
		kt_code c = write_at(f, buf + i + 10, n, off, err);
		if (c)
			return c;
		i += 10 + (size_t)n;
	}
	return KT_OK;
}

/* Keep back n (< DIO_ALIGN) bytes at off of f; when r->frag_max is
 * reached, write what was kept so far now. */
static kt_code keep_frag(rctx *r, rfile *f, const uint8_t *p, size_t n, uint64_t off,
                         kt_error *err)
{
	uint8_t *full = NULL;
	size_t full_len = 0;
	pthread_mutex_lock(&r->mu);
	if (f->frag_len + 10 + n > r->frag_max) {
		full = f->frag;
		full_len = f->frag_len;
		f->frag = NULL;
		f->frag_len = 0;
	}
	if (!f->frag)
		f->frag = kt_xmalloc(r->frag_max);
	uint16_t n16 = (uint16_t)n;
	memcpy(f->frag + f->frag_len, &off, 8);
	memcpy(f->frag + f->frag_len + 8, &n16, 2);
	memcpy(f->frag + f->frag_len + 10, p, n);
	f->frag_len += 10 + n;
	pthread_mutex_unlock(&r->mu);
	kt_code c = full ? write_frags(f, full, full_len, err) : KT_OK;
	free(full);
	return c;
}

/* The file's bytes are all written: mode, owner, times; then to the namer. */
kt_code kt_restore_file_done(rctx *r, rfile *f, kt_error *err)
{
	/* Every job of f is over: no other thread touches f->frag now. */
	kt_code c = f->frag ? write_frags(f, f->frag, f->frag_len, err) : KT_OK;
	free(f->frag);
	f->frag = NULL;
	f->frag_len = 0;
	if (c) {
		pthread_mutex_lock(&r->mu);
		kt_restore_fail_locked(r, c, err);
		pthread_mutex_unlock(&r->mu);
		return c;
	}
	fchmod(f->fd, f->mode & 07777);
	if (r->o && r->o->owners && fchown(f->fd, f->uid, f->gid) != 0)
		c = kt_error_sys(err, KT_EPERM, errno, "cannot give '%s' its owner", f->path);
	struct timespec ts[2];
	if (!c && kt_archive_parse_time(f->mtime, &ts[1]) == 0) {
		ts[0] = ts[1];
		futimens(f->fd, ts);
	}
	/* Start its write-back now: the kernel would wait for gigabytes of
	 * dirty pages first, and the namer's syncfs would then write the whole
	 * batch while the files of the next one wait for it. */
	sync_file_range(f->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
	close(f->fd);
	f->fd = -1;
	pthread_mutex_lock(&r->mu);
	if (c) {
		kt_restore_fail_locked(r, c, err);
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
	/* A file that may get O_DIRECT writes gets its blocks (unwritten) and
	 * its size first: an aligned O_DIRECT write that allocates or extends
	 * holds the inode's lock until the disk answers, one at a time; into
	 * allocated blocks below the size, ext4 lets them run side by side.
	 * Where fallocate is not supported, the writes allocate as before. */
	if (!c && f->size >= DIO_MIN_RUN && !__atomic_load_n(&r->no_direct, __ATOMIC_RELAXED) &&
	    fallocate(fd, 0, 0, (off_t)f->size) != 0 && errno != EOPNOTSUPP && errno != ENOSYS) {
		c = kt_error_sys(err, kt_code_from_errno(errno), errno, "cannot allocate the %llu bytes "
		                 "of '%s'", (unsigned long long)f->size, f->path);
		close(fd);
		unlinkat(f->dir->fd, f->part, 0);
		fd = -1;
	}
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

/* A worker's own: its blob contexts and its stage for O_DIRECT writes. */
typedef struct wstate {
	kt_blobio *io;
	uint8_t *stage;          /* STAGE_CAP bytes at a DIO_ALIGN address, or NULL */
} wstate;

static kt_code blob_failed(rctx *r, const rjob *j, const kt_repo_entry *e, kt_error *err)
{
	char name[80];
	kt_archive_pack_name(r->a->packs[j->pack], name);
	return kt_error_wrap(err, "pack %s at offset %u", name, e->offset);
}

/* Pieces [i, k) of job j, one file's bytes back to back, through the page
 * cache: each blob opened and written where it goes. */
static kt_code write_run_buffered(rctx *r, rjob *j, size_t i, size_t k, wstate *w, kt_error *err)
{
	rfile *f = j->p[i].f;
	for (size_t m = i; m < k; m++) {
		const kt_repo_entry *e = &j->p[m].e;
		const uint8_t *p;
		kt_code c = kt_blobio_open(w->io, e, (uint8_t *)j->sealed.data + (e->offset - j->base),
		                           &p, err);
		if (c)
			return blob_failed(r, j, e, err);
		if ((c = write_at(f, p, e->raw_length, j->p[m].file_off, err)))
			return c;
	}
	uint64_t off = j->p[i].file_off;
	uint64_t len = j->p[k - 1].file_off + j->p[k - 1].e.raw_length - off;
	/* Start writing big runs back now, so the namer's syncfs finds little
	 * left to do. */
	if (len >= (1u << 20))
		sync_file_range(f->fd, (off_t)off, (off_t)len, SYNC_FILE_RANGE_WRITE);
	return KT_OK;
}

/* Write stage[from, to) (file bytes from base) of f: whole DIO_ALIGN
 * blocks through dfd; a block only partly ours (the first, when from is
 * not aligned, and the last, when to is not) is kept back (keep_frag) and
 * goes through the page cache once the file is complete.  The blocks
 * written directly are never in any other run, so no page is written both
 * ways.  Without final (then to >= DIO_ALIGN), the
 * part-block at the end stays for the next call: *moved says how far
 * stage and base moved. */
static kt_code flush_stage(rctx *r, rfile *f, int *dfd, uint8_t *stage, uint64_t base,
                           size_t from, size_t to, int final, size_t *moved, kt_error *err)
{
	kt_code c = KT_OK;
	size_t d0 = from, d1 = to & ~(size_t)(DIO_ALIGN - 1);
	if (from % DIO_ALIGN) {
		size_t head_end = from - from % DIO_ALIGN + DIO_ALIGN;
		if (head_end > to)
			head_end = to;
		if ((c = keep_frag(r, f, stage + from, head_end - from, base + from, err)))
			return c;
		d0 = head_end;
	}
	if (d1 > d0) {
		size_t done = 0;
		while (*dfd >= 0 && done < d1 - d0) {
			ssize_t n = pwrite(*dfd, stage + d0 + done, d1 - d0 - done, (off_t)(base + d0 + done));
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && errno != EINVAL && errno != EOPNOTSUPP)
				return kt_error_sys(err, kt_code_from_errno(errno), errno, "cannot write '%s'",
				                    f->path);
			if (n < 0) {
				/* The file system wants another alignment: the page
				 * cache from here on, for every file. */
				__atomic_store_n(&r->no_direct, 1, __ATOMIC_RELAXED);
				close(*dfd);
				*dfd = -1;
				break;
			}
			done += (size_t)n;
			if (!n || n % DIO_ALIGN)
				break;   /* short and not whole blocks: the rest as below */
		}
		if (done < d1 - d0 &&
		    (c = write_at(f, stage + d0 + done, d1 - d0 - done, base + d0 + done, err)))
			return c;
		d0 = d1;
	}
	if (final) {
		if (to > d0)
			c = keep_frag(r, f, stage + d0, to - d0, base + d0, err);
		*moved = 0;
		return c;
	}
	/* Keep the part-block at the end (to >= DIO_ALIGN, so d1 is past any
	 * head): it is written with what follows. */
	memmove(stage, stage + d1, to - d1);
	*moved = d1;
	return KT_OK;
}

/* Pieces [i, k) of job j (one file's bytes back to back, of a file of at
 * least DIO_MIN_RUN, no blob over DIO_PIECE_MAX): each blob opened straight into
 * the stage at its offset modulo DIO_ALIGN, the stage written with
 * O_DIRECT.  That skips copying the bytes into the page cache and the
 * kernel's write-back of them: less CPU, and several workers' writes in
 * flight at once. */
static kt_code write_run_direct(rctx *r, rjob *j, size_t i, size_t k, wstate *w, kt_error *err)
{
	rfile *f = j->p[i].f;
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", f->fd);
	/* The same open file's inode again (not its name: that could have been
	 * replaced), for O_DIRECT; the other descriptor writes part-blocks. */
	int dfd = open(path, O_WRONLY | O_DIRECT | O_CLOEXEC);
	if (dfd < 0) {
		/* No O_DIRECT here (EINVAL), no /proc, no descriptor left: the
		 * page cache from here on. */
		__atomic_store_n(&r->no_direct, 1, __ATOMIC_RELAXED);
		return write_run_buffered(r, j, i, k, w, err);
	}
	uint64_t off0 = j->p[i].file_off;
	uint64_t base = off0 - off0 % DIO_ALIGN;   /* file offset of stage[0] */
	size_t from = (size_t)(off0 % DIO_ALIGN), pos = from;
	kt_code c = KT_OK;
	for (size_t m = i; m < k && !c; m++) {
		const kt_repo_entry *e = &j->p[m].e;
		if (pos + e->raw_length > STAGE_CAP) {
			size_t moved;
			if ((c = flush_stage(r, f, &dfd, w->stage, base, from, pos, 0, &moved, err)))
				break;
			base += moved;
			pos -= moved;
			from = 0;
		}
		c = kt_blobio_open_into(w->io, e, (uint8_t *)j->sealed.data + (e->offset - j->base),
		                        w->stage + pos, err);
		if (c)
			c = blob_failed(r, j, e, err);
		pos += e->raw_length;
	}
	size_t moved;
	if (!c)
		c = flush_stage(r, f, &dfd, w->stage, base, from, pos, 1, &moved, err);
	if (dfd >= 0)
		close(dfd);
	return c;
}

/* Open every blob of job j and write it at its place in its file, a run
 * (one file's bytes back to back) at a time. */
static kt_code write_job(rctx *r, rjob *j, wstate *w, kt_error *err)
{
	for (size_t i = 0, k; i < j->n; i = k) {
		const rpiece *pc = &j->p[i];
		if (!i || j->p[i - 1].f != pc->f) {
			kt_code c = make_file(r, pc->f, err);
			if (c)
				return c;
		}
		uint64_t end = pc->file_off + pc->e.raw_length;
		int direct = pc->e.raw_length <= DIO_PIECE_MAX;
		for (k = i + 1; k < j->n && j->p[k].f == pc->f && j->p[k].file_off == end; k++) {
			end += j->p[k].e.raw_length;
			direct &= j->p[k].e.raw_length <= DIO_PIECE_MAX;
		}
		/* Every run of a big file, so that no other write of it takes the
		 * inode's lock while its O_DIRECT writes are in flight. */
		direct &= pc->f->size >= DIO_MIN_RUN && w->stage &&
		          !__atomic_load_n(&r->no_direct, __ATOMIC_RELAXED);
		kt_code c = direct ? write_run_direct(r, j, i, k, w, err)
		                   : write_run_buffered(r, j, i, k, w, err);
		if (c)
			return c;
	}
	return KT_OK;
}

/* The reader: the sealed bytes of each planned job from the store, then on
 * to the workers.  The walker goes on planning (and decoding trees) while
 * this thread waits for the store. */
static void *reader_main(void *arg)
{
	rreader *me = arg;
	rctx *r = me->r;
	pthread_mutex_lock(&r->mu);
	for (;;) {
		while (!r->n_planned && !r->stop && !r->closing)
			pthread_cond_wait(&r->cv_io, &r->mu);
		if (r->stop || !r->n_planned)
			break;
		int s = r->planned[r->p_head];
		r->p_head = (r->p_head + 1) % N_JOBS;
		r->n_planned--;
		r->reading++;
		pthread_mutex_unlock(&r->mu);

		rjob *j = &r->jobs[s];
		char name[80];
		kt_archive_pack_name(r->a->packs[j->pack], name);
		kt_error err;
		kt_code c;
		if (me->s) {
			c = kt_store_get(me->s, name, j->base, j->end - j->base, &j->sealed, &err);
		} else {
			pthread_mutex_lock(&r->smu);
			c = kt_store_get(r->a->s, name, j->base, j->end - j->base, &j->sealed, &err);
			pthread_mutex_unlock(&r->smu);
		}

		pthread_mutex_lock(&r->mu);
		r->reading--;
		if (c) {
			/* Its files will never complete: stop before any could be named. */
			kt_restore_fail_locked(r, c, &err);
			kt_restore_free_job_locked(r, s);
		} else {
			r->ready[(r->r_head + r->n_ready++) % N_JOBS] = s;
			pthread_cond_signal(&r->cv_job);
		}
		wake_caller_locked(r, 0);
	}
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

static void *worker_main(void *arg)
{
	rctx *r = arg;
	wstate w = { kt_blobio_new(&r->a->keys), NULL };
	if (!__atomic_load_n(&r->no_direct, __ATOMIC_RELAXED) &&
	    posix_memalign((void **)&w.stage, DIO_ALIGN, STAGE_CAP) != 0)
		w.stage = NULL;   /* page cache only */
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
		kt_code c = write_job(r, j, &w, &err);

		pthread_mutex_lock(&r->mu);
		size_t n_done = 0;
		if (c)
			kt_restore_fail_locked(r, c, &err);
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
		kt_restore_free_job_locked(r, s);
		if (n_done && !r->stop) {
			/* Still busy: wait_idle must not see these files in no list. */
			pthread_mutex_unlock(&r->mu);
			for (size_t i = 0; i < n_done; i++)
				kt_restore_file_done(r, done[i], &err);
			pthread_mutex_lock(&r->mu);
		}
		r->busy--;
		wake_caller_locked(r, 0);
	}
	pthread_mutex_unlock(&r->mu);
	free(done);
	free(w.stage);
	kt_blobio_free(w.io);
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
			kt_restore_dir_unref(r, d);
		}
		pthread_mutex_lock(&r->mu);
		r->naming = 0;
		if (c)
			kt_restore_fail_locked(r, c, &err);
		wake_caller_locked(r, 0);
	}
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

void kt_restore_start(rctx *r)
{
	/* KT_RESTORE_DIRECT=0: the page cache for every file (tests compare). */
	r->no_direct = sysconf(_SC_PAGESIZE) != DIO_ALIGN ||
	               !kt_archive_knob("KT_RESTORE_DIRECT", 1, 0, 1);
	/* KT_RESTORE_FRAG_MAX: smaller, so that tests write kept-back
	 * part-blocks before their file is complete (one record fits). */
	r->frag_max = kt_archive_knob("KT_RESTORE_FRAG_MAX", FRAG_MAX, 10 + DIO_ALIGN, FRAG_MAX);
	/* KT_RESTORE_BIG_FILE: smaller, so that tests plan every file on the
	 * planner; 0: none (the walk plans every file). */
	r->big_file = kt_archive_knob("KT_RESTORE_BIG_FILE", BIG_FILE, 0, SIZE_MAX);
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv_job, NULL);
	pthread_cond_init(&r->cv_free, NULL);
	pthread_cond_init(&r->cv_fin, NULL);
	pthread_cond_init(&r->cv_made, NULL);
	pthread_mutex_init(&r->smu, NULL);
	pthread_cond_init(&r->cv_io, NULL);
	pthread_cond_init(&r->cv_bq, NULL);
	r->walk.pend = r->big.pend = -1;
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
	/* Three workers per CPU: a worker spends much of its time blocked in
	 * the kernel (waiting for the directory's lock while ext4 allocates an
	 * inode, for the file's lock in pwrite, for write-back, for its
	 * O_DIRECT writes), and with one per CPU every such wait leaves a core
	 * idle.  (Two were as fast while big and small files took turns; side
	 * by side, three restored the bench data cold in 2.04 s against 2.13,
	 * medians of five interleaved rounds.)  The walk's share of the jobs
	 * while big files are planned: one per CPU, 2 to 6 (on 2 CPUs, 2 of 12
	 * against 4 of 12: 1.92 s against 2.04). */
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	if (cpus < 1)
		cpus = 1;
	int n = 3 * cpus > N_WORKERS_MAX ? N_WORKERS_MAX : 3 * (int)cpus;
	r->walk_share = cpus < 2 ? 2 : cpus > 6 ? 6 : (int)cpus;
	for (int i = 0; i < n; i++) {
		if (pthread_create(&r->workers[i], NULL, worker_main, r) != 0)
			abort();
		r->n_workers++;
	}
	/* Readers: as many as get a handle of their own on the store; if none
	 * does, one that shares the archive's.  KT_RESTORE_READERS: how many
	 * (0: that one reader, for tests). */
	int want = (int)kt_archive_knob("KT_RESTORE_READERS", N_READERS, 0, N_READERS_MAX);
	for (int i = 0; i < want || !r->n_readers; i++) {
		kt_error e;
		rreader *rd = &r->readers[r->n_readers];
		rd->r = r;
		rd->s = NULL;
		if (want && kt_store_clone(r->a->s, &rd->s, &e) != KT_OK) {
			kt_log(KT_LOG_DEBUG, "restore: %d of %d readers (%s)", i, want, e.msg);
			if (i)
				break;
		}
		if (pthread_create(&rd->th, NULL, reader_main, rd) != 0)
			abort();
		r->n_readers++;
	}
	if (pthread_create(&r->namer, NULL, namer_main, r) != 0 ||
	    pthread_create(&r->planner, NULL, kt_restore_planner_main, r) != 0)
		abort();
	r->running = 1;
}

/* End the threads (at once when stop), then remove what an error left:
 * .part files, descriptors. */
void kt_restore_stop(rctx *r, int stop)
{
	pthread_mutex_lock(&r->mu);
	if (stop)
		r->stop = 1;
	r->closing = 1;
	pthread_cond_broadcast(&r->cv_job);
	pthread_cond_broadcast(&r->cv_free);
	pthread_cond_broadcast(&r->cv_fin);
	pthread_cond_broadcast(&r->cv_bq);
	pthread_mutex_unlock(&r->mu);
	pthread_cond_broadcast(&r->cv_io);
	pthread_join(r->planner, NULL);   /* first: it plans for the others */
	for (int i = 0; i < r->n_workers; i++)
		pthread_join(r->workers[i], NULL);
	pthread_join(r->namer, NULL);
	for (int i = 0; i < r->n_readers; i++) {
		pthread_join(r->readers[i].th, NULL);
		kt_store_free(r->readers[i].s);
	}
	r->n_readers = 0;
	r->running = 0;
	for (; r->n_bq; r->n_bq--, r->bq_head = (r->bq_head + 1) % BIG_QUEUE)
		kt_repo_node_release(&r->bq[r->bq_head].nd);
	for (rfile *f = r->files, *next; f; f = next) {
		next = f->next;
		if (f->fd >= 0)
			close(f->fd);
		free(f->frag);
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
	pthread_cond_destroy(&r->cv_bq);
	pthread_mutex_destroy(&r->smu);
}
