/* core/banned.h - functions envhub never calls; include it last in every .c.
 * Each has a bounded or explicit replacement: xasprintf/buf_appendf for
 * sprintf/strcat, strtol with checks (config_parse_*) for atoi, argv arrays
 * for system. */
#ifndef ENVHUB_BANNED_H
#define ENVHUB_BANNED_H

#define BANNED(func) sorry_##func##_is_a_banned_function

#undef strcpy
#define strcpy(x, y) BANNED(strcpy)
#undef strcat
#define strcat(x, y) BANNED(strcat)
#undef strncpy
#define strncpy(x, y, n) BANNED(strncpy)
#undef sprintf
#define sprintf(...) BANNED(sprintf)
#undef vsprintf
#define vsprintf(...) BANNED(vsprintf)
#undef strtok
#define strtok(x, y) BANNED(strtok)
#undef gets
#define gets(x) BANNED(gets)
#undef atoi
#define atoi(x) BANNED(atoi)
#undef atol
#define atol(x) BANNED(atol)
#undef system
#define system(x) BANNED(system)

#endif
