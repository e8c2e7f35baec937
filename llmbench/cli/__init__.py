"""The command line: Typer commands that parse, call llmbench.api and render."""
