/*
 * Where perch keeps its socket and database unless told otherwise.  The
 * daemon and the client compute the same defaults:
 *   root:   /run/perch/perch.sock          /var/lib/perch/perch.db
 *   others: $XDG_RUNTIME_DIR/perch.sock    $XDG_DATA_HOME/perch/perch.db
 *           (else /tmp/perch-UID/perch.sock, ~/.local/share/perch/perch.db)
 * PERCH_SOCKET and PERCH_DB override both.  Results are malloc'ed.
 */
#ifndef PERCH_PATHS_H
#define PERCH_PATHS_H

char *paths_default_socket(void);
char *paths_default_db(void);

/*
 * Creates the missing directories above path (not path itself) with mode
 * 0700 (0755 for /run/perch and /var/lib/perch, which only hold files that
 * are themselves private).  Returns 0 or a negative errno.
 */
int paths_make_parent(const char *path);

#endif
