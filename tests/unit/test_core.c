/*
 * test_core.c - unit tests for src/core: buffers and their limits, error
 * formatting, redaction, durations, atomic output files, running programs.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core.h"

#include "unit.h"

static void test_buf_limit(void)
{
	kt_buf b;
	kt_error err;
	kt_buf_init(&b, 8);
	CHECK(b.data != NULL && b.len == 0 && b.data[0] == '\0');
	CHECK(kt_buf_adds(&b, "abcd", &err) == KT_OK);
	CHECK(kt_buf_addf(&b, &err, "%d", 1234) == KT_OK);
	CHECK_STR(b.data, "abcd1234");
	CHECK(kt_buf_adds(&b, "x", &err) == KT_ELIMIT);
	CHECK_CONTAINS(err.msg, "limit of 8 bytes");
	CHECK_EQ_U(b.len, 8);
	kt_buf_consume(&b, 3);
	CHECK_STR(b.data, "d1234");
	size_t len;
	char *p = kt_buf_detach(&b, &len);
	CHECK_EQ_U(len, 5);
	CHECK_STR(p, "d1234");
	free(p);
	CHECK(b.len == 0 && b.data[0] == '\0');
	/* Writing straight into the buffer: grow within max, then setlen. */
	CHECK(kt_buf_grow(&b, 9, &err) == KT_ELIMIT);
	kt_buf_reset(&b);   /* an empty, never-grown buffer: the shared slot is untouched */
	CHECK(b.data[0] == '\0');
	CHECK(kt_buf_grow(&b, 6, &err) == KT_OK);
	memcpy(b.data, "abcdef", 6);
	kt_buf_setlen(&b, 6);
	CHECK_STR(b.data, "abcdef");
	CHECK(kt_buf_grow(&b, 3, &err) == KT_ELIMIT);
	kt_buf_release(&b);
}

static void test_errors(void)
{
	kt_error err;
	kt_error_clear(&err);
	CHECK(kt_error_sys(&err, KT_ENOSPC, ENOSPC, "cannot write '%s'", "x.db") == KT_ENOSPC);
	CHECK_CONTAINS(err.msg, "cannot write 'x.db': No space left on device");
	kt_error_wrap(&err, "save");
	CHECK_CONTAINS(err.msg, "save: cannot write");
	CHECK_EQ_U(kt_code_exit(KT_OK), 0);
	CHECK_EQ_U(kt_code_exit(KT_EUSAGE), 2);
	CHECK_EQ_U(kt_code_exit(KT_ECORRUPT), 3);
	CHECK_EQ_U(kt_code_exit(KT_ETRANSIENT), 1);
	CHECK_EQ_U(kt_code_from_errno(EACCES), KT_EPERM);
	CHECK_STR(kt_code_name(KT_ECORRUPT), "corrupt");
}

static void test_redaction(void)
{
	kt_buf b;
	kt_buf_init(&b, 1024);
	kt_log_add_secret("hunter22");
	kt_redact(&b, "user root:hunter22 refused (hunter22)");
	CHECK_STR(b.data, "user root:[REDACTED] refused ([REDACTED])");
	kt_buf_release(&b);
	kt_log_clear_secrets();
}

static void test_duration(void)
{
	int64_t ms = 0;
	kt_error err;
	CHECK(kt_parse_duration_ms("30s", &ms, &err) == KT_OK && ms == 30000);
	CHECK(kt_parse_duration_ms("1h30m", &ms, &err) == KT_OK && ms == 5400000);
	CHECK(kt_parse_duration_ms("500ms", &ms, &err) == KT_OK && ms == 500);
	CHECK(kt_parse_duration_ms("2m5s", &ms, &err) == KT_OK && ms == 125000);
	CHECK(kt_parse_duration_ms("7", &ms, &err) == KT_OK && ms == 7000);
	CHECK(kt_parse_duration_ms("", &ms, &err) == KT_EUSAGE);
	CHECK(kt_parse_duration_ms("5x", &ms, &err) == KT_EUSAGE);
	CHECK(kt_parse_duration_ms("-5s", &ms, &err) == KT_EUSAGE);
	CHECK_CONTAINS(err.msg, "invalid duration '-5s'");
}

static void test_outfile(void)
{
	char dir[] = "/tmp/kt-unit-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	char path[256], part[256];
	snprintf(path, sizeof(path), "%s/a.db", dir);
	snprintf(part, sizeof(part), "%s/a.db.part", dir);
	kt_outfile f;
	kt_error err;
	mode_t old = umask(0);
	CHECK(kt_outfile_open(&f, path, &err) == KT_OK);
	umask(old);
	struct stat st;
	CHECK(stat(part, &st) == 0 && (st.st_mode & 0777) == 0600);
	CHECK(kt_outfile_write(&f, "hello", 5, &err) == KT_OK);
	CHECK(kt_outfile_commit(&f, &err) == KT_OK);
	CHECK(stat(path, &st) == 0 && st.st_size == 5 && (st.st_mode & 0777) == 0600);
	CHECK(access(part, F_OK) != 0);
	/* An existing file is never overwritten. */
	CHECK(kt_outfile_open(&f, path, &err) == KT_EEXIST);
	CHECK_CONTAINS(err.msg, "already exists");
	/* Abort leaves nothing. */
	char path2[256];
	snprintf(path2, sizeof(path2), "%s/b.db", dir);
	CHECK(kt_outfile_open(&f, path2, &err) == KT_OK);
	kt_outfile_write(&f, "x", 1, &err);
	kt_outfile_abort(&f);
	CHECK(access(path2, F_OK) != 0);
	snprintf(part, sizeof(part), "%s/b.db.part", dir);
	CHECK(access(part, F_OK) != 0);
	/* Missing directory: a clear not-found error. */
	char path3[300];
	snprintf(path3, sizeof(path3), "%s/nodir/c.db", dir);
	CHECK(kt_outfile_open(&f, path3, &err) == KT_ENOTFOUND);
	CHECK_CONTAINS(err.msg, "cannot create");
	unlink(path);
	rmdir(dir);
}

static void test_outfile_stale_and_busy_part(void)
{
	char dir[] = "/tmp/kt-unit-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	char path[256], part[256];
	snprintf(path, sizeof(path), "%s/c.db", dir);
	snprintf(part, sizeof(part), "%s/c.db.part", dir);
	/* A .part nobody holds (a killed save) is replaced, not a dead end. */
	int fd = open(part, O_WRONLY | O_CREAT, 0600);
	CHECK(fd >= 0 && write(fd, "stale", 5) == 5);
	close(fd);
	kt_outfile f, g;
	kt_error err;
	CHECK(kt_outfile_open(&f, path, &err) == KT_OK);
	/* A .part another writer holds is refused, and left alone. */
	CHECK(kt_outfile_open(&g, path, &err) == KT_EEXIST);
	CHECK_CONTAINS(err.msg, "being written by another save");
	CHECK(kt_outfile_write(&f, "fresh", 5, &err) == KT_OK);
	CHECK(kt_outfile_commit(&f, &err) == KT_OK);
	struct stat st;
	CHECK(stat(path, &st) == 0 && st.st_size == 5);
	CHECK(access(part, F_OK) != 0);
	unlink(path);
	rmdir(dir);
}

static void test_config(void)
{
	kt_config c;
	kt_error err;
	const char good[] = "# agent\nendpoint: https://127.0.0.1:2379\nkeep: 100\nno-client-cert: true\n";
	CHECK(kt_config_parse(&c, good, sizeof(good) - 1, "a.yaml", &err) == KT_OK);
	CHECK_EQ_U(c.n, 3);
	CHECK_STR(c.keys[0], "endpoint");
	CHECK_STR(c.values[0], "https://127.0.0.1:2379");
	CHECK_STR(c.values[1], "100");
	kt_config_release(&c);
	CHECK(kt_config_parse(&c, "", 0, "empty.yaml", &err) == KT_OK && c.n == 0);
	static const struct { const char *text; const char *msg; } bad[] = {
		{ "dir: [a, b]\n", "found a list" },
		{ "dir:\n  nested: 1\n", "nested map" },
		{ "keep: 1\nkeep: 2\n", "set twice" },
		{ "a: &x 1\nb: *x\n", "aliases" },
		{ "- a\n- b\n", "found a list" },
		{ "key: \"unterminated\n", "line" },
		{ "just a scalar\n", "expected a map" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK(kt_config_parse(&c, bad[i].text, strlen(bad[i].text), "b.yaml", &err) ==
		      KT_EUSAGE);
		CHECK_CONTAINS(err.msg, bad[i].msg);
		CHECK_CONTAINS(err.msg, "config 'b.yaml'");
		CHECK(c.n == 0);
	}
	CHECK(kt_config_load(&c, "/nonexistent/agent.yaml", &err) == KT_ENOTFOUND);
	CHECK_CONTAINS(err.msg, "/nonexistent/agent.yaml");
}

/* kt_proc_*: exit codes, the bounded output tail, timeout, a missing program. */
static void test_proc(void)
{
	kt_error err;
	kt_proc_result r;
	char path[4096], line[64];
	CHECK(kt_proc_find("sh", path, sizeof(path), &err) == KT_OK);
	CHECK(kt_proc_find("no-such-program-kt", path, sizeof(path), &err) == KT_ENOTFOUND);
	CHECK_CONTAINS(err.msg, "no-such-program-kt");
	CHECK(kt_proc_find("/tmp", path, sizeof(path), &err) == KT_EPERM);   /* not a file */

	const char *ok[] = { "/bin/sh", "-c", "echo first; echo last line >&2; exit 3", NULL };
	CHECK(kt_proc_run(ok, NULL, &r, &err) == KT_OK);
	CHECK_EQ_U(r.exit_code, 3);
	CHECK_STR(kt_proc_last_line(&r, line, sizeof(line)), "last line");
	kt_proc_result_release(&r);

	/* 1 MiB of output keeps only the tail. */
	const char *big[] = { "/bin/sh", "-c", "head -c 1048576 /dev/zero | tr '\\0' x; echo END",
	                      NULL };
	CHECK(kt_proc_run(big, NULL, &r, &err) == KT_OK);
	CHECK_EQ_U(r.exit_code, 0);
	CHECK(r.output.len <= KT_PROC_OUTPUT_MAX);
	CHECK(r.output.len > 4 && !memcmp(r.output.data + r.output.len - 4, "END\n", 4));
	kt_proc_result_release(&r);

	kt_proc_opts o = { .timeout_ms = 300 };
	const char *slow[] = { "/bin/sleep", "30", NULL };
	int64_t t0 = kt_now_ms();
	CHECK(kt_proc_run(slow, &o, &r, &err) == KT_ETRANSIENT);
	CHECK(kt_now_ms() - t0 < 10000);
	CHECK_EQ_U(r.signal, 9);
	kt_proc_result_release(&r);

	const char *missing[] = { "/nonexistent/kt-prog", NULL };
	CHECK(kt_proc_run(missing, NULL, &r, &err) == KT_ENOTFOUND);
	kt_proc_result_release(&r);

	pid_t pid;
	CHECK(kt_proc_spawn(slow, NULL, NULL, &pid, &err) == KT_OK);
	CHECK(!kt_proc_exited(pid, NULL));
	kt_proc_stop(pid, 2000);
	CHECK(kill(pid, 0) != 0);   /* reaped: the pid is gone */
}

int main(void)
{
	RUN(test_buf_limit);
	RUN(test_errors);
	RUN(test_redaction);
	RUN(test_duration);
	RUN(test_outfile);
	RUN(test_outfile_stale_and_busy_part);
	RUN(test_config);
	RUN(test_proc);
	return unit_done();
}
