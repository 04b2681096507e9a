"""Perspective-compatible API: Perspective's own requests answered by belonging's model.

`serving.perspective.routes.router` is included by `serving.api.app.create_app`. See
docs/migrating-from-perspective.md.
"""
