/* test_redis_url.c -- the one AW_REDIS_URL grammar (common/redis_url.c) and the host:port grammar
 * under it (common/hostport.c): accepted forms with their parsed parts, refused forms with a
 * reason that never holds the password, and the masked form --check-config prints. Also where
 * the seed list leads: the store client's hash slot of a key (worker/store/client.c) against
 * what Redis Cluster itself answers. */
#include <string.h>

#include "common/hostport.h"
#include "common/redis_url.h"
#include "tests/harness.h"
#include "worker/store/client.h"

struct ok_case {
    const char *url;
    bool is_unix;
    size_t n_nodes;
    const char *host0;
    unsigned port0;
    const char *host1; /* second node or NULL */
    unsigned port1;
    const char *user;
    const char *password;
    int db;
    const char *masked;
};

static const struct ok_case ok_cases[] = {
    {"redis://127.0.0.1:6379/0", false, 1, "127.0.0.1", 6379, NULL, 0, "", "", 0,
     "redis://127.0.0.1:6379/0"},
    {"redis://h", false, 1, "h", 6379, NULL, 0, "", "", 0, "redis://h:6379/0"},
    {"REDIS://Host-1.example:7000/3", false, 1, "Host-1.example", 7000, NULL, 0, "", "", 3,
     "redis://Host-1.example:7000/3"},
    {"redis://pw@h", false, 1, "h", 6379, NULL, 0, "", "pw", 0, "redis://:****@h:6379/0"},
    {"redis://:p%40ss@h:1/2", false, 1, "h", 1, NULL, 0, "", "p@ss", 2, "redis://:****@h:1/2"},
    {"redis://app:s3cr@t@h", false, 1, "h", 6379, NULL, 0, "app", "s3cr@t", 0,
     "redis://app:****@h:6379/0"},
    {"redis://[::1]:6380", false, 1, "::1", 6380, NULL, 0, "", "", 0, "redis://[::1]:6380/0"},
    {"redis://h?db=4", false, 1, "h", 6379, NULL, 0, "", "", 4, "redis://h:6379/4"},
    {"redis://u:p@a:7000,b:7001,[::1]", false, 3, "a", 7000, "b", 7001, "u", "p", 0,
     "redis://u:****@a:7000,b:7001,[::1]:6379/0"},
    {"unix:///run/redis.sock", true, 1, "/run/redis.sock", 0, NULL, 0, "", "", 0,
     "unix:///run/redis.sock?db=0"},
    {"unix://:pw@/tmp/r.sock?db=2", true, 1, "/tmp/r.sock", 0, NULL, 0, "", "pw", 2,
     "unix://:****@/tmp/r.sock?db=2"},
};

static const char *const bad_cases[] = {
    "",
    "http://h",
    "rediss://h",
    "redis://",
    "redis://h:0",
    "redis://h:65536",
    "redis://h:port",
    "redis://h/x",
    "redis://h/1?db=2",
    "redis://h?foo=1",
    "redis://h#frag",
    "redis://[::1",
    "redis://[zz]:1",
    "redis://a,b/1",
    "redis://a,,b",
    "redis://:%zzsecret@h",
    "redis://ho st",
    "unix://relative.sock",
    "unix://:secret@relative",
};

static void test_ok(void)
{
    for (size_t i = 0; i < sizeof ok_cases / sizeof ok_cases[0]; i++) {
        const struct ok_case *c = &ok_cases[i];
        struct aw_redis_url u;
        char err[128] = "";
        AW_CHECK_MSG(aw_redis_url_parse(c->url, &u, err, sizeof err) == AW_OK, "%s: %s", c->url,
                     err);
        AW_CHECK_MSG(u.is_unix == c->is_unix, "%s", c->url);
        AW_CHECK_INT_EQ(u.n_nodes, c->n_nodes);
        AW_CHECK_STR_EQ(u.nodes[0].host, c->host0);
        AW_CHECK_INT_EQ(u.nodes[0].port, c->port0);
        if (c->host1) {
            AW_CHECK_STR_EQ(u.nodes[1].host, c->host1);
            AW_CHECK_INT_EQ(u.nodes[1].port, c->port1);
        }
        AW_CHECK_STR_EQ(u.user, c->user);
        AW_CHECK_STR_EQ(u.password, c->password);
        AW_CHECK_INT_EQ(u.db, c->db);
        char masked[256];
        aw_redis_url_format_masked(&u, masked, sizeof masked);
        AW_CHECK_STR_EQ(masked, c->masked);
        /* the masked form is itself a valid URL with the same parts (password aside) */
        struct aw_redis_url again;
        AW_CHECK_MSG(aw_redis_url_parse(masked, &again, err, sizeof err) == AW_OK, "%s", masked);
        AW_CHECK_INT_EQ(again.n_nodes, u.n_nodes);
        AW_CHECK_INT_EQ(again.db, u.db);
        aw_redis_url_wipe(&u);
        AW_CHECK_STR_EQ(u.password, "");
    }
}

static void test_bad(void)
{
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        struct aw_redis_url u;
        char err[128] = "";
        AW_CHECK_MSG(aw_redis_url_parse(bad_cases[i], &u, err, sizeof err) == AW_ERR_CONFIG, "%s",
                     bad_cases[i]);
        AW_CHECK_MSG(err[0] != '\0', "%s: no reason", bad_cases[i]);
        AW_CHECK_MSG(!strstr(err, "secret"), "%s: reason quotes the password", bad_cases[i]);
    }
}

static void test_hostport(void)
{
    char host[AW_HOSTPORT_HOST_MAX];
    uint16_t port = 0;
    AW_CHECK(aw_hostport_parse("localhost:9464", 14, 0, true, host, &port) == NULL);
    AW_CHECK_STR_EQ(host, "localhost");
    AW_CHECK_INT_EQ(port, 9464);
    AW_CHECK(aw_hostport_parse("[::]:9464", 9, 0, true, host, &port) == NULL);
    AW_CHECK_STR_EQ(host, "::");
    AW_CHECK(aw_hostport_is_ipv6(host));
    AW_CHECK(aw_hostport_parse("0.0.0.0", 7, 0, true, host, &port) != NULL); /* port required */
    AW_CHECK(aw_hostport_parse("0.0.0.0", 7, 9092, false, host, &port) == NULL);
    AW_CHECK_INT_EQ(port, 9092);
    AW_CHECK(aw_hostport_parse("[1.2.3.4]:1", 11, 0, true, host, &port) != NULL);
    /* IPv6 literals are checked as addresses, not only as characters */
    static const char *const bad_v6[] = {"[:::]:1", "[1::2::3]:1", "[12345::]:1", "[::1:]:1",
                                         "[::ffff:1.2.3]:1"};
    for (size_t i = 0; i < sizeof bad_v6 / sizeof bad_v6[0]; i++)
        AW_CHECK_MSG(aw_hostport_parse(bad_v6[i], strlen(bad_v6[i]), 0, true, host, &port) != NULL,
                     "%s accepted", bad_v6[i]);
    AW_CHECK(aw_hostport_parse("[::ffff:10.0.0.1]:1", 19, 0, true, host, &port) == NULL);
    AW_CHECK_STR_EQ(host, "::ffff:10.0.0.1");
    AW_CHECK(aw_hostport_parse("[fe80::1]", 9, 6379, false, host, &port) == NULL);
    AW_CHECK_INT_EQ(port, 6379);
}

/* The slot the client routes a key to must be the one the cluster serves it from. Expected
 * values: CLUSTER KEYSLOT of redis-server 7.0.15 (the specification's example "123456789" is
 * 12739); the hash-tag rules: the first '{' and the next '}', an empty tag hashes the key. */
static void test_key_slot(void)
{
    static const struct {
        const char *key;
        unsigned slot;
    } cases[] = {
        {"123456789", 12739},
        {"aw:{7062}:u:c7062-user00@example.org", 323},
        {"aw:{7143}:~migrating", 48},
        {"aw:{1001}:a:11:p", 15391},
        {"aw:due", 10412},
        {"{aw:due}:seq", 10412},
        {"aw:{aw:due}:~migrating", 10412},
        {"aw:{leader}:lease", 11447},
        {"foo{}{bar}", 8363},
        {"foo{{bar}}zap", 4015},
        {"foo{bar}{zap}", 5061},
        {"{}", 15257},
        {"a{b", 13340},
        {"", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        AW_CHECK_MSG(aw_redis_key_slot(cases[i].key, strlen(cases[i].key)) == cases[i].slot,
                     "%s: %u, CLUSTER KEYSLOT says %u", cases[i].key,
                     aw_redis_key_slot(cases[i].key, strlen(cases[i].key)), cases[i].slot);
}

int main(void)
{
    test_ok();
    test_bad();
    test_hostport();
    test_key_slot();
    return aw_test_done();
}
