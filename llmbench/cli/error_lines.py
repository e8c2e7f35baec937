"""How the command ends: every expected failure becomes one clear line and an exit code; --debug shows tracebacks."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape

from llmbench.errors import LLMBenchError


def exit_code_for(exc: BaseException, console: Console, *, debug: bool) -> int:
    """Print what went wrong as one line on `console` and return the exit code the process ends with."""
    if isinstance(exc, typer.Exit):
        return exc.exit_code
    if isinstance(exc, typer.Abort):
        console.print("aborted")
        return 130
    if isinstance(exc, typer.TyperException):  # a usage error: unknown option, missing argument, bad value
        message = " ".join(exc.format_message().split())  # one line, like every other error
        ctx = getattr(exc, "ctx", None)
        command = "llmbench" + ctx.command_path.partition("llmbench")[2] if ctx is not None else ""
        where = f" (see `{command} --help`)" if command else ""
        console.print(f"[bold red]error:[/] {message}{where}", highlight=False, soft_wrap=True)
        return 2
    if isinstance(exc, KeyboardInterrupt):
        console.print("interrupted")
        return 130
    if debug:
        console.print_exception()
    if isinstance(exc, LLMBenchError):
        # escaped: a hint such as `pip install 'llmbench[mlflow]'` is text, not Rich markup
        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return exc.exit_code
    console.print(
        f"[bold red]internal error:[/] {type(exc).__name__}: {exc} (run with --debug for the traceback)",
        highlight=False,
        soft_wrap=True,
    )
    return 1


def finished(code: object, console: Console) -> int:
    """The exit code of a command that returned; a Ctrl-C pressed as it finished still ends with 130."""
    from llmbench.run import interrupts

    if interrupts.requested():  # pressed as the command finished: its output is complete
        console.print("interrupted (after the command had finished its work)")
        return 130
    return code if isinstance(code, int) else 0
