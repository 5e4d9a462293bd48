/*
 * dlopener: a worker thread that loads a shared library half-way through
 * its life, for testing that a profiler notices a dlopen (new mappings, new
 * unwind tables, new symbols).  The thread spins in before_load() for M ms,
 * then dlopens the plugin and spins calling its plugin_hot() until quit.
 */
#include <dlfcn.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

typedef unsigned long (*hot_fn)(unsigned long);

static atomic_bool stop;
static atomic_bool loaded;
static unsigned long calls;
static volatile unsigned long sink;
static const char *plugin_path;
static long load_ms = 300;
static pthread_barrier_t started;

static __attribute__((noinline, noclone)) void before_load(long ms)
{
	struct timespec start, now;
	unsigned long x = 1;

	clock_gettime(CLOCK_MONOTONIC, &start);
	do {
		for (int i = 0; i < 1000; i++) {
			x = x * 6364136223846793005ul + 1442695040888963407ul;
			__asm__ volatile("" : "+r"(x));
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
	} while (!atomic_load_explicit(&stop, memory_order_relaxed) &&
		 (now.tv_sec - start.tv_sec) * 1000 +
		 (now.tv_nsec - start.tv_nsec) / 1000000 < ms);
}

/* dlopener's own frame under plugin_hot: the test expects it there. */
static __attribute__((noinline, noclone)) void call_plugin(hot_fn hot)
{
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		sink = hot(sink);
		calls++;
	}
}

/* Returns the plugin's plugin_hot, or NULL when it cannot be loaded. */
static __attribute__((noinline, noclone)) hot_fn load_plugin(void)
{
	void *lib = dlopen(plugin_path, RTLD_NOW | RTLD_LOCAL);
	hot_fn hot;

	if (lib == NULL) {
		fprintf(stderr, "dlopener: %s\n", dlerror());
		return NULL;
	}
	hot = (hot_fn)dlsym(lib, "plugin_hot");
	if (hot == NULL)
		fprintf(stderr, "dlopener: %s\n", dlerror());
	return hot;
}

static void *worker_main(void *arg)
{
	hot_fn hot;

	(void)arg;
	pthread_setname_np(pthread_self(), "dlopener-work");
	pthread_barrier_wait(&started);
	before_load(load_ms);
	hot = load_plugin();
	if (hot != NULL) {
		atomic_store(&loaded, true);
		call_plugin(hot);
	}
	return NULL;
}

static void wait_for_quit(void)
{
	char line[64];

	while (fgets(line, sizeof line, stdin) != NULL)
		if (strcmp(line, "q\n") == 0 || strcmp(line, "q") == 0)
			return;
}

static void usage(void)
{
	fprintf(stderr, "usage: dlopener --plugin PATH [--ms M]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "plugin", required_argument, NULL, 'p' },
		{ "ms", required_argument, NULL, 'm' },
		{ NULL, 0, NULL, 0 },
	};
	pthread_t worker;
	char *end;
	int opt;

	/* A test runner that crashes must not leave us spinning. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (opt) {
		case 'p':
			plugin_path = optarg;
			break;
		case 'm':
			load_ms = strtol(optarg, &end, 10);
			if (*end != '\0' || load_ms < 0)
				usage();
			break;
		default:
			usage();
		}
	}
	if (optind != argc || plugin_path == NULL)
		usage();

	pthread_barrier_init(&started, NULL, 2);
	if (pthread_create(&worker, NULL, worker_main, NULL) != 0) {
		fprintf(stderr, "dlopener: pthread_create failed\n");
		return 1;
	}
	pthread_barrier_wait(&started);
	printf("ready\n");
	fflush(stdout);

	wait_for_quit();
	atomic_store(&stop, true);
	pthread_join(worker, NULL);
	printf("loaded=%d\ncalls=%lu\n", atomic_load(&loaded) ? 1 : 0, calls);
	return 0;
}
