/* error.c - one error space across the modules (see app.h). */
#include <string.h>

#include <sqlite3.h>

#include "appliance/app.h"
#include "da/da.h"
#include "l1bridge/l1.h"
#include "sequencer/seq.h"

const char *app_strerror(int err)
{
	const char *s;

	switch (err) {
	case 0:
		return "success";
#define APP_ERR_CASE(name, code, msg) \
	case code:                    \
		return msg;
		APP_ERRORS(APP_ERR_CASE)
#undef APP_ERR_CASE
	default:
		break;
	}
	if ((s = seq_strerror(err)))
		return s;
	if ((s = l1_strerror(err)))
		return s;
	if (err <= -1100 && err >= -1199)
		return da_strerror(err);
	if (err < 0 && err > -4096)
		return strerror(-err);
	return "unknown error";
}
