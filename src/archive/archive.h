/*
 * archive.h - the repository engine: a deduplicating, encrypted repository
 * (docs/repository-format.md) on a store (docs/storage.md).
 *
 * Owns: init and open (key files, config), the in-memory index of every
 * blob, backup (walk, chunk, dedup, pack, upload; index then snapshot
 * last), restore (byte-identical files with modes and times), listing
 * snapshots and trees, and check (structure; with read_data every byte);
 * etcd databases optionally stored as deltas against an earlier backup
 * (delta.c; docs/repository-format.md, "Delta-encoded files").
 *
 * Invariants (the format's write order):
 *   1. Packs are uploaded before the index file naming them; index files
 *      before the snapshot that needs them.  A crash leaves only
 *      unreferenced data.
 *   2. Nothing is rewritten: every object name is written once.
 *   3. Memory is bounded by the pack size plus the index (about 90 bytes
 *      per stored blob), never by the size of the data.
 * A kt_archive is used by one thread at a time.
 */
#ifndef KT_ARCHIVE_H
#define KT_ARCHIVE_H

#include <signal.h>

#include "../core/core.h"
#include "../store/store.h"

typedef struct kt_archive kt_archive;

typedef struct kt_archive_init_opts {
	const char *hostname;        /* recorded in the key file */
	uint64_t kdf_n;              /* scrypt N; 0 = 32768 */
	uint32_t pack_size;          /* 0 = 16 MiB */
} kt_archive_init_opts;

/* Make a new repository in the (empty) store s, with one key file for
 * pass.  KT_EEXIST when s already holds a config. */
kt_code kt_archive_init(kt_store *s, const char *pass, size_t pass_len,
                        const kt_archive_init_opts *o, kt_error *err);

/* Open the repository in s (borrowed; must outlive the archive): find a key
 * file pass opens (KT_EAUTH "wrong passphrase" when none does), read the
 * config, load the index.  Free with kt_archive_free. */
kt_code kt_archive_open(kt_store *s, const char *pass, size_t pass_len, kt_archive **out,
                        kt_error *err);
void kt_archive_free(kt_archive *a);
/* The repository id (64 hex). */
const char *kt_archive_id(const kt_archive *a);

/* ---------------- locks (lock.c) ---------------- */

/*
 * Lock the repository: shared (backup, restore, check) or exclusive
 * (prune).  KT_EEXIST naming the holder when a conflicting lock younger
 * than 30 minutes exists.  The lock is refreshed as work goes on and
 * removed by kt_archive_unlock or kt_archive_free.
 */
kt_code kt_archive_lock(kt_archive *a, int exclusive, kt_error *err);
void kt_archive_unlock(kt_archive *a);
/* Remove locks older than 30 minutes (left by killed processes). */
kt_code kt_archive_remove_stale_locks(kt_archive *a, unsigned *n_removed, kt_error *err);

/* ---------------- backup ---------------- */

typedef void (*kt_archive_progress_fn)(void *ctx, uint64_t files, uint64_t bytes,
                                       const char *current);

typedef struct kt_archive_backup_opts {
	const char *hostname;        /* NULL: gethostname */
	const char *const *tags;     /* NULL-terminated, or NULL */
	int compression_level;       /* zstd level; 0 = 1 (docs/benchmarks.md); -1 = off */
	/* The parent snapshot, whose file metadata lets unchanged files be
	 * taken over without reading them: NULL = the newest snapshot with
	 * this host name and the same set of absolute paths, else "latest" or
	 * an id prefix.  force: no parent, every file is read. */
	const char *parent;
	int force;
	kt_archive_progress_fn progress;
	void *progress_ctx;
	volatile sig_atomic_t *cancel;
	/* Delta encoding of etcd databases (docs/repository-format.md,
	 * "Delta-encoded files"): the snapshot (id, prefix or "latest") that
	 * holds the base, NULL = no deltas; a local file believed to hold the
	 * base's bytes (used only when its SHA-256 matches), or NULL; the
	 * longest chain (K) before a keyframe, 0 = 20. */
	const char *delta_parent;
	const char *delta_base_path;
	unsigned delta_max_depth;
} kt_archive_backup_opts;

typedef struct kt_archive_backup_result {
	char snapshot_id[65];
	uint64_t files, dirs, bytes;    /* what the snapshot holds */
	uint64_t blobs_new, bytes_new;  /* raw bytes of blobs not stored before */
	uint64_t stored_bytes;          /* bytes uploaded (packs, index, snapshot) */
	uint64_t packs;
	uint64_t files_delta;           /* files stored as deltas */
	uint32_t delta_depth;           /* the deepest of them (0: none) */
	/* Files read, and files taken over from the parent unread (their
	 * metadata matched and every blob is indexed), with their bytes. */
	uint64_t files_read, files_reused, bytes_reused;
	char parent_id[65];             /* "" when there was no parent */
	int64_t duration_ms;
} kt_archive_backup_result;

/*
 * Back up paths (files, directories recursively, symlinks as links) into a
 * new snapshot.  Each path is stored under its absolute path's components,
 * and the snapshot's paths are the absolute paths (sorted, once each).
 * A regular file whose size, mtime, ctime, inode and device equal those of
 * the same path in the parent snapshot (see the opts) and whose blobs are
 * all indexed is not read: its content list is the parent's.  KT_ENOTFOUND
 * when an explicit parent does not exist.
 * Unreadable entries fail the backup (nothing half-recorded: no snapshot
 * is written).  res is filled on success.
 */
kt_code kt_archive_backup(kt_archive *a, const char *const *paths, size_t n_paths,
                          const kt_archive_backup_opts *o, kt_archive_backup_result *res,
                          kt_error *err);

/* ---------------- a snapshot from memory (writer.c) ---------------- */

/* Build a snapshot from files handed over in memory (application restore
 * points): begin, add each file, commit (or free to abandon: nothing is
 * named, prune removes what was uploaded).  The caller holds the archive
 * lock and does not use the store in between. */
typedef struct kt_archive_writer kt_archive_writer;
kt_code kt_archive_writer_begin(kt_archive *a, int compression_level, kt_archive_writer **out,
                                kt_error *err);
/* Add a regular file at path ("a/b/c.json": '/'-separated safe names; the
 * directories are made as needed) holding data[0..n). */
kt_code kt_archive_writer_add(kt_archive_writer *w, const char *path, const void *data,
                              size_t n, uint32_t mode, kt_error *err);
/* Write the trees, finish the packs and index, then the snapshot (hostname
 * and tags from o; paths as given).  res is filled on success. */
kt_code kt_archive_writer_commit(kt_archive_writer *w, const kt_archive_backup_opts *o,
                                 const char *const *paths, size_t n_paths,
                                 kt_archive_backup_result *res, kt_error *err);
void kt_archive_writer_free(kt_archive_writer *w);

/* Append the whole file at path ("a/b/c.json") of snapshot id (full hex
 * id) to out (bounded by out->max).  KT_ENOTFOUND naming the path when it
 * is absent; delta-encoded files are refused (restore them to disk). */
kt_code kt_archive_read_file(kt_archive *a, const char *id, const char *path, kt_buf *out,
                             kt_error *err);
/* The same for many files of one snapshot: the reader keeps the directory
 * it read last, so files read directory by directory decode each tree once. */
typedef struct kt_archive_reader kt_archive_reader;
kt_code kt_archive_reader_open(kt_archive *a, const char *id, kt_archive_reader **out,
                               kt_error *err);
kt_code kt_archive_reader_get(kt_archive_reader *r, const char *path, kt_buf *out,
                              kt_error *err);
void kt_archive_reader_free(kt_archive_reader *r);

/* ---------------- snapshots ---------------- */

typedef struct kt_archive_snap {
	char id[65];
	char time[40];
	char hostname[256];
	char **paths;
	size_t n_paths;
	char **tags;
	size_t n_tags;
	uint64_t files, bytes, added_bytes;
	int version;                 /* snapshot format: 2 when it holds delta files */
} kt_archive_snap;

/* Every snapshot, oldest first; free with kt_archive_snaps_free. */
kt_code kt_archive_snapshots(kt_archive *a, kt_archive_snap **out, size_t *n_out,
                             kt_error *err);
void kt_archive_snaps_free(kt_archive_snap *v, size_t n);
/* Resolve "latest" or a unique id prefix (>= 4 hex digits) to a full id. */
kt_code kt_archive_find_snapshot(kt_archive *a, const char *spec, char id[65], kt_error *err);

/* ---------------- restore ---------------- */

typedef struct kt_archive_restore_opts {
	int owners;                  /* restore uid/gid (root only) */
	/* Restore only the directory at this absolute path of the snapshot
	 * ("/srv/data": one of the paths it holds, or below one) as target's
	 * own contents, giving target that directory's mode and times (the
	 * volume mover: a volume backed up at one mount path comes back at
	 * another).  NULL = the whole snapshot, paths below target. */
	const char *subtree;
	/* Accept a target holding only "lost+found" (a fresh filesystem). */
	int allow_lost_found;
	kt_archive_progress_fn progress;
	void *progress_ctx;
	volatile sig_atomic_t *cancel;
} kt_archive_restore_opts;

typedef struct kt_archive_restore_result {
	uint64_t files, dirs, links, bytes;
	int64_t duration_ms;
} kt_archive_restore_result;

/*
 * Restore snapshot id into target (created; must be empty or absent): every
 * file byte-identical (each blob authenticated and checked against its id),
 * with mode and modification time.  Files appear under their name only once
 * complete.  KT_EEXIST when target is not empty.
 */
kt_code kt_archive_restore(kt_archive *a, const char *id, const char *target,
                           const kt_archive_restore_opts *o, kt_archive_restore_result *res,
                           kt_error *err);

/* ---------------- listing and check ---------------- */

/* Called per entry of a snapshot, depth first: path relative to the root;
 * delta_depth > 0 for a delta-encoded file (its chain's length). */
typedef void (*kt_archive_ls_fn)(void *ctx, const char *path, int type, uint32_t mode,
                                 uint64_t size, const char *mtime, uint32_t delta_depth);
kt_code kt_archive_ls(kt_archive *a, const char *id, kt_archive_ls_fn fn, void *ctx,
                      kt_error *err);

typedef void (*kt_archive_problem_fn)(void *ctx, const char *what);

typedef struct kt_archive_check_result {
	uint64_t packs, blobs, snapshots, trees;
	uint64_t lists;          /* content list blobs read (files of many blobs) */
	uint64_t problems;
	uint64_t bytes_read;
} kt_archive_check_result;

/*
 * Check the repository: every index entry's pack exists with a size that
 * fits its entries, every snapshot's trees decode and every blob they name
 * is indexed, and every delta file's base exists.  With read_data, every
 * pack is read, its name checked against its SHA-256, its header against
 * the index, and every blob opened; every delta file is decoded (its chain,
 * into temp files in $TMPDIR) and compared with its recorded SHA-256.  Each
 * problem is reported through fn (naming pack, blob or snapshot) and
 * counted; KT_ECORRUPT when there was any.
 */
kt_code kt_archive_check(kt_archive *a, int read_data, kt_archive_problem_fn fn, void *ctx,
                         kt_archive_check_result *res, kt_error *err);

/* ---------------- forget and prune (prune.c) ---------------- */

/* Keep rules; 0 = the rule is off.  At least one must be set. */
typedef struct kt_archive_policy {
	unsigned last, hourly, daily, weekly, monthly, yearly;
	/* Only snapshots of this host (NULL: any) carrying this tag (NULL: any)
	 * are considered; the others are kept untouched ("other"). */
	const char *host;
	const char *tag;
} kt_archive_policy;

/* Called per snapshot, oldest first: why it is kept ("last,daily"), or
 * NULL when it is (or, dry run, would be) removed. */
typedef void (*kt_archive_forget_fn)(void *ctx, const kt_archive_snap *s, const char *kept);

/*
 * Apply the policy within each group of snapshots (same host, and same
 * tags, or for untagged snapshots same paths),
 * deleting the snapshots no rule keeps (only snapshot objects: the data
 * goes with prune).  KT_EUSAGE when no rule is set.
 */
kt_code kt_archive_forget(kt_archive *a, const kt_archive_policy *p, int dry_run,
                          kt_archive_forget_fn fn, void *ctx, unsigned *n_removed,
                          kt_error *err);

/* Remove one snapshot object (a full id; the caller holds a lock).  Its
 * data goes with prune.  KT_ENOTFOUND when there is no such snapshot. */
kt_code kt_archive_forget_snapshot(kt_archive *a, const char *id, kt_error *err);

typedef struct kt_archive_prune_result {
	uint64_t packs_kept, packs_removed, packs_repacked, packs_unreferenced, packs_written;
	uint64_t bytes_freed, bytes_written;
	uint64_t remove_failed;       /* deletions the store refused (Object Lock) */
} kt_archive_prune_result;

/* Remove what no snapshot needs (order and crash safety in prune.c),
 * under the exclusive lock.  dry_run: count only. */
kt_code kt_archive_prune(kt_archive *a, int dry_run, kt_archive_prune_result *res,
                         kt_error *err);

typedef struct kt_archive_stats {
	uint64_t snapshots, packs, blobs, stored_bytes, raw_bytes;
} kt_archive_stats;
kt_code kt_archive_stats_get(kt_archive *a, kt_archive_stats *out, kt_error *err);

#endif /* KT_ARCHIVE_H */
