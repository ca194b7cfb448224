/*
 * util.c - small helpers: durations, human sizes, clocks, hex, allocation
 * that cannot fail, and progress arithmetic.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core.h"

kt_code kt_parse_duration_ms(const char *s, int64_t *ms_out, kt_error *err)
{
	static const struct { const char *unit; double ms; } units[] = {
		{ "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 },
	};
	const char *p = s;
	double total = 0;
	if (!s || !*s)
		goto bad;
	while (*p) {
		char *end;
		if (*p < '0' || *p > '9')
			goto bad;
		double v = strtod(p, &end);
		if (end == p)
			goto bad;
		p = end;
		if (!*p) {
			if (p != s + strspn(s, "0123456789."))
				goto bad; /* a bare number only alone: "1m30" is ambiguous */
			total += v * 1000;
			break;
		}
		size_t i, n_units = sizeof(units) / sizeof(units[0]);
		for (i = 0; i < n_units; i++) {
			size_t ul = strlen(units[i].unit);
			if (!strncmp(p, units[i].unit, ul) &&
			    !(ul == 1 && p[0] == 'm' && p[1] == 's')) {
				total += v * units[i].ms;
				p += ul;
				break;
			}
		}
		if (i == n_units)
			goto bad;
	}
	if (total > 365.0 * 24 * 3600 * 1000)
		goto bad;
	*ms_out = (int64_t)total;
	return KT_OK;
bad:
	return kt_error_set(err, KT_EUSAGE,
	                    "invalid duration '%s' (use e.g. 30s, 5m, 1h30m, 500ms)", s ? s : "");
}

const char *kt_human_bytes(uint64_t n, char buf[32])
{
	static const char *const suffix[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	double v = (double)n;
	int i = 0;
	while (v >= 1024 && i < 5) {
		v /= 1024;
		i++;
	}
	if (i == 0)
		snprintf(buf, 32, "%llu B", (unsigned long long)n);
	else
		snprintf(buf, 32, "%.1f %s", v, suffix[i]);
	return buf;
}

int64_t kt_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void kt_sleep_ms(int64_t ms)
{
	if (ms <= 0)
		return;
	struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

void kt_hex(char *out, const uint8_t *data, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[data[i] >> 4];
		out[2 * i + 1] = digits[data[i] & 15];
	}
	out[2 * n] = '\0';
}

static void oom(size_t n)
{
	/* The one place library code stops the process: there is no memory to
	 * report anything with.  write(2) does not allocate. */
	static const char msg[] = "kontinuity: out of memory\n";
	(void)n;
	if (fwrite(msg, 1, sizeof(msg) - 1, stderr)) {}
	abort();
}

void *kt_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		oom(n);
	return p;
}

void *kt_xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		oom(n * size);
	return p;
}

char *kt_xstrdup(const char *s)
{
	char *p = strdup(s);
	if (!p)
		oom(strlen(s));
	return p;
}

void kt_progress_init(kt_progress *p)
{
	p->start_ms = kt_now_ms();
	p->done = 0;
	p->remaining = 0;
}

void kt_progress_format(const kt_progress *p, char *out, size_t outlen)
{
	char done[32], rate_s[32];
	int64_t elapsed = kt_now_ms() - p->start_ms;
	double rate = elapsed > 0 ? (double)p->done * 1000.0 / (double)elapsed : 0;
	kt_human_bytes(p->done, done);
	kt_human_bytes((uint64_t)rate, rate_s);
	if (p->remaining && rate > 0) {
		uint64_t total = p->done + p->remaining;
		int pct = (int)(p->done * 100 / total);
		int width = 24, fill = pct * width / 100;
		char bar[32];
		for (int i = 0; i < width; i++)
			bar[i] = i < fill ? '#' : '-';
		bar[width] = '\0';
		double eta = (double)p->remaining / rate;
		snprintf(out, outlen, "[%s] %3d%%  %s  %s/s  %.0fs left", bar, pct, done, rate_s, eta);
	} else {
		snprintf(out, outlen, "%s  %s/s", done, rate_s);
	}
}

void kt_time_iso(char *out, size_t outlen)
{
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

kt_code kt_read_file(const char *path, kt_buf *out, kt_error *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return kt_error_sys(err, kt_code_from_errno(errno), errno, "cannot open '%s'", path);
	kt_code rc = KT_OK;
	for (;;) {
		char chunk[4096];
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = kt_error_sys(err, KT_EIO, errno, "cannot read '%s'", path);
			break;
		}
		if (n == 0)
			break;
		if ((rc = kt_buf_add(out, chunk, (size_t)n, err))) {
			kt_error_wrap(err, "'%s'", path);
			break;
		}
	}
	close(fd);
	return rc;
}

void kt_wipe(void *p, size_t n)
{
	volatile unsigned char *v = p;
	for (size_t i = 0; p && i < n; i++)
		v[i] = 0;
}

/* ---- base64 (standard alphabet) ---------------------------------- */

static const char b64_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int kt_base64_decode(const char *in, size_t n, char **out, size_t *out_len)
{
	char *buf = kt_xmalloc(n / 4 * 3 + 4);
	size_t o = 0, pad = 0;
	unsigned quad = 0, nq = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c == '\n' || c == '\r' || c == ' ' || c == '\t')
			continue;
		if (c == '=') {
			pad++;
			continue;
		}
		int v = b64_value(c);
		if (v < 0 || pad)
			goto bad; /* bad byte, or data after padding */
		quad = quad << 6 | (unsigned)v;
		if (++nq == 4) {
			buf[o++] = (char)(quad >> 16);
			buf[o++] = (char)(quad >> 8);
			buf[o++] = (char)quad;
			quad = 0;
			nq = 0;
		}
	}
	/* Final group: 2 or 3 symbols (padding optional but must match). */
	if (nq == 1 || (pad && pad != 4 - nq) || (nq == 0 && pad))
		goto bad;
	if (nq == 2) {
		if (quad & 0xf)
			goto bad; /* non-canonical trailing bits */
		buf[o++] = (char)(quad >> 4);
	} else if (nq == 3) {
		if (quad & 0x3)
			goto bad;
		buf[o++] = (char)(quad >> 10);
		buf[o++] = (char)(quad >> 2);
	}
	buf[o] = '\0';
	*out = buf;
	*out_len = o;
	return 0;
bad:
	kt_wipe(buf, n / 4 * 3 + 4);
	free(buf);
	return -1;
}

kt_code kt_base64_encode(const void *in, size_t n, kt_buf *out, kt_error *err)
{
	kt_code rc = kt_buf_grow(out, (n + 2) / 3 * 4 + 1, err);
	if (rc)
		return rc;
	const unsigned char *p = in;
	char *o = out->data;
	size_t len = out->len;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t w = (uint32_t)p[i] << 16;
		if (i + 1 < n)
			w |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < n)
			w |= p[i + 2];
		o[len++] = b64_alphabet[w >> 18 & 63];
		o[len++] = b64_alphabet[w >> 12 & 63];
		o[len++] = i + 1 < n ? b64_alphabet[w >> 6 & 63] : '=';
		o[len++] = i + 2 < n ? b64_alphabet[w & 63] : '=';
	}
	kt_buf_setlen(out, len);
	return KT_OK;
}
