"""asyncpg through the pgrw proxy: one scenario per run.

    python3 asyncpg_client.py SCENARIO DSN

asyncpg runs every query as a named prepared statement (its statement cache),
`prepare()` makes one explicitly, and `executemany` pipelines Bind/Execute
pairs for one statement. Each scenario checks its data itself (an assertion
failure exits non-zero) and prints one JSON object: the ports of the nodes that
served its statements (`inet_server_port()`), by kind, and counts of rows
written and read back. The Rust test (tests/clients_python.rs) checks routing.
"""

import asyncio
import io
import json
import sys
import time

import asyncpg

ROWS = 40
# Every await is bounded: a stalled proxy fails the scenario instead of hanging it.
TIMEOUT_S = 20


async def connect(dsn):
    return await asyncpg.connect(dsn, timeout=TIMEOUT_S, command_timeout=TIMEOUT_S)


async def prepared_reads(dsn):
    """fetchval, fetchrow, fetch and an explicit prepare(), outside transactions."""
    ports = []
    conn = await connect(dsn)
    try:
        for n in range(ROWS // 4):
            ports.append(await conn.fetchval("SELECT inet_server_port()"))
            row = await conn.fetchrow(
                "SELECT inet_server_port() AS port, $1::int * 2 AS doubled", n)
            assert row["doubled"] == 2 * n, (n, row)
            ports.append(row["port"])
            rows = await conn.fetch(
                "SELECT inet_server_port() AS port, g FROM generate_series(1, $1::int) g", 3)
            assert [r["g"] for r in rows] == [1, 2, 3], rows
            ports.append(rows[0]["port"])
        statement = await conn.prepare("SELECT inet_server_port() AS port, $1::int + 1 AS next")
        for n in range(ROWS):
            row = await statement.fetchrow(n)
            assert row["next"] == n + 1, (n, row)
            ports.append(row["port"])
    finally:
        await conn.close()
    return {"read_ports": ports}


async def create_note_table(conn):
    await conn.execute("CREATE TABLE note (id int PRIMARY KEY, body text NOT NULL)")


async def writes_read_back(dsn):
    """Inserts (single and executemany) on one connection, read back at once on another."""
    write_ports = []
    found = 0
    writer, reader = await connect(dsn), await connect(dsn)
    try:
        await create_note_table(writer)
        for n in range(ROWS):
            write_ports.append(await writer.fetchval(
                "INSERT INTO note VALUES ($1, $2) RETURNING inet_server_port()", n, f"note {n}"))
            found += await reader.fetchval("SELECT body FROM note WHERE id = $1", n) == f"note {n}"
        many = [(ROWS + n, f"many {n}") for n in range(ROWS)]
        await writer.executemany("INSERT INTO note VALUES ($1, $2)", many)
        for row_id, body in many:
            found += await reader.fetchval("SELECT body FROM note WHERE id = $1", row_id) == body
    finally:
        await writer.close()
        await reader.close()
    return {"write_ports": write_ports, "written": 2 * ROWS, "found": found}


async def transaction(dsn):
    """`async with conn.transaction()`: every statement inside on one node."""
    ports = []
    conn = await connect(dsn)
    try:
        await create_note_table(conn)
        async with conn.transaction():
            for n in range(5):
                row = await conn.fetchrow("SELECT inet_server_port() AS port, count(*) AS n "
                                          "FROM note")
                assert row["n"] == n, ("the transaction sees its own rows", n, row)
                ports.append(row["port"])
                await conn.execute("INSERT INTO note VALUES ($1, 'tx')", n)
        other = await connect(dsn)
        try:
            count = await other.fetchval("SELECT count(*) FROM note")
        finally:
            await other.close()
    finally:
        await conn.close()
    return {"transaction_ports": ports, "written": 5, "found": count}


async def read_only_transaction(dsn):
    """`conn.transaction(readonly=True)` begins `BEGIN READ ONLY`."""
    ports = []
    conn = await connect(dsn)
    try:
        async with conn.transaction(readonly=True):
            for _ in range(3):
                row = await conn.fetchrow(
                    "SELECT inet_server_port() AS port, pg_is_in_recovery() AS r")
                assert row["r"], "a read-only transaction on a replica is in recovery"
                ports.append(row["port"])
    finally:
        await conn.close()
    return {"transaction_ports": ports}


async def prepared_error(dsn):
    """A prepared statement that fails leaves the connection and its cache usable."""
    conn = await connect(dsn)
    try:
        for divisor in (0, 2, 0, 4):
            try:
                quotient = await conn.fetchval("SELECT 8 / $1::int", divisor)
            except asyncpg.exceptions.DivisionByZeroError:
                assert divisor == 0
            else:
                assert divisor != 0 and quotient == 8 // divisor, (divisor, quotient)
        port = await conn.fetchval("SELECT inet_server_port()")
    finally:
        await conn.close()
    return {"read_ports": [port]}


async def pool_reads(dsn):
    """Many concurrent reads over a pool: each connection prepares its own statements."""
    async with asyncpg.create_pool(dsn, min_size=4, max_size=4, timeout=TIMEOUT_S,
                                   command_timeout=TIMEOUT_S) as pool:
        async def read(n):
            row = await pool.fetchrow(
                "SELECT inet_server_port() AS port, $1::int * 3 AS tripled", n)
            assert row["tripled"] == 3 * n, (n, row)
            return row["port"]
        ports = await asyncio.gather(*(read(n) for n in range(4 * ROWS)))
    return {"read_ports": list(ports)}


async def pool_writes_read_back(dsn):
    """Concurrent writers over a pool, each reading its row back at once."""
    async with asyncpg.create_pool(dsn, min_size=4, max_size=4, timeout=TIMEOUT_S,
                                   command_timeout=TIMEOUT_S) as pool:
        await create_note_table(pool)

        async def write_then_read(n):
            port = await pool.fetchval(
                "INSERT INTO note VALUES ($1, $2) RETURNING inet_server_port()", n, f"pooled {n}")
            body = await pool.fetchval("SELECT body FROM note WHERE id = $1", n)
            return port, body == f"pooled {n}"
        results = await asyncio.gather(*(write_then_read(n) for n in range(2 * ROWS)))
    return {"write_ports": [port for port, _ in results], "written": 2 * ROWS,
            "found": sum(found for _, found in results)}


async def cursor(dsn):
    """Server-side cursors in a transaction: a prefetching iterator and explicit fetches."""
    conn = await connect(dsn)
    try:
        async with conn.transaction():
            values = [r["g"] async for r in conn.cursor(
                "SELECT g FROM generate_series(1, $1::int) g", 1000, prefetch=100)]
            assert values == list(range(1, 1001)), (len(values), values[:5])
            cur = await conn.cursor("SELECT g, inet_server_port() AS port "
                                    "FROM generate_series(1, 100) g")
            first = await cur.fetch(10)
            await cur.forward(40)
            row = await cur.fetchrow()
            assert [r["g"] for r in first] == list(range(1, 11)), first
            assert row["g"] == 51, row
            ports = [r["port"] for r in first] + [row["port"]]
    finally:
        await conn.close()
    return {"transaction_ports": ports}


async def copy_out(dsn):
    """COPY TO STDOUT of a table just written on another connection, and of a query."""
    conn, other = await connect(dsn), await connect(dsn)
    try:
        await create_note_table(conn)
        records = [(n, f"copied {n}") for n in range(ROWS)]
        await conn.executemany("INSERT INTO note VALUES ($1, $2)", records)
        table = io.BytesIO()
        await other.copy_from_table("note", output=table)
        copied = dict(line.split("\t") for line in table.getvalue().decode().splitlines())
        found = sum(copied.get(str(n)) == body for n, body in records)
        port = io.BytesIO()
        await other.copy_from_query("SELECT inet_server_port()", output=port)
    finally:
        await conn.close()
        await other.close()
    return {"written": ROWS, "found": found, "read_ports": [int(port.getvalue())]}


async def copy_records(dsn):
    """copy_records_to_table, many times: asyncpg sends the COPY query, its binary data
    and CopyDone without waiting for CopyInResponse. Each batch is read back at once."""
    rounds = 20
    conn, other = await connect(dsn), await connect(dsn)
    try:
        await create_note_table(conn)
        found = 0
        for batch in range(rounds):
            records = [(batch * ROWS + n, f"copied {n}") for n in range(ROWS)]
            status = await conn.copy_records_to_table("note", records=records)
            assert status == f"COPY {ROWS}", status
            found += await other.fetchval("SELECT count(*) FROM note WHERE id >= $1 AND id < $2",
                                          batch * ROWS, (batch + 1) * ROWS)
    finally:
        await conn.close()
        await other.close()
    return {"written": rounds * ROWS, "found": found}


async def listen_notify(dsn):
    """LISTEN on one connection, NOTIFY from another: the notification arrives."""
    listener, notifier = await connect(dsn), await connect(dsn)
    try:
        received = asyncio.get_running_loop().create_future()
        await listener.add_listener(
            "pgrw_test", lambda _conn, _pid, channel, payload:
            received.done() or received.set_result((channel, payload)))
        for _ in range(3):  # queries between LISTEN and NOTIFY must not drop the LISTEN
            await listener.fetchval("SELECT inet_server_port()")
        await notifier.execute("NOTIFY pgrw_test, 'hello'")
        notification = await asyncio.wait_for(received, timeout=10)
        assert notification == ("pgrw_test", "hello"), notification
        port = await listener.fetchval("SELECT inet_server_port()")
    finally:
        await listener.close()
        await notifier.close()
    return {"listen_ports": [port]}


async def cancel_on_timeout(dsn):
    """A query timeout makes asyncpg send a CancelRequest; the connection is usable at once."""
    conn = await connect(dsn)
    try:
        started = time.monotonic()
        try:
            await conn.fetchval("SELECT pg_sleep(30)", timeout=0.5)
        except asyncio.TimeoutError:
            pass
        else:
            raise AssertionError("pg_sleep(30) did not time out")
        port = await conn.fetchval("SELECT inet_server_port()")
        elapsed = time.monotonic() - started
        assert elapsed < 10, f"the cancelled query held the connection {elapsed:.1f} s"
    finally:
        await conn.close()
    return {"read_ports": [port], "cancel_seconds": elapsed}


async def new_type(dsn):
    """A type created on one connection is introspected at once by asyncpg on another."""
    creator, user = await connect(dsn), await connect(dsn)
    try:
        await creator.execute("CREATE TYPE mood AS ENUM ('sad', 'happy')")
        await creator.execute("CREATE TABLE feeling (id int PRIMARY KEY, mood mood NOT NULL)")
        await creator.execute("INSERT INTO feeling VALUES (1, 'happy')")
        # asyncpg looks the type up in pg_type before it can decode the row.
        mood = await user.fetchval("SELECT mood FROM feeling WHERE id = $1", 1)
        assert mood == "happy", mood
        await user.execute("INSERT INTO feeling VALUES ($1, $2)", 2, "sad")
        found = await creator.fetchval("SELECT count(*) FROM feeling")
    finally:
        await creator.close()
        await user.close()
    return {"written": 2, "found": found}


async def schema_change(dsn):
    """After DDL changes a cached statement's result type, asyncpg drops its cache and
    prepares the statement again (InvalidCachedStatementError is handled inside asyncpg)."""
    conn = await connect(dsn)
    try:
        await conn.execute("CREATE TABLE shape (a int); INSERT INTO shape VALUES (1)")
        assert [tuple(r) for r in await conn.fetch("SELECT * FROM shape")] == [(1,)]
        await conn.execute("ALTER TABLE shape ADD COLUMN b int DEFAULT 2")
        rows = [tuple(r) for r in await conn.fetch("SELECT * FROM shape")]
        assert rows == [(1, 2)], rows
    finally:
        await conn.close()
    return {"written": 1, "found": len(rows)}


async def startup_settings(dsn):
    """`server_settings` (sent in the startup packet) hold for every statement."""
    conn = await asyncpg.connect(dsn, timeout=TIMEOUT_S, command_timeout=TIMEOUT_S,
                                 server_settings={"search_path": "app, public",
                                                  "application_name": "pgrw-test-app"})
    seen = set()
    try:
        for _ in range(10):
            row = await conn.fetchrow("SELECT current_setting('search_path'), "
                                      "current_setting('application_name')")
            seen.add(tuple(row))
    finally:
        await conn.close()
    assert seen == {("app, public", "pgrw-test-app")}, \
        f"the startup settings as the nodes ran them: {seen}"
    return {"settings": sorted(seen)}


SCENARIOS = {
    "prepared-reads": prepared_reads,
    "writes-read-back": writes_read_back,
    "transaction": transaction,
    "read-only-transaction": read_only_transaction,
    "prepared-error": prepared_error,
    "pool-reads": pool_reads,
    "pool-writes-read-back": pool_writes_read_back,
    "cursor": cursor,
    "copy-out": copy_out,
    "copy-records": copy_records,
    "listen-notify": listen_notify,
    "cancel-on-timeout": cancel_on_timeout,
    "new-type": new_type,
    "schema-change": schema_change,
    "startup-settings": startup_settings,
}


async def main():
    scenario, dsn = sys.argv[1:3]
    result = await asyncio.wait_for(SCENARIOS[scenario](dsn), timeout=3 * TIMEOUT_S)
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
