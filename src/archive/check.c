/*
 * check.c - is the repository whole?  And its numbers (stats).
 *
 * Structure: every pack the index names exists and is at least as long as
 * its entries; every snapshot opens, its trees decode (depth first, each
 * tree once; a tree index part by part, each part checked against its
 * entry) and every blob they name is in the index.  With read_data
 * every pack is downloaded: its bytes must hash to its name, its header
 * must open and agree with the index, and every blob must authenticate,
 * decompress to its length and hash to its id.  Problems are reported one
 * by one (naming pack, blob or snapshot) and counted; the check goes on
 * after each, so one run lists them all.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "archive_int.h"
#include "delta.h"

typedef struct cctx {
	kt_archive *a;
	kt_archive_problem_fn fn;
	void *ctx;
	kt_archive_check_result *res;
	uint8_t *seen;     /* trees already walked: one bit per index ordinal */
	int read_data;     /* decode every delta file too */
	kt_delta_cache *dc;   /* the last one decoded */
} cctx;

static void problem(cctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void problem(cctx *c, const char *fmt, ...)
{
	char text[768];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	c->res->problems++;
	if (c->fn)
		c->fn(c->ctx, text);
}

static void walk_tree(cctx *c, const uint8_t id[32], const char *snap, int depth);

/* The entries of one tree blob (or one part of a tree index) of dir id.
 * A file's content lists are read a list blob at a time (each checked:
 * indexed as a tree-type blob, authentic, whole ids, the counts add up),
 * and every id they hold looked up. */
static void walk_nodes(cctx *c, kt_repo_tree *t, const uint8_t id[32], const char *hex,
                       const char *snap, int depth)
{
	kt_error err;
	for (size_t i = 0; i < t->n; i++) {
		kt_repo_node *nd = &t->nodes[i];
		if (nd->type == KT_NODE_DIR) {
			walk_tree(c, nd->subtree, snap, depth + 1);
			continue;
		}
		int missing = 0, more = 0, bad = 0;
		c->res->lists += nd->n_content_list;
		/* delta.c takes a delta frame's ids as one array: those are read
		 * whole first (and the loop below walks them without reading the
		 * lists again); other files' a list blob at a time. */
		kt_repo_tree one = { nd, 1 };
		if (nd->type == KT_NODE_FILE && nd->has_delta && kt_archive_lists_load(c->a, &one, &err))
			bad = 1;
		kt_archive_ids ids;
		kt_archive_ids_open(&ids, c->a, nd, NULL, NULL);
		const uint8_t *bid;
		while (!bad && (more = kt_archive_ids_next(&ids, &bid, &err)) > 0) {
			kt_loc dl, *d = kt_archive_find(c->a, bid, &dl) ? &dl : NULL;
			if (!d || d->type != KT_BLOB_DATA) {
				char bh[65];
				kt_hex(bh, bid, 32);
				problem(c, "snapshot %.8s: file '%s' needs data blob %.16s, which is %s", snap,
				        nd->name, bh, d ? "a tree" : "in no index");
				missing = 1;
			}
		}
		kt_archive_ids_close(&ids);
		if (bad || more < 0) {
			problem(c, "snapshot %.8s: tree %.16s: %s", snap, hex, err.msg);
			missing = 1;
		}
		if (nd->type == KT_NODE_FILE && nd->has_delta) {
			/* Its base's tree keeps the chain alive: walk it like a subtree. */
			walk_tree(c, nd->delta_tree, snap, depth + 1);
			if (kt_delta_check_base(c->a, nd, &err))
				problem(c, "snapshot %.8s: delta file '%s': %s", snap, nd->name, err.msg);
			else if (c->read_data && !missing && kt_delta_verify(c->a, nd, id, c->dc, &err))
				problem(c, "snapshot %.8s: delta file '%s' (tree %.16s): %s", snap, nd->name,
				        hex, err.msg);
		}
	}
}

static void walk_tree(cctx *c, const uint8_t id[32], const char *snap, int depth)
{
	char hex[65];
	kt_hex(hex, id, 32);
	kt_loc loc, *l = &loc;
	if (!kt_archive_find(c->a, id, &loc)) {
		problem(c, "snapshot %.8s: tree %.16s is in no index", snap, hex);
		return;
	}
	uint64_t slot = l->ord;
	if (c->seen[slot / 8] & (1u << (slot % 8)))
		return;
	c->seen[slot / 8] |= (uint8_t)(1u << (slot % 8));
	if (depth > 256) {
		problem(c, "snapshot %.8s: trees nest deeper than 256 levels", snap);
		return;
	}
	kt_error err;
	kt_repo_tree t = { 0 };
	kt_archive_dir dir;
	c->res->trees++;
	if (l->type != KT_BLOB_TREE) {
		problem(c, "snapshot %.8s: %.16s is named as a tree but is a data blob", snap, hex);
		return;
	}
	if (kt_archive_dir_open(c->a, id, 0, NULL, NULL, &dir, &err))
		problem(c, "snapshot %.8s: tree %.16s: %s", snap, hex, err.msg);
	/* A tree index: its parts one by one (each a tree blob of its own). */
	for (;;) {
		kt_repo_tree_release(&t);
		/* A part another index shares (one changed name elsewhere in the
		 * directory) was walked with it: the same blob, the same entries. */
		const uint8_t *pid = kt_archive_dir_peek(&dir);
		kt_loc pl;
		if (pid && kt_archive_find(c->a, pid, &pl)) {
			if (c->seen[pl.ord / 8] & (1u << (pl.ord % 8))) {
				kt_archive_dir_skip(&dir);
				continue;
			}
			c->seen[pl.ord / 8] |= (uint8_t)(1u << (pl.ord % 8));
		}
		if (kt_archive_dir_next(&dir, &t, &err)) {
			char ph[65];
			kt_hex(ph, dir.part_id, 32);
			problem(c, "snapshot %.8s: tree %.16s, part %.16s: %s", snap, hex, ph, err.msg);
			break;
		}
		if (!t.n)
			break;
		if (dir.idx.n)
			c->res->trees++;
		walk_nodes(c, &t, id, hex, snap, depth);
	}
	kt_repo_tree_release(&t);
	kt_archive_dir_close(&dir);
}

typedef struct need_acc {
	kt_archive *a;
	uint64_t *need;     /* per pack number: the end of its last entry */
	kt_archive_check_result *res;
} need_acc;

static void add_need(void *ctx, const kt_loc *l)
{
	need_acc *na = ctx;
	if (l->pack >= na->a->n_packs)
		return;
	uint64_t end = (uint64_t)l->offset + l->length;
	if (end > na->need[l->pack])
		na->need[l->pack] = end;
	na->res->blobs++;
}

typedef struct pack_sizes {
	uint64_t *size;     /* per pack number; UINT64_MAX = not listed */
} pack_sizes;

static kt_code read_pack(cctx *c, uint32_t no, uint64_t size, kt_buf *buf)
{
	char name[80], hex[65];
	kt_archive_pack_name(c->a->packs[no], name);
	kt_hex(hex, c->a->packs[no], 32);
	kt_error err;
	if (kt_archive_get_checked(c->a, name, buf, &err)) {
		problem(c, "pack %.16s: %s", hex, err.msg);
		return KT_ECORRUPT;
	}
	c->res->bytes_read += buf->len;
	kt_repo_entry *e;
	size_t n, need;
	if (kt_repo_pack_header_parse(&c->a->keys, (const uint8_t *)buf->data, buf->len, size, &e,
	                              &n, &need, &err)) {
		problem(c, "pack %.16s: %s", hex, err.msg);
		return KT_ECORRUPT;
	}
	kt_buf blob;
	kt_buf_init(&blob, KT_REPO_MAX_BLOB + 1);
	for (size_t i = 0; i < n; i++) {
		char bh[65];
		kt_hex(bh, e[i].id, 32);
		kt_loc loc, *l = kt_archive_find(c->a, e[i].id, &loc) ? &loc : NULL;
		if (!l || (l->pack == no && (l->offset != e[i].offset || l->length != e[i].length)))
			problem(c, "pack %.16s: blob %.16s %s", hex, bh,
			        l ? "sits elsewhere than the index says" : "is in no index");
		kt_buf_reset(&blob);
		if (kt_repo_blob_open(&c->a->keys, &e[i], (const uint8_t *)buf->data + e[i].offset,
		                      &blob, &err))
			problem(c, "pack %.16s: blob %.16s at offset %u: %s", hex, bh, e[i].offset,
			        err.msg);
	}
	kt_buf_release(&blob);
	free(e);
	return KT_OK;
}

kt_code kt_archive_check(kt_archive *a, int read_data, kt_archive_problem_fn fn, void *ctx,
                         kt_archive_check_result *res, kt_error *err)
{
	memset(res, 0, sizeof(*res));
	cctx c = { a, fn, ctx, res, kt_xcalloc((size_t)(kt_archive_index_span(a) / 8 + 1), 1),
	           read_data, read_data ? kt_delta_cache_new() : NULL };
	/* 1. Every pack the index names, and how long its entries need it. */
	need_acc na = { a, kt_xcalloc(a->n_packs ? a->n_packs : 1, sizeof(uint64_t)), res };
	uint64_t *need = na.need;
	kt_code rc = kt_archive_index_each(a, add_need, &na, err);
	uint64_t *size = kt_xcalloc(a->n_packs ? a->n_packs : 1, sizeof(uint64_t));
	for (size_t p = 0; !rc && p < a->n_packs; p++) {
		char name[80], hex[65];
		kt_archive_pack_name(a->packs[p], name);
		kt_hex(hex, a->packs[p], 32);
		kt_error e;
		res->packs++;
		if (kt_store_stat(a->s, name, &size[p], &e)) {
			problem(&c, "pack %.16s: %s", hex, e.msg);
			size[p] = 0;
		} else if (size[p] < need[p] + 4) {
			problem(&c, "pack %.16s has %llu bytes, its blobs need %llu", hex,
			        (unsigned long long)size[p], (unsigned long long)need[p] + 4);
		}
	}
	/* 2. Snapshots and their trees. */
	char **names;
	size_t n;
	if (!rc && (rc = kt_archive_list_names(a, "snapshots/", &names, &n, err)) == KT_OK) {
		for (size_t i = 0; i < n; i++) {
			const char *id = names[i] + strlen("snapshots/");
			kt_repo_snapshot s;
			kt_error e;
			res->snapshots++;
			if (kt_archive_load_snapshot(a, id, &s, &e)) {
				problem(&c, "snapshot %.8s: %s", id, e.msg);
				continue;
			}
			walk_tree(&c, s.tree, id, 0);
			kt_repo_snapshot_release(&s);
		}
		kt_archive_names_free(names, n);
	}
	/* 3. Every byte. */
	if (!rc && read_data) {
		kt_buf buf;
		kt_buf_init(&buf, (size_t)a->pack_size + KT_REPO_MAX_BLOB + (8u << 20));
		for (uint32_t p = 0; p < a->n_packs; p++)
			if (size[p])
				read_pack(&c, p, size[p], &buf);
		kt_buf_release(&buf);
	}
	free(need);
	free(size);
	free(c.seen);
	kt_delta_cache_free(c.dc);
	if (!rc && res->problems)
		rc = kt_error_set(err, KT_ECORRUPT, "the repository has %llu problem%s (listed above)",
		                  (unsigned long long)res->problems, res->problems == 1 ? "" : "s");
	return rc;
}

typedef struct size_acc {
	uint64_t bytes, snapshots;
} size_acc;

static kt_code add_size(void *ctx, const kt_store_entry *e, kt_error *err)
{
	(void)err;
	size_acc *acc = ctx;
	acc->bytes += e->size;
	if (!strncmp(e->name, "snapshots/", 10))
		acc->snapshots++;
	return KT_OK;
}

static void add_blob_stat(void *ctx, const kt_loc *l)
{
	kt_archive_stats *out = ctx;
	out->blobs++;
	out->raw_bytes += l->raw_length;
}

kt_code kt_archive_stats_get(kt_archive *a, kt_archive_stats *out, kt_error *err)
{
	memset(out, 0, sizeof(*out));
	kt_code c = kt_archive_index_each(a, add_blob_stat, out, err);
	out->packs = a->n_packs;
	size_acc acc = { 0, 0 };
	if (!c)
		c = kt_store_list(a->s, NULL, add_size, &acc, err);
	out->stored_bytes = acc.bytes;
	out->snapshots = acc.snapshots;
	return c;
}
