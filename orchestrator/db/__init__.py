"""Database layer: models, engine setup, migrations."""
