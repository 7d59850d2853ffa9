"""tests/db/shard_writer.py: an application writing to a sharded table the
way docs/db.md ("Sharding", the client recipe) says: key -> slot -> cluster
from the published map, the map read again when a cluster refuses a slot
(SQLSTATE IAC01) or the file changes.

usage: shard_writer.py MAPFILE FIRST_ID STOPFILE OUT.json   (password in PGPASSWORD)
Inserts (id, customer_id = id) with ids from FIRST_ID, one row per
transaction, until STOPFILE exists; every row is retried until a cluster
acknowledges it. Writes {"acked": [ids], "refused": N, "longest_wait_ms": ms,
"errors": [first lines]} to OUT.json."""
import hashlib
import json
import os
import sys
import time

import psycopg2


def slot_of(key, slots):
    h = int.from_bytes(hashlib.md5(str(key).encode()).digest()[:4], "big")
    return (h * slots) >> 32


def load(path):
    while True:
        try:
            with open(path) as f:
                return json.load(f), os.stat(path).st_mtime_ns
        except (OSError, ValueError):
            time.sleep(0.01)


mapfile, next_id, stopfile, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
doc, mtime = load(mapfile)
conns, acked, errors = {}, [], []
refused, longest = 0, 0.0


def conn_for(cluster):
    if cluster not in conns:
        host, port = doc["clusters"][cluster]["rw"].rsplit(":", 1)
        c = psycopg2.connect(host=host, port=int(port), user="postgres", dbname=doc["database"],
                             password=os.environ["PGPASSWORD"], connect_timeout=2)
        c.autocommit = True
        conns[cluster] = c
    return conns[cluster]


while not os.path.exists(stopfile):
    i, first_try = next_id, None
    while True:
        try:
            if os.stat(mapfile).st_mtime_ns != mtime:
                doc, mtime = load(mapfile)
        except OSError:
            pass
        cluster = doc["map"][slot_of(i, doc["slots"])]
        try:
            with conn_for(cluster).cursor() as cur:
                cur.execute("insert into %s (id, %s) values (%%s, %%s)" % (doc["table"], doc["key"]), (i, i))
            break
        except psycopg2.Error as e:
            if e.pgcode == "23505" and first_try is not None:
                break   # an earlier try committed, its answer was lost
            if first_try is None:
                first_try = time.time()
            if e.pgcode == "IAC01":   # the slot is moving or moved: read the map again
                refused += 1
                doc, mtime = load(mapfile)
            else:
                errors.append(str(e).splitlines()[0] if str(e) else type(e).__name__)
                try:
                    conns.pop(cluster).close()
                except Exception:
                    pass
            time.sleep(0.005)
    if first_try is not None:
        longest = max(longest, (time.time() - first_try) * 1000)
    acked.append(i)
    next_id += 1
    time.sleep(0.002)
with open(out, "w") as f:
    json.dump({"acked": acked, "refused": refused, "longest_wait_ms": round(longest, 1), "errors": errors[:20]}, f)
