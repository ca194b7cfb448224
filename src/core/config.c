/*
 * config.c - configuration files: a YAML map of flag names to values.
 *
 *   endpoint: https://127.0.0.1:2379
 *   dir: /etc/kubernetes/zadara
 *   keep: 100
 *   no-client-cert: true
 *
 * Only a flat mapping of scalars is accepted (a config holds flags, nothing
 * else); anything else is an error naming the line.  The file is bounded
 * (KT_CONFIG_MAX) and read whole before parsing, so a hostile file cannot
 * make us allocate without limit.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "core.h"

void kt_config_release(kt_config *c)
{
	for (size_t i = 0; i < c->n; i++) {
		free(c->keys[i]);
		free(c->values[i]);
	}
	free(c->keys);
	free(c->values);
	c->keys = c->values = NULL;
	c->n = 0;
}

static kt_code add(kt_config *c, const char *k, const char *v, size_t line, const char *name,
                   kt_error *err)
{
	for (size_t i = 0; i < c->n; i++)
		if (!strcmp(c->keys[i], k))
			return kt_error_set(err, KT_EUSAGE, "config '%s' line %zu: '%s' is set twice",
			                    name, line, k);
	if (c->n == KT_CONFIG_MAX_KEYS)
		return kt_error_set(err, KT_ELIMIT, "config '%s': more than %d settings", name,
		                    KT_CONFIG_MAX_KEYS);
	char **nk = realloc(c->keys, (c->n + 1) * sizeof(char *));
	if (nk)
		c->keys = nk;
	char **nv = realloc(c->values, (c->n + 1) * sizeof(char *));
	if (nv)
		c->values = nv;
	if (!nk || !nv)
		return kt_error_set(err, KT_ENOMEM, "out of memory reading config '%s'", name);
	c->keys[c->n] = kt_xstrdup(k);
	c->values[c->n] = kt_xstrdup(v);
	c->n++;
	return KT_OK;
}

kt_code kt_config_parse(kt_config *c, const char *data, size_t len, const char *name,
                        kt_error *err)
{
	memset(c, 0, sizeof(*c));
	if (len > KT_CONFIG_MAX)
		return kt_error_set(err, KT_ELIMIT, "config '%s' is larger than %u bytes", name,
		                    KT_CONFIG_MAX);
	yaml_parser_t p;
	yaml_event_t ev;
	if (!yaml_parser_initialize(&p))
		return kt_error_set(err, KT_ENOMEM, "out of memory reading config '%s'", name);
	yaml_parser_set_input_string(&p, (const unsigned char *)data, len);
	kt_code rc = KT_OK;
	int depth = 0, done = 0, have_key = 0, seen_map = 0;
	char key[128];
	while (!done && rc == KT_OK) {
		if (!yaml_parser_parse(&p, &ev)) {
			rc = kt_error_set(err, KT_EUSAGE, "config '%s' line %zu: %s", name,
			                  p.problem_mark.line + 1, p.problem ? p.problem : "invalid YAML");
			break;
		}
		size_t line = ev.start_mark.line + 1;
		switch (ev.type) {
		case YAML_STREAM_END_EVENT:
			done = 1;
			break;
		case YAML_MAPPING_START_EVENT:
			if (depth++ > 0 || seen_map++)
				rc = kt_error_set(err, KT_EUSAGE, "config '%s' line %zu: expected "
				                  "'flag: value', found a nested map", name, line);
			break;
		case YAML_MAPPING_END_EVENT:
			depth--;
			break;
		case YAML_SEQUENCE_START_EVENT:
			rc = kt_error_set(err, KT_EUSAGE, "config '%s' line %zu: expected 'flag: value', "
			                  "found a list", name, line);
			break;
		case YAML_ALIAS_EVENT:
			rc = kt_error_set(err, KT_EUSAGE, "config '%s' line %zu: aliases are not "
			                  "supported", name, line);
			break;
		case YAML_SCALAR_EVENT: {
			const char *v = (const char *)ev.data.scalar.value;
			if (depth != 1) {
				rc = kt_error_set(err, KT_EUSAGE, "config '%s' line %zu: expected a map of "
				                  "'flag: value' lines", name, line);
			} else if (!have_key) {
				if (ev.data.scalar.length == 0 || ev.data.scalar.length >= sizeof(key) ||
				    strlen(v) != ev.data.scalar.length)
					rc = kt_error_set(err, KT_EUSAGE, "config '%s' line %zu: bad flag name",
					                  name, line);
				else
					memcpy(key, v, ev.data.scalar.length + 1);
				have_key = 1;
			} else {
				if (strlen(v) != ev.data.scalar.length)
					rc = kt_error_set(err, KT_EUSAGE, "config '%s' line %zu: '%s' holds a "
					                  "NUL byte", name, line, key);
				else
					rc = add(c, key, v, line, name, err);
				have_key = 0;
			}
			break;
		}
		default:
			break;
		}
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&p);
	if (rc)
		kt_config_release(c);
	return rc;
}

kt_code kt_config_load(kt_config *c, const char *path, kt_error *err)
{
	memset(c, 0, sizeof(*c));
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		return kt_error_sys(err, kt_code_from_errno(e), e, "cannot read config '%s'", path);
	}
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return kt_error_set(err, KT_EUSAGE, "config '%s' is not a regular file", path);
	}
	if (st.st_size > (off_t)KT_CONFIG_MAX) {
		close(fd);
		return kt_error_set(err, KT_ELIMIT, "config '%s' is larger than %u bytes", path,
		                    KT_CONFIG_MAX);
	}
	char *buf = kt_xmalloc((size_t)st.st_size + 1);
	ssize_t n = read(fd, buf, (size_t)st.st_size);
	int e = errno;
	close(fd);
	if (n < 0) {
		free(buf);
		return kt_error_sys(err, kt_code_from_errno(e), e, "cannot read config '%s'", path);
	}
	kt_code rc = kt_config_parse(c, buf, (size_t)n, path, err);
	free(buf);
	return rc;
}
