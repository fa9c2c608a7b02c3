"""``python -m ccat_hpc`` is the ``ccat-hpc`` command."""

from ccat_hpc.cli.main import main

main()
