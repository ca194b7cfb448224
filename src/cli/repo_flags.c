/*
 * repo_flags.c - the flags and setup every command that opens a repository
 * shares (repo ..., app backup/restore, restorepoint ...): --repo, the
 * passphrase (--password-file, KONTINUITY_PASSWORD or a prompt, never a
 * flag value) and the S3 settings (keys only from the environment).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "archive/archive.h"
#include "cli.h"

kt_opt *kt_cli_repo_opts(kt_cli_repo_flags *f, kt_opt *o)
{
	memset(f, 0, sizeof(*f));
	f->repo = getenv("KONTINUITY_REPO");
	f->endpoint = getenv("AWS_ENDPOINT_URL_S3") ? getenv("AWS_ENDPOINT_URL_S3")
	                                              : getenv("AWS_ENDPOINT_URL");
	f->region = getenv("AWS_DEFAULT_REGION") ? getenv("AWS_DEFAULT_REGION")
	                                           : getenv("AWS_REGION");
	const kt_opt list[] = {
		{ "repo", 'r', "URL", "the repository: a directory, or s3://BUCKET/PREFIX (or "
		  "KONTINUITY_REPO)", &f->repo, NULL },
		{ "password-file", 0, "FILE", "read the passphrase from FILE (else "
		  "KONTINUITY_PASSWORD, else a prompt)", &f->password_file, NULL },
		{ "s3-endpoint", 0, "URL", "S3 endpoint (or AWS_ENDPOINT_URL); keys come from "
		  "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", &f->endpoint, NULL },
		{ "s3-region", 0, "REGION", "S3 region (or AWS_DEFAULT_REGION; default us-east-1)",
		  &f->region, NULL },
		{ "s3-cacert", 0, "FILE", "CA bundle for the S3 endpoint", &f->cacert, NULL },
	};
	memcpy(o, list, sizeof(list));
	return o + sizeof(list) / sizeof(list[0]);
}

const char kt_cli_repo_help_tail[] =
	"\nThe passphrase comes from --password-file, else KONTINUITY_PASSWORD, else a\n"
	"prompt on the terminal.  Losing it loses the repository: nothing can open it\n"
	"without it.  S3 credentials come from AWS_ACCESS_KEY_ID and\n"
	"AWS_SECRET_ACCESS_KEY, never from flags.\n";

/* The passphrase into buf (NUL-terminated); 0 or an exit code (printed). */
int kt_cli_repo_password(const kt_cli_repo_flags *f, const char *path_cmd, int confirm, char *buf,
                        size_t cap)
{
	if (f->password_file) {
		int fd = open(f->password_file, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			fprintf(stderr, "kontinuity: cannot read the password file '%s': %s\n",
			        f->password_file, strerror(errno));
			return 1;
		}
		ssize_t n = read(fd, buf, cap - 1);
		close(fd);
		if (n < 0)
			n = 0;
		buf[n] = '\0';
		buf[strcspn(buf, "\r\n")] = '\0';
	} else if (getenv("KONTINUITY_PASSWORD")) {
		snprintf(buf, cap, "%s", getenv("KONTINUITY_PASSWORD"));
	} else if (isatty(STDIN_FILENO)) {
		for (int round = 0; round < (confirm ? 2 : 1); round++) {
			char *dst = round ? buf + cap / 2 : buf;
			fprintf(stderr, round ? "repeat the passphrase: " : "passphrase: ");
			struct termios old, quiet;
			tcgetattr(STDIN_FILENO, &old);
			quiet = old;
			quiet.c_lflag &= ~(tcflag_t)ECHO;
			tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
			if (!fgets(dst, (int)(cap / 2), stdin))
				dst[0] = '\0';
			tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
			fprintf(stderr, "\n");
			dst[strcspn(dst, "\r\n")] = '\0';
		}
		if (confirm && strcmp(buf, buf + cap / 2)) {
			fprintf(stderr, "kontinuity: the passphrases differ\n");
			return 1;
		}
	} else {
		return kt_cli_usage(path_cmd, "no passphrase: give --password-file or set "
		                    "KONTINUITY_PASSWORD");
	}
	if (!buf[0]) {
		fprintf(stderr, "kontinuity: the passphrase is empty\n");
		return 1;
	}
	kt_log_add_secret(buf);
	return 0;
}

int kt_cli_repo_store(const kt_cli_repo_flags *f, const char *path_cmd, int create, kt_store **out)
{
	if (!f->repo || !*f->repo)
		return kt_cli_usage(path_cmd, "--repo URL is required (or set KONTINUITY_REPO)");
	/* Set by the volume mover's Job (src/app/mover.c) from an export
	 * profile: its addressing and its Object Lock retention. */
	const char *style = getenv("KONTINUITY_S3_PATH_STYLE");
	const char *lock = getenv("KONTINUITY_S3_LOCK_DAYS");
	kt_store_opts so = { .create = create, .endpoint = f->endpoint, .region = f->region,
	                     .access_key = getenv("AWS_ACCESS_KEY_ID"),
	                     .secret_key = getenv("AWS_SECRET_ACCESS_KEY"), .cacert = f->cacert,
	                     .style = style && !strcmp(style, "1") ? KT_S3_STYLE_PATH
	                                                           : KT_S3_STYLE_AUTO,
	                     .lock_days = lock ? (unsigned)strtoul(lock, NULL, 10) : 0,
	                     .cancel = &kt_cli_cancel };
	kt_error err;
	kt_store *s;
	kt_code c = kt_store_open(f->repo, &so, &s, &err);
	if (c == KT_ENOTFOUND && !create)
		kt_error_set(&err, c, "no repository at '%s' (create one with `kontinuity repo init "
		             "--repo %s`)", f->repo, f->repo);
	if (c)
		return kt_cli_fail(&err);
	*out = kt_store_retry_wrap(s, 5, 200);
	return 0;
}

int kt_cli_repo_open(const kt_cli_repo_flags *f, const char *path_cmd, kt_store **s,
                     kt_archive **a)
{
	int rc = kt_cli_repo_store(f, path_cmd, 0, s);
	if (rc)
		return rc;
	char pass[1024];
	if ((rc = kt_cli_repo_password(f, path_cmd, 0, pass, sizeof(pass)))) {
		kt_store_free(*s);
		return rc;
	}
	kt_error err;
	kt_code c = kt_archive_open(*s, pass, strlen(pass), a, &err);
	explicit_bzero(pass, sizeof(pass));
	if (c) {
		kt_store_free(*s);
		return kt_cli_fail(&err);
	}
	return 0;
}
