"""`python -m voxledger`: the same as the `voxledger` command."""

from voxledger.cli import main

main()
