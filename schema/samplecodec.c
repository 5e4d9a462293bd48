/*
 * samplecodec: one thread's consecutive samples packed into a blob.  The
 * format is described in schema/README.md; the decoder trusts nothing in it.
 */
#include "samplecodec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

/* First byte of every non-empty chunk: lets the format change per chunk. */
#define CODEC_FORMAT 1

/*
 * States by code; the code rides in the low STATE_BITS of the stack varint.
 * Codes are never renumbered: a new state takes the next free code (W, 10,
 * came with schema version 2, whose files an older perch refuses).
 */
static const char states[] = "RSDTtZXIP?W";
#define NSTATES (sizeof states - 1)
#define STATE_BITS 4
#define STATE_MASK ((1u << STATE_BITS) - 1)
#define STATE_UNKNOWN 9
_Static_assert(NSTATES <= STATE_MASK + 1, "state codes fit in STATE_BITS");

/* A 64-bit varint takes at most 10 bytes; a stack delta with state 37 bits. */
#define VARINT_MAX 10
#define SAMPLE_MAX (VARINT_MAX + 6)

static unsigned state_code(char c)
{
	const char *p = c ? strchr(states, c) : NULL;

	return p ? (unsigned)(p - states) : STATE_UNKNOWN;
}

static uint64_t zigzag(int64_t d)
{
	return d < 0 ? ((uint64_t)-(d + 1) << 1) | 1 : (uint64_t)d << 1;
}

static int64_t unzigzag(uint64_t z)
{
	return z & 1 ? -(int64_t)(z >> 1) - 1 : (int64_t)(z >> 1);
}

static size_t put_varint(unsigned char *p, uint64_t v)
{
	size_t n = 0;

	while (v >= 0x80) {
		p[n++] = (unsigned char)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (unsigned char)v;
	return n;
}

/*
 * Reads one varint from p[0..len).  Returns the bytes it took, or 0 when it
 * is truncated, longer than 64 bits, or not in its shortest form (the
 * encoder never writes those, so they can only be damage).
 */
static size_t get_varint(const unsigned char *p, size_t len, uint64_t *v)
{
	uint64_t r = 0;

	for (size_t i = 0; i < len && i < VARINT_MAX; i++) {
		if (i == VARINT_MAX - 1 && p[i] > 1)
			return 0;
		r |= (uint64_t)(p[i] & 0x7f) << (7 * i);
		if (!(p[i] & 0x80)) {
			if (p[i] == 0 && i > 0)
				return 0;
			*v = r;
			return i + 1;
		}
	}
	return 0;
}

void codec_append(struct codec_buf *b, const struct codec_sample *s)
{
	if (b->cap - b->len < 1 + SAMPLE_MAX) {
		b->cap = b->cap ? 2 * b->cap : 256;
		b->data = xrealloc(b->data, b->cap);
	}
	if (b->count == 0) {
		b->data[b->len++] = CODEC_FORMAT;
		b->first_ns = b->last_ns = s->time_ns;
		b->last_stack = 0;
	}

	/*
	 * Deltas are taken from the previous sample's decoded time, not its
	 * exact one, so that rounding to microseconds never accumulates.
	 */
	uint64_t t = s->time_ns > b->last_ns ? s->time_ns : b->last_ns;
	uint64_t dt_us = (t - b->last_ns) / 1000;
	int64_t dstack = (int64_t)s->stack_id - (int64_t)b->last_stack;

	b->last_ns += dt_us * 1000;
	b->last_stack = s->stack_id;
	b->len += put_varint(b->data + b->len, dt_us);
	b->len += put_varint(b->data + b->len,
			     zigzag(dstack) << STATE_BITS | state_code(s->state));
	b->count++;
}

void codec_reset(struct codec_buf *b)
{
	b->len = 0;
	b->first_ns = b->last_ns = 0;
	b->last_stack = 0;
	b->count = 0;
}

void codec_free(struct codec_buf *b)
{
	free(b->data);
	*b = (struct codec_buf){ 0 };
}

/* One walk over a chunk; with fn == NULL it only validates and counts. */
static long decode_pass(const unsigned char *data, size_t len, uint64_t first_ns,
			int (*fn)(void *arg, const struct codec_sample *s), void *arg)
{
	struct codec_sample s = { .time_ns = first_ns };
	long n = 0;

	if (len == 0)
		return 0;
	if (data[0] != CODEC_FORMAT)
		return -EINVAL;
	for (size_t i = 1; i < len; n++) {
		uint64_t dt_us, v;
		size_t k;

		if ((k = get_varint(data + i, len - i, &dt_us)) == 0)
			return -EINVAL;
		i += k;
		if ((k = get_varint(data + i, len - i, &v)) == 0)
			return -EINVAL;
		i += k;

		/* The first sample is at first_ns itself: one encoding per chunk. */
		if ((n == 0 && dt_us != 0) || dt_us > (UINT64_MAX - s.time_ns) / 1000)
			return -EINVAL;
		s.time_ns += dt_us * 1000;
		/* |delta| < 2^60 here, so the sum cannot overflow. */
		int64_t stack = (int64_t)s.stack_id + unzigzag(v >> STATE_BITS);

		if (stack < 0 || stack > UINT32_MAX)
			return -EINVAL;
		if ((v & STATE_MASK) >= NSTATES)
			return -EINVAL;
		s.stack_id = (uint32_t)stack;
		s.state = states[v & STATE_MASK];
		if (fn && fn(arg, &s))
			return n + 1;
	}
	return n;
}

long codec_decode(const unsigned char *data, size_t len, uint64_t first_ns,
		  int (*fn)(void *arg, const struct codec_sample *s), void *arg)
{
	/* Validate everything first so that fn never sees half a bad chunk. */
	long n = decode_pass(data, len, first_ns, NULL, NULL);

	if (n < 0 || fn == NULL)
		return n;
	return decode_pass(data, len, first_ns, fn, arg);
}
