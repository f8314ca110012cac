"""``python -m client …`` is the ``learningchain`` command (devnet starts nodes this way)."""

from client.cli.main import main

main()
