#!/usr/bin/python3
"""Reads what tests/integration/trace_collector.py received (DIR/*.zipkin, *.otlp-pb,
*.otlp-json) and prints the spans as JSON lines, one per span, in one shape for the three
encodings: {traceId, id, parentId, name, kind, service, tags}. Zipkin and OTLP/JSON are read
with json; OTLP/protobuf with Google's protobuf runtime (python3-protobuf), its messages
built here from the field numbers of OTLP's own .proto files, not from bpfmesh's."""
import glob
import json
import sys


def otlp_classes():
    """OTLP's messages as Google's protobuf runtime builds them from their field numbers
    (opentelemetry-proto trace/v1, common/v1, resource/v1, collector/trace/v1)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    F = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(name="otlp_check.proto", package="otlpcheck", syntax="proto3")
    def msg(name, fields):
        m = fdp.message_type.add(name=name)
        for fname, num, typ, rep, tname in fields:
            f = m.field.add(name=fname, number=num, type=typ,
                            label=F.LABEL_REPEATED if rep else F.LABEL_OPTIONAL)
            if tname:
                f.type_name = ".otlpcheck." + tname
    msg("AnyValue", [("string_value", 1, F.TYPE_STRING, 0, None), ("bool_value", 2, F.TYPE_BOOL, 0, None),
                     ("int_value", 3, F.TYPE_INT64, 0, None), ("double_value", 4, F.TYPE_DOUBLE, 0, None)])
    msg("KeyValue", [("key", 1, F.TYPE_STRING, 0, None), ("value", 2, F.TYPE_MESSAGE, 0, "AnyValue")])
    msg("Resource", [("attributes", 1, F.TYPE_MESSAGE, 1, "KeyValue")])
    msg("Scope", [("name", 1, F.TYPE_STRING, 0, None), ("version", 2, F.TYPE_STRING, 0, None)])
    msg("Status", [("message", 2, F.TYPE_STRING, 0, None), ("code", 3, F.TYPE_INT32, 0, None)])
    msg("Span", [("trace_id", 1, F.TYPE_BYTES, 0, None), ("span_id", 2, F.TYPE_BYTES, 0, None),
                 ("trace_state", 3, F.TYPE_STRING, 0, None), ("parent_span_id", 4, F.TYPE_BYTES, 0, None),
                 ("name", 5, F.TYPE_STRING, 0, None), ("kind", 6, F.TYPE_INT32, 0, None),
                 ("start_time_unix_nano", 7, F.TYPE_FIXED64, 0, None),
                 ("end_time_unix_nano", 8, F.TYPE_FIXED64, 0, None),
                 ("attributes", 9, F.TYPE_MESSAGE, 1, "KeyValue"), ("status", 15, F.TYPE_MESSAGE, 0, "Status"),
                 ("flags", 16, F.TYPE_FIXED32, 0, None)])
    msg("ScopeSpans", [("scope", 1, F.TYPE_MESSAGE, 0, "Scope"), ("spans", 2, F.TYPE_MESSAGE, 1, "Span")])
    msg("ResourceSpans", [("resource", 1, F.TYPE_MESSAGE, 0, "Resource"),
                          ("scope_spans", 2, F.TYPE_MESSAGE, 1, "ScopeSpans")])
    msg("ExportTraceServiceRequest", [("resource_spans", 1, F.TYPE_MESSAGE, 1, "ResourceSpans")])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    d = pool.FindMessageTypeByName("otlpcheck.ExportTraceServiceRequest")
    try:
        return message_factory.GetMessageClass(d)
    except AttributeError:
        return message_factory.MessageFactory(pool).GetPrototype(d)


def from_pb(data):
    req = otlp_classes()()
    req.ParseFromString(data)
    for rs in req.resource_spans:
        svc = ""
        for a in rs.resource.attributes:
            if a.key == "service.name":
                svc = a.value.string_value
        for ss in rs.scope_spans:
            for sp in ss.spans:
                assert len(sp.trace_id) == 16 and len(sp.span_id) == 8, sp
                yield {"traceId": sp.trace_id.hex(), "id": sp.span_id.hex(),
                       "parentId": sp.parent_span_id.hex() or None, "name": sp.name,
                       "kind": {2: "SERVER", 3: "CLIENT"}.get(sp.kind, str(sp.kind)),
                       "service": svc, "tags": {a.key: a.value.string_value for a in sp.attributes}}


def from_otlp_json(doc):
    for rs in doc.get("resourceSpans", []):
        svc = ""
        for a in rs.get("resource", {}).get("attributes", []):
            if a["key"] == "service.name":
                svc = a["value"].get("stringValue", "")
        for ss in rs.get("scopeSpans", []):
            for sp in ss.get("spans", []):
                yield {"traceId": sp["traceId"], "id": sp["spanId"], "parentId": sp.get("parentSpanId"),
                       "name": sp["name"], "kind": {2: "SERVER", 3: "CLIENT"}.get(sp["kind"], str(sp["kind"])),
                       "service": svc,
                       "tags": {a["key"]: a["value"].get("stringValue", "") for a in sp.get("attributes", [])}}


for f in sorted(glob.glob(sys.argv[1] + "/*")):
    if f.endswith(".zipkin"):
        for s in json.load(open(f)):
            print(json.dumps({"traceId": s["traceId"], "id": s["id"], "parentId": s.get("parentId"),
                              "name": s["name"], "kind": s["kind"],
                              "service": s["localEndpoint"]["serviceName"], "tags": s.get("tags", {})}))
    elif f.endswith(".otlp-pb"):
        for s in from_pb(open(f, "rb").read()):
            print(json.dumps(s))
    elif f.endswith(".otlp-json"):
        for s in from_otlp_json(json.load(open(f))):
            print(json.dumps(s))
