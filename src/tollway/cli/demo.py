"""``tollway demo``: gateway, simulated providers, a workload from public data, reports."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import click


@click.command()
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Keep the ledger and a tollway.yaml here (default: a temporary directory).")
@click.option("--scale", type=click.FloatRange(min=0.01), default=1.0, show_default=True,
              help="Multiply the number of requests (1 = ~2,400 over 15 simulated weeks).")
@click.option("--weeks", type=click.IntRange(min=1), default=None, help="Only the last N weeks.")
@click.option("--seed", type=int, default=7, show_default=True, help="Workload random seed.")
@click.option("--port", type=int, default=8080, show_default=True, help="Gateway port (0: any free port).")
@click.option("--no-serve", is_flag=True, help="Exit after the reports instead of leaving the gateway up.")
@click.option("--no-local", is_flag=True, help="Don't start the local llama.cpp model even if installed.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the reports as JSON to this file.")
def demo(data_dir: Path | None, scale: float, weeks: int | None, seed: int, port: int, no_serve: bool,
         no_local: bool, json_out: Path | None) -> None:
    """Run tollway end to end on this machine, no API keys needed.

    Starts simulated providers (OpenAI, Anthropic and Gemini wire formats, clearly named
    sim-*), the real gateway and ledger, replays 15 weeks of OpenRouter's public model mix,
    prints the rankings, and leaves the gateway running (Ctrl-C stops everything).
    """
    from tollway.cli.common import port_is_taken
    from tollway.demo.run import Options, PortTaken

    if port_is_taken("127.0.0.1", port):  # before any simulated provider or model starts
        raise click.ClickException(_port_message(port))
    options = Options(data_dir=data_dir, scale=scale, seed=seed, weeks=weeks, local=not no_local, port=port)
    try:
        asyncio.run(_main(options, serve=not no_serve, json_out=json_out))
    except PortTaken as exc:  # taken between the check and the gateway's bind
        raise click.ClickException(_port_message(exc.port)) from None
    except (KeyboardInterrupt, asyncio.CancelledError):
        click.echo("stopped.", err=True)


def _port_message(port: int) -> str:
    from tollway.cli.common import port_taken_message

    return port_taken_message("127.0.0.1", port) + " (or --port 0 for any free port)"


async def _main(options: Any, *, serve: bool, json_out: Path | None) -> None:
    import signal
    import time

    import orjson
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from tollway.demo import report
    from tollway.demo.run import DemoStack, drive
    from tollway.demo.setup import LOCAL_MODEL_ID

    # Ctrl-C and SIGTERM cancel the demo, which stops the gateway (draining the ledger),
    # the local model's process and the simulated providers on the way out.
    main_task = asyncio.current_task()
    assert main_task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, main_task.cancel)
    console = Console(soft_wrap=True)  # URLs, keys and commands stay copyable
    stack = DemoStack(options)
    async with stack as run:
        console.print(f"[yellow]{report.SIM_LABEL}")
        console.print(f"gateway {run.gateway_url}   ledger {run.database}")
        if run.skipped_kinds:
            console.print(f"note: no tollway adapter yet for {', '.join(sorted(run.skipped_kinds))}; those "
                          "simulated providers are reached through their OpenAI-compatible layer")
        if run.local is not None:
            console.print(f"local model: [bold]{LOCAL_MODEL_ID}[/] (real, {run.local.model_path.name}) via "
                          f"llama.cpp at {run.local.base_url}")
        else:
            console.print(f"local model: off - {escape(run.local_note or '')}")
        started = time.monotonic()
        with Progress(TextColumn("[bold]week of {task.fields[week]}"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("requests  {task.fields[tokens]} tokens  ${task.fields[cost]}  "
                                 "{task.fields[failed]}"),
                      TimeElapsedColumn(), console=console, transient=False) as bar:
            task = bar.add_task("workload", total=None, week="...", tokens="0", cost="0.00", failed="")

            def update(p: Any, done: int, total: int) -> None:
                failed = f"[red]{p.failed} failed" if p.failed else ""
                bar.update(task, completed=done, total=total, week=p.week, tokens=f"{p.tokens:,}",
                           cost=f"{p.cost_usd:,.2f}", failed=failed)

            await drive(run, stack.clock, options, update)
        stack.flush()
        elapsed = time.monotonic() - started
        p = run.progress
        local = f"; {p.local_requests} answered by the local model" if run.local is not None else ""
        console.print(f"workload done in {elapsed:.1f} s: {p.requests:,} requests sent = {p.answered:,} answered "
                      f"+ {p.failed:,} failed at every provider{local}; {p.tokens:,} tokens (prompt + "
                      f"completion of the answered ones)")
        reports = await asyncio.to_thread(report.collect, run.config_path)
        report.render(reports, console)
        charts = await asyncio.to_thread(report.write_charts, reports, run.data_dir, run.config_path)
        for path in charts:
            console.print(f"chart: {_shown(path)}")
        if json_out is not None:
            json_out.write_bytes(orjson.dumps(reports, default=str, option=orjson.OPT_INDENT_2))
        _print_next_steps(console, run, kept=options.data_dir is not None)
        if serve:
            _print_serving(console, run)
            await asyncio.Event().wait()


def _shown(path: Path) -> str:
    """``path`` relative to the current directory when below it (shorter to copy)."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _print_next_steps(console: Any, run: Any, *, kept: bool) -> None:
    from tollway.cli.common import tollway_command
    from tollway.demo.report import WHAT_IF_TARGETS

    tollway = tollway_command()
    where = "" if kept else " (while the demo runs; --data-dir keeps it)"
    console.print(f"explore the ledger{where}:")
    config = _shown(run.config_path)
    for command in ("report rankings --by origin --pivot", "report rankings --by model --period total",
                    f"report cost --what-if {' '.join(WHAT_IF_TARGETS)}",
                    "report tasks", "usage summary", "models list"):
        console.print(f"  {tollway} {command} --config {config}", soft_wrap=True)


def _print_serving(console: Any, run: Any) -> None:
    from tollway.demo.setup import LOCAL_MODEL_ID

    console.print(f"\n[bold green]gateway running at {run.gateway_url}/v1[/]  (Ctrl-C to stop)")
    console.print(f"key: {run.api_key}")
    models = "GET /v1/models lists the simulated models (e.g. minimax/minimax-m2.5)"
    if run.local is not None:
        models += f" and the real local one, {LOCAL_MODEL_ID}"
    console.print(f"models: {models}")
    model = LOCAL_MODEL_ID if run.local is not None else "minimax/minimax-m2.5"
    console.print(f"try: curl {run.gateway_url}/v1/chat/completions -H 'Authorization: Bearer "
                  f"{run.api_key}' -H 'Content-Type: application/json' "
                  f"-d '{{\"model\": \"{model}\", \"messages\": [{{\"role\": \"user\", "
                  "\"content\": \"hello\"}]}'")
    for line in _console_lines(run):
        console.print(line)


def _console_lines(run: Any) -> list[str]:
    """Closing lines about the web console: its URL, to log in with the key printed above."""
    return [f"[bold green]console: {run.gateway_url}/console[/]  (log in with the key above)"]
