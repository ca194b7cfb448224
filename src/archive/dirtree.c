/*
 * dirtree.c - reading a directory's listing one tree blob at a time: a
 * plain tree blob, or a tree index whose parts are read in name order
 * (docs/repository-format.md "Tree indexes"), so no walker holds more
 * than one part of a directory; and a cursor over a listing for names
 * asked in increasing order (the backup's parent snapshot: a merge join).
 *
 * Invariants:
 *   1. Every blob read here must be indexed as a tree (pack type 1) and
 *      decode strictly; a part must hold exactly what its index entry says
 *      (kt_repo_treeidx_check_part) and must not be an index itself: any
 *      fault is KT_ECORRUPT naming the part.
 *   2. Store reads happen between lock(ctx, 1) and lock(ctx, 0) when a
 *      lock is given (restore's store mutex, the backup's packer borrow).
 */
#include <stdlib.h>
#include <string.h>

#include "archive_int.h"

/* Read and decode blob id (a directory or a part) into *t / *x. */
static kt_code load(kt_archive_dir *d, const uint8_t id[32], kt_repo_tree *t,
                    kt_repo_treeidx *x, kt_error *err)
{
	memset(t, 0, sizeof(*t));
	memset(x, 0, sizeof(*x));
	kt_buf raw;
	kt_buf_init(&raw, KT_REPO_MAX_BLOB + 1);
	if (d->lock)
		d->lock(d->lock_ctx, 1);
	kt_code c = kt_archive_read_blob(d->a, id, &raw, err);
	kt_loc l;
	if (!c && (!kt_archive_find(d->a, id, &l) || l.type != KT_BLOB_TREE))
		c = kt_error_set(err, KT_ECORRUPT, "a directory names a data blob as its tree");
	if (!c)
		c = kt_repo_tree_decode_any(raw.data, raw.len, t, x, err);
	kt_buf_release(&raw);
	if (!c && d->lists && t->n)
		c = kt_archive_lists_load(d->a, t, err);
	if (d->lock)
		d->lock(d->lock_ctx, 0);
	if (c) {
		kt_repo_tree_release(t);
		kt_repo_treeidx_release(x);
	}
	return c;
}

kt_code kt_archive_dir_open(kt_archive *a, const uint8_t id[32], int lists,
                            kt_archive_lock_fn lock, void *lock_ctx, kt_archive_dir *d,
                            kt_error *err)
{
	memset(d, 0, sizeof(*d));
	d->a = a;
	d->lists = lists;
	d->lock = lock;
	d->lock_ctx = lock_ctx;
	memcpy(d->part_id, id, 32);
	kt_code c = load(d, id, &d->first, &d->idx, err);
	if (c)
		d->next = SIZE_MAX;   /* nothing more */
	return c;
}

kt_code kt_archive_dir_next(kt_archive_dir *d, kt_repo_tree *t, kt_error *err)
{
	memset(t, 0, sizeof(*t));
	if (!d->idx.n) {   /* a plain tree: its one part, once */
		if (d->next == 0) {
			*t = d->first;
			memset(&d->first, 0, sizeof(d->first));
		}
		d->next = SIZE_MAX;
		return KT_OK;
	}
	if (d->next >= d->idx.n)
		return KT_OK;
	size_t i = d->next++;
	kt_repo_treeidx sub;
	memcpy(d->part_id, d->idx.parts[i].id, 32);
	kt_code c = load(d, d->idx.parts[i].id, t, &sub, err);
	if (!c && sub.n) {
		kt_repo_treeidx_release(&sub);
		c = kt_error_set(err, KT_ECORRUPT, "tree index: part '%s' is itself a tree index",
		                 d->idx.parts[i].first);
	}
	if (!c)
		c = kt_repo_treeidx_check_part(&d->idx, i, t, err);
	if (c) {
		kt_repo_tree_release(t);
		d->next = SIZE_MAX;
	}
	return c;
}

void kt_archive_dir_seek(kt_archive_dir *d, const char *name)
{
	if (!d->idx.n || d->next >= d->idx.n)
		return;
	while (d->next + 1 < d->idx.n && strcmp(d->idx.parts[d->next + 1].first, name) <= 0)
		d->next++;
}

const uint8_t *kt_archive_dir_peek(const kt_archive_dir *d)
{
	return d->idx.n && d->next < d->idx.n ? d->idx.parts[d->next].id : NULL;
}

void kt_archive_dir_skip(kt_archive_dir *d)
{
	if (d->idx.n && d->next < d->idx.n)
		d->next++;
}

void kt_archive_dir_close(kt_archive_dir *d)
{
	kt_repo_tree_release(&d->first);
	kt_repo_treeidx_release(&d->idx);
	memset(d, 0, sizeof(*d));
}

kt_code kt_archive_dir_load_all(kt_archive *a, const uint8_t id[32], kt_repo_tree *t,
                                kt_error *err)
{
	kt_archive_dir d;
	memset(t, 0, sizeof(*t));
	kt_code c = kt_archive_dir_open(a, id, 1, NULL, NULL, &d, err);
	size_t cap = 0;
	for (;;) {
		kt_repo_tree p;
		if (c || (c = kt_archive_dir_next(&d, &p, err)) || !p.n)
			break;
		if (!t->n) {
			*t = p;
			cap = p.n;
			continue;
		}
		if (t->n + p.n > cap) {
			cap = (t->n + p.n) * 2;
			t->nodes = realloc(t->nodes, cap * sizeof(*t->nodes));
			if (!t->nodes)
				abort();
		}
		memcpy(t->nodes + t->n, p.nodes, p.n * sizeof(*p.nodes));
		t->n += p.n;
		free(p.nodes);
	}
	kt_archive_dir_close(&d);
	if (c)
		kt_repo_tree_release(t);
	return c;
}

kt_code kt_archive_dir_find(kt_archive *a, const uint8_t id[32], const char *name, int lists,
                            kt_repo_tree *t, const kt_repo_node **out, kt_error *err)
{
	*out = NULL;
	memset(t, 0, sizeof(*t));
	kt_archive_dir d;
	kt_code c = kt_archive_dir_open(a, id, lists, NULL, NULL, &d, err);
	if (!c) {
		kt_archive_dir_seek(&d, name);
		c = kt_archive_dir_next(&d, t, err);
	}
	kt_archive_dir_close(&d);
	for (size_t lo = 0, hi = c ? 0 : t->n; lo < hi;) {
		size_t mid = lo + (hi - lo) / 2;
		int k = strcmp(t->nodes[mid].name, name);
		if (!k) {
			*out = &t->nodes[mid];
			break;
		}
		if (k < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return c;
}

/* ---- a cursor for names asked in increasing order ---- */

void kt_archive_cursor_open(kt_archive_cursor *cu, kt_archive *a, const uint8_t *id,
                            kt_archive_lock_fn lock, void *lock_ctx)
{
	memset(cu, 0, sizeof(*cu));
	if (!id) {
		cu->end = 1;
		return;
	}
	kt_error err;
	if (kt_archive_dir_open(a, id, 0, lock, lock_ctx, &cu->d, &err)) {
		kt_log(KT_LOG_WARN, "cannot read a tree of the parent snapshot (%s); its files are "
		       "read again", err.msg);
		cu->end = 1;
	}
}

const kt_repo_node *kt_archive_cursor_find(kt_archive_cursor *cu, const char *name)
{
	for (;;) {
		if (cu->end)
			return NULL;
		while (cu->i < cu->t.n && strcmp(cu->t.nodes[cu->i].name, name) < 0)
			cu->i++;
		if (cu->i < cu->t.n) {
			if (strcmp(cu->t.nodes[cu->i].name, name))
				return NULL;
			return &cu->t.nodes[cu->i];
		}
		/* This part is behind name: the part that may hold it. */
		kt_repo_tree_release(&cu->t);
		cu->i = 0;
		kt_archive_dir_seek(&cu->d, name);
		kt_error err;
		if (kt_archive_dir_next(&cu->d, &cu->t, &err)) {
			kt_log(KT_LOG_WARN, "cannot read a tree of the parent snapshot (%s); its files "
			       "are read again", err.msg);
			cu->end = 1;
		} else if (!cu->t.n) {
			cu->end = 1;
		}
	}
}

void kt_archive_cursor_close(kt_archive_cursor *cu)
{
	kt_repo_tree_release(&cu->t);
	kt_archive_dir_close(&cu->d);
	memset(cu, 0, sizeof(*cu));
}
