/*
 * backup.c - files into a snapshot: walk, chunk, deduplicate, pack,
 * upload; then the index, then the snapshot (docs/repository-format.md,
 * "Write and delete order").
 *
 * Data flow, per file:  read 1 MiB slices -> chunker (files: FastCDC; etcd
 * databases, recognised by the bbolt magic: the etcd chunker) -> the chunk
 * accumulates in one buffer of at most the chunker's max size -> blob id
 * (keyed HMAC) -> known? skip : seal into the open pack -> a full pack is
 * uploaded under its SHA-256 and its entries get their pack number.
 * Trees are built bottom-up (a directory's tree blob after its children)
 * into a separate tree pack.
 *
 * Memory: one chunk buffer, two open packs (data, tree; each at most
 * pack_size plus one blob), the index table and the list of new packs for
 * the index file.  A failure leaves packs without index or index without
 * snapshot: unreferenced data that prune removes, never a snapshot naming
 * missing data.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "archive_int.h"

#define PENDING UINT32_MAX      /* pack number of a blob in a not yet uploaded pack */
#define SLICE (1u << 20)
#define INDEX_PACKS_PER_FILE 1000

typedef struct open_pack {
	kt_buf buf;
	kt_repo_entry *entries;
	size_t n, cap;
	kt_blob_type type;
} open_pack;

typedef struct bctx {
	kt_archive *a;
	const kt_archive_backup_opts *o;
	kt_archive_backup_result *res;
	int level;
	open_pack data, tree;
	kt_repo_index_pack *done;     /* uploaded packs not yet in an index file */
	size_t n_done, cap_done;
	kt_buf chunk;
	uint8_t *slice;
	char path[PATH_MAX];
} bctx;

static void pack_init(open_pack *p, kt_blob_type type, uint32_t pack_size)
{
	kt_buf_init(&p->buf, (size_t)pack_size + KT_REPO_MAX_BLOB + (4u << 20));
	p->entries = NULL;
	p->n = p->cap = 0;
	p->type = type;
}

static void pack_release(open_pack *p)
{
	kt_buf_release(&p->buf);
	free(p->entries);
	p->entries = NULL;
	p->n = p->cap = 0;
}

static kt_code write_index(bctx *b, kt_error *err)
{
	if (!b->n_done)
		return KT_OK;
	kt_buf enc;
	kt_buf_init(&enc, KT_REPO_MAX_SEALED + KT_REPO_SEAL_OVERHEAD);
	kt_code c = kt_repo_index_encode(&b->a->keys, b->done, b->n_done, &enc, err);
	if (!c) {
		uint8_t id[32];
		char hex[65], name[128];
		kt_archive_storage_id(enc.data, enc.len, id, hex);
		snprintf(name, sizeof(name), "index/%s", hex);
		c = kt_store_put(b->a->s, name, enc.data, enc.len, err);
		if (c == KT_EEXIST)
			c = KT_OK;
		if (!c)
			b->res->stored_bytes += enc.len;
	}
	kt_buf_release(&enc);
	for (size_t i = 0; i < b->n_done; i++)
		free(b->done[i].entries);
	b->n_done = 0;
	return c;
}

/* Seal the header, upload the pack under its SHA-256, give its blobs their
 * pack number, and remember it for the index file. */
static kt_code pack_flush(bctx *b, open_pack *p, kt_error *err)
{
	if (!p->n)
		return KT_OK;
	kt_code c = kt_repo_pack_finish(&b->a->keys, &p->buf, p->entries, p->n, err);
	uint8_t id[32];
	char name[80];
	if (!c) {
		kt_archive_storage_id(p->buf.data, p->buf.len, id, NULL);
		kt_archive_pack_name(id, name);
		c = kt_store_put(b->a->s, name, p->buf.data, p->buf.len, err);
		if (c == KT_EEXIST)
			c = KT_OK;   /* identical bytes are already stored under that name */
	}
	if (c)
		return kt_error_wrap(err, "uploading a pack");
	b->res->stored_bytes += p->buf.len;
	b->res->packs++;
	/* The table holds these blobs as PENDING: now they have a home. */
	uint32_t no = kt_archive_pack_no(b->a, id);
	for (size_t i = 0; i < p->n; i++) {
		kt_loc *l = kt_archive_lookup(b->a, p->entries[i].id);
		if (l && l->pack == PENDING)
			l->pack = no;
	}
	if (b->n_done == b->cap_done) {
		b->cap_done = b->cap_done ? b->cap_done * 2 : 64;
		b->done = realloc(b->done, b->cap_done * sizeof(*b->done));
		if (!b->done)
			abort();
	}
	kt_repo_index_pack *ip = &b->done[b->n_done++];
	memcpy(ip->pack_id, id, 32);
	ip->entries = p->entries;
	ip->n = p->n;
	p->entries = NULL;
	p->n = p->cap = 0;
	kt_buf_reset(&p->buf);
	if (b->n_done >= INDEX_PACKS_PER_FILE)
		return write_index(b, err);
	return KT_OK;
}

/* Store one blob unless it is known; its id into id_out. */
static kt_code add_blob(bctx *b, open_pack *p, const void *data, size_t n, uint8_t id_out[32],
                        kt_error *err)
{
	kt_repo_blob_id(&b->a->keys, data, n, id_out);
	if (kt_archive_lookup(b->a, id_out))
		return KT_OK;
	if (p->n == p->cap) {
		p->cap = p->cap ? p->cap * 2 : 256;
		p->entries = realloc(p->entries, p->cap * sizeof(*p->entries));
		if (!p->entries)
			abort();
	}
	kt_repo_entry *e = &p->entries[p->n];
	kt_code c = kt_repo_pack_add(&b->a->keys, &p->buf, p->type, data, n, b->level, e, err);
	if (c)
		return c;
	p->n++;
	b->res->blobs_new++;
	b->res->bytes_new += n;
	/* Known from now on (PENDING until its pack is uploaded). */
	kt_archive_insert_at(b->a, PENDING, e);
	if (p->buf.len >= b->a->pack_size || p->n >= KT_REPO_MAX_PACK_ENTRIES)
		return pack_flush(b, p, err);
	return KT_OK;
}

static void mtime_text(const struct stat *st, char out[40])
{
	struct tm tm;
	gmtime_r(&st->st_mtim.tv_sec, &tm);
	char base[24];
	strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, 40, "%.19s.%09ldZ", base, (long)(st->st_mtim.tv_nsec % 1000000000L));
}

static void node_meta(kt_repo_node *nd, const char *name, const struct stat *st)
{
	memset(nd, 0, sizeof(*nd));
	nd->name = kt_xstrdup(name);
	nd->mode = (uint32_t)(st->st_mode & 07777);
	nd->uid = st->st_uid;
	nd->gid = st->st_gid;
	mtime_text(st, nd->mtime);
}

/* Is this an etcd database (a bbolt file: meta magic 0xED0CDAED after the
 * 16-byte page header)? */
static int is_bbolt(const uint8_t *p, size_t n)
{
	return n >= 20 && p[16] == 0xed && p[17] == 0xda && p[18] == 0x0c && p[19] == 0xed;
}

static kt_code backup_file(bctx *b, int fd, const struct stat *st, kt_repo_node *nd,
                           kt_error *err)
{
	nd->type = KT_NODE_FILE;
	kt_chunker ch;
	kt_code c = KT_OK;
	size_t cap_content = 0;
	int first = 1;
	uint64_t total = 0;
	kt_buf_reset(&b->chunk);
	for (;;) {
		if (b->o && b->o->cancel && *b->o->cancel)
			return kt_error_set(err, KT_ECANCELED, "interrupted");
		ssize_t r = read(fd, b->slice, SLICE);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return kt_error_sys(err, kt_code_from_errno(errno), errno, "cannot read '%s'",
			                    b->path);
		if (first) {
			const kt_chunker_params *pp = is_bbolt(b->slice, (size_t)r) ? &b->a->chunk_etcd
			                                                             : &b->a->chunk_files;
			if ((c = kt_chunker_init(&ch, pp, b->a->keys.id, err)))
				return c;
			first = 0;
		}
		total += (uint64_t)r;
		const uint8_t *p = b->slice;
		size_t left = (size_t)r;
		int eof = r == 0;
		while (left || eof) {
			int cut = 0;
			size_t used = 0;
			if (left) {
				used = kt_chunker_scan(&ch, p, left, &cut);
				if ((c = kt_buf_add(&b->chunk, p, used, err)))
					return c;
				p += used;
				left -= used;
			} else {
				cut = kt_chunker_finish(&ch) > 0 || b->chunk.len > 0;
			}
			if (cut && b->chunk.len) {
				if (nd->n_content == cap_content) {
					cap_content = cap_content ? cap_content * 2 : 64;
					nd->content = realloc(nd->content, cap_content * 32);
					if (!nd->content)
						abort();
				}
				if ((c = add_blob(b, &b->data, b->chunk.data, b->chunk.len,
				                  nd->content[nd->n_content], err)))
					return c;
				nd->n_content++;
				kt_buf_reset(&b->chunk);
			}
			if (eof)
				break;
		}
		if (b->o && b->o->progress)
			b->o->progress(b->o->progress_ctx, b->res->files, b->res->bytes + total, b->path);
		if (eof)
			break;
	}
	/* A file that changed while we read it is stored as read; say so. */
	struct stat after;
	if (fstat(fd, &after) == 0 && (after.st_size != (off_t)total ||
	                               after.st_mtim.tv_sec != st->st_mtim.tv_sec ||
	                               after.st_mtim.tv_nsec != st->st_mtim.tv_nsec))
		kt_log(KT_LOG_WARN, "'%s' changed while it was read; the snapshot holds the %llu bytes "
		       "read", b->path, (unsigned long long)total);
	nd->size = total;
	b->res->files++;
	b->res->bytes += total;
	return KT_OK;
}

static kt_code tree_blob(bctx *b, kt_repo_tree *t, uint8_t id_out[32], kt_error *err)
{
	kt_buf enc;
	kt_buf_init(&enc, KT_REPO_MAX_BLOB);
	kt_code c = kt_repo_tree_encode(t, &enc, err);
	if (!c)
		c = add_blob(b, &b->tree, enc.data, enc.len, id_out, err);
	kt_buf_release(&enc);
	return c;
}

static void tree_add(kt_repo_tree *t, size_t *cap, kt_repo_node *nd)
{
	if (t->n == *cap) {
		*cap = *cap ? *cap * 2 : 16;
		t->nodes = realloc(t->nodes, *cap * sizeof(*t->nodes));
		if (!t->nodes)
			abort();
	}
	t->nodes[t->n++] = *nd;
}

/* Back up the entry at b->path (plen bytes) named name into *nd. */
static kt_code backup_entry(bctx *b, size_t plen, const char *name, kt_repo_node *nd, int depth,
                            kt_error *err);

static kt_code backup_dir(bctx *b, size_t plen, kt_repo_node *nd, int depth, kt_error *err)
{
	nd->type = KT_NODE_DIR;
	DIR *d = opendir(b->path);
	if (!d)
		return kt_error_sys(err, kt_code_from_errno(errno), errno, "cannot read directory '%s'",
		                    b->path);
	kt_repo_tree t = { 0 };
	size_t cap = 0;
	kt_code c = KT_OK;
	struct dirent *de;
	while (!c && (de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		kt_repo_node child;
		memset(&child, 0, sizeof(child));
		c = backup_entry(b, plen, de->d_name, &child, depth + 1, err);
		b->path[plen] = '\0';
		if (c || !child.name) {   /* failed, or skipped (a socket, a fifo) */
			free(child.name);
			free(child.content);
			free(child.target);
			continue;
		}
		tree_add(&t, &cap, &child);
	}
	closedir(d);
	if (!c)
		c = tree_blob(b, &t, nd->subtree, err);
	kt_repo_tree_release(&t);
	if (!c)
		b->res->dirs++;
	return c;
}

static kt_code backup_entry(bctx *b, size_t plen, const char *name, kt_repo_node *nd, int depth,
                            kt_error *err)
{
	if (depth > 256)
		return kt_error_set(err, KT_ELIMIT, "directories nest deeper than 256 levels at '%s'",
		                    b->path);
	size_t n = strlen(name);
	if (plen + n + 2 >= sizeof(b->path))
		return kt_error_set(err, KT_ELIMIT, "path too long under '%s'", b->path);
	if (!kt_repo_name_ok(name))
		return kt_error_set(err, KT_EUSAGE, "cannot store the name '%s' in '%s'", name,
		                    b->path);
	if (!(plen == 1 && b->path[0] == '/'))
		b->path[plen++] = '/';
	memcpy(b->path + plen, name, n + 1);
	plen += n;
	struct stat st;
	if (lstat(b->path, &st) != 0)
		return kt_error_sys(err, kt_code_from_errno(errno), errno, "cannot examine '%s'",
		                    b->path);
	node_meta(nd, name, &st);
	if (S_ISDIR(st.st_mode))
		return backup_dir(b, plen, nd, depth, err);
	if (S_ISLNK(st.st_mode)) {
		char target[4096];
		ssize_t r = readlink(b->path, target, sizeof(target) - 1);
		if (r <= 0)
			return kt_error_sys(err, kt_code_from_errno(errno), errno, "cannot read link '%s'",
			                    b->path);
		target[r] = '\0';
		nd->type = KT_NODE_SYMLINK;
		nd->target = kt_xstrdup(target);
		return KT_OK;
	}
	if (!S_ISREG(st.st_mode)) {
		kt_log(KT_LOG_WARN, "skipping '%s': not a file, directory or link", b->path);
		free(nd->name);
		nd->name = NULL;
		return KT_OK;   /* sockets, fifos, devices: skipped, not stored */
	}
	int fd = open(b->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return kt_error_sys(err, kt_code_from_errno(errno), errno, "cannot open '%s'", b->path);
	kt_code c = backup_file(b, fd, &st, nd, err);
	close(fd);
	return c;
}

/* ------------------------------------------------------------------ */
/* The given paths as a trie of their components, so the snapshot holds
 * each under its absolute path and the directories above them once. */

typedef struct trie {
	char *name;
	int target;               /* a path given to back up: stored whole */
	struct trie *kids;
	size_t n, cap;
} trie;

static void trie_free(trie *t)
{
	for (size_t i = 0; i < t->n; i++)
		trie_free(&t->kids[i]);
	free(t->kids);
	free(t->name);
}

static trie *trie_child(trie *t, const char *name, size_t len)
{
	for (size_t i = 0; i < t->n; i++)
		if (strlen(t->kids[i].name) == len && !memcmp(t->kids[i].name, name, len))
			return &t->kids[i];
	if (t->n == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 4;
		t->kids = realloc(t->kids, t->cap * sizeof(trie));
		if (!t->kids)
			abort();
	}
	trie *k = &t->kids[t->n++];
	memset(k, 0, sizeof(*k));
	k->name = strndup(name, len);
	return k;
}

/* Absolute, without "." or ".." or empty components; KT_EUSAGE otherwise. */
static kt_code trie_add(trie *root, const char *path, kt_error *err)
{
	char abs[PATH_MAX];
	if (path[0] == '/') {
		if ((size_t)snprintf(abs, sizeof(abs), "%s", path) >= sizeof(abs))
			return kt_error_set(err, KT_ELIMIT, "path too long: '%s'", path);
	} else {
		char cwd[PATH_MAX];
		if (!getcwd(cwd, sizeof(cwd)) ||
		    (size_t)snprintf(abs, sizeof(abs), "%s/%s", cwd, path) >= sizeof(abs))
			return kt_error_set(err, KT_ELIMIT, "path too long: '%s'", path);
	}
	trie *t = root;
	const char *p = abs;
	int any = 0;
	while (*p) {
		while (*p == '/')
			p++;
		size_t len = strcspn(p, "/");
		if (!len)
			break;
		if ((len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
			return kt_error_set(err, KT_EUSAGE, "give '%s' without '.' or '..'", path);
		t = trie_child(t, p, len);
		p += len;
		any = 1;
	}
	if (!any)
		return kt_error_set(err, KT_EUSAGE, "cannot back up '/' as a whole; name directories");
	t->target = 1;
	return KT_OK;
}

/* Emit trie node t (its path is b->path[0..plen)) into nd. */
static kt_code emit(bctx *b, trie *t, size_t plen, kt_repo_node *nd, int depth, kt_error *err)
{
	if (t->target) {
		kt_code c = backup_entry(b, plen, t->name, nd, depth, err);
		b->path[plen] = '\0';
		if (!c && !nd->name)
			c = kt_error_set(err, KT_EUSAGE, "'%s/%s' is not a file, directory or link",
			                 plen ? b->path : "", t->name);
		return c;
	}
	/* A directory above what was asked for: its own metadata, and only the
	 * children that lead to given paths. */
	size_t n = strlen(t->name);
	if (plen + n + 2 >= sizeof(b->path))
		return kt_error_set(err, KT_ELIMIT, "path too long");
	size_t nl = plen;
	if (!(plen == 1 && b->path[0] == '/'))
		b->path[nl++] = '/';
	memcpy(b->path + nl, t->name, n + 1);
	nl += n;
	struct stat st;
	if (lstat(b->path, &st) != 0 || !S_ISDIR(st.st_mode)) {
		int e = errno;
		return kt_error_sys(err, kt_code_from_errno(e), e, "cannot examine '%s'", b->path);
	}
	node_meta(nd, t->name, &st);
	nd->type = KT_NODE_DIR;
	kt_repo_tree tree = { 0 };
	size_t cap = 0;
	kt_code c = KT_OK;
	for (size_t i = 0; !c && i < t->n; i++) {
		kt_repo_node child;
		memset(&child, 0, sizeof(child));
		c = emit(b, &t->kids[i], nl, &child, depth + 1, err);
		b->path[nl] = '\0';
		if (!c)
			tree_add(&tree, &cap, &child);
		else {
			free(child.name);
			free(child.content);
			free(child.target);
		}
	}
	if (!c)
		c = tree_blob(b, &tree, nd->subtree, err);
	kt_repo_tree_release(&tree);
	return c;
}

kt_code kt_archive_backup(kt_archive *a, const char *const *paths, size_t n_paths,
                          const kt_archive_backup_opts *o, kt_archive_backup_result *res,
                          kt_error *err)
{
	memset(res, 0, sizeof(*res));
	int64_t start = kt_now_ms();
	if (n_paths == 0)
		return kt_error_set(err, KT_EUSAGE, "nothing to back up (give files or directories)");
	trie root;
	memset(&root, 0, sizeof(root));
	kt_code c = KT_OK;
	for (size_t i = 0; !c && i < n_paths; i++)
		c = trie_add(&root, paths[i], err);
	bctx b;
	memset(&b, 0, sizeof(b));
	b.a = a;
	b.o = o;
	b.res = res;
	b.level = o && o->compression_level ? (o->compression_level < 0 ? 0 : o->compression_level)
	                                    : 3;
	pack_init(&b.data, KT_BLOB_DATA, a->pack_size);
	pack_init(&b.tree, KT_BLOB_TREE, a->pack_size);
	kt_buf_init(&b.chunk, KT_CHUNKER_MAX_CHUNK + 1);
	b.slice = kt_xmalloc(SLICE);
	kt_repo_tree top = { 0 };
	size_t cap = 0;
	b.path[0] = '/';
	b.path[1] = '\0';
	for (size_t i = 0; !c && i < root.n; i++) {
		kt_repo_node nd;
		memset(&nd, 0, sizeof(nd));
		c = emit(&b, &root.kids[i], 1, &nd, 0, err);
		b.path[1] = '\0';
		if (!c)
			tree_add(&top, &cap, &nd);
		else {
			free(nd.name);
			free(nd.content);
			free(nd.target);
		}
	}
	kt_repo_snapshot snap;
	memset(&snap, 0, sizeof(snap));
	if (!c)
		c = tree_blob(&b, &top, snap.tree, err);
	kt_repo_tree_release(&top);
	/* Packs, then the index naming them, then the snapshot. */
	if (!c)
		c = pack_flush(&b, &b.data, err);
	if (!c)
		c = pack_flush(&b, &b.tree, err);
	if (!c)
		c = write_index(&b, err);
	if (!c) {
		struct timespec now;
		clock_gettime(CLOCK_REALTIME, &now);
		struct tm tm;
		gmtime_r(&now.tv_sec, &tm);
		char base[24];
		strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
		snprintf(snap.time, sizeof(snap.time), "%.19s.%09ldZ", base,
		         (long)(now.tv_nsec % 1000000000L));
		if (o && o->hostname && *o->hostname)
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
		snap.files = res->files;
		snap.bytes = res->bytes;
		snap.added_bytes = res->bytes_new;
		kt_buf enc;
		kt_buf_init(&enc, 16u << 20);
		c = kt_repo_snapshot_encode(&snap, &enc, err);
		if (!c)
			c = kt_archive_put_sealed(a, "snapshots", KT_AAD_SNAPSHOT, enc.data, enc.len,
			                          res->snapshot_id, &res->stored_bytes, err);
		kt_buf_release(&enc);
	}
	/* Blobs of packs that never made it out are not in the repository. */
	if (c)
		kt_archive_forget_pending(a, PENDING);
	for (size_t i = 0; i < b.n_done; i++)
		free(b.done[i].entries);
	free(b.done);
	pack_release(&b.data);
	pack_release(&b.tree);
	kt_buf_release(&b.chunk);
	free(b.slice);
	trie_free(&root);
	res->duration_ms = kt_now_ms() - start;
	return c;
}
