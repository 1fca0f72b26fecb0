"""The ``p0-receiver`` command line: developer tools (``dev``) and operator commands."""

from __future__ import annotations

import click

from p0_receiver import __version__
from p0_receiver.entrypoints.cli.audit import audit
from p0_receiver.entrypoints.cli.dev import dev
from p0_receiver.entrypoints.cli.doctor import doctor
from p0_receiver.entrypoints.cli.quarantine import quarantine
from p0_receiver.entrypoints.cli.redrive import redrive, replay
from p0_receiver.entrypoints.cli.report import report


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="p0-receiver")
def main() -> None:
    """Receive P0 Security notifications on Google Cloud: verify, audit, publish."""


main.add_command(dev)
main.add_command(audit)
main.add_command(redrive)
main.add_command(replay)
main.add_command(quarantine)
main.add_command(doctor)
main.add_command(report)
