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
	char version[32];      /* storage version from "meta", "" before 3.6 */
} kt_snapshot_stat;  /* named _stat: kt_snapshot_status() is the function */

typedef struct kt_resource_count {
	char *resource;        /* "pods", "apps.example.com/widgets" */
	uint64_t count;        /* live (not deleted) objects at the last revision */
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
	uint64_t n_buckets;
	kt_resource_count *resources;  /* sorted by resource name */
	size_t n_resources;
	uint64_t n_kube_objects;       /* sum of resources[].count */
} kt_snapshot_report;

/*
 * Read path (a snapshot file or raw db) and fill out.  Fails with
 * KT_ECORRUPT naming the first fault (byte offset, page id, what was
 * expected) when the bbolt structure is inconsistent, exactly where
 * etcdutl's integrity check would refuse.  Memory is bounded: the file is
 * read page by page, never loaded whole.
 */
kt_code kt_snapshot_status(const char *path, kt_snapshot_stat *out, kt_error *err);

/*
 * Full verification: trailer, every bbolt page (meta checksums, bounds,
 * overflow, cycles, freelist against reachable pages, key order), etcd
 * buckets (revision keys parse, meta holds consistent_index), and the
 * Kubernetes object census.  On KT_ECORRUPT, *out holds what was learned
 * before the fault.  Release with kt_snapshot_report_release().
 */
kt_code kt_snapshot_verify(const char *path, kt_snapshot_report *out, kt_error *err);
void kt_snapshot_report_release(kt_snapshot_report *r);

/* Check the trailer of an open file of the given size (used after save).
 * *out = NONE when size % 512 != 32. */
kt_code kt_snapshot_check_trailer(int fd, uint64_t size, kt_trailer *out, kt_error *err);

#endif /* KT_SNAPSHOT_H */
