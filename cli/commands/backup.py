"""``schakel server backup`` and ``schakel server restore``: a copy of the server's database
taken while it runs, and its restore into a stopped server's data directory
(server/backup.py; docs/roles/operator.md; ADR 0050)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from schakel.cli.commands.output import emit
from schakel.cli.commands.serve import DATA_HELP, existing_keys
from schakel.cli.helptext import Command
from schakel.cli.i18n import N_, _
from schakel.server import backup as backups

#: The words of each refusal (server/backup.py ``REASONS``); ``{file}``, ``{dir}`` and the
#: refusal's details fill them in.
REFUSALS: dict[str, str] = {
    "no-database": N_("{dir} holds no database (schakel.db): nothing to back up"),
    "not-a-database": N_("{file} is not a Schakel backup: it is not a SQLite database; "
                         "nothing was restored"),
    "corrupt": N_("{file} is damaged ({detail}); nothing was done: use another backup"),
    "not-a-backup": N_("{file} is not a Schakel backup (one made by `schakel server backup`); "
                       "nothing was restored"),
    "newer-schema": N_("{file} has schema version {schema}, newer than this version of Schakel "
                       "knows ({known}); nothing was done: use the Schakel version that made it"),
    "other-keys": N_("{file} was taken under other server keys (server fingerprint {backup}) "
                     "than {dir} holds ({here}): the networks in it trust the backup's keys, so "
                     "their clients would refuse this server. Put that server's "
                     "server-keys.json and its passphrase back first; --other-keys restores "
                     "all the same. Nothing was restored"),
    "server-running": N_("a Schakel server is running on {dir} (process {pid}): stop it first "
                         "(SIGTERM or Ctrl-C), then restore; nothing was restored"),
    "unreachable": N_("cannot connect to the database ({detail}); nothing was done"),
    "database-error": N_("the database refused it ({detail}); nothing was done"),
    # PostgreSQL (--database) words some refusals its own way.
    "no-database@postgresql": N_("the database holds no Schakel data (no schakel_schema "
                                 "table): nothing to back up"),
    "server-running@postgresql": N_("{sessions} Schakel server connection(s) to the database "
                                    "are open (from {clients}): stop every server on it first, "
                                    "then restore; nothing was restored"),
}

DATABASE_BACKUP_HELP = N_("back up or restore the server's data in PostgreSQL at this URL "
                          "instead of the data directory's SQLite file (as `schakel serve "
                          "--database`); the keys stay in the data directory")


def _refused(exc: backups.BackupRefused, *, file: Path, data_dir: Path) -> click.ClickException:
    key = f"{exc.reason}@{exc.details.get('backend')}"
    words = _(REFUSALS.get(key, REFUSALS[exc.reason])).format(file=file, dir=data_dir, detail=str(exc),
                                          **{k: v if v is not None else "?"
                                             for k, v in exc.details.items()})
    return click.ClickException(words)


def _rows(info: backups.BackupInfo) -> list[tuple[str, str]]:
    return [(N_("taken"), info.taken),
            (N_("schema version"), str(info.schema)),
            (N_("networks"), str(info.networks)),
            (N_("audit entries"), str(info.audit_entries)),
            (N_("newest feed position"), str(info.feed_position)),
            (N_("server fingerprint"), info.fingerprint)]


def _backend(database_url: str | None) -> backups.Backend:
    try:
        return backups.backend(database_url)
    except ValueError:
        raise click.UsageError(_("--database: the database must be a postgresql:// URL")) \
            from None


@click.command("backup", cls=Command)
@click.option("--data", "data_dir", required=True,
              type=click.Path(file_okay=False, exists=True, path_type=Path), help=DATA_HELP)
@click.option("--to", "target", required=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="the backup file to write (replaced atomically if it exists)")
@click.option("--database", "database_url", envvar="SCHAKEL_DATABASE", default=None,
              help=DATABASE_BACKUP_HELP)
@click.option("--json", "as_json", is_flag=True, help="print what the backup holds as JSON")
def backup_command(data_dir: Path, target: Path, database_url: str | None,
                   as_json: bool) -> None:
    """Copy the server's database to a backup file, safe while the server runs.

    Uses SQLite's online backup API: the copy is the database as of one commit, taken
    while `schakel serve` goes on writing. With --database (or SCHAKEL_DATABASE) it reads
    every table of that PostgreSQL database in one snapshot instead, into a backup file of
    the same kind. The copy is checked (integrity, a schema
    version this Schakel knows) and written atomically (temporary file, fsync, rename),
    mode 0600. It names the server keys it belongs to but does not hold them: keep
    server-keys.json and its passphrase (server-passphrase or SCHAKEL_SERVER_PASSPHRASE)
    safe apart, once; a restore needs the same keys. The backup holds only ciphertext and
    signed objects, but also what retention shreds later: keep backups no longer than the
    network's retention periods (docs/roles/operator.md).

    JSON keys: format, schema, taken, fingerprint, log, gate, networks, audit_entries,
    feed_position, file.
    """
    keys = existing_keys(data_dir)
    target = target.absolute()
    if not target.parent.is_dir():
        raise click.UsageError(_("--to: the folder {folder} does not exist").format(
            folder=target.parent))
    try:
        info = _backend(database_url).backup(data_dir, target, keys, now=datetime.now(UTC))
    except backups.BackupRefused as exc:
        raise _refused(exc, file=target, data_dir=data_dir) from None
    emit({**info.to_json(), "file": str(target)}, as_json=as_json, rows=[
        (N_("backup written"), str(target)), *_rows(info),
        (N_("next"), _("keep server-keys.json and its passphrase safe apart from the backups; "
                       "restore with `schakel server restore --data DIR --from FILE` while the "
                       "server is stopped") if database_url is None else
         _("keep server-keys.json and its passphrase safe apart from the backups; restore "
           "with `schakel server restore --data DIR --database URL --from FILE` while every "
           "server on the database is stopped"))])


@click.command("restore", cls=Command)
@click.option("--data", "data_dir", required=True,
              type=click.Path(file_okay=False, exists=True, path_type=Path), help=DATA_HELP)
@click.option("--from", "source", required=True,
              type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="the backup file made by `schakel server backup`")
@click.option("--database", "database_url", envvar="SCHAKEL_DATABASE", default=None,
              help=DATABASE_BACKUP_HELP)
@click.option("--other-keys", is_flag=True,
              help="restore a backup taken under other server keys than the data "
                   "directory's (the networks in it will not trust this server)")
@click.option("--json", "as_json", is_flag=True, help="print what was restored as JSON")
def restore_command(data_dir: Path, source: Path, database_url: str | None, other_keys: bool,
                    as_json: bool) -> None:
    """Replace a stopped server's database with a backup.

    Refused while a server runs on the data directory (it holds DIR/server.lock), and
    for a file that is not an intact Schakel backup, has a schema newer than this
    Schakel knows, or was taken under other server keys than DIR holds (unless
    --other-keys). The database is replaced atomically; its old write-ahead log is
    checkpointed and removed. Start the server after; it migrates an older schema.

    With --database (or SCHAKEL_DATABASE) the backup replaces the Schakel tables of that
    PostgreSQL database in one transaction (a failed restore changes nothing), migrated
    to this version's schema; refused while any Schakel server is connected to it.

    A restored server has lost what was written after the backup: partners whose
    clients saw more are told the server rolled back (audit-rollback) and stop
    trusting it. Tell each network's coordinator at once (docs/roles/operator.md).

    JSON keys: format, schema, taken, fingerprint, log, gate, networks, audit_entries,
    feed_position, file.
    """
    keys = existing_keys(data_dir)
    try:
        info = _backend(database_url).restore(data_dir, source, keys, other_keys=other_keys)
    except backups.BackupRefused as exc:
        raise _refused(exc, file=source, data_dir=data_dir) from None
    emit({**info.to_json(), "file": str(source)}, as_json=as_json, rows=[
        (N_("restored from"), str(source)), *_rows(info),
        (N_("next"), _("start the server, then tell every network's coordinator that it was "
                       "restored to {taken}: partners that saw more are told the server rolled "
                       "back (audit-rollback); see docs/roles/operator.md").format(
                           taken=info.taken))])


__all__ = ["backup_command", "restore_command"]
