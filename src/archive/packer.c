/*
 * packer.c - compress, seal, pack and upload new blobs on threads
 * (packer.h has the contract).
 *
 * One mutex guards all shared state; the work done under it is small
 * (queue moves, appending one sealed blob to a pack, sealing a pack
 * header); compression, encryption, hashing and uploads run outside it.
 *
 * Flow of a blob:  caller -> slots[] (KT_PACKER_SLOTS plaintext copies)
 *   -> ready queue -> a worker: zstd, AES-256-GCM into its own buffer ->
 *   appended to open[type] -> when that pack reaches pack_size its header
 *   is sealed and it moves to the upload queue -> the uploader puts it,
 *   gives the buffer back (spare) and keeps its entries in done[] -> after
 *   KT_PACKER_INDEX_PACKS packs or KT_PACKER_INDEX_ENTRIES blobs (and at
 *   the end) an index file names
 *   done[], whose packs then move to stored[] for kt_packer_drain (past
 *   STORED_MEM entries, to a temp file instead: a backup of a million new
 *   blobs would otherwise hold 48 MiB of entries until its end).
 *
 * Invariants:
 *   1. The store is only used by the uploader while the threads run (it
 *      also refreshes the repository lock: kt_archive_lock_tick), and
 *      by a caller between kt_packer_store_lock and _unlock (store_mu).
 *   2. An index file is put only after every pack it names was put, and
 *      the caller hears of a pack (drain) only once an index names it.
 *   3. After the first error (err_code) every thread stops taking work;
 *      the caller sees the error at its next add or at finish.  Nothing
 *      after that error is uploaded.
 *   4. Pack buffers: two for data packs (one filling, one uploading), one
 *      for tree packs; a worker that needs one waits for the uploader to
 *      return one.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "blobio.h"
#include "packer.h"

#define KT_PACKER_SLOTS 8    /* blobs waiting or being sealed */
#define STORED_MEM 16384     /* entries kept in memory for drain; then a temp file */
/* Tree packs (trees, content lists) end at this size, or the repository's
 * pack size if smaller: the tree pack's buffer grows as it fills, and
 * beside two full data packs a 16 MiB one was a quarter of a backup's
 * peak memory.  Trees are read one blob at a time; the pack count hardly
 * changes (one tree pack for dozens of data packs). */
#define TREE_PACK_SIZE (4u << 20)
#define NBUF 3
#define MAX_WORKERS 8

typedef struct job {
	kt_buf data;
	uint8_t id[32];
	kt_blob_type type;
} job;

typedef struct opack {
	kt_buf buf;
	kt_repo_entry *entries;
	size_t n, cap;
	kt_blob_type type;            /* the pool it belongs to */
} opack;

struct kt_packer {
	kt_archive *a;
	int level;
	pthread_mutex_t mu;
	pthread_mutex_t store_mu;     /* the store: the uploader, or kt_packer_store_lock's caller */
	pthread_cond_t cv_work;   /* workers: a job is ready, or stop/close */
	pthread_cond_t cv_slot;   /* caller: a slot came free, or a worker went idle */
	pthread_cond_t cv_up;     /* uploader: a pack is queued, or stop/close */
	pthread_cond_t cv_buf;    /* workers: a pack buffer came back */
	job slots[KT_PACKER_SLOTS];
	int free_slots[KT_PACKER_SLOTS];
	size_t n_free;
	int ready[KT_PACKER_SLOTS];   /* FIFO ring */
	size_t r_head, n_ready;
	int busy;                     /* jobs taken by workers, not yet appended */
	opack bufs[NBUF];
	opack *open[2];               /* by kt_blob_type */
	opack *spare[2][NBUF];        /* free pack buffers, by kt_blob_type */
	size_t n_spare[2];
	opack *upq[NBUF];             /* FIFO ring of packs to upload */
	size_t u_head, n_up;
	int closing;                  /* finish: workers end when no job is left */
	int closing_up;               /* finish: the uploader ends when its queue is empty */
	int stop;                     /* an error (or free): everyone ends now */
	kt_code err_code;
	kt_error err;
	uint64_t stored_bytes, packs;
	/* The uploader's: packs put but not yet in an index file. */
	kt_repo_index_pack *done;
	size_t n_done, cap_done;
	/* Packs in an uploaded index file, for kt_packer_drain: the first
	 * STORED_MEM entries in stored[], the rest as records (pack id, u32
	 * count, the entries) in the temp file spill_fd, whose end the
	 * uploader moves (spill_end, under mu) and drain reads up to. */
	kt_repo_index_pack *stored;
	size_t n_stored, cap_stored, stored_entries;
	int spill_fd;
	uint64_t spill_end, spill_read;
	pthread_t workers[MAX_WORKERS];
	int n_workers;
	pthread_t uploader;
	int running;
};

/* Under mu: remember the first error and stop every thread. */
static void fail_locked(kt_packer *p, kt_code c, const kt_error *err)
{
	if (!p->err_code) {
		p->err_code = c;
		p->err = *err;
	}
	p->stop = 1;
	pthread_cond_broadcast(&p->cv_work);
	pthread_cond_broadcast(&p->cv_slot);
	pthread_cond_broadcast(&p->cv_up);
	pthread_cond_broadcast(&p->cv_buf);
}

static void push_pack(kt_repo_index_pack **v, size_t *n, size_t *cap, const uint8_t id[32],
                      kt_repo_entry *entries, size_t n_entries)
{
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 64;
		*v = realloc(*v, *cap * sizeof(**v));
		if (!*v)
			abort();
	}
	kt_repo_index_pack *ip = &(*v)[(*n)++];
	memcpy(ip->pack_id, id, 32);
	ip->entries = entries;
	ip->n = n_entries;
}

/* ------------------------------------------------------------------ */
/* Workers. */

typedef struct wstate {
	kt_blobio *io;       /* zstd and AES-GCM contexts, kept */
	kt_buf sealed;
} wstate;

/* Compress (when that saves 1/8 or more) and seal one blob into w->sealed,
 * filling e but for its offset and length. */
static kt_code seal_blob(kt_packer *p, wstate *w, const job *j, kt_repo_entry *e, kt_error *err)
{
	kt_buf_clear(&w->sealed);
	return kt_blobio_seal(w->io, j->type, j->id, j->data.data, j->data.len, p->level,
	                      &w->sealed, e, err);
}

/* Under mu: seal o's header and queue it for the uploader. */
static kt_code queue_pack_locked(kt_packer *p, kt_blob_type type, kt_error *err)
{
	opack *o = p->open[type];
	p->open[type] = NULL;
	kt_code c = kt_repo_pack_finish(&p->a->keys, &o->buf, o->entries, o->n, err);
	if (c) {
		kt_buf_clear(&o->buf);
		o->n = 0;
		p->spare[type][p->n_spare[type]++] = o;
		return c;
	}
	p->upq[(p->u_head + p->n_up++) % NBUF] = o;
	pthread_cond_signal(&p->cv_up);
	return KT_OK;
}

/* Under mu: append w->sealed (entry e) to the open pack of its type;
 * waits for a pack buffer when none is free.  KT_ECANCELED when the packer
 * stopped meanwhile (the error is already recorded). */
static kt_code append_locked(kt_packer *p, wstate *w, kt_repo_entry *e, kt_error *err)
{
	kt_blob_type type = (kt_blob_type)e->type;
	while (!p->open[type]) {
		if (p->stop)
			return KT_ECANCELED;
		if (p->n_spare[type]) {
			p->open[type] = p->spare[type][--p->n_spare[type]];
			break;
		}
		pthread_cond_wait(&p->cv_buf, &p->mu);
	}
	opack *o = p->open[type];
	if (o->n == o->cap) {
		o->cap = o->cap ? o->cap * 2 : 256;
		o->entries = realloc(o->entries, o->cap * sizeof(*o->entries));
		if (!o->entries)
			abort();
	}
	if (o->buf.len > UINT32_MAX - KT_REPO_MAX_BLOB - 1024)
		return kt_error_set(err, KT_ELIMIT, "pack is full");
	e->offset = (uint32_t)o->buf.len;
	kt_code c = kt_buf_add(&o->buf, w->sealed.data, w->sealed.len, err);
	if (c)
		return c;
	e->length = (uint32_t)w->sealed.len;
	o->entries[o->n++] = *e;
	size_t cut = p->a->pack_size;
	if (type == KT_BLOB_TREE && cut > TREE_PACK_SIZE)
		cut = TREE_PACK_SIZE;
	if (o->buf.len >= cut || o->n >= KT_REPO_MAX_PACK_ENTRIES)
		return queue_pack_locked(p, type, err);
	return KT_OK;
}

static void *worker_main(void *arg)
{
	kt_packer *p = arg;
	wstate w;
	w.io = kt_blobio_new(&p->a->keys);
	kt_buf_init(&w.sealed, KT_REPO_MAX_SEALED + KT_REPO_SEAL_OVERHEAD);
	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (!p->n_ready && !p->stop && !p->closing)
			pthread_cond_wait(&p->cv_work, &p->mu);
		if (p->stop || !p->n_ready)
			break;
		int s = p->ready[p->r_head];
		p->r_head = (p->r_head + 1) % KT_PACKER_SLOTS;
		p->n_ready--;
		p->busy++;
		pthread_mutex_unlock(&p->mu);

		kt_error err;
		kt_repo_entry e;
		kt_code c = seal_blob(p, &w, &p->slots[s], &e, &err);

		pthread_mutex_lock(&p->mu);
		if (!c)
			c = append_locked(p, &w, &e, &err);
		if (c && c != KT_ECANCELED)
			fail_locked(p, c, &err);
		p->free_slots[p->n_free++] = s;
		p->busy--;
		pthread_cond_broadcast(&p->cv_slot);
	}
	pthread_mutex_unlock(&p->mu);
	kt_blobio_free(w.io);
	kt_buf_release(&w.sealed);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* The uploader. */

/* The uploader's: a pack named by a stored index file goes to stored[] or,
 * past STORED_MEM entries, to the temp file.  ip's entries are taken over
 * or freed, also on failure. */
static kt_code keep_stored(kt_packer *p, kt_repo_index_pack *ip, kt_error *err)
{
	pthread_mutex_lock(&p->mu);
	int mem = p->stored_entries + ip->n <= STORED_MEM;
	if (mem) {
		push_pack(&p->stored, &p->n_stored, &p->cap_stored, ip->pack_id, ip->entries, ip->n);
		p->stored_entries += ip->n;
	}
	uint64_t off = p->spill_end;
	pthread_mutex_unlock(&p->mu);
	if (mem)
		return KT_OK;
	if (p->spill_fd < 0)
		p->spill_fd = kt_archive_temp_open();
	uint32_t n = (uint32_t)ip->n;
	int bad = p->spill_fd < 0 || kt_archive_pwrite_all(p->spill_fd, ip->pack_id, 32, off) ||
	          kt_archive_pwrite_all(p->spill_fd, &n, 4, off + 32) ||
	          kt_archive_pwrite_all(p->spill_fd, ip->entries, ip->n * sizeof(*ip->entries), off + 36);
	int e = errno;
	free(ip->entries);
	ip->entries = NULL;
	if (bad)
		return kt_error_sys(err, KT_EIO, e, "cannot write the backup's temp file in $TMPDIR "
		                    "(check its free space, or point TMPDIR elsewhere)");
	pthread_mutex_lock(&p->mu);
	p->spill_end = off + 36 + ip->n * sizeof(*ip->entries);
	pthread_mutex_unlock(&p->mu);
	return KT_OK;
}

/* Put the index file naming done[], then hand those packs to stored[]. */
static kt_code write_index(kt_packer *p, kt_error *err)
{
	if (!p->n_done)
		return KT_OK;
	kt_buf enc;
	kt_buf_init(&enc, KT_REPO_MAX_SEALED + KT_REPO_SEAL_OVERHEAD);
	kt_code c = kt_repo_index_encode(&p->a->keys, p->done, p->n_done, &enc, err);
	if (!c) {
		uint8_t id[32];
		char hex[65], name[128];
		kt_archive_storage_id(enc.data, enc.len, id, hex);
		snprintf(name, sizeof(name), "index/%s", hex);
		pthread_mutex_lock(&p->store_mu);
		c = kt_store_put(p->a->s, name, enc.data, enc.len, err);
		pthread_mutex_unlock(&p->store_mu);
		if (c == KT_EEXIST)
			c = KT_OK;
	}
	if (c) {
		kt_buf_release(&enc);
		return kt_error_wrap(err, "uploading an index file");
	}
	pthread_mutex_lock(&p->mu);
	p->stored_bytes += enc.len;
	pthread_mutex_unlock(&p->mu);
	kt_buf_release(&enc);
	for (size_t i = 0; i < p->n_done; i++)
		if (!c)
			c = keep_stored(p, &p->done[i], err);   /* takes or frees the entries */
		else
			free(p->done[i].entries);
	p->n_done = 0;
	return c;
}

/* Put one sealed pack under its SHA-256; its entries move to done[]. */
static kt_code put_pack(kt_packer *p, opack *o, kt_error *err)
{
	uint8_t id[32];
	char name[80];
	kt_archive_storage_id(o->buf.data, o->buf.len, id, NULL);
	kt_archive_pack_name(id, name);
	pthread_mutex_lock(&p->store_mu);
	kt_code c = kt_store_put(p->a->s, name, o->buf.data, o->buf.len, err);
	pthread_mutex_unlock(&p->store_mu);
	if (c == KT_EEXIST)
		c = KT_OK;   /* identical bytes are already stored under that name */
	if (c)
		return kt_error_wrap(err, "uploading a pack");
	push_pack(&p->done, &p->n_done, &p->cap_done, id, o->entries, o->n);
	o->entries = NULL;
	o->n = o->cap = 0;
	return KT_OK;
}

static void *uploader_main(void *arg)
{
	kt_packer *p = arg;
	kt_error err;
	kt_code c = KT_OK;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (!p->n_up && !p->stop && !p->closing_up)
			pthread_cond_wait(&p->cv_up, &p->mu);
		if (p->stop || !p->n_up)
			break;
		opack *o = p->upq[p->u_head];
		p->u_head = (p->u_head + 1) % NBUF;
		p->n_up--;
		pthread_mutex_unlock(&p->mu);

		size_t len = o->buf.len;
		c = put_pack(p, o, &err);
		size_t n_entries = 0;
		for (size_t i = 0; i < p->n_done; i++)
			n_entries += p->done[i].n;
		if (!c && (p->n_done >= KT_PACKER_INDEX_PACKS || n_entries >= KT_PACKER_INDEX_ENTRIES))
			c = write_index(p, &err);
		/* The lock of a long backup stays fresh; from this thread, as
		 * it is the one using the store. */
		if (!c) {
			pthread_mutex_lock(&p->store_mu);
			kt_archive_lock_tick(p->a);
			pthread_mutex_unlock(&p->store_mu);
		}

		pthread_mutex_lock(&p->mu);
		if (!c) {
			p->stored_bytes += len;
			p->packs++;
		}
		/* Data pack buffers are kept for the next pack; the tree pack's is
		 * given back (a backup fills few tree packs, but the memory must not
		 * stay at a third pack). */
		if (o->type == KT_BLOB_TREE)
			kt_buf_release(&o->buf);
		else
			kt_buf_clear(&o->buf);
		o->n = 0;
		p->spare[o->type][p->n_spare[o->type]++] = o;
		pthread_cond_broadcast(&p->cv_buf);
		if (c)
			fail_locked(p, c, &err);
	}
	int last = !p->stop;
	pthread_mutex_unlock(&p->mu);
	if (last && (c = write_index(p, &err))) {
		pthread_mutex_lock(&p->mu);
		fail_locked(p, c, &err);
		pthread_mutex_unlock(&p->mu);
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* The caller's side. */

/* The largest data blob the repository's chunkers make. */
static size_t max_chunk(const kt_archive *a)
{
	const kt_chunker_params *v[2] = { &a->chunk_files, &a->chunk_etcd };
	size_t m = 0;
	for (int i = 0; i < 2; i++) {
		size_t n = v[i]->kind == KT_CHUNKER_FIXED ? v[i]->block_size : v[i]->max_size;
		if (n > m)
			m = n;
	}
	return m;
}

kt_packer *kt_packer_start(kt_archive *a, int level, int n_workers)
{
	kt_packer *p = kt_xcalloc(1, sizeof(*p));
	p->a = a;
	p->spill_fd = -1;
	p->level = level;
	if (n_workers <= 0) {
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);
		n_workers = cpus < 1 ? 1 : cpus > MAX_WORKERS ? MAX_WORKERS : (int)cpus;
	}
	if (n_workers > MAX_WORKERS)
		n_workers = MAX_WORKERS;
	pthread_mutex_init(&p->mu, NULL);
	pthread_mutex_init(&p->store_mu, NULL);
	pthread_cond_init(&p->cv_work, NULL);
	pthread_cond_init(&p->cv_slot, NULL);
	pthread_cond_init(&p->cv_up, NULL);
	pthread_cond_init(&p->cv_buf, NULL);
	for (int i = 0; i < KT_PACKER_SLOTS; i++) {
		kt_buf_init(&p->slots[i].data, KT_REPO_MAX_BLOB + 1);
		p->free_slots[p->n_free++] = i;
	}
	/* A pack ends with the first blob that takes it past pack_size, then
	 * its header.  Data packs get that room once, so that they never grow
	 * by doubling (a realloc copies and leaves the old block behind): two
	 * of them, one filling while the other uploads.  Tree packs are mostly
	 * small and share one buffer that grows as needed. */
	size_t room = (size_t)a->pack_size + max_chunk(a) + KT_REPO_SEAL_OVERHEAD + (1u << 20);
	for (int i = 0; i < NBUF; i++) {
		kt_buf *b = &p->bufs[i].buf;
		kt_buf_init(b, (size_t)a->pack_size + KT_REPO_MAX_BLOB + (4u << 20));
		p->bufs[i].type = i < NBUF - 1 ? KT_BLOB_DATA : KT_BLOB_TREE;
		if (i < NBUF - 1) {
			/* Page-aligned: the local store writes it with O_DIRECT. */
			room = (room + 4095) & ~(size_t)4095;
			b->data = aligned_alloc(4096, room);
			if (!b->data)
				abort();
			b->cap = room;
			b->data[0] = '\0';
			p->spare[KT_BLOB_DATA][p->n_spare[KT_BLOB_DATA]++] = &p->bufs[i];
		} else {
			p->spare[KT_BLOB_TREE][p->n_spare[KT_BLOB_TREE]++] = &p->bufs[i];
		}
	}
	for (int i = 0; i < n_workers; i++) {
		if (pthread_create(&p->workers[i], NULL, worker_main, p) != 0)
			abort();
		p->n_workers++;
	}
	if (pthread_create(&p->uploader, NULL, uploader_main, p) != 0)
		abort();
	p->running = 1;
	return p;
}

kt_code kt_packer_add(kt_packer *p, kt_blob_type type, const uint8_t id[32], kt_buf *data,
                      kt_error *err)
{
	pthread_mutex_lock(&p->mu);
	while (!p->n_free && !p->err_code)
		pthread_cond_wait(&p->cv_slot, &p->mu);
	if (p->err_code) {
		kt_code c = p->err_code;
		*err = p->err;
		pthread_mutex_unlock(&p->mu);
		return c;
	}
	int s = p->free_slots[--p->n_free];
	pthread_mutex_unlock(&p->mu);
	if (data->len > KT_REPO_MAX_BLOB) {
		pthread_mutex_lock(&p->mu);
		p->free_slots[p->n_free++] = s;
		pthread_mutex_unlock(&p->mu);
		return kt_error_set(err, KT_ELIMIT, "blob of %zu bytes exceeds %u", data->len,
		                    KT_REPO_MAX_BLOB);
	}

	/* The caller's buffer becomes the job's, the slot's (emptied) the
	 * caller's: no copy of the blob. */
	job *j = &p->slots[s];
	kt_buf t = j->data;
	j->data = *data;
	*data = t;
	kt_buf_clear(data);
	memcpy(j->id, id, 32);
	j->type = type;

	pthread_mutex_lock(&p->mu);
	p->ready[(p->r_head + p->n_ready++) % KT_PACKER_SLOTS] = s;
	pthread_cond_signal(&p->cv_work);
	pthread_mutex_unlock(&p->mu);
	return KT_OK;
}

kt_code kt_packer_drain(kt_packer *p, kt_packer_stored_fn fn, void *ctx, kt_error *err)
{
	pthread_mutex_lock(&p->mu);
	kt_repo_index_pack *v = p->stored;
	size_t n = p->n_stored;
	p->stored = NULL;
	p->n_stored = p->cap_stored = p->stored_entries = 0;
	uint64_t end = p->spill_end;
	pthread_mutex_unlock(&p->mu);
	for (size_t i = 0; i < n; i++) {
		fn(ctx, v[i].pack_id, v[i].entries, v[i].n);
		free(v[i].entries);
	}
	free(v);
	kt_repo_entry *e = NULL;
	while (p->spill_read < end) {
		uint8_t id[32];
		uint32_t k;
		uint64_t off = p->spill_read;
		if (kt_archive_pread_all(p->spill_fd, id, 32, off) ||
		    kt_archive_pread_all(p->spill_fd, &k, 4, off + 32) ||
		    !(e = realloc(e, (k ? k : 1) * sizeof(*e))) ||
		    kt_archive_pread_all(p->spill_fd, e, k * sizeof(*e), off + 36)) {
			int en = errno;
			free(e);
			return kt_error_sys(err, KT_EIO, en, "cannot read the backup's temp file in "
			                    "$TMPDIR back");
		}
		fn(ctx, id, e, k);
		p->spill_read = off + 36 + (uint64_t)k * sizeof(*e);
	}
	free(e);
	return KT_OK;
}

static void join_all(kt_packer *p)
{
	for (int i = 0; i < p->n_workers; i++)
		pthread_join(p->workers[i], NULL);
	pthread_join(p->uploader, NULL);
	p->running = 0;
}

kt_code kt_packer_finish(kt_packer *p, kt_error *err)
{
	pthread_mutex_lock(&p->mu);
	/* Every queued blob sealed and in its pack... */
	while (!p->stop && (p->n_ready || p->busy))
		pthread_cond_wait(&p->cv_slot, &p->mu);
	p->closing = 1;
	pthread_cond_broadcast(&p->cv_work);
	/* ...then the open packs to the uploader, which ends with the index. */
	kt_error ferr;
	for (int t = 0; !p->stop && t < 2; t++) {
		if (p->open[t] && p->open[t]->n) {
			kt_code c = queue_pack_locked(p, (kt_blob_type)t, &ferr);
			if (c)
				fail_locked(p, c, &ferr);
		}
	}
	p->closing_up = 1;
	pthread_cond_broadcast(&p->cv_up);
	pthread_mutex_unlock(&p->mu);
	join_all(p);
	if (p->err_code) {
		*err = p->err;
		return p->err_code;
	}
	return KT_OK;
}

void kt_packer_stats(kt_packer *p, uint64_t *stored_bytes, uint64_t *packs)
{
	pthread_mutex_lock(&p->mu);
	*stored_bytes = p->stored_bytes;
	*packs = p->packs;
	pthread_mutex_unlock(&p->mu);
}

void kt_packer_free(kt_packer *p)
{
	if (!p)
		return;
	if (p->running) {
		pthread_mutex_lock(&p->mu);
		p->stop = 1;
		pthread_cond_broadcast(&p->cv_work);
		pthread_cond_broadcast(&p->cv_slot);
		pthread_cond_broadcast(&p->cv_up);
		pthread_cond_broadcast(&p->cv_buf);
		pthread_mutex_unlock(&p->mu);
		join_all(p);
	}
	for (int i = 0; i < KT_PACKER_SLOTS; i++)
		kt_buf_release(&p->slots[i].data);
	for (int i = 0; i < NBUF; i++) {
		kt_buf_release(&p->bufs[i].buf);
		free(p->bufs[i].entries);
	}
	for (size_t i = 0; i < p->n_done; i++)
		free(p->done[i].entries);
	free(p->done);
	for (size_t i = 0; i < p->n_stored; i++)
		free(p->stored[i].entries);
	free(p->stored);
	if (p->spill_fd >= 0)
		close(p->spill_fd);
	pthread_mutex_destroy(&p->mu);
	pthread_mutex_destroy(&p->store_mu);
	pthread_cond_destroy(&p->cv_work);
	pthread_cond_destroy(&p->cv_slot);
	pthread_cond_destroy(&p->cv_up);
	pthread_cond_destroy(&p->cv_buf);
	free(p);
}

void kt_packer_store_lock(kt_packer *p)
{
	pthread_mutex_lock(&p->store_mu);
}

void kt_packer_store_unlock(kt_packer *p)
{
	pthread_mutex_unlock(&p->store_mu);
}
