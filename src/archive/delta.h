/*
 * delta.h - delta-encoded files in the repository (docs/repository-format.md,
 * "Delta-encoded files"): an etcd database stored as one zstd frame
 * compressed with an earlier backup of it as prefix.  Internal to
 * src/archive: backup.c, restore.c, check.c and prune.c call these hooks;
 * the codec and the chain logic live in delta.c.
 */
#ifndef KT_ARCHIVE_DELTA_H
#define KT_ARCHIVE_DELTA_H

#include "archive_int.h"

#define KT_DELTA_DEFAULT_MAX_DEPTH 20u
#define KT_DELTA_PATCH_BLOB (1u << 20)           /* patch bytes per data blob */
#define KT_DELTA_WORK_LIMIT (4ull << 30)         /* depth x file size a restore decodes */
#define KT_DELTA_WINDOW_LOG_MAX 31u              /* base + file must fit zstd's window */

/* The base a backup encodes against: the bytes of one file node of the
 * parent snapshot, mapped read-only.  Immutable once prepared, so reader
 * threads share it. */
typedef struct kt_delta_base kt_delta_base;

/*
 * Find the base for a backup of paths in snapshot o->delta_parent: the file
 * node named like one of the paths' last components, else the single file
 * node with a sha256 there.  Its bytes come from o->delta_base_path when that
 * file's SHA-256 matches, else from the repository (restored into an
 * unlinked 0600 temp file in $TMPDIR, gone when the base is freed).  Uses
 * the store: call before the packer starts.  *out is NULL when deltas are
 * off or no usable base exists (the reason is logged; "latest" in an empty
 * repository is no base); errors only for a delta_parent that names no
 * snapshot or a failing store.
 */
kt_code kt_delta_prepare(kt_archive *a, const kt_archive_backup_opts *o,
                         const char *const *paths, size_t n_paths, kt_delta_base **out,
                         kt_error *err);
void kt_delta_base_free(kt_delta_base *b);

/* Store one blob of a patch (the caller dedups, seals and packs; *blob comes
 * back empty) and give its id. */
typedef kt_code (*kt_delta_add_fn)(void *ctx, kt_buf *blob, uint8_t id_out[32], kt_error *err);

/*
 * Try to store the file open at fd (the file's offset is not moved) as a
 * delta against b.  *done = 1: nd is a delta node (content, size, sha256,
 * delta filled; blobs handed to add).  *done = 0: a keyframe is due (depth,
 * size, window, or the patch would not be smaller than the pages it
 * replaces); nd is untouched and the caller stores pages.  Any thread.
 */
kt_code kt_delta_encode(kt_archive *a, const kt_delta_base *b, int fd, const char *path,
                        kt_delta_add_fn add, void *ctx, kt_repo_node *nd, int *done,
                        kt_error *err);

/*
 * Restore delta node nd as the file nd->name in directory dirfd: its chain is
 * decoded base first into unlinked 0600 temp files in dirfd, the result
 * written as .<name>.kontinuity-part, its SHA-256 checked, mode, owner
 * (owners) and mtime set, then renamed.  On any failure nothing is left
 * under either name; a SHA-256 mismatch is KT_ECORRUPT naming path.
 * Uses the store (the caller serializes).
 */
kt_code kt_delta_restore(kt_archive *a, int dirfd, const kt_repo_node *nd, const char *path,
                         int owners, kt_error *err);

/* The base of delta node nd exists: its tree is indexed and decodes, it
 * names a file with a sha256 and the depth one less.  KT_ECORRUPT else. */
kt_code kt_delta_check_base(kt_archive *a, const kt_repo_node *nd, kt_error *err);

/* The last file kt_delta_verify decoded (an open temp file), so that a
 * chain verified base first decodes each delta once. */
typedef struct kt_delta_cache kt_delta_cache;
kt_delta_cache *kt_delta_cache_new(void);
void kt_delta_cache_free(kt_delta_cache *k);

/* Decode delta node nd of tree blob `tree` (its chain, into temp files in
 * $TMPDIR; a base found in cache is not decoded again) and compare the
 * result's SHA-256 with the node's.  KT_ECORRUPT on mismatch.  On success
 * the result replaces what cache (may be NULL) held. */
kt_code kt_delta_verify(kt_archive *a, const kt_repo_node *nd, const uint8_t tree[32],
                        kt_delta_cache *cache, kt_error *err);

#endif
