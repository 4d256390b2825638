/* harness.h -- minimal assertions for unit tests, reporting file:line. Header-only.
 * Usage: AW_CHECK(cond); AW_CHECK_STR_EQ(a, b); AW_CHECK_INT_EQ(a, b); return aw_test_done(); */
#ifndef AW_TESTS_HARNESS_H
#define AW_TESTS_HARNESS_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int aw_test_failures;
static int aw_test_checks;

#define AW_CHECK(cond)                                                                             \
    do {                                                                                           \
        aw_test_checks++;                                                                          \
        if (!(cond)) {                                                                             \
            aw_test_failures++;                                                                    \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
        }                                                                                          \
    } while (0)

#define AW_CHECK_MSG(cond, ...)                                                                    \
    do {                                                                                           \
        aw_test_checks++;                                                                          \
        if (!(cond)) {                                                                             \
            aw_test_failures++;                                                                    \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);               \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

#define AW_CHECK_INT_EQ(a, b)                                                                      \
    do {                                                                                           \
        long long aw_a_ = (long long)(a), aw_b_ = (long long)(b);                                  \
        aw_test_checks++;                                                                          \
        if (aw_a_ != aw_b_) {                                                                      \
            aw_test_failures++;                                                                    \
            fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", __FILE__, __LINE__, #a, #b,  \
                    aw_a_, aw_b_);                                                                 \
        }                                                                                          \
    } while (0)

#define AW_CHECK_STR_EQ(a, b)                                                                      \
    do {                                                                                           \
        const char *aw_a_ = (a), *aw_b_ = (b);                                                     \
        aw_test_checks++;                                                                          \
        if (aw_a_ == NULL || aw_b_ == NULL ? aw_a_ != aw_b_ : strcmp(aw_a_, aw_b_) != 0) {         \
            aw_test_failures++;                                                                    \
            fprintf(stderr, "%s:%d: %s == %s failed: \"%s\" != \"%s\"\n", __FILE__, __LINE__, #a,  \
                    #b, aw_a_ ? aw_a_ : "(null)", aw_b_ ? aw_b_ : "(null)");                       \
        }                                                                                          \
    } while (0)

/* Prints a summary line and returns the process exit code. */
static inline int aw_test_done(void)
{
    printf("%d checks, %d failed\n", aw_test_checks, aw_test_failures);
    return aw_test_failures ? 1 : 0;
}

/* Reads a whole file into a caller-owned NUL-terminated buffer; NULL on error. */
static inline char *aw_test_read_file(const char *path, size_t *len_out)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len < 2) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
    }
    fclose(f);
    if (buf) {
        buf[len] = '\0';
        if (len_out)
            *len_out = len;
    }
    return buf;
}

/* Path under the source tree (AW_SOURCE_DIR, set by ctest) into out. */
static inline const char *aw_test_src_path(char *out, size_t outlen, const char *rel)
{
    const char *root = getenv("AW_SOURCE_DIR");
    snprintf(out, outlen, "%s/%s", root ? root : ".", rel);
    return out;
}

#endif
