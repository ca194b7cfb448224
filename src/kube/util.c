/*
 * util.c - small pieces shared by the kube client files: base64, bounded
 * file reads, wiping, token cleaning, DNS-1123 name checks, and the
 * in-cluster (service account) config.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kube_int.h"

/* ------------------------------------------------------------------ */
/* Shared helpers (kube_int.h) */

void kube_wipe_free(void *p, size_t n)
{
	if (!p)
		return;
	volatile unsigned char *v = p;
	for (size_t i = 0; i < n; i++)
		v[i] = 0;
	free(p);
}

kt_code kube_read_file(const char *path, size_t max, const char *what, kt_buf *b,
                       kt_error *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		int e = errno;
		return kt_error_sys(err, kt_code_from_errno(e), e, "cannot open %s '%s'", what, path);
	}
	struct stat st;
	if (fstat(fd, &st) != 0) {
		int e = errno;
		close(fd);
		return kt_error_sys(err, KT_EIO, e, "cannot stat %s '%s'", what, path);
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return kt_error_set(err, KT_EUSAGE, "%s '%s' is not a regular file", what, path);
	}
	if ((uint64_t)st.st_size > max) {
		close(fd);
		return kt_error_set(err, KT_ELIMIT, "%s '%s' is %llu bytes, more than the %zu allowed",
		                    what, path, (unsigned long long)st.st_size, max);
	}
	char chunk[8192];
	for (;;) {
		ssize_t r = read(fd, chunk, sizeof(chunk));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			close(fd);
			return kt_error_sys(err, KT_EIO, e, "cannot read %s '%s'", what, path);
		}
		if (r == 0)
			break;
		if (b->len + (size_t)r > max) {
			close(fd);
			return kt_error_set(err, KT_ELIMIT, "%s '%s' is more than the %zu bytes allowed",
			                    what, path, max);
		}
		kt_code rc = kt_buf_add(b, chunk, (size_t)r, err);
		if (rc) {
			close(fd);
			return rc;
		}
	}
	explicit_bzero(chunk, sizeof(chunk));
	close(fd);
	return KT_OK;
}

int kube_token_clean(char *s)
{
	size_t n = strlen(s), start = 0;
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
		n--;
	while (start < n && (s[start] == ' ' || s[start] == '\t' || s[start] == '\n' ||
	                     s[start] == '\r'))
		start++;
	memmove(s, s + start, n - start);
	n -= start;
	s[n] = '\0';
	if (!n)
		return -1;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return -1;
	return 0;
}

/* ------------------------------------------------------------------ */
/* In-cluster */

static char *join(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *s = kt_xmalloc(n);
	snprintf(s, n, "%s/%s", dir, name);
	return s;
}

kt_code kt_kube_config_in_cluster(kt_kube_config *out, const char *dir, kt_error *err)
{
	const char *host = getenv("KUBERNETES_SERVICE_HOST");
	const char *port = getenv("KUBERNETES_SERVICE_PORT");
	kt_kube_config cfg;
	kt_code rc = KT_OK;

	kt_kube_config_init(out);
	if (!dir)
		dir = KT_KUBE_SA_DIR;
	if (!host || !host[0] || !port || !port[0])
		return kt_error_set(err, KT_ENOTFOUND, "in-cluster config: KUBERNETES_SERVICE_HOST and "
		                    "KUBERNETES_SERVICE_PORT are not set (not running in a pod? pass "
		                    "--kubeconfig)");
	for (const char *c = host; *c; c++)
		if (!(((*c | 0x20) >= 'a' && (*c | 0x20) <= 'z') || (*c >= '0' && *c <= '9') ||
		      *c == '.' || *c == '-' || *c == ':'))
			return kt_error_set(err, KT_EUSAGE, "in-cluster config: KUBERNETES_SERVICE_HOST "
			                    "'%.100s' is not a host name or address", host);
	char *end;
	errno = 0;
	unsigned long pn = strtoul(port, &end, 10);
	if (*end || errno || pn == 0 || pn > 65535 || port[0] < '0' || port[0] > '9')
		return kt_error_set(err, KT_EUSAGE, "in-cluster config: KUBERNETES_SERVICE_PORT "
		                    "'%.20s' is not a port number", port);

	kt_kube_config_init(&cfg);
	cfg.source = kt_xstrdup("in-cluster config");
	size_t n = strlen(host) + 32;
	cfg.server = kt_xmalloc(n);
	if (strchr(host, ':'))
		snprintf(cfg.server, n, "https://[%s]:%lu", host, pn);
	else
		snprintf(cfg.server, n, "https://%s:%lu", host, pn);
	cfg.token_file = join(dir, "token");
	cfg.ca_file = join(dir, "ca.crt");

	struct stat st;
	if (stat(cfg.token_file, &st) != 0) {
		int e = errno;
		rc = kt_error_sys(err, kt_code_from_errno(e), e, "in-cluster config: no service-account "
		                  "token '%s' (does the pod mount one?)", cfg.token_file);
		goto out;
	}
	char *ns_path = join(dir, "namespace");
	kt_buf b;
	kt_buf_init(&b, 1024);
	kt_error e;
	if (kube_read_file(ns_path, 1024, "namespace file", &b, &e) == KT_OK) {
		size_t l = b.len;
		while (l && (b.data[l - 1] == '\n' || b.data[l - 1] == ' ' || b.data[l - 1] == '\r'))
			b.data[--l] = '\0';
		if (kt_kube_valid_label(b.data))
			cfg.namespace = kt_xstrdup(b.data);
	}
	kt_buf_release(&b);
	free(ns_path);
	if (!cfg.namespace)
		cfg.namespace = kt_xstrdup("default");
out:
	if (rc) {
		kt_kube_config_release(&cfg);
		return rc;
	}
	*out = cfg;
	return KT_OK;
}

/* ------------------------------------------------------------------ */
/* Names */

static int label_char(char c, int edge)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (!edge && c == '-');
}

int kt_kube_valid_label(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n > 63)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!label_char(s[i], i == 0 || i == n - 1))
			return 0;
	return 1;
}

int kt_kube_valid_name(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n > 253)
		return 0;
	/* dot-separated labels */
	size_t start = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i == n || s[i] == '.') {
			size_t l = i - start;
			if (l == 0 || l > 63)
				return 0;
			for (size_t j = start; j < i; j++)
				if (!label_char(s[j], j == start || j == i - 1))
					return 0;
			start = i + 1;
		}
	}
	return 1;
}

/* Digits s[0..n) as a number, or -1. */
static int num(const char *s, int n)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

int64_t kube_parse_time(const char *s)
{
	/* YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM) */
	if (!s || strlen(s) < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') ||
	    s[13] != ':' || s[16] != ':')
		return -1;
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	int y = num(s, 4), mo = num(s + 5, 2), d = num(s + 8, 2), h = num(s + 11, 2),
	    mi = num(s + 14, 2), se = num(s + 17, 2);
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 ||
	    mi > 59 || se < 0 || se > 60)
		return -1;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = se;
	const char *p = s + 19;
	if (*p == '.')
		for (p++; *p >= '0' && *p <= '9'; p++)
			;
	int64_t off = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
		int oh = num(p + 1, 2), om = num(p + 4, 2);
		if (oh < 0 || om < 0)
			return -1;
		off = (int64_t)(oh * 3600 + om * 60) * (*p == '+' ? 1 : -1);
		p += 6;
	} else {
		return -1;
	}
	if (*p)
		return -1;
	time_t t = timegm(&tm);
	if (t == (time_t)-1)
		return -1;
	return ((int64_t)t - off) * 1000;
}

int64_t kube_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
