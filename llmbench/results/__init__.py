"""The results file: its schema, its typed blocks, reading and writing, migrations."""
