#include "units.h"

#include <errno.h>
#include <stdbool.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool digit(char c)
{
	return c >= '0' && c <= '9';
}

/*
 * A decimal number as users write one: digits, optionally a point and more
 * digits.  Not strtod, which also takes "0x1e" (hex), "1e3", "inf", "nan",
 * a leading point or blank, and the locale's decimal comma.
 */
static int decimal(const char *s, double *value, const char **end)
{
	double v = 0, num = 0, den = 1;
	const char *p = s;

	if (!digit(*p))
		return -EINVAL;
	for (; digit(*p); p++)
		v = v * 10 + (*p - '0');
	if (*p == '.') {
		if (!digit(*++p))
			return -EINVAL;
		/* Up to 15 digits num and den stay exact; no option needs more. */
		for (int n = 0; digit(*p); p++, n++)
			if (n < 15) {
				num = num * 10 + (*p - '0');
				den *= 10;
			}
	}
	*value = v + num / den;
	*end = p;
	return isfinite(*value) ? 0 : -EINVAL;
}

/* A number and a unit suffix of letters; *rest points after the suffix. */
static int number_unit(const char *s, double *value, const char **unit,
		       size_t *unit_len, const char **rest)
{
	const char *end, *u;

	if (decimal(s, value, &end) < 0)
		return -EINVAL;
	for (u = end; (*u >= 'a' && *u <= 'z') || (*u >= 'A' && *u <= 'Z'); u++)
		;
	*unit = end;
	*unit_len = (size_t)(u - end);
	*rest = u;
	return 0;
}

static int duration_scale(const char *unit, size_t len, double *scale)
{
	static const struct {
		const char *name;
		double seconds;
	} units[] = {
		{ "", 1 }, { "s", 1 }, { "ms", 1e-3 }, { "us", 1e-6 },
		{ "m", 60 }, { "min", 60 }, { "h", 3600 }, { "d", 86400 },
	};

	/* Lower case only: "5M" could as well mean months, or mega. */
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
		if (strlen(units[i].name) == len &&
		    strncmp(units[i].name, unit, len) == 0) {
			*scale = units[i].seconds;
			return 0;
		}
	}
	return -EINVAL;
}

int units_parse_duration(const char *s, double *seconds)
{
	double total = 0;
	bool first = true;

	if (s == NULL || *s == '\0')
		return -EINVAL;
	while (*s != '\0') {
		const char *unit, *rest;
		double v, scale;
		size_t len;

		if (number_unit(s, &v, &unit, &len, &rest) < 0 ||
		    duration_scale(unit, len, &scale) < 0 ||
		    (len == 0 && !(first && *rest == '\0')))
			return -EINVAL;
		total += v * scale;
		first = false;
		s = rest;
	}
	if (!isfinite(total) || total > 1e9)
		return -EINVAL;
	*seconds = total;
	return 0;
}

int units_parse_stops(const char *s, long max, long *stops)
{
	char *end;
	long v;

	if (s == NULL)
		return -EINVAL;
	if (strcmp(s, "all") == 0) {
		*stops = 0;
		return 0;
	}
	if (*s < '1' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < 1 || v > max)
		return -EINVAL;
	*stops = v;
	return 0;
}

int units_parse_rate(const char *s, double min, double max, double *hz)
{
	const char *unit, *rest;
	double v, scale;
	size_t len;

	if (s == NULL || number_unit(s, &v, &unit, &len, &rest) < 0 || *rest != '\0')
		return -EINVAL;
	if (len == 0 || (len == 2 && strncasecmp(unit, "hz", 2) == 0))
		scale = 1;
	else if (len == 3 && strncasecmp(unit, "khz", 3) == 0)
		scale = 1000;
	else
		return -EINVAL;
	v *= scale;
	if (v < min || v > max)
		return -ERANGE;
	*hz = v;
	return 0;
}
