"""Blind-test votes in SQLite, and the leaderboard built from them.

The database file is ``KOKORO_VOTES_DB``; by default ``/data/kokoro_votes.sqlite3`` when the
Space has persistent storage (``/data`` is writable), else under the system temp folder.
It is created, with its folder, on first use.
"""

from __future__ import annotations

import os
import sqlite3
import statistics
import tempfile
import threading
import time
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from publisher.runtime.artifacts import BackendRuns, BrowserReport

CHOICES = ("A", "B", "tie")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS votes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    source TEXT NOT NULL,
    variant_a TEXT NOT NULL,
    variant_b TEXT NOT NULL,
    choice TEXT NOT NULL CHECK (choice IN ('A', 'B', 'tie')),
    voice TEXT NOT NULL,
    text_chars INTEGER NOT NULL
)
"""
# One vote per blind pair: each pair carries an id, recorded once however many votes for
# it arrive at the same time (older databases gain the column on first use).
_PAIR_COLUMN = "ALTER TABLE votes ADD COLUMN pair TEXT"
_PAIR_INDEX = "CREATE UNIQUE INDEX IF NOT EXISTS votes_pair ON votes (pair)"


# In-browser runs (kokoro_space/browser.py): which backend and browser ran which variant,
# how much it sounded like the server's run, and its real-time factor; nothing personal
# (the browser is its name and major version, nothing else of the request is kept).
_BROWSER_SCHEMA = """
CREATE TABLE IF NOT EXISTS browser_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    source TEXT NOT NULL,
    variant TEXT NOT NULL,
    backend TEXT NOT NULL,
    browser TEXT NOT NULL,
    match REAL,
    rtf REAL,
    flagged INTEGER NOT NULL
)
"""


def default_db_path() -> Path:
    env = os.environ.get("KOKORO_VOTES_DB", "").strip()
    if env:
        return Path(env).expanduser()
    data = Path("/data")
    if data.is_dir() and os.access(data, os.W_OK):
        return data / "kokoro_votes.sqlite3"
    return Path(tempfile.gettempdir()) / "kokoro-space" / "votes.sqlite3"


@dataclass(frozen=True)
class Standing:
    variant: str
    votes: int  # pairs this variant was part of and got a vote
    wins: int
    ties: int
    losses: int

    @property
    def win_rate(self) -> float:
        """Wins over all votes it took part in (a tie counts as a vote, not a win)."""
        return self.wins / self.votes if self.votes else 0.0


class VoteStore:
    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else default_db_path()
        self._lock = threading.Lock()
        self._ready = False

    def _connect(self) -> sqlite3.Connection:
        with self._lock:
            if not self._ready:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with closing(sqlite3.connect(self.path, timeout=10)) as con, con:
                    con.execute(_SCHEMA)
                    con.execute(_BROWSER_SCHEMA)
                    columns = {row[1] for row in con.execute("PRAGMA table_info(votes)")}
                    if "pair" not in columns:
                        con.execute(_PAIR_COLUMN)
                    con.execute(_PAIR_INDEX)
                self._ready = True
        return sqlite3.connect(self.path, timeout=10)

    def record(
        self,
        source: str,
        variant_a: str,
        variant_b: str,
        choice: str,
        voice: str,
        text_chars: int,
        pair: str | None = None,
    ) -> bool:
        """Record a vote; False when ``pair`` already has one (nothing is written)."""
        if choice not in CHOICES:
            raise ValueError(f"choice must be one of {CHOICES}, got {choice!r}")
        with closing(self._connect()) as con, con:
            cur = con.execute(
                "INSERT OR IGNORE INTO votes "
                "(ts, source, variant_a, variant_b, choice, voice, text_chars, pair) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (time.time(), source, variant_a, variant_b, choice, voice, int(text_chars), pair),
            )
            return cur.rowcount == 1

    def count(self, source: str | None = None) -> int:
        with closing(self._connect()) as con:
            if source is None:
                return con.execute("SELECT COUNT(*) FROM votes").fetchone()[0]
            return con.execute("SELECT COUNT(*) FROM votes WHERE source = ?", (source,)).fetchone()[
                0
            ]

    def leaderboard(self, source: str) -> list[Standing]:
        """One row per variant that took part in a vote for ``source``, best first."""
        with closing(self._connect()) as con:
            rows = con.execute(
                "SELECT variant_a, variant_b, choice FROM votes WHERE source = ?", (source,)
            ).fetchall()
        tally: dict[str, list[int]] = {}
        for a, b, choice in rows:
            for me, mine in ((a, "A"), (b, "B")):
                t = tally.setdefault(me, [0, 0, 0])  # wins, ties, losses
                t[0 if choice == mine else 1 if choice == "tie" else 2] += 1
        standings = [Standing(v, sum(t), t[0], t[1], t[2]) for v, t in tally.items()]
        return sorted(standings, key=lambda s: (-s.win_rate, -s.votes, s.variant))

    def record_browser_run(
        self,
        source: str,
        variant: str,
        backend: str,
        browser: str,
        match: float | None,
        rtf: float | None,
        flagged: bool,
    ) -> None:
        with closing(self._connect()) as con, con:
            con.execute(
                "INSERT INTO browser_runs "
                "(ts, source, variant, backend, browser, match, rtf, flagged) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    time.time(),
                    source,
                    variant,
                    backend[:40],
                    browser[:80],
                    match,
                    rtf,
                    int(flagged),
                ),
            )

    def browser_summary(self, source: str) -> list[BackendRuns]:
        """Per backend and variant: runs, flagged runs, median match and real-time factor."""
        with closing(self._connect()) as con:
            rows = con.execute(
                "SELECT backend, variant, match, rtf, flagged FROM browser_runs WHERE source = ?",
                (source,),
            ).fetchall()
        groups: dict[tuple[str, str], list[tuple]] = {}
        for backend, variant, match, rtf, flagged in rows:
            groups.setdefault((backend, variant), []).append((match, rtf, flagged))
        out = []
        for (backend, variant), runs in sorted(groups.items()):
            matches = [m for m, _, _ in runs if m is not None]
            rtfs = [r for _, r, _ in runs if r is not None]
            out.append(
                BackendRuns(
                    backend=backend,
                    variant=variant,
                    runs=len(runs),
                    flagged=sum(f for _, _, f in runs),
                    median_match=statistics.median(matches) if matches else None,
                    median_rtf=statistics.median(rtfs) if rtfs else None,
                )
            )
        return out

    def browser_report(self, source: str) -> dict[str, Any]:
        """``browser_summary`` as the ``BrowserReport`` file the model card reads
        (``publisher stage --browser-report``)."""
        return BrowserReport.write(
            source=source,
            written=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            rows=[r.model_dump() for r in self.browser_summary(source)],
        )
