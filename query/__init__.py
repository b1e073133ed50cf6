"""vidseek query package."""
