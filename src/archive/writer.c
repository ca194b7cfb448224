/*
 * writer.c - a snapshot built from memory instead of a directory walk:
 * the caller hands over files (path, bytes) one at a time and commits.
 * Application restore points use it, so objects (Secrets included) never
 * touch the local disk unencrypted.
 *
 * Invariants:
 *   1. The same repository rules as kt_archive_backup: file data is cut by
 *      the repository's file chunker, every distinct blob is stored once,
 *      packs then index (the packer) then the snapshot object, so an
 *      interrupted writer leaves only unreferenced data.
 *   2. Memory holds the directory skeleton (one node per file) and the
 *      packer's bounded buffers; file bytes are chunked as they are added.
 *   3. Between begin and commit/free the caller must not use the archive's
 *      store (the packer's uploader owns it).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "archive_int.h"
#include "blobio.h"
#include "packer.h"

typedef struct wdir {
	char *name;
	kt_repo_tree t;             /* its files (and, at commit, its directories) */
	size_t cap;
	struct wdir **kids;
	size_t n_kids, cap_kids;
} wdir;

struct kt_archive_writer {
	kt_archive *a;
	kt_packer *pk;
	kt_blobio *io;
	kt_chunker ch;
	kt_buf chunk;
	kt_idset fresh;
	char mtime[40];
	kt_archive_backup_result res;
	wdir root;
	int failed;
	int lists;            /* a tree holds a content list (snapshot v3) */
	int indexes;          /* a directory is a tree index (snapshot v4) */
};

kt_code kt_archive_writer_begin(kt_archive *a, int compression_level, kt_archive_writer **out,
                                kt_error *err)
{
	kt_archive_writer *w = kt_xcalloc(1, sizeof(*w));
	kt_code c = kt_chunker_init(&w->ch, &a->chunk_files, a->keys.id, err);
	if (c) {
		free(w);
		return c;
	}
	w->a = a;
	w->io = kt_blobio_new(&a->keys);
	kt_buf_init(&w->chunk, KT_REPO_MAX_BLOB + 1);
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	struct tm tm;
	gmtime_r(&now.tv_sec, &tm);
	strftime(w->mtime, sizeof(w->mtime), "%Y-%m-%dT%H:%M:%S.000000000Z", &tm);
	int level = compression_level == 0 ? 1 : compression_level < 0 ? 0 : compression_level;
	w->pk = kt_packer_start(a, level, 0);
	w->res.duration_ms = kt_now_ms();
	*out = w;
	return KT_OK;
}

/* Store the blob in w->chunk unless known; its id into id_out. */
static kt_code add_blob(kt_archive_writer *w, kt_blob_type type, uint8_t id_out[32],
                        kt_error *err)
{
	size_t n = w->chunk.len;
	kt_blobio_id(w->io, w->chunk.data, n, id_out);
	if (kt_archive_find(w->a, id_out, NULL) || kt_idset_put(&w->fresh, id_out)) {
		kt_buf_clear(&w->chunk);
		return KT_OK;
	}
	kt_code c = kt_packer_add(w->pk, type, id_out, &w->chunk, err);
	if (!c) {
		w->res.blobs_new++;
		w->res.bytes_new += n;
	}
	return c;
}

static wdir *child(wdir *d, const char *name, size_t len)
{
	for (size_t i = 0; i < d->n_kids; i++)
		if (strlen(d->kids[i]->name) == len && !memcmp(d->kids[i]->name, name, len))
			return d->kids[i];
	if (d->n_kids == d->cap_kids) {
		d->cap_kids = d->cap_kids ? 2 * d->cap_kids : 8;
		wdir **k = realloc(d->kids, d->cap_kids * sizeof(*k));
		if (!k)
			abort();
		d->kids = k;
	}
	wdir *c = kt_xcalloc(1, sizeof(*c));
	c->name = kt_xcalloc(len + 1, 1);
	memcpy(c->name, name, len);
	d->kids[d->n_kids++] = c;
	return c;
}

static void tree_push(wdir *d, const kt_repo_node *nd)
{
	if (d->t.n == d->cap) {
		d->cap = d->cap ? 2 * d->cap : 16;
		kt_repo_node *v = realloc(d->t.nodes, d->cap * sizeof(*v));
		if (!v)
			abort();
		d->t.nodes = v;
	}
	d->t.nodes[d->t.n++] = *nd;
}

kt_code kt_archive_writer_add(kt_archive_writer *w, const char *path, const void *data,
                              size_t n, uint32_t mode, kt_error *err)
{
	if (w->failed)
		return kt_error_set(err, KT_EUSAGE, "the writer failed earlier; free it");
	/* Walk (and make) the directories; the last component is the file. */
	wdir *d = &w->root;
	const char *p = path;
	for (;;) {
		size_t len = strcspn(p, "/");
		char name[KT_REPO_MAX_NAME + 1];
		if (len == 0 || len > KT_REPO_MAX_NAME)
			return kt_error_set(err, KT_EUSAGE, "bad path '%.200s' for a snapshot file", path);
		memcpy(name, p, len);
		name[len] = '\0';
		if (!kt_repo_name_ok(name))
			return kt_error_set(err, KT_EUSAGE, "bad name '%s' in '%.200s'", name, path);
		if (!p[len])
			break;
		d = child(d, p, len);
		p += len + 1;
	}
	kt_repo_node nd;
	memset(&nd, 0, sizeof(nd));
	nd.name = kt_xstrdup(p);
	nd.type = KT_NODE_FILE;
	nd.mode = mode & 07777;
	snprintf(nd.mtime, sizeof(nd.mtime), "%s", w->mtime);
	nd.uid = (uint32_t)getuid();
	nd.gid = (uint32_t)getgid();
	nd.size = n;
	size_t cap = 0;
	kt_code c = KT_OK;
	const uint8_t *q = data;
	size_t left = n;
	kt_buf_clear(&w->chunk);
	for (int last = 0; !c && !last;) {
		int cut = 0;
		if (left) {
			size_t used = kt_chunker_scan(&w->ch, q, left, &cut);
			c = kt_buf_add(&w->chunk, q, used, err);
			q += used;
			left -= used;
		} else {
			/* the stream's end: the chunker starts afresh for the next file */
			last = 1;
			cut = kt_chunker_finish(&w->ch) > 0 || w->chunk.len > 0;
		}
		if (!c && cut && w->chunk.len) {
			if (nd.n_content == cap) {
				cap = cap ? 2 * cap : 4;
				uint8_t (*v)[32] = realloc(nd.content, cap * 32);
				if (!v)
					abort();
				nd.content = v;
			}
			c = add_blob(w, KT_BLOB_DATA, nd.content[nd.n_content++], err);
		}
	}
	if (c) {
		w->failed = 1;
		free(nd.name);
		free(nd.content);
		return c;
	}
	tree_push(d, &nd);
	w->res.files++;
	w->res.bytes += n;
	return KT_OK;
}

/* One list blob of a big file (contentlist.c), through w->chunk. */
static kt_code put_list(void *ctx, kt_buf *blob, uint8_t id_out[32], kt_error *err)
{
	kt_archive_writer *w = ctx;
	kt_buf_clear(&w->chunk);
	kt_code c = kt_buf_add(&w->chunk, blob->data, blob->len, err);
	return c ? c : add_blob(w, KT_BLOB_TREE, id_out, err);
}

/* Encode and store one tree blob (a directory, or a part of a big one). */
static kt_code put_part(void *ctx, kt_repo_tree *t, uint8_t id_out[32], kt_error *err)
{
	kt_archive_writer *w = ctx;
	kt_code c = kt_archive_lists_make(t, put_list, w, &w->lists, err);
	kt_buf_clear(&w->chunk);
	if (!c)
		c = kt_repo_tree_encode(t, &w->chunk, err);
	return c ? c : add_blob(w, KT_BLOB_TREE, id_out, err);
}

/* Encode d's tree (its files plus a node per subdirectory) as a blob. */
static kt_code emit(kt_archive_writer *w, wdir *d, uint8_t id_out[32], kt_error *err)
{
	for (size_t i = 0; i < d->n_kids; i++) {
		kt_repo_node nd;
		memset(&nd, 0, sizeof(nd));
		kt_code c = emit(w, d->kids[i], nd.subtree, err);
		if (c)
			return c;
		nd.name = kt_xstrdup(d->kids[i]->name);
		nd.type = KT_NODE_DIR;
		nd.mode = 0700;
		snprintf(nd.mtime, sizeof(nd.mtime), "%s", w->mtime);
		nd.uid = (uint32_t)getuid();
		nd.gid = (uint32_t)getgid();
		tree_push(d, &nd);
		w->res.dirs++;
	}
	/* In name order through treeparts: a directory past one blob's limits
	 * becomes a tree index (its nodes move out of d->t). */
	kt_repo_tree_sort(&d->t);
	kt_treeparts tp;
	kt_treeparts_init(&tp, w->io, put_part, put_list, w);
	kt_code c = KT_OK;
	for (size_t i = 0; i < d->t.n; i++)
		if (!c)
			c = kt_treeparts_add(&tp, &d->t.nodes[i], err);
	d->t.n = 0;   /* moved (or freed) */
	int indexed = 0;
	if (!c)
		c = kt_treeparts_end(&tp, id_out, &indexed, err);
	kt_treeparts_release(&tp);
	w->indexes |= indexed;
	return c;
}

static void on_stored(void *ctx, const uint8_t pack_id[32], const kt_repo_entry *e, size_t n)
{
	for (size_t i = 0; i < n; i++)
		kt_archive_insert(ctx, pack_id, &e[i]);
}

kt_code kt_archive_writer_commit(kt_archive_writer *w, const kt_archive_backup_opts *o,
                                 const char *const *paths, size_t n_paths,
                                 kt_archive_backup_result *res, kt_error *err)
{
	kt_repo_snapshot snap;
	memset(&snap, 0, sizeof(snap));
	kt_code c = w->failed ? kt_error_set(err, KT_EUSAGE, "the writer failed earlier")
	                      : emit(w, &w->root, snap.tree, err);
	if (!c)
		c = kt_packer_finish(w->pk, err);
	kt_packer_stats(w->pk, &w->res.stored_bytes, &w->res.packs);
	kt_error derr;
	kt_code dc = kt_packer_drain(w->pk, on_stored, w->a, &derr);
	if (dc && !c) {
		c = dc;
		*err = derr;
	}
	kt_packer_free(w->pk);
	w->pk = NULL;
	if (c) {
		w->failed = 1;
		return c;
	}
	snprintf(snap.time, sizeof(snap.time), "%s", w->mtime);
	if (o && o->hostname)
		snprintf(snap.hostname, sizeof(snap.hostname), "%s", o->hostname);
	else if (gethostname(snap.hostname, sizeof(snap.hostname) - 1) != 0)
		snprintf(snap.hostname, sizeof(snap.hostname), "unknown");
	snap.paths = (char **)paths;
	snap.n_paths = n_paths;
	size_t n_tags = 0;
	while (o && o->tags && o->tags[n_tags])
		n_tags++;
	snap.tags = n_tags ? (char **)o->tags : NULL;
	snap.n_tags = n_tags;
	/* 4: a directory is a tree index; 3: a tree holds a content list */
	snap.version = w->indexes ? 4 : w->lists ? 3 : 1;
	snap.files = w->res.files;
	snap.bytes = w->res.bytes;
	snap.added_bytes = w->res.bytes_new;
	kt_buf enc;
	kt_buf_init(&enc, KT_REPO_MAX_BLOB);
	c = kt_repo_snapshot_encode(&snap, &enc, err);
	if (!c)
		c = kt_archive_put_sealed(w->a, "snapshots", KT_AAD_SNAPSHOT, enc.data, enc.len,
		                          w->res.snapshot_id, &w->res.stored_bytes, err);
	kt_buf_release(&enc);
	if (c) {
		w->failed = 1;
		return c;
	}
	w->res.duration_ms = kt_now_ms() - w->res.duration_ms;
	if (res)
		*res = w->res;
	return KT_OK;
}

static void dir_free(wdir *d, int self)
{
	for (size_t i = 0; i < d->n_kids; i++)
		dir_free(d->kids[i], 1);
	free(d->kids);
	kt_repo_tree_release(&d->t);
	free(d->name);
	if (self)
		free(d);
}

void kt_archive_writer_free(kt_archive_writer *w)
{
	if (!w)
		return;
	kt_packer_free(w->pk);   /* an uncommitted writer: nothing is indexed or named */
	kt_blobio_free(w->io);
	kt_buf_release(&w->chunk);
	kt_idset_release(&w->fresh);
	dir_free(&w->root, 0);
	free(w);
}

/* ---- reading one file back ------------------------------------------- */

/* A directory of a writer's snapshot, whole (its directories are small:
 * one per object kind; a tree index is read part by part into it). */
static kt_code read_tree(kt_archive *a, const uint8_t id[32], kt_repo_tree *t, kt_error *err)
{
	return kt_archive_dir_load_all(a, id, t, err);
}

/* The files of one snapshot, read by path: the root tree id, and the last
 * directory read (restore points read their objects directory by
 * directory, so one cached tree saves decoding it again per file). */
struct kt_archive_reader {
	kt_archive *a;
	char id[65];
	uint8_t root[32];
	char dir[1200];          /* path of the cached directory ("" = root) */
	kt_repo_tree tree;       /* its tree */
	int have_tree;
};

kt_code kt_archive_reader_open(kt_archive *a, const char *id, kt_archive_reader **out,
                               kt_error *err)
{
	kt_repo_snapshot s;
	kt_code c = kt_archive_load_snapshot(a, id, &s, err);
	if (c)
		return c;
	kt_archive_reader *r = kt_xcalloc(1, sizeof(*r));
	r->a = a;
	snprintf(r->id, sizeof(r->id), "%s", id);
	memcpy(r->root, s.tree, 32);
	kt_repo_snapshot_release(&s);
	*out = r;
	return KT_OK;
}

void kt_archive_reader_free(kt_archive_reader *r)
{
	if (!r)
		return;
	if (r->have_tree)
		kt_repo_tree_release(&r->tree);
	free(r);
}

/* The tree of directory dir (dlen bytes of a path; 0 = the root), cached. */
static kt_code dir_tree(kt_archive_reader *r, const char *dir, size_t dlen,
                        const kt_repo_tree **out, kt_error *err)
{
	if (r->have_tree && strlen(r->dir) == dlen && !memcmp(r->dir, dir, dlen)) {
		*out = &r->tree;
		return KT_OK;
	}
	if (r->have_tree)
		kt_repo_tree_release(&r->tree);
	r->have_tree = 0;
	if (dlen >= sizeof(r->dir))
		return kt_error_set(err, KT_ELIMIT, "path too long in snapshot");
	uint8_t id[32];
	memcpy(id, r->root, 32);
	kt_repo_tree t = { 0 };
	kt_code c = read_tree(r->a, id, &t, err);
	const char *p = dir;
	for (int depth = 0; !c && p < dir + dlen; depth++) {
		size_t len = strcspn(p, "/");
		if ((size_t)(p - dir) + len > dlen)
			len = dlen - (size_t)(p - dir);
		const kt_repo_node *nd = NULL;
		for (size_t i = 0; i < t.n && !nd; i++)
			if (strlen(t.nodes[i].name) == len && !memcmp(t.nodes[i].name, p, len))
				nd = &t.nodes[i];
		if (!nd || nd->type != KT_NODE_DIR || depth > 256) {
			c = kt_error_set(err, KT_ENOTFOUND, "'%.*s' is not a directory in snapshot %.8s",
			                 (int)dlen, dir, r->id);
			break;
		}
		memcpy(id, nd->subtree, 32);
		kt_repo_tree_release(&t);
		c = read_tree(r->a, id, &t, err);
		p += len + 1;
	}
	if (c) {
		kt_repo_tree_release(&t);
		return c;
	}
	r->tree = t;
	r->have_tree = 1;
	memcpy(r->dir, dir, dlen);
	r->dir[dlen] = '\0';
	*out = &r->tree;
	return KT_OK;
}

kt_code kt_archive_reader_get(kt_archive_reader *r, const char *path, kt_buf *out,
                              kt_error *err)
{
	const char *slash = strrchr(path, '/');
	size_t dlen = slash ? (size_t)(slash - path) : 0;
	const char *name = slash ? slash + 1 : path;
	const kt_repo_tree *t = NULL;
	kt_code c = dir_tree(r, path, dlen, &t, err);
	if (c)
		return c;
	const kt_repo_node *nd = NULL;
	for (size_t i = 0; i < t->n && !nd; i++)
		if (!strcmp(t->nodes[i].name, name))
			nd = &t->nodes[i];
	if (!nd || nd->type != KT_NODE_FILE)
		return kt_error_set(err, KT_ENOTFOUND, "'%s' is not in snapshot %.8s", path, r->id);
	if (nd->has_delta)
		return kt_error_set(err, KT_EUSAGE, "'%s' is delta-encoded: restore it to a file",
		                    path);
	size_t start = out->len;
	kt_buf blob;
	kt_buf_init(&blob, KT_REPO_MAX_BLOB + 1);
	for (size_t i = 0; !c && i < nd->n_content; i++)
		if (!(c = kt_archive_read_blob(r->a, nd->content[i], &blob, err)))
			c = kt_buf_add(out, blob.data, blob.len, err);
	kt_buf_release(&blob);
	if (!c && out->len - start != nd->size)
		c = kt_error_set(err, KT_ECORRUPT, "'%s' in snapshot %.8s: %zu bytes read, %llu "
		                 "recorded", path, r->id, out->len - start,
		                 (unsigned long long)nd->size);
	return c;
}

kt_code kt_archive_read_file(kt_archive *a, const char *id, const char *path, kt_buf *out,
                             kt_error *err)
{
	kt_archive_reader *r;
	kt_code c = kt_archive_reader_open(a, id, &r, err);
	if (!c)
		c = kt_archive_reader_get(r, path, out, err);
	kt_archive_reader_free(r);
	return c;
}
