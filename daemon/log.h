/*
 * log: the daemon's messages — to stderr in the foreground, to syslog
 * (daemon facility, tag "perchd") once detached.
 */
#ifndef PERCH_LOG_H
#define PERCH_LOG_H

#include <stdbool.h>

void log_init(bool to_syslog);
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
