"""What the restore commands need of commands.Session, named apart: commands imports them, so they cannot import it."""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Protocol


class Session(Protocol):
    """The parsed flags, output, a prompt and the clock (commands.Session is one)."""

    args: argparse.Namespace

    @property
    def namespace(self) -> str: ...

    def clock(self) -> datetime: ...

    def out(self, text: str) -> None: ...

    def note(self, text: str) -> None: ...

    def ask(self, prompt: str) -> str: ...
