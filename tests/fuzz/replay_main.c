/* replay_main.c -- runs a fuzz target over every file of a corpus directory, so ctest exercises
 * the corpus with any compiler. Real fuzzing: AW_FUZZ=ON with clang (libFuzzer). */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int main(int argc, char **argv);

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR|FILE...\n", argv[0]);
        return 2;
    }
    int runs = 0;
    for (int i = 1; i < argc; i++) {
        DIR *d = opendir(argv[i]);
        if (!d) {
            size_t len = 0;
            char *buf = aw_test_read_file(argv[i], &len);
            if (!buf) {
                fprintf(stderr, "cannot read %s\n", argv[i]);
                return 1;
            }
            LLVMFuzzerTestOneInput((const uint8_t *)buf, len);
            free(buf);
            runs++;
            continue;
        }
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.')
                continue;
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", argv[i], e->d_name);
            size_t len = 0;
            char *buf = aw_test_read_file(path, &len);
            if (!buf)
                continue;
            LLVMFuzzerTestOneInput((const uint8_t *)buf, len);
            free(buf);
            runs++;
        }
        closedir(d);
    }
    if (runs == 0) {
        fprintf(stderr, "empty corpus\n");
        return 1;
    }
    printf("replayed %d inputs\n", runs);
    return 0;
}
