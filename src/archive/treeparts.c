/*
 * treeparts.c - writing a directory's listing: one tree blob when it is
 * small, else a tree index over parts cut at content-defined places
 * (docs/repository-format.md "Tree indexes", docs/architecture.md).
 *
 * Invariants:
 *   1. Entries come in strictly increasing name order and are held only
 *      until their part is stored: before the first part is stored, up to
 *      twice one blob's limits (what fit at the last cut, plus a part),
 *      then one part.
 *   2. Cuts depend only on the entries: after an entry whose keyed name
 *      hash (HMAC with the repository's id key, low bits) hits the mask
 *      once the part has PART_MIN entries, or when the part reached the
 *      node or the byte limit.  So inserting one name re-stores the part
 *      it falls in (and rarely the next), not every part after it.
 *   3. A directory within both limits encodes exactly as before tree
 *      indexes existed (the same blob id: dedup across versions).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "archive_int.h"
#include "blobio.h"

static pthread_once_t knobs_once = PTHREAD_ONCE_INIT;
static size_t max_nodes, max_bytes, min_nodes, mask;

static void knobs_read(void)
{
	max_nodes = kt_archive_knob("KT_TREE_PART_NODES", KT_ARCHIVE_PART_NODES, 16,
	                            KT_ARCHIVE_PART_NODES);
	max_bytes = kt_archive_knob("KT_TREE_PART_BYTES", KT_ARCHIVE_PART_BYTES, 4096,
	                            KT_ARCHIVE_PART_BYTES);
	/* ~1/4 of the limit on average (1,024 of 4,096), none shorter than 1/64. */
	size_t avg = 1;
	while (avg * 2 <= max_nodes / 4)
		avg *= 2;
	mask = avg - 1;
	min_nodes = max_nodes / 64 ? max_nodes / 64 : 1;
}

/* About the bytes nd takes in a tree blob's JSON (a bound, deterministic:
 * from the node alone). */
static size_t node_bytes(const kt_repo_node *nd)
{
	size_t ids = nd->n_content_list ? nd->n_content_list : nd->n_content;
	return 256 + 2 * strlen(nd->name) + (nd->target ? 2 * strlen(nd->target) : 0) + 67 * ids +
	       (nd->has_delta ? 2 * strlen(nd->delta_name ? nd->delta_name : "") + 160 : 0);
}

void kt_treeparts_init(kt_treeparts *tp, kt_blobio *io, kt_tree_put_fn put_tree,
                       kt_list_put_fn put_blob, void *ctx)
{
	pthread_once(&knobs_once, knobs_read);
	memset(tp, 0, sizeof(*tp));
	tp->io = io;
	tp->put_tree = put_tree;
	tp->put_blob = put_blob;
	tp->ctx = ctx;
}

/* Store pend's first k entries as a part and drop them. */
static kt_code store_part(kt_treeparts *tp, size_t k, kt_error *err)
{
	kt_repo_tree part = { tp->pend.nodes, k };
	size_t bytes = 0;   /* before put_tree, which may give nodes content lists */
	for (size_t i = 0; i < k; i++)
		bytes += node_bytes(&tp->pend.nodes[i]);
	uint8_t id[32];
	kt_code c = tp->put_tree(tp->ctx, &part, id, err);
	if (c)
		return c;
	if (tp->idx.n == tp->cap_idx) {
		tp->cap_idx = tp->cap_idx ? tp->cap_idx * 2 : 16;
		tp->idx.parts = realloc(tp->idx.parts, tp->cap_idx * sizeof(*tp->idx.parts));
		if (!tp->idx.parts)
			abort();
	}
	kt_repo_tree_part *p = &tp->idx.parts[tp->idx.n++];
	p->first = kt_xstrdup(part.nodes[0].name);
	p->count = k;
	memcpy(p->id, id, 32);
	tp->pend_bytes -= bytes;
	for (size_t i = 0; i < k; i++)
		kt_repo_node_release(&tp->pend.nodes[i]);
	memmove(tp->pend.nodes, tp->pend.nodes + k, (tp->pend.n - k) * sizeof(*tp->pend.nodes));
	tp->pend.n -= k;
	for (size_t i = 0; i < tp->n_cuts; i++)
		tp->cuts[i] -= k;
	return KT_OK;
}

/* Too big for one blob: store every part cut so far. */
static kt_code go_split(kt_treeparts *tp, kt_error *err)
{
	tp->split = 1;
	kt_code c = KT_OK;
	/* store_part shifts the later cuts down by what it stored. */
	for (size_t i = 0; !c && i < tp->n_cuts; i++)
		c = store_part(tp, tp->cuts[i], err);
	tp->n_cuts = 0;
	return c;
}

kt_code kt_treeparts_add(kt_treeparts *tp, kt_repo_node *nd, kt_error *err)
{
	if (tp->last && strcmp(tp->last, nd->name) >= 0) {
		kt_code c = kt_error_set(err, KT_EUSAGE, "two entries named '%s' in one directory "
		                         "(or not in name order)", nd->name);
		kt_repo_node_release(nd);
		return c;
	}
	free(tp->last);
	tp->last = kt_xstrdup(nd->name);
	if (tp->pend.n == tp->cap) {
		tp->cap = tp->cap ? tp->cap * 2 : 16;
		tp->pend.nodes = realloc(tp->pend.nodes, tp->cap * sizeof(*tp->pend.nodes));
		if (!tp->pend.nodes)
			abort();
	}
	size_t bytes = node_bytes(nd);
	tp->pend.nodes[tp->pend.n++] = *nd;
	memset(nd, 0, sizeof(*nd));
	tp->entries++;
	tp->pend_bytes += bytes;
	tp->since_cut++;
	tp->since_bytes += bytes;
	const char *name = tp->pend.nodes[tp->pend.n - 1].name;
	uint8_t h[32];
	kt_blobio_id(tp->io, name, strlen(name), h);
	size_t low = (size_t)h[0] | (size_t)h[1] << 8 | (size_t)h[2] << 16;
	int cut = (tp->since_cut >= min_nodes && (low & mask) == 0) ||
	          tp->since_cut >= max_nodes || tp->since_bytes >= max_bytes;
	if (!cut)
		return KT_OK;
	tp->since_cut = 0;
	tp->since_bytes = 0;
	if (tp->split)
		return store_part(tp, tp->pend.n, err);
	if (tp->n_cuts == tp->cap_cuts) {
		tp->cap_cuts = tp->cap_cuts ? tp->cap_cuts * 2 : 16;
		tp->cuts = realloc(tp->cuts, tp->cap_cuts * sizeof(*tp->cuts));
		if (!tp->cuts)
			abort();
	}
	tp->cuts[tp->n_cuts++] = tp->pend.n;
	/* Past one blob's limits: a tree index, and the parts cut so far can go. */
	if (tp->pend.n > max_nodes || tp->pend_bytes > max_bytes)
		return go_split(tp, err);
	return KT_OK;
}

kt_code kt_treeparts_end(kt_treeparts *tp, uint8_t id_out[32], int *indexed, kt_error *err)
{
	*indexed = 0;
	kt_code c = KT_OK;
	if (!tp->split && tp->pend.n <= max_nodes && tp->pend_bytes <= max_bytes) {
		c = tp->put_tree(tp->ctx, &tp->pend, id_out, err);
		return c;   /* kt_treeparts_release frees the nodes */
	}
	if (!tp->split)
		c = go_split(tp, err);
	if (!c && tp->pend.n)
		c = store_part(tp, tp->pend.n, err);
	if (c)
		return c;
	if (tp->idx.n == 1) {   /* one part that ended past the byte limit on its last entry */
		memcpy(id_out, tp->idx.parts[0].id, 32);   /* it is the whole directory's tree */
		return KT_OK;
	}
	kt_buf enc;
	kt_buf_init(&enc, KT_REPO_MAX_BLOB);
	c = kt_repo_treeidx_encode(&tp->idx, &enc, err);
	if (!c)
		c = tp->put_blob(tp->ctx, &enc, id_out, err);
	kt_buf_release(&enc);
	if (!c)
		*indexed = 1;
	return c;
}

void kt_treeparts_release(kt_treeparts *tp)
{
	for (size_t i = 0; i < tp->pend.n; i++)
		kt_repo_node_release(&tp->pend.nodes[i]);
	free(tp->pend.nodes);
	free(tp->cuts);
	free(tp->last);
	kt_repo_treeidx_release(&tp->idx);
	memset(tp, 0, sizeof(*tp));
}
