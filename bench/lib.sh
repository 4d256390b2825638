# shellcheck shell=bash
# bench/lib.sh -- helpers shared by the benchmark scripts; source it after
# tests/integration/lib.sh (redis_cmd comes from there).
#   field KEY FILE             the value of a "key=value" line of FILE
#   info_field SECTION FIELD...  the sum of those fields of Redis's INFO SECTION
#   redis_cpu_s                Redis's CPU seconds so far (used_cpu_user + used_cpu_sys)
#   redis_mem_b                Redis's used_memory

field() { awk -F= -v k="$1" '$1 == k { print $2 }' "$2"; }
info_field() {
    redis_cmd info "$1" | tr -d '\r' | awk -F: -v f="${*:2}" '
        BEGIN { n = split(f, want, " ") } { for (i = 1; i <= n; i++) if ($1 == want[i]) s += $2 }
        END { printf "%.6f\n", s }'
}
redis_cpu_s() { info_field cpu used_cpu_user used_cpu_sys; }
redis_mem_b() { info_field memory used_memory; }
