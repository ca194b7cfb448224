/*
 * backup.c - files into a snapshot: walk, chunk, deduplicate; then (in
 * packer.c) compress, seal, pack and upload; the index files, then the
 * snapshot (docs/repository-format.md, "Write and delete order").
 *
 * Threads:
 *   walker   (the caller) walks the directories, stats and opens each
 *            entry, prefetches the small files ahead in the directory,
 *            hands regular files to the readers and builds the trees
 *            bottom-up.  A directory's names are read and sorted first
 *            (one arena); its entries are backed up in name order and
 *            join its listing in that order as their readers finish
 *            (treeparts.c): a small directory becomes one tree blob, a big
 *            one a tree index whose parts go to the packer as they fill
 *            (docs/repository-format.md "Tree indexes"), so only the part
 *            being built and the files in flight are held.
 *   readers  (two per CPU, at most MAX_READERS) each take a whole file:
 *            read 512 KiB slices -> chunker (files: FastCDC; etcd databases,
 *            recognised by the bbolt magic: the etcd chunker) -> the chunk
 *            accumulates in one buffer of at most the chunker's max size ->
 *            blob id (keyed HMAC) -> in the archive's table or already new
 *            in this backup? skip : hand the buffer to the packer (no copy).
 *   packer   (packer.h) seals on its workers and uploads packs, then index
 *            files, from its upload thread.
 * The snapshot is put only after the packer finished: every pack, then
 * every index file, then the snapshot.
 *
 * Parent snapshot: the walker reads the parent's tree of each directory it
 * enters, one part at a time through cursors that advance in name order
 * (dirtree.c; borrowing the store from the uploader: kt_packer_store_lock) and
 * takes over the content list of every regular file whose size, mtime,
 * ctime, inode and device are unchanged and whose blobs are all indexed,
 * without opening it (parent.c finds the parent, reads its trees and
 * compares).  An unchanged directory then encodes to the same tree
 * blob as before, which is known, so nothing of it is stored again.
 *
 * Shared state (bctx.mu): the queue of files, the ids of this backup's new
 * blobs, the counters of the result, the first error of a reader.  The
 * archive's table is only read while threads run; it learns of the new
 * blobs at the end, once they are in a stored index file (inserting can
 * refresh the lock through the store, which the packer owns until then).
 *
 * Memory: per reader a slice and a chunk buffer; the packer's (packer.h:
 * ~2 packs and a few chunks); the ids of this backup's new blobs and the
 * archive's index, each a bounded table spilling into sorted runs in a
 * temp file (index.c, docs/index-memory.md).  A failure leaves packs without index or index without
 * snapshot: unreferenced data that prune removes, never a snapshot naming
 * missing data.
 */
#include <dirent.h>
#include <pthread.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "archive_int.h"
#include "blobio.h"
#include "delta.h"
#include "packer.h"
#include "parent.h"

#define SLICE (512u << 10)       /* a read of a file: 2 MiB for four readers */
#define MAX_READERS 4             /* threads reading, chunking and hashing files */
#define TASKS_QUEUED 8            /* files waiting for a reader */
#define PREFETCH_AHEAD 32         /* files of a directory read ahead */
#define PREFETCH_MAX (2u << 20)   /* ... when not larger than this */


/* One regular file for a reader thread: read, chunk and hash it into nd. */
typedef struct ftask {
	struct ftask *next;        /* in the queue */
	kt_repo_node nd;           /* meta from the walker; content and size from the reader */
	struct stat st;
	int fd;                    /* the reader closes it */
	char *path;                /* for messages */
	int done;                  /* under mu */
} ftask;

struct bctx;

typedef struct reader {
	struct bctx *b;
	kt_blobio *io;             /* its HMAC context for blob ids */
	kt_buf chunk;
	uint8_t *slice;
	/* Its chunkers, files' and etcd's, set up once: deriving the keyed
	 * gear table (64 HMACs) per file cost more than chunking a small file. */
	kt_chunker ch[2];
	int ch_ready[2];
	pthread_t thread;
} reader;

typedef struct bctx {
	kt_archive *a;             /* its table is only read until the end */
	const kt_archive_backup_opts *o;
	kt_archive_backup_result *res;   /* under mu while the readers run */
	kt_packer *pk;
	kt_blobio *io;             /* the walker's, for tree blobs */
	kt_delta_base *delta;      /* the base for etcd databases (delta.c), or NULL */
	pthread_mutex_t mu;
	pthread_cond_t cv_task;    /* readers: a task is queued, or closing */
	pthread_cond_t cv_done;    /* walker: a task is done */
	kt_idset fresh;            /* under mu: blobs this backup found new, stored once
	                              however often they recur (kept apart from the
	                              archive's table: see the top of the file) */
	ftask *q_head, *q_tail;    /* under mu */
	size_t n_queued;
	int closing;
	kt_code err_code;          /* the first error of a reader, under mu */
	kt_error err;
	uint64_t bytes_read;       /* under mu, for progress: read or taken over */
	int have_parent;
	uint8_t parent_root[32];   /* the parent snapshot's root tree */
	int lists;                 /* under mu: a tree holds a content list (snapshot v3) */
	int indexes;               /* under mu: a directory is a tree index (snapshot v4) */
	reader readers[MAX_READERS];
	int n_readers;
	char path[PATH_MAX];       /* the walker's */
} bctx;

/* A pack is stored and an index file names it: its blobs join the table. */
static void on_stored(void *ctx, const uint8_t pack_id[32], const kt_repo_entry *e, size_t n)
{
	kt_archive *a = ctx;
	for (size_t i = 0; i < n; i++)
		kt_archive_insert(a, pack_id, &e[i]);
}

/* Store the blob in *data unless it is known; its id into id_out.  New
 * blobs go to the packer, which seals and uploads them (taking *data's
 * bytes: *data is empty afterwards either way).  Any thread, with its own
 * io. */
static kt_code add_blob(bctx *b, kt_blobio *io, kt_blob_type type, kt_buf *data,
                        uint8_t id_out[32], kt_error *err)
{
	size_t n = data->len;
	kt_blobio_id(io, data->data, n, id_out);
	int known = kt_archive_find(b->a, id_out, NULL);
	if (!known) {
		pthread_mutex_lock(&b->mu);
		known = kt_idset_put(&b->fresh, id_out);
		pthread_mutex_unlock(&b->mu);
	}
	if (known) {
		kt_buf_clear(data);
		return KT_OK;
	}
	kt_code c = kt_packer_add(b->pk, type, id_out, data, err);
	if (c)
		return c;
	pthread_mutex_lock(&b->mu);
	b->res->blobs_new++;
	b->res->bytes_new += n;
	pthread_mutex_unlock(&b->mu);
	return KT_OK;
}

static void node_meta(kt_repo_node *nd, const char *name, const struct stat *st)
{
	memset(nd, 0, sizeof(*nd));
	nd->name = kt_xstrdup(name);
	nd->mode = (uint32_t)(st->st_mode & 07777);
	nd->uid = st->st_uid;
	nd->gid = st->st_gid;
	kt_archive_time_text(&st->st_mtim, nd->mtime);
	if (S_ISREG(st->st_mode)) {   /* for the next backup's change detection */
		kt_archive_time_text(&st->st_ctim, nd->ctime);
		nd->inode = (uint64_t)st->st_ino;
		nd->device = (uint64_t)st->st_dev;
	}
}

/* Take over the parent's content of the regular file nd (meta filled from
 * st) when it is unchanged and every blob is still indexed; 1 when taken
 * over. */
static int reuse_parent(bctx *b, const kt_repo_node *p, kt_repo_node *nd, const struct stat *st)
{
	if (!kt_archive_reuse_node(b->a, p, st, nd))
		return 0;
	pthread_mutex_lock(&b->mu);
	b->res->files++;
	b->res->bytes += p->size;
	b->res->files_reused++;
	b->res->bytes_reused += p->size;
	b->bytes_read += p->size;
	pthread_mutex_unlock(&b->mu);
	return 1;
}

/* Is this an etcd database (a bbolt file: meta magic 0xED0CDAED after the
 * 16-byte page header)? */
static int is_bbolt(const uint8_t *p, size_t n)
{
	return n >= 20 && p[16] == 0xed && p[17] == 0xda && p[18] == 0x0c && p[19] == 0xed;
}

/* A blob of a delta's patch (kt_delta_add_fn). */
static kt_code delta_add(void *ctx, kt_buf *blob, uint8_t id_out[32], kt_error *err)
{
	reader *r = ctx;
	return add_blob(r->b, r->io, KT_BLOB_DATA, blob, id_out, err);
}

/* A list blob of the file a reader is reading (contentlist.c). */
static kt_code reader_put_list(void *ctx, kt_buf *blob, uint8_t id_out[32], kt_error *err)
{
	reader *r = ctx;
	return add_blob(r->b, r->io, KT_BLOB_TREE, blob, id_out, err);
}

/* Read, chunk and hash the file of task t (on reader r's thread).  An etcd
 * database gets its SHA-256 recorded (a later backup may use it as a delta
 * base) and, with a base prepared, may be stored as a delta (delta.c). */
static kt_code read_file(reader *r, ftask *t, kt_error *err)
{
	bctx *b = r->b;
	kt_repo_node *nd = &t->nd;
	nd->type = KT_NODE_FILE;
	kt_chunker *ch = NULL;
	kt_code c = KT_OK;
	size_t cap_content = 0;
	int first = 1;
	uint64_t total = 0;
	EVP_MD_CTX *sha = NULL;
	kt_buf_clear(&r->chunk);
	for (;;) {
		if (b->o && b->o->cancel && *b->o->cancel) {
			EVP_MD_CTX_free(sha);
			return kt_error_set(err, KT_ECANCELED, "interrupted");
		}
		ssize_t n = read(t->fd, r->slice, SLICE);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			EVP_MD_CTX_free(sha);
			return kt_error_sys(err, kt_code_from_errno(errno), errno, "cannot read '%s'",
			                    t->path);
		}
		if (first) {
			int k = is_bbolt(r->slice, (size_t)n);
			if (k && b->delta) {
				int done = 0;
				if ((c = kt_delta_encode(b->a, b->delta, t->fd, t->path, delta_add, r, nd,
				                         &done, err)))
					return c;
				if (done) {
					pthread_mutex_lock(&b->mu);
					b->res->files++;
					b->res->bytes += nd->size;
					b->res->files_delta++;
					if (nd->delta_depth > b->res->delta_depth)
						b->res->delta_depth = nd->delta_depth;
					b->bytes_read += nd->size;
					pthread_mutex_unlock(&b->mu);
					return KT_OK;
				}
			}
			if (k && (!(sha = EVP_MD_CTX_new()) ||
			          !EVP_DigestInit_ex(sha, EVP_sha256(), NULL)))
				abort();
			ch = &r->ch[k];
			if (r->ch_ready[k]) {
				kt_chunker_reset(ch);   /* a new stream, same parameters and key */
			} else {
				if ((c = kt_chunker_init(ch, k ? &b->a->chunk_etcd : &b->a->chunk_files,
				                         b->a->keys.id, err))) {
					EVP_MD_CTX_free(sha);
					return c;
				}
				r->ch_ready[k] = 1;
			}
			first = 0;
		}
		if (sha)
			EVP_DigestUpdate(sha, r->slice, (size_t)n);
		total += (uint64_t)n;
		const uint8_t *p = r->slice;
		size_t left = (size_t)n;
		int eof = n == 0;
		while (left || eof) {
			int cut = 0;
			size_t used = 0;
			if (left) {
				used = kt_chunker_scan(ch, p, left, &cut);
				if ((c = kt_buf_add(&r->chunk, p, used, err))) {
					EVP_MD_CTX_free(sha);
					return c;
				}
				p += used;
				left -= used;
			} else {
				cut = kt_chunker_finish(ch) > 0 || r->chunk.len > 0;
			}
			if (cut && r->chunk.len) {
				if (nd->n_content == cap_content) {
					cap_content = cap_content ? cap_content * 2 : 1;
					nd->content = realloc(nd->content, cap_content * 32);
					if (!nd->content)
						abort();
				}
				if ((c = add_blob(b, r->io, KT_BLOB_DATA, &r->chunk,
				                  nd->content[nd->n_content], err))) {
					EVP_MD_CTX_free(sha);
					return c;
				}
				nd->n_content++;
				if ((c = kt_archive_lists_push(nd, reader_put_list, r, err))) {
					EVP_MD_CTX_free(sha);
					return c;
				}
			}
			if (eof)
				break;
		}
		pthread_mutex_lock(&b->mu);
		b->bytes_read += (uint64_t)n;
		int stop = b->err_code != KT_OK;
		pthread_mutex_unlock(&b->mu);
		if (stop) {   /* another reader failed: the backup is over */
			EVP_MD_CTX_free(sha);
			return kt_error_set(err, KT_ECANCELED, "interrupted");
		}
		if (eof)
			break;
	}
	/* A file that changed while we read it is stored as read; say so. */
	struct stat after;
	if (fstat(t->fd, &after) == 0 && (after.st_size != (off_t)total ||
	                                  after.st_mtim.tv_sec != t->st.st_mtim.tv_sec ||
	                                  after.st_mtim.tv_nsec != t->st.st_mtim.tv_nsec))
		kt_log(KT_LOG_WARN, "'%s' changed while it was read; the snapshot holds the %llu bytes "
		       "read", t->path, (unsigned long long)total);
	nd->size = total;
	if ((c = kt_archive_lists_end(nd, reader_put_list, r, err))) {
		EVP_MD_CTX_free(sha);
		return c;
	}
	if (sha) {
		unsigned len = 32;
		EVP_DigestFinal_ex(sha, nd->sha256, &len);
		EVP_MD_CTX_free(sha);
		nd->has_sha256 = 1;
	}
	pthread_mutex_lock(&b->mu);
	b->res->files++;
	b->res->files_read++;
	b->res->bytes += total;
	pthread_mutex_unlock(&b->mu);
	return KT_OK;
}

static void *reader_main(void *arg)
{
	reader *r = arg;
	bctx *b = r->b;
	pthread_mutex_lock(&b->mu);
	for (;;) {
		while (!b->q_head && !b->closing)
			pthread_cond_wait(&b->cv_task, &b->mu);
		if (!b->q_head)
			break;
		ftask *t = b->q_head;
		b->q_head = t->next;
		if (!b->q_head)
			b->q_tail = NULL;
		b->n_queued--;
		int skip = b->err_code != KT_OK;
		pthread_mutex_unlock(&b->mu);

		kt_error err;
		kt_code c = skip ? KT_OK : read_file(r, t, &err);
		close(t->fd);
		t->fd = -1;

		pthread_mutex_lock(&b->mu);
		if (c && !b->err_code) {
			b->err_code = c;
			b->err = err;
		}
		t->done = 1;
		pthread_cond_broadcast(&b->cv_done);
	}
	pthread_mutex_unlock(&b->mu);
	return NULL;
}

static void start_readers(bctx *b)
{
	pthread_mutex_init(&b->mu, NULL);
	pthread_cond_init(&b->cv_task, NULL);
	pthread_cond_init(&b->cv_done, NULL);
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	/* Two per CPU: while one waits for the disk (a cold cache, many small
	 * files) the other chunks; measured 13 % faster cold, no slower warm. */
	int n = cpus < 1 ? 2 : 2 * cpus > MAX_READERS ? MAX_READERS : 2 * (int)cpus;
	for (int i = 0; i < n; i++) {
		reader *r = &b->readers[i];
		r->b = b;
		r->io = kt_blobio_new(&b->a->keys);
		kt_buf_init(&r->chunk, KT_REPO_MAX_BLOB + 1);
		r->slice = kt_xmalloc(SLICE);
		if (pthread_create(&r->thread, NULL, reader_main, r) != 0)
			abort();
		b->n_readers++;
	}
}

/* End the reader threads (the queue is empty: every task was waited for). */
static void stop_readers(bctx *b)
{
	pthread_mutex_lock(&b->mu);
	b->closing = 1;
	pthread_cond_broadcast(&b->cv_task);
	pthread_mutex_unlock(&b->mu);
	for (int i = 0; i < b->n_readers; i++) {
		reader *r = &b->readers[i];
		pthread_join(r->thread, NULL);
		kt_blobio_free(r->io);
		kt_buf_release(&r->chunk);
		free(r->slice);
	}
	b->n_readers = 0;
}

/* Under mu: tell the progress callback (from the walker only). */
static void progress_locked(bctx *b, const char *current)
{
	if (b->o && b->o->progress)
		b->o->progress(b->o->progress_ctx, b->res->files, b->bytes_read, current);
}

/* Wait (under mu) on cv_done for a while, telling progress meanwhile. */
static void wait_done_locked(bctx *b, const char *current)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_nsec += 250000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(&b->cv_done, &b->mu, &until);
	progress_locked(b, current);
}

/* Queue t for a reader; waits while enough tasks are queued.  When a reader
 * failed, t is not queued but done at once, and that error returned. */
static kt_code submit(bctx *b, ftask *t, kt_error *err)
{
	pthread_mutex_lock(&b->mu);
	while (b->n_queued >= TASKS_QUEUED && !b->err_code)
		wait_done_locked(b, t->path);
	kt_code c = b->err_code;
	if (c) {
		*err = b->err;
		t->done = 1;
		close(t->fd);
		t->fd = -1;
	} else {
		t->next = NULL;
		if (b->q_tail)
			b->q_tail->next = t;
		else
			b->q_head = t;
		b->q_tail = t;
		b->n_queued++;
		pthread_cond_signal(&b->cv_task);
	}
	progress_locked(b, t->path);
	pthread_mutex_unlock(&b->mu);
	return c;
}

/* Wait until t is done; the first error of any reader, if there was one.
 * t (and its node) is the caller's again. */
static kt_code wait_task(bctx *b, ftask *t, kt_error *err)
{
	pthread_mutex_lock(&b->mu);
	while (!t->done)
		wait_done_locked(b, t->path);
	kt_code c = b->err_code;
	if (c)
		*err = b->err;
	pthread_mutex_unlock(&b->mu);
	return c;
}

static void task_free(ftask *t, int keep_node)
{
	if (!keep_node)
		kt_repo_node_release(&t->nd);
	free(t->path);
	free(t);
}

static kt_code put_list(void *ctx, kt_buf *blob, uint8_t id_out[32], kt_error *err)
{
	bctx *b = ctx;
	return add_blob(b, b->io, KT_BLOB_TREE, blob, id_out, err);
}

static kt_code tree_blob(bctx *b, kt_repo_tree *t, uint8_t id_out[32], kt_error *err)
{
	int made = 0;
	kt_code c = kt_archive_lists_make(t, put_list, b, &made, err);
	for (size_t i = 0; !made && i < t->n; i++)
		made = t->nodes[i].n_content_list > 0;   /* taken over from the parent */
	if (made) {
		pthread_mutex_lock(&b->mu);
		b->lists = 1;
		pthread_mutex_unlock(&b->mu);
	}
	if (c)
		return c;
	kt_buf enc;
	kt_buf_init(&enc, KT_REPO_MAX_BLOB);
	c = kt_repo_tree_encode(t, &enc, err);
	if (!c)
		c = add_blob(b, b->io, KT_BLOB_TREE, &enc, id_out, err);
	kt_buf_release(&enc);
	return c;
}

static void tree_add(kt_repo_tree *t, size_t *cap, kt_repo_node *nd)
{
	if (t->n == *cap) {
		*cap = *cap ? *cap * 2 : 16;
		t->nodes = realloc(t->nodes, *cap * sizeof(*t->nodes));
		if (!t->nodes)
			abort();
	}
	t->nodes[t->n++] = *nd;
}

/* Back up the entry at b->path (plen bytes) named name into *nd; a regular
 * file goes to a reader instead (unless the parent's node pnode, or NULL,
 * lets it be taken over): *task is set, and its node comes with it once it
 * is done (wait_task). */
static kt_code backup_entry(bctx *b, size_t plen, const char *name, kt_repo_node *nd, int depth,
                            const kt_repo_node *pnode, ftask **task, kt_error *err);

/* Start reading a small file in the background before its turn: on a cold
 * cache, many reads in flight at once go much faster than one file at a
 * time.  Only regular files are opened (a fifo or a device must not be);
 * big ones need no help, the kernel reads ahead of sequential reads. */
static void prefetch(int dfd, const char *name, const kt_repo_node *pnode)
{
	struct stat st;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode) ||
	    st.st_size == 0 || st.st_size > PREFETCH_MAX || kt_archive_unchanged(pnode, &st))
		return;   /* (an unchanged file is not read at all) */
	int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return;
	posix_fadvise(fd, 0, st.st_size, POSIX_FADV_WILLNEED);
	close(fd);
}

/* The parent's trees are read with the store borrowed from the packer. */
static void parent_lock(void *ctx, int on)
{
	if (on)
		kt_packer_store_lock(ctx);
	else
		kt_packer_store_unlock(ctx);
}

/* Store a part of a directory (or a whole small one). */
static kt_code put_part(void *ctx, kt_repo_tree *t, uint8_t id_out[32], kt_error *err)
{
	return tree_blob(ctx, t, id_out, err);
}

/* Entries of a directory in name order, from the walk (done) or from a
 * reader (task): they join the listing in that order. */
typedef struct slot {
	ftask *task;
	kt_repo_node nd;
} slot;

#define SLOTS (TASKS_QUEUED + PREFETCH_AHEAD + MAX_READERS)

static int task_done(bctx *b, ftask *t)
{
	pthread_mutex_lock(&b->mu);
	int d = t->done;
	pthread_mutex_unlock(&b->mu);
	return d;
}

/* The oldest slot into the listing (waiting for its reader when wait);
 * 0 when it is not done yet.  After a failure (*c set) nodes are freed. */
static int slot_take(bctx *b, slot *s, kt_treeparts *tp, int wait, kt_code *c, kt_error *err)
{
	if (s->task) {
		if (!wait && !*c && !task_done(b, s->task))
			return 0;
		kt_error werr;
		kt_code wc = wait_task(b, s->task, &werr);
		if (wc && !*c) {
			*c = wc;
			*err = werr;
		}
		s->nd = s->task->nd;
		memset(&s->task->nd, 0, sizeof(s->task->nd));
		task_free(s->task, 1);
		s->task = NULL;
	}
	if (!*c && s->nd.name)
		*c = kt_treeparts_add(tp, &s->nd, err);
	kt_repo_node_release(&s->nd);
	return 1;
}

/* psub: the parent's tree of this directory, or NULL.  The names are read
 * and sorted first; entries are backed up in name order and join the
 * listing (treeparts.c) in that order as their readers finish, so only
 * the part being built and the files in flight are held. */
static kt_code backup_dir(bctx *b, size_t plen, kt_repo_node *nd, int depth,
                          const uint8_t *psub, kt_error *err)
{
	nd->type = KT_NODE_DIR;
	DIR *d = opendir(b->path);
	if (!d)
		return kt_error_sys(err, kt_code_from_errno(errno), errno, "cannot read directory '%s'",
		                    b->path);
	kt_archive_dirnames v;
	kt_archive_dirnames_read(d, &v);
	/* Two cursors over the parent's listing: the files ahead (prefetch)
	 * and the current one; each holds one part. */
	kt_archive_cursor pc, pahead;
	kt_archive_cursor_open(&pc, b->a, psub, parent_lock, b->pk);
	kt_archive_cursor_open(&pahead, b->a, psub, parent_lock, b->pk);
	kt_treeparts tp;
	kt_treeparts_init(&tp, b->io, put_part, put_list, b);
	slot ring[SLOTS];
	size_t head = 0, n_ring = 0, ahead = 0;
	kt_code c = KT_OK;
	for (size_t i = 0; !c && i < v.n; i++) {
		for (; ahead < v.n && ahead <= i + PREFETCH_AHEAD; ahead++)
			if (ahead > i)
				prefetch(dirfd(d), kt_archive_dirnames_at(&v, ahead),
				         kt_archive_cursor_find(&pahead, kt_archive_dirnames_at(&v, ahead)));
		if (n_ring == SLOTS) {   /* the ring is full: wait for its oldest */
			slot_take(b, &ring[head], &tp, 1, &c, err);
			head = (head + 1) % SLOTS;
			n_ring--;
		}
		if (c)
			break;
		slot *s = &ring[(head + n_ring) % SLOTS];
		memset(s, 0, sizeof(*s));
		n_ring++;
		c = backup_entry(b, plen, kt_archive_dirnames_at(&v, i), &s->nd, depth + 1,
		                 kt_archive_cursor_find(&pc, kt_archive_dirnames_at(&v, i)), &s->task, err);
		b->path[plen] = '\0';
		/* Whatever is done at the front joins the listing now. */
		while (n_ring && slot_take(b, &ring[head], &tp, 0, &c, err)) {
			head = (head + 1) % SLOTS;
			n_ring--;
		}
	}
	/* Every file handed to a reader comes back, also after a failure. */
	for (; n_ring; n_ring--, head = (head + 1) % SLOTS)
		slot_take(b, &ring[head], &tp, 1, &c, err);
	kt_archive_cursor_close(&pc);
	kt_archive_cursor_close(&pahead);
	kt_archive_dirnames_release(&v);
	closedir(d);
	int indexed = 0;
	if (!c)
		c = kt_treeparts_end(&tp, nd->subtree, &indexed, err);
	if (c == KT_ELIMIT)
		c = kt_error_set(err, KT_ELIMIT, "directory '%s': a part of its listing exceeds the "
		                 "%u MiB a tree blob may hold (%s)", b->path, KT_REPO_MAX_BLOB >> 20,
		                 err->msg);
	kt_treeparts_release(&tp);
	if (!c) {
		pthread_mutex_lock(&b->mu);
		b->indexes |= indexed;
		b->res->dirs++;
		pthread_mutex_unlock(&b->mu);
	}
	return c;
}

static kt_code backup_entry(bctx *b, size_t plen, const char *name, kt_repo_node *nd, int depth,
                            const kt_repo_node *pnode, ftask **task, kt_error *err)
{
	*task = NULL;
	if (depth > 256)
		return kt_error_set(err, KT_ELIMIT, "directories nest deeper than 256 levels at '%s'",
		                    b->path);
	size_t n = strlen(name);
	if (plen + n + 2 >= sizeof(b->path))
		return kt_error_set(err, KT_ELIMIT, "path too long under '%s'", b->path);
	if (!kt_repo_name_ok(name))
		return kt_error_set(err, KT_EUSAGE, "cannot store the name '%s' in '%s'", name,
		                    b->path);
	if (!(plen == 1 && b->path[0] == '/'))
		b->path[plen++] = '/';
	memcpy(b->path + plen, name, n + 1);
	plen += n;
	struct stat st;
	if (lstat(b->path, &st) != 0)
		return kt_error_sys(err, kt_code_from_errno(errno), errno, "cannot examine '%s'",
		                    b->path);
	node_meta(nd, name, &st);
	if (S_ISDIR(st.st_mode))
		return backup_dir(b, plen, nd, depth,
		                  pnode && pnode->type == KT_NODE_DIR ? pnode->subtree : NULL, err);
	if (S_ISLNK(st.st_mode)) {
		char target[4096];
		ssize_t r = readlink(b->path, target, sizeof(target) - 1);
		if (r <= 0)
			return kt_error_sys(err, kt_code_from_errno(errno), errno, "cannot read link '%s'",
			                    b->path);
		target[r] = '\0';
		nd->type = KT_NODE_SYMLINK;
		nd->target = kt_xstrdup(target);
		return KT_OK;
	}
	if (!S_ISREG(st.st_mode)) {
		kt_log(KT_LOG_WARN, "skipping '%s': not a file, directory or link", b->path);
		free(nd->name);
		nd->name = NULL;
		return KT_OK;   /* sockets, fifos, devices: skipped, not stored */
	}
	if (reuse_parent(b, pnode, nd, &st))
		return KT_OK;
	int fd = open(b->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return kt_error_sys(err, kt_code_from_errno(errno), errno, "cannot open '%s'", b->path);
	ftask *t = kt_xcalloc(1, sizeof(*t));
	t->nd = *nd;
	memset(nd, 0, sizeof(*nd));
	t->st = st;
	t->fd = fd;
	t->path = kt_xstrdup(b->path);
	*task = t;
	return submit(b, t, err);
}

typedef kt_archive_trie trie;

/* Emit trie node t (its path is b->path[0..plen)) into nd; pnode is the
 * parent snapshot's node of the same path, or NULL. */
static kt_code emit(bctx *b, trie *t, size_t plen, kt_repo_node *nd, int depth,
                    const kt_repo_node *pnode, kt_error *err)
{
	if (t->target) {
		ftask *task = NULL;
		kt_code c = backup_entry(b, plen, t->name, nd, depth, pnode, &task, err);
		b->path[plen] = '\0';
		if (task) {
			kt_error werr;
			kt_code wc = wait_task(b, task, &werr);
			if (wc && !c) {
				c = wc;
				*err = werr;
			}
			if (!c)
				*nd = task->nd;
			task_free(task, !c);
		}
		if (!c && !nd->name)
			c = kt_error_set(err, KT_EUSAGE, "'%s/%s' is not a file, directory or link",
			                 plen ? b->path : "", t->name);
		return c;
	}
	/* A directory above what was asked for: its own metadata, and only the
	 * children that lead to given paths. */
	size_t n = strlen(t->name);
	if (plen + n + 2 >= sizeof(b->path))
		return kt_error_set(err, KT_ELIMIT, "path too long");
	size_t nl = plen;
	if (!(plen == 1 && b->path[0] == '/'))
		b->path[nl++] = '/';
	memcpy(b->path + nl, t->name, n + 1);
	nl += n;
	struct stat st;
	if (lstat(b->path, &st) != 0 || !S_ISDIR(st.st_mode)) {
		int e = errno;
		return kt_error_sys(err, kt_code_from_errno(e), e, "cannot examine '%s'", b->path);
	}
	node_meta(nd, t->name, &st);
	nd->type = KT_NODE_DIR;
	kt_repo_tree tree = { 0 };
	kt_archive_cursor pc;
	kt_archive_cursor_open(&pc, b->a, pnode && pnode->type == KT_NODE_DIR ? pnode->subtree
	                       : NULL, parent_lock, b->pk);
	kt_archive_trie_sort(t);
	size_t cap = 0;
	kt_code c = KT_OK;
	for (size_t i = 0; !c && i < t->n; i++) {
		kt_repo_node child;
		memset(&child, 0, sizeof(child));
		c = emit(b, &t->kids[i], nl, &child, depth + 1,
		         kt_archive_cursor_find(&pc, t->kids[i].name), err);
		b->path[nl] = '\0';
		if (!c)
			tree_add(&tree, &cap, &child);
		else
			kt_repo_node_release(&child);
	}
	if (!c)
		c = tree_blob(b, &tree, nd->subtree, err);
	kt_repo_tree_release(&tree);
	kt_archive_cursor_close(&pc);
	return c;
}

kt_code kt_archive_backup(kt_archive *a, const char *const *paths, size_t n_paths,
                          const kt_archive_backup_opts *o, kt_archive_backup_result *res,
                          kt_error *err)
{
	memset(res, 0, sizeof(*res));
	int64_t start = kt_now_ms();
	if (n_paths == 0)
		return kt_error_set(err, KT_EUSAGE, "nothing to back up (give files or directories)");
	trie root;
	memset(&root, 0, sizeof(root));
	kt_code c = KT_OK;
	char **abs = kt_xcalloc(n_paths, sizeof(char *));
	size_t n_abs = 0;
	for (size_t i = 0; !c && i < n_paths; i++)
		if (!(c = kt_archive_trie_add(&root, paths[i], &abs[n_abs], err)))
			n_abs++;
	n_abs = kt_archive_paths_canon(abs, n_abs);
	char host[256];
	if (o && o->hostname && *o->hostname)
		snprintf(host, sizeof(host), "%s", o->hostname);
	else if (gethostname(host, sizeof(host) - 1) != 0)
		snprintf(host, sizeof(host), "unknown");
	host[sizeof(host) - 1] = '\0';
	bctx b;
	memset(&b, 0, sizeof(b));
	b.a = a;
	b.o = o;
	b.res = res;
	if (!c)
		c = kt_archive_find_parent(a, o ? o->parent : NULL, o && o->force, host, abs, n_abs,
		                          res->parent_id, b.parent_root, err);
	b.have_parent = !c && res->parent_id[0];
	int level = o && o->compression_level ? (o->compression_level < 0 ? 0 : o->compression_level)
	                                      : 1;
	/* The delta base needs the store: before the packer owns it. */
	if (!c)
		c = kt_delta_prepare(a, o, paths, n_paths, &b.delta, err);
	b.pk = kt_packer_start(a, level, 0);
	b.io = kt_blobio_new(&a->keys);
	start_readers(&b);
	kt_repo_tree top = { 0 };
	kt_archive_cursor ptop;
	kt_archive_cursor_open(&ptop, a, !c && b.have_parent ? b.parent_root : NULL, parent_lock,
	                       b.pk);
	kt_archive_trie_sort(&root);
	size_t cap = 0;
	b.path[0] = '/';
	b.path[1] = '\0';
	for (size_t i = 0; !c && i < root.n; i++) {
		kt_repo_node nd;
		memset(&nd, 0, sizeof(nd));
		c = emit(&b, &root.kids[i], 1, &nd, 0,
		         kt_archive_cursor_find(&ptop, root.kids[i].name), err);
		b.path[1] = '\0';
		if (!c)
			tree_add(&top, &cap, &nd);
		else
			kt_repo_node_release(&nd);
	}
	kt_archive_cursor_close(&ptop);
	stop_readers(&b);   /* every file is read (the walk waited for each) */
	kt_repo_snapshot snap;
	memset(&snap, 0, sizeof(snap));
	if (!c)
		c = tree_blob(&b, &top, snap.tree, err);
	kt_repo_tree_release(&top);
	/* Packs, then the index naming them (the packer), then the snapshot. */
	if (!c)
		c = kt_packer_finish(b.pk, err);
	kt_packer_stats(b.pk, &res->stored_bytes, &res->packs);
	if (!c)
		c = kt_packer_drain(b.pk, on_stored, a, err);
	kt_packer_free(b.pk);
	if (!c) {
		struct timespec now;
		clock_gettime(CLOCK_REALTIME, &now);
		struct tm tm;
		gmtime_r(&now.tv_sec, &tm);
		char base[24];
		strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
		snprintf(snap.time, sizeof(snap.time), "%.19s.%09ldZ", base,
		         (long)(now.tv_nsec % 1000000000L));
		snprintf(snap.hostname, sizeof(snap.hostname), "%s", host);
		snap.paths = abs;
		snap.n_paths = n_abs;
		size_t n_tags = 0;
		while (o && o->tags && o->tags[n_tags])
			n_tags++;
		snap.tags = n_tags ? (char **)o->tags : NULL;
		snap.n_tags = n_tags;
		/* 4: a tree index; 3: trees hold content lists; 2: delta nodes */
		snap.version = b.indexes ? 4 : b.lists ? 3 : res->files_delta ? 2 : 1;
		snap.files = res->files;
		snap.bytes = res->bytes;
		snap.added_bytes = res->bytes_new;
		kt_buf enc;
		kt_buf_init(&enc, 16u << 20);
		c = kt_repo_snapshot_encode(&snap, &enc, err);
		if (!c)
			c = kt_archive_put_sealed(a, "snapshots", KT_AAD_SNAPSHOT, enc.data, enc.len,
			                          res->snapshot_id, &res->stored_bytes, err);
		kt_buf_release(&enc);
	}
	kt_idset_release(&b.fresh);
	kt_delta_base_free(b.delta);
	kt_blobio_free(b.io);
	pthread_mutex_destroy(&b.mu);
	pthread_cond_destroy(&b.cv_task);
	pthread_cond_destroy(&b.cv_done);
	kt_archive_trie_release(&root);
	for (size_t i = 0; i < n_abs; i++)
		free(abs[i]);
	free(abs);
	res->duration_ms = kt_now_ms() - start;
	return c;
}
