"""The Slurm executor: its command line (`cli.py`), the executor (`executor.py`) and the
association tree governance steers (`accounts.py`)."""
