/*
 * packer.h - the back half of a backup, on threads: new blobs are
 * compressed and sealed by worker threads, appended to packs, and the packs
 * and the index files naming them are uploaded by one upload thread.
 * Internal to src/archive (backup.c is its one user).
 *
 * Threads and what they own:
 *   caller    (one thread) hands over blobs it found new (kt_packer_add),
 *             and takes back the entries of packs that are uploaded *and*
 *             named by an uploaded index file (kt_packer_drain), to give
 *             them their place in the archive's table, which only it
 *             touches.
 *   workers   compress (one ZSTD context each) and seal blobs, append them
 *             to the open pack of their type; the one that fills a pack
 *             seals its header and queues it for upload.
 *   uploader  the only thread that uses the store while the packer runs:
 *             puts each pack under its SHA-256 (and refreshes the
 *             repository lock between packs), and after every
 *             KT_PACKER_INDEX_PACKS packs or KT_PACKER_INDEX_ENTRIES blobs
 *             (and at the end) an index file
 *             naming them.  So a pack is always stored before an index
 *             naming it (docs/repository-format.md, "Write and delete
 *             order"); the snapshot comes after kt_packer_finish.
 *
 * Memory is bounded whatever the data size: a few blobs waiting or being
 * sealed, two data pack buffers (one filling, one uploading) and one for
 * tree packs (so ~2 x pack_size in the common case), plus the entries of
 * the packs stored so far (kt_packer_drain gives them back).
 */
#ifndef KT_ARCHIVE_PACKER_H
#define KT_ARCHIVE_PACKER_H

#include "archive_int.h"

#define KT_PACKER_INDEX_PACKS 1000   /* packs per index file */
/* ...or fewer when they hold this many blobs: an index file is built (and
 * sealed where it was built) in memory, 46 bytes a blob; 65,536 keep each
 * under 3 MiB however small the blobs (1 GiB of well-compressed 4 KiB
 * pages filled 4 packs of 65,536 blobs and made one 12 MB index file). */
#define KT_PACKER_INDEX_ENTRIES 65536

typedef struct kt_packer kt_packer;

/* Called by kt_packer_drain for every pack that is stored and indexed. */
typedef void (*kt_packer_stored_fn)(void *ctx, const uint8_t pack_id[32],
                                    const kt_repo_entry *entries, size_t n);

/*
 * Start the threads: n_workers (<= 0: one per online CPU, at most 8)
 * sealers compressing with zstd level (0: never) and the uploader, putting
 * packs of about a->pack_size bytes into a->s.  Until kt_packer_finish or
 * kt_packer_free returned the caller must not use a->s, nor anything that
 * may (kt_archive_insert*, kt_archive_lock_tick).  Never fails (allocation
 * and thread creation failures abort).
 */
kt_packer *kt_packer_start(kt_archive *a, int level, int n_workers);

/*
 * Queue the blob in *data (its type and id: the caller computed the id and
 * knows the blob is new) for sealing.  No copy: the packer takes the bytes
 * by swapping buffers, *data comes back as an empty buffer (holding up to
 * KT_REPO_MAX_BLOB + 1 bytes) for the caller to reuse.  Blocks while the packer has enough blobs
 * waiting.  Returns KT_ELIMIT for a blob over KT_REPO_MAX_BLOB, or the first
 * error of any packer thread (err filled, *data untouched), after which the
 * packer only stops: call kt_packer_free.
 */
kt_code kt_packer_add(kt_packer *p, kt_blob_type type, const uint8_t id[32], kt_buf *data,
                      kt_error *err);

/* Hand every pack stored and named by a stored index file since the last
 * call to fn (in the caller's thread).  KT_EIO when the temp file that
 * holds them past the first 16,384 blobs cannot be read back (the packs
 * and index files are stored all the same). */
kt_code kt_packer_drain(kt_packer *p, kt_packer_stored_fn fn, void *ctx, kt_error *err);

/*
 * Seal the last blobs, upload the open packs and an index file naming every
 * pack not yet in one, and stop the threads.  Then drain once more.
 * Returns KT_OK or the first error (err filled).  Call kt_packer_free after
 * it in every case.
 */
kt_code kt_packer_finish(kt_packer *p, kt_error *err);

/* Borrow the store from the uploader (it waits meanwhile): between the two
 * calls the caller may read a->s (the previous snapshot's trees during a
 * backup).  Never held across kt_packer_add. */
void kt_packer_store_lock(kt_packer *p);
void kt_packer_store_unlock(kt_packer *p);
/* Bytes put into the store (packs and index files) and packs put so far. */
void kt_packer_stats(kt_packer *p, uint64_t *stored_bytes, uint64_t *packs);

/* Stop the threads if they run (without uploading what is open: an
 * unfinished backup) and free p.  NULL is a no-op. */
void kt_packer_free(kt_packer *p);

#endif
