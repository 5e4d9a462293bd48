/*
 * Parsing the numbers users type: durations ("30", "30s", "1.5s", "500ms",
 * "5m", "1h", "2d", "1h30m") and rates ("99", "99hz", "1khz").  Strict: the
 * whole string must parse; a number is decimal digits with an optional
 * fraction ("1.5", not ".5", "5.", "1e3", "0x1e", "inf" or "nan"); duration
 * units are lower case (us, ms, s, m or min, h, d), rate units any case
 * (Hz, kHz); a bare number is seconds or hertz, and only alone.
 */
#ifndef PERCH_UNITS_H
#define PERCH_UNITS_H

/* Seconds, at most 1e9 (31 years).  Returns 0 or -EINVAL. */
int units_parse_duration(const char *s, double *seconds);

/* Hertz, within [min, max].  Returns 0, -EINVAL or -ERANGE. */
int units_parse_rate(const char *s, double min, double max, double *hz);

/*
 * A stop limit (--stops): "all" gives 0, a whole number from 1 to max gives
 * itself.  Returns 0 or -EINVAL.
 */
int units_parse_stops(const char *s, long max, long *stops);

#endif
