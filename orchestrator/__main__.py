"""The entry point of `orchestrator` and `python -m orchestrator`: signal handling first, then the CLI."""

from orchestrator.core import interrupts


def main() -> None:
    """Install the start-up signal handlers before importing anything heavy, then run the CLI."""
    interrupts.install()
    try:
        from orchestrator.cli import main as cli_main
    except KeyboardInterrupt as exc:
        interrupts.exit_interrupted(exc)
    cli_main()


if __name__ == "__main__":
    main()
