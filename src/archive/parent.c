/*
 * parent.c - the parent snapshot of a backup: finding it (the newest of the
 * same host and the same set of absolute paths, or the one named), and
 * deciding whether a file is
 * unchanged since it and taking its node over (never a delta node)
 * (docs/repository-format.md, "Trees and snapshots").  Its trees are read
 * through cursors (dirtree.c), one part of a directory at a time.
 * A parent that cannot be read only costs reading the files again.
 */
#include <stdlib.h>
#include <string.h>

#include "parent.h"

void kt_archive_time_text(const struct timespec *ts, char out[40])
{
	struct tm tm;
	gmtime_r(&ts->tv_sec, &tm);
	char base[24];
	strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, 40, "%.19s.%09ldZ", base, (long)(ts->tv_nsec % 1000000000L));
}

static int by_str(const void *x, const void *y)
{
	return strcmp(*(char *const *)x, *(char *const *)y);
}

size_t kt_archive_paths_canon(char **v, size_t n)
{
	qsort(v, n, sizeof(*v), by_str);
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (k && !strcmp(v[k - 1], v[i])) {
			free(v[i]);
			continue;
		}
		v[k++] = v[i];
	}
	return k;
}

kt_code kt_archive_find_parent(kt_archive *a, const char *spec, int force, const char *host,
                               char *const *paths, size_t n_paths, char id[65],
                               uint8_t root[32], kt_error *err)
{
	id[0] = '\0';
	if (force)
		return KT_OK;
	kt_code c = KT_OK;
	if (spec) {
		c = kt_archive_find_snapshot(a, spec, id, err);
		if (c)
			return kt_error_wrap(err, "parent snapshot");
	} else {
		kt_archive_snap *v;
		size_t n;
		if ((c = kt_archive_snapshots(a, &v, &n, err)))
			return c;
		for (size_t i = n; i-- > 0 && !id[0];) {   /* newest first */
			if (strcmp(v[i].hostname, host) || v[i].n_paths != n_paths)
				continue;
			qsort(v[i].paths, v[i].n_paths, sizeof(char *), by_str);
			size_t j = 0;
			while (j < n_paths && !strcmp(v[i].paths[j], paths[j]))
				j++;
			if (j == n_paths)
				memcpy(id, v[i].id, 65);
		}
		kt_archive_snaps_free(v, n);
		if (!id[0])
			return KT_OK;
	}
	kt_repo_snapshot snap;
	if ((c = kt_archive_load_snapshot(a, id, &snap, err)))
		return c;
	memcpy(root, snap.tree, 32);
	kt_repo_snapshot_release(&snap);
	return KT_OK;
}

int kt_archive_unchanged(const kt_repo_node *p, const struct stat *st)
{
	if (!p || p->type != KT_NODE_FILE || !S_ISREG(st->st_mode) ||
	    p->size != (uint64_t)st->st_size || !p->inode || p->inode != (uint64_t)st->st_ino ||
	    p->device != (uint64_t)st->st_dev || !p->ctime[0])
		return 0;
	char t[40];
	kt_archive_time_text(&st->st_ctim, t);
	if (strcmp(p->ctime, t))
		return 0;
	kt_archive_time_text(&st->st_mtim, t);
	return !strcmp(p->mtime, t);
}

int kt_archive_reuse_node(kt_archive *a, const kt_repo_node *p, const struct stat *st,
                          kt_repo_node *nd)
{
	/* A delta node's content is a frame against its base, not the file's
	 * bytes: such a file is read again. */
	if (!kt_archive_unchanged(p, st) || p->has_delta)
		return 0;
	for (size_t i = 0; i < p->n_content; i++)
		if (!kt_archive_find(a, p->content[i], NULL))
			return 0;
	/* A content list is taken over as it is (its list blobs, not the ids
	 * they hold, are checked: the parent snapshot's blobs were all indexed
	 * before it was written, and prune keeps them while it exists). */
	for (size_t i = 0; i < p->n_content_list; i++)
		if (!kt_archive_find(a, p->content_list[i], NULL))
			return 0;
	nd->type = KT_NODE_FILE;
	nd->size = p->size;
	nd->n_content = p->n_content;
	nd->content = kt_xcalloc(p->n_content ? p->n_content : 1, 32);
	memcpy(nd->content, p->content, p->n_content * 32);
	if (p->has_sha256) {
		nd->has_sha256 = 1;
		memcpy(nd->sha256, p->sha256, 32);
	}
	if (p->n_content_list) {
		nd->n_content_list = p->n_content_list;
		nd->list_chunks = p->list_chunks;
		nd->content_list = kt_xcalloc(p->n_content_list, 32);
		memcpy(nd->content_list, p->content_list, p->n_content_list * 32);
	}
	return 1;
}
