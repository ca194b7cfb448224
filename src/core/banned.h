/*
 * banned.h - functions that are easy to misuse, banned at compile time
 * (after git's banned.h).  Included into every translation unit by meson.
 * Use snprintf/kt_buf_addf, memcpy with checked lengths, strtoull with end
 * checks, gmtime_r.
 */
#ifndef KT_BANNED_H
#define KT_BANNED_H
/* Pull in the system headers first: glibc defines some banned names inline
 * (atoi at -O2), which must not see our macros. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#define KT_BANNED(func) sorry_##func##_is_banned_in_kontinuity
#undef strcpy
#define strcpy(x, y) KT_BANNED(strcpy)
#undef strcat
#define strcat(x, y) KT_BANNED(strcat)
#undef sprintf
#define sprintf(...) KT_BANNED(sprintf)
#undef vsprintf
#define vsprintf(...) KT_BANNED(vsprintf)
#undef strtok
#define strtok(x, y) KT_BANNED(strtok)
#undef gmtime
#define gmtime(x) KT_BANNED(gmtime)
#undef localtime
#define localtime(x) KT_BANNED(localtime)
#undef atoi
#define atoi(x) KT_BANNED(atoi)
#endif
