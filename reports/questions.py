"""Questions asked, by topic: the public figures' second table.

The content build marks the first page of every topic's answer with the topic (an intent)
and, where the answer was written for one country, that country (`custom.hotline.topic`,
hotline/build.py). The gateway counts the marks of the answers it relays in memory
(`QuestionTally`) and adds them to `question_counts` in each background round: one small
upsert per (month, country, topic) instead of a write per message, so a slow database
never delays an answer. Nothing but counts is kept: no pseudonym, no text, no day.
A round that fails keeps its counts for the next one.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine, select
from sqlalchemy.dialects import postgresql, sqlite

from reports.db import transaction
from reports.models import QuestionCount, utcnow

Key = tuple[str, str, str]  # (month "YYYY-MM", country or "", topic)
MAX_TOPIC_CHARS = 64


@dataclass(frozen=True)
class TopicMark:
    """One answer's topic and the country it was written for (None: any country)."""

    topic: str
    country: str | None = None


def month_of(when: datetime) -> str:
    return when.strftime("%Y-%m")


@dataclass
class QuestionTally:
    """Counts kept in a gateway's memory until the next flush (thread-safe: answers are
    counted on the event loop, flushes run in a worker thread)."""

    counts: Counter[Key] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, marks: Iterable[TopicMark], now: datetime | None = None) -> None:
        month = month_of(now or utcnow())
        with self.lock:
            for mark in marks:
                self.counts[(month, mark.country or "", mark.topic[:MAX_TOPIC_CHARS])] += 1

    def take(self) -> Counter[Key]:
        with self.lock:
            taken, self.counts = self.counts, Counter()
        return taken

    def give_back(self, counts: Counter[Key]) -> None:
        with self.lock:
            self.counts.update(counts)

    def flush(self, engine: Engine) -> int:
        """Add the kept counts to the database; on failure they stay kept (and the error
        is raised for the background loop to log). Returns how many answers were added."""
        counts = self.take()
        if not counts:
            return 0
        try:
            add_counts(engine, counts)
        except BaseException:
            self.give_back(counts)
            raise
        return sum(counts.values())


def _upsert(engine: Engine, key: Key, answers: int) -> object:
    """INSERT … ON CONFLICT DO UPDATE answers = answers + n (PostgreSQL and SQLite): safe
    when several gateways flush the same key at once."""
    month, country, topic = key
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(QuestionCount).values(month=month, country=country, topic=topic, answers=answers)
    return statement.on_conflict_do_update(
        index_elements=["month", "country", "topic"],
        set_={"answers": QuestionCount.answers + statement.excluded.answers},
    )


def add_counts(engine: Engine, counts: Counter[Key]) -> None:
    with transaction(engine) as session:
        for key, answers in sorted(counts.items()):
            session.execute(_upsert(engine, key, answers))  # type: ignore[call-overload]


def count_questions(engine: Engine) -> Counter[Key]:
    """(month, country, topic) -> answers, as stored."""
    with transaction(engine) as session:
        q = QuestionCount
        rows = session.execute(select(q.month, q.country, q.topic, q.answers))
        return Counter({(month, country, topic): answers for month, country, topic, answers in rows})
