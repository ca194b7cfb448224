/*
 * trailer.c - the SHA-256 trailer etcd appends to a streamed snapshot.
 *
 * A snapshot from Maintenance.Snapshot (and `etcdctl snapshot save`) is
 * the bbolt file followed by the 32-byte SHA-256 of that file; etcdutl
 * recognises it by size % 512 == 32 (bbolt files are whole pages, pages
 * are multiples of 512).  Reading is streamed in 1 MiB preads.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "snapshot_int.h"

#define CHUNK (1u << 20)

typedef unsigned long long ull;

static kt_code pread_full(int fd, uint8_t *buf, size_t n, uint64_t off, kt_error *err)
{
	size_t done = 0;
	while (done < n) {
		ssize_t r = pread(fd, buf + done, n - done, (off_t)(off + done));
		if (r < 0) {
			if (errno == EINTR)
				continue;
			int e = errno;
			return kt_error_sys(err, KT_EIO, e, "read failed at byte %llu", (ull)(off + done));
		}
		if (r == 0)
			return kt_error_set(err, KT_ECORRUPT,
			                    "truncated: the file ended at byte %llu while reading up to "
			                    "byte %llu (it shrank while being read)", (ull)(off + done),
			                    (ull)(off + n));
		done += (size_t)r;
	}
	return KT_OK;
}

kt_code kt_snapshot_check_trailer(int fd, uint64_t size, kt_trailer *out, kt_error *err)
{
	if (size % 512 != 32) {
		*out = KT_TRAILER_NONE;
		return KT_OK;
	}
	uint64_t n = size - 32;
	uint8_t *buf = malloc(CHUNK);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (!buf || !md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
		free(buf);
		EVP_MD_CTX_free(md);
		return kt_error_set(err, KT_ENOMEM, "cannot set up SHA-256");
	}
#ifdef POSIX_FADV_SEQUENTIAL
	(void)posix_fadvise(fd, 0, (off_t)size, POSIX_FADV_SEQUENTIAL);
#endif
	kt_code c = KT_OK;
	for (uint64_t off = 0; off < n && !c;) {
		size_t want = n - off < CHUNK ? (size_t)(n - off) : CHUNK;
		c = pread_full(fd, buf, want, off, err);
		if (!c && EVP_DigestUpdate(md, buf, want) != 1)
			c = kt_error_set(err, KT_EIO, "SHA-256 failed");
		off += want;
	}
	uint8_t digest[32], trailer[32];
	unsigned dlen = 0;
	if (!c && EVP_DigestFinal_ex(md, digest, &dlen) != 1)
		c = kt_error_set(err, KT_EIO, "SHA-256 failed");
	if (!c)
		c = pread_full(fd, trailer, 32, n, err);
	free(buf);
	EVP_MD_CTX_free(md);
	if (c)
		return c;
	if (memcmp(digest, trailer, 32) != 0) {
		char want_hex[65], got_hex[65];
		kt_hex(want_hex, trailer, 32);
		kt_hex(got_hex, digest, 32);
		*out = KT_TRAILER_BAD;
		return kt_error_set(err, KT_ECORRUPT,
		                    "SHA-256 trailer mismatch: the last 32 bytes say %s but the %llu "
		                    "bytes before them hash to %s (the file was damaged after etcd "
		                    "sent it)", want_hex, (ull)n, got_hex);
	}
	*out = KT_TRAILER_OK;
	return KT_OK;
}
