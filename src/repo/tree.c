/*
 * tree.c - tree blobs (directory listings) and snapshot manifests, the
 * JSON documents of docs/repository-format.md "Trees and snapshots".
 *
 * Invariants:
 *   1. Decoders take hostile bytes (a corrupted repository, or one written
 *      by someone else): every field is type-checked, names can never
 *      escape the restore target (no '/', no "." or "..", no NUL), ids are
 *      64 hex digits, counts are bounded.  They are fuzzed.
 *   2. Encoders are canonical: nodes sorted by name bytewise, keys in a
 *      fixed order, so the same directory always makes the same blob (and
 *      the same blob id, so unchanged directories deduplicate).
 *   3. A delta node ("delta", docs/repository-format.md "Delta-encoded
 *      files") always has a sha256, a safe base name and 1 <= depth <= 100;
 *      snapshots that reach one are version 2, and versions above
 *      KT_REPO_SNAPSHOT_VERSION_MAX are refused by name.
 *   4. A file node holds exactly one of "content" (ids inline) or
 *      "content_list" (ids of list blobs) with "chunks", 1 <= number of
 *      list blobs <= chunks <= list blobs x KT_REPO_LIST_MAX_IDS; list
 *      blob bodies are checked by kt_repo_list_parse (sizes only: what the
 *      ids name is the archive's business).
 *   5. A tree index ("parts", docs/repository-format.md "Tree indexes")
 *      names 1..KT_REPO_MAX_TREE_PARTS parts sorted strictly by their
 *      safe first name, each with a count of 1..KT_REPO_MAX_TREE_NODES and
 *      a tree id; it has no other key.  Whether a part holds what its
 *      entry says (and is no index itself) is checked as it is read
 *      (kt_repo_treeidx_check_part; src/archive/dirwalk.c).
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "repo_int.h"

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int kt_repo_id_parse(const char *hex, uint8_t out[32])
{
	if (!hex || strlen(hex) != 64)
		return -1;
	for (int i = 0; i < 32; i++) {
		int a = hexval(hex[2 * i]), b = hexval(hex[2 * i + 1]);
		if (a < 0 || b < 0)
			return -1;
		out[i] = (uint8_t)(a << 4 | b);
	}
	return 0;
}

int kt_repo_name_ok(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > KT_REPO_MAX_NAME || !strcmp(name, ".") || !strcmp(name, ".."))
		return 0;
	return strchr(name, '/') == NULL;
}

void kt_repo_node_release(kt_repo_node *nd)
{
	free(nd->name);
	free(nd->target);
	free(nd->content);
	free(nd->content_list);
	free(nd->delta_name);
	memset(nd, 0, sizeof(*nd));
}

void kt_repo_tree_release(kt_repo_tree *t)
{
	for (size_t i = 0; i < t->n; i++)
		kt_repo_node_release(&t->nodes[i]);
	free(t->nodes);
	memset(t, 0, sizeof(*t));
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const kt_repo_node *)a)->name, ((const kt_repo_node *)b)->name);
}

static const char *const type_names[] = { "file", "dir", "symlink" };

void kt_repo_tree_sort(kt_repo_tree *t)
{
	qsort(t->nodes, t->n, sizeof(*t->nodes), by_name);
}

kt_code kt_repo_tree_encode(kt_repo_tree *t, kt_buf *out, kt_error *err)
{
	kt_repo_tree_sort(t);
	json_t *nodes = json_array();
	for (size_t i = 0; i < t->n; i++) {
		const kt_repo_node *nd = &t->nodes[i];
		if (i && !strcmp(nd->name, t->nodes[i - 1].name)) {
			json_decref(nodes);
			return kt_error_set(err, KT_EUSAGE, "two entries named '%s' in one directory",
			                    nd->name);
		}
		json_t *o = json_pack("{s:s, s:s, s:I, s:s, s:I, s:I}", "name", nd->name, "type",
		                      type_names[nd->type], "mode", (json_int_t)nd->mode, "mtime",
		                      nd->mtime, "uid", (json_int_t)nd->uid, "gid", (json_int_t)nd->gid);
		if (nd->type == KT_NODE_FILE) {
			json_t *c = json_array();
			size_t m = nd->n_content_list ? nd->n_content_list : nd->n_content;
			for (size_t j = 0; j < m; j++) {
				char hex[65];
				kt_hex(hex, nd->n_content_list ? nd->content_list[j] : nd->content[j], 32);
				json_array_append_new(c, json_string(hex));
			}
			json_object_set_new(o, "size", json_integer((json_int_t)nd->size));
			if (nd->ctime[0])
				json_object_set_new(o, "ctime", json_string(nd->ctime));
			if (nd->inode)
				json_object_set_new(o, "inode", json_integer((json_int_t)nd->inode));
			if (nd->device)
				json_object_set_new(o, "device", json_integer((json_int_t)nd->device));
			if (nd->n_content_list) {
				json_object_set_new(o, "chunks", json_integer((json_int_t)nd->list_chunks));
				json_object_set_new(o, "content_list", c);
			} else {
				json_object_set_new(o, "content", c);
			}
			if (nd->has_sha256 || nd->has_delta) {
				char hex[65];
				kt_hex(hex, nd->sha256, 32);
				json_object_set_new(o, "sha256", json_string(hex));
			}
			if (nd->has_delta) {
				char hex[65];
				kt_hex(hex, nd->delta_tree, 32);
				json_t *d = json_pack("{s:{s:s, s:s}, s:I}", "base", "tree", hex, "name",
				                      nd->delta_name ? nd->delta_name : "", "depth",
				                      (json_int_t)nd->delta_depth);
				json_object_set_new(o, "delta", d);
			}
		} else if (nd->type == KT_NODE_DIR) {
			char hex[65];
			kt_hex(hex, nd->subtree, 32);
			json_object_set_new(o, "subtree", json_string(hex));
		} else {
			json_object_set_new(o, "target", json_string(nd->target ? nd->target : ""));
		}
		json_array_append_new(nodes, o);
	}
	json_t *doc = json_pack("{s:o}", "nodes", nodes);
	char *text = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(doc);
	if (!text)
		return kt_error_set(err, KT_EUSAGE, "a name or link target is not valid UTF-8");
	kt_code c = kt_buf_adds(out, text, err);
	free(text);
	return c;
}

/* The string member key of o, or NULL. */
static const char *str(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* The optional "sha256" and "delta" of a file node. */
static kt_code decode_file_extra(json_t *o, kt_repo_node *nd, const char *name, kt_error *err)
{
	json_t *sha = json_object_get(o, "sha256");
	if (sha) {
		if (kt_repo_id_parse(json_string_value(sha), nd->sha256))
			return kt_error_set(err, KT_ECORRUPT, "tree: file '%s' has a bad sha256", name);
		nd->has_sha256 = 1;
	}
	json_t *d = json_object_get(o, "delta");
	if (!d)
		return KT_OK;
	json_t *base = json_object_get(d, "base");
	json_t *depth = json_object_get(d, "depth");
	const char *bname = str(base, "name");
	if (!json_is_object(d) || !json_is_object(base) || kt_repo_id_parse(str(base, "tree"),
	                                                                    nd->delta_tree))
		return kt_error_set(err, KT_ECORRUPT, "tree: delta file '%s' has a bad base tree id",
		                    name);
	if (!bname || !kt_repo_name_ok(bname) ||
	    strlen(bname) != json_string_length(json_object_get(base, "name")))
		return kt_error_set(err, KT_ECORRUPT, "tree: delta file '%s' has a bad base name", name);
	if (!json_is_integer(depth) || json_integer_value(depth) < 1 ||
	    json_integer_value(depth) > KT_REPO_MAX_DELTA_DEPTH)
		return kt_error_set(err, KT_ECORRUPT, "tree: delta file '%s' has a depth outside 1..%u",
		                    name, KT_REPO_MAX_DELTA_DEPTH);
	if (!nd->has_sha256)
		return kt_error_set(err, KT_ECORRUPT, "tree: delta file '%s' lacks its sha256", name);
	nd->has_delta = 1;
	nd->delta_depth = (uint32_t)json_integer_value(depth);
	nd->delta_name = kt_xstrdup(bname);
	return KT_OK;
}

/* The nodes of a parsed tree document (doc stays the caller's). */
static kt_code decode_nodes(json_t *doc, kt_repo_tree *out, kt_error *err)
{
	memset(out, 0, sizeof(*out));
	json_t *nodes = json_object_get(doc, "nodes");
	if (!doc || !json_is_array(nodes))
		return kt_error_set(err, KT_ECORRUPT, "tree: not a JSON object with \"nodes\"");
	size_t n = json_array_size(nodes);
	if (n > KT_REPO_MAX_TREE_NODES)
		return kt_error_set(err, KT_ECORRUPT, "tree: %zu entries exceed %u", n,
		                    KT_REPO_MAX_TREE_NODES);
	out->nodes = kt_xcalloc(n ? n : 1, sizeof(kt_repo_node));
	kt_code c = KT_OK;
	for (size_t i = 0; i < n && !c; i++) {
		json_t *o = json_array_get(nodes, i);
		kt_repo_node *nd = &out->nodes[i];
		const char *name = str(o, "name"), *type = str(o, "type"), *mtime = str(o, "mtime");
		json_t *mode = json_object_get(o, "mode");
		if (!name || !kt_repo_name_ok(name) || strlen(name) != json_string_length(
		            json_object_get(o, "name"))) {
			c = kt_error_set(err, KT_ECORRUPT, "tree: entry %zu has an unsafe or missing name",
			                 i);
			break;
		}
		out->n = i + 1;
		nd->name = kt_xstrdup(name);
		if (i && strcmp(out->nodes[i - 1].name, name) >= 0) {
			c = kt_error_set(err, KT_ECORRUPT, "tree: entries are not sorted or repeat "
			                 "('%s')", name);
			break;
		}
		if (!type || !json_is_integer(mode) || json_integer_value(mode) < 0 ||
		    json_integer_value(mode) > 07777 || !mtime || strlen(mtime) >= sizeof(nd->mtime)) {
			c = kt_error_set(err, KT_ECORRUPT, "tree: entry '%s' lacks type, mode or mtime",
			                 name);
			break;
		}
		nd->mode = (uint32_t)json_integer_value(mode);
		snprintf(nd->mtime, sizeof(nd->mtime), "%s", mtime);
		json_int_t uid = json_integer_value(json_object_get(o, "uid"));
		json_int_t gid = json_integer_value(json_object_get(o, "gid"));
		nd->uid = uid >= 0 && uid <= UINT32_MAX ? (uint32_t)uid : 0;
		nd->gid = gid >= 0 && gid <= UINT32_MAX ? (uint32_t)gid : 0;
		if (!strcmp(type, "file")) {
			nd->type = KT_NODE_FILE;
			json_t *content = json_object_get(o, "content");
			json_t *list = json_object_get(o, "content_list");
			json_t *size = json_object_get(o, "size");
			if (list) {
				if (content) {
					c = kt_error_set(err, KT_ECORRUPT, "tree: file '%s' has both content "
					                 "and content_list", name);
					break;
				}
				content = list;
			}
			size_t m = json_array_size(content);
			if (!json_is_array(content) || !json_is_integer(size) ||
			    json_integer_value(size) < 0 || m > KT_REPO_MAX_FILE_BLOBS) {
				c = kt_error_set(err, KT_ECORRUPT, "tree: file '%s' lacks size or content",
				                 name);
				break;
			}
			if (list) {
				json_t *chunks = json_object_get(o, "chunks");
				json_int_t k = json_integer_value(chunks);
				if (!json_is_integer(chunks) || m < 1 || k < (json_int_t)m ||
				    k > (json_int_t)m * KT_REPO_LIST_MAX_IDS || k > KT_REPO_MAX_FILE_BLOBS) {
					c = kt_error_set(err, KT_ECORRUPT, "tree: file '%s' has a content_list "
					                 "whose chunk count does not fit it", name);
					break;
				}
				nd->list_chunks = (uint64_t)k;
			} else if (json_object_get(o, "chunks")) {
				c = kt_error_set(err, KT_ECORRUPT, "tree: file '%s' has chunks without "
				                 "content_list", name);
				break;
			}
			nd->size = (uint64_t)json_integer_value(size);
			/* Optional (older writers lack them); a bad one only costs a
			 * re-read of the file at the next backup. */
			const char *ctime = str(o, "ctime");
			if (ctime && strlen(ctime) < sizeof(nd->ctime))
				snprintf(nd->ctime, sizeof(nd->ctime), "%s", ctime);
			json_int_t ino = json_integer_value(json_object_get(o, "inode"));
			json_int_t dev = json_integer_value(json_object_get(o, "device"));
			nd->inode = ino > 0 ? (uint64_t)ino : 0;
			nd->device = dev > 0 ? (uint64_t)dev : 0;
			uint8_t (*ids)[32] = kt_xcalloc(m ? m : 1, 32);
			if (list) {
				nd->content_list = ids;
				nd->n_content_list = m;
			} else {
				nd->content = ids;
				nd->n_content = m;
			}
			for (size_t j = 0; j < m; j++)
				if (kt_repo_id_parse(json_string_value(json_array_get(content, j)), ids[j])) {
					c = kt_error_set(err, KT_ECORRUPT, "tree: file '%s' has a bad blob id",
					                 name);
					break;
				}
			if (!c)
				c = decode_file_extra(o, nd, name, err);
		} else if (!strcmp(type, "dir")) {
			nd->type = KT_NODE_DIR;
			if (kt_repo_id_parse(str(o, "subtree"), nd->subtree))
				c = kt_error_set(err, KT_ECORRUPT, "tree: directory '%s' has a bad subtree id",
				                 name);
		} else if (!strcmp(type, "symlink")) {
			nd->type = KT_NODE_SYMLINK;
			const char *target = str(o, "target");
			if (!target || !*target || strlen(target) > 4095 ||
			    strlen(target) != json_string_length(json_object_get(o, "target")))
				c = kt_error_set(err, KT_ECORRUPT, "tree: link '%s' has a bad target", name);
			else
				nd->target = kt_xstrdup(target);
		} else {
			c = kt_error_set(err, KT_ECORRUPT, "tree: entry '%s' has unknown type", name);
		}
	}
	if (c)
		kt_repo_tree_release(out);
	return c;
}

kt_code kt_repo_tree_decode(const char *data, size_t len, kt_repo_tree *out, kt_error *err)
{
	json_error_t jerr;
	json_t *doc = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
	kt_code c = decode_nodes(doc, out, err);
	json_decref(doc);
	return c;
}

/* ------------------------------------------------------------------ */
/* Tree indexes (a directory listed in several tree blobs). */

void kt_repo_treeidx_release(kt_repo_treeidx *x)
{
	for (size_t i = 0; i < x->n; i++)
		free(x->parts[i].first);
	free(x->parts);
	memset(x, 0, sizeof(*x));
}

kt_code kt_repo_treeidx_encode(const kt_repo_treeidx *x, kt_buf *out, kt_error *err)
{
	if (x->n < 2)
		return kt_error_set(err, KT_EUSAGE, "a tree index needs two parts or more");
	json_t *parts = json_array();
	for (size_t i = 0; i < x->n; i++) {
		char hex[65];
		kt_hex(hex, x->parts[i].id, 32);
		json_array_append_new(parts, json_pack("{s:s, s:I, s:s}", "first", x->parts[i].first,
		                                       "count", (json_int_t)x->parts[i].count,
		                                       "tree", hex));
	}
	json_t *doc = json_pack("{s:o}", "parts", parts);
	char *text = doc ? json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(doc);
	if (!text)
		return kt_error_set(err, KT_EUSAGE, "a name is not valid UTF-8");
	kt_code c = kt_buf_adds(out, text, err);
	free(text);
	return c;
}

static kt_code decode_parts(json_t *parts, kt_repo_treeidx *x, kt_error *err)
{
	size_t n = json_array_size(parts);
	if (!json_is_array(parts) || n < 1 || n > KT_REPO_MAX_TREE_PARTS)
		return kt_error_set(err, KT_ECORRUPT, "tree index: \"parts\" is not an array of 1..%u "
		                    "parts", KT_REPO_MAX_TREE_PARTS);
	x->parts = kt_xcalloc(n, sizeof(*x->parts));
	uint64_t total = 0;
	for (size_t i = 0; i < n; i++) {
		json_t *o = json_array_get(parts, i);
		const char *first = str(o, "first");
		json_t *count = json_object_get(o, "count");
		if (!json_is_object(o) || json_object_size(o) != 3 || !first ||
		    !kt_repo_name_ok(first) ||
		    strlen(first) != json_string_length(json_object_get(o, "first")))
			return kt_error_set(err, KT_ECORRUPT, "tree index: part %zu has an unsafe or "
			                    "missing first name", i);
		x->parts[i].first = kt_xstrdup(first);
		x->n = i + 1;
		if (i && strcmp(x->parts[i - 1].first, first) >= 0)
			return kt_error_set(err, KT_ECORRUPT, "tree index: parts are not sorted by first "
			                    "name or repeat ('%s')", first);
		if (!json_is_integer(count) || json_integer_value(count) < 1 ||
		    json_integer_value(count) > KT_REPO_MAX_TREE_NODES)
			return kt_error_set(err, KT_ECORRUPT, "tree index: part '%s' has a count outside "
			                    "1..%u", first, KT_REPO_MAX_TREE_NODES);
		x->parts[i].count = (uint64_t)json_integer_value(count);
		total += x->parts[i].count;
		if (kt_repo_id_parse(str(o, "tree"), x->parts[i].id))
			return kt_error_set(err, KT_ECORRUPT, "tree index: part '%s' has a bad tree id",
			                    first);
	}
	if (total > KT_REPO_MAX_DIR_ENTRIES)
		return kt_error_set(err, KT_ECORRUPT, "tree index: %llu entries exceed %u",
		                    (unsigned long long)total, KT_REPO_MAX_DIR_ENTRIES);
	return KT_OK;
}

kt_code kt_repo_tree_decode_any(const char *data, size_t len, kt_repo_tree *t,
                                kt_repo_treeidx *x, kt_error *err)
{
	memset(t, 0, sizeof(*t));
	memset(x, 0, sizeof(*x));
	json_error_t jerr;
	json_t *doc = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
	json_t *parts = json_object_get(doc, "parts");
	kt_code c;
	if (parts) {
		c = json_object_size(doc) != 1
		    ? kt_error_set(err, KT_ECORRUPT, "tree index: keys other than \"parts\"")
		    : decode_parts(parts, x, err);
		if (c)
			kt_repo_treeidx_release(x);
	} else {
		c = decode_nodes(doc, t, err);
	}
	json_decref(doc);
	return c;
}

kt_code kt_repo_treeidx_check_part(const kt_repo_treeidx *x, size_t i, const kt_repo_tree *t,
                                   kt_error *err)
{
	const kt_repo_tree_part *p = &x->parts[i];
	if (t->n != p->count || !t->n || strcmp(t->nodes[0].name, p->first) ||
	    (i + 1 < x->n && strcmp(t->nodes[t->n - 1].name, x->parts[i + 1].first) >= 0))
		return kt_error_set(err, KT_ECORRUPT, "tree index: part '%s' does not hold the %llu "
		                    "entries from '%s' its index names (run `kontinuity repo check`)",
		                    p->first, (unsigned long long)p->count, p->first);
	return KT_OK;
}

kt_code kt_repo_list_parse(const uint8_t *p, size_t len, const char *what, size_t *n_out,
                           kt_error *err)
{
	(void)p;
	*n_out = 0;
	if (len == 0 || len % 32 || len / 32 > KT_REPO_LIST_MAX_IDS)
		return kt_error_set(err, KT_ECORRUPT, "%s: a content list blob of %zu bytes is not "
		                    "1..%u ids of 32 bytes (run `kontinuity repo check`)", what, len,
		                    KT_REPO_LIST_MAX_IDS);
	*n_out = len / 32;
	return KT_OK;
}

/* ------------------------------------------------------------------ */
/* Snapshot manifests. */

void kt_repo_snapshot_release(kt_repo_snapshot *s)
{
	for (size_t i = 0; i < s->n_paths; i++)
		free(s->paths[i]);
	free(s->paths);
	for (size_t i = 0; i < s->n_tags; i++)
		free(s->tags[i]);
	free(s->tags);
	memset(s, 0, sizeof(*s));
}

kt_code kt_repo_snapshot_encode(const kt_repo_snapshot *s, kt_buf *out, kt_error *err)
{
	char tree[65];
	kt_hex(tree, s->tree, 32);
	json_t *paths = json_array(), *tags = json_array();
	for (size_t i = 0; i < s->n_paths; i++)
		json_array_append_new(paths, json_string(s->paths[i]));
	for (size_t i = 0; i < s->n_tags; i++)
		json_array_append_new(tags, json_string(s->tags[i]));
	json_t *doc = json_pack("{s:i, s:s, s:s, s:o, s:o, s:s, s:s, s:{s:I, s:I, s:I}}",
	                        "version", s->version > 1 ? s->version : 1, "time", s->time,
	                        "hostname", s->hostname,
	                        "paths", paths, "tags", tags, "tree", tree,
	                        "program", "kontinuity " KT_VERSION, "summary",
	                        "files", (json_int_t)s->files, "bytes", (json_int_t)s->bytes,
	                        "added_bytes", (json_int_t)s->added_bytes);
	char *text = doc ? json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(doc);
	if (!text)
		return kt_error_set(err, KT_EUSAGE, "a path, tag or the host name is not valid UTF-8");
	kt_code c = kt_buf_adds(out, text, err);
	free(text);
	return c;
}

static kt_code strings(json_t *a, char ***out, size_t *n_out, size_t max, kt_error *err)
{
	size_t n = json_array_size(a);
	if (!json_is_array(a) || n > max)
		return kt_error_set(err, KT_ECORRUPT, "snapshot: a list is missing or too long");
	*out = kt_xcalloc(n ? n : 1, sizeof(char *));
	for (size_t i = 0; i < n; i++) {
		const char *v = json_string_value(json_array_get(a, i));
		if (!v || strlen(v) > 4096 || strlen(v) != json_string_length(json_array_get(a, i)))
			return kt_error_set(err, KT_ECORRUPT, "snapshot: a list holds a bad string");
		(*out)[i] = kt_xstrdup(v);
		*n_out = i + 1;
	}
	return KT_OK;
}

kt_code kt_repo_snapshot_decode(const char *data, size_t len, kt_repo_snapshot *out,
                                kt_error *err)
{
	memset(out, 0, sizeof(*out));
	json_error_t jerr;
	json_t *doc = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!doc) {
		return kt_error_set(err, KT_ECORRUPT, "snapshot: not JSON (%s)", jerr.text);
	}
	kt_code c = KT_OK;
	const char *time = str(doc, "time"), *host = str(doc, "hostname");
	json_t *summary = json_object_get(doc, "summary");
	json_int_t ver = json_integer_value(json_object_get(doc, "version"));
	if (ver > KT_REPO_SNAPSHOT_VERSION_MAX)
		c = kt_error_set(err, KT_EUSAGE, "snapshot: format version %lld is newer than this "
		                 "kontinuity reads (%d); upgrade kontinuity to read it", (long long)ver,
		                 KT_REPO_SNAPSHOT_VERSION_MAX);
	else if (ver < 1)
		c = kt_error_set(err, KT_ECORRUPT, "snapshot: unknown version");
	else if (!time || strlen(time) >= sizeof(out->time) || !host ||
	         strlen(host) >= sizeof(out->hostname))
		c = kt_error_set(err, KT_ECORRUPT, "snapshot: bad time or hostname");
	else if (kt_repo_id_parse(str(doc, "tree"), out->tree))
		c = kt_error_set(err, KT_ECORRUPT, "snapshot: bad tree id");
	if (!c)
		c = strings(json_object_get(doc, "paths"), &out->paths, &out->n_paths, 4096, err);
	if (!c)
		c = strings(json_object_get(doc, "tags"), &out->tags, &out->n_tags, 64, err);
	if (!c) {
		out->version = (int)ver;
		snprintf(out->time, sizeof(out->time), "%s", time);
		snprintf(out->hostname, sizeof(out->hostname), "%s", host);
		json_int_t v;
		out->files = (v = json_integer_value(json_object_get(summary, "files"))) > 0
		             ? (uint64_t)v : 0;
		out->bytes = (v = json_integer_value(json_object_get(summary, "bytes"))) > 0
		             ? (uint64_t)v : 0;
		out->added_bytes = (v = json_integer_value(json_object_get(summary, "added_bytes"))) > 0
		                   ? (uint64_t)v : 0;
	}
	json_decref(doc);
	if (c)
		kt_repo_snapshot_release(out);
	return c;
}
