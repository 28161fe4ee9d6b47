"""Deterministic workflow code, one business process per module.

Nothing is imported here on purpose: the workflow sandbox imports a workflow's module (and so this package)
afresh for every run, and an import of every workflow module here made each run re-execute all of them.
The list of workflows a worker registers is workflows.catalog.ALL_WORKFLOWS.
"""
