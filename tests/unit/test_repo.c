/*
 * test_repo.c - unit tests for the repository format's codecs
 * (src/repo/crypto.c, pack.c): sealed messages, key files, packs, index.
 */
#include <stdlib.h>
#include <string.h>

#include "repo/repo_int.h"
#include "unit.h"

static kt_repo_keys keys(void)
{
	kt_repo_keys k;
	for (int i = 0; i < 32; i++) {
		k.enc[i] = (uint8_t)i;
		k.id[i] = (uint8_t)(0x80 + i);
	}
	return k;
}

static void test_seal_open(void)
{
	kt_repo_keys k = keys();
	kt_error err;
	kt_buf s, p;
	kt_buf_init(&s, 1 << 20);
	kt_buf_init(&p, 1 << 20);
	CHECK(kt_repo_seal(&k, "aad", 3, "hello", 5, &s, &err) == KT_OK);
	CHECK_EQ_U(s.len, 5 + KT_REPO_SEAL_OVERHEAD);
	CHECK(kt_repo_open(&k, "aad", 3, s.data, s.len, &p, &err) == KT_OK);
	CHECK(p.len == 5 && !memcmp(p.data, "hello", 5));
	/* Another AAD (role), a flipped byte, a cut message, another key. */
	kt_buf_reset(&p);
	CHECK(kt_repo_open(&k, "aaD", 3, s.data, s.len, &p, &err) == KT_ECORRUPT);
	CHECK_EQ_U(p.len, 0);
	s.data[14] ^= 1;
	CHECK(kt_repo_open(&k, "aad", 3, s.data, s.len, &p, &err) == KT_ECORRUPT);
	s.data[14] ^= 1;
	CHECK(kt_repo_open(&k, "aad", 3, s.data, 20, &p, &err) == KT_ECORRUPT);
	kt_repo_keys other = k;
	other.enc[0] ^= 1;
	CHECK(kt_repo_open(&other, "aad", 3, s.data, s.len, &p, &err) == KT_ECORRUPT);
	CHECK_CONTAINS(err.msg, "authentication failed");
	/* Two seals of the same text differ (random nonce). */
	kt_buf s2;
	kt_buf_init(&s2, 1 << 20);
	CHECK(kt_repo_seal(&k, "aad", 3, "hello", 5, &s2, &err) == KT_OK);
	CHECK(memcmp(s.data, s2.data, s.len) != 0);
	kt_buf_release(&s);
	kt_buf_release(&s2);
	kt_buf_release(&p);
}

static void test_blob_id_is_keyed(void)
{
	kt_repo_keys a = keys(), b = keys();
	b.id[5] ^= 1;
	uint8_t x[32], y[32], z[32];
	kt_repo_blob_id(&a, "data", 4, x);
	kt_repo_blob_id(&a, "data", 4, y);
	kt_repo_blob_id(&b, "data", 4, z);
	CHECK(!memcmp(x, y, 32));
	CHECK(memcmp(x, z, 32) != 0);
	/* Test vector (docs/repository-format.md): HMAC-SHA-256 with the key
	 * bytes 80..9f of "data", computed with Python's hmac module. */
	char hex[65];
	kt_hex(hex, x, 32);
	CHECK_STR(hex, "8f2b1b712313a5728173662f15b2869b737294d5c0c0042170c9fa1163716411");
}

static void test_keyfile(void)
{
	kt_repo_keys k, got;
	kt_error err;
	CHECK(kt_repo_keys_generate(&k, &err) == KT_OK);
	kt_repo_kdf kdf = { 16384, 8, 1 };
	kt_buf f;
	kt_buf_init(&f, 1 << 16);
	CHECK(kt_repo_keyfile_create(&k, "correct horse", 13, &kdf, "cp-1", &f, &err) == KT_OK);
	CHECK(strstr(f.data, "correct horse") == NULL);
	CHECK(kt_repo_keyfile_open(f.data, f.len, "correct horse", 13, &got, &err) == KT_OK);
	CHECK(!memcmp(&k, &got, sizeof(k)));
	CHECK(kt_repo_keyfile_open(f.data, f.len, "wrong horse", 11, &got, &err) == KT_EAUTH);
	CHECK_CONTAINS(err.msg, "wrong passphrase");
	CHECK(strstr(err.msg, "horse") == NULL);
	/* Parameters a hostile repository could use to exhaust us. */
	const char *big = "{\"version\":1,\"kdf\":\"scrypt\",\"N\":1073741824,\"r\":8,\"p\":1,"
	                  "\"salt\":\"AAAAAAAAAAAAAAAAAAAAAA==\",\"data\":\"AAAA\"}";
	CHECK(kt_repo_keyfile_open(big, strlen(big), "x", 1, &got, &err) == KT_ECORRUPT);
	CHECK_CONTAINS(err.msg, "scrypt parameters");
	CHECK(kt_repo_keyfile_open("{", 1, "x", 1, &got, &err) == KT_ECORRUPT);
	kt_buf_release(&f);
}

static void fill(uint8_t *p, size_t n, uint32_t seed)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = (uint8_t)(seed >> 16);
	}
}

static void test_pack_roundtrip(void)
{
	kt_repo_keys k = keys();
	kt_error err;
	kt_buf pack;
	kt_buf_init(&pack, 64u << 20);
	size_t sizes[] = { 0, 1, 100, 70000, 1 << 20 };
	uint8_t *blobs[5];
	kt_repo_entry e[5];
	for (int i = 0; i < 5; i++) {
		blobs[i] = malloc(sizes[i] + 1);
		if (i % 2)
			fill(blobs[i], sizes[i], (uint32_t)i);   /* random: stored raw */
		else
			memset(blobs[i], 'a' + i, sizes[i]);    /* compresses */
		CHECK(kt_repo_pack_add(&k, &pack, KT_BLOB_DATA, blobs[i], sizes[i], 3, &e[i],
		                       &err) == KT_OK);
	}
	CHECK_EQ_U(e[4].compression, 1);
	CHECK_EQ_U(e[3].compression, 0);
	size_t blobs_end = pack.len;
	CHECK(kt_repo_pack_finish(&k, &pack, e, 5, &err) == KT_OK);
	kt_repo_entry *got;
	size_t n, need;
	/* A tail too short for the header says how much it needs. */
	CHECK(kt_repo_pack_header_parse(&k, (uint8_t *)pack.data + pack.len - 10, 10, pack.len,
	                                &got, &n, &need, &err) == KT_ELIMIT);
	CHECK_EQ_U(need, pack.len - blobs_end);
	CHECK(kt_repo_pack_header_parse(&k, (uint8_t *)pack.data + pack.len - need, need, pack.len,
	                                &got, &n, &need, &err) == KT_OK);
	CHECK_EQ_U(n, 5);
	kt_buf out;
	kt_buf_init(&out, 64u << 20);
	for (size_t i = 0; i < n && n == 5; i++) {
		CHECK(!memcmp(got[i].id, e[i].id, 32));
		kt_buf_reset(&out);
		CHECK(kt_repo_blob_open(&k, &got[i], (uint8_t *)pack.data + got[i].offset, &out,
		                        &err) == KT_OK);
		CHECK(out.len == sizes[i] && !memcmp(out.data, blobs[i], sizes[i]));
	}
	/* A blob opened with another blob's entry fails: ids are in the AAD. */
	if (n == 5) {
		kt_repo_entry swapped = got[2];
		memcpy(swapped.id, got[0].id, 32);
		kt_buf_reset(&out);
		CHECK(kt_repo_blob_open(&k, &swapped, (uint8_t *)pack.data + got[2].offset, &out,
		                        &err) == KT_ECORRUPT);
	}
	/* The wrong pack size is caught by the contiguity rule. */
	free(got);
	CHECK(kt_repo_pack_header_parse(&k, (uint8_t *)pack.data, pack.len, pack.len + 1, &got, &n,
	                                &need, &err) == KT_ECORRUPT);
	for (int i = 0; i < 5; i++)
		free(blobs[i]);
	kt_buf_release(&out);
	kt_buf_release(&pack);
}

static void test_index_roundtrip_and_hostile(void)
{
	kt_repo_keys k = keys();
	kt_error err;
	kt_repo_entry e1[2] = { { 0, 0, 0, 128, 100, { 1 } }, { 0, 1, 128, 60, 1000, { 2 } } };
	kt_repo_entry e2[1] = { { 1, 0, 0, 50, 22, { 3 } } };
	kt_repo_index_pack packs[2] = { { { 0xaa }, e1, 2 }, { { 0xbb }, e2, 1 } };
	kt_buf idx;
	kt_buf_init(&idx, 1 << 20);
	CHECK(kt_repo_index_encode(&k, packs, 2, &idx, &err) == KT_OK);
	kt_repo_index_pack *got;
	size_t n;
	CHECK(kt_repo_index_decode(&k, (uint8_t *)idx.data, idx.len, &got, &n, &err) == KT_OK);
	CHECK_EQ_U(n, 2);
	if (n == 2) {
		CHECK(got[0].pack_id[0] == 0xaa && got[0].n == 2 && got[1].n == 1);
		CHECK(got[0].entries[1].offset == 128 && got[0].entries[1].raw_length == 1000);
		CHECK(got[1].entries[0].type == KT_BLOB_TREE && got[1].entries[0].id[0] == 3);
		kt_repo_index_free(got, n);
	}
	/* A count that the bytes cannot hold is refused before allocating. */
	uint8_t hostile[5] = { 1, 0xff, 0xff, 0xff, 0x7f };
	CHECK(kt_repo_index_parse(hostile, sizeof(hostile), &got, &n, &err) == KT_ECORRUPT);
	uint8_t gap[5 + 36 + 46] = { 1, 1 };
	gap[5 + 32] = 1;
	gap[5 + 36 + 2] = 7;   /* first offset 7, not 0 */
	gap[5 + 36 + 6] = 28;
	CHECK(kt_repo_index_parse(gap, sizeof(gap), &got, &n, &err) == KT_ECORRUPT);
	CHECK_CONTAINS(err.msg, "contiguous");
	kt_buf_release(&idx);
}

static void test_tree_and_snapshot(void)
{
	kt_error err;
	uint8_t (*content)[32] = calloc(2, 32);
	content[1][0] = 0xab;
	kt_repo_node nodes[3] = {
		{ .name = (char *)"z.db", .type = KT_NODE_FILE, .mode = 0600, .size = 10,
		  .content = content, .n_content = 2, .mtime = "2026-11-27T08:00:00.5Z",
		  .ctime = "2026-11-27T08:00:01.25Z", .inode = 1ull << 40, .device = 64768 },
		{ .name = (char *)"a", .type = KT_NODE_DIR, .mode = 0700, .subtree = { 7 },
		  .mtime = "2026-11-27T08:00:00Z" },
		{ .name = (char *)"l", .type = KT_NODE_SYMLINK, .mode = 0777, .target = (char *)"z.db",
		  .mtime = "2026-11-27T08:00:00Z" },
	};
	kt_repo_tree t = { nodes, 3 };
	kt_buf b;
	kt_buf_init(&b, 1 << 20);
	CHECK(kt_repo_tree_encode(&t, &b, &err) == KT_OK);
	CHECK_STR(nodes[0].name, "a");   /* sorted */
	kt_repo_tree d;
	CHECK(kt_repo_tree_decode(b.data, b.len, &d, &err) == KT_OK);
	CHECK_EQ_U(d.n, 3);
	if (d.n == 3) {
		CHECK(d.nodes[2].type == KT_NODE_FILE && d.nodes[2].n_content == 2 &&
		      d.nodes[2].content[1][0] == 0xab && d.nodes[2].mode == 0600);
		/* The change-detection fields of files (the parent snapshot). */
		CHECK_STR(d.nodes[2].ctime, "2026-11-27T08:00:01.25Z");
		CHECK(d.nodes[2].inode == 1ull << 40 && d.nodes[2].device == 64768);
		CHECK(!d.nodes[0].ctime[0] && !d.nodes[0].inode);
		CHECK(d.nodes[0].subtree[0] == 7 && !strcmp(d.nodes[1].target, "z.db"));
	}
	/* Re-encoding gives the same bytes: equal directories, equal blob ids. */
	kt_buf b2;
	kt_buf_init(&b2, 1 << 20);
	CHECK(kt_repo_tree_encode(&d, &b2, &err) == KT_OK);
	CHECK(b.len == b2.len && !memcmp(b.data, b2.data, b.len));
	kt_repo_tree_release(&d);
	free(content);
	/* Names that would escape the restore target. */
	const char *bad[] = {
		"{\"nodes\":[{\"name\":\"..\",\"type\":\"dir\",\"mode\":1,\"mtime\":\"x\"}]}",
		"{\"nodes\":[{\"name\":\"a/b\",\"type\":\"dir\",\"mode\":1,\"mtime\":\"x\"}]}",
		("{\"nodes\":[{\"name\":\"a\\u0000b\",\"type\":\"symlink\",\"mode\":1,"
		 "\"mtime\":\"x\",\"target\":\"t\"}]}"),
	};
	for (size_t i = 0; i < 3; i++) {
		CHECK(kt_repo_tree_decode(bad[i], strlen(bad[i]), &d, &err) == KT_ECORRUPT);
		CHECK_CONTAINS(err.msg, i < 2 ? "unsafe or missing name" : "tree:");
		kt_repo_tree_release(&d);
	}
	char *paths[] = { (char *)"/etc/kubernetes/zadara/x.db" };
	kt_repo_snapshot s = { .time = "2026-11-27T08:00:03Z", .hostname = "cp-1", .paths = paths,
	                       .n_paths = 1, .tree = { 9 }, .files = 1, .bytes = 10 };
	kt_buf_reset(&b);
	CHECK(kt_repo_snapshot_encode(&s, &b, &err) == KT_OK);
	kt_repo_snapshot s2;
	CHECK(kt_repo_snapshot_decode(b.data, b.len, &s2, &err) == KT_OK);
	CHECK(s2.n_paths == 1 && !strcmp(s2.paths[0], paths[0]) && s2.tree[0] == 9 &&
	      s2.bytes == 10 && !strcmp(s2.hostname, "cp-1"));
	kt_repo_snapshot_release(&s2);
	kt_buf_release(&b);
	kt_buf_release(&b2);
}

static void test_delta_nodes(void)
{
	kt_error err;
	uint8_t (*content)[32] = calloc(1, 32);
	kt_repo_node nd = { .name = (char *)"b.db", .type = KT_NODE_FILE, .mode = 0600, .size = 9,
	                    .content = content, .n_content = 1, .mtime = "2026-11-27T08:00:00Z",
	                    .has_sha256 = 1, .sha256 = { 0x5a }, .has_delta = 1,
	                    .delta_tree = { 0x11 }, .delta_name = (char *)"a.db", .delta_depth = 3 };
	kt_repo_tree t = { &nd, 1 };
	kt_buf b, b2;
	kt_buf_init(&b, 1 << 20);
	kt_buf_init(&b2, 1 << 20);
	CHECK(kt_repo_tree_encode(&t, &b, &err) == KT_OK);
	CHECK_CONTAINS(b.data, "\"delta\":{\"base\":{\"tree\":\"1100");
	kt_repo_tree d;
	CHECK(kt_repo_tree_decode(b.data, b.len, &d, &err) == KT_OK);
	CHECK(d.n == 1 && d.nodes[0].has_delta && d.nodes[0].delta_depth == 3 &&
	      d.nodes[0].has_sha256 && d.nodes[0].sha256[0] == 0x5a &&
	      d.nodes[0].delta_tree[0] == 0x11 && !strcmp(d.nodes[0].delta_name, "a.db"));
	CHECK(kt_repo_tree_encode(&d, &b2, &err) == KT_OK);
	CHECK(b.len == b2.len && !memcmp(b.data, b2.data, b.len));
	kt_repo_tree_release(&d);
	free(content);
	/* What a reader must refuse in a delta node. */
	const char *pre = "{\"nodes\":[{\"name\":\"b\",\"type\":\"file\",\"mode\":384,"
	                  "\"mtime\":\"x\",\"size\":1,\"content\":[]";
	const char *z64 = "0000000000000000000000000000000000000000000000000000000000000000";
	struct { const char *tail; const char *msg; } bad[] = {
		{ ",\"delta\":{\"base\":{\"tree\":\"%s\",\"name\":\"a\"},\"depth\":1}}]}",
		  "lacks its sha256" },
		{ ",\"sha256\":\"%s\",\"delta\":{\"base\":{\"tree\":\"%s\",\"name\":\"..\"},"
		  "\"depth\":1}}]}", "bad base name" },
		{ ",\"sha256\":\"%s\",\"delta\":{\"base\":{\"tree\":\"%s\",\"name\":\"a\"},"
		  "\"depth\":0}}]}", "depth outside" },
		{ ",\"sha256\":\"%s\",\"delta\":{\"base\":{\"tree\":\"%s\",\"name\":\"a\"},"
		  "\"depth\":101}}]}", "depth outside" },
		{ ",\"sha256\":\"%s\",\"delta\":{\"base\":{\"tree\":\"x%s\",\"name\":\"a\"},"
		  "\"depth\":1}}]}", "bad base tree id" },
		{ ",\"sha256\":\"12\"}]}", "bad sha256" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char doc[1024], tail[512];
		snprintf(tail, sizeof(tail), bad[i].tail, z64, z64);
		snprintf(doc, sizeof(doc), "%s%s", pre, tail);
		CHECK(kt_repo_tree_decode(doc, strlen(doc), &d, &err) == KT_ECORRUPT);
		CHECK_CONTAINS(err.msg, bad[i].msg);
		kt_repo_tree_release(&d);
	}
	/* Snapshot versions: 2 round-trips, a newer one is refused by name. */
	kt_repo_snapshot s = { .version = 2, .time = "t", .hostname = "h", .tree = { 1 } };
	kt_buf_reset(&b);
	CHECK(kt_repo_snapshot_encode(&s, &b, &err) == KT_OK);
	CHECK_CONTAINS(b.data, "\"version\":2");
	kt_repo_snapshot s2;
	CHECK(kt_repo_snapshot_decode(b.data, b.len, &s2, &err) == KT_OK);
	CHECK(s2.version == 2);
	kt_repo_snapshot_release(&s2);
	const char *v3 = "{\"version\":5,\"time\":\"t\",\"hostname\":\"h\",\"paths\":[],"
	                 "\"tags\":[],\"tree\":\"00\"}";
	CHECK(kt_repo_snapshot_decode(v3, strlen(v3), &s2, &err) != KT_OK);
	CHECK_CONTAINS(err.msg, "upgrade kontinuity");
	kt_buf_release(&b);
	kt_buf_release(&b2);
}

/* Content lists (docs/repository-format.md "Content lists"): a file node
 * with "content_list" and "chunks" round-trips canonically; a reader
 * refuses every inconsistency by the file's name; list blob bodies must be
 * whole ids within the limit. */
static void test_content_list(void)
{
	kt_error err;
	uint8_t (*lists)[32] = calloc(2, 32);
	lists[0][0] = 0xab;
	lists[1][0] = 0xcd;
	kt_repo_node nd = { .name = (char *)"big.db", .type = KT_NODE_FILE, .mode = 0600,
	                    .size = 1 << 30, .mtime = "2026-11-27T08:00:00Z", .content_list = lists,
	                    .n_content_list = 2, .list_chunks = 5000 };
	kt_repo_tree t = { &nd, 1 };
	kt_buf b, b2;
	kt_buf_init(&b, 1 << 20);
	kt_buf_init(&b2, 1 << 20);
	CHECK(kt_repo_tree_encode(&t, &b, &err) == KT_OK);
	CHECK_CONTAINS(b.data, "\"chunks\":5000,\"content_list\":[\"ab00");
	CHECK(!strstr(b.data, "\"content\":"));
	kt_repo_tree d;
	CHECK(kt_repo_tree_decode(b.data, b.len, &d, &err) == KT_OK);
	CHECK(d.n == 1 && d.nodes[0].n_content_list == 2 && d.nodes[0].list_chunks == 5000 &&
	      d.nodes[0].n_content == 0 && d.nodes[0].content_list[1][0] == 0xcd);
	CHECK(kt_repo_tree_encode(&d, &b2, &err) == KT_OK);
	CHECK(b.len == b2.len && !memcmp(b.data, b2.data, b.len));
	kt_repo_tree_release(&d);
	free(lists);
	const char *pre = "{\"nodes\":[{\"name\":\"big\",\"type\":\"file\",\"mode\":384,"
	                  "\"mtime\":\"x\",\"size\":1";
	const char *z64 = "0000000000000000000000000000000000000000000000000000000000000000";
	struct { const char *tail; const char *msg; } bad[] = {
		{ ",\"content\":[],\"chunks\":1,\"content_list\":[\"%s\"]}]}", "both content" },
		{ ",\"content_list\":[\"%s\"]}]}", "chunk count does not fit" },
		{ ",\"chunks\":0,\"content_list\":[\"%s\"]}]}", "chunk count does not fit" },
		{ ",\"chunks\":4097,\"content_list\":[\"%s\"]}]}", "chunk count does not fit" },
		{ ",\"chunks\":1,\"content_list\":[]}]}", "chunk count does not fit" },
		{ ",\"chunks\":\"1\",\"content_list\":[\"%s\"]}]}", "chunk count does not fit" },
		{ ",\"chunks\":1,\"content_list\":[\"x%s\"]}]}", "bad blob id" },
		{ ",\"chunks\":1,\"content\":[\"%s\"]}]}", "chunks without content_list" },
		{ ",\"chunks\":1,\"content_list\":\"%s\"}]}", "lacks size or content" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char doc[1024], tail[512];
		snprintf(tail, sizeof(tail), bad[i].tail, z64);
		snprintf(doc, sizeof(doc), "%s%s", pre, tail);
		CHECK(kt_repo_tree_decode(doc, strlen(doc), &d, &err) == KT_ECORRUPT);
		CHECK_CONTAINS(err.msg, bad[i].msg);
		CHECK_CONTAINS(err.msg, "'big'");
		kt_repo_tree_release(&d);
	}
	/* 4096 chunks in one list is the most a list holds. */
	char doc[1024];
	snprintf(doc, sizeof(doc), "%s,\"chunks\":4096,\"content_list\":[\"%s\"]}]}", pre, z64);
	CHECK(kt_repo_tree_decode(doc, strlen(doc), &d, &err) == KT_OK);
	kt_repo_tree_release(&d);
	/* List blob bodies. */
	static uint8_t body[(KT_REPO_LIST_MAX_IDS + 1) * 32];
	size_t n;
	CHECK(kt_repo_list_parse(body, 64, "file 'f'", &n, &err) == KT_OK && n == 2);
	CHECK(kt_repo_list_parse(body, KT_REPO_LIST_MAX_IDS * 32, "file 'f'", &n, &err) == KT_OK &&
	      n == KT_REPO_LIST_MAX_IDS);
	size_t badlen[] = { 0, 31, 33, 65, (KT_REPO_LIST_MAX_IDS + 1) * 32 };
	for (size_t i = 0; i < sizeof(badlen) / sizeof(badlen[0]); i++) {
		CHECK(kt_repo_list_parse(body, badlen[i], "file 'f'", &n, &err) == KT_ECORRUPT &&
		      n == 0);
		CHECK_CONTAINS(err.msg, "file 'f'");
	}
	/* Version 3 snapshots (content lists) are read. */
	kt_repo_snapshot s = { .version = 3, .time = "t", .hostname = "h", .tree = { 1 } };
	kt_buf_reset(&b);
	CHECK(kt_repo_snapshot_encode(&s, &b, &err) == KT_OK);
	kt_repo_snapshot s2;
	CHECK(kt_repo_snapshot_decode(b.data, b.len, &s2, &err) == KT_OK && s2.version == 3);
	kt_repo_snapshot_release(&s2);
	kt_buf_release(&b);
	kt_buf_release(&b2);
}

/* Tree indexes (docs/repository-format.md "Tree indexes"): canonical
 * round trip; every malformed index is refused by what is wrong; a part
 * must hold what its entry says. */
static void test_tree_index(void)
{
	kt_error err;
	kt_repo_tree_part parts[2] = { { (char *)"a", 2, { 1 } }, { (char *)"m", 1, { 2 } } };
	kt_repo_treeidx x = { parts, 2 };
	kt_buf b;
	kt_buf_init(&b, 1 << 20);
	CHECK(kt_repo_treeidx_encode(&x, &b, &err) == KT_OK);
	CHECK_CONTAINS(b.data, "{\"parts\":[{\"first\":\"a\",\"count\":2,\"tree\":\"01");
	kt_repo_tree t;
	kt_repo_treeidx d;
	CHECK(kt_repo_tree_decode_any(b.data, b.len, &t, &d, &err) == KT_OK);
	CHECK(d.n == 2 && t.n == 0 && d.parts[1].count == 1 && d.parts[1].id[0] == 2);
	if (d.n == 2)
		CHECK_STR(d.parts[1].first, "m");
	/* A plain tree still decodes as one. */
	const char *plain = "{\"nodes\":[]}";
	kt_repo_treeidx e;
	CHECK(kt_repo_tree_decode_any(plain, strlen(plain), &t, &e, &err) == KT_OK && !e.n);
	kt_repo_tree_release(&t);
	/* Parts checked against the index. */
	kt_repo_node nodes[3] = { { .name = (char *)"a" }, { .name = (char *)"b" },
	                          { .name = (char *)"m" } };
	kt_repo_tree p0 = { nodes, 2 }, p1 = { nodes + 2, 1 }, bad = { nodes, 3 };
	CHECK(kt_repo_treeidx_check_part(&d, 0, &p0, &err) == KT_OK);
	CHECK(kt_repo_treeidx_check_part(&d, 1, &p1, &err) == KT_OK);
	CHECK(kt_repo_treeidx_check_part(&d, 0, &bad, &err) == KT_ECORRUPT);
	CHECK_CONTAINS(err.msg, "part 'a'");
	CHECK(kt_repo_treeidx_check_part(&d, 1, &p0, &err) == KT_ECORRUPT);
	kt_repo_treeidx_release(&d);
	/* One part is not written. */
	kt_repo_treeidx one = { parts, 1 };
	kt_buf_reset(&b);
	CHECK(kt_repo_treeidx_encode(&one, &b, &err) == KT_EUSAGE);
	char h[65];
	memset(h, 'a', 64);
	h[64] = 0;
	struct { const char *fmt; const char *msg; } bad_docs[] = {
		{ "{\"parts\":[]}", "1..100000 parts" },
		{ "{\"parts\":{}}", "1..100000 parts" },
		{ "{\"parts\":[{\"first\":\"b\",\"count\":1,\"tree\":\"%s\"},"
		  "{\"first\":\"a\",\"count\":1,\"tree\":\"%s\"}]}", "not sorted" },
		{ "{\"parts\":[{\"first\":\"a\",\"count\":1,\"tree\":\"%s\"},"
		  "{\"first\":\"a\",\"count\":1,\"tree\":\"%s\"}]}", "repeat" },
		{ "{\"parts\":[{\"first\":\"..\",\"count\":1,\"tree\":\"%s\"}]}", "unsafe" },
		{ "{\"parts\":[{\"first\":\"a/b\",\"count\":1,\"tree\":\"%s\"}]}", "unsafe" },
		{ "{\"parts\":[{\"first\":\"a\",\"count\":0,\"tree\":\"%s\"}]}", "count outside" },
		{ "{\"parts\":[{\"first\":\"a\",\"count\":1000001,\"tree\":\"%s\"}]}",
		  "count outside" },
		{ "{\"parts\":[{\"first\":\"a\",\"count\":\"1\",\"tree\":\"%s\"}]}", "count outside" },
		{ "{\"parts\":[{\"first\":\"a\",\"count\":1,\"tree\":\"%.63s\"}]}", "bad tree id" },
		{ "{\"parts\":[{\"first\":\"a\",\"count\":1,\"tree\":\"%s\",\"x\":1}]}", "unsafe" },
		{ "{\"parts\":[{\"first\":\"a\",\"count\":1,\"tree\":\"%s\"}],\"nodes\":[]}",
		  "keys other" },
	};
	for (size_t i = 0; i < sizeof(bad_docs) / sizeof(bad_docs[0]); i++) {
		char doc[512];
		snprintf(doc, sizeof(doc), bad_docs[i].fmt, h, h);
		CHECK(kt_repo_tree_decode_any(doc, strlen(doc), &t, &d, &err) == KT_ECORRUPT);
		CHECK(!d.n && !t.n);
		CHECK_CONTAINS(err.msg, bad_docs[i].msg);
	}
	kt_buf_release(&b);
}

int main(void)
{
	RUN(test_seal_open);
	RUN(test_blob_id_is_keyed);
	RUN(test_keyfile);
	RUN(test_pack_roundtrip);
	RUN(test_index_roundtrip_and_hostile);
	RUN(test_tree_and_snapshot);
	RUN(test_delta_nodes);
	RUN(test_content_list);
	RUN(test_tree_index);
	return unit_done();
}
