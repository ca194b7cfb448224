/*
 * delta.c - delta-encoded files (docs/repository-format.md, "Delta-encoded
 * files"): the codec (one zstd frame with the base file as prefix), the
 * choice between a delta and a keyframe, and decoding a chain of deltas.
 *
 * Invariants:
 *   1. A delta node is only written when its base node has a sha256 and
 *      the base's bytes (from a local file or the repository) hash to it;
 *      the node records the SHA-256 of the new file.  A decoded file is
 *      only ever given its name after its SHA-256 matched.
 *   2. Depth strictly grows along a chain (base depth + 1), so decoding a
 *      chain terminates after at most KT_REPO_MAX_DELTA_DEPTH steps, and a
 *      writer keeps depth x size under KT_DELTA_WORK_LIMIT.
 *   3. Memory: no file is read into the heap.  The base and the new file
 *      are mmap'ed (the page cache holds them, not malloc); zstd works
 *      with a stable input (encode) and a stable output (decode: the
 *      target file mapped), so it allocates no window buffer of its own.
 *      Patch bytes go through 1 MiB buffers and a temp file.  Mapped pages
 *      count as resident, so every RSS_WINDOW bytes of progress the pages
 *      touched so far are given back (drop_pages: madvise MADV_DONTNEED);
 *      zstd's references further back fault them in again from the page
 *      cache.  The encoder gets its input in RSS_WINDOW slices (a stable
 *      input may grow).
 *   4. Temp files are unlinked at creation (O_TMPFILE, or a random name
 *      removed at once), mode 0600: nothing is left after a crash.
 */
#define ZSTD_STATIC_LINKING_ONLY   /* ZSTD_c_stableInBuffer, ZSTD_d_stableOutBuffer */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>
#include <openssl/evp.h>

#include "blobio.h"
#include "delta.h"

struct kt_delta_base {
	int fd;
	const uint8_t *map;        /* NULL when size is 0 */
	uint64_t size;
	uint8_t tree[32];          /* the tree blob holding the base node */
	char *name;
	uint8_t sha256[32];
	uint32_t depth;            /* the base's own depth (0 = plain) */
	uint32_t max_depth;        /* K */
	int level;                 /* zstd level of the patch */
};

/* The last file check decoded (check walks a chain base first, so the
 * next delta's base is usually this one: one decode per delta, not one
 * per delta per depth). */
struct kt_delta_cache {
	int fd;                    /* -1: empty */
	uint8_t tree[32];
	char name[KT_REPO_MAX_NAME + 1];
	uint64_t size;
};

/* ------------------------------------------------------------------ */
/* Helpers: SHA-256, temp files, mapping. */

#define RSS_WINDOW (8u << 20)   /* mapped bytes touched between two drop_pages */
#define DECODE_SLICE 1024u      /* patch bytes per decompress call */

/*
 * Give back the resident pages of map[from, to) (invariant 3): they are
 * file pages, clean (read-only private maps) or already in the page cache
 * (shared maps: a dirty page stays dirty there), so a later access faults
 * them in again from the cache; nothing is lost.  Bounds the peak RSS of a
 * delta to a few windows instead of base + file.
 */
static void drop_pages(const uint8_t *map, uint64_t from, uint64_t to)
{
	uint64_t pg = (uint64_t)sysconf(_SC_PAGESIZE);
	from -= from % pg;
	if (map && to > from)
		madvise((void *)(map + from), (size_t)(to - from), MADV_DONTNEED);
}

/* p is always a mapping: its pages are dropped as they are hashed. */
static void sha256_of(const uint8_t *p, uint64_t n, uint8_t out[32])
{
	const uint8_t *map = p;
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	if (!m || !EVP_DigestInit_ex(m, EVP_sha256(), NULL))
		abort();
	while (n) {
		size_t step = n > (1u << 20) ? (1u << 20) : (size_t)n;
		EVP_DigestUpdate(m, p, step);
		p += step;
		n -= step;
		if ((uint64_t)(p - map) % RSS_WINDOW == 0 || !n)
			drop_pages(map, 0, (uint64_t)(p - map));
	}
	unsigned len = 32;
	EVP_DigestFinal_ex(m, out, &len);
	EVP_MD_CTX_free(m);
}

/* An unlinked, empty 0600 file in directory dirfd. */
static int temp_file(int dirfd, kt_error *err)
{
	int fd = openat(dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0)
		return fd;
	static unsigned counter;
	for (int i = 0; i < 100; i++) {
		char name[64];
		snprintf(name, sizeof(name), ".kontinuity-delta-%ld-%u-%lld", (long)getpid(),
		         __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED), (long long)kt_now_ms());
		fd = openat(dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd >= 0) {
			unlinkat(dirfd, name, 0);
			return fd;
		}
		if (errno != EEXIST)
			break;
	}
	kt_error_sys(err, kt_code_from_errno(errno), errno, "cannot create a temporary file for "
	             "a delta (free space next to the target or in $TMPDIR)");
	return -1;
}

static int open_tmpdir(kt_error *err)
{
	const char *dir = getenv("TMPDIR");
	if (!dir || !*dir)
		dir = "/tmp";
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		kt_error_sys(err, kt_code_from_errno(errno), errno, "cannot open the temporary "
		             "directory '%s' (set TMPDIR)", dir);
	return fd;
}

static kt_code map_file(int fd, uint64_t size, int writable, uint8_t **out, const char *what,
                        kt_error *err)
{
	*out = NULL;
	if (size == 0)
		return KT_OK;
	if (size > SIZE_MAX)
		return kt_error_set(err, KT_ELIMIT, "'%s' is too large to map", what);
	void *p = mmap(NULL, (size_t)size, writable ? PROT_READ | PROT_WRITE : PROT_READ,
	               writable ? MAP_SHARED : MAP_PRIVATE, fd, 0);
	if (p == MAP_FAILED)
		return kt_error_sys(err, kt_code_from_errno(errno), errno, "cannot map '%s'", what);
	madvise(p, (size_t)size, MADV_SEQUENTIAL);
	*out = p;
	return KT_OK;
}

static void unmap(const void *p, uint64_t size)
{
	if (p)
		munmap((void *)p, (size_t)size);
}

/* The window log that lets a frame of n bytes reference a prefix of
 * base bytes; 0 when no window is large enough. */
static unsigned window_log(uint64_t base, uint64_t n)
{
	uint64_t need = base + n;
	unsigned lg = ZSTD_WINDOWLOG_MIN;
	while (lg <= KT_DELTA_WINDOW_LOG_MAX && (1ull << lg) < need)
		lg++;
	return lg > KT_DELTA_WINDOW_LOG_MAX ? 0 : lg;
}

static uint32_t node_depth(const kt_repo_node *nd)
{
	return nd->has_delta ? nd->delta_depth : 0;
}

/* ------------------------------------------------------------------ */
/* Finding nodes. */

/* Is tree id indexed as a tree?  (Errors name it, for check.) */
static kt_code tree_known(kt_archive *a, const uint8_t id[32], kt_error *err)
{
	kt_loc loc, *l = kt_archive_find(a, id, &loc) ? &loc : NULL;
	char hex[65];
	kt_hex(hex, id, 32);
	if (!l || l->type != KT_BLOB_TREE)
		return kt_error_set(err, KT_ECORRUPT, "delta base tree %.16s is %s (run `kontinuity "
		                    "repo check`)", hex, l ? "a data blob" : "in no index");
	return KT_OK;
}

/* The base node of delta node nd, in *t (release it).  Checks what the
 * format promises about a base. */
static kt_code find_base(kt_archive *a, const kt_repo_node *nd, kt_repo_tree *t,
                         const kt_repo_node **out, kt_error *err)
{
	*out = NULL;
	memset(t, 0, sizeof(*t));
	kt_code c = tree_known(a, nd->delta_tree, err);
	const kt_repo_node *b = NULL;
	if (!c && (c = kt_archive_dir_find(a, nd->delta_tree, nd->delta_name, 1, t, &b, err))) {
		char hex[65];
		kt_hex(hex, nd->delta_tree, 32);
		kt_error_wrap(err, "delta base tree %.16s", hex);
	}
	if (c)
		return c;
	if (b) {
		if (b->type != KT_NODE_FILE || !b->has_sha256)
			return kt_error_set(err, KT_ECORRUPT, "the delta base '%s' of '%s' is not a file "
			                    "with a sha256", b->name, nd->name);
		if (node_depth(b) + 1 != nd->delta_depth)
			return kt_error_set(err, KT_ECORRUPT, "the delta base '%s' of '%s' has depth %u, "
			                    "the delta says %u", b->name, nd->name, node_depth(b),
			                    nd->delta_depth - 1);
		*out = b;
		return KT_OK;
	}
	char hex[65];
	kt_hex(hex, nd->delta_tree, 32);
	return kt_error_set(err, KT_ECORRUPT, "the delta base '%s' of '%s' is not in tree %.16s",
	                    nd->delta_name, nd->name, hex);
}

kt_code kt_delta_check_base(kt_archive *a, const kt_repo_node *nd, kt_error *err)
{
	kt_repo_tree t;
	const kt_repo_node *b;
	kt_code c = find_base(a, nd, &t, &b, err);
	kt_repo_tree_release(&t);
	return c;
}

/* ------------------------------------------------------------------ */
/* Decoding: the bytes of any file node into an empty file. */

static kt_code materialize(kt_archive *a, const kt_repo_node *nd, int outfd, int tmpdirfd,
                           const kt_delta_cache *cache, kt_error *err);

/* Plain node: its blobs in order; SHA-256 checked when recorded. */
static kt_code write_plain(kt_archive *a, const kt_repo_node *nd, int outfd, kt_error *err)
{
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	if (!m || !EVP_DigestInit_ex(m, EVP_sha256(), NULL))
		abort();
	kt_buf blob;
	kt_buf_init(&blob, KT_REPO_MAX_BLOB + 1);
	kt_code c = KT_OK;
	uint64_t off = 0;
	for (size_t i = 0; !c && i < nd->n_content; i++) {
		if ((c = kt_archive_read_blob(a, nd->content[i], &blob, err))) {
			char hex[65];
			kt_hex(hex, nd->content[i], 32);
			kt_error_wrap(err, "'%s': blob %.16s", nd->name, hex);
			break;
		}
		if (off + blob.len > nd->size) {
			c = kt_error_set(err, KT_ECORRUPT, "'%s': its blobs hold more than the %llu bytes "
			                 "the tree says", nd->name, (unsigned long long)nd->size);
			break;
		}
		for (size_t done = 0; done < blob.len;) {
			ssize_t w = pwrite(outfd, blob.data + done, blob.len - done, (off_t)(off + done));
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0) {
				c = kt_error_sys(err, kt_code_from_errno(errno), errno, "cannot write the "
				                 "restored '%s'", nd->name);
				break;
			}
			done += (size_t)w;
		}
		EVP_DigestUpdate(m, blob.data, blob.len);
		off += blob.len;
	}
	kt_buf_release(&blob);
	uint8_t got[32];
	unsigned len = 32;
	EVP_DigestFinal_ex(m, got, &len);
	EVP_MD_CTX_free(m);
	if (!c && off != nd->size)
		c = kt_error_set(err, KT_ECORRUPT, "'%s': its blobs hold %llu bytes, the tree says %llu",
		                 nd->name, (unsigned long long)off, (unsigned long long)nd->size);
	if (!c && nd->has_sha256 && memcmp(got, nd->sha256, 32))
		c = kt_error_set(err, KT_ECORRUPT, "'%s': the restored bytes do not match the "
		                 "recorded SHA-256", nd->name);
	return c;
}

/* Delta node: its base into a temp file, then the patch frame into outfd. */
static kt_code write_delta(kt_archive *a, const kt_repo_node *nd, int outfd, int tmpdirfd,
                           const kt_delta_cache *cache, kt_error *err)
{
	kt_repo_tree t;
	const kt_repo_node *bn;
	kt_code c = find_base(a, nd, &t, &bn, err);
	int basefd = -1;
	uint64_t bsize = bn ? bn->size : 0;
	if (!c && window_log(bsize, nd->size) == 0)
		c = kt_error_set(err, KT_ECORRUPT, "'%s': base and file exceed the largest zstd window",
		                 nd->name);
	if (!c && cache && cache->fd >= 0 && !memcmp(cache->tree, nd->delta_tree, 32) &&
	    !strcmp(cache->name, nd->delta_name) && cache->size == bsize) {
		if ((basefd = dup(cache->fd)) < 0)
			c = kt_error_sys(err, kt_code_from_errno(errno), errno, "cannot reuse a decoded "
			                 "base");
	} else if (!c) {
		if ((basefd = temp_file(tmpdirfd, err)) < 0)
			c = err->code;
		else
			c = materialize(a, bn, basefd, tmpdirfd, cache, err);
	}
	kt_repo_tree_release(&t);
	uint8_t *base = NULL, *out = NULL;
	if (!c)
		c = map_file(basefd, bsize, 0, &base, nd->name, err);
	if (!c && ftruncate(outfd, (off_t)nd->size) != 0)
		c = kt_error_sys(err, kt_code_from_errno(errno), errno, "cannot size the restored "
		                 "'%s'", nd->name);
	if (!c)
		c = map_file(outfd, nd->size, 1, &out, nd->name, err);
	ZSTD_DCtx *d = c ? NULL : ZSTD_createDCtx();
	if (!c && (!d || ZSTD_isError(ZSTD_DCtx_setParameter(d, ZSTD_d_windowLogMax,
	                                                     KT_DELTA_WINDOW_LOG_MAX)) ||
	           ZSTD_isError(ZSTD_DCtx_setParameter(d, ZSTD_d_stableOutBuffer, 1)) ||
	           ZSTD_isError(ZSTD_DCtx_refPrefix(d, base, (size_t)bsize))))
		c = kt_error_set(err, KT_ENOMEM, "cannot set up zstd to decode '%s'", nd->name);
	kt_buf blob;
	kt_buf_init(&blob, KT_REPO_MAX_BLOB + 1);
	ZSTD_outBuffer ob = { out, (size_t)nd->size, 0 };
	size_t ret = 1, dropped_at = 0;
	for (size_t i = 0; !c && i < nd->n_content; i++) {
		char hex[65];
		kt_hex(hex, nd->content[i], 32);
		if ((c = kt_archive_read_blob(a, nd->content[i], &blob, err))) {
			kt_error_wrap(err, "'%s': delta patch blob %.16s", nd->name, hex);
			break;
		}
		/* The patch in small slices: a call decodes at most ~100 blocks
		 * (128 KiB each), so the pages can be given back in between. */
		ZSTD_inBuffer ib = { blob.data, blob.len < DECODE_SLICE ? blob.len : DECODE_SLICE, 0 };
		while (!c && ib.pos < blob.len) {
			if (ib.pos == ib.size)
				ib.size = blob.len - ib.size < DECODE_SLICE ? blob.len : ib.size + DECODE_SLICE;
			if (ob.pos - dropped_at >= RSS_WINDOW) {
				drop_pages(out, 0, ob.pos);
				drop_pages(base, 0, bsize);
				dropped_at = ob.pos;
			}
			if (ret == 0) {
				c = kt_error_set(err, KT_ECORRUPT, "'%s': bytes after the end of the delta "
				                 "(blob %.16s)", nd->name, hex);
				break;
			}
			size_t before = ib.pos + ob.pos;
			ret = ZSTD_decompressStream(d, &ob, &ib);
			if (ZSTD_isError(ret))
				c = kt_error_set(err, KT_ECORRUPT, "'%s': the delta does not decode at blob "
				                 "%.16s: %s", nd->name, hex, ZSTD_getErrorName(ret));
			else if (ret && ib.pos + ob.pos == before)
				c = kt_error_set(err, KT_ECORRUPT, "'%s': the delta decodes to more than the "
				                 "%llu bytes the tree says", nd->name,
				                 (unsigned long long)nd->size);
		}
	}
	if (!c && (ret != 0 || ob.pos != nd->size))
		c = kt_error_set(err, KT_ECORRUPT, "'%s': the delta is truncated (%zu of %llu bytes)",
		                 nd->name, ob.pos, (unsigned long long)nd->size);
	kt_buf_release(&blob);
	ZSTD_freeDCtx(d);
	if (!c) {
		uint8_t got[32];
		sha256_of(out, nd->size, got);
		if (memcmp(got, nd->sha256, 32))
			c = kt_error_set(err, KT_ECORRUPT, "'%s': the decoded delta does not match the "
			                 "recorded SHA-256 (the repository is damaged; run `kontinuity "
			                 "repo check --read-data`)", nd->name);
	}
	unmap(out, nd->size);
	unmap(base, bsize);
	if (basefd >= 0)
		close(basefd);
	return c;
}

static kt_code materialize(kt_archive *a, const kt_repo_node *nd, int outfd, int tmpdirfd,
                           const kt_delta_cache *cache, kt_error *err)
{
	kt_archive_lock_tick(a);
	if (nd->type != KT_NODE_FILE)
		return kt_error_set(err, KT_ECORRUPT, "'%s' is not a file", nd->name);
	return nd->has_delta ? write_delta(a, nd, outfd, tmpdirfd, cache, err)
	                     : write_plain(a, nd, outfd, err);
}

/* ------------------------------------------------------------------ */
/* Restore and verify. */

kt_code kt_delta_restore(kt_archive *a, int dirfd, const kt_repo_node *nd, const char *path,
                         int owners, kt_error *err)
{
	char part[300];
	snprintf(part, sizeof(part), ".%s.kontinuity-part", nd->name);
	int fd = openat(dirfd, part, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return kt_error_sys(err, kt_code_from_errno(errno), errno, "cannot create '%s'", path);
	kt_code c = materialize(a, nd, fd, dirfd, NULL, err);
	if (c)
		kt_error_wrap(err, "cannot restore '%s'", path);
	if (!c && fsync(fd) != 0)
		c = kt_error_sys(err, kt_code_from_errno(errno), errno, "cannot write '%s'", path);
	if (!c) {
		if (owners && fchown(fd, nd->uid, nd->gid) != 0)
			kt_log(KT_LOG_WARN, "cannot give '%s' its owner", path);
		fchmod(fd, nd->mode & 07777);
		struct timespec ts[2];
		if (kt_archive_parse_time(nd->mtime, &ts[1]) == 0) {
			ts[0] = ts[1];
			futimens(fd, ts);
		}
	}
	close(fd);
	if (!c && renameat(dirfd, part, dirfd, nd->name) != 0)
		c = kt_error_sys(err, kt_code_from_errno(errno), errno, "cannot name '%s'", path);
	if (c)
		unlinkat(dirfd, part, 0);
	return c;
}

kt_delta_cache *kt_delta_cache_new(void)
{
	kt_delta_cache *k = kt_xcalloc(1, sizeof(*k));
	k->fd = -1;
	return k;
}

void kt_delta_cache_free(kt_delta_cache *k)
{
	if (!k)
		return;
	if (k->fd >= 0)
		close(k->fd);
	free(k);
}

kt_code kt_delta_verify(kt_archive *a, const kt_repo_node *nd, const uint8_t tree[32],
                        kt_delta_cache *cache, kt_error *err)
{
	int dirfd = open_tmpdir(err);
	if (dirfd < 0)
		return err->code;
	int fd = temp_file(dirfd, err);
	kt_code c = fd < 0 ? err->code : materialize(a, nd, fd, dirfd, cache, err);
	close(dirfd);
	if (!c && cache && strlen(nd->name) <= KT_REPO_MAX_NAME) {   /* keep it for the next */
		if (cache->fd >= 0)
			close(cache->fd);
		cache->fd = fd;
		memcpy(cache->tree, tree, 32);
		snprintf(cache->name, sizeof(cache->name), "%s", nd->name);
		cache->size = nd->size;
		fd = -1;
	}
	if (fd >= 0)
		close(fd);
	return c;
}

/* ------------------------------------------------------------------ */
/* Preparing a backup: the base. */

typedef struct cand {
	uint8_t tree[32];
	kt_repo_node nd;           /* taken over from the decoded tree */
} cand;

typedef struct cands {
	cand *v;
	size_t n, cap;
} cands;

/* Every file node with a sha256 under tree id (the snapshot's own trees,
 * not the bases its deltas name). */
static kt_code collect(kt_archive *a, const uint8_t id[32], cands *out, int depth, kt_error *err)
{
	if (depth > 256)
		return kt_error_set(err, KT_ECORRUPT, "trees nest deeper than 256 levels");
	kt_repo_tree t = { 0 };
	kt_archive_dir dir;
	kt_code c = tree_known(a, id, err);
	if (!c)   /* (content lists unread: only the base picked needs its ids) */
		c = kt_archive_dir_open(a, id, 0, NULL, NULL, &dir, err);
	else
		memset(&dir, 0, sizeof(dir));
	for (size_t i = 0;; i++) {
		if (!c && i == t.n) {   /* the next part (a tree index) */
			kt_repo_tree_release(&t);
			i = 0;
			c = kt_archive_dir_next(&dir, &t, err);
		}
		if (c || i == t.n)
			break;
		kt_repo_node *nd = &t.nodes[i];
		if (nd->type == KT_NODE_DIR) {
			c = collect(a, nd->subtree, out, depth + 1, err);
			continue;
		}
		if (nd->type != KT_NODE_FILE || !nd->has_sha256)
			continue;
		if (out->n == out->cap) {
			out->cap = out->cap ? out->cap * 2 : 4;
			out->v = realloc(out->v, out->cap * sizeof(cand));
			if (!out->v)
				abort();
		}
		cand *k = &out->v[out->n++];
		memcpy(k->tree, id, 32);
		k->nd = *nd;              /* take the node's allocations */
		memset(nd, 0, sizeof(*nd));
		nd->name = kt_xstrdup(k->nd.name);   /* so the tree stays sorted for release */
	}
	kt_repo_tree_release(&t);
	kt_archive_dir_close(&dir);
	return c;
}

static void cands_free(cands *cs)
{
	for (size_t i = 0; i < cs->n; i++)
		kt_repo_node_release(&cs->v[i].nd);
	free(cs->v);
}

void kt_delta_base_free(kt_delta_base *b)
{
	if (!b)
		return;
	unmap(b->map, b->size);
	if (b->fd >= 0)
		close(b->fd);
	free(b->name);
	free(b);
}

/* Does the local file at path hold the base's bytes?  Its fd if so, else -1. */
static int local_base(const char *path, const kt_repo_node *nd)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != nd->size) {
		close(fd);
		return -1;
	}
	uint8_t *p = NULL;
	kt_error e;
	uint8_t got[32];
	if (map_file(fd, nd->size, 0, &p, path, &e)) {
		close(fd);
		return -1;
	}
	sha256_of(p, nd->size, got);
	unmap(p, nd->size);
	if (memcmp(got, nd->sha256, 32)) {
		kt_log(KT_LOG_INFO, "'%s' does not hold the delta base's bytes; restoring the base "
		       "from the repository", path);
		close(fd);
		return -1;
	}
	return fd;
}

kt_code kt_delta_prepare(kt_archive *a, const kt_archive_backup_opts *o,
                         const char *const *paths, size_t n_paths, kt_delta_base **out,
                         kt_error *err)
{
	*out = NULL;
	if (!o || !o->delta_parent || !*o->delta_parent)
		return KT_OK;
	char id[65];
	kt_code c = kt_archive_find_snapshot(a, o->delta_parent, id, err);
	if (c == KT_ENOTFOUND && !strcmp(o->delta_parent, "latest"))
		return KT_OK;   /* the first backup of a repository: nothing to encode against */
	if (c)
		return kt_error_wrap(err, "delta parent");
	kt_repo_snapshot s;
	if ((c = kt_archive_load_snapshot(a, id, &s, err)))
		return c;
	cands cs = { NULL, 0, 0 };
	c = collect(a, s.tree, &cs, 0, err);
	kt_repo_snapshot_release(&s);
	if (c) {
		cands_free(&cs);
		return kt_error_wrap(err, "delta parent %.8s", id);
	}
	/* Same name as a given path's last component, else the only one. */
	cand *pick = NULL;
	for (size_t i = 0; !pick && i < cs.n; i++)
		for (size_t j = 0; !pick && j < n_paths; j++) {
			const char *slash = strrchr(paths[j], '/');
			if (!strcmp(slash ? slash + 1 : paths[j], cs.v[i].nd.name))
				pick = &cs.v[i];
		}
	if (!pick && cs.n == 1)
		pick = &cs.v[0];
	if (!pick) {
		kt_log(KT_LOG_INFO, "snapshot %.8s holds %zu files with a sha256 and none named like "
		       "the new one: no delta base, storing pages", id, cs.n);
		cands_free(&cs);
		return KT_OK;
	}
	kt_delta_base *b = kt_xcalloc(1, sizeof(*b));
	b->fd = -1;
	memcpy(b->tree, pick->tree, 32);
	b->name = kt_xstrdup(pick->nd.name);
	memcpy(b->sha256, pick->nd.sha256, 32);
	b->size = pick->nd.size;
	b->depth = node_depth(&pick->nd);
	b->max_depth = o->delta_max_depth ? o->delta_max_depth : KT_DELTA_DEFAULT_MAX_DEPTH;
	if (b->max_depth > KT_REPO_MAX_DELTA_DEPTH)
		b->max_depth = KT_REPO_MAX_DELTA_DEPTH;
	b->level = o->compression_level > 0 ? o->compression_level : 3;
	if (b->depth + 1 > b->max_depth) {   /* a keyframe is due whatever the file: skip the work */
		kt_delta_base_free(b);
		cands_free(&cs);
		return KT_OK;
	}
	if (o->delta_base_path && *o->delta_base_path)
		b->fd = local_base(o->delta_base_path, &pick->nd);
	if (b->fd < 0) {
		kt_error e;
		int dirfd = open_tmpdir(&e);
		if (dirfd >= 0) {
			b->fd = temp_file(dirfd, &e);
			kt_repo_tree one = { &pick->nd, 1 };   /* its ids, read only now */
			if (b->fd >= 0 && (kt_archive_lists_load(a, &one, &e) ||
			                   materialize(a, &pick->nd, b->fd, dirfd, NULL, &e))) {
				close(b->fd);
				b->fd = -1;
			}
			close(dirfd);
		}
		if (b->fd < 0)
			kt_log(KT_LOG_WARN, "cannot get the delta base '%s' from snapshot %.8s (%s); "
			       "storing pages", b->name, id, e.msg);
	}
	uint8_t *map = NULL;
	kt_error e;
	if (b->fd >= 0 && map_file(b->fd, b->size, 0, &map, b->name, &e)) {
		kt_log(KT_LOG_WARN, "%s; storing pages", e.msg);
		close(b->fd);
		b->fd = -1;
	}
	cands_free(&cs);
	if (b->fd < 0) {
		kt_delta_base_free(b);
		return KT_OK;
	}
	b->map = map;
	*out = b;
	return KT_OK;
}

/* ------------------------------------------------------------------ */
/* Encoding. */

/* What storing the file as pages would add, in bytes (sealed blobs and
 * index entries for every page the repository does not hold), or more
 * than stop once it is clear. */
static uint64_t pages_cost(kt_archive *a, const uint8_t *p, uint64_t size, uint64_t stop)
{
	kt_chunker ch;
	kt_error e;
	if (kt_chunker_init(&ch, &a->chunk_etcd, a->keys.id, &e))
		return UINT64_MAX;
	kt_blobio *io = kt_blobio_new(&a->keys);
	ZSTD_CCtx *z = ZSTD_createCCtx();
	size_t cap = ZSTD_compressBound(KT_CHUNKER_MAX_CHUNK > 65536 ? 65536 : KT_CHUNKER_MAX_CHUNK);
	uint8_t *tmp = kt_xmalloc(cap);
	uint64_t cost = 0, off = 0, start = 0, dropped_at = 0;
	while (off < size && cost <= stop) {
		if (off - dropped_at >= RSS_WINDOW) {
			drop_pages(p, 0, off);
			dropped_at = off;
		}
		int cut = 0;
		off += kt_chunker_scan(&ch, p + off, (size_t)(size - off), &cut);
		if (!cut && off < size)
			continue;
		if (!cut)
			kt_chunker_finish(&ch);
		size_t n = (size_t)(off - start);
		uint8_t id[32];
		kt_blobio_id(io, p + start, n, id);
		if (!kt_archive_find(a, id, NULL)) {
			size_t z_n = n <= 65536 ? ZSTD_compressCCtx(z, tmp, cap, p + start, n, 3) : n;
			if (ZSTD_isError(z_n) || z_n > n - n / 8)
				z_n = n;
			cost += z_n + KT_REPO_SEAL_OVERHEAD + 2 * KT_REPO_ENTRY_SIZE;
		}
		cost += 32;   /* its id in the content list */
		start = off;
	}
	free(tmp);
	ZSTD_freeCCtx(z);
	kt_blobio_free(io);
	return cost;
}

/* Compress p (n bytes) against b into the temp file fd; its length. */
static kt_code compress_patch(const kt_delta_base *b, const uint8_t *p, uint64_t n, unsigned wlog,
                              int fd, uint64_t *out_len, const char *path, kt_error *err)
{
	ZSTD_CCtx *z = ZSTD_createCCtx();
	const char *ldm = getenv("KONTINUITY_DELTA_LDM");   /* measurement switch (0 = off) */
	int use_ldm = !(ldm && !strcmp(ldm, "0"));
	if (!z || ZSTD_isError(ZSTD_CCtx_setParameter(z, ZSTD_c_compressionLevel, b->level)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(z, ZSTD_c_windowLog, (int)wlog)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(z, ZSTD_c_enableLongDistanceMatching,
	                                        use_ldm ? ZSTD_ps_enable : ZSTD_ps_disable)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(z, ZSTD_c_checksumFlag, 1)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(z, ZSTD_c_stableInBuffer, 1)) ||
	    ZSTD_isError(ZSTD_CCtx_setPledgedSrcSize(z, n)) ||
	    ZSTD_isError(ZSTD_CCtx_refPrefix(z, b->map, (size_t)b->size))) {
		ZSTD_freeCCtx(z);
		return kt_error_set(err, KT_ENOMEM, "cannot set up zstd to encode '%s'", path);
	}
	size_t cap = 1u << 20;
	uint8_t *buf = kt_xmalloc(cap);
	ZSTD_inBuffer ib = { p, n < RSS_WINDOW ? (size_t)n : RSS_WINDOW, 0 };
	kt_code c = KT_OK;
	uint64_t total = 0;
	for (;;) {
		if (ib.pos == ib.size && ib.size < n) {   /* the next slice; give back the last */
			drop_pages(p, 0, ib.pos);
			drop_pages(b->map, 0, b->size);
			ib.size = n - ib.size < RSS_WINDOW ? (size_t)n : ib.size + RSS_WINDOW;
		}
		ZSTD_outBuffer ob = { buf, cap, 0 };
		size_t ret = ZSTD_compressStream2(z, &ob, &ib, ib.size == n ? ZSTD_e_end
		                                                             : ZSTD_e_continue);
		if (ZSTD_isError(ret)) {
			c = kt_error_set(err, KT_EIO, "cannot encode '%s' as a delta: %s", path,
			                 ZSTD_getErrorName(ret));
			break;
		}
		for (size_t done = 0; done < ob.pos;) {
			ssize_t w = write(fd, buf + done, ob.pos - done);
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0) {
				c = kt_error_sys(err, kt_code_from_errno(errno), errno, "cannot write the "
				                 "delta of '%s' to a temporary file", path);
				break;
			}
			done += (size_t)w;
		}
		total += ob.pos;
		if (c || (ret == 0 && ib.size == n))
			break;
	}
	drop_pages(b->map, 0, b->size);
	free(buf);
	ZSTD_freeCCtx(z);
	*out_len = total;
	return c;
}

kt_code kt_delta_encode(kt_archive *a, const kt_delta_base *b, int fd, const char *path,
                        kt_delta_add_fn add, void *ctx, kt_repo_node *nd, int *done,
                        kt_error *err)
{
	*done = 0;
	struct stat st;
	if (!b || fstat(fd, &st) != 0 || st.st_size <= 0)
		return KT_OK;
	uint64_t size = (uint64_t)st.st_size;
	uint64_t kmax = KT_DELTA_WORK_LIMIT / size;
	if (kmax > b->max_depth)
		kmax = b->max_depth;
	if (kmax < 1)
		kmax = 1;
	if (b->depth + 1 > kmax) {
		kt_log(KT_LOG_INFO, "'%s': keyframe (the delta chain would be %u deep, at most %llu)",
		       path, b->depth + 1, (unsigned long long)kmax);
		return KT_OK;
	}
	unsigned wlog = window_log(b->size, size);
	if (!wlog) {
		kt_log(KT_LOG_INFO, "'%s': keyframe (base and file exceed zstd's window)", path);
		return KT_OK;
	}
	uint8_t *p = NULL;
	kt_code c = map_file(fd, size, 0, &p, path, err);
	if (c)
		return c;
	uint8_t sha[32];
	sha256_of(p, size, sha);
	int dirfd = open_tmpdir(err);
	int tfd = dirfd < 0 ? -1 : temp_file(dirfd, err);
	if (dirfd >= 0)
		close(dirfd);
	if (tfd < 0) {
		unmap(p, size);
		return err->code;
	}
	uint64_t plen = 0;
	c = compress_patch(b, p, size, wlog, tfd, &plen, path, err);
	uint64_t pages = c || plen >= size ? 0 : pages_cost(a, p, size, plen);
	unmap(p, size);
	if (!c && pages <= plen) {
		kt_log(KT_LOG_INFO, "'%s': keyframe (the delta, %llu bytes, is not smaller than the "
		       "new pages)", path, (unsigned long long)plen);
		close(tfd);
		return KT_OK;
	}
	/* The patch into blobs. */
	kt_buf blob;
	kt_buf_init(&blob, KT_REPO_MAX_BLOB + 1);
	uint8_t (*ids)[32] = NULL;
	size_t n_ids = 0;
	uint64_t off = 0;
	uint8_t *slice = c ? NULL : kt_xmalloc(KT_DELTA_PATCH_BLOB);
	while (!c && off < plen) {
		size_t want = plen - off > KT_DELTA_PATCH_BLOB ? KT_DELTA_PATCH_BLOB
		                                                : (size_t)(plen - off);
		ssize_t r = pread(tfd, slice, want, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			c = kt_error_sys(err, KT_EIO, r < 0 ? errno : EIO, "cannot read back the delta "
			                 "of '%s'", path);
			break;
		}
		if ((c = kt_buf_add(&blob, slice, (size_t)r, err)))
			break;
		off += (uint64_t)r;
		if (blob.len < KT_DELTA_PATCH_BLOB && off < plen)
			continue;
		ids = realloc(ids, (n_ids + 1) * 32);
		if (!ids)
			abort();
		c = add(ctx, &blob, ids[n_ids], err);
		n_ids++;
	}
	free(slice);
	kt_buf_release(&blob);
	close(tfd);
	if (c) {
		free(ids);
		return c;
	}
	free(nd->content);
	nd->content = ids;
	nd->n_content = n_ids;
	nd->size = size;
	nd->has_sha256 = 1;
	memcpy(nd->sha256, sha, 32);
	nd->has_delta = 1;
	memcpy(nd->delta_tree, b->tree, 32);
	free(nd->delta_name);
	nd->delta_name = kt_xstrdup(b->name);
	nd->delta_depth = b->depth + 1;
	*done = 1;
	return KT_OK;
}
