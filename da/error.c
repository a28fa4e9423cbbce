/*
 * error.c - names for the data-availability error codes.
 *
 * The codes and their messages live in one X-macro table (DA_ERRORS in
 * da.h); this file only turns that table into a lookup. System errors
 * (-errno) are named by strerror().
 */
#include <string.h>

#include "da/da.h"

const char *da_strerror(int err)
{
	switch (err) {
#define DA_ERR_CASE(name, code, msg) \
	case name:                   \
		return msg;
		DA_ERRORS(DA_ERR_CASE)
#undef DA_ERR_CASE
	default:
		break;
	}
	if (err < 0 && err > -4096)
		return strerror(-err);
	return "unknown error";
}
