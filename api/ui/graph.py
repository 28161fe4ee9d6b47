"""Lay a plan's DAG out for drawing: each step in the column of its longest dependency chain, edges as curves."""

from __future__ import annotations

from dataclasses import dataclass

from ains.models.plans import PlanStepView

NODE_W, NODE_H, GAP_X, GAP_Y, PAD = 170, 48, 60, 18, 10


@dataclass
class Node:
    step: PlanStepView
    x: int
    y: int


@dataclass
class Edge:
    path: str
    status: str


@dataclass
class Layout:
    nodes: list[Node]
    edges: list[Edge]
    width: int
    height: int


def layout(steps: list[PlanStepView]) -> Layout:
    by_name = {s.name: s for s in steps}
    depth: dict[str, int] = {}

    def depth_of(name: str) -> int:
        # Plans are validated acyclic before they start; iterative order keeps deep chains off the stack.
        stack = [name]
        while stack:
            current = stack[-1]
            parents = [p for p in by_name[current].depends_on if p in by_name]
            missing = [p for p in parents if p not in depth]
            if missing:
                stack.extend(missing)
                continue
            depth[current] = 1 + max((depth[p] for p in parents), default=-1)
            stack.pop()
        return depth[name]

    columns: dict[int, list[PlanStepView]] = {}
    for step in steps:
        columns.setdefault(depth_of(step.name), []).append(step)
    positions: dict[str, tuple[int, int]] = {}
    nodes = []
    for column, members in sorted(columns.items()):
        for row, step in enumerate(members):
            x, y = PAD + column * (NODE_W + GAP_X), PAD + row * (NODE_H + GAP_Y)
            positions[step.name] = (x, y)
            nodes.append(Node(step, x, y))
    edges = []
    for step in steps:
        tx, ty = positions[step.name]
        for parent in step.depends_on:
            if parent not in positions:
                continue
            sx, sy = positions[parent]
            x1, y1, x2, y2 = sx + NODE_W, sy + NODE_H // 2, tx, ty + NODE_H // 2
            mid = (x1 + x2) // 2
            edges.append(Edge(f"M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}", by_name[parent].status))
    width = PAD * 2 + (max(columns, default=0) + 1) * (NODE_W + GAP_X) - GAP_X
    height = PAD * 2 + max((len(m) for m in columns.values()), default=1) * (NODE_H + GAP_Y) - GAP_Y
    return Layout(nodes=nodes, edges=edges, width=width, height=height)
