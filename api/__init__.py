"""energymon api."""
