"""What a worker process inherits from its supervisor, named in one environment variable."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import MutableMapping

# Names the descriptors a worker inherits: slot:channel:fd,fd,...
WORKER_ENV = "DJANGO_SCGI_WORKER"


@dataclasses.dataclass(frozen=True)
class Handoff:
    """What a worker process got from its supervisor."""

    slot: int
    channel: int
    listeners: tuple[int, ...]

    def encode(self) -> str:
        return f"{self.slot}:{self.channel}:{','.join(map(str, self.listeners))}"

    @classmethod
    def decode(cls, text: str) -> Handoff:
        slot, channel, listeners = text.split(":")
        return cls(int(slot), int(channel), tuple(int(fd) for fd in listeners.split(",")))


def handoff_from_environ(environ: MutableMapping[str, str] | None = None) -> Handoff | None:
    """The ``Handoff`` when this process is a worker (and remove it from the environment)."""
    environ = os.environ if environ is None else environ
    text = environ.pop(WORKER_ENV, None)
    if not text:
        return None
    try:
        return Handoff.decode(text)
    except ValueError:
        raise ValueError(f"{WORKER_ENV}={text!r} is not slot:channel:fd,fd…") from None
