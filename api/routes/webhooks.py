"""Webhooks to the CMS (operators only): register an endpoint (its secret is shown once), list and
delete endpoints, list an endpoint's deliveries and replay one. URLs must pass the SSRF guard
(:mod:`pipeline.notify.targets`): an allowed host, every address public."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel, Field

from api import metrics, webhook_sender
from api.auth import Principal, require
from api.problems import COMMON, Problem, documented
from api.service import Service, service
from pipeline.notify import delivery, outbox
from pipeline.notify.targets import MAX_URL, TargetRefused, check_url

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"], responses=COMMON)

EndpointId = Annotated[str, Path(pattern=r"^ep_[0-9a-f]{16}$", description="A webhook endpoint's id")]
DeliveryId = Annotated[str, Path(pattern=r"^dlv_[0-9a-f]{20}$", description="A delivery's id")]
Event = Literal["story.manifest.published", "job.failed"]


class NewEndpoint(BaseModel):
    url: str = Field(max_length=MAX_URL, description="https:// (or http:// for a host listed by name)"
                                                     " on a host in STORYMEDIA_WEBHOOK_HOSTS")
    events: list[Event] = Field(min_length=1, max_length=len(outbox.EVENTS))
    description: str = Field(default="", max_length=outbox.MAX_DESCRIPTION)


class EndpointOut(BaseModel):
    id: str
    url: str
    events: list[str]
    enabled: bool
    created: str
    description: str = ""
    disabled_reason: str = Field(default="", description="Why deliveries stopped (a 410 from the receiver)")


class EndpointCreated(EndpointOut):
    secret: str = Field(description="The signing secret (whsec_...): shown this once, never again")


class Endpoints(BaseModel):
    webhooks: list[EndpointOut]


class Attempt(BaseModel):
    at: str = ""
    status: int | None = Field(default=None, description="The receiver's HTTP status")
    error: str | None = Field(default=None, description="Why no status came back")
    seconds: float = 0.0
    replay: bool = False


class DeliveryOut(BaseModel):
    id: str
    endpoint: str
    type: str
    msg_id: str = Field(description="The webhook-id header, the same on every attempt")
    payload: dict[str, Any]
    created: str
    state: Literal["pending", "delivered", "failed", "disabled"]
    next_at: str | None = Field(default=None, description="When the next attempt is due (pending only)")
    tries: int
    attempts: list[Attempt]


class DeliveryPage(BaseModel):
    deliveries: list[DeliveryOut]
    next_cursor: str | None = None


class Replayed(BaseModel):
    outcome: Literal["delivered", "retry", "failed", "disabled"]
    delivery: DeliveryOut


def _endpoint(svc: Service, endpoint_id: str) -> outbox.Endpoint:
    found = outbox.read_endpoint(svc.backend.private, endpoint_id)
    if found is None:
        raise Problem("not-found", f"no webhook endpoint {endpoint_id}")
    return found


def _delivery_out(found: outbox.Delivery) -> DeliveryOut:
    return DeliveryOut(**{**found.public(), "attempts": [Attempt(**{k: v for k, v in a.items()
                                                                    if k in Attempt.model_fields})
                                                         for a in found.attempts]})


@router.post("", status_code=201, response_model=EndpointCreated,
             responses=documented("bad-request", "conflict"))
def create(body: NewEndpoint, response: Response, svc: Annotated[Service, Depends(service)],
           who: Annotated[Principal, Depends(require("operator"))]) -> EndpointCreated:
    """Register an endpoint: 201 with its signing secret, shown this once. The URL is refused (422,
    field ``url``) unless its host is allowed and every address it resolves to is public."""
    try:
        check_url(body.url, webhook_sender.policy(svc))
    except TargetRefused as exc:
        raise Problem("invalid", f"url: {exc.reason}", errors=[("url", exc.reason)]) from None
    try:
        made = outbox.create_endpoint(svc.backend.private, body.url, body.events, body.description)
    except outbox.OutboxError as exc:
        raise Problem("conflict", exc.reason) from None
    response.headers["Location"] = f"/v1/webhooks/{made.id}"
    return EndpointCreated(**made.public(), secret=made.secret)


@router.get("", response_model=Endpoints)
def list_endpoints(svc: Annotated[Service, Depends(service)],
                   who: Annotated[Principal, Depends(require("operator"))]) -> Endpoints:
    """Every endpoint, without secrets."""
    return Endpoints(webhooks=[EndpointOut(**e.public()) for e in outbox.endpoints(svc.backend.private)])


@router.delete("/{endpoint_id}", status_code=204, responses=documented("not-found"))
def delete(endpoint_id: EndpointId, svc: Annotated[Service, Depends(service)],
           who: Annotated[Principal, Depends(require("operator"))]) -> Response:
    """Remove the endpoint and its deliveries (nothing more is sent to it)."""
    private = svc.backend.private
    with outbox.locked(private):
        if not outbox.delete_endpoint(private, endpoint_id):
            raise Problem("not-found", f"no webhook endpoint {endpoint_id}")
    return Response(status_code=204)


@router.get("/{endpoint_id}/deliveries", response_model=DeliveryPage, responses=documented("not-found"))
def list_deliveries(endpoint_id: EndpointId, svc: Annotated[Service, Depends(service)],
                    who: Annotated[Principal, Depends(require("operator"))],
                    cursor: Annotated[str | None, Query(pattern=r"^dlv_[0-9a-f]{20}$",
                                                        description="next_cursor of the page before")] = None,
                    limit: Annotated[int, Query(ge=1, le=200)] = 50) -> DeliveryPage:
    """The endpoint's deliveries, newest first, with every attempt."""
    _endpoint(svc, endpoint_id)
    page, more = outbox.deliveries(svc.backend.private, endpoint_id, limit, cursor)
    return DeliveryPage(deliveries=[_delivery_out(d) for d in page], next_cursor=more)


@router.post("/{endpoint_id}/deliveries/{delivery_id}/replay", response_model=Replayed,
             responses=documented("not-found", "conflict"))
def replay(endpoint_id: EndpointId, delivery_id: DeliveryId, svc: Annotated[Service, Depends(service)],
           who: Annotated[Principal, Depends(require("operator"))]) -> Replayed:
    """Send the delivery once more, now, with the same ``webhook-id`` (a new timestamp and
    signature); answers the attempt's outcome. A failed replay leaves the schedule as it was."""
    _endpoint(svc, endpoint_id)
    try:
        found, outcome = delivery.replay(svc.backend.private, endpoint_id, delivery_id,
                                         policy=webhook_sender.policy(svc))
    except LookupError:
        raise Problem("not-found", f"no delivery {delivery_id} of endpoint {endpoint_id}") from None
    except outbox.OutboxError as exc:
        raise Problem("conflict", exc.reason) from None
    metrics.observe_delivery(svc, outcome.outcome)
    return Replayed(outcome=outcome.outcome, delivery=_delivery_out(found))  # type: ignore[arg-type]
