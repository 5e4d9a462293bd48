/*
 * db: opening perch's SQLite database, for the daemon (read-write) and the
 * client (read-only, while the daemon writes).
 *
 * The schema (schema/schema.sql) is compiled in.  The file carries
 * PRAGMA application_id = PERCH_APPLICATION_ID and PRAGMA user_version =
 * schema version.  Opening read-write creates a missing file (mode 0600)
 * and migrates an older schema forward in one transaction.  A file from a
 * newer perch, a file that is not a perch database, and a corrupt file are
 * refused with a clear message and never modified.  Connections use WAL,
 * foreign keys, and a busy timeout so that readers and the writer never
 * report "database is locked" to a user.
 */
#ifndef PERCH_DB_H
#define PERCH_DB_H

#include <stddef.h>
#include <sqlite3.h>

#define PERCH_SCHEMA_VERSION 3
#define PERCH_APPLICATION_ID 0x70726368	/* "prch" */

enum db_mode {
	DB_READ_WRITE,		/* create if missing, migrate */
	DB_READ_ONLY,		/* must exist and be current or older */
};

/*
 * Opens path.  Returns 0 and a connection in *out (close with sqlite3_close),
 * or a negative errno with a one-line message in *cause (caller frees):
 * -ENOENT no such file (read-only), -EPROTO newer schema, -EINVAL not a perch
 * database, -EIO corrupt or unreadable, -EACCES no permission; other errors
 * of open(2) and SQLite as they come (-EISDIR, -EROFS, -ENOSPC, -EBUSY...).
 */
int db_open(const char *path, enum db_mode mode, sqlite3 **out, char **cause);

/*
 * The schema version of an open database (PRAGMA user_version): a reader
 * may have opened an older file as it is, and must not ask it for columns
 * a later version added.  -1 when it cannot be read.
 */
int db_schema_version(sqlite3 *db);

/*
 * Opens a copy of the size bytes at data, the contents of a database file,
 * read-only and held in memory, as db_open opens a file read-only: the same
 * checks and the same errors, with name in the messages.  The connection
 * owns its copy; the caller keeps data.
 */
int db_open_image(const void *data, size_t size, const char *name,
		  sqlite3 **out, char **cause);

#endif
