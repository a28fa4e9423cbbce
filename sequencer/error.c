/*
 * error.c - names for the sequencer's error codes.
 *
 * The codes and their messages live in one X-macro table (SEQ_ERRORS in
 * seq.h); this file only turns that table into a lookup.
 */
#include "sequencer/seq.h"

const char *seq_strerror(int err)
{
	switch (err) {
#define SEQ_ERR_CASE(name, code, msg) \
	case name:                    \
		return msg;
		SEQ_ERRORS(SEQ_ERR_CASE)
#undef SEQ_ERR_CASE
	default:
		return NULL;
	}
}
