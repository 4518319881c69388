// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* args.c: see args.h. */
#include <string.h>

#include "args.h"

bool args_help(int argc, char **argv)
{
	for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
			return true;
	return false;
}
