/*
 * s3tool.c - a test driver for src/s3 used by tests/integration/test_s3.py
 * (not installed).  Configuration comes from the environment so the secret
 * never sits in argv:
 *   S3_ENDPOINT S3_REGION S3_BUCKET S3_ACCESS_KEY S3_SECRET_KEY S3_CACERT
 *   S3_STYLE (path|virtual) S3_PART_SIZE S3_THREADS S3_ATTEMPTS
 *   S3_RETRY_BASE_MS S3_RETRY_MAX_MS S3_TIMEOUT_MS
 * Commands:
 *   mb                          create the bucket
 *   put KEY FILE [NAME=VALUE..]  upload FILE (multipart above the part size)
 *   putmem KEY TEXT              upload TEXT from memory
 *   get KEY FILE                 download to FILE
 *   head KEY                     print size=, etag=, meta.NAME= lines
 *   ls [PREFIX [PAGE]]           print "KEY<TAB>SIZE<TAB>ETAG" lines, then "count=N"
 *   rm KEY                       delete
 * Errors: "s3tool: <code name>: <message>" on stderr (through kt_redact),
 * exit status = the kt_code value.  Upload progress: "part N bytes/total".
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "s3/s3.h"

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
	fprintf(stderr, "s3tool: %s: %s\n", kt_code_name(rc), out.data);
	kt_buf_release(&out);
	return (int)rc;
}

static void on_progress(void *ctx, uint64_t done, uint64_t total, unsigned part)
{
	(void)ctx;
	fprintf(stderr, "part %u %llu/%llu\n", part, (unsigned long long)done,
	        (unsigned long long)total);
	fflush(stderr);
}

static kt_code write_fd(void *ctx, const uint8_t *data, size_t n, kt_error *err)
{
	int fd = *(int *)ctx;
	while (n) {
		ssize_t w = write(fd, data, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return kt_error_sys(err, KT_EIO, errno, "cannot write the downloaded file");
		data += w;
		n -= (size_t)w;
	}
	return KT_OK;
}

static kt_code print_entry(void *ctx, const kt_s3_entry *e, kt_error *err)
{
	(void)ctx;
	(void)err;
	printf("%s\t%llu\t%s\n", e->key, (unsigned long long)e->size, e->etag);
	return KT_OK;
}

static kt_code print_version(void *ctx, const kt_s3_version *v, kt_error *err)
{
	(void)ctx;
	(void)err;
	printf("%s\t%s\t%llu\t%s\t%s\n", v->key, v->version_id, (unsigned long long)v->size,
	       v->is_latest ? "latest" : "old", v->delete_marker ? "marker" : "data");
	return KT_OK;
}

int main(int argc, char **argv)
{
	kt_s3_config c;
	kt_s3 *s = NULL;
	kt_error err;
	kt_code rc;

	if (argc < 2) {
		fprintf(stderr, "usage: s3tool mb [--lock]|lock-get|lock-set|put|putlock|putmem|get|head|ls|lsv|rm|rmv|retention ARGS (see s3tool.c)\n");
		return 1;
	}
	kt_log_setup(stderr, KT_LOG_TEXT, getenv("S3_DEBUG") ? KT_LOG_DEBUG : KT_LOG_WARN);
	memset(&c, 0, sizeof(c));
	kt_error_clear(&err);
	c.endpoint = getenv("S3_ENDPOINT");
	c.region = getenv("S3_REGION");
	c.bucket = getenv("S3_BUCKET");
	c.access_key = getenv("S3_ACCESS_KEY");
	c.secret_key = getenv("S3_SECRET_KEY");
	c.cacert = getenv("S3_CACERT");
	const char *style = getenv("S3_STYLE");
	if (style && !strcmp(style, "path"))
		c.style = KT_S3_STYLE_PATH;
	else if (style && !strcmp(style, "virtual"))
		c.style = KT_S3_STYLE_VIRTUAL;
	c.part_size = (uint64_t)env_num("S3_PART_SIZE");
	c.n_threads = (int)env_num("S3_THREADS");
	c.max_attempts = (int)env_num("S3_ATTEMPTS");
	c.retry_base_ms = env_num("S3_RETRY_BASE_MS");
	c.retry_max_ms = env_num("S3_RETRY_MAX_MS");
	c.timeout_ms = env_num("S3_TIMEOUT_MS");
	c.connect_timeout_ms = 2000;
	rc = kt_s3_new(&s, &c, &err);
	if (rc)
		return fail(rc, &err);

	const char *cmd = argv[1];
	if (!strcmp(cmd, "mb")) {
		kt_s3_bucket_opts bo = { .object_lock = argc >= 3 && !strcmp(argv[2], "--lock") };
		rc = kt_s3_create_bucket(s, &bo, &err);
	} else if (!strcmp(cmd, "lock-get")) {
		kt_s3_lock_config lc;
		rc = kt_s3_get_object_lock(s, &lc, &err);
		if (!rc)
			printf("enabled=%d\nmode=%s\ndays=%u\nyears=%u\n", lc.enabled, lc.mode, lc.days,
			       lc.years);
	} else if (!strcmp(cmd, "lock-set") && argc >= 4) {
		/* lock-set MODE DAYS */
		kt_s3_lock_config lc = { .enabled = 1, .days = (unsigned)strtoul(argv[3], NULL, 10) };
		snprintf(lc.mode, sizeof(lc.mode), "%s", argv[2]);
		rc = kt_s3_put_object_lock(s, &lc, &err);
	} else if (!strcmp(cmd, "lsv")) {
		uint64_t n = 0;
		rc = kt_s3_list_versions(s, argc >= 3 ? argv[2] : NULL, print_version, NULL, &n, &err);
		if (!rc)
			printf("count=%llu\n", (unsigned long long)n);
	} else if (!strcmp(cmd, "rmv") && argc >= 4) {
		rc = kt_s3_delete_version(s, argv[2], argv[3], &err);
	} else if (!strcmp(cmd, "retention") && argc >= 3) {
		kt_s3_retention r;
		rc = kt_s3_get_retention(s, argv[2], argc >= 4 ? argv[3] : NULL, &r, &err);
		if (!rc)
			printf("mode=%s\nretain_until=%s\n", r.mode, r.retain_until);
	} else if (!strcmp(cmd, "putlock") && argc >= 6) {
		/* putlock KEY FILE MODE UNTIL */
		int fd = open(argv[3], O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			rc = kt_error_sys(&err, KT_EIO, errno, "cannot open '%s'", argv[3]);
		} else {
			kt_s3_put_opts o = { .lock_mode = argv[4], .retain_until = argv[5],
			                     .if_none_match = 1 };
			kt_s3_object_info info;
			rc = kt_s3_put(s, argv[2], fd, &o, &info, &err);
			if (!rc)
				printf("etag=%s\n", info.etag);
			close(fd);
		}
	} else if (!strcmp(cmd, "put") && argc >= 4) {
		int fd = open(argv[3], O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			rc = kt_error_sys(&err, KT_EIO, errno, "cannot open '%s'", argv[3]);
		} else {
			kt_s3_meta meta[16];
			kt_s3_put_opts o = { .meta = meta, .progress = on_progress };
			for (int i = 4; i < argc && o.n_meta < 16; i++) {
				char *eq = strchr(argv[i], '=');
				if (!eq)
					continue;
				*eq = '\0';
				meta[o.n_meta].name = argv[i];
				meta[o.n_meta].value = eq + 1;
				o.n_meta++;
			}
			kt_s3_object_info info;
			rc = kt_s3_put(s, argv[2], fd, &o, &info, &err);
			if (!rc)
				printf("etag=%s\nsize=%llu\n", info.etag, (unsigned long long)info.size);
			close(fd);
		}
	} else if (!strcmp(cmd, "putmem") && argc >= 4) {
		kt_s3_object_info info;
		rc = kt_s3_put_mem(s, argv[2], argv[3], strlen(argv[3]), NULL, &info, &err);
		if (!rc)
			printf("etag=%s\n", info.etag);
	} else if (!strcmp(cmd, "get") && argc >= 4) {
		int fd = open(argv[3], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd < 0) {
			rc = kt_error_sys(&err, KT_EIO, errno, "cannot create '%s'", argv[3]);
		} else {
			kt_s3_object_info info;
			rc = kt_s3_get(s, argv[2], write_fd, &fd, &info, &err);
			if (!rc) {
				printf("size=%llu\netag=%s\n", (unsigned long long)info.size, info.etag);
				kt_s3_object_info_release(&info);
			}
			if (close(fd) != 0 && !rc)
				rc = kt_error_sys(&err, KT_EIO, errno, "cannot close '%s'", argv[3]);
		}
	} else if (!strcmp(cmd, "head") && argc >= 3) {
		kt_s3_object_info info;
		rc = kt_s3_head(s, argv[2], &info, &err);
		if (!rc) {
			printf("size=%llu\netag=%s\nlast_modified=%s\n", (unsigned long long)info.size,
			       info.etag, info.last_modified);
			for (size_t i = 0; i < info.n_meta; i++)
				printf("meta.%s=%s\n", info.meta[i].name, info.meta[i].value);
			kt_s3_object_info_release(&info);
		}
	} else if (!strcmp(cmd, "ls")) {
		uint64_t n = 0;
		unsigned page = argc >= 4 ? (unsigned)strtoul(argv[3], NULL, 10) : 0;
		rc = kt_s3_list(s, argc >= 3 ? argv[2] : NULL, page, print_entry, NULL, &n, &err);
		if (!rc)
			printf("count=%llu\n", (unsigned long long)n);
	} else if (!strcmp(cmd, "rm") && argc >= 3) {
		rc = kt_s3_delete(s, argv[2], &err);
	} else {
		rc = kt_error_set(&err, KT_EUSAGE, "unknown command or missing arguments: %s", cmd);
	}
	kt_s3_free(s);
	if (rc)
		return fail(rc, &err);
	return 0;
}
