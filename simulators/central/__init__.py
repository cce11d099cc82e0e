"""Simulated central customs system (``gate-sim central``) and a local Mosquitto runner."""
