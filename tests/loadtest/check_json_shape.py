"""Validate iac loadtest JSON reports against the shape documented in
docs/loadtest.md ("JSON report"). Usage: check_json_shape.py FILE..."""
import json
import sys

NUM = (int, float)
OPT_NUM = (int, float, type(None))

LATENCY = {k: OPT_NUM for k in ("min", "avg", "p50", "p90", "p95", "p99", "p999", "max")}
TOP = {
    "version": int, "scenario_file": str, "started": str, "executor": str,
    "duration_s": NUM, "threads": int, "vus_max": int, "requests": int,
    "iterations": int, "dropped_iterations": int, "rps": NUM, "errors": dict,
    "status": dict, "latency_ms": dict, "bytes": dict, "endpoints": dict,
    "checks": dict, "thresholds": dict, "script_errors": dict, "timeseries": list,
    "server": dict, "client": dict, "valid": bool, "invalid_reasons": list,
    "notes": list, "aborted": bool, "interrupted": bool, "verdict": dict, "exit_code": int,
}
POINT = {
    "t": int, "requests": int, "rps": NUM, "errors": int, "dropped": int,
    "p50_ms": OPT_NUM, "p90_ms": OPT_NUM, "p99_ms": OPT_NUM, "max_ms": OPT_NUM,
    "vus": (int, type(None)), "client_cpu_pct": OPT_NUM, "client_wait_pct": OPT_NUM,
}


def check(obj, shape, where):
    if not isinstance(obj, dict):
        raise AssertionError(f"{where}: not an object")
    for k, t in shape.items():
        if k not in obj:
            raise AssertionError(f"{where}: missing '{k}'")
        if isinstance(obj[k], bool) and t is not bool and bool not in (t if isinstance(t, tuple) else (t,)):
            raise AssertionError(f"{where}.{k}: boolean where a number is expected")
        if not isinstance(obj[k], t):
            raise AssertionError(f"{where}.{k}: {type(obj[k]).__name__} is not {t}")


def validate(d):
    check(d, TOP, "report")
    check(d["errors"], {"total": int, "rate": NUM, "by_kind": dict}, "errors")
    check(d["latency_ms"], LATENCY, "latency_ms")
    check(d["bytes"], {"received": int, "sent": int}, "bytes")
    for name, e in d["endpoints"].items():
        check(e, {"requests": int, "errors": int, "rps": NUM, "latency_ms": dict}, f"endpoints[{name}]")
        check(e["latency_ms"], LATENCY, f"endpoints[{name}].latency_ms")
    for name, c in d["checks"].items():
        check(c, {"passes": int, "fails": int, "rate": NUM}, f"checks[{name}]")
    for name, t in d["thresholds"].items():
        check(t, {"conditions": list, "value": OPT_NUM, "unit": str, "ok": bool, "abort_on_fail": bool},
              f"thresholds[{name}]")
    check(d["script_errors"], {"total": int, "messages": list}, "script_errors")
    for i, p in enumerate(d["timeseries"]):
        check(p, POINT, f"timeseries[{i}]")
        assert p["t"] == i, f"timeseries[{i}].t is {p['t']}"
    check(d["server"], {"haproxy": (str, type(None)), "hosts": list, "saturation": (str, type(None))}, "server")
    check(d["client"], {"cores": int, "cpu_avg_pct": OPT_NUM, "cpu_max_pct": OPT_NUM, "cpu_wait_max_pct": OPT_NUM,
                        "max_rss_mib": OPT_NUM},
          "client")
    if "tls" in d:   # https runs only
        check(d["tls"], {"verify": bool, "insecure_skip_tls_verify": bool, "ca_file": (str, type(None)),
                         "server_name": (str, type(None)), "handshakes": int, "resumed": int,
                         "handshake_ms": dict, "errors": list}, "tls")
        check(d["tls"]["handshake_ms"], LATENCY, "tls.handshake_ms")
        assert d["tls"]["verify"] != d["tls"]["insecure_skip_tls_verify"]
        assert d["tls"]["resumed"] <= d["tls"]["handshakes"]
    # figures agree with each other
    assert sum(p["requests"] for p in d["timeseries"]) == d["requests"], "timeseries requests do not add up"
    assert sum(p["errors"] for p in d["timeseries"]) == d["errors"]["total"], "timeseries errors do not add up"
    assert d["valid"] == (len(d["invalid_reasons"]) == 0)
    check(d["verdict"], {"result": str, "reasons": list, "http_req_failed": OPT_NUM, "max_failed": OPT_NUM}, "verdict")
    assert d["exit_code"] in (0, 98, 99)
    failed = d["requests"] and d["errors"]["total"] >= (d["verdict"]["max_failed"] or 2) * d["requests"]
    assert (d["exit_code"] == 98) == bool(failed), "exit code 98 is for max_failed"
    if d["exit_code"] != 98:
        assert (d["exit_code"] == 99) == any(not t["ok"] for t in d["thresholds"].values())
    assert d["verdict"]["result"] == ("passed" if d["exit_code"] == 0 else "failed")
    assert (d["exit_code"] == 0) == (not d["verdict"]["reasons"])


for path in sys.argv[1:]:
    validate(json.load(open(path)))
    print(f"{path}: shape ok")
