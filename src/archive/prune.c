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
 *   3. a new index naming every pack kept or written is uploaded, file by
 *      file as it grows (steps 2 and 3 hold the entries of a window of
 *      packs at a time, so memory does not grow with the repository);
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
#include "packer.h"

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
	for (size_t i = 0; !c && i < t->n; i++) {
		const kt_repo_node *nd = &t->nodes[i];
		if (nd->type == KT_NODE_DIR) {
			c = mark_tree(p, nd->subtree, depth + 1, err);
			continue;
		}
		for (size_t j = 0; j < nd->n_content_list; j++) {
			kt_loc d;
			if (kt_archive_find(p->a, nd->content_list[j], &d))
				set_used(p, d.ord);   /* (the ids loop reads and checks it) */
		}
		/* Its ids a list blob at a time: a big file's are never held whole. */
		kt_archive_ids ids;
		kt_archive_ids_open(&ids, p->a, nd, NULL, NULL);
		const uint8_t *id;
		int more;
		while ((more = kt_archive_ids_next(&ids, &id, err)) > 0) {
			kt_loc d;
			if (!kt_archive_find(p->a, id, &d)) {
				c = kt_error_set(err, KT_ECORRUPT, "a snapshot needs data that is in no index; "
				                 "run `kontinuity repo check` (prune refuses to go on)");
				break;
			}
			set_used(p, d.ord);
		}
		kt_archive_ids_close(&ids);
		if (!c && more < 0)
			c = KT_ECORRUPT;
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
	kt_code c = kt_archive_dir_open(p->a, id, 0, NULL, NULL, &dir, err);
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

/* Step 2's per-pack account, from one pass over the index. */
typedef struct pack_acc {
	uint64_t total, used;   /* sealed bytes of its blobs, and of the used ones */
	uint64_t end;           /* the end of its last blob */
	uint32_t n, n_used, placed, first;   /* first: the lowest offset */
	uint8_t type, fate;
} pack_acc;

enum { KEEP, DROP, REPACK };

/* Entries of the packs of one window (see kt_archive_prune), with a used
 * flag each, sorted by offset before use. */
typedef struct placed {
	kt_repo_entry e;
	uint8_t used;
} placed;

/* The new index, written as it grows: an index file per 1,000 packs or
 * 65,536 blobs (as the packer cuts them), its names kept so that step 4
 * spares an old file byte-identical to a new one. */
typedef struct ixw {
	kt_archive *a;
	kt_repo_index_pack *v;
	size_t n, cap, entries;
	char (*names)[72];
	size_t n_names, cap_names;
	kt_buf enc;
} ixw;

static kt_code ixw_flush(ixw *w, kt_error *err)
{
	if (!w->n)
		return KT_OK;
	kt_buf_reset(&w->enc);
	kt_code c = kt_repo_index_encode(&w->a->keys, w->v, w->n, &w->enc, err);
	if (!c) {
		uint8_t id[32];
		char hex[65];
		kt_archive_storage_id(w->enc.data, w->enc.len, id, hex);
		if (w->n_names == w->cap_names) {
			w->cap_names = w->cap_names ? w->cap_names * 2 : 16;
			w->names = realloc(w->names, w->cap_names * sizeof(*w->names));
			if (!w->names)
				abort();
		}
		snprintf(w->names[w->n_names], 72, "index/%s", hex);
		c = kt_store_put(w->a->s, w->names[w->n_names++], w->enc.data, w->enc.len, err);
		if (c == KT_EEXIST)
			c = KT_OK;
	}
	for (size_t i = 0; i < w->n; i++)
		free(w->v[i].entries);
	w->n = w->entries = 0;
	return c;
}

/* Name pack id with its n entries (taken over) in the new index. */
static kt_code ixw_add(ixw *w, const uint8_t id[32], kt_repo_entry *entries, size_t n,
                       kt_error *err)
{
	if (w->n == w->cap) {
		w->cap = w->cap ? w->cap * 2 : 64;
		w->v = realloc(w->v, w->cap * sizeof(*w->v));
		if (!w->v)
			abort();
	}
	kt_repo_index_pack *ip = &w->v[w->n++];
	memcpy(ip->pack_id, id, 32);
	ip->entries = entries;
	ip->n = n;
	w->entries += n;
	if (w->n >= KT_PACKER_INDEX_PACKS || w->entries >= KT_PACKER_INDEX_ENTRIES)
		return ixw_flush(w, err);
	return KT_OK;
}

typedef struct repacker {
	kt_buf buf;
	kt_repo_entry *entries;
	size_t n, cap;
	size_t cut;               /* the pack size it ends packs at */
} repacker;

static kt_code repack_flush(pctx *p, repacker *r, ixw *w, kt_error *err)
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
	kt_repo_entry *e = r->entries;
	size_t n = r->n;
	r->entries = NULL;
	r->n = r->cap = 0;
	kt_buf_reset(&r->buf);
	return ixw_add(w, id, e, n, err);
}

/* Step 2's passes over the index: account per pack, then (per window)
 * place the entries of the packs that stay or are repacked. */
typedef struct per_pack {
	pctx *p;
	pack_acc *acc;
	placed **per;             /* [pack], for the window's packs */
	uint32_t lo, hi;          /* the window */
} per_pack;

static void count_entry(void *ctx, const kt_loc *l)
{
	per_pack *pp = ctx;
	if (l->pack >= pp->p->a->n_packs)
		return;
	pack_acc *pa = &pp->acc[l->pack];
	if (!pa->n || l->offset < pa->first)
		pa->first = l->offset;
	if ((uint64_t)l->offset + l->length > pa->end)
		pa->end = (uint64_t)l->offset + l->length;
	pa->n++;
	pa->total += l->length;
	pa->type = l->type;
	if (is_used(pp->p, l->ord)) {
		pa->used += l->length;
		pa->n_used++;
	}
}

static void place_entry(void *ctx, const kt_loc *l)
{
	per_pack *pp = ctx;
	if (l->pack < pp->lo || l->pack >= pp->hi || !pp->per[l->pack])
		return;
	pack_acc *pa = &pp->acc[l->pack];
	if (pa->placed >= pa->n)
		return;   /* (cannot happen: the table did not change since counting) */
	placed *x = &pp->per[l->pack][pa->placed++];
	x->e = (kt_repo_entry){ l->type, l->compression, l->offset, l->length, l->raw_length, { 0 } };
	memcpy(x->e.id, l->id, 32);
	x->used = (uint8_t)is_used(pp->p, l->ord);
}

static int by_offset(const void *x, const void *y)
{
	uint32_t a = ((const placed *)x)->e.offset, b = ((const placed *)y)->e.offset;
	return a < b ? -1 : a > b;
}

/* The entries a window of step 2 holds at most (52 bytes each, 6.5 MiB): a
 * repository of more blobs takes one more pass over its index per window
 * instead of memory.  KT_PRUNE_WINDOW (environment, for tests only: at
 * least 1) makes it smaller, so that small repositories take many. */
#define PRUNE_WINDOW 131072u


/* Repacked tree packs end here, as the packer's (packer.c). */
#define PRUNE_TREE_PACK (4u << 20)

/* Step 2 for the packs [lo, hi) whose entries are in pp->per: keep or
 * repack them. */
static kt_code prune_window(pctx *p, per_pack *pp, repacker rp[2], ixw *w, kt_buf *packbuf,
                            kt_error *err)
{
	kt_archive *a = p->a;
	kt_code c = KT_OK;
	for (uint32_t pk = pp->lo; !c && pk < pp->hi; pk++) {
		pack_acc *pa = &pp->acc[pk];
		placed *x = pp->per[pk];
		if (!x)
			continue;
		qsort(x, pa->placed, sizeof(*x), by_offset);
		if (pa->fate == KEEP) {
			kt_repo_entry *e = kt_xcalloc(pa->placed, sizeof(*e));
			for (size_t i = 0; i < pa->placed; i++)
				e[i] = x[i].e;
			c = ixw_add(w, a->packs[pk], e, pa->placed, err);
			continue;
		}
		/* Partly used: copy its used sealed blobs into a new pack. */
		char name[80];
		kt_archive_pack_name(a->packs[pk], name);
		if ((c = kt_archive_get_checked(a, name, packbuf, err))) {
			kt_error_wrap(err, "repacking");
			break;
		}
		repacker *r = &rp[pa->type == KT_BLOB_TREE];
		for (size_t i = 0; !c && i < pa->placed; i++) {
			const kt_repo_entry *l = &x[i].e;
			if (!x[i].used)
				continue;
			if ((uint64_t)l->offset + l->length > packbuf->len) {
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
			c = kt_buf_add(&r->buf, packbuf->data + l->offset, l->length, err);
			if (!c && (r->buf.len >= r->cut || r->n >= KT_REPO_MAX_PACK_ENTRIES))
				c = repack_flush(p, r, w, err);
		}
		kt_archive_lock_tick(a);
	}
	return c;
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
	/* 2. Per pack, from one pass over the index: keep it (every blob used,
	 * and they cover it from its start without a gap: a gap means some are
	 * indexed in another pack too, two backups having stored them at
	 * once, so it cannot be listed whole), drop it (none used) or repack
	 * its used blobs (their sealed bytes are copied as they are: a sealed
	 * blob does not depend on where it sits). */
	pack_acc *acc = kt_xcalloc(a->n_packs ? a->n_packs : 1, sizeof(*acc));
	per_pack pp = { &p, acc, NULL, 0, 0 };
	if (!c)
		c = kt_archive_index_each(a, count_entry, &pp, err);
	for (uint32_t pk = 0; !c && pk < a->n_packs; pk++) {
		pack_acc *pa = &acc[pk];
		int whole = pa->n && pa->first == 0 && pa->total == pa->end;
		pa->fate = pa->n_used == pa->n && whole ? KEEP : pa->n_used ? REPACK : DROP;
		if (pa->fate == KEEP) {
			res->packs_kept++;
			continue;
		}
		res->packs_removed++;
		res->bytes_freed += pa->total - pa->used;
		if (pa->fate == REPACK)
			res->packs_repacked++;
	}
	/* Packs no index names (interrupted backups: the exclusive lock keeps
	 * new ones from appearing meanwhile). */
	char **data = NULL;
	size_t n_data = 0;
	if (!c)
		c = kt_archive_list_names(a, "data/", &data, &n_data, err);
	uint8_t *orphan = kt_xcalloc(n_data ? n_data : 1, 1);
	uint8_t (*known)[32] = kt_xcalloc(a->n_packs ? a->n_packs : 1, 32);
	memcpy(known, a->packs, a->n_packs * 32);
	qsort(known, a->n_packs, 32, cmp_id);
	for (size_t i = 0; !c && i < n_data; i++) {
		const char *hex = strrchr(data[i], '/') + 1;
		uint8_t id[32];
		if (kt_repo_id_parse(hex, id))
			continue;
		if (!bsearch(id, known, a->n_packs, 32, cmp_id)) {
			orphan[i] = 1;
			res->packs_unreferenced++;
		}
	}
	free(known);
	ixw w;
	memset(&w, 0, sizeof(w));
	w.a = a;
	kt_buf_init(&w.enc, KT_REPO_MAX_SEALED + KT_REPO_SEAL_OVERHEAD);
	repacker rp[2];
	memset(rp, 0, sizeof(rp));
	for (int t = 0; t < 2; t++) {
		kt_buf_init(&rp[t].buf, (size_t)a->pack_size + KT_REPO_MAX_BLOB + (4u << 20));
		rp[t].cut = t && a->pack_size > PRUNE_TREE_PACK ? PRUNE_TREE_PACK : a->pack_size;
	}
	kt_buf packbuf;
	kt_buf_init(&packbuf, (size_t)a->pack_size + KT_REPO_MAX_BLOB + (8u << 20));
	int change = !c && !dry_run && (res->packs_removed || res->packs_unreferenced);
	/* 2.-3. The new index, written as it grows: the entries of a window of
	 * packs at a time (PRUNE_WINDOW entries, one pass over the index
	 * each), so memory does not grow with the repository. */
	pp.per = kt_xcalloc(a->n_packs ? a->n_packs : 1, sizeof(*pp.per));
	uint64_t window = kt_archive_knob("KT_PRUNE_WINDOW", PRUNE_WINDOW, 1, PRUNE_WINDOW);
	for (uint32_t lo = 0; change && !c && lo < a->n_packs; lo = pp.hi) {
		uint64_t sum = 0;
		uint32_t hi = lo;
		for (; hi < a->n_packs; hi++) {
			uint64_t n = acc[hi].fate == DROP ? 0 : acc[hi].n;
			if (hi > lo && sum + n > window)
				break;
			sum += n;
			if (n)
				pp.per[hi] = kt_xcalloc(n, sizeof(placed));
			acc[hi].placed = 0;
		}
		pp.lo = lo;
		pp.hi = hi;
		if (sum)
			c = kt_archive_index_each(a, place_entry, &pp, err);
		if (!c)
			c = prune_window(&p, &pp, rp, &w, &packbuf, err);
		for (uint32_t pk = lo; pk < hi; pk++) {
			free(pp.per[pk]);
			pp.per[pk] = NULL;
		}
	}
	free(pp.per);
	for (int t = 0; change && !c && t < 2; t++)
		c = repack_flush(&p, &rp[t], &w, err);
	if (change && !c)
		c = ixw_flush(&w, err);
	/* 4.-5. Old index gone, then the packs. */
	if (change && !c) {
		char **old;
		size_t n_old = 0;
		c = kt_archive_list_names(a, "index/", &old, &n_old, err);
		for (size_t i = 0; !c && i < n_old; i++) {
			/* An old index byte-identical to a new one has its name: keep it. */
			int is_new = 0;
			for (size_t j = 0; j < w.n_names; j++)
				is_new |= !strcmp(old[i], w.names[j]);
			kt_error rerr;
			if (!is_new && kt_store_remove(a->s, old[i], &rerr))
				c = kt_error_set(err, rerr.code, "cannot remove the old index %s: %s (the "
				                 "packs stay; run prune again)", old[i], rerr.msg);
		}
		if (n_old || old)
			kt_archive_names_free(old, n_old);
		for (uint32_t pk = 0; !c && pk < a->n_packs; pk++) {
			if (acc[pk].fate == KEEP)
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
	for (size_t j = 0; j < w.n; j++)
		free(w.v[j].entries);
	free(w.v);
	free(w.names);
	kt_buf_release(&w.enc);
	for (int t = 0; t < 2; t++) {
		kt_buf_release(&rp[t].buf);
		free(rp[t].entries);
	}
	kt_buf_release(&packbuf);
	free(acc);
	free(p.used);
	/* The table no longer matches the storage: reload it. */
	if (change && !c) {
		kt_archive_index_release(a);
		a->n_packs = 0;
		c = kt_archive_load_index(a, err);
	}
	kt_archive_unlock(a);
	return c;
}
