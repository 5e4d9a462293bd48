/*
 * Unit tests for the sample chunk codec: round trips of awkward streams,
 * malformed blobs of every kind a damaged file could hold, and the size of a
 * realistic stream.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "samplecodec.h"
#include "xalloc.h"

struct collected {
	struct codec_sample *s;
	size_t n, cap;
	size_t stop_at;		/* stop after this many, 0: never */
};

static int collect(void *arg, const struct codec_sample *s)
{
	struct collected *c = arg;

	if (c->n == c->cap) {
		c->cap = c->cap ? 2 * c->cap : 64;
		c->s = xreallocarray(c->s, c->cap, sizeof *c->s);
	}
	c->s[c->n++] = *s;
	return c->stop_at && c->n == c->stop_at;
}

static long decode_all(const struct codec_buf *b, struct collected *c)
{
	c->n = 0;
	return codec_decode(b->data, b->len, b->first_ns, collect, c);
}

/*
 * Encodes in[0..n), decodes, and checks every sample against what the
 * format promises: times clamped to never go backwards and kept to the
 * microsecond without drift, stack ids exact, unknown states as '?'.
 */
static void round_trip(const struct codec_sample *in, size_t n)
{
	struct codec_buf b = { 0 };
	struct collected c = { 0 };
	uint64_t prev = 0;

	for (size_t i = 0; i < n; i++)
		codec_append(&b, &in[i]);
	assert_int_equal(b.count, n);
	assert_int_equal(decode_all(&b, &c), n);
	assert_int_equal(c.n, n);
	for (size_t i = 0; i < n; i++) {
		uint64_t want = i == 0 || in[i].time_ns > prev ? in[i].time_ns : prev;
		const char *known = strchr("RSDTtZXIPW", in[i].state);

		assert_true(c.s[i].time_ns <= want);
		assert_true(want - c.s[i].time_ns < 1000);
		assert_true(i == 0 || c.s[i].time_ns >= c.s[i - 1].time_ns);
		assert_int_equal(c.s[i].stack_id, in[i].stack_id);
		assert_int_equal(c.s[i].state,
				 in[i].state && known ? in[i].state : '?');
		prev = c.s[i].time_ns;
	}
	if (n > 0) {
		assert_int_equal(b.first_ns, in[0].time_ns);
		assert_int_equal(c.s[0].time_ns, in[0].time_ns);
		assert_int_equal(b.last_ns, c.s[n - 1].time_ns);
	}
	codec_free(&b);
	free(c.s);
}

static void test_one_sample(void **state)
{
	const struct codec_sample s = { 1700000000123456789ull, 42, 'S' };
	struct codec_buf b = { 0 };

	(void)state;
	round_trip(&s, 1);
	codec_append(&b, &s);
	/* Format byte, zero time delta, zigzag(42) << 4 | code of 'S' = 1. */
	assert_int_equal(b.len, 4);
	assert_int_equal(b.data[0], 1);
	assert_int_equal(b.data[1], 0);
	codec_free(&b);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
}

static void test_time_gaps(void **state)
{
	const struct codec_sample s[] = {
		{ 0, 1, 'R' },
		{ 1, 1, 'R' },			/* 1 ns: rounds down to the same us */
		{ 999, 1, 'R' },
		{ 1000, 1, 'R' },
		{ 1000 + 3600000000000ull, 1, 'R' },	/* an hour */
		{ 1000 + 3600000000000ull + 315576000000000000ull, 1, 'R' },
		{ UINT64_MAX - 1, 1, 'R' },
		{ UINT64_MAX, 1, 'R' },
	};

	(void)state;
	round_trip(s, sizeof s / sizeof s[0]);
}

static void test_backwards_times(void **state)
{
	const struct codec_sample s[] = {
		{ 5000000, 1, 'R' }, { 4000000, 2, 'S' }, { 6000500, 3, 'R' },
		{ 6000400, 4, 'R' }, { 0, 5, 'D' }, { 7000000, 6, 'R' },
	};
	struct codec_buf b = { 0 };
	struct collected c = { 0 };

	(void)state;
	round_trip(s, sizeof s / sizeof s[0]);
	for (size_t i = 0; i < sizeof s / sizeof s[0]; i++)
		codec_append(&b, &s[i]);
	assert_int_equal(decode_all(&b, &c), 6);
	assert_int_equal(c.s[1].time_ns, 5000000);
	assert_int_equal(c.s[3].time_ns, 6000000);
	assert_int_equal(c.s[4].time_ns, 6000000);
	assert_int_equal(c.s[5].time_ns, 7000000);
	codec_free(&b);
	free(c.s);
}

static void test_stack_jumps(void **state)
{
	const uint32_t ids[] = { 0, UINT32_MAX, 0, 1, UINT32_MAX - 1, 7, 7, 8, 6,
				 0x80000000u, 0x7fffffffu, 0, UINT32_MAX };
	struct codec_sample s[sizeof ids / sizeof ids[0]];

	(void)state;
	for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
		s[i] = (struct codec_sample){ 1000000 * i, ids[i], 'R' };
	round_trip(s, sizeof ids / sizeof ids[0]);
}

static void test_all_states(void **state)
{
	const char letters[] = "RSDTtZXIP?WKxrs!\x7f";
	struct codec_sample s[sizeof letters];

	(void)state;
	/* Every letter, the terminating NUL included, which must become '?'. */
	for (size_t i = 0; i < sizeof letters; i++)
		s[i] = (struct codec_sample){ 10000 * i, (uint32_t)i, letters[i] };
	round_trip(s, sizeof letters);
}

/*
 * The codes are part of the file format: files written before W existed
 * must read the same forever, so no letter may move (schema/README.md).
 */
static void test_state_codes_fixed(void **state)
{
	const char letters[] = "RSDTtZXIP?W";

	(void)state;
	for (size_t code = 0; code < sizeof letters - 1; code++) {
		struct codec_sample s = { 5000, 0, letters[code] };
		struct codec_buf b = { 0 };

		codec_append(&b, &s);
		/* format byte, dt_us 0, then zigzag(0) << 4 | code */
		assert_int_equal(b.len, 3);
		assert_int_equal(b.data[2], code);
		codec_free(&b);
	}
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
	/* xorshift64*: reproducible from run to run. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ull;
}

static void test_many_samples(void **state)
{
	enum { N = 100000 };
	struct codec_sample *s = xcalloc(N, sizeof *s);
	uint64_t t = 1700000000000000000ull;

	(void)state;
	for (size_t i = 0; i < N; i++) {
		/* Mostly forwards, sometimes backwards or far, any stack. */
		switch (rng() % 8) {
		case 0:
			t -= rng() % 50000000;
			break;
		case 1:
			t += rng() % 100000000000ull;
			break;
		default:
			t += rng() % 20000000;
		}
		s[i] = (struct codec_sample){ t, (uint32_t)(rng() % 3 ? rng() % 600 : rng()),
					      "RSDTtZXIP?Q"[rng() % 11] };
	}
	round_trip(s, N);
	free(s);
}

static void test_reset_and_stop(void **state)
{
	struct codec_buf b = { 0 };
	struct collected c = { 0 };
	unsigned char *mem;

	(void)state;
	for (uint32_t i = 0; i < 10; i++)
		codec_append(&b, &(struct codec_sample){ 1000000 * i, i, 'R' });
	mem = b.data;
	codec_reset(&b);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.count, 0);
	for (uint32_t i = 0; i < 10; i++)
		codec_append(&b, &(struct codec_sample){ 5000000 + 1000000 * i, 9 - i, 'S' });
	assert_ptr_equal(b.data, mem);
	assert_int_equal(b.first_ns, 5000000);
	assert_int_equal(b.last_ns, 14000000);
	assert_int_equal(b.count, 10);

	assert_int_equal(codec_decode(b.data, b.len, b.first_ns, NULL, NULL), 10);
	c.stop_at = 3;
	assert_int_equal(decode_all(&b, &c), 3);
	assert_int_equal(c.n, 3);
	assert_int_equal(c.s[2].stack_id, 7);
	assert_int_equal(codec_decode(NULL, 0, 0, collect, &c), 0);
	codec_free(&b);
	free(c.s);
}

/* Decodes a hand-made blob; a rejected one must never reach the callback. */
static long decode_raw(const unsigned char *data, size_t len, uint64_t first_ns)
{
	struct collected c = { 0 };
	long n = codec_decode(data, len, first_ns, collect, &c);

	if (n < 0)
		assert_int_equal(c.n, 0);
	free(c.s);
	return n;
}

#define DECODE(first_ns, ...) \
	decode_raw((const unsigned char[]){ __VA_ARGS__ }, \
		   sizeof((const unsigned char[]){ __VA_ARGS__ }), first_ns)

static void test_malformed(void **state)
{
	(void)state;
	/* Sanity: the shortest valid chunk, then two samples. */
	assert_int_equal(DECODE(0, 1, 0x00, 0x00), 1);
	assert_int_equal(DECODE(0, 1, 0x00, 0x00, 0x05, 0x20), 2);

	assert_int_equal(DECODE(0, 0, 0x00, 0x00), -EINVAL);	/* format 0 */
	assert_int_equal(DECODE(0, 2, 0x00, 0x00), -EINVAL);	/* format 2 */
	assert_int_equal(DECODE(0, 1, 0x00), -EINVAL);		/* half a sample */
	assert_int_equal(DECODE(0, 1, 0x00, 0x80), -EINVAL);	/* truncated varint */
	assert_int_equal(DECODE(0, 1, 0x80), -EINVAL);
	assert_int_equal(DECODE(0, 1, 0x00, 0x00, 0xff, 0xff), -EINVAL);
	/* Not in shortest form. */
	assert_int_equal(DECODE(0, 1, 0x00, 0x80, 0x00), -EINVAL);
	assert_int_equal(DECODE(0, 1, 0x80, 0x00, 0x00), -EINVAL);
	/* Eleven bytes, and ten whose last carries bits past 64. */
	assert_int_equal(DECODE(0, 1, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff,
				0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x00), -EINVAL);
	assert_int_equal(DECODE(0, 1, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff,
				0xff, 0xff, 0xff, 0xff, 0x02, 0x00), -EINVAL);
	/* The longest valid time delta overflows the clock. */
	assert_int_equal(DECODE(0, 1, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff,
				0xff, 0xff, 0xff, 0xff, 0x01, 0x00), -EINVAL);
	assert_int_equal(DECODE(UINT64_MAX - 999, 1, 0x00, 0x00, 0x01, 0x00), -EINVAL);
	assert_int_equal(DECODE(UINT64_MAX - 1000, 1, 0x00, 0x00, 0x01, 0x00), 2);
	/* The first sample must sit at first_ns. */
	assert_int_equal(DECODE(0, 1, 0x01, 0x00), -EINVAL);
	/* Stack id below 0 and above UINT32_MAX. */
	assert_int_equal(DECODE(0, 1, 0x00, 0x10), -EINVAL);
	assert_int_equal(DECODE(0, 1, 0x00, 0xe0, 0xff, 0xff, 0xff, 0xff, 0x03), 1);
	assert_int_equal(DECODE(0, 1, 0x00, 0x80, 0x80, 0x80, 0x80, 0x80, 0x04), -EINVAL);
	/* State code 10 is W (schema version 2); 11 to 15 do not exist. */
	assert_int_equal(DECODE(0, 1, 0x00, 10), 1);
	for (unsigned char code = 11; code < 16; code++)
		assert_int_equal(DECODE(0, 1, 0x00, code), -EINVAL);
	/* A good sample, then damage: nothing reaches the callback. */
	assert_int_equal(DECODE(0, 1, 0x00, 0x00, 0x05, 0x0f), -EINVAL);
}

/*
 * The format has no sample count to lie about: the count is what the bytes
 * hold, and the smallest sample takes two of them.
 */
static void test_huge_chunk(void **state)
{
	size_t len = 1 + 2 * 3000000;
	unsigned char *data = xcalloc(len, 1);
	struct collected c = { .stop_at = 5 };

	(void)state;
	data[0] = 1;
	assert_int_equal(codec_decode(data, len, 42, NULL, NULL), 3000000);
	assert_int_equal(codec_decode(data, len, 42, collect, &c), 5);
	assert_int_equal(c.s[4].time_ns, 42);
	assert_int_equal(codec_decode(data, len - 1, 42, NULL, NULL), -EINVAL);
	free(data);
	free(c.s);
}

/* Every prefix of a valid chunk decodes to fewer samples or is rejected. */
static void test_truncations(void **state)
{
	struct codec_buf b = { 0 };
	size_t boundaries = 0;

	(void)state;
	for (uint32_t i = 0; i < 200; i++)
		codec_append(&b, &(struct codec_sample){ (uint64_t)i * i * 977777,
							 (uint32_t)(rng() % 100000), 'R' });
	for (size_t len = 0; len <= b.len; len++) {
		long n = decode_raw(b.data, len, b.first_ns);

		assert_true(n == -EINVAL || (n >= 0 && n <= 200));
		boundaries += n >= 0;
	}
	/* The empty blob, the format byte alone, and one per sample. */
	assert_int_equal(boundaries, 202);
	codec_free(&b);
}

/*
 * Random bytes: the decoder must never read past len (ASan build), and what
 * it accepts must be canonical: encoding the samples again gives the blob.
 */
static void test_random_blobs(void **state)
{
	unsigned char blob[64];
	struct collected c = { 0 };
	struct codec_buf b = { 0 };
	size_t accepted = 0;

	(void)state;
	for (int round = 0; round < 200000; round++) {
		size_t len = rng() % sizeof blob;
		unsigned char *p = xmalloc(len ? len : 1);
		long n;

		for (size_t i = 0; i < len; i++)
			blob[i] = (unsigned char)(rng() % 4 ? rng() % 0x20 : rng());
		/* Mostly well-formed heads, or nearly nothing would pass. */
		if (len > 0)
			blob[0] = 1;
		if (len > 1 && round % 2)
			blob[1] = 0;
		memcpy(p, blob, len);
		c.n = 0;
		n = codec_decode(p, len, 1000000, collect, &c);
		if (n > 0) {
			codec_reset(&b);
			for (size_t i = 0; i < c.n; i++)
				codec_append(&b, &c.s[i]);
			assert_int_equal(b.len, len);
			assert_memory_equal(b.data, p, len);
			accepted++;
		}
		free(p);
	}
	assert_true(accepted > 100);
	codec_free(&b);
	free(c.s);
}

/*
 * A thread sampled at 99 Hz with +-10 % jitter that stays on one stack most
 * of the time: the common case the format is designed for.
 */
static void test_realistic_size(void **state)
{
	enum { N = 99 * 600 };
	struct codec_buf b = { 0 };
	uint64_t t = 1700000000000000000ull;
	uint32_t stack = 100;
	char st = 'R';

	(void)state;
	for (size_t i = 0; i < N; i++) {
		t += 10101010 + (int64_t)(rng() % 2020202) - 1010101;
		if (rng() % 10 == 0)
			stack = (uint32_t)(rng() % 500);
		if (rng() % 20 == 0)
			st = st == 'R' ? 'S' : 'R';
		codec_append(&b, &(struct codec_sample){ t, stack, st });
	}
	print_message("realistic stream: %zu samples, %zu bytes, %.2f bytes/sample\n",
		      b.count, b.len, (double)b.len / (double)b.count);
	assert_true(b.len < 4 * b.count);
	assert_int_equal(codec_decode(b.data, b.len, b.first_ns, NULL, NULL), N);
	codec_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_one_sample),
		cmocka_unit_test(test_time_gaps),
		cmocka_unit_test(test_backwards_times),
		cmocka_unit_test(test_stack_jumps),
		cmocka_unit_test(test_all_states),
		cmocka_unit_test(test_state_codes_fixed),
		cmocka_unit_test(test_many_samples),
		cmocka_unit_test(test_reset_and_stop),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_huge_chunk),
		cmocka_unit_test(test_truncations),
		cmocka_unit_test(test_random_blobs),
		cmocka_unit_test(test_realistic_size),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
