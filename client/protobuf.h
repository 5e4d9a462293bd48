/*
 * protobuf: the few protocol buffer encodings pprof's profile.proto needs,
 * appended to a growing byte buffer — varint fields (uint64, int64, bool),
 * length-delimited fields (strings, embedded messages) and packed repeated
 * varints.  Encoding only; field numbers are the caller's.
 */
#ifndef PERCH_PROTOBUF_H
#define PERCH_PROTOBUF_H

#include <stddef.h>
#include <stdint.h>

/* Zero-initialize; free with protobuf_free. */
struct protobuf {
	uint8_t *data;
	size_t len, cap;
};

/* A bare varint (no tag). */
void protobuf_varint(struct protobuf *b, uint64_t v);

/*
 * A varint field.  int64 and bool values go through it too: a negative
 * int64 is its two's complement, ten bytes, as protobuf's int64 is.
 */
void protobuf_uint(struct protobuf *b, uint32_t field, uint64_t v);

void protobuf_bytes(struct protobuf *b, uint32_t field, const void *data, size_t len);
void protobuf_string(struct protobuf *b, uint32_t field, const char *s);

/* An embedded message, already encoded in m. */
void protobuf_message(struct protobuf *b, uint32_t field, const struct protobuf *m);

/* A packed repeated varint field (nothing when n is 0). */
void protobuf_packed(struct protobuf *b, uint32_t field, const uint64_t *v, size_t n);

/* Empties b, keeping its memory for the next message. */
void protobuf_reset(struct protobuf *b);

/* NULL-safe. */
void protobuf_free(struct protobuf *b);

#endif
