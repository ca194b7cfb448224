/*
 * snapshot_int.h - pieces shared by the files of src/snapshot/ (and its
 * unit test); other modules include snapshot.h only.
 *
 * Owns: CRC-32C (Castagnoli) with an SSE4.2 path and a slice-by-8
 * fallback, the go-semver normalisation etcdutl applies to the storage
 * version, opening a snapshot file with clear errors, and the accumulator
 * that turns a bbolt walk into etcdutl's status numbers.
 */
#ifndef KT_SNAPSHOT_INT_H
#define KT_SNAPSHOT_INT_H

#include "../bbolt/bbolt.h"
#include "snapshot.h"

/* ------------------------------------------------------------------ */
/* CRC-32C.  The context picks the hardware path once at init; no global
 * state.  The table is only filled when the software path is used. */

typedef struct kt_crc32c {
	uint32_t state;          /* inverted running CRC */
	int hw;                  /* 1: SSE4.2 crc32 instructions */
	uint32_t table[8][256];  /* slice-by-8, software path only */
} kt_crc32c;

/* Start a CRC; force_soft = 1 uses the portable path even where SSE4.2 is. */
void kt_crc32c_init(kt_crc32c *c, int force_soft);
void kt_crc32c_update(kt_crc32c *c, const void *data, size_t n);
uint32_t kt_crc32c_final(const kt_crc32c *c);

/* ------------------------------------------------------------------ */

/*
 * Parse s (n bytes) as github.com/coreos/go-semver does and write its
 * String() form ("3.6.0", "3.6.0-rc.1+meta") into out, truncated to
 * outlen - 1 bytes.  Returns 1 when s parses, else 0 with out = "" (etcdutl
 * then prints an empty version).
 */
int kt_snapshot_semver(const uint8_t *s, size_t n, char *out, size_t outlen);

/*
 * Open path read-only for a snapshot and return its fd and size.  Refuses
 * directories and anything but regular files (without blocking on a FIFO).
 * Errors: KT_ENOTFOUND, KT_EPERM, KT_EIO, each naming path.
 */
kt_code kt_snapshot_open_file(const char *path, int *fd_out, uint64_t *size_out, kt_error *err);

/* Bytes of the bbolt database in a file of size bytes (trailer stripped). */
uint64_t kt_snapshot_db_size(uint64_t size);

/* Prefix err with the snapshot name: "snapshot 'x' is corrupt: ..." etc. */
kt_code kt_snapshot_wrap(kt_error *err, const char *name);

/* ------------------------------------------------------------------ */
/* etcd's "key" bucket (see keyset.c). */

/* The fields of an mvccpb.KeyValue that we use; key borrows from the input. */
typedef struct kt_mvcc_kv {
	const uint8_t *key;
	size_t key_len;
	int64_t mod_revision;
	int has_mod;
} kt_mvcc_kv;

/* Decode an mvccpb.KeyValue exactly as etcd's gogo Unmarshal accepts it.
 * Returns NULL, or a static string saying what is wrong. */
const char *kt_mvcc_kv_parse(const uint8_t *p, size_t n, kt_mvcc_kv *out);

/* Live user keys by 64-bit hash; optionally with the Kubernetes census. */
typedef struct kt_keyset {
	struct kt_key_slot *slots;   /* open addressing, load <= 1/2 */
	size_t cap, n;
	uint64_t n_live;             /* etcdutl 3.6's totalKey */
	int census;                  /* track /registry/ resources too */
	struct kt_resource *res;
	size_t n_res, res_cap;
	uint32_t *res_index;
	size_t index_cap;
} kt_keyset;

void kt_keyset_init(kt_keyset *s, int census);
void kt_keyset_release(kt_keyset *s);
/* A put (live = 1) or tombstone (live = 0) of user key k, in revision order. */
kt_code kt_keyset_event(kt_keyset *s, const uint8_t *k, size_t n, int live, kt_error *err);
/* Fill rep->resources (sorted, counts > 0) and rep->n_kube_objects.  Once. */
kt_code kt_keyset_census(kt_keyset *s, kt_snapshot_report *rep, kt_error *err);

/* ------------------------------------------------------------------ */
/* etcdutl's status computed from walk entries (see status.c). */

enum { KT_TOP_OTHER = 0, KT_TOP_KEY = 1, KT_TOP_META = 2 };

typedef struct kt_status_acc {
	kt_crc32c crc;
	kt_snapshot_stat *out;   /* hash and total_key at the end; the rest as we go */
	int top;                 /* KT_TOP_*: the top-level bucket being walked */
	kt_keyset keys;
	kt_mvcc_kv last_kv;      /* decoded value of the last "key" entry */
	int last_tomb;           /* ... and whether its key marks a tombstone */
	int skip_keyset;         /* kt_snapshot_check: no live-key set, total_key 0 */
} kt_status_acc;

/* census = 1 also groups live /registry/ keys by resource (verify). */
void kt_status_acc_init(kt_status_acc *a, kt_snapshot_stat *out, int census);
void kt_status_acc_release(kt_status_acc *a);
/* A kt_bbolt_visit_fn; ctx is a kt_status_acc. */
kt_code kt_status_acc_visit(void *ctx, const kt_bbolt_entry *e, kt_error *err);
/* Store the final hash and total size into a->out. */
void kt_status_acc_finish(kt_status_acc *a, const kt_bbolt_info *info);

#endif /* KT_SNAPSHOT_INT_H */
