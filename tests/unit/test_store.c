/*
 * test_store.c - src/store without a server: the conformance suite
 * (store_suite.c) against the local backend and against the local backend
 * under faulty+retry; name rules and store URLs; local specifics (modes,
 * temporary files, fsync'd layout); the retry wrapper's rules driven by a
 * scripted backend; faulty's determinism; the dispatcher's checks; and the
 * S3 client's mapping of the write-once and range answers.  The S3 backend
 * runs the same suite against MinIO in tests/integration/test_store.py.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store_int.h"
#include "s3/s3_int.h"
#include "unit.h"
/* The conformance suite is compiled into each program that runs it (here
 * and tests/unit/storetool.c): one implementation, no extra build target. */
#include "store_suite.c"

static char tmp_root[256];

/* A fresh directory path (not created) under the test's temp root. */
static const char *fresh_dir(const char *tag)
{
	static char path[512];
	static int n;
	snprintf(path, sizeof(path), "%s/%s-%d", tmp_root, tag, n++);
	return path;
}

static kt_store *open_local(const char *dir)
{
	kt_store_opts o = { .create = 1 };
	kt_store *s = NULL;
	kt_error e;
	kt_code rc = kt_store_open(dir, &o, &s, &e);
	if (rc)
		fprintf(stderr, "  cannot open %s: %s\n", dir, e.msg);
	return s;
}

static int rm_rf(const char *path)
{
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	return system(cmd);
}

/* ---- the conformance suite ---- */

static void test_suite_local(void)
{
	kt_store *s = open_local(fresh_dir("suite"));
	CHECK(s != NULL);
	if (!s)
		return;
	store_suite_opts o = { .tmpdir = tmp_root, .log = stderr };
	int passed = 0;
	CHECK_EQ_U(store_suite_run(s, &o, &passed), 0);
	CHECK(passed > 5);
	kt_store_free(s);
}

static void test_suite_local_faulty_retry(void)
{
	kt_store *s = open_local(fresh_dir("suite-faulty"));
	CHECK(s != NULL);
	if (!s)
		return;
	/* 20% of operations fail in any of the four ways; 12 tries make a
	 * run of failures that exhausts them (0.2^12) vanishingly rare, and the
	 * seed makes the run reproducible anyway. */
	s = kt_store_retry_wrap(kt_store_faulty_wrap(s, 20260101, 20, KT_FAULT_ALL), 12, 1);
	CHECK(!strncmp(kt_store_describe(s), "retry(faulty(local:", 19));
	store_suite_opts o = { .tmpdir = tmp_root, .log = stderr, .lenient_identical = 1 };
	int passed = 0;
	CHECK_EQ_U(store_suite_run(s, &o, &passed), 0);
	/* The faults really happened and were really retried. */
	CHECK(kt_store_faults_injected(s) > 100);
	CHECK(kt_store_retries(s) >= kt_store_faults_injected(s) / 2);
	fprintf(stderr, "  faulty+retry: %llu faults injected, %llu retries\n",
	        (unsigned long long)kt_store_faults_injected(s),
	        (unsigned long long)kt_store_retries(s));
	kt_store_free(s);
}

/* ---- names and URLs ---- */

static void test_names(void)
{
	kt_error e;
	static const char *const good[] = {
		"a", "data/ab/abcdef0123", "A-Z_a.z", ".hidden", "x..y", "...", "a/.b/c.", "0", NULL,
	};
	for (int i = 0; good[i]; i++) {
		kt_error_clear(&e);
		CHECK(kt_store_check_name(good[i], &e) == KT_OK);
	}
	CHECK(kt_store_check_name("a//b", &e) == KT_EUSAGE);
	CHECK_CONTAINS(e.msg, "empty segment");
	CHECK(kt_store_check_name("../etc/passwd", &e) == KT_EUSAGE);
	CHECK_CONTAINS(e.msg, "'..'");
	CHECK(kt_store_check_name("/etc", &e) == KT_EUSAGE);
	CHECK_CONTAINS(e.msg, "starts with '/'");
	CHECK(kt_store_check_name("a b", &e) == KT_EUSAGE);
	CHECK_CONTAINS(e.msg, "outside A-Z");
	CHECK(kt_store_check_name("x.tmp~123", &e) == KT_EUSAGE);
	CHECK(kt_store_check_name(NULL, &e) == KT_EUSAGE);
	CHECK(kt_store_check_name("", &e) == KT_EUSAGE);
	CHECK_CONTAINS(e.msg, "empty");
}

static void test_urls(void)
{
	kt_store *s = NULL;
	kt_error e;
	kt_store_opts o = { 0 };
	CHECK(kt_store_open("", &o, &s, &e) == KT_EUSAGE);
	CHECK(kt_store_open("ftp://host/x", &o, &s, &e) == KT_EUSAGE);
	CHECK_CONTAINS(e.msg, "unknown scheme");
	CHECK(kt_store_open("file://host/x", &o, &s, &e) == KT_EUSAGE);
	CHECK_CONTAINS(e.msg, "file:///");
	CHECK(kt_store_open("s3://", &o, &s, &e) == KT_EUSAGE);
	CHECK_CONTAINS(e.msg, "lacks a bucket");
	CHECK(kt_store_open("s3://b/bad prefix", &o, &s, &e) == KT_EUSAGE);
	CHECK_CONTAINS(e.msg, "prefix");
	CHECK(kt_store_open("s3://b/a//b", &o, &s, &e) == KT_EUSAGE);
	CHECK(kt_store_open("s3://b/p", &o, &s, &e) == KT_EUSAGE);
	CHECK_CONTAINS(e.msg, "endpoint");
	CHECK(s == NULL);

	/* An S3 store opens without a request (nothing listens on port 9). */
	kt_store_opts so = { .endpoint = "http://127.0.0.1:9", .access_key = "AK",
	                     .secret_key = "test-store-secret" };
	CHECK(kt_store_open("s3://bucket/backups/", &so, &s, &e) == KT_OK);
	if (s) {
		CHECK_STR(kt_store_describe(s), "s3://bucket/backups");
		kt_store_free(s);
		s = NULL;
	}
	CHECK(kt_store_open("s3://bucket", &so, &s, &e) == KT_OK);
	if (s) {
		CHECK_STR(kt_store_describe(s), "s3://bucket");
		kt_store_free(s);
		s = NULL;
	}

	/* Local: missing without create, created 0700 with it, file:/// too. */
	const char *dir = fresh_dir("url");
	CHECK(kt_store_open(dir, &o, &s, &e) == KT_ENOTFOUND);
	CHECK_CONTAINS(e.msg, "does not exist");
	char url[600];
	snprintf(url, sizeof(url), "file://%s/deeper/still", dir);
	o.create = 1;
	CHECK(kt_store_open(url, &o, &s, &e) == KT_OK);
	struct stat st;
	char path[600];
	snprintf(path, sizeof(path), "%s/deeper/still", dir);
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0700);
	if (s) {
		char want[700];
		snprintf(want, sizeof(want), "local:%s", path);
		CHECK_STR(kt_store_describe(s), want);
		kt_store_free(s);
	}
	s = NULL;
	o.create = 0;
	CHECK(kt_store_open(path, &o, &s, &e) == KT_OK);
	kt_store_free(s);
	s = NULL;
	/* A file is not a store directory. */
	snprintf(path, sizeof(path), "%s/file", dir);
	int fd = open(path, O_CREAT | O_WRONLY, 0600);
	close(fd);
	CHECK(kt_store_open(path, &o, &s, &e) == KT_EUSAGE);
	CHECK_CONTAINS(e.msg, "not a directory");
}

/* ---- local specifics ---- */

static kt_code count_entry(void *ctx, const kt_store_entry *e, kt_error *err)
{
	(void)e;
	(void)err;
	(*(size_t *)ctx)++;
	return KT_OK;
}

static void test_local_layout(void)
{
	const char *dir = fresh_dir("layout");
	kt_store *s = open_local(dir);
	kt_error e;
	char path[700];
	struct stat st;
	CHECK(s != NULL);
	if (!s)
		return;
	CHECK(kt_store_put(s, "data/ab/abcdef", "payload", 7, &e) == KT_OK);
	/* The name's segments are directories (0700), the object a 0600 file. */
	snprintf(path, sizeof(path), "%s/data/ab/abcdef", dir);
	CHECK(stat(path, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0777) == 0600 &&
	      st.st_size == 7);
	snprintf(path, sizeof(path), "%s/data/ab", dir);
	CHECK(stat(path, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0700);

	/* Leftovers of a killed writer, foreign files and symlinks are invisible
	 * and never block a name. */
	snprintf(path, sizeof(path), "%s/data/ab/abc123.tmp~0123456789ab", dir);
	int fd = open(path, O_CREAT | O_WRONLY, 0600);
	CHECK(fd >= 0 && write(fd, "partial", 7) == 7);
	close(fd);
	snprintf(path, sizeof(path), "%s/data/ab/has space", dir);
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	close(fd);
	snprintf(path, sizeof(path), "%s/data/ab/link", dir);
	CHECK(symlink("abcdef", path) == 0);
	size_t n = 0;
	CHECK(kt_store_list(s, "", count_entry, &n, &e) == KT_OK);
	CHECK_EQ_U(n, 1);
	uint64_t size;
	CHECK(kt_store_stat(s, "data/ab/link", &size, &e) == KT_ENOTFOUND);
	kt_buf lb;
	kt_buf_init(&lb, 1024);
	CHECK(kt_store_get(s, "data/ab/link", 0, 0, &lb, &e) == KT_ENOTFOUND);
	kt_buf_release(&lb);
	CHECK(kt_store_put(s, "data/ab/abc123", "x", 1, &e) == KT_OK);
	n = 0;
	CHECK(kt_store_list(s, "data/", count_entry, &n, &e) == KT_OK);
	CHECK_EQ_U(n, 2);

	/* A put leaves no temporary file behind. */
	char cmd[800];
	snprintf(cmd, sizeof(cmd), "test -z \"$(find '%s' -name '*.tmp~*' ! -name "
	         "'abc123.tmp~0123456789ab')\"", dir);
	CHECK(system(cmd) == 0);

	/* A name and a name below it cannot both exist locally. */
	CHECK(kt_store_put(s, "data/ab/abcdef/below", "x", 1, &e) == KT_EUSAGE);
	CHECK_CONTAINS(e.msg, "'a/b'");
	CHECK(kt_store_put(s, "data/ab", "x", 1, &e) == KT_EUSAGE);
	/* A directory is not an object. */
	CHECK(kt_store_stat(s, "data", &size, &e) == KT_ENOTFOUND);
	kt_buf b;
	kt_buf_init(&b, 1024);
	CHECK(kt_store_get(s, "data/ab", 0, 0, &b, &e) == KT_ENOTFOUND);
	kt_buf_release(&b);

	/* put_file of something that is not a regular file. */
	int dfd = open(dir, O_RDONLY | O_DIRECTORY);
	CHECK(kt_store_put_file(s, "dir-as-file", dfd, &e) == KT_EUSAGE);
	close(dfd);
	CHECK(kt_store_put_file(s, "no-fd", -1, &e) == KT_EUSAGE);
	kt_store_free(s);
}

/* An object truncated behind the store's back reads as corrupt, not short. */
static void test_local_truncated_object(void)
{
	const char *dir = fresh_dir("trunc");
	kt_store *s = open_local(dir);
	kt_error e;
	char path[700];
	CHECK(s != NULL);
	if (!s)
		return;
	char data[4096];
	memset(data, 'z', sizeof(data));
	CHECK(kt_store_put(s, "pack/p1", data, sizeof(data), &e) == KT_OK);
	snprintf(path, sizeof(path), "%s/pack/p1", dir);
	CHECK(truncate(path, 1000) == 0);
	kt_buf b;
	kt_buf_init(&b, 1 << 20);
	CHECK(kt_store_get(s, "pack/p1", 2000, 100, &b, &e) == KT_ECORRUPT);
	CHECK_CONTAINS(e.msg, "has 1000 bytes");
	CHECK_CONTAINS(e.msg, "cannot read 100 bytes at offset 2000");
	CHECK(b.len == 0);
	kt_buf_release(&b);
	kt_store_free(s);
}

/* ---- a scripted backend to drive the wrappers and the dispatcher ---- */

enum {
	DO = 0,             /* pass the call to the inner store */
	LOST = -1,          /* pass it, then report KT_ETRANSIENT */
	CUT = -2,           /* list: deliver 3 entries, then KT_ETRANSIENT */
	SHORT = -3,         /* get: deliver one byte less, claim the full size */
	DISORDER = -4,      /* list: deliver "b" then "a" */
};

typedef struct scripted {
	kt_store base;
	kt_store *inner;
	int script[16];
	int n, pos;
	int calls;
} scripted;

static int next_step(scripted *sc)
{
	sc->calls++;
	return sc->pos < sc->n ? sc->script[sc->pos++] : DO;
}

static kt_code step_fail(int step, kt_error *err)
{
	return kt_error_set(err, (kt_code)step, "scripted %s", kt_code_name((kt_code)step));
}

static kt_code sc_put(kt_store *s, const char *name, const void *data, size_t len,
                      kt_error *err)
{
	scripted *sc = (scripted *)s;
	int st = next_step(sc);
	if (st > 0)
		return step_fail(st, err);
	kt_code rc = kt_store_put(sc->inner, name, data, len, err);
	if (!rc && st == LOST)
		return kt_error_set(err, KT_ETRANSIENT, "scripted lost answer");
	return rc;
}

static kt_code sc_put_file(kt_store *s, const char *name, int fd, kt_error *err)
{
	scripted *sc = (scripted *)s;
	int st = next_step(sc);
	if (st > 0)
		return step_fail(st, err);
	kt_code rc = kt_store_put_file(sc->inner, name, fd, err);
	if (!rc && st == LOST)
		return kt_error_set(err, KT_ETRANSIENT, "scripted lost answer");
	return rc;
}

static kt_code sc_get(kt_store *s, const char *name, uint64_t off, uint64_t len, kt_buf *out,
                      uint64_t *size, kt_error *err)
{
	scripted *sc = (scripted *)s;
	int st = next_step(sc);
	if (st > 0)
		return step_fail(st, err);
	kt_code rc = kt_store_get(sc->inner, name, off, len, out, err);
	if (rc)
		return rc;
	*size = off + out->len;
	if (st == SHORT && out->len)
		out->data[--out->len] = '\0';
	return KT_OK;
}

static kt_code sc_stat(kt_store *s, const char *name, uint64_t *size, kt_error *err)
{
	scripted *sc = (scripted *)s;
	int st = next_step(sc);
	if (st > 0)
		return step_fail(st, err);
	return kt_store_stat(sc->inner, name, size, err);
}

typedef struct cut_ctx {
	kt_store_list_fn fn;
	void *ctx;
	int left;
} cut_ctx;

static kt_code cut_fn(void *ctx, const kt_store_entry *e, kt_error *err)
{
	cut_ctx *c = ctx;
	if (c->left-- == 0)
		return kt_error_set(err, KT_ETRANSIENT, "scripted cut");
	return c->fn(c->ctx, e, err);
}

static kt_code sc_list(kt_store *s, const char *prefix, kt_store_list_fn fn, void *ctx,
                       kt_error *err)
{
	scripted *sc = (scripted *)s;
	int st = next_step(sc);
	if (st > 0)
		return step_fail(st, err);
	if (st == DISORDER) {
		kt_store_entry b = { "b", 1 }, a = { "a", 1 };
		kt_code rc = fn(ctx, &b, err);
		return rc ? rc : fn(ctx, &a, err);
	}
	cut_ctx c = { fn, ctx, st == CUT ? 3 : -1 };
	return kt_store_list(sc->inner, prefix, cut_fn, &c, err);
}

static kt_code sc_remove(kt_store *s, const char *name, kt_error *err)
{
	scripted *sc = (scripted *)s;
	int st = next_step(sc);
	if (st > 0)
		return step_fail(st, err);
	return kt_store_remove(sc->inner, name, err);
}

static void sc_free(kt_store *s)
{
	scripted *sc = (scripted *)s;
	kt_store_free(sc->inner);
	free(sc);
}

static const kt_store_vtable scripted_vt = {
	"scripted", sc_put, sc_put_file, sc_get, sc_stat, sc_list, sc_remove, NULL, sc_free,
};

static scripted *make_scripted(volatile sig_atomic_t *cancel)
{
	scripted *sc = kt_xcalloc(1, sizeof(*sc));
	sc->base.vt = &scripted_vt;
	sc->base.desc = kt_xstrdup("scripted");
	sc->base.cancel = cancel;
	sc->inner = open_local(fresh_dir("scripted"));
	return sc;
}

static void script(scripted *sc, int n, const int *steps)
{
	if (n)
		memcpy(sc->script, steps, (size_t)n * sizeof(int));
	sc->n = n;
	sc->pos = 0;
	sc->calls = 0;
}

static void test_retry_only_transient(void)
{
	scripted *sc = make_scripted(NULL);
	kt_store *r = kt_store_retry_wrap(&sc->base, 4, 1);
	kt_error e;
	uint64_t size;
	CHECK(kt_store_put(r, "k", "v", 1, &e) == KT_OK);

	/* Transient twice, then fine: three calls, success. */
	script(sc, 2, (int[]){ KT_ETRANSIENT, KT_ETRANSIENT });
	CHECK(kt_store_stat(r, "k", &size, &e) == KT_OK && size == 1);
	CHECK_EQ_U(sc->calls, 3);
	CHECK_EQ_U(kt_store_retries(r), 2);

	/* Never retried: each code is seen exactly once. */
	static const kt_code final[] = { KT_ENOTFOUND, KT_EEXIST, KT_EAUTH, KT_ECORRUPT, KT_EIO,
	                                 KT_EUSAGE, KT_EPROTO };
	for (size_t i = 0; i < sizeof(final) / sizeof(final[0]); i++) {
		script(sc, 1, (int[]){ (int)final[i] });
		CHECK(kt_store_stat(r, "k", &size, &e) == final[i]);
		CHECK_EQ_U(sc->calls, 1);
	}

	/* Out of attempts: the last error, saying how many tries were made. */
	script(sc, 5, (int[]){ KT_ETRANSIENT, KT_ETRANSIENT, KT_ETRANSIENT, KT_ETRANSIENT,
	                       KT_ETRANSIENT });
	CHECK(kt_store_remove(r, "k", &e) == KT_ETRANSIENT);
	CHECK_EQ_U(sc->calls, 4);
	CHECK_CONTAINS(e.msg, "failed 4 times");
	CHECK_CONTAINS(e.msg, "scripted transient");
	kt_store_free(r);
}

static void test_retry_backoff_and_cancel(void)
{
	volatile sig_atomic_t cancel = 0;
	scripted *sc = make_scripted(&cancel);
	kt_store *r = kt_store_retry_wrap(&sc->base, 4, 40);
	kt_error e;
	uint64_t size;
	/* Waits of at least 20, 40 and 80 ms (equal jitter keeps half). */
	script(sc, 4, (int[]){ KT_ETRANSIENT, KT_ETRANSIENT, KT_ETRANSIENT, KT_ETRANSIENT });
	int64_t t0 = kt_now_ms();
	CHECK(kt_store_stat(r, "k", &size, &e) == KT_ETRANSIENT);
	int64_t took = kt_now_ms() - t0;
	CHECK(took >= 140 && took < 2000);
	/* A canceled caller is not kept waiting. */
	cancel = 1;
	script(sc, 1, (int[]){ KT_ETRANSIENT });
	CHECK(kt_store_stat(r, "k", &size, &e) == KT_ECANCELED);
	CHECK_CONTAINS(e.msg, "canceled");
	kt_store_free(r);
}

static void test_retry_put_lost_answer(void)
{
	scripted *sc = make_scripted(NULL);
	kt_store *r = kt_store_retry_wrap(&sc->base, 5, 1);
	kt_error e;
	kt_buf b;
	kt_buf_init(&b, 1 << 20);

	/* The put landed but its answer was lost: the retry finds the name
	 * taken by exactly our bytes, which is success. */
	script(sc, 1, (int[]){ LOST });
	CHECK(kt_store_put(r, "obj/1", "mine", 4, &e) == KT_OK);
	CHECK(kt_store_get(r, "obj/1", 0, 0, &b, &e) == KT_OK && b.len == 4);

	/* The same for put_file. */
	char path[600];
	snprintf(path, sizeof(path), "%s/putfile-src", tmp_root);
	int fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0600);
	CHECK(fd >= 0 && write(fd, "file bytes", 10) == 10);
	script(sc, 1, (int[]){ LOST });
	CHECK(kt_store_put_file(r, "obj/2", fd, &e) == KT_OK);

	/* Someone else's bytes under the name stay KT_EEXIST, even after a
	 * transient failure. */
	CHECK(kt_store_put(r, "obj/3", "theirs", 6, &e) == KT_OK);
	script(sc, 1, (int[]){ KT_ETRANSIENT });
	CHECK(kt_store_put(r, "obj/3", "mine", 4, &e) == KT_EEXIST);
	CHECK_CONTAINS(e.msg, "other content");
	script(sc, 1, (int[]){ KT_ETRANSIENT });
	CHECK(kt_store_put(r, "obj/3", "thEirs", 6, &e) == KT_EEXIST);
	script(sc, 1, (int[]){ KT_ETRANSIENT });
	CHECK(kt_store_put_file(r, "obj/3", fd, &e) == KT_EEXIST);
	CHECK(kt_store_get(r, "obj/3", 0, 0, &b, &e) == KT_OK && !strcmp(b.data, "theirs"));

	/* Without an earlier transient failure, EEXIST is passed on as is. */
	script(sc, 0, NULL);
	CHECK(kt_store_put(r, "obj/1", "mine", 4, &e) == KT_EEXIST);
	close(fd);
	kt_buf_release(&b);
	kt_store_free(r);
}

typedef struct names {
	char all[64][32];
	int n;
	int stop_at;
} names;

static kt_code note_name(void *ctx, const kt_store_entry *e, kt_error *err)
{
	names *nm = ctx;
	if (nm->stop_at && nm->n == nm->stop_at)
		return kt_error_set(err, KT_ETRANSIENT, "the caller's own transient failure");
	snprintf(nm->all[nm->n++], 32, "%s", e->name);
	return KT_OK;
}

static void test_retry_list_resumes(void)
{
	scripted *sc = make_scripted(NULL);
	kt_store *r = kt_store_retry_wrap(&sc->base, 5, 1);
	kt_error e;
	char name[32];
	for (int i = 0; i < 10; i++) {
		snprintf(name, sizeof(name), "l/%02d", i);
		CHECK(kt_store_put(r, name, "x", 1, &e) == KT_OK);
	}
	/* Cut after 3 entries twice: every name still arrives exactly once. */
	names nm = { .n = 0 };
	script(sc, 2, (int[]){ CUT, CUT });
	CHECK(kt_store_list(r, "l/", note_name, &nm, &e) == KT_OK);
	CHECK_EQ_U(nm.n, 10);
	for (int i = 0; i < nm.n; i++) {
		snprintf(name, sizeof(name), "l/%02d", i);
		CHECK_STR(nm.all[i], name);
	}
	CHECK_EQ_U(sc->calls, 3);
	/* An error from the caller's callback is the caller's: not retried. */
	memset(&nm, 0, sizeof(nm));
	nm.stop_at = 4;
	script(sc, 0, NULL);
	CHECK(kt_store_list(r, "l/", note_name, &nm, &e) == KT_ETRANSIENT);
	CHECK_CONTAINS(e.msg, "caller's own");
	CHECK_EQ_U(sc->calls, 1);
	CHECK_EQ_U(nm.n, 4);
	kt_store_free(r);
}

static void test_dispatcher_checks(void)
{
	scripted *sc = make_scripted(NULL);
	kt_store *s = &sc->base;
	kt_error e;
	kt_buf b;
	kt_buf_init(&b, 1 << 20);
	CHECK(kt_store_put(s, "short", "0123456789", 10, &e) == KT_OK);
	/* A backend that delivers fewer bytes than it holds is caught. */
	script(sc, 1, (int[]){ SHORT });
	CHECK(kt_store_get(s, "short", 0, 0, &b, &e) == KT_ETRANSIENT);
	CHECK_CONTAINS(e.msg, "short read");
	CHECK_CONTAINS(e.msg, "got 9 of 10 bytes");
	CHECK(b.len == 0);
	script(sc, 1, (int[]){ SHORT });
	CHECK(kt_store_get(s, "short", 2, 5, &b, &e) == KT_ETRANSIENT);
	/* ... and retried by the retry wrapper. */
	kt_store *r = kt_store_retry_wrap(s, 3, 1);
	script(sc, 1, (int[]){ SHORT });
	CHECK(kt_store_get(r, "short", 0, 0, &b, &e) == KT_OK && b.len == 10);
	/* A listing out of order is refused, not passed on. */
	names nm = { .n = 0 };
	script(sc, 1, (int[]){ DISORDER });
	CHECK(kt_store_list(r, "", note_name, &nm, &e) == KT_EPROTO);
	CHECK_CONTAINS(e.msg, "out of order");
	CHECK_EQ_U(nm.n, 1);
	kt_buf_release(&b);
	kt_store_free(r);
}

/* ---- faulty ---- */

/* Run a fixed sequence of operations, recording each result code. */
static void faulty_trace(uint64_t seed, unsigned kinds, int *codes, int n)
{
	kt_store *s = kt_store_faulty_wrap(open_local(fresh_dir("trace")), seed, 50, kinds);
	kt_buf b;
	kt_error e;
	uint64_t size;
	char name[32];
	kt_buf_init(&b, 1 << 20);
	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "t/%d", i % 7);
		switch (i % 4) {
		case 0: codes[i] = kt_store_put(s, name, "0123456789", 10, &e); break;
		case 1: codes[i] = kt_store_get(s, name, 0, 0, &b, &e); break;
		case 2: codes[i] = kt_store_stat(s, name, &size, &e); break;
		default: codes[i] = kt_store_remove(s, name, &e); break;
		}
	}
	kt_buf_release(&b);
	kt_store_free(s);
}

static void test_faulty_deterministic(void)
{
	int a[200], b[200], c[200];
	faulty_trace(99, KT_FAULT_ALL, a, 200);
	faulty_trace(99, KT_FAULT_ALL, b, 200);
	faulty_trace(100, KT_FAULT_ALL, c, 200);
	CHECK(!memcmp(a, b, sizeof(a)));
	CHECK(memcmp(a, c, sizeof(a)) != 0);
	int transient = 0;
	for (int i = 0; i < 200; i++)
		transient += a[i] == KT_ETRANSIENT;
	CHECK(transient > 40 && transient < 160);

	/* Short reads only: every get either succeeds exactly or is caught. */
	kt_store *s = kt_store_faulty_wrap(open_local(fresh_dir("short")), 5, 100,
	                                   KT_FAULT_SHORT_READ);
	kt_error e;
	kt_buf buf;
	kt_buf_init(&buf, 1 << 20);
	CHECK(kt_store_put(s, "x", "abcdefgh", 8, &e) == KT_OK);
	for (int i = 0; i < 20; i++) {
		kt_code rc = kt_store_get(s, "x", 0, 0, &buf, &e);
		CHECK(rc == KT_ETRANSIENT);
		CHECK(buf.len == 0);
	}
	CHECK_CONTAINS(e.msg, "short read");
	CHECK_EQ_U(kt_store_faults_injected(s), 20);
	CHECK_EQ_U(kt_store_retries(s), 0);
	/* Injected failures say so. */
	kt_store *f = kt_store_faulty_wrap(open_local(fresh_dir("before")), 1, 100,
	                                   KT_FAULT_BEFORE);
	CHECK(kt_store_put(f, "y", "1", 1, &e) == KT_ETRANSIENT);
	CHECK_CONTAINS(e.msg, "injected fault");
	/* Through a second, silent wrapper (rate 0) the inner faults still show. */
	kt_store *g = kt_store_faulty_wrap(f, 1, 0, KT_FAULT_ALL);
	uint64_t size;
	CHECK(kt_store_stat(g, "y", &size, &e) == KT_ETRANSIENT);
	CHECK_EQ_U(kt_store_faults_injected(g), 2);
	kt_buf_release(&buf);
	kt_store_free(s);
	kt_store_free(g);   /* frees f too */
}

/* ---- the S3 client's answers behind write-once and ranges ---- */

static void test_s3_mapping(void)
{
	kt_s3_config c = { .endpoint = "http://127.0.0.1:9", .bucket = "bk", .access_key = "AK",
	                   .secret_key = "test-store-secret" };
	kt_s3 *s3 = NULL;
	kt_error e;
	CHECK(kt_s3_new(&s3, &c, &e) == KT_OK);
	if (!s3)
		return;
	kt_s3_errdoc d = { 1, "PreconditionFailed", "At least one of the pre-conditions you "
	                   "specified did not hold" };
	CHECK(kt_s3_map_failure(s3, "upload", "p/obj", 412, &d, &e) == KT_EEXIST);
	CHECK_CONTAINS(e.msg, "'p/obj' already exists");
	CHECK(e.status == 412);
	CHECK(kt_s3_map_failure(s3, "upload", "p/obj", 412, NULL, &e) == KT_EEXIST);
	kt_s3_errdoc r = { 1, "InvalidRange", "The requested range is not satisfiable" };
	CHECK(kt_s3_map_failure(s3, "download", "p/obj", 416, &r, &e) == KT_EUSAGE);
	CHECK(e.status == 416);
	CHECK_CONTAINS(e.msg, "past the end");
	kt_s3_errdoc cc = { 1, "ConditionalRequestConflict", "retry" };
	CHECK(kt_s3_map_failure(s3, "upload", "p/obj", 409, &cc, &e) == KT_ETRANSIENT);
	kt_s3_free(s3);
}

int main(void)
{
	const char *base = getenv("TMPDIR");
	snprintf(tmp_root, sizeof(tmp_root), "%s/test_store-XXXXXX", base && *base ? base : "/tmp");
	if (!mkdtemp(tmp_root)) {
		perror("mkdtemp");
		return 1;
	}
	kt_log_setup(stderr, KT_LOG_TEXT, KT_LOG_WARN);
	RUN(test_names);
	RUN(test_urls);
	RUN(test_local_layout);
	RUN(test_local_truncated_object);
	RUN(test_retry_only_transient);
	RUN(test_retry_backoff_and_cancel);
	RUN(test_retry_put_lost_answer);
	RUN(test_retry_list_resumes);
	RUN(test_dispatcher_checks);
	RUN(test_faulty_deterministic);
	RUN(test_s3_mapping);
	RUN(test_suite_local);
	RUN(test_suite_local_faulty_retry);
	rm_rf(tmp_root);
	kt_log_clear_secrets();
	return unit_done();
}
