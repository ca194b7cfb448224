/*
 * contentlist.c - content lists: the ids of a big file's blobs kept in list
 * blobs of their own instead of inline in its directory's tree blob
 * (docs/repository-format.md "Content lists", docs/architecture.md).
 *
 * Invariants:
 *   1. Writers cut a file's id list into list blobs of exactly
 *      kt_archive_list_ids() ids, the last one shorter (a backup's reader
 *      as the ids come: kt_archive_lists_push, kt_archive_lists_end; so it
 *      holds at most one list's ids of a file in memory), so an unchanged run
 *      of ids gives the same list blobs (and deduplicates) from backup to
 *      backup.  Only files of more than kt_archive_list_threshold() ids get
 *      lists; smaller ones keep "content" (and so older readers).
 *   2. List blobs are stored with pack type 1 (tree/metadata): they are
 *      read while walking trees, like trees.
 *   3. A reader takes no list blob on trust: it must be indexed as type 1,
 *      authenticate, hold 1..KT_REPO_LIST_MAX_IDS whole ids, and the lists
 *      of a node must add up to its "chunks" exactly.  Errors name the file.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "archive_int.h"
#include "blobio.h"

/* Read once per process (a reader asks after every chunk); constant after. */
static pthread_once_t knobs_once = PTHREAD_ONCE_INIT;
static size_t knob_min, knob_ids;

static void knobs_read(void)
{
	knob_min = kt_archive_knob("KT_CONTENT_LIST_MIN", KT_ARCHIVE_LIST_MIN, 1,
	                           KT_REPO_MAX_FILE_BLOBS);
	knob_ids = kt_archive_knob("KT_CONTENT_LIST_IDS", KT_ARCHIVE_LIST_IDS, 1,
	                           KT_REPO_LIST_MAX_IDS);
}

size_t kt_archive_list_threshold(void)
{
	pthread_once(&knobs_once, knobs_read);
	return knob_min;
}

size_t kt_archive_list_ids(void)
{
	pthread_once(&knobs_once, knobs_read);
	return knob_ids;
}

kt_code kt_archive_lists_make(kt_repo_tree *t, kt_list_put_fn put, void *ctx, int *made,
                              kt_error *err)
{
	size_t min = kt_archive_list_threshold(), per = kt_archive_list_ids();
	kt_buf blob;
	/* The packer swaps buffers with its callers: any of ours may come back
	 * to a reader that needs a whole blob's room. */
	kt_buf_init(&blob, KT_REPO_MAX_BLOB + 1);
	kt_code c = KT_OK;
	for (size_t i = 0; !c && i < t->n; i++) {
		kt_repo_node *nd = &t->nodes[i];
		if (nd->type != KT_NODE_FILE || nd->n_content_list || nd->n_content <= min)
			continue;
		size_t n_lists = (nd->n_content + per - 1) / per;
		uint8_t (*ids)[32] = kt_xcalloc(n_lists, 32);
		for (size_t j = 0; !c && j < n_lists; j++) {
			size_t first = j * per, n = nd->n_content - first < per ? nd->n_content - first
			                                                          : per;
			kt_buf_clear(&blob);
			if (!(c = kt_buf_add(&blob, nd->content[first], n * 32, err)))
				c = put(ctx, &blob, ids[j], err);
		}
		if (c) {
			free(ids);
			break;
		}
		nd->content_list = ids;
		nd->n_content_list = n_lists;
		nd->list_chunks = nd->n_content;
		*made = 1;
	}
	kt_buf_release(&blob);
	return c;
}

/* Store ids[0..n) as one list blob and append its id to nd's lists. */
static kt_code flush(kt_repo_node *nd, const uint8_t (*ids)[32], size_t n, kt_list_put_fn put,
                     void *ctx, kt_error *err)
{
	kt_buf blob;
	kt_buf_init(&blob, KT_REPO_MAX_BLOB + 1);
	uint8_t id[32];
	kt_code c = kt_buf_add(&blob, ids, n * 32, err);
	if (!c)
		c = put(ctx, &blob, id, err);
	kt_buf_release(&blob);
	if (c)
		return c;
	uint8_t (*v)[32] = realloc(nd->content_list, (nd->n_content_list + 1) * 32);
	if (!v)
		abort();
	nd->content_list = v;
	memcpy(nd->content_list[nd->n_content_list++], id, 32);
	nd->list_chunks += n;
	return KT_OK;
}

kt_code kt_archive_lists_push(kt_repo_node *nd, kt_list_put_fn put, void *ctx, kt_error *err)
{
	size_t per = kt_archive_list_ids();
	if (nd->n_content < per || nd->list_chunks + nd->n_content <= kt_archive_list_threshold())
		return KT_OK;
	size_t done = 0;
	kt_code c = KT_OK;
	while (!c && nd->n_content - done >= per) {
		c = flush(nd, (const uint8_t (*)[32])nd->content[done], per, put, ctx, err);
		done += per;
	}
	if (!c) {
		memmove(nd->content, nd->content[done], (nd->n_content - done) * 32);
		nd->n_content -= done;
	}
	return c;
}

kt_code kt_archive_lists_end(kt_repo_node *nd, kt_list_put_fn put, void *ctx, kt_error *err)
{
	if (!nd->n_content_list || !nd->n_content)
		return KT_OK;
	kt_code c = flush(nd, (const uint8_t (*)[32])nd->content, nd->n_content, put, ctx, err);
	if (!c)
		nd->n_content = 0;
	return c;
}

kt_code kt_archive_list_read(kt_archive *a, const kt_repo_node *nd, size_t j, kt_buf *out,
                             size_t *n_out, kt_error *err)
{
	*n_out = 0;
	char hex[65], what[300];
	kt_hex(hex, nd->content_list[j], 32);
	snprintf(what, sizeof(what), "file '%s'", nd->name);
	kt_loc l;
	if (!kt_archive_find(a, nd->content_list[j], &l) || l.type != KT_BLOB_TREE)
		return kt_error_set(err, KT_ECORRUPT, "file '%s' needs content list blob %.16s, which "
		                    "is %s (run `kontinuity repo check`)", nd->name, hex,
		                    kt_archive_find(a, nd->content_list[j], NULL) ? "a data blob"
		                                                                  : "in no index");
	kt_code c = kt_archive_read_blob(a, nd->content_list[j], out, err);
	if (c)
		return kt_error_wrap(err, "file '%s': content list blob %.16s", nd->name, hex);
	return kt_repo_list_parse((const uint8_t *)out->data, out->len, what, n_out, err);
}

kt_code kt_archive_lists_load(kt_archive *a, kt_repo_tree *t, kt_error *err)
{
	kt_buf raw;
	kt_buf_init(&raw, KT_REPO_MAX_BLOB + 1);
	kt_code c = KT_OK;
	for (size_t i = 0; !c && i < t->n; i++) {
		kt_repo_node *nd = &t->nodes[i];
		if (nd->type != KT_NODE_FILE || !nd->n_content_list || nd->n_content)
			continue;
		/* Grown as lists are read, so a hostile "chunks" costs nothing. */
		size_t have = 0, cap = 0;
		uint8_t (*ids)[32] = NULL;
		for (size_t j = 0; !c && j < nd->n_content_list; j++) {
			size_t n;
			if ((c = kt_archive_list_read(a, nd, j, &raw, &n, err)))
				break;
			if (have + n > nd->list_chunks) {
				c = kt_error_set(err, KT_ECORRUPT, "file '%s': its content lists hold more "
				                 "than its %llu chunks (run `kontinuity repo check`)", nd->name,
				                 (unsigned long long)nd->list_chunks);
				break;
			}
			if (have + n > cap) {
				cap = cap * 2 > have + n ? cap * 2 : have + n;
				if (cap > nd->list_chunks)
					cap = (size_t)nd->list_chunks;
				uint8_t (*v)[32] = realloc(ids, cap * 32);
				if (!v)
					abort();
				ids = v;
			}
			memcpy(ids[have], raw.data, n * 32);
			have += n;
		}
		if (!c && have != nd->list_chunks)
			c = kt_error_set(err, KT_ECORRUPT, "file '%s': its content lists hold %zu of its "
			                 "%llu chunks (run `kontinuity repo check`)", nd->name, have,
			                 (unsigned long long)nd->list_chunks);
		if (c) {
			free(ids);
			break;
		}
		nd->content = ids;
		nd->n_content = have;
	}
	kt_buf_release(&raw);
	return c;
}

void kt_archive_ids_open(kt_archive_ids *it, kt_archive *a, const kt_repo_node *nd,
                         kt_archive_lock_fn lock, void *lock_ctx)
{
	memset(it, 0, sizeof(*it));
	it->a = a;
	it->nd = nd;
	it->lock = lock;
	it->lock_ctx = lock_ctx;
	kt_buf_init(&it->list, KT_REPO_MAX_BLOB + 1);
}

int kt_archive_ids_next(kt_archive_ids *it, const uint8_t **id, kt_error *err)
{
	const kt_repo_node *nd = it->nd;
	if (!nd->n_content_list || nd->n_content) {   /* inline, or already expanded */
		if (it->k >= nd->n_content)
			return 0;
		*id = nd->content[it->k++];
		return 1;
	}
	while (it->k == it->n) {
		if (it->next_list == nd->n_content_list) {
			if (it->seen == nd->list_chunks)
				return 0;
			kt_error_set(err, KT_ECORRUPT, "file '%s': its content lists hold %llu of its "
			             "%llu chunks (run `kontinuity repo check`)", nd->name,
			             (unsigned long long)it->seen, (unsigned long long)nd->list_chunks);
			return -1;
		}
		if (it->lock)
			it->lock(it->lock_ctx, 1);
		kt_code c = kt_archive_list_read(it->a, nd, it->next_list++, &it->list, &it->n, err);
		if (it->lock)
			it->lock(it->lock_ctx, 0);
		if (c)
			return -1;
		it->k = 0;
		it->seen += it->n;
		if (it->seen > nd->list_chunks) {
			kt_error_set(err, KT_ECORRUPT, "file '%s': its content lists hold more than its "
			             "%llu chunks (run `kontinuity repo check`)", nd->name,
			             (unsigned long long)nd->list_chunks);
			return -1;
		}
	}
	*id = (const uint8_t *)it->list.data + 32 * it->k++;
	return 1;
}

void kt_archive_ids_close(kt_archive_ids *it)
{
	kt_buf_release(&it->list);
}
