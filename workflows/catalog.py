"""Every workflow a worker registers (imported by workers/, never by a workflow module)."""

from workflows.agent_health import AgentHealthWorkflow
from workflows.batch import BatchWorkflow
from workflows.composition import CompositionWorkflow
from workflows.dispatch_reconciler import DispatchReconcileWorkflow
from workflows.scheduled_task import ScheduledTaskWorkflow
from workflows.task_workflow import TaskWorkflow
from workflows.webhook_delivery import WebhookDeliveryWorkflow

ALL_WORKFLOWS = [
    TaskWorkflow,
    AgentHealthWorkflow,
    BatchWorkflow,
    CompositionWorkflow,
    DispatchReconcileWorkflow,
    ScheduledTaskWorkflow,
    WebhookDeliveryWorkflow,
]
