/*
 * cron.c - cron expressions for the backup agent's --schedule: parsing into
 * bitsets and finding the next fire time, in UTC only.
 *
 * Invariants:
 *   1. A parsed kt_cron has at least one bit set in every field, minute bits
 *      only in 0-59, hour 0-23, dom 1-31, month 1-12, dow 0-6 (7 is stored
 *      as 0), so the search never looks at an impossible value.
 *   2. dom_star/dow_star follow Vixie cron: set when the field's text starts
 *      with '*' ("*", "* /2"), which selects AND instead of OR for the days.
 *   3. kt_cron_next first decides whether the schedule can ever fire (only a
 *      day-of-month/month pair that no calendar has can make it not), so its
 *      search always ends; the leap-day schedule can wait 8 years (2096 to
 *      2104), so the search is capped at 10 years as a second guard.
 * Nothing here allocates or reads the time zone.
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core.h"

enum { F_MIN, F_HOUR, F_DOM, F_MON, F_DOW, N_FIELDS };

static const char *const month_names[] = { "jan", "feb", "mar", "apr", "may", "jun",
                                           "jul", "aug", "sep", "oct", "nov", "dec" };
static const char *const dow_names[] = { "sun", "mon", "tue", "wed", "thu", "fri", "sat" };

static const struct field {
	const char *name;
	int min, max;              /* accepted numbers */
	int star_max;              /* what '*' covers (dow: 0-6, not 7) */
	const char *const *names;  /* names[i] means min + i; NULL: numbers only */
	int n_names;
	const char *name_hint;
} fields[N_FIELDS] = {
	{ "minute", 0, 59, 59, NULL, 0, NULL },
	{ "hour", 0, 23, 23, NULL, 0, NULL },
	{ "day-of-month", 1, 31, 31, NULL, 0, NULL },
	{ "month", 1, 12, 12, month_names, 12, "JAN-DEC" },
	{ "day-of-week", 0, 7, 6, dow_names, 7, "SUN-SAT" },
};

static const struct macro { const char *name, *expansion; } macros[] = {
	{ "@hourly", "0 * * * *" },  { "@daily", "0 0 * * *" },  { "@midnight", "0 0 * * *" },
	{ "@weekly", "0 0 * * 0" },  { "@monthly", "0 0 1 * *" }, { "@yearly", "0 0 1 1 *" },
	{ "@annually", "0 0 1 1 *" },
};

/* Parse state: the whole expression (for messages) and the detail. */
typedef struct parser {
	const char *expr;
	char detail[KT_ERROR_MSG_MAX];
} parser;

#define FAIL(p, ...) (snprintf((p)->detail, sizeof((p)->detail), __VA_ARGS__), -1)

/* Read one number or name at *s (before end); -1 with p->detail set on error. */
static int parse_value(parser *p, const struct field *f, const char **s, const char *end, int *v)
{
	const char *start = *s, *q = *s;
	if (q < end && isdigit((unsigned char)*q)) {
		long n = 0;
		while (q < end && isdigit((unsigned char)*q)) {
			if (n < 100000)
				n = n * 10 + (*q - '0');
			q++;
		}
		if (n < f->min || n > f->max)
			return FAIL(p, "%s %.*s is out of range %d-%d", f->name, (int)(q - start),
			            start, f->min, f->max);
		*v = (int)n;
		*s = q;
		return 0;
	}
	while (q < end && isalpha((unsigned char)*q))
		q++;
	if (q > start && f->names && q - start == 3) {
		for (int i = 0; i < f->n_names; i++) {
			if (!strncasecmp(start, f->names[i], 3)) {
				*v = f->min + i;
				*s = q;
				return 0;
			}
		}
	}
	if (q == start)   /* not a letter either: show the rest of the item */
		q = end;
	if (f->names)
		return FAIL(p, "%s '%.*s' is not a number or a name (%s)", f->name,
		            (int)(q - start), start, f->name_hint);
	return FAIL(p, "%s '%.*s' is not a number", f->name, (int)(q - start), start);
}

/* One list item [s, end): '*', '* /n', 'a', 'a-b', 'a-b/n'.  Sets bits. */
static int parse_item(parser *p, const struct field *f, const char *s, const char *end,
                      uint64_t *bits)
{
	const char *item = s;
	int ilen = (int)(end - s);
	int lo, hi, step = 1, is_star = 0, ranged = 0;
	if (s < end && *s == '*') {
		lo = f->min;
		hi = f->star_max;
		is_star = 1;
		s++;
	} else {
		if (parse_value(p, f, &s, end, &lo) < 0)
			return -1;
		hi = lo;
		if (s < end && *s == '-') {
			s++;
			ranged = 1;
			if (parse_value(p, f, &s, end, &hi) < 0)
				return -1;
			if (lo > hi)
				return FAIL(p, "%s range '%.*s' is backwards (the start must not "
				            "exceed the end)", f->name, ilen, item);
		}
	}
	if (s < end && *s == '/') {
		if (!is_star && !ranged)
			return FAIL(p, "%s '%.*s' has a step without a range (write %.*s-%d/%.*s "
			            "or */%.*s)", f->name, ilen, item, (int)(s - item), item, f->max,
			            (int)(end - s - 1), s + 1, (int)(end - s - 1), s + 1);
		s++;
		const char *ds = s;
		long n = 0;
		while (s < end && isdigit((unsigned char)*s)) {
			if (n < 100000)
				n = n * 10 + (*s - '0');
			s++;
		}
		if (s == ds || s != end)
			return FAIL(p, "%s step in '%.*s' is not a number", f->name, ilen, item);
		if (n < 1 || n > f->max)
			return FAIL(p, "%s step %.*s in '%.*s' is out of range 1-%d", f->name,
			            (int)(s - ds), ds, ilen, item, f->max);
		step = (int)n;
	}
	if (s != end)
		return FAIL(p, "%s '%.*s' is not a number, range or step", f->name, ilen, item);
	for (int v = lo; v <= hi; v += step)
		*bits |= 1ull << (f == &fields[F_DOW] && v == 7 ? 0 : v);
	return 0;
}

/* A comma-separated list [s, end) for field f. */
static int parse_field(parser *p, const struct field *f, const char *s, const char *end,
                       uint64_t *bits)
{
	const char *field = s;
	*bits = 0;
	for (;;) {
		const char *comma = memchr(s, ',', (size_t)(end - s));
		const char *item_end = comma ? comma : end;
		if (item_end == s)
			return FAIL(p, "%s has an empty list item in '%.*s'", f->name,
			            (int)(end - field), field);
		if (parse_item(p, f, s, item_end, bits) < 0)
			return -1;
		if (!comma)
			return 0;
		s = comma + 1;
	}
}

static int is_space(char ch)
{
	return ch == ' ' || ch == '\t';
}

/* Parse the five fields of text into out (text is the trimmed expression). */
static int parse_fields(parser *p, const char *text, kt_cron *out)
{
	const char *start[N_FIELDS], *end[N_FIELDS];
	int n = 0;
	const char *s = text;
	while (*s) {
		while (is_space(*s))
			s++;
		if (!*s)
			break;
		const char *e = s;
		while (*e && !is_space(*e))
			e++;
		if (n < N_FIELDS) {
			start[n] = s;
			end[n] = e;
		}
		n++;
		s = e;
	}
	if (n != N_FIELDS)
		return FAIL(p, "expected 5 fields (minute hour day-of-month month day-of-week), "
		            "found %d", n);
	uint64_t bits[N_FIELDS];
	for (int i = 0; i < N_FIELDS; i++)
		if (parse_field(p, &fields[i], start[i], end[i], &bits[i]) < 0)
			return -1;
	out->minute = bits[F_MIN];
	out->hour = (uint32_t)bits[F_HOUR];
	out->dom = (uint32_t)bits[F_DOM];
	out->month = (uint16_t)bits[F_MON];
	out->dow = (uint8_t)bits[F_DOW];
	out->dom_star = *start[F_DOM] == '*';
	out->dow_star = *start[F_DOW] == '*';
	return 0;
}

kt_code kt_cron_parse(kt_cron *out, const char *expr, kt_error *err)
{
	if (!expr)
		expr = "";
	size_t len = strnlen(expr, KT_CRON_EXPR_MAX + 1);
	if (len > KT_CRON_EXPR_MAX)
		return kt_error_set(err, KT_EUSAGE, "invalid schedule: longer than the limit of "
		                    "%d characters", KT_CRON_EXPR_MAX);
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)expr[i];
		if ((ch < 0x20 || ch > 0x7e) && ch != '\t')
			return kt_error_set(err, KT_EUSAGE, "invalid schedule: byte 0x%02x at offset "
			                    "%zu is not allowed (use printable ASCII)", ch, i);
	}
	/* Trim into a local copy so out is untouched on failure. */
	kt_cron c;
	memset(&c, 0, sizeof(c));
	const char *s = expr, *e = expr + len;
	while (s < e && is_space(*s))
		s++;
	while (e > s && is_space(e[-1]))
		e--;
	memcpy(c.expr, s, (size_t)(e - s));
	c.expr[e - s] = '\0';

	parser p = { .expr = expr };
	const char *text = c.expr;
	if (text[0] == '@') {
		size_t i, n_macros = sizeof(macros) / sizeof(macros[0]);
		for (i = 0; i < n_macros; i++)
			if (!strcasecmp(text, macros[i].name))
				break;
		if (i == n_macros)
			return kt_error_set(err, KT_EUSAGE, "invalid schedule '%s': unknown macro "
			                    "'%s' (use @hourly, @daily, @midnight, @weekly, @monthly, "
			                    "@yearly or @annually)", expr, text);
		text = macros[i].expansion;
	}
	if (parse_fields(&p, text, &c) < 0)
		return kt_error_set(err, KT_EUSAGE, "invalid schedule '%s': %s", expr, p.detail);
	*out = c;
	return KT_OK;
}

/* ------------------------------------------------------------------ */
/* Calendar arithmetic (proleptic Gregorian, UTC). */

/* Days since 1970-01-01 (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int is_leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int64_t y, int m)
{
	static const int dim[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

static int day_matches(const kt_cron *c, int64_t y, int m, int d)
{
	int64_t days = days_from_civil(y, m, d);
	int wd = (int)((days % 7 + 11) % 7);   /* 1970-01-01 was a Thursday (4) */
	int dom_ok = (c->dom >> d) & 1, dow_ok = (c->dow >> wd) & 1;
	if (c->dom_star || c->dow_star)
		return dom_ok && dow_ok;
	return dom_ok || dow_ok;
}

/* Lowest set bit of mask at or above from, or -1. */
static int next_bit(uint64_t mask, int from)
{
	if (from >= 64)
		return -1;
	mask &= ~0ull << from;
	return mask ? __builtin_ctzll(mask) : -1;
}

/* Whether some day can match: every month has every weekday, so only a
 * day-of-month list that misses all the named months can fail. */
static int can_fire(const kt_cron *c)
{
	if (!c->minute || !c->hour || !c->month || !c->dom || !c->dow)
		return 0;
	if (!c->dow_star && !c->dom_star)
		return 1;   /* OR: the weekdays alone fire */
	if (!c->dow_star)
		return 1;   /* dom is '*...' so it holds the 1st: every weekday occurs */
	static const int max_dim[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	for (int m = 1; m <= 12; m++)
		if (((c->month >> m) & 1) && (c->dom & (((uint64_t)2 << max_dim[m - 1]) - 2)))
			return 1;
	return 0;
}

#define KT_CRON_MAX_UNIX INT64_C(253402300799)   /* 9999-12-31T23:59:59Z */
#define KT_CRON_SEARCH_YEARS 10

kt_code kt_cron_next(const kt_cron *c, int64_t after_unix, int64_t *next_unix, kt_error *err)
{
	if (after_unix < 0 || after_unix > KT_CRON_MAX_UNIX)
		return kt_error_set(err, KT_EUSAGE, "cannot schedule after time %lld: outside the "
		                    "years 1970-9999", (long long)after_unix);
	if (!can_fire(c))
		return kt_error_set(err, KT_EUSAGE, "schedule '%s' never fires: no day it names "
		                    "exists in the months it names", c->expr);
	time_t t = (time_t)(after_unix - after_unix % 60 + 60);
	struct tm tm;
	if (!gmtime_r(&t, &tm))
		return kt_error_set(err, KT_EUSAGE, "cannot schedule after time %lld: outside the "
		                    "calendar", (long long)after_unix);
	int64_t y = (int64_t)tm.tm_year + 1900, limit = y + KT_CRON_SEARCH_YEARS;
	int m = tm.tm_mon + 1, d = tm.tm_mday, h = tm.tm_hour, mi = tm.tm_min;
	for (;;) {
		if (y > limit)
			return kt_error_set(err, KT_EUSAGE, "schedule '%s' does not fire within %d "
			                    "years", c->expr, KT_CRON_SEARCH_YEARS);
		if (!((c->month >> m) & 1) || d > days_in_month(y, m)) {
			m++, d = 1, h = 0, mi = 0;
			if (m > 12)
				m = 1, y++;
			continue;
		}
		if (!day_matches(c, y, m, d)) {
			d++, h = 0, mi = 0;
			continue;
		}
		int nh = next_bit(c->hour, h);
		if (nh < 0) {
			d++, h = 0, mi = 0;
			continue;
		}
		if (nh != h)
			h = nh, mi = 0;
		int nm = next_bit(c->minute, mi);
		if (nm < 0) {
			h++, mi = 0;
			continue;   /* h == 24 falls to the next day via next_bit */
		}
		mi = nm;
		break;
	}
	*next_unix = days_from_civil(y, m, d) * 86400 + (int64_t)h * 3600 + (int64_t)mi * 60;
	return KT_OK;
}

int kt_cron_matches(const kt_cron *c, int64_t t_unix)
{
	time_t t = (time_t)t_unix;
	struct tm tm;
	if (!gmtime_r(&t, &tm))
		return 0;
	return ((c->minute >> tm.tm_min) & 1) && ((c->hour >> tm.tm_hour) & 1) &&
	       ((c->month >> (tm.tm_mon + 1)) & 1) &&
	       day_matches(c, (int64_t)tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
}
