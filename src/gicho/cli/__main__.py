"""``python -m gicho.cli`` (and ``torchrun -m gicho.cli``) runs the ``gicho`` command."""

from gicho.cli import main

main()
