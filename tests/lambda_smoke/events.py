"""Events as Lambda's event sources deliver them: API Gateway (REST API, proxy integration) and SQS."""
from __future__ import annotations

import hashlib
import time
import urllib.parse
import uuid

REGION = "cn-north-1"


def rest_event(method: str, resource: str, path: str, *, path_params: dict | None = None,
               query: dict | None = None, headers: dict | None = None, body: str | None = None) -> dict:
    """An API Gateway REST proxy event (payload 1.0) for stage `api`, as Chalice's deployed API receives."""
    headers = {"Host": "abc123.execute-api.cn-north-1.amazonaws.com.cn", "User-Agent": "smoke/1.0",
               "X-Forwarded-For": "203.0.113.9", "X-Forwarded-Port": "443", "X-Forwarded-Proto": "https",
               **(headers or {})}
    now = time.time()
    return {
        "resource": resource, "path": path, "httpMethod": method,
        "headers": headers, "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": dict(query) if query else None,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
        "pathParameters": {k: urllib.parse.unquote(v) for k, v in path_params.items()} if path_params else None,
        "stageVariables": None,
        "requestContext": {
            "resourceId": "r1", "resourcePath": resource, "httpMethod": method, "path": "/api" + path,
            "accountId": "000000000000", "protocol": "HTTP/1.1", "stage": "api", "domainPrefix": "abc123",
            "requestId": str(uuid.uuid4()), "extendedRequestId": uuid.uuid4().hex[:16],
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "requestTimeEpoch": int(now * 1000), "apiId": "abc123",
            "domainName": "abc123.execute-api.cn-north-1.amazonaws.com.cn",
            "identity": {"sourceIp": "203.0.113.9", "userAgent": "smoke/1.0", "accountId": None, "caller": None,
                         "user": None, "userArn": None, "accessKey": None, "cognitoIdentityId": None,
                         "cognitoIdentityPoolId": None, "cognitoAuthenticationType": None,
                         "cognitoAuthenticationProvider": None}},
        "body": body, "isBase64Encoded": False,
    }


def sqs_event(messages: list[dict], queue_url: str, env: dict | None = None) -> dict:
    """SQS messages (ReceiveMessage with AttributeNames=All) as Lambda's SQS event source delivers them."""
    arn = f"arn:aws-cn:sqs:{REGION}:000000000000:{queue_url.rsplit('/', 1)[-1]}"
    return {"Records": [{
        "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
        "attributes": m.get("Attributes", {}),
        "messageAttributes": {k: {"stringValue": v.get("StringValue"), "binaryValue": v.get("BinaryValue"),
                                  "stringListValues": [], "binaryListValues": [], "dataType": v["DataType"]}
                              for k, v in m.get("MessageAttributes", {}).items()},
        "md5OfBody": m.get("MD5OfBody") or hashlib.md5(m["Body"].encode()).hexdigest(),
        "eventSource": "aws:sqs", "eventSourceARN": arn, "awsRegion": REGION} for m in messages]}
