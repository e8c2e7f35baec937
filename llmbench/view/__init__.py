"""`llmbench view`: a local web app over results files (runs, samples, two-run diffs, a study's leaderboard).

catalog.py finds the files and reads them lazily, queries.py and diffing.py turn runs into the JSON the
pages show, server.py serves that JSON and the static page (static/) on the loopback interface.
"""
