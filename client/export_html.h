/*
 * export_html: a session as one self-contained HTML page — the session
 * header, an interactive call tree, a flame graph and the flat table of
 * functions.  The page loads nothing (no network, no file beside it): its
 * style sheet, script and data are inside it, so it can be mailed, attached
 * to a ticket or opened offline.
 */
#ifndef PERCH_EXPORT_HTML_H
#define PERCH_EXPORT_HTML_H

#include <stdio.h>

#include "profile.h"

/*
 * Writes the report of the samples p holds (under its filters) to out, which
 * stays open.  Library frames are the ones profile_mark_libraries marked:
 * call it first.  The page folds runs of them into "[N frames hidden]"
 * groups that the reader can unfold.  Returns 0, or -EIO with a one-line
 * *cause (caller frees) when out could not be written.
 */
int export_html(FILE *out, const struct profile *p, char **cause);

#endif
