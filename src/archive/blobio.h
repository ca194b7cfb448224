/*
 * blobio.h - the blob operations of the repository format (blob ids,
 * sealing with compression, opening with every check) with their OpenSSL
 * and zstd contexts kept from one blob to the next.  Internal to
 * src/archive: the hot loops of backup (packer.c) and restore.
 *
 * kt_repo_blob_id, kt_repo_pack_add and kt_repo_blob_open (src/repo) look
 * the algorithms up, expand the keys and allocate their contexts and
 * buffers again for every blob: at 4-64 KiB a blob that is a good part of
 * the cost.  These functions take and give exactly the same bytes and make
 * the same checks with the same messages (docs/repository-format.md,
 * "Cryptography" and "Packs"); tests compare them with the originals.
 *
 * A kt_blobio is used by one thread at a time; each thread keeps its own.
 */
#ifndef KT_ARCHIVE_BLOBIO_H
#define KT_ARCHIVE_BLOBIO_H

#include "archive_int.h"

typedef struct kt_blobio kt_blobio;

/* kt_buf_reset for the threads of backup and restore: a buffer that is
 * already empty is left alone.  (kt_buf_reset of a buffer that never had
 * memory writes the terminating zero into the one empty string all such
 * buffers share: harmless, but a data race between threads.) */
static inline void kt_buf_clear(kt_buf *b)
{
	if (b->len)
		kt_buf_reset(b);
}

/* Contexts for keys k (borrowed: must outlive io).  Made on first use. */
kt_blobio *kt_blobio_new(const kt_repo_keys *k);
void kt_blobio_free(kt_blobio *io);

/* HMAC-SHA-256(k->id, data): the blob id (as kt_repo_blob_id). */
void kt_blobio_id(kt_blobio *io, const void *data, size_t n, uint8_t out[32]);

/*
 * Compress data (zstd level, when that saves at least 1/8; level 0: never)
 * and seal it with the AAD of its type and id, appended to out: as
 * kt_repo_pack_add, but the id is given (already computed) and e gets
 * every field but offset and length (which depend on where the caller puts
 * the bytes).  KT_ELIMIT over KT_REPO_MAX_BLOB; out unchanged on failure.
 */
kt_code kt_blobio_seal(kt_blobio *io, kt_blob_type type, const uint8_t id[32], const void *data,
                       size_t n, int level, kt_buf *out, kt_repo_entry *e, kt_error *err);

/*
 * Open the sealed blob of e->length bytes at sealed for restore:
 * authenticate it under the AAD of its type and id, decompress, check
 * raw_length.  Unlike kt_repo_blob_open it does not hash the plaintext
 * again to compare with the id: the AAD already binds the bytes to the id
 * they were sealed under (decision 54 in docs/architecture.md; `repo check
 * --read-data` still hashes every blob).  The bytes at sealed are
 * decrypted in place (they are garbage afterwards); *plain points at the
 * raw_length bytes of the blob: into sealed when it was stored
 * uncompressed, else into io's own buffer (valid until the next call).
 * KT_ECORRUPT with kt_repo_blob_open's messages when a check fails.
 */
kt_code kt_blobio_open(kt_blobio *io, const kt_repo_entry *e, uint8_t *sealed,
                       const uint8_t **plain, kt_error *err);

/*
 * As kt_blobio_open, but the raw_length bytes go to dst (room for exactly
 * raw_length bytes, any alignment): decrypted straight into it when the
 * blob is stored uncompressed, decompressed into it otherwise (sealed is
 * then decrypted in place).  For restore's O_DIRECT writes, which need the
 * bytes at an aligned address.  On failure dst holds no plaintext of a
 * blob that did not authenticate.
 */
kt_code kt_blobio_open_into(kt_blobio *io, const kt_repo_entry *e, uint8_t *sealed, uint8_t *dst,
                            kt_error *err);

#endif
