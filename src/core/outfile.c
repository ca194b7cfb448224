/*
 * outfile.c - files that appear whole or not at all.
 *
 * State: open (PATH.part exists, fd valid) -> committed (PATH exists, .part
 * gone) or aborted (.part gone).  Invariants:
 *   1. PATH is never replaced: open refuses when it exists, and the final
 *      rename uses RENAME_NOREPLACE (falling back to link+unlink).
 *   2. The .part is created with O_EXCL and mode 0600 whatever the umask.
 *   3. Data and the directory entry are fsynced before commit returns.
 *   4. The writer holds flock(LOCK_EX) on its .part until the rename.  A
 *      .part that nobody holds was left by a killed process: open removes it
 *      and starts over, so a crash never blocks a file name for good.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core.h"

static char *concat(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *p = kt_xmalloc(la + lb + 1);
	memcpy(p, a, la);
	memcpy(p + la, b, lb + 1);
	return p;
}

kt_code kt_outfile_open(kt_outfile *f, const char *path, kt_error *err)
{
	struct stat st;
	f->fd = -1;
	f->path = NULL;
	f->part_path = NULL;
	f->written = 0;
	if (!*path)
		return kt_error_set(err, KT_EUSAGE, "empty output file name");
	if (lstat(path, &st) == 0)
		return kt_error_set(err, KT_EEXIST,
		                    "'%s' already exists; refusing to overwrite it (choose another name or remove it first)",
		                    path);
	char *part = concat(path, ".part");
	int fd = open(part, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 && errno == EEXIST) {
		int old = open(part, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (old >= 0 && flock(old, LOCK_EX | LOCK_NB) == 0) {
			kt_log(KT_LOG_WARN, "removing '%s' left behind by an interrupted save", part);
			unlink(part);
			close(old);
			fd = open(part, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		} else {
			if (old >= 0)
				close(old);
			errno = EEXIST;
		}
	}
	if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) != 0) {
		close(fd);   /* someone reclaimed and locked it between our calls */
		fd = -1;
		errno = EEXIST;
	}
	if (fd < 0) {
		int e = errno;
		kt_code rc = kt_code_from_errno(e);
		if (e == EEXIST)
			kt_error_set(err, KT_EEXIST,
			             "'%s' is being written by another save right now; wait for it or "
			             "choose another name", part);
		else
			kt_error_sys(err, rc, e, "cannot create '%s'", part);
		free(part);
		return rc;
	}
	if (fchmod(fd, 0600) != 0) {
		int e = errno;
		close(fd);
		unlink(part);
		free(part);
		return kt_error_sys(err, kt_code_from_errno(e), e, "cannot set mode 0600 on '%s'", path);
	}
	f->fd = fd;
	f->path = kt_xstrdup(path);
	f->part_path = part;
	return KT_OK;
}

kt_code kt_outfile_write(kt_outfile *f, const void *data, size_t n, kt_error *err)
{
	const char *p = data;
	while (n) {
		ssize_t w = write(f->fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			int e = errno;
			return kt_error_sys(err, kt_code_from_errno(e), e,
			                    "cannot write '%s' at byte %llu", f->part_path,
			                    (unsigned long long)f->written);
		}
		p += w;
		n -= (size_t)w;
		f->written += (uint64_t)w;
	}
	return KT_OK;
}

kt_code kt_outfile_sync(kt_outfile *f, kt_error *err)
{
	if (fsync(f->fd) != 0) {
		int e = errno;
		return kt_error_sys(err, kt_code_from_errno(e), e, "cannot flush '%s' to disk",
		                    f->part_path);
	}
	return KT_OK;
}

static int sync_dir(const char *path)
{
	char *copy = kt_xstrdup(path);
	int rc = -1;
	int dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		rc = fsync(dfd);
		close(dfd);
	}
	free(copy);
	return rc;
}

static int rename_noreplace(const char *from, const char *to)
{
	if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -1;
	/* Filesystems without RENAME_NOREPLACE: link fails if `to` exists. */
	if (link(from, to) != 0)
		return -1;
	unlink(from);
	return 0;
}

kt_code kt_outfile_commit(kt_outfile *f, kt_error *err)
{
	/* Rename while the fd (and its lock) is still held: nobody can mistake
	 * the .part for an abandoned one in between. */
	kt_code rc = kt_outfile_sync(f, err);
	if (!rc && rename_noreplace(f->part_path, f->path) != 0) {
		int e = errno;
		if (e == EEXIST)
			rc = kt_error_set(err, KT_EEXIST,
			                  "'%s' appeared while saving; left it alone and discarded the new copy",
			                  f->path);
		else
			rc = kt_error_sys(err, kt_code_from_errno(e), e, "cannot rename '%s' to '%s'",
			                  f->part_path, f->path);
	}
	if (rc) {
		kt_outfile_abort(f);
		return rc;
	}
	/* From here the file is in place under its name: never remove it. */
	if (close(f->fd) != 0) {
		int e = errno;
		rc = kt_error_sys(err, kt_code_from_errno(e), e, "'%s' is saved but closing it failed",
		                  f->path);
	}
	f->fd = -1;
	if (!rc && sync_dir(f->path) != 0) {
		int e = errno;
		rc = kt_error_sys(err, KT_EIO, e,
		                  "'%s' is in place but its directory could not be flushed to disk "
		                  "(it may be lost on a power failure)", f->path);
	}
	free(f->part_path);
	free(f->path);
	f->part_path = NULL;
	f->path = NULL;
	return rc;
}

void kt_outfile_abort(kt_outfile *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
	if (f->part_path)
		unlink(f->part_path);
	free(f->part_path);
	free(f->path);
	f->part_path = NULL;
	f->path = NULL;
}
