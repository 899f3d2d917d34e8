"""The tutorial's worker, as written: INCR "contador", print the count, sleep 2 s.

bench/run measures it against counter-worker. Only the host, port and interval can be
set (REDIS_HOST, REDIS_PORT, INTERVAL in seconds) so that the benchmark can point it at
its own Redis; the defaults are the tutorial's. Everything else is left as it was,
including what happens when Redis goes away.
"""

import os
import time

import redis

r = redis.Redis(
    host=os.environ.get("REDIS_HOST", "redis"),
    port=int(os.environ.get("REDIS_PORT", "6379")),
)
interval = float(os.environ.get("INTERVAL", "2"))

while True:
    n = r.incr("contador")
    print(f"Contador atual: {n}")
    time.sleep(interval)
