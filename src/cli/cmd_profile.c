/*
 * cmd_profile.c - `kontinuity profile create|list|check`: export locations
 * kept as Profile custom resources (kontinuity.io/v1alpha1) with their keys
 * in a Secret beside them; src/app/profile.c reads and checks them.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "app/app.h"
#include "cli.h"
#include "kube/kube.h"

static const kt_kube_target profiles = { .group = KT_PROFILE_GROUP,
	                                 .version = KT_PROFILE_VERSION, .resource = "profiles" };

/* base64 of a file's bytes (at most 4 KiB, surrounding blanks trimmed): the
 * keys never pass through argv. */
static int read_key_file(const char *path_cmd, const char *flag, const char *file, char **b64)
{
	kt_buf raw;
	kt_error err;
	kt_buf_init(&raw, 4096);
	if (kt_read_file(file, &raw, &err)) {
		kt_buf_release(&raw);
		return kt_cli_usage(path_cmd, "--%s: %s", flag, err.msg);
	}
	size_t a = 0, n = raw.len;
	while (a < n && (raw.data[a] == ' ' || raw.data[a] == '\n' || raw.data[a] == '\r'))
		a++;
	while (n > a && (raw.data[n - 1] == ' ' || raw.data[n - 1] == '\n' ||
	                 raw.data[n - 1] == '\r'))
		n--;
	if (n == a) {
		kt_buf_release(&raw);
		return kt_cli_usage(path_cmd, "--%s: '%s' is empty", flag, file);
	}
	*b64 = kt_xcalloc(4 * ((n - a) / 3 + 1) + 1, 1);
	EVP_EncodeBlock((unsigned char *)*b64, (const unsigned char *)raw.data + a, (int)(n - a));
	explicit_bzero(raw.data, raw.len);
	kt_buf_release(&raw);
	return 0;
}

int kt_cmd_profile_create(int argc, char **argv, const kt_globals *g0)
{
	const char *path = "profile create";
	kt_globals g = *g0;
	kt_cli_kube_flags kf;
	memset(&kf, 0, sizeof(kf));
	const char *ns = KT_PROFILE_NAMESPACE, *endpoint = NULL, *bucket = NULL, *region = NULL;
	const char *prefix = NULL, *ca_file = NULL, *secret = NULL, *ak_file = NULL;
	const char *sk_file = NULL, *days = NULL, *rp_file = NULL;
	int path_style = 0;
	kt_opt opts[22], *o = kt_cli_kube_opts(&kf, opts, NULL);
	*o++ = (kt_opt){ "namespace", 'n', "NS", "namespace of the profile and its Secret "
	                 "(default " KT_PROFILE_NAMESPACE ")", &ns, NULL };
	*o++ = (kt_opt){ "endpoint", 0, "URL", "S3 endpoint, https://host[:port] (required)",
	                 &endpoint, NULL };
	*o++ = (kt_opt){ "bucket", 0, "NAME", "bucket (required)", &bucket, NULL };
	*o++ = (kt_opt){ "region", 0, "NAME", "region (default us-east-1)", &region, NULL };
	*o++ = (kt_opt){ "prefix", 0, "PATH", "folder in the bucket (default: the bucket root)",
	                 &prefix, NULL };
	*o++ = (kt_opt){ "path-style", 0, NULL, "address the bucket as ENDPOINT/BUCKET", NULL,
	                 &path_style };
	*o++ = (kt_opt){ "ca-file", 0, "FILE", "PEM CA that signs the endpoint's certificate",
	                 &ca_file, NULL };
	*o++ = (kt_opt){ "secret", 0, "NAME", "existing Secret with access_key_id and "
	                 "secret_access_key (or give the key files)", &secret, NULL };
	*o++ = (kt_opt){ "access-key-id-file", 0, "FILE", "file holding the access key id: a "
	                 "Secret NAME-keys is created", &ak_file, NULL };
	*o++ = (kt_opt){ "secret-access-key-file", 0, "FILE", "file holding the secret key",
	                 &sk_file, NULL };
	*o++ = (kt_opt){ "immutable-days", 0, "N", "keep exports under S3 Object Lock retention "
	                 "for N days (needs an Object Lock bucket; default 0)", &days, NULL };
	*o++ = (kt_opt){ "repository-password-file", 0, "FILE", "passphrase of the encrypted "
	                 "repository in the bucket (with the key files; needed to export and "
	                 "import restore points)", &rp_file, NULL };
	memset(o, 0, sizeof(*o));
	char *pos[1];
	int n_pos = 0, done = 0;
	int rc = kt_cli_parse(argc, argv, opts, path,
	                      "NAME --endpoint URL --bucket B (--secret S | --access-key-id-file F "
	                      "--secret-access-key-file F)",
	                      "Create an export profile: an S3-compatible location that restore "
	                      "points are\n"
	                      "exported to (and imported from by another cluster).  The profile is "
	                      "a\n"
	                      "Profile custom resource (kontinuity.io/v1alpha1), so it can live in "
	                      "git; its\n"
	                      "keys stay in a Secret beside it.  Run 'kontinuity profile check NAME' "
	                      "next.\n\n"
	                      "Examples:\n"
	                      "  kontinuity profile create offsite --endpoint https://s3.example.com "
	                      "\\\n"
	                      "      --bucket backups --prefix cluster-a --secret offsite-keys "
	                      "--immutable-days 30\n",
	                      pos, 1, &n_pos, &g, &done);
	if (rc || done)
		return rc;
	if (n_pos != 1)
		return kt_cli_usage(path, "name the profile");
	if (!endpoint || !bucket)
		return kt_cli_usage(path, "--endpoint and --bucket are required");
	if (!secret == !(ak_file || sk_file) || (!secret && !(ak_file && sk_file)))
		return kt_cli_usage(path, "give either --secret NAME or both --access-key-id-file and "
		                    "--secret-access-key-file");
	char *end = NULL;
	long ndays = days ? strtol(days, &end, 10) : 0;
	if (days && (!*days || *end || ndays < 0 || ndays > 36500))
		return kt_cli_usage(path, "--immutable-days must be a number of days, 0..36500");
	kt_buf ca;
	kt_buf_init(&ca, 64u << 10);
	kt_error err;
	if (ca_file && kt_read_file(ca_file, &ca, &err)) {
		kt_buf_release(&ca);
		return kt_cli_usage(path, "--ca-file: %s", err.msg);
	}
	char *ak = NULL, *sk = NULL, *rp = NULL, secret_name[260];
	if (rp_file && secret) {
		kt_buf_release(&ca);
		return kt_cli_usage(path, "--repository-password-file goes with the key files (with "
		                    "--secret, put repository_password in that Secret)");
	}
	if (!secret && ((rc = read_key_file(path, "access-key-id-file", ak_file, &ak)) ||
	                (rc = read_key_file(path, "secret-access-key-file", sk_file, &sk)) ||
	                (rp_file && (rc = read_key_file(path, "repository-password-file", rp_file,
	                                                &rp))))) {
		free(ak);
		free(sk);
		kt_buf_release(&ca);
		return rc;
	}
	snprintf(secret_name, sizeof(secret_name), "%s%s", secret ? secret : pos[0],
	         secret ? "" : "-keys");

	json_t *prof = json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s}}, s:{s:{s:s, s:s, s:s, s:b}, "
	                         "s:{s:s}, s:{s:i}}}",
	                         "apiVersion", KT_PROFILE_GROUP "/" KT_PROFILE_VERSION, "kind",
	                         "Profile", "metadata", "name", pos[0], "namespace", ns, "labels",
	                         "app.kubernetes.io/managed-by", "kontinuity", "spec", "location",
	                         "endpoint", endpoint, "bucket", bucket, "region",
	                         region ? region : "us-east-1", "pathStyle", path_style,
	                         "credentials", "secretName", secret_name, "immutability", "days",
	                         (int)ndays);
	json_t *loc = json_object_get(json_object_get(prof, "spec"), "location");
	if (prefix)
		json_object_set_new(loc, "prefix", json_string(prefix));
	if (ca.len)
		json_object_set_new(loc, "caBundle", json_stringn(ca.data, ca.len));
	kt_buf_release(&ca);
	kt_profile check;
	if (kt_profile_from_object(&check, prof, &err)) {
		json_decref(prof);
		free(ak);
		free(sk);
		free(rp);
		return kt_cli_usage(path, "%s", err.msg);
	}
	kt_profile_release(&check);

	kt_cli_catch_signals();
	kt_kube *c = NULL;
	if ((rc = kt_cli_kube_connect(&kf, &c))) {
		json_decref(prof);
		free(ak);
		free(sk);
		free(rp);
		return rc;
	}
	kt_code code = KT_OK;
	int made_secret = 0;
	kt_kube_target st = { .version = "v1", .resource = "secrets", .namespace = ns };
	if (!secret) {
		json_t *s = json_pack("{s:s, s:s, s:s, s:{s:s, s:s, s:{s:s}}, s:{s:s, s:s}}",
		                      "apiVersion", "v1", "kind", "Secret", "type", "Opaque",
		                      "metadata", "name", secret_name, "namespace", ns, "labels",
		                      "app.kubernetes.io/managed-by", "kontinuity", "data",
		                      "access_key_id", ak, "secret_access_key", sk);
		if (rp)
			json_object_set_new(json_object_get(s, "data"), "repository_password",
			                    json_string(rp));
		code = kt_kube_create(c, &st, s, NULL, &err);
		json_decref(s);
		made_secret = code == KT_OK;
	}
	if (sk)
		explicit_bzero(sk, strlen(sk));
	if (rp)
		explicit_bzero(rp, strlen(rp));
	free(ak);
	free(sk);
	free(rp);
	kt_kube_target pt = profiles;
	pt.namespace = ns;
	if (!code && (code = kt_kube_create(c, &pt, prof, NULL, &err)) && made_secret) {
		st.name = secret_name;   /* no half-made profile: take the Secret back */
		kt_error e2;
		kt_kube_delete(c, &st, NULL, &e2);
	}
	kt_kube_client_free(c);
	if (code) {
		json_decref(prof);
		return kt_cli_fail(&err);
	}
	if (g.output == KT_OUT_TABLE)
		printf("profile %s/%s created (keys in Secret %s); check it with 'kontinuity profile "
		       "check %s -n %s'\n", ns, pos[0], secret_name, pos[0], ns);
	else
		kt_cli_print(prof, g.output, NULL, 0);
	json_decref(prof);
	return 0;
}

static kt_code on_profile(void *ctx, json_t *obj, kt_error *err)
{
	(void)err;
	json_t *spec = json_object_get(obj, "spec");
	json_t *loc = json_object_get(spec, "location");
	json_t *last = json_object_get(json_object_get(obj, "status"), "lastCheck");
	json_t *row = json_pack("{s:O*, s:O*, s:O*, s:O*, s:O*, s:O*, s:O*, s:O*}", "namespace",
	                        json_object_get(json_object_get(obj, "metadata"), "namespace"),
	                        "name", json_object_get(json_object_get(obj, "metadata"), "name"),
	                        "endpoint", json_object_get(loc, "endpoint"), "bucket",
	                        json_object_get(loc, "bucket"), "prefix",
	                        json_object_get(loc, "prefix"), "immutableDays",
	                        json_object_get(json_object_get(spec, "immutability"), "days"),
	                        "check", json_object_get(last, "result"), "checked",
	                        json_object_get(last, "time"));
	json_array_append_new(ctx, row);
	return KT_OK;
}

int kt_cmd_profile_list(int argc, char **argv, const kt_globals *g0)
{
	const char *path = "profile list";
	kt_globals g = *g0;
	kt_cli_kube_flags kf;
	const char *ns;
	int all = 0;
	kt_opt opts[6], *o = kt_cli_kube_ns_opts(&kf, &ns, KT_PROFILE_NAMESPACE, opts,
	                                         KT_PROFILE_NS_HELP);
	*o++ = (kt_opt){ "all-namespaces", 'A', NULL, "every namespace", NULL, &all };
	memset(o, 0, sizeof(*o));
	int n_pos = 0, done = 0;
	int rc = kt_cli_parse(argc, argv, opts, path, "[-n NS | -A]",
	                      "List export profiles with their location and the result of their "
	                      "last check.\n", NULL, 0, &n_pos, &g, &done);
	if (rc || done)
		return rc;
	kt_kube *c = NULL;
	if ((rc = kt_cli_kube_connect(&kf, &c)))
		return rc;
	kt_kube_target t = profiles;
	t.namespace = all ? NULL : ns;
	json_t *rows = json_array();
	kt_error err;
	kt_code code = kt_kube_list(c, &t, NULL, on_profile, rows, NULL, &err);
	kt_kube_client_free(c);
	if (code) {
		json_decref(rows);
		if (code == KT_ENOTFOUND)
			kt_error_set(&err, KT_ENOTFOUND, "the cluster does not serve profiles.%s: apply "
			             "deploy/crds/kontinuity.io/", KT_PROFILE_GROUP);
		return kt_cli_fail(&err);
	}
	static const kt_column cols[] = {
		{ "NAMESPACE", "namespace" }, { "NAME", "name" }, { "ENDPOINT", "endpoint" },
		{ "BUCKET", "bucket" }, { "PREFIX", "prefix" }, { "IMMUTABLE-DAYS", "immutableDays" },
		{ "CHECK", "check" }, { "CHECKED", "checked" },
	};
	kt_cli_print_list(rows, g.output, cols, sizeof(cols) / sizeof(cols[0]), "profiles",
	                  all ? NULL : ns);
	json_decref(rows);
	return 0;
}

int kt_cmd_profile_check(int argc, char **argv, const kt_globals *g0)
{
	const char *path = "profile check";
	kt_globals g = *g0;
	kt_cli_kube_flags kf;
	const char *ns;
	kt_opt opts[5], *o = kt_cli_kube_ns_opts(&kf, &ns, KT_PROFILE_NAMESPACE, opts,
	                                         KT_PROFILE_NS_HELP);
	memset(o, 0, sizeof(*o));
	char *pos[1];
	int n_pos = 0, done = 0;
	int rc = kt_cli_parse(argc, argv, opts, path, "NAME [-n NS]",
	                      "Prove a profile works before a policy relies on it: its Secret has "
	                      "keys, the\n"
	                      "bucket answers with them, Object Lock matches the immutability "
	                      "asked for, and a\n"
	                      "probe object can be written, read back and removed.  The result is "
	                      "recorded\n"
	                      "in the profile's status.  Exit 0 when nothing failed.\n",
	                      pos, 1, &n_pos, &g, &done);
	if (rc || done)
		return rc;
	if (n_pos != 1)
		return kt_cli_usage(path, "name the profile to check");
	kt_cli_catch_signals();
	kt_kube *c = NULL;
	if ((rc = kt_cli_kube_connect(&kf, &c)))
		return rc;
	kt_profile p;
	kt_error err;
	kt_profile_check *lines = NULL;
	size_t n = 0;
	kt_code code = kt_profile_get(c, ns, pos[0], &p, &err);
	if (!code) {
		code = kt_profile_check_run(&p, &lines, &n, &err);
		kt_profile_release(&p);
	}
	if (code) {
		kt_kube_client_free(c);
		return kt_cli_fail(&err);
	}
	static const char *const words[] = { "ok", "WARN", "FAIL", "skip" };
	json_t *rows = json_array();
	int worst = 0;
	char message[600] = "";
	for (size_t i = 0; i < n; i++) {
		if (lines[i].result > worst && lines[i].result < 3) {
			worst = lines[i].result;
			snprintf(message, sizeof(message), "%s: %.500s", lines[i].id, lines[i].detail);
		}
		json_t *r = json_pack("{s:s, s:s, s:s}", "check", lines[i].id, "result",
		                      words[lines[i].result], "detail", lines[i].detail);
		json_object_set_new(r, "fix", lines[i].fix[0] ? json_string(lines[i].fix)
		                                              : json_null());
		json_array_append_new(rows, r);
	}
	free(lines);
	/* Record the result in status.lastCheck (best effort: a user who may
	 * check but not write status still gets the report). */
	char now[40];
	kt_time_iso(now, sizeof(now));
	static const char *const results[] = { "ok", "warn", "fail" };
	json_t *patch = json_pack("{s:{s:{s:s, s:s, s:s}}}", "status", "lastCheck", "time", now,
	                          "result", results[worst], "message", message[0] ? message : "ok");
	char *body = json_dumps(patch, JSON_COMPACT);
	kt_kube_target t = profiles;
	t.namespace = ns;
	t.name = pos[0];
	t.subresource = "status";
	kt_error e2;
	if (kt_kube_patch(c, &t, KT_KUBE_PATCH_MERGE, body, strlen(body), NULL, NULL, &e2))
		kt_log(KT_LOG_WARN, "cannot record the check in the profile's status: %s", e2.msg);
	free(body);
	json_decref(patch);
	kt_kube_client_free(c);
	static const kt_column cols[] = {
		{ "CHECK", "check" }, { "RESULT", "result" }, { "DETAIL", "detail" }, { "FIX", "fix" },
	};
	kt_cli_print(rows, g.output, cols, sizeof(cols) / sizeof(cols[0]));
	json_decref(rows);
	return worst == 2 ? 1 : 0;
}
