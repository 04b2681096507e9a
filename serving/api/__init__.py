"""The JSON API: the app factory (`app.create_app`), one router module per group of routes
(`routes/`), their dependencies, API-key auth, error answers, schemas and Prometheus metrics."""
