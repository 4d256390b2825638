/* test_config.c -- common/config: key=value syntax, comments, blanks, CRLF, every problem as
 * name:line, file loading limits, and values (possible secrets) never quoted in problems. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/config.h"
#include "tests/harness.h"

static bool has_error(const struct aw_config *c, const char *text)
{
    for (size_t i = 0; i < c->n_errors; i++) {
        if (strcmp(c->errors[i], text) == 0)
            return true;
    }
    return false;
}

static void dump(const struct aw_config *c)
{
    for (size_t i = 0; i < c->n_errors; i++)
        fprintf(stderr, "  error: %s\n", c->errors[i]);
}

static void test_syntax(void)
{
    static const char text[] = "# comment\n"
                               "\n"
                               "   \t  \n"
                               "  # indented comment\n"
                               "bootstrap.servers=a:1,b:2\n"
                               "  sasl.mechanisms   =   PLAIN  \n"
                               "sasl.jaas.config=x=y # not a comment\n"
                               "empty.value=\n"
                               "crlf.key=v1\r\n"
                               "Under_score-and.dot=ok\n"
                               "last.line.no.newline=end";
    struct aw_config c;
    aw_config_init(&c);
    enum aw_err rc = aw_config_parse(&c, "kafka.properties", text, sizeof text - 1);
    if (rc != AW_OK)
        dump(&c);
    AW_CHECK_INT_EQ(rc, AW_OK);
    AW_CHECK_INT_EQ(c.n_errors, 0);
    AW_CHECK_INT_EQ(c.n_entries, 7);
    AW_CHECK_STR_EQ(aw_config_get(&c, "bootstrap.servers"), "a:1,b:2");
    AW_CHECK_STR_EQ(aw_config_get(&c, "sasl.mechanisms"), "PLAIN");
    AW_CHECK_STR_EQ(aw_config_get(&c, "sasl.jaas.config"), "x=y # not a comment");
    AW_CHECK_STR_EQ(aw_config_get(&c, "empty.value"), "");
    AW_CHECK_STR_EQ(aw_config_get(&c, "crlf.key"), "v1");
    AW_CHECK_STR_EQ(aw_config_get(&c, "Under_score-and.dot"), "ok");
    AW_CHECK_STR_EQ(aw_config_get(&c, "last.line.no.newline"), "end");
    AW_CHECK(aw_config_get(&c, "missing") == NULL);
    AW_CHECK(aw_config_get(&c, "# comment") == NULL);
    /* Source order and line numbers are kept. */
    AW_CHECK_STR_EQ(c.entries[0].key, "bootstrap.servers");
    AW_CHECK_INT_EQ(c.entries[0].line, 5);
    AW_CHECK_INT_EQ(c.entries[6].line, 11);
    aw_config_free(&c);
    AW_CHECK(c.entries == NULL && c.n_entries == 0);
    aw_config_free(&c);
    aw_config_free(NULL);

    /* Empty input is valid and empty. */
    aw_config_init(&c);
    AW_CHECK_INT_EQ(aw_config_parse(&c, "empty", "", 0), AW_OK);
    AW_CHECK_INT_EQ(c.n_entries, 0);
    aw_config_free(&c);
}

static void test_errors(void)
{
    static const char text[] = "good.one=1\n"
                               "missing equals\n"
                               "=NoKeySecret\n"
                               "bad key=SpaceSecret\n"
                               "good.one=2\n"
                               "ctl.char=a\x01Secret\n"
                               "fine=yes\n"
                               "nul=ab\0cSecret\n"
                               "k\xc3\xa9y=UnicodeKeySecret\n";
    struct aw_config c;
    aw_config_init(&c);
    AW_CHECK_INT_EQ(aw_config_parse(&c, "f.conf", text, sizeof text - 1), AW_ERR_CONFIG);
    AW_CHECK_INT_EQ(c.n_errors, 7);
    AW_CHECK(has_error(&c, "f.conf:2: expected key=value"));
    AW_CHECK(has_error(&c, "f.conf:3: empty key"));
    AW_CHECK(has_error(&c, "f.conf:4: invalid character in key (allowed: A-Z a-z 0-9 . _ -)"));
    AW_CHECK(has_error(&c, "f.conf:5: duplicate key good.one (first set on line 1)"));
    AW_CHECK(has_error(&c, "f.conf:6: control character in line"));
    AW_CHECK(has_error(&c, "f.conf:8: NUL byte in line"));
    AW_CHECK(has_error(&c, "f.conf:9: invalid character in key (allowed: A-Z a-z 0-9 . _ -)"));
    for (size_t i = 0; i < c.n_errors; i++)
        AW_CHECK_MSG(strstr(c.errors[i], "Secret") == NULL, "value leaked: %s", c.errors[i]);
    /* Valid lines are kept; the first of a duplicate wins. */
    AW_CHECK_INT_EQ(c.n_entries, 2);
    AW_CHECK_STR_EQ(aw_config_get(&c, "good.one"), "1");
    AW_CHECK_STR_EQ(aw_config_get(&c, "fine"), "yes");
    aw_config_free(&c);

    /* Length limits. */
    size_t big = AW_CONFIG_KEY_MAX + 1;
    char *line = malloc(big + 3);
    memset(line, 'k', big);
    memcpy(line + big, "=v", 3);
    aw_config_init(&c);
    AW_CHECK_INT_EQ(aw_config_parse(&c, "long", line, strlen(line)), AW_ERR_CONFIG);
    AW_CHECK(c.n_errors == 1 && strstr(c.errors[0], "long:1: key longer than") == c.errors[0]);
    aw_config_free(&c);
    free(line);

    /* Many problems: stored up to the cap, the rest counted. */
    size_t n_lines = AW_CONFIG_ERRORS_MAX + 10;
    char *many = malloc(n_lines * 2 + 1);
    for (size_t i = 0; i < n_lines; i++) {
        many[2 * i] = 'x';
        many[2 * i + 1] = '\n';
    }
    many[n_lines * 2] = '\0';
    aw_config_init(&c);
    AW_CHECK_INT_EQ(aw_config_parse(&c, "many", many, n_lines * 2), AW_ERR_CONFIG);
    AW_CHECK_INT_EQ(c.n_errors, AW_CONFIG_ERRORS_MAX);
    AW_CHECK_INT_EQ(c.n_errors_dropped, 10);
    aw_config_free(&c);
    free(many);
}

static void test_load(void)
{
    char path[] = "/tmp/aw_test_config_XXXXXX";
    int fd = mkstemp(path);
    AW_CHECK(fd >= 0);
    if (fd < 0)
        return;
    static const char body[] = "a=1\nb = two\nbroken\n";
    AW_CHECK(write(fd, body, sizeof body - 1) == (ssize_t)(sizeof body - 1));
    close(fd);

    struct aw_config c;
    aw_config_init(&c);
    AW_CHECK_INT_EQ(aw_config_load(&c, path), AW_ERR_CONFIG);
    AW_CHECK_INT_EQ(c.n_entries, 2);
    AW_CHECK_STR_EQ(aw_config_get(&c, "b"), "two");
    char want[128];
    snprintf(want, sizeof want, "%s:3: expected key=value", path);
    AW_CHECK(has_error(&c, want));
    aw_config_free(&c);

    /* Missing file, directory, FIFO (must not block), oversize file. */
    aw_config_init(&c);
    AW_CHECK_INT_EQ(aw_config_load(&c, "/nonexistent/dir/kafka.conf"), AW_ERR_CONFIG);
    AW_CHECK(c.n_errors == 1 &&
             strstr(c.errors[0], "/nonexistent/dir/kafka.conf: cannot open: ") == c.errors[0]);
    aw_config_free(&c);

    aw_config_init(&c);
    AW_CHECK_INT_EQ(aw_config_load(&c, "/tmp"), AW_ERR_CONFIG);
    AW_CHECK(has_error(&c, "/tmp: not a regular file"));
    aw_config_free(&c);

    char fifo[] = "/tmp/aw_test_config_fifo_XXXXXX";
    int tfd = mkstemp(fifo);
    AW_CHECK(tfd >= 0);
    if (tfd >= 0) {
        close(tfd);
        unlink(fifo);
        AW_CHECK(mkfifo(fifo, 0600) == 0);
        aw_config_init(&c);
        AW_CHECK_INT_EQ(aw_config_load(&c, fifo), AW_ERR_CONFIG);
        snprintf(want, sizeof want, "%s: not a regular file", fifo);
        AW_CHECK(has_error(&c, want));
        aw_config_free(&c);
        unlink(fifo);
    }

    fd = open(path, O_WRONLY | O_TRUNC);
    AW_CHECK(fd >= 0);
    if (fd >= 0) {
        AW_CHECK(ftruncate(fd, AW_CONFIG_FILE_MAX + 1) == 0);
        close(fd);
        aw_config_init(&c);
        AW_CHECK_INT_EQ(aw_config_load(&c, path), AW_ERR_CONFIG);
        snprintf(want, sizeof want, "%s: larger than %d bytes", path, AW_CONFIG_FILE_MAX);
        AW_CHECK(has_error(&c, want));
        aw_config_free(&c);
    }
    unlink(path);
}

int main(void)
{
    test_syntax();
    test_errors();
    test_load();
    return aw_test_done();
}
