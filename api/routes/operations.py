"""What operators watch: queues and workers; and the probes a load balancer asks."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.auth import Principal, require
from api.problems import COMMON
from api.service import Service, service

router = APIRouter(tags=["operations"])


class QueueInfo(BaseModel):
    name: str
    lane: str = Field(description="normal or breaking")
    depth: int = Field(description="Messages waiting")
    oldest: float = Field(description="Seconds the oldest waiting message has waited (0: none waiting)")
    note: str = Field(default="", description="Why the age is unknown, when it is")


class WorkerInfo(BaseModel):
    name: str
    alive: bool
    running: list[dict[str, Any]] = Field(default_factory=list)


class Queues(BaseModel):
    mode: str
    queues: list[QueueInfo]


class Workers(BaseModel):
    mode: str
    workers: list[WorkerInfo]


@router.get("/v1/queues", response_model=Queues, responses=COMMON)
def queues(svc: Annotated[Service, Depends(service)],
           who: Annotated[Principal, Depends(require("operator"))]) -> Queues:
    """Depth and age of the oldest waiting message of every queue, both lanes."""
    return Queues(mode=svc.backend.mode, queues=[QueueInfo(**q) for q in svc.backend.queues()])


@router.get("/v1/workers", response_model=Workers, responses=COMMON)
def workers(svc: Annotated[Service, Depends(service)],
            who: Annotated[Principal, Depends(require("operator"))]) -> Workers:
    """The workers that answer, and what each runs."""
    return Workers(mode=svc.backend.mode, workers=[WorkerInfo(**w) for w in svc.backend.workers()])


class Health(BaseModel):
    status: str
    mode: str
    checks: dict[str, str] = Field(default_factory=dict)


@router.get("/healthz", response_model=Health)
def healthz(svc: Annotated[Service, Depends(service)]) -> Health:
    """The process is up."""
    return Health(status="ok", mode=svc.backend.mode)


@router.get("/readyz", response_model=Health, responses={503: {"model": Health, "description": "Not ready"}})
async def readyz(svc: Annotated[Service, Depends(service)]) -> JSONResponse:
    """The broker and the stores answer (embedded: the folders can be written)."""
    checks = await run_in_threadpool(svc.backend.ready)
    ok = all(value == "ok" for value in checks.values())
    health = Health(status="ok" if ok else "unavailable", mode=svc.backend.mode, checks=checks)
    return JSONResponse(health.model_dump(), status_code=200 if ok else 503)
