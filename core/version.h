/* core/version.h - package versions: how pip (PEP 440) and dpkg order them,
 * and the version filter of GET /packages ("?version=>=1.2,<2").
 *
 * Pure functions of their arguments: no I/O, no allocation, no state, so
 * all are thread-safe. A manager is named "pip" or "dpkg" as in the
 * catalog's package inventories; anything but "dpkg" is compared as pip. */
#ifndef ENVHUB_VERSION_H
#define ENVHUB_VERSION_H

#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"

/* PEP 440 ordering of @a and @b (epoch, release, a/b/rc pre-releases, post,
 * dev, local; the usual spellings normalised: "1.0-RC1" is "1.0rc1"): *ret
 * <0, 0, >0. -1 when one is not a PEP 440 version (*ret untouched). */
int version_pep440_compare(const char *a, const char *b, int *ret);
/* dpkg's ordering of Debian versions ([epoch:]upstream[-revision], '~' before
 * everything, letters before other characters): <0, 0, >0. Total: any text
 * compares. */
int version_dpkg_compare(const char *a, const char *b);

#define VERSION_SPEC_MAX 8
/* A version filter: comma-separated clauses, each "==V", "!=V", "<V", "<=V",
 * ">V", ">=V", "~=V" (two clauses: "~=1.4.5" is ">=1.4.5,==1.4.*") or a bare
 * "V" (==); "==1.2.*" matches by release prefix. */
struct version_spec {
    size_t n;
    struct {
        char op[3]; /* "==", "!=", "<", "<=", ">", ">=" */
        char version[64];
        bool prefix; /* "==V.*" / "!=V.*" */
    } clauses[VERSION_SPEC_MAX];
};
/* Parse @text into *ret (written only on success). ERR_INVALID naming
 * "version" when @text is not a filter: an unknown operator or character,
 * "===", '*' anywhere but ending an "==" or "!=" version, more than
 * VERSION_SPEC_MAX clauses, an empty or too long version. */
int version_spec_parse(const char *text, struct version_spec *ret, struct err *err);
/* Does @version of a @manager ("pip": PEP 440, "dpkg": dpkg's order) package
 * satisfy every clause? A pip version that does not parse matches only by
 * string equality ("==" and "!="). PEP 440's exclusive comparisons: "<V"
 * takes no pre-release of V itself (unless V is one), ">V" no post-release
 * or local version of V. */
bool version_spec_match(const struct version_spec *spec, const char *manager, const char *version);

#endif
