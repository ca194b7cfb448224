/*
 * test_archive.c - unit tests for src/archive that need its internals:
 * the lock protocol (conflicts, stale locks, refresh) on a local store, and
 * the delta codec (delta.c) end to end on synthetic bbolt-like files, and
 * snapshots written from memory (writer.c) read back file by file, and
 * restore of one directory of a snapshot as the target (the volume mover).
 */
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "archive/archive_int.h"
#include "unit.h"

static kt_store *store_at(const char *dir)
{
	kt_store_opts o = { .create = 1 };
	kt_store *s = NULL;
	kt_error err;
	CHECK(kt_store_open(dir, &o, &s, &err) == KT_OK);
	return s;
}

static int n_locks(kt_archive *a)
{
	char **names;
	size_t n;
	kt_error err;
	if (kt_archive_list_names(a, "locks/", &names, &n, &err))
		return -1;
	kt_archive_names_free(names, n);
	return (int)n;
}

static void test_locks(void)
{
	char dir[] = "/tmp/kt-unit-archive-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	char path[256];
	snprintf(path, sizeof(path), "%s/repo", dir);
	kt_store *s1 = store_at(path), *s2 = store_at(path);
	kt_error err;
	kt_archive_init_opts io = { .kdf_n = 16384 };
	CHECK(kt_archive_init(s1, "pw", 2, &io, &err) == KT_OK);
	kt_archive *a, *b;
	CHECK(kt_archive_open(s1, "pw", 2, &a, &err) == KT_OK);
	CHECK(kt_archive_open(s2, "pw", 2, &b, &err) == KT_OK);
	CHECK(kt_archive_open(s2, "px", 2, &b, &err) == KT_EAUTH);

	/* Shared locks coexist; an exclusive one waits for them. */
	CHECK(kt_archive_lock(a, 0, &err) == KT_OK);
	CHECK(kt_archive_lock(b, 0, &err) == KT_OK);
	CHECK(n_locks(a) == 2);
	kt_archive_unlock(b);
	CHECK(kt_archive_lock(b, 1, &err) == KT_EEXIST);
	CHECK_CONTAINS(err.msg, "a shared lock");
	CHECK(n_locks(a) == 1);   /* the refused lock was taken back */
	kt_archive_unlock(a);
	CHECK(kt_archive_lock(b, 1, &err) == KT_OK);
	CHECK(kt_archive_lock(a, 0, &err) == KT_EEXIST);
	CHECK_CONTAINS(err.msg, "an exclusive lock");
	kt_archive_unlock(b);
	CHECK(n_locks(a) == 0);

	/* A lock 31 minutes old (its holder died) is stale: ignored, and
	 * removed by kt_archive_remove_stale_locks; a fresh one is not. */
	char text[160];
	snprintf(text, sizeof(text), "{\"time\":%lld,\"hostname\":\"gone\",\"pid\":1,"
	         "\"exclusive\":true}", (long long)time(NULL) - 31 * 60);
	CHECK(kt_archive_put_sealed(a, "locks", "kontinuity lock v1", text, strlen(text), NULL,
	                            NULL, &err) == KT_OK);
	CHECK(kt_archive_lock(b, 0, &err) == KT_OK);
	unsigned removed = 9;
	CHECK(kt_archive_remove_stale_locks(a, &removed, &err) == KT_OK);
	CHECK_EQ_U(removed, 1);
	CHECK(n_locks(a) == 1);   /* b's live lock stays */

	/* Refresh: a lock older than 5 minutes is rewritten by a tick. */
	char before[128];
	snprintf(before, sizeof(before), "%s", b->lock_name);
	b->lock_written_ms -= 6 * 60 * 1000;
	sleep(1);   /* a new time, so a new object name */
	kt_archive_lock_tick(b);
	CHECK(strcmp(before, b->lock_name) != 0);
	CHECK(n_locks(a) == 1);
	kt_archive_free(b);       /* unlocks */
	CHECK(n_locks(a) == 0);
	kt_archive_free(a);
	kt_store_free(s1);
	kt_store_free(s2);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	CHECK(system(cmd) == 0);
}

/* A bbolt-looking file: 4 KiB pages, the meta magic in page 0, text-like
 * pseudo-random content; edits flip a few bytes in every 7th page from
 * seed on. */
static void write_db(const char *path, size_t pages, unsigned edit_seed)
{
	uint8_t *p = calloc(pages, 4096);
	uint64_t x = 7;
	for (size_t i = 0; i < pages * 4096; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (uint8_t)('a' + (x >> 24) % 26);
	}
	p[16] = 0xed, p[17] = 0xda, p[18] = 0x0c, p[19] = 0xed;
	for (unsigned e = 1; e <= edit_seed; e++)
		for (size_t pg = e; pg < pages; pg += 7)
			memset(p + pg * 4096 + 100 + e * 8, 'A' + (int)e, 8);
	FILE *f = fopen(path, "wb");
	CHECK(f && fwrite(p, 4096, pages, f) == pages);
	fclose(f);
	free(p);
}

static int same_file(const char *a, const char *b)
{
	char cmd[2100];
	snprintf(cmd, sizeof(cmd), "cmp -s '%.1000s' '%.1000s'", a, b);
	return system(cmd) == 0;
}

static void test_delta_codec(void)
{
	char dir[] = "/tmp/kt-unit-delta-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	char path[256], db[3][300], out[300], got[1300];
	snprintf(path, sizeof(path), "%s/repo", dir);
	for (int i = 0; i < 3; i++) {
		snprintf(db[i], sizeof(db[i]), "%s/v%d.db", dir, i);
		write_db(db[i], 512, (unsigned)i * 2);
	}
	kt_store *s = store_at(path);
	kt_error err;
	kt_archive_init_opts io = { .kdf_n = 16384 };
	CHECK(kt_archive_init(s, "pw", 2, &io, &err) == KT_OK);
	kt_archive *a;
	CHECK(kt_archive_open(s, "pw", 2, &a, &err) == KT_OK);
	kt_archive_backup_result r0, r1, r2, r3;
	const char *p0[] = { db[0] }, *p1[] = { db[1] }, *p2[] = { db[2] };
	kt_archive_backup_opts o = { .hostname = "h" };
	CHECK(kt_archive_backup(a, p0, 1, &o, &r0, &err) == KT_OK);
	CHECK(r0.files_delta == 0);
	/* A wrong local base is ignored: the base comes from the repository. */
	o.delta_parent = "latest";
	o.delta_base_path = db[2];
	CHECK(kt_archive_backup(a, p1, 1, &o, &r1, &err) == KT_OK);
	CHECK(r1.files_delta == 1 && r1.delta_depth == 1);
	CHECK(r1.bytes_new < r0.bytes_new / 10);
	o.delta_base_path = db[1];
	CHECK(kt_archive_backup(a, p2, 1, &o, &r2, &err) == KT_OK);
	CHECK(r2.files_delta == 1 && r2.delta_depth == 2);
	/* K = 2: the next one is a keyframe. */
	o.delta_max_depth = 2;
	CHECK(kt_archive_backup(a, p0, 1, &o, &r3, &err) == KT_OK);
	CHECK(r3.files_delta == 0);
	/* Every version restores byte-identical. */
	const kt_archive_backup_result *rs[] = { &r0, &r1, &r2, &r3 };
	for (int i = 0; i < 4; i++) {
		snprintf(out, sizeof(out), "%s/out%d", dir, i);
		kt_archive_restore_result rr;
		CHECK(kt_archive_restore(a, rs[i]->snapshot_id, out, NULL, &rr, &err) == KT_OK);
		CHECK(rr.files == 1);
		snprintf(got, sizeof(got), "%.300s%.300s", out, db[i == 3 ? 0 : i]);
		CHECK(same_file(got, db[i == 3 ? 0 : i]));
	}
	kt_archive_check_result cr;
	CHECK(kt_archive_check(a, 1, NULL, NULL, &cr, &err) == KT_OK);
	CHECK(cr.problems == 0);
	/* An unknown snapshot as parent is an error naming it. */
	o.delta_parent = "ffffffff";
	CHECK(kt_archive_backup(a, p0, 1, &o, &r3, &err) != KT_OK);
	CHECK_CONTAINS(err.msg, "delta parent");
	kt_archive_free(a);
	kt_store_free(s);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	CHECK(system(cmd) == 0);
}

static void test_writer(void)
{
	char dir[] = "/tmp/kt-unit-writer-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	char path[256];
	snprintf(path, sizeof(path), "%s/repo", dir);
	kt_store *s = store_at(path);
	kt_error err;
	kt_archive_init_opts io = { .kdf_n = 16384 };
	CHECK(kt_archive_init(s, "pw", 2, &io, &err) == KT_OK);
	kt_archive *a;
	CHECK(kt_archive_open(s, "pw", 2, &a, &err) == KT_OK);
	size_t big_n = 3u << 20;
	uint8_t *big = malloc(big_n);
	uint64_t x = 7;
	for (size_t i = 0; i < big_n; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		big[i] = (uint8_t)(x >> 24);
	}
	const char *const paths[] = { "app:pg" };
	const char *tags[] = { "app", NULL };
	kt_archive_backup_opts o = { .hostname = "cluster-1", .tags = tags };
	kt_archive_backup_result r1, r2;
	for (int round = 0; round < 2; round++) {
		kt_archive_writer *w;
		CHECK(kt_archive_writer_begin(a, 0, &w, &err) == KT_OK);
		CHECK(kt_archive_writer_add(w, "pg/core/configmaps/cfg.json", "{\"a\":1}", 7, 0600,
		                            &err) == KT_OK);
		CHECK(kt_archive_writer_add(w, "pg/core/secrets/creds.json", "{\"a\":1}", 7, 0600,
		                            &err) == KT_OK);
		CHECK(kt_archive_writer_add(w, "pg/big.bin", big, big_n, 0600, &err) == KT_OK);
		CHECK(kt_archive_writer_add(w, "empty", "", 0, 0600, &err) == KT_OK);
		CHECK(kt_archive_writer_add(w, "pg/../x", "", 0, 0600, &err) == KT_EUSAGE);
		CHECK(kt_archive_writer_add(w, "manifest.json", "{}", 2, 0600, &err) == KT_OK);
		CHECK(kt_archive_writer_commit(w, &o, paths, 1, round ? &r2 : &r1, &err) == KT_OK);
		kt_archive_writer_free(w);
	}
	CHECK(r1.files == 5 && r1.bytes == big_n + 16);
	CHECK(r1.bytes_new >= big_n && r1.bytes_new < big_n + 16384);  /* data once, + trees */
	/* The data is all known; only trees may be new, when the second of the
	 * writer's time stamp changed between the rounds (writer.c). */
	CHECK(r2.bytes_new < 16384);
	kt_buf got;
	kt_buf_init(&got, 8u << 20);
	CHECK(kt_archive_read_file(a, r2.snapshot_id, "pg/big.bin", &got, &err) == KT_OK);
	CHECK(got.len == big_n && !memcmp(got.data, big, big_n));
	kt_buf_reset(&got);
	CHECK(kt_archive_read_file(a, r1.snapshot_id, "pg/core/secrets/creds.json", &got,
	                           &err) == KT_OK);
	CHECK(got.len == 7 && !memcmp(got.data, "{\"a\":1}", 7));
	kt_buf_reset(&got);
	CHECK(kt_archive_read_file(a, r1.snapshot_id, "empty", &got, &err) == KT_OK && !got.len);
	CHECK(kt_archive_read_file(a, r1.snapshot_id, "pg/core/nope.json", &got, &err) ==
	      KT_ENOTFOUND);
	CHECK_CONTAINS(err.msg, "pg/core/nope.json");
	CHECK(kt_archive_read_file(a, r1.snapshot_id, "pg/core", &got, &err) == KT_ENOTFOUND);
	kt_buf_release(&got);
	/* An abandoned writer names nothing: the repository still checks clean. */
	kt_archive_writer *w;
	CHECK(kt_archive_writer_begin(a, 0, &w, &err) == KT_OK);
	CHECK(kt_archive_writer_add(w, "x", "abandoned", 9, 0600, &err) == KT_OK);
	kt_archive_writer_free(w);
	kt_archive_check_result cr;
	CHECK(kt_archive_check(a, 1, NULL, NULL, &cr, &err) == KT_OK);
	CHECK(cr.problems == 0);
	kt_archive_snap *snaps;
	size_t n;
	CHECK(kt_archive_snapshots(a, &snaps, &n, &err) == KT_OK);
	CHECK(n == 2 && !strcmp(snaps[0].hostname, "cluster-1") && snaps[0].n_tags == 1);
	kt_archive_snaps_free(snaps, n);
	free(big);
	kt_archive_free(a);
	kt_store_free(s);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	CHECK(system(cmd) == 0);
}

static void test_restore_subtree(void)
{
	char dir[] = "/tmp/kt-unit-subtree-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	char path[256], out[300], file[400];
	snprintf(path, sizeof(path), "%s/repo", dir);
	kt_store *s = store_at(path);
	kt_error err;
	kt_archive_init_opts io = { .kdf_n = 16384 };
	CHECK(kt_archive_init(s, "pw", 2, &io, &err) == KT_OK);
	kt_archive *a;
	CHECK(kt_archive_open(s, "pw", 2, &a, &err) == KT_OK);
	kt_archive_writer *w;
	CHECK(kt_archive_writer_begin(a, 0, &w, &err) == KT_OK);
	CHECK(kt_archive_writer_add(w, "a/b/f.txt", "hello", 5, 0640, &err) == KT_OK);
	CHECK(kt_archive_writer_add(w, "a/b/c/g.txt", "deep", 4, 0600, &err) == KT_OK);
	CHECK(kt_archive_writer_add(w, "a/other", "x", 1, 0600, &err) == KT_OK);
	const char *const paths[] = { "/a/b" };
	kt_archive_backup_opts bo = { .hostname = "h" };
	kt_archive_backup_result br;
	CHECK(kt_archive_writer_commit(w, &bo, paths, 1, &br, &err) == KT_OK);
	kt_archive_writer_free(w);

	/* /a/b becomes the target itself; a fresh filesystem's lost+found is fine. */
	snprintf(out, sizeof(out), "%s/vol", dir);
	CHECK(mkdir(out, 0755) == 0);
	snprintf(file, sizeof(file), "%s/lost+found", out);
	CHECK(mkdir(file, 0700) == 0);
	kt_archive_restore_opts ro = { .subtree = "/a/b", .allow_lost_found = 1 };
	kt_archive_restore_result rr;
	CHECK(kt_archive_restore(a, br.snapshot_id, out, &ro, &rr, &err) == KT_OK);
	CHECK(rr.files == 2);
	snprintf(file, sizeof(file), "%s/f.txt", out);
	struct stat st;
	CHECK(stat(file, &st) == 0 && st.st_size == 5 && (st.st_mode & 07777) == 0640);
	snprintf(file, sizeof(file), "%s/c/g.txt", out);
	CHECK(stat(file, &st) == 0 && st.st_size == 4);
	snprintf(file, sizeof(file), "%s/other", out);
	CHECK(stat(file, &st) != 0);                       /* outside the subtree */
	/* Not over data; lost+found only when allowed; only directories. */
	CHECK(kt_archive_restore(a, br.snapshot_id, out, &ro, &rr, &err) == KT_EEXIST);
	snprintf(out, sizeof(out), "%s/vol2", dir);
	CHECK(mkdir(out, 0755) == 0);
	snprintf(file, sizeof(file), "%s/lost+found", out);
	CHECK(mkdir(file, 0700) == 0);
	ro.allow_lost_found = 0;
	CHECK(kt_archive_restore(a, br.snapshot_id, out, &ro, &rr, &err) == KT_EEXIST);
	ro.allow_lost_found = 1;
	ro.subtree = "/a/nope";
	CHECK(kt_archive_restore(a, br.snapshot_id, out, &ro, &rr, &err) == KT_ENOTFOUND);
	CHECK_CONTAINS(err.msg, "/a/nope");
	ro.subtree = "/a/b/f.txt";
	CHECK(kt_archive_restore(a, br.snapshot_id, out, &ro, &rr, &err) == KT_ENOTFOUND);
	kt_archive_free(a);
	kt_store_free(s);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	CHECK(system(cmd) == 0);
}

/* Content lists as a backup's reader makes them: ids pushed one by one are
 * cut into lists of 1,024 from the file's start once the file passes 1,024
 * ids; the ids in memory never exceed one list's worth; a file of up to
 * 1,024 ids keeps content inline; lists_make gives the same cuts. */
typedef struct puts_seen {
	size_t n, ids[8];
	uint8_t first[8];
} puts_seen;

static kt_code record_put(void *ctx, kt_buf *blob, uint8_t id_out[32], kt_error *err)
{
	(void)err;
	puts_seen *p = ctx;
	if (p->n < 8) {
		p->ids[p->n] = blob->len / 32;
		p->first[p->n] = (uint8_t)blob->data[0];
	}
	memset(id_out, 0, 32);
	id_out[0] = (uint8_t)p->n++;
	kt_buf_reset(blob);
	return KT_OK;
}

static void test_content_list_cuts(void)
{
	kt_error err;
	CHECK(kt_archive_list_threshold() == 1024 && kt_archive_list_ids() == 1024);
	size_t sizes[] = { 1000, 1024, 1025, 2500 };
	for (size_t k = 0; k < 4; k++) {
		kt_repo_node nd;
		memset(&nd, 0, sizeof(nd));
		nd.type = KT_NODE_FILE;
		nd.name = (char *)"f";
		nd.content = calloc(sizes[k], 32);
		puts_seen seen = { 0 };
		size_t most = 0;
		for (size_t i = 0; i < sizes[k]; i++) {
			nd.content[nd.n_content][0] = (uint8_t)(i / 1024);
			nd.n_content++;
			CHECK(kt_archive_lists_push(&nd, record_put, &seen, &err) == KT_OK);
			most = nd.n_content > most ? nd.n_content : most;
		}
		CHECK(kt_archive_lists_end(&nd, record_put, &seen, &err) == KT_OK);
		CHECK(most <= 1025);
		if (sizes[k] <= 1024) {
			CHECK(nd.n_content_list == 0 && nd.n_content == sizes[k] && seen.n == 0);
		} else {
			size_t want = (sizes[k] + 1023) / 1024;
			CHECK(nd.n_content_list == want && seen.n == want && nd.n_content == 0 &&
			      nd.list_chunks == sizes[k]);
			for (size_t j = 0; j < want; j++)
				CHECK(seen.ids[j] == (j + 1 < want ? 1024 : sizes[k] - 1024 * j) &&
				      seen.first[j] == j && nd.content_list[j][0] == j);
		}
		free(nd.content);
		free(nd.content_list);
	}
	/* At tree encoding: the same cuts for a node given whole. */
	kt_repo_node nd;
	memset(&nd, 0, sizeof(nd));
	nd.type = KT_NODE_FILE;
	nd.name = (char *)"g";
	nd.n_content = 2500;
	nd.content = calloc(2500, 32);
	kt_repo_tree t = { &nd, 1 };
	puts_seen seen = { 0 };
	int made = 0;
	CHECK(kt_archive_lists_make(&t, record_put, &seen, &made, &err) == KT_OK);
	CHECK(made && nd.n_content_list == 3 && nd.list_chunks == 2500 && seen.ids[2] == 452);
	free(nd.content);
	free(nd.content_list);
}

int main(void)
{
	RUN(test_locks);
	RUN(test_delta_codec);
	RUN(test_writer);
	RUN(test_restore_subtree);
	RUN(test_content_list_cuts);
	return unit_done();
}
