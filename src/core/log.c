/*
 * log.c - the process-wide logger and secret redaction.
 *
 * The logger is the one piece of global state in the library: the front end
 * configures it once (kt_log_setup) before starting work.  Every line passes
 * through kt_redact, so a secret registered with kt_log_add_secret can never
 * reach a log stream, even if a caller formats it by mistake.
 * Text lines:  2026-11-27T07:00:00Z info  message
 * JSON lines:  {"time":"...","level":"info","msg":"message"}
 */
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core.h"

#define MAX_SECRETS 32
#define REDACTED "[REDACTED]"

static struct {
	FILE *stream;
	kt_log_format format;
	kt_log_level level;
	char *secrets[MAX_SECRETS];
	size_t n_secrets;
} logger = { NULL, KT_LOG_TEXT, KT_LOG_INFO, { NULL }, 0 };

/* Secrets are added by the main thread while a server thread may be
 * redacting a log line: one lock guards the list. */
static pthread_mutex_t secrets_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

void kt_log_setup(FILE *stream, kt_log_format format, kt_log_level level)
{
	logger.stream = stream;
	logger.format = format;
	logger.level = level;
}

void kt_log_add_secret(const char *s)
{
	/* Short strings would redact ordinary words; secrets are longer. */
	if (!s || strlen(s) < 3)
		return;
	pthread_mutex_lock(&secrets_lock);
	for (size_t i = 0; i < logger.n_secrets; i++)
		if (!strcmp(logger.secrets[i], s)) {
			pthread_mutex_unlock(&secrets_lock);
			return;
		}
	if (logger.n_secrets == MAX_SECRETS) {
		free(logger.secrets[0]);
		memmove(logger.secrets, logger.secrets + 1, (MAX_SECRETS - 1) * sizeof(char *));
		logger.n_secrets--;
	}
	logger.secrets[logger.n_secrets++] = kt_xstrdup(s);
	pthread_mutex_unlock(&secrets_lock);
}

void kt_log_clear_secrets(void)
{
	pthread_mutex_lock(&secrets_lock);
	for (size_t i = 0; i < logger.n_secrets; i++)
		free(logger.secrets[i]);
	logger.n_secrets = 0;
	pthread_mutex_unlock(&secrets_lock);
}

void kt_redact(kt_buf *out, const char *s)
{
	pthread_mutex_lock(&secrets_lock);
	const char *p = s;
	while (*p) {
		size_t best_len = 0;
		for (size_t i = 0; i < logger.n_secrets; i++) {
			size_t n = strlen(logger.secrets[i]);
			if (n > best_len && !strncmp(p, logger.secrets[i], n))
				best_len = n;
		}
		if (best_len) {
			kt_buf_adds(out, REDACTED, NULL);
			p += best_len;
		} else {
			kt_buf_add(out, p, 1, NULL);
			p++;
		}
	}
	pthread_mutex_unlock(&secrets_lock);
}

kt_log_format kt_log_get_format(void)
{
	return logger.format;
}

int kt_log_enabled(kt_log_level level)
{
	return level <= logger.level;
}

void kt_log(kt_log_level level, const char *fmt, ...)
{
	if (!kt_log_enabled(level))
		return;
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	kt_buf clean;
	kt_buf_init(&clean, 1 << 16);
	kt_redact(&clean, msg);

	char ts[32];
	struct timespec now;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);

	FILE *f = logger.stream ? logger.stream : stderr;
	if (logger.format == KT_LOG_JSON) {
		json_t *o = json_pack("{s:s, s:s, s:s}", "time", ts,
		                      "level", level_names[level], "msg", clean.data);
		char *line = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
		if (line) {
			fprintf(f, "%s\n", line);
			free(line);
		}
		json_decref(o);
	} else {
		fprintf(f, "%s %-5s %s\n", ts, level_names[level], clean.data);
	}
	fflush(f);
	kt_buf_release(&clean);
}
