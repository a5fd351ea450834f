"""Faults a command can meet, each told in one line: what failed, then what to do.

A wrong port, a lost connection, a lock held too long, a deadlock, a number too large for its
column, a NUL byte, a full disk: each is recognised here from the error the database driver or the
operating system raised (PostgreSQL's SQLSTATE codes, SQLite's error names, ``errno``), so the CLI
prints one line instead of a traceback (``cli.common.FaultReportingGroup``; ``--debug`` shows the
traceback as well). Passwords in database URLs never reach a message.

Deadlocks and serialization failures are transient: :func:`is_transient` tells them apart, and
``experiments.db.run_in_transaction`` runs a transaction again once when one happens.
"""

from __future__ import annotations

import errno
import re

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

# PostgreSQL SQLSTATE codes (Appendix A of the manual) that a user can act on.
DEADLOCK = "40P01"
SERIALIZATION_FAILURE = "40001"
TRANSIENT = frozenset({DEADLOCK, SERIALIZATION_FAILURE})

CHECK_URL = "check --db / RECALL_DATABASE_URL"
RUN_AGAIN = "nothing of the unfinished step was saved: run the command again"

# SQLSTATE → (what failed, what to do); the database's own message is added after "what failed".
_BY_SQLSTATE: dict[str, tuple[str, str]] = {
    DEADLOCK: ("deadlock with another command writing the same rows (retried once)",
               "run the command again when the other one has finished"),
    SERIALIZATION_FAILURE: ("a concurrent change conflicted with this one (retried once)",
                            "run the command again when the other one has finished"),
    "55P03": ("timed out waiting for a lock held by another command or user",
              "run the command again when the other one has finished (PostgreSQL: see pg_stat_activity)"),
    "57014": ("the database cancelled a statement (statement timeout or a cancel request)",
              "run the command again; ask the database owner to raise statement_timeout if it is expected"),
    "22003": ("a number is out of range for its column", "check the values in the input file or spec"),
    "22008": ("a date or time is out of range", "check the dates in the input file or spec"),
    "22021": ("text is not valid in the database's encoding",
              "save the input file as UTF-8 and remove NUL (0x00) bytes"),
    "22P05": ("text cannot be stored in the database's encoding", "save the input file as UTF-8"),
    "53100": ("the database's disk is full", "free space on the database server, then run the command again"),
    "53200": ("the database server ran out of memory", "run the command again later or on fewer rows"),
    "25006": ("the database is read-only for this connection",
              "use a writable database (not a standby, no default_transaction_read_only)"),
    "42501": ("permission denied",
              f"grant the database user access to the schema's tables, or use another user; {CHECK_URL}"),
    "3F000": ("the database user may not use the schema (no schema it may create in)",
              f"grant it USAGE and CREATE on the schema, or use another user; {CHECK_URL}"),
    "28P01": ("the database refused the sign-in (wrong password)", f"check the user and password; {CHECK_URL}"),
    "28000": ("the database refused the sign-in", f"check the user name and pg_hba.conf; {CHECK_URL}"),
    "3D000": ("the database does not exist", f"create it (createdb NAME) or {CHECK_URL}"),
    "53300": ("the database has too many connections", "run the command again later"),
    "57P03": ("the database is starting up or shutting down", "run the command again in a moment"),
    "57P01": ("the database ended the connection (terminated by an administrator or a restart)", RUN_AGAIN),
}

# SQLite's extended error names (sqlite3.Error.sqlite_errorname) → (what failed, what to do).
_BY_SQLITE_NAME: dict[str, tuple[str, str]] = {
    "SQLITE_BUSY": ("timed out waiting for another command that is writing to the SQLite database",
                    "run the command again when the other one has finished"),
    "SQLITE_LOCKED": ("the SQLite database is locked by another command",
                      "run the command again when the other one has finished"),
    "SQLITE_FULL": ("the disk holding the SQLite database is full", "free space, then run the command again"),
    "SQLITE_READONLY": ("the SQLite database is read-only",
                        "check the file's and its folder's permissions, or use a writable copy"),
    "SQLITE_CANTOPEN": ("cannot open the SQLite database",
                        f"check that its folder exists and is writable; {CHECK_URL}"),
    "SQLITE_NOTADB": ("the file is not a SQLite database", CHECK_URL),
    "SQLITE_CORRUPT": ("the SQLite database file is damaged", "restore it from a backup (recall db restore)"),
    "SQLITE_IOERR": ("the disk holding the SQLite database failed to read or write",
                     "check the disk, then run the command again"),
    "SQLITE_PERM": ("permission denied on the SQLite database", "check the file's permissions"),
}

# errno → (what failed, what to do) for files the command reads or writes.
_BY_ERRNO: dict[int, tuple[str, str]] = {
    errno.ENOSPC: ("the disk is full", "free space, then run the command again"),
    errno.EDQUOT: ("the disk quota is exceeded", "free space, then run the command again"),
    errno.EROFS: ("the file system is read-only", "write to another folder"),
    errno.EACCES: ("permission denied", "check the file's and its folder's permissions"),
    errno.EPERM: ("operation not permitted", "check the file's and its folder's permissions"),
    errno.ENOENT: ("no such file or folder", "check the path"),
    errno.ENAMETOOLONG: ("a file name is too long", "use a shorter name or folder"),
    errno.ECONNREFUSED: ("connection refused", "check that the server is running"),
}

_URL_PASSWORD = re.compile(r"(\w[\w+.-]*://[^:/@\s]*:)\S*@")  # up to the last @ of the URL


def mask_passwords(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``."""
    return _URL_PASSWORD.sub(r"\1***@", text)


def safe_url(url: str) -> str:
    """A database URL fit for a message: the password hidden."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return mask_passwords(url)


def sqlstate(exc: BaseException) -> str | None:
    """PostgreSQL's SQLSTATE code of a driver error (wrapped by SQLAlchemy or not), else None."""
    return getattr(_driver_error(exc), "sqlstate", None)


def is_transient(exc: BaseException) -> bool:
    """A deadlock or serialization failure: the transaction was rolled back and may simply run again."""
    return sqlstate(exc) in TRANSIENT


def explain(exc: BaseException, url: str | None = None) -> str:
    """One line for any exception: what failed, then what to do (``url``: the database, if known)."""
    where = f" at {safe_url(url)}" if url else ""
    return mask_passwords(_explain(exc, where)).replace("\n", " ")


def _explain(exc: BaseException, where: str) -> str:
    driver = _driver_error(exc)
    if driver is not None:
        return _database_fault(exc, driver, where)
    if isinstance(exc, NoSuchModuleError | ArgumentError):
        return f"not a database URL this program can use ({exc}): {CHECK_URL}"
    if isinstance(exc, OverflowError):
        return f"a number is too large ({exc}): check the values in the input file or spec"
    if isinstance(exc, MemoryError):
        return "out of memory: run the command on a smaller file or a machine with more memory"
    if isinstance(exc, OSError) and exc.errno in _BY_ERRNO:
        what, todo = _BY_ERRNO[exc.errno]
        return f"{what}{_path(exc)}: {todo}"
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}{_path(exc)}: check the path and the disk"
    return (f"unexpected error ({type(exc).__name__}: {_first_line(str(exc))}): run the command again with "
            f"--debug and report the traceback")


def _database_fault(exc: BaseException, driver: BaseException, where: str) -> str:
    message = _driver_message(driver)
    code = getattr(driver, "sqlstate", None)
    if code in _BY_SQLSTATE:
        what, todo = _BY_SQLSTATE[code]
        return f"{what}{where} ({message}): {todo}"
    name = getattr(driver, "sqlite_errorname", None)  # e.g. SQLITE_IOERR_WRITE, of the family SQLITE_IOERR
    for key in (name, "_".join(name.split("_")[:2]) if name else None):
        if key in _BY_SQLITE_NAME:
            what, todo = _BY_SQLITE_NAME[key]
            return f"{what}{where} ({message}): {todo}"
    lowered = message.lower()
    if "0x00" in lowered:  # psycopg refuses it before sending; PostgreSQL's own check is SQLSTATE 22021
        return "text contains a NUL (0x00) byte, which PostgreSQL cannot store: remove it from the input file"
    if (isinstance(exc, DBAPIError) and exc.connection_invalidated) or _is_lost(lowered):
        return f"lost the connection to the database{where} ({message}): {RUN_AGAIN}"
    if "connection refused" in lowered:
        return f"cannot reach the database{where} (connection refused): is it running? {CHECK_URL}"
    if "could not translate host name" in lowered or "name or service not known" in lowered:
        return f"cannot reach the database{where} (unknown host): {CHECK_URL}"
    if "timeout expired" in lowered or "timed out" in lowered:
        return f"cannot reach the database{where} (timed out): is it running and reachable? {CHECK_URL}"
    for pattern, code in _REFUSED_SIGN_INS:  # libpq reports these before any SQLSTATE exists
        found = pattern.search(message)
        if found:
            what, todo = _BY_SQLSTATE[code]
            return f"{what}{where} ({found.group(0)}): {todo}"
    if "connection failed" in lowered or "could not connect" in lowered:
        return f"cannot reach the database{where} ({message}): is it running? {CHECK_URL}"
    return f"database error{where} ({message}): run the command again with --debug for the details"


_REFUSED_SIGN_INS = [
    (re.compile(r"password authentication failed[^:]*|no password supplied"), "28P01"),
    (re.compile(r'database "[^"]*" does not exist'), "3D000"),
    (re.compile(r'role "[^"]*" does not exist|no pg_hba\.conf entry[^:]*'), "28000"),
]


def _is_lost(message: str) -> bool:
    return any(sign in message for sign in (
        "server closed the connection", "terminating connection", "consuming input failed",
        "connection is closed", "connection is lost", "connection already closed", "ssl syscall",
        "eof detected", "connection reset"))


def _driver_error(exc: BaseException) -> BaseException | None:
    """The DB-API error behind ``exc``: SQLAlchemy's ``orig``, or a driver error raised directly
    (COPY runs on the driver's own cursor), or one that ``exc`` was raised from."""
    if isinstance(exc, DBAPIError):
        return exc.orig
    for candidate in (exc, exc.__cause__):
        if candidate is not None and type(candidate).__module__.startswith(("psycopg", "sqlite3")):
            return candidate
    return None


def _driver_message(driver: BaseException) -> str:
    primary = getattr(getattr(driver, "diag", None), "message_primary", None)
    return _first_line(primary or str(driver))


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else ""


def _path(exc: OSError) -> str:
    return f": {exc.filename}" if exc.filename else ""
