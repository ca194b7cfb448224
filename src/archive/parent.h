/*
 * parent.h - the parent snapshot of a backup (parent.c): which snapshot it
 * is, and whether a file is unchanged since it.  Internal to
 * src/archive (backup.c is its one user).
 */
#ifndef KT_ARCHIVE_PARENT_H
#define KT_ARCHIVE_PARENT_H

#include <sys/stat.h>
#include <time.h>

#include "archive_int.h"
#include "packer.h"

/* ts as the trees write times: "2026-11-27T08:00:02.123456789Z" (UTC). */
void kt_archive_time_text(const struct timespec *ts, char out[40]);

/* Sort the malloc'ed strings v bytewise and free repeats: the new count
 * (the canonical form of a snapshot's paths). */
size_t kt_archive_paths_canon(char **v, size_t n);

/*
 * The parent snapshot's id (64 hex) and root tree: spec ("latest" or an id
 * prefix) when given, else the newest snapshot with hostname host and
 * exactly the sorted paths[]; KT_OK with id "" when there is none or
 * force is set.  Errors: the store's, or spec not found (wrapped "parent
 * snapshot: ...").  Uses a->s: call before the packer starts.
 */
kt_code kt_archive_find_parent(kt_archive *a, const char *spec, int force, const char *host,
                               char *const *paths, size_t n_paths, char id[65],
                               uint8_t root[32], kt_error *err);

/* 1 when the regular file st looks as the parent's node p (NULL: no)
 * recorded it: a file node with the same size, mtime, ctime (any write or
 * metadata change sets it), inode and device. */
int kt_archive_unchanged(const kt_repo_node *p, const struct stat *st);

/* When the parent's file node p still describes the file (unchanged, every
 * blob and content list indexed, not a delta: a delta's content is a frame
 * against its base, not the file's bytes), fill nd with its content, lists
 * and SHA-256 (nd owns copies) and return 1; else 0, nd untouched. */
int kt_archive_reuse_node(kt_archive *a, const kt_repo_node *p, const struct stat *st,
                          kt_repo_node *nd);

#endif
