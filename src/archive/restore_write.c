/*
 * restore_write.c - the threads of a restore (restore_int.h has the
 * pipeline): the reader gets the planned spans of packs from the store,
 * workers create the .part files (0600, O_EXCL, O_NOFOLLOW), open every
 * blob (authenticated under its id, decompressed) and pwrite it
 * at its offset, and give finished files their mode, owner and times; the
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
}

/* Under mu: wake the caller when it may be waiting for what changed: a
 * free job slot (take_job), or anything at all while it waits for the
 * threads to be idle (wait_idle, r->flush).  The caller is cv_free's only
 * waiter; waking it for every read or batch it does not wait for only
 * preempted the workers. */
static void wake_caller_locked(rctx *r, int slot_freed)
{
	if (slot_freed || r->flush)
		pthread_cond_signal(&r->cv_free);
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

/* The file's bytes are all written: mode, owner, times; then to the namer. */
kt_code kt_restore_file_done(rctx *r, rfile *f, kt_error *err)
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
			kt_restore_fail_locked(r, c, &err);
			j->n = 0;
			r->free_jobs[r->n_free++] = s;
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
		j->n = 0;
		r->free_jobs[r->n_free++] = s;
		wake_caller_locked(r, 1);
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
	/* Two workers per CPU: a worker spends much of its time blocked in the
	 * kernel (waiting for the directory's lock while ext4 allocates an
	 * inode, for the file's lock in pwrite, for write-back), and with one
	 * per CPU every such wait leaves a core idle. */
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	int n = cpus < 1 ? 2 : 2 * cpus > N_WORKERS_MAX ? N_WORKERS_MAX : 2 * (int)cpus;
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
void kt_restore_stop(rctx *r, int stop)
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
