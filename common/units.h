/*
 * Parsing the numbers users type: durations ("30", "30s", "500ms", "5m",
 * "1h", "2d", "1h30m") and rates ("99", "99hz", "1khz").  Strict: the whole
 * string must parse, no negative, NaN or infinite values.
 */
#ifndef PERCH_UNITS_H
#define PERCH_UNITS_H

/* Seconds; 0 only for "0".  Returns 0 or -EINVAL. */
int units_parse_duration(const char *s, double *seconds);

/* Hertz, within [min, max].  Returns 0, -EINVAL or -ERANGE. */
int units_parse_rate(const char *s, double min, double max, double *hz);

#endif
