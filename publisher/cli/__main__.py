"""``python -m publisher.cli``: the ``publisher`` command."""

from publisher.cli import main

main()
