"""The minimal promotion on SQLite, in a tight loop on one connection: what the
database file alone does, with the server's durability settings (WAL journal,
synchronous=FULL, as sqlx's defaults and src/store/mod.rs set them). One write
transaction per promotion: SQLite cannot UPDATE inside a WITH clause, so the move
and the history row are two statements, as they are for the server.

    python3 promote_sqlite.py DATABASE VERSIONS SECONDS   ->  prints tx/s and mean ms
"""
import random
import sqlite3
import sys
import time

path, versions, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
db = sqlite3.connect(path, isolation_level=None)
db.execute("PRAGMA journal_mode = WAL")
db.execute("PRAGMA synchronous = FULL")
db.execute("PRAGMA foreign_keys = ON")
a, b = (db.execute("SELECT id FROM feeds WHERE name = ?", (n,)).fetchone()[0] for n in ("bench-a", "bench-b"))
first = db.execute("SELECT MIN(id) FROM package_versions").fetchone()[0]
done, start = 0, time.perf_counter()
while time.perf_counter() - start < seconds:
    version = first + random.randrange(versions)
    db.execute("BEGIN IMMEDIATE")
    db.execute("UPDATE package_versions SET feed_id = CASE WHEN feed_id = ?1 THEN ?2 ELSE ?1 END WHERE id = ?3",
               (a, b, version))
    db.execute(
        "INSERT INTO promotions (from_feed_id, to_feed_id, from_feed, to_feed, from_feed_key, to_feed_key, "
        "package_type, group_name, name, version, group_key, name_key, version_key, comments, user_name, "
        "api_key_id, promoted_at) "
        "SELECT ?1 + ?2 - feed_id, feed_id, 'bench-a', 'bench-b', 'bench-a', 'bench-b', 'npm', group_name, "
        "name, version, group_key, name_key, version_key, NULL, 'loop', 1, strftime('%Y-%m-%dT%H:%M:%fZ') "
        "FROM package_versions WHERE id = ?3",
        (a, b, version))
    db.execute("COMMIT")
    done += 1
elapsed = time.perf_counter() - start
print(f"{done / elapsed:.1f} {1000 * elapsed / done:.3f}")
