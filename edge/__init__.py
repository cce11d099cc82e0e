"""gate-edge package."""
