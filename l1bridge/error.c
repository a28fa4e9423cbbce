/*
 * error.c - names for the l1_ error codes, generated from L1_ERRORS so the
 * table and the enum cannot drift apart.
 */
#include "l1bridge/l1.h"

const char *l1_strerror(int err)
{
	switch (err) {
#define L1_ERR_CASE(name, code, msg) \
	case name:                   \
		return msg;
		L1_ERRORS(L1_ERR_CASE)
#undef L1_ERR_CASE
	default:
		return NULL;
	}
}
