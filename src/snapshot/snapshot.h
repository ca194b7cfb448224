/*
 * snapshot.h - etcd snapshot files: status and verification.
 *
 * Owns: the SHA-256 trailer that etcd appends to a streamed snapshot, the
 * etcd-specific meaning of the bbolt buckets (revision keys, the meta
 * bucket, Kubernetes keys under /registry/), and the two reports that
 * `etcd snapshot status` and `etcd snapshot verify` print.
 *
 * A saved snapshot is a bbolt file followed by the 32-byte SHA-256 of that
 * file (size % 512 == 32); a raw member/snap/db has no trailer.
 * The status fields match `etcdutl snapshot status` exactly.
 */
#ifndef KT_SNAPSHOT_H
#define KT_SNAPSHOT_H

#include "../core/core.h"

typedef enum kt_trailer {
	KT_TRAILER_NONE = 0,   /* raw bbolt database */
	KT_TRAILER_OK = 1,     /* SHA-256 trailer present and matching */
	KT_TRAILER_BAD = 2,    /* present but wrong: the file is corrupt */
} kt_trailer;

typedef struct kt_snapshot_stat {
	uint32_t hash;         /* CRC-32C as etcdutl computes it */
	int64_t revision;      /* main revision of the last key in "key" */
	uint64_t total_key;    /* key/value pairs over all buckets */
	uint64_t total_size;   /* bbolt size: high-water page id * page size */
	char version[32];      /* storage version from "meta", "" before 3.6; an
	                          absurdly long pre-release/metadata is truncated */
} kt_snapshot_stat;  /* named _stat: kt_snapshot_status() is the function */

typedef struct kt_resource_count {
	char *resource;        /* "pods", "apps.example.com/widgets" */
	uint64_t count;        /* live (not deleted) objects at the last revision; > 0 */
} kt_resource_count;

typedef struct kt_snapshot_report {
	kt_snapshot_stat status;
	kt_trailer trailer;
	uint64_t file_size;
	uint32_t page_size;
	uint64_t n_pages;          /* high-water mark */
	uint64_t n_reachable;      /* pages reached from the root */
	uint64_t n_free;           /* on the freelist, or unreachable when none */
	int has_freelist;          /* 0 when etcd did not sync a freelist */
	uint64_t txid;
	uint64_t consistent_index;
	uint64_t term;
	uint64_t n_buckets;            /* buckets below the root (etcd: top-level ones) */
	kt_resource_count *resources;  /* sorted by resource name; owned, see release */
	size_t n_resources;
	uint64_t n_kube_objects;       /* sum of resources[].count */
} kt_snapshot_report;

/*
 * Read path (a snapshot file or raw db) and fill out.  The trailer is not
 * checked (etcdutl's status ignores it; verify checks it).  Fails with
 * KT_ECORRUPT naming the first fault (byte offset, page id, what was
 * expected) when the bbolt structure is inconsistent, exactly where
 * etcdutl's integrity check would refuse.  Memory is bounded: the file is
 * read page by page, never loaded whole.  Other failures: KT_ENOTFOUND,
 * KT_EPERM, KT_EIO (a directory, a read error), KT_ENOMEM, KT_ELIMIT (a page
 * run above KT_BBOLT_MAX_RUN).  *out is written only on success.
 */
kt_code kt_snapshot_status(const char *path, kt_snapshot_stat *out, kt_error *err);

/*
 * The same checks as kt_snapshot_status (every page, every revision key and
 * KeyValue) without the live-key set, so memory does not grow with the
 * number of keys: out->total_key is left 0, the other fields are filled.
 * Used by save on the .part file before it gets its name (fd must be
 * readable; size is the file size, trailer included; name is for messages).
 */
kt_code kt_snapshot_check_fd(int fd, uint64_t size, const char *name, kt_snapshot_stat *out,
                             kt_error *err);

/*
 * Full verification: trailer, every bbolt page (meta checksums, bounds,
 * overflow, cycles, freelist against reachable pages, key order), etcd
 * buckets (revision keys parse, meta holds consistent_index), and the
 * Kubernetes object census.  *out is zeroed first; on KT_ECORRUPT it holds
 * what was learned before the fault (trailer, page counts, status numbers
 * so far).  Always release with kt_snapshot_report_release() (frees the
 * resource names and array; the struct itself is the caller's).
 */
kt_code kt_snapshot_verify(const char *path, kt_snapshot_report *out, kt_error *err);
void kt_snapshot_report_release(kt_snapshot_report *r);

/* The same two on an open file: fd is borrowed (read with pread, never
 * closed), size is the number of bytes to consider (normally st_size), name
 * is used in messages only.  Used on a .part before rename and by the fuzzer
 * (memfd). */
kt_code kt_snapshot_status_fd(int fd, uint64_t size, const char *name, kt_snapshot_stat *out,
                              kt_error *err);
kt_code kt_snapshot_verify_fd(int fd, uint64_t size, const char *name, kt_snapshot_report *out,
                              kt_error *err);

/*
 * Check the trailer of an open file of the given size (used after save).
 * *out = NONE and KT_OK when size % 512 != 32.  Otherwise streams the first
 * size - 32 bytes through SHA-256 and compares: KT_OK with *out = OK, or
 * KT_ECORRUPT with *out = BAD and both digests in the message.  On a read
 * error (KT_EIO, or KT_ECORRUPT if the file shrank) *out is untouched.
 */
kt_code kt_snapshot_check_trailer(int fd, uint64_t size, kt_trailer *out, kt_error *err);

#endif /* KT_SNAPSHOT_H */
