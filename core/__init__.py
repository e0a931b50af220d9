"""energymon core."""
