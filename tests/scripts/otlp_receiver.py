"""A local OTLP/HTTP metrics receiver for the --otlp-endpoint test: decodes
each ExportMetricsServiceRequest with the official protobuf definitions
(the `opentelemetry-proto` package) and prints every histogram data point
as one JSON line: {"metric", "unit", "attributes", "count", "sum",
"buckets", "temporality"}, after one line {"export": BYTES, "path",
"content_type"} per request. Prints "ready" once it listens.

  otlp_receiver.py PORT
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2


def value(any_value):
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


class Handler(BaseHTTPRequestHandler):
    def body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                chunk = self.rfile.read(size)
                self.rfile.readline()
                if size == 0:
                    return out
                out += chunk
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_POST(self) -> None:
        body = self.body()
        print(json.dumps({"export": len(body), "path": self.path,
                          "content_type": self.headers.get("Content-Type")}), flush=True)
        request = metrics_service_pb2.ExportMetricsServiceRequest()
        request.ParseFromString(body)
        for rm in request.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    for p in metric.histogram.data_points:
                        print(json.dumps({
                            "metric": metric.name,
                            "unit": metric.unit,
                            "scope": sm.scope.name,
                            "attributes": {kv.key: value(kv.value) for kv in p.attributes},
                            "count": p.count,
                            "sum": p.sum,
                            "buckets": sum(p.bucket_counts),
                            "temporality": metric.histogram.aggregation_temporality,
                        }), flush=True)
        reply = metrics_service_pb2.ExportMetricsServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args) -> None:
        pass


def main() -> None:
    server = HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
