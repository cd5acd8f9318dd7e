/* core/config.h - envhub's settings: flags override environment variables,
 * which override defaults. Names follow SimplePySandbox where it has one
 * (SANDBOX_TIMEOUT, MAX_CODE_LENGTH, ...), ENVHUB_* otherwise. The table in
 * config.c is the single list; `envhub config` prints it with current values. */
#ifndef ENVHUB_CONFIG_H
#define ENVHUB_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/err.h"

struct config {
    char *listen;               /* ENVHUB_LISTEN: host:port (loopback by default) */
    char *db_path;              /* ENVHUB_DB: the SQLite catalog file */
    char *docker_host;          /* DOCKER_HOST: unix:///path of the engine socket */
    char *default_image;        /* DOCKER_IMAGE: image of jobs that name no environment */
    char *network_mode;         /* NETWORK_MODE: none or bridge for jobs */
    char *job_transport;        /* ENVHUB_JOB_TRANSPORT: agent or exec */
    char *work_dir;             /* WORK_DIR: the job's working directory in the sandbox */
    char *cors_origins;         /* ENVHUB_CORS_ORIGINS: comma-separated allowed origins */
    char *allowed_hosts;        /* ENVHUB_ALLOWED_HOSTS: Host names answered besides loopback */
    char *labels;               /* ENVHUB_LABELS: extra container labels k=v,k=v */
    char *registry;             /* ENVHUB_REGISTRY: host:port versions are pushed to; "": none */
    char *cluster;              /* ENVHUB_CLUSTER: "swarm", or "" (one engine) */
    char *node_key_file;        /* ENVHUB_NODE_KEY_FILE: the cluster's node key */
    char *log_level;            /* ENVHUB_LOG_LEVEL */
    char *tls_cert;             /* ENVHUB_TLS_CERT: PEM certificate (and key) for HTTPS */
    char *tls_key;              /* ENVHUB_TLS_KEY: PEM key when not in the certificate file */
    int64_t default_timeout;    /* SANDBOX_TIMEOUT: seconds when a request names none */
    int64_t max_timeout;        /* ENVHUB_MAX_TIMEOUT: the largest timeout a request may ask */
    int64_t max_code_length;    /* MAX_CODE_LENGTH: bytes of code */
    int64_t max_file_size;      /* MAX_FILE_SIZE: bytes of one input or output file */
    int64_t max_files;          /* ENVHUB_MAX_FILES: input files per request */
    int64_t max_body;           /* ENVHUB_MAX_BODY: bytes of a request body */
    int64_t memory_limit;       /* MEMORY_LIMIT: bytes of memory per job */
    int64_t cpu_millis;         /* CPU_LIMIT: thousandths of a CPU per job */
    int64_t pids_limit;         /* ENVHUB_PIDS_LIMIT: processes per job */
    int64_t workspace_size;     /* ENVHUB_WORKSPACE_SIZE: bytes of the /workspace tmpfs */
    int64_t tmp_size;           /* ENVHUB_TMP_SIZE: bytes of the /tmp tmpfs */
    int64_t tmpfs_inodes;       /* ENVHUB_TMPFS_INODES: inodes of each tmpfs */
    int64_t output_limit;       /* ENVHUB_OUTPUT_LIMIT: bytes kept of stdout and of stderr */
    int64_t output_files_limit; /* ENVHUB_OUTPUT_FILES_LIMIT: bytes of all output files of a job */
    int64_t max_output_files;   /* ENVHUB_MAX_OUTPUT_FILES: output files kept of a job */
    int64_t max_display;        /* ENVHUB_MAX_DISPLAY: pictures returned of a job */
    int64_t concurrent_limit;   /* CONCURRENT_LIMIT: jobs running at once */
    int64_t queue_limit;        /* ENVHUB_QUEUE_LIMIT: jobs waiting for a slot */
    int64_t server_threads;     /* ENVHUB_THREADS: HTTP worker threads (0: derived) */
    int64_t max_script_length;  /* ENVHUB_MAX_SCRIPT_LENGTH: characters of a setup script */
    int64_t build_timeout;      /* ENVHUB_BUILD_TIMEOUT: seconds a build may take */
    int64_t build_concurrency;  /* ENVHUB_BUILD_CONCURRENCY: builds at once */
    int64_t build_memory;       /* ENVHUB_BUILD_MEMORY: bytes of memory per build step */
    int64_t build_cpu_millis;   /* ENVHUB_BUILD_CPU: thousandths of a CPU per build */
    int64_t build_pids;         /* ENVHUB_BUILD_PIDS: processes of a build */
    int64_t quota_runner_concurrent;    /* ENVHUB_QUOTA_RUNNER_CONCURRENT (0: none) */
    int64_t quota_runner_per_minute;    /* ENVHUB_QUOTA_RUNNER_PER_MINUTE */
    int64_t quota_curator_concurrent;   /* ENVHUB_QUOTA_CURATOR_CONCURRENT */
    int64_t quota_curator_per_minute;   /* ENVHUB_QUOTA_CURATOR_PER_MINUTE */
    int64_t request_timeout_ms;         /* ENVHUB_REQUEST_TIMEOUT: ms a read or write may stall */
    int64_t request_deadline;           /* ENVHUB_REQUEST_DEADLINE: seconds for headers + body */
    int64_t max_connections_per_client; /* ENVHUB_MAX_CONNECTIONS_PER_CLIENT */
    int64_t body_memory;          /* ENVHUB_BODY_MEMORY: bytes of request bodies held at once */
    int64_t query_budget_ms;      /* ENVHUB_QUERY_BUDGET_MS: ms per history query */
    int64_t pool_size;            /* ENVHUB_POOL_SIZE: warm containers of the default image */
    int64_t pool_recycle;         /* ENVHUB_POOL_RECYCLE: jobs per container of the default image */
    int64_t pool_burst_recycle;   /* ENVHUB_POOL_BURST_RECYCLE: jobs per container in a burst */
    int64_t session_idle_timeout; /* ENVHUB_SESSION_IDLE_TIMEOUT: seconds */
    int64_t session_max_idle_timeout; /* ENVHUB_SESSION_MAX_IDLE_TIMEOUT: seconds */
    int64_t sessions_per_principal;   /* ENVHUB_SESSIONS_PER_PRINCIPAL */
    int64_t reaper_interval;          /* ENVHUB_REAPER_INTERVAL: seconds between checks at most */
    int64_t async_queue_limit;        /* ENVHUB_ASYNC_QUEUE_LIMIT: submitted jobs waiting */
    int64_t max_memory;               /* ENVHUB_MAX_MEMORY: the most a policy may give a job */
    int64_t max_cpu_millis;           /* ENVHUB_MAX_CPU */
    int64_t max_pids;                 /* ENVHUB_MAX_PIDS */
    int64_t max_output_limit;         /* ENVHUB_MAX_OUTPUT_LIMIT */
    int64_t max_workspace_size;       /* ENVHUB_MAX_WORKSPACE_SIZE */
    int64_t max_pool_size;            /* ENVHUB_MAX_POOL_SIZE: also the adaptive pools' ceiling */
    int64_t max_removal_backlog;      /* ENVHUB_MAX_REMOVAL_BACKLOG: containers waiting removal */
    int64_t allow_network;            /* ENVHUB_ALLOW_NETWORK: 1 lets policies choose bridge */
    char *callback_hosts;             /* ENVHUB_CALLBACK_HOSTS: hosts callbacks may reach */
    int64_t retire_grace;             /* ENVHUB_RETIRE_GRACE: seconds a retired environment
                                       * keeps its images */
    int64_t drift_interval;           /* ENVHUB_DRIFT_INTERVAL: seconds between drift checks */
    int64_t output_budget;  /* ENVHUB_OUTPUT_BUDGET: output bytes a principal may store per
                             * UTC day (0: no limit) */
    int64_t retention_days; /* ENVHUB_RETENTION_DAYS: days output is kept (0: forever) */
    int64_t min_free_disk;  /* ENVHUB_MIN_FREE_DISK: /health warns below it (0: never) */
    int64_t node_timeout;   /* ENVHUB_NODE_TIMEOUT: seconds of silence before a node is lost */
};

/* Fill *cfg from defaults, then the environment, then argv's --flag VALUE or
 * --flag=VALUE pairs. Arguments that are not known flags are left in place:
 * *ret_argc/argv are rewritten to hold only them (argv[0] kept). ERR_INVALID
 * names the flag or variable and the accepted range. */
int config_load(struct config *cfg, int *argc, char **argv, struct err *err);
void config_release(struct config *cfg);
/* The settings table, Markdown, with the current values (for `envhub config`). */
void config_print(const struct config *cfg, FILE *out);

/* One setting of the table as a command line knows it. */
struct config_flag {
    const char *flag; /* without the leading "--"; every flag takes a value */
    const char *env;  /* its environment variable */
    const char *def;  /* its default, as text */
    const char *help; /* one line */
};
/* The @i-th setting of the table, in order (for command-line parsers and their
 * help): fills *ret and returns true, or false past the last. The strings are
 * static. Pure and thread-safe. */
bool config_flag_get(size_t i, struct config_flag *ret);

#endif
