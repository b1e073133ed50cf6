"""vidseek indexer package."""
