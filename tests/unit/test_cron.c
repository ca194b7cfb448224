/*
 * test_cron.c - unit tests for src/core/cron.c: what --schedule accepts,
 * the exact messages for what it refuses, and the next fire times a user
 * would see (month, year and leap-day boundaries, the Vixie day-of-month /
 * day-of-week OR rule), cross-checked against a minute-by-minute search.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/core.h"
#include "unit.h"

/* "YYYY-MM-DD HH:MM[:SS]" UTC to unix seconds. */
static int64_t at(const char *s)
{
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	int n = sscanf(s, "%d-%d-%d %d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
	               &tm.tm_hour, &tm.tm_min, &tm.tm_sec);
	if (n < 5)
		abort();
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (int64_t)timegm(&tm);
}

/* Format t as "YYYY-MM-DD HH:MM" into out. */
static const char *fmt(int64_t t, char out[32])
{
	time_t tt = (time_t)t;
	struct tm tm;
	if (!gmtime_r(&tt, &tm))
		return "(bad time)";
	strftime(out, 32, "%Y-%m-%d %H:%M", &tm);
	return out;
}

/* The next fire time of expr after `after`, formatted; "error: msg" on failure. */
static const char *next_of(const char *expr, const char *after)
{
	static char out[KT_ERROR_MSG_MAX + 16];
	kt_cron c;
	kt_error err;
	kt_error_clear(&err);
	if (kt_cron_parse(&c, expr, &err) != KT_OK) {
		snprintf(out, sizeof(out), "parse error: %s", err.msg);
		return out;
	}
	int64_t next = -1;
	if (kt_cron_next(&c, at(after), &next, &err) != KT_OK) {
		snprintf(out, sizeof(out), "error: %s", err.msg);
		return out;
	}
	char buf[32];
	snprintf(out, sizeof(out), "%s", fmt(next, buf));
	return out;
}

/* The parse error message for expr, or "ok". */
static const char *parse_msg(const char *expr)
{
	static char out[KT_ERROR_MSG_MAX];
	kt_cron c;
	memset(&c, 0xa5, sizeof(c));
	kt_cron before = c;
	kt_error err;
	kt_error_clear(&err);
	kt_code code = kt_cron_parse(&c, expr, &err);
	if (code == KT_OK)
		return "ok";
	if (code != KT_EUSAGE || memcmp(&c, &before, sizeof(c)) != 0)
		return "wrong code or out was modified";
	snprintf(out, sizeof(out), "%s", err.msg);
	return out;
}

static kt_cron parse_ok(const char *expr)
{
	kt_cron c;
	kt_error err;
	memset(&c, 0, sizeof(c));
	if (kt_cron_parse(&c, expr, &err) != KT_OK) {
		fprintf(stderr, "  unexpected parse failure: %s\n", err.msg);
		CHECK(0);
	}
	return c;
}

static void test_parse_fields(void)
{
	kt_cron c = parse_ok("*/15 0-6,18 1,15 JAN-mar,Dec mon-FRI");
	CHECK_EQ_U(c.minute, (1ull << 0) | (1ull << 15) | (1ull << 30) | (1ull << 45));
	CHECK_EQ_U(c.hour, 0x7f | (1u << 18));
	CHECK_EQ_U(c.dom, (1u << 1) | (1u << 15));
	CHECK_EQ_U(c.month, (1u << 1) | (1u << 2) | (1u << 3) | (1u << 12));
	CHECK_EQ_U(c.dow, 0x3e);
	CHECK(!c.dom_star && !c.dow_star);
	CHECK_STR(c.expr, "*/15 0-6,18 1,15 JAN-mar,Dec mon-FRI");

	c = parse_ok("  \t* * * * *\t ");
	CHECK_EQ_U(c.minute, (1ull << 60) - 1);
	CHECK_EQ_U(c.hour, (1u << 24) - 1);
	CHECK_EQ_U(c.dom, 0xfffffffeu);
	CHECK_EQ_U(c.month, 0x1ffe);
	CHECK_EQ_U(c.dow, 0x7f);
	CHECK(c.dom_star && c.dow_star);
	CHECK_STR(c.expr, "* * * * *");

	/* Steps: ranges, '*', a step larger than the range, 7 = Sunday. */
	c = parse_ok("5-20/5 */7 */10 */5 MON-FRI/2");
	CHECK_EQ_U(c.minute, (1ull << 5) | (1ull << 10) | (1ull << 15) | (1ull << 20));
	CHECK_EQ_U(c.hour, (1u << 0) | (1u << 7) | (1u << 14) | (1u << 21));
	CHECK_EQ_U(c.dom, (1u << 1) | (1u << 11) | (1u << 21) | (1u << 31));
	CHECK_EQ_U(c.month, (1u << 1) | (1u << 6) | (1u << 11));
	CHECK_EQ_U(c.dow, (1u << 1) | (1u << 3) | (1u << 5));
	CHECK(c.dom_star && !c.dow_star);   /* Vixie: "* /10" starts with '*' */
	CHECK_EQ_U(parse_ok("0 0 * * 7").dow, 1);
	CHECK_EQ_U(parse_ok("0 0 * * 0").dow, 1);
	CHECK_EQ_U(parse_ok("0 0 * * sun").dow, 1);
	CHECK_EQ_U(parse_ok("0 0 * * 5-7").dow, (1u << 5) | (1u << 6) | 1);
	CHECK_EQ_U(parse_ok("0 0 * * 1-7/3").dow, (1u << 1) | (1u << 4) | 1);
	CHECK_EQ_U(parse_ok("*/59 0 * * *").minute, 1 | (1ull << 59));
	CHECK_EQ_U(parse_ok("007 0 * * *").minute, 1ull << 7);
	CHECK_EQ_U(parse_ok("59 23 31 12 6").minute, 1ull << 59);
}

static void same_fields(const char *a, const char *b)
{
	kt_cron x = parse_ok(a), y = parse_ok(b);
	CHECK(x.minute == y.minute && x.hour == y.hour && x.dom == y.dom && x.month == y.month &&
	      x.dow == y.dow && x.dom_star == y.dom_star && x.dow_star == y.dow_star);
}

static void test_macros(void)
{
	same_fields("@hourly", "0 * * * *");
	same_fields("@daily", "0 0 * * *");
	same_fields("@midnight", "0 0 * * *");
	same_fields("@weekly", "0 0 * * 0");
	same_fields("@monthly", "0 0 1 * *");
	same_fields("@yearly", "0 0 1 1 *");
	same_fields("@annually", "0 0 1 1 *");
	same_fields(" @DAILY ", "0 0 * * *");
	CHECK_STR(parse_ok(" @daily\t").expr, "@daily");
	CHECK_STR(next_of("@hourly", "2024-01-01 10:00"), "2024-01-01 11:00");
	CHECK_STR(next_of("@weekly", "2024-09-01 00:00"), "2024-09-08 00:00");
	CHECK_STR(next_of("@monthly", "2024-01-31 12:00"), "2024-02-01 00:00");
	CHECK_STR(next_of("@yearly", "2024-01-01 00:00"), "2025-01-01 00:00");
}

static void test_parse_errors(void)
{
	CHECK_STR(parse_msg("0 25 * * *"),
	          "invalid schedule '0 25 * * *': hour 25 is out of range 0-23");
	CHECK_STR(parse_msg("60 * * * *"),
	          "invalid schedule '60 * * * *': minute 60 is out of range 0-59");
	CHECK_STR(parse_msg("* * 0 * *"),
	          "invalid schedule '* * 0 * *': day-of-month 0 is out of range 1-31");
	CHECK_STR(parse_msg("* * 32 * *"),
	          "invalid schedule '* * 32 * *': day-of-month 32 is out of range 1-31");
	CHECK_STR(parse_msg("* * * 13 *"),
	          "invalid schedule '* * * 13 *': month 13 is out of range 1-12");
	CHECK_STR(parse_msg("* * * * 8"),
	          "invalid schedule '* * * * 8': day-of-week 8 is out of range 0-7");
	CHECK_STR(parse_msg("0 99999999999 * * *"), "invalid schedule '0 99999999999 * * *': "
	          "hour 99999999999 is out of range 0-23");
	CHECK_STR(parse_msg("0 0 * FOO *"), "invalid schedule '0 0 * FOO *': "
	          "month 'FOO' is not a number or a name (JAN-DEC)");
	CHECK_STR(parse_msg("0 0 * * MONDAY"), "invalid schedule '0 0 * * MONDAY': "
	          "day-of-week 'MONDAY' is not a number or a name (SUN-SAT)");
	CHECK_STR(parse_msg("0 0 * * JAN"), "invalid schedule '0 0 * * JAN': "
	          "day-of-week 'JAN' is not a number or a name (SUN-SAT)");
	CHECK_STR(parse_msg("x * * * *"), "invalid schedule 'x * * * *': minute 'x' is not a number");
	CHECK_STR(parse_msg("0 0 mon * *"),
	          "invalid schedule '0 0 mon * *': day-of-month 'mon' is not a number");
	CHECK_STR(parse_msg("-5 * * * *"),
	          "invalid schedule '-5 * * * *': minute '-5' is not a number");
	CHECK_STR(parse_msg("1x * * * *"),
	          "invalid schedule '1x * * * *': minute '1x' is not a number, range or step");
	CHECK_STR(parse_msg("*5 * * * *"),
	          "invalid schedule '*5 * * * *': minute '*5' is not a number, range or step");
	CHECK_STR(parse_msg("0 5-2 * * *"), "invalid schedule '0 5-2 * * *': hour range '5-2' "
	          "is backwards (the start must not exceed the end)");
	CHECK_STR(parse_msg("0 0 * * FRI-SUN"), "invalid schedule '0 0 * * FRI-SUN': "
	          "day-of-week range 'FRI-SUN' is backwards (the start must not exceed the end)");
	CHECK_STR(parse_msg("*/0 * * * *"),
	          "invalid schedule '*/0 * * * *': minute step 0 in '*/0' is out of range 1-59");
	CHECK_STR(parse_msg("0 */24 * * *"),
	          "invalid schedule '0 */24 * * *': hour step 24 in '*/24' is out of range 1-23");
	CHECK_STR(parse_msg("*/x * * * *"),
	          "invalid schedule '*/x * * * *': minute step in '*/x' is not a number");
	CHECK_STR(parse_msg("*/ * * * *"),
	          "invalid schedule '*/ * * * *': minute step in '*/' is not a number");
	CHECK_STR(parse_msg("1-5/2/3 * * * *"),
	          "invalid schedule '1-5/2/3 * * * *': minute step in '1-5/2/3' is not a number");
	CHECK_STR(parse_msg("5/15 * * * *"), "invalid schedule '5/15 * * * *': minute '5/15' "
	          "has a step without a range (write 5-59/15 or */15)");
	CHECK_STR(parse_msg("1,,2 * * * *"),
	          "invalid schedule '1,,2 * * * *': minute has an empty list item in '1,,2'");
	CHECK_STR(parse_msg("0 0 1, * *"),
	          "invalid schedule '0 0 1, * *': day-of-month has an empty list item in '1,'");
	CHECK_STR(parse_msg("* * * *"), "invalid schedule '* * * *': expected 5 fields "
	          "(minute hour day-of-month month day-of-week), found 4");
	CHECK_STR(parse_msg("0 0 * * * *"), "invalid schedule '0 0 * * * *': expected 5 fields "
	          "(minute hour day-of-month month day-of-week), found 6");
	CHECK_STR(parse_msg("   "), "invalid schedule '   ': expected 5 fields "
	          "(minute hour day-of-month month day-of-week), found 0");
	CHECK_STR(parse_msg(NULL), "invalid schedule '': expected 5 fields "
	          "(minute hour day-of-month month day-of-week), found 0");
	CHECK_STR(parse_msg("@reboot"), "invalid schedule '@reboot': unknown macro '@reboot' "
	          "(use @hourly, @daily, @midnight, @weekly, @monthly, @yearly or @annually)");
	CHECK_STR(parse_msg("@daily 0"), "invalid schedule '@daily 0': unknown macro '@daily 0' "
	          "(use @hourly, @daily, @midnight, @weekly, @monthly, @yearly or @annually)");
	CHECK_STR(parse_msg("0\n0 * * *"), "invalid schedule: byte 0x0a at offset 1 is not "
	          "allowed (use printable ASCII)");
	CHECK_STR(parse_msg("0 0 * * \xc3\xa9"), "invalid schedule: byte 0xc3 at offset 8 is not "
	          "allowed (use printable ASCII)");

	char long_expr[KT_CRON_EXPR_MAX + 2];
	memset(long_expr, ' ', sizeof(long_expr));
	memcpy(long_expr, "* * * * *", 9);
	long_expr[KT_CRON_EXPR_MAX] = '\0';   /* exactly the limit: accepted */
	CHECK_STR(parse_msg(long_expr), "ok");
	long_expr[KT_CRON_EXPR_MAX] = ' ';
	long_expr[KT_CRON_EXPR_MAX + 1] = '\0';
	CHECK_STR(parse_msg(long_expr),
	          "invalid schedule: longer than the limit of 256 characters");
}

static void test_next_basic(void)
{
	/* k3s's default etcd-snapshot-schedule-cron. */
	CHECK_STR(next_of("0 */12 * * *", "2024-01-01 05:00"), "2024-01-01 12:00");
	CHECK_STR(next_of("0 */12 * * *", "2024-01-01 12:00"), "2024-01-02 00:00");   /* strictly after */
	CHECK_STR(next_of("0 */12 * * *", "2024-01-01 11:59:59"), "2024-01-01 12:00");
	CHECK_STR(next_of("0 */12 * * *", "2024-12-31 23:59:30"), "2025-01-01 00:00");
	CHECK_STR(next_of("* * * * *", "2024-01-01 10:00:30"), "2024-01-01 10:01");
	CHECK_STR(next_of("* * * * *", "2024-01-01 10:00"), "2024-01-01 10:01");
	CHECK_STR(next_of("5-20/5 * * * *", "2024-03-10 10:07"), "2024-03-10 10:10");
	CHECK_STR(next_of("5-20/5 * * * *", "2024-03-10 10:20"), "2024-03-10 11:05");
	CHECK_STR(next_of("*/7 * * * *", "2024-03-10 10:56"), "2024-03-10 11:00");
	CHECK_STR(next_of("30 4 1 * *", "2023-12-15 00:00"), "2024-01-01 04:30");
	CHECK_STR(next_of("0 0 31 * *", "2024-04-01 00:00"), "2024-05-31 00:00");   /* April has 30 */
	CHECK_STR(next_of("0 0 1 1 *", "2023-12-31 23:59"), "2024-01-01 00:00");
	CHECK_STR(next_of("59 23 31 12 *", "2024-12-31 23:59"), "2025-12-31 23:59");
	CHECK_STR(next_of("0 9 * JUN-AUG MON", "2024-09-01 00:00"), "2025-06-02 09:00");
	CHECK_STR(next_of("0 12 * * sat,SUN", "2024-09-09 00:00"), "2024-09-14 12:00");
	CHECK_STR(next_of("0 0 * * 7", "2024-09-09 00:00"), "2024-09-15 00:00");
	CHECK_STR(next_of("15 3 * * *", "1970-01-01 00:00"), "1970-01-01 03:15");
	CHECK_STR(next_of("0 0 1 1 *", "9999-06-01 00:00"), "10000-01-01 00:00");
}

static void test_leap_day(void)
{
	CHECK_STR(next_of("0 0 29 2 *", "2023-03-01 00:00"), "2024-02-29 00:00");
	CHECK_STR(next_of("0 0 29 2 *", "2024-02-29 00:00"), "2028-02-29 00:00");
	CHECK_STR(next_of("0 0 29 2 *", "2096-03-01 00:00"), "2104-02-29 00:00");   /* 2100 is not leap */
	CHECK_STR(next_of("0 0 29 2 *", "1999-01-01 00:00"), "2000-02-29 00:00");   /* 2000 is */
	CHECK_STR(next_of("0 0 * 2 *", "2023-02-28 00:00"), "2024-02-01 00:00");
	CHECK_STR(next_of("0 0 * 2 *", "2024-02-28 00:00"), "2024-02-29 00:00");
}

static void test_dom_dow_or_rule(void)
{
	/* Both restricted: the 13th OR any Friday. */
	CHECK_STR(next_of("0 0 13 * FRI", "2024-09-01 00:00"), "2024-09-06 00:00");
	CHECK_STR(next_of("0 0 13 * FRI", "2024-09-06 00:00"), "2024-09-13 00:00");
	CHECK_STR(next_of("0 0 13 * FRI", "2024-09-13 00:00"), "2024-09-20 00:00");
	CHECK_STR(next_of("0 0 15 * MON", "2024-09-09 00:00"), "2024-09-15 00:00");   /* a Sunday */
	CHECK_STR(next_of("0 0 15 * MON", "2024-09-15 00:00"), "2024-09-16 00:00");
	/* Only one restricted: that one alone decides. */
	CHECK_STR(next_of("0 0 13 * *", "2024-09-01 00:00"), "2024-09-13 00:00");
	CHECK_STR(next_of("0 0 * * FRI", "2024-09-06 00:00"), "2024-09-13 00:00");
	/* Vixie: "* /2" counts as '*', so it ANDs: odd days that are Mondays. */
	CHECK_STR(next_of("0 0 */2 * MON", "2024-09-01 00:00"), "2024-09-09 00:00");
	CHECK_STR(next_of("0 0 */2 * MON", "2024-09-09 00:00"), "2024-09-23 00:00");
	/* OR rescues a day-of-month that the months never have. */
	CHECK_STR(next_of("0 0 30 2 MON", "2024-02-01 00:00"), "2024-02-05 00:00");
	kt_cron c = parse_ok("0 0 13 * FRI");
	CHECK(kt_cron_matches(&c, at("2024-09-13 00:00")));
	CHECK(kt_cron_matches(&c, at("2024-09-06 00:00:59")));
	CHECK(kt_cron_matches(&c, at("2024-10-13 00:00")));   /* a Sunday */
	CHECK(!kt_cron_matches(&c, at("2024-09-14 00:00")));
	CHECK(!kt_cron_matches(&c, at("2024-09-13 00:01")));
}

static void test_never_fires(void)
{
	CHECK_STR(next_of("0 0 30 2 *", "2024-01-01 00:00"),
	          "error: schedule '0 0 30 2 *' never fires: no day it names exists in the "
	          "months it names");
	CHECK_STR(next_of("0 0 31 4,6,9,11 *", "2024-01-01 00:00"),
	          "error: schedule '0 0 31 4,6,9,11 *' never fires: no day it names exists in "
	          "the months it names");
	CHECK_STR(next_of("0 0 31 4,7 *", "2024-01-01 00:00"), "2024-07-31 00:00");
	kt_cron c = parse_ok("0 0 30 2 *");
	kt_error err;
	int64_t next = 42;
	CHECK(kt_cron_next(&c, at("2024-01-01 00:00"), &next, &err) == KT_EUSAGE);
	CHECK_EQ_U(next, 42);
	c = parse_ok("* * * * *");
	CHECK(kt_cron_next(&c, -1, &next, &err) == KT_EUSAGE);
	CHECK_STR(err.msg, "cannot schedule after time -1: outside the years 1970-9999");
	CHECK(kt_cron_next(&c, INT64_MAX, &next, &err) == KT_EUSAGE);
	CHECK_EQ_U(next, 42);
}

/* Minute-by-minute reference: the first match in (after, after + limit]. */
static int64_t brute_next(const kt_cron *c, int64_t after, int64_t limit_minutes)
{
	int64_t t = after - after % 60 + 60;
	for (int64_t i = 0; i < limit_minutes; i++, t += 60)
		if (kt_cron_matches(c, t))
			return t;
	return -1;
}

static void test_against_brute_force(void)
{
	static const char *const exprs[] = {
		"* * * * *", "0 */12 * * *", "*/17 3-5,22 * * *", "0 0 13 * FRI",
		"30 6 */3 * *", "0 0 */2 * MON", "15 10 1-7 * MON", "0 0 1,15 * SUN",
		"45 23 28-31 * *", "0 0 29 2 TUE", "0 12 31 * *",
		"0 9-17/2 * * MON-FRI", "*/5 * * JAN,JUL *", "0 0 * * 6-7",
	};
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	int n_compared = 0;
	for (size_t i = 0; i < sizeof(exprs) / sizeof(exprs[0]); i++) {
		kt_cron c;
		kt_error err;
		if (kt_cron_parse(&c, exprs[i], &err) != KT_OK) {
			CHECK(0);
			continue;
		}
		for (int k = 0; k < 8; k++) {
			seed = seed * 6364136223846793005ull + 1442695040888963407ull;
			int64_t after = at("2020-01-01 00:00") + (int64_t)((seed >> 20) % (10ull * 365 * 86400));
			int64_t got = -1;
			CHECK(kt_cron_next(&c, after, &got, &err) == KT_OK);
			int64_t want = brute_next(&c, after, 62 * 24 * 60);
			if (want < 0)
				continue;   /* beyond the reference's reach */
			if (got != want) {
				char a[32], b[32], d[32];
				fprintf(stderr, "  '%s' after %s: got %s, want %s\n", exprs[i],
				        fmt(after, a), fmt(got, b), fmt(want, d));
				CHECK(0);
			}
			n_compared++;
		}
	}
	CHECK(n_compared >= 80);
}

int main(void)
{
	RUN(test_parse_fields);
	RUN(test_macros);
	RUN(test_parse_errors);
	RUN(test_next_basic);
	RUN(test_leap_day);
	RUN(test_dom_dow_or_rule);
	RUN(test_never_fires);
	RUN(test_against_brute_force);
	return unit_done();
}
