# Written by hand: on PostgreSQL, export files are compressed with LZ4 instead of pglz.
#
# An export's file is stored in export_file_chunk in 1 MiB pieces, and PostgreSQL compresses each
# piece as it stores it (TOAST). With its default, pglz, storing the 130 chunks of a
# million-line CSV took 2.7 s of a run (~20 ms a chunk); with LZ4 it takes ~0.6 s (~4.5 ms a
# chunk) and the file takes about the same room (62 MB against 58 MB for a 130 MB CSV). Only
# values written after this migration are compressed with LZ4; older chunks stay as they are.
#
# LZ4 needs PostgreSQL 14 or later built with it (the PGDG and Debian packages and the official
# images are). Where it is missing this changes nothing and pglz stays. SQLite does not compress.
from peewee import *


def _lz4_available(db):
    if not isinstance(db, PostgresqlDatabase):
        return False
    row = db.execute_sql(
        "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'"
    ).fetchone()
    return bool(row and row[0])


def up(migrator, db):
    if _lz4_available(db):
        db.execute_sql('ALTER TABLE "export_file_chunk" ALTER COLUMN "data" SET COMPRESSION lz4')


def down(migrator, db):
    if _lz4_available(db):
        db.execute_sql('ALTER TABLE "export_file_chunk" ALTER COLUMN "data" SET COMPRESSION DEFAULT')
