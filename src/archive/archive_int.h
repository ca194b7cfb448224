/*
 * archive_int.h - shared inside src/archive only: the archive object, the
 * in-memory index and the helpers every operation uses.
 */
#ifndef KT_ARCHIVE_INT_H
#define KT_ARCHIVE_INT_H

#include <dirent.h>

#include "archive.h"
#include "repo/repo.h"
#include "repo/repo_int.h"

/* Where one blob lives, as a lookup returns it. */
typedef struct kt_loc {
	uint8_t id[32];
	uint32_t pack;          /* index into a->packs */
	uint32_t offset, length, raw_length;
	uint8_t type, compression;
	uint64_t ord;           /* its ordinal, < kt_archive_index_span (index.c) */
} kt_loc;

/* A table slot and a record of a spilled run: 52 bytes (index.c,
 * docs/index-memory.md). */
typedef struct kt_ient {
	uint8_t id[32];
	uint32_t pack, offset, length, raw_length;
	uint8_t type, compression, used, pad;
} kt_ient;

/* An unlinked 0600 temp file in $TMPDIR (default /tmp), read and written
 * with pread/pwrite; -1 with errno on failure (index.c). */
int kt_archive_temp_open(void);
/* All n bytes at off, through EINTR and short transfers; -1 (errno) on
 * failure, also at end of file (index.c). */
int kt_archive_pwrite_all(int fd, const void *buf, size_t n, uint64_t off);
int kt_archive_pread_all(int fd, void *buf, size_t n, uint64_t off);
/* A test knob from the environment (KT_INDEX_MEM_MAX, KT_PRUNE_WINDOW,
 * ...): its number when it is one within [lo, hi], else dflt (index.c). */
size_t kt_archive_knob(const char *name, size_t dflt, size_t lo, size_t hi);

/* A sorted run in an unlinked temp file (index.c). */
typedef struct kt_irun {
	int fd;
	uint64_t n, base;       /* records; the ordinal of the first */
	uint64_t *first;        /* per 4 KiB page: its first id's 8 bytes, big-endian */
	size_t n_pages;
} kt_irun;

/* The blob index: a bounded table of the newest entries, and runs. */
typedef struct kt_index {
	kt_ient *tab;           /* open addressing on the id's first 8 bytes */
	size_t cap, n;
	size_t max;             /* table entries before a spill (0: not read yet) */
	kt_irun *runs;          /* oldest first */
	size_t n_runs;
	uint64_t n_spilled;     /* records in the runs */
	int spill_failed;       /* a temp file could not be written: table only */
} kt_index;

struct kt_archive {
	kt_store *s;            /* borrowed */
	kt_repo_keys keys;
	char id[65];
	uint32_t pack_size;
	kt_chunker_params chunk_files;   /* the config's chunkers, by kind of data */
	kt_chunker_params chunk_etcd;
	kt_index idx;           /* index.c */
	uint8_t (*packs)[32];   /* storage ids of known packs */
	size_t n_packs, cap_packs;
	char lock_name[128];    /* our lock object, "" when not locked (lock.c) */
	int lock_exclusive;
	int64_t lock_written_ms;
};

/* A set of blob ids (idset.c): an index without locations, bounded like
 * the archive's (a table, then runs).  Zero-initialise. */
typedef struct kt_idset {
	kt_index x;
} kt_idset;
/* 1 when id is in x; else adds it (pack UINT32_MAX) and returns 0. */
int kt_index_put(kt_index *x, const uint8_t id[32]);
/* Free the table and runs, closing their files; x is empty after. */
void kt_index_release(kt_index *x);
/* 1 when id was in s; else adds it and returns 0. */
int kt_idset_put(kt_idset *s, const uint8_t id[32]);
void kt_idset_release(kt_idset *s);

/* Refresh our lock when it is older than 5 minutes (cheap otherwise);
 * called as work goes on. */
void kt_archive_lock_tick(kt_archive *a);

/* 1 when id is indexed (its entry copied into *out, which may be NULL),
 * else 0.  Any number of threads at once while nothing inserts. */
int kt_archive_find(kt_archive *a, const uint8_t id[32], kt_loc *out);
/* Ordinals of entries are below this (bitmaps by ordinal: check, prune);
 * they change when something is inserted. */
uint64_t kt_archive_index_span(const kt_archive *a);
/* The number of entries. */
uint64_t kt_archive_index_count(const kt_archive *a);
/* fn for every entry (in no useful order); KT_EIO when the index's temp
 * file cannot be read. */
typedef void (*kt_loc_fn)(void *ctx, const kt_loc *l);
kt_code kt_archive_index_each(kt_archive *a, kt_loc_fn fn, void *ctx, kt_error *err);
/* Forget every entry and pack (closing the temp files); reload with
 * kt_archive_load_index. */
void kt_archive_index_release(kt_archive *a);
/* Record a blob (no-op if known); pack_id is added to a->packs if new. */
void kt_archive_insert(kt_archive *a, const uint8_t pack_id[32], const kt_repo_entry *e);
/* The number of pack_id in a->packs (added if new). */
uint32_t kt_archive_pack_no(kt_archive *a, const uint8_t pack_id[32]);
/* Record a blob with pack number no (a placeholder while its pack is open). */
void kt_archive_insert_at(kt_archive *a, uint32_t no, const kt_repo_entry *e);
/* Drop every blob whose pack number is no (packs that were never written);
 * rebuilds the table and rewrites the runs. */
void kt_archive_forget_pending(kt_archive *a, uint32_t no);

/* A tree node's mtime "2026-11-27T08:00:00.123456789Z" -> timespec (UTC);
 * -1 when malformed (restore.c). */
struct timespec;
int kt_archive_parse_time(const char *s, struct timespec *ts);

/* SHA-256 of data as its storage id (raw and hex). */
void kt_archive_storage_id(const void *data, size_t n, uint8_t id[32], char hex[65]);
/* The object name of a pack: data/<2 hex>/<64 hex>. */
void kt_archive_pack_name(const uint8_t id[32], char name[80]);
/* Get a whole object and check it hashes to the hex id in its name
 * (every object but config). */
kt_code kt_archive_get_checked(kt_archive *a, const char *name, kt_buf *out, kt_error *err);
/* Read and open a sealed object (AAD role). */
kt_code kt_archive_get_sealed(kt_archive *a, const char *name, const char *aad, kt_buf *out,
                              kt_error *err);
/* Seal data with aad and put it as <dir>/<storage id>; id_hex may be NULL. */
kt_code kt_archive_put_sealed(kt_archive *a, const char *dir, const char *aad, const void *data,
                              size_t n, char id_hex[65], uint64_t *stored, kt_error *err);
/* Read and decode one blob (tree or data) into out. */
kt_code kt_archive_read_blob(kt_archive *a, const uint8_t id[32], kt_buf *out, kt_error *err);

/* Names under prefix (sorted), and the index loader (index.c: every
 * index/ object into a->idx). */
kt_code kt_archive_list_names(kt_archive *a, const char *prefix, char ***out, size_t *n_out,
                              kt_error *err);
void kt_archive_names_free(char **v, size_t n);
kt_code kt_archive_load_index(kt_archive *a, kt_error *err);

/* The tree of the directory at absolute path in the snapshot whose root
 * tree is root, with that directory's node (mode, mtime) in *mode and
 * mtime (NULL root: the snapshot root itself, mode 0755).  KT_ENOTFOUND
 * naming the path when it is not a directory there. */
kt_code kt_archive_subtree(kt_archive *a, const uint8_t root[32], const char *path,
                           uint8_t out[32], uint32_t *mode, char mtime[40], kt_error *err);
kt_code kt_archive_load_snapshot(kt_archive *a, const char *id, kt_repo_snapshot *out,
                                 kt_error *err);

/* ---- content lists (contentlist.c) ---- */

/* Files of more than KT_ARCHIVE_LIST_MIN blobs store them in list blobs of
 * KT_ARCHIVE_LIST_IDS ids (32 KiB; readers take up to KT_REPO_LIST_MAX_IDS).
 * For tests, the environment overrides them: KT_CONTENT_LIST_MIN and
 * KT_CONTENT_LIST_IDS (1..KT_REPO_LIST_MAX_IDS). */
#define KT_ARCHIVE_LIST_MIN 1024u
#define KT_ARCHIVE_LIST_IDS 1024u
size_t kt_archive_list_threshold(void);
size_t kt_archive_list_ids(void);
/* Store one list blob (dedup, seal, pack as type 1); *blob may be consumed. */
typedef kt_code (*kt_list_put_fn)(void *ctx, kt_buf *blob, uint8_t id_out[32], kt_error *err);
/* Before encoding t: give every file node of more than the threshold ids
 * (and no list yet) its list blobs; *made = 1 when any node got one.
 * content is kept (the caller frees it as before). */
kt_code kt_archive_lists_make(kt_repo_tree *t, kt_list_put_fn put, void *ctx, int *made,
                              kt_error *err);
/* While a file is read: called after each id appended to nd->content.
 * Once the file has more ids than the threshold, every full list's worth
 * at the front of content is stored as a list blob (content keeps the
 * rest; list_chunks counts the ids stored).  kt_archive_lists_end stores
 * the tail as the last list when the file got lists (content is then
 * empty); both leave nd unchanged but for the lists on failure. */
kt_code kt_archive_lists_push(kt_repo_node *nd, kt_list_put_fn put, void *ctx, kt_error *err);
kt_code kt_archive_lists_end(kt_repo_node *nd, kt_list_put_fn put, void *ctx, kt_error *err);
/* Read list blob j of nd into out (checked: indexed as type 1, whole ids);
 * *n_out ids.  Errors name the file. */
kt_code kt_archive_list_read(kt_archive *a, const kt_repo_node *nd, size_t j, kt_buf *out,
                             size_t *n_out, kt_error *err);
/* After decoding t: fill content of every node that has a content list,
 * reading its list blobs one at a time; counts must match "chunks". */
kt_code kt_archive_lists_load(kt_archive *a, kt_repo_tree *t, kt_error *err);

/* Called with 1 before a store read and 0 after it (NULL: no locking). */
typedef void (*kt_archive_lock_fn)(void *ctx, int lock);

/* The blob ids of file node nd in order without holding them all: its
 * inline content, or its content lists read one list blob at a time
 * (1,024 ids; each checked as kt_archive_list_read does, and the count
 * against "chunks" at the end).  Store reads happen between lock(ctx, 1)
 * and lock(ctx, 0) when lock is given.  A file of 2 million 4 KiB pages
 * (an 8 GiB etcd database) costs 32 KiB here, not 64 MiB. */
typedef struct kt_archive_ids {
	kt_archive *a;
	const kt_repo_node *nd;
	kt_archive_lock_fn lock;
	void *lock_ctx;
	kt_buf list;               /* the list blob being walked */
	size_t next_list, k, n;    /* the list to read next; the next id of this one; its ids */
	uint64_t seen;             /* ids of the lists read so far */
} kt_archive_ids;
void kt_archive_ids_open(kt_archive_ids *it, kt_archive *a, const kt_repo_node *nd,
                         kt_archive_lock_fn lock, void *lock_ctx);
/* 1 and the next id in *id (valid until the next call), 0 at the end, -1
 * when a list cannot be read or the counts disagree (err names the file). */
int kt_archive_ids_next(kt_archive_ids *it, const uint8_t **id, kt_error *err);
void kt_archive_ids_close(kt_archive_ids *it);

/* ---- a directory's listing, one tree blob at a time (dirtree.c) ---- */


typedef struct kt_archive_dir {
	kt_archive *a;
	int lists;                /* expand content lists (kt_archive_lists_load) */
	kt_archive_lock_fn lock;
	void *lock_ctx;
	kt_repo_treeidx idx;      /* the parts when the directory is a tree index */
	kt_repo_tree first;       /* the nodes when it is a plain tree, until taken */
	size_t next;              /* the part next returns */
	uint8_t part_id[32];      /* the blob next read last (the tree itself first) */
} kt_archive_dir;
/* Read directory tree id (a tree blob or a tree index).  On failure d is
 * still closed with kt_archive_dir_close and next returns nothing. */
kt_code kt_archive_dir_open(kt_archive *a, const uint8_t id[32], int lists,
                            kt_archive_lock_fn lock, void *lock_ctx, kt_archive_dir *d,
                            kt_error *err);
/* The next part's nodes (sorted) into *t, which the caller releases; t->n
 * is 0 at the end (a plain tree is one part; an empty directory none). */
kt_code kt_archive_dir_next(kt_archive_dir *d, kt_repo_tree *t, kt_error *err);
/* Skip the parts that sort wholly before name (the next part returned is
 * the one that would hold it). */
void kt_archive_dir_seek(kt_archive_dir *d, const char *name);
/* A tree index: the id of the part next would read (NULL for a plain tree
 * or at the end), and skipping it unread (a walker that has seen it). */
const uint8_t *kt_archive_dir_peek(const kt_archive_dir *d);
void kt_archive_dir_skip(kt_archive_dir *d);
void kt_archive_dir_close(kt_archive_dir *d);
/* All nodes of directory id in one tree (lists loaded): only for
 * directories known to be small (an app writer's, bounded by its input). */
kt_code kt_archive_dir_load_all(kt_archive *a, const uint8_t id[32], kt_repo_tree *t,
                                kt_error *err);
/* The entry name of directory id: the part that holds it into *t (release
 * it; content lists loaded when lists) and *out into it, or NULL when
 * there is none. */
kt_code kt_archive_dir_find(kt_archive *a, const uint8_t id[32], const char *name, int lists,
                            kt_repo_tree *t, const kt_repo_node **out, kt_error *err);

/* A cursor over a directory for names asked in increasing order: holds
 * one part.  An unreadable tree logs a warning and finds nothing (the
 * backup's parent: its files are then read again). */
typedef struct kt_archive_cursor {
	kt_archive_dir d;
	kt_repo_tree t;
	size_t i;
	int end;
} kt_archive_cursor;
void kt_archive_cursor_open(kt_archive_cursor *cu, kt_archive *a, const uint8_t *id,
                            kt_archive_lock_fn lock, void *lock_ctx);
const kt_repo_node *kt_archive_cursor_find(kt_archive_cursor *cu, const char *name);
void kt_archive_cursor_close(kt_archive_cursor *cu);

/* ---- writing a directory's listing in parts (treeparts.c) ---- */

/* Parts hold at most KT_ARCHIVE_PART_NODES entries and about
 * KT_ARCHIVE_PART_BYTES of JSON; a directory within both is one tree blob.
 * For tests the environment lowers them: KT_TREE_PART_NODES (16..4096) and
 * KT_TREE_PART_BYTES (4096..4 MiB). */
#define KT_ARCHIVE_PART_NODES 4096u
#define KT_ARCHIVE_PART_BYTES (4u << 20)
/* Encode and store tree t (one part or a whole small directory). */
typedef kt_code (*kt_tree_put_fn)(void *ctx, kt_repo_tree *t, uint8_t id_out[32],
                                  kt_error *err);
typedef struct kt_treeparts {
	struct kt_blobio *io;     /* keys the hash of names that places the cuts */
	kt_tree_put_fn put_tree;
	kt_list_put_fn put_blob;  /* the tree index blob */
	void *ctx;
	kt_repo_tree pend;        /* entries not stored yet, in name order */
	size_t cap, pend_bytes;
	size_t since_cut, since_bytes;
	size_t *cuts, n_cuts, cap_cuts;   /* part ends in pend, before splitting */
	int split;                /* parts were stored: it is a tree index */
	kt_repo_treeidx idx;
	size_t cap_idx;
	char *last;               /* the last name added */
	uint64_t entries;
} kt_treeparts;
void kt_treeparts_init(kt_treeparts *tp, struct kt_blobio *io, kt_tree_put_fn put_tree,
                       kt_list_put_fn put_blob, void *ctx);
/* Add nd (its allocations are taken; nd is zeroed), names strictly
 * increasing (KT_EUSAGE otherwise).  May store finished parts. */
kt_code kt_treeparts_add(kt_treeparts *tp, kt_repo_node *nd, kt_error *err);
/* Store what is left: the directory's tree blob id (a plain tree when it
 * fits one part, else a tree index: *indexed = 1). */
kt_code kt_treeparts_end(kt_treeparts *tp, uint8_t id_out[32], int *indexed, kt_error *err);
void kt_treeparts_release(kt_treeparts *tp);

/* ---- the names a backup walks (walknames.c) ---- */

/* The given paths as a trie of their components. */
typedef struct kt_archive_trie {
	char *name;
	int target;               /* a path given to back up: stored whole */
	struct kt_archive_trie *kids;
	size_t n, cap;
} kt_archive_trie;
/* Add path, made absolute, "." and empty components dropped; KT_EUSAGE for
 * "..".  The absolute path, one '/' between components, into *norm
 * (malloc'ed). */
kt_code kt_archive_trie_add(kt_archive_trie *root, const char *path, char **norm,
                            kt_error *err);
/* Children in name order (the parent's listing is read as a merge join). */
void kt_archive_trie_sort(kt_archive_trie *t);
void kt_archive_trie_release(kt_archive_trie *t);

/* A directory's names, sorted bytewise: one arena of NUL-terminated names
 * and their offsets (name length + 9 bytes each). */
typedef struct kt_archive_dirnames {
	char *buf;
	size_t len, cap;
	size_t *off;
	size_t n, cap_off;
} kt_archive_dirnames;
/* Every name of open directory d but "." and "..", sorted bytewise. */
void kt_archive_dirnames_read(DIR *d, kt_archive_dirnames *v);
static inline const char *kt_archive_dirnames_at(const kt_archive_dirnames *v, size_t i)
{
	return v->buf + v->off[i];
}
void kt_archive_dirnames_release(kt_archive_dirnames *v);

#define KT_AAD_CONFIG "kontinuity config v1"
#define KT_AAD_INDEX "kontinuity index v1"
#define KT_AAD_SNAPSHOT "kontinuity snapshot v1"

#endif
