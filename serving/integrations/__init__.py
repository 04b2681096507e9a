"""Integrations with comment platforms: Coral's external moderation phase (`routes.router`)."""
