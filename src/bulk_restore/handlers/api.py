"""API Gateway REST: create a job, read its status and objects, cancel it."""

from __future__ import annotations

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from bulk_restore.handlers import inject_function_context, rest
from bulk_restore.usecases.jobs import CreateJobRequest, status_document
from bulk_restore.wiring import services

logger = Logger(service="bulk-restore")
app = rest.RestResolver()
rest.install(app)


@app.post("/create-job")
def create_job() -> dict:
    request, warnings = CreateJobRequest.from_body(rest.json_body(app.current_event))
    job, created = services().jobs.create(request, rest.idempotency_key(app.current_event))
    logger.info("job accepted", extra={"job_id": job.job_id, "new_job": created, "tier": job.tier.value, "warnings": len(warnings)})
    settings = services().settings
    return {
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
    }


@app.get("/jobs/<job_id>")
def get_job(job_id: str) -> dict:
    return status_document(*services().jobs.status(job_id), services().settings.topic_arn)


@app.post("/jobs/<job_id>/cancel")
def cancel_job(job_id: str) -> dict:
    return status_document(*services().jobs.cancel(job_id), services().settings.topic_arn)


@app.get("/jobs/<job_id>/objects")
def list_objects(job_id: str) -> dict:
    params = app.current_event.query_string_parameters or {}
    return services().jobs.list_objects(job_id, params.get("state"), rest.page_size(app.current_event), params.get("next_token"))


@inject_function_context(logger)
def handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
