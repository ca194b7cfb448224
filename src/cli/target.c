/*
 * target.c - where restore points go and come from: the repository --repo
 * names, or the one in the bucket of an export profile (--profile; its
 * keys, CA and passphrase read from the profile's Secret, the repository
 * made on first use).  Shared by the app and restorepoint commands.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app/app.h"
#include "archive/archive.h"
#include "cli.h"
#include "kube/kube.h"

kt_opt *kt_cli_target_opts(kt_cli_target *t, kt_opt *o)
{
	o = kt_cli_repo_opts(&t->rf, o);
	t->profile = NULL;
	t->profile_ns = KT_PROFILE_NAMESPACE;
	t->ca_path[0] = '\0';
	*o++ = (kt_opt){ "profile", 0, "NAME", "use the repository in the bucket of this export "
	                 "profile instead of --repo (its keys and passphrase come from the "
	                 "profile's Secret; immutable profiles lock every object written)",
	                 &t->profile, NULL };
	*o++ = (kt_opt){ "profile-namespace", 0, "NS", "namespace of the profile (default "
	                 KT_PROFILE_NAMESPACE ")", &t->profile_ns, NULL };
	return o;
}

int kt_cli_profile_repo(kt_kube *c, const char *ns, const char *profile, const char *path,
                        kt_store **s, kt_archive **a, char ca_path[64])
{
	kt_profile p;
	kt_error err;
	ca_path[0] = '\0';
	if (kt_profile_get(c, ns, profile, &p, &err))
		return kt_cli_fail(&err);
	(void)path;
	int rc = 0;
	if (!p.repo_password) {
		kt_error_set(&err, KT_EUSAGE, "profile '%s': its Secret '%s' has no "
		             "repository_password (the passphrase of the repository in the bucket)",
		             profile, p.secret_name);
		kt_profile_release(&p);
		return kt_cli_fail(&err);
	}
	if (p.ca_pem) {
		snprintf(ca_path, 64, "/tmp/kontinuity-ca-XXXXXX");
		int fd = mkstemp(ca_path);
		size_t n = strlen(p.ca_pem);
		if (fd < 0 || write(fd, p.ca_pem, n) != (ssize_t)n) {
			if (fd >= 0)
				close(fd);
			kt_error_sys(&err, KT_EIO, errno, "cannot write the profile's CA bundle");
			kt_profile_release(&p);
			return kt_cli_fail(&err);
		}
		close(fd);
	}
	char url[700];
	snprintf(url, sizeof(url), "s3://%s%s%s", p.bucket, p.prefix[0] ? "/" : "", p.prefix);
	kt_store_opts so = { .create = 0, .endpoint = p.endpoint, .region = p.region,
	                     .access_key = p.access_key, .secret_key = p.secret_key,
	                     .cacert = ca_path[0] ? ca_path : NULL,
	                     .style = p.path_style ? KT_S3_STYLE_PATH : KT_S3_STYLE_AUTO,
	                     .lock_days = p.immutable_days, .cancel = &kt_cli_cancel };
	kt_code code = kt_store_open(url, &so, s, &err);
	if (!code) {
		*s = kt_store_retry_wrap(*s, 5, 200);
		const char *pw = p.repo_password;
		code = kt_archive_open(*s, pw, strlen(pw), a, &err);
		if (code == KT_ENOTFOUND) {
			/* The first export to this profile: make its repository. */
			kt_archive_init_opts io = { 0 };
			kt_error_clear(&err);
			code = kt_archive_init(*s, pw, strlen(pw), &io, &err);
			if (!code) {
				kt_log(KT_LOG_INFO, "created the repository of profile %s at %s", profile,
				       url);
				code = kt_archive_open(*s, pw, strlen(pw), a, &err);
			}
		}
		if (code) {
			kt_store_free(*s);
			*s = NULL;
		}
	}
	kt_profile_release(&p);
	if (code) {
		if (ca_path[0])
			unlink(ca_path);
		rc = kt_cli_fail(&err);
	}
	return rc;
}

/* Open the target's repository; a profile's is created on first use. */
int kt_cli_target_open(kt_cli_target *t, kt_kube *c, const char *path, kt_store **s,
                       kt_archive **a)
{
	if (!t->profile)
		return kt_cli_repo_open(&t->rf, path, s, a);
	if (t->rf.repo && *t->rf.repo && !getenv("KONTINUITY_REPO"))
		return kt_cli_usage(path, "give --repo or --profile, not both");
	return kt_cli_profile_repo(c, t->profile_ns, t->profile, path, s, a, t->ca_path);
}

/* The API server, then the target's repository; 0 or the exit status. */
int kt_cli_target_connect(const kt_cli_kube_flags *kf, kt_cli_target *t, const char *path,
                          int need_kube, kt_kube **c, kt_store **s, kt_archive **a)
{
	*c = NULL;
	int rc = need_kube || t->profile ? kt_cli_kube_connect(kf, c) : 0;
	if (!rc && (rc = kt_cli_target_open(t, *c, path, s, a))) {
		kt_kube_client_free(*c);
		*c = NULL;
	}
	return rc;
}

void kt_cli_target_close(kt_cli_target *t, kt_store *s, kt_archive *a)
{
	kt_archive_free(a);
	kt_store_free(s);
	if (t->ca_path[0])
		unlink(t->ca_path);
}

