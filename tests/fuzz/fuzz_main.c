/* tests/fuzz/fuzz_main.c - the replay of a corpus without libFuzzer: linked
 * with one harness, built with gcc and the sanitizers, run by `make test`.
 *
 *     fuzz_<target> [FILE|FOLDER]...
 *
 * Feeds every file given, and every file of every folder given (sorted by
 * name, dot files skipped), to LLVMFuzzerTestOneInput, each in a buffer of
 * exactly its size so that AddressSanitizer sees any read past the end.
 * Without arguments it replays tests/fuzz/corpus/<target>/, the target being
 * the program's name without "fuzz_". Prints how many inputs ran; exits 1
 * when an argument cannot be read or nothing ran. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tests/fuzz/fuzz.h"

#include "core/banned.h"

/* Run one file; -1 when it cannot be read. */
static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (!f || fstat(fileno(f), &st) < 0) {
        fprintf(stderr, "fuzz: cannot open '%s': %s\n", path, strerror(errno));
        if (f)
            fclose(f);
        return -1;
    }
    /* exactly the input's bytes: one past them is outside the allocation */
    size_t len = (size_t)st.st_size;
    uint8_t *data = malloc(len ? len : 1);
    if (!data || fread(data, 1, len, f) != len) {
        fprintf(stderr, "fuzz: cannot read '%s'\n", path);
        free(data);
        fclose(f);
        return -1;
    }
    fclose(f);
    LLVMFuzzerTestOneInput(data, len);
    free(data);
    return 0;
}

static int skip_dot(const struct dirent *d)
{
    return d->d_name[0] != '.';
}

/* Run @path, a file or a folder of files; adds to *ran. */
static int run_path(const char *path, size_t *ran)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        fprintf(stderr, "fuzz: cannot read '%s': %s\n", path, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        if (run_file(path) < 0)
            return -1;
        (*ran)++;
        return 0;
    }
    struct dirent **names;
    int n = scandir(path, &names, skip_dot, alphasort);
    if (n < 0) {
        fprintf(stderr, "fuzz: cannot list '%s': %s\n", path, strerror(errno));
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < n; i++) {
        size_t len = strlen(path) + strlen(names[i]->d_name) + 2;
        char *file = malloc(len);
        if (file) {
            snprintf(file, len, "%s/%s", path, names[i]->d_name);
            if (stat(file, &st) == 0 && S_ISREG(st.st_mode)) {
                if (run_file(file) < 0)
                    rc = -1;
                else
                    (*ran)++;
            }
        } else {
            rc = -1;
        }
        free(file);
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    const char *self = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    const char *target = strncmp(self, "fuzz_", 5) == 0 ? self + 5 : self;
    char corpus[4096];
    size_t ran = 0;
    int rc = 0;

    if (argc < 2) {
        snprintf(corpus, sizeof(corpus), "tests/fuzz/corpus/%s", target);
        rc = run_path(corpus, &ran);
    }
    for (int i = 1; i < argc; i++)
        if (run_path(argv[i], &ran) < 0)
            rc = -1;
    printf("fuzz_%s: %zu inputs ran\n", target, ran);
    if (ran == 0) {
        fprintf(stderr, "fuzz_%s: no input\n", target);
        return 1;
    }
    return rc < 0 ? 1 : 0;
}
