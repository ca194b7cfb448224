/*
 * archive_int.h - shared inside src/archive only: the archive object, the
 * in-memory index and the helpers every operation uses.
 */
#ifndef KT_ARCHIVE_INT_H
#define KT_ARCHIVE_INT_H

#include "archive.h"
#include "repo/repo.h"
#include "repo/repo_int.h"

/* Where one blob lives. */
typedef struct kt_loc {
	uint8_t id[32];
	uint32_t pack;          /* index into a->packs */
	uint32_t offset, length, raw_length;
	uint8_t type, compression, used;
} kt_loc;

struct kt_archive {
	kt_store *s;            /* borrowed */
	kt_repo_keys keys;
	char id[65];
	uint32_t pack_size;
	kt_chunker_params chunk_files;   /* the config's chunkers, by kind of data */
	kt_chunker_params chunk_etcd;
	kt_loc *tab;            /* open addressing on the id's first 8 bytes */
	size_t cap, n;
	uint8_t (*packs)[32];   /* storage ids of known packs */
	size_t n_packs, cap_packs;
	char lock_name[128];    /* our lock object, "" when not locked (lock.c) */
	int lock_exclusive;
	int64_t lock_written_ms;
};

/* A set of blob ids (idset.c).  Zero-initialise; the all-zero id marks an
 * empty slot (a keyed hash that is all zeros does not happen). */
typedef struct kt_idset {
	uint8_t (*ids)[32];
	size_t cap, n;
} kt_idset;
/* 1 when id was in s; else adds it and returns 0. */
int kt_idset_put(kt_idset *s, const uint8_t id[32]);
void kt_idset_release(kt_idset *s);

/* Refresh our lock when it is older than 5 minutes (cheap otherwise);
 * called as work goes on. */
void kt_archive_lock_tick(kt_archive *a);

/* The entry for id, or NULL. */
kt_loc *kt_archive_lookup(kt_archive *a, const uint8_t id[32]);
/* Record a blob (no-op if known); pack_id is added to a->packs if new. */
void kt_archive_insert(kt_archive *a, const uint8_t pack_id[32], const kt_repo_entry *e);
/* The number of pack_id in a->packs (added if new). */
uint32_t kt_archive_pack_no(kt_archive *a, const uint8_t pack_id[32]);
/* Record a blob with pack number no (a placeholder while its pack is open). */
void kt_archive_insert_at(kt_archive *a, uint32_t no, const kt_repo_entry *e);
/* Drop every blob whose pack number is no (packs that were never written);
 * rebuilds the table. */
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

/* Names under prefix (sorted), and the index loader. */
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

#define KT_AAD_CONFIG "kontinuity config v1"
#define KT_AAD_INDEX "kontinuity index v1"
#define KT_AAD_SNAPSHOT "kontinuity snapshot v1"

#endif
