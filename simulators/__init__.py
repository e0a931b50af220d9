"""energymon simulators."""
