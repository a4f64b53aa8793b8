/* Reading `key=value` words from the kernel command line. */
#pragma once

#include "rt.h"

/* The text right after the first occurrence of `key` in s, or 0. */
static inline const char *arg_find(const char *s, const char *key)
{
	size_t k = strlen(key);
	for (; s && *s; s++)
		if (!memcmp(s, key, k))
			return s + k;
	return 0;
}

/* The decimal number at p, or dflt when p is 0 or not at a digit. */
static inline u64 arg_dec(const char *p, u64 dflt)
{
	if (!p || *p < '0' || *p > '9')
		return dflt;
	u64 v = 0;
	for (; *p >= '0' && *p <= '9'; p++)
		v = v * 10 + (u64)(*p - '0');
	return v;
}
