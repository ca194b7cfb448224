/*
 * restore_int.h - shared by restore.c (the walker and the planner: plan
 * the jobs) and restore_write.c (the reader, worker and namer threads)
 * only.
 */
#ifndef KT_ARCHIVE_RESTORE_INT_H
#define KT_ARCHIVE_RESTORE_INT_H

#include <pthread.h>

#include "archive_int.h"

/*
 * The restore itself runs on threads:
 *
 *   caller   walks the trees depth first; makes directories and links;
 *            plans jobs[]: a job is a span of at most RANGE_MAX bytes of
 *            one pack with the blobs of one or more files that lie in it,
 *            each file's pieces back to back (one run, one write).
 *   planner  plans the jobs of the files of BIG_FILE or more, which the
 *            caller hands it (at most BIG_QUEUE waiting), BIG_ACTIVE at
 *            a time merged by where their blobs lie (compressed blobs
 *            and the others in turn), so that their
 *            jobs (bound by the disk: cold pack reads, O_DIRECT writes)
 *            run beside the small files' (bound by the CPU: create,
 *            write, rename) instead of before or after them.  While
 *            the planner has work, the walk holds at most walk_share
 *            jobs: big files' jobs wait for the disk and need many in
 *            flight, the walk's each hold dozens of small files and keep
 *            a CPU busy.
 *   readers  read the planned jobs' spans from the store, N_READERS at
 *            once, each through a handle of its own (kt_store_clone); the
 *            caller and the planner read trees and content lists through
 *            the archive's, taking turns (smu).
 *   workers  (three per CPU: they block in the kernel, creating and
 *            writing files, as often as they compute)
 *            the first job of a file creates it as .<name>.kontinuity-part;
 *            open every blob of a job (authenticate with its id,
 *            decompress, check length) and pwrite it at its place in
 *            the file: the runs of a file of DIO_MIN_RUN or more through
 *            a stage with O_DIRECT (whole blocks; the part-blocks at the
 *            ends of a run kept back until the file is complete), smaller
 *            files through the page cache (kt_blobio_open, in place); the
 *            one that writes a
 *            file's last bytes gives it its mode, owner and times, closes
 *            it, starts its write-back (sync_file_range) and hands it to
 *            the namer.
 *   namer    makes a batch of finished files durable with one syncfs()
 *            (instead of an fsync per file) and then renames each to its
 *            name, so a name only ever holds a complete file.
 *
 * A directory gets its mode, owner and times once its walk is over and
 * everything in it has its name (rdir.refs counts the walk, the files not
 * yet named and the subdirectories not yet finished); renaming into it
 * later would change its time.  One syncfs() after the threads ended makes
 * the names, directories and times durable before restore returns.
 * Memory: N_JOBS ranges of at most RANGE_MAX (or one blob), a blob buffer
 * and a stage per worker, a store handle per reader (S3: a connection),
 * and the nodes of the big files handed to the planner (BIG_QUEUE +
 * BIG_ACTIVE, with their inline ids and the content list blob being read
 * of each).  Descriptors: the
 * directories still waiting for files (at most MAX_OPEN_DIRS, else the
 * caller waits for the namer) and the files being written.
 *
 * After the first error nothing more is named; the caller stops the
 * threads and removes every .part file still there.
 */

#define RANGE_MAX (2u << 20)
/* A job's span has no gap (bytes of blobs it does not need) of more than
 * GAP_MAX next to a blob it needs: reading more costs about what another
 * read does (~0.25 ms at 1 GB/s from a local disk; a request to S3 at
 * 100 MB/s), and the gap is often another file's blobs, read again for
 * it. */
#define GAP_MAX (256u << 10)
/* O_DIRECT writes (restore_write.c, write_run_direct): the runs of one
 * file's bytes of a file of at least DIO_MIN_RUN whose blobs are at most
 * DIO_PIECE_MAX go through a worker's stage of STAGE_CAP bytes, written in
 * whole blocks of DIO_ALIGN (the page size: no page is written both
 * directly and through the page cache).  Smaller files go through the page
 * cache. */
#define DIO_ALIGN 4096u
#define DIO_MIN_RUN (256u << 10)
#define DIO_PIECE_MAX (1u << 20)
#define STAGE_CAP ((2u << 20) + 2 * DIO_ALIGN)
/* The part-blocks at the ends of a file's direct runs are kept back (up to
 * FRAG_MAX bytes a file) and written through the page cache when the file
 * is complete: a buffered write takes the inode's lock exclusively, so it
 * waits for every O_DIRECT write of that file in flight, and they for it. */
#define FRAG_MAX (256u << 10)
#define N_JOBS 12
#define BIG_FILE (4u << 20)
#define BIG_QUEUE 16
#define BIG_ACTIVE 8
/* The planner alternates between compressed blobs (bound by the CPU:
 * decompression) and the others (bound by the disk: as many bytes read as
 * written), a job at a time, so that neither waits for the other at the
 * end; the kind that is behind in raw bytes planned goes next, and neither
 * gets more than AHEAD_MAX ahead (a kind that was missing for a while
 * catches up that much, not all of it). */
#define AHEAD_MAX ((int64_t)16 << 20)
#define N_WORKERS_MAX 8
/* Readers, each with a handle of its own on the store (kt_store_clone), so
 * that a store with a latency per request (S3: a connection each) has
 * several reads in flight. */
#define N_READERS 4
#define N_READERS_MAX 8
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
	const struct rjob *in_job;           /* planning: the job it last went into */
	int made, making;                    /* under mu: the .part exists / is being made */
	uint8_t *frag;                       /* under mu: part-blocks kept back (see FRAG_MAX) */
	size_t frag_len;
} rfile;

/* One blob of a job: where its sealed bytes are, and where they go. */
typedef struct rpiece {
	kt_repo_entry e;
	rfile *f;
	uint64_t file_off;
} rpiece;

/* A planning stream: the caller's walk, or the planner's big files. */
typedef struct rplan {
	int pend;                            /* the job being filled, or -1 */
	int jobs;                            /* under mu: its jobs taken and not free again */
} rplan;

/* A reader thread and its own handle on the store (NULL: it shares the
 * archive's, under smu). */
typedef struct rreader {
	struct rctx *r;
	kt_store *s;
	pthread_t th;
} rreader;

/* A big file handed to the planner, with a copy of its node. */
typedef struct rbig {
	rfile *f;
	kt_repo_node nd;
} rbig;

/* One read of the store: a span of one pack with the blobs of one or more
 * files in it (in file order per file). */
typedef struct rjob {
	rplan *plan;                         /* who took it */
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
	rplan walk, big;                     /* the caller's, the planner's */
	rbig bq[BIG_QUEUE];                  /* under mu: big files for the planner */
	size_t bq_head, n_bq;
	int bq_busy;                         /* under mu: the planner has a file or a job pending */
	size_t big_file;                     /* BIG_FILE but for tests (0: no planner) */
	int walk_share;                      /* the walk's jobs while the planner works */
	pthread_cond_t cv_bq;                /* planner: a big file, or stop/close */
	int planned[N_JOBS];                 /* jobs filled, waiting for a reader (FIFO) */
	size_t p_head, n_planned;
	int reading;                         /* readers with a job */
	pthread_mutex_t smu;                 /* the archive's store: tree and list reads (the
	                                        caller's, the planner's), a reader without
	                                        a handle of its own */
	pthread_cond_t cv_io;                /* readers: a job is planned, or stop/close */
	rfile *fin_head, *fin_tail;
	size_t n_fin;
	uint64_t fin_bytes;
	int naming, flush, closing, stop;
	kt_code err_code;
	kt_error err;
	rfile *files;
	rdir *dirs;
	size_t n_dirs;
	pthread_t workers[N_WORKERS_MAX], namer, planner;
	rreader readers[N_READERS_MAX];
	int n_workers, n_readers, running;
	int no_direct;                       /* atomic: O_DIRECT is off (see DIO_ALIGN) */
	size_t frag_max;                     /* FRAG_MAX but for tests */
} rctx;

/* utimensat with a tree node's mtime (ignored when malformed). */
void kt_restore_set_times(int dirfd, const char *name, const char *mtime, int nofollow);
/* Under mu: remember the first error and stop every thread. */
void kt_restore_fail_locked(rctx *r, kt_code c, const kt_error *err);
/* Drop one reference to d (see dir_unref in restore_write.c). */
void kt_restore_dir_unref(rctx *r, rdir *d);
/* f's bytes are all written: mode, owner, times, write-back; to the namer. */
kt_code kt_restore_file_done(rctx *r, rfile *f, kt_error *err);
/* The planner thread (restore.c). */
void *kt_restore_planner_main(void *arg);
/* Under mu: a job slot s is free again. */
void kt_restore_free_job_locked(rctx *r, int s);
/* Start the threads; end them (at once when stop) and remove what an
 * error left (.part files, descriptors). */
void kt_restore_start(rctx *r);
void kt_restore_stop(rctx *r, int stop);

#endif
