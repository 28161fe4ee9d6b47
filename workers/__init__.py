"""Process entry points: workers per task queue, the API server, the dev stack launcher and the CLI."""
