/* core/config.c - one table of settings; each knows its flag, variable, default and bounds. */
#include "core/config.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "core/xalloc.h"

#include "core/banned.h"

enum opt_type { OPT_STR, OPT_INT, OPT_SIZE, OPT_CPU };

struct opt {
    const char *flag; /* without the leading "--" */
    const char *env;
    enum opt_type type;
    size_t offset;
    const char *def;
    int64_t min, max;
    const char *help;
};

#define OFF(f) offsetof(struct config, f)
#define KIB 1024LL
#define MIB (1024LL * 1024)
#define GIB (1024LL * 1024 * 1024)

static const struct opt opts[] = {
    {"listen", "ENVHUB_LISTEN", OPT_STR, OFF(listen), "127.0.0.1:8000", 0, 0,
     "address the HTTP server listens on (host:port)"},
    {"db", "ENVHUB_DB", OPT_STR, OFF(db_path), "envhub.db", 0, 0, "the SQLite catalog file"},
    {"docker-host", "DOCKER_HOST", OPT_STR, OFF(docker_host), "unix:///var/run/docker.sock", 0, 0,
     "the Docker engine's socket"},
    {"image", "DOCKER_IMAGE", OPT_STR, OFF(default_image), "envhub/python:bookworm", 0, 0,
     "image of jobs that name no environment"},
    {"network-mode", "NETWORK_MODE", OPT_STR, OFF(network_mode), "none", 0, 0,
     "network of jobs: none or bridge"},
    {"job-transport", "ENVHUB_JOB_TRANSPORT", OPT_STR, OFF(job_transport), "agent", 0, 0,
     "how a job reaches its container: agent (handed to envhub's agent, the container's main "
     "process, through attach) or exec (a new process per job)"},
    {"work-dir", "WORK_DIR", OPT_STR, OFF(work_dir), "/workspace", 0, 0,
     "working directory of jobs inside the sandbox"},
    {"cors-origins", "ENVHUB_CORS_ORIGINS", OPT_STR, OFF(cors_origins), "", 0, 0,
     "comma-separated origins allowed to call the API from a browser (none by default)"},
    {"allowed-hosts", "ENVHUB_ALLOWED_HOSTS", OPT_STR, OFF(allowed_hosts), "", 0, 0,
     "Host names the server answers to besides localhost, 127.0.0.1, [::1] and the listen "
     "address (comma-separated)"},
    {"registry", "ENVHUB_REGISTRY", OPT_STR, OFF(registry), "", 0, 0,
     "registry (host:port) every environment version is pushed to after its build and "
     "recorded by digest; none by default"},
    {"cluster", "ENVHUB_CLUSTER", OPT_STR, OFF(cluster), "", 0, 0,
     "swarm: jobs run on the nodes (`envhub node` beside each engine) that report to this "
     "server; empty: on DOCKER_HOST's engine"},
    {"node-key-file", "ENVHUB_NODE_KEY_FILE", OPT_STR, OFF(node_key_file), "", 0, 0,
     "file holding the cluster's node key (at least 16 bytes): nodes prove who they are with "
     "tokens made from it; needed with ENVHUB_CLUSTER"},
    {"node-timeout", "ENVHUB_NODE_TIMEOUT", OPT_INT, OFF(node_timeout), "10", 2, 3600,
     "seconds of silence after which a node is lost: its running jobs end interrupted, its "
     "unstarted ones go to other nodes"},
    {"labels", "ENVHUB_LABELS", OPT_STR, OFF(labels), "", 0, 0,
     "extra labels on every container envhub creates (k=v,k=v)"},
    {"callback-hosts", "ENVHUB_CALLBACK_HOSTS", OPT_STR, OFF(callback_hosts), "", 0, 0,
     "hosts (names or addresses) callback_url may name, comma-separated; none by default; a "
     "loopback or private address must be listed itself"},
    {"log-level", "ENVHUB_LOG_LEVEL", OPT_STR, OFF(log_level), "info", 0, 0,
     "error, warn, info or debug"},
    {"tls-cert", "ENVHUB_TLS_CERT", OPT_STR, OFF(tls_cert), "", 0, 0,
     "PEM file with the server's certificate (and key): serve HTTPS"},
    {"tls-key", "ENVHUB_TLS_KEY", OPT_STR, OFF(tls_key), "", 0, 0,
     "PEM file with the private key, when it is not in ENVHUB_TLS_CERT"},
    {"timeout", "SANDBOX_TIMEOUT", OPT_INT, OFF(default_timeout), "30", 1, 86400,
     "seconds a job may run when the request names no timeout"},
    {"max-timeout", "ENVHUB_MAX_TIMEOUT", OPT_INT, OFF(max_timeout), "300", 1, 86400,
     "the largest timeout a request may ask for (seconds)"},
    {"max-code-length", "MAX_CODE_LENGTH", OPT_INT, OFF(max_code_length), "50000", 1, 16 * MIB,
     "bytes of code per request"},
    {"max-file-size", "MAX_FILE_SIZE", OPT_SIZE, OFF(max_file_size), "10485760", 1, GIB,
     "bytes of one input or output file"},
    {"max-files", "ENVHUB_MAX_FILES", OPT_INT, OFF(max_files), "100", 0, 10000,
     "input files per request"},
    {"max-body", "ENVHUB_MAX_BODY", OPT_SIZE, OFF(max_body), "64m", 64 * KIB, 4 * GIB,
     "bytes of a request body"},
    {"memory-limit", "MEMORY_LIMIT", OPT_SIZE, OFF(memory_limit), "512m", 6 * MIB, 1024 * GIB,
     "memory of one job"},
    {"cpu-limit", "CPU_LIMIT", OPT_CPU, OFF(cpu_millis), "1.0", 10, 1024000, "CPUs of one job"},
    {"pids-limit", "ENVHUB_PIDS_LIMIT", OPT_INT, OFF(pids_limit), "128", 8, 1000000,
     "processes and threads of one job"},
    {"workspace-size", "ENVHUB_WORKSPACE_SIZE", OPT_SIZE, OFF(workspace_size), "128m", MIB,
     1024 * GIB, "size of a job's /workspace (tmpfs)"},
    {"tmp-size", "ENVHUB_TMP_SIZE", OPT_SIZE, OFF(tmp_size), "64m", MIB, 1024 * GIB,
     "size of a job's /tmp (tmpfs)"},
    {"tmpfs-inodes", "ENVHUB_TMPFS_INODES", OPT_INT, OFF(tmpfs_inodes), "8192", 64, 100000000,
     "files and folders a job may create in each tmpfs"},
    {"output-limit", "ENVHUB_OUTPUT_LIMIT", OPT_SIZE, OFF(output_limit), "1m", 1 * KIB, GIB,
     "bytes kept of a job's stdout and of its stderr"},
    {"output-files-limit", "ENVHUB_OUTPUT_FILES_LIMIT", OPT_SIZE, OFF(output_files_limit), "64m",
     KIB, 16 * GIB, "bytes of all output files of one job"},
    {"max-output-files", "ENVHUB_MAX_OUTPUT_FILES", OPT_INT, OFF(max_output_files), "1000", 1,
     1000000, "output files kept of one job; the rest are listed in files_skipped"},
    {"max-display", "ENVHUB_MAX_DISPLAY", OPT_INT, OFF(max_display), "20", 0, 1000,
     "pictures (matplotlib figures) returned of one job; 0: none"},
    {"concurrent-limit", "CONCURRENT_LIMIT", OPT_INT, OFF(concurrent_limit), "10", 1, 1000,
     "jobs running at once"},
    {"queue-limit", "ENVHUB_QUEUE_LIMIT", OPT_INT, OFF(queue_limit), "50", 0, 10000,
     "jobs waiting for a slot before 429"},
    {"threads", "ENVHUB_THREADS", OPT_INT, OFF(server_threads), "0", 0, 10000,
     "HTTP worker threads (0: concurrent + queue limits + 8 clients at their connection limit)"},
    {"max-script-length", "ENVHUB_MAX_SCRIPT_LENGTH", OPT_INT, OFF(max_script_length), "10000", 1,
     16 * MIB, "characters of an environment's setup script"},
    {"build-timeout", "ENVHUB_BUILD_TIMEOUT", OPT_INT, OFF(build_timeout), "1800", 10, 86400,
     "seconds an environment build may take"},
    {"build-concurrency", "ENVHUB_BUILD_CONCURRENCY", OPT_INT, OFF(build_concurrency), "2", 1, 64,
     "environment builds at once; the rest wait in order"},
    {"build-memory", "ENVHUB_BUILD_MEMORY", OPT_SIZE, OFF(build_memory), "2g", 64 * MIB, 1024 * GIB,
     "memory of each step of a build"},
    {"build-cpu", "ENVHUB_BUILD_CPU", OPT_CPU, OFF(build_cpu_millis), "2.0", 100, 1024000,
     "CPUs of a build"},
    {"build-pids", "ENVHUB_BUILD_PIDS", OPT_INT, OFF(build_pids), "1024", 16, 1000000,
     "processes of a build (where the engine is local)"},
    {"quota-runner-concurrent", "ENVHUB_QUOTA_RUNNER_CONCURRENT", OPT_INT,
     OFF(quota_runner_concurrent), "5", 0, 100000,
     "executions a runner key may have running at once (0: no limit)"},
    {"quota-runner-per-minute", "ENVHUB_QUOTA_RUNNER_PER_MINUTE", OPT_INT,
     OFF(quota_runner_per_minute), "120", 0, 1000000,
     "executions a runner key may start per minute (0: no limit)"},
    {"quota-curator-concurrent", "ENVHUB_QUOTA_CURATOR_CONCURRENT", OPT_INT,
     OFF(quota_curator_concurrent), "5", 0, 100000,
     "executions a curator key may have running at once (0: no limit)"},
    {"quota-curator-per-minute", "ENVHUB_QUOTA_CURATOR_PER_MINUTE", OPT_INT,
     OFF(quota_curator_per_minute), "120", 0, 1000000,
     "executions a curator key may start per minute (0: no limit)"},
    {"pool-size", "ENVHUB_POOL_SIZE", OPT_INT, OFF(pool_size), "2", 0, 1000,
     "warm (started, waiting) sandbox containers of the default image"},
    {"pool-recycle", "ENVHUB_POOL_RECYCLE", OPT_INT, OFF(pool_recycle), "1", 1, 100000,
     "jobs one container of the default image may serve (1: a fresh one each; more is weaker "
     "isolation)"},
    {"pool-burst-recycle", "ENVHUB_POOL_BURST_RECYCLE", OPT_INT, OFF(pool_burst_recycle), "20", 1,
     100000,
     "jobs one container may serve for one key while its pool has no fresh container to offer "
     "(a burst that outruns container creation; 1: never)"},
    {"session-idle-timeout", "ENVHUB_SESSION_IDLE_TIMEOUT", OPT_INT, OFF(session_idle_timeout),
     "3600", 1, 7 * 86400, "seconds a session may stay idle before it is closed"},
    {"session-max-idle-timeout", "ENVHUB_SESSION_MAX_IDLE_TIMEOUT", OPT_INT,
     OFF(session_max_idle_timeout), "86400", 1, 30 * 86400,
     "the largest idle timeout a session may ask for (seconds)"},
    {"sessions-per-principal", "ENVHUB_SESSIONS_PER_PRINCIPAL", OPT_INT,
     OFF(sessions_per_principal), "5", 1, 10000, "sessions one caller may have open"},
    {"reaper-interval", "ENVHUB_REAPER_INTERVAL", OPT_INT, OFF(reaper_interval), "30", 1, 3600,
     "seconds the idle reaper sleeps at most between checks"},
    {"async-queue-limit", "ENVHUB_ASYNC_QUEUE_LIMIT", OPT_INT, OFF(async_queue_limit), "1000", 1,
     1000000, "submitted (asynchronous) jobs waiting to run before 429"},
    {"max-memory", "ENVHUB_MAX_MEMORY", OPT_SIZE, OFF(max_memory), "4g", 6 * MIB, 1024 * GIB,
     "the most memory an environment's policy may give a job"},
    {"max-cpu", "ENVHUB_MAX_CPU", OPT_CPU, OFF(max_cpu_millis), "2.0", 10, 1024000,
     "the most CPUs an environment's policy may give a job"},
    {"max-pids", "ENVHUB_MAX_PIDS", OPT_INT, OFF(max_pids), "1024", 8, 1000000,
     "the most processes an environment's policy may give a job"},
    {"max-output-limit", "ENVHUB_MAX_OUTPUT_LIMIT", OPT_SIZE, OFF(max_output_limit), "16m", KIB,
     GIB, "the largest output cap an environment's policy may set"},
    {"max-workspace-size", "ENVHUB_MAX_WORKSPACE_SIZE", OPT_SIZE, OFF(max_workspace_size), "1g",
     MIB, 1024 * GIB, "the largest /workspace an environment's policy may give a job"},
    {"max-pool-size", "ENVHUB_MAX_POOL_SIZE", OPT_INT, OFF(max_pool_size), "10", 0, 1000,
     "the largest warm pool: the most an environment's policy may ask for, and the most a pool "
     "grows to when its recent demand outruns its refills"},
    {"max-removal-backlog", "ENVHUB_MAX_REMOVAL_BACKLOG", OPT_INT, OFF(max_removal_backlog), "32",
     1, 1000000,
     "finished containers waiting to be removed; at this many, new jobs wait for removals before "
     "they take a container"},
    {"allow-network", "ENVHUB_ALLOW_NETWORK", OPT_INT, OFF(allow_network), "0", 0, 1,
     "1: environments' policies may give jobs a network (bridge); 0: never"},
    {"request-timeout", "ENVHUB_REQUEST_TIMEOUT", OPT_INT, OFF(request_timeout_ms), "30000", 1000,
     3600000, "milliseconds a client may stall while sending a request or reading an answer"},
    {"request-deadline", "ENVHUB_REQUEST_DEADLINE", OPT_INT, OFF(request_deadline), "60", 1, 86400,
     "seconds a client has to send a request's headers and body, whatever its pace"},
    {"max-connections-per-client", "ENVHUB_MAX_CONNECTIONS_PER_CLIENT", OPT_INT,
     OFF(max_connections_per_client), "32", 1, 100000,
     "connections one client address may hold open; more are refused at once (429)"},
    {"body-memory", "ENVHUB_BODY_MEMORY", OPT_SIZE, OFF(body_memory), "256m", 64 * KIB, 64 * GIB,
     "bytes of request bodies all requests may hold in memory at once (503 past it)"},
    {"query-budget-ms", "ENVHUB_QUERY_BUDGET_MS", OPT_INT, OFF(query_budget_ms), "2000", 0, 3600000,
     "milliseconds a history query (a list, a search, statistics, an export's batch) may run "
     "before it is stopped with a 422 (0: no limit)"},
    {"retire-grace", "ENVHUB_RETIRE_GRACE", OPT_INT, OFF(retire_grace), "604800", 0,
     10 * 365 * 86400LL, "seconds a retired environment keeps its images (then they are removed)"},
    {"drift-interval", "ENVHUB_DRIFT_INTERVAL", OPT_INT, OFF(drift_interval), "3600", 0, 30 * 86400,
     "seconds between checks of environments' base images for drift (0: never)"},
    {"output-budget", "ENVHUB_OUTPUT_BUDGET", OPT_SIZE, OFF(output_budget), "1g", 0,
     1024 * 1024 * GIB,
     "output bytes (stdout + stderr as stored) one caller's executions may store per UTC day; "
     "past it, new executions are refused (429) until the next day (0: no limit)"},
    {"retention-days", "ENVHUB_RETENTION_DAYS", OPT_INT, OFF(retention_days), "0", 0, 36500,
     "days executions keep their stdout and stderr; older output is dropped, its sha256 and size "
     "kept (0: forever)"},
    {"min-free-disk", "ENVHUB_MIN_FREE_DISK", OPT_SIZE, OFF(min_free_disk), "1g", 0,
     1024 * 1024 * GIB,
     "/health warns when the catalog's file system has less free space than this (0: never)"},
};

static int opt_set(struct config *cfg, const struct opt *o, const char *value, const char *source,
                   struct err *err)
{
    char *base = (char *)cfg + o->offset;
    int64_t v;

    switch (o->type) {
    case OPT_STR:
        free(*(char **)base);
        *(char **)base = xstrdup(value);
        return 0;
    case OPT_INT:
        if (parse_int(value, o->min, o->max, &v) < 0)
            return err_set(err, ERR_INVALID, "%s '%s' must be an integer from %lld to %lld", source,
                           value, (long long)o->min, (long long)o->max);
        break;
    case OPT_SIZE:
        if (parse_size(value, &v) < 0 || v < o->min || v > o->max)
            return err_set(
                err, ERR_INVALID,
                "%s '%s' must be a size (bytes, or with k, m, g) from %lld to %lld bytes", source,
                value, (long long)o->min, (long long)o->max);
        break;
    case OPT_CPU: {
        char *end;
        double d = strtod(value, &end);
        /* NaN compares false with everything: refuse it before the range check */
        if (end == value || *end || d != d || !(d * 1000 >= (double)o->min) ||
            !(d * 1000 <= (double)o->max))
            return err_set(err, ERR_INVALID, "%s '%s' must be a number of CPUs from %.2f to %.0f",
                           source, value, (double)o->min / 1000, (double)o->max / 1000);
        v = (int64_t)(d * 1000 + 0.5);
        break;
    }
    default:
        return err_set(err, ERR_INTERNAL, "unknown option type");
    }
    *(int64_t *)base = v;
    return 0;
}

static const struct opt *opt_by_flag(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
        if (strlen(opts[i].flag) == len && strncmp(opts[i].flag, name, len) == 0)
            return &opts[i];
    return NULL;
}

/* "host:port": a name or IPv4 address, a port 1..65535; nothing else (no
 * scheme, no path: the engine pushes to it by that name). */
static bool registry_ok(const char *r)
{
    size_t host = strspn(r, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-");
    if (host == 0 || host > 253 || r[host] != ':')
        return false;
    const char *port = r + host + 1;
    size_t digits = strspn(port, "0123456789");
    if (digits == 0 || digits > 5 || port[digits] != '\0')
        return false;
    long p = strtol(port, NULL, 10);
    return p >= 1 && p <= 65535;
}

static int config_check(const struct config *cfg, struct err *err)
{
    if (strcmp(cfg->network_mode, "none") != 0 && strcmp(cfg->network_mode, "bridge") != 0)
        return err_set(err, ERR_INVALID, "NETWORK_MODE '%s' must be none or bridge",
                       cfg->network_mode);
    if (strcmp(cfg->job_transport, "agent") != 0 && strcmp(cfg->job_transport, "exec") != 0)
        return err_set(err, ERR_INVALID, "ENVHUB_JOB_TRANSPORT must be agent or exec, not '%s'",
                       cfg->job_transport);
    if (log_level_parse(cfg->log_level) < 0)
        return err_set(err, ERR_INVALID, "ENVHUB_LOG_LEVEL '%s' must be error, warn, info or debug",
                       cfg->log_level);
    if (cfg->default_timeout > cfg->max_timeout)
        return err_set(err, ERR_INVALID, "SANDBOX_TIMEOUT %lld exceeds ENVHUB_MAX_TIMEOUT %lld",
                       (long long)cfg->default_timeout, (long long)cfg->max_timeout);
    if (cfg->work_dir[0] != '/')
        return err_set(err, ERR_INVALID, "WORK_DIR '%s' must be an absolute path", cfg->work_dir);
    if (strncmp(cfg->docker_host, "unix://", 7) != 0)
        return err_set(err, ERR_INVALID, "DOCKER_HOST '%s' must be unix:///path/to/docker.sock",
                       cfg->docker_host);
    if (cfg->cluster[0] && strcmp(cfg->cluster, "swarm") != 0)
        return err_set(err, ERR_INVALID,
                       "ENVHUB_CLUSTER '%.100s' must be swarm or empty (one engine)", cfg->cluster);
    if (cfg->cluster[0] && !cfg->node_key_file[0])
        return err_set(err, ERR_INVALID,
                       "ENVHUB_CLUSTER=swarm needs ENVHUB_NODE_KEY_FILE: a file with the node key "
                       "(e.g. head -c 32 /dev/urandom | base64 > node.key)");
    if (cfg->registry[0] && !registry_ok(cfg->registry))
        return err_set(err, ERR_INVALID,
                       "ENVHUB_REGISTRY '%.200s' must be host:port (a name or an address and a "
                       "port, no scheme or path), e.g. 127.0.0.1:5000",
                       cfg->registry);
    if (cfg->body_memory < cfg->max_body)
        return err_set(err, ERR_INVALID,
                       "ENVHUB_BODY_MEMORY %lld is less than ENVHUB_MAX_BODY %lld: a body of the "
                       "largest size could never be read",
                       (long long)cfg->body_memory, (long long)cfg->max_body);
    return 0;
}

int config_load(struct config *cfg, int *argc, char **argv, struct err *err)
{
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
        if (opt_set(cfg, &opts[i], opts[i].def, "default", err) < 0)
            return -1;
    for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
        const char *v = getenv(opts[i].env);
        if (v && opt_set(cfg, &opts[i], v, opts[i].env, err) < 0)
            return -1;
    }

    int out = 1;
    for (int i = 1; i < *argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            while (i < *argc)
                argv[out++] = argv[i++];
            break;
        }
        if (strncmp(a, "--", 2) != 0) {
            argv[out++] = argv[i];
            continue;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        const struct opt *o = opt_by_flag(name, eq ? (size_t)(eq - name) : strlen(name));
        if (!o) {
            argv[out++] = argv[i];
            continue;
        }
        const char *value = eq ? eq + 1 : NULL;
        if (!value) {
            if (i + 1 >= *argc)
                return err_set(err, ERR_INVALID, "option '--%s' needs a value", o->flag);
            value = argv[++i];
        }
        char source[64];
        snprintf(source, sizeof(source), "--%s", o->flag);
        if (opt_set(cfg, o, value, source, err) < 0)
            return -1;
    }
    argv[out] = NULL;
    *argc = out;
    return config_check(cfg, err);
}

void config_release(struct config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
        if (opts[i].type == OPT_STR) {
            char **p = (char **)((char *)cfg + opts[i].offset);
            free(*p);
            *p = NULL;
        }
}

void config_print(const struct config *cfg, FILE *out)
{
    fprintf(out,
            "| flag | variable | default | current | meaning |\n| --- | --- | --- | --- | --- |\n");
    for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
        const struct opt *o = &opts[i];
        const char *base = (const char *)cfg + o->offset;
        if (o->def[0])
            fprintf(out, "| `--%s` | `%s` | `%s` | ", o->flag, o->env, o->def);
        else
            fprintf(out, "| `--%s` | `%s` | (none) | ", o->flag, o->env);
        if (o->type == OPT_STR && !(*(char *const *)base)[0])
            fprintf(out, "(none)");
        else if (o->type == OPT_STR)
            fprintf(out, "`%s`", *(char *const *)base);
        else if (o->type == OPT_CPU)
            fprintf(out, "`%.3g`", (double)*(const int64_t *)base / 1000);
        else
            fprintf(out, "`%lld`", (long long)*(const int64_t *)base);
        fprintf(out, " | %s |\n", o->help);
    }
}

bool config_flag_get(size_t i, struct config_flag *ret)
{
    if (i >= sizeof(opts) / sizeof(opts[0]))
        return false;
    *ret = (struct config_flag){
        .flag = opts[i].flag, .env = opts[i].env, .def = opts[i].def, .help = opts[i].help};
    return true;
}
