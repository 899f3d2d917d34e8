/*
 * The floor: the least a program needs to keep counter-worker's promise, so that the
 * benchmark can say how far counter-worker is from what is physically possible.
 *
 * One INCR of KEY every INTERVAL_MS on a fixed grid (a slow INCR does not push later
 * ticks back; missed ticks are skipped), "Contador atual: N" on stdout after each, and
 * exit 0 at once on SIGTERM, SIGINT or SIGHUP. It keeps the connection rules that
 * counter-worker is held to: a connection that Redis closed while idle is replaced
 * before the tick's INCR is sent, so the tick still counts; while Redis is unreachable
 * there is at most one connection attempt per max(interval, 100 ms) and no other
 * wake-up; connects and replies are bounded by 2 s, as in counter-worker.
 *
 * bench/run builds it statically with -Os against Debian's libhiredis.a.
 * Usage: floor_worker HOST PORT KEY INTERVAL_MS
 */
#define _GNU_SOURCE /* ppoll */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#define NS_PER_MS 1000000LL
#define NS_PER_S 1000000000LL

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig) { stop_signal = sig; }

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * NS_PER_S + t.tv_nsec;
}

/* The first grid point anchor + k * interval at or after `at`. */
static int64_t grid_at_or_after(int64_t anchor, int64_t interval, int64_t at) {
    if (at <= anchor) return anchor;
    return anchor + (at - anchor + interval - 1) / interval * interval;
}

/* Sleeps until `deadline`; returns nonzero when a stop signal came first. The stop
 * signals are blocked everywhere else and unblocked only inside ppoll, so one that
 * arrives just before the sleep still ends it at once. */
static int sleep_until(int64_t deadline, const sigset_t *unblocked) {
    for (;;) {
        if (stop_signal) return 1;
        int64_t left = deadline - now_ns();
        if (left <= 0) return 0;
        struct timespec rel = {left / NS_PER_S, left % NS_PER_S};
        if (ppoll(NULL, 0, &rel, unblocked) < 0 && errno != EINTR) return 0;
    }
}

/* An idle connection never has anything to read; readable means Redis closed it. */
static int closed_by_peer(const redisContext *c) {
    struct pollfd p = {c->fd, POLLIN, 0};
    return poll(&p, 1, 0) != 0;
}

static redisContext *connect_redis(const char *host, int port) {
    const struct timeval limit = {2, 0};
    redisContext *c = redisConnectWithTimeout(host, port, limit);
    if (c && !c->err && redisSetTimeout(c, limit) == REDIS_OK) return c;
    if (c) redisFree(c);
    return NULL;
}

static long parse_number(const char *text, const char *name, long min, long max) {
    char *end;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (errno || *end || end == text || value < min || value > max) {
        fprintf(stderr, "floor_worker: %s must be a number from %ld to %ld, got \"%s\"\n",
                name, min, max, text);
        exit(2);
    }
    return value;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: floor_worker HOST PORT KEY INTERVAL_MS\n");
        return 2;
    }
    const char *host = argv[1], *key = argv[3];
    int port = (int)parse_number(argv[2], "PORT", 1, 65535);
    int64_t interval = parse_number(argv[4], "INTERVAL_MS", 1, 86400000L) * NS_PER_MS;
    int64_t retry_gap = interval > 100 * NS_PER_MS ? interval : 100 * NS_PER_MS;

    sigset_t stops, unblocked;
    sigemptyset(&stops);
    sigaddset(&stops, SIGTERM);
    sigaddset(&stops, SIGINT);
    sigaddset(&stops, SIGHUP);
    sigprocmask(SIG_BLOCK, &stops, &unblocked);
    struct sigaction action = {0};
    action.sa_handler = on_signal;
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGHUP, &action, NULL);
    setvbuf(stdout, NULL, _IOLBF, 0);

    redisContext *c = NULL;
    int down_reported = 0;
    int64_t anchor = now_ns(), next = anchor;
    while (!sleep_until(next, &unblocked)) {
        if (c && closed_by_peer(c)) {
            redisFree(c);
            c = NULL;
        }
        if (!c && !(c = connect_redis(host, port))) {
            if (!down_reported) fprintf(stderr, "cannot connect to %s:%d\n", host, port);
            down_reported = 1;
            /* The gap counts from this attempt's grid point, not from when it failed. */
            int64_t now = now_ns();
            next = grid_at_or_after(anchor, interval,
                                    next + retry_gap > now ? next + retry_gap : now);
            continue;
        }
        down_reported = 0;
        redisReply *reply = redisCommand(c, "INCR %s", key);
        if (!reply) {
            fprintf(stderr, "INCR failed: %s\n", c->errstr);
            redisFree(c);
            c = NULL;
        } else if (reply->type == REDIS_REPLY_INTEGER) {
            printf("Contador atual: %lld\n", reply->integer);
        } else {
            fprintf(stderr, "Redis refused INCR: %s\n", reply->str ? reply->str : "?");
        }
        if (reply) freeReplyObject(reply);
        next = grid_at_or_after(anchor, interval, now_ns() + 1);
    }
    if (c) redisFree(c);
    printf("stopped on %s\n", stop_signal == SIGTERM ? "SIGTERM"
                              : stop_signal == SIGINT ? "SIGINT" : "SIGHUP");
    return 0;
}
