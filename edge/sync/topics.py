"""MQTT topic names of one checkpoint (DESIGN-NOTES §7, docs/protocols.md).

``customs/v1/...`` flows down from the centre, ``edge/v1/...`` flows up from the checkpoint;
the ``v1`` lets a future incompatible payload run beside this one during a migration.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Topics:
    """Every topic one site uses, with the configured prefix applied."""

    site: str
    prefix: str = ""

    def _down(self, leaf: str) -> str:
        return f"{self.prefix}customs/v1/{self.site}/{leaf}"

    def _up(self, leaf: str) -> str:
        return f"{self.prefix}edge/v1/{self.site}/{leaf}"

    @property
    def manifests(self) -> str:
        """Down: signed manifest batches."""
        return self._down("manifests")

    @property
    def hotlist(self) -> str:
        """Down: signed hotlist batches."""
        return self._down("hotlist")

    @property
    def snapshot(self) -> str:
        """Down: the answer to a resync request (whole cache, possibly in parts)."""
        return self._down("snapshot")

    def command(self, lane: str) -> str:
        """Down: signed commands for one lane."""
        return self._down(f"commands/{lane}")

    @property
    def commands_filter(self) -> str:
        """Subscription filter for every lane's commands."""
        return self._down("commands/+")

    @property
    def status(self) -> str:
        """Up: retained birth / last will."""
        return self._up("status")

    @property
    def passages(self) -> str:
        """Up: passages (through the outbox)."""
        return self._up("passages")

    @property
    def alarms(self) -> str:
        """Up: alarms (through the outbox)."""
        return self._up("alarms")

    @property
    def acks(self) -> str:
        """Up: acknowledgements of batches and commands (through the outbox)."""
        return self._up("acks")

    @property
    def resync(self) -> str:
        """Up: request for a snapshot after a seq gap."""
        return self._up("resync")

    def down_subscriptions(self) -> list[str]:
        """What the checkpoint subscribes to (renewed on every connect)."""
        return [self.manifests, self.hotlist, self.snapshot, self.commands_filter]

    def lane_of_command(self, topic: str) -> str | None:
        """The lane a command topic names, or None if ``topic`` is not a command topic."""
        head = self._down("commands/")
        if topic.startswith(head) and "/" not in topic[len(head):] and topic[len(head):]:
            return topic[len(head):]
        return None


def central_filters(prefix: str = "") -> list[str]:
    """What the centre subscribes to: every site's up topics."""
    return [f"{prefix}edge/v1/+/{leaf}" for leaf in ("passages", "alarms", "acks", "resync", "status")]
