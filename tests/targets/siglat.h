/*
 * The page siglat (siglat.c) shares with its sender, bench_seize_mode, through
 * a file both map (--shm PATH).  One signal is in flight at a time: the
 * sender writes seq and send_ns, then sends SIGUSR1; the handler publishes
 * latency_ns and cpu, then ack = seq, and wakes the futex on ack.
 */
#ifndef PERCH_TEST_SIGLAT_H
#define PERCH_TEST_SIGLAT_H

#include <stdatomic.h>
#include <stdint.h>

struct siglat_page {
	_Atomic uint64_t send_ns;	/* CLOCK_MONOTONIC just before sigqueue */
	_Atomic uint64_t latency_ns;	/* of signal ack: handler entry - send_ns */
	_Atomic uint32_t seq;		/* the signal in flight */
	_Atomic uint32_t ack;		/* futex word: the last signal handled */
	_Atomic int32_t cpu;		/* where the handler of signal ack ran */
};

#endif
