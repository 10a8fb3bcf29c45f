"""API Gateway REST: create a job, read its status and objects, cancel it; the API's document."""

from __future__ import annotations

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from bulk_restore import openapi
from bulk_restore.api_models import CreateJobAnswer, JobsPage, JobStatusDocument, ObjectsPage, conform
from bulk_restore.handlers import inject_function_context, metrics, rest, tracer
from bulk_restore.usecases.estimate import DryRunAnswer
from bulk_restore.usecases.jobs import CreateJobRequest, status_document
from bulk_restore.wiring import services

logger = Logger(service="bulk-restore")
app = rest.RestResolver()
rest.install(app)


@app.post("/create-job")
def create_job() -> dict:
    request, warnings = CreateJobRequest.from_body(rest.json_body(app.current_event))
    estimates = services().estimates
    assert estimates is not None
    if request.dry_run:  # the price before paying: nothing is created
        estimate = estimates.estimate(request)
        logger.info(
            "estimate answered", extra={"source": estimate.Source, "objects": estimate.ObjectsListed, "total_usd": estimate.TotalUsd}
        )
        return DryRunAnswer(DryRun=True, Estimate=estimate, Warnings=warnings).model_dump(mode="json")
    idempotency_key = rest.idempotency_key(app.current_event)
    if request.max_cost_usd is not None and not services().jobs.is_repeat(request, idempotency_key):
        estimates.check_max_cost(request)  # EstimateOverMaxCost (422) when above it
    job, created = services().jobs.create(request, idempotency_key)
    logger.info("job accepted", extra={"job_id": job.job_id, "new_job": created, "tier": job.tier.value, "warnings": len(warnings)})
    settings = services().settings
    return conform(
        CreateJobAnswer,
        {
            "SNSTopic": settings.topic_arn,
            "SQSQueue": settings.events_queue_arn or None,
            "ReportBucket": settings.report_bucket or None,
            "BulkJobId": job.job_id,
            "TotalFilesRequested": job.manifest_objects,
            "JobId": job.job_id,
            "Status": job.status.value,
            "StatusUrl": f"{rest.base_url(app.current_event)}/jobs/{job.job_id}",
            "Created": created,
            "BatchJobId": job.batch_job_id,
            "Engine": job.engine,
            "Source": job.source_type,
            "BatchOperation": {"Engine": job.engine, "JobId": job.batch_job_id},
            "Warnings": warnings,
        },
    )


@app.get("/jobs")
def recent_jobs() -> dict:
    params = app.current_event.query_string_parameters or {}
    return conform(
        JobsPage, services().jobs.recent_jobs(rest.page_size(app.current_event, default=20, maximum=100), params.get("next_token"))
    )


@app.get("/jobs/<job_id>")
def get_job(job_id: str) -> dict:
    return conform(JobStatusDocument, status_document(*services().jobs.status(job_id), services().settings.topic_arn))


@app.post("/jobs/<job_id>/cancel")
def cancel_job(job_id: str) -> dict:
    return conform(JobStatusDocument, status_document(*services().jobs.cancel(job_id), services().settings.topic_arn))


@app.get("/jobs/<job_id>/objects")
def list_objects(job_id: str) -> dict:
    params = app.current_event.query_string_parameters or {}
    page = services().jobs.list_objects(job_id, params.get("state"), rest.page_size(app.current_event), params.get("next_token"))
    return conform(ObjectsPage, page)


@app.get("/openapi.json")
def openapi_document() -> dict:
    """This API's OpenAPI document (openapi.json), with the URL it was called at as its server."""
    return openapi.served_document(rest.base_url(app.current_event))


@inject_function_context(logger)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
