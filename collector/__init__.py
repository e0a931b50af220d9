"""energymon collector."""
