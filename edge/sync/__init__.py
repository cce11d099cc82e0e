"""Sync with the central customs system over MQTT 5 (DESIGN-NOTES §7, docs/sync.md).

Down: signed manifest/hotlist batches, snapshots and lane commands (``downlink``). Up: the
SQLite outbox drained in order with QoS 1 (``publisher``). ``service.SyncService`` assembles
them around one ``link.MqttLink``.
"""
