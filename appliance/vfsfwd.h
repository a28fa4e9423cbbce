/*
 * vfsfwd.h - forwarding methods for the SQLite VFS shims (writebehind.c,
 * and the test build's fault.c). Each shim wraps the file of the VFS under
 * it, held in its own file struct's member `real`, and passes most calls
 * straight through.
 *
 * APP_VFS_FWD(type, prefix, Name, (params), (args)) defines
 * static int prefix##Name(params), which returns real's xName(args). The
 * params name the file `f`; the args may use `ff`, the file as a type *.
 * APP_VFS_FWD_COMMON(type, prefix) defines the ones every shim here needs.
 */
#ifndef MEZZ_APPLIANCE_VFSFWD_H
#define MEZZ_APPLIANCE_VFSFWD_H

#include <sqlite3.h>

#define APP_VFS_FWD(type, prefix, name, sig, args)        \
	static int prefix##name sig                       \
	{                                                 \
		type *ff = (type *)f;                     \
		return ff->real->pMethods->x##name args;  \
	}

#define APP_VFS_FWD_COMMON(type, prefix)                                                        \
	APP_VFS_FWD(type, prefix, Read, (sqlite3_file * f, void *b, int n, sqlite3_int64 o),   \
		    (ff->real, b, n, o))                                                        \
	APP_VFS_FWD(type, prefix, FileSize, (sqlite3_file * f, sqlite3_int64 * s), (ff->real, s)) \
	APP_VFS_FWD(type, prefix, Lock, (sqlite3_file * f, int l), (ff->real, l))               \
	APP_VFS_FWD(type, prefix, Unlock, (sqlite3_file * f, int l), (ff->real, l))             \
	APP_VFS_FWD(type, prefix, CheckReservedLock, (sqlite3_file * f, int *r), (ff->real, r)) \
	APP_VFS_FWD(type, prefix, FileControl, (sqlite3_file * f, int op, void *a),             \
		    (ff->real, op, a))                                                          \
	APP_VFS_FWD(type, prefix, SectorSize, (sqlite3_file * f), (ff->real))                   \
	APP_VFS_FWD(type, prefix, DeviceCharacteristics, (sqlite3_file * f), (ff->real))        \
	APP_VFS_FWD(type, prefix, ShmMap,                                                       \
		    (sqlite3_file * f, int i, int sz, int ext, void volatile **pp),             \
		    (ff->real, i, sz, ext, pp))                                                 \
	APP_VFS_FWD(type, prefix, ShmLock, (sqlite3_file * f, int o, int n, int fl),            \
		    (ff->real, o, n, fl))                                                       \
	APP_VFS_FWD(type, prefix, ShmUnmap, (sqlite3_file * f, int d), (ff->real, d))           \
	static void prefix##ShmBarrier(sqlite3_file *f)                                         \
	{                                                                                       \
		type *ff = (type *)f;                                                           \
		ff->real->pMethods->xShmBarrier(ff->real);                                      \
	}

#endif
