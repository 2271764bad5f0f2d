"""Markdown tables from the driver's results: medians over repetitions, with the min-max spread."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

Row = dict[str, Any]


def _runs(results: list[Row], kind: str, label: str, server: str) -> list[Row]:
    return [r for r in results if r.get("kind") == kind and r.get("label") == label and r.get("server") == server
            and "error" not in r]


def _values(runs: list[Row], get: Callable[[Row], float | None]) -> list[float]:
    return [v for v in (get(r) for r in runs) if v is not None]


def _med(values: list[float], fmt: str = "{:,.0f}", spread: bool = True) -> str:
    if not values:
        return "—"
    text = fmt.format(statistics.median(values))
    if spread and len(values) > 1:
        text += f" ({fmt.format(min(values))}–{fmt.format(max(values))})"  # noqa: RUF001 (typography)
    return text


def _ratios(a: list[Row], b: list[Row], get: Callable[[Row], float | None]) -> list[float]:
    """Per-repetition ratios a/b (runs of one repetition were interleaved, so they saw the same machine)."""
    out = []
    for ra in a:
        rb = next((r for r in b if r["rep"] == ra["rep"]), None)
        va, vb = get(ra), get(rb) if rb else None
        if va and vb:
            out.append(va / vb)
    return out


def _loss(runs: list[Row]) -> str:
    return f"{sum(r['lost'] for r in runs)}/{sum(r['dups'] for r in runs)}"


def _labels(results: list[Row], kind: str) -> list[str]:
    seen: list[str] = []
    for r in results:
        if r.get("kind") == kind and r["label"] not in seen:
            seen.append(r["label"])
    return seen


def _ms(path: str, q: str) -> Callable[[Row], float | None]:
    return lambda r: r.get(path, {}).get(q)


def _http(runs: list[Row]) -> str:
    return (f"{_med(_values(runs, _ms('http_ms', 'p50')), '{:.2f}', spread=False)} / "
            f"{_med(_values(runs, _ms('http_ms', 'p99')), '{:.2f}', spread=False)}")


def _get(key: str) -> Callable[[Row], float | None]:
    return lambda r: r.get(key)


def _vs_soketi(results: list[Row], kind: str, title: str, main: tuple[str, str],
               other: tuple[str, str]) -> list[str]:
    """One row per scenario: ``main`` (column name, result key) for both servers and their ratio, then ``other``,
    HTTP publish latency and loss."""
    (main_name, main_key), (other_name, other_key) = main, other
    out = [title, "",
           f"| scenario | Vask {main_name} | Soketi {main_name} | Vask ÷ Soketi | Vask {other_name} | "
           f"Soketi {other_name} | HTTP p50 / p99 ms (V) | HTTP p50 / p99 ms (S) | lost / dup (V, S) |",
           "|---|---:|---:|---:|---:|---:|---|---|---|"]
    for label in _labels(results, kind):
        v, s = _runs(results, kind, label, "vask"), _runs(results, kind, label, "soketi")
        out.append(f"| {label} | {_med(_values(v, _get(main_key)))} | {_med(_values(s, _get(main_key)))} | "
                   f"**{_med(_ratios(v, s, _get(main_key)), '{:.2f}')}** | {_med(_values(v, _get(other_key)))} | "
                   f"{_med(_values(s, _get(other_key)))} | {_http(v)} | {_http(s)} | {_loss(v)}, {_loss(s)} |")
    return [*out, ""]


def _publish_floor(results: list[Row]) -> list[str]:
    ppc = _get("publishes_per_cpu_s")
    out = ["### The floor for per-user publishes: C reference server, 1 write per delivery (bench/refserver.c)", "",
           "| scenario | C publishes/CPU-s | Vask publishes/CPU-s | Soketi publishes/CPU-s | Vask ÷ C | Soketi ÷ C | "
           "lost / dup (C) |", "|---|---:|---:|---:|---:|---:|---|"]
    for label in _labels(results, "publish"):
        c, v, s = (_runs(results, "publish", label, n) for n in ("c-write", "vask", "soketi"))
        out.append(f"| {label} | {_med(_values(c, ppc))} | {_med(_values(v, ppc))} | {_med(_values(s, ppc))} | "
                   f"{_med(_ratios(v, c, ppc), '{:.2f}')} | {_med(_ratios(s, c, ppc), '{:.2f}')} | {_loss(c)} |")
    return [*out, "", "The C server checks no signature, parses no JSON and keeps no app; it routes by channel name.",
            ""]


def _publish_rate(results: list[Row]) -> list[str]:
    out = ["### HTTP publish latency on per-user private channels at fixed rates (1,000 channels x 1 subscriber), "
           "ms", "",
           "| rate | server | HTTP publish p50 | HTTP publish p99 | end-to-end p50 | end-to-end p99 | server CPU | "
           "late / backlog | lost / dup |", "|---|---|---:|---:|---:|---:|---:|---|---|"]
    for label in _labels(results, "publish_rate"):
        for name in ("vask", "soketi"):
            runs = _runs(results, "publish_rate", label, name)
            if not runs:
                continue
            out.append(
                f"| {label.split(', ')[-1]} | {name} | {_med(_values(runs, _ms('http_ms', 'p50')), '{:.2f}')} | "
                f"{_med(_values(runs, _ms('http_ms', 'p99')), '{:.2f}')} | "
                f"{_med(_values(runs, _ms('e2e_ms', 'p50')), '{:.2f}')} | "
                f"{_med(_values(runs, _ms('e2e_ms', 'p99')), '{:.2f}')} | "
                f"{_med(_values(runs, _get('server_cpu_pct')), '{:.0f}%', spread=False)} | "
                f"{sum(r['late'] for r in runs)} / {sum(r['backlog'] for r in runs)} | {_loss(runs)} |")
    return [*out, ""]


def _ms_list(runs: list[Row], path: str, *qs: str) -> str:
    return " / ".join(_med(_values(runs, _ms(path, q)), "{:.2f}", spread=False) for q in qs)


def _presence(results: list[Row]) -> list[str]:
    out: list[str] = []
    for label in _labels(results, "presence"):
        out += [f"### Presence joins ({label}; server CPU over joins and leaves)", "",
                "| server | joins | server CPU µs per join (+ its leave) | Vask ÷ Soketi (joins/CPU-s) | "
                "member_added at all members in p50 / p99 / max ms | member_removed p50 / p99 ms | "
                "subscription_succeeded p50 / p99 ms | joins lost | member_added / member_removed missing | dups |",
                "|---|---:|---:|---:|---|---|---|---:|---|---:|"]
        v, s = _runs(results, "presence", label, "vask"), _runs(results, "presence", label, "soketi")
        for name, runs in (("vask", v), ("soketi", s)):
            if not runs:
                continue
            ratio = f"**{_med(_ratios(v, s, _get('joins_per_cpu_s')), '{:.2f}')}**" if name == "vask" else ""
            out.append(
                f"| {name} | {sum(r['joins'] for r in runs):,} | {_med(_values(runs, _get('cpu_us_per_join')))} | "
                f"{ratio} | {_ms_list(runs, 'join_ms', 'p50', 'p99', 'max')} | "
                f"{_ms_list(runs, 'leave_ms', 'p50', 'p99')} | {_ms_list(runs, 'subscribed_ms', 'p50', 'p99')} | "
                f"{sum(r['joins_lost'] for r in runs)} | "
                f"{sum(r['added_missing'] for r in runs)} / {sum(r['removed_missing'] for r in runs)} | "
                f"{sum(r['added_dups'] + r['removed_dups'] for r in runs)} |")
        out += ["", "A join awaits member_added at every member whose subscription_succeeded had come when its "
                "subscribe was sent; a member leaves only after what it awaits has come (or 1 s, then missing).", ""]
    return out


def render(machine: dict[str, str], results: list[Row]) -> str:
    reps = max((r["rep"] for r in results), default=0) + 1
    out = [f"Run {machine['date']} on {machine['cpu']} ({machine['cores']} cores), kernel {machine['kernel']}; "
           f"Python {machine['python']}, Vask {machine['vask']} ({machine['vask_commit']}), uvloop "
           f"{machine['uvloop']}; Node {machine['node']}, Soketi {machine['soketi']} (uWebSockets.js from "
           f"uwebsockets@{machine['uwebsockets']}); {machine['django_channels']}. Medians of {reps} interleaved "
           "repetitions, (min–max) across them.", ""]  # noqa: RUF001
    errors = [r for r in results if "error" in r]
    dpc: Callable[[Row], float | None] = lambda r: r.get("deliveries_per_cpu_s")  # noqa: E731

    if any(r.get("kind") == "fanout" for r in results):
        out += ["### Fan-out throughput (closed loop, 2 publishes in flight, ~100-byte data)", "",
                "| scenario | Vask deliveries/CPU-s | Soketi deliveries/CPU-s | Vask ÷ Soketi | Vask deliveries/s "
                "(server CPU) | Soketi deliveries/s (server CPU) | lost / dup (V, S) |",
                "|---|---:|---:|---:|---:|---:|---|"]
        for label in _labels(results, "fanout"):
            v, s = _runs(results, "fanout", label, "vask"), _runs(results, "fanout", label, "soketi")
            loss = f"{_loss(v)}, {_loss(s)}"
            out.append(
                f"| {label} | {_med(_values(v, dpc))} | {_med(_values(s, dpc))} | "
                f"**{_med(_ratios(v, s, dpc), '{:.2f}')}** | "
                f"{_med(_values(v, lambda r: r['deliveries_per_s']), spread=False)} "
                f"({_med(_values(v, lambda r: r['server_cpu_pct']), '{:.0f}%', spread=False)}) | "
                f"{_med(_values(s, lambda r: r['deliveries_per_s']), spread=False)} "
                f"({_med(_values(s, lambda r: r['server_cpu_pct']), '{:.0f}%', spread=False)}) | {loss} |")
        out.append("")

    if any(r.get("kind") == "publish" for r in results):
        ppc: Callable[[Row], float | None] = lambda r: r.get("publishes_per_cpu_s")  # noqa: E731
        out += ["### Publishes to per-user private channels (signed HTTP API publishes, one subscriber each)", "",
                "| scenario | Vask publishes/CPU-s | Soketi publishes/CPU-s | Vask ÷ Soketi | Vask µs CPU/publish | "
                "Vask publishes/s (server CPU) | HTTP p50 / p99 ms (V) | lost / dup (V, S) |",
                "|---|---:|---:|---:|---:|---:|---|---|"]
        for label in _labels(results, "publish"):
            v, s = _runs(results, "publish", label, "vask"), _runs(results, "publish", label, "soketi")
            cost = [1e6 / x for x in _values(v, ppc) if x]
            out.append(
                f"| {label} | {_med(_values(v, ppc))} | {_med(_values(s, ppc))} | "
                f"**{_med(_ratios(v, s, ppc), '{:.2f}')}** | {_med(cost, '{:.0f}')} | "
                f"{_med(_values(v, lambda r: r['publishes_per_s']), spread=False)} "
                f"({_med(_values(v, lambda r: r['server_cpu_pct']), '{:.0f}%', spread=False)}) | "
                f"{_med(_values(v, _ms('http_ms', 'p50')), '{:.2f}', spread=False)} / "
                f"{_med(_values(v, _ms('http_ms', 'p99')), '{:.2f}', spread=False)} | {_loss(v)}, {_loss(s)} |")
        out.append("")

    if any(r.get("kind") == "publish" and r.get("server") == "c-write" for r in results):
        out += _publish_floor(results)

    if any(r.get("kind") == "batch" for r in results):
        out += _vs_soketi(results, "batch", "### batch_events to per-user private channels (10 events per request to "
                          "10 channels, one subscriber each)", ("events/CPU-s", "events_per_cpu_s"),
                          ("requests/CPU-s", "publishes_per_cpu_s"))

    if any(r.get("kind") == "multi" for r in results):
        out += _vs_soketi(results, "multi", "### One trigger to 10 per-user private channels (\"channels\": [10], "
                          "one subscriber each)", ("publishes/CPU-s", "publishes_per_cpu_s"),
                          ("deliveries/CPU-s", "deliveries_per_cpu_s"))

    if any(r.get("kind") == "publish_rate" for r in results):
        out += _publish_rate(results)

    if any(r.get("kind") == "presence" for r in results):
        out += _presence(results)

    if any(r.get("server") == "c-pass" for r in results):
        out += ["### The physical limit: C reference server on the same harness (bench/refserver.c)", "",
                "| scenario | C, 1 write per delivery | C, 1 write per connection per pass | Vask | "
                "Vask ÷ C 1-write | Vask ÷ C per-pass |", "|---|---:|---:|---:|---:|---:|"]
        for label in _labels(results, "fanout"):
            v, cw, cp = (_runs(results, "fanout", label, n) for n in ("vask", "c-write", "c-pass"))
            out.append(f"| {label} | {_med(_values(cw, dpc))} | {_med(_values(cp, dpc))} | {_med(_values(v, dpc))} | "
                       f"{_med(_ratios(v, cw, dpc), '{:.2f}')} | {_med(_ratios(v, cp, dpc), '{:.2f}')} |")
        out += ["", "Deliveries per server CPU-second; the C server checks no signature and parses no JSON.", ""]

    if any(r.get("kind") == "latency" for r in results):
        out += ["### Latency at fixed publish rates (1,000 subscribers, one channel), ms", "",
                "| rate | server | end-to-end p50 | end-to-end p99 | last subscriber p99 | HTTP publish p50 | "
                "HTTP publish p99 | server CPU |", "|---|---|---:|---:|---:|---:|---:|---:|"]
        for label in _labels(results, "latency"):
            for name in ("vask", "soketi"):
                runs = _runs(results, "latency", label, name)
                if not runs:
                    continue
                out.append(
                    f"| {label.split(', ')[-1]} | {name} | {_med(_values(runs, _ms('e2e_ms', 'p50')), '{:.1f}')} | "
                    f"{_med(_values(runs, _ms('e2e_ms', 'p99')), '{:.1f}')} | "
                    f"{_med(_values(runs, _ms('last_ms', 'p99')), '{:.1f}')} | "
                    f"{_med(_values(runs, _ms('http_ms', 'p50')), '{:.2f}')} | "
                    f"{_med(_values(runs, _ms('http_ms', 'p99')), '{:.2f}')} | "
                    f"{_med(_values(runs, lambda r: r['server_cpu_pct']), '{:.0f}%', spread=False)} |")
        out.append("")

    if any(r.get("kind") == "memory" for r in results):
        out += ["### Memory per idle subscribed connection (server RSS growth ÷ connections)", "",
                "| connections | Vask KB/conn | Soketi KB/conn | Vask RSS base → held (MB) | "
                "Soketi RSS base → held (MB) |", "|---:|---:|---:|---:|---:|"]
        for label in _labels(results, "memory"):
            v, s = _runs(results, "memory", label, "vask"), _runs(results, "memory", label, "soketi")

            def mb(runs: list[Row]) -> str:
                if not runs:
                    return "—"
                return (f"{statistics.median(r['rss_base_kb'] for r in runs) / 1024:.1f} → "
                        f"{statistics.median(r['rss_held_kb'] for r in runs) / 1024:.1f}")

            out.append(f"| {label.split()[0]} | **{_med(_values(v, lambda r: r['kb_per_conn']), '{:.2f}')}** | "
                       f"{_med(_values(s, lambda r: r['kb_per_conn']), '{:.2f}')} | {mb(v)} | {mb(s)} |")
        out.append("")

    if any(r.get("kind") == "churn" for r in results):
        out += ["### Churn (connect, subscribe, close; 50 in parallel)", "",
                "| server | cycles | cycles/s | server CPU µs/cycle | RSS before → after (MB) | growth (MB) | "
                "peak (MB) | errors |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for label in _labels(results, "churn"):
            for name in ("vask", "soketi"):
                runs = _runs(results, "churn", label, name)
                if not runs:
                    continue
                out.append(
                    f"| {name} | {runs[0]['cycles']:,} | {_med(_values(runs, lambda r: r['cycles_per_s']))} | "
                    f"{_med(_values(runs, lambda r: 1e6 * r['server_cpu_s'] / max(r['cycles'], 1)))} | "
                    f"{statistics.median(r['rss_base_kb'] for r in runs) / 1024:.1f} → "
                    f"{statistics.median(r['rss_after_kb'] for r in runs) / 1024:.1f} | "
                    f"{_med(_values(runs, lambda r: r['rss_growth_kb'] / 1024), '{:.1f}')} | "
                    f"{_med(_values(runs, lambda r: r['rss_peak_kb'] / 1024), '{:.1f}', spread=False)} | "
                    f"{sum(r['errors'] for r in runs)} |")
        out.append("")

    if any(r.get("kind") == "cluster" for r in results):
        label = _labels(results, "cluster")[0]
        out += [f"### Scale-out on one machine through Redis ({label}, every process may use every core)", "",
                "| server | deliveries/s | deliveries per CPU-s (Vask + Redis) | CPU used | lost / dup |",
                "|---|---:|---:|---:|---|"]
        names = {"vask": "1 process, in-process broker (pinned to one core)", "vask-redis-1": "1 process, Redis",
                 "vask-redis-2": "2 processes (--workers 2), Redis", "vask-redis-4": "4 processes (--workers 4), Redis"}
        for name, text in names.items():
            runs = _runs(results, "cluster", label, name)
            if runs:
                out.append(f"| {text} | {_med(_values(runs, lambda r: r['deliveries_per_s']))} | "
                           f"{_med(_values(runs, dpc))} | "
                           f"{_med(_values(runs, lambda r: r['server_cpu_pct']), '{:.0f}%', spread=False)} | "
                           f"{_loss(runs)} |")
        out.append("")

    if any(r.get("kind") == "crossnode" for r in results):
        out += ["### Cross-node latency (two nodes, one Redis; subscribers on node A), ms", "",
                "| publish through | end-to-end p50 | end-to-end p99 | last subscriber p99 | HTTP publish p50 | "
                "lost / dup |", "|---|---:|---:|---:|---:|---|"]
        for label in _labels(results, "crossnode"):
            runs = _runs(results, "crossnode", label, "vask-2nodes")
            out.append(f"| {label.rsplit(' to ', 1)[-1]} | {_med(_values(runs, _ms('e2e_ms', 'p50')), '{:.2f}')} | "
                       f"{_med(_values(runs, _ms('e2e_ms', 'p99')), '{:.2f}')} | "
                       f"{_med(_values(runs, _ms('last_ms', 'p99')), '{:.2f}')} | "
                       f"{_med(_values(runs, _ms('http_ms', 'p50')), '{:.2f}')} | "
                       f"{_loss(runs)} |")
        out.append("")

    if any(r.get("kind") == "django" for r in results):
        label = _labels(results, "django")[0]
        v, d = _runs(results, "django", label, "vask"), _runs(results, "django", label, "django")
        out += ["### The Python anchor: Django Channels + channels_redis (pub/sub layer, uvicorn, Redis on the "
                "server core)", "",
                "| scenario | Vask deliveries/CPU-s | Django Channels deliveries/CPU-s | Vask ÷ Django | "
                "Django deliveries/s | Django e2e p50 / p99 ms |", "|---|---:|---:|---:|---:|---:|",
                f"| {label} | {_med(_values(v, dpc))} | {_med(_values(d, dpc))} | "
                f"**{_med(_ratios(v, d, dpc), '{:.0f}')}** | "
                f"{_med(_values(d, lambda r: r['deliveries_per_s']), spread=False)} | "
                f"{_med(_values(d, _ms('e2e_ms', 'p50')), '{:.0f}', spread=False)} / "
                f"{_med(_values(d, _ms('e2e_ms', 'p99')), '{:.0f}', spread=False)} |", ""]

    if errors:
        out += ["Failed runs:", ""] + [f"- {r['server']} {r['kind']} {r['label']} rep {r['rep']}: {r['error']}"
                                       for r in errors] + [""]
    return "\n".join(out)
