"""psycopg 3 through the pgrw proxy: one scenario per run.

    python3 psycopg3_client.py SCENARIO DSN

Each scenario checks its data itself (an assertion failure exits non-zero) and
prints one JSON object: the ports of the nodes that served its statements
(`inet_server_port()`), by kind, and counts of rows written and read back.
The Rust test (tests/clients_python.rs) maps ports to nodes and checks routing.
"""

import json
import sys
import threading
import time

import psycopg

ROWS = 40


def prepared_reads(dsn):
    """Reads outside transactions, as named server-side prepared statements."""
    ports = []
    # prepare_threshold=0: every statement is prepared (Parse with a name) from its first run.
    with psycopg.connect(dsn, autocommit=True, prepare_threshold=0) as conn:
        for n in range(ROWS):
            port, doubled = conn.execute(
                "SELECT inet_server_port(), %s::int * 2", (n,)).fetchone()
            assert doubled == 2 * n, (n, doubled)
            ports.append(port)
    # prepare=True: this statement is prepared now, whatever the threshold.
    with psycopg.connect(dsn, autocommit=True) as conn:
        with conn.cursor() as cur:
            for n in range(ROWS):
                cur.execute("SELECT inet_server_port(), %s::text || '!'", (str(n),),
                            prepare=True)
                port, shout = cur.fetchone()
                assert shout == f"{n}!", (n, shout)
                ports.append(port)
    return {"read_ports": ports}


def create_note_table(conn):
    conn.execute("CREATE TABLE note (id int PRIMARY KEY, body text NOT NULL)")


def prepared_writes_read_back(dsn):
    """Prepared inserts on one connection, each read back at once on another."""
    write_ports = []
    found = 0
    with psycopg.connect(dsn, autocommit=True, prepare_threshold=0) as writer, \
            psycopg.connect(dsn, autocommit=True, prepare_threshold=0) as reader:
        create_note_table(writer)
        for n in range(ROWS):
            (port,) = writer.execute(
                "INSERT INTO note VALUES (%s, %s) RETURNING inet_server_port()",
                (n, f"note {n}")).fetchone()
            write_ports.append(port)
            row = reader.execute("SELECT body FROM note WHERE id = %s", (n,)).fetchone()
            found += row == (f"note {n}",)
    return {"write_ports": write_ports, "written": ROWS, "found": found}


def transaction(dsn):
    """A read-write transaction (psycopg's default: not autocommit) with prepared statements."""
    ports = []
    with psycopg.connect(dsn, prepare_threshold=0) as conn:
        create_note_table(conn)
        conn.commit()
        with conn.transaction():
            for n in range(5):
                port, count = conn.execute(
                    "SELECT inet_server_port(), count(*) FROM note").fetchone()
                assert count == n, ("the transaction sees its own rows", n, count)
                ports.append(port)
                conn.execute("INSERT INTO note VALUES (%s, 'tx')", (n,))
        # The implicit transaction psycopg opens for a plain execute() outside autocommit.
        (port,) = conn.execute("SELECT inet_server_port()").fetchone()
        ports.append(port)
        conn.commit()
    with psycopg.connect(dsn, autocommit=True) as other:
        (count,) = other.execute("SELECT count(*) FROM note").fetchone()
    return {"transaction_ports": ports, "written": 5, "found": count}


def read_only_transaction(dsn):
    """`conn.read_only = True`: psycopg begins its transactions READ ONLY."""
    ports = []
    with psycopg.connect(dsn, prepare_threshold=0) as conn:
        conn.read_only = True
        with conn.transaction():
            for _ in range(3):
                port, in_recovery = conn.execute(
                    "SELECT inet_server_port(), pg_is_in_recovery()").fetchone()
                assert in_recovery, "a read-only transaction on a replica is in recovery"
                ports.append(port)
    return {"transaction_ports": ports}


def pipeline_writes_and_reads(dsn):
    """Pipeline mode: inserts and reads of the same rows sent before one Sync."""
    write_ports = []
    found = 0
    with psycopg.connect(dsn, autocommit=True, prepare_threshold=0) as conn:
        create_note_table(conn)
        inserts, reads = [], []
        with conn.pipeline():
            for n in range(ROWS):
                inserts.append(conn.execute(
                    "INSERT INTO note VALUES (%s, %s) RETURNING inet_server_port()",
                    (n, f"piped {n}")))
                reads.append(conn.execute("SELECT body FROM note WHERE id = %s", (n,)))
        for n, (insert, read) in enumerate(zip(inserts, reads)):
            write_ports.append(insert.fetchone()[0])
            found += read.fetchone() == (f"piped {n}",)
    return {"write_ports": write_ports, "written": ROWS, "found": found}


def pipeline_reads(dsn):
    """Pipeline mode: many prepared reads, then an explicit sync, then more reads."""
    ports = []
    with psycopg.connect(dsn, autocommit=True, prepare_threshold=0) as conn:
        with conn.pipeline() as pipeline:
            first = [conn.execute("SELECT inet_server_port(), %s::int", (n,))
                     for n in range(ROWS)]
            pipeline.sync()
            second = [conn.execute("SELECT inet_server_port(), %s::int", (n,))
                      for n in range(ROWS)]
        for n, cursor in enumerate(first + second):
            port, echoed = cursor.fetchone()
            assert echoed == n % ROWS, (n, echoed)
            ports.append(port)
    return {"read_ports": ports}


def pipeline_error(dsn):
    """An error in a pipeline skips the statements queued before its Sync, not after."""
    with psycopg.connect(dsn, autocommit=True, prepare_threshold=0) as conn:
        try:
            with conn.pipeline():
                conn.execute("SELECT 1 / %s::int", (0,))
                conn.execute("SELECT 2")
        except psycopg.errors.DivisionByZero:
            pass
        else:
            raise AssertionError("the division by zero was not reported")
        (value,) = conn.execute("SELECT %s::int + 1", (41,)).fetchone()
        assert value == 42, value
        with conn.pipeline():
            cursor = conn.execute("SELECT inet_server_port()")
        (port,) = cursor.fetchone()
    return {"read_ports": [port]}


def executemany_read_back(dsn):
    """`executemany` (pipelined by psycopg) on one connection, read back at once on another."""
    rows = [(n, f"many {n}") for n in range(ROWS)]
    with psycopg.connect(dsn, autocommit=True, prepare_threshold=0) as writer, \
            psycopg.connect(dsn, autocommit=True, prepare_threshold=0) as reader:
        create_note_table(writer)
        with writer.cursor() as cur:
            cur.executemany("INSERT INTO note VALUES (%s, %s) RETURNING inet_server_port()",
                            rows, returning=True)
            write_ports = []
            while True:
                write_ports.append(cur.fetchone()[0])
                if not cur.nextset():
                    break
        found = sum(reader.execute("SELECT body FROM note WHERE id = %s", (n,)).fetchone()
                    == (body,) for n, body in rows)
    return {"write_ports": write_ports, "written": ROWS, "found": found}


def copy(dsn):
    """COPY TO STDOUT of a read, COPY FROM STDIN, then COPY TO of the table on another connection."""
    with psycopg.connect(dsn, autocommit=True) as conn, \
            psycopg.connect(dsn, autocommit=True) as other:
        with conn.cursor() as cur:
            read_ports = []
            for _ in range(10):
                with cur.copy("COPY (SELECT inet_server_port()) TO STDOUT") as out:
                    read_ports.extend(int(port) for (port,) in out.rows())
            create_note_table(conn)
            with cur.copy("COPY note (id, body) FROM STDIN") as into:
                for n in range(ROWS):
                    into.write_row((n, f"copied {n}"))
        with other.cursor() as cur:
            with cur.copy("COPY note (id, body) TO STDOUT") as out:
                copied = {int(n): body for n, body in out.rows()}
    found = sum(copied.get(n) == f"copied {n}" for n in range(ROWS))
    return {"read_ports": read_ports, "written": ROWS, "found": found}


def with_hold_cursor(dsn):
    """A WITH HOLD cursor declared outside a transaction (and before any write), fetched
    in batches: outside transactions, and inside a read-write one that also writes."""
    with psycopg.connect(dsn, autocommit=True, prepare_threshold=0) as conn:
        cursor_ports, values = set(), []

        def fetch(cursor):
            batch = cursor.fetchmany(100)
            values.extend(g for g, _ in batch)
            cursor_ports.update(port for _, port in batch)
            return batch

        with conn.cursor("numbers", withhold=True) as cursor:
            cursor.execute("SELECT g, inet_server_port() FROM generate_series(1, 1000) g")
            fetch(cursor)
            conn.execute("SELECT inet_server_port()").fetchone()
            with conn.transaction():
                create_note_table(conn)
                conn.execute("INSERT INTO note VALUES (1, 'while the cursor is open')")
                fetch(cursor)
            while fetch(cursor):
                pass
        assert values == list(range(1, 1001)), (len(values), values[:5])
        assert len(cursor_ports) == 1, ("one backend runs the cursor", cursor_ports)
    return {"cursor_ports": sorted(cursor_ports)}


def startup_settings(dsn):
    """Settings sent in the startup packet (`options=-c …`, application_name) hold for
    every statement, as `current_setting()` on the node reports them."""
    seen = set()
    with psycopg.connect(dsn, autocommit=True, application_name="pgrw-test-app",
                         options="-c search_path=app,public -c statement_timeout=4321") as conn:
        assert conn.info.parameter_status("application_name") == "pgrw-test-app"
        for _ in range(10):
            seen.add(conn.execute(
                "SELECT current_setting('search_path'), current_setting('application_name'), "
                "current_setting('statement_timeout')").fetchone())
    assert seen == {("app,public", "pgrw-test-app", "4321ms")}, \
        f"the startup settings as the nodes ran them: {seen}"
    return {"settings": sorted(seen)}


def cancel(dsn):
    """`conn.cancel()` from another thread stops the running query; the connection stays usable."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        started = time.monotonic()
        canceller = threading.Timer(0.5, conn.cancel)
        canceller.start()
        try:
            conn.execute("SELECT pg_sleep(30)")
        except psycopg.errors.QueryCanceled:
            pass
        else:
            raise AssertionError("pg_sleep(30) ran to its end: the cancel was not delivered")
        finally:
            canceller.join()
        elapsed = time.monotonic() - started
        assert elapsed < 10, f"the cancel took {elapsed:.1f} s"
        (port,) = conn.execute("SELECT inet_server_port()").fetchone()
    return {"read_ports": [port], "cancel_seconds": elapsed}


def reset(dsn):
    """libpq's PQreset (`pgconn.reset()`; psql's `\\c` with the same parameters does the
    same) closes the connection and logs in again with the same parameters: the new
    session works, and what the old one held (a transaction, a temp table, a setting,
    a prepared statement) is gone, as on a direct connection."""
    from psycopg import pq
    with psycopg.connect(dsn, autocommit=True) as conn:
        pgconn = conn.pgconn
        for sql in (b"SET statement_timeout = 4321", b"PREPARE held AS SELECT 1",
                    b"BEGIN", b"CREATE TEMP TABLE held_temp (a int)"):
            res = pgconn.exec_(sql)
            assert res.status == pq.ExecStatus.COMMAND_OK, (sql, res.error_message)
        assert pgconn.transaction_status == pq.TransactionStatus.INTRANS
        pgconn.reset()
        assert pgconn.status == pq.ConnStatus.OK, pgconn.error_message
        assert pgconn.transaction_status == pq.TransactionStatus.IDLE
        res = pgconn.exec_(b"SELECT current_setting('statement_timeout'), "
                           b"(SELECT count(*) FROM pg_prepared_statements), "
                           b"to_regclass('pg_temp.held_temp') IS NULL, inet_server_port()")
        assert res.status == pq.ExecStatus.TUPLES_OK, res.error_message
        timeout, prepared, temp_gone, port = (res.get_value(0, i).decode() for i in range(4))
        assert (timeout, prepared, temp_gone) == ("0", "0", "t"), (timeout, prepared, temp_gone)
        # The asynchronous form, too.
        pgconn.reset_start()
        while pgconn.reset_poll() != pq.PollingStatus.OK:
            assert pgconn.status != pq.ConnStatus.BAD, pgconn.error_message
            time.sleep(0.01)
        res = pgconn.exec_(b"SELECT 1")
        assert res.status == pq.ExecStatus.TUPLES_OK, res.error_message
    return {"transaction_ports": [int(port)]}


SCENARIOS = {
    "reset": reset,
    "prepared-reads": prepared_reads,
    "prepared-writes-read-back": prepared_writes_read_back,
    "transaction": transaction,
    "read-only-transaction": read_only_transaction,
    "pipeline-writes-and-reads": pipeline_writes_and_reads,
    "pipeline-reads": pipeline_reads,
    "pipeline-error": pipeline_error,
    "executemany-read-back": executemany_read_back,
    "copy": copy,
    "with-hold-cursor": with_hold_cursor,
    "cancel": cancel,
    "startup-settings": startup_settings,
}


def main():
    scenario, dsn = sys.argv[1:3]
    print(json.dumps(SCENARIOS[scenario](dsn)))


if __name__ == "__main__":
    main()
