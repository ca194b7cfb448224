/*
 * errors.c - how the S3 client turns a refusal (HTTP status and the
 * server's error document) into a kt_code and a message that names the
 * operation, the key, the bucket and the endpoint, never the secret key;
 * docs/s3-client.md "Error mapping" is the table.
 */
#include <string.h>

#include "s3_int.h"
#include "s3_call.h"

static int is_auth_code(const char *c)
{
	static const char *const codes[] = {
		"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken",
		"ExpiredToken", "AuthorizationHeaderMalformed", "InvalidSecurity",
		"AccountProblem", "AllAccessDisabled", NULL,
	};
	for (int i = 0; codes[i]; i++)
		if (!strcmp(c, codes[i]))
			return 1;
	return 0;
}

kt_code kt_s3_map_failure(const kt_s3 *s, const char *op, const char *key, long status,
                          const kt_s3_errdoc *d, kt_error *err)
{
	const char *code = d && d->code[0] ? d->code : "";
	const char *msg = d && d->message[0] ? d->message : "";
	char what[KT_S3_MAX_KEY / 4 + 96];
	kt_code rc;

	if (key && *key)
		snprintf(what, sizeof(what), "%s of '%.200s' in bucket '%.64s'", op, key, s->bucket);
	else
		snprintf(what, sizeof(what), "%s of bucket '%.64s'", op, s->bucket);
	const char *sep = msg[0] ? ": " : "";

	if (!strcmp(code, "ObjectLockConfigurationNotFoundError") ||
	    !strcmp(code, "NoSuchObjectLockConfiguration")) {
		rc = kt_error_set(err, KT_ENOTFOUND, "%s at %s: " KT_S3_NO_LOCK " (%s)", what,
		                  s->origin, code);
	} else if (strstr(msg, "WORM") || strcasestr(msg, "object lock") ||
	           strcasestr(msg, "protected by")) {
		/* MinIO: InvalidRequest "Object is WORM protected"; AWS: AccessDenied
		 * "... protected by object lock": not a credentials problem. */
		rc = kt_error_set(err, KT_EPERM, "%s refused by %s: the object is under S3 Object "
		                  "Lock retention (%s%s%s); it can be removed only after its "
		                  "retain-until date", what, s->origin, code, sep, msg);
	} else if (is_auth_code(code) || (!code[0] && (status == 401 || status == 403))) {
		rc = kt_error_set(err, KT_EAUTH,
		                  "%s refused by %s: %s%s%s (HTTP %ld; check the access key '%s' and "
		                  "the secret key, and that they may use bucket '%s')",
		                  what, s->origin, code[0] ? code : "access denied", sep, msg, status,
		                  s->access_key, s->bucket);
	} else if (!strcmp(code, "NoSuchBucket") || (!code[0] && status == 404 && !(key && *key))) {
		rc = kt_error_set(err, KT_ENOTFOUND,
		                  "bucket '%s' does not exist at %s (create it or fix the bucket name)",
		                  s->bucket, s->origin);
	} else if (!strcmp(code, "NoSuchKey") || (!code[0] && status == 404)) {
		rc = kt_error_set(err, KT_ENOTFOUND, "object '%.200s' not found in bucket '%s' at %s",
		                  key ? key : "", s->bucket, s->origin);
	} else if (!strcmp(code, "NoSuchUpload")) {
		rc = kt_error_set(err, KT_ENOTFOUND, "%s failed at %s: the multipart upload no longer "
		                  "exists (NoSuchUpload)", what, s->origin);
	} else if (!strcmp(code, "BucketAlreadyOwnedByYou") ||
	           !strcmp(code, "BucketAlreadyExists")) {
		rc = kt_error_set(err, KT_EEXIST, "bucket '%s' already exists at %s (%s)", s->bucket,
		                  s->origin, code);
	} else if (status == 412 || !strcmp(code, "PreconditionFailed")) {
		/* The only precondition we send is If-None-Match: * (write once). */
		rc = kt_error_set(err, KT_EEXIST, "%s at %s: object '%.200s' already exists; refusing "
		                  "to overwrite it (HTTP %ld%s%s)", what, s->origin, key ? key : "",
		                  status, code[0] ? " " : "", code);
	} else if (status == 416 || !strcmp(code, "InvalidRange")) {
		rc = kt_error_set(err, KT_EUSAGE, "%s at %s: the requested range starts past the end "
		                  "of the object (HTTP %ld%s%s)", what, s->origin, status,
		                  code[0] ? " " : "", code);
	} else if (status >= 500 || status == 429 || !strcmp(code, "SlowDown") ||
	           !strcmp(code, "ConditionalRequestConflict") ||
	           !strcmp(code, "RequestTimeout") || !strcmp(code, "InternalError") ||
	           !strcmp(code, "ServiceUnavailable")) {
		rc = kt_error_set(err, KT_ETRANSIENT, "%s failed at %s: HTTP %ld %s%s%s (the server is "
		                  "busy or failing; try again later)", what, s->origin, status, code,
		                  sep, msg);
	} else {
		rc = kt_error_set(err, KT_EREMOTE, "%s failed at %s: HTTP %ld %s%s%s", what, s->origin,
		                  status, code[0] ? code : "(no S3 error code)", sep, msg);
	}
	if (err)
		err->status = status;
	return rc;
}
