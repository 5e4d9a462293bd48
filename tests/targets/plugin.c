/*
 * plugin: the shared library dlopener loads at run time (libperchplugin.so).
 * A profiler that read the maps once, or cached unwind tables by address,
 * cannot name plugin_hot() or unwind through it after the load.
 */

/* Exported: dlopener finds it with dlsym. */
unsigned long plugin_hot(unsigned long seed);

/* About 10 µs of integer hashing per call, like a burner unit. */
__attribute__((noinline, noclone))
unsigned long plugin_hot(unsigned long seed)
{
	unsigned long x = seed | 1;

	for (int i = 0; i < 8192; i++) {
		x ^= x >> 31;
		x *= 0x94d049bb133111ebul;
		__asm__ volatile("" : "+r"(x));
	}
	return x;
}
