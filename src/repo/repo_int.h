/*
 * repo_int.h - declarations of the repository format's codecs while the
 * folder's public header (repo.h) is being assembled; folded into repo.h
 * once the chunker's section lands.  Format: docs/repository-format.md.
 */
#ifndef KT_REPO_INT_H
#define KT_REPO_INT_H

#include "core/core.h"

#define KT_REPO_NONCE 12
#define KT_REPO_TAG 16
#define KT_REPO_SEAL_OVERHEAD (KT_REPO_NONCE + KT_REPO_TAG)
#define KT_REPO_MAX_SEALED (64u << 20)   /* largest message we seal or open */
#define KT_REPO_MAX_KEYFILE (64u << 10)
#define KT_REPO_MAX_BLOB (16u << 20)     /* raw_length of any blob */
#define KT_REPO_MAX_PACK_ENTRIES 65536u
#define KT_REPO_ENTRY_SIZE 46u           /* one header/index entry */

/* The master keys (docs/repository-format.md, "Cryptography"). */
typedef struct kt_repo_keys {
	uint8_t enc[32];   /* AES-256-GCM */
	uint8_t id[32];    /* HMAC-SHA-256 for blob ids and the gear table */
} kt_repo_keys;

typedef struct kt_repo_kdf {
	uint64_t N, r, p;  /* scrypt; defaults 32768, 8, 1 */
} kt_repo_kdf;

kt_code kt_repo_keys_generate(kt_repo_keys *k, kt_error *err);
void kt_repo_keys_wipe(kt_repo_keys *k);
/* HMAC-SHA-256(k->id, data). */
void kt_repo_blob_id(const kt_repo_keys *k, const void *data, size_t n, uint8_t out[32]);
/* Append nonce || AES-256-GCM(plain, aad) || tag to out.  KT_ELIMIT over
 * KT_REPO_MAX_SEALED or out's limit; out is unchanged on failure. */
kt_code kt_repo_seal(const kt_repo_keys *k, const void *aad, size_t aad_len, const void *plain,
                     size_t n, kt_buf *out, kt_error *err);
/* The same for a plaintext already in out: out->data[start] has
 * KT_REPO_NONCE bytes of room for the nonce, then the plaintext up to
 * out->len; it is encrypted where it lies and the tag appended (no second
 * copy of a large message).  On failure out->len is start again and the
 * plaintext wiped. */
kt_code kt_repo_seal_in_place(const kt_repo_keys *k, const void *aad, size_t aad_len,
                              kt_buf *out, size_t start, kt_error *err);
/* Append the plaintext of a sealed message to out; KT_ECORRUPT when it
 * does not authenticate (out unchanged, nothing of the plaintext kept). */
kt_code kt_repo_open(const kt_repo_keys *k, const void *aad, size_t aad_len, const void *sealed,
                     size_t n, kt_buf *out, kt_error *err);
/* A key file (JSON) holding k under pass; appended to out. */
kt_code kt_repo_keyfile_create(const kt_repo_keys *k, const char *pass, size_t pass_len,
                               const kt_repo_kdf *kdf, const char *hostname, kt_buf *out,
                               kt_error *err);
/* Open a key file with pass: KT_EAUTH for a wrong passphrase, KT_ECORRUPT
 * for a malformed file or parameters out of bounds.  k is wiped on failure. */
kt_code kt_repo_keyfile_open(const char *data, size_t n, const char *pass, size_t pass_len,
                             kt_repo_keys *k, kt_error *err);

/* ---------------- packs and index (pack.c) ---------------- */

typedef enum kt_blob_type { KT_BLOB_DATA = 0, KT_BLOB_TREE = 1 } kt_blob_type;

typedef struct kt_repo_entry {
	uint8_t type;          /* kt_blob_type */
	uint8_t compression;   /* 0 none, 1 zstd */
	uint32_t offset;       /* of the sealed blob in its pack */
	uint32_t length;       /* sealed length */
	uint32_t raw_length;   /* plaintext length */
	uint8_t id[32];
} kt_repo_entry;

/* The AAD of a blob: role text followed by its id (buf holds 64 bytes). */
size_t kt_repo_blob_aad(kt_blob_type type, const uint8_t id[32], uint8_t buf[64]);

/* Seal one blob (compressing it with zstd level `level` when that saves
 * at least 1/8; level 0 = never) and append it to pack; fills e (offset =
 * pack->len before the call). */
kt_code kt_repo_pack_add(const kt_repo_keys *k, kt_buf *pack, kt_blob_type type, const void *data,
                         size_t n, int level, kt_repo_entry *e, kt_error *err);
/* Append the sealed header for entries and its length to pack. */
kt_code kt_repo_pack_finish(const kt_repo_keys *k, kt_buf *pack, const kt_repo_entry *entries,
                            size_t n, kt_error *err);
/*
 * Parse the header of a pack of pack_size bytes given its last tail_len
 * bytes (tail ends at the pack's end; 64 KiB + 4 is always enough for up
 * to ~1400 blobs, more needs a second read: *need_out tells how many tail
 * bytes are needed when it returns KT_ELIMIT... see pack.c).  Checks every
 * rule of the format before returning entries (malloc'ed, *n_out).
 */
kt_code kt_repo_pack_header_parse(const kt_repo_keys *k, const uint8_t *tail, size_t tail_len,
                                  uint64_t pack_size, kt_repo_entry **out, size_t *n_out,
                                  size_t *need_out, kt_error *err);
/* Open one sealed blob (as stored at e->offset) into out: authenticate with
 * its id, decompress, check raw_length and that the id matches. */
kt_code kt_repo_blob_open(const kt_repo_keys *k, const kt_repo_entry *e, const uint8_t *sealed,
                          kt_buf *out, kt_error *err);

/* One pack in an index. */
typedef struct kt_repo_index_pack {
	uint8_t pack_id[32];
	kt_repo_entry *entries;
	size_t n;
} kt_repo_index_pack;

/* Encode (sealed) an index of n packs into out. */
kt_code kt_repo_index_encode(const kt_repo_keys *k, const kt_repo_index_pack *packs, size_t n,
                             kt_buf *out, kt_error *err);
/* Decode a sealed index; *out is a malloc'ed array (free with
 * kt_repo_index_free).  Rules as the pack header's, per pack. */
kt_code kt_repo_index_decode(const kt_repo_keys *k, const uint8_t *data, size_t len,
                             kt_repo_index_pack **out, size_t *n_out, kt_error *err);
void kt_repo_index_free(kt_repo_index_pack *packs, size_t n);
/* Pure parsers of the plaintext (fuzzed): header and index bodies. */
kt_code kt_repo_entries_parse(const uint8_t *p, size_t len, uint64_t limit_offset,
                              kt_repo_entry **out, size_t *n_out, kt_error *err);
kt_code kt_repo_index_parse(const uint8_t *p, size_t len, kt_repo_index_pack **out,
                            size_t *n_out, kt_error *err);

/* ---------------- trees and snapshots (tree.c) ---------------- */

#define KT_REPO_MAX_NAME 255
#define KT_REPO_MAX_TREE_NODES 1000000u
#define KT_REPO_MAX_FILE_BLOBS 16000000u   /* 1 TiB at 64 KiB a chunk */

typedef enum kt_node_type { KT_NODE_FILE = 0, KT_NODE_DIR = 1, KT_NODE_SYMLINK = 2 } kt_node_type;

typedef struct kt_repo_node {
	char *name;              /* one path component, never "/", "." or ".." */
	kt_node_type type;
	uint32_t mode;           /* permission bits (07777) */
	char mtime[40];          /* RFC 3339 with nanoseconds, UTC */
	uint32_t uid, gid;
	uint64_t size;           /* files */
	/* files, for the next backup's change detection (0 / "" when the
	 * writer did not record them): status change time like mtime, inode
	 * and device number.  Restore ignores them. */
	char ctime[40];
	uint64_t inode, device;
	uint8_t (*content)[32];  /* files: n_content blob ids, in order */
	size_t n_content;
	/* Files with many blobs ("content_list", docs/repository-format.md
	 * "Content lists"): the ids of list blobs whose concatenation is the
	 * content, and list_chunks, how many ids they hold.  Decoding fills
	 * these and leaves content empty; src/archive expands them
	 * (kt_archive_lists_load).  The encoder writes content_list whenever
	 * n_content_list > 0 (content is then not written). */
	uint8_t (*content_list)[32];
	size_t n_content_list;
	uint64_t list_chunks;
	uint8_t subtree[32];     /* dirs */
	char *target;            /* symlinks */
	/* Files, optional: the SHA-256 of the whole file ("sha256"; recorded
	 * for etcd databases, mandatory on delta nodes and their bases). */
	int has_sha256;
	uint8_t sha256[32];
	/* Files, optional: a delta node ("delta"; docs/repository-format.md,
	 * "Delta-encoded files"): content is then one zstd frame compressed
	 * with the base file's bytes as prefix.  The base is the file named
	 * delta_name in tree blob delta_tree; delta_depth = its depth + 1
	 * (a plain base has depth 0). */
	int has_delta;
	uint8_t delta_tree[32];
	char *delta_name;
	uint32_t delta_depth;
} kt_repo_node;

/* The deepest delta chain a reader follows (writers keep to less). */
#define KT_REPO_MAX_DELTA_DEPTH 100u

typedef struct kt_repo_tree {
	kt_repo_node *nodes;
	size_t n;
} kt_repo_tree;

/* 64 lowercase hex digits into 32 bytes; -1 when malformed. */
int kt_repo_id_parse(const char *hex, uint8_t out[32]);
/* 1 when name is a safe single path component. */
int kt_repo_name_ok(const char *name);
/* Sort t->nodes by name (bytewise), the order of a tree blob. */
void kt_repo_tree_sort(kt_repo_tree *t);
/* Canonical JSON of t (sorts t->nodes by name) appended to out. */
kt_code kt_repo_tree_encode(kt_repo_tree *t, kt_buf *out, kt_error *err);
/* Parse a tree blob: KT_ECORRUPT naming the entry on any fault; release
 * with kt_repo_tree_release (also after failure: it is then empty). */
kt_code kt_repo_tree_decode(const char *data, size_t len, kt_repo_tree *out, kt_error *err);
void kt_repo_tree_release(kt_repo_tree *t);
/* Free one node's strings and arrays and zero it. */
void kt_repo_node_release(kt_repo_node *nd);

/* A tree index: a directory too big for one tree blob, listed in parts
 * (docs/repository-format.md "Tree indexes").  Each part is an ordinary
 * tree blob (never an index); every name of part i sorts before every name
 * of part i + 1; first is the first name of the part, count its entries. */
#define KT_REPO_MAX_TREE_PARTS 100000u
#define KT_REPO_MAX_DIR_ENTRIES 100000000u
typedef struct kt_repo_tree_part {
	char *first;
	uint64_t count;
	uint8_t id[32];
} kt_repo_tree_part;
typedef struct kt_repo_treeidx {
	kt_repo_tree_part *parts;
	size_t n;
} kt_repo_treeidx;
/* Canonical JSON of x (two parts or more, as writers make them). */
kt_code kt_repo_treeidx_encode(const kt_repo_treeidx *x, kt_buf *out, kt_error *err);
void kt_repo_treeidx_release(kt_repo_treeidx *x);
/* Parse a tree blob that may be a tree index: *x has parts (and *t is
 * empty) when it is one, else *t has the nodes.  Both are empty after a
 * failure (KT_ECORRUPT naming the fault).  Release both. */
kt_code kt_repo_tree_decode_any(const char *data, size_t len, kt_repo_tree *t,
                                kt_repo_treeidx *x, kt_error *err);
/* KT_OK when part t (decoded from x->parts[i].id) holds what x says:
 * count entries, the first one first, all before the next part's first. */
kt_code kt_repo_treeidx_check_part(const kt_repo_treeidx *x, size_t i, const kt_repo_tree *t,
                                   kt_error *err);

/* A list blob: 1..KT_REPO_LIST_MAX_IDS raw 32-byte blob ids, nothing else
 * (128 KiB at most).  Stored as a blob of pack type 1 (metadata, with the
 * trees).  KT_OK when len is a whole, non-zero number of ids within the
 * limit (*n_out ids); KT_ECORRUPT naming `what` otherwise.  Fuzzed. */
#define KT_REPO_LIST_MAX_IDS 4096u
kt_code kt_repo_list_parse(const uint8_t *p, size_t len, const char *what, size_t *n_out,
                           kt_error *err);

/* Snapshot format versions: 1 = trees hold plain files only; 2 = trees may
 * hold delta nodes; 3 = trees may hold content lists (and delta nodes);
 * 4 = a directory may be a tree index (and all of the above).  A reader
 * that does not know a version must refuse it. */
#define KT_REPO_SNAPSHOT_VERSION_MAX 4

typedef struct kt_repo_snapshot {
	int version;             /* 0 (= 1) when encoding plain trees */
	char time[40];
	char hostname[256];
	char **paths;
	size_t n_paths;
	char **tags;
	size_t n_tags;
	uint8_t tree[32];
	uint64_t files, bytes, added_bytes;
} kt_repo_snapshot;

kt_code kt_repo_snapshot_encode(const kt_repo_snapshot *s, kt_buf *out, kt_error *err);
kt_code kt_repo_snapshot_decode(const char *data, size_t len, kt_repo_snapshot *out,
                                kt_error *err);
void kt_repo_snapshot_release(kt_repo_snapshot *s);

#endif