/* sandbox/labels.c - the labels on every container and image envhub makes:
 * its own (envhub.managed, envhub.instance), then ENVHUB_LABELS's. The one
 * parser of ENVHUB_LABELS, for the executor and the builder alike. */
#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"
#include "sandbox/sandbox.h"

#include "core/banned.h"

struct sandbox_labels {
    struct engine_label items[SANDBOX_MAX_LABELS];
    size_t n;
    char *storage; /* the extra labels' text, split in place */
};

void sandbox_labels_free(struct sandbox_labels *l)
{
    if (!l)
        return;
    free(l->storage);
    free(l);
}

const struct engine_label *sandbox_labels_list(const struct sandbox_labels *l, size_t *ret_n)
{
    *ret_n = l->n;
    return l->items;
}

/* Would key @k set one of envhub's own labels? */
static bool reserved(const char *k)
{
    return strncmp(k, "envhub.managed", 14) == 0 || strncmp(k, "envhub.instance", 15) == 0;
}

int sandbox_labels_parse(const char *spec, const char *instance_id, struct sandbox_labels **ret,
                         struct err *err)
{
    struct sandbox_labels *l = xcalloc(1, sizeof(*l));
    char *save = NULL;

    l->items[l->n++] = (struct engine_label){"envhub.managed", "1"};
    if (instance_id)
        l->items[l->n++] = (struct engine_label){"envhub.instance", instance_id};
    l->storage = xstrdup(spec ? spec : "");
    for (char *tok = strtok_r(l->storage, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq || eq == tok) {
            err_set(err, ERR_INVALID, "ENVHUB_LABELS entry '%s' must be key=value", tok);
            goto fail;
        }
        /* the same room with or without the instance label */
        if (l->n >= SANDBOX_MAX_LABELS - (instance_id ? 0 : 1)) {
            err_set(err, ERR_INVALID, "ENVHUB_LABELS has more than %d labels",
                    SANDBOX_MAX_LABELS - 2);
            goto fail;
        }
        *eq = '\0';
        if (reserved(tok)) {
            err_set(err, ERR_INVALID, "ENVHUB_LABELS may not set '%s'", tok);
            goto fail;
        }
        l->items[l->n++] = (struct engine_label){tok, eq + 1};
    }
    *ret = l;
    return 0;
fail:
    sandbox_labels_free(l);
    return -1;
}
