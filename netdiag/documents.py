"""JSON documents for --json and --jsonl: plain dicts with stable keys (README).

No rich here: a piped --json run never pays for importing it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from json.encoder import encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any

from netdiag.models import DnsAnswer, HostResult, ServiceAnswer, ServiceEntry, SweepSummary


def service_entry_json(entry: ServiceEntry) -> dict[str, Any]:
    return {"name": entry.name, "port": entry.port, "protocol": entry.protocol, "aliases": list(entry.aliases)}


def service_answers_json(answers: Iterable[ServiceAnswer]) -> dict[str, Any]:
    return {
        "results": [
            {
                "query": a.query,
                "found": bool(a.entries),
                "entries": [service_entry_json(e) for e in a.entries],
                "error": a.error,
            }
            for a in answers
        ]
    }


def dns_answer_json(answer: DnsAnswer) -> dict[str, Any]:
    return {
        "query": answer.query,
        "kind": answer.kind,
        "status": answer.outcome.value,
        "canonical": answer.canonical,
        "aliases": list(answer.aliases),
        "addresses": list(answer.addresses),
        "ptr": answer.ptr,
        "confirmed": answer.confirmed,
        "source": answer.source,
        "elapsed_ms": round(answer.elapsed_ms, 3),
        "error": None if answer.ok else answer.outcome.message,
        "detail": answer.detail,
    }


def host_result_json(result: HostResult) -> dict[str, Any]:
    received = result.received
    return {
        "address": result.address,
        "alive": result.alive,
        "state": result.state.value,
        "rtt_ms": _round(result.rtt_avg),
        "rtt_min_ms": _round(min(received)) if received else None,
        "rtt_max_ms": _round(max(received)) if received else None,
        "rtts_ms": [None if r is None else round(r, 4) for r in result.rtts_ms],
        "loss": result.loss,
        "name": result.name,
        "reason": result.reason,
        "mac": result.mac,
        "vendor": result.vendor,
        "other_addresses": list(result.other_addresses),
    }


_ENCODE = json.JSONEncoder(ensure_ascii=True, separators=(",", ":")).encode
_NOTHING_ELSE = ',"name":null,"reason":null,"mac":null,"vendor":null,"other_addresses":[]}'
_NO_REPLY = '"rtt_ms":null,"rtt_min_ms":null,"rtt_max_ms":null,"rtts_ms":[null],"loss":1.0'


def host_result_line(result: HostResult) -> str:
    """``host_result_json(result)`` encoded compactly, the same text to the
    byte (a property test holds it to that), written straight for the rows a
    /16 is made of (one probe, no name, reason or MAC): JSON output then adds
    little to the sweep's own time."""
    rtts = result.rtts_ms
    if len(rtts) != 1 or result.name is not None or result.reason is not None or result.mac is not None:
        return _ENCODE(host_result_json(result))
    if result.vendor is not None or result.other_addresses:
        return _ENCODE(host_result_json(result))
    address, alive = encode_basestring_ascii(result.address), "true" if result.alive else "false"
    rtt = rtts[0]
    if rtt is None:
        stats = _NO_REPLY
    else:
        v = repr(round(rtt, 4))
        stats = f'"rtt_ms":{v},"rtt_min_ms":{v},"rtt_max_ms":{v},"rtts_ms":[{v}],"loss":0.0'
    return f'{{"address":{address},"alive":{alive},"state":"{result.state.value}",{stats}{_NOTHING_ELSE}'


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def sweep_summary_json(summary: SweepSummary) -> dict[str, Any]:
    return {
        "total": summary.total,
        "up": summary.up,
        "down": summary.down,
        "unreachable": summary.unreachable,
        "unresolved": summary.unresolved,
        "method": summary.method,
        "method_reason": summary.method_reason,
        "methods": [{"method": m.label, "reason": m.reason, "hosts": m.hosts} for m in summary.methods],
        "notes": list(summary.notes),
        "elapsed_s": round(summary.elapsed_s, 3),
        "probes_sent": summary.probes_sent,
        "interrupted": summary.interrupted,
    }
