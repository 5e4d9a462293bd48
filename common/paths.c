#include "paths.h"

#include <errno.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "xalloc.h"

static const char *env(const char *name)
{
	const char *v = getenv(name);

	return v != NULL && v[0] != '\0' ? v : NULL;
}

static const char *home(void)
{
	const char *h = env("HOME");
	struct passwd *pw;

	if (h != NULL)
		return h;
	pw = getpwuid(getuid());
	return pw != NULL && pw->pw_dir != NULL ? pw->pw_dir : "/";
}

char *paths_default_socket(void)
{
	const char *v = env("PERCH_SOCKET");

	if (v != NULL)
		return xstrdup(v);
	if (getuid() == 0)
		return xstrdup("/run/perch/perch.sock");
	if ((v = env("XDG_RUNTIME_DIR")) != NULL)
		return xasprintf("%s/perch.sock", v);
	return xasprintf("/tmp/perch-%u/perch.sock", (unsigned int)getuid());
}

char *paths_default_db(void)
{
	const char *v = env("PERCH_DB");

	if (v != NULL)
		return xstrdup(v);
	if (getuid() == 0)
		return xstrdup("/var/lib/perch/perch.db");
	if ((v = env("XDG_DATA_HOME")) != NULL)
		return xasprintf("%s/perch/perch.db", v);
	return xasprintf("%s/.local/share/perch/perch.db", home());
}

int paths_make_parent(const char *path)
{
	char *dir = xstrdup(path);
	int rc = 0;

	for (char *p = dir + 1; *p != '\0'; p++) {
		mode_t mode;

		/* Each '/' ends a directory; the last component is the file. */
		if (*p != '/')
			continue;
		*p = '\0';
		mode = strcmp(dir, "/run/perch") == 0 ||
		       strcmp(dir, "/var/lib/perch") == 0 ? 0755 : 0700;
		if (mkdir(dir, mode) < 0 && errno != EEXIST) {
			rc = -errno;
			break;
		}
		*p = '/';
	}
	free(dir);
	return rc;
}
