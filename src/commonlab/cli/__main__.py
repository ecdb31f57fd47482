"""`python -m commonlab.cli` runs the same command as `commonlab`."""

from commonlab.cli.main import main

main()
