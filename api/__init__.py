"""vidseek api package."""
