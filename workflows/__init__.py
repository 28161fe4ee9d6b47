"""Deterministic workflow code, one business process per module."""

from workflows.task_workflow import TaskWorkflow

ALL_WORKFLOWS = [TaskWorkflow]

__all__ = ["ALL_WORKFLOWS", "TaskWorkflow"]
