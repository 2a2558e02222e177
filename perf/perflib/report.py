"""Markdown + JSON result files."""

from __future__ import annotations

import json
from pathlib import Path

from .bench import DISTURBED, MIN_CLEAN, STOLEN, disturbance, median, other_load, round_order, rounds_used, stolen
from .svg import latency_svg


def _n(v, digits=0):
    if v is None:
        return "–"
    if digits == 0:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def _cpu(v):
    if v is None:
        return "–"
    return f"{v:.2f}" if v < 10 else f"{v:.1f}"


def _signed(v):
    if v is None:
        return "–"
    return f"{v:+,.0f}"


def _pct(v):
    return "–" if v is None else f"{v * 100:.0f}%"


def _kib(v):
    return "–" if v is None else f"{v / 1024:,.1f} MiB"


def _code(lang: str, text: str) -> str:
    return f"```{lang}\n{text.rstrip()}\n```\n"


def _porcelain_path(line: str) -> str:
    """`git status --porcelain` line -> path (also copes with a line whose leading space was lost)."""
    if len(line) > 3 and line[2] == " ":
        return line[3:]
    parts = line.split(None, 1)
    return parts[1] if len(parts) > 1 else line


def rounds_phrase(sc: dict) -> str:
    """Which rounds the medians of a scenario are taken over, in words."""
    used = rounds_used(sc)
    left = [rd["round"] for rd in sc["rounds"] if rd.get("disturbed")]
    if not left:
        return f"{len(used)} rounds"
    listed = ", ".join(str(n) for n in left)
    if len(used) == len(sc["rounds"]):
        return (f"all {len(used)} rounds (only {len(used) - len(left)} undisturbed, fewer than {MIN_CLEAN}; "
                f"disturbed: {listed})")
    return f"{len(used)} undisturbed rounds (round{'s' if len(left) > 1 else ''} {listed} disturbed, left out)"


def noise_lines(r: dict) -> tuple[list[str], int, list[str]]:
    """Runs during which other processes used more than DISTURBED of a core; the run count;
    open-loop runs during which the hypervisor took more than STOLEN of one."""
    runs = []
    for name, sc in r["scenarios"].items():
        for rd in sc.get("rounds", []):
            for mode in ("closed", "open"):
                for t, x in rd.get(mode, {}).items():
                    runs.append((f"{name}/{t} round {rd['round']} {mode}", t, x, mode))
        for t, m in sc.get("memory", {}).items():
            if m.get("load"):
                runs.append((f"{name}/{t} open with idle connections", t, m["load"], "open"))
    out, steal = [], []
    for where, t, x, mode in runs:
        if not x or "error" in x:
            continue
        if why := disturbance(t, x):
            out.append(f"{where}: {why}")
        if why := stolen(t, x, mode):
            steal.append(f"{where}: {why}")
    return out, sum(1 for _, _, x, _ in runs if x and "error" not in x), steal


def steal_by_target(r: dict) -> list[str]:
    """Per target, over the open-loop runs of every load scenario: the median steal on each core
    and how many runs passed STOLEN; then the load core's median by place in the round, which
    shows whether steal follows the target or the order."""
    by_t: dict[str, list[dict]] = {}
    by_place: dict[int, list[float]] = {}
    for sc in r["scenarios"].values():
        for rd in sc.get("rounds", []):
            order = round_order(sc, rd)
            for t, x in rd.get("open", {}).items():
                if not x or "error" in x or "load_core_stolen" not in x:
                    continue
                by_t.setdefault(t, []).append(x)
                if t in order:
                    by_place.setdefault(order.index(t) + 1, []).append(x["load_core_stolen"])
    if not by_t:
        return []
    out = ["| target | open-loop runs | median steal, proxy core | median steal, load core | runs over "
           f"{STOLEN:.0%} |", "| --- | ---: | ---: | ---: | ---: |"]
    for t, xs in by_t.items():
        proxy = "" if t == "direct" else f"{median([x['proxy_core_stolen'] for x in xs]) * 100:.1f}%"
        over = sum(1 for x in xs if stolen(t, x, "open"))
        out.append(f"| {t} | {len(xs)} | {proxy} | {median([x['load_core_stolen'] for x in xs]) * 100:.1f}% | {over} |")
    out += ["", "| place in the round | open-loop runs | median steal, load core |", "| ---: | ---: | ---: |"]
    out += [f"| {k} | {len(v)} | {median(v) * 100:.1f}% |" for k, v in sorted(by_place.items())]
    return out + [""]


def header(r: dict) -> list[str]:
    m, c = r["machine"], r["commit"]
    out = [f"# Portico perf: `{r['name']}`", "",
           f"Run `{r['invocation']}` started {r['started']}, total runtime {r['runtime_s'] / 60:.1f} min "
           f"(load average {m['loadavg_start']} at the start, {r.get('loadavg_end', '?')} at the end).", "",
           "## Machine", "",
           "| | |", "| --- | --- |",
           f"| nproc | {m['nproc']} |",
           f"| CPU | {m['model']} |",
           f"| kernel | {m['kernel_full']} |",
           f"| memory | {m['memory']} |", ""]
    out += ["## Commit", "",
            f"`{c['head']}`" + (f" **dirty** ({len(c['dirty_files'])} changed or untracked paths: "
                                 + ", ".join(f"`{_porcelain_path(x)}`" for x in c["dirty_files"][:30])
                                 + (" …" if len(c["dirty_files"]) > 30 else "") + ")" if c["dirty"] else " (clean)"), ""]
    if r.get("rejudged"):
        out += [f"Rounds {r['rejudged']}: the tables use the disturbance rule of that commit, not the one the run "
                f"replaced rounds under.", ""]
    v = r.get("versions", {})
    if v:
        out += ["Versions: " + "; ".join(f"{k}: `{val}`" for k, val in v.items()), ""]
    return out


def rotates(r: dict) -> bool:
    """Whether the run rotated the order of its rounds (io-engine-19 on); older runs kept one order."""
    return any("order" in rd for sc in r["scenarios"].values() for rd in sc.get("rounds", []))


def first_targets(r: dict) -> list[str]:
    """The targets of the run's first load scenario, in their round-1 order."""
    for sc in r["scenarios"].values():
        if sc.get("targets") and sc.get("rounds"):
            return sc["targets"]
    return ["direct", "nginx", "haproxy", "portico"]


def layout(r: dict) -> list[str]:
    s = r["settings"]
    return ["## How it was measured", "",
            f"* core {s['proxy_cpu']}: the target (Portico `--cores 1`, nginx master + 1 worker, haproxy `nbthread 1`); "
            f"core {s['load_cpu']}: loadgen and the backend (`loadgen serve --threads 1`). The harness itself runs on "
            f"core {s['load_cpu']} and sleeps while loadgen runs.",
            f"* Each scenario starts a fresh backend and fresh targets, checks each target with one request (200 and the "
            f"expected body size), then runs {s['rounds']} interleaved rounds "
            + (f"(round 1: {', '.join(first_targets(r))}; each later round starts one target further on)"
               if rotates(r) else f"({', '.join(first_targets(r))}, then again)")
            + (f"; a disturbed round (another process used more than {DISTURBED:.0%} of a core during one of its "
               f"runs; steal time does not count) "
               f"is left out of the medians and replaced by another, at most {s['extra_rounds']} more rounds per scenario."
               if "extra_rounds" in s else "."),
            f"* Per round and target: a {s['warmup']:g} s warm-up loadgen run (not measured), then a "
            f"{s['duration']:g} s closed-loop run (`-t 1 -c 64`). CPU per request = the target's utime + stime from "
            f"`/proc/<pid>/stat` (all threads; nginx: master + worker; direct: the backend) read just before and just "
            f"after the measured loadgen run, divided by the responses loadgen counted. The warm-up is a separate loadgen "
            f"run (not `--warmup`) so that the CPU window holds exactly the counted requests.",
            f"* Then, in the same round, the same for an open-loop run at a fixed rate ({s['rate_rule']}), the same rate for "
            f"every target: corrected latency percentiles (loadgen `latency_us`), and the latency added over `direct` "
            f"(target pXX − direct pXX in the same round).",
            "* Tables show medians over rounds; \"vs nginx\" is median CPU/req of the target ÷ median CPU/req of nginx "
            "(same run), with the range of the per-round ratios next to it.", ""]


def commands(r: dict) -> list[str]:
    out = ["## Commands", ""]
    for name, sc in r["scenarios"].items():
        cm = sc.get("commands", {})
        out += [f"### {name}", "", f"* backend: `{cm.get('backend', '–')}`"]
        for k, v in (sc.get("setup") or {}).items():
            out.append(f"* setup, {k}: `{v}`")
        for t, tc in cm.get("targets", {}).items():
            if t == "direct":
                continue
            out.append(f"* {t}: `{tc['command'] or '(not started)'}`")
        for k, label in (("loadgen_warmup", "warm-up"), ("loadgen_closed", "closed loop"), ("loadgen_open", "open loop")):
            if cm.get(k):
                out.append(f"* loadgen {label} (URL of the first target; the others differ in port and prefix): `{cm[k]}`")
        if sc["definition"]["kind"] == "memory":
            out.append(f"* idle connections: {sc.get('idle_conns')} asyncio connections from the harness (core "
                       f"{r['settings']['load_cpu']}), each sends one `GET <prefix>{sc['definition']['path']}` and reads "
                       f"the answer, then stays open; RSS = VmRSS from `/proc/<pid>/status` (nginx: master + worker)")
        out.append("")
        cfgs = [(t, tc) for t, tc in cm.get("targets", {}).items() if tc.get("config")]
        if cfgs:
            out += ["<details><summary>target configs</summary>", ""]
            for t, tc in cfgs:
                # Every Portico target's config is JSON.
                lang = {"nginx": "nginx", "haproxy": "haproxy"}.get(t, "json" if t.startswith("portico") else "")
                out += [f"`{tc['config_file']}`", "", _code(lang, tc["config"])]
            out += ["</details>", ""]
    return out


def load_tables(name: str, sc: dict, svg_name: str | None) -> list[str]:
    d, s = sc["definition"], sc.get("summary", {})
    out = [f"### {name}: {d['description']}", ""]
    if sc.get("failed"):
        for t, why in sc["failed"].items():
            out += [f"**{t} failed to start**:", "", _code("", why)]
    if not s:
        return out + ["No results.", ""]
    rounds = rounds_phrase(sc)
    out += [f"Closed loop, medians of {rounds}:", "",
            "| target | req/s | CPU µs/req | CPU/req vs nginx | per-round ratios | target CPU util | backend CPU µs/req | errors | non-2xx |",
            "| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |"]
    for t, x in s.items():
        per = x["cpu_ratio_to_nginx_per_round"]
        rng = f"{min(per):.2f}–{max(per):.2f}" if per else "–"
        out.append(f"| {t} | {_n(x['rps'])} | {_cpu(x['cpu_us_per_req'])} | {_n(x['cpu_ratio_to_nginx'], 2)} | {rng} | "
                   f"{_n((x['target_cpu_util'] or 0) * 100)}% | {_cpu(x['backend_cpu_us_per_req'])} | {x['errors']} | {x['non_2xx']} |")
    out.append("")
    ref = d.get("reference")
    if ref and ref in s:
        out += [f"CPU per request relative to `{ref}` (same run; closed loop: median CPU/req ÷ median CPU/req of "
                f"{ref}, and the range of the per-round ratios; open loop: the same at the fixed rate):", "",
                f"| target | CPU µs/req | vs {ref} | per-round ratios | CPU µs/req at fixed rate | vs {ref} at fixed rate |",
                "| --- | ---: | ---: | --- | ---: | ---: |"]
        for t, x in s.items():
            if t == "direct":
                continue
            per = x.get("cpu_ratio_to_reference_per_round") or []
            rng = f"{min(per):.2f}–{max(per):.2f}" if per else "–"
            out.append(f"| {t} | {_cpu(x['cpu_us_per_req'])} | {_n(x.get('cpu_ratio_to_reference'), 2)} | {rng} | "
                       f"{_cpu(x['open_cpu_us_per_req'])} | {_n(x.get('open_cpu_ratio_to_reference'), 2)} |")
        out.append("")
    if sc.get("rate"):
        probes = sc.get("rate_probes") or []
        if probes:
            steps = "; ".join(f"{p['rate']:,} req/s: {p['load']:.0%}" if "load" in p else f"{p['rate']:,} req/s: {p['error']}"
                              for p in probes)
            out += [f"Rate probes on the direct path (short runs, not measured), with how busy loadgen and the backend "
                    f"kept the load core: {steps}.", ""]
        out += [f"Open loop at {sc['rate']:,} req/s (64 connections), corrected latency in µs, medians of {rounds}; "
                f"+pXX = target − direct in the same round (median):", "",
                "| target | achieved req/s | p50 | p90 | p99 | p99.9 | p99.99 | +p50 | +p99 | +p99.9 | CPU µs/req at this rate "
                "| proxy core busy | load core busy |",
                "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for t, x in s.items():
            lat, add = x["latency_us"], x["added_us"]
            out.append(f"| {t} | {_n(x['open_rps'])} | {_n(lat['p50'])} | {_n(lat['p90'])} | {_n(lat['p99'])} | "
                       f"{_n(lat['p999'])} | {_n(lat['p9999'])} | {_signed(add['p50'])} | {_signed(add['p99'])} | "
                       f"{_signed(add['p999'])} | {_cpu(x['open_cpu_us_per_req'])} | {_pct(x.get('open_proxy_core_busy'))} | "
                       f"{_pct(x.get('open_load_core_busy'))} |")
        out.append("")
    if svg_name:
        out += [f"![{name} latency percentiles]({svg_name})", ""]
    return out


def memory_table(name: str, sc: dict) -> list[str]:
    d = sc["definition"]
    out = [f"### {name}: {d['description']}", ""]
    if sc.get("failed"):
        for t, why in sc["failed"].items():
            out += [f"**{t} failed to start**:", "", _code("", why)]
    mem = sc.get("memory", {})
    if not mem:
        return out + ["No results.", ""]
    n = sc.get("idle_conns")
    out += [f"RSS idle (after start and one request), with {n:,} idle keep-alive connections (each served one GET), "
            f"and 2 s after closing them; per connection = (RSS with connections − RSS idle) / connections answered:", "",
            "| target | processes | RSS idle | RSS with conns | bytes per connection | conns answered 200 | sockets held by target | RSS after close | open time |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for t, m in mem.items():
        out.append(f"| {t} | {m.get('processes')} | {_kib(m.get('rss_idle_kib'))} | {_kib(m.get('rss_conns_kib'))} | "
                   f"{_n(m.get('bytes_per_conn'))} | {_n(m.get('ok'))} | {_n(m.get('target_sockets'))} | "
                   f"{_kib(m.get('rss_closed_kib'))} | {m.get('open_s', '–')} s |")
    out.append("")
    if sc.get("rate"):
        out += [f"With the {n:,} connections held: open loop at {sc['rate']:,} req/s (64 more connections), one "
                f"{sc['settings_duration']:g} s run, corrected latency in µs:", "",
                "| target | achieved req/s | p50 | p99 | p99.9 | CPU µs/req | RSS after the load | errors | non-2xx |",
                "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for t, m in mem.items():
            x = m.get("load")
            if not x or "error" in x:
                out.append(f"| {t} | {(x or {}).get('error', '–')} | | | | | | | |")
                continue
            lat = x["latency_us"]
            bad = sum(v for k, v in x["status"].items() if not k.startswith("2"))
            out.append(f"| {t} | {_n(x['rps'])} | {_n(lat['p50'])} | {_n(lat['p99'])} | {_n(lat['p999'])} | "
                       f"{_cpu(x['cpu_us_per_req'])} | {_kib(m.get('rss_conns_load_kib'))} | "
                       f"{sum(x['errors'].values())} | {bad} |")
        out.append("")
    return out


def per_round(sc_name: str, sc: dict) -> list[str]:
    if not sc.get("rounds"):
        return []
    out = [f"<details><summary>{sc_name}: every round</summary>", "",
           "| round | target | place | closed req/s | CPU µs/req | util | other load on proxy core | other load on load core | open req/s | p50 | p99 | p99.9 | stolen, open (proxy / load core) | errors |",
           "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for rd in sc["rounds"]:
        n = f"{rd['round']} (disturbed)" if rd.get("disturbed") else rd["round"]
        order = round_order(sc, rd)
        for t in sc["targets"]:
            c, o = rd["closed"].get(t) or {}, rd["open"].get(t) or {}
            place = order.index(t) + 1 if t in order else ""
            if "error" in c:
                out.append(f"| {n} | {t} | {place} | error: {c['error'][:80]} | | | | | | | | | | |")
                continue
            errs = sum((c.get("errors") or {}).values()) + sum((o.get("errors") or {}).values())
            ol = o.get("latency_us") or {}
            out.append(f"| {n} | {t} | {place} | {_n(c.get('rps'))} | {_cpu(c.get('cpu_us_per_req'))} | "
                       f"{_n((c.get('target_cpu_util') or 0) * 100)}% | {_n(other_load(c, 'proxy') * 100)}% | "
                       f"{_n(other_load(c, 'load') * 100)}% | "
                       f"{_n(o.get('rps'))} | {_n(ol.get('p50'))} | {_n(ol.get('p99'))} | {_n(ol.get('p999'))} | "
                       f"{_stolen(o)} | {errs} |")
    return out + ["", "</details>", ""]


def _stolen(x: dict) -> str:
    """Steal time of a run on both cores, or '' for results written before it was recorded."""
    if "proxy_core_stolen" not in x:
        return ""
    return f"{x['proxy_core_stolen'] * 100:.1f}% / {x['load_core_stolen'] * 100:.1f}%"


def write_run(r: dict, results_dir: Path) -> tuple[Path, Path]:
    name = r["name"]
    md = header(r) + commands(r) + layout(r) + ["## Results", ""]
    for sc_name, sc in r["scenarios"].items():
        if sc["definition"]["kind"] == "memory":
            md += memory_table(sc_name, sc)
            continue
        svg_name = None
        s = sc.get("summary", {})
        series = {t: x["latency_us"] for t, x in s.items() if x.get("open_rps")}
        if series:
            svg = latency_svg(f"{sc_name}: latency at {sc['rate']:,} req/s, open loop",
                              [sc["definition"]["description"],
                               f"corrected for coordinated omission; medians of {rounds_phrase(sc)}; "
                               f"run {name}"], series)
            if svg:
                svg_name = f"{name}-{sc_name}.svg"
                (results_dir / svg_name).write_text(svg)
        md += load_tables(sc_name, sc, svg_name)
    md += ["## Anomalies", ""]
    md += [f"* {a}" for a in r["anomalies"]] or ["None: no loadgen errors, no non-2xx answers, every open-loop run "
                                                   "reached its rate."]
    noise, nruns, steal = noise_lines(r)
    md += ["", "## Noise from other processes", "",
           f"Runs during which processes other than the target, the backend and loadgen used more than "
           f"{DISTURBED:.0%} of the proxy core or of the load core (from /proc/stat, steal time left out; the "
           f"machine is shared): "
           f"{len(noise)} of {nruns} measured runs. req/s and latency of those runs say more about the neighbours "
           f"than about the target. A load round with such a run is disturbed: the tables leave it out (unless "
           f"fewer than {MIN_CLEAN} rounds are undisturbed) and the harness runs another round in its place, up "
           f"to `--extra-rounds`. Results written before this rule flagged runs above 15% and used every round; "
           f"io-engine-17 and -18 also left out rounds with steal, until they were re-rendered.", ""]
    md += [f"* {a}" for a in noise]
    md += ["", "## Steal", "",
           f"Open-loop runs during which the hypervisor ran something else for more than {STOLEN:.0%} of the proxy core "
           f"or of the load core while it had work (steal time, /proc/stat): {len(steal)}. Listed, never left out "
           f"(perf/README.md, *Disturbed rounds*). The tables give the steal by target and by place in the round; "
           f"runs from io-engine-19 on rotate the order, so that no target always runs last.", ""]
    md += steal_by_target(r)
    md += [f"* {a}" for a in steal]
    md += ["", "## Every round", ""]
    for sc_name, sc in r["scenarios"].items():
        md += per_round(sc_name, sc)
    md_path, json_path = results_dir / f"{name}.md", results_dir / f"{name}.json"
    md_path.write_text("\n".join(md) + "\n")
    json_path.write_text(json.dumps(r, indent=1, default=str) + "\n")
    return md_path, json_path


def write_compare(r: dict, results_dir: Path) -> tuple[Path, Path]:
    name = r["name"]
    c = r["compare"]
    s = c["summary"]
    md = header(r) + ["## Commands", "",
                      f"* backend: `{c['commands']['backend']}`",
                      f"* loadgen: `{c['commands']['loadgen']}`",
                      f"* wrk: `{c['commands']['wrk']}`", "",
                      "## How it was measured", "",
                      f"The backend (`loadgen serve --threads 1`) runs on core {r['settings']['proxy_cpu']}, the load "
                      f"generator on core {r['settings']['load_cpu']}; {r['settings']['rounds']} interleaved rounds "
                      f"(loadgen, wrk, loadgen, wrk, …) of {r['settings']['duration']:g} s each, one thread and 64 "
                      f"connections, no warm-up for either. CPU of the load generator = user + system time of the "
                      f"process (all threads) from `wait4()` rusage, divided by the responses it reports. The backend's "
                      f"CPU per request is read from `/proc/<pid>/stat` around each run.", "",
                      "## Results", "",
                      "| tool | req/s | CPU µs/req (generator) | CPU/req vs wrk | per-round ratios | backend CPU µs/req |",
                      "| --- | ---: | ---: | ---: | --- | ---: |"]
    for tool, x in s.items():
        per = x.get("per_round_ratios") or []
        rng = f"{min(per):.2f}–{max(per):.2f}" if per else "–"
        md.append(f"| {tool} | {_n(x['rps'])} | {_cpu(x['cpu_us_per_req'])} | {_n(x['cpu_ratio_to_wrk'], 2)} | "
                  f"{rng} | {_cpu(x['backend_cpu_us_per_req'])} |")
    md += ["", "<details><summary>every round</summary>", "",
           "| round | tool | req/s | CPU µs/req | backend CPU µs/req | other load on generator core | other load on backend core | errors | non-2xx |",
           "| ---: | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |"]
    for i, rd in enumerate(c["rounds"], 1):
        for tool, x in rd.items():
            md.append(f"| {i} | {tool} | {_n(x.get('rps'))} | {_cpu(x.get('cpu_us_per_req'))} | "
                      f"{_cpu(x.get('backend_cpu_us_per_req'))} | {_pct(x.get('load_core_other'))} | "
                      f"{_pct(x.get('backend_core_other'))} | {x.get('errors') or x.get('error') or 'none'} | {x.get('non_2xx', '–')} |")
    md += ["", "</details>", "", "## Anomalies", ""]
    md += [f"* {a}" for a in r["anomalies"]] or ["None."]
    for rd in c["rounds"]:
        for x in rd.values():
            x.pop("raw", None) if "rps" in x else None
    md_path, json_path = results_dir / f"{name}.md", results_dir / f"{name}.json"
    md_path.write_text("\n".join(md) + "\n")
    json_path.write_text(json.dumps(r, indent=1, default=str) + "\n")
    return md_path, json_path
