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
    from tollway.demo.run import Options

    options = Options(data_dir=data_dir, scale=scale, seed=seed, weeks=weeks, local=not no_local, port=port)
    try:
        asyncio.run(_main(options, serve=not no_serve, json_out=json_out))
    except (KeyboardInterrupt, asyncio.CancelledError):
        click.echo("stopped.", err=True)


async def _main(options: Any, *, serve: bool, json_out: Path | None) -> None:
    import signal
    import time

    import orjson
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from tollway.demo import report
    from tollway.demo.run import DemoStack, drive

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
            console.print(f"local model: {run.local.model_path.name} via llama.cpp at {run.local.base_url}")
        else:
            console.print(f"local model: off - {escape(run.local_note or '')}")
        started = time.monotonic()
        with Progress(TextColumn("[bold]week of {task.fields[week]}"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.fields[tokens]} tokens  ${task.fields[cost]}  {task.fields[failed]}"),
                      TimeElapsedColumn(), console=console, transient=False) as bar:
            task = bar.add_task("workload", total=None, week="...", tokens="0", cost="0.00", failed="")

            def update(p: Any, done: int, total: int) -> None:
                failed = f"[red]{p.failed} failed" if p.failed else ""
                bar.update(task, completed=done, total=total, week=p.week, tokens=f"{p.tokens:,}",
                           cost=f"{p.cost_usd:,.2f}", failed=failed)

            await drive(run, stack.clock, options, update)
        stack.flush()
        elapsed = time.monotonic() - started
        console.print(f"workload done: {run.progress.requests:,} requests in {elapsed:.1f} s "
                      f"({run.progress.local_requests} answered by the local model)")
        reports = await asyncio.to_thread(report.collect, run.config_path)
        report.render(reports, console)
        charts = await asyncio.to_thread(report.write_charts, reports, run.data_dir)
        for path in charts:
            console.print(f"chart: {path}")
        if json_out is not None:
            json_out.write_bytes(orjson.dumps(reports, default=str, option=orjson.OPT_INDENT_2))
        where = "" if options.data_dir is not None else " (while the demo runs; --data-dir keeps it)"
        console.print(f"explore the ledger{where}:")
        for command in ("report rankings --by origin", "report rankings --by model --period total",
                        "report cost --what-if anthropic/claude-opus-4.6 --what-if minimax/minimax-m2.5",
                        "report tasks", "usage summary"):
            console.print(f"  tollway {command} --config {run.config_path}", soft_wrap=True)
        if serve:
            console.print(f"\n[bold green]gateway running at {run.gateway_url}/v1[/]  (Ctrl-C to stop)")
            console.print(f"key: {run.api_key}")
            console.print(f"try: curl {run.gateway_url}/v1/chat/completions -H 'Authorization: Bearer "
                          f"{run.api_key}' -H 'Content-Type: application/json' "
                          "-d '{\"model\": \"minimax/minimax-m2.5\", \"messages\": [{\"role\": \"user\", "
                          "\"content\": \"hello\"}]}'")
            console.print(f"[bold green]console: {run.gateway_url}/console[/]  (log in with the key above)")
            await asyncio.Event().wait()
