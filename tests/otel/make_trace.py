#!/usr/bin/env python3
"""Writes an OTLP JSON trace made by the real OpenTelemetry Python SDK, for `veza n1 analyze`.

Two HTTP-like requests run against an in-memory SQLite database instrumented by
opentelemetry-instrumentation-sqlite3 (the dbapi integration: one CLIENT span per
statement, with `db.statement`, or `db.query.text` under
OTEL_SEMCONV_STABILITY_OPT_IN=database):

* `GET /posts`: the N+1. One query for the posts, then one author query per post,
  inside a SERVER span whose `http.route` is `/posts`.
* `GET /posts/joined`: the same page with one JOIN, inside a SERVER span whose
  `http.route` is `/posts/joined`: clean.

The spans go through the SDK's BatchSpanProcessor into an exporter that encodes each
batch with the OTLP exporters' own encoder (`encode_spans`: the protobuf
ExportTraceServiceRequest) and protobuf's JSON mapping (`MessageToDict`, enums as
integers). Layouts:

* `lines` (default): one ExportTraceServiceRequest per export batch per line, as the
  OTLP file exporter and the Collector's file exporter write. The batch size is
  small, so the spans of one trace are spread over several lines and the parent
  SERVER span comes after its children.
* `document`: every span in one pretty-printed ExportTraceServiceRequest.

Ids: protobuf's JSON mapping writes `bytes` fields (traceId, spanId, parentSpanId)
as base64, whereas OTLP JSON requires hex. `--ids hex` (default) converts them;
`--ids base64` leaves protobuf's output as it is (what generic protobuf tooling
writes), which `veza n1 analyze` also accepts.

Usage: make_trace.py OUT [--layout lines|document] [--ids hex|base64] [--posts N]
Prints one summary line (spans, lines written) on stderr.
"""

from __future__ import annotations

import argparse
import base64
import json
import sqlite3
import sys
import threading

from google.protobuf.json_format import MessageToDict
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.instrumentation.sqlite3 import SQLite3Instrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import SpanKind

ID_FIELDS = ("traceId", "spanId", "parentSpanId")


def b64_to_hex(value: str) -> str:
    return base64.b64decode(value).hex()


def hexify(request: dict) -> None:
    """Protobuf JSON mapping (base64 ids) -> OTLP JSON (hex ids), in place."""
    for rs in request.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for span in ss.get("spans", []):
                for field in ID_FIELDS:
                    if span.get(field):
                        span[field] = b64_to_hex(span[field])
                for link in span.get("links", []):
                    for field in ("traceId", "spanId"):
                        if link.get(field):
                            link[field] = b64_to_hex(link[field])


class OtlpJsonExporter(SpanExporter):
    """OTLP JSON to a file: a line per export batch, or one document at shutdown."""

    def __init__(self, path: str, layout: str, ids: str) -> None:
        self._file = open(path, "w", encoding="utf-8")
        self._layout = layout
        self._ids = ids
        self._pending = []
        self._lock = threading.Lock()
        self.spans = 0
        self.lines = 0

    def _encode(self, spans) -> dict:
        request = MessageToDict(encode_spans(spans), use_integers_for_enums=True)
        if self._ids == "hex":
            hexify(request)
        return request

    def export(self, spans) -> SpanExportResult:
        with self._lock:
            self.spans += len(spans)
            if self._layout == "document":
                self._pending.extend(spans)
            else:
                self._file.write(json.dumps(self._encode(spans), separators=(",", ":")))
                self._file.write("\n")
                self.lines += 1
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        with self._lock:
            if self._layout == "document" and self._pending:
                text = json.dumps(self._encode(self._pending), indent=2)
                self._file.write(text + "\n")
                self.lines += text.count("\n") + 1
                self._pending = []
            self._file.close()


def make_db(n_posts: int) -> sqlite3.Connection:
    db = sqlite3.connect(":memory:", check_same_thread=False)
    db.executescript(
        """
        CREATE TABLE authors (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
        CREATE TABLE posts (id INTEGER PRIMARY KEY, author_id INTEGER NOT NULL
                            REFERENCES authors(id), title TEXT NOT NULL);
        """
    )
    db.executemany(
        "INSERT INTO authors (id, name) VALUES (?, ?)",
        [(i, f"author {i}") for i in range(1, n_posts + 1)],
    )
    db.executemany(
        "INSERT INTO posts (id, author_id, title) VALUES (?, ?, ?)",
        [(i, i, f"post {i}") for i in range(1, n_posts + 1)],
    )
    db.commit()
    return db


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("out")
    parser.add_argument("--layout", choices=("lines", "document"), default="lines")
    parser.add_argument("--ids", choices=("hex", "base64"), default="hex")
    parser.add_argument("--posts", type=int, default=8)
    args = parser.parse_args()

    exporter = OtlpJsonExporter(args.out, args.layout, args.ids)
    provider = TracerProvider(resource=Resource.create({"service.name": "otel-n1-demo"}))
    # Small batches: one trace's spans land on several lines, children before parent.
    provider.add_span_processor(
        BatchSpanProcessor(exporter, max_export_batch_size=4, schedule_delay_millis=60_000)
    )
    tracer = provider.get_tracer("veza.tests.otel")

    # Schema and rows first, on the bare connection: no spans for the set-up.
    raw = make_db(args.posts)
    db = SQLite3Instrumentor.instrument_connection(raw, tracer_provider=provider)

    with tracer.start_as_current_span(
        "GET /posts",
        kind=SpanKind.SERVER,
        attributes={"http.route": "/posts", "http.request.method": "GET"},
    ):
        cur = db.cursor()
        cur.execute("SELECT id, author_id, title FROM posts ORDER BY id")
        posts = cur.fetchall()
        page = []
        for _post_id, author_id, title in posts:  # the N+1: one query per post
            cur.execute("SELECT name FROM authors WHERE id = ?", (author_id,))
            page.append((title, cur.fetchone()[0]))
        cur.close()

    with tracer.start_as_current_span(
        "GET /posts/joined",
        kind=SpanKind.SERVER,
        attributes={"http.route": "/posts/joined", "http.request.method": "GET"},
    ):
        cur = db.cursor()
        cur.execute(
            "SELECT p.title, a.name FROM posts p JOIN authors a ON a.id = p.author_id "
            "ORDER BY p.id"
        )
        joined = cur.fetchall()
        cur.close()

    if joined != page:
        print("make_trace: the two pages differ", file=sys.stderr)
        return 1
    provider.shutdown()  # flushes the batch processor, then shuts the exporter down
    print(
        f"make_trace: {exporter.spans} spans ({len(posts)} posts) in {exporter.lines} "
        f"lines, layout={args.layout} ids={args.ids}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
