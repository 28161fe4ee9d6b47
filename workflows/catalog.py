"""Every workflow a worker registers (imported by workers/, never by a workflow module)."""

from ains.workflows.agent_health import AgentHealthWorkflow
from ains.workflows.batch import BatchWorkflow
from ains.workflows.composition import CompositionWorkflow
from ains.workflows.dispatch_reconciler import DispatchReconcileWorkflow
from ains.workflows.scheduled_task import ScheduledTaskWorkflow
from ains.workflows.task_workflow import TaskWorkflow
from ains.workflows.webhook_delivery import WebhookDeliveryWorkflow

ALL_WORKFLOWS = [
    TaskWorkflow,
    AgentHealthWorkflow,
    BatchWorkflow,
    CompositionWorkflow,
    DispatchReconcileWorkflow,
    ScheduledTaskWorkflow,
    WebhookDeliveryWorkflow,
]
