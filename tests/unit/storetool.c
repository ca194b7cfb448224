/*
 * storetool.c - a test driver for src/store used by
 * tests/integration/test_store.py (not installed).
 *
 *   storetool [OPTIONS] COMMAND URL [ARGS]
 * Options (no secrets here; argv is visible to every local user):
 *   --create                 create the directory / bucket
 *   --retry N:MS             wrap in kt_store_retry_wrap(N attempts, MS base)
 *   --faulty SEED:RATE[:K]   wrap in kt_store_faulty_wrap (K = kinds bit set,
 *                            default all); applied before --retry
 * Commands:
 *   suite URL [N_MANY [BIG_MIB]]   run the conformance suite (store must be
 *                                  empty); temp file in $TMPDIR
 *   put URL NAME FILE              put_file
 *   putmem URL NAME TEXT           put from memory
 *   get URL NAME FILE [OFF LEN]    write the bytes to FILE
 *   stat URL NAME                  prints size=N
 *   ls URL [PREFIX]                prints NAME<TAB>SIZE lines, then count=N
 *   rm URL NAME
 * S3 settings come from the environment only: S3_ENDPOINT S3_REGION
 * S3_ACCESS_KEY S3_SECRET_KEY S3_CACERT S3_STYLE (path|virtual)
 * S3_PART_SIZE S3_THREADS S3_ATTEMPTS S3_TIMEOUT_MS.
 * Errors: "storetool: <code name>: <message>" on stderr (through
 * kt_redact), exit status = the kt_code value.  With wrappers, the last
 * stderr line is "faults=N retries=N".
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/store.h"
/* The conformance suite, compiled in (see test_store.c). */
#include "store_suite.c"

static int64_t env_num(const char *name)
{
	const char *v = getenv(name);
	if (!v || !*v)
		return 0;
	char *end;
	long long n = strtoll(v, &end, 10);
	return *end ? 0 : (int64_t)n;
}

static int fail(kt_code rc, const kt_error *err)
{
	kt_buf out;
	kt_buf_init(&out, KT_BUF_UNLIMITED);
	kt_redact(&out, err->msg);
	fprintf(stderr, "storetool: %s: %s\n", kt_code_name(rc), out.data);
	kt_buf_release(&out);
	return (int)rc;
}

static kt_code print_entry(void *ctx, const kt_store_entry *e, kt_error *err)
{
	(void)err;
	printf("%s\t%llu\n", e->name, (unsigned long long)e->size);
	(*(uint64_t *)ctx)++;
	return KT_OK;
}

static int usage(void)
{
	fprintf(stderr, "usage: storetool [--create] [--retry N:MS] [--faulty SEED:RATE[:KINDS]] "
	        "suite|put|putmem|get|stat|ls|rm URL ARGS (see storetool.c)\n");
	return 1;
}

int main(int argc, char **argv)
{
	kt_store_opts o;
	kt_store *s = NULL;
	kt_error err;
	kt_code rc = KT_OK;
	int retry_n = 0;
	long long retry_ms = 0;
	unsigned long long seed = 0;
	unsigned rate = 0, kinds = KT_FAULT_ALL;
	int faulty = 0;
	int i = 1;

	memset(&o, 0, sizeof(o));
	kt_error_clear(&err);
	kt_log_setup(stderr, KT_LOG_TEXT, getenv("S3_DEBUG") ? KT_LOG_DEBUG : KT_LOG_WARN);
	for (; i < argc && !strncmp(argv[i], "--", 2); i++) {
		if (!strcmp(argv[i], "--create")) {
			o.create = 1;
		} else if (!strcmp(argv[i], "--retry") && i + 1 < argc) {
			if (sscanf(argv[++i], "%d:%lld", &retry_n, &retry_ms) != 2)
				return usage();
		} else if (!strcmp(argv[i], "--faulty") && i + 1 < argc) {
			if (sscanf(argv[++i], "%llu:%u:%u", &seed, &rate, &kinds) < 2)
				return usage();
			faulty = 1;
		} else {
			return usage();
		}
	}
	if (argc - i < 2)
		return usage();
	const char *cmd = argv[i], *url = argv[i + 1];
	char **args = argv + i + 2;
	int n_args = argc - i - 2;

	o.endpoint = getenv("S3_ENDPOINT");
	o.region = getenv("S3_REGION");
	o.access_key = getenv("S3_ACCESS_KEY");
	o.secret_key = getenv("S3_SECRET_KEY");
	o.cacert = getenv("S3_CACERT");
	const char *style = getenv("S3_STYLE");
	if (style && !strcmp(style, "path"))
		o.style = KT_S3_STYLE_PATH;
	else if (style && !strcmp(style, "virtual"))
		o.style = KT_S3_STYLE_VIRTUAL;
	o.part_size = (uint64_t)env_num("S3_PART_SIZE");
	o.n_threads = (int)env_num("S3_THREADS");
	o.s3_attempts = (int)env_num("S3_ATTEMPTS");
	o.timeout_ms = env_num("S3_TIMEOUT_MS");

	rc = kt_store_open(url, &o, &s, &err);
	if (rc)
		return fail(rc, &err);
	if (faulty)
		s = kt_store_faulty_wrap(s, seed, rate, kinds);
	if (retry_n)
		s = kt_store_retry_wrap(s, retry_n, retry_ms);

	if (!strcmp(cmd, "suite")) {
		const char *tmp = getenv("TMPDIR");
		store_suite_opts so = {
			.tmpdir = tmp && *tmp ? tmp : "/tmp",
			.n_many = n_args >= 1 ? (unsigned)strtoul(args[0], NULL, 10) : 0,
			.big_size = n_args >= 2 ? strtoull(args[1], NULL, 10) << 20 : 0,
			/* store.h rule 2: where a put can retry inside (the retry
			 * wrapper, the S3 client), identical bytes may count as ours. */
			.lenient_identical = retry_n > 0 || !strncmp(url, "s3://", 5),
			.log = stdout,
		};
		int passed = 0;
		int failed = store_suite_run(s, &so, &passed);
		printf("%d passed, %d failed\n", passed, failed);
		if (failed)
			rc = kt_error_set(&err, KT_ECORRUPT, "%d conformance case(s) failed against %s",
			                  failed, kt_store_describe(s));
	} else if (!strcmp(cmd, "put") && n_args >= 2) {
		int fd = open(args[1], O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			rc = kt_error_sys(&err, KT_EIO, errno, "cannot open '%s'", args[1]);
		} else {
			rc = kt_store_put_file(s, args[0], fd, &err);
			close(fd);
		}
	} else if (!strcmp(cmd, "putmem") && n_args >= 2) {
		rc = kt_store_put(s, args[0], args[1], strlen(args[1]), &err);
	} else if (!strcmp(cmd, "get") && n_args >= 2) {
		uint64_t off = n_args >= 4 ? strtoull(args[2], NULL, 10) : 0;
		uint64_t len = n_args >= 4 ? strtoull(args[3], NULL, 10) : 0;
		kt_buf b;
		kt_buf_init(&b, 1ull << 30);
		rc = kt_store_get(s, args[0], off, len, &b, &err);
		if (!rc) {
			FILE *f = fopen(args[1], "wb");
			if (!f || fwrite(b.data, 1, b.len, f) != b.len || fclose(f) != 0)
				rc = kt_error_sys(&err, KT_EIO, errno, "cannot write '%s'", args[1]);
			else
				printf("size=%zu\n", b.len);
		}
		kt_buf_release(&b);
	} else if (!strcmp(cmd, "stat") && n_args >= 1) {
		uint64_t size = 0;
		rc = kt_store_stat(s, args[0], &size, &err);
		if (!rc)
			printf("size=%llu\n", (unsigned long long)size);
	} else if (!strcmp(cmd, "ls")) {
		uint64_t n = 0;
		rc = kt_store_list(s, n_args >= 1 ? args[0] : "", print_entry, &n, &err);
		if (!rc)
			printf("count=%llu\n", (unsigned long long)n);
	} else if (!strcmp(cmd, "rm") && n_args >= 1) {
		rc = kt_store_remove(s, args[0], &err);
	} else {
		rc = kt_error_set(&err, KT_EUSAGE, "unknown command or missing arguments: %s", cmd);
	}
	if (faulty || retry_n)
		fprintf(stderr, "faults=%llu retries=%llu\n",
		        (unsigned long long)kt_store_faults_injected(s),
		        (unsigned long long)kt_store_retries(s));
	kt_store_free(s);
	if (rc)
		return fail(rc, &err);
	return 0;
}
