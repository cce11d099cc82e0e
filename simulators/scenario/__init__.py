"""Scenario runner: a simulated checkpoint (the lab) driven by timed trucks and faults."""
