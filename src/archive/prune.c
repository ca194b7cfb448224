/*
 * prune.c - forget (which snapshots to keep) and prune (remove the data no
 * snapshot needs), in the order docs/repository-format.md prescribes.
 *
 * forget: snapshots are grouped by host and tags (or, untagged, paths); in
 * each group a policy
 * keeps the newest N (last), and the newest snapshot of each of the N most
 * recent hours, days, ISO weeks, months and years that have one (UTC).  A
 * snapshot kept by any rule stays.  Only snapshot objects are deleted.
 *
 * prune, under the exclusive lock:
 *   1. mark every blob the snapshots' trees reach (a tree index: the index
 *      and each of its parts, read one at a time, each part once);
 *   2. per indexed pack: all used -> keep; none used -> drop; partly used
 *      (or holding blobs indexed elsewhere too) -> repack: its used sealed
 *      blobs are copied as they are (a sealed blob does not depend on where
 *      it sits) into new packs, which are uploaded;
 *   3. one new index naming every pack kept or written is uploaded;
 *   4. then the old index files are removed;
 *   5. then the dropped and repacked packs, and packs no index ever named
 *      (left by interrupted backups) are removed.
 * A crash at any step leaves a repository `check` accepts: new packs
 * without an index, or two index files listing a blob twice, or packs no
 * index names.  A deletion refused by the store (Object Lock) is reported
 * and the object left.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "archive_int.h"

/* ------------------------------------------------------------------ */
/* forget */

/* The bucket key of a snapshot time for a unit, e.g. "2026-11-27T08" for
 * hours; "" when the time does not parse. */
static void bucket(const char *iso, char unit, char out[16])
{
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	out[0] = '\0';
	if (!strptime(iso, "%Y-%m-%dT%H:%M:%S", &tm))
		return;
	switch (unit) {
	case 'h': strftime(out, 16, "%Y%m%d%H", &tm); break;
	case 'd': strftime(out, 16, "%Y%m%d", &tm); break;
	case 'w': timegm(&tm); strftime(out, 16, "%G%V", &tm); break;
	case 'm': strftime(out, 16, "%Y%m", &tm); break;
	case 'y': strftime(out, 16, "%Y", &tm); break;
	}
}

/* Same host, and the same tags when there are tags (the agent's etcd
 * backups: one file per snapshot, so their paths all differ), else the
 * same paths. */
static int same_group(const kt_archive_snap *a, const kt_archive_snap *b)
{
	if (strcmp(a->hostname, b->hostname))
		return 0;
	int tagged = a->n_tags || b->n_tags;
	size_t n = tagged ? a->n_tags : a->n_paths;
	if (n != (tagged ? b->n_tags : b->n_paths))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (strcmp(tagged ? a->tags[i] : a->paths[i], tagged ? b->tags[i] : b->paths[i]))
			return 0;
	return 1;
}

kt_code kt_archive_forget(kt_archive *a, const kt_archive_policy *p, int dry_run,
                          kt_archive_forget_fn fn, void *ctx, unsigned *n_removed,
                          kt_error *err)
{
	*n_removed = 0;
	if (!p->last && !p->hourly && !p->daily && !p->weekly && !p->monthly && !p->yearly)
		return kt_error_set(err, KT_EUSAGE, "no keep rule given: forget would remove every "
		                    "snapshot (give --keep-last 1 or more)");
	kt_archive_snap *v;
	size_t n;
	kt_code c = kt_archive_snapshots(a, &v, &n, err);
	if (c)
		return c;
	char *reason = kt_xcalloc(n ? n : 1, 64);   /* why each snapshot is kept ("" = not) */
	int *done = kt_xcalloc(n ? n : 1, sizeof(int));
	for (size_t i = 0; i < n; i++) {
		int mine = !p->host || !strcmp(v[i].hostname, p->host);
		int tagged = !p->tag;
		for (size_t t = 0; !tagged && t < v[i].n_tags; t++)
			tagged = !strcmp(v[i].tags[t], p->tag);
		if (!mine || !tagged) {
			done[i] = 1;
			snprintf(reason + i * 64, 64, "other");
		}
	}
	for (size_t g = n; g-- > 0;) {
		if (done[g])
			continue;
		/* The group of v[g], newest first. */
		unsigned kept_last = 0;
		struct { char unit; unsigned want, have; char prev[16]; const char *name; } rules[] = {
			{ 'h', p->hourly, 0, "", "hourly" }, { 'd', p->daily, 0, "", "daily" },
			{ 'w', p->weekly, 0, "", "weekly" }, { 'm', p->monthly, 0, "", "monthly" },
			{ 'y', p->yearly, 0, "", "yearly" },
		};
		for (size_t i = g + 1; i-- > 0;) {
			if (done[i] || !same_group(&v[i], &v[g]))
				continue;
			done[i] = 1;
			char *why = reason + i * 64;
			if (kept_last < p->last) {
				kept_last++;
				snprintf(why, 64, "last");
			}
			for (size_t r = 0; r < sizeof(rules) / sizeof(rules[0]); r++) {
				char key[16];
				bucket(v[i].time, rules[r].unit, key);
				if (!key[0] || !strcmp(key, rules[r].prev) || rules[r].have >= rules[r].want)
					continue;
				snprintf(rules[r].prev, sizeof(rules[r].prev), "%s", key);
				rules[r].have++;
				size_t len = strlen(why);
				snprintf(why + len, 64 - len, "%s%s", len ? "," : "", rules[r].name);
			}
		}
	}
	for (size_t i = 0; !c && i < n; i++) {
		const char *why = reason + i * 64;
		if (fn)
			fn(ctx, &v[i], why[0] ? why : NULL);
		if (why[0] || dry_run) {
			if (!why[0])
				(*n_removed)++;
			continue;
		}
		char name[128];
		snprintf(name, sizeof(name), "snapshots/%s", v[i].id);
		if (!(c = kt_store_remove(a->s, name, err)))
			(*n_removed)++;
	}
	free(reason);
	free(done);
	kt_archive_snaps_free(v, n);
	return c;
}

/* ------------------------------------------------------------------ */
/* prune */

typedef struct pctx {
	kt_archive *a;
	uint8_t *used;          /* one bit per index ordinal */
	kt_archive_prune_result *res;
} pctx;

static int is_used(const pctx *p, uint64_t ord)
{
	return p->used[ord / 8] >> (ord % 8) & 1;
}

static void set_used(pctx *p, uint64_t ord)
{
	p->used[ord / 8] |= (uint8_t)(1u << (ord % 8));
}

static kt_code mark_tree(pctx *p, const uint8_t id[32], int depth, kt_error *err);

/* The blobs the entries of one tree blob (or part) use. */
static kt_code mark_nodes(pctx *p, const kt_repo_tree *t, int depth, kt_error *err)
{
	kt_code c = KT_OK;
	for (size_t i = 0; !c && i < t->n; i++)
		for (size_t j = 0; j < t->nodes[i].n_content_list; j++) {
			kt_loc d;
			if (kt_archive_find(p->a, t->nodes[i].content_list[j], &d))
				set_used(p, d.ord);   /* found: lists_load read it */
		}
	for (size_t i = 0; !c && i < t->n; i++) {
		const kt_repo_node *nd = &t->nodes[i];
		if (nd->type == KT_NODE_DIR) {
			c = mark_tree(p, nd->subtree, depth + 1, err);
			continue;
		}
		for (size_t j = 0; j < nd->n_content; j++) {
			kt_loc d;
			if (!kt_archive_find(p->a, nd->content[j], &d)) {
				c = kt_error_set(err, KT_ECORRUPT, "a snapshot needs data that is in no index; "
				                 "run `kontinuity repo check` (prune refuses to go on)");
				break;
			}
			set_used(p, d.ord);
		}
		/* A delta keeps its base's tree (and so the whole chain) alive. */
		if (!c && nd->type == KT_NODE_FILE && nd->has_delta)
			c = mark_tree(p, nd->delta_tree, depth + 1, err);
	}
	return c;
}

static kt_code mark_tree(pctx *p, const uint8_t id[32], int depth, kt_error *err)
{
	kt_loc l;
	if (!kt_archive_find(p->a, id, &l))
		return kt_error_set(err, KT_ECORRUPT, "a snapshot needs a tree that is in no index; "
		                    "run `kontinuity repo check` (prune refuses to go on)");
	if (is_used(p, l.ord))
		return KT_OK;
	set_used(p, l.ord);
	if (depth > 256)
		return kt_error_set(err, KT_ECORRUPT, "trees nest deeper than 256 levels");
	/* A tree index: every part is a used tree blob too. */
	kt_archive_dir dir;
	kt_repo_tree t = { 0 };
	kt_code c = kt_archive_dir_open(p->a, id, 1, NULL, NULL, &dir, err);   /* lists checked */
	for (;;) {
		/* A part another snapshot's index shares is marked already. */
		const uint8_t *pid = kt_archive_dir_peek(&dir);
		kt_loc pl;
		if (!c && pid && kt_archive_find(p->a, pid, &pl)) {
			if (is_used(p, pl.ord)) {
				kt_archive_dir_skip(&dir);
				continue;
			}
			set_used(p, pl.ord);
		}
		if (c || (c = kt_archive_dir_next(&dir, &t, err)) || !t.n)
			break;
		c = mark_nodes(p, &t, depth, err);
		kt_repo_tree_release(&t);
	}
	kt_repo_tree_release(&t);
	kt_archive_dir_close(&dir);
	return c;
}

static int cmp_id(const void *x, const void *y)
{
	return memcmp(x, y, 32);
}

typedef struct pack_acc {
	uint64_t total, used;   /* sealed bytes of its blobs */
	uint32_t n, n_used;
	uint8_t type;
} pack_acc;

typedef struct repacker {
	kt_buf buf;
	kt_repo_entry *entries;
	size_t n, cap;
	kt_repo_index_pack *out;   /* packs for the new index */
	size_t *n_out, *cap_out;
} repacker;

static void out_add(kt_repo_index_pack **out, size_t *n_out, size_t *cap_out,
                    const uint8_t id[32], kt_repo_entry *entries, size_t n)
{
	if (*n_out == *cap_out) {
		*cap_out = *cap_out ? *cap_out * 2 : 64;
		*out = realloc(*out, *cap_out * sizeof(**out));
		if (!*out)
			abort();
	}
	kt_repo_index_pack *ip = &(*out)[(*n_out)++];
	memcpy(ip->pack_id, id, 32);
	ip->entries = entries;
	ip->n = n;
}

static kt_code repack_flush(pctx *p, repacker *r, kt_repo_index_pack **out, size_t *n_out,
                            size_t *cap_out, kt_error *err)
{
	if (!r->n)
		return KT_OK;
	kt_code c = kt_repo_pack_finish(&p->a->keys, &r->buf, r->entries, r->n, err);
	uint8_t id[32];
	char name[80];
	if (!c) {
		kt_archive_storage_id(r->buf.data, r->buf.len, id, NULL);
		kt_archive_pack_name(id, name);
		c = kt_store_put(p->a->s, name, r->buf.data, r->buf.len, err);
		if (c == KT_EEXIST)
			c = KT_OK;
	}
	if (c)
		return c;
	p->res->packs_written++;
	p->res->bytes_written += r->buf.len;
	out_add(out, n_out, cap_out, id, r->entries, r->n);
	r->entries = NULL;
	r->n = r->cap = 0;
	kt_buf_reset(&r->buf);
	return KT_OK;
}

/* Step 2's two passes over the index: count per pack, then place. */
typedef struct per_pack {
	pctx *p;
	pack_acc *acc;
	kt_repo_entry **per;
	uint8_t **per_used;
} per_pack;

static void count_entry(void *ctx, const kt_loc *l)
{
	per_pack *pp = ctx;
	if (l->pack < pp->p->a->n_packs)
		pp->acc[l->pack].n++;
}

static void place_entry(void *ctx, const kt_loc *l)
{
	per_pack *pp = ctx;
	if (l->pack >= pp->p->a->n_packs)
		return;
	pack_acc *pa = &pp->acc[l->pack];
	kt_repo_entry *e = &pp->per[l->pack][pa->n];
	*e = (kt_repo_entry){ l->type, l->compression, l->offset, l->length, l->raw_length, { 0 } };
	memcpy(e->id, l->id, 32);
	int used = is_used(pp->p, l->ord);
	pp->per_used[l->pack][pa->n] = (uint8_t)used;
	pa->n++;
	pa->total += l->length;
	pa->type = l->type;
	if (used) {
		pa->used += l->length;
		pa->n_used++;
	}
}

kt_code kt_archive_prune(kt_archive *a, int dry_run, kt_archive_prune_result *res,
                         kt_error *err)
{
	memset(res, 0, sizeof(*res));
	kt_code c = kt_archive_lock(a, 1, err);
	if (c)
		return c;
	pctx p = { a, kt_xcalloc((size_t)(kt_archive_index_span(a) / 8 + 1), 1), res };
	/* 1. Mark. */
	char **snaps;
	size_t n_snaps;
	if (!(c = kt_archive_list_names(a, "snapshots/", &snaps, &n_snaps, err))) {
		for (size_t i = 0; !c && i < n_snaps; i++) {
			kt_repo_snapshot s;
			if ((c = kt_archive_load_snapshot(a, snaps[i] + strlen("snapshots/"), &s, err)))
				break;
			c = mark_tree(&p, s.tree, 0, err);
			kt_repo_snapshot_release(&s);
			kt_archive_lock_tick(a);
		}
		kt_archive_names_free(snaps, n_snaps);
	}
	/* 2. Per pack: its entries (in one pass over the table) and usage. */
	pack_acc *acc = kt_xcalloc(a->n_packs ? a->n_packs : 1, sizeof(*acc));
	per_pack pp = { &p, acc, NULL, NULL };
	if (!c)
		c = kt_archive_index_each(a, count_entry, &pp, err);
	kt_repo_entry **per = kt_xcalloc(a->n_packs ? a->n_packs : 1, sizeof(*per));
	uint8_t **per_used = kt_xcalloc(a->n_packs ? a->n_packs : 1, sizeof(*per_used));
	for (size_t pk = 0; pk < a->n_packs; pk++) {
		per[pk] = kt_xcalloc(acc[pk].n ? acc[pk].n : 1, sizeof(kt_repo_entry));
		per_used[pk] = kt_xcalloc(acc[pk].n ? acc[pk].n : 1, 1);
		acc[pk].n = 0;
	}
	pp.per = per;
	pp.per_used = per_used;
	if (!c)
		c = kt_archive_index_each(a, place_entry, &pp, err);
	kt_repo_index_pack *out = NULL;
	size_t n_out = 0, cap_out = 0;
	uint8_t *drop = kt_xcalloc(a->n_packs ? a->n_packs : 1, 1);
	repacker rp[2];
	memset(rp, 0, sizeof(rp));
	for (int t = 0; t < 2; t++)
		kt_buf_init(&rp[t].buf, (size_t)a->pack_size + KT_REPO_MAX_BLOB + (4u << 20));
	kt_buf packbuf;
	kt_buf_init(&packbuf, (size_t)a->pack_size + KT_REPO_MAX_BLOB + (8u << 20));
	for (uint32_t pk = 0; !c && pk < a->n_packs; pk++) {
		pack_acc *pa = &acc[pk];
		/* In pack order; a gap means some of its blobs are indexed in
		 * another pack too (two backups stored them at once): such a pack
		 * cannot be listed whole, so it is repacked without them. */
		kt_repo_entry *e = per[pk];
		uint8_t *u = per_used[pk];
		for (size_t i = 1; i < pa->n; i++)
			for (size_t j = i; j > 0 && e[j - 1].offset > e[j].offset; j--) {
				kt_repo_entry tmp = e[j];
				uint8_t tu = u[j];
				e[j] = e[j - 1];
				u[j] = u[j - 1];
				e[j - 1] = tmp;
				u[j - 1] = tu;
			}
		int contiguous = pa->n > 0 && e[0].offset == 0;
		for (size_t i = 1; contiguous && i < pa->n; i++)
			contiguous = e[i].offset == (uint64_t)e[i - 1].offset + e[i - 1].length;
		if (pa->n_used == pa->n && contiguous) {
			out_add(&out, &n_out, &cap_out, a->packs[pk], e, pa->n);
			per[pk] = NULL;   /* owned by out now */
			res->packs_kept++;
			continue;
		}
		drop[pk] = 1;
		res->packs_removed++;
		res->bytes_freed += pa->total - pa->used;
		if (!pa->n_used)
			continue;
		/* Partly used: copy its used sealed blobs into a new pack. */
		res->packs_repacked++;
		if (dry_run)
			continue;
		char name[80];
		kt_archive_pack_name(a->packs[pk], name);
		if ((c = kt_archive_get_checked(a, name, &packbuf, err))) {
			kt_error_wrap(err, "repacking");
			break;
		}
		repacker *r = &rp[pa->type == KT_BLOB_TREE];
		for (size_t i = 0; !c && i < pa->n; i++) {
			const kt_repo_entry *l = &per[pk][i];
			if (!per_used[pk][i])
				continue;
			if ((uint64_t)l->offset + l->length > packbuf.len) {
				c = kt_error_set(err, KT_ECORRUPT, "pack %s is shorter than its index says",
				                 name);
				break;
			}
			if (r->n == r->cap) {
				r->cap = r->cap ? r->cap * 2 : 256;
				r->entries = realloc(r->entries, r->cap * sizeof(*r->entries));
				if (!r->entries)
					abort();
			}
			kt_repo_entry *e = &r->entries[r->n++];
			*e = *l;
			e->offset = (uint32_t)r->buf.len;
			c = kt_buf_add(&r->buf, packbuf.data + l->offset, l->length, err);
			if (!c && r->buf.len >= a->pack_size)
				c = repack_flush(&p, r, &out, &n_out, &cap_out, err);
		}
		kt_archive_lock_tick(a);
	}
	for (int t = 0; !c && t < 2 && !dry_run; t++)
		c = repack_flush(&p, &rp[t], &out, &n_out, &cap_out, err);
	/* Packs no index names (interrupted backups). */
	char **data;
	size_t n_data = 0;
	data = NULL;
	if (!c)
		c = kt_archive_list_names(a, "data/", &data, &n_data, err);
	uint8_t *orphan = kt_xcalloc(n_data ? n_data : 1, 1);
	size_t n_known = a->n_packs + n_out;
	uint8_t (*known)[32] = kt_xcalloc(n_known ? n_known : 1, 32);
	memcpy(known, a->packs, a->n_packs * 32);
	for (size_t j = 0; j < n_out; j++)
		memcpy(known[a->n_packs + j], out[j].pack_id, 32);
	qsort(known, n_known, 32, cmp_id);
	for (size_t i = 0; !c && i < n_data; i++) {
		const char *hex = strrchr(data[i], '/') + 1;
		uint8_t id[32];
		if (kt_repo_id_parse(hex, id))
			continue;
		if (!bsearch(id, known, n_known, 32, cmp_id)) {
			orphan[i] = 1;
			res->packs_unreferenced++;
		}
	}
	free(known);
	/* 3.-5. New index, old index gone, packs gone. */
	if (!c && !dry_run && (res->packs_removed || res->packs_unreferenced)) {
		char **old;
		size_t n_old = 0;
		c = kt_archive_list_names(a, "index/", &old, &n_old, err);
		kt_buf enc;
		kt_buf_init(&enc, KT_REPO_MAX_SEALED + KT_REPO_SEAL_OVERHEAD);
		char (*new_names)[72] = kt_xcalloc(n_out / 1000 + 1, 72);
		size_t n_new = 0;
		for (size_t start = 0; !c && start < n_out; start += 1000) {
			size_t cnt = n_out - start < 1000 ? n_out - start : 1000;
			kt_buf_reset(&enc);
			uint8_t id[32];
			char hex[65];
			if (!(c = kt_repo_index_encode(&a->keys, out + start, cnt, &enc, err))) {
				kt_archive_storage_id(enc.data, enc.len, id, hex);
				snprintf(new_names[n_new], 72, "index/%s", hex);
				c = kt_store_put(a->s, new_names[n_new++], enc.data, enc.len, err);
				if (c == KT_EEXIST)
					c = KT_OK;
			}
		}
		kt_buf_release(&enc);
		for (size_t i = 0; !c && i < n_old; i++) {
			/* An old index byte-identical to a new one has its name: keep it. */
			int is_new = 0;
			for (size_t j = 0; j < n_new; j++)
				is_new |= !strcmp(old[i], new_names[j]);
			kt_error rerr;
			if (!is_new && kt_store_remove(a->s, old[i], &rerr))
				c = kt_error_set(err, rerr.code, "cannot remove the old index %s: %s (the "
				                 "packs stay; run prune again)", old[i], rerr.msg);
		}
		free(new_names);
		if (n_old || old)
			kt_archive_names_free(old, n_old);
		for (uint32_t pk = 0; !c && pk < a->n_packs; pk++) {
			if (!drop[pk])
				continue;
			char name[80];
			kt_error rerr;
			kt_archive_pack_name(a->packs[pk], name);
			if (kt_store_remove(a->s, name, &rerr)) {
				res->remove_failed++;
				kt_log(KT_LOG_WARN, "cannot remove %s: %s", name, rerr.msg);
			}
			kt_archive_lock_tick(a);
		}
		for (size_t i = 0; !c && i < n_data; i++) {
			if (!orphan[i])
				continue;
			kt_error rerr;
			if (kt_store_remove(a->s, data[i], &rerr)) {
				res->remove_failed++;
				kt_log(KT_LOG_WARN, "cannot remove %s: %s", data[i], rerr.msg);
			}
		}
	}
	if (data)
		kt_archive_names_free(data, n_data);
	free(orphan);
	for (size_t j = 0; j < n_out; j++)
		free(out[j].entries);
	free(out);
	for (int t = 0; t < 2; t++) {
		kt_buf_release(&rp[t].buf);
		free(rp[t].entries);
	}
	kt_buf_release(&packbuf);
	for (size_t pk = 0; pk < a->n_packs; pk++) {
		free(per[pk]);
		free(per_used[pk]);
	}
	free(per);
	free(per_used);
	free(drop);
	free(acc);
	free(p.used);
	/* The table no longer matches the storage: reload it. */
	if (!c && !dry_run) {
		kt_archive_index_release(a);
		a->n_packs = 0;
		c = kt_archive_load_index(a, err);
	}
	kt_archive_unlock(a);
	return c;
}
