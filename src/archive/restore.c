/*
 * restore.c - snapshots back to files: list, resolve, ls and restore.
 *
 * Restore walks the snapshot's trees depth first.  A file is written as
 * <dir>/.<name>.kontinuity-part (0600), blob by blob (each authenticated and
 * checked against its id), fsync'ed, given its mode and times, then renamed
 * to its name: a name only ever holds a complete file.  Directories get
 * their mode and times after their contents.  Names come from decoded
 * trees, which refuse anything but single safe path components, and every
 * open uses O_NOFOLLOW relative to a directory descriptor, so a snapshot
 * cannot write outside the target.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "archive_int.h"

/* ------------------------------------------------------------------ */
/* Snapshots. */

static int by_time(const void *x, const void *y)
{
	const kt_archive_snap *a = x, *b = y;
	int c = strcmp(a->time, b->time);
	return c ? c : strcmp(a->id, b->id);
}

void kt_archive_snaps_free(kt_archive_snap *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++) {
		for (size_t j = 0; j < v[i].n_paths; j++)
			free(v[i].paths[j]);
		free(v[i].paths);
		for (size_t j = 0; j < v[i].n_tags; j++)
			free(v[i].tags[j]);
		free(v[i].tags);
	}
	free(v);
}

kt_code kt_archive_load_snapshot(kt_archive *a, const char *id, kt_repo_snapshot *out,
                                 kt_error *err)
{
	char name[128];
	snprintf(name, sizeof(name), "snapshots/%s", id);
	kt_buf plain;
	kt_buf_init(&plain, 16u << 20);
	kt_code c = kt_archive_get_sealed(a, name, KT_AAD_SNAPSHOT, &plain, err);
	if (!c && (c = kt_repo_snapshot_decode(plain.data, plain.len, out, err)))
		kt_error_wrap(err, "snapshot %s", id);
	kt_buf_release(&plain);
	return c;
}

kt_code kt_archive_snapshots(kt_archive *a, kt_archive_snap **out, size_t *n_out, kt_error *err)
{
	char **names;
	size_t n;
	kt_code c = kt_archive_list_names(a, "snapshots/", &names, &n, err);
	if (c)
		return c;
	kt_archive_snap *v = kt_xcalloc(n ? n : 1, sizeof(*v));
	size_t k = 0;
	for (size_t i = 0; !c && i < n; i++) {
		const char *id = names[i] + strlen("snapshots/");
		kt_repo_snapshot s;
		if ((c = kt_archive_load_snapshot(a, id, &s, err)))
			break;
		kt_archive_snap *d = &v[k++];
		snprintf(d->id, sizeof(d->id), "%s", id);
		snprintf(d->time, sizeof(d->time), "%s", s.time);
		snprintf(d->hostname, sizeof(d->hostname), "%s", s.hostname);
		d->paths = s.paths;
		d->n_paths = s.n_paths;
		d->tags = s.tags;
		d->n_tags = s.n_tags;
		d->files = s.files;
		d->bytes = s.bytes;
		d->added_bytes = s.added_bytes;
		s.paths = NULL;
		s.tags = NULL;
		s.n_paths = s.n_tags = 0;
		kt_repo_snapshot_release(&s);
	}
	kt_archive_names_free(names, n);
	if (c) {
		kt_archive_snaps_free(v, k);
		return c;
	}
	qsort(v, k, sizeof(*v), by_time);
	*out = v;
	*n_out = k;
	return KT_OK;
}

kt_code kt_archive_find_snapshot(kt_archive *a, const char *spec, char id[65], kt_error *err)
{
	kt_archive_snap *v;
	size_t n;
	kt_code c = kt_archive_snapshots(a, &v, &n, err);
	if (c)
		return c;
	const kt_archive_snap *hit = NULL;
	size_t hits = 0, len = strlen(spec);
	if (!strcmp(spec, "latest")) {
		hit = n ? &v[n - 1] : NULL;
		hits = n ? 1 : 0;
	} else if (len >= 4 && len <= 64) {
		for (size_t i = 0; i < n; i++)
			if (!strncmp(v[i].id, spec, len)) {
				hit = &v[i];
				hits++;
			}
	}
	if (hits == 1)
		memcpy(id, hit->id, 65);
	else if (hits == 0)
		c = kt_error_set(err, KT_ENOTFOUND, "no snapshot '%s' (see `kontinuity repo "
		                 "snapshots`; give at least 4 hex digits of its id)", spec);
	else
		c = kt_error_set(err, KT_EUSAGE, "'%s' matches %zu snapshots; give more of the id",
		                 spec, hits);
	kt_archive_snaps_free(v, n);
	return c;
}

/* ------------------------------------------------------------------ */
/* Walking trees. */

static kt_code load_tree(kt_archive *a, const uint8_t id[32], kt_repo_tree *t, kt_error *err)
{
	kt_buf raw;
	kt_buf_init(&raw, KT_REPO_MAX_BLOB + 1);
	kt_code c = kt_archive_read_blob(a, id, &raw, err);
	if (!c) {
		kt_loc *l = kt_archive_lookup(a, id);
		if (l->type != KT_BLOB_TREE)
			c = kt_error_set(err, KT_ECORRUPT, "a directory names a data blob as its tree");
		else
			c = kt_repo_tree_decode(raw.data, raw.len, t, err);
	} else {
		memset(t, 0, sizeof(*t));
	}
	kt_buf_release(&raw);
	return c;
}

static kt_code ls_tree(kt_archive *a, const uint8_t id[32], char *path, size_t plen,
                       kt_archive_ls_fn fn, void *ctx, int depth, kt_error *err)
{
	if (depth > 256)
		return kt_error_set(err, KT_ECORRUPT, "trees nest deeper than 256 levels");
	kt_repo_tree t;
	kt_code c = load_tree(a, id, &t, err);
	for (size_t i = 0; !c && i < t.n; i++) {
		const kt_repo_node *nd = &t.nodes[i];
		size_t n = strlen(nd->name);
		if (plen + n + 2 >= 4096) {
			c = kt_error_set(err, KT_ELIMIT, "path too long in snapshot");
			break;
		}
		path[plen] = '/';
		memcpy(path + plen + 1, nd->name, n + 1);
		fn(ctx, path, nd->type, nd->mode, nd->size, nd->mtime);
		if (nd->type == KT_NODE_DIR)
			c = ls_tree(a, nd->subtree, path, plen + 1 + n, fn, ctx, depth + 1, err);
		path[plen] = '\0';
	}
	kt_repo_tree_release(&t);
	return c;
}

kt_code kt_archive_ls(kt_archive *a, const char *id, kt_archive_ls_fn fn, void *ctx,
                      kt_error *err)
{
	kt_repo_snapshot s;
	kt_code c = kt_archive_load_snapshot(a, id, &s, err);
	if (c)
		return c;
	char path[4096] = "";
	c = ls_tree(a, s.tree, path, 0, fn, ctx, 0, err);
	kt_repo_snapshot_release(&s);
	return c;
}

/* ------------------------------------------------------------------ */
/* Restore. */

/* "2026-11-27T08:00:00.123456789Z" -> timespec (UTC). */
static int parse_time(const char *s, struct timespec *ts)
{
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!p)
		return -1;
	long ns = 0;
	if (*p == '.') {
		long scale = 100000000;
		for (p++; *p >= '0' && *p <= '9'; p++) {
			ns += (*p - '0') * scale;
			scale /= 10;
		}
	}
	if (*p != 'Z')
		return -1;
	ts->tv_sec = timegm(&tm);
	ts->tv_nsec = ns;
	return 0;
}

typedef struct rctx {
	kt_archive *a;
	const kt_archive_restore_opts *o;
	kt_archive_restore_result *res;
	kt_buf blob;
	char path[4096];   /* for messages and progress */
} rctx;

static void set_times(int dirfd, const char *name, const char *mtime, int nofollow)
{
	struct timespec ts[2];
	if (parse_time(mtime, &ts[1]) == 0) {
		ts[0] = ts[1];
		utimensat(dirfd, name, ts, nofollow ? AT_SYMLINK_NOFOLLOW : 0);
	}
}

static kt_code restore_file(rctx *r, int dirfd, const kt_repo_node *nd, kt_error *err)
{
	char part[300];
	snprintf(part, sizeof(part), ".%s.kontinuity-part", nd->name);
	int fd = openat(dirfd, part, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return kt_error_sys(err, kt_code_from_errno(errno), errno, "cannot create '%s'",
		                    r->path);
	kt_code c = KT_OK;
	uint64_t written = 0;
	for (size_t i = 0; !c && i < nd->n_content; i++) {
		if (r->o && r->o->cancel && *r->o->cancel) {
			c = kt_error_set(err, KT_ECANCELED, "interrupted");
			break;
		}
		if ((c = kt_archive_read_blob(r->a, nd->content[i], &r->blob, err)))
			break;
		const char *p = r->blob.data;
		size_t left = r->blob.len;
		while (left) {
			ssize_t w = write(fd, p, left);
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0) {
				c = kt_error_sys(err, kt_code_from_errno(errno), errno, "cannot write '%s'",
				                 r->path);
				break;
			}
			p += w;
			left -= (size_t)w;
		}
		written += r->blob.len;
		r->res->bytes += r->blob.len;
		if (r->o && r->o->progress)
			r->o->progress(r->o->progress_ctx, r->res->files, r->res->bytes, r->path);
	}
	if (!c && written != nd->size)
		c = kt_error_set(err, KT_ECORRUPT, "'%s': its blobs hold %llu bytes, the tree says "
		                 "%llu", r->path, (unsigned long long)written,
		                 (unsigned long long)nd->size);
	if (!c && fsync(fd) != 0)
		c = kt_error_sys(err, kt_code_from_errno(errno), errno, "cannot write '%s'", r->path);
	if (!c)
		fchmod(fd, nd->mode & 07777);
	if (!c && r->o && r->o->owners && fchown(fd, nd->uid, nd->gid) != 0)
		c = kt_error_sys(err, KT_EPERM, errno, "cannot give '%s' its owner", r->path);
	close(fd);
	if (!c) {
		set_times(dirfd, part, nd->mtime, 1);
		if (renameat(dirfd, part, dirfd, nd->name) != 0)
			c = kt_error_sys(err, kt_code_from_errno(errno), errno, "cannot name '%s'",
			                 r->path);
	}
	if (c)
		unlinkat(dirfd, part, 0);
	else
		r->res->files++;
	return c;
}

static kt_code restore_tree(rctx *r, int dirfd, const uint8_t id[32], size_t plen, int depth,
                            kt_error *err)
{
	if (depth > 256)
		return kt_error_set(err, KT_ECORRUPT, "trees nest deeper than 256 levels");
	kt_repo_tree t;
	kt_code c = load_tree(r->a, id, &t, err);
	for (size_t i = 0; !c && i < t.n; i++) {
		const kt_repo_node *nd = &t.nodes[i];
		size_t n = strlen(nd->name);
		if (plen + n + 2 >= sizeof(r->path)) {
			c = kt_error_set(err, KT_ELIMIT, "path too long in snapshot");
			break;
		}
		r->path[plen] = '/';
		memcpy(r->path + plen + 1, nd->name, n + 1);
		if (nd->type == KT_NODE_FILE) {
			c = restore_file(r, dirfd, nd, err);
		} else if (nd->type == KT_NODE_SYMLINK) {
			if (symlinkat(nd->target, dirfd, nd->name) != 0)
				c = kt_error_sys(err, kt_code_from_errno(errno), errno, "cannot create link "
				                 "'%s'", r->path);
			else {
				if (r->o && r->o->owners)
					fchownat(dirfd, nd->name, nd->uid, nd->gid, AT_SYMLINK_NOFOLLOW);
				set_times(dirfd, nd->name, nd->mtime, 1);
				r->res->links++;
			}
		} else {
			if (mkdirat(dirfd, nd->name, 0700) != 0) {
				c = kt_error_sys(err, kt_code_from_errno(errno), errno, "cannot create '%s'",
				                 r->path);
				break;
			}
			int sub = openat(dirfd, nd->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub < 0) {
				c = kt_error_sys(err, kt_code_from_errno(errno), errno, "cannot open '%s'",
				                 r->path);
				break;
			}
			c = restore_tree(r, sub, nd->subtree, plen + 1 + n, depth + 1, err);
			if (!c) {
				fchmod(sub, nd->mode & 07777);
				if (r->o && r->o->owners)
					fchown(sub, nd->uid, nd->gid);
				fsync(sub);
			}
			close(sub);
			if (!c) {
				set_times(dirfd, nd->name, nd->mtime, 1);
				r->res->dirs++;
			}
		}
		r->path[plen] = '\0';
	}
	kt_repo_tree_release(&t);
	return c;
}

kt_code kt_archive_restore(kt_archive *a, const char *id, const char *target,
                           const kt_archive_restore_opts *o, kt_archive_restore_result *res,
                           kt_error *err)
{
	memset(res, 0, sizeof(*res));
	int64_t start = kt_now_ms();
	kt_repo_snapshot s;
	kt_code c = kt_archive_load_snapshot(a, id, &s, err);
	if (c)
		return c;
	if (mkdir(target, 0700) != 0 && errno != EEXIST) {
		kt_repo_snapshot_release(&s);
		return kt_error_sys(err, kt_code_from_errno(errno), errno, "cannot create '%s'",
		                    target);
	}
	int dirfd = open(target, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		kt_repo_snapshot_release(&s);
		return kt_error_sys(err, kt_code_from_errno(errno), errno, "cannot open '%s'", target);
	}
	/* Only into an empty directory: restore never overwrites. */
	int fd2 = dup(dirfd);
	DIR *d = fd2 >= 0 ? fdopendir(fd2) : NULL;
	struct dirent *de;
	int empty = 1;
	while (d && (de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			empty = 0;
	if (d)
		closedir(d);
	if (!empty) {
		close(dirfd);
		kt_repo_snapshot_release(&s);
		return kt_error_set(err, KT_EEXIST, "'%s' is not empty; restore into a new directory",
		                    target);
	}
	rctx r = { .a = a, .o = o, .res = res };
	kt_buf_init(&r.blob, KT_REPO_MAX_BLOB + 1);
	c = restore_tree(&r, dirfd, s.tree, 0, 0, err);
	kt_buf_release(&r.blob);
	fsync(dirfd);
	close(dirfd);
	kt_repo_snapshot_release(&s);
	res->duration_ms = kt_now_ms() - start;
	return c;
}
