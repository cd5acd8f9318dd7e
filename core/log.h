/* core/log.h - one line per event on stderr:
 *     2026-01-02T10:00:00.123Z info web: request method=POST path=/execute status=200 ms=412
 * The level is checked before the arguments are formatted. Thread-safe: each
 * line is written with a single write(2). Never log keys, code or file contents. */
#ifndef ENVHUB_LOG_H
#define ENVHUB_LOG_H

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

extern enum log_level log_max_level;

/* "error", "warn", "info" or "debug" -> level; -1 when the name is unknown. */
int log_level_parse(const char *name);
void log_set_level(enum log_level level);
void log_write(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_at(level, ...)                                                                         \
    do {                                                                                           \
        if ((level) <= log_max_level)                                                              \
            log_write((level), __VA_ARGS__);                                                       \
    } while (0)
#define log_error(...) log_at(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_at(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_at(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_at(LOG_DEBUG, __VA_ARGS__)

#endif
