/*
 * identity.c - who this node is: the cloud instance id for backup names.
 *
 * Order: an explicit id, then the EC2-compatible instance metadata service
 * (IMDSv2: PUT /latest/api/token, then GET /latest/meta-data/instance-id
 * with the token; IMDSv1: the GET without a token), then /etc/machine-id.
 * Each metadata request has a 1 s budget so a node without the service
 * loses at most a few seconds per cycle.  Whatever we accept must be
 * [A-Za-z0-9-], 1..64 characters: it becomes part of a file name.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "etcdbackup.h"
#include "http/http.h"

static int valid_id(const char *s, size_t n)
{
	if (n == 0 || n > KT_INSTANCE_ID_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-'))
			return 0;
	}
	return 1;
}

static kt_code collect(void *ctx, const uint8_t *data, size_t n, kt_error *err)
{
	return kt_buf_add(ctx, data, n, err);
}

/* One metadata request; *status_out is the HTTP status (0 if none). */
static kt_code imds_call(kt_http *h, const char *method, const char *url,
                         const char *const *headers, kt_buf *body, long *status_out,
                         kt_error *err)
{
	kt_buf_reset(body);
	kt_http_req req = { .method = method, .url = url, .headers = headers, .on_body = collect,
	                    .ctx = body };
	if (!strcmp(method, "PUT")) {
		req.body = "";
		req.body_len = 0;
	}
	kt_http_resp resp;
	memset(&resp, 0, sizeof(resp));
	kt_code c = kt_http_request(h, &req, &resp, err);
	*status_out = resp.status;
	return c;
}

static kt_code from_imds(const char *base, char out[KT_INSTANCE_ID_MAX + 1], const char **source,
                         kt_error *err)
{
	kt_http_opts opts = { .connect_timeout_ms = 1000, .timeout_ms = 1000, .direct = 1,
	                      .version = KT_HTTP_1_1 };
	kt_http *h = NULL;
	kt_code c = kt_http_new(&h, &opts, err);
	if (c)
		return c;
	char url[512], hdr[KT_INSTANCE_ID_MAX * 8 + 64];
	kt_buf body;
	kt_buf_init(&body, 4096);
	long status = 0;
	const char *id_headers[2] = { NULL, NULL };

	snprintf(url, sizeof(url), "%s/latest/api/token", base);
	static const char *const token_headers[] = { "X-aws-ec2-metadata-token-ttl-seconds: 60", NULL };
	c = imds_call(h, "PUT", url, token_headers, &body, &status, err);
	*source = "imds-v1";
	if (c == KT_OK && status == 200 && body.len > 0 && body.len < 256) {
		/* A 60-second token sent only in a header, never logged: not
		 * registered, so it cannot push real secrets off the redaction list. */
		snprintf(hdr, sizeof(hdr), "X-aws-ec2-metadata-token: %s", body.data);
		id_headers[0] = hdr;
		*source = "imds-v2";
	} else if (c && c != KT_ETRANSIENT && c != KT_EPROTO) {
		goto done;
	} else if (c == KT_ETRANSIENT && status == 0) {
		goto done;   /* nothing answers there: do not wait a second time */
	}
	snprintf(url, sizeof(url), "%s/latest/meta-data/instance-id", base);
	c = imds_call(h, "GET", url, id_headers, &body, &status, err);
	if (c == KT_OK && status != 200)
		c = kt_error_set(err, KT_ENOTFOUND, "metadata service %s answered HTTP %ld for the "
		                 "instance id", base, status);
	if (c == KT_OK && !valid_id(body.data, body.len))
		c = kt_error_set(err, KT_EPROTO, "metadata service %s returned an instance id that is "
		                 "not 1-64 characters of [A-Za-z0-9-]", base);
	if (c == KT_OK)
		snprintf(out, KT_INSTANCE_ID_MAX + 1, "%s", body.data);
done:
	kt_buf_release(&body);
	kt_http_free(h);
	return c;
}

static kt_code from_machine_id(const char *path, char out[KT_INSTANCE_ID_MAX + 1], kt_error *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		return kt_error_sys(err, kt_code_from_errno(e), e, "cannot read '%s'", path);
	}
	char buf[64];
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		n = 0;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		n--;
	if (n > 12)
		n = 12;   /* enough to tell nodes apart, short in file names */
	if (!valid_id(buf, (size_t)n))
		return kt_error_set(err, KT_ECORRUPT, "'%s' does not hold a machine id", path);
	memcpy(out, buf, (size_t)n);
	out[n] = '\0';
	return KT_OK;
}

kt_code kt_etcdbackup_instance_id(const char *explicit_id, const char *imds_url,
                                  const char *machine_id_path, char out[KT_INSTANCE_ID_MAX + 1],
                                  const char **source_out, kt_error *err)
{
	const char *source = "flag";
	if (explicit_id && *explicit_id) {
		if (!valid_id(explicit_id, strlen(explicit_id)))
			return kt_error_set(err, KT_EUSAGE, "instance id '%s' must be 1-64 characters of "
			                    "[A-Za-z0-9-]", explicit_id);
		snprintf(out, KT_INSTANCE_ID_MAX + 1, "%s", explicit_id);
	} else {
		kt_error imds_err;
		kt_error_clear(&imds_err);
		kt_code c = imds_url && *imds_url ? from_imds(imds_url, out, &source, &imds_err)
		                                  : KT_ENOTFOUND;
		if (c) {
			if (imds_url && *imds_url)
				kt_log(KT_LOG_INFO, "no instance id from the metadata service: %s; using %s",
				       imds_err.msg, machine_id_path);
			source = "machine-id";
			c = from_machine_id(machine_id_path, out, err);
			if (c)
				return kt_error_wrap(err, "cannot tell this node's instance id (give "
				                     "--instance-id)");
		}
	}
	if (source_out)
		*source_out = source;
	return KT_OK;
}
