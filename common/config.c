#include "common/config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/mem.h"

void aw_config_init(struct aw_config *c)
{
    memset(c, 0, sizeof *c);
}

void aw_config_free(struct aw_config *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->n_entries; i++) {
        free(c->entries[i].key);
        free(c->entries[i].value);
    }
    free(c->entries);
    for (size_t i = 0; i < c->n_errors; i++)
        free(c->errors[i]);
    free(c->errors);
    aw_config_init(c);
}

__attribute__((format(printf, 4, 5))) static void add_error(struct aw_config *c, const char *name,
                                                            unsigned line, const char *fmt, ...)
{
    if (c->n_errors >= AW_CONFIG_ERRORS_MAX) {
        c->n_errors_dropped++;
        return;
    }
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        msg[0] = '\0';
    char full[1024];
    if (line > 0)
        n = snprintf(full, sizeof full, "%s:%u: %s", name, line, msg);
    else
        n = snprintf(full, sizeof full, "%s: %s", name, msg);
    if (n < 0)
        full[0] = '\0';
    /* A truncated path still names the problem; the message is bounded above. */
    aw_grow((void **)&c->errors, &c->cap_errors, c->n_errors + 1, sizeof *c->errors);
    c->errors[c->n_errors++] = aw_strdup(full);
}

static bool is_blank(char ch)
{
    return ch == ' ' || ch == '\t';
}

static bool is_key_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '.' || ch == '_' || ch == '-';
}

/* Trims blanks on both ends of [*b, *e). */
static void trim(const char **b, const char **e)
{
    while (*b < *e && is_blank(**b))
        (*b)++;
    while (*e > *b && is_blank((*e)[-1]))
        (*e)--;
}

static void parse_line(struct aw_config *c, const char *name, unsigned line, const char *b,
                       const char *e)
{
    for (const char *p = b; p < e; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '\0') {
            add_error(c, name, line, "NUL byte in line");
            return;
        }
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
            add_error(c, name, line, "control character in line");
            return;
        }
    }
    trim(&b, &e);
    if (b == e || *b == '#')
        return;
    const char *eq = memchr(b, '=', (size_t)(e - b));
    if (eq == NULL) {
        add_error(c, name, line, "expected key=value");
        return;
    }
    const char *kb = b, *ke = eq, *vb = eq + 1, *ve = e;
    trim(&kb, &ke);
    trim(&vb, &ve);
    if (kb == ke) {
        add_error(c, name, line, "empty key");
        return;
    }
    if ((size_t)(ke - kb) > AW_CONFIG_KEY_MAX) {
        add_error(c, name, line, "key longer than %d characters", AW_CONFIG_KEY_MAX);
        return;
    }
    for (const char *p = kb; p < ke; p++) {
        if (!is_key_char(*p)) {
            add_error(c, name, line, "invalid character in key (allowed: A-Z a-z 0-9 . _ -)");
            return;
        }
    }
    if ((size_t)(ve - vb) > AW_CONFIG_VALUE_MAX) {
        add_error(c, name, line, "value longer than %d bytes", AW_CONFIG_VALUE_MAX);
        return;
    }
    size_t klen = (size_t)(ke - kb);
    for (size_t i = 0; i < c->n_entries; i++) {
        if (strlen(c->entries[i].key) == klen && memcmp(c->entries[i].key, kb, klen) == 0) {
            add_error(c, name, line, "duplicate key %.*s (first set on line %u)", (int)klen, kb,
                      c->entries[i].line);
            return;
        }
    }
    aw_grow((void **)&c->entries, &c->cap_entries, c->n_entries + 1, sizeof *c->entries);
    struct aw_config_entry *en = &c->entries[c->n_entries++];
    en->key = aw_strndup(kb, klen);
    en->value = aw_strndup(vb, (size_t)(ve - vb));
    en->line = line;
}

enum aw_err aw_config_parse(struct aw_config *c, const char *name, const char *text, size_t len)
{
    size_t errors_before = c->n_errors + c->n_errors_dropped;
    const char *p = text, *end = text + len;
    unsigned line = 0;
    while (p < end) {
        line++;
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        const char *next = nl ? nl + 1 : end;
        if (le > p && le[-1] == '\r')
            le--;
        parse_line(c, name, line, p, le);
        p = next;
    }
    return c->n_errors + c->n_errors_dropped == errors_before ? AW_OK : AW_ERR_CONFIG;
}

enum aw_err aw_config_load(struct aw_config *c, const char *path)
{
    /* O_NONBLOCK: opening a FIFO must not hang; it is refused below as not a regular file. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        add_error(c, path, 0, "cannot open: %s", strerror(errno));
        return AW_ERR_CONFIG;
    }
    enum aw_err rc = AW_ERR_CONFIG;
    char *text = NULL;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        add_error(c, path, 0, "cannot stat: %s", strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        add_error(c, path, 0, "not a regular file");
        goto out;
    }
    if (st.st_size > AW_CONFIG_FILE_MAX) {
        add_error(c, path, 0, "larger than %d bytes", AW_CONFIG_FILE_MAX);
        goto out;
    }
    /* Read up to one byte beyond the limit so a file that grew after fstat is still caught. */
    text = aw_malloc(AW_CONFIG_FILE_MAX + 1);
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, text + len, AW_CONFIG_FILE_MAX + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            add_error(c, path, 0, "cannot read: %s", strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > AW_CONFIG_FILE_MAX) {
            add_error(c, path, 0, "larger than %d bytes", AW_CONFIG_FILE_MAX);
            goto out;
        }
    }
    rc = aw_config_parse(c, path, text, len);
out:
    free(text);
    close(fd);
    return rc;
}

const char *aw_config_get(const struct aw_config *c, const char *key)
{
    for (size_t i = c->n_entries; i > 0; i--) {
        if (strcmp(c->entries[i - 1].key, key) == 0)
            return c->entries[i - 1].value;
    }
    return NULL;
}
