/*
 * What the fuzz targets share.  A target fails (and libFuzzer keeps the
 * input) on a sanitizer report, a leak, or a broken promise of the parser
 * under test, checked with FUZZ_CHECK.
 */
#ifndef PERCH_FUZZ_H
#define PERCH_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define FUZZ_CHECK(cond)                                                   \
	do {                                                               \
		if (!(cond)) {                                             \
			fprintf(stderr, "%s:%d: check failed: %s\n",       \
				__FILE__, __LINE__, #cond);                \
			abort();                                           \
		}                                                          \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
