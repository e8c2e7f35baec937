from llmbench.cli.commands import main

main()
