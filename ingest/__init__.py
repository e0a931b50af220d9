"""energymon ingest."""
