"""psycopg2 with its default settings (autocommit off: every statement inside
a transaction psycopg2 opens with BEGIN), or a SQLAlchemy Session over it,
reading rows another connection commits, through the proxy with
transaction_reads = "replica".

Usage: psycopg2_transactions.py DSN SECONDS [psycopg2|sqlalchemy]

A writer thread inserts rows in autocommit mode and publishes the highest id
it was told committed; the reader, before each read, takes that id, and the
read must see it (max(id) >= it): otherwise the read was stale. Prints a JSON
report: reads, stale reads, and the port of the node that served each read
(inet_server_port()).
"""

import json
import sys
import threading
import time

import psycopg2


def main():
    dsn, seconds = sys.argv[1], float(sys.argv[2])
    deadline = time.monotonic() + seconds
    committed = [0]
    lock = threading.Lock()

    setup = psycopg2.connect(dsn)
    setup.autocommit = True
    with setup.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS py_fresh (id bigint PRIMARY KEY)")
    setup.close()

    def write():
        conn = psycopg2.connect(dsn)
        conn.autocommit = True
        next_id = 0
        with conn.cursor() as cur:
            while time.monotonic() < deadline:
                next_id += 1
                cur.execute("INSERT INTO py_fresh VALUES (%s)", (next_id,))
                with lock:
                    committed[0] = next_id
                time.sleep(0.005)
        conn.close()

    writer = threading.Thread(target=write)
    writer.start()

    reads, stale, ports = 0, 0, []

    def check(seen, port, before):
        nonlocal reads, stale
        reads += 1
        if seen < before:
            stale += 1
        ports.append(port)

    query = "SELECT coalesce(max(id), 0), inet_server_port() FROM py_fresh"
    if len(sys.argv) > 3 and sys.argv[3] == "sqlalchemy":
        from sqlalchemy import create_engine, text
        from sqlalchemy.orm import Session

        engine = create_engine(dsn.replace("postgres://", "postgresql+psycopg2://", 1))
        while time.monotonic() < deadline:
            with Session(engine) as session:
                for _ in range(3):
                    with lock:
                        before = committed[0]
                    seen, port = session.execute(text(query)).one()
                    check(seen, port, before)
                session.commit()
        engine.dispose()
    else:
        conn = psycopg2.connect(dsn)  # the defaults: autocommit off
        assert not conn.autocommit
        while time.monotonic() < deadline:
            with conn.cursor() as cur:
                for _ in range(3):
                    with lock:
                        before = committed[0]
                    cur.execute(query)
                    seen, port = cur.fetchone()
                    check(seen, port, before)
            conn.commit()
        conn.close()
    writer.join()
    print(json.dumps({"reads": reads, "stale": stale, "read_ports": ports}))


if __name__ == "__main__":
    main()
