"""Domain services shared by the API routes and the activities (one sub-package per domain), on the platform
(core.platform: settings, database, Temporal client, logging, metrics).
"""
