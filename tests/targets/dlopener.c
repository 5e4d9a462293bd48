/*
 * dlopener: a worker thread that loads a shared library half-way through
 * its life, for testing that a profiler notices a dlopen (new mappings, new
 * unwind tables, new symbols).  The thread spins in before_load() for M ms,
 * then dlopens the plugin and spins calling its plugin_hot() until quit.
 */
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/prctl.h>

#include "target_util.h"

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
	TARGET_SPIN_MS(ms, !atomic_load_explicit(&stop, memory_order_relaxed));
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

int main(int argc, char **argv)
{
	static const char usage[] = "usage: dlopener --plugin PATH [--ms M]";
	const struct target_option options[] = {
		{ "plugin", .path = &plugin_path },
		{ "ms", .long_value = &load_ms, .min = 0, .max = LONG_MAX },
		{ NULL },
	};
	pthread_t worker;

	/* A test runner that crashes must not leave us spinning. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	target_options(argc, argv, options, usage);
	if (plugin_path == NULL)
		target_usage(usage);

	pthread_barrier_init(&started, NULL, 2);
	worker = target_thread("dlopener", worker_main, NULL);
	pthread_barrier_wait(&started);
	target_ready();

	target_wait_for_quit();
	atomic_store(&stop, true);
	pthread_join(worker, NULL);
	printf("loaded=%d\ncalls=%lu\n", atomic_load(&loaded) ? 1 : 0, calls);
	return 0;
}
