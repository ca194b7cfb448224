/*
 * local.c - the local directory backend: object NAME is the regular file
 * DIR/NAME, its '/'-separated segments being subdirectories.
 *
 * Invariants:
 *   1. Every path is resolved relative to the store's directory fd (the
 *      *at calls), never through the current directory.
 *   2. A put writes SEGMENT.tmp~RANDOM beside the final name (mode 0600,
 *      O_EXCL), fsyncs it, renames it with RENAME_NOREPLACE (link+unlink on
 *      file systems without it) and fsyncs the directory; a directory it
 *      creates (mode 0700) is fsynced into its parent first.  So a name
 *      appears whole or not at all, is never replaced, and survives a power
 *      failure once put returned.  Any failure unlinks the temporary file.
 *      A big object from a page-aligned buffer (a pack) is written with
 *      O_DIRECT where the file system allows it (write_data).
 *   3. '~' cannot occur in a name, so temporary files (and any other entry
 *      that is not a valid name: editor leftovers, lost+found) are invisible
 *      to get, stat and list.  A temporary file left by a killed process
 *      stays until someone removes it; it never blocks a name.
 *   4. list walks only the directory the prefix points into and sorts each
 *      directory's entries with a subdirectory compared as "name/", which
 *      yields names in ascending byte order of the whole name.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store_int.h"

#define COPY_CHUNK (1u << 20)

typedef struct local_store {
	kt_store base;
	int dirfd;
	char *root;
	uint64_t tmp_counter;
} local_store;

static kt_code missing(local_store *l, const char *name, kt_error *err)
{
	return kt_error_set(err, KT_ENOTFOUND, "object '%s' not found in %s", name, l->base.desc);
}

static kt_code sys_fail(local_store *l, int e, const char *what, const char *name, kt_error *err)
{
	return kt_error_sys(err, kt_code_from_errno(e), e, "cannot %s '%s' in %s", what, name,
	                    l->base.desc);
}

static int canceled(const local_store *l)
{
	return l->base.cancel && *l->base.cancel;
}

/* ------------------------------------------------------------------ */
/* put */

/*
 * Make the directories of name's leading segments (mode 0700), fsyncing
 * each new one into its parent.  *parent_fd gets an fd of the directory
 * that holds the last segment; *base points at that segment in name.
 */
static kt_code open_parent(local_store *l, const char *name, int *parent_fd,
                           const char **base, kt_error *err)
{
	int cur = dup(l->dirfd);
	if (cur < 0)
		return sys_fail(l, errno, "open the directory of", name, err);
	const char *seg = name;
	char part[KT_STORE_SEGMENT_MAX + 1];
	for (;;) {
		const char *slash = strchr(seg, '/');
		if (!slash)
			break;
		size_t n = (size_t)(slash - seg);
		memcpy(part, seg, n);
		part[n] = '\0';
		int created = 0;
		if (mkdirat(cur, part, 0700) == 0) {
			created = 1;
		} else if (errno != EEXIST) {
			int e = errno;
			close(cur);
			return sys_fail(l, e, "create the directory of", name, err);
		}
		int next = openat(cur, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0) {
			int e = errno;
			close(cur);
			if (e == ENOTDIR)
				return kt_error_set(err, KT_EUSAGE, "cannot store '%s' in %s: a leading part "
				                    "of it is an object (a local store cannot hold both 'a' "
				                    "and 'a/b')", name, l->base.desc);
			return sys_fail(l, e, "open the directory of", name, err);
		}
		if (created) {
			/* The new directory's entry must survive a crash before the
			 * object inside it is reported stored. */
			if (fchmod(next, 0700) != 0 || fsync(cur) != 0) {
				int e = errno;
				close(next);
				close(cur);
				return sys_fail(l, e, "flush the new directory of", name, err);
			}
		}
		close(cur);
		cur = next;
		seg = slash + 1;
	}
	*parent_fd = cur;
	*base = seg;
	return KT_OK;
}

/* Write all n bytes of data to fd. */
static int write_all(int fd, const void *data, size_t n)
{
	const char *p = data;
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Write data to the new file fd, the page-aligned part of a big object
 * with O_DIRECT when its buffer is page-aligned: the kernel then sends it
 * to the disk from our buffer instead of copying it into the page cache
 * first and writing it back on fsync (a pack is written once and not read
 * again by the backup that wrote it: the copy was 9 % of a backup's CPU).
 * The tail, and everything on file systems that refuse O_DIRECT, is
 * written as usual. */
#define DIRECT_MIN (1u << 20)
#define DIRECT_ALIGN 4096u

static int write_data(int fd, const void *data, size_t n)
{
	size_t head = ((uintptr_t)data % DIRECT_ALIGN || n < DIRECT_MIN) ? 0
	                                                               : n - n % DIRECT_ALIGN;
	int fl = head ? fcntl(fd, F_GETFL) : -1;
	if (fl >= 0 && fcntl(fd, F_SETFL, fl | O_DIRECT) == 0) {
		const char *p = data;
		size_t done = 0;
		while (done < head) {
			ssize_t w = write(fd, p + done, head - done);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0 || (size_t)w % DIRECT_ALIGN)
				break;   /* refused or short: the rest goes buffered */
			done += (size_t)w;
		}
		fcntl(fd, F_SETFL, fl);
		if (lseek(fd, (off_t)done, SEEK_SET) != (off_t)done)
			return -1;
		data = p + done;
		n -= done;
	}
	return write_all(fd, data, n);
}

/* Copy the first size bytes of src (by pread) to fd. */
static kt_code copy_fd(local_store *l, const char *name, int src, uint64_t size, int fd,
                       kt_error *err)
{
	char *buf = kt_xmalloc(COPY_CHUNK);
	kt_code rc = KT_OK;
	for (uint64_t pos = 0; pos < size && !rc;) {
		if (canceled(l)) {
			rc = kt_error_set(err, KT_ECANCELED, "put of '%s' in %s canceled", name,
			                  l->base.desc);
			break;
		}
		size_t k = size - pos < COPY_CHUNK ? (size_t)(size - pos) : COPY_CHUNK;
		ssize_t r = pread(src, buf, k, (off_t)pos);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			rc = kt_error_sys(err, KT_EIO, errno, "cannot read the file to store as '%s' at "
			                  "byte %llu", name, (unsigned long long)pos);
		else if (r == 0)
			rc = kt_error_set(err, KT_EIO, "the file to store as '%s' shrank while it was "
			                  "copied (ended at byte %llu of %llu)", name,
			                  (unsigned long long)pos, (unsigned long long)size);
		else if (write_all(fd, buf, (size_t)r) != 0)
			rc = sys_fail(l, errno, "write", name, err);
		else
			pos += (uint64_t)r;
	}
	free(buf);
	return rc;
}

static int rename_noreplace(int dfd, const char *from, const char *to)
{
	if (renameat2(dfd, from, dfd, to, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -1;
	/* File systems without RENAME_NOREPLACE: link fails if `to` exists. */
	if (linkat(dfd, from, dfd, to, 0) != 0)
		return -1;
	unlinkat(dfd, from, 0);
	return 0;
}

/* Store data (or the first size bytes of src_fd when data is NULL). */
static kt_code local_write(local_store *l, const char *name, const void *data, int src_fd,
                           uint64_t size, kt_error *err)
{
	struct stat st;
	/* Cheap early refusal; the no-replace rename below is what guarantees it. */
	if (fstatat(l->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		if (S_ISDIR(st.st_mode))
			return kt_error_set(err, KT_EUSAGE, "cannot store '%s' in %s: objects are stored "
			                    "below that name (a local store cannot hold both 'a' and "
			                    "'a/b')", name, l->base.desc);
		return kt_error_set(err, KT_EEXIST, "object '%s' already exists in %s; objects are "
		                    "written once and never replaced", name, l->base.desc);
	}
	int pfd = -1;
	const char *base = name;
	kt_code rc = open_parent(l, name, &pfd, &base, err);
	if (rc)
		return rc;
	char tmp[KT_STORE_SEGMENT_MAX + 32];
	int fd = -1;
	for (int tries = 0; tries < 100 && fd < 0; tries++) {
		uint64_t x = (uint64_t)kt_now_ms() * 0x9e3779b97f4a7c15ull ^
		             ((uint64_t)getpid() << 32) ^ ++l->tmp_counter * 0xbf58476d1ce4e5b9ull;
		snprintf(tmp, sizeof(tmp), "%s.tmp~%012llx", base,
		         (unsigned long long)(x & 0xffffffffffffull));
		fd = openat(pfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0 && errno != EEXIST)
			break;
	}
	if (fd < 0) {
		int e = errno;
		close(pfd);
		return sys_fail(l, e, "create a temporary file for", name, err);
	}
	if (fchmod(fd, 0600) != 0)
		rc = sys_fail(l, errno, "set mode 0600 on", name, err);
	if (!rc) {
		if (data) {
			if (write_data(fd, data, (size_t)size) != 0)
				rc = sys_fail(l, errno, "write", name, err);
		} else {
			rc = copy_fd(l, name, src_fd, size, fd, err);
		}
	}
	if (!rc && fsync(fd) != 0)
		rc = sys_fail(l, errno, "flush to disk", name, err);
	if (close(fd) != 0 && !rc)
		rc = sys_fail(l, errno, "close", name, err);
	if (!rc && rename_noreplace(pfd, tmp, base) != 0) {
		int e = errno;
		if (e == EEXIST)
			rc = kt_error_set(err, KT_EEXIST, "object '%s' already exists in %s (another "
			                  "writer stored it first); objects are never replaced", name,
			                  l->base.desc);
		else
			rc = sys_fail(l, e, "move into place", name, err);
	}
	if (rc) {
		unlinkat(pfd, tmp, 0);
		close(pfd);
		return rc;
	}
	/* From here the object is in place: never remove it. */
	if (fsync(pfd) != 0)
		rc = kt_error_sys(err, KT_EIO, errno, "object '%s' is in %s but its directory could "
		                  "not be flushed to disk (it may be lost on a power failure)", name,
		                  l->base.desc);
	close(pfd);
	return rc;
}

static kt_code local_put(kt_store *s, const char *name, const void *data, size_t len,
                         kt_error *err)
{
	return local_write((local_store *)s, name, data, -1, len, err);
}

static kt_code local_put_file(kt_store *s, const char *name, int fd, kt_error *err)
{
	local_store *l = (local_store *)s;
	struct stat st;
	if (fstat(fd, &st) != 0)
		return kt_error_sys(err, KT_EIO, errno, "cannot stat the file to store as '%s'", name);
	if (!S_ISREG(st.st_mode))
		return kt_error_set(err, KT_EUSAGE, "can only store a regular file as '%s'", name);
	return local_write(l, name, NULL, fd, (uint64_t)st.st_size, err);
}

/* ------------------------------------------------------------------ */
/* get, stat, remove */

static kt_code local_get(kt_store *s, const char *name, uint64_t offset, uint64_t length,
                         kt_buf *out, uint64_t *size_out, kt_error *err)
{
	local_store *l = (local_store *)s;
	struct stat st;
	int fd = openat(l->dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		/* ELOOP: a symlink, which is not an object (as in list and stat). */
		if (e == ENOENT || e == ENOTDIR || e == ELOOP)
			return missing(l, name, err);
		return sys_fail(l, e, "open", name, err);
	}
	if (fstat(fd, &st) != 0) {
		int e = errno;
		close(fd);
		return sys_fail(l, e, "stat", name, err);
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return missing(l, name, err);
	}
	uint64_t size = (uint64_t)st.st_size;
	uint64_t end = size;
	if (length && offset + length < end)
		end = offset + length;
	uint64_t want = offset < end ? end - offset : 0;
	if (want > out->max - out->len) {
		close(fd);
		return kt_error_set(err, KT_ELIMIT, "reading %llu bytes of object '%s' in %s would "
		                    "exceed the limit of %zu bytes", (unsigned long long)want, name,
		                    l->base.desc, out->max);
	}
	/* Read straight into the caller's buffer: one copy, from the page cache. */
	kt_code rc = want ? kt_buf_grow(out, (size_t)want, err) : KT_OK;
	for (uint64_t pos = 0; pos < want && !rc;) {
		size_t k = want - pos < COPY_CHUNK ? (size_t)(want - pos) : COPY_CHUNK;
		ssize_t r = pread(fd, out->data + out->len, k, (off_t)(offset + pos));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			rc = sys_fail(l, errno, "read", name, err);
		else if (r == 0)
			break;   /* shrank under us: the dispatcher reports the short read */
		else {
			kt_buf_setlen(out, out->len + (size_t)r);
			pos += (uint64_t)r;
		}
	}
	close(fd);
	if (!rc)
		*size_out = size;
	return rc;
}

static kt_code local_stat(kt_store *s, const char *name, uint64_t *size, kt_error *err)
{
	local_store *l = (local_store *)s;
	struct stat st;
	if (fstatat(l->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
		int e = errno;
		if (e == ENOENT || e == ENOTDIR)
			return missing(l, name, err);
		return sys_fail(l, e, "stat", name, err);
	}
	if (!S_ISREG(st.st_mode))
		return missing(l, name, err);
	*size = (uint64_t)st.st_size;
	return KT_OK;
}

static kt_code local_remove(kt_store *s, const char *name, kt_error *err)
{
	local_store *l = (local_store *)s;
	if (unlinkat(l->dirfd, name, 0) == 0)
		return KT_OK;
	int e = errno;
	/* Missing, below a file, or a directory (not an object): nothing to remove. */
	if (e == ENOENT || e == ENOTDIR || e == EISDIR)
		return KT_OK;
	return sys_fail(l, e, "remove", name, err);
}

/* ------------------------------------------------------------------ */
/* list */

typedef struct dir_entry {
	char *key;      /* segment, with '/' appended for a directory (sort key) */
	int is_dir;
	uint64_t size;
} dir_entry;

static int cmp_entry(const void *a, const void *b)
{
	return strcmp(((const dir_entry *)a)->key, ((const dir_entry *)b)->key);
}

static int segment_ok(const char *seg)
{
	size_t n = strlen(seg);
	if (n == 0 || n > KT_STORE_SEGMENT_MAX || !strcmp(seg, ".") || !strcmp(seg, ".."))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!kt_store_name_char(seg[i]))
			return 0;
	return 1;
}

typedef struct walk {
	local_store *l;
	kt_store_list_fn fn;
	void *ctx;
	char path[KT_STORE_NAME_MAX + 2];   /* the name so far */
} walk;

/*
 * List directory dfd (taken over and closed), whose entries are names
 * w->path + segment; only segments starting with match (the part of the
 * prefix inside this directory; "" below the first level) are visited.
 */
static kt_code walk_dir(walk *w, int dfd, const char *match, kt_error *err)
{
	DIR *d = fdopendir(dfd);
	if (!d) {
		int e = errno;
		close(dfd);
		return kt_error_sys(err, kt_code_from_errno(e), e, "cannot list '%s' in %s",
		                    w->path[0] ? w->path : ".", w->l->base.desc);
	}
	size_t match_len = strlen(match), base_len = strlen(w->path);
	dir_entry *ents = NULL;
	size_t n = 0, cap = 0;
	kt_code rc = KT_OK;
	struct dirent *de;
	errno = 0;
	while ((de = readdir(d)) != NULL) {
		if (!segment_ok(de->d_name) || strncmp(de->d_name, match, match_len))
			continue;
		if (base_len + strlen(de->d_name) > KT_STORE_NAME_MAX)
			continue;
		struct stat st;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
			continue;   /* removed meanwhile */
		if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
			continue;   /* symlinks, sockets...: not objects */
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			dir_entry *grown = realloc(ents, cap * sizeof(*ents));
			if (!grown) {
				rc = kt_error_set(err, KT_ENOMEM, "out of memory listing %s",
				                  w->l->base.desc);
				break;
			}
			ents = grown;
		}
		size_t sl = strlen(de->d_name);
		ents[n].key = kt_xmalloc(sl + 2);
		memcpy(ents[n].key, de->d_name, sl + 1);
		ents[n].is_dir = S_ISDIR(st.st_mode);
		if (ents[n].is_dir) {
			ents[n].key[sl] = '/';
			ents[n].key[sl + 1] = '\0';
		}
		ents[n].size = (uint64_t)st.st_size;
		n++;
		errno = 0;
	}
	if (!rc && errno && !de) {
		int e = errno;
		rc = kt_error_sys(err, kt_code_from_errno(e), e, "cannot list '%s' in %s",
		                  w->path[0] ? w->path : ".", w->l->base.desc);
	}
	if (n > 1)
		qsort(ents, n, sizeof(*ents), cmp_entry);
	for (size_t i = 0; i < n && !rc; i++) {
		size_t kl = strlen(ents[i].key);
		memcpy(w->path + base_len, ents[i].key, kl + 1);
		if (!ents[i].is_dir) {
			kt_store_entry e = { w->path, ents[i].size };
			rc = w->fn(w->ctx, &e, err);
		} else if (base_len + kl < KT_STORE_NAME_MAX) {
			ents[i].key[kl - 1] = '\0';
			int sub = openat(dirfd(d), ents[i].key, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
			                 O_CLOEXEC);
			if (sub >= 0)
				rc = walk_dir(w, sub, "", err);
			else if (errno != ENOENT)
				rc = kt_error_sys(err, kt_code_from_errno(errno), errno, "cannot list '%s' "
				                  "in %s", w->path, w->l->base.desc);
		}
		w->path[base_len] = '\0';
	}
	for (size_t i = 0; i < n; i++)
		free(ents[i].key);
	free(ents);
	closedir(d);
	return rc;
}

static kt_code local_list(kt_store *s, const char *prefix, kt_store_list_fn fn, void *ctx,
                          kt_error *err)
{
	local_store *l = (local_store *)s;
	walk *w = kt_xcalloc(1, sizeof(*w));
	w->l = l;
	w->fn = fn;
	w->ctx = ctx;
	/* Start in the directory the prefix points into. */
	const char *slash = strrchr(prefix, '/');
	size_t dl = slash ? (size_t)(slash - prefix) + 1 : 0;
	memcpy(w->path, prefix, dl);
	w->path[dl] = '\0';
	int dfd;
	if (dl) {
		char dir[KT_STORE_NAME_MAX + 1];
		memcpy(dir, prefix, dl - 1);
		dir[dl - 1] = '\0';
		dfd = openat(l->dirfd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	} else {
		dfd = openat(l->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	kt_code rc = KT_OK;
	if (dfd < 0) {
		int e = errno;
		if (e != ENOENT && e != ENOTDIR)
			rc = kt_error_sys(err, kt_code_from_errno(e), e, "cannot list '%s' in %s", prefix,
			                  l->base.desc);
	} else {
		rc = walk_dir(w, dfd, prefix + dl, err);
	}
	free(w);
	return rc;
}

/* ------------------------------------------------------------------ */
/* open / free */

static void local_free(kt_store *s)
{
	local_store *l = (local_store *)s;
	if (l->dirfd >= 0)
		close(l->dirfd);
	free(l->root);
	free(l);
}

static const kt_store_vtable local_vt;

static kt_code local_clone(kt_store *s, kt_store **out, kt_error *err)
{
	local_store *l = (local_store *)s;
	int fd = fcntl(l->dirfd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		return kt_error_sys(err, kt_code_from_errno(errno), errno, "cannot open %s again",
		                    s->desc);
	local_store *c = kt_xcalloc(1, sizeof(*c));
	c->base.vt = &local_vt;
	c->base.cancel = s->cancel;
	c->base.desc = kt_xstrdup(s->desc);
	c->dirfd = fd;
	c->root = kt_xstrdup(l->root);
	*out = &c->base;
	return KT_OK;
}

static const kt_store_vtable local_vt = {
	.kind = "local",
	.put = local_put,
	.put_file = local_put_file,
	.get = local_get,
	.stat = local_stat,
	.list = local_list,
	.remove = local_remove,
	.clone = local_clone,
	.free = local_free,
};

/* mkdir -p with mode 0700 for what it creates. */
static kt_code make_dirs(const char *dir, kt_error *err)
{
	char *p = kt_xstrdup(dir);
	kt_code rc = KT_OK;
	for (char *c = p + 1;; c++) {
		if (*c == '/' || !*c) {
			char save = *c;
			*c = '\0';
			if (mkdir(p, 0700) != 0 && errno != EEXIST) {
				rc = kt_error_sys(err, kt_code_from_errno(errno), errno, "cannot create the "
				                  "store directory '%s'", p);
				break;
			}
			*c = save;
			if (!save)
				break;
		}
	}
	free(p);
	return rc;
}

kt_code kt_store_local_open(const char *dir, const kt_store_opts *o, kt_store **out,
                            kt_error *err)
{
	if (!*dir)
		return kt_error_set(err, KT_EUSAGE, "store directory is empty");
	if (o->create) {
		kt_code rc = make_dirs(dir, err);
		if (rc)
			return rc;
	}
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		if (e == ENOENT)
			return kt_error_set(err, KT_ENOTFOUND, "store directory '%s' does not exist "
			                    "(create it first, or ask for it to be created)", dir);
		if (e == ENOTDIR)
			return kt_error_set(err, KT_EUSAGE, "store path '%s' is not a directory", dir);
		return kt_error_sys(err, kt_code_from_errno(e), e, "cannot open the store directory "
		                    "'%s'", dir);
	}
	local_store *l = kt_xcalloc(1, sizeof(*l));
	l->base.vt = &local_vt;
	l->base.cancel = o->cancel;
	l->dirfd = fd;
	l->root = kt_xstrdup(dir);
	kt_buf d;
	kt_buf_init(&d, KT_BUF_UNLIMITED);
	kt_buf_addf(&d, NULL, "local:%s", dir);
	l->base.desc = kt_buf_detach(&d, NULL);
	*out = &l->base;
	return KT_OK;
}
