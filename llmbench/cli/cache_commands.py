"""`llmbench cache`: what the generation cache holds, and removing entries from it."""

from __future__ import annotations

import typer

from llmbench import api
from llmbench.cli.flags import MissingModelsOpt, OlderThanDaysOpt
from llmbench.cli.show import out

app = typer.Typer(
    name="cache",
    help="The generation cache: quality runs' answers kept across runs, keyed by the model's files, its "
    "settings and libraries, the exact prompt and every generation parameter. `llmbench run --no-cache` "
    "bypasses it.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)


@app.command()
def info() -> None:
    """How many generations the cache holds, its size on disk, and what each model has there."""
    from llmbench.report.cache_table import print_cache_info

    print_cache_info(api.cache_info(), out)


@app.command()
def prune(older_than_days: OlderThanDaysOpt = None, missing_models: MissingModelsOpt = False) -> None:
    """Remove old entries, and/or those of models whose files are gone or have changed."""
    removed = api.cache_prune(older_than_days=older_than_days, missing_models=missing_models)
    out.print(f"removed {removed} cached generation(s)")


@app.command()
def clear() -> None:
    """Remove every cached generation (and a store that cannot be read)."""
    out.print(f"removed {api.cache_clear()} cached generation(s)")
