/* builder/dangerous.c - the "dangerous command" check SimplePySandbox makes on
 * setup scripts. A build runs in a throw-away container, so these commands
 * could only ruin the image; envhub refuses them anyway, as the seed does,
 * because a script that contains one is a mistake or an attack. The list (also
 * in docs/environments.md) is deliberately short and obvious; comments are ignored. */
#include <regex.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "builder/builder.h"
#include "core/cleanup.h"
#include "core/xalloc.h"

#include "core/banned.h"

struct danger {
    const char *what;    /* named in the 400's detail */
    const char *pattern; /* POSIX extended regex, matched per line */
};

/* A command position: the line start or after ; & | ( ` or "sudo ". */
#define CMD "(^|[;&|(`]|sudo)[[:space:]]*"
#define END "([[:space:]]|;|&|\\||\\)|$)"

static const struct danger dangers[] = {
    {"rm -rf / (deleting the root filesystem)",
     CMD "rm[[:space:]]+(-[[:alnum:]-]+[[:space:]]+)*(--no-preserve-root[[:space:]]+)?/\\*?" END},
    {"mkfs (formatting a filesystem)", CMD "mkfs(\\.[[:alnum:]]+)?" END},
    {"dd onto a device (overwriting a disk)",
     CMD "dd[[:space:]].*of=/dev/(sd|hd|vd|xvd|nvme|mmcblk|md|dm-|disk|mapper|loop)"},
    {"writing to a raw disk device",
     ">[[:space:]]*/dev/(sd|hd|vd|xvd|nvme|mmcblk|md|dm-|disk|mapper)[[:alnum:]/_-]*"},
    {"wipefs/fdisk/parted on a device (erasing a partition table)",
     CMD "(wipefs|fdisk|sfdisk|parted|shred)[[:space:]].*/dev/"},
    {"a fork bomb", "([[:alnum:]_:]+)\\(\\)[[:space:]]*\\{[^}]*\\1[[:space:]]*\\|[[:space:]]*\\1"},
    {"shutdown/reboot/halt/poweroff", CMD "(shutdown|reboot|halt|poweroff)" END},
    {"chmod -R 777 / (opening the whole filesystem)",
     CMD "chmod[[:space:]]+(-[[:alnum:]-]+[[:space:]]+)*[0-7]?777[[:space:]]+/" END},
    {"chown -R of / (taking the whole filesystem)", CMD
     "chown[[:space:]]+(-[[:alnum:]-]+[[:space:]]+)*-R[[:space:]]+[^[:space:]]+[[:space:]]+/" END},
    {"writing to /proc/sysrq-trigger", "/proc/sysrq-trigger"},
};

static regex_t compiled[sizeof(dangers) / sizeof(dangers[0])];
static pthread_once_t compile_once = PTHREAD_ONCE_INIT;

static void compile_all(void)
{
    for (size_t i = 0; i < sizeof(dangers) / sizeof(dangers[0]); i++)
        if (regcomp(&compiled[i], dangers[i].pattern, REG_EXTENDED | REG_NOSUB | REG_NEWLINE) != 0)
            abort(); /* a bad pattern is our bug, caught by the unit tests */
}

const char *builder_script_danger(const char *script)
{
    pthread_once(&compile_once, compile_all);
    const char *line = script;

    while (*line) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        const char *p = line;
        while (p < line + len && (*p == ' ' || *p == '\t'))
            p++;
        if (p < line + len && *p != '#') {
            _cleanup_free_ char *copy = xstrndup(line, len);
            for (size_t i = 0; i < sizeof(dangers) / sizeof(dangers[0]); i++)
                if (regexec(&compiled[i], copy, 0, NULL, 0) == 0)
                    return dangers[i].what;
        }
        if (!end)
            break;
        line = end + 1;
    }
    return NULL;
}
