"""Custom search attributes set on every AINS workflow so runs can be filtered in the Temporal UI.

`ains up` and the test fixtures register them on the dev server; deploy/ registers them in production.
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

CLIENT_ID = SearchAttributeKey.for_keyword("AinsClientId")
TASK_TYPE = SearchAttributeKey.for_keyword("AinsTaskType")
PRIORITY = SearchAttributeKey.for_int("AinsPriority")
AGENT_ID = SearchAttributeKey.for_keyword("AinsAgentId")
STATUS = SearchAttributeKey.for_keyword("AinsStatus")

ALL_KEYS = (CLIENT_ID, TASK_TYPE, PRIORITY, AGENT_ID, STATUS)


def dev_server_flags() -> list[str]:
    """``--search-attribute Name=Type`` flags for ``temporal server start-dev``."""
    kinds = {"KEYWORD": "Keyword", "INT": "Int"}
    flags: list[str] = []
    for key in ALL_KEYS:
        flags += ["--search-attribute", f"{key.name}={kinds[key.indexed_value_type.name]}"]
    return flags


def new_task_attributes(client_id: str, task_type: str, priority: int) -> TypedSearchAttributes:
    """The attributes a task workflow starts with. The run sets AinsStatus (the task's final status) and
    AinsAgentId (the agent of its last attempt) in one upsert when it ends: every upsert is a history event,
    and while a task runs the Temporal UI shows it as Running with the agent in the activity's summary."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(CLIENT_ID, client_id),
            SearchAttributePair(TASK_TYPE, task_type),
            SearchAttributePair(PRIORITY, priority),
        ]
    )
