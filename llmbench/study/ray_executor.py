"""Running a study on a Ray cluster (arrives in the next change)."""

from __future__ import annotations

from collections.abc import Sequence

from llmbench.errors import UserInputError
from llmbench.study.execute import Driver
from llmbench.study.plan import Job


def run_on_ray(jobs: Sequence[Job], address: str, driver: Driver) -> None:
    raise UserInputError("--ray is not available yet in this version", hint="run without --ray")
