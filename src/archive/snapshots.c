/*
 * snapshots.c - the snapshot manifests: load one, list them all (oldest
 * first), resolve "latest" or an id prefix; remove one
 * (restorepoint delete; policy-wide removal is forget in prune.c).
 */
#include <stdlib.h>
#include <string.h>

#include "archive_int.h"

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
		d->version = s.version;
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

kt_code kt_archive_forget_snapshot(kt_archive *a, const char *id, kt_error *err)
{
	char name[128];
	uint64_t size;
	if (strlen(id) != 64 || strspn(id, "0123456789abcdef") != 64)
		return kt_error_set(err, KT_EUSAGE, "'%s' is not a full snapshot id", id);
	snprintf(name, sizeof(name), "snapshots/%s", id);
	kt_code c = kt_store_stat(a->s, name, &size, err);
	if (c == KT_ENOTFOUND)
		return kt_error_set(err, KT_ENOTFOUND, "no snapshot %.8s in the repository", id);
	return c ? c : kt_store_remove(a->s, name, err);
}

kt_code kt_archive_subtree(kt_archive *a, const uint8_t root[32], const char *path,
                           uint8_t out[32], uint32_t *mode, char mtime[40], kt_error *err)
{
	memcpy(out, root, 32);
	*mode = 0755;
	mtime[0] = '\0';
	kt_code c = KT_OK;
	int depth = 0;
	for (const char *p = path; !c && *p;) {
		while (*p == '/')
			p++;
		size_t n = strcspn(p, "/");
		if (!n)
			break;
		if (++depth > 256) {
			c = kt_error_set(err, KT_ELIMIT, "path '%s' nests deeper than 256 levels", path);
			break;
		}
		/* The one part that may hold the name (a tree index's "first"). */
		char name[KT_REPO_MAX_NAME + 1];
		snprintf(name, sizeof(name), "%.*s", (int)(n > KT_REPO_MAX_NAME ? KT_REPO_MAX_NAME : n),
		         p);
		kt_repo_tree t = { 0 };
		const kt_repo_node *nd = NULL;
		c = kt_archive_dir_find(a, out, name, 0, &t, &nd, err);
		if (nd && strlen(nd->name) != n)
			nd = NULL;
		if (!c && (!nd || nd->type != KT_NODE_DIR))
			c = kt_error_set(err, KT_ENOTFOUND, "'%s' is not a directory in the snapshot "
			                 "(see what it holds with 'kontinuity repo ls')", path);
		if (!c) {
			memcpy(out, nd->subtree, 32);
			*mode = nd->mode;
			snprintf(mtime, 40, "%s", nd->mtime);
		}
		kt_repo_tree_release(&t);
		p += n;
	}
	return c;
}
