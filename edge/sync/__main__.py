"""``python -m edge.sync -c gate-edge.yaml``: run only the sync component, until SIGTERM.

Used by the reliability tests (killed with SIGKILL mid-burst and restarted) and handy on a
checkpoint to drain the outbox while the rest of the daemon is stopped for maintenance.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from edge.config import ConfigError, load_config
from edge.logging_setup import configure_logging
from edge.sync.service import SyncService

log = logging.getLogger("edge.sync")


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, load config, run the service until a signal arrives."""
    parser = argparse.ArgumentParser(prog="python -m edge.sync", description=__doc__)
    parser.add_argument("-c", "--config", type=Path, required=True, help="gate-edge YAML file")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING...")
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return 1
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    service = SyncService(cfg)
    service.start()
    log.info("sync running for site %s", cfg.site.code)
    while not done.wait(1.0):
        pass
    service.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
