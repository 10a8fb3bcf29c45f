"""API Gateway REST: POST /create-job, GET /jobs/{job_id}, GET /jobs/{job_id}/objects."""

from __future__ import annotations

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.utilities.typing import LambdaContext

from bulk_restore.domain.errors import InvalidRequest, RequestTooLarge
from bulk_restore.handlers import http_errors
from bulk_restore.usecases.jobs import CreateJobRequest, status_document
from bulk_restore.wiring import services

logger = Logger(service="bulk-restore")
app = APIGatewayRestResolver()
http_errors.install(app)


def _base_url() -> str:
    event = app.current_event
    proto = event.headers.get("X-Forwarded-Proto", "https")
    full_path = event.request_context.path or event.path
    prefix = full_path[: len(full_path) - len(event.path)] if full_path.endswith(event.path) else ""
    return f"{proto}://{event.headers.get('Host', 'localhost')}{prefix}"


MAX_BODY_BYTES = 16 * 1024  # a create-job body is a few hundred bytes; the manifest stays in S3


@app.post("/create-job")
def create_job() -> dict:
    if len(app.current_event.body or "") > MAX_BODY_BYTES:
        raise RequestTooLarge(f"the request body is over {MAX_BODY_BYTES} bytes: put the object list in the manifest, in S3")
    if not (app.current_event.body or "").strip():
        raise InvalidRequest("the request body is empty: send a JSON object with bucket, key and tier")
    request = CreateJobRequest.model_validate(app.current_event.json_body)
    key = app.current_event.headers.get("Idempotency-Key")
    job, created = services().jobs.create(request, key)
    logger.info("job accepted", extra={"job_id": job.job_id, "new_job": created, "tier": job.tier.value})
    return {
        "SNSTopic": services().settings.topic_arn,
        "BulkJobId": job.job_id,
        "JobId": job.job_id,
        "Status": job.status.value,
        "StatusUrl": f"{_base_url()}/jobs/{job.job_id}",
        "Created": created,
        "BatchOperation": {"Engine": job.engine, "JobId": job.job_id},
    }


@app.get("/jobs/<job_id>")
def get_job(job_id: str) -> dict:
    job, counts = services().jobs.status(job_id)
    return status_document(job, counts, services().settings.topic_arn)


@app.post("/jobs/<job_id>/cancel")
def cancel_job(job_id: str) -> dict:
    job, counts = services().jobs.cancel(job_id)
    logger.info("job cancelled", extra={"job_id": job_id})
    return status_document(job, counts, services().settings.topic_arn)


@app.get("/jobs/<job_id>/objects")
def list_objects(job_id: str) -> dict:
    params = app.current_event.query_string_parameters or {}
    try:
        limit = int(params.get("limit", 100))
    except ValueError as exc:
        raise InvalidRequest("limit must be a whole number from 1 to 1000", {"limit": params.get("limit")}) from exc
    if not 1 <= limit <= 1000:
        raise InvalidRequest("limit must be a whole number from 1 to 1000", {"limit": limit})
    return services().jobs.list_objects(job_id, params.get("state"), limit, params.get("next_token"))


@logger.inject_lambda_context
def handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
