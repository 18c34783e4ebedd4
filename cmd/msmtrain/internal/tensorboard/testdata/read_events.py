"""Reads TensorBoard event files with Python's protobuf, independently of the Go writer.

Usage: read_events.py FILE...

The Event, SessionLog and Summary message classes are built at run time from a FileDescriptorProto holding the
fields of tensorflow/tensorboard's tensorboard/compat/proto/{event,summary}.proto that msmtrain writes. Each
file's TFRecords are read here, checking both masked CRC-32Cs, and every event is printed as JSON:
[{"path": FILE, "events": [{"wall_time", "step", "kind", ...}]}]. Any malformed byte is an error.
"""

import json
import struct
import sys

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

F = descriptor_pb2.FieldDescriptorProto


def message(name, *fields):
    m = descriptor_pb2.DescriptorProto(name=name)
    for fname, number, ftype, type_name, label in fields:
        f = m.field.add(name=fname, number=number, type=ftype, label=label or F.LABEL_OPTIONAL)
        if type_name:
            f.type_name = type_name
    return m


def build_classes():
    fdp = descriptor_pb2.FileDescriptorProto(
        name="msmtrain_tensorboard_test.proto", package="tensorboard", syntax="proto3"
    )
    value = message(
        "Value",
        ("tag", 1, F.TYPE_STRING, None, None),
        ("simple_value", 2, F.TYPE_FLOAT, None, None),
    )
    value.oneof_decl.add(name="value")
    value.field[1].oneof_index = 0
    summary = message("Summary", ("value", 1, F.TYPE_MESSAGE, ".tensorboard.Summary.Value", F.LABEL_REPEATED))
    summary.nested_type.append(value)
    session_log = message("SessionLog", ("status", 1, F.TYPE_ENUM, ".tensorboard.SessionLog.SessionStatus", None))
    status = session_log.enum_type.add(name="SessionStatus")
    for name, number in [("STATUS_UNSPECIFIED", 0), ("START", 1), ("STOP", 2), ("CHECKPOINT", 3)]:
        status.value.add(name=name, number=number)
    event = message(
        "Event",
        ("wall_time", 1, F.TYPE_DOUBLE, None, None),
        ("step", 2, F.TYPE_INT64, None, None),
        ("file_version", 3, F.TYPE_STRING, None, None),
        ("summary", 5, F.TYPE_MESSAGE, ".tensorboard.Summary", None),
        ("session_log", 7, F.TYPE_MESSAGE, ".tensorboard.SessionLog", None),
    )
    event.oneof_decl.add(name="what")
    for f in event.field:
        if f.number in (3, 5, 7):
            f.oneof_index = 0
    fdp.message_type.extend([summary, session_log, event])

    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    desc = pool.FindMessageTypeByName("tensorboard.Event")
    if hasattr(message_factory, "GetMessageClass"):  # protobuf >= 4.22
        return message_factory.GetMessageClass(desc)
    return message_factory.MessageFactory(pool).GetPrototype(desc)


def crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


TABLE = crc32c_table()


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283  # the published CRC-32C check value


def masked_crc32c(data):
    c = crc32c(data)
    return ((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def records(path):
    with open(path, "rb") as f:
        data = f.read()
    off = 0
    while off < len(data):
        if len(data) - off < 12:
            raise ValueError(f"{path}: truncated record header at offset {off}")
        (length,) = struct.unpack_from("<Q", data, off)
        (length_crc,) = struct.unpack_from("<I", data, off + 8)
        if length_crc != masked_crc32c(data[off : off + 8]):
            raise ValueError(f"{path}: bad length CRC at offset {off}")
        start, end = off + 12, off + 12 + length
        if end + 4 > len(data):
            raise ValueError(f"{path}: truncated record at offset {off}")
        (data_crc,) = struct.unpack_from("<I", data, end)
        if data_crc != masked_crc32c(data[start:end]):
            raise ValueError(f"{path}: bad data CRC at offset {off}")
        yield data[start:end]
        off = end + 4


def unknown_fields(msg):
    try:
        from google.protobuf import unknown_fields as uf  # protobuf >= 4.24

        return len(uf.UnknownFieldSet(msg))
    except ImportError:
        return len(msg.UnknownFields())


def main():
    Event = build_classes()
    out = []
    for path in sys.argv[1:]:
        events = []
        for rec in records(path):
            ev = Event()
            ev.ParseFromString(rec)
            msgs = [ev, ev.summary, ev.session_log] + list(ev.summary.value)
            if any(unknown_fields(m) for m in msgs):
                raise ValueError(f"{path}: unknown fields in {ev}")
            e = {"wall_time": ev.wall_time, "step": ev.step, "kind": ev.WhichOneof("what")}
            if e["kind"] == "file_version":
                e["file_version"] = ev.file_version
            elif e["kind"] == "session_log":
                e["status"] = ev.session_log.status
            elif e["kind"] == "summary":
                if len(ev.summary.value) != 1:
                    raise ValueError(f"{path}: {len(ev.summary.value)} values in one event")
                v = ev.summary.value[0]
                if v.WhichOneof("value") != "simple_value":
                    raise ValueError(f"{path}: value without simple_value: {v}")
                (bits,) = struct.unpack("<I", struct.pack("<f", v.simple_value))
                e.update(tag=v.tag, value=repr(v.simple_value), value_bits=bits)
            events.append(e)
        out.append({"path": path, "events": events})
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
