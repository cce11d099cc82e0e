"""``python -m gate_controller`` runs the CLI (same as the ``gate-controller`` script)."""

from gate_controller.cli import main

main()
