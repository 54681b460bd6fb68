"""Errors a caller can act on. Routes turn them into `{"error": {"code", "message"}}` with their status."""
from __future__ import annotations


class ApiError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        if status:
            self.status = status

    def body(self) -> dict:
        return {"error": {"code": self.code, "message": self.message}}

    def headers(self) -> dict:
        return {}


class BadRequest(ApiError):
    status, code = 400, "bad_request"


class Unauthorized(ApiError):
    status, code = 401, "unauthorized"


class Forbidden(ApiError):
    status, code = 403, "forbidden"


class NotFound(ApiError):
    status, code = 404, "not_found"


class Conflict(ApiError):
    status, code = 409, "conflict"


class TooManyRequests(ApiError):
    status, code = 429, "too_many_requests"


class Unavailable(ApiError):
    """A dependency (DynamoDB, SSM, SQS, ...) is unreachable or throttling beyond our retries: nothing
    the caller did wrong, and nothing was committed; the same request may succeed after Retry-After."""
    status, code = 503, "unavailable"
    retry_after = 5     # seconds; botocore has already retried, so this is a pause, not a spin

    def headers(self) -> dict:
        return {"Retry-After": str(self.retry_after)}


# ClientError codes meaning "AWS could not serve this now", not "this request is wrong". Across the
# services siyu calls: DynamoDB (ProvisionedThroughputExceeded, RequestLimitExceeded, Throttling,
# InternalServerError), SSM (ThrottlingException, InternalServerError), SQS / EventBridge / Scheduler
# (ThrottlingException, RequestThrottled, ServiceUnavailable, InternalFailure, InternalError).
OUTAGE_CODES = frozenset({
    "ProvisionedThroughputExceededException", "RequestLimitExceeded", "ThrottlingException", "Throttling",
    "ThrottledException", "RequestThrottled", "RequestThrottledException", "TooManyRequestsException",
    "SlowDown", "ServiceUnavailable", "ServiceUnavailableException", "InternalServerError",
    "InternalServerErrorException", "InternalFailure", "InternalError", "InternalServiceError",
    "TransactionInProgressException",
})


def dependency_outage(err: BaseException) -> str | None:
    """Why `err` is an AWS outage (a short description for the log), or None when it is anything else.

    Looks through the chain: PynamoDB wraps botocore's error as `.cause` (GetError, PutError,
    TransactWriteError...), and our own code may re-raise `from` it."""
    from botocore.exceptions import ClientError, ConnectionError as BotoConnectionError, HTTPClientError

    seen: set[int] = set()
    todo: list[BaseException | None] = [err]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, (BotoConnectionError, HTTPClientError)):
            # EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError...
            return type(current).__name__
        if isinstance(current, ClientError):
            code = current.response.get("Error", {}).get("Code", "")
            status = current.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
            if code in OUTAGE_CODES or status >= 500:
                return code or f"HTTP {status}"
        todo += [getattr(current, "cause", None), current.__cause__, current.__context__]
    return None
