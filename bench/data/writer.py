"""bench/data/writer.py: timestamped inserts through a PostgreSQL port until
a deadline, reconnecting after any error; prints JSON: each acknowledged
commit (id, time) and each error (time, first line).

usage: writer.py HOST PORT SECONDS   (password in PGPASSWORD)
A row whose commit was acknowledged must survive: ids are unique, so the
rows lost are the acknowledged ids missing from the table afterwards."""
import json
import os
import sys
import time

import psycopg2

host, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
end = time.time() + seconds
acked, errors, conn, i = [], [], None, 0
while time.time() < end:
    i += 1
    try:
        if conn is None:
            conn = psycopg2.connect(host=host, port=port, user="postgres", dbname="postgres",
                                    password=os.environ["PGPASSWORD"], connect_timeout=1,
                                    options="-c statement_timeout=2000")
            conn.autocommit = True
        t = time.time()
        with conn.cursor() as cur:
            cur.execute("insert into bench_w (id, ts) values (%s, %s)", (i, t))
        acked.append([i, time.time()])
    except Exception as e:  # any failure: note it, reconnect
        errors.append([time.time(), str(e).splitlines()[0] if str(e) else type(e).__name__])
        try:
            conn.close()
        except Exception:
            pass
        conn = None
        time.sleep(0.01)
        continue
    time.sleep(0.005)
print(json.dumps({"acked": acked, "errors": errors}))
