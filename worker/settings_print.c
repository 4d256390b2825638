/* settings_print.c -- printing the settings: `aw-worker --check-config` (the effective value of
 * every variable, secrets masked) and `--config-table` (the table as markdown, for README). */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/hostport.h"
#include "worker/settings.h"
#include "worker/settings_table.h"

bool aw_settings_kafka_key_is_secret(const char *key)
{
    static const char *const parts[] = {
        "password",           "secret", "jaas", "token", "credential", "key.pem",
        "oauthbearer.config", "private"};
    size_t klen = strlen(key);
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        size_t plen = strlen(parts[i]);
        for (size_t j = 0; j + plen <= klen; j++) {
            if (strncasecmp(key + j, parts[i], plen) == 0)
                return true;
        }
    }
    return false;
}

void aw_settings_show_topics(const struct aw_settings *s, FILE *out)
{
    for (size_t i = 0; i < s->kafka.n_topics; i++)
        fprintf(out, "%s%s", i ? "," : "", s->kafka.topics[i]);
}

void aw_settings_show_redis_url(const struct aw_settings *s, FILE *out)
{
    fputs(s->redis.url_masked ? s->redis.url_masked : "", out);
}

void aw_settings_show_http_addr(const struct aw_settings *s, FILE *out)
{
    if (!s->http.host)
        return;
    if (aw_hostport_is_ipv6(s->http.host))
        fprintf(out, "[%s]:%u", s->http.host, (unsigned)s->http.port);
    else
        fprintf(out, "%s:%u", s->http.host, (unsigned)s->http.port);
}

void aw_settings_show_log_level(const struct aw_settings *s, FILE *out)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    fputs(names[(unsigned)s->log.level & 3u], out);
}

enum aw_err aw_settings_print(const struct aw_settings *s, FILE *out)
{
    for (size_t i = 0; i < aw_settings_n_vars; i++) {
        const struct aw_settings_var *v = &aw_settings_vars[i];
        fprintf(out, "%s=", v->name);
        const char *base = (const char *)s;
        if (v->show) {
            v->show(s, out);
        } else if (v->kind == AW_SETTINGS_K_STRING) {
            const char *str = *(char *const *)(const void *)(base + v->off);
            fputs(str ? str : "", out);
        } else if (v->kind == AW_SETTINGS_K_BOOL) {
            fputs(*(const bool *)(const void *)(base + v->off) ? "true" : "false", out);
        } else if (v->kind == AW_SETTINGS_K_INT || v->kind == AW_SETTINGS_K_DURATION) {
            fprintf(out, "%llu",
                    (unsigned long long)*(const uint64_t *)(const void *)(base + v->off));
        }
        fputc('\n', out);
    }
    for (size_t i = 0; i < s->kafka.extra.n_entries; i++) {
        const struct aw_config_entry *en = &s->kafka.extra.entries[i];
        fprintf(out, "kafka.%s=%s\n", en->key,
                aw_settings_kafka_key_is_secret(en->key) ? AW_SETTINGS_MASK : en->value);
    }
    return ferror(out) ? AW_ERR_IO : AW_OK;
}

enum aw_err aw_settings_print_table(FILE *out)
{
    fputs("| Variable | Default | Range / format | Meaning |\n", out);
    fputs("|---|---|---|---|\n", out);
    for (size_t i = 0; i < aw_settings_n_vars; i++) {
        const struct aw_settings_var *v = &aw_settings_vars[i];
        fprintf(out, "| `%s` | ", v->name);
        if (v->flags & AW_SETTINGS_F_DEF_HOSTNAME)
            fputs("host name", out);
        else if (v->def)
            fprintf(out, "`%s`", v->def);
        else if (v->flags & AW_SETTINGS_F_REQUIRED)
            fputs("**required**", out);
        else
            fputs("unset", out);
        fputs(" | ", out);
        switch (v->kind) {
        case AW_SETTINGS_K_STRING:
            fprintf(out, "%s", v->format ? v->format : "text");
            break;
        case AW_SETTINGS_K_INT:
            fprintf(out, "%llu..%llu", (unsigned long long)v->min, (unsigned long long)v->max);
            break;
        case AW_SETTINGS_K_DURATION:
            fprintf(out, "%llu..%llu %s", (unsigned long long)v->min, (unsigned long long)v->max,
                    aw_settings_unit_word(v->unit));
            break;
        case AW_SETTINGS_K_BOOL:
            fputs("true, false", out);
            break;
        case AW_SETTINGS_K_ENUM:
            for (const char *p = v->choices; *p; p++) {
                if (*p == '|')
                    fputs(", ", out);
                else
                    fputc(*p, out);
            }
            break;
        }
        fprintf(out, " | %s%s |\n", v->meaning,
                (v->flags & AW_SETTINGS_F_SECRET) ? " (secret)" : "");
    }
    return ferror(out) ? AW_ERR_IO : AW_OK;
}
