"""A DynamoDB request (X-Amz-Target DynamoDB_20120810.*) handed straight to moto's DynamoDB handler.

moto's server sends every request through its DomainDispatcher to a Flask app per service: a request
context pushed and popped, URL routing, moto's convert_to_flask_response, flask-cors's after_request
hook. For the DynamoDB handler, which reads nothing of Flask's (moto hands it its own Request, the raw
URL and the headers), that machinery took ~0.35 ms of a conditional PutItem's ~1.25 ms of emulator
CPU (both ways alternated request by request in one process, time.thread_time around the handler). Here the dispatcher still picks the app (so the backend, the
region and every other service stay moto's), and when it is DynamoDB's, at its one route (POST /),
moto's handler is called the way convert_to_flask_response calls it, its answer built the same way,
and the headers flask-cors adds to such an answer are added (learned once per app from flask-cors
itself, for a request without an Origin header; a request with one takes Flask's path). Errors go
where Flask's debug app sends them: an HTTPException becomes its answer, anything else propagates to
the server. tests/integration/test_emulator_direct.py compares the two paths' answers byte for byte.
"""
from __future__ import annotations

from flask import Response
from werkzeug.exceptions import HTTPException

TARGET = "DynamoDB_20120810."
ENDPOINT = "DynamoHandler.dispatch"


def _cors_headers(app) -> list[tuple[str, str]]:
    """What the app's after_request hooks (flask-cors) add to an answer of a POST / without an Origin
    header: asked of the hooks themselves, once."""
    with app.test_request_context("/", method="POST"):
        blank = Response()
        before = list(blank.headers.items())
        after = list(app.process_response(blank).headers.items())
    return [h for h in after if h not in before]


class DirectDynamoDB:
    """WSGI app in front of moto's DomainDispatcherApplication."""

    def __init__(self, dispatcher):
        self.dispatcher = dispatcher
        self._apps: dict[int, tuple] = {}       # id(app) -> (app, view callback, cors headers) or (app, None, None)

    def _route(self, app):
        known = self._apps.get(id(app))
        if known is None or known[0] is not app:
            view = app.view_functions.get(ENDPOINT) if getattr(app, "service", None) == "dynamodb" else None
            callback = getattr(view, "callback", None)
            known = self._apps[id(app)] = (app, callback, _cors_headers(app) if callback else None)
        return known

    def __call__(self, environ, start_response):
        if (not environ.get("HTTP_X_AMZ_TARGET", "").startswith(TARGET) or environ.get("REQUEST_METHOD") != "POST"
                or environ.get("PATH_INFO") != "/" or "HTTP_ORIGIN" in environ):
            return self.dispatcher(environ, start_response)
        app = self.dispatcher.get_application(environ)
        _app, callback, cors = self._route(app)
        if callback is None:
            return app(environ, start_response)
        return self.answer(app, callback, cors, environ)(environ, start_response)

    @staticmethod
    def answer(app, callback, cors, environ):
        """moto's convert_to_flask_response.__call__ and Flask's finalize_request, for this one route."""
        from botocore.exceptions import ClientError
        from moto.moto_api import recorder
        request = app.request_class(environ)
        try:
            recorder._record_request(request)
            try:
                result = callback(request, request.raw_url, dict(request.headers))
            except ClientError as exc:
                result = 400, {}, exc.response["Error"]["Message"]
            if len(result) == 3:
                status, headers, content = result
            else:
                status, headers, content = 200, {}, result
            response = Response(response=content, status=status, headers=headers)
        except HTTPException as exc:        # Flask's handle_http_exception: the exception is the answer
            response = Response.force_type(exc, environ)
        if "Access-Control-Allow-Origin" not in response.headers:      # flask-cors leaves such an answer be
            for name, value in cors:
                response.headers.add(name, value)
        return response
