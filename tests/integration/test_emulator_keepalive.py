"""The emulator's keep-alive HTTP server (siyu_dev.keepalive): one connection serves a client's requests
one after another, bodies and answers stay in step on it (by Content-Length, chunked, HEAD, S3's
`Expect: 100-continue` and underscore metadata), and stopping the emulator frees its port without
waiting for a client's idle connection."""
from __future__ import annotations

import http.client
import json
import socket
import threading
import uuid

import pytest

AUTH = ("AWS4-HMAC-SHA256 Credential=local/20250101/cn-north-1/dynamodb/aws4_request, "
        "SignedHeaders=host, Signature=0")


def ddb_headers(target: str) -> dict:
    return {"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": f"DynamoDB_20120810.{target}",
            "Authorization": AUTH}


def answer(conn: http.client.HTTPConnection) -> tuple[int, dict, dict]:
    r = conn.getresponse()
    body = r.read()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, json.loads(body) if body else {}


def read_answer(reader) -> tuple[int, dict]:
    """One HTTP/1.1 answer off a stream that goes on after it (its length from Content-Length)."""
    status = int(reader.readline().split()[1])
    headers = {}
    while (line := reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    assert headers.get("connection") != "close"
    return status, json.loads(reader.read(int(headers["content-length"])))


def test_one_connection_serves_many_requests_each_answered_with_its_length(stack, table):
    conn = http.client.HTTPConnection("127.0.0.1", stack.aws_port, timeout=10)
    pk = f"ka#{uuid.uuid4().hex}"
    try:
        conn.connect()
        first = conn.sock
        for i in range(3):
            item = {"pk": {"S": pk}, "sk": {"S": str(i)}, "v": {"S": "x" * (10 ** i)}}
            conn.request("POST", "/", body=json.dumps({"TableName": table, "Item": item}),
                         headers=ddb_headers("PutItem"))
            status, headers, _ = answer(conn)
            assert status == 200 and headers.get("connection") != "close"
        conn.request("POST", "/", body=json.dumps({"TableName": table, "KeyConditionExpression": "pk = :p",
                                                   "ExpressionAttributeValues": {":p": {"S": pk}}}),
                     headers=ddb_headers("Query"))
        status, headers, body = answer(conn)
        assert conn.sock is first                           # never reconnected
        assert status == 200 and int(headers["content-length"]) > 0
        assert [(i["sk"]["S"], len(i["v"]["S"])) for i in body["Items"]] == [("0", 1), ("1", 10), ("2", 100)]
    finally:
        conn.close()


def test_pipelined_requests_are_answered_in_order_and_an_error_keeps_the_connection(stack, table):
    """Two requests written back to back before reading either: the first body is read by its length
    exactly, so the second request line is found where it starts. A refused request (400) leaves the
    connection usable."""
    sock = socket.create_connection(("127.0.0.1", stack.aws_port), timeout=10)
    try:
        raw = b""
        for target, payload in (("DescribeTable", {"TableName": table}),
                                ("DescribeTable", {"TableName": "no-such-table"}),
                                ("ListTables", {})):
            body = json.dumps(payload).encode()
            head = "".join(f"{k}: {v}\r\n" for k, v in ddb_headers(target).items())
            raw += (f"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}Content-Length: {len(body)}\r\n\r\n").encode() + body
        sock.sendall(raw)
        reader = sock.makefile("rb")
        answers = [read_answer(reader) for _ in range(3)]
        assert answers[0][0] == 200 and answers[0][1]["Table"]["TableName"] == table
        assert answers[1][0] == 400 and "ResourceNotFoundException" in answers[1][1]["__type"]
        assert answers[2][0] == 200 and table in answers[2][1]["TableNames"]
    finally:
        sock.close()


def test_a_chunked_body_is_read_whole_and_the_connection_goes_on(stack, table):
    conn = http.client.HTTPConnection("127.0.0.1", stack.aws_port, timeout=10)
    pk = f"ka#{uuid.uuid4().hex}"
    try:
        body = json.dumps({"TableName": table, "Item": {"pk": {"S": pk}, "sk": {"S": "c"}, "v": {"S": "y" * 5000}}})
        conn.request("POST", "/", body=iter([body[:100].encode(), body[100:].encode()]),
                     headers=ddb_headers("PutItem"), encode_chunked=True)
        assert answer(conn)[0] == 200
        conn.request("POST", "/", body=json.dumps({"TableName": table, "Key": {"pk": {"S": pk}, "sk": {"S": "c"}}}),
                     headers=ddb_headers("GetItem"))
        status, _, got = answer(conn)
        assert status == 200 and got["Item"]["v"]["S"] == "y" * 5000
    finally:
        conn.close()


def test_a_bad_content_length_is_a_400_and_closes_the_connection(stack):
    sock = socket.create_connection(("127.0.0.1", stack.aws_port), timeout=10)
    try:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: ten\r\n\r\n")
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
        assert reply.startswith(b"HTTP/1.1 400 ")
    finally:
        sock.close()


def test_s3_uploads_heads_and_underscore_metadata_through_one_client(stack):
    """botocore sends an S3 upload with `Expect: 100-continue`; a HEAD declares the object's length
    with no body; metadata keys with an underscore keep their spelling (moto's request handler)."""
    from chalicelib import aws
    s3 = aws.client("s3")
    bucket = f"ka-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": aws.region()})
    data = b"z" * 300_000
    s3.put_object(Bucket=bucket, Key="k", Body=data, Metadata={"printer_batch": "7", "plain": "p"})
    for _ in range(3):          # HEADs and GETs alternate on the pool's connections
        head = s3.head_object(Bucket=bucket, Key="k")
        assert head["ContentLength"] == len(data)
        assert head["Metadata"] == {"printer_batch": "7", "plain": "p"}
        assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == data


def test_stopping_frees_the_port_without_waiting_for_an_idle_connection(stack):
    from siyu_dev.emulator import EmulatorServer
    server = EmulatorServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    port = server.get_host_and_port()[1]
    idle = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    idle.request("POST", "/", body="{}", headers=ddb_headers("ListTables"))
    assert answer(idle)[0] == 200              # the connection stays open, its handler waiting
    stopper = threading.Thread(target=server.stop)
    stopper.start()
    stopper.join(timeout=5)
    assert not stopper.is_alive(), "stop() waited for an idle keep-alive connection"
    assert idle.sock.recv(1) == b""            # the server ended the idle connection
    idle.close()
    again = socket.socket()
    again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        again.bind(("127.0.0.1", port))        # the port is free for the next run
    finally:
        again.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
