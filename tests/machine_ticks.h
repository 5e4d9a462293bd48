/*
 * The whole machine's clock ticks from /proc/stat, for tests that must tell
 * the machine's own load or stalls from perch's.
 */
#ifndef PERCH_TEST_MACHINE_TICKS_H
#define PERCH_TEST_MACHINE_TICKS_H

#include <stdbool.h>
#include <stdio.h>

/*
 * Busy clock ticks of all CPUs so far, or with steal only the ticks the
 * hypervisor took from them (steal time: a virtual machine's CPU stalled
 * while its host ran something else); 0 when unreadable or not reported.
 */
static inline unsigned long long machine_ticks(bool steal)
{
	unsigned long long v[8] = { 0 };
	FILE *f = fopen("/proc/stat", "r");
	int n;

	if (f == NULL)
		return 0;
	n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
		   &v[3], &v[4], &v[5], &v[6], &v[7]);
	fclose(f);
	if (n != 8)
		return 0;
	/* user nice system [idle iowait] irq softirq steal */
	return steal ? v[7] : v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
}

#endif
