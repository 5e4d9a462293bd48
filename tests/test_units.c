/*
 * units: the durations and rates of perch's options (record -d/-r,
 * schedule add --every/--for/--rate/--keep-for, --from/--to, perchd
 * --keep-age) and the stop limit (--stops).  What perch --help and perch(1) show is accepted with the
 * value it means; every other form is refused, not guessed.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "units.h"

#define MIN_RATE 1.0
#define MAX_RATE 10000.0

static void test_duration_documented(void **state)
{
	static const struct {
		const char *text;
		double seconds;
	} good[] = {
		{ "0", 0 }, { "10", 10 }, { "30s", 30 }, { "500ms", 0.5 },
		{ "250us", 250e-6 }, { "5m", 300 }, { "10min", 600 },
		{ "1h", 3600 }, { "2d", 172800 }, { "1h30m", 5400 },
		{ "1m30s", 90 }, { "1.5", 1.5 }, { "1.5s", 1.5 }, { "0.25h", 900 },
		{ "007", 7 }, { "1d2h3m4s5ms", 93784.005 }, { "1000000000", 1e9 },
		{ "0.1", 0.1 }, { "0.3", 0.3 },
	};
	double v;

	(void)state;
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		v = -1;
		if (units_parse_duration(good[i].text, &v) != 0)
			fail_msg("refused \"%s\"", good[i].text);
		assert_float_equal(v, good[i].seconds, 1e-9);
	}
	/* Exactly, not nearly: "0.1" is the double nearest to 0.1. */
	assert_int_equal(units_parse_duration("0.1", &v), 0);
	assert_true(v == 0.1);
}

static void test_duration_refused(void **state)
{
	static const char *const bad[] = {
		/* Forms strtod takes and nobody means on a command line. */
		"0x1e", "0X1E", "0x10s", "0x1p3", "1e3", "1E3", "1e3s", "1e-3",
		"inf", "INF", "infinity", "nan", "NaN", "nan(1)", "infs",
		/* A point needs digits on both sides. */
		".5", ".5s", "5.", "5.s", "1..5", "1.5.2", ".",
		/* Signs, blanks, separators. */
		"-1", "+1", "- 1", " 1", "1 ", "1\n", "\t1", "1 s", "1,5", "1_000",
		/* Units: only the listed ones, in lower case. */
		"", "s", "1x", "1sec", "1hr", "30S", "5M", "1H", "2D", "500MS",
		"1h30", "30 m", "1mss", "1hh",
		/* More than 1e9 s, or a number too long to be finite. */
		"1000000000.5", "11575d", "100000000000000000000",
		"1000000000000000000000000000000000000000000000000000000000000000000"
		"0000000000000000000000000000000000000000000000000000000000000000000"
		"0000000000000000000000000000000000000000000000000000000000000000000"
		"0000000000000000000000000000000000000000000000000000000000000000000"
		"0000000000000000000000000000000000000000000000000000000000000000000",
	};
	double v = 42;

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (units_parse_duration(bad[i], &v) != -EINVAL)
			fail_msg("accepted \"%s\"", bad[i]);
	assert_int_equal(units_parse_duration(NULL, &v), -EINVAL);
	/* A refusal leaves the value alone. */
	assert_true(v == 42);
}

static void test_rate(void **state)
{
	static const struct {
		const char *text;
		double hz;
	} good[] = {
		{ "99", 99 }, { "99hz", 99 }, { "99Hz", 99 }, { "99HZ", 99 },
		{ "1khz", 1000 }, { "1kHz", 1000 }, { "1.5khz", 1500 },
		{ "10khz", 10000 }, { "1", 1 }, { "10000", 10000 }, { "99.5", 99.5 },
	};
	static const char *const bad[] = {
		"0x63", "0x10", "1e2", "1e2hz", "inf", "infhz", "nan", "nanhz",
		".5khz", "5.", "-99", "+99", " 99", "99 ", "99 hz", "99h", "99mhz",
		"99hzz", "1k", "", "hz", "99,5",
	};
	double v = 0;

	(void)state;
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		if (units_parse_rate(good[i].text, MIN_RATE, MAX_RATE, &v) != 0)
			fail_msg("refused \"%s\"", good[i].text);
		assert_float_equal(v, good[i].hz, 1e-9);
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (units_parse_rate(bad[i], MIN_RATE, MAX_RATE, &v) != -EINVAL)
			fail_msg("accepted \"%s\"", bad[i]);
	/* Well formed, out of range. */
	assert_int_equal(units_parse_rate("0", MIN_RATE, MAX_RATE, &v), -ERANGE);
	assert_int_equal(units_parse_rate("0.5", MIN_RATE, MAX_RATE, &v), -ERANGE);
	assert_int_equal(units_parse_rate("10001", MIN_RATE, MAX_RATE, &v), -ERANGE);
	assert_int_equal(units_parse_rate("11khz", MIN_RATE, MAX_RATE, &v), -ERANGE);
	assert_int_equal(units_parse_rate(NULL, MIN_RATE, MAX_RATE, &v), -EINVAL);
}

/* --stops of perch record and schedule add: "all" (0) or 1 to the maximum. */
static void test_stops(void **state)
{
	static const char *const bad[] = {
		"0", "-1", "+1", "01", " 1", "1 ", "1.5", "0x10", "1e2", "ALL", "al", "alll",
		"", "4097", "99999999999999999999",
	};
	long v = -5;

	(void)state;
	assert_int_equal(units_parse_stops("all", 4096, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(units_parse_stops("1", 4096, &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(units_parse_stops("4096", 4096, &v), 0);
	assert_int_equal(v, 4096);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (units_parse_stops(bad[i], 4096, &v) != -EINVAL)
			fail_msg("accepted \"%s\"", bad[i]);
	assert_int_equal(units_parse_stops(NULL, 4096, &v), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_duration_documented),
		cmocka_unit_test(test_duration_refused),
		cmocka_unit_test(test_rate),
		cmocka_unit_test(test_stops),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
