"""The controller socket is the barrier's front door: only its owner and group may connect
(docs/security.md, trust boundary "controller socket")."""

from __future__ import annotations

import stat

from tests.gate_controller.conftest import InProcessController


def test_ipc_socket_is_owner_and_group_only(controller: InProcessController) -> None:
    mode = controller.socket.stat().st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o660          # no access for "other" users on the machine
