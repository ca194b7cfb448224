/*
 * opts.c - flag parsing shared by every command, and the two ways a
 * command reports trouble (kt_cli_fail, kt_cli_usage).
 *
 * Accepted spellings: --name value, --name=value, -x value, -xvalue, and
 * "--" to end flags.  Global flags (-o, --log-format, -v, -h) are accepted
 * by every command.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char global_help[] =
	"Global flags:\n"
	"  -o, --output FORMAT    table (default), json or yaml\n"
	"      --log-format F     text (default) or json\n"
	"  -v, --verbose          more detail (repeat for debug)\n"
	"  -h, --help             show this help\n\n"
	"Exit codes: 0 ok, 1 failure, 2 usage error, 3 verification failed.\n";

static void print_help(const kt_opt *opts, const char *path, const char *usage, const char *help)
{
	printf("Usage: kontinuity %s %s\n\n%s\n", path, usage, help);
	if (opts && opts[0].name) {
		printf("Flags:\n");
		for (const kt_opt *o = opts; o->name; o++) {
			char left[64];
			snprintf(left, sizeof(left), "%s%c%s--%s%s%s", o->shortname ? "-" : "",
			         o->shortname ? o->shortname : ' ', o->shortname ? ", " : "  ",
			         o->name, o->argname ? " " : "", o->argname ? o->argname : "");
			printf("  %-28s %s\n", left + (o->shortname ? 0 : 1), o->help);
		}
		printf("\n");
	}
	printf("%s", global_help);
}

int kt_cli_usage(const char *path, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	kt_buf clean;
	kt_buf_init(&clean, 1 << 16);
	kt_redact(&clean, msg);
	fprintf(stderr, "kontinuity %s: %s\nRun 'kontinuity %s --help' for usage.\n", path,
	        clean.data, path);
	kt_buf_release(&clean);
	return 2;
}

int kt_cli_fail(const kt_error *err)
{
	if (kt_log_get_format() == KT_LOG_JSON) {
		/* One JSON line like every other line on stderr (redacted by kt_log). */
		kt_log(KT_LOG_ERROR, "%s", err->msg);
		return kt_code_exit(err->code);
	}
	kt_buf clean;
	kt_buf_init(&clean, 1 << 16);
	kt_redact(&clean, err->msg);
	fprintf(stderr, "kontinuity: %s\n", clean.data);
	kt_buf_release(&clean);
	return kt_code_exit(err->code);
}

static int set_global(kt_globals *g, const char *path, const char *name, const char *val)
{
	if (!strcmp(name, "output")) {
		if (!strcmp(val, "table") || !strcmp(val, "text"))
			g->output = KT_OUT_TABLE;
		else if (!strcmp(val, "json"))
			g->output = KT_OUT_JSON;
		else if (!strcmp(val, "yaml"))
			g->output = KT_OUT_YAML;
		else
			return kt_cli_usage(path, "unknown output format '%s' (use table, json or yaml)", val);
	} else {
		if (!strcmp(val, "text"))
			g->log_format = KT_LOG_TEXT;
		else if (!strcmp(val, "json"))
			g->log_format = KT_LOG_JSON;
		else
			return kt_cli_usage(path, "unknown log format '%s' (use text or json)", val);
	}
	return 0;
}

int kt_cli_parse(int argc, char **argv, const kt_opt *opts, const char *path,
                 const char *usage, const char *help, char **pos, int max_pos,
                 int *n_pos, kt_globals *g, int *done)
{
	*n_pos = 0;
	*done = 0;
	int only_pos = 0;
	for (int i = 0; i < argc; i++) {
		char *a = argv[i];
		if (only_pos || a[0] != '-' || !a[1]) {
			if (*n_pos >= max_pos)
				return kt_cli_usage(path, "unexpected argument '%s'", a);
			pos[(*n_pos)++] = a;
			continue;
		}
		if (!strcmp(a, "--")) {
			only_pos = 1;
			continue;
		}
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			print_help(opts, path, usage, help);
			*done = 1;
			return 0;
		}
		/* Split into name and optional inline value. */
		char name[64];
		const char *inline_val = NULL;
		const kt_opt *match = NULL;
		int is_long = a[1] == '-';
		if (is_long) {
			const char *eq = strchr(a + 2, '=');
			size_t n = eq ? (size_t)(eq - (a + 2)) : strlen(a + 2);
			if (n >= sizeof(name))
				return kt_cli_usage(path, "unknown flag '%s'", a);
			memcpy(name, a + 2, n);
			name[n] = '\0';
			inline_val = eq ? eq + 1 : NULL;
		} else {
			name[0] = a[1];
			name[1] = '\0';
			inline_val = a[2] ? a + 2 : NULL;
		}
		/* Globals first. */
		int is_output = is_long ? !strcmp(name, "output") : name[0] == 'o';
		int is_logfmt = is_long && !strcmp(name, "log-format");
		int is_verbose = is_long ? !strcmp(name, "verbose") : name[0] == 'v';
		if (is_verbose && !inline_val) {
			g->verbose++;
			continue;
		}
		if (is_output || is_logfmt) {
			const char *val = inline_val;
			if (!val) {
				if (i + 1 >= argc)
					return kt_cli_usage(path, "flag '%s' needs a value", a);
				val = argv[++i];
			}
			int rc = set_global(g, path, is_output ? "output" : "log-format", val);
			if (rc)
				return rc;
			continue;
		}
		for (const kt_opt *o = opts; o && o->name; o++)
			if (is_long ? !strcmp(o->name, name) : (o->shortname && o->shortname == name[0]))
				match = o;
		if (!match)
			return kt_cli_usage(path, "unknown flag '%s'", a);
		if (!match->argname) {
			if (inline_val)
				return kt_cli_usage(path, "flag '--%s' takes no value", match->name);
			if (match->count)
				(*match->count)++;
			continue;
		}
		const char *val = inline_val;
		if (!val) {
			if (i + 1 >= argc)
				return kt_cli_usage(path, "flag '--%s' needs a value (%s)", match->name,
				                    match->argname);
			val = argv[++i];
		}
		*match->str = val;
	}
	kt_log_setup(stderr, g->log_format,
	             g->verbose >= 2 ? KT_LOG_DEBUG : g->verbose == 1 ? KT_LOG_INFO : KT_LOG_WARN);
	return 0;
}

static const kt_opt *find_opt(const kt_opt *opts, const char *name)
{
	for (const kt_opt *o = opts; o && o->name; o++)
		if (!strcmp(o->name, name))
			return o;
	return NULL;
}

int kt_cli_with_config(int argc, char **argv, const kt_opt *opts, const char *path_cmd,
                       int *argc_out, char ***argv_out, kt_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	const char *file = NULL;
	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--config") && i + 1 < argc)
			file = argv[i + 1];
		else if (!strncmp(argv[i], "--config=", 9))
			file = argv[i] + 9;
		else if (!strcmp(argv[i], "--"))
			break;
	}
	kt_error err;
	if (file && kt_config_load(cfg, file, &err)) {
		fprintf(stderr, "kontinuity %s: ", path_cmd);
		kt_cli_fail(&err);
		return 2;
	}
	/* Settings from the file first: flags on the command line override. */
	char **v = kt_xcalloc(2 * cfg->n + (size_t)argc + 1, sizeof(char *));
	int n = 0;
	for (size_t i = 0; i < cfg->n; i++) {
		const char *k = cfg->keys[i];
		const kt_opt *o = find_opt(opts, k);
		int global = !strcmp(k, "output") || !strcmp(k, "log-format") || !strcmp(k, "verbose");
		if ((!o && !global) || !strcmp(k, "config")) {
			kt_cli_usage(path_cmd, "config '%s': unknown setting '%s'", file, k);
			free(v);
			kt_config_release(cfg);
			return 2;
		}
		int is_switch = (o && !o->argname) || !strcmp(k, "verbose");
		size_t klen = strlen(k);
		char *flag = kt_xmalloc(klen + 3);
		flag[0] = flag[1] = '-';
		memcpy(flag + 2, k, klen + 1);
		free(cfg->keys[i]);    /* k is gone from here on */
		cfg->keys[i] = flag;   /* owned by cfg, released with it */
		if (is_switch) {
			if (!strcmp(cfg->values[i], "true") || !strcmp(cfg->values[i], "yes"))
				v[n++] = flag;
			else if (strcmp(cfg->values[i], "false") && strcmp(cfg->values[i], "no")) {
				kt_cli_usage(path_cmd, "config '%s': '%s' is a switch: true or false", file,
				             flag + 2);
				free(v);
				kt_config_release(cfg);
				return 2;
			}
			continue;
		}
		v[n++] = flag;
		v[n++] = cfg->values[i];
	}
	for (int i = 0; i < argc; i++)
		v[n++] = argv[i];
	*argc_out = n;
	*argv_out = v;
	return 0;
}
