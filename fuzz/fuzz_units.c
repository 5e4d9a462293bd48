/*
 * The durations, rates and stop limits users type: perch record -d/-r/
 * --stops, perch schedule add --every/--for/--rate/--keep-for/--stops, and
 * --from/--to of the reports.  The
 * input is one command-line argument (it ends at the first NUL).  The
 * parsers promise to be strict: what they accept is finite, in range, holds
 * no blank (a shell would have split it anyway), and is written only with
 * decimal digits, points between digits and the letters of the units: no
 * hex, exponent, sign, "inf" or "nan".
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "fuzz.h"
#include "units.h"

/* The client's bounds for rates (PROTO_MIN_RATE, PROTO_MAX_RATE). */
#define MIN_RATE 1.0
#define MAX_RATE 10000.0

static bool has_space(const char *s)
{
	for (; *s != '\0'; s++)
		if (isspace((unsigned char)*s))
			return true;
	return false;
}

/* Digits, unit letters from allowed, and each point between two digits. */
static bool plain(const char *s, const char *allowed)
{
	if (!isdigit((unsigned char)s[0]))
		return false;
	for (size_t i = 0; s[i] != '\0'; i++) {
		if (s[i] == '.' && !(isdigit((unsigned char)s[i - 1]) &&
				     isdigit((unsigned char)s[i + 1])))
			return false;
		if (s[i] != '.' && !isdigit((unsigned char)s[i]) &&
		    strchr(allowed, s[i]) == NULL)
			return false;
	}
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	double v = -1;
	long stops = -1;
	int rc;

	memcpy(s, data, size);
	s[size] = '\0';
	if (units_parse_duration(s, &v) == 0) {
		FUZZ_CHECK(s[0] != '\0' && !has_space(s));
		FUZZ_CHECK(plain(s, "usmindh"));
		FUZZ_CHECK(isfinite(v) && v >= 0 && v <= 1e9);
	}
	rc = units_parse_rate(s, MIN_RATE, MAX_RATE, &v);
	FUZZ_CHECK(rc == 0 || rc == -EINVAL || rc == -ERANGE);
	if (rc == 0) {
		FUZZ_CHECK(!has_space(s));
		FUZZ_CHECK(plain(s, "hzkHZK"));
		FUZZ_CHECK(v >= MIN_RATE && v <= MAX_RATE);
	}
	rc = units_parse_stops(s, 4096, &stops);
	FUZZ_CHECK(rc == 0 || rc == -EINVAL);
	if (rc == 0)
		FUZZ_CHECK(strcmp(s, "all") == 0 ? stops == 0 :
			   plain(s, "") && s[0] != '0' && stops >= 1 && stops <= 4096);
	free(s);
	return 0;
}
