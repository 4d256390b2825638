/* arena.h -- the per-thread parse arena: while aw_event_decode parses a payload, jansson's
 * allocations on that thread come from a bump arena dropped whole afterwards, instead of one
 * malloc and one free per value, string and hash table of the tree. jansson's allocator is
 * process-wide: it is installed before main (no thread runs yet) and hands every allocation
 * outside a begin/end pair, and every other thread's, to malloc and free. Sanitizer builds keep
 * jansson on malloc (these functions do nothing there), so they still see every allocation. */
#ifndef AW_WORKER_INGEST_ARENA_H
#define AW_WORKER_INGEST_ARENA_H

#include <stdbool.h>

/* Routes this thread's jansson allocations into its arena until aw_parse_arena_end. Not
 * nested. Any thread. */
void aw_parse_arena_begin(void);

/* Whether p (a jansson value, may be NULL) was allocated by this thread's active arena: such a
 * value is never json_decref'd (that would walk the tree to free nothing). Any thread. */
bool aw_parse_arena_holds(const void *p);

/* Drops everything jansson allocated on this thread since aw_parse_arena_begin: no value or
 * string of that time may be used afterwards (copy out what must stay). Keeps one chunk of
 * the usual size for the next parse; a thread's chunks are freed when it exits. Any thread. */
void aw_parse_arena_end(void);

#endif
