/*
 * Code the symbolizer tests look up in their own binary.  symbolizer.cmake
 * builds this file with -O2 -g whatever the build type, so the inlining
 * and the line table below do not depend on it.
 *
 * Each function calls fixture_record, which keeps its return address and
 * the line of the call, so a test knows an address inside the caller and
 * the line it must symbolize to.
 */
#include <stdint.h>

uintptr_t fixture_ra;
int fixture_ra_line;
int fixture_call_line;
extern const int fixture_leaf_first_line, fixture_leaf_last_line;

void fixture_record(int line);
int fixture_leaf(int x);
int fixture_outer(int x);
int fixture_mangled(int x) __asm__("_ZN5perch7mangledEi");

/* noipa: a real call, not inlined, cloned or assumed side-effect free. */
__attribute__((noipa)) void fixture_record(int line)
{
	fixture_ra = (uintptr_t)__builtin_return_address(0);
	fixture_ra_line = line;
}

const int fixture_leaf_first_line = __LINE__;
__attribute__((noipa)) int fixture_leaf(int x)
{
	fixture_record(__LINE__);
	return x * 7 + 1;
}
const int fixture_leaf_last_line = __LINE__;

static inline __attribute__((always_inline)) int inlined_step(int x)
{
	fixture_record(__LINE__);
	return x * 3;
}

__attribute__((noipa)) int fixture_outer(int x)
{
	int r = inlined_step(x); fixture_call_line = __LINE__;

	return r + 1;
}

/* A C function under a C++ symbol name: perch::mangled(int). */
__attribute__((noipa)) int fixture_mangled(int x)
{
	fixture_record(__LINE__);
	return x + 2;
}
