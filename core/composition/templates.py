"""Task templates: create, read, list, delete, and resolving a task request against its template."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping

from sqlalchemy import case, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ains.core.access.ownership import owned, visible
from ains.core.platform.errors import Conflict, InvalidInput
from ains.models.tables import TaskTemplate, as_utc, utcnow
from ains.models.tasks import TaskCreate
from ains.models.templates import TemplateCreate, TemplateView, apply_template


def _view(row: TaskTemplate) -> TemplateView:
    return TemplateView(
        id=row.id,
        name=row.name,
        task_type=row.task_type,
        defaults=row.defaults,
        times_used=row.times_used,
        created_at=as_utc(row.created_at) or utcnow(),
        updated_at=as_utc(row.updated_at) or utcnow(),
    )


async def create_template(session: AsyncSession, client_id: str, spec: TemplateCreate) -> TemplateView:
    row = TaskTemplate(
        id=f"tpl_{uuid.uuid4().hex}",
        client_id=client_id,
        name=spec.name,
        task_type=spec.task_type,
        defaults=spec.defaults,
        times_used=0,
    )
    session.add(row)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"you already have a template named {spec.name!r}") from exc
    return _view(row)


async def _template(session: AsyncSession, client_id: str | None, template_id: str) -> TaskTemplate:
    return owned(await session.get(TaskTemplate, template_id), client_id, f"template {template_id!r}")


async def get_template(session: AsyncSession, client_id: str | None, template_id: str) -> TemplateView:
    return _view(await _template(session, client_id, template_id))


async def list_templates(session: AsyncSession, client_id: str | None) -> list[TemplateView]:
    query = select(TaskTemplate).order_by(TaskTemplate.name)
    if client_id is not None:
        query = query.where(TaskTemplate.client_id == client_id)
    return [_view(r) for r in (await session.execute(query)).scalars()]


async def delete_template(session: AsyncSession, client_id: str | None, template_id: str) -> None:
    await session.delete(await _template(session, client_id, template_id))
    await session.flush()


async def resolve(session: AsyncSession, client_id: str, spec: TaskCreate) -> TaskCreate:
    """The request with its template applied (unchanged without one). Unknown templates are a 422."""
    if spec.template_id is None:
        return spec
    return apply(await session.get(TaskTemplate, spec.template_id), client_id, spec)


async def load_owned(session: AsyncSession, client_id: str, template_ids: Iterable[str]) -> dict[str, TaskTemplate]:
    """The client's templates among ``template_ids``, by id (one query); others' and unknown ones are left out."""
    wanted = sorted(set(template_ids))
    if not wanted:
        return {}
    query = select(TaskTemplate).where(TaskTemplate.id.in_(wanted), TaskTemplate.client_id == client_id)
    return {row.id: row for row in (await session.execute(query)).scalars()}


def apply(row: TaskTemplate | None, client_id: str, spec: TaskCreate) -> TaskCreate:
    """``spec`` with template ``row`` applied (``resolve`` without the query)."""
    if spec.template_id is None:
        return spec
    if row is None or not visible(row.client_id, client_id):
        raise InvalidInput(f"template {spec.template_id!r} not found")
    try:
        return apply_template(row.task_type, row.defaults, spec)
    except ValueError as exc:
        raise InvalidInput(f"the task is invalid once template {row.name!r} is applied: {exc}") from exc


async def count_use(session: AsyncSession, template_id: str) -> None:
    """Atomic increment, so concurrent submissions never lose a count."""
    await session.execute(
        update(TaskTemplate).where(TaskTemplate.id == template_id).values(times_used=TaskTemplate.times_used + 1)
    )


async def count_uses(session: AsyncSession, uses: Mapping[str, int]) -> None:
    """``count_use`` for many templates at once: one atomic UPDATE, ``uses`` maps template id to uses."""
    if not uses:
        return
    await session.execute(
        update(TaskTemplate)
        .where(TaskTemplate.id.in_(sorted(uses)))
        .values(times_used=TaskTemplate.times_used + case(dict(uses), value=TaskTemplate.id, else_=0))
        .execution_options(synchronize_session=False)
    )
