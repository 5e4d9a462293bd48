/*
 * samplecodec: the packed form of one thread's consecutive samples, as stored
 * in sample_chunks.data (format: schema/README.md).
 *
 * Samples are (time, stack id, state).  Times are deltas from the previous
 * sample in microseconds, stack ids are deltas too (zigzag), and the state
 * rides in the low bits, all as LEB128 varints: a thread that stays in one
 * place at 99 Hz costs about 3 bytes a sample.
 */
#ifndef PERCH_SAMPLECODEC_H
#define PERCH_SAMPLECODEC_H

#include <stddef.h>
#include <stdint.h>

struct codec_sample {
	uint64_t time_ns;
	uint32_t stack_id;
	char state;		/* R S D T t Z X I P, anything else stored as '?' */
};

/*
 * A growing encoded chunk; all zeros is an empty one.  data[0..len) is the
 * blob to store, with first_ns (the first sample's exact time), last_ns and
 * count.  Times are kept to the microsecond: last_ns is the last sample's
 * time as decoded, less than 1 us before the time appended.
 */
struct codec_buf {
	unsigned char *data;
	size_t len, cap;
	uint64_t first_ns, last_ns;
	uint32_t last_stack;
	size_t count;
};

/* Appends one sample (times must not go backwards: clamped). */
void codec_append(struct codec_buf *b, const struct codec_sample *s);

/* Empties b for the next chunk, keeping its memory. */
void codec_reset(struct codec_buf *b);

/* Frees b's memory and empties it. */
void codec_free(struct codec_buf *b);

/*
 * Decodes a chunk: calls fn for each sample in order.  Returns the number of
 * samples, or -EINVAL when data is malformed (nothing is trusted: the blob
 * may come from a corrupt file).  The whole chunk is checked before fn sees
 * its first sample, so fn never sees part of a bad chunk.  fn returning
 * non-zero stops early: the count then includes the sample it stopped at.
 * fn may be NULL to check and count only.
 */
long codec_decode(const unsigned char *data, size_t len, uint64_t first_ns,
		  int (*fn)(void *arg, const struct codec_sample *s), void *arg);

#endif
